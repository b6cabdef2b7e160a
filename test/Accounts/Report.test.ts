import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { byReportOrder, Report } from "../../src/Report/Report.ts"
import { AccountsTestLayer, addCsvDistrict, insertRosteredUser, openReview } from "./support.ts"

/**
 * `rosterd report`: findings of the district's last run that reached the apply step,
 * grouped by code (rule codes first), counts including findings past the per-code cap,
 * plus the open review queue. Runs and findings are written directly here: what matters is
 * how the report reads them.
 */
layer(AccountsTestLayer, { timeout: "120 seconds", excludeTestServices: true })("report", (it) => {
  const insertRun = (district: string, status: string) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.map(
        sql<{ readonly id: number }>`
          INSERT INTO sync_runs (district_id, mode, status, trigger, host, pid, finished_at)
          VALUES (${district}, 'full', ${status}, 'test', 'test', 1, now()) RETURNING id`,
        ([row]) => row!.id
      ))

  const finding = (runId: number, district: string, f: {
    readonly code: string
    readonly severity?: string
    readonly entity?: string | null
    readonly sourceId: string | null
    readonly detail?: string
    readonly unlisted?: number
  }) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`INSERT INTO findings (run_id, district_id, severity, code, entity, source_id, detail, unlisted)
          VALUES (${runId}, ${district}, ${f.severity ?? "warning"}, ${f.code}, ${f.entity === undefined ? "users" : f.entity},
                  ${f.sourceId}, ${f.detail ?? `${f.code} of ${f.sourceId}`}, ${f.unlisted ?? 0})`)

  it("orders the district rules' codes first, then the others alphabetically", () => {
    assert.deepStrictEqual(
      ["zeta", "account_review", "dangling_reference", "missing_email", "admin_district_office_only", "alpha", "missing_birth_date"].sort(byReportOrder),
      ["missing_email", "missing_birth_date", "account_review", "admin_district_office_only", "alpha", "dangling_reference", "zeta"]
    )
  })

  it.effect("groups the last succeeded run's findings by code; capped findings are counted; later failed runs are ignored", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const report = yield* Report
      yield* addCsvDistrict("rpt", "/nonexistent")
      const older = yield* insertRun("rpt", "succeeded")
      yield* finding(older, "rpt", { code: "missing_email", sourceId: "old-1" })
      const run = yield* insertRun("rpt", "succeeded")
      // 1,000 listed findings plus a summary row for 250 more (the per-code cap).
      yield* sql`INSERT INTO findings (run_id, district_id, severity, code, entity, source_id, detail)
                 SELECT ${run}, 'rpt', 'warning', 'missing_email', 'users', 'u-' || lpad(i::text, 4, '0'), 'no e-mail: the user cannot be linked by e-mail'
                 FROM generate_series(1, 1000) AS i`
      yield* finding(run, "rpt", { code: "missing_email", sourceId: null, detail: "250 more findings like this are not listed", unlisted: 250 })
      yield* finding(run, "rpt", { code: "dangling_reference", severity: "error", entity: "enrollments", sourceId: "e-9" })
      yield* finding(run, "rpt", { code: "account_review", sourceId: "t-4", detail: "review 3" })
      yield* finding(run, "rpt", { code: "zz_custom", severity: "info", entity: null, sourceId: null, detail: "about the run" })
      yield* finding(run, "rpt", { code: "missing_birth_date", sourceId: "s-2" })
      yield* finding(run, "rpt", { code: "missing_birth_date", severity: "error", sourceId: "s-1" })
      yield* finding(run, "rpt", { code: "co_teacher_limit", entity: "classes", sourceId: "cls-1" })
      yield* finding(run, "rpt", { code: "co_teacher_limit", entity: "enrollments", sourceId: "e-2" })
      const failed = yield* insertRun("rpt", "failed")
      yield* finding(failed, "rpt", { code: "invalid_record", severity: "error", sourceId: "x-1" })

      const teacher = yield* insertRosteredUser({ district: "rpt", sourceId: "t-4", role: "teacher", email: null })
      const student = yield* insertRosteredUser({ district: "rpt", sourceId: "s-4", role: "student", email: null })
      const reviewIds = [yield* openReview("rpt", teacher), yield* openReview("rpt", student)]
      const closed = yield* insertRosteredUser({ district: "rpt", sourceId: "s-5", role: "student", email: null })
      yield* sql`UPDATE account_reviews SET state = 'resolved', resolution = 'closed' WHERE id = ${yield* openReview("rpt", closed)}`

      const result = yield* report.make("rpt")
      assert.strictEqual(result.run?.id, run)
      assert.strictEqual(result.run?.status, "succeeded")
      assert.deepStrictEqual(result.findings.map((g) => [g.code, g.severity, g.entity, g.count]), [
        ["missing_email", "warning", "users", 1250],
        ["missing_birth_date", "error", "users", 2],
        ["co_teacher_limit", "warning", "classes,enrollments", 2],
        ["account_review", "warning", "users", 1],
        ["dangling_reference", "error", "enrollments", 1],
        ["zz_custom", "info", null, 0]
      ])
      const email = result.findings[0]!
      assert.strictEqual(email.sourceIds.length, 1000)
      assert.deepStrictEqual(email.sourceIds.slice(0, 2), ["u-0001", "u-0002"])
      assert.strictEqual(email.sampleDetail, "no e-mail: the user cannot be linked by e-mail")
      assert.deepStrictEqual(result.findings[1]!.sourceIds, ["s-2", "s-1"])
      assert.deepStrictEqual(result.findings[5]!.sourceIds, [])
      assert.strictEqual(result.findings[5]!.sampleDetail, "about the run")
      assert.deepStrictEqual(result.reviewQueue, { open: 2, ids: reviewIds })
    }))

  it.effect("without a succeeded run it reports the latest run with findings; without runs, nothing but the queue", () =>
    Effect.gen(function*() {
      const report = yield* Report
      yield* addCsvDistrict("rpt-failing", "/nonexistent")
      const first = yield* insertRun("rpt-failing", "failed")
      yield* finding(first, "rpt-failing", { code: "invalid_record", severity: "error", sourceId: "x-1" })
      const second = yield* insertRun("rpt-failing", "failed")
      yield* finding(second, "rpt-failing", { code: "invalid_record", severity: "error", sourceId: "x-2" })
      yield* insertRun("rpt-failing", "failed") // no findings: not the one reported
      const result = yield* report.make("rpt-failing")
      assert.strictEqual(result.run?.id, second)
      assert.deepStrictEqual(result.findings.map((g) => [g.code, g.count, g.sourceIds]), [["invalid_record", 1, ["x-2"]]])

      yield* addCsvDistrict("rpt-new", "/nonexistent")
      assert.deepStrictEqual(yield* report.make("rpt-new"), { district: "rpt-new", run: null, findings: [], reviewQueue: { open: 0, ids: [] }, masking: [], withoutAccount: 0 })
      assert.strictEqual((yield* Effect.flip(report.make("nope")))._tag, "DistrictNotFound")
    }))
})
