import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import * as Fs from "node:fs"
import type { District } from "../Domain/District.ts"
import { InvalidDistrict } from "../Domain/Errors.ts"
import { Secrets } from "../Secrets/Secrets.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { audited } from "./AuditCommand.ts"
import { actorOption, districtArg } from "./Options.ts"
import { Stdio } from "./Stdio.ts"

/**
 * `rosterd district set-credentials`: a district's provider credentials, read from files or
 * standard input — never from argv, which `ps` and shell histories show — and stored
 * encrypted (src/Secrets/Secrets.ts). Audited with the credential names, never the values.
 */

/** Every name a provider reads; a district keeps only those its provider and auth use. */
const ALL_NAMES = ["token", "key", "secret", "bearer"] as const
type CredentialName = typeof ALL_NAMES[number]

/** The credentials a district's provider reads, or why it has none. */
export const credentialNamesOf = (district: Pick<District, "provider" | "settings">): ReadonlyArray<CredentialName> | string => {
  switch (district.provider) {
    case "oneroster-csv":
      return "a oneroster-csv district reads files and has no credentials"
    case "clever":
      return ["token"]
    case "oneroster-rest":
      return district.settings["auth"] === "bearer" ? ["bearer"] : ["key", "secret"]
  }
}

export type ValueSource = { readonly flag: string; readonly file: string } | { readonly flag: string; readonly stdin: true }

/** One value from its file or from standard input, trimmed; messages name the flag and file, never content. */
export const readValue = (source: ValueSource) =>
  Effect.gen(function*() {
    const text = "file" in source
      ? yield* Effect.try({ try: () => Fs.readFileSync(source.file, "utf8"), catch: () => `cannot read --${source.flag} ${source.file}` })
      : yield* Effect.flatMap(Stdio, (stdio) =>
        Effect.tryPromise({
          try: () => {
            if (stdio.inputIsTerminal()) stdio.writeError(`reading the value of --${source.flag} from standard input (end with Ctrl-D)\n`)
            return stdio.readInput()
          },
          catch: () => `cannot read standard input (--${source.flag})`
        }))
    const value = text.trim()
    if (value === "") return yield* Effect.fail(`--${source.flag}${"file" in source ? ` ${source.file}` : ""} is empty`)
    return value
  })

/** Stores the values and removes the district's other stored names (a switch from OAuth to bearer leaves no stale key). */
export const storeCredentials = (districtId: string, values: ReadonlyArray<readonly [CredentialName, string]>) =>
  Effect.gen(function*() {
    const secrets = yield* Secrets
    let keyId = ""
    for (const [name, value] of values) keyId = (yield* secrets.store(districtId, name, value)).keyId
    const kept = new Set<string>(values.map(([name]) => name))
    const removed = yield* secrets.remove(districtId, ALL_NAMES.filter((name) => !kept.has(name)))
    return { stored: values.map(([name]) => name), removed, keyId }
  })

const valueOptions = (name: CredentialName, what: string) => ({
  file: Options.text(`${name}-file`).pipe(Options.withDescription(`a file holding the ${what}`), Options.optional),
  stdin: Options.boolean(`${name}-stdin`).pipe(Options.withDescription(`read the ${what} from standard input`))
})

const OPTIONS = {
  token: valueOptions("token", "Clever district-app token"),
  key: valueOptions("key", "OneRoster OAuth 1.0a consumer key"),
  secret: valueOptions("secret", "OneRoster OAuth 1.0a consumer secret"),
  bearer: valueOptions("bearer", "OneRoster bearer token")
}

const flags = (names: ReadonlyArray<CredentialName>) => names.map((n) => `--${n}-file or --${n}-stdin`).join(" with ")

export const setCredentials = Command.make(
  "set-credentials",
  {
    district: districtArg,
    tokenFile: OPTIONS.token.file,
    tokenStdin: OPTIONS.token.stdin,
    keyFile: OPTIONS.key.file,
    keyStdin: OPTIONS.key.stdin,
    secretFile: OPTIONS.secret.file,
    secretStdin: OPTIONS.secret.stdin,
    bearerFile: OPTIONS.bearer.file,
    bearerStdin: OPTIONS.bearer.stdin,
    clear: Options.boolean("clear").pipe(Options.withDescription("remove the stored credentials (the settings' files or variables apply again)")),
    by: actorOption
  },
  (args) =>
    Effect.gen(function*() {
      const district = yield* Effect.flatMap(RosterStore, (store) => store.getDistrict(args.district))
      const invalid = (message: string) => new InvalidDistrict({ district: district.id, message })
      const given = new Map<CredentialName, ValueSource>()
      const pairs = { token: [args.tokenFile, args.tokenStdin], key: [args.keyFile, args.keyStdin], secret: [args.secretFile, args.secretStdin], bearer: [args.bearerFile, args.bearerStdin] } as const
      for (const name of ALL_NAMES) {
        const [file, stdin] = pairs[name]
        if (Option.isSome(file) && stdin) return yield* invalid(`give --${name}-file or --${name}-stdin, not both`)
        if (Option.isSome(file)) given.set(name, { flag: `${name}-file`, file: file.value })
        else if (stdin) given.set(name, { flag: `${name}-stdin`, stdin: true })
      }

      if (args.clear) {
        if (given.size > 0) return yield* invalid("--clear takes no values")
        const removed = yield* audited(Effect.flatMap(Secrets, (secrets) => secrets.remove(district.id)), (names) => ({
          actor: args.by,
          action: "district.clear-credentials",
          districtId: district.id,
          subject: `district ${district.id}`,
          details: { credentials: names }
        }))
        return yield* Console.log(
          removed.length === 0 ? `district ${district.id} has no stored credentials` : `removed the stored ${removed.join(", ")} of district ${district.id}`
        )
      }

      const wanted = credentialNamesOf(district)
      if (typeof wanted === "string") return yield* invalid(wanted)
      const auth = district.provider === "oneroster-rest" ? ` (auth ${String(district.settings["auth"])})` : ""
      const extra = [...given.keys()].filter((name) => !wanted.includes(name))
      const missing = wanted.filter((name) => !given.has(name))
      if (extra.length > 0 || missing.length > 0) return yield* invalid(`a ${district.provider} district${auth} takes ${flags(wanted)}`)
      if ([...given.values()].filter((s) => "stdin" in s).length > 1) return yield* invalid("only one value can come from standard input")

      const values: Array<readonly [CredentialName, string]> = []
      for (const name of wanted) values.push([name, yield* readValue(given.get(name)!).pipe(Effect.mapError(invalid))])
      const result = yield* audited(storeCredentials(district.id, values), (r) => ({
        actor: args.by,
        action: "district.set-credentials",
        districtId: district.id,
        subject: `district ${district.id}`,
        details: { credentials: r.stored, removed: r.removed, keyId: r.keyId }
      }))
      yield* Console.log(
        `stored ${result.stored.join(" and ")} of district ${district.id}, encrypted with key ${result.keyId}; ` +
          "used from the next sync, before any file or variable in its settings"
      )
    })
).pipe(Command.withDescription("store a district's provider credentials encrypted in the database (values from files or stdin, never arguments)"))
