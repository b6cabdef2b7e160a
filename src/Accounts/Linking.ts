import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { ApplyContext } from "../Reconcile/Apply.ts"
import type { FindingsContext } from "../Reconcile/Findings.ts"
import { insertFindings } from "../Reconcile/Findings.ts"
import { ENROLLED } from "../Reconcile/Rules/People.ts"
import { ADMIN_ROLES_SQL, CONFIRMING_ROLES_SQL } from "../Admins/Roles.ts"

/**
 * Account linking and activation (seeds 001, 002), run in every sync's transaction after
 * the roster is applied, over every active teacher and student of the district that has
 * no account yet:
 *
 * - exactly one existing account has the district e-mail (trimmed, case-insensitive), and
 *   no other active rostered user is linked to it → linked (`email`); a teacher who already
 *   uses that account is active at once;
 * - no account has it (or the user has no e-mail) → a new district account (`created`);
 *   a teacher's stays pending until confirmed (activation e-mail, see Activation.ts);
 * - otherwise it is never guessed: several accounts, an account already linked to another
 *   active rostered user, or an address shared by several users of this run → the review
 *   queue (`rosterd accounts review`), reported every run while open.
 *
 * Links are permanent (a trigger refuses removing or moving them once the account is in
 * use); a deactivated user keeps its link, so a returning source ID comes back linked.
 * Students are active while enrolled in at least one active class, pending otherwise.
 * Roster admins (administrator, district_admin, staff) are handled like teachers when the
 * district's rule `syncAdmins` is on (the default), and get no account here when it is off.
 * Other roles (aides, guardians…) get no account here.
 */

export interface LinkCounts {
  readonly linked: number
  readonly created: number
  readonly queued: number
}

const PEOPLE = `ARRAY['teacher', 'student']`

export interface LinkOptions {
  /** The district rule `syncAdmins`: roster admins are linked (like teachers) too. */
  readonly syncAdmins: boolean
}

