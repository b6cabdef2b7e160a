import { ProviderError } from "../Domain/Errors.ts"

/**
 * CSV that csv-parse gives up on, said without a cell: shared by the OneRoster CSV provider
 * (src/Providers/OneRosterCsv/CsvFeed.ts) and the operator's own CSV files (OperatorFile.ts).
 */

/** The physical line csv-parse stopped at, if it says. */
export const csvErrorLine = (cause: unknown): { readonly line?: number } => {
  const lines = typeof cause === "object" && cause !== null ? (cause as { readonly lines?: unknown }).lines : undefined
  return typeof lines === "number" ? { line: lines } : {}
}

/**
 * A file csv-parse gives up on. Its own messages can quote the cell it stopped in
 * ("Invalid Opening Quote: ... value is \"Mary \"", "got \"x\""), and a cell may be a name or
 * an e-mail, so they are never passed on: the message is rebuilt from the error's code
 * and line. Errors that are not csv-parse's (a read error of the file or zip) carry no
 * cell and are passed on as they are. (A record over the reader's size limit is the
 * reader's to say: the provider names its setting, CsvFeed.ts.)
 */
export const csvSyntaxError = (cause: unknown, file: string): ProviderError => {
  if (cause instanceof ProviderError) return cause // the ByteGuard's or the source's, already plain
  const { code, column } = (typeof cause === "object" && cause !== null ? cause : {}) as {
    readonly code?: unknown
    readonly column?: unknown
  }
  const line = csvErrorLine(cause)
  const field = typeof column === "number" ? ` (field ${column + 1})` : ""
  const malformed = (message: string, at: { readonly line?: number } = line) =>
    new ProviderError({ reason: "Malformed", message: `not valid CSV: ${message}`, file, ...at })
  switch (code) {
    case "CSV_QUOTE_NOT_CLOSED":
      // csv-parse reports the last line of the file here, not where the quote opened.
      return malformed("the file ends inside a quoted cell (a quote that is never closed)", {})
    case "INVALID_OPENING_QUOTE":
      return malformed(`a quote inside an unquoted cell${field}; a cell with quotes must be quoted, its quotes doubled`)
    case "CSV_INVALID_CLOSING_QUOTE":
    case "CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE":
      return malformed(`a quoted cell${field} is followed by other characters before the next comma`)
  }
  if (typeof code === "string" && code.startsWith("CSV_")) return malformed(`csv-parse error ${code}`)
  return malformed(cause instanceof Error ? cause.message : String(cause), {})
}
