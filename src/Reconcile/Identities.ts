import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { RosterSource } from "../Domain/District.ts"
import type { ApplyContext } from "./Apply.ts"
import type { FindingsContext } from "./Findings.ts"
import { insertFindings, quote } from "./Findings.ts"
import { stageTable } from "./Entities.ts"

export { encodeIdentities, IDENTITY_SEPARATOR } from "./Entities.ts"

/**
 * Rostered users' identities (migrations/0011_identities.ts, README "Accounts, linking and
 * activation"): staged with the users, applied after them in the run's transaction.
 *
 * **Staging.** `stage_users.identities` is a `text[]`, one element per identity the record
 * lists beside its source ID: `kind`, `type` and `value` joined by U+001F (the value guard
 * lets no control character into a value or a type, so the separator cannot occur in
 * them). `STAGED_IDENTITIES` unnests it into rows, the source ID included as kind
 * `source_id`: what re-key detection and anything else reading the staged identities
 * should use rather than the encoding.
 *
 * **Apply** (`applyIdentities`), set-based, compare before write (a run whose records list
 * what is stored writes nothing), only for the users the run lists as active and readable
 * (a held, absent or removed user's identities stay as they are):
 *
 * 1. the wanted identities of those users; a login identity (`source_id`, `user_id`) listed
 *    for several of them is wanted for none (finding `shared_login_identity`);
 * 2. a stored identity such a user no longer lists ends (`missing_from_source`, or `shared`);
 * 3. a login identity another user of the district held ends there (`claimed`): a login
 *    names one person;
 * 4. the wanted ones not stored are added, or reopened when they had ended.
 */

/** The identity provider family of a roster source: `clever`, `oneroster` (REST / ClassLink) or `csv`. */
export const identityProvider = (source: RosterSource): "clever" | "oneroster" | "csv" =>
  source === "clever" ? "clever" : source === "csv" ? "csv" : "oneroster"

/** The staged users the run lists as active and readable. */
const LISTED = `NOT s.invalid AND NOT s.shadowed AND s.status = 'active' AND s.excluded IS NULL`

/** A staged user's identities as rows `(kind, type, value)`, its source ID as kind `source_id` included. */
const identitiesOf = (s: string) => `(
  SELECT 'source_id'::text AS kind, ''::text AS type, ${s}.source_id AS value
  UNION ALL
  SELECT split_part(x, E'\\x1f', 1), split_part(x, E'\\x1f', 2), split_part(x, E'\\x1f', 3) FROM unnest(${s}.identities) AS x)`

/**
 * The staged identities as rows `(source_id, kind, type, value)` — the source ID as kind
 * `source_id` included — of the users the run lists as active and readable.
 */
export const STAGED_IDENTITIES = `(
  SELECT s.source_id, i.kind, i.type, i.value
  FROM ${stageTable("users")} s CROSS JOIN LATERAL ${identitiesOf("s")} i
  WHERE ${LISTED})`

const LOGIN_KINDS = `('source_id', 'user_id')`

export interface IdentityCounts {
  readonly added: number
  readonly ended: number
}

