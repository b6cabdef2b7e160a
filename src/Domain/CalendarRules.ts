import { Array as Arr, Either, ParseResult, Schema } from "effect"
import YAML from "yaml"
import { dayNumber, daysInMonth, LocalDate, toLocalDate, weekdayOfDay } from "./LocalDates.ts"

/** The holiday calendars' rule language: schemas, decoding, overrides and the defaults (see src/Schedule/Calendar.ts for what the windows mean). */

// ---------------------------------------------------------------------------------------
// The rule language

export const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"] as const
export const Weekday = Schema.Literal(...WEEKDAYS).annotations({
  message: (issue) => ({
    message: `expected a weekday (${WEEKDAYS.join(", ")}), got ${JSON.stringify(issue.actual)}`,
    override: true
  })
})
export type Weekday = typeof Weekday.Type

const Int = (min: number, max: number, what: string) =>
  Schema.Int.pipe(
    Schema.filter((n) => (n >= min && n <= max) || `${what} must be an integer from ${min} to ${max}, got ${n}`)
  )

const Nth = Schema.Int.pipe(
  Schema.filter((n) => (n >= 1 && n <= 4) || (n >= -4 && n <= -1) || `nth must be 1…4 or -1…-4 (-1 = last), got ${n}`)
)

const MONTH_NAMES = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December"
]

/**
 * One endpoint of a yearly rule window. Exactly one of `day`, `nth` + `weekday`,
 * `firstWeekday`, `lastWeekday` picks the date in `month`; then `offsetDays` is added.
 * `yearOffset` says which year's `month` (relative to the window's year).
 */
export const RuleDate = Schema.Struct({
  month: Int(1, 12, "month"),
  day: Schema.optionalWith(Int(1, 31, "day"), { exact: true }),
  nth: Schema.optionalWith(Nth, { exact: true }),
  weekday: Schema.optionalWith(Weekday, { exact: true }),
  firstWeekday: Schema.optionalWith(Weekday, { exact: true }),
  lastWeekday: Schema.optionalWith(Weekday, { exact: true }),
  offsetDays: Schema.optionalWith(Int(-31, 31, "offsetDays"), { exact: true }),
  yearOffset: Schema.optionalWith(Int(-1, 1, "yearOffset"), { exact: true })
}).pipe(
  Schema.filter((r) => {
    const forms = [
      r.day !== undefined,
      r.nth !== undefined || r.weekday !== undefined,
      r.firstWeekday !== undefined,
      r.lastWeekday !== undefined
    ].filter(Boolean).length
    if (forms !== 1) return "give exactly one of: day, nth + weekday, firstWeekday, lastWeekday"
    if ((r.nth === undefined) !== (r.weekday === undefined)) return "nth and weekday go together"
    if (r.day !== undefined) {
      if (r.month === 2 && r.day === 29) return "February 29 does not occur every year; use a fixed window for it"
      if (r.day > daysInMonth(2001, r.month)) return `${MONTH_NAMES[r.month - 1]} has no day ${r.day}`
    }
    return true
  }, { identifier: "RuleDate" })
)
export type RuleDate = typeof RuleDate.Type

/** A window endpoint: a fixed local date or a yearly rule. */
export const DateSpec = Schema.Union(LocalDate, RuleDate)
export type DateSpec = typeof DateSpec.Type

/** Window names identify windows in overrides: lower-case letters, digits, `-` and `_`. */
export const WindowName = Schema.String.pipe(
  Schema.filter(
    (s) =>
      /^[a-z0-9][a-z0-9_-]*$/.test(s) ||
      `a window name is lower-case letters, digits, "-" and "_", got ${JSON.stringify(s)}`
  )
)

export const resolveRuleDate = (rule: RuleDate, windowYear: number): number => {
  const year = windowYear + (rule.yearOffset ?? 0)
  const weekday = rule.weekday ?? rule.firstWeekday ?? rule.lastWeekday
  const nth = rule.nth ?? (rule.firstWeekday !== undefined ? 1 : -1)
  let base: number
  if (rule.day !== undefined || weekday === undefined) {
    base = dayNumber(year, rule.month, rule.day ?? 1)
  } else {
    const target = WEEKDAYS.indexOf(weekday)
    if (nth > 0) {
      const first = dayNumber(year, rule.month, 1)
      base = first + ((target - weekdayOfDay(first) + 7) % 7) + 7 * (nth - 1)
    } else {
      const last = dayNumber(year, rule.month, daysInMonth(year, rule.month))
      base = last - ((weekdayOfDay(last) - target + 7) % 7) - 7 * (-nth - 1)
    }
  }
  return base + (rule.offsetDays ?? 0)
}

/** Weekdays repeat every 400 Gregorian years, so checking one cycle checks every year. */
const CHECK_YEARS = Arr.range(2000, 2399)
const MAX_RULE_DAYS = 366

