import { SqlClient, type Statement } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { endOrphanedEnrollments, ENROLLMENT_VALUES, keyedColumns, planTable } from "./Apply.ts"
import type { PlanKind } from "./ChangeList.ts"
import { kindLabel, PLAN_KINDS, planSourceId } from "./ChangeList.ts"
import { Entities } from "./Entities.ts"
import { LEASE_NAMESPACE } from "./Lease.ts"
import type { Tripped } from "./Gate.ts"

/**
 * Held change sets: what the safety gate (Gate.ts) kept back of a run, until an operator
 * decides.
 *
 * - A run that holds something records its held plan rows (`held_changes`) under a
 *   `holds` row tied to the run; its run status is `held`. Only the newest hold of a
 *   district is pending: a later run that holds again supersedes it, and a later *full*
 *   run closes it — `dropped` when it no longer proposes any of the held changes (the source
 *   recovered), `superseded` otherwise (it holds or applies them itself).
 * - **Approve** applies exactly the held set, re-checked against the store: a record
 *   changed since the hold (a newer run touched it) is skipped as stale, so an old hold
 *   cannot undo newer changes. It takes the district's lease, so no sync runs meanwhile.
 * - **Reject** applies nothing. The next full run proposes the same changes again if the
 *   source still says so: rejecting means "fix the source".
 */

export class HoldNotFound extends Schema.TaggedError<HoldNotFound>()("HoldNotFound", { runId: Schema.Number }) {
  override get message() {
    return `run ${this.runId} has no held changes (see rosterd holds list)`
  }
}

export class HoldDecided extends Schema.TaggedError<HoldDecided>()("HoldDecided", {
  runId: Schema.Number,
  state: Schema.String,
  closedByRun: Schema.NullOr(Schema.Number)
}) {
  override get message() {
    return `the hold of run ${this.runId} is ${this.state}${this.closedByRun === null ? "" : ` by run ${this.closedByRun}`}; only a pending hold can be decided`
  }
}

export class DistrictBusyForHold extends Schema.TaggedError<DistrictBusyForHold>()("DistrictBusyForHold", { district: Schema.String }) {
  override get message() {
    return `a sync of district ${this.district} is running; try again when it has finished`
  }
}


// ---------------------------------------------------------------- inside a run's transaction

const META = ["action", "reason", "live_id", "source_id", "line", "held", "rule", "fields"]
const ENROLLMENT_META = [...META, "class_id", "user_id", "class_source_id", "user_source_id"]

