import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { DistrictNotFound } from "../Domain/Errors.ts"
import { LEASE_NAMESPACE } from "../Reconcile/Lease.ts"
import { removeSpooled, spoolDirConfig } from "../Mail/Mailer.ts"
import { DIGEST_TABLES } from "../Store/DigestTables.ts"

/**
 * `rosterd district erase`: a data-processing agreement's end-of-contract deletion.
 *
 * In **one transaction** (all or nothing), under the district's lease (no sync, hold
 * approval or scheduled slot of it meanwhile), as the writer `erase` — the only writer the
 * lock triggers let delete rostered rows (migrations/0007_erase.ts):
 *
 * - every row of the district's roster and of every table keyed to it is deleted (the
 *   `STEPS` below, in foreign-key order), and the accounts its sync created that are left
 *   with nothing: no link, no address, no teacher-made class, no other use;
 * - accounts that belong to people beyond the district (grassroots accounts, accounts
 *   linked to another district, owning teacher-made classes, or with an address of their
 *   own) are kept: only unlinked, losing the addresses that came from this district's
 *   roster or its admin invitations (an address imported from the platform is its own);
 * - kept: the `districts` row, emptied (name = id, no settings, no rules), removed and
 *   marked `erased_at`, and its `sync_runs` (status, times, counts; their free text —
 *   notes, errors, source description — cleared), so audit rows and run ids stay valid; and
 *   the audit log, plus one `district.erase` row with the counts removed per table;
 * - last, every table with a `district_id` column is checked for rows left behind (a table
 *   added later that this file does not know): any → the whole erase is rolled back.
 *
 * After the commit, the spooled copies (`<spool>/outbox-<id>.eml`, rosterd.mail.spoolDir) of
 * the district's messages the outbox still held are removed from this host's spool: they
 * hold addresses and, for activations and invitations, the links. Files are not part of the
 * transaction, hence after it: a failed erase leaves them too. Messages pruned from the
 * outbox earlier had their files pruned with them (Retention.ts); another host's spool is
 * that host's to clean.
 */

export class EraseRefused extends Schema.TaggedError<EraseRefused>()("EraseRefused", {
  district: Schema.String,
  message: Schema.String
}) {}

export interface EraseOptions {
  readonly by: string
  readonly reason: string | null
}

export interface EraseResult {
  readonly districtId: string
  /** Rows deleted per table, in the order they were deleted. */
  readonly removed: Readonly<Record<string, number>>
  /** Accounts the district used that belong to people beyond it: unlinked, kept. */
  readonly accountsKept: number
  /** Run history rows kept (their free text cleared). */
  readonly runsKept: number
  /** Spooled message files removed from this host's mail spool. */
  readonly spoolFilesRemoved: number
}

/** Tables that keep rows of an erased district, by design (see above). */
const KEPT_TABLES = ["audit_log", "sync_runs"]

/**
 * The erased district's sets, computed before anything is deleted: its users and classes,
 * the accounts it used (linked, created by it, or confirmed by its admins) and the
 * addresses its roster and admin invitations carried.
 */
const SETS = [
  `CREATE TEMP TABLE erase_users ON COMMIT DROP AS SELECT id FROM users WHERE district_id = $1`,
  `CREATE TEMP TABLE erase_classes ON COMMIT DROP AS SELECT id FROM classes WHERE district_id = $1`,
  `CREATE TEMP TABLE erase_accounts ON COMMIT DROP AS
     SELECT account_id AS id FROM account_links WHERE user_id IN (SELECT id FROM erase_users)
     UNION SELECT id FROM accounts WHERE district_id = $1
     UNION SELECT account_id FROM admins WHERE district_id = $1 AND account_id IS NOT NULL`,
  `CREATE TEMP TABLE erase_addresses ON COMMIT DROP AS
     SELECT lower(btrim(email)) AS email_key FROM users WHERE district_id = $1 AND coalesce(btrim(email), '') <> ''
     UNION SELECT email_key FROM admins WHERE district_id = $1`
]

