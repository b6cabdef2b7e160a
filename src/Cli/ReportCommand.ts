import { Args, Command, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import { Report } from "../Report/Report.ts"
import { describeRekey } from "./HoldCommands.ts"
import { districtArg, jsonFlag } from "./Options.ts"
import { json, table, when } from "./Output.ts"

/** `rosterd report <district>`: see src/Report/Report.ts. */

const SHOWN_IDS = 10

export const reportCommand = Command.make(
  "report",
  {
    district: districtArg,
    json: jsonFlag("print JSON (every source ID)")
  },
  (args) =>
    Effect.gen(function*() {
      const report = yield* Effect.flatMap(Report, (r) => r.make(args.district))
      if (args.json) return yield* json(report)
      if (report.run === null) {
        yield* Console.log(`${report.district}: no run has reached the apply step or reported findings yet`)
      } else {
        const r = report.run
        yield* Console.log(`${report.district}: findings of run ${r.id} (${r.status}, ${r.mode}, finished ${when(r.finishedAt)})`)
        yield* Console.log(
          report.findings.length === 0 ? "no findings" : table(
            ["code", "severity", "count", "source ids"],
            report.findings.map((g) => [
              g.code,
              g.severity,
              g.count,
              g.sourceIds.slice(0, SHOWN_IDS).join(" ") + (g.count > SHOWN_IDS ? ` (+${g.count - Math.min(SHOWN_IDS, g.sourceIds.length)} more)` : "")
            ])
          )
        )
      }
      for (const m of report.masking) {
        yield* Console.log(
          `masked: ${m.field.replace("_", " ")} since ${when(m.since)} (${m.total} users: ${m.blank} blank, ${m.hashed} hashed, ` +
            `${m.placeholder} placeholder domains, ${m.shared} share one value)`
        )
      }
      if (report.masking.some((m) => m.field === "email")) {
        yield* Console.log(`${report.withoutAccount} teachers and students have no account until the district shares their addresses`)
      }
      if (report.rekey !== undefined) {
        yield* Console.log(describeRekey(report.rekey, report.district))
        yield* Console.log(`held in run ${report.rekey.runId}: rosterd holds show ${report.rekey.runId}`)
      }
      const queue = report.reviewQueue
      yield* Console.log(
        queue.open === 0
          ? "review queue: empty"
          : `review queue: ${queue.open} open (${queue.ids.join(", ")}): rosterd accounts review list --district ${report.district}`
      )
    })
).pipe(
  Command.withDescription("what a district should fix: its last run's findings by code, and the open account reviews"),
  Command.provide(Report.Default)
)
