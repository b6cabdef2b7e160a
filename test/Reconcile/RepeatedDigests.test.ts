import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { digestCells } from "../../src/Domain/Digest.ts"
import { RepeatedDigests } from "../../src/Reconcile/RepeatedDigests.ts"

/**
 * The filter that finds lines a scan may have listed before (src/Reconcile/RepeatedDigests.ts):
 * the duplicate checks trust it to report every repeat, so it may never miss one.
 */
describe("repeated digests", () => {
  it("reports every line whose digest an earlier line listed, whatever the digests and their order", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff })), { minLength: 1, maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 100 }),
        fc.nat({ max: 1000 }),
        (distinct, picks, expected) => {
          // A scan listing each digest once, with some listed again at random places.
          const scan = [...distinct, ...picks.map((p) => distinct[p % distinct.length]!)]
          const filter = new RepeatedDigests(expected, 10_000)
          const first = new Map<string, number>()
          const repeats: Array<number> = []
          scan.forEach(([hi, lo], line) => {
            filter.add(line, hi, lo)
            const key = `${hi}:${lo}`
            if (first.has(key)) repeats.push(line)
            else first.set(key, line)
          })
          const reported = new Set(filter.lines)
          for (const line of repeats) expect(reported.has(line)).toBe(true)
        }
      ),
      { numRuns: 300 }
    )
  })

  it("rarely reports a line whose digest is new (at most 1 in 10,000 record digests, sized for them)", () => {
    const filter = new RepeatedDigests(200_000, 10_000)
    for (let line = 0; line < 200_000; line++) {
      const { hi, lo } = digestCells(7, [`enr-${line}`, "cls-1", "usr-1", "student"])
      filter.add(line, hi, lo)
    }
    expect(filter.lines?.length ?? -1).toBeLessThanOrEqual(20)
  })

  it("gives up past its cap: the checks then read every row", () => {
    const filter = new RepeatedDigests(10, 3)
    for (let line = 0; line < 5; line++) filter.add(line, 42, 42)
    expect(filter.lines).toBeNull()
  })
})
