import { assert, describe, expect, it } from "@effect/vitest"
import { DateTime, Effect, Either, Option, TestClock } from "effect"
import * as fc from "fast-check"
import * as Fs from "node:fs"
import {
  type Calendar,
  type CalendarOverrides,
  decodeCalendar,
  decodeCalendarOverrides,
  defaultCalendar,
  parseCalendarYaml,
  resolveCalendar,
  WEEKDAYS
} from "../../src/Domain/CalendarRules.ts"
import { type LocalDate, localDate } from "../../src/Domain/LocalDates.ts"
import {
  localDateAt,
  nextPauseStart,
  pauseAt,
  type PauseWindow,
  startOfLocalDay,
  windowEnd,
  windowsBetween,
  windowsForYear,
  windowStart
} from "../../src/Schedule/Calendar.ts"

const NY = "America/New_York"
const HONOLULU = "Pacific/Honolulu"
const SANTIAGO = "America/Santiago"

const iso = (s: string) => new Date(s)
const utc = (z: DateTime.DateTime) => new Date(DateTime.toEpochMillis(z)).toISOString()
const span = (ws: ReadonlyArray<PauseWindow>) => ws.map((w) => [w.name, w.from, w.to] as const)
const nameAt = (calendar: Calendar, instant: Date, zone: string) =>
  Option.getOrUndefined(Option.map(pauseAt(calendar, instant, zone), (w) => `${w.name} ${w.from}..${w.to}`))

const decodeOk = (u: unknown): Calendar => Either.getOrThrowWith(decodeCalendar(u), (e) => new Error(e.message))
const resolveOk = (overrides: CalendarOverrides): Calendar =>
  Either.getOrThrowWith(resolveCalendar(defaultCalendar, overrides), (e) => new Error(e.message))
const errorOf = <A>(result: Either.Either<A, { readonly message: string }>): string =>
  Either.match(result, { onLeft: (e) => e.message, onRight: () => "<decoded>" })

/** The local date at an instant, computed with Intl directly (independent of the module). */
const intlLocalDate = (ms: number, timeZone: string): string => {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" })
    .formatToParts(new Date(ms))
  const get = (type: string) => parts.find((p) => p.type === type)!.value
  return `${get("year")}-${get("month")}-${get("day")}`
}

describe("default windows", () => {
  // Worked out by hand from a calendar. Fourth Thursdays of November: 2026-11-26,
  // 2027-11-25, 2028-11-23, 2029-11-22, 2030-11-28. January 1 falls on: 2027 Fri,
  // 2028 Sat, 2029 Mon, 2030 Tue, 2031 Wed, so the first Sundays are Jan 3, 2, 7, 6, 5.
  const TABLE: ReadonlyArray<readonly [number, ReadonlyArray<readonly [string, string, string]>]> = [
    [2026, [["thanksgiving", "2026-11-25", "2026-11-29"], ["winter", "2026-12-18", "2027-01-03"]]],
    [2027, [["thanksgiving", "2027-11-24", "2027-11-28"], ["winter", "2027-12-18", "2028-01-02"]]],
    [2028, [["thanksgiving", "2028-11-22", "2028-11-26"], ["winter", "2028-12-18", "2029-01-07"]]],
    [2029, [["thanksgiving", "2029-11-21", "2029-11-25"], ["winter", "2029-12-18", "2030-01-06"]]],
    [2030, [["thanksgiving", "2030-11-27", "2030-12-01"], ["winter", "2030-12-18", "2031-01-05"]]]
  ]

  it.each(TABLE)("windowsForYear(%i)", (year, expected) => {
    expect(span(windowsForYear(defaultCalendar, year))).toStrictEqual(expected)
  })

  it("Thanksgiving runs Wednesday to Sunday and winter ends on a Sunday", () => {
    for (let year = 1990; year <= 2200; year++) {
      const [thanksgiving, winter] = windowsForYear(defaultCalendar, year)
      const weekday = (d: string) => new Date(`${d}T12:00:00Z`).getUTCDay()
      expect([weekday(thanksgiving!.from), weekday(thanksgiving!.to)]).toStrictEqual([3, 0])
      expect(weekday(winter!.to)).toBe(0)
      expect(Number(winter!.to.slice(8))).toBeLessThanOrEqual(7)
      expect(winter!.to.slice(0, 7)).toBe(`${year + 1}-01`)
    }
  })

  it("winter ends on January 1 when that is a Sunday (2023, 2034)", () => {
    expect(span(windowsForYear(defaultCalendar, 2022))[1]).toStrictEqual(["winter", "2022-12-18", "2023-01-01"])
    expect(span(windowsForYear(defaultCalendar, 2033))[1]).toStrictEqual(["winter", "2033-12-18", "2034-01-01"])
  })

  it("config/calendars.yaml decodes to exactly the built-in defaults", () => {
    const text = Fs.readFileSync(new URL("../../config/calendars.yaml", import.meta.url), "utf8")
    const decoded = Either.getOrThrowWith(parseCalendarYaml(text), (e) => new Error(e.message))
    expect(decoded).toStrictEqual(defaultCalendar)
  })

  it("windowsBetween includes a window that started the year before", () => {
    expect(span(windowsBetween(defaultCalendar, localDate(2026, 1, 1), localDate(2026, 12, 31)))).toStrictEqual([
      ["winter", "2025-12-18", "2026-01-04"],
      ["thanksgiving", "2026-11-25", "2026-11-29"],
      ["winter", "2026-12-18", "2027-01-03"]
    ])
    expect(windowsBetween(defaultCalendar, localDate(2026, 1, 5), localDate(2026, 11, 24))).toStrictEqual([])
    expect(span(windowsBetween(defaultCalendar, localDate(2026, 11, 29), localDate(2026, 11, 29)))).toStrictEqual([
      ["thanksgiving", "2026-11-25", "2026-11-29"]
    ])
    expect(windowsBetween(defaultCalendar, localDate(2026, 12, 31), localDate(2026, 1, 1))).toStrictEqual([])
  })
})

