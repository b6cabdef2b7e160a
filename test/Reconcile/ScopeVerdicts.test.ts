import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import type { DistrictId } from "../../src/Domain/District.ts"
import type { ScopeRules } from "../../src/Domain/DistrictRules.ts"
import { outOfScopeStatement, wholeWords } from "../../src/Reconcile/Rules/Scope.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * The scope verdict matched once per distinct title, subjects and subject codes (and once per
 * course) is the row-by-row verdict it replaced (issue 17), over random sections, courses,
 * terms and district rules: NULL and empty values, sections without a course or with an
 * unknown one, terms current, past and unknown, schools excluded and listed.
 */

/** The row-by-row statement the scope ran until issue 17's twelfth session, verbatim but for its column. */
const rowByRow = `UPDATE stage_classes s SET reference = x.reason
  FROM (
    SELECT s.ctid AS row,
           CASE WHEN s.school_source_id = ANY ($7::text[])
                  OR (cardinality($8::text[]) > 0 AND NOT s.school_source_id = ANY ($8::text[])) THEN 'excluded_school'
                WHEN $2::text IS NOT NULL AND EXISTS (
                       SELECT 1 FROM unnest(s.subjects || coalesce(c.subjects, '{}')) v WHERE v ~* $2) THEN 'excluded_subject'
                WHEN $3::text IS NOT NULL AND (s.title ~* $3 OR coalesce(c.title, '') ~* $3) THEN 'excluded_title'
                WHEN EXISTS (SELECT 1 FROM unnest(s.subject_codes || coalesce(c.subject_codes, '{}')) v
                             WHERE lower(btrim(v)) = ANY ($6::text[])) THEN 'excluded_subject'
                WHEN $4 AND (cardinality(s.term_source_ids) > 0
                  AND EXISTS (SELECT 1 FROM terms t WHERE t.district_id = $1 AND t.active AND t.source_id = ANY (s.term_source_ids))
                  AND NOT EXISTS (SELECT 1 FROM terms t WHERE t.district_id = $1 AND t.active AND t.source_id = ANY (s.term_source_ids)
                                    AND (t.start_date IS NULL OR t.start_date <= $5::date) AND (t.end_date IS NULL OR t.end_date >= $5::date)))
                  THEN 'not_current_term'
           END AS reason
    FROM stage_classes s
    LEFT JOIN courses c ON c.district_id = $1 AND c.source_id = s.course_source_id AND c.active
    WHERE NOT s.invalid AND NOT s.shadowed AND s.status = 'active'
  ) x
  WHERE s.ctid = x.row AND x.reason IS NOT NULL`

const TITLES = [null, "", "Concert Band", "band", "BANDS", "Art", "Smart Math", "P.E. 7", "PE", "pe-2", "Physical  Education", "Math 7", "Chorus!"]
const SUBJECTS = [null, [], ["Music"], ["Physical Education"], ["Mathematics", null], ["art"], ["Band", "Math"], ["Fine Arts"]]
const CODES = [null, [], ["PE01"], [" pe01 "], ["MA7"], ["ma7", null]]
const COURSES = [null, "crs-1", "crs-2", "crs-3", "crs-gone", "crs-missing"]
const TERMS = [[], ["term-now"], ["term-past"], ["term-now", "term-past"], ["term-unknown"], ["term-open"], ["term-gone"]]
const SCHOOLS = [null, "sch-1", "sch-2", "sch-3"]
const PHRASES = ["band", "Art", "physical education", "P.E.", "chorus", "math"]

