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
  const nextRunAt = new Map<string, Date>()
  const FakeSync = Layer.effect(
    Sync,
    Effect.sync(() =>
      Sync.make({
        run: (district) =>
          Effect.gen(function*() {
            const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
            calls.push(now)
            if (calls.length <= failures) {
              return yield* new ProviderError({ reason: "Unreachable", message: "the source is down" })
            }
            return { runId: calls.length, district: district as DistrictId, status: "succeeded" as const, mode: "full" as const, counts: emptyRunCounts, findings: 0, durationMs: 1, source: "fake", notes: [], held: null }
          })
      }) as unknown as Sync
    )
  )
  const daemon = DaemonLive.pipe(
    Layer.provide(Layer.mergeAll(FakeSync, fakeStore("d", nextRunAt), idleOutbox, ConfigFile.fromDocument({}))),
    Layer.provide(Layer.setConfigProvider(settings))
  )
  return { calls, daemon, nextRunAt }
}

describe("daemon loop", () => {
  it.scoped("runs at start, retries a failing run with capped backoff, then waits for the next interval", () =>
    Effect.gen(function*() {
      const { calls, daemon, nextRunAt } = withDaemon(10)
      const fiber = yield* Layer.launch(daemon).pipe(Effect.forkScoped)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(calls, [0])
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
})
