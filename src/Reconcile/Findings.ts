import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { EntityKind } from "../Domain/Roster.ts"
import { CLEANED_KINDS } from "../Domain/Values.ts"
import type { FeedMode } from "../Providers/RosterProvider.ts"
import type { StagedKeys } from "./Digests.ts"
import { markKeysDistinct } from "./Digests.ts"
import { Entities, stageTable } from "./Entities.ts"

/**
 * Data-quality checks on the staged snapshot, in SQL, before anything is applied. Each
 * problem becomes a finding of the run (file, line, source ID, what is wrong — never a
 * personal value). Problems never stop a run; they only decide what the diff may touch:
 *
 * - a row that failed to decode (or that the value guard held out: an unusable identifier,
 *   an impossible or out-of-range date, an over-long title), or a source ID listed twice
 *   with different content, is *held*: the stored record is left exactly as it is (neither
 *   updated nor deactivated) until the source is fixed; a record repeated with identical
 *   content is read once;
 * - a field the value guard cleared (not one e-mail address, over-long text) or cleaned of
 *   control characters is reported (`cleared_value`, `control_characters`); the record applies;
 * - an enrollment whose class or user does not exist is skipped (reported by Apply);
 * - other dangling references (a class's school, course or terms; a user's orgs) are kept
 *   as given and reported, since providers routinely share records whose references they
 *   do not share.
 */

/** At most this many findings of one code and kind are stored per run; the rest are summarised. */
export const FINDINGS_PER_CODE = 1000

export interface FindingsContext {
  readonly runId: number
  readonly districtId: string
  /** Feed mode per kind; `null` when the snapshot does not provide that kind. */
  readonly modes: { readonly [K in EntityKind]: FeedMode | null }
  /** The file (or endpoint) each kind was read from. */
  readonly files: { readonly [K in EntityKind]: string | null }
}

export const quote = (text: string) => `'${text.replace(/'/g, "''")}'`

/** Inserts the rows of `select` (severity, code, entity, source_id, file, line, detail) as capped findings. */
export const insertFindings = (context: FindingsContext, select: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(
      `WITH found AS MATERIALIZED (${select}),
       ranked AS (
         SELECT f.*, row_number() OVER (PARTITION BY code, entity ORDER BY line NULLS LAST, source_id) AS rn,
                count(*) OVER (PARTITION BY code, entity) AS total
         FROM found f
       )
       INSERT INTO findings (run_id, district_id, severity, code, entity, source_id, file, line, detail, unlisted)
       SELECT $1::bigint, $2::text, severity, code, entity, source_id, file, line, detail, 0 FROM ranked WHERE rn <= ${FINDINGS_PER_CODE}
       UNION ALL
       SELECT $1::bigint, $2::text, severity, code, entity, NULL, file, NULL,
              (total - ${FINDINGS_PER_CODE}) || ' more findings like this are not listed', total - ${FINDINGS_PER_CODE}
       FROM ranked WHERE rn = 1 AND total > ${FINDINGS_PER_CODE}`,
      [context.runId, context.districtId]
    )
  })

/**
 * "The referenced record is absent": not in the staged set and — unless that set is complete
 * (bulk) — not in the store either. Written as AND-ed NOT EXISTS so Postgres runs anti-joins.
 */
const absentFrom = (context: FindingsContext, kind: EntityKind, sourceIdExpr: string) => {
  const staged = `NOT EXISTS (SELECT 1 FROM ${stageTable(kind)} p WHERE p.source_id = ${sourceIdExpr} AND (p.invalid OR p.status = 'active'))`
  if (context.modes[kind] === "bulk") return staged
  const table = Entities[kind].table!
  return `${staged}
           AND NOT EXISTS (SELECT 1 FROM ${table} t WHERE t.district_id = $2 AND t.source_id = ${sourceIdExpr} AND t.active)`
}

