import type { Agent, EntityKind, EntityRecord, UserIdentity } from "./Roster.ts"

/**
 * The value guard: what a value from any provider must be before it is staged.
 *
 * One rule for every provider, applied where records enter staging
 * (src/Reconcile/Staging.ts), so that no single value can fail the COPY or the apply —
 * which would fail the district's every run until the source is fixed:
 *
 * - **Identifiers** (a record's source ID and its references to others) are used as given
 *   or not at all: one holding a control character or longer than `MAX_ID_LENGTH` makes the
 *   record `Invalid` (held out; the stored record is left as it is).
 * - **Display text** (names, titles, codes, grades…) has its control characters removed,
 *   then is trimmed; empty, it is `null`. Longer than its bound, an optional field is cleared
 *   (`null`) and a required one (a title, an org's name) holds the record out.
 * - **E-mail fields** must hold one address: no lists, no display names, no spaces or line
 *   breaks, one `@`, at most `MAX_EMAIL_LENGTH` characters. Otherwise the field is cleared.
 *   (Never stripped: `a@b.org\r\nBcc: c@d.org` with its line break removed is not an address.)
 * - **Dates** must be `YYYY-MM-DD` days that exist (no 2023-02-30) within their field's range
 *   (`BIRTH_DATES`, `SCHOOL_DATES`); otherwise the record is held out.
 *
 * Cleared fields and removed characters are reported as findings naming the field — never
 * the value. Bidirectional formatting characters (U+202A–U+202E, U+2066–U+2069) are kept:
 * they are how names in right-to-left scripts are written correctly, and rosterd never
 * renders a name (the CLI escapes them on a terminal, see src/Cli/Output.ts).
 *
 * Hot path (a full sync streams millions of records): character-code loops, no regular
 * expressions, and a record is only copied when one of its fields changes.
 */

/** A closed range of years a date field accepts. */
export interface DateRange {
  readonly from: number
  readonly to: number
}

/** Birth dates: 1900-01-01 to 2100-12-31. */
export const BIRTH_DATES: DateRange = { from: 1900, to: 2100 }
/** Term and enrollment dates: 1990-01-01 to 2100-12-31 (so `9999-12-31` as "no end" is refused: leave the date empty). */
export const SCHOOL_DATES: DateRange = { from: 1990, to: 2100 }

/** Source IDs and references. */
export const MAX_ID_LENGTH = 256
/** Names, usernames, codes, grades, periods. */
export const MAX_SHORT_TEXT = 256
/** Titles, org names, locations, subjects. */
export const MAX_LONG_TEXT = 1024
/** RFC 5321's limit for a forward path. */
export const MAX_EMAIL_LENGTH = 254

// ---------------------------------------------------------------------------- characters

/**
 * Whether a UTF-16 code unit at `i` of `text` starts a character rosterd never stores: C0
 * controls (tab and line breaks included), DEL, C1 controls, U+FFFE, U+FFFF, and a
 * surrogate that is not half of a pair. Returns the number of code units to skip when
 * the character is fine (1, or 2 for a pair), or 0 when it is not.
 */
const charAt = (text: string, i: number): number => {
  const c = text.charCodeAt(i)
  if (c < 0x20) return 0
  if (c < 0x7f) return 1
  if (c <= 0x9f) return 0
  if (c < 0xd800) return 1
  if (c <= 0xdbff) {
    const next = text.charCodeAt(i + 1)
    return next >= 0xdc00 && next <= 0xdfff ? 2 : 0
  }
  if (c <= 0xdfff) return 0
  return c === 0xfffe || c === 0xffff ? 0 : 1
}

/** The index of the first character rosterd never stores (see `charAt`), or -1. */
export const firstControl = (text: string): number => {
  for (let i = 0; i < text.length;) {
    // ASCII printable: the common case, one comparison pair.
    const c = text.charCodeAt(i)
    if (c >= 0x20 && c < 0x7f) {
      i++
      continue
    }
    const step = charAt(text, i)
    if (step === 0) return i
    i += step
  }
  return -1
}

