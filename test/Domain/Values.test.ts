import { assert, describe, it } from "@effect/vitest"
import { Cause } from "effect"
import * as fc from "fast-check"
import { terminalText } from "../../src/Cli/Output.ts"
import { describeDatabaseError, describeFailure } from "../../src/Domain/Failure.ts"
import type { Enrollment, User } from "../../src/Domain/Roster.ts"
import { Entities } from "../../src/Reconcile/Entities.ts"
import { EntityKinds } from "../../src/Domain/Roster.ts"
import {
  emailProblem,
  FIELDS,
  firstControl,
  guardOf,
  isCalendarDate,
  isDateIn,
  isUsableId,
  MAX_ID_LENGTH,
  MAX_SHORT_TEXT,
  SCHOOL_DATES,
  BIRTH_DATES,
  stripControls,
  wireDate
} from "../../src/Domain/Values.ts"
import { cleverDob } from "../../src/Providers/Clever/CleverMapping.ts"
import { dateOf } from "../../src/Providers/OneRosterRest/OneRosterMapping.ts"

/** The value guard's pure checks (src/Domain/Values.ts), terminal escaping and database error descriptions. */

const user = (fields: Partial<User> = {}): User => ({
  sourceId: "u-1",
  status: "active",
  enabled: true,
  roles: ["student"],
  username: "ann.a",
  givenName: "Ann",
  familyName: "Archer",
  middleName: null,
  identifier: "1001",
  email: "ann@school.example",
  orgSourceIds: ["org-1"],
  grades: ["07"],
  identities: [],
  ...fields
})

const enrollment = (fields: Partial<Enrollment> = {}): Enrollment => ({
  sourceId: "e-1",
  status: "active",
  classSourceId: "c-1",
  userSourceId: "u-1",
  schoolSourceId: "org-1",
  role: "student",
  primary: false,
  beginDate: "2024-08-15",
  endDate: null,
  ...fields
})

describe("characters", () => {
  it("finds and strips C0, DEL, C1, U+FFFE/FFFF and lone surrogates, and nothing else", () => {
    assert.strictEqual(firstControl("Ann Archer"), -1)
    assert.strictEqual(firstControl("Zoë 李 😀 \u202eabc"), -1, "letters, emoji (a surrogate pair) and bidi marks are text")
    for (const bad of ["\u0000", "\t", "\n", "\r", "\x1b", "\x7f", "\u0085", "\u009b", "\ufffe", "\uffff", "\ud800", "\udc00"]) {
      assert.strictEqual(firstControl(`ab${bad}cd`), 2, JSON.stringify(bad))
      assert.strictEqual(stripControls(`ab${bad}cd`), "abcd", JSON.stringify(bad))
    }
    assert.strictEqual(stripControls("\x1b[31mRed\x1b[0m"), "[31mRed[0m")
    assert.strictEqual(stripControls("a\ud83d\ude00b\ud83d"), "a\ud83d\ude00b", "a pair is kept, a trailing high surrogate is not")
  })

  it("stripping leaves no control character and keeps every other character in order (property)", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), (text) => {
      const stripped = stripControls(text)
      assert.strictEqual(firstControl(stripped), -1)
      // A subsequence of the original: every kept character in order.
      let at = 0
      for (const ch of stripped) {
        at = text.indexOf(ch, at)
        assert.isAtLeast(at, 0)
        at += ch.length
      }
    }), { numRuns: 500 })
  })

  it("an identifier is usable when non-empty, at most 256 characters and free of control characters", () => {
    assert.isTrue(isUsableId("8a2c-44"))
    assert.isTrue(isUsableId("x".repeat(MAX_ID_LENGTH)))
    assert.isFalse(isUsableId(""))
    assert.isFalse(isUsableId("x".repeat(MAX_ID_LENGTH + 1)))
    assert.isFalse(isUsableId("u-\u00001"))
    assert.isFalse(isUsableId("u-\x1b[2J"))
  })
})