export const linkAccounts = (context: ApplyContext & FindingsContext, options: LinkOptions = { syncAdmins: true }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const district = context.districtId
    const people = options.syncAdmins ? `(${PEOPLE} || ${ADMIN_ROLES_SQL})` : PEOPLE
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.link_decisions`)
    yield* sql.unsafe(
      `CREATE TEMP TABLE link_decisions AS
       WITH unlinked AS (
         SELECT u.id AS user_id, nullif(lower(btrim(u.email)), '') AS email_key, btrim(u.email) AS email,
                -- "teacher": confirms by e-mail (teachers, and roster admins when linked)
                u.roles && ${CONFIRMING_ROLES_SQL} AS teacher
         FROM users u
         WHERE u.district_id = $1 AND u.active AND u.roles && ${people}
           AND NOT EXISTS (SELECT 1 FROM account_links l WHERE l.user_id = u.id)
       ),
       candidates AS (
         SELECT e.email_key, array_agg(DISTINCT e.account_id ORDER BY e.account_id) AS ids
         FROM account_emails e JOIN accounts a ON a.id = e.account_id AND a.state <> 'merged'
         WHERE e.email_key IN (SELECT email_key FROM unlinked WHERE email_key IS NOT NULL)
         GROUP BY e.email_key
       ),
       judged AS (
         SELECT u.*, coalesce(c.ids, '{}') AS candidate_ids,
                u.email_key IS NOT NULL AND count(*) OVER (PARTITION BY u.email_key) > 1 AS shared,
                cardinality(c.ids) = 1 AND EXISTS (
                  SELECT 1 FROM account_links o JOIN users x ON x.id = o.user_id AND x.active WHERE o.account_id = c.ids[1]) AS taken
         FROM unlinked u LEFT JOIN candidates c ON c.email_key = u.email_key
       )
       SELECT user_id, email_key, email, teacher, candidate_ids,
              CASE WHEN shared THEN 'email_shared'
                   WHEN cardinality(candidate_ids) > 1 THEN 'several_accounts'
                   WHEN taken THEN 'email_linked_elsewhere'
                   WHEN cardinality(candidate_ids) = 1 THEN 'link'
                   ELSE 'create' END AS decision,
              CASE WHEN NOT shared AND cardinality(candidate_ids) = 1 AND NOT taken THEN candidate_ids[1]
                   WHEN NOT shared AND cardinality(candidate_ids) = 0 THEN nextval(pg_get_serial_sequence('accounts', 'id'))
              END AS account_id,
              user_id IN ${ENROLLED} AS enrolled
       FROM judged`,
      [district]
    )
    const [counts] = yield* sql.unsafe<{ readonly linked: number; readonly created: number; readonly queued: number }>(
      `SELECT count(*) FILTER (WHERE decision = 'link')::int AS linked, count(*) FILTER (WHERE decision = 'create')::int AS created,
              count(*) FILTER (WHERE decision NOT IN ('link', 'create'))::int AS queued
       FROM link_decisions`
    )
    if (counts === undefined || counts.linked + counts.created + counts.queued === 0) {
      yield* reportReviews(context)
      return { linked: 0, created: 0, queued: 0 } satisfies LinkCounts
    }

    yield* sql.unsafe(
      `WITH created AS (
         INSERT INTO accounts (id, origin, state, district_id, activated_at)
         SELECT account_id, 'district', CASE WHEN NOT teacher AND enrolled THEN 'active' ELSE 'pending' END, $1,
                CASE WHEN NOT teacher AND enrolled THEN now() END
         FROM link_decisions WHERE decision = 'create'
       ),
       addresses AS (
         INSERT INTO account_emails (account_id, email, email_key, added_by)
         SELECT account_id, email, email_key, 'sync' FROM link_decisions WHERE decision = 'create' AND email_key IS NOT NULL
       )
       INSERT INTO account_links (user_id, account_id, method, activation, activated_at)
       SELECT user_id, account_id, CASE WHEN decision = 'link' THEN 'email' ELSE 'created' END,
              CASE WHEN teacher THEN CASE WHEN decision = 'link' THEN 'active' ELSE 'pending' END
                   WHEN enrolled THEN 'active' ELSE 'pending' END,
              CASE WHEN (teacher AND decision = 'link') OR (NOT teacher AND enrolled) THEN now() END
       FROM link_decisions WHERE decision IN ('link', 'create')`,
      [district]
    )
    // Reviews: one open item per user, kept current; items whose user is now linked are closed.
    yield* sql.unsafe(
      `INSERT INTO account_reviews (district_id, user_id, reason, candidate_account_ids)
       SELECT $1, user_id, decision, candidate_ids FROM link_decisions WHERE decision NOT IN ('link', 'create')
       ON CONFLICT (user_id) WHERE state = 'open' DO UPDATE
         SET reason = excluded.reason, candidate_account_ids = excluded.candidate_account_ids, updated_at = now()
         WHERE (account_reviews.reason, account_reviews.candidate_account_ids) IS DISTINCT FROM (excluded.reason, excluded.candidate_account_ids)`,
      [district]
    )
    yield* reportReviews(context)
    return counts satisfies LinkCounts
  }).pipe(Effect.withSpan("Linking.linkAccounts"))

/** Open review items: closed when their user got linked (by an operator, or the sync) or left; the rest reported. */
const reportReviews = (context: ApplyContext & FindingsContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(
      `UPDATE account_reviews r SET state = 'resolved', resolution = 'closed', resolved_by = 'sync', resolved_at = now(), updated_at = now()
       WHERE r.district_id = $1 AND r.state = 'open'
         AND (EXISTS (SELECT 1 FROM account_links l WHERE l.user_id = r.user_id)
              OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id AND u.active))`,
      [context.districtId]
    )
    yield* insertFindings(
      context,
      `SELECT 'warning' AS severity, 'account_review' AS code, 'users' AS entity, u.source_id, NULL AS file, NULL::int AS line,
              CASE r.reason
                WHEN 'several_accounts' THEN 'its e-mail belongs to ' || cardinality(r.candidate_account_ids) || ' accounts ('
                                             || array_to_string(r.candidate_account_ids, ', ') || ')'
                WHEN 'email_linked_elsewhere' THEN 'its e-mail belongs to account ' || array_to_string(r.candidate_account_ids, ', ')
                                                   || ', already linked to another rostered user'
                ELSE 'its e-mail is shared with other rostered users' END ||
              '; not linked until reviewed: rosterd accounts review link|create ' || r.id AS detail
       FROM account_reviews r JOIN users u ON u.id = r.user_id
       WHERE r.district_id = $2 AND r.state = 'open'`
    )
  })

/**
 * Students are active while enrolled in at least one active class (seed 001); their
 * account becomes active the first time. Writes only what changes. (Run after
 * `snapshotEnrolled`, like `linkAccounts`.)
 */
export const refreshStudentActivation = (context: ApplyContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(
      `WITH wanted AS (
         SELECT l.user_id, l.account_id, CASE WHEN u.id IN ${ENROLLED} THEN 'active' ELSE 'pending' END AS activation
         FROM account_links l JOIN users u ON u.id = l.user_id
         WHERE u.district_id = $1 AND 'student' = ANY (u.roles) AND NOT 'teacher' = ANY (u.roles)),
       changed AS (
         UPDATE account_links l SET activation = w.activation,
                activated_at = CASE WHEN w.activation = 'active' THEN coalesce(l.activated_at, now()) ELSE l.activated_at END
         FROM wanted w WHERE l.user_id = w.user_id AND l.activation <> w.activation
         RETURNING l.account_id, l.activation)
       UPDATE accounts a SET state = 'active', activated_at = coalesce(a.activated_at, now()), updated_at = now()
       FROM changed c WHERE a.id = c.account_id AND c.activation = 'active' AND a.state = 'pending'`,
      [context.districtId]
    )
  }).pipe(Effect.withSpan("Linking.refreshStudentActivation"))
