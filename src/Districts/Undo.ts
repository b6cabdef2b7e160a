import { SqlClient } from "@effect/sql"
import { Data, Effect, Schema } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { DistrictBusy } from "../Domain/Errors.ts"
import { ENROLLMENT_VALUES, keyedColumns } from "../Reconcile/Apply.ts"
import { kindLabel, PLAN_KINDS, type PlanKind } from "../Reconcile/ChangeList.ts"
import { Entities } from "../Reconcile/Entities.ts"
import { LEASE_NAMESPACE } from "../Reconcile/Lease.ts"
import { changesRetentionDays } from "../Store/Runs.ts"

/**
 * Undo a run (`rosterd runs undo <run>`, README "Undo a run"): what a run applied is turned
 * back, kind by kind, in one transaction under the district's lease, audited:
 *
 * - records it **created** (its change list, `run_changes`) are deactivated (reason `undone`;
 *   an enrollment is ended);
 * - records it **deactivated** are active again (an enrollment reopened);
 * - records it **updated** get back the values their changed fields had before the run
 *   (`run_change_values`, kept by src/Reconcile/ChangeList.ts);
 *
 * — unless the record changed again since the run ended (a later run, a hold approved, an
 * operator): then it is left as it is, counted and listed as **stale**. Open enrollments of
 * people and classes the undo deactivates end with them. Only what the run applied: what
 * its gate held is not in it (reject the hold instead). Accounts, links, reviews and mail
 * the run caused are not undone. A run is undone once, and only while its change list is
 * kept (`rosterd.changes.retentionDays`). `--dry-run` does it all and rolls back.
 */

export class RunNotFound extends Schema.TaggedError<RunNotFound>()("RunNotFound", { run: Schema.Number }) {
  override get message() {
    return `no run ${this.run} (see rosterd runs <district>)`
  }
}

export class RunNotUndoable extends Schema.TaggedError<RunNotUndoable>()("RunNotUndoable", { run: Schema.Number, why: Schema.String }) {
  override get message() {
    return `run ${this.run} cannot be undone: ${this.why}`
  }
}

export interface UndoCounts {
  readonly kind: string
  /** Created by the run, now deactivated. */
  readonly deactivated: number
  /** Deactivated by the run, active again. */
  readonly reactivated: number
  /** Updated by the run, their values back. */
  readonly restored: number
  /** Changed again since the run: left alone. */
  readonly stale: number
}

export interface UndoOutcome {
  readonly runId: number
  readonly districtId: string
  readonly dryRun: boolean
  readonly counts: ReadonlyArray<UndoCounts>
  /** Open enrollments ended with the people and classes the undo deactivated. */
  readonly enrollmentsEnded: number
  /** The records skipped as changed since: kind and source ID (never values). */
  readonly stale: ReadonlyArray<{ readonly kind: string; readonly sourceId: string }>
}

class UndoDryRun extends Data.TaggedError("UndoDryRun")<{ readonly outcome: UndoOutcome }> {}

/** The columns an update may have changed, as `run_change_values.before` names them. */
const restorable = (kind: PlanKind): ReadonlyArray<string> =>
  kind === "enrollments"
    ? ENROLLMENT_VALUES
    : [...keyedColumns(kind, "bulk").map((c) => c.name), "active", "deactivated_at", "deactivation_reason"]

const tableOf = (kind: PlanKind) => (kind === "enrollments" ? "enrollments" : Entities[kind].table!)
const sourceIdOf = (kind: PlanKind, alias: string) =>
  kind === "enrollments" ? `${alias}.class_source_id || '/' || ${alias}.user_source_id` : `${alias}.source_id`

/** The kinds in the order their undo runs: children's creations are undone before their parents'. */
const UNDO_ORDER: ReadonlyArray<PlanKind> = [...PLAN_KINDS].reverse()

