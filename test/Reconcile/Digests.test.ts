import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import { CSV_MAPPING_VERSION } from "../../src/Providers/OneRosterCsv/Files.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { EntityKinds } from "../../src/Domain/Roster.ts"
import { stageTable } from "../../src/Reconcile/Entities.ts"
import { cachedColumns, stagingDdl } from "../../src/Reconcile/Staging.ts"
import { DIGEST_TABLES, digestTable } from "../../src/Store/DigestTables.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * Record digests (src/Reconcile/Digests.ts): an unchanged record's staging row comes from
 * the store, and every reason not to trust the store makes a full comparison.
 *
 * To see which path a run took, the tests tamper with a stored staging row (a given name
 * `Sam` becomes `Zed`): a run that restores from the store applies `Zed`, a run that
 * decodes the file applies `Sam`. No real run ever sees such a row; it stands for "this
 * record was not decoded".
 */

const DISTRICT = "digests"

const syncNow = (options: { readonly digests?: boolean } = {}) =>
  Effect.flatMap(Sync, (sync) => sync.run(DISTRICT, { request: "auto", trigger: "test", ...options }))

const givenName = (sourceId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly givenName: string }>`
      SELECT given_name FROM users WHERE district_id = ${DISTRICT} AND source_id = ${sourceId}`
    return row?.givenName
  })

/**
 * Makes the next run compare: a run that reads what the last applied run read skips the
 * comparison altogether (src/Reconcile/Unchanged.ts), and would never look at the store.
 */
