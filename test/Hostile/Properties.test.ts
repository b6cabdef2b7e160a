import { SqlClient } from "@effect/sql"
import { assert, describe, it as plainIt, layer } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Runtime, Schema } from "effect"
import * as fc from "fast-check"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import { firstControl, guardOf, stripControls } from "../../src/Domain/Values.ts"
import * as CleverMap from "../../src/Providers/Clever/CleverMapping.ts"
import { CleverUser } from "../../src/Providers/Clever/CleverWire.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { rosterFingerprint } from "../support/Database.ts"
import { fromOneRosterCsv, type OneRosterDistrict, start as startOneRoster } from "../support/FakeOneRoster/index.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { fastProviderRetries, syncTestLayer } from "../support/Layers.ts"

/**
 * The property test of issue 14's hostile-input suite: over CSV cells and provider JSON
 * records holding arbitrary strings (control characters, NULs, lone surrogates, huge and
 * unicode text), dates, numbers and types, a sync
 *
 * - either succeeds (with findings) or fails with nothing applied;
 * - never crashes: no defect, no database error (a value must never be able to fail a
 *   statement);
 * - never stores a value the source did not hold: every stored text is the source's value,
 *   its documented normalisation (trimmed; control characters removed), or empty.
 *
 * Real syncs of the small district (CSV folder; the fake OneRoster REST server) with a
 * few of its records replaced by generated ones; Clever's JSON through its decoder,
 * mapping and the value guard. Runs are few (every one is a sync) and the seed is fixed
 * (override with ROSTERD_PROPERTY_SEED); fast-check prints the seed and path of a failure.
 */

const SEED = Number(process.env.ROSTERD_PROPERTY_SEED ?? 1403)
const BEARER = "property-bearer"

const TestLayer = syncTestLayer(new Map([...fastProviderRetries, ["rosterd.csv.settleSeconds", "0"]]))

// ------------------------------------------------------------------------------ values

const CHARS = fc.constantFrom(
  "a", "Z", "é", "李", "😀", "0", "9", "-", " ", ",", ";", "\"", "'", "@", "<", ">", "\\", ".",
  "\n", "\r", "\t", "\u0000", "\u0007", "\u001b", "\u007f", "\u0085", "\u009b", "\u00a0", "\u2028", "\u202e",
  "\ufeff", "\ufffe", "\uffff", "\ud800", "\udc00"
)

const pad = (n: number, width: number) => String(n).padStart(width, "0")

/** Dates as sources send them, good and bad. */
const dateLike = fc.oneof(
  fc.date({ min: new Date("1800-01-01T00:00:00Z"), max: new Date("2200-12-31T00:00:00Z"), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10)),
  fc.tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 })).map(([y, m, d]) =>
    `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}`
  ),
  fc.constantFrom("2023-02-30", "0000-01-01", "9999-12-31", "1850-06-01", "2024-08-15T00:00:00Z", "2024-08-15xyz", "8/15/2024", " 2014-03-01 ")
)

const emailLike = fc.oneof(
  fc.tuple(fc.string({ unit: CHARS, maxLength: 8 }), fc.string({ unit: CHARS, maxLength: 8 })).map(([l, d]) => `${l}@${d}.example`),
  fc.constantFrom("a@b.example", "a@b.example, c@d.example", "\"A\" <a@b.example>", "a@b.example\r\nBcc: c@d.example", `${"q".repeat(300)}@x.example`)
)

/** A text cell or field: anything a hostile or broken source could send. */
const hostileText = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit: CHARS, maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 12 }) },
  { weight: 2, arbitrary: dateLike },
  { weight: 2, arbitrary: emailLike },
  // Over-long (bounds are 254 to 1024 characters; the hostile cases try 10⁶).
  { weight: 1, arbitrary: fc.integer({ min: 250, max: 3000 }).map((n) => "Q".repeat(n)) },
  { weight: 2, arbitrary: fc.constantFrom("", " ", "true", "false", "student", "teacher", "active", "tobedeleted", "s-1", "cls-1", "org-s1", "term-1") }
)