describe("time zones", () => {
  it("the same instant is Thanksgiving in New York but not yet in Honolulu", () => {
    // 08:00Z = 03:00 Wed Nov 25 in New York (EST), 22:00 Tue Nov 24 in Honolulu.
    const instant = iso("2026-11-25T08:00:00Z")
    expect(localDateAt(instant, NY)).toBe("2026-11-25")
    expect(localDateAt(instant, HONOLULU)).toBe("2026-11-24")
    expect(nameAt(defaultCalendar, instant, NY)).toBe("thanksgiving 2026-11-25..2026-11-29")
    expect(nameAt(defaultCalendar, instant, HONOLULU)).toBeUndefined()
    // Honolulu's window opens at its own midnight, ten hours after UTC midnight.
    expect(nameAt(defaultCalendar, iso("2026-11-25T09:59:59.999Z"), HONOLULU)).toBeUndefined()
    expect(nameAt(defaultCalendar, iso("2026-11-25T10:00:00Z"), HONOLULU)).toBe("thanksgiving 2026-11-25..2026-11-29")
  })

  it("a window ends at local midnight after its last day", () => {
    const ny = Option.getOrThrow(pauseAt(defaultCalendar, iso("2026-11-27T12:00:00Z"), NY))
    expect(utc(windowStart(ny, NY))).toBe("2026-11-25T05:00:00.000Z")
    expect(utc(windowEnd(ny, NY))).toBe("2026-11-30T05:00:00.000Z")
    expect(nameAt(defaultCalendar, iso("2026-11-30T04:59:59.999Z"), NY)).toBe("thanksgiving 2026-11-25..2026-11-29")
    expect(nameAt(defaultCalendar, iso("2026-11-30T05:00:00Z"), NY)).toBeUndefined()
    // Still Sunday afternoon in Honolulu.
    expect(nameAt(defaultCalendar, iso("2026-11-30T05:00:00Z"), HONOLULU)).toBe("thanksgiving 2026-11-25..2026-11-29")
  })

  it("winter from the year before still applies in early January", () => {
    expect(nameAt(defaultCalendar, iso("2027-01-03T23:00:00Z"), NY)).toBe("winter 2026-12-18..2027-01-03")
    expect(nameAt(defaultCalendar, iso("2027-01-04T05:00:00Z"), NY)).toBeUndefined()
    expect(nameAt(defaultCalendar, iso("2027-01-04T05:00:00Z"), HONOLULU)).toBe("winter 2026-12-18..2027-01-03")
  })

  it("accepts a zoned DateTime and a TimeZone value (the DateTime's own zone is ignored)", () => {
    const inHonolulu = DateTime.unsafeMakeZoned(iso("2026-11-25T08:00:00Z"), { timeZone: HONOLULU })
    const ny = DateTime.zoneUnsafeMakeNamed(NY)
    expect(Option.map(pauseAt(defaultCalendar, inHonolulu, ny), (w) => w.name)).toStrictEqual(Option.some("thanksgiving"))
    expect(pauseAt(defaultCalendar, inHonolulu, HONOLULU)).toStrictEqual(Option.none())
    // A fixed offset works too.
    expect(localDateAt(inHonolulu, DateTime.zoneMakeOffset(14 * 3600_000))).toBe("2026-11-25")
  })

  it.effect("is driven by the Clock (TestClock)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(iso("2026-12-18T04:59:59.999Z").getTime())
      const before = yield* DateTime.now
      assert.isTrue(Option.isNone(pauseAt(defaultCalendar, before, NY)))
      const next = Option.getOrThrow(nextPauseStart(defaultCalendar, before, NY))
      assert.strictEqual(next.window.name, "winter")
      assert.strictEqual(utc(next.start), "2026-12-18T05:00:00.000Z")
      yield* TestClock.adjust("1 millis")
      const after = yield* DateTime.now
      assert.strictEqual(Option.getOrThrow(pauseAt(defaultCalendar, after, NY)).name, "winter")
    }))
})

