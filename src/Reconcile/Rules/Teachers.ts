import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { ApplyContext } from "../Apply.ts"
import type { FindingsContext } from "../Findings.ts"
import { insertFindings, quote } from "../Findings.ts"

/**
 * Teachers of a class (seed 001: "Classes can contain one primary teacher and up to nine
 * co-teachers"). The rule, stable from run to run:
 *
 * - teachers are ranked by (marked primary first, then user source ID);
 * - rank 1 is the primary teacher: with none marked, the first by source ID is made
 *   primary; with several marked, the first of them stays primary and the others become
 *   co-teachers;
 * - ranks 2 … limit + 1 are co-teachers; the rest are left out (their enrollments are not
 *   written, or are ended with reason `co_teacher_limit`).
 *
 * Each case is reported. On a delta run the ranking covers the staged teachers of the
 * classes it touches plus their stored teachers not restaged, and a stored teacher whose
 * role changes is restaged with the new values.
 */
export const rankTeachers = (context: ApplyContext & FindingsContext, limit: number, delta: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const kept = limit + 1
    yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.teacher_rank`)
    yield* sql.unsafe(
      `CREATE TEMP TABLE teacher_rank AS
       WITH staged AS (
         SELECT ctid AS row, class_source_id, user_source_id, is_primary, true AS staged, NULL::bigint AS live_id
         FROM stage_enrollments
         WHERE NOT invalid AND NOT shadowed AND excluded IS NULL AND status = 'active' AND role = 'teacher'
       ),
       stored AS (
         SELECT NULL::tid AS row, l.class_source_id, l.user_source_id, l.is_primary, false AS staged, l.id AS live_id
         FROM enrollments l
         WHERE $2 AND l.district_id = $1 AND l.ended_at IS NULL AND l.role = 'teacher'
           AND l.class_source_id IN (SELECT class_source_id FROM staged)
           AND NOT EXISTS (SELECT 1 FROM stage_enrollments s
                           WHERE s.class_source_id = l.class_source_id AND s.user_source_id = l.user_source_id)
       ),
       teachers AS (SELECT * FROM staged UNION ALL SELECT * FROM stored)
       SELECT t.*,
              row_number() OVER (PARTITION BY class_source_id ORDER BY is_primary DESC, user_source_id) AS rank,
              count(*) FILTER (WHERE is_primary) OVER (PARTITION BY class_source_id) AS primaries,
              count(*) OVER (PARTITION BY class_source_id) AS teachers
       FROM teachers t`,
      [context.districtId, delta]
    )
    // The staged rows whose ranking changes them, found in the ranking (it holds their
    // `is_primary`, read from them just above) and then read by their ctids: a join by ctid
    // alone hashed every staged enrollment (0.23 s at 837k, none of them changed in a
    // resync; 6 s at ten million).
    yield* sql.unsafe(
      `UPDATE stage_enrollments s SET is_primary = (r.rank = 1),
              excluded = CASE WHEN r.rank > ${kept} THEN 'co_teacher_limit' END
       FROM teacher_rank r
       WHERE s.ctid = r.row
         AND s.ctid = ANY (ARRAY(SELECT row FROM teacher_rank
                                 WHERE staged AND (is_primary IS DISTINCT FROM (rank = 1) OR rank > ${kept})))`
    )
    if (delta) {
      yield* sql.unsafe(
        `INSERT INTO stage_enrollments (line, invalid, status, source_id, class_source_id, user_source_id, role, is_primary,
                                        school_source_id, begin_date, end_date, excluded)
         SELECT 0, false, 'active', l.source_id, l.class_source_id, l.user_source_id, l.role, (r.rank = 1),
                l.school_source_id, l.begin_date, l.end_date, CASE WHEN r.rank > ${kept} THEN 'co_teacher_limit' END
         FROM teacher_rank r JOIN enrollments l ON l.id = r.live_id
         WHERE NOT r.staged AND (l.is_primary IS DISTINCT FROM (r.rank = 1) OR r.rank > ${kept})`
      )
    }

    const file = quote(context.files.enrollments ?? "enrollments")
    yield* insertFindings(
      context,
      `SELECT 'warning' AS severity, 'co_teacher_limit' AS code, 'classes' AS entity, class_source_id AS source_id,
              ${file} AS file, NULL::int AS line,
              (max(teachers) - 1) || ' co-teachers; at most ${limit} are kept (first by source ID), left out: ' ||
              string_agg(user_source_id, ', ' ORDER BY rank) FILTER (WHERE rank > ${kept}) AS detail
       FROM teacher_rank GROUP BY class_source_id HAVING max(teachers) > ${kept}`
    )
    yield* insertFindings(
      context,
      `SELECT 'warning' AS severity,
              CASE WHEN max(primaries) = 0 THEN 'no_primary_teacher' ELSE 'several_primary_teachers' END AS code,
              'classes' AS entity, class_source_id AS source_id, ${file} AS file, NULL::int AS line,
              CASE WHEN max(primaries) = 0
                   THEN 'none of its ' || max(teachers) || ' teachers is marked primary; user ' ||
                        min(user_source_id) FILTER (WHERE rank = 1) || ' (first by source ID) is made primary'
                   ELSE max(primaries) || ' teachers are marked primary; user ' || min(user_source_id) FILTER (WHERE rank = 1) ||
                        ' (first by source ID) stays primary, the others are co-teachers' END AS detail
       FROM teacher_rank GROUP BY class_source_id HAVING max(primaries) <> 1`
    )
  }).pipe(Effect.withSpan("Teachers.rankTeachers"))

/** Classes of a complete feed that have no teacher at all. */
export const reportClassesWithoutTeacher = (context: FindingsContext) =>
  insertFindings(
    context,
    `SELECT 'warning' AS severity, 'no_primary_teacher' AS code, 'classes' AS entity, c.source_id,
            ${quote(context.files.classes ?? "classes")} AS file, c.line, 'the class has no teacher' AS detail
     FROM stage_classes c
     WHERE NOT c.invalid AND NOT c.shadowed AND c.status = 'active' AND c.excluded IS NULL
       AND NOT EXISTS (SELECT 1 FROM stage_enrollments e
                       WHERE e.class_source_id = c.source_id AND e.role = 'teacher' AND e.status = 'active' AND NOT e.invalid)`
  ).pipe(Effect.withSpan("Teachers.reportClassesWithoutTeacher"))