const forgetMark = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DELETE FROM roster_applied WHERE district_id = ${DISTRICT}`)

/** Changes the stored staging row of the user named `from` (see above), for a run that compares. */
const tamper = (from: string, to: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* forgetMark
    const rows = yield* sql`
      UPDATE roster_digests_users SET given_name = ${to}
      WHERE set_id = (SELECT id FROM roster_digest_sets WHERE district_id = ${DISTRICT} AND kind = 'users')
        AND given_name = ${from} RETURNING 1`
    assert.strictEqual(rows.length, 1)
  })

const digestSet = (kind: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly entries: string; readonly version: string; readonly stored: string }>`
      SELECT s.entries::text, s.version,
             (SELECT count(*) FROM ${sql(`roster_digests_${kind}`)} d WHERE d.set_id = s.id)::text AS stored
      FROM roster_digest_sets s WHERE s.district_id = ${DISTRICT} AND s.kind = ${kind}`
    return row
  })

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("record digests", (it) => {
  const district = tempDir()
  writeSmallDistrict(district.dir)

  it.effect("each kind's digest table holds the staging table's columns but its line, type for type (else: a migration)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const columnsOf = (table: string) =>
        Effect.map(sql<{ readonly name: string; readonly type: string }>`
          SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
          WHERE a.attrelid = to_regclass(${table}) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, (rows) => rows.map((r) => `${r.name} ${r.type}`))
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe(stagingDdl())
        for (const kind of EntityKinds) {
          const staged = yield* columnsOf(`pg_temp.${stageTable(kind)}`)
          const expected = cachedColumns(kind).map((name) => staged.find((c) => c.startsWith(`${name} `))!)
          assert.deepStrictEqual(yield* columnsOf(digestTable(kind)), ["set_id integer", "digest bytea", ...expected], kind)
        }
      }))
    }))

  it.effect("a first sync stores a digest per record; a no-op resync restores every staging row from the store", () =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      yield* store.addDistrict({
        id: DISTRICT as DistrictId,
        name: DISTRICT,
        provider: "oneroster-csv",
        timezone: "America/Chicago",
        settings: { path: district.dir }
      })
      const first = yield* syncNow()
      assert.strictEqual(first.status, "succeeded")
      // A first run has nothing to compare with: no note.
      assert.deepStrictEqual(first.notes, [])
      assert.deepStrictEqual(yield* digestSet("users"), { entries: "5", version: (yield* digestSet("users"))!.version, stored: "5" })
      assert.deepStrictEqual((yield* digestSet("enrollments"))?.stored, "5")

      yield* tamper("Sam", "Zed")
      const second = yield* syncNow()
      assert.deepStrictEqual(second.notes, [])
      assert.deepStrictEqual(second.counts.users, { created: 0, updated: 1, deactivated: 0, unchanged: 4 })
      assert.strictEqual(yield* givenName("s-1"), "Zed")
    }))

  it.effect("a changed record is decoded: its new digest is stored, the old one dropped (bulk feed)", () =>
    Effect.gen(function*() {
      const users = readRows(district.dir, "users").map((u) => u.sourcedId === "s-1" ? { ...u, givenName: "Samuel" } : u)
      writeCsv(district.dir, "users", users)
      const summary = yield* syncNow()
      assert.strictEqual(yield* givenName("s-1"), "Samuel")
      assert.deepStrictEqual(summary.counts.users, { created: 0, updated: 1, deactivated: 0, unchanged: 4 })
      const set = yield* digestSet("users")
      assert.strictEqual(set?.entries, "5")
      assert.strictEqual(set?.stored, "5")
    }))

  it.effect("a change of the district's rules compares in full, with a note", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* tamper("Samuel", "Zed")
      yield* sql`UPDATE districts SET rules = '{"coTeacherLimit": 8}'::jsonb WHERE id = ${DISTRICT}`
      const summary = yield* syncNow()
      assert.strictEqual(yield* givenName("s-1"), "Samuel")
      assert.deepStrictEqual(summary.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
      assert.strictEqual(summary.notes.length, 1)
      assert.match(summary.notes[0]!, /^compared in full \(orgs, terms, courses, classes, users, demographics, enrollments\): the digests were made under another mapping, staging or rules version \(or discarded\)$/)
      // Rewritten under the new version: the next run restores again.
      yield* tamper("Samuel", "Zed")
      yield* syncNow()
      assert.strictEqual(yield* givenName("s-1"), "Zed")
    }))

  it.effect("digests made by another version of the provider's mapping are not used", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // What a bumped CSV_MAPPING_VERSION looks like from the store: its sets name another version.
      yield* sql`UPDATE roster_digest_sets SET version = replace(version, ${CSV_MAPPING_VERSION}, ${`${CSV_MAPPING_VERSION}-before`})
                 WHERE district_id = ${DISTRICT}`
      const summary = yield* syncNow()
      assert.strictEqual(yield* givenName("s-1"), "Samuel")
      assert.match(summary.notes.join("; "), /another mapping, staging or rules version/)
    }))

  it.effect("missing digests (an unlogged table emptied by a crash) compare in full, with a note", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* tamper("Samuel", "Zed")
      for (const table of DIGEST_TABLES) {
        yield* sql`DELETE FROM ${sql(table)} WHERE set_id IN (SELECT id FROM roster_digest_sets WHERE district_id = ${DISTRICT})`
      }
      yield* sql`DELETE FROM roster_digest_sets WHERE district_id = ${DISTRICT}`
      const summary = yield* syncNow()
      assert.strictEqual(yield* givenName("s-1"), "Samuel")
      assert.match(summary.notes.join("; "), /compared in full \(.*users.*\): no digests stored/)
      assert.strictEqual((yield* digestSet("users"))?.stored, "5")
    }))

  it.effect("a digest missing from the store only means its record is decoded again: no note, the rest restored", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* tamper("Samuel", "Zed")
      yield* sql`DELETE FROM roster_digests_users
                 WHERE set_id = (SELECT id FROM roster_digest_sets WHERE district_id = ${DISTRICT} AND kind = 'users')
                   AND given_name = 'Theo'`
      const summary = yield* syncNow()
      assert.deepStrictEqual(summary.notes, [])
      // Samuel's stored row was used (Zed); Theo's record was decoded and stored again.
      assert.strictEqual(yield* givenName("s-1"), "Zed")
      assert.deepStrictEqual(summary.counts.users, { created: 0, updated: 1, deactivated: 0, unchanged: 4 })
      // (`entries` counts rosterd's own writes: the row deleted here behind its back is not subtracted.)
      assert.strictEqual((yield* digestSet("users"))?.stored, "5")
      // Back to what the file says, for the tests below.
      yield* sql`UPDATE roster_digests_users SET given_name = 'Samuel'
                 WHERE set_id = (SELECT id FROM roster_digest_sets WHERE district_id = ${DISTRICT} AND kind = 'users')
                   AND given_name = 'Zed'`
      yield* forgetMark
      yield* syncNow()
      assert.strictEqual(yield* givenName("s-1"), "Samuel")
    }))

  it.effect("a stored staging row the staging table refuses fails the run without its values, and the next run compares in full", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* forgetMark
      // (`invalid` is NOT NULL in the staging table: Postgres's refusal would name the row's values.)
      yield* sql`UPDATE roster_digests_users SET invalid = NULL
                 WHERE set_id = (SELECT id FROM roster_digest_sets WHERE district_id = ${DISTRICT} AND kind = 'users')
                   AND given_name = 'Samuel'`
      const failed = yield* Effect.exit(syncNow())
      assert.strictEqual(failed._tag, "Failure")
      const [run] = yield* sql<{ readonly status: string; readonly error: string }>`
        SELECT status, error FROM sync_runs WHERE district_id = ${DISTRICT} ORDER BY id DESC LIMIT 1`
      assert.strictEqual(run?.status, "failed")
      assert.match(run!.error, /the stored digests of users did not restore/)
      assert.notMatch(run!.error, /Samuel|small\.example/)
      const next = yield* syncNow()
      assert.strictEqual(next.status, "succeeded")
      assert.strictEqual(yield* givenName("s-1"), "Samuel")
      assert.deepStrictEqual(next.notes, ["compared in full (users): the digests were made under another mapping, staging or rules version (or discarded)"])
    }))

  it.effect("with digests off every record is decoded, and the store is neither read nor written", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* tamper("Samuel", "Zed")
      const [before] = yield* sql<{ readonly at: string }>`
        SELECT max(updated_at)::text AS at FROM roster_digest_sets WHERE district_id = ${DISTRICT}`
      const summary = yield* syncNow({ digests: false })
      assert.deepStrictEqual(summary.notes, [])
      assert.strictEqual(yield* givenName("s-1"), "Samuel")
      const [after] = yield* sql<{ readonly at: string }>`
        SELECT max(updated_at)::text AS at FROM roster_digest_sets WHERE district_id = ${DISTRICT}`
      assert.strictEqual(after?.at, before?.at)
      // The tampered row is still there: the next run with digests restores it.
      yield* syncNow()
      assert.strictEqual(yield* givenName("s-1"), "Zed")
    }))

  it.effect("a resync reads every header and every record csv-parse must refuse, though nothing else is parsed", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const path = NodePath.join(district.dir, "users.csv")
      const original = Fs.readFileSync(path, "utf8")
      const lastRun = Effect.map(
        sql<{ readonly status: string; readonly error: string | null }>`
          SELECT status, error FROM sync_runs WHERE district_id = ${DISTRICT} ORDER BY id DESC LIMIT 1`,
        ([row]) => row!
      )
      // A header naming a column twice: the scan checks the header as a full read does.
      const [header, ...rest] = original.split("\n")
      Fs.writeFileSync(path, [`${header},sourcedId`, ...rest.map((line) => (line === "" ? line : `${line},x`))].join("\n"))
      yield* Effect.exit(syncNow())
      assert.strictEqual((yield* lastRun).status, "failed")
      assert.match((yield* lastRun).error ?? "", /names the column "sourcedId" twice/)
      // A quote never closed after known records: that record is read, and csv-parse refuses it.
      Fs.writeFileSync(path, `${original}s-9,"never closed\n`)
      yield* Effect.exit(syncNow())
      assert.strictEqual((yield* lastRun).status, "failed")
      assert.match((yield* lastRun).error ?? "", /users\.csv/)
      // The file as it was: known again, nothing changed.
      Fs.writeFileSync(path, original)
      const back = yield* syncNow()
      assert.strictEqual(back.status, "succeeded")
      assert.deepStrictEqual(back.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
    }))
})
