import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Layer, Option, ParseResult, Schema } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import YAML from "yaml"
import { Audit } from "../Audit/Audit.ts"
import { CsvSettings, DistrictId, TimeZone } from "../Domain/District.ts"
import { DistrictRules } from "../Domain/DistrictRules.ts"
import { InvalidDistrict } from "../Domain/Errors.ts"
import { Discovery } from "../Districts/Discovery.ts"
import { readMappingFile, Rekey } from "../Districts/Rekey.ts"
import { CleverSettings } from "../Providers/Clever/CleverProvider.ts"
import { OneRosterRestSettings } from "../Providers/OneRosterRest/OneRosterRestProvider.ts"
import { Secrets } from "../Secrets/Secrets.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { audited } from "./AuditCommand.ts"
import { actorOption, byOption, districtArg, jsonOption } from "./Options.ts"
import { readValue, setCredentials, storeCredentials } from "./CredentialCommands.ts"
import { eraseCommand, exportCommand } from "./DistrictDataCommands.ts"
import { json, table } from "./Output.ts"


const add = Command.make(
  "add",
  {
    district: districtArg,
    provider: Options.choice("provider", ["oneroster-csv", "clever", "oneroster-rest"]).pipe(
      Options.withDescription("where the roster comes from")
    ),
    path: Options.text("path").pipe(Options.withDescription("oneroster-csv: the folder or zip of the CSV set"), Options.optional),
    cleverDistrict: Options.text("district-id").pipe(Options.withDescription("clever: the Clever district id"), Options.optional),
    tokenFile: Options.text("token-file").pipe(
      Options.withDescription("clever: a file holding the district-app token (read at each sync; the token is not copied)"),
      Options.optional
    ),
    tokenEnv: Options.text("token-env").pipe(Options.withDescription("clever: an environment variable holding the token"), Options.optional),
    keyFile: Options.text("key-file").pipe(Options.withDescription("oneroster-rest: a file holding the OAuth 1.0a consumer key"), Options.optional),
    keyEnv: Options.text("key-env").pipe(Options.withDescription("oneroster-rest: an environment variable holding the consumer key"), Options.optional),
    secretFile: Options.text("secret-file").pipe(Options.withDescription("oneroster-rest: a file holding the consumer secret"), Options.optional),
    secretEnv: Options.text("secret-env").pipe(Options.withDescription("oneroster-rest: an environment variable holding the consumer secret"), Options.optional),
    bearerFile: Options.text("bearer-file").pipe(Options.withDescription("oneroster-rest: a file holding a bearer token (ClassLink's proxy)"), Options.optional),
    bearerEnv: Options.text("bearer-env").pipe(Options.withDescription("oneroster-rest: an environment variable holding the bearer token"), Options.optional),
    auth: Options.choice("auth", ["oauth1", "bearer", "oauth2"]).pipe(
      Options.withDescription("oneroster-rest: how to authenticate (default: what the credential flags given imply)"),
      Options.optional
    ),
    tokenUrl: Options.text("token-url").pipe(Options.withDescription("oneroster-rest --auth oauth2: the OAuth 2.0 token endpoint"), Options.optional),
    clientIdFile: Options.text("client-id-file").pipe(Options.withDescription("oneroster-rest --auth oauth2: a file holding the client id"), Options.optional),
    clientIdEnv: Options.text("client-id-env").pipe(Options.withDescription("oneroster-rest --auth oauth2: an environment variable holding the client id"), Options.optional),
    clientSecretFile: Options.text("client-secret-file").pipe(Options.withDescription("oneroster-rest --auth oauth2: a file holding the client secret"), Options.optional),
    clientSecretEnv: Options.text("client-secret-env").pipe(
      Options.withDescription("oneroster-rest --auth oauth2: an environment variable holding the client secret"),
      Options.optional
    ),
    scope: Options.text("scope").pipe(Options.withDescription("oneroster-rest --auth oauth2: the scope to ask for (none by default)"), Options.optional),
    tokenAuth: Options.choice("token-auth", ["basic", "body"]).pipe(
      Options.withDescription("oneroster-rest --auth oauth2: send the client secret with HTTP Basic (default) or in the request body"),
      Options.optional
    ),
    fromDiscovery: Options.text("from-discovery").pipe(
      Options.withDescription("clever: the Clever district id of a district that authorised the app (rosterd districts discover); its token is fetched now and stored encrypted"),
      Options.optional
    ),
    storeCredentials: Options.boolean("store-credentials").pipe(
      Options.withDescription("clever, oneroster-rest: read the --*-file values now and store them encrypted in the database instead of the file names")
    ),
    baseUrl: Options.text("base-url").pipe(
      Options.withDescription("clever: the API host (default https://api.clever.com); oneroster-rest: the server, without /ims/oneroster/v1p1"),
      Options.optional
    ),
    pageSize: Options.integer("page-size").pipe(Options.withDescription("clever, oneroster-rest: records per page, 1-10000 (default 1000)"), Options.optional),
    // Not `--version`: @effect/cli keeps that name for its own (it prints rosterd's version, wherever it stands).
    version: Options.choice("oneroster-version", ["1.1", "1.2"]).pipe(
      Options.withDescription("oneroster-rest: the OneRoster version the server speaks (default 1.1; 1.2 reads /ims/oneroster/rostering/v1p2)"),
      Options.optional
    ),
    name: Options.text("name").pipe(Options.withDescription("display name (default: the id)"), Options.optional),
    timezone: Options.text("timezone").pipe(Options.withDescription("IANA time zone of the district (default UTC)"), Options.withDefault("UTC")),
    rulesFile: Options.text("rules-file").pipe(
      Options.withDescription("a YAML or JSON file of district rules (scope, co-teacher limit; see the README); default: the defaults"),
      Options.optional
    ),
    by: actorOption
  },
  (args) =>
    Effect.gen(function*() {
      const id = yield* Schema.decodeUnknown(DistrictId)(args.district).pipe(
        Effect.mapError((e) => new InvalidDistrict({ district: args.district, message: e.message.split("\n").slice(-1)[0]!.trim() }))
      )
      const timezone = yield* Schema.decodeUnknown(TimeZone)(args.timezone).pipe(
        Effect.mapError(() => new InvalidDistrict({ district: args.district, message: `unknown IANA time zone "${args.timezone}"` }))
      )
      const invalid = (message: string) => new InvalidDistrict({ district: id, message })
      const discovered = Option.isSome(args.fromDiscovery) ? yield* fromDiscovery(args, args.fromDiscovery.value).pipe(Effect.mapError((e) => typeof e === "string" ? invalid(e) : e)) : null
      const settings = discovered !== null
        ? discovered.settings
        : args.provider === "oneroster-csv"
        ? yield* csvSettings(args.path).pipe(Effect.mapError(invalid))
        : args.provider === "clever"
        ? yield* cleverSettings(args).pipe(Effect.mapError(invalid))
        : yield* oneRosterRestSettings(args).pipe(Effect.mapError(invalid))
      const rules = Option.isSome(args.rulesFile) ? yield* readRules(args.rulesFile.value).pipe(Effect.mapError(invalid)) : {}
      const credentials = discovered ?? (args.storeCredentials ? yield* credentialsToStore(args.provider, settings).pipe(Effect.mapError(invalid)) : null)
      const store = yield* RosterStore
      const district = yield* audited(
        store.addDistrict({
          id,
          name: Option.getOrElse(args.name, () => id),
          provider: args.provider,
          timezone,
          settings: credentials?.settings ?? settings,
          rules
        }).pipe(Effect.tap((d) => (credentials === null ? Effect.void : storeCredentials(d.id, credentials.values)))),
        (d) => ({
          actor: args.by,
          action: "district.add",
          districtId: d.id,
          subject: `district ${d.id}`,
          details: {
            provider: d.provider,
            rulesFile: Option.isSome(args.rulesFile),
            ...(discovered === null ? {} : { fromDiscovery: Option.getOrNull(args.fromDiscovery) }),
            ...(credentials === null ? {} : { storedCredentials: credentials.values.map(([name]) => name) })
          }
        })
      )
      yield* Console.log(`added district ${district.id} (${district.provider}); sync it with: rosterd sync ${district.id}`)
    })
).pipe(Command.withDescription("register a district"))

