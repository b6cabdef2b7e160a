import { SqlClient } from "@effect/sql"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { generateDistrict } from "../../bench/OneRosterGenerator.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { DistrictRules, schoolGate } from "../../src/Domain/DistrictRules.ts"
import { type GroupFigures, judgeSchools, schoolJudging } from "../../src/Reconcile/Gate.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { readRows, tempDir, writeCsv } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * Per-school control (README "Per-school rules"): the thresholds a school is judged with
 * (pure, table-driven), and through real syncs a district of ten schools where one school
 * loses 60 % of its students: that school's deactivations are held, the other schools'
 * apply; an excluded school's sections are not rostered.
 */

const rulesOf = (raw: Record<string, unknown>) => Schema.decodeUnknownSync(DistrictRules)(raw)

const figures = (school: string, active: number, deactivations: number, updates = 0): GroupFigures & { readonly school: string } => ({
  school,
  grp: "student",
  active,
  deactivations,
  updates,
  additions: 0
})

describe("per-school thresholds (pure)", () => {
  const CASES: ReadonlyArray<{
    readonly name: string
    readonly rules: Record<string, unknown>
    readonly school: string
    readonly expected: Record<string, unknown> | null
  }> = [
    { name: "no per-school rules: a school is not judged apart", rules: {}, school: "s1", expected: null },
    { name: "perSchool: every school with the district's thresholds", rules: { gate: { perSchool: true, maxDeactivatePercent: 20 } }, school: "s1", expected: { maxDeactivatePercent: 20, minRecords: 10 } },
    { name: "a school's own gate: judged, its thresholds first", rules: { schools: { s1: { gate: { maxDeactivatePercent: 40 } } } }, school: "s1", expected: { maxDeactivatePercent: 40, maxDeactivations: 500 } },
    { name: "…and the others are not", rules: { schools: { s1: { gate: { maxDeactivatePercent: 40 } } } }, school: "s2", expected: null },
    { name: "the district's own thresholds fill in what a school does not state", rules: { gate: { minRecords: 3 }, schools: { s1: { gate: { maxUpdatePercent: 5 } } } }, school: "s1", expected: { minRecords: 3, maxUpdatePercent: 5 } },
    { name: "an excluded school without a gate is not judged", rules: { schools: { s1: { exclude: true } } }, school: "s1", expected: null }
  ]
  for (const c of CASES) {
    it(c.name, () => {
      const gate = schoolGate(rulesOf(c.rules), c.school)
      if (c.expected === null) assert.isNull(gate)
      else assert.deepInclude(gate as unknown as Record<string, unknown>, c.expected)
    })
  }

  const VERDICTS: ReadonlyArray<{
    readonly name: string
    readonly rules: Record<string, unknown>
    readonly figures: ReadonlyArray<GroupFigures & { readonly school: string }>
    readonly tripped: ReadonlyArray<string>
  }> = [
    { name: "one school of ten losing 60 % trips; 6 % of the district would not", rules: { gate: { perSchool: true } }, figures: [figures("s1", 30, 18), figures("s2", 30, 1)], tripped: ["s1:deactivate_percent"] },
    { name: "under minRecords a school's share is no mass change", rules: { gate: { perSchool: true } }, figures: [figures("s1", 8, 6)], tripped: [] },
    { name: "a school's own stricter limit", rules: { schools: { s2: { gate: { maxDeactivations: 1 } } } }, figures: [figures("s1", 30, 2), figures("s2", 30, 2)], tripped: ["s2:deactivate_count"] },
    { name: "updates are judged per school too", rules: { gate: { perSchool: true } }, figures: [figures("s1", 30, 0, 29)], tripped: ["s1:update_percent"] }
  ]
  for (const c of VERDICTS) {
    it(c.name, () => {
      const verdicts = judgeSchools(c.figures, schoolJudging(rulesOf(c.rules)), "users")
      const tripped = verdicts.flatMap((v) => [v.deactivations, v.updates].filter((t) => t !== undefined).map((t) => `${v.school}:${t!.rule}`))
      assert.deepStrictEqual(tripped, c.tripped)
      for (const v of verdicts) assert.match((v.deactivations ?? v.updates)!.group, new RegExp(`at school ${v.school}$`))
    })
  }
})

type Row = Record<string, string>

const syncNow = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "auto", trigger: "test", dryRun: false }))

/** A generated district of ten schools of about 30 students, synced once. */
const withSchools = <A, E, R>(id: string, rules: Record<string, unknown>, use: (dir: string, users: Array<Row>) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => tempDir(`rosterd-schools-${id}-`)),
    (tmp) =>
      Effect.gen(function*() {
        generateDistrict(tmp.dir, { students: 300, seed: id, schoolSize: 30 })
        const users = readRows(tmp.dir, "users").map((u) => ({ ...u, email: u["email"]!.replace("@", `.${id}@`) }))
        writeCsv(tmp.dir, "users", users)
        yield* Effect.flatMap(RosterStore, (store) =>
          store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "UTC", settings: { path: tmp.dir }, rules }))
        const first = yield* syncNow(id)
        assert.strictEqual(first.status, "succeeded")
        return yield* use(tmp.dir, users)
      }),
    (tmp) => Effect.sync(() => tmp.remove())
  )

const schoolOf = (u: Row) => u["orgSourcedIds"]!.split(",")[0]!

