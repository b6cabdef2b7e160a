import { ParseResult, Schema } from "effect"
import type { RecordStatus } from "../../Domain/Roster.ts"
import { isCalendarDate } from "../../Domain/Values.ts"

/**
 * Column decoders for OneRoster CSV cells. Each decodes from the raw cell string.
 *
 * Every schema carries a `description` saying what the column expects: when a cell fails,
 * the finding names the file, the line, the column and that expectation — never the value,
 * which may be personal data (a birth date, an e-mail).
 *
 * Real exports deviate from the spec (`Scheduled`, `TRUE`, `inactive`, stray spaces), so
 * enumerations and booleans are read case-insensitively and trimmed.
 */

/**
 * Each column below decodes a cell with a plain function (`(cell) => value`, or
 * `CELL_REFUSED`), which its schema runs and carries as an annotation (`CellDecoderId`).
 * The column-wise decoder (CellMemo.ts) calls the function itself, without Schema's
 * machinery per cell: an enrollment's own ID and its user's are new on every row, and
 * decoding them through Schema was a fifth of staging's allocations. The schema and the
 * function cannot disagree: the schema's decode is the function.
 */
export const CELL_REFUSED: unique symbol = Symbol.for("rosterd/CellRefused")
export const CellDecoderId: unique symbol = Symbol.for("rosterd/CellDecoder")
export type CellDecoder<A> = (cell: string) => A | typeof CELL_REFUSED

/** The schema of a column decoded by `decode`, encoded back by `encode`. */
const column = <A, I extends Schema.Schema.Any>(
  to: I & Schema.Schema<A, any, never>,
  decode: CellDecoder<A>,
  encode: (value: A) => string,
  description: string
) =>
  Schema.transformOrFail(Schema.String, to, {
    strict: false,
    decode: (raw, _, ast) => {
      const value = decode(raw)
      return value === CELL_REFUSED ? ParseResult.fail(new ParseResult.Type(ast, raw)) : ParseResult.succeed(value)
    },
    encode: (value) => ParseResult.succeed(encode(value as A))
  }).annotations({ description, [CellDecoderId]: decode })

/** A required identifier or text: trimmed, non-empty. */
export const requiredText: CellDecoder<string> = (raw) => {
  const value = raw.trim()
  return value.length > 0 ? value : CELL_REFUSED
}
export const RequiredText = column(Schema.String, requiredText, (value) => value, "a non-empty value")

/** Optional text: trimmed, an empty cell is `null`. */
export const optionalText: CellDecoder<string | null> = (raw) => {
  const value = raw.trim()
  return value.length > 0 ? value : null
}
export const OptionalText = column(Schema.NullOr(Schema.String), optionalText, (value) => value ?? "", "text")

/** `active` (or empty, as bulk files usually leave it) / `tobedeleted`; OneRoster 1.0's `inactive` reads as `tobedeleted`. */
export const status: CellDecoder<RecordStatus> = (raw) => {
  if (raw === "" || raw === "active") return "active"
  const value = raw.trim().toLowerCase()
  if (value === "" || value === "active") return "active"
  if (value === "tobedeleted" || value === "inactive") return "tobedeleted"
  return CELL_REFUSED
}
export const Status = column(Schema.Literal("active", "tobedeleted"), status, (value) => value, "active or tobedeleted")

/**
 * A calendar date `YYYY-MM-DD` that exists (no 2023-02-30). Whether it is in its field's
 * range (a birth date after 1900…) is the value guard's to judge, for every provider alike.
 */
export const requiredDate: CellDecoder<string> = (raw) => {
  const value = raw.trim()
  return isCalendarDate(value) ? value : CELL_REFUSED
}
export const RequiredDate = column(Schema.String, requiredDate, (value) => value, "a date in YYYY-MM-DD form")