const checkWindow = (w: { readonly from: DateSpec; readonly to: DateSpec }): true | string => {
  if (typeof w.from === "string" && typeof w.to === "string") {
    return w.from <= w.to || `from ${w.from} is after to ${w.to}`
  }
  if (typeof w.from === "string" || typeof w.to === "string") {
    return "from and to must both be dates (\"YYYY-MM-DD\") or both be yearly rules"
  }
  for (const year of CHECK_YEARS) {
    const from = resolveRuleDate(w.from, year)
    const to = resolveRuleDate(w.to, year)
    if (from > to) {
      return `from falls after to in some years (e.g. ${toLocalDate(from)} > ${
        toLocalDate(to)
      }); a window that crosses New Year needs yearOffset: 1 on to`
    }
    if (to - from + 1 > MAX_RULE_DAYS) {
      return `a rule window may last at most ${MAX_RULE_DAYS} days (e.g. ${toLocalDate(from)} – ${toLocalDate(to)})`
    }
  }
  return true
}

/** One pause window as written in the config. */
export const WindowSpec = Schema.Struct({
  name: WindowName,
  from: DateSpec,
  to: DateSpec,
  /** Free text shown with the window (`rosterd calendar`, notices). */
  reason: Schema.optionalWith(Schema.NonEmptyTrimmedString, { exact: true })
}).pipe(Schema.filter(checkWindow, { identifier: "WindowSpec" }))
export type WindowSpec = typeof WindowSpec.Type

/** A calendar: named windows, names unique. */
export interface Calendar {
  readonly windows: ReadonlyArray<WindowSpec>
}

/**
 * A district's changes to a calendar, applied in this order: `disable` removes windows by
 * name, `replace` swaps a window for another of the same name, `add` appends new windows.
 * Naming a window that is not there (or adding one that is) is an error, so a typo never
 * silently leaves the default in place.
 */
export interface CalendarOverrides {
  readonly disable?: ReadonlyArray<string>
  readonly replace?: ReadonlyArray<WindowSpec>
  readonly add?: ReadonlyArray<WindowSpec>
}

export class CalendarError extends Schema.TaggedError<CalendarError>()("CalendarError", {
  message: Schema.String
}) {}

// ---------------------------------------------------------------------------------------
// Decoding

const DECODE_OPTIONS = { errors: "all", onExcessProperty: "error" } as const
const decodeWindowEither = Schema.decodeUnknownEither(WindowSpec, DECODE_OPTIONS)
const decodeNameEither = Schema.decodeUnknownEither(WindowName, DECODE_OPTIONS)

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const formatIssues = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  // A date-or-rule endpoint (a union) that is neither reports "Expected string" and
  // "Expected { …struct… }": say that once, plainly. When one member got further (a
  // mapping with a bad field), only that member's issues are kept.
  const isMemberMismatch = (i: ParseResult.ArrayFormatterIssue) => /^Expected (string|\{)/.test(i.message)
  const meaningful = issues.filter((i) => !isMemberMismatch(i))
  const shown = meaningful.length > 0
    ? meaningful
    : issues.map((i) => ({
      ...i,
      message: `expected a date "YYYY-MM-DD" or a rule mapping with month, got ${
        /, actual (.*)$/.exec(i.message)?.[1] ?? "something else"
      }`
    }))
  return shown
    .map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message))
    .filter((line, index, all) => all.indexOf(line) === index)
    .join("; ")
}

const describeWindow = (raw: unknown, index: number, where: string): string =>
  isRecord(raw) && typeof raw.name === "string"
    ? `${where} window "${raw.name}"`
    : `${where} window #${index + 1}`

const decodeWindowList = (raw: unknown, where: string): Either.Either<ReadonlyArray<WindowSpec>, CalendarError> => {
  if (raw === undefined || raw === null) return Either.right([])
  if (!Array.isArray(raw)) return Either.left(new CalendarError({ message: `${where}: expected a list of windows` }))
  const out: Array<WindowSpec> = []
  for (const [index, item] of raw.entries()) {
    const decoded = decodeWindowEither(item)
    if (Either.isLeft(decoded)) {
      return Either.left(
        new CalendarError({ message: `${describeWindow(item, index, where)}: ${formatIssues(decoded.left)}` })
      )
    }
    out.push(decoded.right)
  }
  return Either.right(out)
}

const firstDuplicate = (names: ReadonlyArray<string>): string | undefined =>
  names.find((name, index) => names.indexOf(name) !== index)

const checkKeys = (raw: Record<string, unknown>, allowed: ReadonlyArray<string>, where: string) => {
  const unknown = Object.keys(raw).filter((k) => !allowed.includes(k))
  return unknown.length === 0
    ? Either.void
    : Either.left(
      new CalendarError({ message: `${where}: unknown key ${unknown.map((k) => `"${k}"`).join(", ")} (expected ${allowed.join(", ")})` })
    )
}

