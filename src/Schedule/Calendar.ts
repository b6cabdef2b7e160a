import { Array as Arr, DateTime, Option, Order } from "effect"
import type { Calendar, WindowSpec } from "../Domain/CalendarRules.ts"
import { resolveRuleDate } from "../Domain/CalendarRules.ts"
import type { LocalDate } from "../Domain/LocalDates.ts"
import { dayNumber, fromDayNumber, toDayNumber, toLocalDate } from "../Domain/LocalDates.ts"

/**
 * Holiday calendars: the pause windows during which no sync starts for a district.
 *
 * A window is a range of **whole local days** in the district's IANA time zone, `from` and
 * `to` both inclusive: it begins at the first instant of `from` (local midnight, or the first
 * instant after it when a DST change skips midnight) and ends at the first instant of the day
 * after `to`. Windows are computed as local dates first and only turned into instants at the
 * edges, so daylight-saving changes never shift a window by an hour.
 *
 * Windows are written in a small rule language (config/calendars.yaml holds the defaults and
 * documents it). Each endpoint is either
 *
 * - a fixed local date, `"2027-03-15"` (a *fixed window*: both endpoints must be dates), or
 * - a yearly rule (a *rule window*: both endpoints must be rules), evaluated for each year:
 *   - `{ month, day }`                 that day of the month (February 29 is not allowed),
 *   - `{ month, nth, weekday }`        the nth weekday of the month (nth 1…4, or -1…-4 counted
 *                                      from the end: -1 = last),
 *   - `{ month, firstWeekday }`        the first such weekday of the month (= nth 1),
 *   - `{ month, lastWeekday }`         the last such weekday of the month (= nth -1),
 *   each with optional `offsetDays` (-31…31, added after the date is found) and `yearOffset`
 *   (-1…1, which year the month is taken from, relative to the window's year).
 *
 * A rule window is checked when decoded against every year of the 400-year Gregorian cycle
 * (after which weekdays repeat): `from` must never fall after `to`, and a window may last at
 * most 366 days. So a rule that decodes is valid for every year.
 *
 * The defaults (`defaultCalendar`, identical to config/calendars.yaml):
 *
 * - **thanksgiving**: from the Wednesday before the fourth Thursday of November (US
 *   Thanksgiving) through the following Sunday; five days, Wednesday–Sunday.
 * - **winter**: from December 18 (the start of the last two weeks of December) through the
 *   first Sunday of January of the next year; when January 1 is a Sunday, that is January 1.
 *
 * A district changes the defaults with `CalendarOverrides` (`disable`, `replace`, `add`,
 * applied by `resolveCalendar`).
 *
 * Everything here is pure: no clock, no file system. The caller supplies the instant and
 * the zone (from `DateTime.now` / `Clock`, so `TestClock` drives it in tests).
 */


// ---------------------------------------------------------------------------------------
// Windows as local dates

/** A window evaluated for one year: local dates, both inclusive. */
export interface PauseWindow {
  readonly name: string
  readonly from: LocalDate
  readonly to: LocalDate
  readonly reason?: string
}

const WindowOrder: Order.Order<PauseWindow> = Order.combine(
  Order.mapInput(Order.string, (w: PauseWindow) => w.from),
  Order.combine(
    Order.mapInput(Order.string, (w: PauseWindow) => w.to),
    Order.mapInput(Order.string, (w: PauseWindow) => w.name)
  )
)

const makeWindow = (spec: WindowSpec, from: number, to: number): PauseWindow => ({
  name: spec.name,
  from: toLocalDate(from),
  to: toLocalDate(to),
  ...(spec.reason !== undefined ? { reason: spec.reason } : {})
})

/** Every window overlapping the day numbers [first, last], sorted by from, to, name. */
const overlapping = (calendar: Calendar, first: number, last: number): Array<PauseWindow> => {
  const out: Array<PauseWindow> = []
  if (first > last) return out
  // A rule window for year Y starts in Y-2…Y+2 (yearOffset ±1, offsetDays ±31) and lasts at
  // most 366 days, so years first-3 … last+3 cover every window touching the range.
  const firstYear = fromDayNumber(first).year - 3
  const lastYear = fromDayNumber(last).year + 3
  for (const spec of calendar.windows) {
    if (typeof spec.from === "string" || typeof spec.to === "string") {
      const from = toDayNumber(spec.from as LocalDate)
      const to = toDayNumber(spec.to as LocalDate)
      if (from <= last && to >= first) out.push(makeWindow(spec, from, to))
      continue
    }
    for (let year = firstYear; year <= lastYear; year++) {
      const from = resolveRuleDate(spec.from, year)
      const to = resolveRuleDate(spec.to, year)
      if (from <= last && to >= first) out.push(makeWindow(spec, from, to))
    }
  }
  return Arr.sort(out, WindowOrder)
}

