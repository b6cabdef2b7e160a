import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { CONFIRMING_ROLES_SQL } from "../Domain/Roles.ts"
import { Audit } from "../Audit/Audit.ts"
import { DistrictBusy } from "../Domain/Errors.ts"
import { LEASE_NAMESPACE } from "../Reconcile/Lease.ts"
import { AccountMerged, AccountNotFound } from "./Accounts.ts"
import { revokeActivations } from "./Activation.ts"

/**
 * `rosterd accounts merge <from> <into>`: two accounts an operator knows are one person
 * (found by `rosterd accounts duplicates`, or reported) become one. Everything that hangs
 * on the merged account moves to the survivor, in **one transaction**, under the lease of
 * every district whose people are linked to either account (no sync of those districts
 * links or activates anyone meanwhile):
 *
 * - **links** to rostered users (the link lock lets a link move only from an account merged
 *   into the one it moves to, in a transaction that says it merges, from rosterd's own role:
 *   migrations/0013), **addresses** (former ones too, with their history; an address the
 *   survivor has already is dropped from the merged account, not doubled), **provider
 *   identities** (`account_identities`), **teacher-made classes** (ownership) and
 *   **memberships** of teacher-made classes held by the account (where both were members of
 *   one class, the merged account's period ends: one membership per person), and the
 *   **in-product admin rights** (`admins.account_id`): the survivor administers what either
 *   did;
 * - **the merged account is kept**: `state = 'merged'`, `merged_into` the survivor (accounts
 *   merged into it earlier now point to the survivor too, so `merged_into` is always one step
 *   to a live account), `merged_at`. The platform reads `merged_into` (it may read
 *   `accounts`) to send a sign-in on the old account to the survivor;
 * - **activation**: the survivor is active when either account was (someone used it); then
 *   its teachers and roster admins still waiting to confirm are active at once, as a review
 *   link makes them (they use that account), and their activation links stop working.
 *   Between two pending accounts the waiting teacher's unused link moves along and still
 *   works;
 * - **open review items** that name the merged account as a candidate name the survivor.
 *
 * Refused when both accounts are linked to active rostered people of the same district:
 * two people the district says exist (or one with two records, which the district must fix).
 * Audited (`account.merge`, with what moved: counts and ids, never an address).
 */

export class MergeRefused extends Schema.TaggedError<MergeRefused>()("MergeRefused", {
  reason: Schema.String
}) {
  override get message() {
    return `merge refused: ${this.reason}; nothing was changed`
  }
}

export interface MergeOptions {
  readonly by: string
  readonly reason: string | null
}

export interface MergeOutcome {
  readonly from: number
  readonly into: number
  /** The survivor's state after the merge. */
  readonly state: "pending" | "active"
  readonly moved: {
    readonly links: number
    readonly addresses: number
    /** Provider identities of the account (`account_identities`). */
    readonly identities: number
    readonly classes: number
    readonly memberships: number
    readonly admins: number
    readonly reviews: number
    /** Earlier merges into the merged account, now pointing at the survivor. */
    readonly mergedAccounts: number
  }
  /** Memberships of the merged account ended because the survivor was in the same class. */
  readonly membershipsEnded: number
  /** Waiting teachers and admins made active (the survivor is in use). */
  readonly activated: number
  /** Users whose activation links moved to the survivor and still work (both accounts pending). */
  readonly pendingLinksKept: number
  /** The districts whose leases the merge held. */
  readonly districts: ReadonlyArray<string>
}

interface AccountRow {
  readonly id: number
  readonly state: "pending" | "active" | "merged"
  readonly mergedInto: number | null
  readonly displayName: string | null
}

/** `WITH x AS (<statement> RETURNING 1) SELECT count(*)`: a step's count. */
const counted = (statement: string) => `WITH x AS (${statement} RETURNING 1) SELECT count(*)::int AS n FROM x`