export class RunUndo extends Effect.Service<RunUndo>()("rosterd/RunUndo", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit

    const undoKind = (kind: PlanKind, runId: number, districtId: string) =>
      Effect.gen(function*() {
        const table = tableOf(kind)
        const label = kindLabel(kind)
        const isEnrollment = kind === "enrollments"
        const stale: Array<{ readonly kind: string; readonly sourceId: string }> = []
        // Compared in SQL: the run's finish time has microseconds a JavaScript Date would drop.
        const finished = `(SELECT r.finished_at FROM sync_runs r WHERE r.id = $1)`
        const changedSince = (alias: string) => `${alias}.updated_at > ${finished}`

        // Created by the run: deactivated (enrollments ended), unless changed since.
        const createdIds = `(SELECT unnest(source_ids) FROM run_changes WHERE run_id = $1 AND kind = '${label}' AND action = 'create' AND NOT held)`
        const created = isEnrollment
          ? `SELECT l.id, ${sourceIdOf(kind, "l")} AS source_id, (${changedSince("l")} OR l.ended_at IS NOT NULL) AS stale
             FROM enrollments l WHERE l.district_id = $2 AND ${sourceIdOf(kind, "l")} IN ${createdIds}
               AND l.started_at <= ${finished} AND l.id = (SELECT max(e.id) FROM enrollments e WHERE e.district_id = $2
                                                  AND e.class_source_id = l.class_source_id AND e.user_source_id = l.user_source_id AND e.started_at <= ${finished})`
          : `SELECT l.id, l.source_id, (${changedSince("l")} OR NOT l.active) AS stale
             FROM ${table} l WHERE l.district_id = $2 AND l.source_id IN ${createdIds}`
        const [c] = yield* sql.unsafe<{ readonly n: number; readonly stale: ReadonlyArray<string> }>(
          `WITH target AS (${created}),
           done AS (
             UPDATE ${table} l SET ${isEnrollment ? "ended_at = now(), end_reason = 'undone'" : "active = false, deactivated_at = now(), deactivation_reason = 'undone'"},
                    updated_at = now()
             FROM target t WHERE l.id = t.id AND NOT t.stale RETURNING 1)
           SELECT (SELECT count(*) FROM done)::int AS n, ARRAY(SELECT source_id FROM target WHERE stale ORDER BY 1) AS stale`,
          [runId, districtId]
        )

        // Deactivated by the run: active again, unless changed since (or, for an enrollment, reopened since).
        const [d] = yield* sql.unsafe<{ readonly n: number; readonly stale: ReadonlyArray<string> }>(
          `WITH target AS (
             SELECT l.id, ${sourceIdOf(kind, "l")} AS source_id,
                    (${changedSince("l")} OR ${isEnrollment
                      ? `l.ended_at IS NULL OR EXISTS (SELECT 1 FROM enrollments o WHERE o.district_id = $2 AND o.ended_at IS NULL
                                                     AND o.class_source_id = l.class_source_id AND o.user_source_id = l.user_source_id)`
                      : "l.active"}) AS stale
             FROM run_change_values v JOIN ${table} l ON l.id = v.live_id
             WHERE v.run_id = $1 AND v.kind = '${kind}' AND v.action = 'deactivate' AND l.district_id = $2),
           done AS (
             UPDATE ${table} l SET ${isEnrollment ? "ended_at = NULL, end_reason = NULL" : "active = true, deactivated_at = NULL, deactivation_reason = NULL"},
                    updated_at = now()
             FROM target t WHERE l.id = t.id AND NOT t.stale RETURNING 1)
           SELECT (SELECT count(*) FROM done)::int AS n, ARRAY(SELECT source_id FROM target WHERE stale ORDER BY 1) AS stale`,
          [runId, districtId]
        )

        // Updated by the run: the fields it changed get their values back, unless changed since.
        const columns = restorable(kind)
        const [u] = yield* sql.unsafe<{ readonly n: number; readonly stale: ReadonlyArray<string> }>(
          `WITH target AS (
             SELECT l.id, ${sourceIdOf(kind, "l")} AS source_id, v.before, ${changedSince("l")} AS stale
             FROM run_change_values v JOIN ${table} l ON l.id = v.live_id
             WHERE v.run_id = $1 AND v.kind = '${kind}' AND v.action = 'update' AND l.district_id = $2),
           done AS (
             UPDATE ${table} l SET ${
               columns.map((col) => `${col} = CASE WHEN t.before ? '${col}' THEN (jsonb_populate_record(NULL::${table}, t.before)).${col} ELSE l.${col} END`).join(",\n                 ")
             }, updated_at = now()
             FROM target t WHERE l.id = t.id AND NOT t.stale RETURNING 1)
           SELECT (SELECT count(*) FROM done)::int AS n, ARRAY(SELECT source_id FROM target WHERE stale ORDER BY 1) AS stale`,
          [runId, districtId]
        )
        for (const group of [c, d, u]) for (const sourceId of group?.stale ?? []) stale.push({ kind: label, sourceId })
        const counts: UndoCounts = {
          kind: label,
          deactivated: c?.n ?? 0,
          reactivated: d?.n ?? 0,
          restored: u?.n ?? 0,
          stale: (c?.stale.length ?? 0) + (d?.stale.length ?? 0) + (u?.stale.length ?? 0)
        }
        return { counts, stale }
      })

    const undo = Effect.fn("RunUndo.undo")(function*(
      runId: number,
      options: { readonly by: string; readonly reason?: string | null; readonly dryRun?: boolean }
    ) {
      const dryRun = options.dryRun ?? false
      const days = yield* Effect.orDie(changesRetentionDays)
      return yield* sql.withTransaction(Effect.gen(function*() {
        const [run] = yield* sql<{ readonly districtId: string; readonly status: string; readonly finishedAt: Date | null; readonly expired: boolean }>`
          SELECT district_id, status, finished_at, finished_at < now() - make_interval(days => ${days}) AS expired
          FROM sync_runs WHERE id = ${runId}`
        if (run === undefined) return yield* new RunNotFound({ run: runId })
        if (run.status !== "succeeded" && run.status !== "held") {
          return yield* new RunNotUndoable({ run: runId, why: `it ended ${run.status}: it applied nothing` })
        }
        if (run.finishedAt === null) return yield* new RunNotUndoable({ run: runId, why: "it has not finished" })
        if (run.expired) {
          return yield* new RunNotUndoable({ run: runId, why: `its change list is no longer kept (rosterd.changes.retentionDays: ${days} days)` })
        }
        const [undone] = yield* sql<{ readonly undoneBy: string; readonly undoneAt: Date }>`
          SELECT undone_by, undone_at FROM run_undos WHERE run_id = ${runId}`
        if (undone !== undefined) {
          return yield* new RunNotUndoable({ run: runId, why: `it was undone by ${undone.undoneBy} at ${new Date(undone.undoneAt).toISOString()}` })
        }
        // The district's lease for the transaction: no sync meanwhile (a running one holds it for its session).
        const [lease] = yield* sql<{ readonly ok: boolean }>`SELECT pg_try_advisory_xact_lock(${LEASE_NAMESPACE}, hashtext(${run.districtId})) AS ok`
        if (!lease?.ok) return yield* new DistrictBusy({ district: run.districtId })
        // Written as the sync writes: the lock triggers let the sync's writer change synced records.
        yield* sql.unsafe(`SELECT set_config('rosterd.writer', 'sync', true)`)
        const counts: Array<UndoCounts> = []
        const stale: Array<{ readonly kind: string; readonly sourceId: string }> = []
        for (const kind of UNDO_ORDER) {
          const result = yield* undoKind(kind, runId, run.districtId)
          counts.push(result.counts)
          stale.push(...result.stale)
        }
        // An open enrollment points at an active class and person: those the undo deactivated take theirs along.
        const [ended] = yield* sql<{ readonly n: number }>`
          WITH ended AS (
            UPDATE enrollments e SET ended_at = now(), updated_at = now(), end_reason = 'undone'
            WHERE e.district_id = ${run.districtId} AND e.ended_at IS NULL
              AND (e.class_id IN (SELECT id FROM classes WHERE district_id = ${run.districtId} AND NOT active)
                   OR e.user_id IN (SELECT id FROM users WHERE district_id = ${run.districtId} AND NOT active))
            RETURNING 1)
          SELECT count(*)::int AS n FROM ended`
        const ordered = PLAN_KINDS.map((kind) => counts.find((c) => c.kind === kindLabel(kind))!)
        const outcome: UndoOutcome = { runId, districtId: run.districtId, dryRun, counts: ordered, enrollmentsEnded: ended?.n ?? 0, stale }
        const totals = Object.fromEntries(ordered.map((c) => [c.kind, { deactivated: c.deactivated, reactivated: c.reactivated, restored: c.restored, stale: c.stale }]))
        yield* sql`
          INSERT INTO run_undos (run_id, district_id, undone_by, reason, counts, stale)
          VALUES (${runId}, ${run.districtId}, ${options.by}, ${options.reason ?? null}, ${JSON.stringify({ ...totals, enrollmentsEnded: outcome.enrollmentsEnded })}::jsonb,
                  ${JSON.stringify(stale.slice(0, 1000))}::jsonb)`
        yield* audit.record({
          actor: options.by,
          action: "run.undo",
          districtId: run.districtId,
          subject: `run ${runId}`,
          reason: options.reason ?? null,
          details: { counts: totals, enrollmentsEnded: outcome.enrollmentsEnded, stale: stale.length }
        })
        if (dryRun) return yield* new UndoDryRun({ outcome })
        return outcome
      })).pipe(Effect.catchTag("UndoDryRun", (dry) => Effect.succeed(dry.outcome)))
    }, (effect) => effect.pipe(Effect.catchTag("SqlError", Effect.die)))

    return { undo } as const
  }),
  dependencies: [Audit.Default]
}) {}
