import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { DistrictId } from "../../src/Domain/District.ts"
import { FINDINGS_PER_CODE } from "../../src/Reconcile/Findings.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * The enrollments diff counts new memberships before it knows which are dangling
 * (src/Reconcile/Apply.ts), and takes those off by their findings: the listed ones and the
 * summary's `unlisted`. More dangling memberships than findings are listed per code, so the
 * count must come from the summary too.
 */

const DISTRICT = "dangling-count"
const DANGLING = FINDINGS_PER_CODE + 203

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("dangling memberships counted", (it) => {
  const district = tempDir()
  writeSmallDistrict(district.dir, "dangling.example")
  const enrollments = readRows(district.dir, "enrollments")
  writeCsv(district.dir, "enrollments", [
    ...enrollments,
    ...Array.from({ length: DANGLING }, (_, i) => ({
      sourcedId: `e-x${i}`, classSourcedId: "cls-1", schoolSourcedId: "org-s1", userSourcedId: `s-missing-${i}`, role: "student"
    }))
  ])

  it.effect("created counts the memberships written, however many dangle; every dangling one is reported", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const store = yield* RosterStore
      yield* store.addDistrict({ id: DISTRICT as DistrictId, name: DISTRICT, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path: district.dir } })
      const summary = yield* Effect.flatMap(Sync, (sync) => sync.run(DISTRICT, { request: "full", trigger: "test" }))
      assert.strictEqual(summary.status, "succeeded")
      assert.deepStrictEqual(summary.counts.enrollments, { created: enrollments.length, updated: 0, deactivated: 0, unchanged: 0 })
      const [stored] = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM enrollments WHERE district_id = ${DISTRICT} AND ended_at IS NULL`
      assert.strictEqual(stored?.n, enrollments.length)
      const [reported] = yield* sql<{ readonly listed: number; readonly unlisted: number }>`
        SELECT count(*) FILTER (WHERE unlisted = 0)::int AS listed, coalesce(sum(unlisted), 0)::int AS unlisted
        FROM findings WHERE run_id = ${summary.runId} AND code = 'dangling_reference' AND entity = 'enrollments'`
      assert.deepStrictEqual(reported, { listed: FINDINGS_PER_CODE, unlisted: DANGLING - FINDINGS_PER_CODE })
    }))
})