/** `text` without the characters rosterd never stores, scanning from `from` (the first one). */
export const stripControls = (text: string, from = firstControl(text)): string => {
  if (from < 0) return text
  let out = text.slice(0, from)
  let start = from
  for (let i = from; i < text.length;) {
    const step = charAt(text, i)
    if (step === 0) {
      out += text.slice(start, i)
      i++
      start = i
    } else i += step
  }
  return out + text.slice(start)
}

/** An identifier usable as given: non-empty, bounded, no control characters. */
export const isUsableId = (id: string): boolean =>
  id.length > 0 && id.length <= MAX_ID_LENGTH && firstControl(id) === -1

// ---------------------------------------------------------------------------- e-mail

/**
 * An address an operator types (`accounts import`, `add-email`, an administrator's
 * invitation): loose on purpose — the platform decides what it accepts — one `@`, no
 * spaces or list separators, a dot in the domain, at most 254 characters. (A roster
 * record's address passes `emailProblem` below instead.)
 */
export const isEmail = (text: string) => text.length <= 254 && OPERATOR_EMAIL.test(text)

const OPERATOR_EMAIL = /^[^\s@,;<>()"]+@[^\s@,;<>()"]+\.[^\s@,;<>()".]+$/

/**
 * Why `email` is not one address (a phrase naming the rule, never the value), or `null`
 * when it is. Deliberately plain: one `@` between a non-empty local part and domain, no
 * whitespace or control characters, none of `, ; < > " ( ) [ ] \ :` (lists, display
 * names, quoted local parts, routes), at most 254 characters. Internationalised
 * addresses pass.
 */
export const emailProblem = (email: string): string | null => {
  if (email.length > MAX_EMAIL_LENGTH) return `longer than ${MAX_EMAIL_LENGTH} characters`
  let at = -1
  for (let i = 0; i < email.length; i++) {
    const c = email.charCodeAt(i)
    if (c <= 0x20 || (c >= 0x7f && c <= 0xa0)) return "contains spaces, line breaks or control characters"
    switch (c) {
      case 0x40: // @
        if (at !== -1) return "has more than one @ (a list of addresses?)"
        at = i
        break
      case 0x2c: // ,
      case 0x3b: // ;
        return "is a list of addresses"
      case 0x3c: // <
      case 0x3e: // >
      case 0x22: // "
      case 0x28: // (
      case 0x29: // )
        return "has a display name or comment, not just the address"
      case 0x5b: // [
      case 0x5d: // ]
      case 0x5c: // \
      case 0x3a: // :
        return "has characters an address does not hold"
      default:
        if (c >= 0x2000 && (c <= 0x200b || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff)) {
          return "contains spaces, line breaks or control characters"
        }
        if (c >= 0xd800 && c <= 0xdfff) {
          const pair = c <= 0xdbff && i + 1 < email.length && email.charCodeAt(i + 1) >= 0xdc00 && email.charCodeAt(i + 1) <= 0xdfff
          if (!pair) return "contains spaces, line breaks or control characters"
          i++
        } else if (c === 0xfffe || c === 0xffff) return "contains spaces, line breaks or control characters"
    }
  }
  if (at === -1) return "has no @"
  if (at === 0 || at === email.length - 1) return "has nothing before or after the @"
  return null
}

// ---------------------------------------------------------------------------- dates

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

const digit = (text: string, i: number) => text.charCodeAt(i) - 48

/** `YYYY-MM-DD` naming a day that exists (no 2023-02-30; year 0000 is a day, ranges are separate). */
export const isCalendarDate = (value: string): boolean => {
  if (value.length !== 10 || value.charCodeAt(4) !== 45 || value.charCodeAt(7) !== 45) return false
  for (let i = 0; i < 10; i++) {
    if (i === 4 || i === 7) continue
    const c = value.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  const year = digit(value, 0) * 1000 + digit(value, 1) * 100 + digit(value, 2) * 10 + digit(value, 3)
  const month = digit(value, 5) * 10 + digit(value, 6)
  const day = digit(value, 8) * 10 + digit(value, 9)
  if (month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1]!) return false
  return month !== 2 || day < 29 || (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0))
}

