import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { HEADERS, writeManifest } from "../../bench/OneRosterGenerator.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import type { ProviderFailure } from "../../src/Domain/Errors.ts"
import { ProviderError } from "../../src/Domain/Errors.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { rosterFingerprint } from "../support/Database.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * Bad input through a real sync. A set that cannot be read as a whole fails the run before
 * anything is applied: the store stays exactly as the last good sync left it, and the run
 * is recorded as failed with a one-line reason naming the file. Problems of single rows do
 * not fail the run: they become findings, and the stored records they concern are held.
 */

const addCsvDistrict = (id: string, path: string) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path } }))

const syncNow = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "auto", trigger: "test" }))

/** The personal values of the small district (and of the rows the tests add): never in a finding or an error. */
const PERSONAL = [
  "Tess",
  "Theo",
  "Sam",
  "Sia",
  "Sol",
  "tess@small.example",
  "theo@small.example",
  "sam@small.example",
  "sia@small.example",
  "sol@small.example",
  "2014-03-01",
  "2013-11-20",
  "2014-07-09",
  "2014-02-30",
  "Zelda",
  "zelda@dup.example"
]

const assertNoPersonalValues = (text: string, what: string) => {
  for (const value of PERSONAL) assert.notInclude(text, value, `${what} carries a personal value`)
  assert.notMatch(text, /@[a-z0-9.-]+\.example/, `${what} carries an e-mail address`)
}

interface FindingRow {
  readonly severity: string
  readonly code: string
  readonly entity: string | null
  readonly sourceId: string | null
  readonly file: string | null
  readonly line: number | null
  readonly detail: string
}

const findingsOf = (runId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<FindingRow>`SELECT severity, code, entity, source_id, file, line, detail FROM findings
                    WHERE run_id = ${runId} ORDER BY code, entity, line, source_id`)

/** A user's row as stored, with its physical version: equal before and after means not written at all. */
const storedUser = (district: string, sourceId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly version: string; readonly active: boolean; readonly givenName: string; readonly birthDate: string | null }>`
      SELECT ctid::text || ':' || xmin::text AS version, active, given_name, birth_date
      FROM users WHERE district_id = ${district} AND source_id = ${sourceId}`.pipe(
      Effect.map((rows) => rows[0]!)
    ))

/**
 * A district synced once from the small fixture, in a folder of its own (removed after
 * `use`): the state every test starts from.
 */
const withSyncedDistrict = <A, E, R>(id: string, use: (dir: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => tempDir(`rosterd-bad-${id}-`)),
    (tmp) =>
      Effect.gen(function*() {
        writeSmallDistrict(tmp.dir, `${id}.example`)
        yield* addCsvDistrict(id, tmp.dir)
        const first = yield* syncNow(id)
        assert.strictEqual(first.status, "succeeded")
        assert.strictEqual(first.findings, 0)
        return yield* use(tmp.dir)
      }),
    (tmp) => Effect.sync(() => tmp.remove())
  )

/**
 * Breaks the synced set with `breakIt`, syncs, and checks the run failed with a
 * ProviderError of `reason` naming `file`, wrote nothing, and is recorded as failed with a
 * one-line error. Then repairs the set and checks the district syncs again, unchanged.
 */