/** Applies the staged users' identities (after the users themselves). */
export const applyIdentities = (context: ApplyContext & FindingsContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const provider = identityProvider(context.rosterSource)
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.identities_wanted`)
    // (One join of the staged users with the stored ones, then their identities: each user's
    // are listed once by its provider mapping.)
    yield* sql.unsafe(
      `CREATE TEMP TABLE identities_wanted AS
       SELECT u.id AS user_id, s.source_id, i.kind, i.type, i.value, false AS shared
       FROM ${stageTable("users")} s JOIN users u ON u.district_id = $1 AND u.source_id = s.source_id
       CROSS JOIN LATERAL ${identitiesOf("s")} i
       WHERE ${LISTED}`,
      [context.districtId]
    )
    // A login listed for several users (source IDs cannot be: a repeated one is held).
    yield* sql.unsafe(
      `UPDATE pg_temp.identities_wanted w SET shared = true
       FROM (SELECT type, value FROM pg_temp.identities_wanted WHERE kind = 'user_id' GROUP BY type, value HAVING count(*) > 1) x
       WHERE w.kind = 'user_id' AND w.type = x.type AND w.value = x.value`
    )
    yield* sql.unsafe(`ANALYZE pg_temp.identities_wanted`)
    const usersFile = quote(context.files.users ?? "users")
    yield* insertFindings(
      context,
      `SELECT 'warning' AS severity, 'shared_login_identity' AS code, 'users' AS entity, w.source_id, ${usersFile} AS file,
              NULL::int AS line,
              'its userIds entry' || CASE WHEN w.type <> '' THEN ' of type ' || w.type ELSE '' END ||
              ' is listed for other users too; it is stored for none of them (a login names one person)' AS detail
       FROM pg_temp.identities_wanted w WHERE w.shared`
    )
    // 2. Identities the listed users no longer list (or share) end.
    const [ended] = yield* sql.unsafe<{ readonly n: number }>(
      `WITH listed AS (SELECT DISTINCT user_id FROM pg_temp.identities_wanted),
       ended AS (
         UPDATE user_identities i
         SET ended_at = now(),
             ended_reason = CASE WHEN i.provider = $2 AND EXISTS (
                                   SELECT 1 FROM pg_temp.identities_wanted w
                                   WHERE w.user_id = i.user_id AND w.shared AND w.kind = i.kind AND w.type = i.type AND w.value = i.value)
                                 THEN 'shared' ELSE 'missing_from_source' END
         WHERE i.district_id = $1 AND i.ended_at IS NULL AND i.user_id IN (SELECT user_id FROM listed)
           AND NOT EXISTS (SELECT 1 FROM pg_temp.identities_wanted w
                           WHERE w.user_id = i.user_id AND NOT w.shared AND i.provider = $2
                             AND w.kind = i.kind AND w.type = i.type AND w.value = i.value)
         RETURNING 1)
       SELECT count(*)::int AS n FROM ended`,
      [context.districtId, provider]
    )
    // 3. A login identity now listed for another user ends where it was.
    const [claimed] = yield* sql.unsafe<{ readonly n: number }>(
      `WITH ended AS (
         UPDATE user_identities i SET ended_at = now(), ended_reason = 'claimed'
         FROM pg_temp.identities_wanted w
         WHERE i.district_id = $1 AND i.ended_at IS NULL AND i.kind IN ${LOGIN_KINDS} AND i.provider = $2
           AND NOT w.shared AND w.kind = i.kind AND w.type = i.type AND w.value = i.value AND w.user_id <> i.user_id
         RETURNING 1)
       SELECT count(*)::int AS n FROM ended`,
      [context.districtId, provider]
    )
    // 4. What is wanted and not stored: added, or reopened.
    const [added] = yield* sql.unsafe<{ readonly n: number }>(
      `WITH added AS (
         INSERT INTO user_identities (district_id, user_id, provider, kind, type, value)
         SELECT $1, w.user_id, $2, w.kind, w.type, w.value FROM pg_temp.identities_wanted w
         WHERE NOT w.shared AND NOT EXISTS (
           SELECT 1 FROM user_identities i
           WHERE i.user_id = w.user_id AND i.provider = $2 AND i.kind = w.kind AND i.type = w.type AND i.value = w.value
             AND i.ended_at IS NULL)
         ON CONFLICT (user_id, provider, kind, type, value) DO UPDATE SET ended_at = NULL, ended_reason = NULL
         RETURNING 1)
       SELECT count(*)::int AS n FROM added`,
      [context.districtId, provider]
    )
    yield* sql.unsafe(`DROP TABLE pg_temp.identities_wanted`)
    return { added: added?.n ?? 0, ended: (ended?.n ?? 0) + (claimed?.n ?? 0) } satisfies IdentityCounts
  }).pipe(Effect.withSpan("Identities.applyIdentities"))
