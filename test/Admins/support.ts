import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { Accounts } from "../../src/Accounts/Accounts.ts"
import { Admins } from "../../src/Admins/Admins.ts"
import { Partnerships } from "../../src/Admins/Partnerships.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { sealedToken } from "../support/MailLinks.ts"

/** Admins, partnerships and accounts over the test file's own database, with the sync to build rosters. */
export const AdminsTestLayer = Layer.mergeAll(Admins.Default, Partnerships.Default, Accounts.Default).pipe(
  Layer.provideMerge(SyncTestLayer)
)

export const addDistrict = (id: string, path: string, rules: Record<string, unknown> = {}) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: `District ${id}`, provider: "oneroster-csv", timezone: "UTC", settings: { path }, rules }))

/**
 * The token of an admin's newest invitation. No table holds it in clear: it is opened from
 * the queued message's seal, as the outbox worker does when it sends the message.
 */
export const invitationToken = (adminId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly id: string | null }>`SELECT max(id)::text AS id FROM admin_tokens WHERE admin_id = ${adminId}`
    if (row?.id === null || row === undefined) return yield* Effect.die(new Error(`no invitation queued for admin ${adminId}`))
    return yield* sealedToken(`admin-invitation:${row.id}`)
  })

/** The SQLSTATE of a failed statement. */
export const sqlState = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flip(effect).pipe(Effect.map((error) => ((error as { cause?: { code?: string } }).cause?.code ?? "none")))

/** A rostered user's id by source ID. */
export const userId = (district: string, sourceId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly id: number }>`SELECT id FROM users WHERE district_id = ${district} AND source_id = ${sourceId}`
    return row!.id
  })

/** `admins` and `admin_tokens` rows with their physical version, to prove a sync wrote none of them. */
export const adminsFingerprint = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const out: Record<string, string> = {}
  for (const table of ["admins", "admin_tokens"]) {
    const [row] = yield* sql.unsafe<{ readonly digest: string | null }>(
      `SELECT md5(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid)) AS digest FROM ${table}`
    )
    out[table] = row?.digest ?? "empty"
  }
  return out
})
