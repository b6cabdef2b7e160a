import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Holds } from "../../src/Reconcile/Holds.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { Report } from "../../src/Report/Report.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { readRows, tempDir, writeCsv } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { clockAt, writeRulesDistrict } from "../support/RulesDistrict.ts"

/**
 * The district rules through real syncs of the rules district (test/support/RulesDistrict.ts),
 * on pinned dates of the 2026-27 school year: scope, teachers, age, grades, removal and
 * return, and the findings that report them.
 */

const YEAR = 2027
const ZONE = "America/Chicago"

const addDistrict = (id: string, path: string, rules: Record<string, unknown> = {}) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: `District ${id}`, provider: "oneroster-csv", timezone: ZONE, settings: { path }, rules }))

/** A sync as if run at `iso` (the district's local date follows from its zone). */
const syncAt = (id: string, iso: string, request: "auto" | "full" | "delta" = "auto") =>
  Effect.flatMap(Sync, (sync) => sync.run(id, { request, trigger: "test" })).pipe(Effect.withClock(clockAt(iso)))

const findings = (runId: number, code: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly sourceId: string | null; readonly detail: string }>`
      SELECT source_id, detail FROM findings WHERE run_id = ${runId} AND code = ${code} ORDER BY source_id`)

const classes = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly sourceId: string; readonly active: boolean; readonly deactivationReason: string | null }>`
      SELECT source_id, active, deactivation_reason FROM classes WHERE district_id = ${district} ORDER BY source_id`)

const teachersOf = (district: string, classSourceId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly userSourceId: string; readonly isPrimary: boolean }>`
      SELECT user_source_id, is_primary FROM enrollments
      WHERE district_id = ${district} AND class_source_id = ${classSourceId} AND role = 'teacher' AND ended_at IS NULL
      ORDER BY is_primary DESC, user_source_id`)

