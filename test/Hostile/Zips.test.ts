import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { Readable } from "node:stream"
import * as Zlib from "node:zlib"
import yazl from "yazl"
import { SyncTestLayer } from "../support/Layers.ts"
import { expectRefused, type SyncedSet, syncWith, withSyncedDistrict } from "./CsvHostile.ts"

/**
 * Hostile zips through a real sync: the district reads a zip of the small set, synced once;
 * then the zip is replaced by a hostile one. A zip is judged from its central directory before
 * anything is inflated, and the inflated bytes are counted too (declared sizes can lie).
 */

interface Entry {
  readonly name: string
  readonly data: Buffer | (() => Readable)
  readonly mode?: number
  readonly compress?: boolean
}

/** The set's own files as entries, with `replace` overriding or adding some. */
const setEntries = (set: SyncedSet, replace: ReadonlyArray<Entry> = []): Array<Entry> => {
  const names = new Set(replace.map((e) => e.name))
  return [
    ...Fs.readdirSync(set.dir).filter((name) => !names.has(name)).map((name) => ({ name, data: Fs.readFileSync(NodePath.join(set.dir, name)) })),
    ...replace
  ]
}

/** Writes a zip of `entries` (yazl: the names must be valid; hostile names are patched in afterwards). */
const writeZip = (out: string, entries: ReadonlyArray<Entry>) =>
  Effect.promise(() => {
    const zip = new yazl.ZipFile()
    for (const entry of entries) {
      const options = { mtime: new Date(0), compress: entry.compress ?? true, ...(entry.mode === undefined ? {} : { mode: entry.mode }) }
      if (Buffer.isBuffer(entry.data)) zip.addBuffer(entry.data, entry.name, options)
      else zip.addReadStream(entry.data(), entry.name, options)
    }
    zip.end()
    return new Promise<void>((resolve, reject) => {
      zip.outputStream.pipe(Fs.createWriteStream(out)).on("close", () => resolve()).on("error", reject)
    })
  })

/** Replaces the district's zip (atomically, as a careful uploader would). */
const replaceZip = (set: SyncedSet, entries: ReadonlyArray<Entry>, patch?: (zip: Buffer) => void) =>
  Effect.gen(function*() {
    const next = NodePath.join(set.scratch, "next.zip")
    yield* writeZip(next, entries)
    if (patch !== undefined) {
      const bytes = Fs.readFileSync(next)
      patch(bytes)
      Fs.writeFileSync(next, bytes)
    }
    Fs.renameSync(next, set.path)
  })

const CENTRAL = 0x02014b50
const LOCAL = 0x04034b50

/** Every header (local and central) of the entry named `name`: its kind and where it starts. */
const headersOf = (zip: Buffer, name: string) => {
  const bytes = Buffer.from(name)
  const found: Array<{ readonly kind: "local" | "central"; readonly at: number }> = []
  for (let i = zip.indexOf(bytes); i !== -1; i = zip.indexOf(bytes, i + 1)) {
    if (i >= 46 && zip.readUInt32LE(i - 46) === CENTRAL && zip.readUInt16LE(i - 46 + 28) === bytes.length) found.push({ kind: "central", at: i - 46 })
    else if (i >= 30 && zip.readUInt32LE(i - 30) === LOCAL && zip.readUInt16LE(i - 30 + 26) === bytes.length) found.push({ kind: "local", at: i - 30 })
  }
  return found
}

/** Renames an entry in place (same length): how names yazl refuses get into a zip. */
const renameEntry = (from: string, to: string) => (zip: Buffer) => {
  assert.strictEqual(Buffer.byteLength(from), Buffer.byteLength(to))
  const headers = headersOf(zip, from)
  assert.lengthOf(headers, 2, `one local and one central header for ${from}`)
  for (const header of headers) Buffer.from(to).copy(zip, header.at + (header.kind === "central" ? 46 : 30))
}

/**
 * A zip of stored (uncompressed) entries, written directly: yazl takes most of a minute for
 * 100,000 entries, this a fraction of a second.
 */