describe("daylight-saving changes", () => {
  const calendar = decodeOk({
    windows: [
      // ends on the US spring-forward day (2026-03-08, a 23-hour day in New York)
      { name: "spring-forward", from: "2026-03-06", to: "2026-03-08" },
      // starts and ends on the US fall-back day (2026-11-01, a 25-hour day in New York)
      { name: "fall-back", from: "2026-11-01", to: "2026-11-01" },
      // starts on Chile's DST day, when midnight does not exist (00:00 → 01:00)
      { name: "chile", from: "2026-09-06", to: "2026-09-07" }
    ]
  })
  const window = (name: string) => calendar.windows.find((w) => w.name === name)!
  const asPause = (name: string): PauseWindow => {
    const w = window(name)
    return { name, from: w.from as LocalDate, to: w.to as LocalDate }
  }

  it("a window ending on the spring-forward day ends at midnight EDT", () => {
    expect(utc(windowStart(asPause("spring-forward"), NY))).toBe("2026-03-06T05:00:00.000Z") // EST
    expect(utc(windowEnd(asPause("spring-forward"), NY))).toBe("2026-03-09T04:00:00.000Z") // EDT
    expect(nameAt(calendar, iso("2026-03-08T06:59:59Z"), NY)).toBe("spring-forward 2026-03-06..2026-03-08") // 01:59:59 EST
    expect(nameAt(calendar, iso("2026-03-08T07:00:00Z"), NY)).toBe("spring-forward 2026-03-06..2026-03-08") // 03:00 EDT
    expect(nameAt(calendar, iso("2026-03-09T03:59:59.999Z"), NY)).toBe("spring-forward 2026-03-06..2026-03-08")
    expect(nameAt(calendar, iso("2026-03-09T04:00:00Z"), NY)).toBeUndefined()
  })

  it("a one-day window on the fall-back day lasts 25 hours", () => {
    const start = windowStart(asPause("fall-back"), NY)
    const end = windowEnd(asPause("fall-back"), NY)
    expect([utc(start), utc(end)]).toStrictEqual(["2026-11-01T04:00:00.000Z", "2026-11-02T05:00:00.000Z"])
    expect(DateTime.toEpochMillis(end) - DateTime.toEpochMillis(start)).toBe(25 * 3600_000)
    expect(nameAt(calendar, iso("2026-11-01T03:59:59.999Z"), NY)).toBeUndefined()
    expect(nameAt(calendar, iso("2026-11-01T05:30:00Z"), NY)).toBe("fall-back 2026-11-01..2026-11-01") // 01:30 EDT
    expect(nameAt(calendar, iso("2026-11-01T06:30:00Z"), NY)).toBe("fall-back 2026-11-01..2026-11-01") // 01:30 EST
    expect(nameAt(calendar, iso("2026-11-02T04:59:59.999Z"), NY)).toBe("fall-back 2026-11-01..2026-11-01")
    expect(nameAt(calendar, iso("2026-11-02T05:00:00Z"), NY)).toBeUndefined()
  })

  it("a window starting on a day without midnight starts at the first instant of that day", () => {
    expect(utc(startOfLocalDay(localDate(2026, 9, 6), SANTIAGO))).toBe("2026-09-06T04:00:00.000Z") // 01:00 -03
    expect(nameAt(calendar, iso("2026-09-06T03:59:59.999Z"), SANTIAGO)).toBeUndefined() // 23:59:59 -04 on the 5th
    expect(nameAt(calendar, iso("2026-09-06T04:00:00Z"), SANTIAGO)).toBe("chile 2026-09-06..2026-09-07")
    const next = Option.getOrThrow(nextPauseStart(calendar, iso("2026-09-05T12:00:00Z"), SANTIAGO))
    expect([next.window.name, utc(next.start)]).toStrictEqual(["chile", "2026-09-06T04:00:00.000Z"])
  })

  it("the Thanksgiving window in a zone whose DST ended weeks earlier (Europe/London) is whole local days", () => {
    const w = windowsForYear(defaultCalendar, 2026)[0]!
    expect(utc(windowStart(w, "Europe/London"))).toBe("2026-11-25T00:00:00.000Z")
    expect(utc(windowStart(w, "Australia/Sydney"))).toBe("2026-11-24T13:00:00.000Z") // AEDT, +11
  })
})

