import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { ADMIN_ROLES_SQL, districtLevelSql, studentOnlySql } from "../../Domain/Roles.ts"
import type { FindingsContext } from "../Findings.ts"
import { insertFindings } from "../Findings.ts"

/**
 * Rules on people judged over the stored roster after each apply, so they hold for full
 * and delta runs alike:
 *
 * - **Age** (seed 001): `under_13` from the birth date on the district's local date
 *   (`underThirteen`). The diff sets it for the users a run touches (Apply.ts); this pass
 *   catches birthdays — students turn 13 while nothing in the roster changes. Writes only
 *   the rows that change.
 * - **Students are active only while enrolled** (seed 001: "Students must be enrolled in at
 *   least one section … to activate"): `enrolledUsers` / `isEnrolledSql` say who is enrolled,
 *   `studentActivation` what follows for a student (only a student: Domain/Roles.ts
 *   `studentOnlySql`); account linking (src/Accounts/Linking.ts) and review decisions
 *   (src/Accounts/Reviews.ts) apply it. Students with no class are reported.
 * - **Duplicate periods**: a teacher with several sections in one period of one term (seed
 *   001: "let your rostering specialist know if you anticipate more than one section per
 *   class period for each teacher").
 * - **Administrators attached only to an office**: orgs with no classes, so they would see
 *   no usage data (seed 001) — unless district-level (a Clever district admin, or attached
 *   to the district org), since those cover every school (issue 15, src/Domain/Roles.ts).
 */

/** What the steps here need of a run: its district, and the district's local date (YYYY-MM-DD). */
interface PeopleContext {
  readonly districtId: string
  readonly today: string
}

/**
 * Under 13 on the district's local date `today`: students only; a missing birth date
 * counts as under 13 (seed 001: the stricter permissions are the safe default).
 */
export const underThirteen = (roles: string, birthDate: string, today: string) =>
  `('student' = ANY (${roles}) AND (${birthDate} IS NULL OR ${birthDate} > ${today} - interval '13 years'))`

/** Recomputes `under_13` for the district's users; returns how many changed. */
export const recomputeAges = (context: PeopleContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const value = underThirteen("roles", "birth_date", "$2::date")
    const [row] = yield* sql.unsafe<{ readonly n: number }>(
      `WITH changed AS (
         UPDATE users SET under_13 = ${value}, updated_at = now()
         WHERE district_id = $1 AND under_13 IS DISTINCT FROM ${value}
         RETURNING 1)
       SELECT count(*)::int AS n FROM changed`,
      [context.districtId, context.today]
    )
    return row?.n ?? 0
  }).pipe(Effect.withSpan("People.recomputeAges"))

/** "Enrolled" in the sense of the activation rule: an open enrollment of the district in an active class. */
const enrollmentsOf = (districtId: string) =>
  `FROM enrollments e JOIN classes c ON c.id = e.class_id AND c.active
    WHERE e.district_id = ${districtId} AND e.ended_at IS NULL`

/** The district's enrolled users (a set: `u.id IN …`). */
export const enrolledUsers = (districtId: string) => `(SELECT DISTINCT e.user_id ${enrollmentsOf(districtId)})`

/** "This user is enrolled", for one user (an operator's decision on one review). */
export const isEnrolledSql = (userId: string, districtId: string) => `EXISTS (SELECT 1 ${enrollmentsOf(districtId)} AND e.user_id = ${userId})`

/** A student's activation: active while enrolled in at least one active class, pending otherwise. */
export const studentActivationSql = (enrolled: string) => `CASE WHEN ${enrolled} THEN 'active' ELSE 'pending' END`

export const studentActivation = (enrolled: boolean): "active" | "pending" => (enrolled ? "active" : "pending")

/** The run's enrolled users (after the apply), computed once: see `snapshotEnrolled`. */
export const ENROLLED = `(SELECT user_id FROM pg_temp.enrolled_users)`

/**
 * The district's enrolled users as they stand after the apply, in a temp table: the
 * activation, linking and no-class rules all ask, and one pass over a million enrollments
 * is enough.
 */
export const snapshotEnrolled = (context: PeopleContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.enrolled_users`)
    yield* sql.unsafe(`CREATE TEMP TABLE enrolled_users AS ${enrolledUsers("$1").slice(1, -1)}`, [context.districtId])
    yield* sql.unsafe(`ANALYZE pg_temp.enrolled_users`)
  }).pipe(Effect.withSpan("People.enrolledUsers"))

export const reportPeople = (context: FindingsContext) =>
  Effect.gen(function*() {
    yield* insertFindings(
      context,
      `SELECT 'warning' AS severity, 'student_without_class' AS code, 'users' AS entity, u.source_id, NULL AS file,
              NULL::int AS line, 'enrolled in no class: the student stays pending until enrolled in one' AS detail
       FROM users u
       WHERE u.district_id = $2 AND u.active AND ${studentOnlySql("u.roles")}
         AND u.id NOT IN ${ENROLLED}`
    )
    yield* insertFindings(
      context,
      `WITH taught AS (
         SELECT e.user_source_id, c.source_id AS class_source_id, p.period, t.term
         FROM enrollments e
         JOIN classes c ON c.id = e.class_id AND c.active
         CROSS JOIN LATERAL unnest(c.periods) AS p(period)
         CROSS JOIN LATERAL unnest(CASE WHEN cardinality(c.term_source_ids) = 0 THEN ARRAY[''] ELSE c.term_source_ids END) AS t(term)
         WHERE e.district_id = $2 AND e.ended_at IS NULL AND e.role = 'teacher')
       SELECT 'info' AS severity, 'duplicate_period' AS code, 'users' AS entity, user_source_id AS source_id, NULL AS file,
              NULL::int AS line,
              count(DISTINCT class_source_id) || ' sections in period ' || period ||
              CASE WHEN term = '' THEN '' ELSE ' of term ' || term END || ': ' ||
              string_agg(DISTINCT class_source_id, ', ') AS detail
       FROM taught GROUP BY user_source_id, term, period HAVING count(DISTINCT class_source_id) > 1`
    )
    yield* insertFindings(
      context,
      // Set-based: a correlated "any class at one of my orgs" scanned every class once per
      // administrator (2,400 × 400,800 in a 1.2M-student district: 37 s of a no-op run).
      `WITH admins AS (
         SELECT u.id, u.source_id, u.org_source_ids FROM users u
         WHERE u.district_id = $2 AND u.active AND u.roles && ${ADMIN_ROLES_SQL} AND NOT ${districtLevelSql("u")}),
       taught_at AS (SELECT DISTINCT school_source_id AS org FROM classes WHERE district_id = $2 AND active),
       seeing AS (
         SELECT DISTINCT a.id FROM admins a CROSS JOIN LATERAL unnest(a.org_source_ids) AS o(org) JOIN taught_at t ON t.org = o.org)
       SELECT 'warning' AS severity, 'admin_district_office_only' AS code, 'users' AS entity, a.source_id, NULL AS file,
              NULL::int AS line,
              'an administrator attached only to orgs without classes that are not the district (a department, a local office) would see no usage data' AS detail
       FROM admins a WHERE NOT EXISTS (SELECT 1 FROM seeing s WHERE s.id = a.id)`
    )
  }).pipe(Effect.withSpan("People.reportPeople"))