/** A JSON value where a source should have sent text: text mostly, or another type. */
const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 8, arbitrary: hostileText },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null)) },
  { weight: 1, arbitrary: fc.oneof(fc.array(hostileText, { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 4 }), hostileText, { maxKeys: 2 })) }
)

// ------------------------------------------------------------------------------ what may be stored

/** The text a CSV file holds for `value` (lone surrogates cannot be written in UTF-8: U+FFFD). */
const inFile = (value: string) => Buffer.from(value, "utf8").toString("utf8")

/** Display text: as given and trimmed, or with control characters removed and trimmed again. */
const textForms = (value: string) => [value, value.trim(), stripControls(value.trim()).trim()]

const textOk = (stored: string | null, source: unknown) =>
  stored === null || (typeof source === "string" && textForms(source).includes(stored))

const listItems = (source: unknown): Array<string> =>
  typeof source === "string"
    ? source.split(",").map((item) => item.trim()).filter((item) => item.length > 0)
    : Array.isArray(source)
    ? source.filter((item): item is string => typeof item === "string")
    : []

const listOk = (stored: ReadonlyArray<string> | null, source: unknown) =>
  (stored ?? []).every((item) => listItems(source).some((from) => textForms(from).includes(item)))

/** Identifiers, e-mails and dates: exactly as given (trimmed), or empty. */
const exactOk = (stored: string | null, source: unknown) =>
  stored === null || (typeof source === "string" && (stored === source || stored === source.trim()))

const dateOk = (stored: string | null, source: unknown) =>
  stored === null || (typeof source === "string" && stored === source.trim().slice(0, 10))

/** References: each stored one is one of the source's (trimmed). */
const idsOk = (stored: ReadonlyArray<string> | null, source: unknown) =>
  (stored ?? []).every((id) => listItems(source).some((from) => from === id || from.trim() === id))

const noControls = (values: ReadonlyArray<string | null | ReadonlyArray<string>>) => {
  for (const value of values.flat()) if (value !== null) assert.strictEqual(firstControl(value), -1, `a stored value holds a control character`)
}

interface StoredUser {
  readonly sourceId: string
  readonly username: string | null
  readonly givenName: string | null
  readonly familyName: string | null
  readonly middleName: string | null
  readonly identifier: string | null
  readonly email: string | null
  readonly grades: ReadonlyArray<string>
  readonly orgSourceIds: ReadonlyArray<string>
  readonly birthDate: string | null
}
interface StoredClass {
  readonly sourceId: string
  readonly title: string
  readonly classCode: string | null
  readonly location: string | null
  readonly schoolSourceId: string
  readonly termSourceIds: ReadonlyArray<string>
  readonly grades: ReadonlyArray<string>
  readonly periods: ReadonlyArray<string>
}
interface StoredEnrollment {
  readonly sourceId: string
  readonly classSourceId: string
  readonly userSourceId: string
  readonly beginDate: string | null
  readonly endDate: string | null
}

const stored = (district: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const users = yield* sql<StoredUser>`
      SELECT source_id, username, given_name, family_name, middle_name, identifier, email, grades, org_source_ids, birth_date::text AS birth_date
      FROM users WHERE district_id = ${district}`
    const classes = yield* sql<StoredClass>`
      SELECT source_id, title, class_code, location, school_source_id, term_source_ids, grades, periods FROM classes WHERE district_id = ${district}`
    const enrollments = yield* sql<StoredEnrollment>`
      SELECT source_id, class_source_id, user_source_id, begin_date::text AS begin_date, end_date::text AS end_date
      FROM enrollments WHERE district_id = ${district}`
    return { users, classes, enrollments }
  })

/** One source record as the checks see it: field name → value as the source sent it. */
type Source = Readonly<Record<string, unknown>>

