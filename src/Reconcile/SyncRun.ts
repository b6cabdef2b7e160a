import { SqlClient } from "@effect/sql"
import { Cause, Clock, Config, Context, Data, Duration, Effect, Exit } from "effect"
import type { District } from "../Domain/District.ts"
import { excludedSchools } from "../Domain/DistrictRules.ts"
import { describeFailure } from "../Domain/Failure.ts"
import type { EntityKind } from "../Domain/Roster.ts"
import { EntityKinds } from "../Domain/Roster.ts"
import type { EntityCounts, RunCounts } from "../Domain/RunCounts.ts"
import { emptyRunCounts, zeroCounts } from "../Domain/RunCounts.ts"
import { Metrics } from "../Metrics/Metrics.ts"
import type { RosterSnapshot, SyncRequest } from "../Providers/RosterProvider.ts"
import { RosterProvider } from "../Providers/RosterProvider.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import type { ChangeGroup, RunMode, RunStatus } from "../Store/Runs.ts"
import { Runs } from "../Store/Runs.ts"
import { onConnection, rawClient } from "../Store/Session.ts"
import type { ApplyContext, HeldCounts } from "./Apply.ts"
import { applyBirthDatesOnly, applyEnrollments, applyKeyed, dropPlanDdl, endOrphanedEnrollments } from "./Apply.ts"
import { changeList, keepBeforeValues, recordChanges } from "./ChangeList.ts"
import { Entities } from "./Entities.ts"
import type { FindingsContext } from "./Findings.ts"
import { checkStaged } from "./Findings.ts"
import type { Tripped } from "./Gate.ts"
import { gateEnrollments, gateKeyed, schoolJudging } from "./Gate.ts"
import { closePendingHold, recordHold } from "./Holds.ts"
import { applyContactLinks, excludeContacts } from "./Contacts.ts"
import { applyIdentities } from "./Identities.ts"
import type { HeldLease } from "./Lease.ts"
import { DistrictLease } from "./Lease.ts"
import { checkQuality } from "./Quality.ts"
import type { RekeySuspicion } from "./Rekey.ts"
import { detectRekey, holdRekey } from "./Rekey.ts"
import { RunAccounts } from "./RunAccounts.ts"
import { recomputeAges, reportPeople, snapshotEnrolled } from "./Rules/People.ts"
import { expireEndedTerms, markOutOfScope, skipOutOfScopeEnrollments } from "./Rules/Scope.ts"
import { rankTeachers, reportClassesWithoutTeacher } from "./Rules/Teachers.ts"
import type { Staged } from "./StageRun.ts"
import { stageSnapshot } from "./StageRun.ts"
import type { AppliedMark } from "./Unchanged.ts"
import { carryFindings, confirmUnchanged, dropMark, lastFinding, planBirthdays, unchangedNext, writeMark } from "./Unchanged.ts"
import { dropStagingDdl } from "./Staging.ts"
import { mayWriteAsSet, ReferencesBySetConfig } from "./ReferencesBySet.ts"

