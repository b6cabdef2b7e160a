import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, DateTime, type Duration, Effect, Fiber, Layer, Option, Schema, TestClock } from "effect"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import { District, type DistrictId, type ProviderKind } from "../../src/Domain/District.ts"
import { DistrictRules } from "../../src/Domain/DistrictRules.ts"
import { DistrictBusy, ProviderError } from "../../src/Domain/Errors.ts"
import { Outbox } from "../../src/Mail/Outbox.ts"
import { Retention } from "../../src/Mail/Retention.ts"
import { emptyRunCounts } from "../../src/Domain/RunCounts.ts"
import { DistrictLease } from "../../src/Reconcile/Lease.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { defaultCalendar } from "../../src/Domain/CalendarRules.ts"
import { pauseAt, windowEnd } from "../../src/Schedule/Calendar.ts"
import { DaemonWithoutDependencies } from "../../src/Schedule/Daemon.ts"
import { PauseNotices } from "../../src/Schedule/PauseNotices.ts"
import { Pauses } from "../../src/Schedule/Pauses.ts"
import type { StoredSlot } from "../../src/Schedule/Slots.ts"
import { Slots } from "../../src/Schedule/Slots.ts"
import type { Slot } from "../../src/Schedule/SyncSchedule.ts"
import { nightlySlot } from "../../src/Schedule/SyncSchedule.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"

/**
 * The scheduler, driven by the TestClock. Its I/O (the slots, the lease, the pauses, the
 * sync) are in-memory stand-ins here so the clock stays in control; the same code on a real
 * Postgres, with several replicas and signals, is in DaemonReplicas.test.ts.
 */

const settings = (poll: string) => ConfigProvider.fromMap(new Map([
  ["rosterd.sync.poll", poll],
  ["rosterd.sync.retryBase", "10 seconds"],
  ["rosterd.sync.retryMax", "30 seconds"],
  ["rosterd.sync.retries", "3"],
  ["rosterd.sync.shutdownGrace", "1 minute"],
  ["rosterd.sync.noticeCheck", "1 hour"]
]))

interface Run {
  readonly at: number
  readonly request: string
  readonly trigger: string
}

interface Options {
  readonly provider?: ProviderKind
  readonly zone?: string
  readonly schedule?: Record<string, unknown>
  /** The first N runs fail. */
  readonly failures?: number
  /** The first N runs are deferred (the source is not ready; try again in a minute). */
  readonly deferrals?: number
  /** How long a run takes. */
  readonly runTime?: Duration.DurationInput
  /** Districts whose lease another replica holds. */
  readonly busy?: Set<string>
  /** Default 1 hour: the scheduler also wakes at each slot, so runs start on time anyway. */
  readonly poll?: string
  /** Ad-hoc pauses (mutable: a test resumes one by removing it). */
  readonly adHoc?: Array<{ readonly startsAt: Date; readonly endsAt: Date }>
}