interface Sources {
  /** The source's records by kind; `id` reads a record's source ID as the provider does. */
  readonly users: ReadonlyArray<Source>
  readonly demographics: ReadonlyArray<Source>
  readonly classes: ReadonlyArray<Source>
  readonly enrollments: ReadonlyArray<Source>
  readonly id: (record: Source) => unknown
  readonly ref: (value: unknown) => unknown
}

/** Every stored user, class and enrollment of `district` holds only what `sources` held. */
const assertStoredFromSource = (district: string, sources: Sources) =>
  Effect.gen(function*() {
    const { classes, enrollments, users } = yield* stored(district)
    const matches = (records: ReadonlyArray<Source>, sourceId: string) =>
      records.filter((r) => exactOk(sourceId, sources.id(r)) && sourceId !== null)
    for (const user of users) {
      const from = matches(sources.users, user.sourceId)
      assert.isAbove(from.length, 0, `stored user ${JSON.stringify(user.sourceId)} is not in the source`)
      assert.isTrue(
        from.some((r) =>
          textOk(user.username, r.username) && textOk(user.givenName, r.givenName) && textOk(user.familyName, r.familyName) &&
          textOk(user.middleName, r.middleName) && textOk(user.identifier, r.identifier) && exactOk(user.email, r.email) &&
          listOk(user.grades, r.grades) && idsOk(user.orgSourceIds, r.orgs)
        ),
        `stored user ${JSON.stringify(user)} holds a value its source did not`
      )
      if (user.birthDate !== null) {
        assert.isTrue(
          matches(sources.demographics, user.sourceId).some((d) => dateOk(user.birthDate, d.birthDate)),
          `stored birth date of ${JSON.stringify(user.sourceId)} is not the source's`
        )
      }
      noControls([user.username, user.givenName, user.familyName, user.middleName, user.identifier, user.email, user.grades])
    }
    for (const cls of classes) {
      const from = matches(sources.classes, cls.sourceId)
      assert.isAbove(from.length, 0, `stored class ${JSON.stringify(cls.sourceId)} is not in the source`)
      assert.isTrue(
        from.some((r) =>
          // (A JSON class without a title is titled by its source ID, as documented.)
          (textOk(cls.title, r.title) || cls.title === sources.id(r)) && textOk(cls.classCode, r.classCode) && textOk(cls.location, r.location) &&
          exactOk(cls.schoolSourceId, sources.ref(r.school)) && listOk(cls.grades, r.grades) && listOk(cls.periods, r.periods) &&
          idsOk(cls.termSourceIds, r.terms)
        ),
        `stored class ${JSON.stringify(cls)} holds a value its source did not`
      )
      noControls([cls.title, cls.classCode, cls.location, cls.grades, cls.periods])
    }
    for (const enrollment of enrollments) {
      const from = matches(sources.enrollments, enrollment.sourceId)
      assert.isAbove(from.length, 0, `stored enrollment ${JSON.stringify(enrollment.sourceId)} is not in the source`)
      assert.isTrue(
        from.some((r) =>
          exactOk(enrollment.classSourceId, sources.ref(r.class)) && exactOk(enrollment.userSourceId, sources.ref(r.user)) &&
          dateOk(enrollment.beginDate, r.beginDate) && dateOk(enrollment.endDate, r.endDate)
        ),
        `stored enrollment ${JSON.stringify(enrollment)} holds a value its source did not`
      )
    }
  })

/** A sync of `district`: succeeded, or failed (not died, not on a database error) with nothing applied. */
const syncSafely = (district: string) =>
  Effect.gen(function*() {
    const before = yield* rosterFingerprint
    const exit = yield* Effect.exit(Effect.flatMap(Sync, (s) => s.run(district, { request: "full", trigger: "property" })))
    if (Exit.isSuccess(exit)) return true
    assert.isFalse(Cause.isDie(exit.cause), `the sync died: ${Cause.pretty(exit.cause)}`)
    const failure = Cause.failureOption(exit.cause)
    assert.isTrue(failure._tag === "Some" && (failure.value as { _tag?: string })._tag !== "SqlError", `a value failed a statement: ${Cause.pretty(exit.cause)}`)
    assert.deepStrictEqual(yield* rosterFingerprint, before, "a failed run applied something")
    return false
  })