describe("nextPauseStart", () => {
  it("finds the next window and when it begins", () => {
    const next = (s: string, zone = NY) =>
      Option.getOrUndefined(
        Option.map(nextPauseStart(defaultCalendar, iso(s), zone), (n) => `${n.window.name} ${n.window.from} ${utc(n.start)}`)
      )
    expect(next("2026-06-01T12:00:00Z")).toBe("thanksgiving 2026-11-25 2026-11-25T05:00:00.000Z")
    expect(next("2026-11-26T12:00:00Z")).toBe("winter 2026-12-18 2026-12-18T05:00:00.000Z")
    // a window under way is not "next", even at its very first instant
    expect(next("2026-11-25T05:00:00Z")).toBe("winter 2026-12-18 2026-12-18T05:00:00.000Z")
    expect(next("2026-11-25T04:59:59.999Z")).toBe("thanksgiving 2026-11-25 2026-11-25T05:00:00.000Z")
    expect(next("2027-01-02T12:00:00Z")).toBe("thanksgiving 2027-11-24 2027-11-24T05:00:00.000Z")
    expect(next("2026-06-01T12:00:00Z", HONOLULU)).toBe("thanksgiving 2026-11-25 2026-11-25T10:00:00.000Z")
  })

  it("finds a fixed window years ahead, and nothing in an empty calendar", () => {
    const calendar = decodeOk({ windows: [{ name: "far", from: "2035-06-01", to: "2035-06-02" }] })
    expect(Option.map(nextPauseStart(calendar, iso("2026-01-01T00:00:00Z"), NY), (n) => n.window.from)).toStrictEqual(
      Option.some("2035-06-01")
    )
    expect(nextPauseStart(calendar, iso("2035-06-01T12:00:00Z"), NY)).toStrictEqual(Option.none())
    expect(nextPauseStart({ windows: [] }, iso("2026-01-01T00:00:00Z"), NY)).toStrictEqual(Option.none())
  })
})

