import { SqlClient } from "@effect/sql"
import { Config, Duration, Effect, Option, Schema } from "effect"
import * as Os from "node:os"
import { DistrictNotFound } from "../Domain/Errors.ts"
import { type CountKind, type EntityCounts, emptyRunCounts, RunCounts } from "../Domain/RunCounts.ts"

/**
 * The run records: every `sync_runs` row is written here — started (`start`), finished in
 * whatever state (`finish`) — with the change-feed cursor (`sync_cursors`) a run leaves
 * behind, and read here: what a provider needs to know of a district's past runs
 * (`providerState`), the history, findings and change lists `rosterd runs` prints, and the
 * status contract (README "Status"). The sync pipeline (src/Reconcile/SyncRun.ts) decides
 * *when* a run starts and ends; this module knows the rows.
 *
 * The writes keep their `SqlError`: they run inside the run's session (and its transaction)
 * and a failure there is the run's failure, recorded by the pipeline. The reads turn it into
 * a defect, like the other repositories: the caller cannot handle it.
 */

/**
 * `held`: applied, with a destructive part held for an operator (see Reconcile/Holds.ts); `dry-run`: applied nothing;
 * `deferred`: applied nothing because the source was not ready (a CSV set still being written), tried again later — not a failure.
 */
export const RunStatus = Schema.Literal("running", "succeeded", "failed", "held", "interrupted", "dry-run", "deferred")
export type RunStatus = typeof RunStatus.Type

export type RunMode = "full" | "delta"

export class RunRecord extends Schema.Class<RunRecord>("RunRecord")({
  id: Schema.Number,
  districtId: Schema.String,
  status: RunStatus,
  mode: Schema.Literal("full", "delta"),
  trigger: Schema.String,
  startedAt: Schema.DateFromSelf,
  finishedAt: Schema.NullOr(Schema.DateFromSelf),
  counts: Schema.NullOr(RunCounts),
  sourceDescription: Schema.NullOr(Schema.String),
  notes: Schema.NullOr(Schema.String),
  errorReason: Schema.NullOr(Schema.String),
  error: Schema.NullOr(Schema.String),
  findings: Schema.Number
}) {}

export class FindingRecord extends Schema.Class<FindingRecord>("FindingRecord")({
  severity: Schema.Literal("error", "warning", "info"),
  code: Schema.String,
  entity: Schema.NullOr(Schema.String),
  sourceId: Schema.NullOr(Schema.String),
  file: Schema.NullOr(Schema.String),
  line: Schema.NullOr(Schema.Number),
  detail: Schema.String
}) {}

/** One group of a run's change list (`run_changes`, written by src/Reconcile/ChangeList.ts). */
export interface ChangeGroup {
  readonly kind: string
  readonly action: "create" | "update" | "deactivate"
  readonly reason: string | null
  readonly fields: ReadonlyArray<string>
  readonly held: boolean
  /** The group's source IDs, the first `CHANGE_IDS_LISTED` of them at most (see `total`). */
  readonly sourceIds: ReadonlyArray<string>
  /** How many records the group has (more than `sourceIds` lists when it is that large). */
  readonly total: number
}

/**
 * Source IDs a change list hands to Node per group, at most: a first sync of a 1.2-million-
 * student district changes 11.8 million records, which as strings would not fit the heap
 * the deploy files set. The counts stay exact; the list says how many it leaves out.
 */
export const CHANGE_IDS_LISTED = 100_000

/** How long change lists (and a decided hold's values) are kept (`rosterd.changes.retentionDays`, default 90). */
export const changesRetentionDays = Config.integer("retentionDays").pipe(Config.nested("changes"), Config.nested("rosterd"), Config.withDefault(90))

/** `rosterd.sync.staleAfter`: how old the last successful sync may be before a district is stale. */
export const staleAfterConfig = Config.duration("staleAfter").pipe(Config.nested("sync"), Config.nested("rosterd"), Config.withDefault(Duration.hours(24)))

