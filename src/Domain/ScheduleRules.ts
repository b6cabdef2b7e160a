import { Cron, Duration, Either, Option, Schema } from "effect"

/**
 * A district's `rules.schedule`: when the daemon syncs it. The schema lives here, beside
 * the other district rules (DistrictRules.ts), so that the domain imports nothing above it;
 * what the fields mean and how slots follow from them: src/Schedule/SyncSchedule.ts.
 */

const CronExpression = Schema.String.pipe(
  Schema.filter((text) =>
    Either.match(Cron.parse(text), {
      onLeft: (error) => `not a cron expression ("minute hour day month weekday"): ${error.message}`,
      onRight: () => true
    })
  )
)

/** A duration text ("90 minutes", "4 hours") longer than zero; none otherwise. */
export const positiveDuration = (text: string) =>
  Option.filter(Duration.decodeUnknown(text), (d) => Duration.greaterThan(d, Duration.zero))

const DurationText = Schema.String.pipe(
  Schema.filter((text) =>
    Option.isSome(positiveDuration(text)) || `not a positive duration (e.g. "90 minutes", "4 hours", "7 days"): ${JSON.stringify(text)}`
  )
)

export const ScheduleRules = Schema.Struct({
  nightly: Schema.optionalWith(CronExpression, { default: () => "0 1 * * *" }),
  window: Schema.optionalWith(DurationText, { default: () => "4 hours" }),
  deltaEvery: Schema.optional(DurationText),
  fullEvery: Schema.optionalWith(DurationText, { default: () => "1 day" })
})
export type ScheduleRules = typeof ScheduleRules.Type
