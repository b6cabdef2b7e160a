import { SqlClient } from "@effect/sql"
import { Config, Duration, Effect, Option, Schema } from "effect"
import { District, DistrictId, type NewDistrict } from "../Domain/District.ts"
import { DistrictRules } from "../Domain/DistrictRules.ts"
import { DistrictExists, DistrictNotFound } from "../Domain/Errors.ts"
import type { ChangeGroup } from "../Reconcile/ChangeList.ts"
import { emptyRunCounts, RunCounts } from "../Domain/RunCounts.ts"

/**
 * Districts, run history and the status contract: the store's operator-facing side.
 * (The roster tables themselves are written only by the reconcile, see Reconcile/.)
 *
 * SQL failures here are infrastructure failures the caller cannot handle: they become
 * defects, reported by the CLI and the daemon as such.
 */

/**
 * `held`: applied, with a destructive part held for an operator (see Reconcile/Holds.ts); `dry-run`: applied nothing;
 * `deferred`: applied nothing because the source was not ready (a CSV set still being written), tried again later — not a failure.
 */
export const RunStatus = Schema.Literal("running", "succeeded", "failed", "held", "interrupted", "dry-run", "deferred")
export type RunStatus = typeof RunStatus.Type

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
    readonly mode: "full" | "delta"
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

const DistrictRow = Schema.Struct({
  id: DistrictId,
  name: Schema.String,
  provider: District.fields.provider,
  timezone: Schema.String,
  settings: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  rules: DistrictRules,
  origin: Schema.Literal("config", "cli")
})

/** Kinds (as `run_changes` names them) and actions in the order a change list shows them. */
const CHANGE_KINDS = ["schools", "terms", "courses", "classes", "users", "enrollments"]
const CHANGE_ACTIONS = ["create", "update", "deactivate"]

const iso = (date: Date | null) => (date === null ? null : date.toISOString())

/** `rosterd.sync.staleAfter`: how old the last successful sync may be before a district is stale. */
const staleAfter = Config.duration("staleAfter").pipe(Config.nested("sync"), Config.nested("rosterd"), Config.withDefault(Duration.hours(24)), Effect.orDie)

