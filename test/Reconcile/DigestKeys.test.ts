import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * Distinct keys in the digest store (migrations/0023, src/Reconcile/Findings.ts): once a
 * complete feed is found without a repeated key, a resync looks for repeats only among the
 * keys of the records it decoded, and of the lines that repeat an earlier line word for
 * word (src/Reconcile/RepeatedDigests.ts). Each run below is compared with the same files
 * synced with digests off into a second district: the same findings, the same counts.
 */

const FAST = "keys-fast"
const FULL = "keys-full"

const syncBoth = Effect.gen(function*() {
  const sync = yield* Sync
  const fast = yield* sync.run(FAST, { request: "full", trigger: "test" })
  const full = yield* sync.run(FULL, { request: "full", trigger: "test", digests: false })
  return { fast, full }
})

/** A run's findings, as comparable rows (no ids, no run). */
const findingsOf = (runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly f: string }>`
      SELECT concat_ws('|', severity, code, entity, source_id, file, line, detail) AS f FROM findings
      WHERE run_id = ${runId} AND code <> 'account_review' ORDER BY 1`
    return rows.map((r) => r.f)
  })

const distinct = (kind: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly keysDistinct: boolean }>`
      SELECT keys_distinct AS "keysDistinct" FROM roster_digest_sets WHERE district_id = ${FAST} AND kind = ${kind}`
    return row?.keysDistinct
  })

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("digest store keys", (it) => {
  const district = tempDir()
  writeSmallDistrict(district.dir, "keys.example")
  const enrollments = readRows(district.dir, "enrollments")
  const users = readRows(district.dir, "users")

  /** Syncs the files into both districts; asserts the two runs found and counted the same. */
  const same = Effect.gen(function*() {
    const { fast, full } = yield* syncBoth
    assert.strictEqual(fast.status, full.status)
    assert.deepStrictEqual(fast.counts, full.counts)
    const found = yield* findingsOf(fast.runId)
    assert.deepStrictEqual(found, yield* findingsOf(full.runId))
    return found
  })

  it.effect("a clean complete feed marks its set distinct; a run that decodes nothing keeps the mark", () =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      for (const id of [FAST, FULL]) {
        yield* store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path: district.dir } })
      }
      assert.deepStrictEqual(yield* same, [])
      assert.isTrue(yield* distinct("users"))
      assert.isTrue(yield* distinct("enrollments"))
      yield* same
      assert.isTrue(yield* distinct("enrollments"))
    }))

  it.effect("a line repeated word for word (restored twice from one stored row) is found, in every run", () =>
    Effect.gen(function*() {
      writeCsv(district.dir, "enrollments", [...enrollments, enrollments[2]!])
      for (let run = 0; run < 2; run++) {
        const found = yield* same
        assert.isTrue(found.some((f) => f.startsWith("warning|repeated_record|enrollments|e-3|")), found.join("\n"))
        // The set holds the record once: its rows are still distinct; the scan finds the repeat.
        assert.isTrue(yield* distinct("enrollments"))
      }
    }))

  it.effect("a decoded record repeating a restored record's ID, or its class and user, is found", () =>
    Effect.gen(function*() {
      writeCsv(district.dir, "users", [...users, { ...users[3]!, familyName: "Other" }])
      writeCsv(district.dir, "enrollments", [...enrollments, { ...enrollments[3]!, sourcedId: "e-4b" }])
      const found = yield* same
      assert.isTrue(found.some((f) => f.startsWith("error|duplicate_source_id|users|s-2|")), found.join("\n"))
      assert.isTrue(found.some((f) => f.startsWith("warning|duplicate_enrollment|enrollments|")), found.join("\n"))
      assert.isFalse(yield* distinct("users"))
      assert.isFalse(yield* distinct("enrollments"))
    }))

  it.effect("a decoded enrollment repeating a restored one's ID for another class and user is found", () =>
    Effect.gen(function*() {
      const first = enrollments[3]!
      const enrolled = new Set(enrollments.filter((e) => e["classSourcedId"] === first["classSourcedId"]).map((e) => e["userSourcedId"]))
      const other = users.find((u) => u["role"] === "student" && !enrolled.has(u["sourcedId"]!))!
      writeCsv(district.dir, "users", users)
      writeCsv(district.dir, "enrollments", [...enrollments, { ...first, userSourcedId: other["sourcedId"]! }])
      const found = yield* same
      assert.isTrue(found.some((f) => f.startsWith(`error|duplicate_source_id|enrollments|${first["sourcedId"]}|`)), found.join("\n"))
      assert.isFalse(yield* distinct("enrollments"))
      // Back to the clean files, for the next test.
      writeCsv(district.dir, "enrollments", enrollments)
      yield* same
    }))

  it.effect("the repeats gone, the sets are marked distinct again", () =>
    Effect.gen(function*() {
      writeCsv(district.dir, "users", users)
      writeCsv(district.dir, "enrollments", enrollments)
      assert.deepStrictEqual(yield* same, [])
      assert.isTrue(yield* distinct("users"))
      assert.isTrue(yield* distinct("enrollments"))
    }))
})
