import { Cause, Clock, Config, Duration, Effect, Exit, FiberMap, Layer, Option, Random, Ref, Schedule, Scope } from "effect"
import { SyncLive } from "../Accounts/SyncAccounts.ts"
import { declaredDistricts } from "../Config/Districts.ts"
import type { District } from "../Domain/District.ts"
import { describeFailure } from "../Domain/Failure.ts"
import { Outbox } from "../Mail/Outbox.ts"
import { Discovery } from "../Districts/Discovery.ts"
import { Notify } from "../Notify/Notify.ts"
import { MailerLive } from "../Mail/SmtpMailer.ts"
import { Retention } from "../Mail/Retention.ts"
import type { HeldLease } from "../Reconcile/Lease.ts"
import { DistrictLease } from "../Reconcile/Lease.ts"
import { Sync } from "../Reconcile/SyncRun.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { Freshness } from "./Freshness.ts"
import { PauseNotices } from "./PauseNotices.ts"
import { Pauses } from "./Pauses.ts"
import type { StoredSlot } from "./Slots.ts"
import { sameSlot, Slots } from "./Slots.ts"
import type { Slot } from "./SyncSchedule.ts"
import { catchUpSlot, nextSlot } from "./SyncSchedule.ts"

/**
 * The daemon's scheduler. Every replica runs the same loop against the shared schedule in
 * Postgres (`districts.next_run_*`, see Slots.ts):
 *
 * 1. Every `rosterd.sync.poll` (5 s) — or sooner, when a district's slot comes before —
 *    read the districts whose slot has come.
 * 2. For each (while fewer than `rosterd.sync.concurrency` of this replica's runs are going,
 *    and, with `rosterd.sync.clusterConcurrency`, one of the cluster's run slots is free):
 *    take the district's **lease** (a session advisory lock, Reconcile/Lease.ts; busy means
 *    another replica has it: skip), re-read the slot and go on only if it is still the one
 *    seen (another replica may have just run it), then run it — or, when the district is
 *    inside a pause, move the slot to the pause's end as a **catch-up** full sync.
 * 3. Write the next slot *before* letting the lease go: the regular one (SyncSchedule.ts:
 *    nightly in the district's zone, deltas, the full cadence), or after a failure a retry
 *    with capped exponential backoff and jitter, `rosterd.sync.retries` times, after which
 *    the district waits for its next regular slot and shows as failing. A run *deferred*
 *    because its source was not ready (a CSV set still being written) is no failure: the
 *    same slot comes again after the settle time, no retry counted. A slot that falls
 *    inside a pause is placed at the pause's end instead, so `rosterd status` shows when the
 *    district will really run.
 *
 * A replica that dies mid-run loses its lease with its connection; its district's slot is
 * still due, so another replica runs it at its next poll (seconds, well inside a minute).
 * The run left `running` is marked interrupted by the next run (SyncRun.ts).
 *
 * **Graceful stop** (SIGTERM): no run starts any more; the running ones have
 * `rosterd.sync.shutdownGrace` (60 s) to finish, then they are interrupted: their
 * transaction rolls back, the run is recorded `interrupted`, and their slot, never
 * rewritten, is still due when the daemon (or another replica) starts again.
 *
 * Beside it: pause notices every `rosterd.sync.noticeCheck` (PauseNotices.ts, exactly once
 * per pause per district across replicas), the outbox worker (Outbox.run, rows claimed
 * with `FOR UPDATE SKIP LOCKED`), and the retention (Retention.run, hourly). Activation
 * reminders run beside the daemon, not in it (src/Accounts/Reminders.ts `RemindersLive`,
 * composed with it in src/Cli/Cli.ts), every `rosterd.accounts.reminderCheck`.
 */