/** The flag a setting comes from: `pageSize` → `--page-size`, `districtId` → `--district-id`. */
const flagOf = (key: PropertyKey | undefined) => `--${String(key).replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase()}`

/**
 * The settings the flags gave (those not given left out), checked with the provider's own
 * schema — what each run decodes them with — and stored as given: the schema's defaults are
 * filled in when a run reads them. A refusal names the flag.
 */
const checkedWith = <A, I>(schema: Schema.Schema<A, I>, provider: string, given: Readonly<Record<string, unknown>>) => {
  const settings = Object.fromEntries(Object.entries(given).filter(([, value]) => value !== undefined))
  return Schema.decodeUnknown(schema)(settings).pipe(
    Effect.mapError((error) =>
      ParseResult.ArrayFormatter.formatErrorSync(error)
        .map((issue) => (issue._tag === "Missing" ? `${flagOf(issue.path[0])} is required for a ${provider} district` : `${flagOf(issue.path[0])}: ${issue.message}`))
        .join("; ")
    ),
    Effect.as(settings)
  )
}

/** A file a setting names, as an absolute path; it must exist (its content is read at each sync). */
const existingFile = (option: Option.Option<string>, flag: string) =>
  Option.match(option, {
    onNone: () => Effect.succeed(undefined),
    onSome: (file) => {
      const absolute = NodePath.resolve(file)
      return Fs.existsSync(absolute) ? Effect.succeed(absolute) : Effect.fail(`--${flag} ${absolute} does not exist`)
    }
  })

