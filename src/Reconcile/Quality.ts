import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { FindingsContext } from "./Findings.ts"
import { insertFindings, quote } from "./Findings.ts"
import { MaskingBit, PLACEHOLDER_WORDS } from "../Domain/Masking.ts"

/**
 * Data-quality findings that the district rules depend on, for every provider:
 *
 * - `missing_email` — account linking is by district e-mail;
 * - `missing_birth_date` — a student without one counts as under 13;
 * - `masked_pii` (error) — a personal field (e-mail, given name, family name) that is mostly
 *   blank, hashed-looking or one value repeated: the district (or ClassLink's shared fields /
 *   Data Guard) is hiding it. Reported as counts, never values.
 *
 * Masking is judged **per field** over a complete (bulk) users feed and remembered in
 * `district_masking` until a complete feed shows the field unmasked (a delta holds too little
 * to say). It does not only report: account linking (src/Accounts/Linking.ts) makes no
 * account, link or activation e-mail from a masked address — the district's whole e-mail
 * field while it is masked, and any one address that looks masked (`maskedEmail`) — and
 * does not match people by masked names. When the district unmasks, the next run links.
 *
 * What counts as masked, per value:
 *
 * - blank (no value);
 * - hashed: a hex string (a whole name, or an address's local part) of any length once it
 *   holds a digit, of eight characters or more otherwise; a long base64 string; or only `*`,
 *   `#` or `x` characters;
 * - a placeholder address: a domain under `.invalid`, or with a label such as `masked`,
 *   `redacted`, `hidden`, `anonymized`;
 * - shared: the one value most users have.
 *
 * A field is masked when more than half its values are blank, more than a tenth hashed or
 * placeholders, or at least ten users (more than a tenth; names: a quarter) share one value.
 * One address on its own is judged more strictly (`maskedEmail`: a placeholder domain, a hex
 * local part of 16 digits or more — or of 8 or more mixing digits and letters — or one shared
 * by ten people or more), since real local parts such as `abe` or `dee` are hex too.
 */

/** At least this many users before "most of them" means anything. */
const MIN_USERS_FOR_MASKING = 10

/** One address given to this many active users of a district (or more) is a placeholder, not theirs. */
export const MASK_SHARED_MIN = 10

/**
 * SQL: the addresses (as keys, `lower(btrim(email))`) of the district `district` given to
 * `MASK_SHARED_MIN` active users or more — judged among the keys of `among` (a set, e.g.
 * `(SELECT email_key FROM …)`) when given, so a few changed addresses are judged alone.
 */
export const sharedAddressKeys = (district: string, among?: string) =>
  `(SELECT lower(btrim(x.email)) AS email_key FROM users x
    WHERE x.district_id = ${district} AND x.active AND ${among === undefined ? "coalesce(btrim(x.email), '') <> ''" : `lower(btrim(x.email)) IN ${among}`}
    GROUP BY 1 HAVING count(*) >= ${MASK_SHARED_MIN})`

/** The personal fields judged for masking (columns of `users`), with their labels. */
export const MASKED_FIELDS = [["email", "e-mail"], ["given_name", "given name"], ["family_name", "family name"]] as const
export type MaskedField = (typeof MASKED_FIELDS)[number][0]

/**
 * SQL: the (lower-case) domain `d` is a placeholder. The pattern costs about 2 µs a value
 * (an unanchored alternation), so it only runs on domains holding one of its words' fixed
 * parts — a match always does (`LIKE`, about a tenth of the cost): 108,000 addresses took
 * 210 ms, now 75.
 */
const placeholderDomain = (d: string) =>
  `(${d} LIKE ANY (ARRAY[${PLACEHOLDER_WORDS.map((w) => `'%${w.split("[")[0]}%'`).join(", ")}])
    AND ${d} ~ '(^|\\.)(${PLACEHOLDER_WORDS.join("|")})(\\.|$)')`

/** SQL: the address `e` (a text expression) looks masked on its own (see above). Null when `e` is null. */
export const maskedEmail = (e: string) =>
  `(${placeholderDomain(`split_part(lower(btrim(${e})), '@', 2)`)}
    OR split_part(lower(btrim(${e})), '@', 1) ~ '^([0-9a-f]{16,}|[*#]+|x{3,})$'
    OR (split_part(lower(btrim(${e})), '@', 1) ~ '^[0-9a-f]{8,}$' AND split_part(lower(btrim(${e})), '@', 1) ~ '[0-9]'
        AND split_part(lower(btrim(${e})), '@', 1) ~ '[a-f]'))`

/**
 * SQL: the staged user `u`'s `field` counts as hashed (or starred out), or as a placeholder
 * address, when judging the whole field: bits judged when the record was decoded
 * (src/Domain/Masking.ts).
 */
const hashedValue = (field: MaskedField) =>
  `(u.masking & ${field === "email" ? MaskingBit.emailHashed : field === "given_name" ? MaskingBit.givenNameHashed : MaskingBit.familyNameHashed}) <> 0`