describe("overrides", () => {
  it("disable thanksgiving", () => {
    expect(span(windowsForYear(resolveOk({ disable: ["thanksgiving"] }), 2026))).toStrictEqual([
      ["winter", "2026-12-18", "2027-01-03"]
    ])
  })

  it("move winter (replace by name)", () => {
    const calendar = resolveOk({
      replace: [{ name: "winter", from: { month: 12, day: 21 }, to: { month: 1, day: 8, yearOffset: 1 } }]
    })
    expect(span(windowsForYear(calendar, 2026))).toStrictEqual([
      ["thanksgiving", "2026-11-25", "2026-11-29"],
      ["winter", "2026-12-21", "2027-01-08"]
    ])
    expect(nameAt(calendar, iso("2026-12-19T12:00:00Z"), NY)).toBeUndefined()
    expect(nameAt(calendar, iso("2027-01-06T12:00:00Z"), NY)).toBe("winter 2026-12-21..2027-01-08")
  })

  it("add a fixed window, decoded from YAML-shaped input", () => {
    const overrides = Either.getOrThrowWith(
      decodeCalendarOverrides({
        add: [{ name: "spring-break-2027", from: "2027-03-15", to: "2027-03-19", reason: "Spring break" }]
      }),
      (e) => new Error(e.message)
    )
    const calendar = resolveOk(overrides)
    expect(span(windowsForYear(calendar, 2027))).toStrictEqual([
      ["spring-break-2027", "2027-03-15", "2027-03-19"],
      ["thanksgiving", "2027-11-24", "2027-11-28"],
      ["winter", "2027-12-18", "2028-01-02"]
    ])
    expect(windowsForYear(calendar, 2026).map((w) => w.name)).toStrictEqual(["thanksgiving", "winter"])
    expect(Option.getOrThrow(pauseAt(calendar, iso("2027-03-17T15:00:00Z"), NY)).reason).toBe("Spring break")
  })

  it("all three at once, from the example in config/calendars.yaml", () => {
    const overrides = Either.getOrThrowWith(
      decodeCalendarOverrides({
        disable: ["thanksgiving"],
        replace: [{ name: "winter", from: { month: 12, day: 21 }, to: { month: 1, day: 8, yearOffset: 1 } }],
        add: [{ name: "spring-break-2027", from: "2027-03-15", to: "2027-03-19", reason: "Spring break" }]
      }),
      (e) => new Error(e.message)
    )
    expect(span(windowsBetween(resolveOk(overrides), localDate(2026, 1, 1), localDate(2027, 12, 31)))).toStrictEqual([
      ["winter", "2025-12-21", "2026-01-08"],
      ["winter", "2026-12-21", "2027-01-08"],
      ["spring-break-2027", "2027-03-15", "2027-03-19"],
      ["winter", "2027-12-21", "2028-01-08"]
    ])
  })

  it("no overrides leaves the calendar as it is", () => {
    expect(resolveOk({})).toStrictEqual(defaultCalendar)
    expect(decodeCalendarOverrides(undefined)).toStrictEqual(Either.right({}))
  })

  const winter = defaultCalendar.windows[1]!
  it.each<readonly [string, CalendarOverrides, string]>([
    ["disable a window that is not there", { disable: ["thanksgivng"] }, `there is no window "thanksgivng"`],
    ["replace a window that is not there", { replace: [{ ...winter, name: "summer" }] }, `there is no window "summer"`],
    ["add a window that exists", { add: [winter] }, `window "winter" already exists`],
    ["disable and replace one window", { disable: ["winter"], replace: [winter] }, `"winter" is both disabled and replaced`],
    ["add one name twice", { add: [{ ...winter, name: "x" }, { ...winter, name: "x" }] }, `"x" is named twice`]
  ])("%s is an error", (_, overrides, message) => {
    expect(errorOf(resolveCalendar(defaultCalendar, overrides))).toContain(message)
  })
})

