import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Option, TestClock } from "effect"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import type { District, DistrictId } from "../../src/Domain/District.ts"
import type { LocalDate } from "../../src/Domain/LocalDates.ts"
import { Pauses } from "../../src/Schedule/Pauses.ts"
import type { PauseSpan } from "../../src/Schedule/PauseSpans.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { TestDatabase } from "../support/Database.ts"

/**
 * Ad-hoc pauses beside the calendar windows, against a real Postgres: what applies to a
 * district (its own pauses, `--all` ones read in its own zone, the default calendar), chains
 * of pauses, resume (ending one under way, cancelling a scheduled one), and the checks on
 * new pauses. "Now" is the TestClock.
 */

const TestLayer = Layer.mergeAll(Pauses.Default, RosterStore.Default).pipe(
  Layer.provide(ConfigFile.fromDocument({})),
  Layer.provideMerge(TestDatabase)
)

const d = (s: string) => s as LocalDate
const at = (iso: string) => TestClock.setTime(Date.parse(iso))

/** Every district removed and every pause gone: each test starts from its own districts. */
const reset = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.all([sql`DELETE FROM pauses`, sql`UPDATE districts SET removed_at = now() WHERE removed_at IS NULL`], { discard: true }))

const district = (id: string, timezone: string) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone, settings: { path: "/nowhere" } }))

const view = (spans: ReadonlyArray<PauseSpan>) =>
  spans.map((s) => ({ key: s.key, source: s.source, from: s.from, to: s.to, startsAt: s.startsAt.toISOString(), endsAt: s.endsAt.toISOString() }))

const activeView = (district: District, iso: string) =>
  Effect.flatMap(Pauses, (pauses) => pauses.activeAt(district, new Date(iso))).pipe(
    Effect.map(Option.map((p) => ({ key: p.key, endsAt: p.endsAt.toISOString(), lastDay: p.lastDay })))
  )