const withoutTrailingSlash = (url: Option.Option<string>) => Option.getOrUndefined(Option.map(url, (text) => text.replace(/\/+$/, "")))

/** OneRoster CSV: the folder or zip of the set. */
const csvSettings = (path: Option.Option<string>) =>
  Effect.gen(function*() {
    const settings = yield* checkedWith(CsvSettings, "oneroster-csv", { path: Option.getOrUndefined(Option.map(path, (p) => NodePath.resolve(p))) })
    yield* existingFile(path, "path")
    return settings
  })

/**
 * `--from-discovery <clever district id>`: the district's token from Clever's list of the
 * app's tokens (src/Districts/Discovery.ts), to be stored encrypted; no token flag with it.
 */
const fromDiscovery = (args: {
  readonly provider: string
  readonly tokenFile: Option.Option<string>
  readonly tokenEnv: Option.Option<string>
  readonly baseUrl: Option.Option<string>
  readonly pageSize: Option.Option<number>
}, cleverDistrict: string) =>
  Effect.gen(function*() {
    if (args.provider !== "clever") return yield* Effect.fail("--from-discovery is for --provider clever")
    if (Option.isSome(args.tokenFile) || Option.isSome(args.tokenEnv)) return yield* Effect.fail("--from-discovery fetches the token: no --token-file or --token-env with it")
    const settings = yield* checkedWith(CleverSettings, "clever", {
      districtId: cleverDistrict,
      baseUrl: withoutTrailingSlash(args.baseUrl),
      pageSize: Option.getOrUndefined(args.pageSize)
    })
    const token = yield* Effect.flatMap(Discovery, (d) => d.tokenFor(cleverDistrict))
    return { settings, values: [["token", token] as const] }
  }).pipe(Effect.provide(Discovery.Default))

/** Clever: where to find the token, never the token itself. */
const cleverSettings = (args: {
  readonly cleverDistrict: Option.Option<string>
  readonly tokenFile: Option.Option<string>
  readonly tokenEnv: Option.Option<string>
  readonly baseUrl: Option.Option<string>
  readonly pageSize: Option.Option<number>
}) =>
  Effect.gen(function*() {
    if (Option.isSome(args.tokenFile) === Option.isSome(args.tokenEnv)) {
      return yield* Effect.fail("give the token with exactly one of --token-file or --token-env")
    }
    return yield* checkedWith(CleverSettings, "clever", {
      districtId: Option.getOrUndefined(args.cleverDistrict),
      tokenFile: yield* existingFile(args.tokenFile, "token-file"),
      tokenEnv: Option.getOrUndefined(args.tokenEnv),
      baseUrl: withoutTrailingSlash(args.baseUrl),
      pageSize: Option.getOrUndefined(args.pageSize)
    })
  })