export const DaemonConfig = Config.all({
  poll: Config.duration("poll").pipe(Config.withDefault(Duration.seconds(5))),
  concurrency: Config.integer("concurrency").pipe(Config.withDefault(2)),
  /** Districts all replicas together run at once (run slots, advisory locks); unset: no limit beyond each replica's. */
  clusterConcurrency: Config.option(Config.integer("clusterConcurrency")),
  retryBase: Config.duration("retryBase").pipe(Config.withDefault(Duration.seconds(30))),
  retryMax: Config.duration("retryMax").pipe(Config.withDefault(Duration.minutes(15))),
  retries: Config.integer("retries").pipe(Config.withDefault(5)),
  shutdownGrace: Config.duration("shutdownGrace").pipe(Config.withDefault(Duration.seconds(60))),
  noticeCheck: Config.duration("noticeCheck").pipe(Config.withDefault(Duration.minutes(1))),
  /** No longer used (the schedule is per district, `rules.schedule`): only to warn. */
  interval: Config.option(Config.string("interval"))
}).pipe(Config.nested("sync"), Config.nested("rosterd"))

/** Failures a retry cannot mend: the district's settings or the request itself are wrong. */
const retryable = (error: { readonly _tag: string }) =>
  error._tag !== "DistrictNotFound" && error._tag !== "InvalidDistrict" && error._tag !== "ModeNotAvailable"

