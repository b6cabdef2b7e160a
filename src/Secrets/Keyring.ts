import { Config, Effect, Option } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { ProcessEnv } from "../Config/Environment.ts"
import { deriveKeyId, type Key, newKeyText, parseKey } from "./Cipher.ts"
import { SecretsKeyInvalid } from "./Errors.ts"

/**
 * Where the credentials keys come from. Never the database: a dump or a stolen backup must
 * not carry the key with the ciphertexts.
 *
 * - `rosterd.secrets.keyFile` (ROSTERD_SECRETS_KEY_FILE) or `rosterd.secrets.keyEnv`
 *   (ROSTERD_SECRETS_KEY_ENV, the *name* of a variable holding the key): the current key,
 *   32 bytes in base64 or hex. New values are sealed with it.
 * - `rosterd.secrets.keyId`: its name in the `key_id` column; default the first 8 hex of
 *   its SHA-256, so the same key always has the same id.
 * - `rosterd.secrets.previousKeyFiles` / `previousKeyEnvs`: retired keys, read only to open
 *   values sealed before a rotation. An entry `id=path` (or `id=VAR`) gives a retired key
 *   the custom id it had when it was current.
 * - Without DATABASE_URL and without a configured key (the embedded development setup),
 *   `<rosterd.dataDir>/secrets.key` is used, created (mode 0600) the first time a value is
 *   stored. With DATABASE_URL a key must be configured: a generated key beside a shared
 *   database would be lost with the machine that made it.
 *
 * Key files are read at each use, like provider secret files: a fixed or rotated file
 * needs no restart, and a broken key setting fails only what needs the key.
 */

const secrets = <A>(config: Config.Config<A>) => config.pipe(Config.nested("secrets"), Config.nested("rosterd"))
const optionalText = (name: string) => secrets(Config.option(Config.string(name))).pipe(Config.map(Option.filter((t) => t.trim() !== "")))
const list = (name: string) =>
  secrets(Config.array(Config.string(name))).pipe(Config.withDefault([] as Array<string>), Config.map((items) => items.map((i) => i.trim()).filter((i) => i !== "")))

export const SecretsSettings = Config.all({
  keyFile: optionalText("keyFile"),
  keyEnv: optionalText("keyEnv"),
  keyId: optionalText("keyId"),
  previousKeyFiles: list("previousKeyFiles"),
  previousKeyEnvs: list("previousKeyEnvs"),
  dataDir: Config.string("dataDir").pipe(Config.nested("rosterd"), Config.withDefault("./.rosterd")),
  externalDatabase: Config.option(Config.redacted("databaseUrl")).pipe(Config.map(Option.isSome))
})
export type SecretsSettings = Config.Config.Success<typeof SecretsSettings>

export interface Keyring {
  /** The key new values are sealed with; `undefined` when none is configured (yet). */
  readonly current: Key | undefined
  /** Where the current key comes from, for `secrets status` (a path or a variable name, never the key). */
  readonly source: string | undefined
  /** Every usable key by id: the current one and the previous ones. */
  readonly keys: ReadonlyMap<string, Key>
  /** The development key file to create when a value is stored and no key exists yet. */
  readonly devKeyFile: string | undefined
}

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/

const fromFile = (path: string) =>
  Effect.gen(function*() {
    const source = `the key file ${path}`
    const text = yield* Effect.try({
      try: () => Fs.readFileSync(path, "utf8"),
      catch: () => new SecretsKeyInvalid({ source, problem: "cannot be read" })
    })
    const bytes = parseKey(text)
    if (bytes === undefined) return yield* new SecretsKeyInvalid({ source, problem: "does not hold a 32-byte key in base64 or hex" })
    return bytes
  })

const fromEnv = (name: string) =>
  Effect.gen(function*() {
    const source = `the environment variable ${name}`
    const text = (yield* ProcessEnv)[name]?.trim() ?? ""
    if (text === "") return yield* new SecretsKeyInvalid({ source, problem: "is not set" })
    const bytes = parseKey(text)
    if (bytes === undefined) return yield* new SecretsKeyInvalid({ source, problem: "does not hold a 32-byte key in base64 or hex" })
    return bytes
  })

