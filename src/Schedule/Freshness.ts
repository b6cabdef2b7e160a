import { Clock, Duration, Effect, Option } from "effect"
import { RosterStore } from "../Store/RosterStore.ts"
import { type DistrictStatus, Runs, staleAfterConfig } from "../Store/Runs.ts"
import { localDateAt } from "./Calendar.ts"
import { toDayNumber, toLocalDate } from "../Domain/LocalDates.ts"
import { Pauses } from "./Pauses.ts"
import type { Slot } from "./SyncSchedule.ts"
import { catchUpSlot } from "./SyncSchedule.ts"

const catchUpView = (slot: Slot) => ({ at: slot.at.toISOString(), request: slot.request, trigger: slot.trigger })

/** How far back a pause's end is looked for (longer than any pause plus the stale limit). */
const LOOK_BACK_DAYS = 400

/**
 * The status contract with the schedule's view: which districts are paused, and which are
 * **stale** — the promise to districts is that a roster change reaches the platform within
 * 24 hours *except during announced pauses*. So a district is stale when it is not paused
 * and neither a successful sync nor the end of its last pause (nor, never synced, its
 * registration) lies within `rosterd.sync.staleAfter`. After a pause the catch-up sync runs
 * at once; a district whose catch-up keeps failing shows `failing`, and `stale` a day later.
 *
 * `/status`, `rosterd status` and the metrics all read it here.
 */
export class Freshness extends Effect.Service<Freshness>()("rosterd/Freshness", {
  effect: Effect.gen(function*() {
    const store = yield* RosterStore
    const runs = yield* Runs
    const pauses = yield* Pauses
    const staleAfter = yield* staleAfterConfig

    const status = Effect.fn("Freshness.status")(function*(districtId?: string) {
      const statuses = yield* runs.status(districtId)
      const now = new Date(yield* Clock.currentTimeMillis)
      // One read of the districts and of their ad-hoc pauses for the whole list (a scrape of /metrics runs this).
      const districts = new Map((yield* store.listDistricts()).map((d) => [d.id as string, d]))
      const paused = yield* pauses.activeAtEach(statuses.flatMap((s) => Option.toArray(Option.fromNullable(districts.get(s.district)))), now)
      return yield* Effect.forEach(statuses, (s) =>
        Effect.gen(function*() {
          const district = districts.get(s.district)
          const pause = Option.flatten(Option.fromNullable(paused.get(s.district)))
          if (district === undefined) return s
          if (Option.isSome(pause)) {
            // No slot runs before the pause ends: show the catch-up the daemon will run then
            // (it moves a slot that comes due inside the pause there).
            const endsAt = pause.value.endsAt
            const nextRun = s.nextRun !== null && new Date(s.nextRun.at).getTime() >= endsAt.getTime()
              ? s.nextRun
              : { ...catchUpView(catchUpSlot(district.provider, endsAt)), retries: 0 }
            return {
              ...s,
              stale: false,
              nextRunAt: nextRun.at,
              nextRun,
              paused: { name: pause.value.name, reason: pause.value.reason ?? null, until: endsAt.toISOString() }
            } satisfies DistrictStatus
          }
          if (!s.stale) return s
          // Stale by the store's count: unless a pause ended within the limit.
          const today = localDateAt(now, district.timezone)
          const windows = yield* pauses.windowsFor(district, toLocalDate(toDayNumber(today) - LOOK_BACK_DAYS), today)
          const lastEnd = windows.map((w) => w.endsAt.getTime()).filter((end) => end <= now.getTime()).reduce((a, b) => Math.max(a, b), 0)
          return { ...s, stale: now.getTime() - lastEnd > Duration.toMillis(staleAfter) } satisfies DistrictStatus
        }))
    })

    return { status } as const
  }),
  dependencies: [RosterStore.Default, Runs.Default, Pauses.Default]
}) {}
