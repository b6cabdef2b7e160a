import { Cron, Duration, Option } from "effect"
import type { ProviderKind } from "../Domain/District.ts"
import type { ScheduleRules } from "../Domain/ScheduleRules.ts"
import { positiveDuration } from "../Domain/ScheduleRules.ts"
import type { SyncRequest } from "../Providers/RosterProvider.ts"

/**
 * When a district syncs: its slots (pure; the daemon supplies the clock).
 *
 * A district's `rules.schedule` (the schema: src/Domain/ScheduleRules.ts):
 *
 * - `nightly` — a cron expression (Effect's `Cron`: `minute hour day month weekday`, or with
 *   a leading seconds field) read in the **district's time zone**; default `"0 1 * * *"`,
 *   01:00 local time every night.
 * - `window` — how far after each nightly time the district's run may start (default
 *   `"4 hours"`). Each district starts at a fixed offset inside the window, derived from its
 *   id (a hash, in whole minutes), so districts do not all start at once and a person can
 *   still read the next run off `rosterd status`: the same time every night.
 * - `deltaEvery` — optional (e.g. `"1 hour"`): between nightly slots, a delta run this long
 *   after the previous run. For Clever (events) and OneRoster REST (`dateLastModified`);
 *   for a CSV drop, the slot reads the drop as it is (bulk or delta, as its manifest says).
 * - `fullEvery` — the full-sync cadence (default `"1 day"`: every nightly slot is a full
 *   sync). A nightly slot is full when the last successful full sync started at least this
 *   long before it (less two hours, so a daylight-saving night or a slow run does not push
 *   a full sync a whole cadence later); otherwise it is a delta run.
 *
 * A CSV district always asks for `auto`: the drop decides (a delta set cannot be read as
 * full). After a pause, the **catch-up** slot is a full sync at once (src/Schedule/Daemon.ts).
 */

/** Why a slot runs; recorded as the run's trigger. */
export type SlotTrigger = "schedule" | "delta" | "catch-up" | "retry" | "start"

export interface Slot {
  readonly at: Date
  readonly request: SyncRequest
  readonly trigger: SlotTrigger
}

/** Providers with a change feed (delta runs between full ones). */
export const hasDeltas = (provider: ProviderKind): boolean => provider === "clever" || provider === "oneroster-rest"

const duration = (text: string) => Option.getOrThrow(positiveDuration(text))

/** FNV-1a of the district id: the same offset every night, spread across districts. */
const hash = (text: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** The district's fixed offset inside its nightly window, in whole minutes. */
export const windowOffset = (rules: ScheduleRules, districtId: string): Duration.Duration => {
  const minutes = Math.floor(Duration.toMinutes(duration(rules.window)))
  return minutes <= 0 ? Duration.zero : Duration.minutes(hash(districtId) % minutes)
}

/** The first nightly slot strictly after `after`. */
export const nightlySlot = (rules: ScheduleRules, districtId: string, zone: string, after: Date): Date => {
  const offset = Duration.toMillis(windowOffset(rules, districtId))
  const cron = Cron.unsafeParse(rules.nightly, zone)
  return new Date(Cron.next(cron, new Date(after.getTime() - offset)).getTime() + offset)
}

/** Slack on the full cadence: a DST night is 23 hours long, a run may start late. */
const FULL_SLACK = Duration.hours(2)

export interface NextSlotInput {
  readonly rules: ScheduleRules
  readonly districtId: string
  readonly provider: ProviderKind
  readonly zone: string
  readonly now: Date
  /** Start of the last successful full sync, if any. */
  readonly lastFullAt: Date | null
}

/** The next regular slot after `now`: the nightly one, or a delta slot before it. */
export const nextSlot = (input: NextSlotInput): Slot => {
  const { districtId, lastFullAt, now, provider, rules, zone } = input
  const nightly = nightlySlot(rules, districtId, zone, now)
  const fullDue = lastFullAt === null ||
    nightly.getTime() - lastFullAt.getTime() >= Duration.toMillis(Duration.subtract(duration(rules.fullEvery), FULL_SLACK))
  const nightlyRequest: SyncRequest = !hasDeltas(provider) ? "auto" : fullDue ? "full" : "delta"
  if (rules.deltaEvery !== undefined) {
    const delta = new Date(now.getTime() + Duration.toMillis(duration(rules.deltaEvery)))
    if (delta.getTime() < nightly.getTime()) {
      return { at: delta, request: hasDeltas(provider) ? "delta" : "auto", trigger: "delta" }
    }
  }
  return { at: nightly, request: nightlyRequest, trigger: "schedule" }
}

/** The slot that follows a pause: a full sync at the instant the pause ends. */
export const catchUpSlot = (provider: ProviderKind, endsAt: Date): Slot => ({
  at: endsAt,
  request: hasDeltas(provider) ? "full" : "auto",
  trigger: "catch-up"
})