/** The scheduler alone: what it runs is given by the caller (the unit tests give doubles). */
export const DaemonWithoutDependencies = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* DaemonConfig
    const store = yield* RosterStore
    const sync = yield* Sync
    const outbox = yield* Outbox
    const retention = yield* Retention
    const slots = yield* Slots
    const leases = yield* DistrictLease
    const pauses = yield* Pauses
    const notices = yield* PauseNotices
    // Optional, so the scheduler's unit tests need no doubles for them (DaemonLive provides both).
    const notify = yield* Effect.serviceOption(Notify)
    const freshness = yield* Effect.serviceOption(Freshness)
    const discovery = yield* Effect.serviceOption(Discovery)
    const running = yield* FiberMap.make<string>()
    const stopping = yield* Ref.make(false)

    if (Option.isSome(config.interval)) {
      yield* Effect.logWarning("rosterd.sync.interval is no longer used: each district's schedule is rules.schedule (see the README)")
    }
    for (const district of yield* declaredDistricts) yield* store.declareDistrict(district)

    const now = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))

    /** Stores the slot, moved to the end of a pause when it falls inside one. */
    const place = (district: District, slot: Slot, attempt: number) =>
      Effect.gen(function*() {
        const pause = yield* pauses.activeAt(district, slot.at)
        const placed = Option.match(pause, {
          onNone: () => slot,
          onSome: (p) => catchUpSlot(district.provider, p.endsAt)
        })
        yield* slots.set(district.id, placed, Option.isSome(pause) ? 0 : attempt)
        return placed
      })

    const regularSlot = (district: District, after: Date) =>
      Effect.map(slots.lastFullAt(district.id), (lastFullAt) =>
        nextSlot({
          rules: district.rules.schedule,
          districtId: district.id,
          provider: district.provider,
          zone: district.timezone,
          now: after,
          lastFullAt
        }))

    /** retryBase × 2^attempt, at most retryMax, ±20 % jitter. */
    const backoff = (attempt: number) =>
      Effect.map(Random.nextRange(0.8, 1.2), (jitter) => {
        const nominal = Math.min(Duration.toMillis(config.retryBase) * 2 ** attempt, Duration.toMillis(config.retryMax))
        return Math.round(nominal * jitter)
      })

    /** One due slot, under the district's lease. */
    /**
     * Claims a due slot for this replica, in the poll itself (so a district another replica
     * holds is passed over for the next due one at once): the district's lease, the slot
     * still the one seen, and with `clusterConcurrency` one of the cluster's run slots. The
     * claim lives in `scope`, which the run closes when it ends.
     */
    const claim = (seen: StoredSlot, scope: Scope.Scope) =>
      Effect.gen(function*() {
        const lease = yield* leases.hold(seen.district)
        const current = yield* slots.get(seen.district)
        if (current === undefined || !sameSlot(current, seen)) return "taken" as const // run by another replica meanwhile
        if (Option.isSome(config.clusterConcurrency) && !(yield* leases.holdRunSlot(lease, config.clusterConcurrency.value))) {
          return "cluster full" as const
        }
        return lease
      }).pipe(
        Scope.extend(scope),
        Effect.catchTag("DistrictBusy", () => Effect.succeed("busy" as const))
      )

    /** One claimed slot: run it (or move it past a pause), then write the next slot, still under the lease. */
    const runSlot = (seen: StoredSlot, lease: HeldLease) =>
      Effect.gen(function*() {
        const found = yield* store.findDistrict(seen.district)
        if (Option.isNone(found)) return
        const district = found.value
        const pause = yield* pauses.activeAt(district, yield* now)
        if (Option.isSome(pause)) {
          const slot = catchUpSlot(district.provider, pause.value.endsAt)
          yield* slots.set(district.id, slot, 0)
          return yield* Effect.logInfo("paused: the catch-up sync runs when the pause ends").pipe(
            Effect.annotateLogs({ pause: pause.value.name, until: slot.at.toISOString() })
          )
        }

        const exit = yield* sync.run(district.id, { request: seen.request, trigger: seen.trigger, lease }).pipe(Effect.exit)
        const finished = yield* now
        if (exit._tag === "Success") {
          const summary = exit.value
          if (summary.status === "deferred") {
            // The source was not ready (a CSV set still being written): not a failure, so no
            // retry is counted; the same slot comes again once the set has had time to settle.
            const retry: Slot = { at: new Date(finished.getTime() + (summary.retryAfterMs ?? 60_000)), request: seen.request, trigger: seen.trigger }
            const next = yield* place(district, retry, seen.attempt)
            return yield* Effect.logInfo("sync deferred: the source is not ready").pipe(
              Effect.annotateLogs({ runId: summary.runId, note: summary.notes[0] ?? "", next: next.at.toISOString() })
            )
          }
          yield* (summary.status === "held"
            ? Effect.logWarning("sync held: its destructive part waits for an operator (rosterd holds show)")
            : Effect.logInfo("sync succeeded")).pipe(
            Effect.annotateLogs({ runId: summary.runId, mode: summary.mode, durationMs: summary.durationMs })
          )
          const next = yield* place(district, yield* regularSlot(district, finished), 0)
          return yield* Effect.logDebug("next slot").pipe(Effect.annotateLogs({ at: next.at.toISOString(), trigger: next.trigger }))
        }
        const failure = Cause.failureOption(exit.cause)
        const reason = Option.match(failure, { onNone: () => "defect", onSome: (error) => error._tag })
        if (Option.isSome(failure) && retryable(failure.value) && seen.attempt < config.retries) {
          const delay = yield* backoff(seen.attempt)
          const retry: Slot = { at: new Date(finished.getTime() + delay), request: seen.request, trigger: seen.trigger }
          yield* place(district, retry, seen.attempt + 1)
          return yield* Effect.logWarning("sync failed, will retry").pipe(
            Effect.annotateLogs({ error: reason, attempt: seen.attempt + 1, inMs: delay })
          )
        }
        // The cause itself is not logged: a database error's text can quote a provider's value.
        if (Option.isNone(failure)) yield* Effect.logError("sync defect").pipe(Effect.annotateLogs({ cause: describeFailure(exit.cause).message }))
        const next = yield* place(district, yield* regularSlot(district, finished), 0)
        // Announced once the retries are spent (src/Notify: once per run, whichever replica).
        if (Option.isSome(notify)) yield* notify.value.runFailed(district.id, seen.attempt + 1)
        // A Clever token refused to the end: the district withdrew the app (src/Districts/Discovery.ts pauses it).
        const refused = Option.exists(failure, (e) => e._tag === "ProviderError" && "reason" in e && e.reason === "Unauthorized")
        if (refused && district.provider === "clever" && Option.isSome(discovery)) yield* discovery.value.markDisconnected(district.id)
        yield* Effect.logWarning("sync failed; no more retries: waiting for the next slot").pipe(
          Effect.annotateLogs({ error: reason, next: next.at.toISOString() })
        )
      }).pipe(
        // Every log line of the slot carries its elapsed time (`spans.slot`, milliseconds).
        Effect.withLogSpan("slot"),
        Effect.catchAllCause((cause) => Effect.logError("scheduling failed", cause)),
        Effect.annotateLogs({ district: seen.district })
      )

    /**
     * A catch-up waits at the end of a pause. When that pause no longer reaches its slot (an
     * ad-hoc pause resumed early or cancelled, a calendar window changed), it runs now if the
     * district is not paused, or moves to the end of the pause it is in.
     */
    const releaseEndedPauses = (at: Date) =>
      Effect.gen(function*() {
        const waiting = yield* slots.waitingForCatchUp(at)
        if (waiting.length === 0) return // outside pauses: one query per poll
        const districts = new Map((yield* store.listDistricts()).map((d) => [d.id as string, d]))
        const known = waiting.flatMap((slot) => {
          const district = districts.get(slot.district)
          return district === undefined || slot.at === null ? [] : [{ slot, district, end: slot.at.getTime() }]
        })
        // Does the pause a catch-up waits for still end at its slot? Asked once per end instant
        // (a holiday window ends at the same instant for every district in a zone).
        const moved: typeof known = []
        for (const end of new Set(known.map((k) => k.end))) {
          const group = known.filter((k) => k.end === end)
          const before = yield* pauses.activeAtEach(group.map((k) => k.district), new Date(end - 1))
          for (const k of group) {
            const waitedFor = Option.flatten(Option.fromNullable(before.get(k.district.id)))
            if (Option.isNone(waitedFor) || waitedFor.value.endsAt.getTime() !== end) moved.push(k)
          }
        }
        if (moved.length === 0) return
        const pausedNow = yield* pauses.activeAtEach(moved.map((k) => k.district), at)
        for (const { district, slot } of moved) {
          const next = Option.match(Option.flatten(Option.fromNullable(pausedNow.get(district.id))), {
            onNone: () => catchUpSlot(district.provider, at),
            onSome: (p) => catchUpSlot(district.provider, p.endsAt)
          })
          yield* slots.set(slot.district, next, 0)
          yield* Effect.logInfo("the pause changed: catch-up moved").pipe(
            Effect.annotateLogs({ district: slot.district, at: next.at.toISOString() })
          )
        }
      })

    /** One look at the schedule; returns how long to sleep before the next. */
    const poll = Effect.gen(function*() {
      if (yield* Ref.get(stopping)) return config.poll
      const at = yield* now
      yield* releaseEndedPauses(at)
      for (const slot of yield* slots.due(at)) {
        if ((yield* FiberMap.size(running)) >= config.concurrency) break
        if (yield* FiberMap.has(running, slot.district)) continue
        const scope = yield* Scope.make()
        const claimed = yield* claim(slot, scope).pipe(Effect.onError(() => Scope.close(scope, Exit.void)))
        if (typeof claimed === "string") {
          yield* Scope.close(scope, Exit.void)
          if (claimed === "cluster full") break // no run slot for any district until one ends
          continue // another replica has it: the next due district
        }
        yield* FiberMap.run(running, slot.district, runSlot(slot, claimed).pipe(Effect.ensuring(Scope.close(scope, Exit.void))))
      }
      // Wake for the next slot if it comes before the next poll.
      const next = yield* slots.nextAt(at)
      return next === null ? config.poll : Duration.min(config.poll, Duration.millis(next.getTime() - at.getTime()))
    }).pipe(
      Effect.catchAllCause((cause) => Effect.as(Effect.logError("could not read the schedule", cause), config.poll))
    )

    const sendNotices = notices.sendDue().pipe(
      Effect.catchAllCause((cause) => Effect.logError("could not queue pause notices", cause))
    )

    yield* Effect.logInfo("scheduler started").pipe(
      Effect.annotateLogs({ poll: Duration.format(config.poll), concurrency: config.concurrency })
    )
    yield* poll.pipe(Effect.flatMap(Effect.sleep), Effect.forever, Effect.forkScoped)
    yield* sendNotices.pipe(Effect.repeat(Schedule.spaced(config.noticeCheck)), Effect.forkScoped)
    yield* Effect.forkScoped(outbox.run)
    // Notifications (src/Notify): held runs, decisions, reviews found in the store, webhooks
    // delivered; and each district's freshness, whose changes are announced (stale, recovered).
    if (Option.isSome(notify) && Option.isSome(freshness)) {
      const { value: notifier } = notify
      const { value: fresh } = freshness
      yield* Effect.forkScoped(notifier.run)
      const lookAtFreshness = Effect.gen(function*() {
        for (const s of yield* fresh.status()) yield* notifier.freshness(s.district, s.stale)
      }).pipe(Effect.catchAllCause((cause) => Effect.logError("could not look at the districts' freshness", cause)))
      yield* lookAtFreshness.pipe(Effect.repeat(Schedule.spaced(Duration.seconds(notifier.settings.pollSeconds))), Effect.forkScoped)
    }
    // New and withdrawn Clever districts (src/Districts/Discovery.ts), when the app's client is configured.
    if (Option.isSome(discovery) && Option.isSome(discovery.value.config.clientId)) {
      const { value: finder } = discovery
      const look = finder.check().pipe(
        Effect.tap((counts) => Effect.logInfo("looked for new Clever districts").pipe(Effect.annotateLogs(counts))),
        Effect.catchAllCause((cause) => Effect.logWarning("could not look for new Clever districts", cause))
      )
      yield* look.pipe(Effect.repeat(Schedule.spaced(finder.config.discoverEvery)), Effect.forkScoped)
    }
    // Retention (src/Mail/Retention.ts): delivered mail, old spool files, decided holds' values.
    yield* Effect.forkScoped(retention.run)

    // Added last, so it runs first when the daemon stops: before the loops and the runs are interrupted.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Ref.set(stopping, true)
        const inFlight = yield* FiberMap.size(running)
        yield* Effect.logInfo("scheduler stopping: no new runs start").pipe(Effect.annotateLogs({ running: inFlight }))
        if (inFlight === 0) return
        yield* Effect.logInfo("stopping: waiting for the running syncs").pipe(
          Effect.annotateLogs({ running: inFlight, graceSeconds: Duration.toSeconds(config.shutdownGrace) })
        )
        const done = yield* Effect.interruptible(FiberMap.awaitEmpty(running)).pipe(
          Effect.timeoutOption(config.shutdownGrace),
          Effect.catchAllCause(() => Effect.succeedNone)
        )
        if (Option.isNone(done)) {
          yield* Effect.logWarning("grace period over: interrupting the running syncs (rolled back, recorded as interrupted)").pipe(
            Effect.annotateLogs({ running: yield* FiberMap.size(running) })
          )
          yield* FiberMap.clear(running)
        }
      })
    )
  })
)

/**
 * The scheduler with the services it runs: the outbox over the configured mailer (SMTP or
 * the spool), retention, the schedule's slots, the district leases, pauses and their
 * notices, and the sync with its accounts step. Left to the caller: the database, the roster providers
 * (the `RosterProvider` port), the config file and settings.
 */
export const DaemonLive = DaemonWithoutDependencies.pipe(
  Layer.provide(Layer.mergeAll(
    Outbox.Default.pipe(Layer.provide(MailerLive)),
    Notify.Default,
    Discovery.Default,
    Freshness.Default,
    Retention.Default,
    Slots.Default,
    DistrictLease.Default,
    PauseNotices.Default,
    Pauses.Default,
    SyncLive,
    RosterStore.Default
  ))
)