const makeDaemon = (options: Options = {}) => {
  const district = new District({
    id: "d" as DistrictId,
    name: "d",
    provider: options.provider ?? "clever",
    timezone: options.zone ?? "UTC",
    settings: {},
    rules: Schema.decodeSync(DistrictRules)({ schedule: { window: "1 minute", ...options.schedule } }),
    origin: "cli"
  })
  const runs: Array<Run> = []
  const interrupted: Array<number> = []
  const stored: { slot: StoredSlot } = { slot: { district: "d", at: null, request: "auto", trigger: "schedule", attempt: 0 } }
  let lastFullAt: Date | null = null

  const store = Layer.succeed(RosterStore, RosterStore.make({
    declareDistrict: () => Effect.void,
    findDistrict: () => Effect.succeed(Option.some(district)),
    listDistricts: () => Effect.succeed([district])
  } as unknown as RosterStore))
  const slots = Layer.succeed(Slots, Slots.make({
    due: (now: Date) => Effect.sync(() => (stored.slot.at === null || stored.slot.at <= now ? [stored.slot] : [])),
    waitingForCatchUp: (now: Date) =>
      Effect.sync(() => (stored.slot.trigger === "catch-up" && stored.slot.at !== null && stored.slot.at > now ? [stored.slot] : [])),
    nextAt: (now: Date) => Effect.sync(() => (stored.slot.at !== null && stored.slot.at > now ? stored.slot.at : null)),
    get: () => Effect.sync(() => stored.slot),
    set: (_: string, slot: Slot, attempt: number) => Effect.sync(() => void (stored.slot = { district: "d", ...slot, attempt })),
    lastFullAt: () => Effect.sync(() => lastFullAt)
  } as unknown as Slots))
  const leases = Layer.succeed(DistrictLease, DistrictLease.make({
    hold: (id: string) => options.busy?.has(id) ? Effect.fail(new DistrictBusy({ district: id })) : Effect.succeed({ district: id, connection: undefined as never })
  } as unknown as DistrictLease))
  // The default calendar (Thanksgiving, winter) is the only source of pauses here.
  const activeAt = (d: District, instant: Date) =>
      Effect.succeed(Option.orElse(
        Option.fromNullable(options.adHoc?.find((p) => p.startsAt <= instant && instant < p.endsAt)).pipe(
          Option.map((p) => ({ key: "pause:1", name: "pause-1", endsAt: p.endsAt }))
        ),
        () => Option.map(pauseAt(defaultCalendar, instant, d.timezone), (w) => ({
        key: `calendar:${w.name}:${w.from}`,
        name: w.name,
        endsAt: new Date(DateTime.toEpochMillis(windowEnd(w, d.timezone)))
      }))))
  const pauses = Layer.succeed(Pauses, Pauses.make({
    activeAt,
    activeAtEach: (ds: ReadonlyArray<District>, instant: Date) =>
      Effect.map(Effect.forEach(ds, (d) => Effect.map(activeAt(d, instant), (p) => [d.id as string, p] as const)), (pairs) => new Map(pairs))
  } as unknown as Pauses))
  const notices = Layer.succeed(PauseNotices, PauseNotices.make({ sendDue: () => Effect.succeed(0) } as unknown as PauseNotices))
  const outbox = Layer.succeed(Outbox, Outbox.make({ run: Effect.never } as unknown as Outbox))
  const retention = Layer.succeed(Retention, Retention.make({ run: Effect.never } as unknown as Retention))
  const sync = Layer.succeed(Sync, Sync.make({
    run: (_: string, run: { request: string; trigger: string }) =>
      Effect.gen(function*() {
        const at = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        runs.push({ at, request: run.request, trigger: run.trigger })
        if (options.runTime !== undefined) yield* Effect.sleep(options.runTime).pipe(Effect.onInterrupt(() => Effect.sync(() => interrupted.push(at))))
        if (runs.length <= (options.failures ?? 0)) return yield* new ProviderError({ reason: "Unreachable", message: "the source is down" })
        if (runs.length <= (options.deferrals ?? 0)) {
          return { runId: runs.length, district: "d" as DistrictId, status: "deferred" as const, mode: "full" as const, counts: emptyRunCounts, findings: 0, durationMs: 1, source: "", notes: ["the folder is still being written"], held: null, retryAfterMs: 60_000 }
        }
        if (run.request === "full") lastFullAt = new Date(at)
        return { runId: runs.length, district: "d" as DistrictId, status: "succeeded" as const, mode: "full" as const, counts: emptyRunCounts, findings: 0, durationMs: 1, source: "fake", notes: [], held: null }
      })
  } as unknown as Sync))

  const daemon = DaemonWithoutDependencies.pipe(
    Layer.provide(Layer.mergeAll(store, slots, leases, pauses, notices, outbox, retention, sync, ConfigFile.fromDocument({}))),
    Layer.provide(Layer.setConfigProvider(settings(options.poll ?? "1 hour")))
  )
  return { daemon, district, interrupted, runs, stored }
}

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