export const optionalDate: CellDecoder<string | null> = (raw) => {
  const value = raw.trim()
  if (value === "") return null
  return isCalendarDate(value) ? value : CELL_REFUSED
}
export const OptionalDate = column(Schema.NullOr(Schema.String), optionalDate, (value) => value ?? "", "empty or a date in YYYY-MM-DD form")

/** A comma list inside one cell (`"09,10,11"`); items trimmed, empty items dropped. */
export const list: CellDecoder<ReadonlyArray<string>> = (raw) => {
  if (raw.length === 0) return []
  const out: Array<string> = []
  for (const item of raw.split(",")) {
    const value = item.trim()
    if (value.length > 0) out.push(value)
  }
  return out
}
export const List = column(Schema.Array(Schema.String), list, (items) => items.join(","), "a comma-separated list")

/** `true` / `false` in any case; an empty cell takes the given default. */
export const Bool = (whenEmpty: boolean) => {
  const bool: CellDecoder<boolean> = (raw) => {
    if (raw === "") return whenEmpty
    if (raw === "true") return true
    if (raw === "false") return false
    const value = raw.trim().toLowerCase()
    if (value === "") return whenEmpty
    if (value === "true") return true
    if (value === "false") return false
    return CELL_REFUSED
  }
  return column(Schema.Boolean, bool, (value) => (value ? "true" : "false"), "true or false")
}

/** One of `values`, matched case-insensitively, returned in its canonical spelling. */
export const Enum = <const Values extends ReadonlyArray<string>>(...values: Values) => {
  const exact = new Set<string>(values)
  const canonical = new Map(values.map((value) => [value.toLowerCase(), value] as const))
  const one: CellDecoder<Values[number]> = (raw) =>
    (exact.has(raw) ? raw : canonical.get(raw.trim().toLowerCase())) as Values[number] | undefined ?? CELL_REFUSED
  return column(Schema.Literal(...values), one, (value) => value, `one of ${values.join(", ")}`)
}

/** Like `Enum` but an empty cell is `null`. */
export const OptionalEnum = <const Values extends ReadonlyArray<string>>(...values: Values) => {
  const exact = new Set<string>(values)
  const canonical = new Map(values.map((value) => [value.toLowerCase(), value] as const))
  const one: CellDecoder<Values[number] | null> = (raw) => {
    if (exact.has(raw)) return raw as Values[number]
    const trimmed = raw.trim()
    if (trimmed === "") return null
    return (canonical.get(trimmed.toLowerCase()) as Values[number] | undefined) ?? CELL_REFUSED
  }
  return column(Schema.NullOr(Schema.Literal(...values)), one, (value) => value ?? "", `empty or one of ${values.join(", ")}`)
}

/**
 * `users.csv` `userIds`: `{type:identifier}` items, comma separated (`{LDAP:12},{LTI:15}`);
 * the type is before the first colon. Never fails: what is not such an item (a cell without
 * braces is read as `type:identifier` items split on commas) yields no entry, and the user
 * applies without it.
 */
export const UserIds = Schema.transform(Schema.String, Schema.Array(Schema.Struct({ type: Schema.NullOr(Schema.String), identifier: Schema.String })), {
  strict: true,
  decode: (raw) => {
    const text = raw.trim()
    if (text.length === 0) return []
    const braced = [...text.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1]!)
    const items = braced.length > 0 ? braced : text.split(",")
    const out: Array<{ readonly type: string | null; readonly identifier: string }> = []
    for (const item of items) {
      const colon = item.indexOf(":")
      const type = colon < 0 ? "" : item.slice(0, colon).trim()
      const identifier = (colon < 0 ? item : item.slice(colon + 1)).trim()
      if (identifier.length > 0) out.push({ type: type.length > 0 ? type : null, identifier })
    }
    return out
  },
  encode: (items) => items.map((i) => `{${i.type ?? ""}:${i.identifier}}`).join(",")
}).annotations({ description: "{type:identifier} items" })