describe("e-mail fields", () => {
  it("accepts one address, internationalised ones too", () => {
    for (const ok of ["ann@school.example", "a.b+tag@sub.school.example", "zoë@école.example", "x@localhost", "o'brien@school.example"]) {
      assert.isNull(emailProblem(ok), ok)
    }
  })

  it("refuses lists, display names, line breaks, spaces, missing or repeated @, over-long addresses", () => {
    const cases: ReadonlyArray<readonly [string, RegExp]> = [
      ["a@school.example, b@school.example", /list/],
      ["a@school.example;b@school.example", /list/],
      ["a@school.example b@school.example", /spaces/],
      ["\"Ann\" <ann@school.example>", /display name/],
      ["Ann <ann@school.example>", /spaces|display name/],
      ["ann@school.example (Ann)", /spaces|comment/],
      ["ann@school.example\r\nBcc: x@evil.example", /line breaks/],
      ["ann@school.example\n", /line breaks/],
      ["ann@@school.example", /more than one @/],
      ["ann@school@example", /more than one @/],
      ["ann.school.example", /no @/],
      ["@school.example", /before or after/],
      ["ann@", /before or after/],
      ["mailto:ann@school.example", /characters/],
      ["ann@school.example\u0000", /control/],
      ["ann\u00a0@school.example", /spaces/],
      ["ann\u2028@school.example", /spaces/],
      [`${"a".repeat(290)}@school.example`, /longer than 254/]
    ]
    for (const [bad, why] of cases) {
      const problem = emailProblem(bad)
      assert.isNotNull(problem, JSON.stringify(bad))
      assert.match(problem!, why, JSON.stringify(bad))
      assert.notInclude(problem!, "school", "the problem names the rule, never the value")
    }
  })
})

describe("dates", () => {
  it("a calendar date is a day that exists, by round-trip", () => {
    for (const ok of ["2024-02-29", "2000-02-29", "2023-12-31", "0000-01-01", "9999-12-31"]) assert.isTrue(isCalendarDate(ok), ok)
    for (const bad of ["2023-02-29", "1900-02-29", "2023-02-30", "2023-04-31", "2023-13-01", "2023-00-10", "2023-01-00", "2023-1-01", "2023/01/01", "2023-01-01x", " 2023-01-01", ""]) {
      assert.isFalse(isCalendarDate(bad), bad)
    }
  })

  it("agrees with the calendar (property: every day 1900-2100 round-trips through Date)", () => {
    fc.assert(fc.property(fc.date({ min: new Date("1900-01-01T00:00:00Z"), max: new Date("2100-12-31T00:00:00Z"), noInvalidDate: true }), (date) => {
      const iso = date.toISOString().slice(0, 10)
      assert.isTrue(isCalendarDate(iso), iso)
      assert.isTrue(isDateIn(iso, BIRTH_DATES), iso)
    }), { numRuns: 500 })
  })

  it("ranges: birth dates 1900-2100, terms and enrollments 1990-2100", () => {
    assert.isTrue(isDateIn("1900-01-01", BIRTH_DATES))
    assert.isTrue(isDateIn("2100-12-31", BIRTH_DATES))
    assert.isFalse(isDateIn("1899-12-31", BIRTH_DATES))
    assert.isFalse(isDateIn("1850-06-01", BIRTH_DATES))
    assert.isFalse(isDateIn("0000-01-01", BIRTH_DATES))
    assert.isFalse(isDateIn("2101-01-01", BIRTH_DATES))
    assert.isTrue(isDateIn("1990-01-01", SCHOOL_DATES))
    assert.isFalse(isDateIn("1989-12-31", SCHOOL_DATES))
    assert.isFalse(isDateIn("9999-12-31", SCHOOL_DATES))
  })

  it("JSON sources: a date or a date-time, nothing after it; Clever's M/D/YYYY by round-trip", () => {
    assert.strictEqual(wireDate("2024-08-01"), "2024-08-01")
    assert.strictEqual(wireDate("2024-08-01T00:00:00Z"), "2024-08-01")
    assert.strictEqual(wireDate("2024-08-01T00:00:00.000+02:00"), "2024-08-01")
    assert.strictEqual(wireDate("2024-08-01 08:30"), "2024-08-01")
    assert.isUndefined(wireDate("2024-08-01xyz"))
    assert.isUndefined(wireDate("2024-08-01T00:00:00Z; DROP TABLE users"))
    assert.isUndefined(wireDate("2023-02-30"))
    assert.isUndefined(wireDate("2023-02-30T00:00:00Z"))
    assert.strictEqual(dateOf(" 2024-08-01 "), "2024-08-01")
    assert.isUndefined(dateOf("2024-08-01garbage"))
    assert.strictEqual(cleverDob("3/7/2014"), "2014-03-07")
    assert.isUndefined(cleverDob("2/30/2014"))
    assert.isUndefined(cleverDob("2/29/2023"))
    assert.strictEqual(cleverDob("1/1/0000"), "0000-01-01", "a day, if not a plausible birth date: the guard judges the range")
  })
})

