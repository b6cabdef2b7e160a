import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { windowsForYear } from "../Schedule/Calendar.ts"
import { DistrictCalendars } from "../Schedule/DistrictCalendars.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { json, table } from "./Output.ts"

/** `rosterd calendar [<district>] [--year YYYY] [--json]`: the pause windows that apply, in local dates. */
export const calendarCommand = Command.make(
  "calendar",
  {
    district: Args.text({ name: "district" }).pipe(Args.withDescription("the district (default: the defaults)"), Args.optional),
    year: Options.integer("year").pipe(Options.withDescription("the year the windows start in (default: this year)"), Options.optional),
    json: Options.boolean("json").pipe(Options.withDescription("print JSON"))
  },
  (args) =>
    Effect.gen(function*() {
      const calendars = yield* DistrictCalendars
      const year = Option.getOrElse(args.year, () => new Date().getUTCFullYear())
      const district = yield* Option.match(args.district, {
        onNone: () => Effect.succeed(undefined),
        onSome: (id) => Effect.flatMap(RosterStore, (store) => store.getDistrict(id))
      })
      const calendar = district === undefined ? yield* calendars.base() : yield* calendars.of(district)
      const windows = windowsForYear(calendar, year)
      const zone = district?.timezone ?? null
      if (args.json) return yield* json({ district: district?.id ?? null, timezone: zone, year, windows })
      yield* Console.log(
        `${district === undefined ? "default pause windows" : `pause windows of ${district.id} (local dates, ${zone})`} starting in ${year}:`
      )
      if (windows.length === 0) return yield* Console.log("none")
      yield* Console.log(table(["window", "from", "to (inclusive)", "reason"], windows.map((w) => [w.name, w.from, w.to, w.reason ?? ""])))
    })
).pipe(Command.withDescription("the holiday pause windows that apply to a district (or the defaults), in local dates"))
