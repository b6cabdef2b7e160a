import { Effect, Schema } from "effect"
import * as NodePath from "node:path"
import { DistrictId, type NewDistrict, ProviderKind, TimeZone } from "../Domain/District.ts"
import { DistrictRules } from "../Domain/DistrictRules.ts"
import { ConfigFile, ConfigFileError } from "./ConfigFile.ts"
import { plainSecretIn } from "./PlainSecrets.ts"

/**
 * Districts declared in the config file (`districts:`), registered by the daemon at start.
 * Relative paths are relative to the config file's folder, so the bundled demo district
 * works from any working directory.
 */
const DeclaredDistrict = Schema.Struct({
  id: DistrictId,
  name: Schema.optional(Schema.String),
  provider: ProviderKind,
  timezone: Schema.optionalWith(TimeZone, { default: () => "UTC" }),
  path: Schema.optional(Schema.String),
  /** District rules (scope, co-teacher limit): see src/Domain/DistrictRules.ts. */
  rules: Schema.optional(Schema.encodedSchema(DistrictRules))
})

const DeclaredDistricts = Schema.Struct({
  districts: Schema.optionalWith(Schema.NullOr(Schema.Array(DeclaredDistrict)), { default: () => [] })
})

export const declaredDistricts: Effect.Effect<ReadonlyArray<NewDistrict>, ConfigFileError, ConfigFile> = Effect.gen(function*() {
  const file = yield* ConfigFile
  // Also here: a document given as a value (ConfigFile.fromDocument) skips the file's own check.
  const plainSecret = plainSecretIn(file.document)
  if (plainSecret !== undefined) return yield* new ConfigFileError({ path: file.path, message: plainSecret })
  const decoded = yield* Schema.decodeUnknown(DeclaredDistricts)(file.document, { onExcessProperty: "ignore" }).pipe(
    Effect.mapError((error) => new ConfigFileError({ path: file.path, message: `districts: ${error.message.split("\n").slice(-1)[0]}` }))
  )
  for (const d of decoded.districts ?? []) {
    if (d.rules === undefined) continue
    yield* Schema.decodeUnknown(DistrictRules)(d.rules, { onExcessProperty: "error" }).pipe(
      Effect.mapError((error) => new ConfigFileError({ path: file.path, message: `districts[${d.id}].rules: ${error.message.split("\n").slice(-1)[0]}` }))
    )
  }
  const base = NodePath.dirname(file.path)
  return (decoded.districts ?? []).map((d) => ({
    id: d.id,
    name: d.name ?? d.id,
    provider: d.provider,
    timezone: d.timezone,
    settings: d.path === undefined ? {} : { path: NodePath.resolve(base, d.path) },
    rules: d.rules ?? {}
  }))
})
