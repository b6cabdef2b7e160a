import { Effect, Either } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { ConfigFile } from "../Config/ConfigFile.ts"
import type { District } from "../Domain/District.ts"
import type { Calendar, CalendarError } from "../Domain/CalendarRules.ts"
import { decodeCalendarOverrides, defaultCalendar, parseCalendarYaml, resolveCalendar } from "../Domain/CalendarRules.ts"

/**
 * Which pause windows apply to a district: the defaults of `calendars.yaml` beside the
 * config file (the built-in defaults when there is none), changed by the district's
 * `rules.calendar` overrides (`disable`, `replace`, `add`; see config/calendars.yaml).
 */
export class DistrictCalendars extends Effect.Service<DistrictCalendars>()("rosterd/DistrictCalendars", {
  effect: Effect.gen(function*() {
    const file = yield* ConfigFile
    const path = NodePath.join(NodePath.dirname(file.path), "calendars.yaml")
    const defaults: Either.Either<Calendar, CalendarError> = Fs.existsSync(path)
      ? parseCalendarYaml(Fs.readFileSync(path, "utf8"), path)
      : Either.right(defaultCalendar)

    /** The defaults, or the file's error. */
    const base = Effect.fn("DistrictCalendars.base")(function*() {
      return yield* defaults
    })

    /** The district's calendar: the defaults with its overrides applied. */
    const of = Effect.fn("DistrictCalendars.of")(function*(district: District) {
      const calendar = yield* defaults
      const raw = (district.rules as { readonly calendar?: unknown }).calendar
      if (raw === undefined) return calendar
      const overrides = yield* decodeCalendarOverrides(raw)
      return yield* resolveCalendar(calendar, overrides)
    })

    return { base, of, path } as const
  })
}) {}
