import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import type { RosterSource } from "../Domain/District.ts"
import type { FeedMode } from "../Providers/RosterProvider.ts"
import type { EntityCounts } from "../Domain/RunCounts.ts"
import type { KeyedKind } from "./Entities.ts"
import { Entities, listedStaged, stageTable } from "./Entities.ts"
import { FINDINGS_PER_CODE } from "./Findings.ts"
import { membershipsOutsideDistrict, writeReferencesBySet } from "./ReferencesBySet.ts"
import { underThirteen } from "./Rules/People.ts"

/**
 * The set-based diff and apply.
 *
 * For each entity kind, in dependency order, two statements:
 *
 * 1. **plan** — one FULL JOIN of the staged rows with the district's live rows classifies
 *    every record as create / update / deactivate / unchanged. Only changes are written
 *    to the run's `plan_<kind>` temp table (the record-level change list), streamed: the
 *    join is never kept. The counts come from the rows planned, and `unchanged` from one
 *    count of the staged rows. Compare before write: a record whose values are all equal is
 *    `unchanged` and costs no write at all, so a no-op sync writes nothing.
 * 2. **apply** — inserts, updates and deactivations straight from the plan, by id.
 *
 * "Deactivate" means: marked `tobedeleted`, or — when the feed is a complete (bulk) set —
 * absent from it. Records held as unreadable or ambiguous (see Findings) count as present
 * and are left exactly as they are. Nothing is deleted; a returning source ID reactivates
 * its row (same id, so everything the platform attached to it stays attached).
 *
 * All statements of a run share one transaction (see SyncRun).
 */

export interface ApplyContext {
  readonly runId: number
  readonly districtId: string
  readonly rosterSource: RosterSource
  /** The district's local date (YYYY-MM-DD): ages and current terms are judged on it. */
  readonly today: string
  /** Whether the inserts' foreign keys are checked per set, not per row (ReferencesBySet.ts). */
  readonly referencesBySet?: boolean
}

interface ColumnValue {
  readonly name: string
  /** The new value, in terms of the staged row `s` and the live row `l` (null when new). */
  readonly value: string
  readonly type: string
}

interface RawCounts {
  readonly created: number
  readonly updated: number
  readonly deactivated: number
  readonly unchanged: number
}

const countsOf = (raw: RawCounts | undefined): EntityCounts => ({
  created: raw?.created ?? 0,
  updated: raw?.updated ?? 0,
  deactivated: raw?.deactivated ?? 0,
  unchanged: raw?.unchanged ?? 0
})

export const planTable = (kind: KeyedKind | "enrollments") => `plan_${kind}`

/**
 * The diff's counts from the rows it planned (its statement's `planned`, returning
 * `action`), and how many staged rows are listed as active and in scope (`listed`, SQL),
 * from which the caller takes `unchanged`. `created`: the planned actions that count as
 * created; `more`: further columns.
 */
const plannedCounts = (created: string, listed: string, more?: string) => `SELECT
  count(*) FILTER (WHERE action IN (${created})) AS created,
  count(*) FILTER (WHERE action = 'update') AS updated,
  count(*) FILTER (WHERE action = 'deactivate') AS deactivated,
  (${listed})::float8 AS listed${more === undefined ? "" : `, ${more}`}
FROM planned`

/**
 * How users get their birth date: from the demographics feed when there is one (a bulk
 * feed is the whole truth, so a user without a row has none; a delta feed changes only the
 * users it lists), or not at all when demographics are not provided.
 */
export type BirthDates = FeedMode | null

export const keyedColumns = (kind: KeyedKind, birthDates: BirthDates): ReadonlyArray<ColumnValue> => {
  const plain = Entities[kind].columns.map((c) => ({ name: c.name, value: `s.${c.name}`, type: c.type }))
  if (kind !== "users") return plain
  // A user whose demographics row is held (unreadable, or listed twice) keeps the stored date.
  const birthDate = birthDates === null
    ? "l.birth_date"
    : birthDates === "bulk"
    ? "CASE WHEN hd.source_id IS NOT NULL THEN l.birth_date ELSE d.birth_date END"
    : "CASE WHEN d.source_id IS NOT NULL AND hd.source_id IS NULL THEN d.birth_date ELSE l.birth_date END"
  return [
    ...plain,
    ...(birthDates === null ? [] : [{ name: "birth_date", type: "date", value: birthDate }]),
    // The age rule (Rules/People.ts); $4 is the district's local date.
    { name: "under_13", type: "boolean", value: underThirteen("s.roles", `(${birthDate})`, "$4::date") }
  ]
}

