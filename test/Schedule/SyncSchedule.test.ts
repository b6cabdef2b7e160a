import { describe, expect, it } from "@effect/vitest"
import { Duration, Schema } from "effect"
import { DistrictRules } from "../../src/Domain/DistrictRules.ts"
import type { ScheduleRules } from "../../src/Domain/ScheduleRules.ts"
import { catchUpSlot, nextSlot, nightlySlot, windowOffset } from "../../src/Schedule/SyncSchedule.ts"

/** The schedule's arithmetic: nightly slots in the district's zone, the window offset, deltas, the full cadence. */

const rules = (schedule: Record<string, unknown> = {}): ScheduleRules => Schema.decodeSync(DistrictRules)({ schedule }).schedule
const at = (iso: string) => new Date(iso)

describe("nightly slots", () => {
  it("default: 01:00 local plus the district's fixed offset inside a 4-hour window, the same every night", () => {
    const offset = windowOffset(rules(), "springfield")
    expect(Duration.toMinutes(offset)).toBeGreaterThanOrEqual(0)
    expect(Duration.toMinutes(offset)).toBeLessThan(240)
    expect(Duration.toMinutes(offset) % 1).toBe(0)
    const first = nightlySlot(rules(), "springfield", "America/Chicago", at("2026-10-05T12:00:00Z"))
    const second = nightlySlot(rules(), "springfield", "America/Chicago", first)
    // 01:00 CDT = 06:00Z
    expect(first.getTime()).toBe(at("2026-10-06T06:00:00Z").getTime() + Duration.toMillis(offset))
    expect(second.getTime() - first.getTime()).toBe(24 * 3600_000)
  })

  it("districts are spread over the window", () => {
    const offsets = new Set(Array.from({ length: 50 }, (_, i) => Duration.toMinutes(windowOffset(rules(), `district-${i}`))))
    expect(offsets.size).toBeGreaterThan(40)
    expect(Duration.toMinutes(windowOffset(rules({ window: "1 minute" }), "x"))).toBe(0)
  })

  it("follows the zone, not UTC: Sydney's 01:00 is the previous UTC day", () => {
    const slot = nightlySlot(rules({ window: "1 minute" }), "d", "Australia/Sydney", at("2026-10-05T00:00:00Z"))
    expect(slot.toISOString()).toBe("2026-10-05T14:00:00.000Z") // 01:00 AEDT (UTC+11) on Oct 6
  })

  it("daylight-saving changes: one run per night, at the same local time", () => {
    const r = rules({ nightly: "30 2 * * *", window: "1 minute" })
    // New York springs forward on 2026-03-08: 02:30 does not exist that night; the run is at 03:30 EDT.
    expect(nightlySlot(r, "d", "America/New_York", at("2026-03-07T12:00:00Z")).toISOString()).toBe("2026-03-08T07:30:00.000Z")
    expect(nightlySlot(r, "d", "America/New_York", at("2026-03-08T12:00:00Z")).toISOString()).toBe("2026-03-09T06:30:00.000Z") // 02:30 EDT
    // Falls back on 2026-11-01: 01:00 happens twice; one run only.
    const f = rules({ nightly: "0 1 * * *", window: "1 minute" })
    const first = nightlySlot(f, "d", "America/New_York", at("2026-10-31T12:00:00Z"))
    expect(first.toISOString()).toBe("2026-11-01T05:00:00.000Z") // 01:00 EDT
    expect(nightlySlot(f, "d", "America/New_York", first).toISOString()).toBe("2026-11-02T06:00:00.000Z") // 01:00 EST next night
  })

  it("cron with seconds and weekdays", () => {
    expect(nightlySlot(rules({ nightly: "*/3 * * * * *", window: "1 minute" }), "d", "UTC", at("2026-10-05T00:00:00Z")).toISOString())
      .toBe("2026-10-05T00:00:03.000Z")
    // Weeknights only: Friday night's slot is followed by Monday's.
    const weeknights = rules({ nightly: "0 1 * * 1-5", window: "1 minute" })
    expect(nightlySlot(weeknights, "d", "UTC", at("2026-10-09T02:00:00Z")).toISOString()).toBe("2026-10-12T01:00:00.000Z")
  })

  it("rejects a bad cron expression or duration with a message naming it", () => {
    expect(() => rules({ nightly: "at night" })).toThrow(/not a cron expression/)
    expect(() => rules({ window: "soon" })).toThrow(/not a positive duration/)
    expect(() => rules({ deltaEvery: "0 minutes" })).toThrow(/not a positive duration/)
  })
})

describe("the next slot", () => {
  const base = { districtId: "d", zone: "UTC", now: at("2026-10-05T12:00:00Z") }
  const oneWindow = { window: "1 minute" }

  it("a CSV drop is read as it is (auto) at every slot", () => {
    const slot = nextSlot({ ...base, rules: rules(oneWindow), provider: "oneroster-csv", lastFullAt: null })
    expect(slot).toEqual({ at: at("2026-10-06T01:00:00Z"), request: "auto", trigger: "schedule" })
  })

  it("Clever: a full sync every night by default", () => {
    const slot = nextSlot({ ...base, rules: rules(oneWindow), provider: "clever", lastFullAt: at("2026-10-05T01:00:00Z") })
    expect(slot).toEqual({ at: at("2026-10-06T01:00:00Z"), request: "full", trigger: "schedule" })
  })

  it("fullEvery 7 days: nightly deltas until the full sync is due, with slack for a late start", () => {
    const weekly = rules({ ...oneWindow, fullEvery: "7 days" })
    const nights = (lastFull: string) => nextSlot({ ...base, rules: weekly, provider: "oneroster-rest", lastFullAt: at(lastFull) }).request
    expect(nights("2026-10-04T01:00:00Z")).toBe("delta")
    expect(nights("2026-09-29T01:00:00Z")).toBe("full") // exactly seven nights before
    expect(nights("2026-09-29T02:30:00Z")).toBe("full") // it started late that night: still due
    expect(nightsNever()).toBe("full")
    function nightsNever() {
      return nextSlot({ ...base, rules: weekly, provider: "oneroster-rest", lastFullAt: null }).request
    }
  })

  it("deltaEvery: delta runs between nightly slots, the nightly one when it comes first", () => {
    const hourly = rules({ ...oneWindow, deltaEvery: "1 hour" })
    expect(nextSlot({ ...base, rules: hourly, provider: "clever", lastFullAt: null }))
      .toEqual({ at: at("2026-10-05T13:00:00Z"), request: "delta", trigger: "delta" })
    expect(nextSlot({ ...base, now: at("2026-10-06T00:30:00Z"), rules: hourly, provider: "clever", lastFullAt: null }))
      .toEqual({ at: at("2026-10-06T01:00:00Z"), request: "full", trigger: "schedule" })
    expect(nextSlot({ ...base, rules: hourly, provider: "oneroster-csv", lastFullAt: null }).request).toBe("auto")
  })

  it("catch-up: a full sync where the provider has deltas, the drop as it is for CSV", () => {
    expect(catchUpSlot("clever", at("2026-11-30T06:00:00Z"))).toEqual({ at: at("2026-11-30T06:00:00Z"), request: "full", trigger: "catch-up" })
    expect(catchUpSlot("oneroster-csv", at("2026-11-30T06:00:00Z")).request).toBe("auto")
  })
})