/** Runs an async property whose body is an Effect needing the test layer. */
const checkProperty = <A, R>(arbitrary: fc.Arbitrary<A>, body: (value: A, run: number) => Effect.Effect<void, unknown, R>, numRuns: number) =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<R>()
    let run = 0
    yield* Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(arbitrary, (value) => Runtime.runPromise(runtime)(body(value, ++run).pipe(Effect.orDie))),
        // Every run is a sync: no shrinking (fast-check prints the seed and the counterexample as found).
        { numRuns, seed: SEED, endOnFailure: true }
      )
    )
  })

const addDistrict = (id: string, provider: "oneroster-csv" | "oneroster-rest", settings: Record<string, unknown>) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider, timezone: "America/Chicago", settings }))

// ------------------------------------------------------------------------------ CSV

const optionalCells = <K extends string>(keys: ReadonlyArray<K>) =>
  fc.record(Object.fromEntries(keys.map((k) => [k, hostileText])) as Record<K, fc.Arbitrary<string>>, { requiredKeys: [] })

/** Cells of s-2's user and demographics rows, cls-2's class row and e-4's enrollment row, replaced. */
const csvFuzz = fc.record({
  user: optionalCells(["sourcedId", "status", "enabledUser", "orgSourcedIds", "role", "username", "givenName", "familyName", "middleName", "identifier", "email", "grades"]),
  demographics: optionalCells(["sourcedId", "birthDate"]),
  cls: optionalCells(["sourcedId", "title", "classCode", "classType", "location", "schoolSourcedId", "termSourcedIds", "grades", "periods"]),
  enrollment: optionalCells(["sourcedId", "classSourcedId", "userSourcedId", "role", "primary", "beginDate", "endDate"])
})

/** CSV rows as the checks read them (references under the REST names). */
const csvSources = (rows: Record<"users" | "demographics" | "classes" | "enrollments", ReadonlyArray<Record<string, string>>>): Sources => {
  const file = (row: Record<string, string>) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, inFile(v)]))
  return {
    users: rows.users.map(file).map((r) => ({ ...r, grades: r.grades ?? "", orgs: r.orgSourcedIds ?? "" })),
    demographics: rows.demographics.map(file),
    classes: rows.classes.map(file).map((r) => ({ ...r, school: r.schoolSourcedId, terms: r.termSourcedIds ?? "" })),
    enrollments: rows.enrollments.map(file).map((r) => ({ ...r, class: r.classSourcedId, user: r.userSourcedId })),
    id: (r) => r.sourcedId,
    ref: (value) => value
  }
}

// ------------------------------------------------------------------------------ OneRoster JSON

const optionalFields = <K extends string>(keys: ReadonlyArray<K>) =>
  fc.record(Object.fromEntries(keys.map((k) => [k, hostileJson])) as Record<K, fc.Arbitrary<unknown>>, { requiredKeys: [] })

const restFuzz = fc.record({
  userId: fc.option(hostileText.filter((id) => id.length > 0), { nil: undefined }),
  user: optionalFields(["status", "enabledUser", "role", "username", "givenName", "familyName", "middleName", "identifier", "email", "grades"]),
  birthDate: fc.option(hostileJson, { nil: undefined }),
  cls: optionalFields(["title", "classCode", "classType", "location", "grades", "periods"]),
  enrollment: optionalFields(["beginDate", "endDate", "primary", "role"])
})

const restSources = (district: OneRosterDistrict): Sources => ({
  users: district.users.all() as unknown as ReadonlyArray<Source>,
  demographics: district.demographics.all() as unknown as ReadonlyArray<Source>,
  classes: district.classes.all() as unknown as ReadonlyArray<Source>,
  enrollments: district.enrollments.all() as unknown as ReadonlyArray<Source>,
  id: (r) => r.sourcedId,
  ref: (value) => (typeof value === "object" && value !== null ? (value as { sourcedId?: unknown }).sourcedId : value)
})

