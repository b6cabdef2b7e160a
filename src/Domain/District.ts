import { Schema } from "effect"
import { DistrictRules } from "./DistrictRules.ts"

/** Ids are used in CLI arguments, file names and metrics labels: keep them boring. */
export const DistrictId = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9][a-z0-9_-]{0,62}$/, {
    message: () => "a district id is 1-63 characters of a-z, 0-9, _ and -, starting with a letter or digit"
  }),
  Schema.brand("DistrictId")
)
export type DistrictId = typeof DistrictId.Type

export const ProviderKind = Schema.Literal("oneroster-csv", "clever", "oneroster-rest")
export type ProviderKind = typeof ProviderKind.Type

/** Where the roster of each record came from, for the platform to badge. */
export const RosterSource = Schema.Literal("csv", "clever", "classlink", "in-product", "manual")
export type RosterSource = typeof RosterSource.Type

export const rosterSourceOf = (provider: ProviderKind): RosterSource =>
  provider === "oneroster-csv" ? "csv" : provider === "clever" ? "clever" : "classlink"

/** Settings of a OneRoster CSV district: a folder or a zip of a OneRoster 1.1 bulk (or delta) set. */
export const CsvSettings = Schema.Struct({
  path: Schema.NonEmptyTrimmedString
})
export type CsvSettings = typeof CsvSettings.Type

export const TimeZone = Schema.String.pipe(
  Schema.filter((zone) => {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: zone })
      return true
    } catch {
      return `unknown IANA time zone "${zone}"`
    }
  })
)

export class District extends Schema.Class<District>("District")({
  id: DistrictId,
  name: Schema.String,
  provider: ProviderKind,
  timezone: TimeZone,
  /** Provider settings as stored (jsonb); decoded by the provider that needs them. Never secrets. */
  settings: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  /** Scope, co-teacher limit… (see DistrictRules.ts); defaults filled in. */
  rules: DistrictRules,
  /** `config` districts are (re)declared by the config file at daemon start; `cli` ones by `district add`. */
  origin: Schema.Literal("config", "cli")
}) {
  get rosterSource(): RosterSource {
    return rosterSourceOf(this.provider)
  }
}

/** A district as `district add` or the config file declares it (src/Store/RosterStore.ts stores it). */
export interface NewDistrict {
  readonly id: DistrictId
  readonly name: string
  readonly provider: ProviderKind
  readonly timezone: string
  readonly settings: Readonly<Record<string, unknown>>
  /** As written by the operator (defaults are filled in when read). */
  readonly rules?: Readonly<Record<string, unknown>>
}
