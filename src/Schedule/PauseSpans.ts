import { Array as Arr, DateTime, Option, Order } from "effect"
import type { Calendar } from "../Domain/CalendarRules.ts"
import type { LocalDate } from "../Domain/LocalDates.ts"
import { startOfLocalDay, windowsBetween } from "./Calendar.ts"
import { toDayNumber, toLocalDate } from "../Domain/LocalDates.ts"

/**
 * Pauses as they apply to one district (pure: no clock, no database): calendar windows and
 * ad-hoc pauses as spans of instants in the district's zone, and chains of pauses. The
 * service reading them is src/Schedule/Pauses.ts.
 */

export type PauseSource = "calendar" | "ad-hoc"

/** A pause as it applies to one district, in local dates and as instants. */
export interface PauseSpan {
  /** Stable per pause: `calendar:<name>:<from>` or `pause:<id>` (idempotency keys are built from it). */
  readonly key: string
  /** The calendar window's name, or `pause-<id>`. */
  readonly name: string
  readonly from: LocalDate
  /** Last paused day as written (inclusive); `endsAt` says when it is really over. */
  readonly to: LocalDate
  readonly reason?: string
  readonly source: PauseSource
  /** Ad-hoc pauses: the row id. */
  readonly id?: number
  /** Ad-hoc pauses given with `--all`. */
  readonly allDistricts?: boolean
  /** Ad-hoc pauses resumed early: when. */
  readonly endedAt?: Date
  readonly startsAt: Date
  /** Local midnight after `to`, or `endedAt` when resumed early. */
  readonly endsAt: Date
}

/** The pause in effect at an instant. */
export interface ActivePause {
  readonly key: string
  readonly name: string
  readonly reason?: string
  readonly source: PauseSource
  readonly id?: number
  /** The end of the whole chain of pauses that overlap or follow one another. */
  readonly endsAt: Date
  /** The chain's last paused local date (the day before `endsAt`, or its day when resumed mid-day). */
  readonly lastDay: LocalDate
}

/** A row of the `pauses` table. */
export interface AdHocPause {
  readonly id: number
  /** `null`: every district. */
  readonly districtId: string | null
  readonly from: LocalDate
  readonly until: LocalDate
  readonly reason: string | null
  readonly createdBy: string
  readonly createdAt: Date
  readonly endedAt: Date | null
  readonly endedBy: string | null
}

/** Instants as `Date`s; local dates moved by whole days; the first instant of the day after `date` in `zone`. */
export const instant = (dateTime: DateTime.DateTime) => new Date(DateTime.toEpochMillis(dateTime))
export const addDays = (date: LocalDate, days: number) => toLocalDate(toDayNumber(date) + days)
export const dayAfter = (date: LocalDate, zone: string) => instant(startOfLocalDay(addDays(date, 1), zone))

/**
 * An ad-hoc pause as a span in a district's zone — also one ended before it began (a
 * cancelled pause: its `endsAt`, the cancellation, is not after its `startsAt`).
 */
export const adHocPauseSpan = (pause: AdHocPause, zone: string): PauseSpan => {
  const startsAt = instant(startOfLocalDay(pause.from, zone))
  const naturalEnd = dayAfter(pause.until, zone)
  const endedEarly = pause.endedAt !== null && pause.endedAt.getTime() < naturalEnd.getTime()
  const endsAt = endedEarly ? pause.endedAt! : naturalEnd
  return {
    key: `pause:${pause.id}`,
    name: `pause-${pause.id}`,
    from: pause.from,
    to: pause.until,
    ...(pause.reason === null ? {} : { reason: pause.reason }),
    source: "ad-hoc",
    id: pause.id,
    allDistricts: pause.districtId === null,
    ...(endedEarly ? { endedAt: endsAt } : {}),
    startsAt,
    endsAt
  }
}

/** Ended before it began. */
export const isCancelled = (span: PauseSpan) => span.endsAt.getTime() <= span.startsAt.getTime()

/** An ad-hoc pause in a district's zone; none when it was ended before it began. */
export const adHocSpan = (pause: AdHocPause, zone: string): Option.Option<PauseSpan> =>
  Option.filter(Option.some(adHocPauseSpan(pause, zone)), (span) => !isCancelled(span))

/** The calendar windows overlapping the local dates [from, to], as spans in `zone`. */
export const calendarSpans = (calendar: Calendar, zone: string, from: LocalDate, to: LocalDate): Array<PauseSpan> =>
  windowsBetween(calendar, from, to).map((w) => ({
    key: `calendar:${w.name}:${w.from}`,
    name: w.name,
    from: w.from,
    to: w.to,
    ...(w.reason === undefined ? {} : { reason: w.reason }),
    source: "calendar",
    startsAt: instant(startOfLocalDay(w.from, zone)),
    endsAt: dayAfter(w.to, zone)
  }))

export const SpanOrder: Order.Order<PauseSpan> = Order.combine(
  Order.mapInput(Order.number, (s: PauseSpan) => s.startsAt.getTime()),
  Order.combine(Order.mapInput(Order.number, (s: PauseSpan) => s.endsAt.getTime()), Order.mapInput(Order.string, (s: PauseSpan) => s.key))
)

/**
 * The pause in effect at `at` among `spans` (the one that began first, then the one ending
 * last), and the end of its chain: pauses that overlap it or begin the instant it ends.
 */
export const pauseChainAt = (spans: ReadonlyArray<PauseSpan>, at: number): Option.Option<{ readonly current: PauseSpan; readonly endsAt: number }> => {
  const containing = spans.filter((s) => s.startsAt.getTime() <= at && at < s.endsAt.getTime())
  const current = Arr.head(Arr.sort(containing, Order.combine(
    Order.mapInput(Order.number, (s: PauseSpan) => s.startsAt.getTime()),
    Order.reverse(Order.mapInput(Order.number, (s: PauseSpan) => s.endsAt.getTime()))
  )))
  return Option.map(current, (current) => {
    let end = Math.max(...containing.map((s) => s.endsAt.getTime()))
    for (let extended = true; extended;) {
      extended = false
      for (const s of spans) {
        if (s.startsAt.getTime() <= end && s.endsAt.getTime() > end) {
          end = s.endsAt.getTime()
          extended = true
        }
      }
    }
    return { current, endsAt: end }
  })
}