const MID_NOVEMBER = "2026-11-19T18:00:00Z" // noon in Chicago, 2026-11-19

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("district rules", (it) => {
  it.effect("scope: excluded subjects and titles and past terms never become classes; their enrollments are not written", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { year: YEAR, emailDomain: "scope.example" })
      yield* addDistrict("scope", dir.dir)
      const run = yield* syncAt("scope", MID_NOVEMBER)
      assert.strictEqual(run.status, "succeeded")
      const stored = yield* classes("scope")
      assert.deepStrictEqual(stored.map((c) => c.sourceId), ["cls-big", "cls-math-1", "cls-math-2", "cls-noprimary", "cls-twoprimary"])
      const excluded = yield* findings(run.runId, "excluded_section")
      assert.deepStrictEqual(excluded.map((f) => f.sourceId), ["cls-band", "cls-old", "cls-pe"])
      assert.match(excluded[0]!.detail, /title/)
      assert.match(excluded[1]!.detail, /terms/)
      assert.match(excluded[2]!.detail, /subject/)
      // No enrollment of an excluded section, and no dangling-reference noise about them.
      const [n] = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM enrollments WHERE district_id = 'scope' AND class_source_id IN ('cls-pe', 'cls-band', 'cls-old')`
      assert.strictEqual(n!.n, 0)
      assert.lengthOf(yield* findings(run.runId, "dangling_reference"), 0)
      // s-5 is only in the PE section: no class, so pending and reported.
      const noClass = yield* findings(run.runId, "student_without_class")
      assert.deepStrictEqual(noClass.map((f) => f.sourceId), ["s-3", "s-5"])
      dir.remove()
    }))

  it.effect("scope: a section becomes excluded when the district's rules change, and its class is deactivated with the reason", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { year: YEAR, emailDomain: "scope2.example" })
      yield* addDistrict("scope2", dir.dir, { scope: { currentTermsOnly: false, excludeSubjects: [], excludeTitles: [] } })
      yield* syncAt("scope2", MID_NOVEMBER)
      assert.lengthOf((yield* classes("scope2")).filter((c) => c.active), 8)

      yield* sql`UPDATE districts SET rules = ${JSON.stringify({ scope: { excludeSubjects: ["mathematics"], excludeTitles: [] } })}::jsonb
                 WHERE id = 'scope2'`
      const run = yield* syncAt("scope2", MID_NOVEMBER)
      const stored = yield* classes("scope2")
      assert.deepStrictEqual(stored.filter((c) => c.active).map((c) => c.sourceId), ["cls-band", "cls-pe"])
      const math1 = stored.find((c) => c.sourceId === "cls-math-1")!
      assert.strictEqual(math1.deactivationReason, "excluded_subject")
      const old = stored.find((c) => c.sourceId === "cls-old")!
      assert.strictEqual(old.deactivationReason, "excluded_subject")
      // Their enrollments ended, with history kept.
      const [ended] = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM enrollments WHERE district_id = 'scope2' AND class_source_id = 'cls-math-1' AND ended_at IS NOT NULL`
      assert.strictEqual(ended!.n, 2) // t-01 and s-1
      assert.isAbove(run.counts.classes.deactivated, 0)
      dir.remove()
    }))

  it.effect("scope: when the term ends, a run deactivates its classes though the roster did not change (all of them: after review)", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { year: YEAR, emailDomain: "termend.example" })
      yield* addDistrict("termend", dir.dir)
      yield* syncAt("termend", MID_NOVEMBER)
      assert.isTrue((yield* classes("termend")).find((c) => c.sourceId === "cls-math-1")!.active)
      // Every class of the district would go: the safety gate holds that for an operator.
      const run = yield* syncAt("termend", "2027-08-02T18:00:00Z", "delta")
      assert.strictEqual(run.status, "held")
      assert.deepStrictEqual(run.held?.counts.classes, { deactivated: 5, updated: 0 })
      assert.lengthOf((yield* classes("termend")).filter((c) => c.active), 5)
      const approved = yield* Effect.flatMap(Holds, (holds) => holds.approve(run.runId, "test", "new school year"))
      assert.strictEqual(approved.applied["classes"], 5)
      const stored = yield* classes("termend")
      assert.deepStrictEqual(stored.filter((c) => c.active).map((c) => c.sourceId), [])
      assert.strictEqual(stored.find((c) => c.sourceId === "cls-math-1")!.deactivationReason, "not_current_term")
      dir.remove()
    }))

  it.effect("scope: a class whose term ended is deactivated by a run that does not list it, under the gate", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { year: YEAR, emailDomain: "termend2.example" })
      const scope = { excludeSubjects: [], excludeTitles: [], excludeSubjectCodes: [] }
      yield* addDistrict("termend2", dir.dir, { scope: { ...scope, currentTermsOnly: false } })
      yield* syncAt("termend2", MID_NOVEMBER)
      assert.isTrue((yield* classes("termend2")).find((c) => c.sourceId === "cls-old")!.active)
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE districts SET rules = ${JSON.stringify({ scope })}::jsonb WHERE id = 'termend2'`
      // A delta set listing no classes, in November: cls-old (one class of 8) expires.
      writeCsv(dir.dir, "classes", [])
      const run = yield* syncAt("termend2", MID_NOVEMBER, "delta")
      assert.strictEqual(run.status, "succeeded")
      const old = (yield* classes("termend2")).find((c) => c.sourceId === "cls-old")!
      assert.deepStrictEqual([old.active, old.deactivationReason], [false, "not_current_term"])
      dir.remove()
    }))

  it.effect("teachers: one primary, at most nine co-teachers (stable choice), and the primary rules for none or several", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { year: YEAR, emailDomain: "teach.example" })
      yield* addDistrict("teach", dir.dir)
      const run = yield* syncAt("teach", MID_NOVEMBER)

      const big = yield* teachersOf("teach", "cls-big")
      assert.strictEqual(big.length, 10)
      assert.deepStrictEqual(big[0], { userSourceId: "t-02", isPrimary: true })
      assert.deepStrictEqual(big.slice(1).map((t) => t.userSourceId), ["t-03", "t-04", "t-05", "t-06", "t-07", "t-08", "t-09", "t-10", "t-11"])
      const limit = yield* findings(run.runId, "co_teacher_limit")
      assert.deepStrictEqual(limit.map((f) => f.sourceId), ["cls-big"])
      assert.include(limit[0]!.detail, "t-12, t-13")

      assert.deepStrictEqual(yield* teachersOf("teach", "cls-noprimary"), [
        { userSourceId: "t-03", isPrimary: true },
        { userSourceId: "t-04", isPrimary: false }
      ])
      assert.deepStrictEqual(yield* teachersOf("teach", "cls-twoprimary"), [
        { userSourceId: "t-05", isPrimary: true },
        { userSourceId: "t-06", isPrimary: false }
      ])
      assert.deepStrictEqual((yield* findings(run.runId, "no_primary_teacher")).map((f) => f.sourceId), ["cls-noprimary"])
      assert.deepStrictEqual((yield* findings(run.runId, "several_primary_teachers")).map((f) => f.sourceId), ["cls-twoprimary"])
      // t-01 teaches two sections in period 1.
      const periods = yield* findings(run.runId, "duplicate_period")
      assert.deepStrictEqual(periods.map((f) => f.sourceId), ["t-01"])
      assert.include(periods[0]!.detail, "cls-math-1, cls-math-2")

      // The same roster again: the choice is stable, nothing is written.
      const again = yield* syncAt("teach", MID_NOVEMBER)
      assert.deepStrictEqual(again.counts.enrollments, { created: 0, updated: 0, deactivated: 0, unchanged: run.counts.enrollments.created })

      // A co-teacher leaves cls-big: the first one left out (t-12) comes in.
      const rows = readRows(dir.dir, "enrollments").filter((r) => !(r["classSourcedId"] === "cls-big" && r["userSourcedId"] === "t-05"))
      writeCsv(dir.dir, "enrollments", rows)
      const third = yield* syncAt("teach", MID_NOVEMBER)
      const after = yield* teachersOf("teach", "cls-big")
      assert.strictEqual(after.length, 10)
      assert.include(after.map((t) => t.userSourceId), "t-12")
      assert.notInclude(after.map((t) => t.userSourceId), "t-13")
      assert.strictEqual(third.counts.enrollments.created, 1)
      assert.strictEqual(third.counts.enrollments.deactivated, 1)
      dir.remove()
    }))

  it.effect("age: under 13 from the birth date on the district's local date, recomputed on a run where nothing changed", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { year: YEAR, emailDomain: "age.example" })
      yield* addDistrict("age", dir.dir)
      const ages = sql<{ readonly sourceId: string; readonly under13: boolean }>`
        SELECT source_id, under_13 FROM users WHERE district_id = 'age' AND 'student' = ANY (roles) ORDER BY source_id`
      const first = yield* syncAt("age", MID_NOVEMBER)
      // s-2 turns 13 on 2026-11-20; s-3 is 13; s-4 has no birth date (counts as under 13).
      assert.deepStrictEqual((yield* ages).map((a) => [a.sourceId, a.under13]), [
        ["s-1", true],
        ["s-2", true],
        ["s-3", false],
        ["s-4", true],
        ["s-5", true]
      ])
      assert.deepStrictEqual((yield* findings(first.runId, "missing_birth_date")).map((f) => f.sourceId), ["s-4"])
      // Teachers and administrators are never "under 13".
      const [adults] = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM users WHERE district_id = 'age' AND NOT ('student' = ANY (roles)) AND under_13`
      assert.strictEqual(adults!.n, 0)

      // 2026-11-20, 05:30 UTC is still the 19th in Chicago: nothing changes yet.
      const early = yield* syncAt("age", "2026-11-20T05:30:00Z")
      assert.strictEqual(early.counts.users.updated, 0)
      assert.isTrue((yield* ages).find((a) => a.sourceId === "s-2")!.under13)
      // Later that day, the same roster: s-2 is 13 now.
      const birthday = yield* syncAt("age", "2026-11-20T18:00:00Z", "delta")
      assert.strictEqual(birthday.counts.users.updated, 1)
      assert.isFalse((yield* ages).find((a) => a.sourceId === "s-2")!.under13)
      dir.remove()
    }))

  it.effect("grades: K-12 kept (pre-K and kindergarten normalised), 13 and ungraded as Other; the district's values kept beside", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { year: YEAR, emailDomain: "grades.example" })
      yield* addDistrict("grades", dir.dir)
      yield* syncAt("grades", MID_NOVEMBER)
      const rows = yield* sql<{ readonly sourceId: string; readonly grades: Array<string>; readonly gradeLevels: Array<string> }>`
        SELECT source_id, grades, grade_levels FROM users WHERE district_id = 'grades' AND 'student' = ANY (roles) ORDER BY source_id`
      assert.deepStrictEqual(rows.map((r) => [r.sourceId, r.gradeLevels]), [
        ["s-1", ["7"]],
        ["s-2", ["Other"]],
        ["s-3", ["K"]],
        ["s-4", ["PK"]],
        ["s-5", ["Other"]]
      ])
      assert.deepStrictEqual(rows[1]!.grades, ["13"])
      dir.remove()
    }))

  it.effect("removal and return: deactivated with a time and reason, enrollment history kept, the same row and link restored", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { year: YEAR, emailDomain: "return.example" })
      yield* addDistrict("return", dir.dir)
      yield* syncAt("return", MID_NOVEMBER)
      const state = sql<{ readonly id: number; readonly active: boolean; readonly deactivatedAt: Date | null; readonly deactivationReason: string | null; readonly accountId: number | null }>`
        SELECT u.id, u.active, u.deactivated_at, u.deactivation_reason, l.account_id
        FROM users u LEFT JOIN account_links l ON l.user_id = u.id WHERE u.district_id = 'return' AND u.source_id = 's-1'`
      const [before] = yield* state
      assert.isNotNull(before!.accountId)

      const users = readRows(dir.dir, "users")
      const enrollments = readRows(dir.dir, "enrollments")
      writeCsv(dir.dir, "users", users.filter((u) => u["sourcedId"] !== "s-1"))
      writeCsv(dir.dir, "enrollments", enrollments.filter((e) => e["userSourcedId"] !== "s-1"))
      const gone = yield* syncAt("return", MID_NOVEMBER)
      assert.strictEqual(gone.counts.users.deactivated, 1)
      const [removed] = yield* state
      assert.isFalse(removed!.active)
      assert.strictEqual(removed!.deactivationReason, "missing_from_source")
      assert.isNotNull(removed!.deactivatedAt)
      assert.strictEqual(removed!.accountId, before!.accountId)

      writeCsv(dir.dir, "users", users)
      writeCsv(dir.dir, "enrollments", enrollments)
      yield* syncAt("return", MID_NOVEMBER)
      const [back] = yield* state
      assert.deepStrictEqual([back!.id, back!.active, back!.deactivationReason, back!.accountId], [before!.id, true, null, before!.accountId])
      const periods = yield* sql<{ readonly ended: boolean; readonly endReason: string | null }>`
        SELECT ended_at IS NOT NULL AS ended, end_reason FROM enrollments
        WHERE district_id = 'return' AND user_source_id = 's-1' AND class_source_id = 'cls-math-1' ORDER BY id`
      assert.deepStrictEqual(periods.map((p) => [p.ended, p.endReason]), [[true, "user_removed"], [false, null]])
      // Nothing rostered was deleted: every user the district ever had is still a row.
      const [count] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM users WHERE district_id = 'return'`
      assert.strictEqual(count!.n, 19)
      dir.remove()
    }))

  it.effect("an administrator attached only to the district office (a department without classes) is reported", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { year: YEAR, emailDomain: "office.example" })
      yield* addDistrict("office", dir.dir)
      const run = yield* syncAt("office", MID_NOVEMBER)
      assert.deepStrictEqual((yield* findings(run.runId, "admin_district_office_only")).map((f) => f.sourceId), ["a-1"])
      // Attached to the school as well, it is not.
      const users = readRows(dir.dir, "users").map((u) => (u["sourcedId"] === "a-1" ? { ...u, orgSourcedIds: "org-d,org-s1" } : u))
      writeCsv(dir.dir, "users", users)
      const again = yield* syncAt("office", MID_NOVEMBER)
      assert.lengthOf(yield* findings(again.runId, "admin_district_office_only"), 0)
      Fs.rmSync(NodePath.join(dir.dir), { recursive: true, force: true })
    }))

  it.effect("report: the last run's findings grouped by rule, rules first, with counts and source IDs, never names or addresses", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { year: YEAR, emailDomain: "report.example" })
      // Two teachers share an address: two review items.
      writeCsv(dir.dir, "users", readRows(dir.dir, "users").map((u) => (u["sourcedId"] === "t-06" ? { ...u, email: "t-05@report.example" } : u)))
      yield* addDistrict("report", dir.dir)
      const run = yield* syncAt("report", MID_NOVEMBER)
      const report = yield* Effect.flatMap(Report, (r) => r.make("report")).pipe(Effect.provide(Report.Default))
      assert.strictEqual(report.run?.id, run.runId)
      const codes = report.findings.map((g) => g.code)
      assert.deepStrictEqual(codes, [
        "missing_birth_date",
        "student_without_class",
        "co_teacher_limit",
        "no_primary_teacher",
        "several_primary_teachers",
        "duplicate_period",
        "excluded_section",
        "account_review",
        "admin_district_office_only"
      ])
      const group = (code: string) => report.findings.find((g) => g.code === code)!
      assert.deepStrictEqual([...group("excluded_section").sourceIds].sort(), ["cls-band", "cls-old", "cls-pe"])
      assert.strictEqual(group("excluded_section").count, 3)
      assert.deepStrictEqual([...group("account_review").sourceIds].sort(), ["t-05", "t-06"])
      assert.deepStrictEqual([...group("student_without_class").sourceIds].sort(), ["s-3", "s-5"])
      assert.strictEqual(report.reviewQueue.open, 2)
      const text = JSON.stringify(report)
      assert.notMatch(text, /@|Given|Family/, "the report carries no names or addresses")
      dir.remove()
    }))
})
