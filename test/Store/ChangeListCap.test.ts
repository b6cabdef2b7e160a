import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
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
layer(SyncTestLayer, { timeout: "60 seconds", excludeTestServices: true })("change list, bounded", (it) => {
  it.effect("a group lists at most the IDs asked for, and says how many it has", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      writeSmallDistrict(dir.dir, "cap.example")
      yield* Effect.flatMap(RosterStore, (store) =>
        store.addDistrict({ id: "cap" as DistrictId, name: "cap", provider: "oneroster-csv", timezone: "America/Chicago", settings: { path: dir.dir } }))
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
})
