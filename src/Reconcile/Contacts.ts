import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { ContactRules } from "../Domain/DistrictRules.ts"
import type { ApplyContext } from "./Apply.ts"
import { listedStaged, stageTable } from "./Entities.ts"
import type { FindingsContext } from "./Findings.ts"
import { insertFindings, quote } from "./Findings.ts"

/**
 * Guardians and contacts (issue 18; README "Guardians and contacts").
 *
 * A **contact** is a rostered person whose only roles are `parent`, `guardian` or `relative`:
 * OneRoster users with those roles (1.1 `role`, 1.2 `roles[]`) and Clever contacts. They are
 * users like any other (so removal is deactivation, and export and erase take them with the
 * district's users), and `contact_links` ties each to its students with the relationship.
 *
 * - **Off** (`rules.contacts.sync: false`, the default): contacts are not stored. A staged
 *   contact is excluded (`contacts_off`): a new one is not created, one stored before is
 *   deactivated and its links end, and no link is written. Nothing else changes.
 * - **On**: contacts are stored and kept in step. Their links come from both sides of the
 *   source — a contact's own students (OneRoster `agents` of a guardian, Clever
 *   `student_relationships`) and a student's contacts (OneRoster `agents` of a student) —
 *   the relationship as the source names it (Clever), else the contact's role. Set-based,
 *   compare before write: a link no longer listed ends (`missing_from_source`; in a delta run
 *   only for the people the run lists), one whose contact was removed ends
 *   (`contact_removed`), one listed again reopens. An active contact with no active link is
 *   a finding (`contact_without_student`).
 * - Contacts never get accounts (src/Accounts/Linking.ts links teachers, students and
 *   admins only); `rules.contacts.accounts` is refused until it is built.
 * - Names, addresses and relationships are never logged: findings carry source IDs.
 */

export const CONTACT_ROLES = ["guardian", "parent", "relative"] as const
const CONTACT_ROLES_SQL = `ARRAY[${CONTACT_ROLES.map((r) => `'${r}'`).join(", ")}]::text[]`

/** A contact, and only a contact, over a row's `roles` array. */
export const contactOnlySql = (roles: string) => `(cardinality(${roles}) > 0 AND ${roles} <@ ${CONTACT_ROLES_SQL})`

/** The staged users the run lists as active and readable. */
const LISTED = listedStaged()

/** Off: the staged contacts are excluded, so the diff neither creates nor keeps them. Before the users are planned. */
export const excludeContacts = (rules: ContactRules) =>
  Effect.gen(function*() {
    if (rules.sync) return
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(
      `UPDATE ${stageTable("users")} s SET excluded = 'contacts_off'
       WHERE NOT s.invalid AND s.excluded IS NULL AND ${contactOnlySql("s.roles")}`
    )
  }).pipe(Effect.withSpan("Contacts.exclude"))

/** On: the links of the run's contacts and students, after the users are written. */
export const applyContactLinks = (context: ApplyContext & FindingsContext, rules: ContactRules) =>
  Effect.gen(function*() {
    if (context.modes.users === null) return
    const sql = yield* SqlClient.SqlClient
    const params = [context.districtId]
    if (!rules.sync) {
      // Off: the links of contacts no longer stored end with them (a district that turned the rule off).
      yield* sql.unsafe(
        `UPDATE contact_links l SET active = false, ended_at = now(), end_reason = 'contact_removed'
         FROM users c WHERE l.district_id = $1 AND l.active AND c.id = l.contact_user_id AND NOT c.active`,
        params
      )
      return
    }
    const staged = stageTable("users")
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.contact_links_wanted`)
    // Both sides of the source, resolved to the stored contact (active, contact only); one
    // row per (contact, student), the relationship the source names preferred.
    yield* sql.unsafe(
      `CREATE TEMP TABLE contact_links_wanted AS
       WITH sides AS (
         SELECT s.source_id AS contact_source_id, split_part(a, E'\\x1f', 1) AS student_source_id, nullif(split_part(a, E'\\x1f', 2), '') AS relationship
         FROM ${staged} s CROSS JOIN LATERAL unnest(s.agents) a
         WHERE ${LISTED} AND ${contactOnlySql("s.roles")}
         UNION ALL
         SELECT split_part(a, E'\\x1f', 1), s.source_id, nullif(split_part(a, E'\\x1f', 2), '')
         FROM ${staged} s CROSS JOIN LATERAL unnest(s.agents) a
         WHERE ${LISTED} AND 'student' = ANY (s.roles)
       )
       SELECT DISTINCT ON (c.id, x.student_source_id) c.id AS contact_user_id, x.student_source_id,
              lower(coalesce(x.relationship, (SELECT r FROM unnest(c.roles) r LIMIT 1))) AS relationship
       FROM sides x
       JOIN users c ON c.district_id = $1 AND c.source_id = x.contact_source_id AND c.active AND ${contactOnlySql("c.roles")}
       WHERE x.student_source_id <> ''
       ORDER BY c.id, x.student_source_id, x.relationship IS NULL`,
      params
    )
    // Whose links this run speaks for: everyone in a full listing of users, else the people it lists.
    const speaksFor = context.modes.users === "bulk"
      ? "true"
      : `(EXISTS (SELECT 1 FROM ${staged} s JOIN users c ON c.district_id = $1 AND c.source_id = s.source_id WHERE c.id = l.contact_user_id AND NOT s.invalid)
          OR EXISTS (SELECT 1 FROM ${staged} s WHERE s.source_id = l.student_source_id AND NOT s.invalid AND 'student' = ANY (s.roles)))`
    yield* sql.unsafe(
      `UPDATE contact_links l SET active = false, ended_at = now(), end_reason =
         CASE WHEN c.active THEN 'missing_from_source' ELSE 'contact_removed' END
       FROM users c
       WHERE l.district_id = $1 AND l.active AND c.id = l.contact_user_id
         AND (NOT c.active OR (${speaksFor} AND NOT EXISTS (
           SELECT 1 FROM pg_temp.contact_links_wanted w WHERE w.contact_user_id = l.contact_user_id AND w.student_source_id = l.student_source_id)))`,
      params
    )
    yield* sql.unsafe(
      `INSERT INTO contact_links (district_id, contact_user_id, student_source_id, relationship)
       SELECT $1, w.contact_user_id, w.student_source_id, w.relationship FROM pg_temp.contact_links_wanted w
       ON CONFLICT (contact_user_id, student_source_id) DO UPDATE
         SET relationship = EXCLUDED.relationship, active = true, ended_at = NULL, end_reason = NULL,
             started_at = CASE WHEN contact_links.active THEN contact_links.started_at ELSE now() END, updated_at = now()
         WHERE NOT contact_links.active OR contact_links.relationship IS DISTINCT FROM EXCLUDED.relationship`,
      params
    )
    yield* sql.unsafe(`DROP TABLE pg_temp.contact_links_wanted`)
    const usersFile = quote(context.files.users ?? "users")
    yield* insertFindings(
      context,
      `SELECT 'warning' AS severity, 'contact_without_student' AS code, 'users' AS entity, c.source_id, ${usersFile} AS file, NULL::int AS line,
              'a guardian or contact linked to no student of the district (rules.contacts)' AS detail
       FROM users c
       WHERE c.district_id = ${quote(context.districtId)} AND c.active AND ${contactOnlySql("c.roles")}
         AND NOT EXISTS (SELECT 1 FROM contact_links l WHERE l.contact_user_id = c.id AND l.active)`
    )
  }).pipe(Effect.withSpan("Contacts.applyLinks"))
