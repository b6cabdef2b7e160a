import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option, Schema } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { DistrictId, TimeZone } from "../Domain/District.ts"
import { InvalidDistrict } from "../Domain/Errors.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { json, table } from "./Output.ts"

const districtArg = Args.text({ name: "district" }).pipe(Args.withDescription("the district id"))
const jsonOption = Options.boolean("json").pipe(Options.withDescription("print JSON"))

const add = Command.make(
  "add",
  {
    district: districtArg,
    provider: Options.choice("provider", ["oneroster-csv"]).pipe(
      Options.withDescription("where the roster comes from (clever and oneroster-rest arrive with their providers)")
    ),
    path: Options.text("path").pipe(Options.withDescription("oneroster-csv: the folder or zip of the CSV set"), Options.optional),
    name: Options.text("name").pipe(Options.withDescription("display name (default: the id)"), Options.optional),
    timezone: Options.text("timezone").pipe(Options.withDescription("IANA time zone of the district (default UTC)"), Options.withDefault("UTC"))
  },
  (args) =>
    Effect.gen(function*() {
      const id = yield* Schema.decodeUnknown(DistrictId)(args.district).pipe(
        Effect.mapError((e) => new InvalidDistrict({ district: args.district, message: e.message.split("\n").slice(-1)[0]!.trim() }))
      )
      const timezone = yield* Schema.decodeUnknown(TimeZone)(args.timezone).pipe(
        Effect.mapError(() => new InvalidDistrict({ district: args.district, message: `unknown IANA time zone "${args.timezone}"` }))
      )
      if (Option.isNone(args.path)) {
        return yield* new InvalidDistrict({ district: id, message: "--path is required for a oneroster-csv district" })
      }
      const path = NodePath.resolve(args.path.value)
      if (!Fs.existsSync(path)) return yield* new InvalidDistrict({ district: id, message: `--path ${path} does not exist` })
      const store = yield* RosterStore
      const district = yield* store.addDistrict({
        id,
        name: Option.getOrElse(args.name, () => id),
        provider: args.provider,
        timezone,
        settings: { path }
      })
      yield* Console.log(`added district ${district.id} (${district.provider}, ${path}); sync it with: rosterd sync ${district.id}`)
    })
).pipe(Command.withDescription("register a district"))

const list = Command.make("list", { json: jsonOption }, (args) =>
  Effect.gen(function*() {
    const districts = yield* Effect.flatMap(RosterStore, (store) => store.listDistricts())
    if (args.json) return yield* json(districts.map((d) => ({ id: d.id, name: d.name, provider: d.provider, timezone: d.timezone, origin: d.origin })))
    if (districts.length === 0) return yield* Console.log("no districts (add one with: rosterd district add <id> --provider oneroster-csv --path <folder|zip>)")
    yield* Console.log(table(["district", "name", "provider", "timezone", "declared in"], districts.map((d) => [d.id, d.name, d.provider, d.timezone, d.origin])))
  })).pipe(Command.withDescription("list districts"))

const show = Command.make("show", { district: districtArg, json: jsonOption }, (args) =>
  Effect.gen(function*() {
    const district = yield* Effect.flatMap(RosterStore, (store) => store.getDistrict(args.district))
    const view = { id: district.id, name: district.name, provider: district.provider, timezone: district.timezone, origin: district.origin, settings: district.settings }
    if (args.json) return yield* json(view)
    yield* Console.log(table(["field", "value"], Object.entries(view).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])))
  })).pipe(Command.withDescription("show a district's settings"))

const remove = Command.make("remove", { district: districtArg }, (args) =>
  Effect.gen(function*() {
    const store = yield* RosterStore
    const district = yield* store.getDistrict(args.district)
    yield* store.removeDistrict(district.id)
    yield* Console.log(
      `removed district ${district.id}: it is no longer synced; its roster and history are kept` +
        (district.origin === "config" ? " (it is declared in the config file: remove it there too, or the daemon re-adds it)" : "")
    )
  })).pipe(Command.withDescription("stop syncing a district (its data is kept)"))

export const districtCommand = Command.make("district").pipe(
  Command.withDescription("manage districts"),
  Command.withSubcommands([add, list, show, remove])
)
