import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { Accounts } from "../../src/Accounts/Accounts.ts"
import { Reviews } from "../../src/Accounts/Reviews.ts"
import { Report } from "../../src/Report/Report.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { sealedToken } from "../support/MailLinks.ts"

/** Accounts, reviews and the report over the test file's own database (with the sync, to build a roster). */
export const AccountsTestLayer = Layer.mergeAll(Accounts.Default, Reviews.Default, Report.Default).pipe(
  Layer.provideMerge(SyncTestLayer)
)

export const addCsvDistrict = (id: string, path: string) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path } }))

export const syncNow = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "full", trigger: "test" }))

export const writeFile = (dir: string, name: string, text: string) => {
  const path = NodePath.join(dir, name)
  Fs.writeFileSync(path, text)
  return path
}

/**
 * A rostered user written the way the sync writes (`rosterd.writer = 'sync'`), for tests
 * that must not depend on what the sync's own account linking decides about the users it
 * sees: a user it has not seen has no link until the test makes one.
 */
export const insertRosteredUser = (input: {
  readonly district: string
  readonly sourceId: string
  readonly role: "teacher" | "student"
  readonly email: string | null
  /** An open district enrollment in this class (by source ID). */
  readonly classSourceId?: string
}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT set_config('rosterd.writer', 'sync', true)`
      const [user] = yield* sql<{ readonly id: number }>`
        INSERT INTO users (district_id, source_id, roster_source, roles, email, given_name, family_name)
        VALUES (${input.district}, ${input.sourceId}, 'csv', ${[input.role]}::text[], ${input.email}, 'Given', 'Family')
        RETURNING id`
      if (input.classSourceId !== undefined) {
        yield* sql`
          INSERT INTO enrollments (district_id, class_id, user_id, class_source_id, user_source_id, source_id, roster_source, role)
          SELECT ${input.district}, c.id, ${user!.id}, c.source_id, ${input.sourceId}, ${`e-${input.sourceId}`}, 'csv', ${input.role}
          FROM classes c WHERE c.district_id = ${input.district} AND c.source_id = ${input.classSourceId}`
      }
      return user!.id
    }))
  })

export const openReview = (district: string, userId: number, reason = "several_accounts", candidates: ReadonlyArray<number> = []) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly id: number }>`
      INSERT INTO account_reviews (district_id, user_id, reason, candidate_account_ids)
      VALUES (${district}, ${userId}, ${reason}, ${candidates}::bigint[]) RETURNING id`
    return row!.id
  })

export const accountIdOf = (externalId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly id: number }>`SELECT id FROM accounts WHERE external_id = ${externalId}`
    return row!.id
  })

/**
 * The token of the user's newest activation e-mail. No table holds it in clear: it is opened
 * from the queued message's seal, as the outbox worker does when it sends the message.
 */
export const latestToken = (userId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly id: string | null }>`SELECT max(id)::text AS id FROM activation_tokens WHERE user_id = ${userId}`
    if (row?.id === null || row === undefined) return yield* Effect.die(new Error(`no activation e-mail queued for user ${userId}`))
    return yield* sealedToken(`teacher-activation:${row.id}`)
  })
