import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Layer, Option, Schema, TestClock } from "effect"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import { Discovery } from "../../src/Districts/Discovery.ts"
import { District, type DistrictId } from "../../src/Domain/District.ts"
import { DistrictRules } from "../../src/Domain/DistrictRules.ts"
import { ProviderError } from "../../src/Domain/Errors.ts"
import { Outbox } from "../../src/Mail/Outbox.ts"
import { Retention } from "../../src/Mail/Retention.ts"
import { Notify } from "../../src/Notify/Notify.ts"
import { DistrictLease } from "../../src/Reconcile/Lease.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { DaemonWithoutDependencies } from "../../src/Schedule/Daemon.ts"
import { Freshness } from "../../src/Schedule/Freshness.ts"
import { PauseNotices } from "../../src/Schedule/PauseNotices.ts"
import { Pauses } from "../../src/Schedule/Pauses.ts"
import type { StoredSlot } from "../../src/Schedule/Slots.ts"
import { Slots } from "../../src/Schedule/Slots.ts"
import type { Slot } from "../../src/Schedule/SyncSchedule.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"

/**
 * The scheduler's part in notifications (src/Schedule/Daemon.ts), driven by the TestClock
 * with in-memory stand-ins: `run.failed` is announced once a district's retries are spent
 * (not at each failed attempt), and a Clever district whose token is refused (401) to the
 * end is handed to discovery as disconnected. What Notify and Discovery then write is
 * tested on a real database in Webhooks.test.ts and test/Districts/Discovery.test.ts.
 */

const settings = ConfigProvider.fromMap(new Map([
  ["rosterd.sync.poll", "1 hour"],
  ["rosterd.sync.retryBase", "10 seconds"],
  ["rosterd.sync.retryMax", "30 seconds"],
  ["rosterd.sync.retries", "3"],
  ["rosterd.sync.noticeCheck", "1 hour"]
]))

const makeDaemon = (reason: "Unreachable" | "Unauthorized") => {
  const district = new District({
    id: "d" as DistrictId,
    name: "d",
    provider: "clever",
    timezone: "UTC",
    settings: {},
    rules: Schema.decodeSync(DistrictRules)({ schedule: { window: "1 minute" } }),
    origin: "cli"
  })
  const calls = { runs: 0, failed: [] as Array<number>, disconnected: [] as Array<string> }
  const stored: { slot: StoredSlot } = { slot: { district: "d", at: null, request: "auto", trigger: "schedule", attempt: 0 } }
  const stub = <S>(tag: { make: (impl: never) => S }, impl: Record<string, unknown>) => tag.make(impl as never)
  const layers = Layer.mergeAll(
    Layer.succeed(RosterStore, stub(RosterStore, { declareDistrict: () => Effect.void, findDistrict: () => Effect.succeed(Option.some(district)), listDistricts: () => Effect.succeed([district]) })),
    Layer.succeed(Slots, stub(Slots, {
      due: (now: Date) => Effect.sync(() => (stored.slot.at === null || stored.slot.at <= now ? [stored.slot] : [])),
      waitingForCatchUp: () => Effect.succeed([]),
      nextAt: (now: Date) => Effect.sync(() => (stored.slot.at !== null && stored.slot.at > now ? stored.slot.at : null)),
      get: () => Effect.sync(() => stored.slot),
      set: (_: string, slot: Slot, attempt: number) => Effect.sync(() => void (stored.slot = { district: "d", ...slot, attempt })),
      lastFullAt: () => Effect.succeed(null)
    })),
    Layer.succeed(DistrictLease, stub(DistrictLease, { hold: (id: string) => Effect.succeed({ district: id, connection: undefined as never }) })),
    Layer.succeed(Pauses, stub(Pauses, { activeAt: () => Effect.succeed(Option.none()), activeAtEach: () => Effect.succeed(new Map()) })),
    Layer.succeed(PauseNotices, stub(PauseNotices, { sendDue: () => Effect.succeed(0) })),
    Layer.succeed(Outbox, stub(Outbox, { run: Effect.never })),
    Layer.succeed(Retention, stub(Retention, { run: Effect.never })),
    Layer.succeed(Sync, stub(Sync, {
      run: () => Effect.suspend(() => {
        calls.runs++
        return Effect.fail(new ProviderError({ reason, message: reason === "Unauthorized" ? "Clever refused the credentials (HTTP 401)" : "the source is down" }))
      })
    })),
    Layer.succeed(Notify, stub(Notify, {
      run: Effect.never,
      freshness: () => Effect.succeed(Option.none()),
      runFailed: (_: string, attempts: number) => Effect.sync(() => void calls.failed.push(attempts)).pipe(Effect.as(Option.some(1))),
      settings: { pollSeconds: 3600 }
    })),
    Layer.succeed(Freshness, stub(Freshness, { status: () => Effect.succeed([]) })),
    Layer.succeed(Discovery, stub(Discovery, {
      config: { clientId: Option.none() },
      markDisconnected: (id: string) => Effect.sync(() => void calls.disconnected.push(id)).pipe(Effect.as(Option.some(1)))
    })),
    ConfigFile.fromDocument({})
  )
  const daemon = DaemonWithoutDependencies.pipe(Layer.provide(layers), Layer.provide(Layer.setConfigProvider(settings)))
  return { daemon, calls }
}

describe("the scheduler's notifications", () => {
  it.scoped("run.failed once the retries are spent, not at each attempt; an unreachable source is not a disconnection", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-05T15:00:00Z"))
      const { daemon, calls } = makeDaemon("Unreachable")
      const fiber = yield* Layer.launch(daemon).pipe(Effect.fork)
      for (let i = 0; i < 12; i++) yield* TestClock.adjust("10 seconds")
      assert.strictEqual(calls.runs, 4) // the first run and 3 retries
      assert.deepStrictEqual(calls.failed, [4])
      assert.deepStrictEqual(calls.disconnected, [])
      yield* Fiber.interrupt(fiber)
    }))

  it.scoped("a Clever token refused to the end: run.failed and the district handed to discovery as disconnected", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-10-05T15:00:00Z"))
      const { daemon, calls } = makeDaemon("Unauthorized")
      const fiber = yield* Layer.launch(daemon).pipe(Effect.fork)
      for (let i = 0; i < 12; i++) yield* TestClock.adjust("10 seconds")
      assert.strictEqual(calls.runs, 4)
      assert.deepStrictEqual(calls.failed, [4])
      assert.deepStrictEqual(calls.disconnected, ["d"])
      yield* Fiber.interrupt(fiber)
    }))
})
