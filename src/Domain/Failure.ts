import { Cause, Option } from "effect"

/**
 * A Postgres error, said without the data it may quote. The server's message, `detail`
 * and `where` can all hold a value of the row that failed (`invalid input syntax for type
 * date: "…"`, `Key (source_id)=(…) already exists`, `COPY stage_users, line 3, column
 * given_name: "…"`), and a row's values came from a provider: a name, an e-mail, a birth
 * date. So only the SQLSTATE and the names of the schema objects are passed on; an
 * operator finds the rest in the Postgres log, which is where it belongs.
 */
const SQLSTATES: Readonly<Record<string, string>> = {
  "08000": "connection exception",
  "08003": "connection does not exist",
  "08006": "connection failure",
  "22001": "value too long",
  "22003": "numeric value out of range",
  "22007": "invalid date or time format",
  "22008": "date or time out of range",
  "22021": "invalid byte sequence for the encoding",
  "22P02": "invalid text representation",
  "22P04": "bad COPY file format",
  "22P05": "untranslatable character",
  "23502": "not-null violation",
  "23503": "foreign key violation",
  "23505": "unique violation",
  "23514": "check violation",
  "25P02": "transaction aborted",
  "40001": "serialization failure",
  "40P01": "deadlock detected",
  "42501": "insufficient privilege",
  "42P01": "undefined table",
  "42703": "undefined column",
  "53100": "disk full",
  "53200": "out of memory",
  "53300": "too many connections",
  "57014": "query canceled",
  "57P01": "the server is shutting down",
  "P0001": "raised by a trigger or function"
}

interface PgErrorFields {
  readonly code?: unknown
  readonly schema?: unknown
  readonly table?: unknown
  readonly column?: unknown
  readonly constraint?: unknown
  readonly dataType?: unknown
  readonly message?: unknown
}

const isSqlState = (code: unknown): code is string => typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)

/** A schema object's name as Postgres reports it (identifiers only; anything else is left out). */
const objectName = (value: unknown): string | undefined =>
  typeof value === "string" && /^[A-Za-z_][A-Za-z0-9_$.]{0,127}$/.test(value) ? value : undefined

/** `database error 23505 (unique violation) on table users, constraint users_district_id_source_id_key`. */
export const describeDatabaseError = (error: unknown): string => {
  const fields = (typeof error === "object" && error !== null ? error : {}) as PgErrorFields
  if (!isSqlState(fields.code)) {
    // Not from the server (a refused or dropped connection, a client-side failure): its
    // message is the driver's or the OS's own, quoting no row.
    const message = error instanceof Error ? error.message.split("\n")[0]!.slice(0, 200) : "unknown cause"
    return `database unavailable or failing: ${message}`
  }
  const where = [
    ["table", objectName(fields.table)],
    ["column", objectName(fields.column)],
    ["constraint", objectName(fields.constraint)]
  ].filter(([, name]) => name !== undefined).map(([what, name]) => `${what} ${name}`)
  const name = SQLSTATES[fields.code]
  return `database error ${fields.code}${name === undefined ? "" : ` (${name})`}${where.length > 0 ? ` on ${where.join(", ")}` : ""}`
}

/** An @effect/sql `SqlError` (its own message is rosterd's or the library's; its cause is the server's). */
const describeSqlError = (error: { readonly message?: string; readonly cause?: unknown }) =>
  `${error.message ?? "database failure"}: ${describeDatabaseError(error.cause)}`

const isSqlError = (error: unknown): error is { readonly _tag: "SqlError"; readonly message?: string; readonly cause?: unknown } =>
  typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "SqlError"

/**
 * A one-line, PII-free reason for the run record, `/status`, logs and the CLI. Database
 * errors never carry the server's message, `detail` or `where` (see `describeDatabaseError`).
 */
export const describeFailure = (cause: Cause.Cause<unknown>): { reason: string; message: string } => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value as { _tag?: string; reason?: string; message?: string; where?: string; cause?: unknown }
    if (error._tag === "ProviderError") return { reason: error.reason ?? "Provider", message: `${error.where ?? ""}${error.message}` }
    if (isSqlError(error)) return { reason: "Database", message: describeSqlError(error) }
    return { reason: error._tag ?? "Error", message: error.message ?? String(error) }
  }
  if (Cause.isInterruptedOnly(cause)) return { reason: "Interrupted", message: "the run was interrupted (shutdown)" }
  const defect = Cause.dieOption(cause)
  return {
    reason: "Defect",
    message: Option.match(defect, {
      onNone: () => "unexpected failure",
      onSome: (d) =>
        // A database error turned into a defect (`Effect.orDie`) quotes data like any other.
        isSqlError(d)
          ? describeSqlError(d)
          : isSqlState((d as PgErrorFields | null)?.code)
          ? describeDatabaseError(d)
          : d instanceof Error
          ? d.message
          : String(d)
    })
  }
}
