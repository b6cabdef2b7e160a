import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { CHANGE_IDS_LISTED, type ChangeGroup, changesRetentionDays } from "../Store/Runs.ts"
import type { ApplyContext } from "./Apply.ts"
import { plannedIds, planTable } from "./Apply.ts"
import { Entities } from "./Entities.ts"

/**
 * The record-level change list of a run, from its plan tables: what it created, updated
 * (with the names of the fields that changed — not their values) and deactivated, and
 * what the gate held. Stored compactly in `run_changes` (per kind, action, reason, fields
 * and held, the source IDs as arrays in parts of a bounded size), printed by `rosterd runs
 * --changes` and by `rosterd sync --dry-run --json`. Enrollments are named `class/user` by source IDs.
 */

export const PLAN_KINDS = ["orgs", "terms", "courses", "classes", "users", "enrollments"] as const
export type PlanKind = (typeof PLAN_KINDS)[number]

export const kindLabel = (kind: PlanKind) => (kind === "enrollments" ? "enrollments" : Entities[kind].label)

/** The record identity a change list shows for a plan row. */
export const planSourceId = (kind: PlanKind, alias = "p") =>
  kind === "enrollments" ? `${alias}.class_source_id || '/' || ${alias}.user_source_id` : `${alias}.source_id`

/** A plan row's change group: action, the reason of a deactivation, the fields of an update, held. */
const GROUP_KEY = ["action", "CASE WHEN action = 'deactivate' THEN reason END", "coalesce(fields, '{}')", "held"] as const
const GROUP_COLUMNS = `${GROUP_KEY[0]} AS action, ${GROUP_KEY[1]} AS reason, ${GROUP_KEY[2]} AS fields, ${GROUP_KEY[3]} AS held`
const CHANGED = `action IN ('create', 'update', 'deactivate')`

/**
 * Records a part of a stored group lists (see `recordChanges`), counted in source lines (a
 * row's line in its file or listing) or, for rows no source line names (deactivations),
 * in live row ids. A Clever section's members share its line: a part of enrollments lists
 * the members of up to this many sections.
 */
export const LINES_PER_PART = 10_000

/**
 * A kind's change groups, in parts: each group's rows split by their line (their live row's
 * id when they have no line) in ranges of `linesPerPart`. Numbering the rows instead would
 * sort them all; ranges of a number each row has cost one hash aggregate, as the groups
 * alone did.
 */
const partsOf = (kind: PlanKind, linesPerPart: number) =>
  `SELECT '${kindLabel(kind)}' AS kind, ${GROUP_COLUMNS}, (coalesce(live_id, line, 0) / ${linesPerPart})::int AS part,
          array_agg(${planSourceId(kind)}) AS source_ids
   FROM ${planTable(kind)} p WHERE ${CHANGED}
   GROUP BY ${GROUP_KEY.join(", ")}, coalesce(live_id, line, 0) / ${linesPerPart}`

/**
 * The run's change list (inside the run's transaction, from its plan tables), at most
 * `listed` IDs a group (`CHANGE_IDS_LISTED`): each group is counted, and its IDs read up to
 * the limit and no further — a dry run of a first sync never builds an array of millions.
 */
export const changeList = (listed: number = CHANGE_IDS_LISTED) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const groupsOf = (kind: PlanKind) =>
      `SELECT '${kindLabel(kind)}' AS kind, g.action, g.reason, g.fields, g.held,
              ARRAY(SELECT ${planSourceId(kind)} FROM ${planTable(kind)} p
                    WHERE ${CHANGED} AND (${GROUP_KEY.join(", ")}) IS NOT DISTINCT FROM (g.action, g.reason, g.fields, g.held)
                    LIMIT ${listed}) AS source_ids, g.total
       FROM (SELECT ${GROUP_COLUMNS}, count(*)::int AS total
             FROM ${planTable(kind)} p WHERE ${CHANGED} GROUP BY ${GROUP_KEY.join(", ")}) g`
    return yield* sql.unsafe<ChangeGroup>(PLAN_KINDS.map(groupsOf).join("\nUNION ALL\n"))
  }).pipe(Effect.withSpan("ChangeList.changeList"))

/**
 * Before-values for undo (src/Districts/Undo.ts): for each record of the kind the run is about
 * to update or deactivate (what the gate let through), its row id and the values its changed
 * fields have now — with `deactivated_at` and `deactivation_reason` when the update
 * reactivates it. Runs between the gate and the writes (SyncRun wraps the gate hook with it),
 * one statement over the updated and deactivated rows only: a first sync or a no-op run
 * writes nothing here. Personal values: `run_change_values` is the app's only, and pruned
 * with the change lists.
 */
export const keepBeforeValues = (kind: PlanKind, context: ApplyContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = kind === "enrollments" ? "enrollments" : Entities[kind].table!
    yield* sql.unsafe(
      `INSERT INTO run_change_values (run_id, district_id, kind, action, live_id, before)
       SELECT $1, $2, $3, p.action, p.live_id,
              CASE WHEN p.action = 'update' THEN coalesce((
                SELECT jsonb_object_agg(f, j.row -> f)
                FROM unnest(coalesce(p.fields, '{}') || CASE WHEN 'active' = ANY (p.fields) THEN ARRAY['deactivated_at', 'deactivation_reason'] ELSE '{}'::text[] END) f
              ), '{}') ELSE '{}' END
       FROM ${planTable(kind)} p
       JOIN ${table} l ON l.id = p.live_id AND l.id = ANY (${plannedIds(planTable(kind), "'update', 'deactivate'")})
       CROSS JOIN LATERAL (SELECT to_jsonb(l) AS row) j
       WHERE p.action IN ('update', 'deactivate') AND NOT p.held`,
      [context.runId, context.districtId, kind]
    )
  }).pipe(Effect.withSpan("ChangeList.keepBeforeValues", { attributes: { kind } }))

/**
 * Stores the run's change list, and prunes lists older than the retention period. A group
 * is stored in parts (`partsOf`): one array of ten million enrollment IDs would take one
 * backend over a gigabyte to build, and Postgres refuses a value over 1 GB.
 */
export const recordChanges = (runId: number, districtId: string, linesPerPart: number = LINES_PER_PART) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const days = yield* changesRetentionDays.pipe(Effect.orDie)
    // (The aggregate holds the parts in memory up to the transaction's work_mem, SyncRun.ts,
    // and spills past it: bounded whatever the run's size.)
    yield* sql.unsafe(
      `INSERT INTO run_changes (run_id, district_id, kind, action, reason, fields, held, part, source_ids)
       SELECT $1, $2, kind, action, reason, fields, held, part, source_ids
       FROM (${PLAN_KINDS.map((kind) => partsOf(kind, linesPerPart)).join("\nUNION ALL\n")}) g`,
      [runId, districtId]
    )
    yield* sql`DELETE FROM run_changes WHERE created_at < now() - make_interval(days => ${days})`
    // The before-values go with them: an undo needs both, and personal values are kept no longer.
    yield* sql`DELETE FROM run_change_values WHERE created_at < now() - make_interval(days => ${days})`
  }).pipe(Effect.withSpan("ChangeList.recordChanges"))