const expectFailedRun = (id: string, breakIt: (dir: string) => void, expected: {
  readonly reason: ProviderFailure
  readonly file: string
  readonly message: ReadonlyArray<string | RegExp>
}) =>
  withSyncedDistrict(id, (dir) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const before = yield* rosterFingerprint
      breakIt(dir)

      const error = yield* Effect.flip(syncNow(id))
      assert.instanceOf(error, ProviderError, `expected a ProviderError, got ${error._tag}`)
      const failure = error as ProviderError
      assert.strictEqual(failure.reason, expected.reason)
      assert.strictEqual(failure.file, expected.file)
      const oneLine = `${failure.where}${failure.message}`
      assert.include(oneLine, expected.file)
      for (const part of expected.message) {
        if (typeof part === "string") assert.include(failure.message, part)
        else assert.match(failure.message, part)
      }
      assertNoPersonalValues(oneLine, "the error")

      // Nothing was written: not one roster row has a new version.
      assert.deepStrictEqual(yield* rosterFingerprint, before)

      const runs = yield* sql<{ id: number; status: string; errorReason: string | null; error: string | null; findings: number }>`
        SELECT id, status, error_reason, error, findings FROM sync_runs WHERE district_id = ${id} ORDER BY id`
      assert.deepStrictEqual(runs.map((r) => r.status), ["succeeded", "failed"])
      const failed = runs[1]!
      assert.strictEqual(failed.errorReason, expected.reason)
      assert.strictEqual(failed.error, oneLine)
      assert.notMatch(failed.error!, /[\r\n]/, "the run's error is one line")
      assert.strictEqual(failed.findings, 0)
      assert.lengthOf(yield* findingsOf(failed.id), 0)

      // Repaired, the district syncs again (lease released, no staging left behind) and nothing changed.
      writeSmallDistrict(dir, `${id}.example`)
      const again = yield* syncNow(id)
      assert.strictEqual(again.status, "succeeded")
      assert.deepStrictEqual(again.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
      assert.deepStrictEqual(again.counts.enrollments, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
      assert.deepStrictEqual(yield* rosterFingerprint, before)
    })
  )