const activeStudents = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly school: string; readonly n: number }>`
      SELECT org_source_ids[1] AS school, count(*)::int AS n FROM users
      WHERE district_id = ${district} AND active AND 'student' = ANY (roles) GROUP BY 1`)
    .pipe(Effect.map((rows) => new Map(rows.map((r) => [r.school, r.n]))))

layer(SyncTestLayer, { timeout: "180 seconds", excludeTestServices: true })("per-school control", (it) => {
  it.effect("one school of ten losing 60 % of its students is held; the other schools' leavers apply", () =>
    withSchools("gsch", { gate: { perSchool: true } }, (dir, users) =>
      Effect.gen(function*() {
        const students = users.filter((u) => u["role"] === "student")
        const schools = [...new Set(students.map(schoolOf))].sort()
        assert.strictEqual(schools.length, 10)
        const [bad, other1, other2] = schools as [string, string, string]
        const ofBad = students.filter((u) => schoolOf(u) === bad)
        const lost = new Set([
          ...ofBad.slice(0, Math.ceil(ofBad.length * 0.6)).map((u) => u["sourcedId"]!),
          students.find((u) => schoolOf(u) === other1)!["sourcedId"]!,
          students.find((u) => schoolOf(u) === other2)!["sourcedId"]!
        ])
        const before = yield* activeStudents("gsch")
        writeCsv(dir, "users", users.filter((u) => !lost.has(u["sourcedId"]!)))
        writeCsv(dir, "enrollments", readRows(dir, "enrollments").filter((e) => !lost.has(e["userSourcedId"]!)))
        const run = yield* syncNow("gsch")
        assert.strictEqual(run.status, "held")
        // The district's share (about 6 %) trips nothing; the school's own does.
        const tripped = run.held!.tripped.filter((t) => t.kind === "users")
        assert.deepStrictEqual(tripped.map((t) => [t.group, t.rule]), [[`student at school ${bad}`, "deactivate_percent"]])
        assert.strictEqual(run.counts.users.deactivated, 2)
        const after = yield* activeStudents("gsch")
        assert.strictEqual(after.get(bad), before.get(bad))
        assert.strictEqual(after.get(other1), before.get(other1)! - 1)
        assert.strictEqual(after.get(other2), before.get(other2)! - 1)
        const sql = yield* SqlClient.SqlClient
        const held = yield* sql<{ readonly sourceId: string }>`
          SELECT h.source_id FROM held_changes h WHERE h.run_id = ${run.runId} AND h.kind = 'users'`
        assert.deepStrictEqual(held.map((h) => h.sourceId).sort(), ofBad.slice(0, Math.ceil(ofBad.length * 0.6)).map((u) => u["sourcedId"]!).sort())
      })))

  it.effect("without per-school rules the same loss applies (the district's 6 % is under its limit)", () =>
    withSchools("gsch0", {}, (dir, users) =>
      Effect.gen(function*() {
        const students = users.filter((u) => u["role"] === "student")
        const bad = [...new Set(students.map(schoolOf))].sort()[0]!
        const ofBad = students.filter((u) => schoolOf(u) === bad)
        const lost = new Set(ofBad.slice(0, Math.ceil(ofBad.length * 0.6)).map((u) => u["sourcedId"]!))
        writeCsv(dir, "users", users.filter((u) => !lost.has(u["sourcedId"]!)))
        writeCsv(dir, "enrollments", readRows(dir, "enrollments").filter((e) => !lost.has(e["userSourcedId"]!)))
        const run = yield* syncNow("gsch0")
        assert.strictEqual(run.counts.users.deactivated, lost.size)
        assert.isFalse((run.held?.tripped ?? []).some((t) => t.kind === "users"))
      })))

  it.effect("an excluded school's sections are not rostered; include-only lists keep only theirs", () =>
    withSchools("gschx", {}, (dir) =>
      Effect.gen(function*() {
        const classes = readRows(dir, "classes")
        const schools = [...new Set(classes.map((c) => c["schoolSourcedId"]!))].sort()
        const sql = yield* SqlClient.SqlClient
        const setRules = (rules: Record<string, unknown>) => sql`UPDATE districts SET rules = ${JSON.stringify(rules)}::jsonb WHERE id = 'gschx'`
        yield* setRules({ schools: { [schools[0]!]: { exclude: true } }, gate: { maxDeactivatePercent: 100, maxDeactivations: 10000 } })
        const run = yield* syncNow("gschx")
        assert.strictEqual(run.status, "succeeded")
        const active = yield* sql<{ readonly school: string; readonly n: number }>`
          SELECT school_source_id AS school, count(*)::int AS n FROM classes WHERE district_id = 'gschx' AND active GROUP BY 1`
        assert.isFalse(active.some((r) => r.school === schools[0]))
        assert.strictEqual(active.length, schools.length - 1)
        const [reason] = yield* sql<{ readonly reason: string }>`
          SELECT DISTINCT deactivation_reason AS reason FROM classes WHERE district_id = 'gschx' AND NOT active`
        assert.strictEqual(reason?.reason, "excluded_school")
        yield* setRules({ scope: { onlySchools: [schools[1]!] }, gate: { maxDeactivatePercent: 100, maxDeactivations: 10000 } })
        yield* syncNow("gschx")
        const only = yield* sql<{ readonly school: string }>`
          SELECT DISTINCT school_source_id AS school FROM classes WHERE district_id = 'gschx' AND active`
        assert.deepStrictEqual(only.map((r) => r.school), [schools[1]])
      })))
})