export interface Cursor {
  readonly value: string
  /** When the cursor was taken: a change feed keeps a limited window. */
  readonly takenAt: Date
}

/** What the store knows of a district that a provider needs: its change-feed cursor, its last full sync. */
export interface ProviderState {
  readonly cursor: Cursor | null
  /** Start of the last successful full sync. */
  readonly lastFullSyncAt: Date | null
  /** Start of the last successful sync of any mode (a delta's watermark). */
  readonly lastSuccessAt: Date | null
  /**
   * Records of each kind the last successful full sync read (created + updated + unchanged),
   * `null` before the first: the base of the providers' per-collection caps (src/Providers/Limits.ts).
   */
  readonly lastFullCounts: Readonly<Partial<Record<CountKind, number>>> | null
}

/** How a run ended, beside its status; a field left out keeps what the row has. */
export interface RunEnd {
  readonly mode?: RunMode
  readonly counts?: RunCounts
  readonly findings?: number
  readonly source?: string
  readonly notes?: string
  /** A failed run's one-word reason and one-line message (src/Domain/Failure.ts); cleared otherwise. */
  readonly reason?: string
  readonly error?: string
}

/** The status contract (README "Status"): one object per district. Fields may be added, never removed. */
export interface DistrictStatus {
  readonly district: string
  readonly name: string
  readonly provider: string
  /** The district's IANA zone: its schedule and pauses are in local time. */
  readonly timezone: string
  readonly lastRun: null | {
    readonly id: number
    readonly status: RunStatus
    readonly mode: RunMode
    readonly startedAt: string
    readonly finishedAt: string | null
    readonly counts: RunCounts
    readonly findings: number
    readonly error: string | null
  }
  readonly lastSuccessAt: string | null
  readonly nextRunAt: string | null
  /**
   * The next slot (src/Schedule/SyncSchedule.ts): when, full/delta/auto, why (schedule,
   * delta, catch-up after a pause), and how many retries of a failed slot were made.
   */
  readonly nextRun: null | { readonly at: string; readonly request: string; readonly trigger: string; readonly retries: number }
  /** The pause the district is in now (no run starts until `until`), or null. Filled in by Schedule/Freshness.ts. */
  readonly paused: null | { readonly name: string; readonly reason: string | null; readonly until: string }
  /** The run whose destructive part waits for an operator (`rosterd holds show <run>`), or null. */
  readonly pendingHold: null | { readonly runId: number; readonly since: string }
  /**
   * The newest run was deferred, newer than `lastRun`: its source was not ready (a CSV set
   * still being written) and it is tried again at `nextRun`. Its note names the file and
   * how recently it changed. Null otherwise. A deferred run is no failure and never `lastRun`.
   */
  readonly deferred: null | { readonly runId: number; readonly at: string; readonly note: string }
  /**
   * Freshness: no successful sync within `rosterd.sync.staleAfter` (default 24 hours; a
   * district never synced counts from when it was added). The promise to districts is
   * that a roster change reaches the platform within 24 hours.
   */
  readonly stale: boolean
  /** The last run failed (or was interrupted): see `lastRun.error`. */
  readonly failing: boolean
}

/** Kinds (as `run_changes` names them) and actions in the order a change list shows them. */
const CHANGE_KINDS = ["schools", "terms", "courses", "classes", "users", "enrollments"]
const CHANGE_ACTIONS = ["create", "update", "deactivate"]

const iso = (date: Date | null) => (date === null ? null : date.toISOString())