/** `[table, DELETE … ]` with the district as `$1`, dependents first. */
const STEPS: ReadonlyArray<readonly [string, string]> = [
  // An address leaves an account it reached through this district, unless the platform
  // imported it or another district's user or admin on the same account carries it too.
  ["account_emails", `DELETE FROM account_emails e WHERE e.account_id IN (SELECT id FROM erase_accounts)
     AND e.added_by <> 'import'
     AND (e.email_key IN (SELECT email_key FROM erase_addresses) OR e.source_user_id IN (SELECT id FROM erase_users))
     AND NOT EXISTS (SELECT 1 FROM account_links l JOIN users u ON u.id = l.user_id
                     WHERE l.account_id = e.account_id AND u.district_id <> $1 AND lower(btrim(u.email)) = e.email_key)
     AND NOT EXISTS (SELECT 1 FROM admins m WHERE m.account_id = e.account_id AND m.district_id <> $1 AND m.email_key = e.email_key)`],
  ["activation_tokens", `DELETE FROM activation_tokens WHERE user_id IN (SELECT id FROM erase_users)`],
  ["account_reviews", `DELETE FROM account_reviews WHERE district_id = $1 OR user_id IN (SELECT id FROM erase_users)`],
  ["account_links", `DELETE FROM account_links WHERE user_id IN (SELECT id FROM erase_users)`],
  ["class_integrations", `DELETE FROM class_integrations WHERE class_id IN (SELECT id FROM erase_classes)`],
  ["enrollments", `DELETE FROM enrollments WHERE district_id = $1`],
  // The district's students (and teachers) in teacher-made classes: the classes stay.
  ["enrollments_in_teacher_made_classes", `DELETE FROM enrollments
     WHERE user_id IN (SELECT id FROM erase_users) OR class_id IN (SELECT id FROM erase_classes)`],
  ["rekey_records", `DELETE FROM rekey_records WHERE rekey_id IN (SELECT id FROM rekeys WHERE district_id = $1)`],
  ["rekeys", `DELETE FROM rekeys WHERE district_id = $1`],
  ["rekey_proposals", `DELETE FROM rekey_proposals WHERE run_id IN (SELECT run_id FROM holds WHERE district_id = $1)`],
  ["rekey_suspicions", `DELETE FROM rekey_suspicions WHERE run_id IN (SELECT run_id FROM holds WHERE district_id = $1)`],
  ["held_changes", `DELETE FROM held_changes WHERE run_id IN (SELECT run_id FROM holds WHERE district_id = $1)`],
  ["holds", `DELETE FROM holds WHERE district_id = $1`],
  ["run_changes", `DELETE FROM run_changes WHERE district_id = $1`],
  ["run_change_values", `DELETE FROM run_change_values WHERE district_id = $1`],
  ["run_undos", `DELETE FROM run_undos WHERE district_id = $1`],
  ["notifications", `DELETE FROM notifications WHERE district_id = $1`],
  ["notify_district_state", `DELETE FROM notify_district_state WHERE district_id = $1`],
  ...DIGEST_TABLES.map((table) =>
    [table, `DELETE FROM ${table} WHERE set_id IN (SELECT id FROM roster_digest_sets WHERE district_id = $1)`] as const
  ),
  ["roster_digest_sets", `DELETE FROM roster_digest_sets WHERE district_id = $1`],
  ["roster_applied", `DELETE FROM roster_applied WHERE district_id = $1`],
  ["findings", `DELETE FROM findings WHERE district_id = $1`],
  ["sync_cursors", `DELETE FROM sync_cursors WHERE district_id = $1`],
  ["outbox", `DELETE FROM outbox WHERE district_id = $1`],
  ["pauses", `DELETE FROM pauses WHERE district_id = $1`],
  ["admin_tokens", `DELETE FROM admin_tokens WHERE admin_id IN (SELECT id FROM admins WHERE district_id = $1)`],
  ["admins", `DELETE FROM admins WHERE district_id = $1`],
  ["partnership_districts", `DELETE FROM partnership_districts WHERE district_id = $1`],
  ["district_credentials", `DELETE FROM district_credentials WHERE district_id = $1`],
  ["user_identities", `DELETE FROM user_identities WHERE district_id = $1`],
  ["contact_links", `DELETE FROM contact_links WHERE district_id = $1`],
  ["district_masking", `DELETE FROM district_masking WHERE district_id = $1`],
  ["users", `DELETE FROM users WHERE district_id = $1`],
  ["classes", `DELETE FROM classes WHERE district_id = $1`],
  ["courses", `DELETE FROM courses WHERE district_id = $1`],
  ["terms", `DELETE FROM terms WHERE district_id = $1`],
  ["schools", `DELETE FROM schools WHERE district_id = $1`],
  // Accounts the district created, left with no use at all. One merged into another is
  // kept while that one is (the foreign key), which never happens for a merged account
  // of the district itself: it has no links nor addresses either.
  ["accounts", `WITH doomed AS (
       SELECT a.id FROM accounts a
       WHERE a.district_id = $1 AND a.origin = 'district'
         AND NOT EXISTS (SELECT 1 FROM account_links l WHERE l.account_id = a.id)
         AND NOT EXISTS (SELECT 1 FROM account_emails e WHERE e.account_id = a.id)
         AND NOT EXISTS (SELECT 1 FROM account_identities i WHERE i.account_id = a.id)
         AND NOT EXISTS (SELECT 1 FROM classes c WHERE c.owner_account_id = a.id)
         AND NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.account_id = a.id)
         AND NOT EXISTS (SELECT 1 FROM admins m WHERE m.account_id = a.id)
         AND NOT EXISTS (SELECT 1 FROM account_reviews r WHERE r.resolved_account_id = a.id)
         AND NOT EXISTS (SELECT 1 FROM activation_tokens t WHERE t.account_id = a.id))
     DELETE FROM accounts a USING doomed d WHERE a.id = d.id
       AND NOT EXISTS (SELECT 1 FROM accounts m WHERE m.merged_into = a.id AND NOT EXISTS (SELECT 1 FROM doomed x WHERE x.id = m.id))`]
]