describe("the guard's field list", () => {
  it("each field's getter reads the field it names", () => {
    const named = new Proxy({}, { get: (_, property) => property })
    for (const kind of EntityKinds) {
      for (const [name, , get] of FIELDS[kind] as ReadonlyArray<readonly [string, unknown, (r: unknown) => unknown]>) {
        assert.strictEqual(get(named), name, `${kind}.${name}`)
      }
    }
  })

  it("covers every record field a staged column reads, but enumerations and booleans", () => {
    const fixed = new Set(["status", "type", "role", "roles", "classType", "enabled", "primary"])
    for (const kind of EntityKinds) {
      const guarded = new Set((FIELDS[kind] as ReadonlyArray<readonly [string, ...Array<unknown>]>).map(([name]) => name))
      for (const column of Entities[kind].columns) {
        const read = new Set<string>()
        const spy = new Proxy({}, {
          get: (_, property) => {
            read.add(String(property))
            return []
          }
        })
        try {
          column.get(spy as never)
        } catch {
          // only the names read matter
        }
        for (const name of read) {
          assert.isTrue(guarded.has(name) || fixed.has(name), `${kind} column ${column.name} reads ${name}, which the guard does not judge`)
        }
      }
    }
  })
})

describe("the guard", () => {
  const users = guardOf("users")
  const enrollments = guardOf("enrollments")
  const demographics = guardOf("demographics")
  const classes = guardOf("classes")

  it("passes a clean record as it is (the same object: nothing copied)", () => {
    const record = user()
    const checked = users(record)
    assert.strictEqual(checked._tag, "Passed")
    if (checked._tag !== "Passed") return
    assert.strictEqual(checked.record, record)
    assert.isNull(checked.cleared)
    assert.isNull(checked.stripped)
  })

  it("strips control characters from names and grades, and says which fields, not what", () => {
    const checked = users(user({ givenName: "An\u0000n", familyName: "\x1b[31mArcher", grades: ["07\u0085", "\u0000"] }))
    assert.strictEqual(checked._tag, "Passed")
    if (checked._tag !== "Passed") return
    assert.strictEqual(checked.record.givenName, "Ann")
    assert.strictEqual(checked.record.familyName, "[31mArcher")
    assert.deepStrictEqual(checked.record.grades, ["07"])
    assert.strictEqual(checked.stripped, `control characters removed from "givenName", "familyName", "grades"`)
    assert.isNull(checked.cleared)
  })

  it("clears an e-mail field that is not one address, and an over-long name", () => {
    const checked = users(user({ email: "a@school.example,b@school.example", middleName: "M".repeat(1_000_000) }))
    assert.strictEqual(checked._tag, "Passed")
    if (checked._tag !== "Passed") return
    assert.isNull(checked.record.email)
    assert.isNull(checked.record.middleName)
    assert.strictEqual(
      checked.cleared,
      `field "middleName": longer than ${MAX_SHORT_TEXT} characters; field "email": not one e-mail address (is a list of addresses)`
    )
  })

  it("holds a record whose source ID or a reference is unusable, keeping only usable identity", () => {
    const badId = users(user({ sourceId: "u-\u00001" }))
    assert.deepStrictEqual(badId, {
      _tag: "Held",
      problem: `field "sourceId": not a usable identifier (empty, longer than ${MAX_ID_LENGTH} characters, or holding control characters)`,
      sourceId: null,
      classSourceId: null,
      userSourceId: null
    })
    const badRef = users(user({ orgSourceIds: ["org-1", "x".repeat(10_000)] }))
    assert.strictEqual(badRef._tag, "Held")
    if (badRef._tag === "Held") {
      assert.strictEqual(badRef.sourceId, "u-1")
      assert.include(badRef.problem, `field "orgSourceIds"`)
    }
    const badEnrollment = enrollments(enrollment({ sourceId: "\x1b]0;pwned\x07", beginDate: "2024-08-15" }))
    assert.deepStrictEqual(badEnrollment._tag === "Held" && [badEnrollment.sourceId, badEnrollment.classSourceId, badEnrollment.userSourceId], [
      null,
      "c-1",
      "u-1"
    ])
  })

  it("holds a record with an impossible or out-of-range date, naming the field and the range", () => {
    for (const beginDate of ["2023-02-30", "0000-01-01", "9999-12-31", "1989-12-31", "2024-08-15x"]) {
      const checked = enrollments(enrollment({ beginDate }))
      assert.strictEqual(checked._tag, "Held", beginDate)
      if (checked._tag === "Held") {
        assert.strictEqual(checked.problem, `field "beginDate": expected a date from 1990-01-01 to 2100-12-31`)
        assert.notInclude(checked.problem, beginDate)
      }
    }
    const old = demographics({ userSourceId: "u-1", status: "active", birthDate: "1850-01-01" })
    assert.deepStrictEqual(old, {
      _tag: "Held",
      problem: `field "birthDate": expected a date from 1900-01-01 to 2100-12-31`,
      sourceId: "u-1",
      classSourceId: null,
      userSourceId: null
    })
  })

  it("holds a class whose title is over-long or nothing but control characters (a required field)", () => {
    const base = {
      sourceId: "c-1", status: "active", title: "Math", classCode: null, classType: null, location: null, schoolSourceId: "org-1",
      courseSourceId: null, termSourceIds: ["t-1"], grades: [], subjects: [], subjectCodes: [], periods: []
    } as const
    assert.strictEqual(classes({ ...base, title: "T".repeat(5000) })._tag, "Held")
    assert.strictEqual(classes({ ...base, title: "\u0000\u0001" })._tag, "Held")
    const escaped = classes({ ...base, title: "\x1b[2J\x1b[HMath 7" })
    assert.strictEqual(escaped._tag === "Passed" && escaped.record.title, "[2J[HMath 7")
  })

  it("never outputs a value the source did not hold (property): kept as is, cleaned, or null", () => {
    const text = fc.oneof(fc.string({ unit: "binary" }), fc.string({ unit: "grapheme" }), fc.constantFrom("a@b.example", " x ", "\u0000"))
    fc.assert(fc.property(text, text, text, fc.array(text, { maxLength: 3 }), (givenName, familyName, email, grades) => {
      const record = user({ givenName, familyName, email, grades })
      const checked = users(record)
      if (checked._tag === "Held") return
      for (const field of ["givenName", "familyName"] as const) {
        const out = checked.record[field]
        if (out === null || out === record[field]) continue
        assert.strictEqual(out, stripControls(record[field]!).trim())
      }
      const email_ = checked.record.email
      assert.isTrue(email_ === null || email_ === record.email)
      for (const grade of checked.record.grades) assert.include([...grades, ...grades.map((g) => stripControls(g).trim())], grade)
      for (const value of [checked.record.givenName, checked.record.familyName, checked.record.email, ...checked.record.grades]) {
        if (value !== null) assert.strictEqual(firstControl(value), -1)
      }
    }), { numRuns: 1000 })
  })
})