/**
 * `keys`: per kind, what staging knows of its keys (Digests.ts `StagedKeys`). Each
 * duplicate check groups only the rows that share a key with some candidate rows, and
 * finds the same groups it would among all rows:
 *
 * - where every row was decoded, a repeat has a second occurrence, which staging noted
 *   (`suspects`, RepeatedKeys.ts): those lines are the candidates (a first sync: a handful);
 * - where the rows restored from the digest set cannot repeat each other's keys, a repeat
 *   involves a decoded row (`digest IS NOT NULL`) or a line whose digest the scan may have
 *   listed before (`recheck`, RepeatedDigests.ts): those are the candidates (a resync
 *   decodes a few percent).
 *
 * A complete feed found without a repeated key marks its set distinct.
 */
/**
 * The candidate rows of a duplicate check (see above): a condition on the staging table's
 * rows, with its lines as `$1`; null when every row is to be grouped.
 */
const candidates = (staged: StagedKeys | undefined): { readonly rows: string; readonly lines: ReadonlyArray<number> } | null => {
  if (staged === undefined) return null
  if (staged.suspects !== null) return { rows: "line = ANY ($1::int[])", lines: staged.suspects }
  if (staged.restoredDistinct) return { rows: "digest IS NOT NULL OR line = ANY ($1::int[])", lines: staged.recheck }
  return null
}

