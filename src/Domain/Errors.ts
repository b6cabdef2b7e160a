import { Schema } from "effect"

/**
 * Errors that cross a boundary (CLI output, HTTP, the run record). Messages never carry
 * personal data: they name files, lines, columns and source IDs, never values.
 */

/** Why a provider could not deliver a snapshot. Any of these fails the run before anything is applied. */
export const ProviderFailure = Schema.Literal(
  "MissingFile", // a required file of a CSV set is absent
  "BadHeader", // a CSV header lacks a required column
  "Malformed", // a file or page that cannot be parsed at all
  "Unsupported", // a version or mode we do not read
  "Unreachable", // network, file system
  "Unauthorized", // credentials refused
  "Truncated", // a listing that ended early
  "TooLarge", // a response, a listing or a total past its cap (rosterd.providers.*); a CSV record, file or zip past its cap (rosterd.csv.*)
  "Unsafe", // a link or redirect to another origin, or from https to http: not followed; a link, a special file or a path outside a CSV set: not read
  "NotReady" // a CSV set still being written: the run is deferred (recorded `deferred`, not failed) and tried again later
)
export type ProviderFailure = typeof ProviderFailure.Type

export class ProviderError extends Schema.TaggedError<ProviderError>()("ProviderError", {
  reason: ProviderFailure,
  message: Schema.String,
  file: Schema.optional(Schema.String),
  line: Schema.optional(Schema.Number),
  /** With `NotReady`: when to look again. */
  retryAfterMillis: Schema.optional(Schema.Number)
}) {
  /** One line for operators: `users.csv line 12: ...`. */
  get where(): string {
    return this.file === undefined ? "" : this.line === undefined ? `${this.file}: ` : `${this.file} line ${this.line}: `
  }
}

export class DistrictNotFound extends Schema.TaggedError<DistrictNotFound>()("DistrictNotFound", {
  district: Schema.String
}) {
  override get message() {
    return `no district "${this.district}" (see \`rosterd district list\`)`
  }
}

export class DistrictExists extends Schema.TaggedError<DistrictExists>()("DistrictExists", {
  district: Schema.String
}) {
  override get message() {
    return `district "${this.district}" already exists`
  }
}

/** Another process (a replica, or the daemon while the CLI asks) holds the district's lease. */
export class DistrictBusy extends Schema.TaggedError<DistrictBusy>()("DistrictBusy", {
  district: Schema.String
}) {
  override get message() {
    return `district "${this.district}" is being synced by another process right now; try again when that run ends`
  }
}

export class InvalidDistrict extends Schema.TaggedError<InvalidDistrict>()("InvalidDistrict", {
  district: Schema.String,
  message: Schema.String
}) {}

/** The requested run cannot be done with this source (e.g. `--full` on a delta CSV export). */
export class ModeNotAvailable extends Schema.TaggedError<ModeNotAvailable>()("ModeNotAvailable", {
  district: Schema.String,
  message: Schema.String
}) {}