/** Records the run's held plan rows as its hold. */
export const recordHold = (runId: number, districtId: string, tripped: ReadonlyArray<Tripped>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO holds (run_id, district_id, tripped) VALUES (${runId}, ${districtId}, ${JSON.stringify(tripped)}::jsonb)`
    for (const kind of PLAN_KINDS) {
      const meta = kind === "enrollments" ? ENROLLMENT_META : META
      yield* sql.unsafe(
        `INSERT INTO held_changes (run_id, kind, action, live_id, source_id, reason, rule, fields, new_values)
         SELECT $1, '${kind}', action, live_id, ${planSourceId(kind)}, reason, rule, coalesce(fields, '{}'),
                CASE WHEN action = 'update' THEN to_jsonb(p) - ARRAY[${meta.map((m) => `'${m}'`).join(", ")}] END
         FROM ${planTable(kind)} p WHERE held`,
        [runId]
      )
    }
  }).pipe(Effect.withSpan("Holds.recordHold"))

/**
 * Closes the district's pending hold (of an earlier run) when this run supersedes it: a
 * run that holds again, or a full run. Returns a note for the run record, if any.
 */
export const closePendingHold = (runId: number, districtId: string, options: { readonly full: boolean; readonly holding: boolean }) =>
  Effect.gen(function*() {
    if (!options.full && !options.holding) return undefined
    const sql = yield* SqlClient.SqlClient
    const [pending] = yield* sql<{ readonly runId: number }>`
      SELECT run_id FROM holds WHERE district_id = ${districtId} AND state = 'pending' AND run_id <> ${runId}`
    if (pending === undefined) return undefined
    let proposed = 0
    for (const kind of PLAN_KINDS) {
      const [row] = yield* sql.unsafe<{ readonly n: number }>(
        `SELECT count(*)::int AS n FROM held_changes h JOIN ${planTable(kind)} p ON p.live_id = h.live_id AND p.action = h.action
         WHERE h.run_id = $1 AND h.kind = '${kind}'`,
        [pending.runId]
      )
      proposed += row?.n ?? 0
    }
    const state = options.full && proposed === 0 ? "dropped" : "superseded"
    yield* sql`UPDATE holds SET state = ${state}, closed_by_run = ${runId}, decided_at = now() WHERE run_id = ${pending.runId}`
    return state === "dropped"
      ? `the held changes of run ${pending.runId} were dropped: the source no longer proposes them`
      : `the held changes of run ${pending.runId} are superseded by this run`
  }).pipe(Effect.withSpan("Holds.closePendingHold"))

// ---------------------------------------------------------------- the operator's side

export interface HoldSummary {
  readonly runId: number
  readonly districtId: string
  readonly state: string
  readonly createdAt: Date
  readonly tripped: ReadonlyArray<Tripped>
  readonly counts: ReadonlyArray<{ readonly kind: string; readonly action: string; readonly n: number }>
  readonly decidedBy: string | null
  readonly decidedAt: Date | null
  readonly reason: string | null
  readonly closedByRun: number | null
  readonly outcome: unknown
}

export interface HeldChange {
  readonly kind: string
  readonly action: string
  readonly sourceId: string
  readonly reason: string | null
  readonly rule: string
  readonly fields: ReadonlyArray<string>
}

const tableOf = (kind: PlanKind) => (kind === "enrollments" ? "enrollments" : Entities[kind].table!)

/** `column = new value if it is one of the held update's fields, else as it is`. */
const updateSet = (table: string, columns: ReadonlyArray<string>) =>
  columns.map((c) => `${c} = CASE WHEN '${c}' = ANY (h.fields) THEN (jsonb_populate_record(NULL::${table}, h.new_values)).${c} ELSE t.${c} END`)
    .join(", ")

export class Holds extends Effect.Service<Holds>()("rosterd/Holds", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit

    const summaries = (where: Statement.Fragment) =>
      sql<Omit<HoldSummary, "counts"> & { readonly counts: HoldSummary["counts"] | null }>`
        SELECT h.run_id, h.district_id, h.state, h.created_at, h.tripped, h.decided_by, h.decided_at, h.reason,
               h.closed_by_run, h.outcome,
               (SELECT json_agg(json_build_object('kind', c.kind, 'action', c.action, 'n', c.n) ORDER BY c.kind, c.action)
                FROM (SELECT kind, action, count(*)::int AS n FROM held_changes WHERE run_id = h.run_id GROUP BY kind, action) c) AS counts
        FROM holds h WHERE ${where} ORDER BY h.run_id DESC`.pipe(
        Effect.map((rows) =>
          rows.map((r): HoldSummary => ({
            ...r,
            runId: Number(r.runId),
            closedByRun: r.closedByRun === null ? null : Number(r.closedByRun),
            counts: (r.counts ?? []).map((c) => ({ ...c, kind: kindLabel(c.kind as PlanKind) }))
          }))
        )
      )

    const list = Effect.fn("Holds.list")(function*(options: { readonly districtId?: string; readonly all?: boolean }) {
      const district = options.districtId === undefined ? sql`true` : sql`h.district_id = ${options.districtId}`
      const state = options.all ? sql`true` : sql`h.state = 'pending'`
      return yield* summaries(sql`${district} AND ${state}`)
    })

    const get = (runId: number) =>
      summaries(sql`h.run_id = ${runId}`).pipe(
        Effect.flatMap((rows) => (rows[0] === undefined ? Effect.fail(new HoldNotFound({ runId })) : Effect.succeed(rows[0])))
      )

    const show = Effect.fn("Holds.show")(function*(runId: number) {
      const hold = yield* get(runId)
      const changes = yield* sql<HeldChange>`
        SELECT kind, action, source_id, reason, rule, fields FROM held_changes WHERE run_id = ${runId}
        ORDER BY kind, action, source_id`
      return { hold, changes: changes.map((c) => ({ ...c, kind: kindLabel(c.kind as PlanKind) })) }
    })

    /** The pending hold of `runId`, locked, with the district's lease held for the transaction. */
    const pendingForDecision = (runId: number) =>
      Effect.gen(function*() {
        const [row] = yield* sql<{ readonly districtId: string; readonly state: string; readonly closedByRun: number | null; readonly createdAt: Date }>`
          SELECT district_id, state, closed_by_run, created_at FROM holds WHERE run_id = ${runId} FOR UPDATE`
        if (row === undefined) return yield* new HoldNotFound({ runId })
        if (row.state !== "pending") {
          return yield* new HoldDecided({ runId, state: row.state, closedByRun: row.closedByRun === null ? null : Number(row.closedByRun) })
        }
        const [lease] = yield* sql<{ readonly ok: boolean }>`SELECT pg_try_advisory_xact_lock(${LEASE_NAMESPACE}, hashtext(${row.districtId})) AS ok`
        if (!lease?.ok) return yield* new DistrictBusyForHold({ district: row.districtId })
        return row
      })

    const approve = Effect.fn("Holds.approve")(function*(runId: number, by: string, reason: string | null) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const hold = yield* pendingForDecision(runId)
        yield* sql.unsafe(`SELECT set_config('rosterd.writer', 'sync', true)`)
        const applied: Record<string, number> = {}
        let total = 0
        let done = 0
        for (const kind of PLAN_KINDS) {
          const table = tableOf(kind)
          const [counts] = yield* sql<{ readonly n: number }>`
            SELECT count(*)::int AS n FROM held_changes WHERE run_id = ${runId} AND kind = ${kind}`
          if ((counts?.n ?? 0) === 0) continue
          total += counts!.n
          const columns = kind === "enrollments"
            ? ENROLLMENT_VALUES
            : keyedColumns(kind, kind === "users" ? "bulk" : null).map((c) => c.name)
          const open = kind === "enrollments" ? "t.ended_at IS NULL" : "t.active"
          const deactivate = kind === "enrollments"
            ? "ended_at = now(), updated_at = now(), end_reason = h.reason"
            : "active = false, deactivated_at = now(), updated_at = now(), deactivation_reason = h.reason"
          // Stale: the record changed after the hold (a newer run touched it) — skipped.
          const [row] = yield* sql.unsafe<{ readonly n: number }>(
            `WITH deactivated AS (
               UPDATE ${table} t SET ${deactivate}
               FROM held_changes h
               WHERE h.run_id = $1 AND h.kind = $2 AND h.action = 'deactivate' AND t.id = h.live_id AND ${open} AND t.updated_at <= $3
               RETURNING 1),
             updated AS (
               UPDATE ${table} t SET ${updateSet(table, columns)}, updated_at = now()
               FROM held_changes h
               WHERE h.run_id = $1 AND h.kind = $2 AND h.action = 'update' AND t.id = h.live_id AND ${open} AND t.updated_at <= $3
               RETURNING 1)
             SELECT ((SELECT count(*) FROM deactivated) + (SELECT count(*) FROM updated))::int AS n`,
            [runId, kind, hold.createdAt]
          )
          applied[kindLabel(kind)] = row?.n ?? 0
          done += row?.n ?? 0
        }
        // An open enrollment always points at an active class and user.
        const ended = yield* endOrphanedEnrollments({ runId, districtId: hold.districtId, rosterSource: "csv", today: "" }).pipe(
          Effect.provideService(SqlClient.SqlClient, sql)
        )
        const outcome = { applied, stale: total - done, enrollmentsEnded: ended }
        yield* sql`UPDATE holds SET state = 'approved', decided_by = ${by}, decided_at = now(), reason = ${reason},
                     outcome = ${JSON.stringify(outcome)}::jsonb WHERE run_id = ${runId}`
        yield* audit.record({ actor: by, action: "hold.approve", districtId: hold.districtId, subject: `run ${runId}`, reason, details: outcome })
        return { runId, districtId: hold.districtId, ...outcome }
      }))
    })

    const reject = Effect.fn("Holds.reject")(function*(runId: number, by: string, reason: string | null) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const hold = yield* pendingForDecision(runId)
        yield* sql`UPDATE holds SET state = 'rejected', decided_by = ${by}, decided_at = now(), reason = ${reason} WHERE run_id = ${runId}`
        yield* audit.record({ actor: by, action: "hold.reject", districtId: hold.districtId, subject: `run ${runId}`, reason })
        return { runId, districtId: hold.districtId }
      }))
    })

    return {
      list: (options: { readonly districtId?: string; readonly all?: boolean } = {}) => list(options).pipe(Effect.orDie),
      show: (runId: number) => show(runId).pipe(Effect.catchTag("SqlError", Effect.die)),
      approve: (runId: number, by: string, reason: string | null = null) => approve(runId, by, reason).pipe(Effect.catchTag("SqlError", Effect.die)),
      reject: (runId: number, by: string, reason: string | null = null) => reject(runId, by, reason).pipe(Effect.catchTag("SqlError", Effect.die))
    } as const
  }),
  dependencies: [Audit.Default]
}) {}
