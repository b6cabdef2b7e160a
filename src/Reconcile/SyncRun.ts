import { SqlClient } from "@effect/sql"
import { Cause, Clock, Config, Context, Data, Duration, Effect, Exit, Stream } from "effect"
import * as Os from "node:os"
import type { District } from "../Domain/District.ts"
import type { EntityKind } from "../Domain/Roster.ts"
import { EntityKinds } from "../Domain/Roster.ts"
import type { Cursor, ProviderState, RosterSnapshot, SyncRequest } from "../Providers/RosterProvider.ts"
import { RosterProvider } from "../Providers/RosterProvider.ts"
import { rawClient } from "../Store/Copy.ts"
import type { RunStatus } from "../Store/RosterStore.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { Activation, activationNote } from "../Accounts/Activation.ts"
import { linkAccounts, refreshStudentActivation } from "../Accounts/Linking.ts"
import { Metrics } from "../Metrics/Metrics.ts"
import { applyBirthDatesOnly, applyEnrollments, applyKeyed, dropPlanDdl, endOrphanedEnrollments, planDdl } from "./Apply.ts"
import type { HeldCounts } from "./Apply.ts"
import { describeFailure } from "../Domain/Failure.ts"
import type { ChangeGroup } from "./ChangeList.ts"
import { changeList, recordChanges } from "./ChangeList.ts"
import type { Tripped } from "./Gate.ts"
import { gateEnrollments, gateKeyed } from "./Gate.ts"
import { closePendingHold, recordHold } from "./Holds.ts"
import type { EntityCounts, RunCounts } from "../Domain/RunCounts.ts"
import { emptyRunCounts } from "../Domain/RunCounts.ts"
import { Entities, stageTable } from "./Entities.ts"
import { checkStaged } from "./Findings.ts"
import { applyIdentities } from "./Identities.ts"
import { detectRekey, holdRekey } from "./Rekey.ts"
import { checkQuality } from "./Quality.ts"
import { recomputeAges, reportPeople, snapshotEnrolled } from "./Rules/People.ts"
import { expireEndedTerms, markOutOfScope, skipOutOfScopeEnrollments } from "./Rules/Scope.ts"
import { rankTeachers, reportClassesWithoutTeacher } from "./Rules/Teachers.ts"
import type { HeldLease } from "./Lease.ts"
import { DistrictLease } from "./Lease.ts"
import { dropStagingDdl, stageFeed, stagingDdl } from "./Staging.ts"

/**
 * One sync run of one district: lease → fetch → stage → check → diff & apply (one
 * transaction) → record.
 *
 * Everything happens on one reserved connection: it holds the district's lease (a session
 * advisory lock, so no two processes sync a district at once, and a dead process's lease
 * dies with its connection), owns the temp staging tables, and runs the apply transaction.
 * Fetching and staging happen *outside* the transaction, so a slow provider never holds a
 * transaction open; the transaction only covers the SQL diff and apply. A failure anywhere
 * — a missing file, a broken page, a bad header, the database — leaves the roster exactly
 * as it was, and the run is recorded as failed with a one-line reason.
 */

export interface RunSummary {
  readonly runId: number
  readonly district: string
  readonly status: RunStatus
  readonly mode: "full" | "delta"
  /** What was applied (for a dry run: what would be). */
  readonly counts: RunCounts
  readonly findings: number
  readonly durationMs: number
  readonly source: string
  readonly notes: ReadonlyArray<string>
  /** What the safety gate held back (not in `counts`), and why; null when nothing. */
  readonly held: null | {
    readonly tripped: ReadonlyArray<Tripped>
    readonly counts: Readonly<Partial<Record<keyof RunCounts, HeldCounts>>>
  }
  /** A dry run's record-level change list. */
  readonly changes?: ReadonlyArray<ChangeGroup>
  /** A `deferred` run (the source was not ready): when to try again. */
  readonly retryAfterMs?: number
}

/** Ends a dry run's transaction with a rollback, carrying what it would have done. */
class DryRunRollback extends Data.TaggedError("DryRunRollback")<{
  readonly result: { readonly counts: RunCounts; readonly findings: number; readonly held: RunSummary["held"]; readonly notes: ReadonlyArray<string> }
  readonly changes: ReadonlyArray<ChangeGroup>
}> {}

/** `rosterd.sync.runTimeout`: how long one run may take, from its start to its commit. */
const RunTimeoutConfig = Config.duration("runTimeout").pipe(Config.withDefault(Duration.hours(2)), Config.nested("sync"), Config.nested("rosterd"))