/** `id=where` or `where`: a retired key with its custom id, or with the derived one. */
const splitEntry = (entry: string) => {
  const at = entry.indexOf("=")
  return at > 0 && KEY_ID.test(entry.slice(0, at)) ? { id: entry.slice(0, at), where: entry.slice(at + 1) } : { id: undefined, where: entry }
}

export const loadKeyring = (settings: SecretsSettings): Effect.Effect<Keyring, SecretsKeyInvalid> =>
  Effect.gen(function*() {
    const invalid = (problem: string) => new SecretsKeyInvalid({ source: "rosterd.secrets", problem })
    if (Option.isSome(settings.keyFile) && Option.isSome(settings.keyEnv)) return yield* invalid("sets both keyFile and keyEnv: set one")
    if (Option.isSome(settings.keyId) && !KEY_ID.test(settings.keyId.value)) return yield* invalid("keyId must be 1-64 characters of A-Z a-z 0-9 . _ -")

    const keys = new Map<string, Key>()
    const add = (id: string, bytes: Buffer, source: string) =>
      Effect.gen(function*() {
        const known = keys.get(id)
        if (known !== undefined && !known.bytes.equals(bytes)) return yield* invalid(`names two different keys ${id} (${source} and another)`)
        const key = { id, bytes }
        keys.set(id, key)
        return key
      })

    let current: Key | undefined
    let source: string | undefined
    let devKeyFile: string | undefined
    if (Option.isSome(settings.keyFile) || Option.isSome(settings.keyEnv)) {
      const bytes = Option.isSome(settings.keyFile) ? yield* fromFile(settings.keyFile.value) : yield* fromEnv(Option.getOrThrow(settings.keyEnv))
      source = Option.isSome(settings.keyFile) ? `key file ${settings.keyFile.value}` : `environment variable ${Option.getOrThrow(settings.keyEnv)}`
      current = yield* add(Option.getOrElse(settings.keyId, () => deriveKeyId(bytes)), bytes, source)
    } else if (!settings.externalDatabase) {
      devKeyFile = NodePath.resolve(settings.dataDir, "secrets.key")
      if (Fs.existsSync(devKeyFile)) {
        const bytes = yield* fromFile(devKeyFile)
        source = `development key file ${devKeyFile}`
        current = yield* add(deriveKeyId(bytes), bytes, source)
        devKeyFile = undefined
      }
    }
    for (const entry of settings.previousKeyFiles) {
      const { id, where } = splitEntry(entry)
      const bytes = yield* fromFile(where)
      yield* add(id ?? deriveKeyId(bytes), bytes, `the key file ${where}`)
    }
    for (const entry of settings.previousKeyEnvs) {
      const { id, where } = splitEntry(entry)
      const bytes = yield* fromEnv(where)
      yield* add(id ?? deriveKeyId(bytes), bytes, `the environment variable ${where}`)
    }
    return { current, source, keys, devKeyFile }
  })

/**
 * Creates the development key file (mode 0600, exclusive create: two processes starting
 * together end up with the same key), or reads the one another process just made.
 */
export const ensureDevKey = (path: string): Effect.Effect<Key, SecretsKeyInvalid> =>
  Effect.gen(function*() {
    const created = yield* Effect.try({
      try: () => {
        Fs.mkdirSync(NodePath.dirname(path), { recursive: true, mode: 0o700 })
        try {
          Fs.writeFileSync(path, newKeyText(), { mode: 0o600, flag: "wx" })
          return true
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "EEXIST") return false
          throw error
        }
      },
      catch: () => new SecretsKeyInvalid({ source: `the development key file ${path}`, problem: "cannot be created" })
    })
    if (created) yield* Effect.logWarning(`generated a development credentials key at ${path} (mode 0600); configure rosterd.secrets.keyFile for production`)
    const bytes = yield* fromFile(path)
    return { id: deriveKeyId(bytes), bytes }
  })
