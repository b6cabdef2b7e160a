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

/** A required identifier or text: trimmed, non-empty. */
export const RequiredText = Schema.transformOrFail(Schema.String, Schema.String, {
  strict: true,
  decode: (raw, _, ast) => {
    const value = raw.trim()
    return value.length > 0 ? ParseResult.succeed(value) : ParseResult.fail(new ParseResult.Type(ast, raw))
  },
  encode: ParseResult.succeed
}).annotations({ description: "a non-empty value" })

/** Optional text: trimmed, an empty cell is `null`. */
export const OptionalText = Schema.transform(Schema.String, Schema.NullOr(Schema.String), {
  strict: true,
  decode: (raw) => {
    const value = raw.trim()
    return value.length > 0 ? value : null
  },
  encode: (value) => value ?? ""
}).annotations({ description: "text" })

/** `active` (or empty, as bulk files usually leave it) / `tobedeleted`; OneRoster 1.0's `inactive` reads as `tobedeleted`. */
export const Status = Schema.transformOrFail(Schema.String, Schema.Literal("active", "tobedeleted"), {
  strict: true,
  decode: (raw, _, ast) => {
    if (raw === "" || raw === "active") return ParseResult.succeed("active" as RecordStatus)
    const value = raw.trim().toLowerCase()
    if (value === "" || value === "active") return ParseResult.succeed("active" as RecordStatus)
    if (value === "tobedeleted" || value === "inactive") return ParseResult.succeed("tobedeleted" as RecordStatus)
    return ParseResult.fail(new ParseResult.Type(ast, raw))
  },
  encode: ParseResult.succeed
}).annotations({ description: "active or tobedeleted" })

/**
 * A calendar date `YYYY-MM-DD` that exists (no 2023-02-30). Whether it is in its field's
 * range (a birth date after 1900…) is the value guard's to judge, for every provider alike.
 */
export const RequiredDate = Schema.transformOrFail(Schema.String, Schema.String, {
  strict: true,
  decode: (raw, _, ast) => {
    const value = raw.trim()
    return isCalendarDate(value) ? ParseResult.succeed(value) : ParseResult.fail(new ParseResult.Type(ast, raw))
  },
  encode: ParseResult.succeed
}).annotations({ description: "a date in YYYY-MM-DD form" })

export const OptionalDate = Schema.transformOrFail(Schema.String, Schema.NullOr(Schema.String), {
  strict: true,
  decode: (raw, _, ast) => {
    const value = raw.trim()
    if (value === "") return ParseResult.succeed(null)
    return isCalendarDate(value) ? ParseResult.succeed(value) : ParseResult.fail(new ParseResult.Type(ast, raw))
  },
  encode: (value) => ParseResult.succeed(value ?? "")
}).annotations({ description: "empty or a date in YYYY-MM-DD form" })

/** A comma list inside one cell (`"09,10,11"`); items trimmed, empty items dropped. */
export const List = Schema.transform(Schema.String, Schema.Array(Schema.String), {
  strict: true,
  decode: (raw) => {
    if (raw.length === 0) return []
    const out: Array<string> = []
    for (const item of raw.split(",")) {
      const value = item.trim()
      if (value.length > 0) out.push(value)
    }
    return out
  },
  encode: (items) => items.join(",")
}).annotations({ description: "a comma-separated list" })

/** `true` / `false` in any case; an empty cell takes the given default. */
export const Bool = (whenEmpty: boolean) =>
  Schema.transformOrFail(Schema.String, Schema.Boolean, {
    strict: true,
    decode: (raw, _, ast) => {
      if (raw === "") return ParseResult.succeed(whenEmpty)
      if (raw === "true") return ParseResult.succeed(true)
      if (raw === "false") return ParseResult.succeed(false)
      const value = raw.trim().toLowerCase()
      if (value === "") return ParseResult.succeed(whenEmpty)
      if (value === "true") return ParseResult.succeed(true)
      if (value === "false") return ParseResult.succeed(false)
      return ParseResult.fail(new ParseResult.Type(ast, raw))
    },
    encode: (value) => ParseResult.succeed(value ? "true" : "false")
  }).annotations({ description: "true or false" })

/** One of `values`, matched case-insensitively, returned in its canonical spelling. */
export const Enum = <const Values extends ReadonlyArray<string>>(...values: Values) => {
  const exact = new Set<string>(values)
  const canonical = new Map(values.map((value) => [value.toLowerCase(), value] as const))
  return Schema.transformOrFail(Schema.String, Schema.Literal(...values), {
    strict: true,
    decode: (raw, _, ast) => {
      const value = exact.has(raw) ? raw : canonical.get(raw.trim().toLowerCase())
      return value === undefined
        ? ParseResult.fail(new ParseResult.Type(ast, raw))
        : ParseResult.succeed(value as Values[number])
    },
    encode: ParseResult.succeed
  }).annotations({ description: `one of ${values.join(", ")}` })
}

/** Like `Enum` but an empty cell is `null`. */
export const OptionalEnum = <const Values extends ReadonlyArray<string>>(...values: Values) => {
  const exact = new Set<string>(values)
  const canonical = new Map(values.map((value) => [value.toLowerCase(), value] as const))
  return Schema.transformOrFail(Schema.String, Schema.NullOr(Schema.Literal(...values)), {
    strict: true,
    decode: (raw, _, ast) => {
      if (exact.has(raw)) return ParseResult.succeed(raw as Values[number])
      const trimmed = raw.trim()
      if (trimmed === "") return ParseResult.succeed(null)
      const value = canonical.get(trimmed.toLowerCase())
      return value === undefined
        ? ParseResult.fail(new ParseResult.Type(ast, raw))
        : ParseResult.succeed(value as Values[number])
    },
    encode: (value) => ParseResult.succeed(value ?? "")
  }).annotations({ description: `empty or one of ${values.join(", ")}` })
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