export const checkStaged = (context: FindingsContext, keys: Partial<Record<EntityKind, StagedKeys>> = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const provided = (Object.keys(context.modes) as Array<EntityKind>).filter((kind) => context.modes[kind] !== null)
    const file = (kind: EntityKind) => quote(context.files[kind] ?? kind)
    /** Kinds in which a key was found repeated. */
    const repeated = new Set<EntityKind>()

    // 1. Rows that did not decode. Where the duplicate checks group only what shares a key
    //    with candidate rows, the same read of the staging table keeps those rows' keys
    //    (`check_keys_<kind>`, `candidate`): at ten million staged enrollments each read is
    //    seconds, and the checks read the table five times where they now read it three.
    const checkKeys = (kind: EntityKind) => `pg_temp.check_keys_${kind}`
    for (const kind of provided) {
      const only = candidates(keys[kind])
      let invalid = `${stageTable(kind)} WHERE invalid`
      if (only !== null) {
        const pair = kind === "enrollments" ? ", class_source_id, user_source_id" : ""
        yield* sql.unsafe(`DROP TABLE IF EXISTS ${checkKeys(kind)}`)
        yield* sql.unsafe(
          `CREATE TEMP TABLE ${checkKeys(kind)} AS
           SELECT line, invalid, problem, source_id${pair}, coalesce((${only.rows}), false) AS candidate
           FROM ${stageTable(kind)} WHERE invalid OR (${only.rows})`,
          [only.lines]
        )
        invalid = `${checkKeys(kind)} WHERE invalid`
      }
      yield* insertFindings(
        context,
        `SELECT 'error' AS severity, 'invalid_record' AS code, ${quote(kind)} AS entity, source_id, ${file(kind)} AS file, line,
                problem || '; the stored record is left unchanged' AS detail
         FROM ${invalid}`
      )
    }

    // 2. Source IDs listed more than once: ambiguous, so held (all copies marked invalid).
    //    One aggregate pass finds them; the rest only runs when there are any.
    for (const kind of provided) {
      const table = stageTable(kind)
      const only = candidates(keys[kind])
      yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.duplicate_ids`)
      yield* sql.unsafe(
        `CREATE TEMP TABLE duplicate_ids AS
           SELECT source_id FROM ${table} WHERE source_id IS NOT NULL${
          only === null ? "" : ` AND source_id IN (SELECT source_id FROM ${checkKeys(kind)} WHERE candidate)`
        } GROUP BY source_id HAVING count(*) > 1`
      )
      const [dups] = yield* sql.unsafe<{ readonly n: number }>(`SELECT count(*)::int AS n FROM duplicate_ids`)
      if ((dups?.n ?? 0) === 0) continue
      repeated.add(kind)
      // A record repeated with identical content (a re-sent CSV line, offset paging that
      // drifted over a page boundary) is not ambiguous: kept once, reported as a warning.
      const content = `(to_jsonb(s) - 'line' - 'invalid' - 'problem' - 'cleared' - 'stripped' - 'shadowed' - 'digest')`
      yield* sql.unsafe(`ALTER TABLE duplicate_ids ADD COLUMN identical boolean`)
      yield* sql.unsafe(
        `UPDATE duplicate_ids d SET identical = x.identical
         FROM (SELECT s.source_id, count(DISTINCT ${content}) = 1 AND bool_and(NOT s.invalid) AS identical
               FROM ${table} s JOIN duplicate_ids d USING (source_id) GROUP BY s.source_id) x
         WHERE x.source_id = d.source_id`
      )
      yield* insertFindings(
        context,
        `SELECT 'warning' AS severity, 'repeated_record' AS code, ${quote(kind)} AS entity, s.source_id, ${file(kind)} AS file,
                min(s.line) AS line,
                'the record is listed ' || count(*) || ' times with identical content (lines ' ||
                string_agg(s.line::text, ', ' ORDER BY s.line) || '); it is read once' AS detail
         FROM ${table} s JOIN duplicate_ids d ON d.source_id = s.source_id AND d.identical GROUP BY s.source_id`
      )
      yield* sql.unsafe(
        `UPDATE ${table} s SET shadowed = true
         FROM duplicate_ids d
         WHERE d.source_id = s.source_id AND d.identical
           AND s.line > (SELECT min(line) FROM ${table} f WHERE f.source_id = s.source_id)`
      )
      yield* insertFindings(
        context,
        `SELECT 'error' AS severity, 'duplicate_source_id' AS code, ${quote(kind)} AS entity, s.source_id, ${file(kind)} AS file,
                min(s.line) AS line,
                'the source ID appears ' || count(*) || ' times (lines ' || string_agg(s.line::text, ', ' ORDER BY s.line) ||
                '); the stored record is left unchanged' AS detail
         FROM ${table} s JOIN duplicate_ids d ON d.source_id = s.source_id AND NOT d.identical GROUP BY s.source_id`
      )
      yield* sql.unsafe(
        `UPDATE ${table} s SET invalid = true, problem = coalesce(problem, 'duplicate source ID')
         FROM duplicate_ids d WHERE d.source_id = s.source_id AND NOT d.identical`
      )
    }

    // 2a. Values the guard cleared or cleaned on the way into staging (src/Domain/Values.ts):
    //     the record applies without them. The detail names the fields, never the values.
    //     (Enrollments and demographics have no such fields: their staging tables are not scanned.)
    for (const kind of provided.filter((kind) => CLEANED_KINDS.has(kind))) {
      yield* insertFindings(
        context,
        `SELECT 'warning' AS severity, 'cleared_value' AS code, ${quote(kind)} AS entity, source_id, ${file(kind)} AS file, line,
                cleared || '; stored empty' AS detail
         FROM ${stageTable(kind)} WHERE NOT invalid AND NOT shadowed AND cleared IS NOT NULL
         UNION ALL
         SELECT 'warning' AS severity, 'control_characters' AS code, ${quote(kind)} AS entity, source_id, ${file(kind)} AS file, line,
                stripped || '; the rest of the text is stored' AS detail
         FROM ${stageTable(kind)} WHERE NOT invalid AND NOT shadowed AND stripped IS NOT NULL`
      )
    }

    // 2b. The same person in one class under several enrollment IDs: one row is kept by a
    //     stable rule (an active row over a removal, teacher over student, primary first,
    //     then the first line); the others are shadowed and reported.
    //     (A valid enrollment always names its class and user: no pair has a null.)
    if (context.modes.enrollments !== null) {
      const only = candidates(keys.enrollments)
      // The candidates' keys as read in step 1 (nothing was shadowed then). The ID check may
      // since have marked some of those rows invalid or shadowed, never the reverse: the
      // pairs read then include every pair a candidate row still has, and the grouping below
      // counts the rows as they are now.
      const candidatePairs = only === null
        ? null
        : `SELECT class_source_id, user_source_id FROM ${checkKeys("enrollments")} WHERE candidate AND NOT invalid`
      yield* sql.unsafe(`DROP TABLE IF EXISTS pg_temp.duplicate_pairs`)
      yield* sql.unsafe(
        `CREATE TEMP TABLE duplicate_pairs AS
           SELECT class_source_id, user_source_id FROM stage_enrollments WHERE NOT invalid AND NOT shadowed${
          candidatePairs === null ? "" : ` AND (class_source_id, user_source_id) IN (${candidatePairs})`
        }
           GROUP BY class_source_id, user_source_id HAVING count(*) > 1`
      )
      const [pairs] = yield* sql.unsafe<{ readonly n: number }>(`SELECT count(*)::int AS n FROM duplicate_pairs`)
      if ((pairs?.n ?? 0) > 0) {
        repeated.add("enrollments")
        yield* insertFindings(
          context,
          `SELECT 'warning' AS severity, 'duplicate_enrollment' AS code, 'enrollments' AS entity, min(s.source_id) AS source_id,
                  ${file("enrollments")} AS file, min(s.line) AS line,
                  'user ' || s.user_source_id || ' is enrolled in class ' || s.class_source_id || ' ' || count(*) ||
                  ' times (lines ' || string_agg(s.line::text, ', ' ORDER BY s.line) || '); one enrollment is kept' AS detail
           FROM stage_enrollments s JOIN duplicate_pairs p USING (class_source_id, user_source_id)
           WHERE NOT s.invalid AND NOT s.shadowed GROUP BY s.class_source_id, s.user_source_id`
        )
        yield* sql.unsafe(
          `UPDATE stage_enrollments SET shadowed = true
           WHERE ctid IN (
             SELECT ctid FROM (
               SELECT s.ctid, row_number() OVER (
                        PARTITION BY s.class_source_id, s.user_source_id
                        ORDER BY (s.status = 'active') DESC, (s.role = 'teacher') DESC, s.is_primary DESC, s.line) AS rn
               FROM stage_enrollments s JOIN duplicate_pairs p USING (class_source_id, user_source_id)
               WHERE NOT s.invalid AND NOT s.shadowed) ranked
             WHERE rn > 1)`
        )
      }
    }

    // The sets that hold exactly these rows, none repeating another's key: the next run's
    // restored rows cannot repeat each other's keys either.
    yield* markKeysDistinct(
      provided.flatMap((kind) => {
        const staged = keys[kind]
        return staged?.complete === true && staged.setId !== null && !repeated.has(kind) ? [staged.setId] : []
      })
    )

    // 3. References.
    const dangling = (kind: EntityKind, severity: "error" | "warning", target: EntityKind, idExpr: string, from: string, what: string) =>
      insertFindings(
        context,
        `SELECT ${quote(severity)} AS severity, 'dangling_reference' AS code, ${quote(kind)} AS entity, s.source_id,
                ${file(kind)} AS file, s.line, ${what} AS detail
         FROM ${from}
         WHERE NOT s.invalid AND s.status = 'active' AND ${idExpr} IS NOT NULL
           AND ${absentFrom(context, target, idExpr)}`
      )
    if (context.modes.classes !== null) {
      yield* dangling("classes", "warning", "orgs", "s.school_source_id", "stage_classes s",
        `'schoolSourcedId ' || s.school_source_id || ' is not a known org; the class is kept'`)
      if (context.modes.courses !== null) {
        yield* dangling("classes", "warning", "courses", "s.course_source_id", "stage_classes s",
          `'courseSourcedId ' || s.course_source_id || ' is not a known course; the class is kept'`)
      }
      yield* dangling("classes", "warning", "terms", "r.ref", "stage_classes s CROSS JOIN LATERAL unnest(s.term_source_ids) AS r(ref)",
        `'termSourcedIds lists ' || r.ref || ', which is not a known academic session; the class is kept'`)
    }
    if (context.modes.users !== null) {
      yield* dangling("users", "warning", "orgs", "r.ref", "stage_users s CROSS JOIN LATERAL unnest(s.org_source_ids) AS r(ref)",
        `'orgSourcedIds lists ' || r.ref || ', which is not a known org; the user is kept'`)
    }
    if (context.modes.demographics !== null) {
      yield* dangling("demographics", "warning", "users", "s.source_id", "stage_demographics s",
        `'no user has this sourcedId; the demographics row is ignored'`)
    }
    // Enrollments whose class or user does not exist are found by the enrollment plan (Apply).
  }).pipe(Effect.withSpan("Findings.checkStaged"))
