import { Command, Options } from "@effect/cli"
import { Console, Effect, Layer, Schema } from "effect"
import type { CheckResult } from "../Doctor/Doctor.ts"
import { configChecks, databaseChecks, districtChecks, linksCheck, mailCheck, secretsCheck, timeZoneCheck } from "../Doctor/Doctor.ts"
import { describeFailure } from "../Domain/Failure.ts"
import { jsonFlag } from "./Options.ts"
import { json, table } from "./Output.ts"
import type { SqlClient } from "@effect/sql"
import type { RosterProvider } from "../Providers/RosterProvider.ts"
import { DistrictCalendars } from "../Schedule/DistrictCalendars.ts"
import { Freshness } from "../Schedule/Freshness.ts"
import { Secrets } from "../Secrets/Secrets.ts"
import { RosterStore } from "../Store/RosterStore.ts"

/** What the checks past the config need from the caller: the database (not migrated by this layer) and the roster providers. */
type DoctorDatabase = SqlClient.SqlClient | RosterProvider

export class DoctorFailed extends Schema.TaggedError<DoctorFailed>()("DoctorFailed", { message: Schema.String }) {}

/**
 * `rosterd doctor [--json]`: every check in a table (or JSON); exits 1 when any failed.
 * `database` is a layer that connects without migrating, so a database behind on its
 * migrations is reported, not silently upgraded; checks past it run only when it answers.
 */
export const doctorCommand = <E, R>(database: Layer.Layer<DoctorDatabase, E, R>) =>
  Command.make("doctor", { json: jsonFlag("the checks as JSON") }, (args) =>
    Effect.gen(function*() {
      const results: Array<CheckResult> = [...(yield* configChecks), yield* timeZoneCheck]
      const withDatabase = Effect.gen(function*() {
        const reached = yield* databaseChecks
        results.push(...reached)
        if (reached.some((r) => r.status === "fail")) return
        results.push(yield* secretsCheck, yield* linksCheck, ...(yield* districtChecks))
      })
      yield* withDatabase.pipe(
        Effect.provide(Layer.mergeAll(RosterStore.Default, Freshness.Default, Secrets.Default).pipe(Layer.provideMerge(database))),
        Effect.catchAllCause((cause) =>
          Effect.sync(() => results.push({ check: "database", status: "fail", detail: describeFailure(cause).message.split("\n")[0]! }))
        )
      )
      results.push(yield* mailCheck)
      if (args.json) yield* json(results)
      else yield* Console.log(table(["check", "status", "detail"], results.map((r) => [r.check, r.status, r.detail])))
      const failed = results.filter((r) => r.status === "fail").length
      if (failed > 0) return yield* new DoctorFailed({ message: `${failed} check(s) failed` })
    })).pipe(
    Command.withDescription("check the configuration, the database, each district's source and credentials, the mail relay and the clock"),
    Command.provide(DistrictCalendars.Default)
  )
