import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Freshness } from "../../src/Schedule/Freshness.ts"
import { localDateAt } from "../../src/Schedule/Calendar.ts"
import { Pauses } from "../../src/Schedule/Pauses.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { TestDatabase } from "../support/Database.ts"

/**
 * Staleness with the schedule's view: a paused district is never stale, and the 24 hours
 * count from the end of its last pause too (the catch-up runs then). Real clock, real
 * database: the pauses are set around today.
 */
const TestLayer = Layer.mergeAll(Freshness.Default, Pauses.Default, RosterStore.Default).pipe(
  Layer.provide(ConfigFile.fromDocument({})),
  Layer.provideMerge(TestDatabase)
)

layer(TestLayer, { timeout: "60 seconds", excludeTestServices: true })("freshness", (it) => {
  it.effect("paused: not stale, and says until when; after the pause, stale only 24 hours after its end", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const store = yield* RosterStore
      const freshness = yield* Freshness
      const pauses = yield* Pauses
      // Honolulu has no DST and no default window in early spring or autumn; the calendar is emptied anyway.
      yield* store.addDistrict({
        id: "f" as DistrictId, name: "F", provider: "oneroster-csv", timezone: "Pacific/Honolulu", settings: { path: "/nowhere" },
        rules: { calendar: { disable: ["thanksgiving", "winter"] } }
      })
      yield* sql`UPDATE districts SET created_at = now() - interval '25 hours'`
      const view = Effect.map(freshness.status("f"), ([s]) => ({ stale: s!.stale, paused: s!.paused }))
      assert.deepStrictEqual(yield* view, { stale: true, paused: null })

      const today = localDateAt(new Date(), "Pacific/Honolulu")
      const id = yield* pauses.add({ district: "f", from: today, until: today, reason: "SIS migration", by: "test" })
      const paused = yield* view
      assert.isFalse(paused.stale)
      assert.strictEqual(paused.paused?.name, `pause-${id}`)
      assert.strictEqual(paused.paused?.reason, "SIS migration")
      assert.isTrue(new Date(paused.paused!.until).getTime() > Date.now())
      // The next run shown is the catch-up at the pause's end (the daemon moves the slot there).
      const [whilePaused] = yield* freshness.status("f")
      assert.deepStrictEqual(whilePaused!.nextRun, { at: paused.paused!.until, request: "auto", trigger: "catch-up", retries: 0 })
      assert.strictEqual(whilePaused!.nextRunAt, paused.paused!.until)

      // Resumed now: the 24 hours count from the pause's end.
      yield* pauses.resume({ district: "f", by: "test" })
      assert.deepStrictEqual(yield* view, { stale: false, paused: null })
      // A pause that ended more than 24 hours ago no longer covers it.
      yield* sql`UPDATE pauses SET from_date = from_date - 3, until_date = until_date - 3, ended_at = NULL`
      assert.deepStrictEqual(yield* view, { stale: true, paused: null })
      yield* sql`UPDATE pauses SET until_date = until_date + 2`
      assert.deepStrictEqual(yield* view, { stale: false, paused: null })
    }))
})