describe("decoding errors name the window", () => {
  const rule = (extra: Record<string, unknown>) => ({ month: 11, nth: 4, weekday: "thursday", ...extra })
  it.each<readonly [string, unknown, ReadonlyArray<string>]>([
    [
      "misspelt weekday",
      { windows: [{ name: "thanksgiving", from: rule({ weekday: "thursdy" }), to: rule({}) }] },
      [`window "thanksgiving"`, "from.weekday", `got "thursdy"`]
    ],
    ["month 13", { windows: [{ name: "odd", from: { month: 13, day: 1 }, to: { month: 12, day: 2 } }] }, [
      `window "odd"`,
      "from.month: month must be an integer from 1 to 12, got 13"
    ]],
    ["nth 5", { windows: [{ name: "odd", from: rule({ nth: 5 }), to: rule({ offsetDays: 3 }) }] }, [
      `window "odd"`,
      "from.nth: nth must be 1…4 or -1…-4"
    ]],
    ["February 29", { windows: [{ name: "leap", from: { month: 2, day: 29 }, to: { month: 3, day: 1 } }] }, [
      `window "leap"`,
      "February 29 does not occur every year"
    ]],
    ["April 31", { windows: [{ name: "april", from: { month: 4, day: 31 }, to: { month: 5, day: 1 } }] }, [
      "April has no day 31"
    ]],
    ["two date forms", { windows: [{ name: "both", from: rule({ day: 3 }), to: rule({}) }] }, [
      `window "both"`,
      "give exactly one of: day, nth + weekday, firstWeekday, lastWeekday"
    ]],
    ["nth without weekday", { windows: [{ name: "half", from: { month: 11, nth: 4 }, to: rule({}) }] }, [
      "nth and weekday go together"
    ]],
    ["unknown key", { windows: [{ name: "typo", from: rule({ offsetDay: -1 }), to: rule({}) }] }, [
      `window "typo"`,
      "from.offsetDay: is unexpected"
    ]],
    [
      "crossing New Year without yearOffset",
      { windows: [{ name: "winter", from: { month: 12, day: 18 }, to: { month: 1, firstWeekday: "sunday" } }] },
      [`window "winter"`, "from falls after to", "yearOffset: 1"]
    ],
    [
      "longer than a year",
      { windows: [{ name: "long", from: { month: 1, day: 1 }, to: { month: 1, day: 5, yearOffset: 1 } }] },
      [`window "long"`, "at most 366 days"]
    ],
    ["a date that does not exist", { windows: [{ name: "feb", from: "2027-02-30", to: "2027-03-01" }] }, [
      `window "feb"`,
      `expected a date "YYYY-MM-DD", got "2027-02-30"`
    ]],
    ["fixed window backwards", { windows: [{ name: "back", from: "2027-03-19", to: "2027-03-15" }] }, [
      `window "back"`,
      "from 2027-03-19 is after to 2027-03-15"
    ]],
    ["a date with a rule", { windows: [{ name: "mixed", from: "2027-03-15", to: { month: 3, day: 19 } }] }, [
      `window "mixed"`,
      "both be dates"
    ]],
    ["neither a date nor a rule", { windows: [{ name: "num", from: 20270315, to: "2027-03-19" }] }, [
      `window "num"`,
      `from: expected a date "YYYY-MM-DD" or a rule mapping with month, got 20270315`
    ]],
    ["missing name", { windows: [{ from: "2027-03-15", to: "2027-03-19" }] }, ["window #1", "name: is missing"]],
    ["bad name", { windows: [{ name: "Spring Break", from: "2027-03-15", to: "2027-03-19" }] }, [
      `window "Spring Break"`,
      "lower-case letters"
    ]],
    ["duplicate names", { windows: [winterSpec(), winterSpec()] }, [`two windows are named "winter"`]],
    ["not a list", { windows: { name: "winter" } }, ["expected a list of windows"]],
    ["unknown top-level key", { windows: [], window: [] }, [`unknown key "window"`]]
  ])("%s", (_, input, fragments) => {
    const message = errorOf(decodeCalendar(input))
    for (const fragment of fragments) expect(message).toContain(fragment)
  })

  it("YAML errors and unquoted dates", () => {
    expect(errorOf(parseCalendarYaml("windows: [", "district.yaml"))).toContain("district.yaml: not valid YAML")
    // YAML 1.2 reads an unquoted 2027-03-15 as a string, so quoting is optional.
    const calendar = Either.getOrThrow(parseCalendarYaml("windows:\n  - { name: x, from: 2027-03-15, to: 2027-03-16 }\n"))
    expect(span(windowsForYear(calendar, 2027))).toStrictEqual([["x", "2027-03-15", "2027-03-16"]])
    expect(errorOf(parseCalendarYaml("windows:\n  - { name: x, from: { month: 12, day: 40 }, to: { month: 12, day: 41 } }\n", "d.yaml")))
      .toContain(`d.yaml: calendar window "x": from.day: day must be an integer from 1 to 31, got 40`)
  })

  it("override errors name the window too", () => {
    expect(errorOf(decodeCalendarOverrides({ add: [{ name: "bad", from: "2027-03-19", to: "2027-03-15" }] }))).toContain(
      `add: window "bad": from 2027-03-19 is after to 2027-03-15`
    )
    expect(errorOf(decodeCalendarOverrides({ disabled: ["winter"] }))).toContain(`unknown key "disabled"`)
    expect(errorOf(decodeCalendarOverrides({ disable: "winter" }))).toContain("disable: expected a list")
  })
})

function winterSpec() {
  return { name: "winter", from: { month: 12, day: 18 }, to: { month: 1, firstWeekday: "sunday", yearOffset: 1 } }
}

