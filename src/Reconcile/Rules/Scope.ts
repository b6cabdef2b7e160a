import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { GateRules, ScopeRules } from "../../Domain/DistrictRules.ts"
import type { ApplyContext } from "../Apply.ts"
import type { FindingsContext } from "../Findings.ts"
import { insertFindings, quote } from "../Findings.ts"
import { judge } from "../Gate.ts"

/**
 * Scope: which sections become classes (seed 001: "Please only share the current
 * semester's classes"; "ensure that elective classes like P.E., Art, Chorus, and Band are
 * not included").
 *
 * A staged section is excluded — never created, or deactivated if it exists — when its
 * subjects (or its course's) match an excluded subject or its subject codes an excluded
 * code (Clever's categories are codes), when its title (or its course's)
 * matches an excluded title, or, with `currentTermsOnly`, when none of its known terms
 * contains the district's local date. A section with no terms, or whose terms we do not
 * have, is kept: we cannot tell. Enrollments of excluded sections are not written.
 *
 * Exclusion reuses the diff: the staged row is marked `excluded` with the reason, and the
 * diff treats it as removed from the source with that reason (Apply.ts).
 */

export const SCOPE_REASONS = ["excluded_subject", "excluded_title", "not_current_term", "excluded_school"] as const

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+")

/** One case-insensitive Postgres regex matching any of the words or phrases as whole words; null for none. */
export const wholeWords = (phrases: ReadonlyArray<string>): string | null =>
  phrases.length === 0 ? null : `(^|[^[:alnum:]])(${phrases.map(escapeRegex).join("|")})($|[^[:alnum:]])`

/** "None of the class's known terms contains `today`" (and it has known terms). */
const notCurrent = (termIds: string, today: string) =>
  `(cardinality(${termIds}) > 0
    AND EXISTS (SELECT 1 FROM terms t WHERE t.district_id = $1 AND t.active AND t.source_id = ANY (${termIds}))
    AND NOT EXISTS (SELECT 1 FROM terms t WHERE t.district_id = $1 AND t.active AND t.source_id = ANY (${termIds})
                      AND (t.start_date IS NULL OR t.start_date <= ${today}) AND (t.end_date IS NULL OR t.end_date >= ${today})))`

/**
 * The statement marking staged sections out of scope, with its parameters ($1 the district,
 * $5 today). The district's subject and title patterns are matched once per distinct value
 * (a class's title, its subjects, its subject codes) and once per course, and its terms are
 * judged once per distinct list, not once per section: sections share a handful of titles,
 * subjects and terms (the bench's 33,400 sections, 35 titles), and judging them row by row
 * took 0.39 s of a 100k resync (now 0.06). The verdict is the row-by-row one's
 * (test/Reconcile/ScopeVerdicts.test.ts holds them equal): a section is out of scope for its
 * school, else for a subject of its own or its course's, else for its title or its course's,
 * else for a subject code of its own or its course's, else for its terms.
 */
export const outOfScopeStatement = (
  districtId: string,
  today: string,
  rules: ScopeRules,
  excludedSchools: ReadonlyArray<string>
): { readonly text: string; readonly params: ReadonlyArray<unknown> } => ({
  text: `WITH listed AS MATERIALIZED (
       SELECT s.ctid AS row, s.school_source_id, s.course_source_id, s.term_source_ids, s.title, s.subjects, s.subject_codes
       FROM stage_classes s WHERE NOT s.invalid AND NOT s.shadowed AND s.status = 'active'),
     -- (OFFSET 0: the values are made distinct before they are matched; the planner would
     -- otherwise push the match below the DISTINCT, onto every section.)
     by_subject AS (
       SELECT v.subjects FROM (SELECT DISTINCT subjects FROM listed OFFSET 0) v
       WHERE $2::text IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(v.subjects) x WHERE x ~* $2)),
     by_title AS (
       SELECT v.title FROM (SELECT DISTINCT title FROM listed OFFSET 0) v WHERE $3::text IS NOT NULL AND v.title ~* $3),
     by_code AS (
       SELECT v.subject_codes FROM (SELECT DISTINCT subject_codes FROM listed OFFSET 0) v
       WHERE EXISTS (SELECT 1 FROM unnest(v.subject_codes) x WHERE lower(btrim(x)) = ANY ($6::text[]))),
     by_terms AS (
       SELECT v.term_source_ids FROM (SELECT DISTINCT term_source_ids FROM listed OFFSET 0) v
       WHERE $4 AND ${notCurrent("v.term_source_ids", "$5::date")}),
     course AS (
       SELECT c.source_id,
              $2::text IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(c.subjects) x WHERE x ~* $2) AS by_subject,
              $3::text IS NOT NULL AND coalesce(c.title, '') ~* $3 AS by_title,
              EXISTS (SELECT 1 FROM unnest(c.subject_codes) x WHERE lower(btrim(x)) = ANY ($6::text[])) AS by_code
       FROM courses c WHERE c.district_id = $1 AND c.active),
     verdict AS (
       SELECT s.row,
              CASE WHEN s.school_source_id = ANY ($7::text[])
                     OR (cardinality($8::text[]) > 0 AND NOT s.school_source_id = ANY ($8::text[])) THEN 'excluded_school'
                   WHEN s.subjects IN (SELECT subjects FROM by_subject) OR c.by_subject THEN 'excluded_subject'
                   -- (A section without a course is matched as one with an empty course title.)
                   WHEN s.title IN (SELECT title FROM by_title) OR coalesce(c.by_title, $3::text IS NOT NULL AND '' ~* $3)
                     THEN 'excluded_title'
                   WHEN s.subject_codes IN (SELECT subject_codes FROM by_code) OR c.by_code THEN 'excluded_subject'
                   WHEN s.term_source_ids IN (SELECT term_source_ids FROM by_terms) THEN 'not_current_term'
              END AS reason
       FROM listed s LEFT JOIN course c ON c.source_id = s.course_source_id)
   UPDATE stage_classes s SET excluded = v.reason
   FROM verdict v WHERE s.ctid = v.row AND v.reason IS NOT NULL`,
  params: [
    districtId, wholeWords(rules.excludeSubjects), wholeWords(rules.excludeTitles), rules.currentTermsOnly, today,
    rules.excludeSubjectCodes.map((c) => c.trim().toLowerCase()), excludedSchools, rules.onlySchools
  ]
})

