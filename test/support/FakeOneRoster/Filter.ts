/**
 * OneRoster 1.1 `filter` (providers.md §2.5): `<field><op>'<value>'` with `=`, `!=`, `>`,
 * `>=`, `<`, `<=`, `~` (contains, case-insensitive), and at most two predicates joined by
 * ` AND ` or ` OR `, as implementers read 1.1.
 *
 * Fields are the record's scalar fields (`status`, `role`, `type`, `dateLastModified`, …)
 * or a GUIDRef field's `sourcedId`/`type`/`href` (`school.sourcedId`, `orgs.sourcedId`).
 * An array field matches when any element does (`!=`: when none equals). `dateLastModified`
 * compares as a point in time, so `'2026-09-01T00:00:00Z'` equals `…00.000Z`; other fields
 * compare as strings (dates `YYYY-MM-DD` order correctly that way). Anything else — an
 * unknown field, a missing quote, a third predicate, AND mixed with OR, a date-time that
 * does not parse — is an error the server answers with 400 `invalid_filter_field`.
 */
import type { FIELDS } from "./Types.ts"

export type Op = "=" | "!=" | ">" | ">=" | "<" | "<=" | "~"

export interface Predicate {
  /** `status` or `school.sourcedId`. */
  readonly field: string
  readonly op: Op
  readonly value: string
}

export type ParsedFilter =
  | { readonly _tag: "Ok"; readonly predicates: ReadonlyArray<Predicate>; readonly test: (record: object) => boolean }
  | { readonly _tag: "Error"; readonly message: string }

type FieldSet = (typeof FIELDS)[keyof typeof FIELDS]

const PREDICATE = /\s*([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)?)\s*(!=|>=|<=|=|>|<|~)\s*'([^']*)'\s*/y
const JOIN = /(AND|OR)\s+/y
const REF_PARTS: ReadonlySet<string> = new Set(["sourcedId", "type", "href"])
/** Fields compared as instants rather than strings. */
const DATE_TIMES: ReadonlySet<string> = new Set(["dateLastModified"])

const fail = (message: string): ParsedFilter => ({ _tag: "Error", message })

export const parseFilter = (text: string, fields: FieldSet): ParsedFilter => {
  const predicates: Array<Predicate> = []
  const joins: Array<string> = []
  let at = 0
  for (;;) {
    PREDICATE.lastIndex = at
    const match = PREDICATE.exec(text)
    if (match === null) return fail(`filter is not <field><operator>'<value>' at character ${at + 1}`)
    predicates.push({ field: match[1]!, op: match[2] as Op, value: match[3]! })
    at = PREDICATE.lastIndex
    if (at >= text.length) break
    JOIN.lastIndex = at
    const join = JOIN.exec(text)
    if (join === null) return fail(`expected AND or OR at character ${at + 1} of the filter`)
    joins.push(join[1]!)
    at = JOIN.lastIndex
  }
  if (predicates.length > 2) return fail("a filter may combine at most two predicates")
  for (const predicate of predicates) {
    const [head, part] = predicate.field.split(".") as [string, string | undefined]
    const known = part === undefined ? fields.scalars.includes(head) || fields.refs.includes(head) : fields.refs.includes(head) && REF_PARTS.has(part)
    if (!known) return fail(`unknown filter field ${predicate.field}`)
    if (part === undefined && fields.refs.includes(head)) return fail(`filter on ${head}.sourcedId, not on the reference ${head}`)
    if (DATE_TIMES.has(head) && predicate.op !== "~" && Number.isNaN(Date.parse(predicate.value))) {
      return fail(`${head} needs an ISO 8601 date-time, not '${predicate.value}'`)
    }
  }
  const tests = predicates.map(compile)
  const test = joins[0] === "OR" ? (record: object) => tests.some((t) => t(record)) : (record: object) => tests.every((t) => t(record))
  return { _tag: "Ok", predicates, test }
}

const compile = (predicate: Predicate): ((record: object) => boolean) => {
  const [head, part] = predicate.field.split(".") as [string, string | undefined]
  const values = (record: object): ReadonlyArray<unknown> => {
    const value = (record as Record<string, unknown>)[head]
    const items = Array.isArray(value) ? value : value === undefined ? [] : [value]
    return part === undefined ? items : items.map((item) => (item as Record<string, unknown> | null)?.[part])
  }
  if (DATE_TIMES.has(head) && predicate.op !== "~") {
    const target = Date.parse(predicate.value)
    const holds = order(predicate.op)
    return (record) => {
      const all = values(record).map((value) => (typeof value === "string" ? Date.parse(value) : Number.NaN))
      if (predicate.op === "!=") return all.every((time) => time !== target)
      return all.some((time) => !Number.isNaN(time) && holds(time < target ? -1 : time > target ? 1 : 0))
    }
  }
  const text = (value: unknown) => (typeof value === "string" ? value : typeof value === "boolean" || typeof value === "number" ? String(value) : undefined)
  if (predicate.op === "~") {
    const needle = predicate.value.toLowerCase()
    return (record) => values(record).some((value) => text(value)?.toLowerCase().includes(needle) === true)
  }
  if (predicate.op === "!=") return (record) => values(record).every((value) => text(value) !== predicate.value)
  const holds = order(predicate.op)
  return (record) =>
    values(record).some((value) => {
      const string = text(value)
      return string !== undefined && holds(string < predicate.value ? -1 : string > predicate.value ? 1 : 0)
    })
}

const order = (op: Op): ((comparison: number) => boolean) => {
  switch (op) {
    case "=":
      return (c) => c === 0
    case "!=":
      return (c) => c !== 0
    case ">":
      return (c) => c > 0
    case ">=":
      return (c) => c >= 0
    case "<":
      return (c) => c < 0
    case "<=":
      return (c) => c <= 0
    case "~":
      return () => false
  }
}
