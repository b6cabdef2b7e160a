import { parse } from "csv-parse"
import { Effect } from "effect"
import { ProviderError } from "../../Domain/Errors.ts"
import { csvSyntaxError } from "./CsvFeed.ts"
import type { CsvSource } from "./CsvSource.ts"

export type FileMode = "bulk" | "delta" | "absent"

export interface Manifest {
  readonly oneRosterVersion: string
  /** `file.users` → mode. Keys the manifest does not mention are absent. */
  readonly fileModes: ReadonlyMap<string, FileMode>
}

const MANIFEST = "manifest.csv"

/** Reads `manifest.csv` (`propertyName,value`). A set without one is not a OneRoster set. */
export const readManifest = (source: CsvSource): Effect.Effect<Manifest, ProviderError> =>
  Effect.gen(function*() {
    if (!source.has(MANIFEST)) {
      return yield* new ProviderError({
        reason: "MissingFile",
        message: `a OneRoster CSV set needs a manifest.csv; none in ${source.description}`,
        file: MANIFEST
      })
    }
    const input = yield* source.open(MANIFEST)
    const rows = yield* Effect.tryPromise({
      try: async () => {
        const out: Array<{ readonly line: number; readonly cells: ReadonlyArray<string> }> = []
        const parser = input.pipe(parse({ bom: true, skip_empty_lines: true, relax_column_count: true, info: true }))
        for await (const { record, info } of parser as AsyncIterable<{ record: Array<string>; info: { lines: number } }>) {
          out.push({ line: info.lines, cells: record })
        }
        return out
      },
      catch: (cause) => csvSyntaxError(cause, MANIFEST)
    })
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
    const fileModes = new Map<string, FileMode>()
    for (const { cells, line } of properties) {
      const name = cells[0]?.trim() ?? ""
      const value = cells[1]?.trim() ?? ""
      values.set(name, value)
      if (name.startsWith("file.")) {
        const mode = value.toLowerCase()
        if (mode !== "bulk" && mode !== "delta" && mode !== "absent") {
          return yield* new ProviderError({
            reason: "Malformed",
            message: `${name} must be bulk, delta or absent`,
            file: MANIFEST,
            line
          })
        }
        fileModes.set(name, mode)
      }
    }
    const oneRosterVersion = values.get("oneroster.version") ?? ""
    if (oneRosterVersion !== "1.1" && oneRosterVersion !== "1.0") {
      return yield* new ProviderError({
        reason: "Unsupported",
        message: oneRosterVersion === ""
          ? "the manifest does not say its oneroster.version; rosterd reads OneRoster 1.1 sets"
          : `oneroster.version is ${oneRosterVersion}; rosterd reads OneRoster 1.1 CSV sets (1.2 is not supported yet)`,
        file: MANIFEST
      })
    }
    return { oneRosterVersion, fileModes }
  })