/** OneRoster REST: OAuth 1.0a key and secret, a bearer token, or OAuth 2.0 client credentials — each from a file or a variable. */
const oneRosterRestSettings = (args: {
  readonly auth: Option.Option<"oauth1" | "bearer" | "oauth2">
  readonly tokenUrl: Option.Option<string>
  readonly clientIdFile: Option.Option<string>
  readonly clientIdEnv: Option.Option<string>
  readonly clientSecretFile: Option.Option<string>
  readonly clientSecretEnv: Option.Option<string>
  readonly scope: Option.Option<string>
  readonly tokenAuth: Option.Option<"basic" | "body">
  readonly version: Option.Option<"1.1" | "1.2">
  readonly baseUrl: Option.Option<string>
  readonly keyFile: Option.Option<string>
  readonly keyEnv: Option.Option<string>
  readonly secretFile: Option.Option<string>
  readonly secretEnv: Option.Option<string>
  readonly bearerFile: Option.Option<string>
  readonly bearerEnv: Option.Option<string>
  readonly pageSize: Option.Option<number>
}) =>
  Effect.gen(function*() {
    const one = (a: Option.Option<string>, b: Option.Option<string>) => Option.isSome(a) !== Option.isSome(b)
    const bearer = Option.isSome(args.bearerFile) || Option.isSome(args.bearerEnv)
    const oauth = [args.keyFile, args.keyEnv, args.secretFile, args.secretEnv].some(Option.isSome)
    const oauth2Flags = [args.tokenUrl, args.clientIdFile, args.clientIdEnv, args.clientSecretFile, args.clientSecretEnv, args.scope, args.tokenAuth].some(Option.isSome)
    const given = Option.getOrUndefined(args.auth)
    if (given === "oauth2" || (given === undefined && oauth2Flags)) {
      if (bearer || oauth) return yield* Effect.fail("--auth oauth2 takes --client-id-file/--client-id-env and --client-secret-file/--client-secret-env, not --key-*, --secret-* or --bearer-*")
      if (!one(args.clientIdFile, args.clientIdEnv) || !one(args.clientSecretFile, args.clientSecretEnv)) {
        return yield* Effect.fail("OAuth 2.0 needs the client id (--client-id-file or --client-id-env) and the client secret (--client-secret-file or --client-secret-env)")
      }
      if (Option.isNone(args.tokenUrl)) return yield* Effect.fail("--token-url is required for --auth oauth2")
      return yield* checkedWith(OneRosterRestSettings, "oneroster-rest", {
        baseUrl: withoutTrailingSlash(args.baseUrl),
        auth: "oauth2",
        tokenUrl: args.tokenUrl.value,
        clientIdFile: yield* existingFile(args.clientIdFile, "client-id-file"),
        clientIdEnv: Option.getOrUndefined(args.clientIdEnv),
        clientSecretFile: yield* existingFile(args.clientSecretFile, "client-secret-file"),
        clientSecretEnv: Option.getOrUndefined(args.clientSecretEnv),
        scope: Option.getOrUndefined(args.scope),
        tokenAuth: Option.getOrUndefined(args.tokenAuth),
        version: Option.getOrUndefined(args.version),
        pageSize: Option.getOrUndefined(args.pageSize)
      })
    }
    if (oauth2Flags) return yield* Effect.fail("--token-url, --client-*, --scope and --token-auth are for --auth oauth2")
    if (bearer === oauth) return yield* Effect.fail("give either --bearer-file/--bearer-env, or --key-file/--key-env with --secret-file/--secret-env")
    if (given !== undefined && given !== (bearer ? "bearer" : "oauth1")) return yield* Effect.fail(`--auth ${given} does not match the credential flags given`)
    if (bearer && !one(args.bearerFile, args.bearerEnv)) return yield* Effect.fail("give the bearer token once: --bearer-file or --bearer-env")
    if (oauth && (!one(args.keyFile, args.keyEnv) || !one(args.secretFile, args.secretEnv))) {
      return yield* Effect.fail("OAuth 1.0a needs the consumer key (--key-file or --key-env) and the secret (--secret-file or --secret-env)")
    }
    return yield* checkedWith(OneRosterRestSettings, "oneroster-rest", {
      baseUrl: withoutTrailingSlash(args.baseUrl),
      auth: bearer ? "bearer" : "oauth1",
      bearerFile: yield* existingFile(args.bearerFile, "bearer-file"),
      bearerEnv: Option.getOrUndefined(args.bearerEnv),
      keyFile: yield* existingFile(args.keyFile, "key-file"),
      keyEnv: Option.getOrUndefined(args.keyEnv),
      secretFile: yield* existingFile(args.secretFile, "secret-file"),
      secretEnv: Option.getOrUndefined(args.secretEnv),
      version: Option.getOrUndefined(args.version),
      pageSize: Option.getOrUndefined(args.pageSize)
    })
  })

