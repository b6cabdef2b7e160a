import { Args, Command, Options } from "@effect/cli"
import { Console, DateTime, Effect, Layer, Option } from "effect"
import { localDate } from "../Domain/LocalDates.ts"
import { startOfLocalDay, windowsForYear } from "../Schedule/Calendar.ts"
import { DistrictCalendars } from "../Schedule/DistrictCalendars.ts"
import { Pauses } from "../Schedule/Pauses.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { jsonOption } from "./Options.ts"
import { json, table, when } from "./Output.ts"

/** The zone where a day starts first (UTC+14): a pause for every district ended before then never began anywhere. */
const EARLIEST_ZONE = "Etc/GMT-14"

/** An ad-hoc pause as `rosterd calendar` shows it, beside the calendar windows. */
interface AdHocView {
  readonly id: number
  readonly name: string
  readonly from: string
  readonly to: string
  readonly reason: string | null
  readonly allDistricts: boolean
  readonly endedAt: string | null
}

/**
 * `rosterd calendar [<district>] [--year YYYY] [--json]`: the pause windows that apply, in
 * local dates, and the ad-hoc pauses (`rosterd pause`) starting in that year: with a
 * district, its own and those for every district; without, those for every district.
 */
export const calendarCommand = Command.make(
  "calendar",
  {
    district: Args.text({ name: "district" }).pipe(Args.withDescription("the district (default: the defaults)"), Args.optional),
    year: Options.integer("year").pipe(Options.withDescription("the year the windows start in (default: this year)"), Options.optional),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const calendars = yield* DistrictCalendars
      const pauses = yield* Pauses
      const year = Option.getOrElse(args.year, () => new Date().getUTCFullYear())
      const district = yield* Option.match(args.district, {
        onNone: () => Effect.succeed(undefined),
        onSome: (id) => Effect.flatMap(RosterStore, (store) => store.getDistrict(id))
      })
      const calendar = district === undefined ? yield* calendars.base() : yield* calendars.of(district)
      const windows = windowsForYear(calendar, year)
      const zone = district?.timezone ?? null
      const [first, last] = [localDate(year, 1, 1), localDate(year, 12, 31)]
      const adHoc: Array<AdHocView> = district === undefined
        ? (yield* pauses.list({ includeEnded: true }))
          .filter((p) => p.districtId === null && p.from >= first && p.from <= last)
          .filter((p) => p.endedAt === null || p.endedAt.getTime() > DateTime.toEpochMillis(startOfLocalDay(p.from, EARLIEST_ZONE)))
          .map((p) => ({ id: p.id, name: `pause-${p.id}`, from: p.from, to: p.until, reason: p.reason, allDistricts: true, endedAt: p.endedAt === null ? null : when(p.endedAt) }))
        : (yield* pauses.windowsFor(district, first, last))
          .filter((s) => s.source === "ad-hoc" && s.from >= first)
          .map((s) => ({
            id: s.id!,
            name: s.name,
            from: s.from,
            to: s.to,
            reason: s.reason ?? null,
            allDistricts: s.allDistricts === true,
            endedAt: s.endedAt === undefined ? null : when(s.endedAt)
          }))
      if (args.json) return yield* json({ district: district?.id ?? null, timezone: zone, year, windows, pauses: adHoc })
      yield* Console.log(
        `${district === undefined ? "default pause windows" : `pause windows of ${district.id} (local dates, ${zone})`} starting in ${year}:`
      )
      if (windows.length === 0 && adHoc.length === 0) return yield* Console.log("none")
      const rows = [
        ...windows.map((w) => [w.name, w.from, w.to, "calendar", w.reason ?? ""]),
        ...adHoc.map((p) => [
          p.name,
          p.from,
          p.to,
          `ad-hoc, id ${p.id}${p.allDistricts ? ", every district" : ""}${p.endedAt === null ? "" : `, ended ${p.endedAt}`}`,
          p.reason ?? ""
        ])
      ].sort((a, b) => (a[1]! < b[1]! ? -1 : a[1]! > b[1]! ? 1 : 0))
      yield* Console.log(table(["window", "from", "to (inclusive)", "kind", "reason"], rows))
    })
).pipe(
  Command.withDescription("the holiday pause windows and ad-hoc pauses that apply to a district (or the defaults), in local dates"),
  Command.provide(Layer.mergeAll(DistrictCalendars.Default, Pauses.Default, RosterStore.Default))
)