/** Marks staged sections out of scope (after terms and courses are applied, before classes). */
export const markOutOfScope = (context: ApplyContext & FindingsContext, rules: ScopeRules, excludedSchools: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const statement = outOfScopeStatement(context.districtId, context.today, rules, excludedSchools)
    yield* sql.unsafe(statement.text, statement.params)
    yield* insertFindings(
      context,
      `SELECT 'info' AS severity, 'excluded_section' AS code, 'classes' AS entity, source_id,
              ${quote(context.files.classes ?? "classes")} AS file, line,
              CASE excluded
                WHEN 'excluded_subject' THEN 'its subject is one the district excludes'
                WHEN 'excluded_title' THEN 'its title names a subject the district excludes'
                WHEN 'excluded_school' THEN 'its school is out of the district''s scope'
                ELSE 'none of its terms is current' END || '; the section is not rostered' AS detail
       FROM stage_classes WHERE excluded IS NOT NULL`
    )
  }).pipe(Effect.withSpan("Scope.markOutOfScope"))

/**
 * Classes not in this run's staged set whose terms have all ended (a delta run, or a run
 * without a classes feed): deactivated, because a term can end while nothing in the roster
 * changes. Like every deactivation, under the safety gate (its `judge`, over the classes
 * active now, this run's own creations included): when they trip it, none is deactivated
 * here and the run says so (a full run then holds them for review). Returns how many were
 * deactivated, and the note.
 */
export const expireEndedTerms = (context: ApplyContext, rules: ScopeRules, gate: GateRules) =>
  Effect.gen(function*() {
    if (!rules.currentTermsOnly) return { expired: 0, note: undefined }
    const sql = yield* SqlClient.SqlClient
    const ended = `l.district_id = $1 AND l.active AND ${notCurrent("l.term_source_ids", "$2::date")}
           AND NOT EXISTS (SELECT 1 FROM stage_classes s WHERE s.source_id = l.source_id AND NOT s.invalid)`
    const [figures] = yield* sql.unsafe<{ readonly ended: number; readonly active: number }>(
      `SELECT (SELECT count(*) FROM classes l WHERE ${ended})::int AS ended,
              (SELECT count(*) FROM classes WHERE district_id = $1 AND active)::int AS active`,
      [context.districtId, context.today]
    )
    const n = figures?.ended ?? 0
    if (n === 0) return { expired: 0, note: undefined }
    const active = figures?.active ?? 0
    const verdict = judge({ grp: "classes", active, deactivations: n, updates: 0, additions: 0 }, gate, "classes")
    if (verdict.deactivations !== undefined) {
      return { expired: 0, note: `${n} of ${active} classes are in terms that have ended: too many to deactivate without review; a full run holds them` }
    }
    yield* sql.unsafe(
      `UPDATE classes l SET active = false, deactivated_at = now(), updated_at = now(), deactivation_reason = 'not_current_term'
       WHERE ${ended}`,
      [context.districtId, context.today]
    )
    return { expired: n, note: undefined }
  }).pipe(Effect.withSpan("Scope.expireEndedTerms"))

/**
 * Staged enrollments of sections out of scope (staged as excluded, or stored as
 * deactivated for scope and not back in this run) are not written, and not reported as
 * dangling: the section is out of scope, not missing.
 */
export const skipOutOfScopeEnrollments = (context: ApplyContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.out_of_scope`)
    yield* sql.unsafe(
      `CREATE TEMP TABLE out_of_scope AS
         SELECT source_id FROM stage_classes WHERE excluded IS NOT NULL
         UNION
         SELECT l.source_id FROM classes l
         WHERE l.district_id = $1 AND NOT l.active AND l.deactivation_reason IN (${SCOPE_REASONS.map(quote).join(", ")})
           AND NOT EXISTS (SELECT 1 FROM stage_classes s WHERE s.source_id = l.source_id AND s.excluded IS NULL AND NOT s.invalid)`,
      [context.districtId]
    )
    const [count] = yield* sql.unsafe<{ readonly n: number }>(`SELECT count(*)::int AS n FROM out_of_scope`)
    if ((count?.n ?? 0) === 0) return
    yield* sql.unsafe(
      `UPDATE stage_enrollments e SET excluded = 'class_out_of_scope'
       FROM out_of_scope o WHERE o.source_id = e.class_source_id AND e.excluded IS NULL AND NOT e.invalid`
    )
  }).pipe(Effect.withSpan("Scope.skipOutOfScopeEnrollments"))