/**
 * `--store-credentials`: the values of the `*File` settings, read now, and the settings
 * without them. Variables are refused: storing is for when nothing outside the database
 * should hold the secret any more.
 */
const credentialsToStore = (provider: string, settings: Readonly<Record<string, unknown>>) =>
  Effect.gen(function*() {
    if (provider === "oneroster-csv") return yield* Effect.fail("--store-credentials: a oneroster-csv district has no credentials")
    // OAuth 2.0's client id and secret are stored under the names of OAuth 1.0a's key and secret.
    const names = { tokenFile: "token", keyFile: "key", secretFile: "secret", bearerFile: "bearer", clientIdFile: "key", clientSecretFile: "secret" } as const
    if (["tokenEnv", "keyEnv", "secretEnv", "bearerEnv", "clientIdEnv", "clientSecretEnv"].some((key) => settings[key] !== undefined)) {
      return yield* Effect.fail("--store-credentials reads files: give --token-file, --key-file, --secret-file, --bearer-file or --client-*-file, not an --*-env")
    }
    const values: Array<readonly ["token" | "key" | "secret" | "bearer", string]> = []
    const kept: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(settings)) {
      if (key in names) {
        const name = names[key as keyof typeof names]
        values.push([name, yield* readValue({ flag: flagOf(key).slice(2), file: String(value) })])
      } else kept[key] = value
    }
    return { settings: kept, values }
  })

/** Reads and checks a rules file; returns the rules as written (defaults are filled in when read). */
const readRules = (path: string) =>
  Effect.gen(function*() {
    const text = yield* Effect.try({
      try: () => Fs.readFileSync(path, "utf8"),
      catch: () => `cannot read the rules file ${path}`
    })
    const document = yield* Effect.try({
      try: () => (YAML.parse(text) ?? {}) as unknown,
      catch: (e) => `${path}: not YAML or JSON (${e instanceof Error ? e.message.split("\n")[0] : String(e)})`
    })
    yield* Schema.decodeUnknown(DistrictRules)(document, { onExcessProperty: "error" }).pipe(
      Effect.mapError((e) => `${path}: ${e.message.split("\n").slice(-2).join(" ").trim()}`)
    )
    return document as Record<string, unknown>
  })

const rules = Command.make(
  "rules",
  {
    district: districtArg,
    file: Options.text("file").pipe(Options.withDescription("replace the district's rules with this YAML or JSON file"), Options.optional),
    by: actorOption,
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      let district = yield* store.getDistrict(args.district)
      if (Option.isSome(args.file)) {
        if (district.origin === "config") {
          return yield* new InvalidDistrict({ district: district.id, message: "its rules are declared in the config file: change them there" })
        }
        const written = yield* readRules(args.file.value).pipe(Effect.mapError((message) => new InvalidDistrict({ district: district.id, message })))
        district = yield* audited(store.setRules(district.id, written), (d) => ({
          actor: args.by,
          action: "district.rules",
          districtId: d.id,
          subject: `district ${d.id}`,
          // Which sections the file sets (its values are the district's settings, not personal, but kept out of the log).
          details: { sections: Object.keys(written).sort() }
        }))
        yield* Console.log(`rules of ${district.id} replaced; they apply from the next sync`)
      }
      if (args.json) return yield* json(district.rules)
      yield* Console.log(YAML.stringify(district.rules).trimEnd())
    })
).pipe(Command.withDescription("show a district's rules (defaults filled in), or replace them with --file"))

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
    // Names and key ids of stored credentials only: values are never shown.
    const stored = yield* Effect.flatMap(Secrets, (secrets) => secrets.list(district.id))
    const storedCredentials = stored.map((c) => ({ name: c.name, keyId: c.keyId, updatedAt: c.updatedAt }))
    const view = { id: district.id, name: district.name, provider: district.provider, timezone: district.timezone, origin: district.origin, settings: district.settings, storedCredentials }
    if (args.json) return yield* json(view)
    yield* Console.log(table(["field", "value"], Object.entries(view).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])))
  })).pipe(Command.withDescription("show a district's settings"))

