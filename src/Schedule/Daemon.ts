import { Clock, Config, DateTime, Duration, Effect, FiberMap, Layer, Option, Schedule } from "effect"
import { declaredDistricts } from "../Config/Districts.ts"
import { Outbox } from "../Mail/Outbox.ts"
import { Sync } from "../Reconcile/SyncRun.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { pauseAt, windowEnd } from "./Calendar.ts"
import { DistrictCalendars } from "./DistrictCalendars.ts"

/**
 * The daemon's loop: every district syncs once at start, then every `rosterd.sync.interval`.
 * A failed run is retried with capped exponential backoff and jitter, a bounded number of
 * times, then waits for the next slot (the failure is in the run history and in /status).
 * At most `rosterd.sync.concurrency` districts sync at once.
 *
 * The district list is re-read every `rosterd.sync.refresh`, so districts added or removed
 * with the CLI while the daemon runs are picked up.
 *
 * **Holiday pauses**: no run starts while the district's local date is inside one of its
 * pause windows (src/Schedule/Calendar.ts; `rosterd calendar <district>`). The loop sleeps
 * until the window ends (local midnight after its last day) and then runs a **catch-up
 * full sync** at once, so the changes made meanwhile are applied without waiting for the
 * next slot.
 *
 * Another process holding a district's lease (`DistrictBusy`) is not a failure: that
 * district is simply being synced elsewhere right now.
 *
 * The daemon also delivers the outbox (`Outbox.run`, forked for its lifetime): mail implied
 * by syncs goes out every `rosterd.mail.pollSeconds`. Every replica runs it; rows are
 * claimed with `FOR UPDATE SKIP LOCKED`, so no message is sent by two at once.
 */

export const SyncScheduleConfig = Config.all({
  interval: Config.duration("interval").pipe(Config.withDefault(Duration.hours(6))),
  concurrency: Config.integer("concurrency").pipe(Config.withDefault(2)),
  refresh: Config.duration("refresh").pipe(Config.withDefault(Duration.seconds(30))),
  retryBase: Config.duration("retryBase").pipe(Config.withDefault(Duration.seconds(30))),
  retryMax: Config.duration("retryMax").pipe(Config.withDefault(Duration.minutes(15))),
  retries: Config.integer("retries").pipe(Config.withDefault(5))
}).pipe(Config.nested("sync"), Config.nested("rosterd"))

const retryable = (error: { readonly _tag: string }) =>
  error._tag !== "DistrictNotFound" && error._tag !== "InvalidDistrict" && error._tag !== "DistrictBusy" &&
  error._tag !== "ModeNotAvailable"

export const DaemonLive = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* SyncScheduleConfig
    const store = yield* RosterStore
    const sync = yield* Sync
    const outbox = yield* Outbox
    const calendars = yield* DistrictCalendars
    const permits = yield* Effect.makeSemaphore(Math.max(1, config.concurrency))
    const loops = yield* FiberMap.make<string>()

    for (const district of yield* declaredDistricts) yield* store.declareDistrict(district)

    const setNext = (district: string, after: Duration.Duration) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => store.setNextRunAt(district, new Date(now + Duration.toMillis(after))))

    const retryPolicy = (district: string) =>
      Schedule.exponential(config.retryBase).pipe(
        Schedule.either(Schedule.spaced(config.retryMax)),
        Schedule.jittered,
        Schedule.intersect(Schedule.recurs(config.retries)),
        Schedule.delays,
        Schedule.tapOutput((delay) => setNext(district, delay))
      )

    const runOnce = (district: string, catchUp: boolean) =>
      permits.withPermits(1)(sync.run(district, { request: catchUp ? "full" : "auto", trigger: catchUp ? "catch-up" : "schedule" })).pipe(
        Effect.tapError((error) =>
          Effect.logWarning(error._tag === "DistrictBusy" ? "district busy elsewhere, skipped" : "sync failed, will retry").pipe(
            Effect.annotateLogs({ district, error: error._tag })
          )
        ),
        Effect.retry({ schedule: retryPolicy(district), while: retryable }),
        Effect.tap((summary) =>
          (summary.status === "held"
            ? Effect.logWarning("sync held: its destructive part waits for an operator (rosterd holds show)")
            : Effect.logInfo("sync succeeded")).pipe(
            Effect.annotateLogs({ district, runId: summary.runId, mode: summary.mode, durationMs: summary.durationMs })
          )
        ),
        Effect.catchAll(() => Effect.void),
        Effect.catchAllDefect((defect) => Effect.logError("sync defect", defect).pipe(Effect.annotateLogs({ district })))
      )

    /** The pause window the district is in now, with the instant it ends; none when not paused. */
    const pauseNow = (districtId: string) =>
      Effect.gen(function*() {
        const district = (yield* store.listDistricts()).find((d) => d.id === districtId)
        if (district === undefined) return Option.none()
        const calendar = yield* calendars.of(district).pipe(
          Effect.tapError((error) => Effect.logWarning("the district's calendar is invalid: not pausing").pipe(
            Effect.annotateLogs({ district: districtId, error: error.message })
          )),
          Effect.option
        )
        if (Option.isNone(calendar)) return Option.none()
        const now = yield* Clock.currentTimeMillis
        return Option.map(pauseAt(calendar.value, new Date(now), district.timezone), (window) => ({
          window,
          endsAt: DateTime.toEpochMillis(windowEnd(window, district.timezone)),
          now
        }))
      })

    /** One district's loop: run (unless paused), then wait for the next slot. */
    const districtLoop = (district: string) =>
      Effect.gen(function*() {
        let catchUp = false
        while (true) {
          const pause = yield* pauseNow(district)
          if (Option.isSome(pause)) {
            const { endsAt, now, window } = pause.value
            yield* store.setNextRunAt(district, new Date(endsAt))
            yield* Effect.logInfo("paused for a holiday window").pipe(
              Effect.annotateLogs({ district, window: window.name, until: new Date(endsAt).toISOString() })
            )
            yield* Effect.sleep(Duration.millis(Math.max(0, endsAt - now)))
            catchUp = true
            continue
          }
          yield* runOnce(district, catchUp)
          catchUp = false
          yield* setNext(district, config.interval)
          yield* Effect.sleep(config.interval)
        }
      })

    /** Start loops for new districts, stop loops of removed ones. */
    const reconcileLoops = Effect.gen(function*() {
      const wanted = new Set((yield* store.listDistricts()).map((d) => d.id as string))
      const running = Array.from(loops, ([district]) => district)
      for (const district of running) {
        if (!wanted.has(district)) yield* FiberMap.remove(loops, district)
      }
      for (const district of wanted) yield* FiberMap.run(loops, district, districtLoop(district), { onlyIfMissing: true })
    }).pipe(Effect.catchAllCause((cause) => Effect.logError("could not refresh the district list", cause)))

    yield* Effect.logInfo("scheduler started").pipe(
      Effect.annotateLogs({ interval: Duration.format(config.interval), concurrency: config.concurrency })
    )
    yield* reconcileLoops.pipe(Effect.repeat(Schedule.spaced(config.refresh)), Effect.forkScoped)
    yield* Effect.forkScoped(outbox.run)
  })
)