export class Runs extends Effect.Service<Runs>()("rosterd/Runs", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /**
     * A new run row, `running`. The caller holds the district's lease (src/Reconcile/Lease.ts),
     * so a row of the district still marked running belonged to a process that died: it is
     * marked `interrupted` first.
     */
    const start = Effect.fn("Runs.start")(function*(districtId: string, run: { readonly mode: RunMode; readonly trigger: string }) {
      yield* sql`UPDATE sync_runs SET status = 'interrupted', finished_at = now(), error_reason = 'Interrupted',
                   error = 'the process running it stopped before it finished'
                 WHERE district_id = ${districtId} AND status = 'running'`
      const [started] = yield* sql<{ readonly id: number; readonly startedAt: Date }>`
        INSERT INTO sync_runs (district_id, mode, status, trigger, host, pid)
        VALUES (${districtId}, ${run.mode}, 'running', ${run.trigger}, ${Os.hostname()}, ${process.pid})
        RETURNING id, started_at`
      return started!
    })

    /** The run's end: its final status and what it did (`RunEnd`). */
    const finish = (runId: number, status: RunStatus, end: RunEnd) =>
      sql`UPDATE sync_runs SET status = ${status}, finished_at = now(),
            mode = coalesce(${end.mode ?? null}, mode),
            counts = coalesce(${end.counts === undefined ? null : JSON.stringify(end.counts)}::jsonb, counts),
            findings = coalesce(${end.findings ?? null}, findings),
            source_description = coalesce(${end.source ?? null}, source_description),
            notes = coalesce(${end.notes ?? null}, notes),
            error_reason = ${end.reason ?? null}, error = ${end.error ?? null}
          WHERE id = ${runId}`.pipe(Effect.asVoid, Effect.withSpan("Runs.finish"))

    /** How many findings the run stored (its checks and rules write them: src/Reconcile/Findings.ts). */
    const findingsCount = (runId: number) =>
      Effect.map(sql<{ readonly n: number }>`SELECT count(*) AS n FROM findings WHERE run_id = ${runId}`, ([row]) => row!.n)

    /** The change-feed cursor and the last successful full sync, for providers with deltas. */
    const providerState = Effect.fn("Runs.providerState")(function*(districtId: string) {
      const [cursor] = yield* sql<{ readonly cursor: string; readonly takenAt: Date }>`
        SELECT cursor, taken_at FROM sync_cursors WHERE district_id = ${districtId}`
      const [last] = yield* sql<{ readonly full: Date | null; readonly any: Date | null }>`
        SELECT max(started_at) FILTER (WHERE mode = 'full') AS full, max(started_at) AS any FROM sync_runs
        WHERE district_id = ${districtId} AND status = 'succeeded'`
      // What the last successful full run read of each kind: the base of the providers' caps.
      const [full] = yield* sql<{ readonly counts: Partial<Record<CountKind, EntityCounts>> | null }>`
        SELECT counts FROM sync_runs WHERE district_id = ${districtId} AND status = 'succeeded' AND mode = 'full' AND counts IS NOT NULL
        ORDER BY id DESC LIMIT 1`
      const lastFullCounts = full?.counts == null ? null : Object.fromEntries(
        Object.entries(full.counts).map(([kind, c]) => [kind, (c?.created ?? 0) + (c?.updated ?? 0) + (c?.unchanged ?? 0)])
      )
      return {
        cursor: cursor === undefined ? null : { value: cursor.cursor, takenAt: cursor.takenAt },
        lastFullSyncAt: last?.full ?? null,
        lastSuccessAt: last?.any ?? null,
        lastFullCounts
      } satisfies ProviderState
    })

    /** Where the district's change feed stands after the run (in the run's transaction). */
    const saveCursor = (districtId: string, runId: number, cursor: Cursor) =>
      sql`INSERT INTO sync_cursors (district_id, cursor, taken_at, run_id) VALUES (${districtId}, ${cursor.value}, ${cursor.takenAt}, ${runId})
          ON CONFLICT (district_id) DO UPDATE
            SET cursor = excluded.cursor, taken_at = excluded.taken_at, run_id = excluded.run_id, updated_at = now()`.pipe(
        Effect.asVoid,
        Effect.withSpan("Runs.saveCursor")
      )

    const decodeRun = Schema.decodeUnknown(RunRecord)
    const runColumns = sql`id, district_id, status, mode, trigger, started_at, finished_at, counts,
                           source_description, notes, error_reason, error, findings`

    const list = Effect.fn("Runs.list")(function*(districtId: string, limit = 20) {
      const rows = yield* sql`SELECT ${runColumns} FROM sync_runs WHERE district_id = ${districtId}
                              ORDER BY id DESC LIMIT ${limit}`
      return yield* Effect.forEach(rows, (row) => Effect.orDie(decodeRun(row)))
    })

    const get = Effect.fn("Runs.get")(function*(runId: number) {
      const rows = yield* sql`SELECT ${runColumns} FROM sync_runs WHERE id = ${runId}`
      return rows.length === 0 ? Option.none() : Option.some(yield* Effect.orDie(decodeRun(rows[0])))
    })

    const decodeFinding = Schema.decodeUnknown(FindingRecord)
    const findings = Effect.fn("Runs.findings")(function*(runId: number, limit = 200) {
      const rows = yield* sql`SELECT severity, code, entity, source_id, file, line, detail FROM findings
                              WHERE run_id = ${runId} ORDER BY id LIMIT ${limit}`
      return yield* Effect.forEach(rows, (row) => Effect.orDie(decodeFinding(row)))
    })

    /**
     * A run's change list (`run_changes`, see Reconcile/ChangeList.ts), kinds in dependency
     * order, each group's parts joined in order: its first `listed` IDs and its size. Every
     * part is read to count it (as the one array of a group was); only the IDs up to
     * `listed` reach Node. Empty when the run applied nothing or its list was pruned.
     */
    const changes = Effect.fn("Runs.changes")(function*(runId: number, listed: number = CHANGE_IDS_LISTED) {
      const parts = yield* sql<Omit<ChangeGroup, "total"> & { readonly size: number }>`
        SELECT kind, action, reason, fields, held, size,
               CASE WHEN before < ${listed} THEN source_ids[1:(${listed}::bigint - before)::int] ELSE '{}' END AS source_ids
        FROM (SELECT c.*, cardinality(c.source_ids)::int AS size,
                     coalesce(sum(cardinality(c.source_ids)) OVER (
                       PARTITION BY c.kind, c.action, c.reason, c.fields, c.held ORDER BY c.part
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
              FROM run_changes c WHERE c.run_id = ${runId}) x
        ORDER BY array_position(${CHANGE_KINDS}::text[], kind), array_position(${CHANGE_ACTIONS}::text[], action),
                 held, reason NULLS FIRST, fields, part`
      const groups: Array<{ -readonly [K in keyof ChangeGroup]: ChangeGroup[K] } & { sourceIds: Array<string> }> = []
      const sameGroup = (a: Omit<ChangeGroup, "sourceIds" | "total">, b: Omit<ChangeGroup, "sourceIds" | "total">) =>
        a.kind === b.kind && a.action === b.action && a.reason === b.reason && a.held === b.held && a.fields.join("\n") === b.fields.join("\n")
      for (const { size, sourceIds, ...group } of parts) {
        const last = groups.at(-1)
        if (last !== undefined && sameGroup(last, group)) {
          for (const id of sourceIds) last.sourceIds.push(id)
          last.total += size
        } else {
          groups.push({ ...group, sourceIds: [...sourceIds], total: size })
        }
      }
      return groups as ReadonlyArray<ChangeGroup>
    })

    /** The status contract as the runs tell it (Schedule/Freshness.ts adds the pauses). */
    const status = Effect.fn("Runs.status")(function*(districtId?: string) {
      const staleAfterSeconds = Duration.toSeconds(yield* Effect.orDie(staleAfterConfig))
      const rows = yield* sql<{
        readonly id: string
        readonly name: string
        readonly provider: string
        readonly timezone: string
        readonly nextRunAt: Date | null
        readonly nextRunRequest: string
        readonly nextRunTrigger: string
        readonly retryAttempt: number
        readonly createdAt: Date
        readonly lastSuccessAt: Date | null
        readonly runId: number | null
        readonly newestRunId: number | null
        readonly holdRunId: number | null
        readonly holdSince: Date | null
        readonly stale: boolean
      }>`
        SELECT d.id, d.name, d.provider, d.timezone, d.next_run_at, d.next_run_request, d.next_run_trigger, d.retry_attempt, d.created_at,
               coalesce((SELECT max(finished_at) FROM sync_runs r WHERE r.district_id = d.id AND r.status IN ('succeeded', 'held')),
                        d.created_at) < now() - make_interval(secs => ${staleAfterSeconds}) AS stale,
               (SELECT max(finished_at) FROM sync_runs r WHERE r.district_id = d.id AND r.status IN ('succeeded', 'held')) AS last_success_at,
               (SELECT max(id) FROM sync_runs r WHERE r.district_id = d.id AND r.status NOT IN ('dry-run', 'deferred')) AS run_id,
               (SELECT max(id) FROM sync_runs r WHERE r.district_id = d.id AND r.status <> 'dry-run') AS newest_run_id,
               h.run_id AS hold_run_id, h.created_at AS hold_since
        FROM districts d LEFT JOIN holds h ON h.district_id = d.id AND h.state = 'pending'
        WHERE d.removed_at IS NULL ${districtId === undefined ? sql`` : sql`AND d.id = ${districtId}`}
        ORDER BY d.id`
      if (districtId !== undefined && rows.length === 0) return yield* new DistrictNotFound({ district: districtId })
      // The districts' last runs in one read (a /metrics scrape runs this for every district).
      const runIds = rows.flatMap((row) => [row.runId, row.newestRunId].flatMap((id) => (id === null ? [] : [Number(id)])))
      const runRows = runIds.length === 0 ? [] : yield* sql`SELECT ${runColumns} FROM sync_runs WHERE id = ANY(${runIds})`
      const lastRuns = new Map<number, RunRecord>()
      for (const runRow of runRows) {
        const run = yield* Effect.orDie(decodeRun(runRow))
        lastRuns.set(run.id, run)
      }
      return rows.map((row) => {
          const run = Option.fromNullable(row.runId === null ? undefined : lastRuns.get(Number(row.runId)))
          return {
            district: row.id,
            name: row.name,
            provider: row.provider,
            timezone: row.timezone,
            lastRun: Option.match(run, {
              onNone: () => null,
              onSome: (r) => ({
                id: r.id,
                status: r.status,
                mode: r.mode,
                startedAt: r.startedAt.toISOString(),
                finishedAt: iso(r.finishedAt),
                counts: r.counts ?? emptyRunCounts,
                findings: r.findings,
                error: r.error
              })
            }),
            lastSuccessAt: iso(row.lastSuccessAt),
            nextRunAt: iso(row.nextRunAt),
            nextRun: row.nextRunAt === null
              ? null
              : { at: iso(row.nextRunAt)!, request: row.nextRunRequest, trigger: row.nextRunTrigger, retries: row.retryAttempt },
            paused: null,
            pendingHold: row.holdRunId === null ? null : { runId: Number(row.holdRunId), since: iso(row.holdSince)! },
            deferred: Option.match(Option.fromNullable(row.newestRunId === null ? undefined : lastRuns.get(Number(row.newestRunId))), {
              onNone: () => null,
              onSome: (r) => (r.status === "deferred" ? { runId: r.id, at: r.startedAt.toISOString(), note: r.notes ?? "" } : null)
            }),
            stale: row.stale,
            failing: Option.match(run, { onNone: () => false, onSome: (r) => r.status === "failed" || r.status === "interrupted" })
          } satisfies DistrictStatus
        })
    })

    return {
      start,
      finish,
      findingsCount,
      providerState,
      saveCursor,
      list: (districtId: string, limit?: number) => Effect.orDie(list(districtId, limit)),
      get: (runId: number) => Effect.orDie(get(runId)),
      findings: (runId: number, limit?: number) => Effect.orDie(findings(runId, limit)),
      changes: (runId: number, listed?: number) => Effect.orDie(changes(runId, listed)),
      status: (districtId?: string) => status(districtId).pipe(Effect.catchTag("SqlError", Effect.die))
    } as const
  })
}) {}