const remove = Command.make("remove", { district: districtArg, by: actorOption }, (args) =>
  Effect.gen(function*() {
    const store = yield* RosterStore
    const district = yield* store.getDistrict(args.district)
    yield* audited(store.removeDistrict(district.id), () => ({
      actor: args.by,
      action: "district.remove",
      districtId: district.id,
      subject: `district ${district.id}`,
      details: { provider: district.provider, origin: district.origin }
    }))
    yield* Console.log(
      `removed district ${district.id}: it is no longer synced; its roster and history are kept` +
        (district.origin === "config" ? " (it is declared in the config file: remove it there too, or the daemon re-adds it)" : "")
    )
  })).pipe(Command.withDescription("stop syncing a district (its data is kept)"))

/** `rosterd district rekey`: src/Districts/Rekey.ts. Output: kinds, tables, columns and counts; source IDs only in refusals. */
const rekey = Command.make(
  "rekey",
  {
    district: districtArg,
    run: Options.integer("run").pipe(
      Options.withDescription("apply the mapping this run proposed when it was held as a suspected re-key (rosterd holds show <run>)"),
      Options.optional
    ),
    map: Options.text("map").pipe(
      Options.withDescription("apply an operator's mapping: a CSV file with the columns kind, old_source_id, new_source_id (and optionally district)"),
      Options.optional
    ),
    by: byOption("who decides (recorded in the audit log)"),
    reason: Options.text("reason").pipe(Options.withDescription("why (recorded in the audit log)"), Options.optional),
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("change nothing: print what would be rewritten")),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      if (Option.isSome(args.run) === Option.isSome(args.map)) {
        return yield* new InvalidDistrict({ district: args.district, message: "give exactly one of --run <run> or --map <csv>" })
      }
      const source = Option.isSome(args.run)
        ? { run: args.run.value }
        : yield* Effect.map(readMappingFile(NodePath.resolve(Option.getOrThrow(args.map))), (rows) => ({ file: Option.getOrThrow(args.map), rows }))
      const outcome = yield* Effect.flatMap(Rekey, (r) =>
        r.rekey(args.district, source, { by: args.by, reason: Option.getOrNull(args.reason), dryRun: args.dryRun }))
      if (args.json) return yield* json(outcome)
      const from = outcome.runId === null ? "the operator's mapping" : `the proposal of run ${outcome.runId}`
      yield* Console.log(
        `${outcome.dryRun ? "dry run, nothing was changed: would re-key" : "re-keyed"} district ${outcome.districtId} from ${from}: ` +
          outcome.records.map((r) => `${r.kind} ${r.n}`).join(", ")
      )
      yield* Console.log(table(["table", "column", "rows rewritten"], outcome.rewritten.map((r) => [r.table, r.column, r.n])))
      if (!outcome.dryRun) {
        yield* Console.log(`the next sync applies the source's other changes: rosterd sync ${outcome.districtId}`)
      }
    })
).pipe(
  Command.withDescription("rewrite a district's source IDs in place (a re-keyed source): --run applies a held run's proposal, --map an operator's CSV"),
  Command.provide(Rekey.Default)
)

/** `rosterd districts discover`: Clever districts that authorised the app, marked registered or not (src/Districts/Discovery.ts). */
const discover = Command.make("discover", { json: jsonOption }, (args) =>
  Effect.gen(function*() {
    const found = yield* Effect.flatMap(Discovery, (d) => d.discover())
    if (args.json) return yield* json(found)
    if (found.length === 0) return yield* Console.log("no Clever district has authorised the app")
    yield* Console.log(table(
      ["clever district", "registered as", "authorised", "scopes"],
      found.map((f) => [f.cleverDistrict, f.registered ?? "-", f.created ?? "-", f.scopes.length])
    ))
    const next = found.find((f) => f.registered === null)
    if (next !== undefined) yield* Console.log(`register one with: rosterd district add <id> --provider clever --from-discovery ${next.cleverDistrict}`)
  })).pipe(
    Command.withDescription("list the Clever districts that have authorised the app, and which are registered"),
    Command.provide(Discovery.Default)
  )

export const districtsCommand = Command.make("districts").pipe(
  Command.withDescription("districts not registered yet: find those that authorised the app"),
  Command.withSubcommands([discover]),
  Command.provide(RosterStore.Default)
)

export const districtCommand = Command.make("district").pipe(
  Command.withDescription("manage districts"),
  Command.withSubcommands([add, list, show, rules, remove, setCredentials, exportCommand, eraseCommand, rekey]),
  Command.provide(Layer.mergeAll(RosterStore.Default, Secrets.Default, Audit.Default))
)
