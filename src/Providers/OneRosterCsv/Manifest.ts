import { parse } from "csv-parse"
import { Effect } from "effect"
import { ProviderError } from "../../Domain/Errors.ts"
import { csvFileError, csvParseOptions } from "./CsvFeed.ts"
import type { CsvLimits } from "./CsvLimits.ts"
import type { CsvSource } from "./CsvSource.ts"

export type FileMode = "bulk" | "delta" | "absent"

export interface Manifest {
  readonly oneRosterVersion: string
  /** `file.users` → mode. Keys the manifest does not mention are absent. */
  readonly fileModes: ReadonlyMap<string, FileMode>
}

const MANIFEST = "manifest.csv"

/**
 * A manifest is a few hundred bytes: `propertyName,value` lines. Bounded: the file by
 * `rosterd.csv.maxManifestBytes`, a line by `MAX_LINE` bytes, the properties by
 * `MAX_PROPERTIES`. Its values are provider-controlled: a message quotes one only when it is
 * short and plain (`PLAIN`); a property listed twice is refused (which one holds cannot be told).
 */
const MAX_LINE = 4096
const MAX_PROPERTIES = 200
const PLAIN = /^[A-Za-z0-9._-]{1,40}$/

/** Reads `manifest.csv` (`propertyName,value`). A set without one is not a OneRoster set. */
export const readManifest = (source: CsvSource, limits: CsvLimits): Effect.Effect<Manifest, ProviderError> =>
  Effect.gen(function*() {
    if (!source.has(MANIFEST)) {
      return yield* new ProviderError({
        reason: "MissingFile",
        message: `a OneRoster CSV set needs a manifest.csv; none in ${source.description}`,
        file: MANIFEST
      })
    }
    const input = yield* source.open(MANIFEST, {
      maxBytes: limits.maxManifestBytes,
      maxBytesSetting: "rosterd.csv.maxManifestBytes",
      maxLineBytes: MAX_LINE,
      maxLineSetting: "a manifest line"
    })
    const lineLimits = { ...limits, maxRecordBytes: MAX_LINE }
    const rows = yield* Effect.tryPromise({
      try: async () => {
        const out: Array<{ readonly line: number; readonly cells: ReadonlyArray<string> }> = []
        const parser = input.pipe(parse({ ...csvParseOptions(lineLimits), skip_empty_lines: true, info: true }))
        input.on("error", (cause) => parser.destroy(cause))
        for await (const { record, info } of parser as AsyncIterable<{ record: Array<string>; info: { lines: number } }>) {
          if (out.length > MAX_PROPERTIES) {
            parser.destroy()
            input.destroy()
            throw new ProviderError({ reason: "TooLarge", message: `more than ${MAX_PROPERTIES} properties: not a OneRoster manifest`, file: MANIFEST })
          }
          out.push({ line: info.lines, cells: record })
        }
        return out
      },
      catch: (cause) => csvFileError(cause, MANIFEST, lineLimits)
    }).pipe(Effect.ensuring(Effect.sync(() => input.destroy())))
    yield* source.unchanged
    const [header, ...properties] = rows
    if (header === undefined || header.cells[0]?.trim() !== "propertyName" || header.cells[1]?.trim() !== "value") {
      return yield* new ProviderError({
        reason: "BadHeader",
        message: `the header must be "propertyName,value"`,
        file: MANIFEST,
        line: 1
      })
    }
    const values = new Map<string, string>()
    const lines = new Map<string, number>()
    const fileModes = new Map<string, FileMode>()
    for (const { cells, line } of properties) {
      const name = cells[0]?.trim() ?? ""
      const value = cells[1]?.trim() ?? ""
      const named = PLAIN.test(name) ? name : "a property"
      const first = lines.get(name)
      if (first !== undefined) {
        return yield* new ProviderError({
          reason: "Malformed",
          message: `${named} is listed twice (lines ${first} and ${line})`,
          file: MANIFEST,
          line
        })
      }
      lines.set(name, line)
      values.set(name, value)
      if (name.startsWith("file.")) {
        const mode = value.toLowerCase()
        if (mode !== "bulk" && mode !== "delta" && mode !== "absent") {
          return yield* new ProviderError({
            reason: "Malformed",
            message: `${named} must be bulk, delta or absent`,
            file: MANIFEST,
            line
          })
        }
        fileModes.set(name, mode)
      }
    }
    const oneRosterVersion = values.get("oneroster.version") ?? ""
    if (oneRosterVersion !== "1.2" && oneRosterVersion !== "1.1" && oneRosterVersion !== "1.0") {
      return yield* new ProviderError({
        reason: "Unsupported",
        message: oneRosterVersion === ""
          ? "the manifest does not say its oneroster.version; rosterd reads OneRoster 1.0, 1.1 and 1.2 sets"
          : `oneroster.version is ${PLAIN.test(oneRosterVersion) ? oneRosterVersion : "not a version number"}; rosterd reads OneRoster 1.0, 1.1 and 1.2 CSV sets`,
        file: MANIFEST
      })
    }
    return { oneRosterVersion, fileModes }
  })