/** DDL of the plan tables (temp, per run). */
export const planDdl = (): string => {
  const keyed = (["orgs", "terms", "courses", "classes", "users"] as const).map((kind) => {
    const columns = keyedColumns(kind, kind === "users" ? "bulk" : null).map((c) => `${c.name} ${c.type}`)
    return `DROP TABLE IF EXISTS pg_temp.${planTable(kind)};
CREATE TEMP TABLE ${planTable(kind)} (action text NOT NULL, reason text, live_id bigint, source_id text NOT NULL, line integer,
  held boolean NOT NULL DEFAULT false, rule text, fields text[],
  ${columns.join(", ")});`
  })
  return [...keyed, `DROP TABLE IF EXISTS pg_temp.${planTable("enrollments")};
CREATE TEMP TABLE ${planTable("enrollments")} (action text NOT NULL, reason text, live_id bigint, class_id bigint, user_id bigint,
  class_source_id text NOT NULL, user_source_id text NOT NULL, source_id text, line integer,
  held boolean NOT NULL DEFAULT false, rule text, fields text[], role text, is_primary boolean,
  -- (The diff's: a staged row listed as active and in scope, for the counts.)
  staged_active boolean NOT NULL DEFAULT false,
  school_source_id text, begin_date date, end_date date);`].join("\n")
}

export const dropPlanDdl = (): string =>
  [...(["orgs", "terms", "courses", "classes", "users"] as const), "enrollments" as const]
    .map((kind) => `DROP TABLE IF EXISTS pg_temp.${planTable(kind)};`).join("\n")

/** What the safety gate held back of a kind's plan (see Gate.ts). */
export interface HeldCounts {
  readonly deactivated: number
  readonly updated: number
}

/** Judges a kind's plan between planning and writing, marking rows `held`; returns what it held. */
export type GateHook = Effect.Effect<HeldCounts, SqlError, SqlClient.SqlClient>

const noGate: GateHook = Effect.succeed({ deactivated: 0, updated: 0 })

const applied = (raw: RawCounts | undefined, held: HeldCounts): EntityCounts => {
  const counts = countsOf(raw)
  return { ...counts, updated: counts.updated - held.updated, deactivated: counts.deactivated - held.deactivated }
}

/**
 * The live rows a plan's rows of `actions` name, as an index condition on the live table:
 * `l.id = ANY (${plannedIds(…)})`, next to the join by id. The transaction turns nested loops
 * off (SyncRun.ts `openTransaction`), so joining a resync's few planned rows to their live
 * rows would hash the district's whole table; the array (one read of the plan, then the
 * primary key) reads those rows only — and never a nested loop over a misestimated set.
 * `unheld`: what the gate let through only.
 */
export const plannedIds = (plan: string, actions: string, unheld = true) =>
  `ARRAY(SELECT live_id FROM ${plan} WHERE action IN (${actions})${unheld ? " AND NOT held" : ""} AND live_id IS NOT NULL)`

/** The `FROM … WHERE` of a write to the live rows (`l`) of the plan's unheld rows of `action`. */
const plannedRows = (plan: string, action: "update" | "deactivate") =>
  `FROM ${plan} p WHERE p.action = '${action}' AND NOT p.held AND l.id = p.live_id AND l.id = ANY (${plannedIds(plan, `'${action}'`)})`

/** Names the fields each planned update changes (for change lists and holds): update rows only. */
const markChangedFields = (table: string, plan: string, names: ReadonlyArray<string>, active: string) =>
  `UPDATE ${plan} p SET fields = array_remove(ARRAY[${active}${
    names.map((n) => `CASE WHEN l.${n} IS DISTINCT FROM p.${n} THEN '${n}' END`).join(", ")
  }], NULL)
   FROM ${table} l WHERE p.action = 'update' AND l.id = p.live_id AND l.id = ANY (${plannedIds(plan, "'update'", false)})`

