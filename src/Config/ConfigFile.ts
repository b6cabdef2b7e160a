import { ConfigProvider, Effect, Layer, Schema } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import YAML from "yaml"
import { ProcessEnv } from "./Environment.ts"
import { plainSecretIn } from "./PlainSecrets.ts"

/**
 * rosterd's configuration: `config/rosterd.yaml` (or the file named by `ROSTERD_CONFIG`),
 * overlaid key by key by the environment.
 *
 * Every scalar in the file has an environment name: its path in CONSTANT_CASE joined by
 * `_` (`rosterd.http.port` → `ROSTERD_HTTP_PORT`); lists are comma-separated. Services
 * read their own keys with `Config.*` inside their layers; this module only installs the
 * provider. The `districts:` list is data, not settings: it is decoded by the daemon.
 */

export class ConfigFileError extends Schema.TaggedError<ConfigFileError>()("ConfigFileError", {
  path: Schema.String,
  message: Schema.String
}) {}

export const DEFAULT_CONFIG_PATH = "config/rosterd.yaml"

export class ConfigFile extends Effect.Service<ConfigFile>()("rosterd/ConfigFile", {
  effect: Effect.gen(function*() {
    const explicit = (yield* ProcessEnv).ROSTERD_CONFIG
    const path = NodePath.resolve(explicit ?? DEFAULT_CONFIG_PATH)
    const text = yield* Effect.try({
      try: () => (Fs.existsSync(path) || explicit !== undefined ? Fs.readFileSync(path, "utf8") : ""),
      catch: (cause) => new ConfigFileError({ path, message: `cannot read the config file: ${String(cause)}` })
    })
    const document = yield* Effect.try({
      try: () => (YAML.parse(text) ?? {}) as unknown,
      catch: (cause) =>
        new ConfigFileError({
          path,
          message: `not valid YAML: ${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)}`
        })
    })
    if (typeof document !== "object" || document === null || Array.isArray(document)) {
      return yield* new ConfigFileError({ path, message: "the config file must be a YAML mapping" })
    }
    // Refused before any command runs: a secret in the file is a leak whether or not it is used.
    const plainSecret = plainSecretIn(document as Record<string, unknown>)
    if (plainSecret !== undefined) return yield* new ConfigFileError({ path, message: plainSecret })
    return { path, document: document as Readonly<Record<string, unknown>> }
  })
}) {
  /** A config file given as a value (tests). */
  static fromDocument(document: Record<string, unknown>, path = "<inline>") {
    return Layer.succeed(ConfigFile, ConfigFile.make({ path, document }))
  }
}

const constantCase = (segment: string) =>
  segment.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/[-.\s]+/g, "_").toUpperCase()

/** Flattens a YAML document to `ROSTERD_HTTP_PORT`-style keys. `districts` is skipped (data, not settings). */
export const flattenConfig = (document: Readonly<Record<string, unknown>>): Map<string, string> => {
  const out = new Map<string, string>()
  const walk = (value: unknown, path: ReadonlyArray<string>) => {
    if (value === null || value === undefined) return
    if (Array.isArray(value)) {
      out.set(path.join("_"), value.map(String).join(","))
    } else if (typeof value === "object") {
      for (const [key, inner] of Object.entries(value)) walk(inner, [...path, constantCase(key)])
    } else {
      out.set(path.join("_"), String(value))
    }
  }
  for (const [key, value] of Object.entries(document)) {
    if (key !== "districts") walk(value, [constantCase(key)])
  }
  return out
}

/** File values, then the environment on top (env wins per key). */
export const configProviderFrom = (document: Readonly<Record<string, unknown>>, env: Readonly<Record<string, string | undefined>>) => {
  const merged = flattenConfig(document)
  for (const [key, value] of Object.entries(env)) if (value !== undefined) merged.set(key, value)
  return ConfigProvider.fromMap(merged, { pathDelim: "_", seqDelim: "," }).pipe(ConfigProvider.constantCase)
}

/** Installs the file + environment provider for everything built on top of it. */
export const ConfigProviderLive = Layer.unwrapEffect(
  Effect.map(Effect.all([ConfigFile, ProcessEnv]), ([file, env]) => Layer.setConfigProvider(configProviderFrom(file.document, env)))
)