/**
 * One sync run of one district, as a pipeline:
 *
 *     lease → fetch → stage → check → plan → gate → apply → record
 *
 * - **lease**: the district's lease (Lease.ts), a session lock on a reserved connection.
 *   Every step runs on that one session: no two processes sync a district at once, a dead
 *   process's lease dies with its connection, the staging tables are its temp tables and
 *   the apply transaction is its transaction (Store/Session.ts).
 * - **fetch**: the provider's snapshot (src/Providers), given what the store knows of the
 *   district's past runs (its cursor, its last full sync: Store/Runs.ts).
 * - **stage**: each feed COPYed into temp tables, every record through the value guard on
 *   its way in (StageRun.ts, Staging.ts, src/Domain/Values.ts); records the digest store
 *   knows are restored, not decoded (DigestStaging.ts). A run whose every feed is what the
 *   district's last applied run read stops after scanning them (Unchanged.ts).
 *
 * Fetching and staging happen *outside* the transaction, so a slow provider never holds a
 * transaction open. The rest is one transaction:
 *
 * - **skip?** a run that stopped after its scans confirms the stored roster is as the last
 *   run left it: then it compares nothing, carries that run's findings forward and goes
 *   on to the people (Unchanged.ts); otherwise it stages the rest and compares.
 * - **check**: findings and data quality on the staged set (Findings.ts, Quality.ts); in a
 *   full run, the re-key detection (Rekey.ts): a run that looks re-keyed is held whole and
 *   applies nothing.
 * - **plan → gate → apply**: per kind in dependency order, the set-based diff (Apply.ts),
 *   the safety gate between planning and writing (Gate.ts), with the district's rules
 *   where they belong (Rules/); then the people: identities, ages, accounts (the port
 *   `RunAccounts`, implemented by src/Accounts), findings. What the gate kept back becomes
 *   the run's hold (Holds.ts).
 * - **record**: the change list, the cursor, the mark for the next run (Unchanged.ts) and the
 *   run row (ChangeList.ts, Store/Runs.ts).
 *
 * A failure anywhere — a missing file, a broken page, a bad header, the database — leaves
 * the roster exactly as it was, and the run is recorded as failed with a one-line reason.
 */