export class Merge extends Effect.Service<Merge>()("rosterd/Merge", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit

    const step = (statement: string, params: ReadonlyArray<unknown>) =>
      Effect.map(sql.unsafe<{ readonly n: number }>(counted(statement), params as Array<unknown>), (rows) => rows[0]?.n ?? 0)

    const merge = Effect.fn("Merge.merge")(function*(from: number, into: number, options: MergeOptions) {
      if (from === into) return yield* new MergeRefused({ reason: `account ${from} cannot be merged into itself` })
      return yield* sql.withTransaction(Effect.gen(function*() {
        // Both accounts, locked in id order (two merges of the same pair never deadlock).
        const rows = yield* sql<AccountRow>`
          SELECT id, state, merged_into, display_name FROM accounts WHERE id IN (${from}, ${into}) ORDER BY id FOR UPDATE`
        for (const id of [from, into]) {
          const row = rows.find((r) => r.id === id)
          if (row === undefined) return yield* new AccountNotFound({ accountId: id })
          if (row.state === "merged") return yield* new AccountMerged({ accountId: id, mergedInto: row.mergedInto ?? 0 })
        }
        const source = rows.find((r) => r.id === from)!
        const target = rows.find((r) => r.id === into)!

        // The leases of the districts whose people either account stands for: a sync of one
        // of them links and activates accounts, and must not meet a half-moved account.
        const involved = yield* sql<{ readonly districtId: string; readonly ok: boolean }>`
          SELECT d.district_id, pg_try_advisory_xact_lock(${LEASE_NAMESPACE}, hashtext(d.district_id)) AS ok
          FROM (SELECT DISTINCT u.district_id FROM account_links l JOIN users u ON u.id = l.user_id
                WHERE l.account_id IN (${from}, ${into}) ORDER BY u.district_id) d`
        const busy = involved.find((d) => !d.ok)
        if (busy !== undefined) return yield* new DistrictBusy({ district: busy.districtId })

        const [clash] = yield* sql<{ readonly districtId: string; readonly fromSource: string; readonly intoSource: string }>`
          SELECT a.district_id, a.source_id AS from_source, b.source_id AS into_source
          FROM account_links la JOIN users a ON a.id = la.user_id AND a.active
          JOIN users b ON b.district_id = a.district_id AND b.active
          JOIN account_links lb ON lb.user_id = b.id AND lb.account_id = ${into}
          WHERE la.account_id = ${from}
          ORDER BY a.district_id, a.source_id, b.source_id LIMIT 1`
        if (clash !== undefined) {
          return yield* new MergeRefused({
            reason: `both accounts are linked to active rostered people of district ${clash.districtId} ` +
              `(${clash.fromSource} and ${clash.intoSource}): two people to the district, or one person with two records the district must fix`
          })
        }

        const survivorState: "pending" | "active" = source.state === "active" || target.state === "active" ? "active" : "pending"
        const params = [from, into] as const

        // The merged account first: the link lock lets links move only from an account merged into their new one.
        yield* sql`
          UPDATE accounts SET state = 'merged', merged_into = ${into}, merged_at = now(), updated_at = now() WHERE id = ${from}`
        const mergedAccounts = yield* step(`UPDATE accounts SET merged_into = $2, updated_at = now() WHERE merged_into = $1 AND id <> $1`, params)
        yield* sql`
          UPDATE accounts
          SET state = ${survivorState}, display_name = coalesce(display_name, ${source.displayName}::text), updated_at = now(),
              activated_at = CASE WHEN ${survivorState} = 'active' THEN coalesce(activated_at, now()) END
          WHERE id = ${into}`

        yield* sql`SELECT set_config('rosterd.writer', 'merge', true)`
        const moved = yield* sql<{ readonly userId: number; readonly activation: string; readonly confirming: boolean }>`
          WITH moved AS (
            UPDATE account_links SET account_id = ${into} WHERE account_id = ${from} RETURNING user_id, activation)
          SELECT m.user_id, m.activation, u.roles && ${sql.literal(CONFIRMING_ROLES_SQL)} AS confirming
          FROM moved m JOIN users u ON u.id = m.user_id`
        yield* sql`SELECT set_config('rosterd.writer', '', true)`

        // An address both have stays the survivor's row (its provenance); the merged account's copy goes.
        const addresses = yield* step(
          `UPDATE account_emails e SET account_id = $2 WHERE e.account_id = $1
             AND NOT EXISTS (SELECT 1 FROM account_emails s WHERE s.account_id = $2 AND s.email_key = e.email_key)`,
          params
        )
        yield* sql`DELETE FROM account_emails WHERE account_id = ${from}`
        // An identity names one account (a unique index): the survivor cannot have it already.
        const identities = yield* step(`UPDATE account_identities SET account_id = $2 WHERE account_id = $1`, params)
        const classes = yield* step(`UPDATE classes SET owner_account_id = $2, updated_at = now() WHERE owner_account_id = $1`, params)
        const membershipsEnded = yield* step(
          `UPDATE enrollments e SET ended_at = now(), end_reason = 'account_merged', updated_at = now()
           WHERE e.account_id = $1 AND e.ended_at IS NULL
             AND EXISTS (SELECT 1 FROM enrollments s WHERE s.class_id = e.class_id AND s.account_id = $2 AND s.ended_at IS NULL)`,
          params
        )
        const memberships = yield* step(`UPDATE enrollments SET account_id = $2, updated_at = now() WHERE account_id = $1`, params)
        const admins = yield* step(`UPDATE admins SET account_id = $2, updated_at = now() WHERE account_id = $1`, params)
        const reviews = yield* step(
          `UPDATE account_reviews r
           SET candidate_account_ids = (SELECT array_agg(x ORDER BY x) FROM (
                                          SELECT DISTINCT CASE WHEN c = $1 THEN $2 ELSE c END AS x FROM unnest(r.candidate_account_ids) c) d),
               updated_at = now()
           WHERE r.state = 'open' AND $1 = ANY (r.candidate_account_ids)`,
          params
        )

        // Activation: nothing left to confirm on an account in use; between pending accounts the link waits on.
        const waiting = moved.filter((m) => m.confirming && m.activation === "pending").map((m) => m.userId)
        let activated = 0
        let pendingLinksKept = 0
        if (survivorState === "active") {
          const onSurvivor = yield* sql<{ readonly userId: number }>`
            UPDATE account_links l SET activation = 'active', activated_at = coalesce(l.activated_at, now())
            FROM users u
            WHERE u.id = l.user_id AND l.account_id = ${into} AND l.activation = 'pending' AND u.roles && ${sql.literal(CONFIRMING_ROLES_SQL)}
            RETURNING l.user_id`
          activated = onSurvivor.length
          if (activated > 0) yield* revokeActivations(onSurvivor.map((r) => r.userId)).pipe(Effect.provideService(SqlClient.SqlClient, sql))
        } else if (waiting.length > 0) {
          pendingLinksKept = (yield* sql`
            UPDATE activation_tokens SET account_id = ${into}
            WHERE account_id = ${from} AND used_at IS NULL AND revoked_at IS NULL RETURNING 1`).length
        }

        const outcome: MergeOutcome = {
          from,
          into,
          state: survivorState,
          moved: { links: moved.length, addresses, identities, classes, memberships, admins, reviews, mergedAccounts },
          membershipsEnded,
          activated,
          pendingLinksKept,
          districts: involved.map((d) => d.districtId)
        }
        yield* audit.record({
          actor: options.by,
          action: "account.merge",
          subject: `account ${from}`,
          reason: options.reason,
          details: {
            into,
            state: survivorState,
            moved: outcome.moved,
            users: moved.map((m) => m.userId),
            membershipsEnded,
            activated,
            districts: outcome.districts
          }
        })
        return outcome
      }))
    })

    return { merge } as const
  }),
  dependencies: [Audit.Default]
}) {}