const storedZip = (entries: ReadonlyArray<{ readonly name: string; readonly data: Buffer }>): Buffer => {
  const locals: Array<Buffer> = []
  const centrals: Array<Buffer> = []
  let offset = 0
  for (const { data, name } of entries) {
    const nameBytes = Buffer.from(name)
    const crc = Zlib.crc32(data)
    const local = Buffer.alloc(30)
    local.writeUInt32LE(LOCAL, 0)
    local.writeUInt16LE(20, 4)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(data.length, 18)
    local.writeUInt32LE(data.length, 22)
    local.writeUInt16LE(nameBytes.length, 26)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(CENTRAL, 0)
    central.writeUInt16LE(20, 4)
    central.writeUInt16LE(20, 6)
    central.writeUInt32LE(crc, 16)
    central.writeUInt32LE(data.length, 20)
    central.writeUInt32LE(data.length, 24)
    central.writeUInt16LE(nameBytes.length, 28)
    central.writeUInt32LE(offset, 42)
    locals.push(local, nameBytes, data)
    centrals.push(central, nameBytes)
    offset += 30 + nameBytes.length + data.length
  }
  const directory = Buffer.concat(centrals)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(Math.min(entries.length, 0xffff), 8)
  end.writeUInt16LE(Math.min(entries.length, 0xffff), 10)
  end.writeUInt32LE(directory.length, 12)
  end.writeUInt32LE(offset, 16)
  // More than 65,535 entries need the zip64 end records (as any real tool writes them).
  if (entries.length <= 0xffff) return Buffer.concat([...locals, directory, end])
  const end64 = Buffer.alloc(56)
  end64.writeUInt32LE(0x06064b50, 0)
  end64.writeBigUInt64LE(44n, 4)
  end64.writeUInt16LE(45, 12)
  end64.writeUInt16LE(45, 14)
  end64.writeBigUInt64LE(BigInt(entries.length), 24)
  end64.writeBigUInt64LE(BigInt(entries.length), 32)
  end64.writeBigUInt64LE(BigInt(directory.length), 40)
  end64.writeBigUInt64LE(BigInt(offset), 48)
  const locator = Buffer.alloc(20)
  locator.writeUInt32LE(0x07064b50, 0)
  locator.writeBigUInt64LE(BigInt(offset + directory.length), 8)
  locator.writeUInt32LE(1, 16)
  end.writeUInt16LE(0xffff, 8)
  end.writeUInt16LE(0xffff, 10)
  return Buffer.concat([...locals, directory, end64, locator, end])
}

const zeros = (bytes: number) => () => {
  const chunk = Buffer.alloc(1 << 20)
  let left = bytes
  return new Readable({
    read() {
      if (left <= 0) return this.push(null)
      const n = Math.min(left, chunk.length)
      left -= n
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n))
    }
  })
}