describe("the scheduler", () => {
  it.scoped("a new district runs at once, then at its nightly slot in its zone", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-05T15:00:00Z"))
      const { daemon, district, runs, stored } = makeDaemon({ zone: "America/Chicago" })
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(runs, [{ at: Date.parse("2026-10-05T15:00:00Z"), request: "auto", trigger: "schedule" }])
      // 01:00 CDT on Oct 6 = 06:00Z; Clever: a full sync.
      const nightly = nightlySlot(district.rules.schedule, "d", "America/Chicago", new Date(Date.parse("2026-10-05T15:00:00Z")))
      assert.strictEqual(nightly.toISOString(), "2026-10-06T06:00:00.000Z")
      assert.deepStrictEqual(stored.slot, { district: "d", at: nightly, request: "full", trigger: "schedule", attempt: 0 })
      yield* TestClock.adjust("14 hours")
      assert.strictEqual(runs.length, 1)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(runs.length, 2)
      assert.strictEqual(runs[1]!.at, nightly.getTime()) // on time: the scheduler wakes for it
      assert.strictEqual(runs[1]!.request, "full")
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("a failing run retries with capped, jittered backoff, a bounded number of times, then waits for the next slot", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-05T15:00:00Z"))
      const { daemon, runs, stored } = makeDaemon({ failures: 4 })
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("3 minutes")
      assert.strictEqual(runs.length, 4) // the run and 3 retries
      const gaps = runs.slice(1).map((r, i) => r.at - runs[i]!.at)
      for (const [gap, nominal] of gaps.map((g, i) => [g, [10_000, 20_000, 30_000][i]!] as const)) {
        assert.isAtLeast(gap, nominal * 0.8)
        assert.isAtMost(gap, nominal * 1.2)
      }
      assert.deepStrictEqual(runs.map((r) => r.trigger), ["schedule", "schedule", "schedule", "schedule"])
      // Out of retries: the next nightly slot, retries counted from zero again.
      assert.strictEqual(stored.slot.at?.toISOString(), "2026-10-06T01:00:00.000Z")
      assert.strictEqual(stored.slot.attempt, 0)
      yield* TestClock.adjust("9 hours")
      assert.strictEqual(runs.length, 4)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(runs.length, 5)
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("a deferred run (a CSV set still being written) comes again after its retry time, no retry counted, then the regular schedule", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-05T15:00:00Z"))
      const { daemon, runs, stored } = makeDaemon({ provider: "oneroster-csv", deferrals: 2 })
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(runs.length, 1)
      // The same slot a minute later: no backoff, no attempt counted, the same trigger and request.
      assert.deepStrictEqual(stored.slot, { district: "d", at: new Date(runs[0]!.at + 60_000), request: "auto", trigger: "schedule", attempt: 0 })
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(runs.length, 2)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(runs.length, 3)
      assert.deepStrictEqual(runs.slice(1).map((r, i) => r.at - runs[i]!.at), [60_000, 60_000])
      // Read at last: the next nightly slot.
      assert.deepStrictEqual(stored.slot, { district: "d", at: new Date("2026-10-06T01:00:00Z"), request: "auto", trigger: "schedule", attempt: 0 })
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("deltas between nightly full syncs", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-05T21:00:00Z"))
      const { daemon, runs } = makeDaemon({ schedule: { deltaEvery: "1 hour" } })
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      for (let i = 0; i < 6; i++) yield* TestClock.adjust("1 hour")
      const requests = runs.map((r) => `${new Date(r.at).toISOString().slice(11, 16)} ${r.request}`)
      assert.deepStrictEqual(requests.slice(0, 5), ["21:00 auto", "22:00 delta", "23:00 delta", "00:00 delta", "01:00 full"])
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("no run starts inside a pause; the slot moves to its end and runs a catch-up full sync at once", () =>
    Effect.gen(function*() {
      // The day before Thanksgiving 2026 (UTC district): the window is Nov 25 – Nov 29.
      yield* TestClock.setTime(Date.parse("2026-11-24T20:30:00Z"))
      const { daemon, runs, stored } = makeDaemon()
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(runs.length, 1)
      // The nightly slot (Nov 25 01:00) falls in the pause: placed at its end, as a catch-up.
      assert.deepStrictEqual(stored.slot, { district: "d", at: new Date("2026-11-30T00:00:00Z"), request: "full", trigger: "catch-up", attempt: 0 })
      yield* TestClock.setTime(Date.parse("2026-11-29T23:59:00Z"))
      assert.strictEqual(runs.length, 1)
      yield* TestClock.adjust("65 seconds")
      assert.strictEqual(runs.length, 2)
      assert.deepStrictEqual({ ...runs[1]!, at: new Date(runs[1]!.at).toISOString().slice(0, 16) }, { at: "2026-11-30T00:00", request: "full", trigger: "catch-up" })
      // Then the nightly schedule again.
      assert.strictEqual(stored.slot.at?.toISOString(), "2026-11-30T01:00:00.000Z")
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("a slot that comes due inside a pause (the pause was added later) waits for its end", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-11-25T10:00:00Z"))
      const { daemon, runs, stored } = makeDaemon()
      stored.slot = { district: "d", at: new Date("2026-11-25T01:00:00Z"), request: "full", trigger: "schedule", attempt: 0 }
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(runs.length, 0)
      assert.strictEqual(stored.slot.trigger, "catch-up")
      assert.strictEqual(stored.slot.at?.toISOString(), "2026-11-30T00:00:00.000Z")
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("a pause resumed early: the catch-up runs at the next poll, not at the pause's old end", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-05T10:00:00Z"))
      const adHoc = [{ startsAt: new Date("2026-10-05T00:00:00Z"), endsAt: new Date("2026-10-08T00:00:00Z") }]
      const { daemon, runs, stored } = makeDaemon({ adHoc, poll: "5 seconds" })
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(runs.length, 0)
      assert.deepStrictEqual(stored.slot, { district: "d", at: new Date("2026-10-08T00:00:00Z"), request: "full", trigger: "catch-up", attempt: 0 })
      adHoc.length = 0 // rosterd resume
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(runs.length, 1)
      assert.deepStrictEqual({ request: runs[0]!.request, trigger: runs[0]!.trigger }, { request: "full", trigger: "catch-up" })
      assert.isAtMost(runs[0]!.at - Date.parse("2026-10-05T10:01:00Z"), 5_000)
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("a district whose lease another replica holds is left to it", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-05T15:00:00Z"))
      const busy = new Set(["d"])
      const { daemon, runs, stored } = makeDaemon({ busy, poll: "5 seconds" })
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(runs.length, 0)
      assert.strictEqual(stored.slot.at, null) // untouched: still due for whoever holds it
      // The other replica dies: its lease goes with its connection; this one runs the slot at its next poll.
      busy.clear()
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(runs.length, 1)
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("stopping: a run within the grace period finishes and writes its next slot", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-05T15:00:00Z"))
      const { daemon, interrupted, runs, stored } = makeDaemon({ runTime: "30 seconds" })
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(runs.length, 1)
      const stop = yield* Fiber.interrupt(fiber).pipe(Effect.fork)
      yield* TestClock.adjust("40 seconds")
      yield* Fiber.join(stop)
      assert.deepStrictEqual(interrupted, [])
      assert.strictEqual(stored.slot.at?.toISOString(), "2026-10-06T01:00:00.000Z")
    }))

  it.scoped("stopping: a run past the grace period is interrupted and its slot stays due for the next start", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-05T15:00:00Z"))
      const { daemon, interrupted, runs, stored } = makeDaemon({ runTime: "10 minutes" })
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(runs.length, 1)
      const stop = yield* Fiber.interrupt(fiber).pipe(Effect.fork)
      yield* TestClock.adjust("59 seconds")
      assert.deepStrictEqual(interrupted, [])
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(stop)
      assert.deepStrictEqual(interrupted, [runs[0]!.at])
      assert.strictEqual(stored.slot.at, null)
      assert.isTrue((yield* now) < Date.parse("2026-10-05T15:02:00Z"))
    }))
})