/** Decodes a calendar document `{ windows: [...] }`; errors name the offending window. */
export const decodeCalendar = (input: unknown): Either.Either<Calendar, CalendarError> =>
  Either.gen(function*() {
    if (!isRecord(input)) return yield* Either.left(new CalendarError({ message: "calendar: expected a mapping with windows" }))
    yield* checkKeys(input, ["windows"], "calendar")
    const windows = yield* decodeWindowList(input.windows, "calendar")
    const duplicate = firstDuplicate(windows.map((w) => w.name))
    if (duplicate !== undefined) {
      return yield* Either.left(new CalendarError({ message: `calendar: two windows are named "${duplicate}"` }))
    }
    return { windows }
  })

/** Decodes a district's `{ disable?, replace?, add? }`; errors name the offending window. */
export const decodeCalendarOverrides = (input: unknown): Either.Either<CalendarOverrides, CalendarError> =>
  Either.gen(function*() {
    if (input === undefined || input === null) return {}
    if (!isRecord(input)) {
      return yield* Either.left(new CalendarError({ message: "calendar overrides: expected a mapping" }))
    }
    yield* checkKeys(input, ["disable", "replace", "add"], "calendar overrides")
    const disableRaw = input.disable ?? []
    if (!Array.isArray(disableRaw)) {
      return yield* Either.left(new CalendarError({ message: "calendar overrides: disable: expected a list of window names" }))
    }
    const disable: Array<string> = []
    for (const name of disableRaw) {
      const decoded = decodeNameEither(name)
      if (Either.isLeft(decoded)) {
        return yield* Either.left(
          new CalendarError({ message: `calendar overrides: disable: ${formatIssues(decoded.left)}` })
        )
      }
      disable.push(decoded.right)
    }
    const replace = yield* decodeWindowList(input.replace, "calendar overrides: replace:")
    const add = yield* decodeWindowList(input.add, "calendar overrides: add:")
    return { disable, replace, add }
  })

const parseYaml = (text: string, source: string): Either.Either<unknown, CalendarError> =>
  Either.try({
    try: () => YAML.parse(text) as unknown,
    catch: (cause) =>
      new CalendarError({
        message: `${source}: not valid YAML: ${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)}`
      })
  })

/** Parses and decodes a calendar file's text (config/calendars.yaml). */
export const parseCalendarYaml = (text: string, source = "calendars.yaml"): Either.Either<Calendar, CalendarError> =>
  Either.flatMap(
    parseYaml(text, source),
    (doc) => Either.mapLeft(decodeCalendar(doc), (e) => new CalendarError({ message: `${source}: ${e.message}` }))
  )

/**
 * Applies a district's overrides to a calendar (see `CalendarOverrides` for the order).
 * Fails on a name that is not there (disable/replace), a name that already is (add), a
 * name given twice, and a window both disabled and replaced.
 */
export const resolveCalendar = (
  defaults: Calendar,
  overrides: CalendarOverrides
): Either.Either<Calendar, CalendarError> => {
  const fail = (message: string) => Either.left(new CalendarError({ message: `calendar overrides: ${message}` }))
  const disable = overrides.disable ?? []
  const replace = overrides.replace ?? []
  const add = overrides.add ?? []
  const known = new Set(defaults.windows.map((w) => w.name))
  const duplicate = firstDuplicate([...disable, ...replace.map((w) => w.name)]) ??
    firstDuplicate(add.map((w) => w.name))
  if (duplicate !== undefined) {
    return disable.includes(duplicate) && replace.some((w) => w.name === duplicate)
      ? fail(`window "${duplicate}" is both disabled and replaced`)
      : fail(`window "${duplicate}" is named twice`)
  }
  for (const name of disable) {
    if (!known.has(name)) return fail(`disable: there is no window "${name}" (windows: ${[...known].join(", ")})`)
  }
  for (const w of replace) {
    if (!known.has(w.name)) return fail(`replace: there is no window "${w.name}" (windows: ${[...known].join(", ")}); use add for a new one`)
  }
  for (const w of add) {
    if (known.has(w.name)) return fail(`add: window "${w.name}" already exists; use replace to change it`)
  }
  const replacements = new Map(replace.map((w) => [w.name, w]))
  const windows = defaults.windows
    .filter((w) => !disable.includes(w.name))
    .map((w) => replacements.get(w.name) ?? w)
    .concat(add)
  return Either.right({ windows })
}

// ---------------------------------------------------------------------------------------
// Defaults

/** The default calendar; config/calendars.yaml says the same (a test checks). */
export const defaultCalendar: Calendar = Either.getOrThrowWith(
  decodeCalendar({
    windows: [
      {
        name: "thanksgiving",
        reason: "Thanksgiving break",
        // Wednesday before the fourth Thursday of November …
        from: { nth: 4, weekday: "thursday", month: 11, offsetDays: -1 },
        // … through the Sunday after it.
        to: { nth: 4, weekday: "thursday", month: 11, offsetDays: 3 }
      },
      {
        name: "winter",
        reason: "Winter break",
        // December 18: the last two weeks of December …
        from: { month: 12, day: 18 },
        // … through the first Sunday of January of the next year (January 1 if that is a Sunday).
        to: { firstWeekday: "sunday", month: 1, yearOffset: 1 }
      }
    ]
  }),
  (e) => new Error(e.message)
)