const section = fc.record({
  title: fc.constantFrom(...TITLES),
  subjects: fc.constantFrom(...SUBJECTS),
  codes: fc.constantFrom(...CODES),
  course: fc.constantFrom(...COURSES),
  terms: fc.constantFrom(...TERMS),
  school: fc.constantFrom(...SCHOOLS),
  invalid: fc.constantFrom(false, false, false, false, true),
  shadowed: fc.constantFrom(false, false, false, true),
  status: fc.constantFrom("active", "active", "active", "tobedeleted")
})
const course = fc.record({
  title: fc.constantFrom(...TITLES.filter((t) => t !== null)),
  subjects: fc.constantFrom(...SUBJECTS.filter((s) => s !== null)),
  codes: fc.constantFrom(...CODES.filter((c) => c !== null))
})
const rules: fc.Arbitrary<ScopeRules> = fc.record({
  currentTermsOnly: fc.boolean(),
  excludeSubjects: fc.subarray(PHRASES),
  excludeTitles: fc.subarray(PHRASES),
  excludeSubjectCodes: fc.subarray(["pe01", "MA7", "xx"]),
  onlySchools: fc.constantFrom([], [], ["sch-1"], ["sch-1", "sch-2"])
}) as never

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("scope verdicts", (it) => {
  it.effect("matched once per distinct value, the verdict is the row-by-row one", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* Effect.flatMap(RosterStore, (store) =>
        store.addDistrict({ id: "scopev" as DistrictId, name: "scopev", provider: "oneroster-csv", timezone: "UTC", settings: { path: "/nonexistent" }, rules: {} }))
      const cases = fc.sample(fc.tuple(rules, fc.subarray(["sch-2", "sch-3"]), fc.tuple(course, course, course), fc.array(section, { minLength: 1, maxLength: 40 })), { numRuns: 100, seed: 20261205 })
      const reasons = new Map<string, number>()
      for (const [scope, schools, courses, sections] of cases) {
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`SELECT set_config('rosterd.writer', 'sync', true)`
          yield* sql`DELETE FROM courses WHERE district_id = 'scopev'`
          yield* sql`DELETE FROM terms WHERE district_id = 'scopev'`
          for (const [i, c] of courses.entries()) {
            yield* sql`INSERT INTO courses (district_id, source_id, roster_source, title, subjects, subject_codes, active)
                       VALUES ('scopev', ${`crs-${i + 1}`}, 'csv', ${c.title}, ${c.subjects as Array<string>}, ${c.codes as Array<string>}, true)`
          }
          yield* sql`INSERT INTO courses (district_id, source_id, roster_source, title, subjects, active)
                     VALUES ('scopev', 'crs-gone', 'csv', 'Concert Band', '{Music}', false)`
          yield* sql`INSERT INTO terms (district_id, source_id, roster_source, title, session_type, start_date, end_date, active) VALUES
                     ('scopev', 'term-now', 'csv', 'now', 'term', '2026-08-01', '2027-07-31', true),
                     ('scopev', 'term-past', 'csv', 'past', 'term', '2025-08-01', '2026-07-31', true),
                     ('scopev', 'term-open', 'csv', 'open', 'term', NULL, NULL, true),
                     ('scopev', 'term-gone', 'csv', 'gone', 'term', '2026-08-01', '2027-07-31', false)`
          yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.stage_classes`)
          yield* sql.unsafe(`CREATE TEMP TABLE stage_classes (
            line int, invalid boolean, shadowed boolean, status text, title text, subjects text[], subject_codes text[],
            course_source_id text, term_source_ids text[], school_source_id text, excluded text, reference text)`)
          for (const [line, s] of sections.entries()) {
            yield* sql.unsafe(
              `INSERT INTO stage_classes (line, invalid, shadowed, status, title, subjects, subject_codes, course_source_id, term_source_ids, school_source_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
              [line, s.invalid, s.shadowed, s.status, s.title, s.subjects, s.codes, s.course, s.terms, s.school]
            )
          }
          const statement = outOfScopeStatement("scopev", "2026-12-05", scope, schools)
          yield* sql.unsafe(statement.text, statement.params)
          yield* sql.unsafe(rowByRow, [
            "scopev", wholeWords(scope.excludeSubjects), wholeWords(scope.excludeTitles), scope.currentTermsOnly, "2026-12-05",
            scope.excludeSubjectCodes.map((c) => c.trim().toLowerCase()), schools, scope.onlySchools
          ])
          const rows = yield* sql<{ readonly line: number; readonly excluded: string | null; readonly reference: string | null }>`
            SELECT line, excluded, reference FROM pg_temp.stage_classes ORDER BY line`
          for (const row of rows) {
            assert.strictEqual(row.excluded, row.reference, JSON.stringify({ scope, schools, courses, section: sections[row.line] }))
            if (row.excluded !== null) reasons.set(row.excluded, (reasons.get(row.excluded) ?? 0) + 1)
          }
        }))
      }
      // (The cases exclude sections for every reason: the comparison is not of NULLs only.)
      assert.sameMembers([...reasons.keys()], ["excluded_school", "excluded_subject", "excluded_title", "not_current_term"])
      assert.isAbove([...reasons.values()].reduce((a, b) => a + b, 0), 100)
    }))
})