const count = (statement: string) => `WITH gone AS (${statement} RETURNING 1) SELECT count(*)::int AS n FROM gone`

export class DistrictErase extends Effect.Service<DistrictErase>()("rosterd/DistrictErase", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit

    const refuse = (district: string, message: string) => new EraseRefused({ district, message })

    /** Refusals checked inside the transaction, before anything is deleted. */
    const checkRefusals = (districtId: string) =>
      Effect.gen(function*() {
        const [district] = yield* sql`SELECT id FROM districts WHERE id = ${districtId} FOR UPDATE`
        if (district === undefined) return yield* new DistrictNotFound({ district: districtId })
        // The lease a sync holds for its session, and a hold approval for its transaction.
        const [lease] = yield* sql<{ readonly ok: boolean }>`SELECT pg_try_advisory_xact_lock(${LEASE_NAMESPACE}, hashtext(${districtId})) AS ok`
        if (!lease?.ok) {
          return yield* refuse(districtId, `a sync of ${districtId} is running (it holds the district's lease): try again when it has finished; nothing was erased`)
        }
        // Erasing these would take their rights in the other districts with them.
        const spanning = yield* sql<{ readonly id: number }>`
          SELECT m.id FROM admins m
          WHERE m.district_id = ${districtId} AND m.state <> 'removed' AND m.role <> 'school'
            AND EXISTS (SELECT 1 FROM partnership_districts p
                        WHERE p.partnership_id = m.partnership_id AND p.district_id <> ${districtId}
                          AND (m.role = 'partnership' OR p.region_id = m.region_id))
          ORDER BY m.id`
        if (spanning.length > 0) {
          return yield* refuse(
            districtId,
            `administrators ${spanning.map((a) => a.id).join(", ")} were invited in ${districtId} and also cover other districts ` +
              `(partnership or region role): remove them (rosterd admin remove) or invite them again from another district first; nothing was erased`
          )
        }
      })

    /** Rows of the district left in any table with a `district_id` column (but the kept ones). */
    const leftBehind = (districtId: string) =>
      Effect.gen(function*() {
        const tables = yield* sql<{ readonly name: string }>`
          SELECT c.relname AS name FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          WHERE a.attname = 'district_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
            AND c.relnamespace = to_regnamespace(current_schema()) AND NOT c.relname = ANY (${KEPT_TABLES})
          ORDER BY c.relname`
        const left: Array<string> = []
        for (const { name } of tables) {
          const [row] = yield* sql.unsafe<{ readonly any: boolean }>(`SELECT EXISTS (SELECT 1 FROM "${name}" WHERE district_id = $1) AS any`, [districtId])
          if (row?.any) left.push(name)
        }
        return left
      })

    const erase = Effect.fn("DistrictErase.erase")(function*(districtId: string, options: EraseOptions) {
      const spoolDir = yield* spoolDirConfig.pipe(Effect.orDie)
      const { result, messages } = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`SELECT set_config('rosterd.writer', 'erase', true)`
        yield* checkRefusals(districtId)
        for (const statement of SETS) {
          const table = /TEMP TABLE (\w+)/.exec(statement)![1]!
          yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.${table}`)
          yield* sql.unsafe(statement, [districtId])
          // Temp tables are never auto-analysed: the deletes below join a million ids.
          yield* sql.unsafe(`ANALYZE pg_temp.${table}`)
        }
        const messages = yield* sql<{ readonly id: string }>`SELECT id::text AS id FROM outbox WHERE district_id = ${districtId}`
        const removed: Record<string, number> = {}
        for (const [table, statement] of STEPS) {
          // A statement over the temp sets alone takes no parameter (Postgres refuses an unused one).
          const [row] = yield* sql.unsafe<{ readonly n: number }>(count(statement), statement.includes("$1") ? [districtId] : [])
          removed[table] = row?.n ?? 0
        }
        // Kept accounts the district created lose that provenance: the district is gone.
        yield* sql`UPDATE accounts SET district_id = NULL, updated_at = now() WHERE district_id = ${districtId}`
        const [kept] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM accounts WHERE id IN (SELECT id FROM erase_accounts)`
        const left = yield* leftBehind(districtId)
        if (left.length > 0) {
          return yield* refuse(districtId, `rows of ${districtId} remain in ${left.join(", ")}, which erase does not know: nothing was erased`)
        }
        const [runs] = yield* sql.unsafe<{ readonly n: number }>(
          count(`UPDATE sync_runs SET notes = NULL, error = NULL, source_description = NULL WHERE district_id = $1`),
          [districtId]
        )
        yield* sql`
          UPDATE districts SET name = id, settings = '{}'::jsonb, rules = '{}'::jsonb, removed_at = coalesce(removed_at, now()),
                 next_run_at = NULL, next_run_request = 'auto', next_run_trigger = 'schedule', retry_attempt = 0,
                 erased_at = now(), updated_at = now()
          WHERE id = ${districtId}`
        const result = { districtId, removed, accountsKept: kept?.n ?? 0, runsKept: runs?.n ?? 0 }
        yield* audit.record({
          actor: options.by,
          action: "district.erase",
          districtId,
          subject: `district ${districtId}`,
          reason: options.reason,
          details: { removed, accountsKept: result.accountsKept, runsKept: result.runsKept }
        })
        return { result, messages: messages.map((m) => m.id) }
      }))
      const spoolFilesRemoved = yield* removeSpooled(spoolDir, messages)
      return { ...result, spoolFilesRemoved } satisfies EraseResult
    })

    return {
      erase: (districtId: string, options: EraseOptions) => erase(districtId, options).pipe(Effect.catchTag("SqlError", Effect.die))
    } as const
  }),
  dependencies: [Audit.Default]
}) {}