/** `orgs` of a REST user are references: their ids, for `listItems`. */
const withRefIds = (sources: Sources): Sources => ({
  ...sources,
  users: sources.users.map((u) => ({ ...u, orgs: Array.isArray(u.orgs) ? u.orgs.map((o) => sources.ref(o)) : [] })),
  classes: sources.classes.map((c) => ({ ...c, terms: Array.isArray(c.terms) ? c.terms.map((t) => sources.ref(t)) : [] }))
})

layer(TestLayer, { timeout: "600 seconds", excludeTestServices: true })("hostile: values (properties)", (it) => {
  it.effect("CSV cells of any text → the sync succeeds (with findings) or fails with nothing applied; it stores only the source's values, normalised", () =>
    Effect.gen(function*() {
      const template = tempDir("rosterd-property-csv-")
      writeSmallDistrict(template.dir, "property.example")
      const base = {
        users: readRows(template.dir, "users"),
        demographics: readRows(template.dir, "demographics"),
        classes: readRows(template.dir, "classes"),
        enrollments: readRows(template.dir, "enrollments")
      }
      template.remove()
      yield* checkProperty(csvFuzz, (fuzz, run) =>
        Effect.acquireUseRelease(
          Effect.sync(() => tempDir("rosterd-property-csv-")),
          (tmp) =>
            Effect.gen(function*() {
              const id = `prop-csv-${run}`
              const rows = {
                users: base.users.map((u) => (u.sourcedId === "s-2" ? { ...u, ...fuzz.user } : u)),
                demographics: base.demographics.map((d) => (d.sourcedId === "s-2" ? { ...d, ...fuzz.demographics } : d)),
                classes: base.classes.map((c) => (c.sourcedId === "cls-2" ? { ...c, ...fuzz.cls } : c)),
                enrollments: base.enrollments.map((e) => (e.sourcedId === "e-4" ? { ...e, ...fuzz.enrollment } : e))
              }
              writeSmallDistrict(tmp.dir, `${id}.example`)
              for (const [file, list] of Object.entries(rows)) writeCsv(tmp.dir, file as keyof typeof rows, list)
              yield* addDistrict(id, "oneroster-csv", { path: tmp.dir })
              if (yield* syncSafely(id)) yield* assertStoredFromSource(id, csvSources(rows))
            }),
          (tmp) => Effect.sync(() => tmp.remove())
        ), 20)
    }))

  it.effect("OneRoster JSON records of any text, dates and types → succeeds or fails with nothing applied; stores only the source's values, normalised", () =>
    Effect.gen(function*() {
      const template = tempDir("rosterd-property-rest-")
      const csv = NodePath.join(template.dir, "csv")
      writeSmallDistrict(csv, "property-rest.example")
      const bearerFile = NodePath.join(template.dir, "bearer")
      Fs.writeFileSync(bearerFile, BEARER)
      yield* checkProperty(restFuzz, (fuzz, run) =>
        Effect.acquireUseRelease(
          Effect.promise(async () => {
            const district = await fromOneRosterCsv(csv)
            const patch = (name: "users" | "classes" | "enrollments" | "demographics", sourcedId: string, fields: Record<string, unknown>) =>
              district.update(name, sourcedId, (current) => ({ ...current, ...fields }) as typeof current)
            patch("users", "s-2", fuzz.user)
            if (fuzz.birthDate !== undefined) patch("demographics", "s-2", { birthDate: fuzz.birthDate })
            patch("classes", "cls-2", fuzz.cls)
            const e4 = district.enrollments.all().find((e) => e.user.sourcedId === "s-2")!
            patch("enrollments", e4.sourcedId, fuzz.enrollment)
            if (fuzz.userId !== undefined && district.users.get(fuzz.userId) === undefined) {
              const s2 = district.users.get("s-2")!
              district.hardDelete("users", "s-2")
              const { dateLastModified: _d, status: _s, ...rest } = s2
              district.create("users", { ...rest, sourcedId: fuzz.userId })
            }
            return { district, server: await startOneRoster(district, { bearer: BEARER }) }
          }),
          ({ district, server }) =>
            Effect.gen(function*() {
              const id = `prop-rest-${run}`
              yield* addDistrict(id, "oneroster-rest", { baseUrl: server.baseUrl, auth: "bearer", bearerFile, pageSize: 100 })
              if (yield* syncSafely(id)) yield* assertStoredFromSource(id, withRefIds(restSources(district)))
            }),
          ({ server }) => Effect.promise(() => server.close())
        ), 12).pipe(Effect.ensuring(Effect.sync(() => template.remove())))
    }))
})