export class RosterStore extends Effect.Service<RosterStore>()("rosterd/RosterStore", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const decodeDistrict = Schema.decodeUnknown(DistrictRow)
    const toDistrict = (row: unknown) =>
      decodeDistrict(row).pipe(Effect.map((d) => new District(d)), Effect.orDie)

    const findDistrict = Effect.fn("RosterStore.findDistrict")(function*(id: string) {
      const rows = yield* sql`SELECT id, name, provider, timezone, settings, rules, origin FROM districts
                              WHERE id = ${id} AND removed_at IS NULL`
      return rows.length === 0 ? Option.none() : Option.some(yield* toDistrict(rows[0]))
    })

    const getDistrict = (id: string) =>
      findDistrict(id).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(new DistrictNotFound({ district: id })),
          onSome: Effect.succeed
        }))
      )

    const listDistricts = Effect.fn("RosterStore.listDistricts")(function*() {
      const rows = yield* sql`SELECT id, name, provider, timezone, settings, rules, origin FROM districts
                              WHERE removed_at IS NULL ORDER BY id`
      return yield* Effect.forEach(rows, toDistrict)
    })

    /** `district add`: a new district (or one removed earlier, brought back with new settings). */
    const addDistrict = Effect.fn("RosterStore.addDistrict")(function*(input: NewDistrict) {
      const rows = yield* sql`
        INSERT INTO districts (id, name, provider, timezone, settings, rules, origin)
        VALUES (${input.id}, ${input.name}, ${input.provider}, ${input.timezone}, ${JSON.stringify(input.settings)}::jsonb,
                ${JSON.stringify(input.rules ?? {})}::jsonb, 'cli')
        ON CONFLICT (id) DO UPDATE
          SET name = excluded.name, provider = excluded.provider, timezone = excluded.timezone,
              settings = excluded.settings, rules = excluded.rules, origin = 'cli', removed_at = NULL, updated_at = now()
          WHERE districts.removed_at IS NOT NULL
        RETURNING id`
      if (rows.length === 0) return yield* new DistrictExists({ district: input.id })
      return yield* getDistrict(input.id)
    })

    /** Districts declared in the config file are (re)registered at every daemon start. */
    const declareDistrict = Effect.fn("RosterStore.declareDistrict")(function*(input: NewDistrict) {
      yield* sql`
        INSERT INTO districts (id, name, provider, timezone, settings, rules, origin)
        VALUES (${input.id}, ${input.name}, ${input.provider}, ${input.timezone}, ${JSON.stringify(input.settings)}::jsonb,
                ${JSON.stringify(input.rules ?? {})}::jsonb, 'config')
        ON CONFLICT (id) DO UPDATE
          SET name = excluded.name, provider = excluded.provider, timezone = excluded.timezone,
              settings = excluded.settings, rules = excluded.rules, origin = 'config', removed_at = NULL, updated_at = now()
          WHERE (districts.name, districts.provider, districts.timezone, districts.settings, districts.rules, districts.origin, districts.removed_at)
                IS DISTINCT FROM (excluded.name, excluded.provider, excluded.timezone, excluded.settings, excluded.rules, 'config', NULL)`
    })

    /** `district rules --file`: the operator's rules, as written. */
    const setRules = Effect.fn("RosterStore.setRules")(function*(id: string, rules: Readonly<Record<string, unknown>>) {
      const rows = yield* sql`UPDATE districts SET rules = ${JSON.stringify(rules)}::jsonb, updated_at = now()
                              WHERE id = ${id} AND removed_at IS NULL RETURNING id`
      if (rows.length === 0) return yield* new DistrictNotFound({ district: id })
      return yield* getDistrict(id)
    })

    /** Stops syncing the district. Its roster rows and history stay (erasure is a separate, explicit act). */
    const removeDistrict = Effect.fn("RosterStore.removeDistrict")(function*(id: string) {
      const rows = yield* sql`UPDATE districts SET removed_at = now(), next_run_at = NULL
                              WHERE id = ${id} AND removed_at IS NULL RETURNING id`
      if (rows.length === 0) return yield* new DistrictNotFound({ district: id })
    })

    const setNextRunAt = (id: string, at: Date | null) =>
      sql`UPDATE districts SET next_run_at = ${at} WHERE id = ${id}`.pipe(Effect.asVoid, Effect.orDie)

    const decodeRun = Schema.decodeUnknown(RunRecord)
    const runColumns = sql`id, district_id, status, mode, trigger, started_at, finished_at, counts,
                           source_description, notes, error_reason, error, findings`

    const runs = Effect.fn("RosterStore.runs")(function*(districtId: string, limit = 20) {
      const rows = yield* sql`SELECT ${runColumns} FROM sync_runs WHERE district_id = ${districtId}
                              ORDER BY id DESC LIMIT ${limit}`
      return yield* Effect.forEach(rows, (row) => Effect.orDie(decodeRun(row)))
    })

    const getRun = Effect.fn("RosterStore.getRun")(function*(runId: number) {
      const rows = yield* sql`SELECT ${runColumns} FROM sync_runs WHERE id = ${runId}`
      return rows.length === 0 ? Option.none() : Option.some(yield* Effect.orDie(decodeRun(rows[0])))
    })

    const decodeFinding = Schema.decodeUnknown(FindingRecord)
    const findings = Effect.fn("RosterStore.findings")(function*(runId: number, limit = 200) {
      const rows = yield* sql`SELECT severity, code, entity, source_id, file, line, detail FROM findings
                              WHERE run_id = ${runId} ORDER BY id LIMIT ${limit}`
      return yield* Effect.forEach(rows, (row) => Effect.orDie(decodeFinding(row)))
    })

    /**
     * A run's change list (`run_changes`, see Reconcile/ChangeList.ts), grouped as stored:
     * kinds in dependency order. Empty when the run applied nothing or its list was pruned.
     */
    const changes = Effect.fn("RosterStore.changes")(function*(runId: number) {
      return yield* sql<ChangeGroup>`
        SELECT kind, action, reason, fields, held, source_ids FROM run_changes WHERE run_id = ${runId}
        ORDER BY array_position(${CHANGE_KINDS}::text[], kind), array_position(${CHANGE_ACTIONS}::text[], action),
                 held, reason NULLS FIRST, fields`
    })

    const status = Effect.fn("RosterStore.status")(function*(districtId?: string) {
      const staleAfterSeconds = Duration.toSeconds(yield* staleAfter)
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
      findDistrict: (id: string) => Effect.orDie(findDistrict(id)),
      getDistrict: (id: string) => getDistrict(id).pipe(Effect.catchTag("SqlError", Effect.die)),
      listDistricts: () => Effect.orDie(listDistricts()),
      addDistrict: (input: NewDistrict) => addDistrict(input).pipe(Effect.catchTag("SqlError", Effect.die)),
      declareDistrict: (input: NewDistrict) => Effect.orDie(declareDistrict(input)),
      removeDistrict: (id: string) => removeDistrict(id).pipe(Effect.catchTag("SqlError", Effect.die)),
      setRules: (id: string, rules: Readonly<Record<string, unknown>>) => setRules(id, rules).pipe(Effect.catchTag("SqlError", Effect.die)),
      setNextRunAt,
      runs: (districtId: string, limit?: number) => Effect.orDie(runs(districtId, limit)),
      getRun: (runId: number) => Effect.orDie(getRun(runId)),
      findings: (runId: number, limit?: number) => Effect.orDie(findings(runId, limit)),
      changes: (runId: number) => Effect.orDie(changes(runId)),
      status: (districtId?: string) => status(districtId).pipe(Effect.catchTag("SqlError", Effect.die))
    } as const
  })
}) {}
