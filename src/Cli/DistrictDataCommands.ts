import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { ConfigFile } from "../Config/ConfigFile.ts"
import { declaredDistricts } from "../Config/Districts.ts"
import { DistrictErase, EraseRefused } from "../Districts/Erase.ts"
import { DistrictExport } from "../Districts/Export.ts"
import { actorOption, districtArg } from "./Options.ts"
import { table } from "./Output.ts"

/**
 * `rosterd district export` and `rosterd district erase`: a district's data at the end of
 * its contract (src/Districts/). Registered under `rosterd district`; each command
 * provides its own service over the commands' database.
 *
 * What they print: ids, kinds, tables and counts — never a value from the roster.
 */


export const exportCommand = Command.make(
  "export",
  {
    district: districtArg,
    out: Options.text("out").pipe(Options.withDescription("the JSON-lines file to write (mode 0600); it holds personal data")),
    force: Options.boolean("force").pipe(Options.withDescription("replace the file if it exists")),
    by: actorOption
  },
  (args) =>
    Effect.gen(function*() {
      const exporter = yield* DistrictExport
      const result = yield* exporter.run(args.district, { path: args.out, force: args.force, by: args.by })
      const total = Object.values(result.counts).reduce((a, b) => a + b, 0)
      yield* Console.log(`exported district ${result.districtId}: ${total} lines to ${result.path} (mode 0600: it holds personal data, keep it safe)`)
      yield* Console.log(table(["kind", "lines"], Object.entries(result.counts).map(([kind, n]) => [kind, n])))
    })
).pipe(
  Command.withDescription("write all of a district's data (roster, links, admins, run history, findings) as JSON lines"),
  Command.provide(DistrictExport.Default)
)

export const eraseCommand = Command.make(
  "erase",
  {
    district: districtArg,
    confirm: Options.text("confirm").pipe(Options.withDescription("the district id again: erasing cannot be undone"), Options.optional),
    by: actorOption,
    reason: Options.text("reason").pipe(Options.withDescription("why (recorded in the audit log), e.g. the agreement that ended"), Options.optional)
  },
  (args) =>
    Effect.gen(function*() {
      const district = args.district
      if (Option.getOrUndefined(args.confirm) !== district) {
        return yield* new EraseRefused({
          district,
          message: `erasing ${district} cannot be undone: confirm with --confirm ${district} (the id exactly); nothing was erased`
        })
      }
      // The daemon re-registers declared districts at start, and would sync it all again.
      const declared = yield* declaredDistricts
      if (declared.some((d) => d.id === district)) {
        const { path } = yield* ConfigFile
        return yield* new EraseRefused({
          district,
          message: `${district} is declared in the config file ${path}: remove it there first (the daemon would add it back and sync it); nothing was erased`
        })
      }
      const eraser = yield* DistrictErase
      const result = yield* eraser.erase(district, { by: args.by, reason: Option.getOrNull(args.reason) })
      const removed = Object.entries(result.removed).filter(([, n]) => n > 0)
      yield* Console.log(`erased district ${district}: ${removed.reduce((sum, [, n]) => sum + n, 0)} rows removed`)
      if (removed.length > 0) yield* Console.log(table(["table", "rows removed"], removed))
      if (result.spoolFilesRemoved > 0) yield* Console.log(`removed ${result.spoolFilesRemoved} spooled message file(s) of the district from the mail spool`)
      yield* Console.log(
        `kept: the district row (marked erased, emptied), ${result.runsKept} run history rows (counts only), ` +
          `${result.accountsKept} accounts of people beyond the district (unlinked from it), and the audit log (rosterd audit --district ${district})`
      )
    })
).pipe(
  Command.withDescription("delete all of a district's data for good (end of contract): roster, links, its unused accounts, holds, outbox…"),
  Command.provide(DistrictErase.Default)
)