/** Schools, terms, courses, classes, users: keyed by `(district_id, source_id)`. */
export const applyKeyed = (kind: KeyedKind, mode: FeedMode, context: ApplyContext, birthDates: BirthDates = null, gate: GateHook = noGate) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = Entities[kind].table!
    const plan = planTable(kind)
    const stage = stageTable(kind)
    const columns = keyedColumns(kind, birthDates)
    const names = columns.map((c) => c.name).join(", ")
    const demographics = kind === "users" && birthDates !== null
      ? `LEFT JOIN (SELECT source_id, CASE WHEN status = 'active' THEN birth_date END AS birth_date
                    FROM ${stageTable("demographics")} WHERE NOT invalid AND NOT shadowed) d ON d.source_id = s.source_id
       LEFT JOIN (SELECT DISTINCT source_id FROM ${stageTable("demographics")} WHERE invalid AND source_id IS NOT NULL) hd
         ON hd.source_id = s.source_id`
      : ""
    const params = kind === "users"
      ? [context.districtId, context.rosterSource, mode === "bulk", context.today]
      : [context.districtId, context.rosterSource, mode === "bulk"]

    // One pass over the join, streamed into the plan (as the enrollments' diff: nothing of
    // it kept). `unchanged`: each staged row that is valid, listed as active and in scope is
    // one row of the join (the checks left one staged row per source ID), created, updated
    // or unchanged.
    const [planned] = yield* sql.unsafe<RawCounts & { readonly listed: number }>(
      `WITH held AS (SELECT DISTINCT source_id FROM ${stage} WHERE invalid AND source_id IS NOT NULL),
      diff AS (
        SELECT
          CASE
            WHEN s.excluded IS NOT NULL THEN CASE WHEN l.active THEN 'deactivate' ELSE 'excluded' END
            WHEN s.status = 'active' THEN
              CASE WHEN l.id IS NULL THEN 'create'
                   WHEN NOT l.active OR l.roster_source <> $2::roster_source
                        OR (${columns.map((c) => `l.${c.name}`).join(", ")}) IS DISTINCT FROM (${columns.map((c) => c.value).join(", ")})
                     THEN 'update'
                   ELSE 'unchanged' END
            WHEN s.status = 'tobedeleted' THEN CASE WHEN l.active THEN 'deactivate' END
            WHEN l.active AND $3 AND h.source_id IS NULL THEN 'deactivate'
          END AS action,
          CASE WHEN s.excluded IS NOT NULL THEN s.excluded
               WHEN s.status = 'tobedeleted' THEN 'tobedeleted' ELSE 'missing_from_source' END AS reason,
          l.id AS live_id, coalesce(s.source_id, l.source_id) AS source_id, s.line,
          ${columns.map((c) => `${c.value} AS ${c.name}`).join(", ")}
        FROM (SELECT * FROM ${stage} WHERE NOT invalid AND NOT shadowed) s
        ${demographics}
        FULL JOIN (SELECT * FROM ${table} WHERE district_id = $1) l ON l.source_id = s.source_id
        LEFT JOIN held h ON h.source_id = l.source_id
        -- (A fence, not a materialization: each row's action is taken once.)
        OFFSET 0
      ),
      planned AS (
        INSERT INTO ${plan} (action, reason, live_id, source_id, line, ${names})
        SELECT action, reason, live_id, source_id, line, ${names} FROM diff WHERE action IN ('create', 'update', 'deactivate')
        RETURNING action
      )
      ${plannedCounts("'create'", `SELECT count(*) FROM ${stage} s WHERE ${listedStaged()}`)}`,
      params
    )
    const raw: RawCounts | undefined = planned === undefined ? undefined : {
      created: Number(planned.created),
      updated: Number(planned.updated),
      deactivated: Number(planned.deactivated),
      unchanged: planned.listed - Number(planned.created) - Number(planned.updated)
    }

    if ((raw?.updated ?? 0) > 0) {
      yield* sql.unsafe(markChangedFields(table, plan, columns.map((c) => c.name), "CASE WHEN NOT l.active THEN 'active' END, "))
    }
    const held = (raw?.updated ?? 0) + (raw?.deactivated ?? 0) > 0 ? yield* gate : { deactivated: 0, updated: 0 }

    // (Their one foreign key is the district's: ReferencesBySet.ts.)
    yield* writeReferencesBySet({ bySet: context.referencesBySet === true, table, districtId: context.districtId, write: sql.unsafe(
      `WITH created AS (
        INSERT INTO ${table} (district_id, source_id, roster_source, ${names})
        SELECT $1, source_id, $2::roster_source, ${names} FROM ${plan} WHERE action = 'create'
      ),
      updated AS (
        UPDATE ${table} l
        SET (${names}, roster_source, active, deactivated_at, deactivation_reason, updated_at) =
            (${columns.map((c) => `p.${c.name}`).join(", ")}, $2::roster_source, true, NULL, NULL, now())
        ${plannedRows(plan, "update")}
      )
      UPDATE ${table} l
      SET active = false, deactivated_at = now(), updated_at = now(), deactivation_reason = p.reason
      ${plannedRows(plan, "deactivate")}`,
      [context.districtId, context.rosterSource]
    ) })
    return { counts: applied(raw, held), held }
  }).pipe(Effect.withSpan("Apply.applyKeyed", { attributes: { kind, mode } }))

