import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { FindingsContext } from "./Findings.ts"
import { insertFindings, quote } from "./Findings.ts"

/**
 * Data-quality findings that the district rules depend on, for every provider. They never
 * change what is applied; they tell the operator what the district should fix:
 *
 * - `missing_email` — account linking is by district e-mail;
 * - `missing_birth_date` — a student without one counts as under 13;
 * - `masked_pii` (error) — names or e-mails that are mostly blank, hashed-looking or one
 *   value repeated: the district (or ClassLink's shared fields / Data Guard) is hiding
 *   them, and e-mail linking cannot work. Reported as counts, never values.
 *
 * Only complete (bulk) feeds are judged: a delta holds too little to say what is missing.
 */

/** At least this many users before "most of them" means anything. */
const MIN_USERS_FOR_MASKING = 10

export const checkQuality = (context: FindingsContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const users = `(SELECT * FROM stage_users WHERE NOT invalid AND NOT shadowed AND status = 'active')`
    const usersFile = quote(context.files.users ?? "users")

    if (context.modes.users === "bulk") {
      yield* insertFindings(
        context,
        `SELECT 'warning' AS severity, 'missing_email' AS code, 'users' AS entity, source_id, ${usersFile} AS file, line,
                'no e-mail address: the account cannot be linked by e-mail' AS detail
         FROM ${users} u WHERE email IS NULL AND roles && ARRAY['student', 'teacher', 'administrator', 'staff', 'district_admin']`
      )

      if (context.modes.demographics === "bulk") {
        yield* insertFindings(
          context,
          `SELECT 'warning' AS severity, 'missing_birth_date' AS code, 'users' AS entity, u.source_id, ${usersFile} AS file, u.line,
                  'a student without a birth date counts as under 13' AS detail
           FROM ${users} u
           WHERE 'student' = ANY (u.roles)
             -- (a held, unreadable row keeps the stored date: reported as invalid instead)
             AND NOT EXISTS (SELECT 1 FROM stage_demographics d
                             WHERE d.source_id = u.source_id AND (d.invalid OR (d.status = 'active' AND d.birth_date IS NOT NULL)))`
        )
      } else if (context.modes.demographics === null) {
        yield* insertFindings(
          context,
          `SELECT 'warning' AS severity, 'missing_birth_date' AS code, 'users' AS entity, NULL AS source_id, ${usersFile} AS file,
                  NULL::int AS line,
                  'the source provides no birth dates (no demographics): ' || count(*) || ' students count as under 13' AS detail
           FROM ${users} u WHERE 'student' = ANY (u.roles) HAVING count(*) > 0`
        )
      }

      // Masked personal fields, judged over all users at once.
      for (const [column, label] of [["email", "e-mail"], ["given_name", "given name"], ["family_name", "family name"]] as const) {
        yield* insertFindings(
          context,
          `WITH f AS (SELECT ${column} AS v FROM ${users} u),
           stats AS (
             SELECT count(*) AS total,
                    count(*) FILTER (WHERE v IS NULL) AS blank,
                    count(*) FILTER (WHERE v ~* '^([0-9a-f]{32,}|[a-z0-9+/]{40,}={0,2}|[*x#]+)$') AS hashed,
                    (SELECT count(*) FROM f WHERE v IS NOT NULL GROUP BY v ORDER BY count(*) DESC LIMIT 1) AS top
             FROM f)
           SELECT 'error' AS severity, 'masked_pii' AS code, 'users' AS entity, NULL AS source_id, ${usersFile} AS file, NULL::int AS line,
                  ${quote(label)} || ' looks masked: ' || concat_ws(', ',
                    CASE WHEN blank * 2 > total THEN blank || ' of ' || total || ' users have none' END,
                    CASE WHEN hashed * 10 > total THEN hashed || ' of ' || total || ' look hashed or starred out' END,
                    CASE WHEN top * 10 > total AND top >= 10 THEN top || ' of ' || total || ' users share one value' END) ||
                  '. The district may be hiding personal fields (shared-field settings, Data Guard); ' ||
                  'accounts cannot be linked by e-mail until it shares them' AS detail
           FROM stats
           WHERE total >= ${MIN_USERS_FOR_MASKING}
             AND (blank * 2 > total OR hashed * 10 > total OR (top * 10 > total AND top >= 10${column === "email" ? "" : " AND top * 4 > total"}))`
        )
      }
    }

  }).pipe(Effect.withSpan("Quality.checkQuality"))
