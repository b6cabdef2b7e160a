import { assert, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { planDdl } from "../../src/Reconcile/Apply.ts"
import { changeList, recordChanges } from "../../src/Reconcile/ChangeList.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { Runs } from "../../src/Store/Runs.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * A change list hands Node a bounded number of source IDs per group (`CHANGE_IDS_LISTED`,
 * src/Store/Runs.ts): a first sync of the largest district changes millions of records.
 * The group's size stays exact.
 */
/** A small OneRoster CSV district, added to the store; its folder. */
const smallDistrict = (id: string) =>
  Effect.gen(function*() {
    const dir = tempDir()
    writeSmallDistrict(dir.dir, `${id}.example`)
    yield* Effect.flatMap(RosterStore, (store) =>
      store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path: dir.dir } }))
    return dir
  })

layer(SyncTestLayer, { timeout: "60 seconds", excludeTestServices: true })("change list, bounded", (it) => {
  it.effect("a group lists at most the IDs asked for, and says how many it has", () =>
    Effect.gen(function*() {
      const dir = yield* smallDistrict("cap")
      const first = yield* Effect.flatMap(Sync, (sync) => sync.run("cap", { request: "auto", trigger: "test" }))
      const runs = yield* Runs
      const all = yield* runs.changes(first.runId)
      const two = yield* runs.changes(first.runId, 2)
      const users = (groups: typeof all) => groups.find((g) => g.kind === "users" && g.action === "create")!
      assert.strictEqual(users(all).total, first.counts.users.created)
      assert.lengthOf(users(all).sourceIds, first.counts.users.created)
      assert.strictEqual(users(two).total, first.counts.users.created)
      assert.deepStrictEqual(users(two).sourceIds, users(all).sourceIds.slice(0, 2))
      assert.isTrue(two.every((g) => g.sourceIds.length <= 2))
      dir.remove()
    }))

  it.effect("a large group is stored in bounded parts, and read back whole and in order", () =>
    Effect.gen(function*() {
      const dir = yield* smallDistrict("parts")
      const sql = yield* SqlClient.SqlClient
      const runs = yield* Runs
      const run = yield* runs.start("parts", { mode: "full", trigger: "test" })
      const groups = yield* sql.withTransaction(Effect.gen(function*() {
        // The plan tables of a run (session temp tables), with 6,000 enrollments created,
        // 2,500 users deactivated and 40 users updated.
        yield* sql.unsafe(planDdl())
        yield* sql.unsafe(`INSERT INTO plan_enrollments (action, line, class_source_id, user_source_id)
                           SELECT 'create', i + 1, 'c' || (i % 37), 'u' || i FROM generate_series(1, 6000) i`)
        yield* sql.unsafe(`INSERT INTO plan_users (action, reason, live_id, source_id)
                           SELECT 'deactivate', 'missing_from_source', 1000 + i, 'gone' || i FROM generate_series(1, 2500) i`)
        yield* sql.unsafe(`INSERT INTO plan_users (action, live_id, line, source_id, fields)
                           SELECT 'update', 5000 + i, i + 1, 'moved' || i, ARRAY['email'] FROM generate_series(1, 40) i`)
        yield* recordChanges(run.id, "parts", 100)
        return yield* changeList(100)
      }))
      const [stored] = yield* sql<{ readonly parts: number; readonly largest: number; readonly distinct: number }>`
        SELECT count(*)::int AS parts, max(cardinality(source_ids))::int AS largest, count(DISTINCT part)::int AS distinct
        FROM run_changes r WHERE run_id = ${run.id} AND kind = 'enrollments'`
      // 100 lines a part: 61 parts (lines 2–6001), none larger, each numbered once.
      assert.strictEqual(stored!.parts, 61)
      assert.isAtMost(stored!.largest, 100)
      assert.strictEqual(stored!.distinct, 61)

      const all = yield* runs.changes(run.id)
      const enrollments = all.find((g) => g.kind === "enrollments")!
      assert.strictEqual(enrollments.total, 6000)
      assert.strictEqual(new Set(enrollments.sourceIds).size, 6000)
      assert.isTrue(enrollments.sourceIds.every((id) => /^c\d+\/u\d+$/.test(id)))
      const gone = all.find((g) => g.kind === "users" && g.action === "deactivate")!
      assert.strictEqual(gone.reason, "missing_from_source")
      assert.strictEqual(gone.total, 2500)
      assert.deepStrictEqual(all.find((g) => g.kind === "users" && g.action === "update")!.fields, ["email"])
      assert.lengthOf(all, 3)

      // Listing fewer: the first IDs of the same order, across part boundaries, the size whole.
      for (const listed of [1, 250, 777]) {
        const some = yield* runs.changes(run.id, listed)
        const group = some.find((g) => g.kind === "enrollments")!
        assert.strictEqual(group.total, 6000)
        assert.deepStrictEqual(group.sourceIds, enrollments.sourceIds.slice(0, listed))
      }
      // The dry run's list, from the plan tables: the same groups and sizes, 100 IDs at most.
      assert.deepStrictEqual(
        groups.map((g) => [g.kind, g.action, g.reason, g.fields, g.held, g.total, g.sourceIds.length]).sort(),
        all.map((g) => [g.kind, g.action, g.reason, g.fields, g.held, g.total, Math.min(g.total, 100)]).sort()
      )
      dir.remove()
    }))
})