/**
 * A run past its deadline: interrupted where it was (a request, the staging COPY, the apply
 * transaction), rolled back, recorded `failed` with reason `Timeout`. The daemon retries it
 * like any failure.
 */
export class RunTimeout extends Data.TaggedError("Timeout")<{ readonly message: string }> {}

/** Progress of a run, for a terminal. The default ignores it. */
export class SyncProgress extends Context.Reference<SyncProgress>()("rosterd/SyncProgress", {
  defaultValue: () => ({
    staging: (_kind: EntityKind, _rows: number) => Effect.void,
    phase: (_phase: "fetch" | "check" | "apply" | "done") => Effect.void
  })
}) {}

/**
 * The district's local date (YYYY-MM-DD) from the Effect clock: ages and current terms are
 * judged on it, and tests can move it.
 */
export const districtToday = (timezone: string) =>
  Effect.map(Clock.currentTimeMillis, (now) =>
    new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit" }).format(now))

const countsKey: { readonly [K in Exclude<EntityKind, "demographics">]: keyof RunCounts } = {
  orgs: "schools",
  terms: "terms",
  courses: "courses",
  classes: "classes",
  users: "users",
  enrollments: "enrollments"
}

export class Sync extends Effect.Service<Sync>()("rosterd/Sync", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const provider = yield* RosterProvider
    const store = yield* RosterStore
    const leases = yield* DistrictLease
    const activation = yield* Activation
    const runTimeout = yield* RunTimeoutConfig

    /** Stages every provided feed, in dependency order. */
    const stage = (snapshot: RosterSnapshot, client: ReturnType<typeof rawClient>) =>
      Effect.gen(function*() {
        const progress = yield* SyncProgress
        yield* sql.unsafe(stagingDdl())
        yield* sql.unsafe(planDdl())
        // The diff only needs row counts and rough distributions of the staged tables: a
        // small sample keeps ANALYZE of a million-row table well under a second.
        yield* sql.unsafe(`SET default_statistics_target = 10`)
        for (const kind of EntityKinds) {
          const feed = snapshot.feeds[kind]
          if (feed === null) continue
          let staged = 0
          const items = (feed.items as Stream.Stream<any, any>).pipe(
            Stream.mapChunksEffect((chunk) => {
              staged += chunk.length
              return Effect.as(progress.staging(kind, staged), chunk)
            })
          )
          yield* stageFeed(client, kind, items)
          yield* sql.unsafe(`ANALYZE pg_temp.${stageTable(kind)}`)
        }
        yield* sql.unsafe(`RESET default_statistics_target`)
      })

    /**
     * The transaction: checks, then the diff and apply of each kind in dependency order,
     * with the district rules (src/Reconcile/Rules, src/Accounts) where they belong.
     */
    const apply = (runId: number, district: District, snapshot: RosterSnapshot, today: string, dryRun: boolean) =>
      Effect.gen(function*() {
        const feeds = snapshot.feeds
        const modes = Object.fromEntries(EntityKinds.map((k) => [k, feeds[k]?.mode ?? null])) as {
          [K in EntityKind]: "bulk" | "delta" | null
        }
        const files = Object.fromEntries(EntityKinds.map((k) => [k, feeds[k]?.name ?? null])) as {
          [K in EntityKind]: string | null
        }
        // The lock triggers let this transaction's writes through (migrations/0002).
        yield* sql.unsafe(`SELECT set_config('rosterd.writer', 'sync', true)`)
        // The diff joins whole sets: hash joins, and memory for them. Nested loops are
        // disabled because the planner's estimates for rows this transaction just wrote (a
        // new district's classes and users) can be off by orders of magnitude, and a nested
        // loop over a misestimated set is quadratic.
        yield* sql.unsafe(`SET LOCAL work_mem = '256MB'`)
        yield* sql.unsafe(`SET LOCAL enable_nestloop = off`)
        const context = { runId, districtId: district.id, rosterSource: district.rosterSource, today, modes, files }
        yield* checkStaged(context)
        yield* checkQuality(context)
        // A full run whose records look re-keyed applies nothing: it is held with the mapping
        // it proposes, for `rosterd district rekey` (src/Reconcile/Rekey.ts).
        const rekey = snapshot.mode === "full" ? yield* detectRekey(context, district.rules.rekey) : null
        if (rekey !== null) {
          const closed = yield* closePendingHold(runId, district.id, { full: false, holding: true })
          const hold = yield* holdRekey(context, rekey, dryRun)
          const [found] = yield* sql<{ readonly n: number }>`SELECT count(*) AS n FROM findings WHERE run_id = ${runId}`
          return {
            counts: emptyRunCounts,
            findings: found!.n,
            held: { tripped: hold.tripped, counts: hold.held },
            notes: [...(closed === undefined ? [] : [dryRun ? `a real run would close a pending hold: ${closed}` : closed]), hold.note]
          }
        }

        const rules = district.rules
        const counts: Record<keyof RunCounts, EntityCounts> = { ...emptyRunCounts }
        const tripped: Array<Tripped> = []
        const held: Partial<Record<keyof RunCounts, HeldCounts>> = {}
        const noteHeld = (key: keyof RunCounts, h: HeldCounts) => {
          if (h.deactivated + h.updated > 0) held[key] = h
        }
        for (const kind of ["orgs", "terms", "courses", "classes", "users"] as const) {
          const mode = modes[kind]
          if (kind === "classes" && mode !== null) yield* markOutOfScope(context, rules.scope)
          if (mode === null) continue
          const result = yield* applyKeyed(
            kind,
            mode,
            context,
            kind === "users" ? modes.demographics : null,
            gateKeyed(kind, context, rules.gate, tripped)
          )
          counts[countsKey[kind]] = result.counts
          noteHeld(countsKey[kind], result.held)
          // Keep statistics current after a large change (a first sync), for the statements that follow.
          if (result.counts.created + result.counts.deactivated > 5000) yield* sql.unsafe(`ANALYZE ${Entities[kind].table}`)
        }
        // The users' identities (provider and login ids), once the users are written.
        if (modes.users !== null) yield* applyIdentities(context)
        const notes: Array<string> = []
        if (modes.classes !== "bulk") {
          const { expired, note } = yield* expireEndedTerms(context, rules.scope, rules.gate)
          counts.classes = { ...counts.classes, deactivated: counts.classes.deactivated + expired }
          if (note !== undefined) notes.push(note)
        }
        if (modes.users === null && modes.demographics !== null) {
          const updated = yield* applyBirthDatesOnly(context)
          counts.users = { ...counts.users, updated: counts.users.updated + updated }
        }
        if (modes.enrollments !== null) {
          yield* skipOutOfScopeEnrollments(context)
          yield* rankTeachers(context, rules.coTeacherLimit, modes.enrollments === "delta")
          if (modes.enrollments === "bulk" && modes.classes === "bulk") yield* reportClassesWithoutTeacher(context)
          const result = yield* applyEnrollments(
            modes.enrollments,
            context,
            files.enrollments ?? "enrollments",
            gateEnrollments(context, rules.gate, tripped)
          )
          counts.enrollments = result.counts
          noteHeld("enrollments", result.held)
        } else {
          const ended = yield* endOrphanedEnrollments(context)
          counts.enrollments = { ...counts.enrollments, deactivated: ended }
        }
        const aged = yield* recomputeAges(context)
        counts.users = { ...counts.users, updated: counts.users.updated + aged }

        yield* snapshotEnrolled(context)
        yield* linkAccounts(context, { syncAdmins: rules.syncAdmins, reuseWindowDays: rules.accounts.reuseWindowDays })
        yield* refreshStudentActivation(context)
        // Without a credentials key the activation e-mails wait (a note); the run applies all the same.
        const activationWait = activationNote(yield* activation.issueForRun(district.id))
        if (activationWait !== undefined) notes.push(activationWait)
        yield* reportPeople(context)

        // The gate's verdict: a hold for what it kept back; an earlier pending hold closed.
        const holding = Object.keys(held).length > 0
        const closed = yield* closePendingHold(runId, district.id, { full: snapshot.mode === "full", holding })
        if (closed !== undefined) notes.push(dryRun ? `a real run would close a pending hold: ${closed}` : closed)
        if (holding) {
          yield* recordHold(runId, district.id, tripped)
          notes.push(`${dryRun ? "would be held for an operator" : `held for an operator (rosterd holds show ${runId})`}: ${
            tripped.map((t) => `${t.kind}${t.group === t.kind ? "" : ` (${t.group})`} ${t.rule} ${t.count} of ${t.of}`).join("; ")
          }`)
        }
        const [row] = yield* sql<{ readonly n: number }>`SELECT count(*) AS n FROM findings WHERE run_id = ${runId}`
        return {
          counts: counts as RunCounts,
          findings: row!.n,
          held: holding ? { tripped, counts: held } : null,
          notes
        }
      })

    const finishRun = (runId: number, status: RunStatus, fields: {
      readonly mode?: "full" | "delta"
      readonly counts?: RunCounts
      readonly findings?: number
      readonly source?: string
      readonly notes?: string
      readonly reason?: string
      readonly error?: string
    }) =>
      sql`UPDATE sync_runs SET status = ${status}, finished_at = now(),
            mode = coalesce(${fields.mode ?? null}, mode),
            counts = coalesce(${fields.counts === undefined ? null : JSON.stringify(fields.counts)}::jsonb, counts),
            findings = coalesce(${fields.findings ?? null}, findings),
            source_description = coalesce(${fields.source ?? null}, source_description),
            notes = coalesce(${fields.notes ?? null}, notes),
            error_reason = ${fields.reason ?? null}, error = ${fields.error ?? null}
          WHERE id = ${runId}`

    /** The change-feed cursor and the last successful full sync, for providers with deltas. */
    const providerState = (districtId: string) =>
      Effect.gen(function*() {
        const [cursor] = yield* sql<{ readonly cursor: string; readonly takenAt: Date }>`
          SELECT cursor, taken_at FROM sync_cursors WHERE district_id = ${districtId}`
        const [last] = yield* sql<{ readonly full: Date | null; readonly any: Date | null }>`
          SELECT max(started_at) FILTER (WHERE mode = 'full') AS full, max(started_at) AS any FROM sync_runs
          WHERE district_id = ${districtId} AND status = 'succeeded'`
        // What the last successful full run read of each kind: the base of the providers' caps.
        const [full] = yield* sql<{ readonly counts: Partial<Record<keyof RunCounts, EntityCounts>> | null }>`
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

    const saveCursor = (districtId: string, runId: number, cursor: Cursor) =>
      sql`INSERT INTO sync_cursors (district_id, cursor, taken_at, run_id) VALUES (${districtId}, ${cursor.value}, ${cursor.takenAt}, ${runId})
          ON CONFLICT (district_id) DO UPDATE
            SET cursor = excluded.cursor, taken_at = excluded.taken_at, run_id = excluded.run_id, updated_at = now()`

    const run = Effect.fn("Sync.run")(function*(
      districtId: string,
      options: {
        readonly request: SyncRequest
        readonly trigger: string
        readonly dryRun?: boolean
        /** The district's lease when the caller holds it already; otherwise the run takes it. */
        readonly lease?: HeldLease
      }
    ) {
      const district = yield* store.getDistrict(districtId)
      const progress = yield* SyncProgress
      const metrics = yield* Metrics
      return yield* Effect.scoped(Effect.gen(function*() {
        // The lease (the caller's, when it already holds it: the daemon does, to check and
        // write the district's schedule under it).
        const { connection } = options.lease ?? (yield* leases.hold(district.id))
        const client = rawClient(connection)
        // Pin every statement of this fiber to the lease's connection; `withTransaction`
        // then opens its transaction on it (counter -1 makes its first level a BEGIN, not a savepoint).
        // (The module-level steps in Findings/Apply ask for the SqlClient: give them ours.)
        const pinned = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          effect.pipe(
            Effect.provideService(SqlClient.TransactionConnection, [connection, -1] as const),
            Effect.provideService(SqlClient.SqlClient, sql)
          )

        return yield* pinned(Effect.gen(function*() {
          // Holding the lease, any run still marked running belonged to a process that died.
          yield* sql`UPDATE sync_runs SET status = 'interrupted', finished_at = now(), error_reason = 'Interrupted',
                       error = 'the process running it stopped before it finished'
                     WHERE district_id = ${district.id} AND status = 'running'`
          const [started] = yield* sql<{ readonly id: number; readonly startedAt: Date }>`
            INSERT INTO sync_runs (district_id, mode, status, trigger, host, pid)
            VALUES (${district.id}, ${options.request === "delta" ? "delta" : "full"}, 'running', ${options.trigger},
                    ${Os.hostname()}, ${process.pid})
            RETURNING id, started_at`
          const runId = started!.id
          const startedAt = Date.now()
          // The deadline covers fetch, staging and the apply transaction, never its commit: a
          // run past it rolls back; a run that committed is not turned into a failure.
          const deadline = startedAt + Duration.toMillis(runTimeout)
          const withinDeadline = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
            Effect.suspend(() =>
              Effect.timeoutFail(effect, {
                duration: Duration.millis(Math.max(0, deadline - Date.now())),
                onTimeout: () =>
                  new RunTimeout({
                    message: `the run took longer than ${Duration.format(runTimeout)} (rosterd.sync.runTimeout) and was stopped; nothing was applied`
                  })
              })
            )

          const work = Effect.gen(function*() {
            yield* progress.phase("fetch")
            const snapshot = yield* withinDeadline(Effect.gen(function*() {
              const snapshot = yield* provider.snapshot(district, options.request, yield* providerState(district.id))
              yield* Effect.annotateCurrentSpan({ "run.mode": snapshot.mode })
              yield* stage(snapshot, client)
              return snapshot
            }))
            yield* progress.phase("apply")
            const today = yield* districtToday(district.timezone)
            const summary = (status: RunStatus, result: DryRunRollback["result"], changes?: ReadonlyArray<ChangeGroup>): RunSummary => ({
              runId,
              district: district.id,
              status,
              mode: snapshot.mode,
              counts: result.counts,
              findings: result.findings,
              durationMs: Date.now() - startedAt,
              source: snapshot.description,
              notes: [...(snapshot.notes ?? []), ...result.notes],
              held: result.held,
              ...(changes === undefined ? {} : { changes })
            })
            const applied = yield* sql.withTransaction(withinDeadline(Effect.gen(function*() {
              const result = yield* apply(runId, district, snapshot, today, options.dryRun ?? false)
              // A dry run: everything above ran for real inside this transaction; roll it back.
              if (options.dryRun) return yield* new DryRunRollback({ result, changes: yield* changeList })
              yield* recordChanges(runId, district.id)
              // A run held as a suspected re-key applied nothing: the feed's position stays where it was.
              const rekeyHeld = result.held?.tripped.some((t) => t.rule === "rekey_suspected") ?? false
              if (snapshot.cursor !== undefined && !rekeyHeld) yield* saveCursor(district.id, runId, snapshot.cursor)
              const notes = [...(snapshot.notes ?? []), ...result.notes]
              yield* finishRun(runId, result.held === null ? "succeeded" : "held", {
                ...(notes.length > 0 ? { notes: notes.join("; ") } : {}),
                mode: snapshot.mode,
                counts: result.counts,
                findings: result.findings,
                source: snapshot.description
              })
              return summary(result.held === null ? "succeeded" : "held", result)
            }))).pipe(
              Effect.catchTag("DryRunRollback", (dry) =>
                Effect.as(
                  finishRun(runId, "dry-run", { mode: snapshot.mode, counts: dry.result.counts, source: snapshot.description, notes: "dry run: nothing was applied" }),
                  summary("dry-run", dry.result, dry.changes)
                ))
            )
            yield* progress.phase("done")
            return applied
          }).pipe(
            Effect.scoped,
            // A set still being written: nothing was applied, and it is no failure (a note, tried again later).
            Effect.catchTag("ProviderError", (error) => Effect.gen(function*() {
              if (error.reason !== "NotReady") return yield* error
              const note = `${error.where}${error.message}`
              yield* finishRun(runId, "deferred", { notes: note })
              return {
                runId,
                district: district.id,
                status: "deferred",
                mode: options.request === "delta" ? "delta" : "full",
                counts: emptyRunCounts,
                findings: 0,
                durationMs: Date.now() - startedAt,
                source: "",
                notes: [note],
                held: null,
                retryAfterMs: error.retryAfterMillis ?? 60_000
              } satisfies RunSummary as RunSummary
            }))
          )

          return yield* work.pipe(
            Effect.onExit((exit) =>
              Effect.gen(function*() {
                yield* sql.unsafe(dropStagingDdl() + dropPlanDdl()).pipe(Effect.ignore)
                if (Exit.isSuccess(exit)) {
                  const done = exit.value
                  return yield* metrics.runFinished({
                    district: district.id,
                    status: done.status,
                    mode: done.mode,
                    durationMs: done.durationMs,
                    applied: done.status === "dry-run" ? null : done.counts
                  })
                }
                const { message, reason } = describeFailure(exit.cause)
                const status: RunStatus = Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "failed"
                yield* finishRun(runId, status, { reason, error: message }).pipe(Effect.ignore)
                yield* metrics.runFinished({
                  district: district.id,
                  status,
                  mode: options.request === "delta" ? "delta" : "full",
                  durationMs: Date.now() - startedAt,
                  applied: null
                })
                yield* Effect.logInfo(`sync ${status}`).pipe(Effect.annotateLogs({ reason }))
              })
            ),
            Effect.annotateLogs({ district: district.id, runId })
          )
        }))
      }))
    })

    return { run } as const
  }),
  dependencies: [RosterStore.Default, Activation.Default, DistrictLease.Default]
}) {}
