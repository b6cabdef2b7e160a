import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { Runs } from "../../src/Store/Runs.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/** Freshness in the status contract: `stale` after 24 hours without a successful sync, `failing` after a failed run. */
layer(SyncTestLayer, { timeout: "60 seconds", excludeTestServices: true })("status freshness", (it) => {
  it.effect("a district is stale 24 hours after its last success (or its creation), and failing after a failed run", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const store = yield* RosterStore
      const runs = yield* Runs
      const dir = tempDir()
      writeSmallDistrict(dir.dir)
      yield* store.addDistrict({ id: "fresh" as DistrictId, name: "Fresh", provider: "oneroster-csv", timezone: "UTC", settings: { path: dir.dir } })
      const status = () => Effect.map(runs.status("fresh"), (rows) => ({ stale: rows[0]!.stale, failing: rows[0]!.failing }))

      assert.deepStrictEqual(yield* status(), { stale: false, failing: false })
      yield* sql`UPDATE districts SET created_at = now() - interval '25 hours' WHERE id = 'fresh'`
      assert.deepStrictEqual(yield* status(), { stale: true, failing: false }) // never synced, added a day ago

      yield* Effect.flatMap(Sync, (sync) => sync.run("fresh", { request: "auto", trigger: "test" }))
      assert.deepStrictEqual(yield* status(), { stale: false, failing: false })

      yield* sql`UPDATE sync_runs SET finished_at = now() - interval '25 hours' WHERE district_id = 'fresh'`
      assert.deepStrictEqual(yield* status(), { stale: true, failing: false })

      Fs.rmSync(NodePath.join(dir.dir, "users.csv"))
      yield* Effect.flip(Effect.flatMap(Sync, (sync) => sync.run("fresh", { request: "auto", trigger: "test" })))
      assert.deepStrictEqual(yield* status(), { stale: true, failing: true })
      dir.remove()
    }))
})