layer(SyncTestLayer, { timeout: "300 seconds", excludeTestServices: true })("hostile: zips", (it) => {
  it.effect("a zip bomb (users.csv: 200 MB of zeros deflated to 200 KB) → TooLarge from the central directory, nothing inflated", () =>
    withSyncedDistrict("bomb", (set) =>
      Effect.gen(function*() {
        yield* replaceZip(set, setEntries(set, [{ name: "users.csv", data: zeros(200 * 1024 * 1024) }]))
        assert.isBelow(Fs.statSync(set.path).size, 2 * 1024 * 1024)
        yield* expectRefused(set, { reason: "TooLarge", names: [/compression ratio of \d+:1/, "rosterd.csv.zip.maxRatio", `"users.csv"`], memoryMiB: 64 })
      }), { zip: true }))

  it.effect("a zip whose central directory understates an entry (declares 1,000 bytes, inflates to 50 MB) → Malformed at the first byte past it", () =>
    withSyncedDistrict("liar", (set) =>
      Effect.gen(function*() {
        const real = Fs.readFileSync(NodePath.join(set.dir, "users.csv"))
        const padded = Buffer.concat([real, Buffer.alloc(50 * 1024 * 1024 - real.length, 0x20)])
        yield* replaceZip(set, setEntries(set, [{ name: "users.csv", data: padded }]), (zip) => {
          for (const header of headersOf(zip, "users.csv")) {
            if (header.kind === "central") zip.writeUInt32LE(1000, header.at + 24)
          }
        })
        yield* expectRefused(set, { reason: "Malformed", names: ["users.csv", "does not inflate to the size it declares"], memoryMiB: 96 })
      }), { zip: true }))

  it.effect("a zip of 100,000 entries → TooLarge from the entry count, before the directory is read", () =>
    withSyncedDistrict("many", (set) =>
      Effect.gen(function*() {
        const empty = Buffer.alloc(0)
        const files = setEntries(set).map((e) => ({ name: e.name, data: e.data as Buffer }))
        const junk = Array.from({ length: 100_000 - files.length }, (_, i) => ({ name: `junk/${i}.txt`, data: empty }))
        const next = NodePath.join(set.scratch, "next.zip")
        Fs.writeFileSync(next, storedZip([...files, ...junk]))
        Fs.renameSync(next, set.path)
        yield* expectRefused(set, { reason: "TooLarge", names: ["100000 entries", "more than 10000", "rosterd.csv.zip.maxEntries"] })
      }), { zip: true }))

  it.effect("an entry named ../users.csv → Unsafe (a path outside the zip), refused before anything is read", () =>
    withSyncedDistrict("dotdot", (set) =>
      Effect.gen(function*() {
        const extra = Fs.readFileSync(NodePath.join(set.dir, "users.csv"))
        yield* replaceZip(set, setEntries(set, [{ name: "xx/users.csv", data: extra }]), renameEntry("xx/users.csv", "../users.csv"))
        yield* expectRefused(set, { reason: "Unsafe", names: [`"../users.csv"`, "outside the zip"] })
      }), { zip: true }))

  it.effect("an entry with an absolute path (/etc/cron.d/x) → Unsafe (a path outside the zip)", () =>
    withSyncedDistrict("absolute", (set) =>
      Effect.gen(function*() {
        yield* replaceZip(set, setEntries(set, [{ name: "xetc/cron.d/x", data: Buffer.from("* * * * * root true\n") }]), renameEntry("xetc/cron.d/x", "/etc/cron.d/x"))
        yield* expectRefused(set, { reason: "Unsafe", names: [`"/etc/cron.d/x"`, "an absolute path"] })
      }), { zip: true }))

  it.effect("an entry name with a terminal escape and a NUL → Unsafe, the name not echoed", () =>
    withSyncedDistrict("ctrlname", (set) =>
      Effect.gen(function*() {
        yield* replaceZip(set, setEntries(set, [{ name: "ab[31mCANARYNAME", data: Buffer.from("x") }]), renameEntry("ab[31mCANARYNAME", "\x1b\x00[31mCANARYNAME"))
        yield* expectRefused(set, { reason: "Unsafe", names: [/entry \d+ has an empty name or control characters/], leaks: ["CANARYNAME", "\x1b"] })
      }), { zip: true }))

  it.effect("users.csv as a symbolic-link entry (to /etc/passwd) → Unsafe, the link not followed", () =>
    withSyncedDistrict("ziplink", (set) =>
      Effect.gen(function*() {
        yield* replaceZip(set, setEntries(set, [{ name: "users.csv", data: Buffer.from("/etc/passwd"), mode: 0o120777 }]))
        yield* expectRefused(set, { reason: "Unsafe", names: [`"users.csv" is a symbolic link`], leaks: ["root:x:0"] })
      }), { zip: true }))

  it.effect("users.csv listed twice → Unsafe (which one is the set's cannot be told)", () =>
    withSyncedDistrict("twice", (set) =>
      Effect.gen(function*() {
        const users = Fs.readFileSync(NodePath.join(set.dir, "users.csv"))
        yield* replaceZip(set, [...setEntries(set), { name: "users.csv", data: users }])
        yield* expectRefused(set, { reason: "Unsafe", names: [`"users.csv" is listed twice`] })
      }), { zip: true }))

  it.effect("a zip inside the zip → Unsupported (one level is read)", () =>
    withSyncedDistrict("nested", (set) =>
      Effect.gen(function*() {
        yield* replaceZip(set, setEntries(set, [{ name: "more/inner.zip", data: Fs.readFileSync(set.path) }]))
        yield* expectRefused(set, { reason: "Unsupported", names: [`"more/inner.zip" is a zip inside the zip`] })
      }), { zip: true }))

  it.effect("an encrypted users.csv entry → Unsupported (encrypted), not inflated", () =>
    withSyncedDistrict("encrypted", (set) =>
      Effect.gen(function*() {
        yield* replaceZip(set, setEntries(set), (zip) => {
          for (const header of headersOf(zip, "users.csv")) {
            const flags = header.at + (header.kind === "central" ? 8 : 6)
            zip.writeUInt16LE(zip.readUInt16LE(flags) | 0x1, flags)
          }
        })
        yield* expectRefused(set, { reason: "Unsupported", names: [`"users.csv" is encrypted`] })
      }), { zip: true }))

  it.effect("a truncated zip (the upload cut at 60 %) → Malformed: not a readable zip", () =>
    withSyncedDistrict("truncated", (set) =>
      Effect.gen(function*() {
        const whole = Fs.readFileSync(set.path)
        Fs.writeFileSync(set.path, whole.subarray(0, Math.floor(whole.length * 0.6)))
        yield* expectRefused(set, { reason: "Malformed", names: ["neither a folder nor a readable zip"] })
      }), { zip: true }))

  it.effect("a zip whose entries inflate past rosterd.csv.zip.maxTotalBytes in all → TooLarge from the declared sizes", () =>
    withSyncedDistrict("total", (set) =>
      Effect.gen(function*() {
        // 40 MB of ordinary-looking rows in a file the set does not read: every entry counts.
        const row = Buffer.from("note,a line of an export that compresses like real text 0123456789\n")
        const big = Buffer.concat(Array.from({ length: Math.ceil((40 * 1024 * 1024) / row.length) }, (_, i) => (i % 7 === 0 ? Buffer.from(`${i},${row}`) : row)))
        yield* replaceZip(set, setEntries(set, [{ name: "notes/extra.csv", data: big }]))
        const small = syncWith({ "rosterd.csv.settleSeconds": "0", "rosterd.csv.zip.maxTotalBytes": "32 MiB", "rosterd.csv.zip.maxRatio": "100000" })
        yield* expectRefused(set, { reason: "TooLarge", names: ["more than 32 MiB in all", "rosterd.csv.zip.maxTotalBytes"] }, small)
      }), { zip: true }))
})
