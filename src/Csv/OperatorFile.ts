import { parse } from "csv-parse"
import { Effect } from "effect"
import * as Fs from "node:fs"
import { csvSyntaxError } from "./Syntax.ts"

/** Why an operator's CSV file is refused: the problem, at a line when there is one. Never a cell's value. */
export interface CsvRefusal {
  readonly problem: string
  readonly line?: number
}

/** Refuses the file (throws: the reader turns it into the caller's error). */
export type Refuse = (problem: string, line?: number) => never

class Refused {
  constructor(readonly refusal: CsvRefusal) {}
}

const refuse: Refuse = (problem, line) => {
  throw new Refused(line === undefined ? { problem } : { problem, line })
}

/**
 * An operator's CSV file (`rosterd accounts import`, a re-key mapping file), read whole: a
 * header row, then records as wide as the header; blank lines are skipped, a BOM allowed.
 * `header` gets the trimmed column names and returns what reads each record; either may
 * `refuse` the file at a line. Any refusal fails the whole file as the caller's error
 * (`refused`), naming the problem and the line, never a cell (csv-parse's own messages are
 * rebuilt: Syntax.ts).
 */
export const readOperatorCsv = <E>(
  file: string,
  refused: (refusal: CsvRefusal) => E,
  header: (names: ReadonlyArray<string>, line: number, refuse: Refuse) => (record: ReadonlyArray<string>, line: number, refuse: Refuse) => void
): Effect.Effect<void, E> =>
  Effect.tryPromise({
    try: async () => {
      if (!Fs.existsSync(file)) refuse("the file does not exist")
      if (!Fs.statSync(file).isFile()) refuse("not a file")
      const input = Fs.createReadStream(file)
      const parser = input.pipe(parse({ bom: true, info: true, relax_column_count: true, skip_empty_lines: true }))
      input.on("error", (cause) => parser.destroy(cause))
      let read: ((record: ReadonlyArray<string>, line: number, refuse: Refuse) => void) | undefined
      let width = 0
      for await (const { info, record } of parser as AsyncIterable<{ record: Array<string>; info: { lines: number } }>) {
        const line = info.lines
        if (read === undefined) {
          const names = record.map((name) => name.trim())
          read = header(names, line, refuse)
          width = names.length
          continue
        }
        if (record.length !== width) refuse(`${record.length} fields where the header has ${width}`, line)
        read(record, line, refuse)
      }
      if (read === undefined) refuse("the file is empty (no header row)")
    },
    catch: (cause) => {
      if (cause instanceof Refused) return refused(cause.refusal)
      const error = csvSyntaxError(cause, file)
      return refused(error.line === undefined ? { problem: error.message } : { problem: error.message, line: error.line })
    }
  })