/**
 * Demographics delivered without users (a delta set that changed only birth dates): set
 * the birth dates of the users listed. Counted as user updates.
 */
export const applyBirthDatesOnly = (context: ApplyContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql.unsafe<{ readonly updated: number }>(
      `WITH updated AS (
         UPDATE users l SET birth_date = CASE WHEN d.status = 'active' THEN d.birth_date END, updated_at = now()
         FROM ${stageTable("demographics")} d
         WHERE l.district_id = $1 AND l.source_id = d.source_id AND NOT d.invalid
           AND l.birth_date IS DISTINCT FROM (CASE WHEN d.status = 'active' THEN d.birth_date END)
         RETURNING 1)
       SELECT count(*) AS updated FROM updated`,
      [context.districtId]
    )
    return row!.updated
  })

export const ENROLLMENT_VALUES = ["source_id", "role", "is_primary", "school_source_id", "begin_date", "end_date"] as const

/**
 * Enrollments: identity is the (class, user) pair, compared on source IDs (copied into the
 * live rows) so no reference needs resolving except for new memberships. A membership
 * ends when it is marked `tobedeleted`, when its class or person is no longer active
 * (whatever the feed says), or — bulk feeds — when it is not listed (unless its class's
 * record is invalid: the class is held, and so are its memberships). Several staged rows
 * for one pair were reduced to one by the checks. Each change of membership is a new
 * period: ending closes the open row, a later return opens a new one, so history is kept.
 */
