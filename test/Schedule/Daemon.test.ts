import { defaultRules } from "../../src/Domain/DistrictRules.ts"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Layer, TestClock } from "effect"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import { District, type DistrictId } from "../../src/Domain/District.ts"
import { ProviderError } from "../../src/Domain/Errors.ts"
import { Outbox } from "../../src/Mail/Outbox.ts"
import { emptyRunCounts } from "../../src/Reconcile/Counts.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { DaemonLive } from "../../src/Schedule/Daemon.ts"
import { DistrictCalendars } from "../../src/Schedule/DistrictCalendars.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"

/**
 * The daemon loop, driven by the TestClock: first run at start, retries with capped
 * exponential backoff, then the next interval. The sync itself is a stand-in that fails
 * a chosen number of times.
 */
const settings = ConfigProvider.fromMap(new Map([
  ["rosterd.sync.interval", "1 hour"],
  ["rosterd.sync.retryBase", "10 seconds"],
  ["rosterd.sync.retryMax", "30 seconds"],
  ["rosterd.sync.retries", "3"],
  ["rosterd.sync.refresh", "10 minutes"]
]))

/** An in-memory store: the loop's only I/O, kept off the database so the TestClock stays in control. */
const fakeStore = (district: string, nextRunAt: Map<string, Date>) =>
  Layer.succeed(
    RosterStore,
    RosterStore.make({
      listDistricts: () => Effect.succeed([new District({ id: district as DistrictId, name: district, provider: "oneroster-csv", timezone: "UTC", settings: {}, rules: defaultRules, origin: "cli" })]),
      declareDistrict: () => Effect.void,
      setNextRunAt: (id: string, at: Date | null) => Effect.sync(() => void (at === null ? nextRunAt.delete(id) : nextRunAt.set(id, at)))
    } as unknown as RosterStore)
  )

/** The outbox loop is not under test here: a stand-in that idles. */
const idleOutbox = Layer.succeed(
  Outbox,
  Outbox.make({
    deliverDue: () => Effect.succeed({ sent: 0, failed: 0, retried: 0 }),
    run: Effect.never,
    list: () => Effect.dieMessage("not used by the daemon"),
    retry: () => Effect.dieMessage("not used by the daemon")
  })
)

const withDaemon = (failures: number) => {
  const calls: Array<number> = []
  const requests: Array<string> = []
  const nextRunAt = new Map<string, Date>()
  const FakeSync = Layer.effect(
    Sync,
    Effect.sync(() =>
      Sync.make({
        run: (district, options) =>
          Effect.gen(function*() {
            const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
            calls.push(now)
            requests.push(`${options.request}/${options.trigger}`)
            if (calls.length <= failures) {
              return yield* new ProviderError({ reason: "Unreachable", message: "the source is down" })
            }
            return { runId: calls.length, district: district as DistrictId, status: "succeeded" as const, mode: "full" as const, counts: emptyRunCounts, findings: 0, durationMs: 1, source: "fake", notes: [], held: null }
          })
      }) as unknown as Sync
    )
  )
  const daemon = DaemonLive.pipe(
    Layer.provide(Layer.mergeAll(FakeSync, fakeStore("d", nextRunAt), idleOutbox, DistrictCalendars.Default, ConfigFile.fromDocument({}))),
    Layer.provide(ConfigFile.fromDocument({})),
    Layer.provide(Layer.setConfigProvider(settings))
  )
  return { calls, daemon, nextRunAt, requests }
}

describe("daemon loop", () => {
  it.scoped("runs at start, retries a failing run with capped backoff, then waits for the next interval", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-01T08:00:00Z")) // no holiday window near
      const { calls, daemon, nextRunAt } = withDaemon(10)
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(calls, [Date.parse("2026-10-01T08:00:00Z")])
      // Retries after ~10 s, ~20 s, ~30 s (capped), each jittered (Schedule.jittered: about ±20 %).
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(calls.length, 4)
      const gaps = calls.slice(1).map((t, i) => t - calls[i]!)
      for (const [gap, nominal] of gaps.map((g, i) => [g, [10_000, 20_000, 30_000][i]!] as const)) {
        assert.isAtLeast(gap, nominal * 0.8)
        assert.isAtMost(gap, nominal * 1.2)
      }
      // Out of retries: the next attempt is the next interval, and /status shows when.
      assert.closeTo(nextRunAt.get("d")!.getTime(), calls[3]! + 3_600_000, 1)
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      yield* TestClock.adjust(calls[3]! + 3_590_000 - now)
      assert.strictEqual(calls.length, 4)
      yield* TestClock.adjust("2 minutes")
      assert.isAtLeast(calls.length, 5)
      assert.closeTo(calls[4]! - calls[3]!, 3_600_000, 1)
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("a run that succeeds after a retry waits a full interval before the next", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-01T08:00:00Z"))
      const { calls, daemon } = withDaemon(1)
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(calls.length, 2)
      yield* TestClock.adjust("58 minutes")
      assert.strictEqual(calls.length, 2)
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(calls.length, 3)
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("no run starts inside a holiday window; the first slot after it runs a catch-up full sync at once", () =>
    Effect.gen(function*() {
      // The day before Thanksgiving 2026 (district in UTC): the window is Nov 25 – Nov 29.
      yield* TestClock.setTime(Date.parse("2026-11-24T20:30:00Z"))
      const { calls, daemon, nextRunAt, requests } = withDaemon(0)
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(requests, ["auto/schedule"])
      // Hourly runs until midnight; none from Nov 25 00:00 to Nov 30 00:00.
      yield* TestClock.adjust("4 hours")
      const beforePause = calls.length
      assert.isTrue(calls.every((t) => t < Date.parse("2026-11-25T00:00:00Z")))
      assert.strictEqual(nextRunAt.get("d")!.toISOString(), "2026-11-30T00:00:00.000Z")
      yield* TestClock.setTime(Date.parse("2026-11-29T23:59:00Z"))
      assert.strictEqual(calls.length, beforePause)
      // At the end of the window: a catch-up full sync, then hourly again.
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(calls.length, beforePause + 1)
      assert.strictEqual(calls.at(-1), Date.parse("2026-11-30T00:00:00Z"))
      assert.strictEqual(requests.at(-1), "full/catch-up")
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(requests.at(-1), "auto/schedule")
      yield* Fiber.interrupt(fiber)
    }))
})