/** A calendar date (see `isCalendarDate`) whose year lies in `range`. */
export const isDateIn = (value: string, range: DateRange): boolean => {
  if (!isCalendarDate(value)) return false
  const year = digit(value, 0) * 1000 + digit(value, 1) * 100 + digit(value, 2) * 10 + digit(value, 3)
  return year >= range.from && year <= range.to
}

/** What a date field expects, for findings. */
export const describeRange = (range: DateRange) => `a date from ${range.from}-01-01 to ${range.to}-12-31`

const TIME_OF_DAY = /^[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$/

/**
 * A date as a JSON source sends it — `2024-08-01`, or a date-time `2024-08-01T00:00:00Z` —
 * as `YYYY-MM-DD`; `undefined` when it is neither, or names no day (`2023-02-30`), or has
 * anything after it that is not a time of day. (REST providers only: not the hot path.)
 */
export const wireDate = (text: string): string | undefined => {
  const day = text.slice(0, 10)
  if (!isCalendarDate(day)) return undefined
  return text.length === 10 || TIME_OF_DAY.test(text.slice(10)) ? day : undefined
}

// ---------------------------------------------------------------------------- the guard

/** How one field is judged; `ok` is the whole check for a value that needs no change (the fast path). */
type Rule =
  | { readonly kind: "id"; readonly ok: (value: string) => boolean }
  | { readonly kind: "ids"; readonly ok: (value: ReadonlyArray<string>) => boolean }
  | { readonly kind: "text"; readonly max: number; readonly required: boolean; readonly ok: (value: string) => boolean }
  | { readonly kind: "texts"; readonly max: number; readonly ok: (value: ReadonlyArray<string>) => boolean }
  | { readonly kind: "email"; readonly ok: (value: string) => boolean }
  | { readonly kind: "date"; readonly range: DateRange; readonly ok: (value: string) => boolean }
  | { readonly kind: "identities"; readonly ok: (value: ReadonlyArray<UserIdentity>) => boolean }
  | { readonly kind: "agents"; readonly ok: (value: ReadonlyArray<Agent>) => boolean }

const allUsableIds = (values: ReadonlyArray<string>) => {
  for (let i = 0; i < values.length; i++) if (!isUsableId(values[i]!)) return false
  return true
}
const text = (max: number, required: boolean): Rule => ({
  kind: "text",
  max,
  required,
  ok: (value) => value.length <= max && firstControl(value) < 0
})
const texts = (max: number): Rule => ({
  kind: "texts",
  max,
  ok: (values) => {
    for (let i = 0; i < values.length; i++) if (values[i]!.length > max || firstControl(values[i]!) >= 0) return false
    return true
  }
})
const date = (range: DateRange): Rule => ({ kind: "date", range, ok: (value) => isDateIn(value, range) })

/** An identity is used as given or not at all, like a source ID (its type too). */
const usableIdentityEntry = (identity: UserIdentity) => isUsableId(identity.value) && (identity.type === null || isUsableId(identity.type))
const identitiesRule: Rule = {
  kind: "identities",
  ok: (values) => {
    for (let i = 0; i < values.length; i++) if (!usableIdentityEntry(values[i]!)) return false
    return true
  }
}

/** A guardian's student or a student's guardian (src/Reconcile/Contacts.ts): a usable source ID, a short plain relationship. */
const usableAgent = (agent: Agent) =>
  isUsableId(agent.sourceId) && (agent.relationship === null || (agent.relationship.length <= MAX_SHORT_TEXT && firstControl(agent.relationship) < 0))
const agentsRule: Rule = {
  kind: "agents",
  ok: (values) => {
    for (let i = 0; i < values.length; i++) if (!usableAgent(values[i]!)) return false
    return true
  }
}

const id: Rule = { kind: "id", ok: isUsableId }
const ids: Rule = { kind: "ids", ok: allUsableIds }
const title = text(MAX_LONG_TEXT, true)
const longText = text(MAX_LONG_TEXT, false)
const shortText = text(MAX_SHORT_TEXT, false)
const shortTexts = texts(MAX_SHORT_TEXT)
const longTexts = texts(MAX_LONG_TEXT)
const email: Rule = { kind: "email", ok: (value) => emailProblem(value) === null }
const birthDate = date(BIRTH_DATES)
const schoolDate = date(SCHOOL_DATES)

/**
 * One field: its name (for findings and the copy of a changed record), its rule, and a
 * getter (a property read at a site of its own stays fast; `record[name]` over many names
 * would not). test/Domain/Values.test.ts checks that each getter reads its name.
 */
type Field<R> = readonly [name: keyof R & string, rule: Rule, get: (record: R) => unknown]

/**
 * Every field of every kind that holds provider text or a date. Enumerations (status,
 * roles, types) and booleans are not listed: the providers produce them from fixed sets.
 */
export const FIELDS: { readonly [K in EntityKind]: ReadonlyArray<Field<EntityRecord[K]>> } = {
  orgs: [
    ["sourceId", id, (r) => r.sourceId],
    ["name", title, (r) => r.name],
    ["identifier", shortText, (r) => r.identifier],
    ["parentSourceId", id, (r) => r.parentSourceId]
  ],
  terms: [
    ["sourceId", id, (r) => r.sourceId],
    ["title", title, (r) => r.title],
    ["startDate", schoolDate, (r) => r.startDate],
    ["endDate", schoolDate, (r) => r.endDate],
    ["parentSourceId", id, (r) => r.parentSourceId],
    ["schoolYear", shortText, (r) => r.schoolYear]
  ],
  courses: [
    ["sourceId", id, (r) => r.sourceId],
    ["title", title, (r) => r.title],
    ["courseCode", shortText, (r) => r.courseCode],
    ["schoolYearSourceId", id, (r) => r.schoolYearSourceId],
    ["orgSourceId", id, (r) => r.orgSourceId],
    ["grades", shortTexts, (r) => r.grades],
    ["subjects", longTexts, (r) => r.subjects],
    ["subjectCodes", shortTexts, (r) => r.subjectCodes]
  ],
  classes: [
    ["sourceId", id, (r) => r.sourceId],
    ["title", title, (r) => r.title],
    ["classCode", shortText, (r) => r.classCode],
    ["location", longText, (r) => r.location],
    ["schoolSourceId", id, (r) => r.schoolSourceId],
    ["courseSourceId", id, (r) => r.courseSourceId],
    ["termSourceIds", ids, (r) => r.termSourceIds],
    ["grades", shortTexts, (r) => r.grades],
    ["subjects", longTexts, (r) => r.subjects],
    ["subjectCodes", shortTexts, (r) => r.subjectCodes],
    ["periods", shortTexts, (r) => r.periods]
  ],
  users: [
    ["sourceId", id, (r) => r.sourceId],
    ["username", shortText, (r) => r.username],
    ["givenName", shortText, (r) => r.givenName],
    ["familyName", shortText, (r) => r.familyName],
    ["middleName", shortText, (r) => r.middleName],
    ["preferredGivenName", shortText, (r) => r.preferredGivenName ?? null],
    ["preferredFamilyName", shortText, (r) => r.preferredFamilyName ?? null],
    ["primaryOrgSourceId", id, (r) => r.primaryOrgSourceId ?? null],
    ["orgRoles", ids, (r) => r.orgRoles ?? []],
    ["agents", agentsRule, (r) => r.agents ?? []],
    ["identifier", shortText, (r) => r.identifier],
    ["email", email, (r) => r.email],
    ["orgSourceIds", ids, (r) => r.orgSourceIds],
    ["grades", shortTexts, (r) => r.grades],
    ["identities", identitiesRule, (r) => r.identities]
  ],
  demographics: [
    ["userSourceId", id, (r) => r.userSourceId],
    ["birthDate", birthDate, (r) => r.birthDate]
  ],
  enrollments: [
    ["sourceId", id, (r) => r.sourceId],
    ["classSourceId", id, (r) => r.classSourceId],
    ["userSourceId", id, (r) => r.userSourceId],
    ["schoolSourceId", id, (r) => r.schoolSourceId],
    ["beginDate", schoolDate, (r) => r.beginDate],
    ["endDate", schoolDate, (r) => r.endDate]
  ]
}

/** The kinds whose records can have a field cleared or cleaned (the rest are only held or passed). */
export const CLEANED_KINDS: ReadonlySet<EntityKind> = new Set(
  (Object.keys(FIELDS) as Array<EntityKind>).filter((kind) =>
    (FIELDS[kind] as ReadonlyArray<Field<unknown>>).some(([, rule]) => rule.kind === "text" || rule.kind === "texts" || rule.kind === "email")
  )
)

const ID_PROBLEM = `not a usable identifier (empty, longer than ${MAX_ID_LENGTH} characters, or holding control characters)`

/** A record that passed, possibly with fields cleared or cleaned, and what was done (field names only). */
export interface Passed<A> {
  readonly _tag: "Passed"
  readonly record: A
  /** Fields cleared to empty, and why: `field "email": is a list of addresses`. `null` when none. */
  readonly cleared: string | null
  /** Fields whose control characters were removed. `null` when none. */
  readonly stripped: string | null
}

/** A record held out: what is wrong (field names and rules, never values) and the identity that is usable. */
export interface Held {
  readonly _tag: "Held"
  readonly problem: string
  readonly sourceId: string | null
  /** Enrollments only (their identity is the class and user pair); `null` otherwise. */
  readonly classSourceId: string | null
  readonly userSourceId: string | null
}

/** The identity of a record (or of an unreadable one) as staging may keep it: unusable identifiers become `null`. */
export const usableIdentity = (identity: {
  readonly sourceId: string | null
  readonly classSourceId?: string | null | undefined
  readonly userSourceId?: string | null | undefined
}) => ({
  sourceId: identity.sourceId !== null && isUsableId(identity.sourceId) ? identity.sourceId : null,
  classSourceId: identity.classSourceId != null && isUsableId(identity.classSourceId) ? identity.classSourceId : null,
  userSourceId: identity.userSourceId != null && isUsableId(identity.userSourceId) ? identity.userSourceId : null
})

/** Cleans display text: `null` when nothing is left, `undefined` when it is too long. */
const cleanText = (value: string, at: number, max: number): string | null | undefined => {
  const text = at < 0 ? value : stripControls(value, at).trim()
  if (text.length > max) return undefined
  return text.length > 0 ? text : null
}

/**
 * The guard of one entity kind: `Passed` with the record as it may be stored, or `Held`
 * naming the first field that holds the record out. A clean record (nearly all of them)
 * takes the fast path: one `ok` per field, nothing copied.
 */
export const guardOf = <K extends EntityKind>(kind: K) => {
  const fields = FIELDS[kind] as ReadonlyArray<Field<EntityRecord[K]>>
  const gets = fields.map((field) => field[2])
  const oks = fields.map((field) => field[1].ok as (value: unknown) => boolean)
  const count = fields.length
  const repair = repairOf(kind, fields)
  return (record: EntityRecord[K]): Passed<EntityRecord[K]> | Held => {
    for (let i = 0; i < count; i++) {
      const value = gets[i]!(record)
      if (value !== null && value !== undefined && !oks[i]!(value)) return repair(record)
    }
    return { _tag: "Passed", record, cleared: null, stripped: null }
  }
}

/** The slow path, for a record with at least one field to clean, clear or hold it for. */
const repairOf = <K extends EntityKind>(kind: K, fields: ReadonlyArray<Field<EntityRecord[K]>>) => {
  const isEnrollment = kind === "enrollments"
  return (record: EntityRecord[K]): Passed<EntityRecord[K]> | Held => {
    const source = record as unknown as Readonly<Record<string, unknown>>
    let out: Record<string, unknown> | undefined
    let cleared: string | null = null
    let stripped: string | null = null
    const held = (field: string, what: string): Held => {
      const sourceId = kind === "demographics" ? source.userSourceId : source.sourceId
      return {
        _tag: "Held",
        problem: `field "${field}": ${what}`,
        ...usableIdentity({
          sourceId: sourceId as string,
          ...(isEnrollment ? { classSourceId: source.classSourceId as string, userSourceId: source.userSourceId as string } : {})
        })
      }
    }
    const set = (field: string, value: unknown) => {
      out ??= { ...source }
      out[field] = value
    }
    const clear = (field: string, why: string) => {
      set(field, null)
      cleared = `${cleared === null ? "" : `${cleared}; `}field "${field}": ${why}`
    }
    const strip = (field: string) => {
      stripped = `${stripped === null ? "" : `${stripped}, `}"${field}"`
    }

    for (const [field, rule, get] of fields) {
      const value = get(record)
      if (value === null || value === undefined || (rule.ok as (value: unknown) => boolean)(value)) continue
      switch (rule.kind) {
        case "id":
          return held(field, ID_PROBLEM)
        case "ids":
          return held(field, `lists an identifier that is ${ID_PROBLEM}`)
        case "text": {
          const text = value as string
          const at = firstControl(text)
          const cleaned = cleanText(text, at, rule.max)
          if (cleaned === undefined) {
            if (rule.required) return held(field, `longer than ${rule.max} characters`)
            clear(field, `longer than ${rule.max} characters`)
          } else if (cleaned === null) {
            if (rule.required) return held(field, "nothing but control characters")
            clear(field, "nothing but control characters")
          } else {
            set(field, cleaned)
            if (at >= 0) strip(field)
          }
          break
        }
        case "texts": {
          const kept: Array<string> = []
          let long = false
          let controls = false
          for (const item of value as ReadonlyArray<string>) {
            const at = firstControl(item)
            if (at >= 0) controls = true
            const cleaned = cleanText(item, at, rule.max)
            if (cleaned === undefined) long = true
            else if (cleaned !== null) kept.push(cleaned)
          }
          set(field, kept)
          if (long) cleared = `${cleared === null ? "" : `${cleared}; `}field "${field}": items longer than ${rule.max} characters left out`
          if (controls) strip(field)
          break
        }
        case "email":
          clear(field, `not one e-mail address (${emailProblem(value as string)})`)
          break
        case "date":
          return held(field, `expected ${describeRange(rule.range)}`)
        case "agents": {
          // Like identities: an unusable one is left out, the record applies with the others.
          const kept = (value as ReadonlyArray<Agent>).filter(usableAgent)
          set(field, kept)
          cleared = `${cleared === null ? "" : `${cleared}; `}field "${field}": ${(value as ReadonlyArray<unknown>).length - kept.length} left out (${ID_PROBLEM})`
          break
        }
        case "identities": {
          // An unusable identity is left out (the record applies with the others), never cleaned:
          // a login with a character removed would be someone else's login.
          const kept = (value as ReadonlyArray<UserIdentity>).filter(usableIdentityEntry)
          set(field, kept)
          cleared = `${cleared === null ? "" : `${cleared}; `}field "${field}": ${
            (value as ReadonlyArray<unknown>).length - kept.length
          } left out (${ID_PROBLEM})`
          break
        }
      }
    }
    return {
      _tag: "Passed",
      record: (out ?? source) as unknown as EntityRecord[K],
      cleared,
      stripped: stripped === null ? null : `control characters removed from ${stripped}`
    }
  }
}