export const applyEnrollments = (mode: FeedMode, context: ApplyContext, file: string, gate: GateHook = noGate) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const stage = stageTable("enrollments")
    const plan = planTable("enrollments")
    const values = ENROLLMENT_VALUES
    // One pass over the join of every staged and live row, streamed into the plan: nothing
    // of it is kept. Materialized (so that the counts could read every row), it took twice as
    // long (at 837,000 enrollments, medians of seven on a kept database: 2.55 → 1.23 s).
    // The counts come from the rows planned, and from the staged rows (one count):
    // each staged row that is valid, listed as active and in scope is one row of the join
    // (the checks left one staged row per pair; an open period per pair is unique), and
    // every such row that is not unchanged is planned, marked `staged_active`.
    //
    // New memberships (no open live row) are resolved to their class and user on the way
    // into the plan, by a join over those rows only: joined inside the diff, every listed
    // row probed both tables (the bench's full sync: 2.60 → 1.86–1.98 s). `created` counts
    // them all until the dangling ones are known (below).
    // One read of the staged rows for what the diff needs of them: how many are listed, and
    // whether any is held (the held pairs' join only then: nearly never, and it cost 0.2 s).
    const [staged] = yield* sql.unsafe<{ readonly listed: number; readonly anyHeld: boolean }>(
      `SELECT count(*) FILTER (WHERE ${listedStaged()})::float8 AS listed,
              coalesce(bool_or(s.invalid AND s.class_source_id IS NOT NULL AND s.user_source_id IS NOT NULL), false) AS "anyHeld"
       FROM ${stage} s`
    )
    const anyHeld = staged?.anyHeld ?? true
    const [planned] = yield* sql.unsafe<RawCounts & { readonly listed: number; readonly listedPlanned: number }>(
      `WITH held AS (
        SELECT DISTINCT class_source_id, user_source_id FROM ${stage}
        WHERE invalid AND class_source_id IS NOT NULL AND user_source_id IS NOT NULL
      ),
      diff AS (
        SELECT
          CASE
            WHEN l.id IS NOT NULL AND (l.class_id IN (SELECT id FROM classes WHERE district_id = $1 AND NOT active)
                                       OR l.user_id IN (SELECT id FROM users WHERE district_id = $1 AND NOT active))
              THEN 'deactivate'
            WHEN s.excluded IS NOT NULL THEN CASE WHEN l.id IS NOT NULL THEN 'deactivate' ELSE 'excluded' END
            WHEN s.status = 'active' THEN
              CASE WHEN l.id IS NULL THEN 'new'
                   WHEN (${values.map((v) => `l.${v}`).join(", ")}, l.roster_source) IS DISTINCT FROM
                        (${values.map((v) => `s.${v}`).join(", ")}, $2::roster_source)
                     THEN 'update'
                   ELSE 'unchanged' END
            WHEN s.status = 'tobedeleted' THEN CASE WHEN l.id IS NOT NULL THEN 'deactivate' END
            -- A class whose record is invalid is held, not deactivated (Findings.ts), and so
            -- are its memberships: a Clever section lists its members itself, so a section
            -- that does not decode (or has no school) lists none, and they would all end as
            -- unlisted. (A hashed subplan, probed only by the rows that are not listed.)
            WHEN l.id IS NOT NULL AND $3${anyHeld ? " AND h.class_source_id IS NULL" : ""}
                 AND l.class_source_id NOT IN (SELECT source_id FROM ${stageTable("classes")} WHERE invalid AND source_id IS NOT NULL)
              THEN 'deactivate'
          END AS action,
          CASE
            WHEN l.class_id IN (SELECT id FROM classes WHERE district_id = $1 AND NOT active) THEN 'class_removed'
            WHEN l.user_id IN (SELECT id FROM users WHERE district_id = $1 AND NOT active) THEN 'user_removed'
            WHEN s.excluded IS NOT NULL THEN s.excluded
            WHEN s.status = 'tobedeleted' THEN 'tobedeleted'
            ELSE 'missing_from_source' END AS reason,
          s.line IS NOT NULL AND s.status = 'active' AND s.excluded IS NULL AS staged_active,
          l.id AS live_id, l.class_id, l.user_id,
          coalesce(s.class_source_id, l.class_source_id) AS class_source_id,
          coalesce(s.user_source_id, l.user_source_id) AS user_source_id,
          s.line, ${values.map((v) => `s.${v}`).join(", ")}
        FROM (SELECT * FROM ${stage} WHERE NOT invalid AND NOT shadowed) s
        FULL JOIN (SELECT * FROM enrollments WHERE district_id = $1 AND ended_at IS NULL) l
          ON l.class_source_id = s.class_source_id AND l.user_source_id = s.user_source_id
        ${anyHeld ? "LEFT JOIN held h ON h.class_source_id = l.class_source_id AND h.user_source_id = l.user_source_id" : ""}
        -- (A fence, not a materialization: each row's action is taken once, and only the
        -- rows planned meet the classes and users; inlined, the action was recomputed for
        -- every row in each join's filter.)
        OFFSET 0
      ),
      planned AS (
        INSERT INTO ${plan} (action, reason, staged_active, live_id, class_id, user_id, class_source_id, user_source_id, line, ${values.join(", ")})
        SELECT CASE WHEN d.action <> 'new' THEN d.action WHEN c.id IS NULL OR u.id IS NULL THEN 'dangling' ELSE 'create' END,
               d.reason, d.staged_active, d.live_id,
               CASE WHEN d.action = 'new' THEN c.id ELSE d.class_id END, CASE WHEN d.action = 'new' THEN u.id ELSE d.user_id END,
               d.class_source_id, d.user_source_id, d.line, ${values.map((v) => `d.${v}`).join(", ")}
        FROM diff d
        LEFT JOIN classes c ON d.action = 'new' AND c.district_id = $1 AND c.source_id = d.class_source_id AND c.active
        LEFT JOIN users u ON d.action = 'new' AND u.district_id = $1 AND u.source_id = d.user_source_id AND u.active
        WHERE d.action IN ('new', 'update', 'deactivate')
        RETURNING action, staged_active
      )
      ${plannedCounts("'create', 'dangling'", String(staged?.listed ?? 0),
        `count(*) FILTER (WHERE staged_active)::float8 AS "listedPlanned"`)}`,
      [context.districtId, context.rosterSource, mode === "bulk"]
    )
    const diffed: RawCounts | undefined = planned === undefined ? undefined : {
      created: Number(planned.created),
      updated: Number(planned.updated),
      deactivated: Number(planned.deactivated),
      // Every staged row the join found unchanged: the listed rows it did not plan.
      unchanged: planned.listed - planned.listedPlanned
    }

    // Memberships of a class or person we do not have (or no longer have) are skipped, and
    // reported: every one is counted (listed, or in the summary's `unlisted`).
    const [dangling] = yield* sql.unsafe<{ readonly n: number }>(
      `WITH found AS (
         SELECT source_id, line, class_source_id, user_source_id,
                row_number() OVER (ORDER BY line) AS rn, count(*) OVER () AS total
         FROM ${plan} WHERE action = 'dangling'),
       reported AS (
         INSERT INTO findings (run_id, district_id, severity, code, entity, source_id, file, line, detail, unlisted)
         SELECT $1::bigint, $2::text, 'error', 'dangling_reference', 'enrollments', source_id, $3::text, line,
                'class ' || class_source_id || ' or user ' || user_source_id || ' is not an active record; the enrollment is skipped', 0
         FROM found WHERE rn <= ${FINDINGS_PER_CODE}
         UNION ALL
         SELECT $1::bigint, $2::text, 'error', 'dangling_reference', 'enrollments', NULL, $3::text, NULL,
                (total - ${FINDINGS_PER_CODE}) || ' more findings like this are not listed', total - ${FINDINGS_PER_CODE}
         FROM found WHERE rn = 1 AND total > ${FINDINGS_PER_CODE}
         RETURNING unlisted)
       SELECT (count(*) FILTER (WHERE unlisted = 0) + coalesce(sum(unlisted), 0))::int AS n FROM reported`,
      [context.runId, context.districtId, file]
    )
    const raw: RawCounts | undefined = diffed === undefined
      ? undefined
      : { ...diffed, created: Number(diffed.created) - (dangling?.n ?? 0) }

    if ((raw?.updated ?? 0) > 0) yield* sql.unsafe(markChangedFields("enrollments", plan, values, ""))
    const held = (raw?.updated ?? 0) + (raw?.deactivated ?? 0) > 0 ? yield* gate : { deactivated: 0, updated: 0 }

    // (Each new membership's class and user must be the district's: ReferencesBySet.ts.)
    yield* writeReferencesBySet({
      bySet: context.referencesBySet === true,
      table: "enrollments",
      districtId: context.districtId,
      dangling: membershipsOutsideDistrict(plan),
      write: sql.unsafe(
      `WITH created AS (
        INSERT INTO enrollments (district_id, class_id, user_id, class_source_id, user_source_id, roster_source, ${values.join(", ")})
        SELECT $1, class_id, user_id, class_source_id, user_source_id, $2::roster_source, ${values.join(", ")}
        FROM ${plan} WHERE action = 'create'
      ),
      updated AS (
        UPDATE enrollments l
        SET (${values.join(", ")}, roster_source, updated_at) = (${values.map((v) => `p.${v}`).join(", ")}, $2::roster_source, now())
        ${plannedRows(plan, "update")}
      )
      UPDATE enrollments l SET ended_at = now(), updated_at = now(), end_reason = p.reason
      ${plannedRows(plan, "deactivate")}`,
      [context.districtId, context.rosterSource]
    ) })
    return { counts: applied(raw, held), held }
  }).pipe(Effect.withSpan("Apply.applyEnrollments", { attributes: { mode } }))

/**
 * When the enrollments feed is absent, memberships of classes or people removed by this
 * run still end (an open enrollment always points at an active class and user).
 */
export const endOrphanedEnrollments = (context: ApplyContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql.unsafe<{ readonly ended: number }>(
      `WITH ended AS (
         UPDATE enrollments l SET ended_at = now(), updated_at = now(),
                end_reason = CASE WHEN l.class_id IN (SELECT id FROM classes WHERE district_id = $1 AND NOT active)
                                  THEN 'class_removed' ELSE 'user_removed' END
         WHERE l.district_id = $1 AND l.ended_at IS NULL
           AND (l.class_id IN (SELECT id FROM classes WHERE district_id = $1 AND NOT active)
                OR l.user_id IN (SELECT id FROM users WHERE district_id = $1 AND NOT active))
         RETURNING 1)
       SELECT count(*) AS ended FROM ended`,
      [context.districtId]
    )
    return row!.ended
  })