export interface RunSummary {
  readonly runId: number
  readonly district: string
  readonly status: RunStatus
  readonly mode: RunMode
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

/** What the transaction did (or, in a dry run, would do). */
interface Outcome {
  readonly counts: RunCounts
  readonly findings: number
  readonly held: RunSummary["held"]
  readonly notes: ReadonlyArray<string>
  /** The run's last comparison finding (Unchanged.ts: what a later run may carry forward). */
  readonly findingsUpto: number
  /**
   * Per kind, what a comparison of the same feeds would count unchanged (Unchanged.ts);
   * null when the next comparison of the same feeds could differ from this one's (a hold,
   * a deactivation): the run leaves no mark.
   */
  readonly unchangedNext: Readonly<Record<keyof RunCounts, number>> | null
  /** A run that skipped its comparison: the mark it confirmed (whose comparison it carries); null when it compared. */
  readonly skipped: AppliedMark | null
}

/** Ends a dry run's transaction with a rollback, carrying what it would have done. */
class DryRunRollback extends Data.TaggedError("DryRunRollback")<{
  readonly result: Outcome
  readonly changes: ReadonlyArray<ChangeGroup>
}> {}

/**
 * `rosterd.sync.digests`: decode only the records whose digest changed (Digests.ts). Off,
 * every record is decoded and compared in full, and the digest store is left alone.
 */
const DigestsConfig = Config.boolean("digests").pipe(Config.withDefault(true), Config.nested("sync"), Config.nested("rosterd"))

/**
 * `rosterd.sync.compareEvery`: the longest a district goes without a comparison while its
 * roster does not change (Unchanged.ts): a mark whose comparison is older is not used. A
 * week: a district synced nightly still skips on most unchanged nights (a day would make it
 * compare every other night, its slots being a day apart give or take a second).
 */
const CompareEveryConfig = Config.duration("compareEvery").pipe(Config.withDefault(Duration.days(7)), Config.nested("sync"), Config.nested("rosterd"))

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

type RunContext = ApplyContext & FindingsContext

/** A run's context for the steps in its transaction: its feeds' modes and names, the district's local date. */
const runContext = (runId: number, district: District, snapshot: RosterSnapshot, today: string): RunContext => ({
  runId,
  districtId: district.id,
  rosterSource: district.rosterSource,
  today,
  modes: Object.fromEntries(EntityKinds.map((k) => [k, snapshot.feeds[k]?.mode ?? null])) as RunContext["modes"],
  files: Object.fromEntries(EntityKinds.map((k) => [k, snapshot.feeds[k]?.name ?? null])) as RunContext["files"]
})

/** The mode a run is recorded with before its snapshot says. */
const requestedMode = (request: SyncRequest): RunMode => (request === "delta" ? "delta" : "full")

/** The note of a pending hold this run closes (a dry run only says it would). */
const closedNote = (closed: string | undefined, dryRun: boolean) =>
  closed === undefined ? [] : [dryRun ? `a real run would close a pending hold: ${closed}` : closed]

export class Sync extends Effect.Service<Sync>()("rosterd/Sync", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const provider = yield* RosterProvider
    const store = yield* RosterStore
    const runs = yield* Runs
    const leases = yield* DistrictLease
    const accounts = yield* RunAccounts
    const runTimeout = yield* RunTimeoutConfig
    const digestsOn = yield* DigestsConfig
    const compareEvery = yield* CompareEveryConfig
    const referencesBySet = yield* ReferencesBySetConfig

    /** fetch: the provider's snapshot, given what the store knows of the district's past runs. */
    const fetch = (district: District, request: SyncRequest) =>
      Effect.gen(function*() {
        const snapshot = yield* provider.snapshot(district, request, yield* runs.providerState(district.id))
        yield* Effect.annotateCurrentSpan({ "run.mode": snapshot.mode })
        return snapshot
      })

    /**
     * The transaction's settings: the writer the lock triggers let through, memory and join
     * choices for the diff. Returns the run's context with how its inserts' foreign keys are
     * checked (ReferencesBySet.ts).
     */
    const openTransaction = (context: RunContext) => Effect.gen(function*() {
      // The lock triggers let this transaction's writes through (migrations/0002).
      yield* sql.unsafe(`SELECT set_config('rosterd.writer', 'sync', true)`)
      // The diff joins whole sets: hash joins, and memory for them. Nested loops are
      // disabled because the planner's estimates for rows this transaction just wrote (a
      // new district's classes and users) can be off by orders of magnitude, and a nested
      // loop over a misestimated set is quadratic.
      yield* sql.unsafe(`SET LOCAL work_mem = '256MB'`)
      yield* sql.unsafe(`SET LOCAL enable_nestloop = off`)
      return { ...context, referencesBySet: referencesBySet && (yield* mayWriteAsSet) } satisfies RunContext
    })

    /**
     * check: the staged set's findings and quality; in a full run, the re-key detection.
     * Returns the suspected re-key, if any.
     */
    const check = (context: RunContext, district: District, snapshot: RosterSnapshot, staged: Staged) =>
      Effect.gen(function*() {
        yield* checkStaged(context, staged.keys())
        yield* checkQuality(context)
        return snapshot.mode === "full" ? yield* detectRekey(context, district.rules.rekey) : null
      })

    /** A run that looks re-keyed applies nothing: it is held with the mapping it proposes, for `rosterd district rekey`. */
    const holdAsRekey = (context: RunContext, suspicion: RekeySuspicion, dryRun: boolean) =>
      Effect.gen(function*() {
        const closed = yield* closePendingHold(context.runId, context.districtId, { full: false, holding: true })
        const hold = yield* holdRekey(context, suspicion, dryRun)
        return {
          counts: emptyRunCounts,
          findings: yield* runs.findingsCount(context.runId),
          held: { tripped: hold.tripped, counts: hold.held },
          notes: [...closedNote(closed, dryRun), hold.note],
          findingsUpto: 0,
          unchangedNext: null,
          skipped: null
        } satisfies Outcome
      })

    /**
     * plan → gate → apply, per kind in dependency order, with the district's rules where
     * they belong; then the people (identities, birth dates, ages). The gate's verdicts are
     * gathered in `tripped` and `held`.
     */
    const applyRoster = (context: RunContext, district: District) =>
      Effect.gen(function*() {
        const { modes, files } = context
        const rules = district.rules
        const counts: Record<keyof RunCounts, EntityCounts> = { ...emptyRunCounts }
        const tripped: Array<Tripped> = []
        const held: Partial<Record<keyof RunCounts, HeldCounts>> = {}
        const notes: Array<string> = []
        const noteHeld = (key: keyof RunCounts, h: HeldCounts) => {
          if (h.deactivated + h.updated > 0) held[key] = h
        }
        for (const kind of ["orgs", "terms", "courses", "classes", "users"] as const) {
          const mode = modes[kind]
          if (kind === "classes" && mode !== null) yield* markOutOfScope(context, rules.scope, excludedSchools(rules))
          if (kind === "users" && mode !== null) yield* excludeContacts(rules.contacts)
          if (mode === null) continue
          const result = yield* applyKeyed(
            kind,
            mode,
            context,
            kind === "users" ? modes.demographics : null,
            gateKeyed(kind, context, rules.gate, tripped, schoolJudging(rules)).pipe(Effect.tap(keepBeforeValues(kind, context)))
          )
          counts[countsKey[kind]] = result.counts
          noteHeld(countsKey[kind], result.held)
          // Keep statistics current after a large change (a first sync), for the statements that follow.
          if (result.counts.created + result.counts.deactivated > 5000) yield* sql.unsafe(`ANALYZE ${Entities[kind].table}`)
        }
        // The users' identities (provider and login ids), once the users are written.
        if (modes.users !== null) yield* applyIdentities(context)
        // Guardians and contacts, linked to their students (rules.contacts): src/Reconcile/Contacts.ts.
        yield* applyContactLinks(context, rules.contacts)
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
            gateEnrollments(context, rules.gate, tripped, schoolJudging(rules)).pipe(Effect.tap(keepBeforeValues("enrollments", context)))
          )
          counts.enrollments = result.counts
          noteHeld("enrollments", result.held)
        } else {
          const ended = yield* endOrphanedEnrollments(context)
          counts.enrollments = { ...counts.enrollments, deactivated: ended }
        }
        // What a comparison of the same feeds would find unchanged next time (Unchanged.ts):
        // taken before the age pass, which counts users the comparison counted already.
        const compared = unchangedNext(counts)
        // A comparison after one that deactivated something is not the same comparison: a
        // record still listed whose user or class it removed is reported dangling the next
        // time, for one. Such a run leaves no mark (Unchanged.ts); the next one does.
        const deactivated = Object.values(counts).some((c) => c.deactivated > 0)
        const aged = yield* recomputeAges(context)
        counts.users = { ...counts.users, updated: counts.users.updated + aged }
        return { counts: counts as RunCounts, tripped, held, notes, compared, deactivated }
      })

    /** The people once the roster is applied: who is enrolled, their accounts (src/Accounts, through the port), their findings. */
    const applyPeople = (context: RunContext, district: District) =>
      Effect.gen(function*() {
        yield* snapshotEnrolled(context)
        const notes = yield* accounts.afterApply(context, district)
        yield* reportPeople(context)
        return notes
      })

    /** The gate's verdict: a hold for what it kept back; an earlier pending hold closed. */
    const hold = (context: RunContext, snapshot: RosterSnapshot, applied: Effect.Effect.Success<ReturnType<typeof applyRoster>>, dryRun: boolean) =>
      Effect.gen(function*() {
        const { runId } = context
        const holding = Object.keys(applied.held).length > 0
        const closed = yield* closePendingHold(runId, context.districtId, { full: snapshot.mode === "full", holding })
        if (!holding) return { held: null, notes: closedNote(closed, dryRun) }
        yield* recordHold(runId, context.districtId, applied.tripped)
        const why = applied.tripped.map((t) => `${t.kind}${t.group === t.kind ? "" : ` (${t.group})`} ${t.rule} ${t.count} of ${t.of}`).join("; ")
        return {
          held: { tripped: applied.tripped, counts: applied.held },
          notes: [...closedNote(closed, dryRun), `${dryRun ? "would be held for an operator" : `held for an operator (rosterd holds show ${runId})`}: ${why}`]
        }
      })

    /**
     * A run that reads what the district's last applied run read, into the stored roster it
     * left (Unchanged.ts): no comparison. That run's comparison findings are this run's;
     * what depends on the day (ages, with their change list) and on the people (accounts,
     * the people's findings) runs as in any run; a pending hold is closed as a full run that
     * holds nothing closes it.
     */
    const reconcileUnchanged = (context: RunContext, district: District, mark: AppliedMark, dryRun: boolean) =>
      Effect.gen(function*() {
        yield* carryFindings(context, mark)
        const birthdays = yield* planBirthdays(context)
        const aged = yield* recomputeAges(context)
        const findingsUpto = yield* lastFinding(context.runId)
        const peopleNotes = yield* applyPeople(context, district)
        const closed = yield* closePendingHold(context.runId, context.districtId, { full: true, holding: false })
        const counts = Object.fromEntries(
          (Object.keys(emptyRunCounts) as Array<keyof RunCounts>).map((key) => [key, { ...zeroCounts, unchanged: mark.unchanged[key] ?? 0 }])
        ) as Record<keyof RunCounts, EntityCounts>
        // The birthdays a comparison would have found among the records it compares are its updates.
        counts.users = { ...counts.users, updated: aged, unchanged: counts.users.unchanged - birthdays }
        return {
          counts,
          findings: yield* runs.findingsCount(context.runId),
          held: null,
          notes: [
            `unchanged since run ${mark.runId}: the same records into the roster it left, so nothing was compared`,
            ...peopleNotes,
            ...closedNote(closed, dryRun)
          ],
          findingsUpto,
          unchangedNext: mark.unchanged,
          skipped: mark
        } satisfies Outcome
      })

    /** check → plan → gate → apply: the transaction's work, up to what it would record. */
    const reconcile = (base: RunContext, district: District, snapshot: RosterSnapshot, staged: Staged, dryRun: boolean) =>
      Effect.gen(function*() {
        const context = yield* openTransaction(base)
        const stagingNotes: Array<string> = []
        if (staged.unchanged !== null) {
          const { mark, rest } = staged.unchanged
          if (yield* confirmUnchanged(context, mark, district.rules.scope.currentTermsOnly)) {
            return yield* reconcileUnchanged(context, district, mark, dryRun)
          }
          // The stored roster changed since (or a term began or ended): staged and compared after all.
          stagingNotes.push(...(yield* rest))
        }
        const suspicion = yield* check(context, district, snapshot, staged)
        if (suspicion !== null) return yield* holdAsRekey(context, suspicion, dryRun)
        const applied = yield* applyRoster(context, district)
        const findingsUpto = yield* lastFinding(context.runId)
        const peopleNotes = yield* applyPeople(context, district)
        const verdict = yield* hold(context, snapshot, applied, dryRun)
        return {
          counts: applied.counts,
          findings: yield* runs.findingsCount(context.runId),
          held: verdict.held,
          notes: [...stagingNotes, ...applied.notes, ...peopleNotes, ...verdict.notes],
          findingsUpto,
          unchangedNext: applied.deactivated ? null : applied.compared,
          skipped: null
        } satisfies Outcome
      })

    /** record: the change list, where the change feed stands, and the run row (in the transaction). */
    const record = (context: RunContext, snapshot: RosterSnapshot, outcome: Outcome, source: string | null) =>
      Effect.gen(function*() {
        yield* recordChanges(context.runId, context.districtId)
        // The mark a later run may skip the comparison by (Unchanged.ts): only a run that
        // applied all it read and deactivated nothing, with every feed complete and scanned.
        // Last, after every write.
        if (source !== null && outcome.held === null && outcome.unchangedNext !== null) {
          yield* writeMark(
            context,
            source,
            outcome.findingsUpto,
            outcome.unchangedNext,
            outcome.skipped?.comparedAt ?? (yield* Clock.currentTimeMillis),
            outcome.skipped?.liveKey ?? null
          )
        }
        else yield* dropMark(context.districtId)
        // A run held as a suspected re-key applied nothing: the feed's position stays where it was.
        const rekeyHeld = outcome.held?.tripped.some((t) => t.rule === "rekey_suspected") ?? false
        if (snapshot.cursor !== undefined && !rekeyHeld) yield* runs.saveCursor(context.districtId, context.runId, snapshot.cursor)
        const notes = [...(snapshot.notes ?? []), ...outcome.notes]
        yield* runs.finish(context.runId, outcome.held === null ? "succeeded" : "held", {
          ...(notes.length > 0 ? { notes: notes.join("; ") } : {}),
          mode: snapshot.mode,
          counts: outcome.counts,
          findings: outcome.findings,
          source: snapshot.description
        })
      })

    const run = Effect.fn("Sync.run")(function*(
      districtId: string,
      options: {
        readonly request: SyncRequest
        readonly trigger: string
        readonly dryRun?: boolean
        /** `false`: decode and compare every record, whatever `rosterd.sync.digests` says. */
        readonly digests?: boolean
        /** The district's lease when the caller holds it already; otherwise the run takes it. */
        readonly lease?: HeldLease
      }
    ) {
      const district = yield* store.getDistrict(districtId)
      const progress = yield* SyncProgress
      const metrics = yield* Metrics
      const dryRun = options.dryRun ?? false
      return yield* Effect.scoped(Effect.gen(function*() {
        // lease (the caller's, when it already holds it: the daemon does, to check and
        // write the district's schedule under it).
        const { connection } = options.lease ?? (yield* leases.hold(district.id))

        return yield* onConnection(connection, sql)(Effect.gen(function*() {
          const started = yield* runs.start(district.id, { mode: requestedMode(options.request), trigger: options.trigger })
          const runId = started.id
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
            const { snapshot, staged } = yield* withinDeadline(Effect.gen(function*() {
              const snapshot = yield* fetch(district, options.request)
              const staged = yield* stageSnapshot(snapshot, rawClient(connection), district, runId, {
                digests: digestsOn && options.digests !== false,
                maySkip: options.request !== "full",
                compareEvery,
                progress: (kind, rows) => progress.staging(kind, rows)
              })
              const notes = staged.notes
              return { snapshot: notes.length === 0 ? snapshot : { ...snapshot, notes: [...(snapshot.notes ?? []), ...notes] }, staged }
            }))
            yield* progress.phase("apply")
            const context = runContext(runId, district, snapshot, yield* districtToday(district.timezone))
            const summary = (status: RunStatus, result: Outcome, changes?: ReadonlyArray<ChangeGroup>): RunSummary => ({
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
              const outcome = yield* reconcile(context, district, snapshot, staged, dryRun)
              // A dry run: everything above ran for real inside this transaction; roll it back.
              if (dryRun) return yield* new DryRunRollback({ result: outcome, changes: yield* changeList() })
              yield* record(context, snapshot, outcome, staged.source())
              return summary(outcome.held === null ? "succeeded" : "held", outcome)
            }))).pipe(
              Effect.catchTag("DryRunRollback", (dry) =>
                Effect.as(
                  runs.finish(runId, "dry-run", { mode: snapshot.mode, counts: dry.result.counts, source: snapshot.description, notes: "dry run: nothing was applied" }),
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
              yield* runs.finish(runId, "deferred", { notes: note })
              return {
                runId,
                district: district.id,
                status: "deferred",
                mode: requestedMode(options.request),
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
                yield* runs.finish(runId, status, { reason, error: message }).pipe(Effect.ignore)
                yield* metrics.runFinished({
                  district: district.id,
                  status,
                  mode: requestedMode(options.request),
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
  dependencies: [RosterStore.Default, Runs.Default, DistrictLease.Default]
}) {}