const placeholderValue = (field: MaskedField) => field === "email" ? `(u.masking & ${MaskingBit.emailPlaceholder}) <> 0` : "false"

/** SQL: the district `$district` has its e-mail field masked (as its last complete users feed showed). */
export const districtEmailMasked = (district: string) =>
  `EXISTS (SELECT 1 FROM district_masking m WHERE m.district_id = ${district} AND m.field = 'email')`

/** SQL: the district `$district` has a name field masked. */
export const districtNamesMasked = (district: string) =>
  `EXISTS (SELECT 1 FROM district_masking m WHERE m.district_id = ${district} AND m.field IN ('given_name', 'family_name'))`

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

      // Masked personal fields, judged per field over all users at once, and remembered.
      yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.masking`)
      // The three fields of the staged users read once (`u`; the statement read the staging
      // table six times), with their masking bits (no pattern runs here).
      yield* sql.unsafe(
        `CREATE TEMP TABLE masking AS
         WITH u AS MATERIALIZED (SELECT ${MASKED_FIELDS.map(([field]) => field).join(", ")}, masking FROM ${users} s)
         ${
          MASKED_FIELDS.map(([field]) =>
            `SELECT ${quote(field)}::text AS field, count(*)::int AS total,
                    count(*) FILTER (WHERE u.${field} IS NULL)::int AS blank,
                    count(*) FILTER (WHERE ${hashedValue(field)})::int AS hashed,
                    count(*) FILTER (WHERE ${placeholderValue(field)})::int AS placeholder,
                    coalesce((SELECT count(*) FROM u x WHERE x.${field} IS NOT NULL
                              GROUP BY ${field === "email" ? "lower(btrim(x.email))" : `x.${field}`} ORDER BY count(*) DESC LIMIT 1), 0)::int AS top
             FROM u`
          ).join("\nUNION ALL\n")
        }`
      )
      yield* sql.unsafe(
        `ALTER TABLE pg_temp.masking ADD COLUMN masked boolean;
         UPDATE pg_temp.masking SET masked = total >= ${MIN_USERS_FOR_MASKING}
           AND (blank * 2 > total OR (hashed + placeholder) * 10 > total OR (top * 10 > total AND top >= 10 AND (field = 'email' OR top * 4 > total)))`
      )
      const labels = `CASE field ${MASKED_FIELDS.map(([field, label]) => `WHEN ${quote(field)} THEN ${quote(label)}`).join(" ")} END`
      yield* insertFindings(
        context,
        `SELECT 'error' AS severity, 'masked_pii' AS code, 'users' AS entity, NULL AS source_id, ${usersFile} AS file, NULL::int AS line,
                ${labels} || ' looks masked: ' || concat_ws(', ',
                  CASE WHEN blank * 2 > total THEN blank || ' of ' || total || ' users have none' END,
                  CASE WHEN (hashed + placeholder) * 10 > total AND hashed > 0 THEN hashed || ' of ' || total || ' look hashed or starred out' END,
                  CASE WHEN (hashed + placeholder) * 10 > total AND placeholder > 0
                       THEN placeholder || ' of ' || total || ' have a placeholder domain' END,
                  CASE WHEN top * 10 > total AND top >= 10 THEN top || ' of ' || total || ' users share one value' END) ||
                '. The district may be hiding personal fields (shared-field settings, Data Guard); ' ||
                CASE WHEN field = 'email' THEN 'no account is made, linked or sent an activation e-mail from these addresses until it shares them'
                     ELSE 'people are not matched by these names until it shares them' END AS detail
         FROM pg_temp.masking WHERE masked`
      )
      // Remembered for linking (and for delta runs): written only when the verdict or its counts change.
      yield* sql.unsafe(
        `DELETE FROM district_masking d WHERE d.district_id = $1
           AND NOT EXISTS (SELECT 1 FROM pg_temp.masking m WHERE m.masked AND m.field = d.field)`,
        [context.districtId]
      )
      yield* sql.unsafe(
        `INSERT INTO district_masking (district_id, field, run_id, total, blank, hashed, placeholder, shared)
         SELECT $1, field, $2, total, blank, hashed, placeholder, top FROM pg_temp.masking WHERE masked
         ON CONFLICT (district_id, field) DO UPDATE
           SET total = excluded.total, blank = excluded.blank, hashed = excluded.hashed, placeholder = excluded.placeholder,
               shared = excluded.shared
           WHERE (district_masking.total, district_masking.blank, district_masking.hashed, district_masking.placeholder, district_masking.shared)
                 IS DISTINCT FROM (excluded.total, excluded.blank, excluded.hashed, excluded.placeholder, excluded.shared)`,
        [context.districtId, context.runId]
      )
      yield* sql.unsafe(`DROP TABLE pg_temp.masking`)
    }
  }).pipe(Effect.withSpan("Quality.checkQuality"))
