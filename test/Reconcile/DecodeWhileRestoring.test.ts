import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { DistrictId } from "../../src/Domain/District.ts"
import { DecodedHeldChars } from "../../src/Reconcile/DigestStaging.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { generated, readRows, tempDir, writeCsv } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * A resync decodes its changed records while Postgres restores the others, holding the
 * decoded rows until the restore is done (src/Reconcile/DigestStaging.ts); past what it may
 * hold (`DecodedHeldChars`), the rest are decoded after the restore. Either way the run
 * stages every record once, and applies what a run holding everything applies.
 */

const DISTRICT = "held-decoded"

const syncNow = (heldChars?: number) =>
  Effect.flatMap(Sync, (sync) => sync.run(DISTRICT, { request: "auto", trigger: "test" })).pipe(
    heldChars === undefined ? (effect) => effect : Effect.provideService(DecodedHeldChars, heldChars)
  )

/** Renames every 40th user (a change spread over the whole file, so over many read chunks). */
const renameSpread = (dir: string, suffix: string) => {
  const users = readRows(dir, "users")
  const renamed = users.map((u, i) => i % 40 === 0 ? { ...u, givenName: `${u.givenName}${suffix}` } : u)
  writeCsv(dir, "users", renamed)
  return renamed.filter((_, i) => i % 40 === 0).map((u) => [u.sourcedId!, u.givenName!] as const)
}

const storedNames = (sourceIds: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly sourceId: string; readonly givenName: string }>`
      SELECT source_id, given_name FROM users WHERE district_id = ${DISTRICT} AND source_id IN ${sql.in(sourceIds)} ORDER BY source_id`
    return rows.map((r) => [r.sourceId, r.givenName] as const)
  })

const storedDigests = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ readonly entries: string; readonly stored: string }>`
    SELECT s.entries::text, (SELECT count(*) FROM roster_digests_users d WHERE d.set_id = s.id)::text AS stored
    FROM roster_digest_sets s WHERE s.district_id = ${DISTRICT} AND s.kind = 'users'`
  return row
})

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("decoding while the store restores", (it) => {
  const district = tempDir()
  // About 2,000 users: a users file of several read chunks.
  generated(district.dir, 1800)

  it.effect("changed records past what may be held are decoded after the restore: each staged once, all applied", () =>
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
      const total = first.counts.users.created

      // Held: one character, so everything after the first read chunk is decoded after the restore.
      const renamed = renameSpread(district.dir, "x")
      assert.isAbove(renamed.length, 40)
      const second = yield* syncNow(1)
      assert.strictEqual(second.status, "succeeded")
      assert.deepStrictEqual(second.counts.users, { created: 0, updated: renamed.length, deactivated: 0, unchanged: total - renamed.length })
      assert.deepStrictEqual(yield* storedNames(renamed.map(([id]) => id)), [...renamed].sort(([a], [b]) => a < b ? -1 : 1))
      assert.deepStrictEqual(yield* storedDigests, { entries: String(total), stored: String(total) })

      // The same change with everything held: the same counts.
      const again = renameSpread(district.dir, "y")
      const third = yield* syncNow()
      assert.deepStrictEqual(third.counts.users, { created: 0, updated: again.length, deactivated: 0, unchanged: total - again.length })
      assert.deepStrictEqual(yield* storedNames(again.map(([id]) => id)), [...again].sort(([a], [b]) => a < b ? -1 : 1))
      assert.deepStrictEqual(yield* storedDigests, { entries: String(total), stored: String(total) })
    }))
})
