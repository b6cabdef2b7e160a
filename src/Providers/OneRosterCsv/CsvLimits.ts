import { Config, ConfigError, Either } from "effect"
import { parseByteSize } from "../Limits.ts"

/**
 * How much a OneRoster CSV set may hand one run (`rosterd.csv.*`), so a broken or hostile
 * file fails the run with a clear reason instead of taking the daemon down (issue 14,
 * "bounded files"). The defaults are generous: a 1.2-million-student district (an
 * enrollments.csv of about 1 GB, compressing about 17:1) reads with room to spare.
 *
 * - `maxRecordBytes`: one record (and one physical line) of a CSV file. A line of 10⁸
 *   commas is refused at its first megabyte, not parsed into 10⁸ empty cells.
 * - `maxColumns`: fields in a header; a row with more than the header's width plus
 *   `EXTRA_FIELDS` fails the file (its quoting is broken, not one value).
 * - `maxFileBytes`: one file of the set, in a folder or a zip entry once inflated.
 * - `maxManifestBytes`: manifest.csv (a real one is a few hundred bytes).
 * - `zip.maxEntries`, `zip.maxTotalBytes`, `zip.maxRatio`: a zip's entry count, inflated
 *   bytes of all entries, and compression ratio. Checked against the central directory
 *   before anything is inflated, and again on the real bytes while inflating (declared
 *   sizes can lie).
 * - `settleSeconds`: a file of the set modified this recently means the set is still being
 *   written: the run is deferred, not failed. `settleRecheckMillis`: the interval between
 *   the two looks that must see the same sizes. `settleSeconds: 0` turns both off (a set
 *   moved into place in one rename).
 */
export interface CsvLimits {
  readonly maxRecordBytes: number
  readonly maxColumns: number
  readonly maxFileBytes: number
  readonly maxManifestBytes: number
  readonly zip: {
    readonly maxEntries: number
    readonly maxTotalBytes: number
    readonly maxRatio: number
  }
  readonly settleSeconds: number
  readonly settleRecheckMillis: number
}

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

export const defaultCsvLimits: CsvLimits = {
  maxRecordBytes: 1 * MiB,
  maxColumns: 1000,
  maxFileBytes: 8 * GiB,
  maxManifestBytes: 1 * MiB,
  zip: { maxEntries: 10_000, maxTotalBytes: 16 * GiB, maxRatio: 200 },
  settleSeconds: 60,
  settleRecheckMillis: 1000
}

/** A row may be this many fields wider than its header and still be one bad row (a finding). */
export const EXTRA_FIELDS = 64

/** Inflated entries smaller than this are not judged by their compression ratio (a tiny file of blanks compresses well). */
export const RATIO_FLOOR_BYTES = 1 * MiB

const byteSize = (name: string, fallback: number) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const bytes = parseByteSize(text)
      return bytes === undefined
        ? Either.left(ConfigError.InvalidData([name], `expected a size in bytes, such as 1048576 or "1 MiB"`))
        : Either.right(bytes)
    }),
    Config.withDefault(fallback)
  )

const positive = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `${name} must be a positive whole number`, validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

const nonNegative = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `${name} must be 0 or more`, validation: (n) => n >= 0 }),
    Config.withDefault(fallback)
  )

/** `rosterd.csv.*`, read by the provider's layer (src/Providers/Providers.ts). */
export const CsvLimitsConfig: Config.Config<CsvLimits> = Config.all({
  maxRecordBytes: byteSize("maxRecordBytes", defaultCsvLimits.maxRecordBytes),
  maxColumns: positive("maxColumns", defaultCsvLimits.maxColumns),
  maxFileBytes: byteSize("maxFileBytes", defaultCsvLimits.maxFileBytes),
  maxManifestBytes: byteSize("maxManifestBytes", defaultCsvLimits.maxManifestBytes),
  zip: Config.all({
    maxEntries: positive("maxEntries", defaultCsvLimits.zip.maxEntries),
    maxTotalBytes: byteSize("maxTotalBytes", defaultCsvLimits.zip.maxTotalBytes),
    maxRatio: positive("maxRatio", defaultCsvLimits.zip.maxRatio)
  }).pipe(Config.nested("zip")),
  settleSeconds: nonNegative("settleSeconds", defaultCsvLimits.settleSeconds),
  settleRecheckMillis: nonNegative("settleRecheckMillis", defaultCsvLimits.settleRecheckMillis)
}).pipe(Config.nested("csv"), Config.nested("rosterd"))

/** `1048576` → `1 MiB`, for messages. */
export const showBytes = (bytes: number): string =>
  bytes >= GiB && bytes % GiB === 0
    ? `${bytes / GiB} GiB`
    : bytes >= MiB && bytes % MiB === 0
    ? `${bytes / MiB} MiB`
    : bytes >= KiB && bytes % KiB === 0
    ? `${bytes / KiB} KiB`
    : `${bytes} bytes`