const remove = (dir: string, file: string) => Fs.rmSync(NodePath.join(dir, file))

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("bad input through a real sync", (it) => {
  // ---------------------------------------------------------------- runs that must fail

  it.effect("a set without manifest.csv fails the run (MissingFile)", () =>
    expectFailedRun("no-manifest", (dir) => remove(dir, "manifest.csv"), {
      reason: "MissingFile",
      file: "manifest.csv",
      message: ["needs a manifest.csv"]
    }))

  it.effect("a bulk manifest that marks users absent fails the run (MissingFile)", () =>
    expectFailedRun("users-absent", (dir) => writeManifest(dir, { users: "absent" }), {
      reason: "MissingFile",
      file: "manifest.csv",
      message: ["file.users is marked absent", "users.csv"]
    }))

  it.effect("a manifest listing enrollments.csv as bulk without the file fails the run (MissingFile)", () =>
    expectFailedRun("no-enrollments", (dir) => remove(dir, "enrollments.csv"), {
      reason: "MissingFile",
      file: "enrollments.csv",
      message: ["file.enrollments as bulk", "not in folder"]
    }))

  it.effect("a users.csv header without role fails the run (BadHeader)", () =>
    expectFailedRun("no-role", (dir) => {
      writeCsv(dir, "users", readRows(dir, "users"), HEADERS.users.filter((name) => name !== "role"))
    }, {
      reason: "BadHeader",
      file: "users.csv",
      message: [`the header lacks the required column "role"`]
    }))

  it.effect("a users.csv header with sourcedID (wrong case) fails the run, hinting at case sensitivity", () =>
    expectFailedRun("wrong-case", (dir) => {
      const rows = readRows(dir, "users").map(({ sourcedId, ...rest }) => ({ ...rest, sourcedID: sourcedId! }))
      writeCsv(dir, "users", rows, HEADERS.users.map((name) => name === "sourcedId" ? "sourcedID" : name))
    }, {
      reason: "BadHeader",
      file: "users.csv",
      message: [`"sourcedId"`, `found "sourcedID"`, "case-sensitive"]
    }))

  it.effect("an empty (0-byte) classes.csv fails the run (BadHeader)", () =>
    expectFailedRun("empty-classes", (dir) => Fs.writeFileSync(NodePath.join(dir, "classes.csv"), ""), {
      reason: "BadHeader",
      file: "classes.csv",
      message: ["empty"]
    }))

  it.effect("an unterminated quote fails the run (Malformed), without echoing the cell", () =>
    expectFailedRun("unterminated", (dir) => {
      const text = Fs.readFileSync(NodePath.join(dir, "users.csv"), "utf8")
      Fs.writeFileSync(NodePath.join(dir, "users.csv"), text.replace(",Sam,", `,"Sam,`))
    }, {
      reason: "Malformed",
      file: "users.csv",
      message: ["not valid CSV", "never closed"]
    }))

  it.effect("a quote inside an unquoted cell fails the run (Malformed), without echoing the cell", () =>
    expectFailedRun("stray-quote", (dir) => {
      const text = Fs.readFileSync(NodePath.join(dir, "users.csv"), "utf8")
      Fs.writeFileSync(NodePath.join(dir, "users.csv"), text.replace(",Sam,", `,Sam "Sammy" Smith,`))
    }, {
      reason: "Malformed",
      file: "users.csv",
      message: ["not valid CSV", "quote"]
    }))

  // ---------------------------------------------------------------- runs that go on, with findings

  it.effect("a duplicate sourcedId in users.csv: both lines reported, the stored user held (not updated, not deactivated)", () =>
    withSyncedDistrict("duplicate", (dir) =>
      Effect.gen(function*() {
        const before = yield* rosterFingerprint
        const userBefore = yield* storedUser("duplicate", "s-2")
        const users = readRows(dir, "users") // t-1, t-2, s-1, s-2, s-3: lines 2-6
        writeCsv(dir, "users", [...users, { ...users[3]!, givenName: "Zelda", email: "zelda@dup.example" }]) // line 7

        const summary = yield* syncNow("duplicate")
        assert.strictEqual(summary.status, "succeeded")
        assert.deepStrictEqual(summary.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 4 })
        const findings = yield* findingsOf(summary.runId)
        assert.strictEqual(summary.findings, findings.length)
        assert.deepStrictEqual(findings.map((f) => [f.severity, f.code, f.entity, f.file, f.line, f.sourceId]), [
          ["error", "duplicate_source_id", "users", "users.csv", 5, "s-2"]
        ])
        assert.include(findings[0]!.detail, "lines 5, 7")
        assert.include(findings[0]!.detail, "left unchanged")
        for (const f of findings) assertNoPersonalValues(f.detail, "a finding")

        const userAfter = yield* storedUser("duplicate", "s-2")
        assert.deepStrictEqual(userAfter, userBefore)
        assert.strictEqual(userAfter.active, true)
        assert.strictEqual(userAfter.givenName, "Sia")
        // Nothing else changed either (s-2's enrollment stays open).
        assert.deepStrictEqual(yield* rosterFingerprint, before)
      })
    ))

  it.effect("an unreadable users.csv row is a finding at its physical line, and the stored user is held", () =>
    withSyncedDistrict("unreadable-user", (dir) =>
      Effect.gen(function*() {
        const before = yield* rosterFingerprint
        const userBefore = yield* storedUser("unreadable-user", "s-3")
        // t-1 (line 2) gets a line break in a column rosterd does not store, so its row spans
        // lines 2-3 and s-3, the fifth record, sits on line 7.
        writeCsv(dir, "users", readRows(dir, "users").map((u) =>
          u.sourcedId === "t-1" ? { ...u, sms: "555\n0100" } : u.sourcedId === "s-3" ? { ...u, role: "wizard" } : u
        ))
        const summary = yield* syncNow("unreadable-user")
        assert.strictEqual(summary.status, "succeeded")
        assert.deepStrictEqual(summary.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 4 })
        const findings = yield* findingsOf(summary.runId)
        assert.deepStrictEqual(findings.map((f) => [f.severity, f.code, f.entity, f.file, f.line, f.sourceId]), [
          ["error", "invalid_record", "users", "users.csv", 7, "s-3"]
        ])
        assert.strictEqual(
          findings[0]!.detail,
          `column "role": expected one of administrator, aide, guardian, parent, proctor, relative, student, teacher; ` +
            `the stored record is left unchanged`
        )
        assert.deepStrictEqual(yield* storedUser("unreadable-user", "s-3"), userBefore)
        // Held, not deactivated: s-3's enrollment stays open and nothing else was written.
        assert.deepStrictEqual(summary.counts.enrollments, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
        assert.deepStrictEqual(yield* rosterFingerprint, before)
      })
    ))

  it.effect("a bad birth date in demographics.csv is a finding at its line, naming the column, not the value", () =>
    withSyncedDistrict("bad-date", (dir) =>
      Effect.gen(function*() {
        writeCsv(dir, "demographics", [
          { sourcedId: "s-1", birthDate: "2014-02-30" }, // line 2
          { sourcedId: "s-2", birthDate: "2013-11-20" },
          { sourcedId: "s-3", birthDate: "2014-07-09" }
        ])
        const summary = yield* syncNow("bad-date")
        assert.strictEqual(summary.status, "succeeded")
        const findings = yield* findingsOf(summary.runId)
        assert.deepStrictEqual(findings.map((f) => [f.severity, f.code, f.entity, f.file, f.line, f.sourceId]), [
          ["error", "invalid_record", "demographics", "demographics.csv", 2, "s-1"]
        ])
        assert.strictEqual(
          findings[0]!.detail,
          `column "birthDate": expected empty or a date in YYYY-MM-DD form; the stored record is left unchanged`
        )
        for (const f of findings) assertNoPersonalValues(f.detail, "a finding")
        // The other users' birth dates are as they were.
        assert.strictEqual((yield* storedUser("bad-date", "s-2")).birthDate, "2013-11-20")
      })
    ))

  it.effect("a bad birth date in demographics.csv leaves the stored user's row untouched", () =>
    withSyncedDistrict("bad-date-held", (dir) =>
      Effect.gen(function*() {
        const before = yield* storedUser("bad-date-held", "s-1")
        assert.strictEqual(before.birthDate, "2014-03-01")
        writeCsv(dir, "demographics", [
          { sourcedId: "s-1", birthDate: "2014-02-30" },
          { sourcedId: "s-2", birthDate: "2013-11-20" },
          { sourcedId: "s-3", birthDate: "2014-07-09" }
        ])
        const summary = yield* syncNow("bad-date-held")
        const after = yield* storedUser("bad-date-held", "s-1")
        assert.strictEqual(after.birthDate, "2014-03-01", "the stored birth date was erased")
        assert.deepStrictEqual(after, before)
        assert.deepStrictEqual(summary.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
      })
    ))

  // The same bug, reached through a duplicate demographics row (both copies are held as invalid).
  it.effect("a duplicate sourcedId in demographics.csv leaves the stored user's birth date untouched", () =>
    withSyncedDistrict("dup-demographics", (dir) =>
      Effect.gen(function*() {
        const before = yield* storedUser("dup-demographics", "s-1")
        writeCsv(dir, "demographics", [...readRows(dir, "demographics"), { sourcedId: "s-1", birthDate: "2014-03-02" }])
        const summary = yield* syncNow("dup-demographics")
        const findings = yield* findingsOf(summary.runId)
        assert.deepStrictEqual(findings.map((f) => [f.code, f.entity, f.line, f.sourceId]), [
          ["duplicate_source_id", "demographics", 2, "s-1"]
        ])
        const after = yield* storedUser("dup-demographics", "s-1")
        assert.strictEqual(after.birthDate, "2014-03-01", "the stored birth date was erased")
        assert.deepStrictEqual(after, before)
      })
    ))

  it.effect("an unreadable enrollments.csv row holds its stored membership: not ended, though no readable row lists it", () =>
    withSyncedDistrict("unreadable-enrollment", (dir) =>
      Effect.gen(function*() {
        const before = yield* rosterFingerprint
        writeCsv(dir, "enrollments", readRows(dir, "enrollments").map((e) => e.sourcedId === "e-4" ? { ...e, role: "wizard" } : e))
        const summary = yield* syncNow("unreadable-enrollment")
        assert.strictEqual(summary.status, "succeeded")
        // s-2 in cls-1 (line 5): its only row does not read; the stored membership is held.
        assert.deepStrictEqual(summary.counts.enrollments, { created: 0, updated: 0, deactivated: 0, unchanged: 4 })
        const findings = yield* findingsOf(summary.runId)
        assert.deepStrictEqual(findings.map((f) => [f.severity, f.code, f.entity, f.line, f.sourceId]), [
          ["error", "invalid_record", "enrollments", 5, "e-4"]
        ])
        assert.deepStrictEqual(yield* rosterFingerprint, before)
      })
    ))

  it.effect("an enrollment pointing at an unknown class or user is a dangling_reference finding, and skipped", () =>
    withSyncedDistrict("dangling", (dir) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const before = yield* rosterFingerprint
        writeCsv(dir, "enrollments", [
          ...readRows(dir, "enrollments"), // lines 2-6
          { sourcedId: "e-9", classSourcedId: "cls-404", schoolSourcedId: "org-s1", userSourcedId: "s-1", role: "student" }, // line 7
          { sourcedId: "e-10", classSourcedId: "cls-1", schoolSourcedId: "org-s1", userSourcedId: "u-404", role: "student" } // line 8
        ])
        const summary = yield* syncNow("dangling")
        assert.strictEqual(summary.status, "succeeded")
        assert.deepStrictEqual(summary.counts.enrollments, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
        const findings = yield* findingsOf(summary.runId)
        assert.deepStrictEqual(findings.map((f) => [f.severity, f.code, f.entity, f.line, f.sourceId]), [
          ["error", "dangling_reference", "enrollments", 7, "e-9"],
          ["error", "dangling_reference", "enrollments", 8, "e-10"]
        ])
        assert.include(findings[0]!.detail, "cls-404")
        assert.include(findings[0]!.detail, "skipped")
        assert.include(findings[1]!.detail, "u-404")
        for (const f of findings) assertNoPersonalValues(f.detail, "a finding")
        const [skipped] = yield* sql<{ n: number }>`
          SELECT count(*)::int AS n FROM enrollments
          WHERE district_id = 'dangling' AND (class_source_id = 'cls-404' OR user_source_id = 'u-404')`
        assert.strictEqual(skipped!.n, 0)
        assert.deepStrictEqual(yield* rosterFingerprint, before)
      })
    ))

  it.effect("a dangling enrollment's finding names the file enrollments.csv", () =>
    withSyncedDistrict("dangling-file", (dir) =>
      Effect.gen(function*() {
        writeCsv(dir, "enrollments", [
          ...readRows(dir, "enrollments"),
          { sourcedId: "e-9", classSourcedId: "cls-404", schoolSourcedId: "org-s1", userSourcedId: "s-1", role: "student" }
        ])
        const summary = yield* syncNow("dangling-file")
        const findings = yield* findingsOf(summary.runId)
        assert.deepStrictEqual(findings.map((f) => [f.code, f.file, f.line]), [["dangling_reference", "enrollments.csv", 7]])
      })
    ))

  it.effect("a class whose school is unknown is a warning, and the class is kept", () =>
    withSyncedDistrict("unknown-school", (dir) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        writeCsv(dir, "classes", readRows(dir, "classes").map((c) => c.sourcedId === "cls-2" ? { ...c, schoolSourcedId: "org-404" } : c))
        const summary = yield* syncNow("unknown-school")
        assert.strictEqual(summary.status, "succeeded")
        assert.deepStrictEqual(summary.counts.classes, { created: 0, updated: 1, deactivated: 0, unchanged: 1 })
        const findings = yield* findingsOf(summary.runId)
        assert.deepStrictEqual(findings.map((f) => [f.severity, f.code, f.entity, f.file, f.line, f.sourceId]), [
          ["warning", "dangling_reference", "classes", "classes.csv", 3, "cls-2"]
        ])
        assert.include(findings[0]!.detail, "org-404")
        assert.include(findings[0]!.detail, "the class is kept")
        const [kept] = yield* sql<{ active: boolean; schoolSourceId: string }>`
          SELECT active, school_source_id FROM classes WHERE district_id = 'unknown-school' AND source_id = 'cls-2'`
        assert.deepStrictEqual(kept, { active: true, schoolSourceId: "org-404" })
        // Its enrollments stay open.
        assert.deepStrictEqual(summary.counts.enrollments, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
      })
    ))

  // A sweep over everything the tests above stored (they run in order, in this file's database).
  it.effect("no finding or run error of this file carries a personal value", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const details = yield* sql<{ detail: string }>`SELECT detail FROM findings`
      assert.isAbove(details.length, 0)
      for (const { detail } of details) assertNoPersonalValues(detail, "a finding")
      const errors = yield* sql<{ error: string }>`SELECT error FROM sync_runs WHERE error IS NOT NULL`
      assert.isAbove(errors.length, 0)
      for (const { error } of errors) assertNoPersonalValues(error, "a run error")
    }))
})