/**
 * The windows that **start** in `year` (local dates), sorted by start. Winter 2026–27
 * (2026-12-18 – 2027-01-03) belongs to 2026; the one ending in early January 2026 belongs
 * to 2025 (use `windowsBetween` for every window touching a range).
 */
export const windowsForYear = (calendar: Calendar, year: number): Array<PauseWindow> =>
  overlapping(calendar, dayNumber(year, 1, 1), dayNumber(year, 12, 31)).filter(
    (w) => toDayNumber(w.from) >= dayNumber(year, 1, 1)
  )

/** The windows overlapping the local dates [from, to] (inclusive), sorted by start. */
export const windowsBetween = (calendar: Calendar, from: LocalDate, to: LocalDate): Array<PauseWindow> =>
  overlapping(calendar, toDayNumber(from), toDayNumber(to))

// ---------------------------------------------------------------------------------------
// Instants and zones

/** An instant: a `Date` or any `DateTime` (a zoned one's own zone is ignored). */
export type Instant = Date | DateTime.DateTime

/**
 * The district's zone: a `DateTime.TimeZone`, or an IANA name (which throws
 * `IllegalArgumentException` when unknown: validate names at load time with
 * `DateTime.zoneMakeNamed`).
 */
export type Zone = DateTime.TimeZone | string

const toZone = (zone: Zone): DateTime.TimeZone => typeof zone === "string" ? DateTime.zoneUnsafeMakeNamed(zone) : zone

const zoned = (instant: Instant, zone: Zone): DateTime.Zoned =>
  DateTime.unsafeMakeZoned(instant instanceof Date ? instant : DateTime.toEpochMillis(instant), {
    timeZone: toZone(zone)
  })

const localDayAt = (instant: Instant, zone: Zone): number => {
  const parts = DateTime.toParts(zoned(instant, zone))
  return dayNumber(parts.year, parts.month, parts.day)
}

/** The local date in `zone` at `instant`. */
export const localDateAt = (instant: Instant, zone: Zone): LocalDate => toLocalDate(localDayAt(instant, zone))

/**
 * The first instant of a local date in `zone`: local midnight, or, when a DST change skips
 * midnight (e.g. America/Santiago in September), the first instant after the gap.
 */
export const startOfLocalDay = (date: LocalDate, zone: Zone): DateTime.Zoned => {
  const { day, month, year } = fromDayNumber(toDayNumber(date))
  return Option.getOrThrow(
    DateTime.makeZoned({ year, month, day }, { timeZone: toZone(zone), adjustForTimeZone: true, disambiguation: "compatible" })
  )
}

/** When a window begins in `zone` (inclusive). */
export const windowStart = (window: PauseWindow, zone: Zone): DateTime.Zoned => startOfLocalDay(window.from, zone)

/** When a window is over in `zone` (exclusive): the first instant of the day after `to`. */
export const windowEnd = (window: PauseWindow, zone: Zone): DateTime.Zoned =>
  startOfLocalDay(toLocalDate(toDayNumber(window.to) + 1), zone)

/**
 * The window containing the local date in `zone` at `instant`, if any. When windows
 * overlap, the one that started first (then the one ending last) is returned.
 */
export const pauseAt = (calendar: Calendar, instant: Instant, zone: Zone): Option.Option<PauseWindow> => {
  const today = localDayAt(instant, zone)
  const containing = overlapping(calendar, today, today)
  return Arr.head(Arr.sort(containing, Order.combine(
    Order.mapInput(Order.string, (w: PauseWindow) => w.from),
    Order.reverse(Order.mapInput(Order.string, (w: PauseWindow) => w.to))
  )))
}

/** The next window to begin and the instant it begins. */
export interface NextPause {
  readonly window: PauseWindow
  readonly start: DateTime.Zoned
}

/**
 * The first window that begins strictly after `instant` (its `from` is a later local date
 * than today in `zone`); a window already under way is not "next".
 */
export const nextPauseStart = (calendar: Calendar, instant: Instant, zone: Zone): Option.Option<NextPause> => {
  const today = localDayAt(instant, zone)
  // Every rule window recurs yearly, so one starts within ~2 years; fixed ones may be later.
  const fixedLast = calendar.windows.reduce(
    (max, w) => (typeof w.from === "string" ? Math.max(max, toDayNumber(w.from)) : max),
    today
  )
  const horizon = Math.max(today + 800, fixedLast)
  return Arr.head(overlapping(calendar, today + 1, horizon).filter((w) => toDayNumber(w.from) > today)).pipe(
    Option.map((window) => ({ window, start: windowStart(window, zone) }))
  )
}
