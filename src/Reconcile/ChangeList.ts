import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { CHANGE_IDS_LISTED, type ChangeGroup, changesRetentionDays } from "../Store/Runs.ts"
import type { ApplyContext } from "./Apply.ts"
import { planTable } from "./Apply.ts"
import { Entities } from "./Entities.ts"

/**
 * The record-level change list of a run, from its plan tables: what it created, updated
 * (with the names of the fields that changed — not their values) and deactivated, and
 * what the gate held. Stored compactly in `run_changes` (one row per kind, action, reason,
 * fields and held, with the source IDs as an array), printed by `rosterd runs --changes`
 * and by `rosterd sync --dry-run --json`. Enrollments are named `class/user` by source IDs.
 */

export const PLAN_KINDS = ["orgs", "terms", "courses", "classes", "users", "enrollments"] as const
export type PlanKind = (typeof PLAN_KINDS)[number]

export const kindLabel = (kind: PlanKind) => (kind === "enrollments" ? "enrollments" : Entities[kind].label)

/** The record identity a change list shows for a plan row. */
export const planSourceId = (kind: PlanKind, alias = "p") =>
  kind === "enrollments" ? `${alias}.class_source_id || '/' || ${alias}.user_source_id` : `${alias}.source_id`

/** A kind's change groups; `listed`: at most that many source IDs a group (the count stays whole). */
const groupsOf = (kind: PlanKind, listed?: number) => {
  const ids = `array_agg(${planSourceId(kind)})`
  return `SELECT '${kindLabel(kind)}' AS kind, action, CASE WHEN action = 'deactivate' THEN reason END AS reason,
          coalesce(fields, '{}') AS fields, held, ${listed === undefined ? ids : `(${ids})[1:${listed}]`} AS source_ids,
          count(*)::int AS total
   FROM ${planTable(kind)} p WHERE action IN ('create', 'update', 'deactivate')
   GROUP BY action, CASE WHEN action = 'deactivate' THEN reason END, coalesce(fields, '{}'), held`
}

/** The run's change list (inside the run's transaction, from its plan tables), `CHANGE_IDS_LISTED` IDs a group at most. */
export const changeList = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql.unsafe<ChangeGroup>(PLAN_KINDS.map((kind) => groupsOf(kind, CHANGE_IDS_LISTED)).join("\nUNION ALL\n"))
  return rows
})

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
       FROM ${planTable(kind)} p JOIN ${table} l ON l.id = p.live_id CROSS JOIN LATERAL (SELECT to_jsonb(l) AS row) j
       WHERE p.action IN ('update', 'deactivate') AND NOT p.held`,
      [context.runId, context.districtId, kind]
    )
  }).pipe(Effect.withSpan("ChangeList.keepBeforeValues", { attributes: { kind } }))

/** Stores the run's change list, and prunes lists older than the retention period. */
export const recordChanges = (runId: number, districtId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const days = yield* changesRetentionDays.pipe(Effect.orDie)
    yield* sql.unsafe(
      `INSERT INTO run_changes (run_id, district_id, kind, action, reason, fields, held, source_ids)
       SELECT $1, $2, kind, action, reason, fields, held, source_ids FROM (${PLAN_KINDS.map((kind) => groupsOf(kind)).join("\nUNION ALL\n")}) g`,
      [runId, districtId]
    )
    yield* sql`DELETE FROM run_changes WHERE created_at < now() - make_interval(days => ${days})`
    // The before-values go with them: an undo needs both, and personal values are kept no longer.
    yield* sql`DELETE FROM run_change_values WHERE created_at < now() - make_interval(days => ${days})`
  }).pipe(Effect.withSpan("ChangeList.recordChanges"))