layer(TestLayer, { timeout: "60 seconds" })("Pauses", (it) => {
  it.effect("windowsFor: calendar windows, the district's own and --all pauses, in its zone; activeAt follows a chain to its end", () =>
    Effect.gen(function*() {
      yield* reset
      yield* at("2026-11-01T12:00:00Z")
      const pauses = yield* Pauses
      const chi = yield* district("chi", "America/Chicago")
      yield* district("other", "America/Chicago")
      const own = yield* pauses.add({ district: "chi", from: d("2026-11-20"), until: d("2026-11-24"), reason: "SIS migration", by: "test" })
      yield* pauses.add({ district: "other", from: d("2026-11-02"), until: d("2026-11-03"), by: "test" })
      const all = yield* pauses.add({ from: d("2026-11-30"), until: d("2026-12-01"), by: "test" })

      const windows = yield* pauses.windowsFor(chi, d("2026-11-01"), d("2026-12-31"))
      assert.deepStrictEqual(view(windows), [
        { key: `pause:${own}`, source: "ad-hoc", from: "2026-11-20", to: "2026-11-24", startsAt: "2026-11-20T06:00:00.000Z", endsAt: "2026-11-25T06:00:00.000Z" },
        { key: "calendar:thanksgiving:2026-11-25", source: "calendar", from: "2026-11-25", to: "2026-11-29", startsAt: "2026-11-25T06:00:00.000Z", endsAt: "2026-11-30T06:00:00.000Z" },
        { key: `pause:${all}`, source: "ad-hoc", from: "2026-11-30", to: "2026-12-01", startsAt: "2026-11-30T06:00:00.000Z", endsAt: "2026-12-02T06:00:00.000Z" },
        { key: "calendar:winter:2026-12-18", source: "calendar", from: "2026-12-18", to: "2027-01-03", startsAt: "2026-12-18T06:00:00.000Z", endsAt: "2027-01-04T06:00:00.000Z" }
      ])
      assert.strictEqual(windows[0]!.reason, "SIS migration")
      assert.strictEqual(windows[2]!.allDistricts, true)

      // Nov 20–24, Thanksgiving Nov 25–29 and the --all pause Nov 30–Dec 1 follow one another: one chain.
      const chainEnd = { endsAt: "2026-12-02T06:00:00.000Z", lastDay: "2026-12-01" }
      assert.deepStrictEqual(yield* activeView(chi, "2026-11-20T05:59:59Z"), Option.none()) // Nov 19, 23:59 local
      assert.deepStrictEqual(yield* activeView(chi, "2026-11-20T06:00:00Z"), Option.some({ key: `pause:${own}`, ...chainEnd }))
      assert.deepStrictEqual(yield* activeView(chi, "2026-11-27T12:00:00Z"), Option.some({ key: "calendar:thanksgiving:2026-11-25", ...chainEnd }))
      assert.deepStrictEqual(yield* activeView(chi, "2026-12-01T12:00:00Z"), Option.some({ key: `pause:${all}`, ...chainEnd }))
      assert.deepStrictEqual(yield* activeView(chi, "2026-12-02T06:00:00Z"), Option.none())

      // The poll's variant reads every district with one query and agrees.
      const each = yield* pauses.activeAtEach([chi], new Date("2026-11-22T12:00:00Z"))
      assert.deepStrictEqual(Option.map(each.get("chi")!, (p) => p.endsAt.toISOString()), Option.some(chainEnd.endsAt))
    }))

  it.effect("an --all pause is read in each district's own zone", () =>
    Effect.gen(function*() {
      yield* reset
      yield* at("2026-03-01T00:00:00Z")
      const pauses = yield* Pauses
      const nyc = yield* district("nyc", "America/New_York")
      const hnl = yield* district("hnl", "Pacific/Honolulu")
      const id = yield* pauses.add({ from: d("2026-03-10"), until: d("2026-03-11"), reason: "provider maintenance", by: "test" })

      // New York is on daylight time from March 8 (UTC-4); Honolulu is UTC-10 all year.
      assert.deepStrictEqual(view(yield* pauses.windowsFor(nyc, d("2026-03-01"), d("2026-03-31"))), [
        { key: `pause:${id}`, source: "ad-hoc", from: "2026-03-10", to: "2026-03-11", startsAt: "2026-03-10T04:00:00.000Z", endsAt: "2026-03-12T04:00:00.000Z" }
      ])
      assert.deepStrictEqual(view(yield* pauses.windowsFor(hnl, d("2026-03-01"), d("2026-03-31"))), [
        { key: `pause:${id}`, source: "ad-hoc", from: "2026-03-10", to: "2026-03-11", startsAt: "2026-03-10T10:00:00.000Z", endsAt: "2026-03-12T10:00:00.000Z" }
      ])
      assert.isTrue(Option.isSome(yield* activeView(nyc, "2026-03-10T05:00:00Z")))
      assert.isTrue(Option.isNone(yield* activeView(hnl, "2026-03-10T05:00:00Z")))
      assert.isTrue(Option.isNone(yield* activeView(nyc, "2026-03-12T05:00:00Z")))
      assert.deepStrictEqual(yield* activeView(hnl, "2026-03-12T05:00:00Z"), Option.some({ key: `pause:${id}`, endsAt: "2026-03-12T10:00:00.000Z", lastDay: "2026-03-11" }))
    }))

  it.effect("resume ends the pause under way and cancels a scheduled one; --all pauses still apply until resumed with --all", () =>
    Effect.gen(function*() {
      yield* reset
      const sql = yield* SqlClient.SqlClient
      const pauses = yield* Pauses
      yield* at("2026-05-01T12:00:00Z")
      const ber = yield* district("ber", "Europe/Berlin")
      const past = yield* pauses.add({ district: "ber", from: d("2026-05-02"), until: d("2026-05-03"), by: "test" })
      const current = yield* pauses.add({ district: "ber", from: d("2026-05-09"), until: d("2026-05-12"), by: "test" })
      const future = yield* pauses.add({ district: "ber", from: d("2026-05-20"), until: d("2026-05-21"), by: "test" })
      const global = yield* pauses.add({ from: d("2026-05-10"), until: d("2026-05-10"), by: "test" })
      const globalLater = yield* pauses.add({ from: d("2026-06-01"), until: d("2026-06-01"), by: "test" })

      yield* at("2026-05-10T08:00:00Z") // 10:00 in Berlin, May 10
      const result = yield* pauses.resume({ district: "ber", by: "ops" })
      assert.deepStrictEqual(result.ended.map((p) => [p.id, p.started]), [[current, true], [future, false]])
      assert.deepStrictEqual(Option.map(result.stillPaused, (p) => [p.key, p.endsAt.toISOString()]), Option.some([`pause:${global}`, "2026-05-10T22:00:00.000Z"]))
      assert.deepStrictEqual(result.laterForAll.map((s) => s.key), [`pause:${globalLater}`])

      // In the store: ended now by "ops"; the pause that was already over and the --all ones untouched.
      const rows = yield* sql<{ readonly id: number; readonly endedAt: Date | null; readonly endedBy: string | null }>`
        SELECT id, ended_at, ended_by FROM pauses ORDER BY id`
      assert.deepStrictEqual(rows.map((r) => [r.id, r.endedAt?.toISOString() ?? null, r.endedBy]), [
        [past, null, null],
        [current, "2026-05-10T08:00:00.000Z", "ops"],
        [future, "2026-05-10T08:00:00.000Z", "ops"],
        [global, null, null],
        [globalLater, null, null]
      ])

      // The one under way now ends at the resume; the cancelled one is not listed at all.
      const windows = yield* pauses.windowsFor(ber, d("2026-05-01"), d("2026-05-31"))
      assert.deepStrictEqual(windows.map((s) => [s.key, s.endsAt.toISOString()]), [
        [`pause:${past}`, "2026-05-03T22:00:00.000Z"],
        [`pause:${current}`, "2026-05-10T08:00:00.000Z"],
        [`pause:${global}`, "2026-05-10T22:00:00.000Z"]
      ])
      assert.strictEqual(windows[1]!.endedAt?.toISOString(), "2026-05-10T08:00:00.000Z")

      // Resuming again ends nothing; --all ends the --all pauses, and the district runs again.
      assert.strictEqual((yield* pauses.resume({ district: "ber", by: "ops" })).ended.length, 0)
      const everything = yield* pauses.resume({ by: "ops" })
      assert.deepStrictEqual(everything.ended.map((p) => [p.id, p.started]), [[global, true], [globalLater, false]])
      assert.isTrue(Option.isNone(yield* pauses.activeAt(ber, new Date("2026-05-10T09:00:00Z"))))
      assert.deepStrictEqual((yield* pauses.list({})).map((p) => p.id), [])
      assert.deepStrictEqual((yield* pauses.list({ includeEnded: true })).map((p) => p.id), [past, current, global, future, globalLater])
    }))

  it.effect("refuses an unknown district, a first day after the last, and a last day already past in the district's zone", () =>
    Effect.gen(function*() {
      yield* reset
      const sql = yield* SqlClient.SqlClient
      const pauses = yield* Pauses
      yield* district("kir", "Pacific/Kiritimati") // UTC+14
      yield* district("hnl", "Pacific/Honolulu") // UTC-10
      yield* at("2026-06-01T20:00:00Z") // June 2 in Kiritimati, still June 1 in Honolulu

      const unknown = yield* Effect.flip(pauses.add({ district: "nope", from: d("2026-07-01"), until: d("2026-07-02"), by: "t" }))
      assert.strictEqual(unknown._tag, "DistrictNotFound")
      const reversed = yield* Effect.flip(pauses.add({ district: "hnl", from: d("2026-07-02"), until: d("2026-07-01"), by: "t" }))
      assert.strictEqual(reversed._tag, "InvalidPause")
      assert.strictEqual(reversed.message, "the pause's first day 2026-07-02 is after its last day 2026-07-01")
      const past = yield* Effect.flip(pauses.add({ district: "kir", from: d("2026-06-01"), until: d("2026-06-01"), by: "t" }))
      assert.strictEqual(past.message, "the pause's last day 2026-06-01 is in the past (today is 2026-06-02 in Pacific/Kiritimati)")
      assert.strictEqual((yield* Effect.flip(pauses.resume({ district: "nope", by: "t" })))._tag, "DistrictNotFound")
      assert.strictEqual((yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM pauses`)[0]!.n, 0)

      // The same day is still today in Honolulu: for one district there, and for every district, it is accepted.
      assert.strictEqual(yield* pauses.today("hnl"), "2026-06-01")
      assert.strictEqual(yield* pauses.today(), "2026-06-01")
      yield* pauses.add({ district: "hnl", from: d("2026-06-01"), until: d("2026-06-01"), by: "t" })
      yield* pauses.add({ from: d("2026-06-01"), until: d("2026-06-01"), reason: "  ", by: "t" })
      const rows = yield* sql<{ readonly districtId: string | null; readonly reason: string | null }>`SELECT district_id, reason FROM pauses ORDER BY id`
      assert.deepStrictEqual(rows.map((r) => [r.districtId, r.reason]), [["hnl", null], [null, null]])
    }))
})
