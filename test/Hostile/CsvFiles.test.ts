import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { HEADERS } from "../../bench/OneRosterGenerator.ts"
import { readRows, writeCsv } from "../support/Fixtures.ts"
import { assertBoundedMemory, assertNoLeak, assertNothingApplied, runRecordText, withPeakMemory } from "../support/Hostile.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { expectRefused, personal, syncNow, syncWith, withSyncedDistrict, writeStreamed } from "./CsvHostile.ts"

/**
 * Hostile CSV files through a real sync (README "Hostile-input suite"). Each case starts from
 * a district synced once from the small fixture, breaks one file, and checks: bounded memory,
 * nothing applied, the error names the file (and line) and the setting, and no personal value
 * or hostile content in the run record or the logs.
 */

const MiB = 1024 * 1024
const users = (dir: string) => NodePath.join(dir, "users.csv")
const usersHeader = HEADERS.users.join(",")
/** The small district's users.csv rows, as the fixture wrote them (line 2 onwards). */
const userLines = (dir: string) => Fs.readFileSync(users(dir), "utf8").trimEnd().split("\n").slice(1)

/** A deterministic byte generator (xorshift), for "random" garbage that fails the same way every run. */
const garbage = (length: number, seed = 0x9e3779b9) => {
  const out = Buffer.alloc(length)
  let x = seed
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

layer(SyncTestLayer, { timeout: "300 seconds", excludeTestServices: true })("hostile: CSV files", (it) => {
  it.effect("users.csv with a line of 10⁸ commas (100 MB, streamed to disk) → TooLarge at that line, read no further", () =>
    withSyncedDistrict("commas", (set) =>
      Effect.gen(function*() {
        const lines = userLines(set.dir)
        writeStreamed(users(set.dir), `${usersHeader}\n${lines.join("\n")}\n`, Buffer.alloc(MiB, ","), 96, "\n")
        assert.isAbove(Fs.statSync(users(set.dir)).size, 100_000_000)
        yield* expectRefused(set, { reason: "TooLarge", names: ["users.csv line 7", "rosterd.csv.maxRecordBytes", "1 MiB"], memoryMiB: 128 })
      })))

  it.effect("a cell of 10⁷ characters on one line → TooLarge at its line, the cell not echoed", () =>
    withSyncedDistrict("bigcell", (set) =>
      Effect.gen(function*() {
        const lines = userLines(set.dir)
        const cell = "CANARYCELL".repeat(1_000_000)
        Fs.writeFileSync(users(set.dir), `${usersHeader}\n${lines[0]}\ns-9,,,true,org-s1,student,,,${cell},Nine\n${lines.slice(1).join("\n")}\n`)
        yield* expectRefused(set, { reason: "TooLarge", names: ["users.csv line 3", "rosterd.csv.maxRecordBytes"], leaks: ["CANARYCELL"] })
      })))

  it.effect("a quoted cell of 10⁷ characters over 10⁵ lines → TooLarge (a record past the cap), the cell not echoed", () =>
    withSyncedDistrict("bigquoted", (set) =>
      Effect.gen(function*() {
        const lines = userLines(set.dir)
        const cell = `${"CANARYLINE".repeat(10)}\n`.repeat(100_000)
        Fs.writeFileSync(users(set.dir), `${usersHeader}\n${lines.join("\n")}\ns-9,,,true,org-s1,student,,,"${cell}",Nine\n`)
        yield* expectRefused(set, { reason: "TooLarge", names: [/^users\.csv line \d+: a record longer than 1 MiB/, "rosterd.csv.maxRecordBytes"], leaks: ["CANARYLINE"] })
      })))

  it.effect("a header of 10⁵ columns → TooLarge (rosterd.csv.maxColumns) at line 1", () =>
    withSyncedDistrict("widehead", (set) =>
      Effect.gen(function*() {
        const extra = Array.from({ length: 100_000 - HEADERS.users.length }, (_, i) => `x${i}`)
        Fs.writeFileSync(users(set.dir), `${[...HEADERS.users, ...extra].join(",")}\n${userLines(set.dir).join("\n")}\n`)
        yield* expectRefused(set, { reason: "TooLarge", names: ["users.csv line 1", "100000 columns", "rosterd.csv.maxColumns"] })
      })))

  it.effect("a row of 10⁵ fields under a normal header → Malformed at its line (broken quoting), not 10⁵ findings", () =>
    withSyncedDistrict("widerow", (set) =>
      Effect.gen(function*() {
        const lines = userLines(set.dir)
        Fs.writeFileSync(users(set.dir), `${usersHeader}\n${lines[0]}\n${lines[1]}${",CANARY".repeat(100_000)}\n${lines.slice(2).join("\n")}\n`)
        yield* expectRefused(set, { reason: "Malformed", names: ["users.csv line 3", "100018 fields", "the header 18"], leaks: ["CANARY"] })
      })))

  it.effect("an unterminated quote at the end of the file → Malformed, the open cell not echoed", () =>
    withSyncedDistrict("unclosed", (set) =>
      Effect.gen(function*() {
        Fs.writeFileSync(users(set.dir), `${usersHeader}\n${userLines(set.dir).join("\n")}\ns-9,,,true,org-s1,student,,,"Zelda Unclosed,Nine\n`)
        yield* expectRefused(set, { reason: "Malformed", names: ["users.csv", "never closed"], leaks: ["Zelda", "Unclosed"] })
      })))

  it.effect("binary garbage (64 KiB of random bytes) as users.csv → refused as not a UTF-8 text file, naming line 1", () =>
    withSyncedDistrict("garbage", (set) =>
      Effect.gen(function*() {
        Fs.writeFileSync(users(set.dir), garbage(64 * 1024))
        yield* expectRefused(set, { reason: "Unsupported", names: ["users.csv line 1", "NUL bytes in the header line", "UTF-8"] })
      })))

  it.effect("users.csv saved as UTF-16 LE with a byte-order mark → Unsupported, naming UTF-16", () =>
    withSyncedDistrict("utf16", (set) =>
      Effect.gen(function*() {
        const text = `${usersHeader}\n${userLines(set.dir).join("\n")}\n`
        Fs.writeFileSync(users(set.dir), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]))
        yield* expectRefused(set, { reason: "Unsupported", names: ["users.csv line 1", "UTF-16", "UTF-8"] })
      })))

  it.effect("UTF-16 without a byte-order mark (NUL bytes in the header line) → Unsupported at line 1", () =>
    withSyncedDistrict("utf16nobom", (set) =>
      Effect.gen(function*() {
        Fs.writeFileSync(users(set.dir), Buffer.from(`${usersHeader}\n${userLines(set.dir).join("\n")}\n`, "utf16le"))
        yield* expectRefused(set, { reason: "Unsupported", names: ["users.csv line 1", "NUL bytes", "UTF-16"] })
      })))

  it.effect("invalid UTF-8 (a Latin-1 é in a given name at line 4) → Malformed at line 4, the name not echoed", () =>
    withSyncedDistrict("latin1", (set) =>
      Effect.gen(function*() {
        const lines = userLines(set.dir)
        const row = Buffer.concat([Buffer.from("s-9,,,true,org-s1,student,,,Z"), Buffer.from([0xe9]), Buffer.from("phyrine,Nine,,,,,,,07,\n")])
        Fs.writeFileSync(users(set.dir), Buffer.concat([Buffer.from(`${usersHeader}\n${lines[0]}\n${lines[1]}\n`), row, Buffer.from(`${lines.slice(2).join("\n")}\n`)]))
        yield* expectRefused(set, { reason: "Malformed", names: ["users.csv line 4", "not valid UTF-8"], leaks: ["phyrine"] })
      })))

  it.effect("a byte-order mark in the middle (two files joined) → Malformed at the joined line", () =>
    withSyncedDistrict("midbom", (set) =>
      Effect.gen(function*() {
        const lines = userLines(set.dir)
        Fs.writeFileSync(users(set.dir), `\ufeff${usersHeader}\n${lines.slice(0, 2).join("\n")}\n\ufeff${usersHeader}\n${lines.slice(2).join("\n")}\n`)
        yield* expectRefused(set, { reason: "Malformed", names: ["users.csv line 4", "byte-order mark", "joined"] })
      })))

  it.effect("a run of 4 KiB of NUL bytes between two rows (a crashed write) → one finding at its line; the other rows unchanged", () =>
    withSyncedDistrict("nulrun", (set) =>
      Effect.gen(function*() {
        const lines = userLines(set.dir)
        Fs.writeFileSync(
          users(set.dir),
          Buffer.concat([Buffer.from(`${usersHeader}\n${lines.slice(0, 2).join("\n")}\n`), Buffer.alloc(4096, 0), Buffer.from(`\n${lines.slice(2).join("\n")}\n`)])
        )
        const { exit, grewMiB } = yield* withPeakMemory(assertNothingApplied(syncNow(set.id)))
        assertBoundedMemory(grewMiB)
        assert.strictEqual(exit._tag, "Success")
        const inner = exit._tag === "Success" ? exit.value : undefined
        assert.strictEqual(inner?._tag, "Success", "a bad row is a finding, not a failed run")
        const summary = inner?._tag === "Success" ? inner.value : undefined
        assert.strictEqual(summary?.status, "succeeded")
        assert.strictEqual(summary?.findings, 1)
        const record = yield* runRecordText(summary!.runId)
        assert.deepStrictEqual(record.findings.map((f) => [f.file, f.line]), [["users.csv", 4]])
        assert.notInclude(record.text, "\\u0000")
        assertNoLeak(record.text, personal(set.domain), "the run record")
      })))

  it.effect("CRLF and LF line ends mixed in one file → every line its own record: the same roster, nothing changes", () =>
    withSyncedDistrict("mixedeol", (set) =>
      Effect.gen(function*() {
        const lines = [usersHeader, ...userLines(set.dir)]
        Fs.writeFileSync(users(set.dir), lines.map((line, i) => line + (i % 2 === 0 ? "\r\n" : "\n")).join(""))
        const { exit, grewMiB } = yield* withPeakMemory(assertNothingApplied(syncNow(set.id)))
        assertBoundedMemory(grewMiB)
        const inner = exit._tag === "Success" ? exit.value : undefined
        const summary = inner?._tag === "Success" ? inner.value : undefined
        assert.strictEqual(summary?.status, "succeeded")
        assert.strictEqual(summary?.findings, 0)
        assert.deepStrictEqual(summary?.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
      })))

  it.effect("users.csv with only its header → read as empty; the safety gate holds every deactivation (nothing deactivated)", () =>
    withSyncedDistrict("headeronly", (set) =>
      Effect.gen(function*() {
        writeCsv(set.dir, "users", [])
        const { exit, grewMiB } = yield* withPeakMemory(assertNothingApplied(syncNow(set.id)))
        assertBoundedMemory(grewMiB)
        const inner = exit._tag === "Success" ? exit.value : undefined
        const summary = inner?._tag === "Success" ? inner.value : undefined
        assert.strictEqual(summary?.status, "held")
        assert.strictEqual(summary?.counts.users.deactivated, 0)
        assert.strictEqual(summary?.held?.counts.users?.deactivated, 5)
      })))

  it.effect("a header naming givenName twice → BadHeader naming the column and both fields", () =>
    withSyncedDistrict("duphead", (set) =>
      Effect.gen(function*() {
        const header = [...HEADERS.users, "givenName"]
        writeCsv(set.dir, "users", readRows(set.dir, "users").map((row) => ({ ...row, givenName: row.givenName! })), header)
        yield* expectRefused(set, { reason: "BadHeader", names: ["users.csv line 1", `"givenName" twice`, "fields 9 and 19"] })
      })))

  it.effect("users.csv that is a zip archive → Unsupported (an archive is not read as CSV)", () =>
    withSyncedDistrict("zipascsv", (set) =>
      Effect.gen(function*() {
        Fs.writeFileSync(users(set.dir), Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), garbage(2048)]))
        yield* expectRefused(set, { reason: "Unsupported", names: ["users.csv", "a zip archive"] })
      })))

  it.effect("a manifest of 100 MB → TooLarge before a byte of it is parsed", () =>
    withSyncedDistrict("bigmanifest", (set) =>
      Effect.gen(function*() {
        const manifest = NodePath.join(set.dir, "manifest.csv")
        const head = Fs.readFileSync(manifest, "utf8")
        writeStreamed(manifest, head, Buffer.from("source.note,CANARYNOTE\n".repeat(45_000)), 100)
        assert.isAbove(Fs.statSync(manifest).size, 100_000_000)
        yield* expectRefused(set, { reason: "TooLarge", names: ["manifest.csv", "larger than 1 MiB", "rosterd.csv.maxManifestBytes"], leaks: ["CANARYNOTE"], memoryMiB: 64 })
      })))

  it.effect("a manifest listing file.users twice (bulk, then absent) → Malformed naming both lines", () =>
    withSyncedDistrict("dupmanifest", (set) =>
      Effect.gen(function*() {
        Fs.appendFileSync(NodePath.join(set.dir, "manifest.csv"), "file.users,absent\n")
        yield* expectRefused(set, { reason: "Malformed", names: ["manifest.csv line 19", "file.users is listed twice", "lines 16 and 19"] })
      })))

  it.effect("a manifest line of 10⁵ characters → TooLarge (not a manifest), the line not echoed", () =>
    withSyncedDistrict("longmanifest", (set) =>
      Effect.gen(function*() {
        Fs.appendFileSync(NodePath.join(set.dir, "manifest.csv"), `source.note,${"CANARYLONG".repeat(10_000)}\n`)
        yield* expectRefused(set, { reason: "TooLarge", names: ["manifest.csv line 19", "longer than 4 KiB", "a manifest line"], leaks: ["CANARYLONG"] })
      })))

  it.effect("a manifest whose oneroster.version is 2,000 characters with terminal escapes → Unsupported, the value not echoed", () =>
    withSyncedDistrict("badversion", (set) =>
      Effect.gen(function*() {
        const manifest = NodePath.join(set.dir, "manifest.csv")
        const version = "\x1b[31mCANARYVER".repeat(140)
        Fs.writeFileSync(manifest, Fs.readFileSync(manifest, "utf8").replace("oneroster.version,1.1", `oneroster.version,"${version}"`))
        yield* expectRefused(set, { reason: "Unsupported", names: ["manifest.csv", "not a version number"], leaks: ["CANARYVER", "\x1b"] })
      })))

  it.effect("users.csv larger than rosterd.csv.maxFileBytes → TooLarge from its size, before it is read", () =>
    withSyncedDistrict("bigfile", (set) =>
      Effect.gen(function*() {
        const small = syncWith({ "rosterd.csv.settleSeconds": "0", "rosterd.csv.maxFileBytes": "1 KiB" })
        const lines = userLines(set.dir)
        Fs.writeFileSync(users(set.dir), `${usersHeader}\n${[...lines, ...lines.map((l) => l.replace(/^s-/, "x-"))].join("\n")}\n${"#".repeat(600)}\n`)
        yield* expectRefused(set, { reason: "TooLarge", names: ["users.csv", "larger than 1 KiB", "rosterd.csv.maxFileBytes"] }, small)
      })))
})