describe("terminal text", () => {
  it("escapes what could steer a terminal, keeps line feeds and text", () => {
    assert.strictEqual(terminalText("plain text, Zoë 李 😀"), "plain text, Zoë 李 😀")
    assert.strictEqual(terminalText("a\nb"), "a\nb")
    assert.strictEqual(terminalText("\x1b[2Jcls-1"), "\\x1b[2Jcls-1")
    assert.strictEqual(terminalText("a\rb\tc\u0000"), "a\\x0db\\x09c\\x00")
    assert.strictEqual(terminalText("\u009b31m"), "\\u009b31m")
    assert.strictEqual(terminalText("abc\u202edef"), "abc\\u202edef")
    assert.strictEqual(terminalText("x\ud800y"), "x\\ud800y")
  })

  it("keeps JSON valid and lossless (property)", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), (text) => {
      const printed = terminalText(JSON.stringify({ text }))
      assert.deepStrictEqual(JSON.parse(printed), { text })
      assert.notMatch(printed, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/)
    }), { numRuns: 500 })
  })
})

describe("database errors", () => {
  /** What node-postgres gives for a server error: the message and `detail`/`where` quote the row. */
  const pgError = (fields: Record<string, unknown>) =>
    Object.assign(new Error(`invalid input syntax for type date: "Ann's secret"`), {
      detail: "Key (source_id)=(Ann's secret) already exists.",
      where: `COPY stage_users, line 3, column given_name: "Ann's secret"`,
      ...fields
    })

  it("names the SQLSTATE and schema objects only", () => {
    const text = describeDatabaseError(pgError({ code: "23505", table: "users", constraint: "users_district_id_source_id_key" }))
    assert.strictEqual(text, "database error 23505 (unique violation) on table users, constraint users_district_id_source_id_key")
    assert.strictEqual(describeDatabaseError(pgError({ code: "22008" })), "database error 22008 (date or time out of range)")
    assert.strictEqual(describeDatabaseError(pgError({ code: "XX999" })), "database error XX999")
    assert.notInclude(describeDatabaseError(pgError({ code: "22P02", column: "bad name\" or 1=1" })), "bad name")
  })

  it("describeFailure never passes a SqlError's cause text on, failed or died", () => {
    const sqlError = { _tag: "SqlError", message: "Failed to execute statement", cause: pgError({ code: "22007" }) }
    for (const cause of [Cause.fail(sqlError), Cause.die(sqlError), Cause.die(pgError({ code: "22007" }))]) {
      const { message } = describeFailure(cause)
      assert.include(message, "22007")
      assert.notInclude(message, "secret")
    }
    assert.strictEqual(describeFailure(Cause.fail(sqlError)).reason, "Database")
    const down = describeFailure(Cause.fail({ _tag: "SqlError", message: "Failed to acquire connection", cause: new Error("connect ECONNREFUSED 127.0.0.1:5432") }))
    assert.strictEqual(down.message, "Failed to acquire connection: database unavailable or failing: connect ECONNREFUSED 127.0.0.1:5432")
  })
})
