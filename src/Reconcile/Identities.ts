import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { RosterSource } from "../Domain/District.ts"
import type { ApplyContext } from "./Apply.ts"
import type { FindingsContext } from "./Findings.ts"
import { insertFindings, quote } from "./Findings.ts"
import { listedStaged, stageTable } from "./Entities.ts"
import { rowsWritten } from "../Store/RowsWritten.ts"

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
 * what is stored plans nothing and writes nothing), only for the users the run lists as
 * active and readable (a held, absent or removed user's identities stay as they are):
 *
 * 1. the wanted identities of those users; a login identity (`source_id`, `user_id`) listed
 *    for several of them is wanted for none (finding `shared_login_identity`); one FULL JOIN
 *    with their stored current identities plans what to add and what to end;
 * 2. a stored identity such a user no longer lists ends (`missing_from_source`, or `shared`);
 * 3. a login identity another user of the district held ends there (`claimed`): a login
 *    names one person;
 * 4. the wanted ones not stored are added, or reopened when they had ended.
 */

/** The identity provider family of a roster source: `clever`, `oneroster` (REST / ClassLink) or `csv`. */
export const identityProvider = (source: RosterSource): "clever" | "oneroster" | "csv" =>
  source === "clever" ? "clever" : source === "csv" ? "csv" : "oneroster"

/** The staged users the run lists as active and readable. */
const LISTED = listedStaged()

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
    // The plan, in one pass: what the listed users list and is not stored (add), what is
    // stored for them and no longer listed, listed under another provider, or shared (end).
    // A run whose records list what is stored plans nothing and writes nothing.
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.identities_plan`)
    yield* sql.unsafe(
      `CREATE TEMP TABLE identities_plan AS
       SELECT CASE WHEN i.user_id IS NULL THEN 'add' WHEN w.shared THEN 'shared' ELSE 'missing_from_source' END AS action,
              coalesce(w.user_id, i.user_id) AS user_id, coalesce(i.provider, $2) AS provider,
              coalesce(w.kind, i.kind) AS kind, coalesce(w.type, i.type) AS type, coalesce(w.value, i.value) AS value
       FROM pg_temp.identities_wanted w
       FULL JOIN (SELECT * FROM user_identities
                  WHERE district_id = $1 AND ended_at IS NULL AND user_id IN (SELECT user_id FROM pg_temp.identities_wanted)) i
         ON i.user_id = w.user_id AND i.provider = $2 AND i.kind = w.kind AND i.type = w.type AND i.value = w.value
       WHERE (i.user_id IS NULL AND NOT w.shared) OR (i.user_id IS NOT NULL AND (w.user_id IS NULL OR w.shared))`,
      [context.districtId, provider]
    )
    const [planned] = yield* sql.unsafe<{ readonly adds: number; readonly ends: number }>(
      `SELECT count(*) FILTER (WHERE action = 'add')::int AS adds, count(*) FILTER (WHERE action <> 'add')::int AS ends
       FROM pg_temp.identities_plan`
    )
    let ended = 0
    let added = 0
    if ((planned?.ends ?? 0) > 0) {
      // 2. Identities the listed users no longer list (or share) end.
      const [row] = yield* sql.unsafe<{ readonly n: number }>(
        `WITH ended AS (
           UPDATE user_identities i SET ended_at = now(), ended_reason = p.action
           FROM pg_temp.identities_plan p
           WHERE p.action <> 'add' AND i.user_id = p.user_id AND i.provider = p.provider AND i.kind = p.kind
             AND i.type = p.type AND i.value = p.value AND i.ended_at IS NULL
           RETURNING 1)
         SELECT count(*)::int AS n FROM ended`
      )
      ended += row?.n ?? 0
    }
    if ((planned?.adds ?? 0) > 0) {
      // 3. A login identity now listed for another user ends where it was.
      const [claimed] = yield* sql.unsafe<{ readonly n: number }>(
        `WITH ended AS (
           UPDATE user_identities i SET ended_at = now(), ended_reason = 'claimed'
           FROM pg_temp.identities_plan p
           WHERE p.action = 'add' AND p.kind IN ${LOGIN_KINDS} AND i.district_id = $1 AND i.ended_at IS NULL
             AND i.provider = p.provider AND i.kind = p.kind AND i.type = p.type AND i.value = p.value AND i.user_id <> p.user_id
           RETURNING 1)
         SELECT count(*)::int AS n FROM ended`,
        [context.districtId]
      )
      ended += claimed?.n ?? 0
      // 4. What is wanted and not stored: added, or reopened. A district without identities
      // yet (its first sync) has none to reopen (a user's identities are its district's), so
      // they are inserted plainly, sparing ON CONFLICT's speculative insertion of each row.
      const [stored] = yield* sql<{ readonly any: boolean }>`
        SELECT EXISTS (SELECT 1 FROM user_identities WHERE district_id = ${context.districtId}) AS any`
      added = yield* rowsWritten(
        `INSERT INTO user_identities (district_id, user_id, provider, kind, type, value)
         SELECT $1, p.user_id, p.provider, p.kind, p.type, p.value FROM pg_temp.identities_plan p WHERE p.action = 'add'
         ${stored?.any === false ? "" : "ON CONFLICT (user_id, provider, kind, type, value) DO UPDATE SET ended_at = NULL, ended_reason = NULL"}`,
        [context.districtId]
      )
    }
    yield* sql.unsafe(`DROP TABLE pg_temp.identities_plan`)
    yield* sql.unsafe(`DROP TABLE pg_temp.identities_wanted`)
    return { added, ended } satisfies IdentityCounts
  }).pipe(Effect.withSpan("Identities.applyIdentities"))
