import { assert, describe, it } from "@effect/vitest"
import { digestCells, seedOf } from "../../src/Domain/Digest.ts"
import { DigestSet } from "../../src/Reconcile/Digests.ts"

describe("record digests: the digest and the in-memory set", () => {
  it("a digest depends on every cell, their order and their boundaries, and on the seed", () => {
    const seed = seedOf("mapping/1")
    const base = digestCells(seed, ["u-1", "Ada", "student"])
    const same = digestCells(seed, ["u-1", "Ada", "student"])
    assert.deepStrictEqual(base, same)
    const others = [
      digestCells(seed, ["u-1", "Adb", "student"]),
      digestCells(seed, ["u-1", "student", "Ada"]),
      digestCells(seed, ["u-1A", "da", "student"]),
      digestCells(seed, ["u-1", "Ada", "student", ""]),
      digestCells(seedOf("mapping/2"), ["u-1", "Ada", "student"])
    ]
    for (const other of others) assert.notDeepEqual(other, base)
  })

  it("restores a loaded digest once; a new digest or a repeat is decoded; growth keeps every entry", () => {
    const set = new DigestSet(2)
    for (let i = 0; i < 1000; i++) assert.isTrue(set.load(i, i * 7))
    assert.isFalse(set.load(5, 35)) // the store repeating a digest
    assert.strictEqual(set.size, 1000)
    assert.isTrue(set.see(5, 35, 10)) // known: restored at line 10
    assert.isFalse(set.see(5, 35, 11)) // the same record again in the file: decode it
    assert.isFalse(set.see(5, 36, 12)) // new
    assert.isFalse(set.see(5, 36, 13)) // new, repeated
    for (let i = 2000; i < 5000; i++) set.see(i, 1, i) // grows past its first size
    assert.strictEqual(set.restoredCount(), 1)
    assert.strictEqual([...set.restoredCopy(10)].join("\n"), "10\t\\\\x0000000500000023")
    assert.strictEqual(set.unseen(), 999)
    // Bulk: the seen and the new; delta: everything.
    assert.strictEqual(set.summary(true).entries, 1 + 1 + 3000)
    assert.strictEqual(set.summary(false).entries, 1000 + 1 + 3000)
  })
})