describe("hostile: values (properties)", () => {
  const decodeUser = Schema.decodeUnknownEither(CleverUser)
  const users = guardOf("users")
  const demographics = guardOf("demographics")

  const cleverUser = fc.record({
    id: hostileText.filter((id) => id.length > 0),
    email: hostileJson,
    name: fc.oneof(fc.constant(null), fc.record({ first: hostileJson, middle: hostileJson, last: hostileJson }, { requiredKeys: [] })),
    roles: fc.record({
      student: fc.option(fc.record({ dob: hostileJson, grade: hostileJson, school: hostileJson, student_number: hostileJson, sis_id: hostileJson }, { requiredKeys: [] }), { nil: undefined }),
      teacher: fc.option(fc.record({ school: hostileJson, teacher_number: hostileJson }, { requiredKeys: [] }), { nil: undefined })
    }, { requiredKeys: [] })
  }, { requiredKeys: ["id", "roles"] })

  plainIt("Clever JSON users of any text, dates and types → decoded, mapped and guarded into only the source's values, normalised, or held", () => {
    fc.assert(fc.property(cleverUser, (raw) => {
      const wire = JSON.parse(JSON.stringify(raw)) as unknown
      const decoded = decodeUser(wire)
      if (Either.isLeft(decoded)) return // a finding (invalid_record): nothing is stored
      const mapped = CleverMap.user(decoded.right)
      if (mapped !== null) {
        const checked = users(mapped)
        if (checked._tag === "Passed") {
          const r = checked.record
          const source = wire as { id: string; email?: unknown; name?: { first?: unknown; middle?: unknown; last?: unknown } | null }
          assert.strictEqual(r.sourceId, source.id)
          assert.isTrue(exactOk(r.email, source.email), "e-mail")
          assert.isTrue(textOk(r.givenName, source.name?.first), "first name")
          assert.isTrue(textOk(r.middleName, source.name?.middle), "middle name")
          assert.isTrue(textOk(r.familyName, source.name?.last), "last name")
          noControls([r.username, r.givenName, r.familyName, r.middleName, r.identifier, r.email, r.grades, r.orgSourceIds])
        } else {
          assert.match(checked.problem, /^field "[A-Za-z]+": [^"]*$/, "a held record's problem names a field and a rule, no value")
        }
      }
      const birth = CleverMap.demographic(decoded.right)
      if (birth !== null && birth !== undefined) {
        const checked = demographics(birth)
        if (checked._tag === "Passed" && checked.record.birthDate !== null) {
          // M/D/YYYY, as a day that exists in 1900-2100.
          const dob = (wire as { roles: { student: { dob: string } } }).roles.student.dob.trim()
          const [m, d, y] = dob.split("/")
          assert.strictEqual(checked.record.birthDate, `${y}-${m!.padStart(2, "0")}-${d!.padStart(2, "0")}`)
          assert.isTrue(Number(y) >= 1900 && Number(y) <= 2100)
        }
      }
    }), { numRuns: 400, seed: SEED })
  })
})