describe("properties", () => {
  const ZONES = [
    NY,
    HONOLULU,
    SANTIAGO,
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Asia/Kolkata",
    "UTC"
  ]
  const weekday = fc.constantFrom(...WEEKDAYS)
  const ruleDate = fc.record(
    {
      month: fc.integer({ min: 1, max: 12 }),
      form: fc.oneof(
        fc.record({ day: fc.integer({ min: 1, max: 28 }) }),
        fc.record({ nth: fc.constantFrom(1, 2, 3, 4, -1, -2, -3, -4), weekday }),
        fc.record({ firstWeekday: weekday }),
        fc.record({ lastWeekday: weekday })
      ),
      offsetDays: fc.option(fc.integer({ min: -31, max: 31 }), { nil: undefined }),
      yearOffset: fc.option(fc.integer({ min: -1, max: 1 }), { nil: undefined })
    },
    { requiredKeys: ["month", "form"] }
  ).map(({ form, ...rest }) => ({
    ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
    ...form
  }))
  const fixedWindow = fc.tuple(fc.integer({ min: 0, max: 365 * 40 }), fc.integer({ min: 0, max: 60 })).map(
    ([start, length]) => {
      const day = (n: number) => new Date(Date.UTC(2010, 0, 1) + n * 86_400_000).toISOString().slice(0, 10)
      return { from: day(start), to: day(start + length) }
    }
  )
  /** Random calendars: the defaults plus whatever random rule and fixed windows decode. */
  const calendar = fc.tuple(fc.array(fc.tuple(ruleDate, ruleDate), { maxLength: 3 }), fc.array(fixedWindow, { maxLength: 3 }))
    .map(([rules, fixed]) => {
      const extra = [
        ...rules.map(([from, to], i) => ({ name: `rule-${i}`, from, to })),
        ...fixed.map((w, i) => ({ name: `fixed-${i}`, ...w }))
      ].filter((w) => Either.isRight(decodeCalendar({ windows: [w] })))
      return decodeOk({ windows: [...defaultCalendar.windows, ...extra] })
    })
  const instant = fc.integer({ min: Date.UTC(2005, 0, 1), max: Date.UTC(2060, 0, 1) })
  const zone = fc.constantFrom(...ZONES)

  it("windows are ordered, from ≤ to, and start in the year asked for", () => {
    fc.assert(
      fc.property(calendar, fc.integer({ min: 1971, max: 2300 }), (cal, year) => {
        const ws = windowsForYear(cal, year)
        ws.forEach((w, i) => {
          expect(w.from <= w.to).toBe(true)
          expect(w.from.slice(0, 4)).toBe(String(year))
          if (i > 0) expect(ws[i - 1]!.from <= w.from).toBe(true)
        })
        // every rule window occurs once per year, give or take a boundary year
        expect(ws.length).toBeGreaterThanOrEqual(2)
      }),
      { numRuns: 300 }
    )
  })

  it("pauseAt agrees with windowsForYear and the local date (computed with Intl)", () => {
    fc.assert(
      fc.property(calendar, instant, zone, (cal, ms, tz) => {
        const today = intlLocalDate(ms, tz)
        const year = Number(today.slice(0, 4))
        const candidates = [year - 2, year - 1, year].flatMap((y) => windowsForYear(cal, y))
          .filter((w) => w.from <= today && today <= w.to)
        const found = pauseAt(cal, new Date(ms), tz)
        expect(Option.isSome(found)).toBe(candidates.length > 0)
        if (Option.isSome(found)) {
          expect(candidates).toContainEqual(found.value)
          expect(DateTime.toEpochMillis(windowStart(found.value, tz))).toBeLessThanOrEqual(ms)
          expect(DateTime.toEpochMillis(windowEnd(found.value, tz))).toBeGreaterThan(ms)
        }
      }),
      { numRuns: 500 }
    )
  })

  it("nextPauseStart is the earliest window starting after today, and begins after the instant", () => {
    fc.assert(
      fc.property(calendar, instant, zone, (cal, ms, tz) => {
        const today = intlLocalDate(ms, tz) as LocalDate
        const next = Option.getOrThrow(nextPauseStart(cal, new Date(ms), tz))
        expect(next.window.from > today).toBe(true)
        expect(DateTime.toEpochMillis(next.start)).toBeGreaterThan(ms)
        expect(intlLocalDate(DateTime.toEpochMillis(next.start), tz)).toBe(next.window.from)
        expect(intlLocalDate(DateTime.toEpochMillis(next.start) - 1, tz) < next.window.from).toBe(true)
        const sooner = windowsBetween(cal, today, next.window.from).filter((w) => w.from > today && w.from < next.window.from)
        expect(sooner).toStrictEqual([])
      }),
      { numRuns: 300 }
    )
  })
})
