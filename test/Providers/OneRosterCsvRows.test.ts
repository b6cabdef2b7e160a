import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { HEADERS } from "../../bench/OneRosterGenerator.ts"
import type { ProviderError } from "../../src/Domain/Errors.ts"
import type { EntityKind, EntityRecord } from "../../src/Domain/Roster.ts"
import type { FeedItem } from "../../src/Providers/RosterProvider.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"
import type { ReadFeed } from "./support.ts"
import { oneRosterCsvSnapshot } from "../../src/Providers/OneRosterCsv/OneRosterCsvProvider.ts"
import { csvDistrict, readSet, testCsvLimits, withTempDir } from "./support.ts"

/**
 * Row-level problems: a row that cannot be decoded is an `Invalid` item with its file, its
 * physical line, the identity that could be read, and a problem naming the column and what
 * it expects — never the value (which may be a birth date, a name, an e-mail).
 */

type Invalid<A> = Extract<FeedItem<A>, { readonly _tag: "Invalid" }>

const at = <K extends EntityKind>(feed: ReadFeed<K> | null, line: number): FeedItem<EntityRecord[K]> => {
  const item = feed?.items.find((i) => i.origin.line === line)
  if (item === undefined) throw new Error(`no item at line ${line} of ${feed?.name}`)
  return item
}

const invalidAt = <K extends EntityKind>(feed: ReadFeed<K> | null, line: number): Invalid<EntityRecord[K]> => {
  const item = at(feed, line)
  if (item._tag !== "Invalid") throw new Error(`line ${line} of ${feed?.name} decoded; expected it to be invalid`)
  return item
}

const users = (cells: Partial<Record<(typeof HEADERS.users)[number], string>>) =>
  HEADERS.users.map((name) => cells[name] ?? "")

/** RFC 4180 row, quoting only where needed. */
const row = (cells: ReadonlyArray<string>) =>
  cells.map((c) => (/[",\r\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(",")

/** Personal values of the rows below: none may appear in a problem. */
const PERSONAL = ["Ann\nMarie", "Ann", "Marie", "Sam", "sam@small.example", "Sia", "sia@small.example", "wizard", "Sol", "sol@small.example",
  "Extra", "Nobody", "nobody@small.example", "Theo", "theo@small.example", "2014-02-30", "Kala", "mazoo", "1999-13-01"]

const assertNoPersonalValues = (text: string) => {
  for (const value of PERSONAL) assert.notInclude(text, value, `a problem echoes a personal value`)
}

/**
 * users.csv, lines as a text editor shows them:
 *
 *  1 header
 *  2 t-1, givenName a quoted cell with a line break ...
 *  3 ... which continues here
 *  4 s-1 (valid)
 *  5 s-2 with an unknown role
 *  6 s-3 with one field too many
 *  7 a row with an empty sourcedId
 *  8 (empty line)
 *  9 t-2 (valid)
 */
const usersFile = (eol: string) =>
  [
    HEADERS.users.join(","),
    row(users({ sourcedId: "t-1", enabledUser: "true", orgSourcedIds: "org-s1", role: "teacher", givenName: `Ann${eol}Marie`, familyName: "One" })),
    row(users({ sourcedId: "s-1", enabledUser: "true", orgSourcedIds: "org-s1", role: "student", givenName: "Sam", email: "sam@small.example", grades: "07" })),
    row(users({ sourcedId: "s-2", enabledUser: "true", orgSourcedIds: "org-s1", role: "wizard", givenName: "Sia", email: "sia@small.example" })),
    row([...users({ sourcedId: "s-3", enabledUser: "true", orgSourcedIds: "org-s1", role: "student", givenName: "Sol", email: "sol@small.example" }), "Extra"]),
    row(users({ sourcedId: " ", enabledUser: "true", orgSourcedIds: "org-s1", role: "student", givenName: "Nobody", email: "nobody@small.example" })),
    "",
    row(users({ sourcedId: "t-2", enabledUser: "TRUE", orgSourcedIds: "org-s1", role: "Teacher", givenName: "Theo", email: "theo@small.example" }))
  ].join(eol) + eol

/**
 * demographics.csv: a quoted cell with a line break (lines 2-3), then a birth date that does
 * not exist (line 4), then a valid row (line 5).
 */
const demographicsFile = [
  HEADERS.demographics.join(","),
  row(HEADERS.demographics.map((name) => name === "sourcedId" ? "s-2" : name === "birthDate" ? "2013-11-20" : name === "cityOfBirth" ? "Kala\nmazoo" : "")),
  row(HEADERS.demographics.map((name) => name === "sourcedId" ? "s-1" : name === "birthDate" ? "2014-02-30" : "")),
  row(HEADERS.demographics.map((name) => name === "sourcedId" ? "s-3" : name === "birthDate" ? "2014-07-09" : ""))
].join("\n") + "\n"

/** enrollments.csv: line 2 has an unknown role, line 3 a month 13 beginDate; both keep their (class, user) identity. */
const enrollmentsFile = [
  HEADERS.enrollments.join(","),
  "e-1,,,cls-1,org-s1,t-1,wizard,true,,",
  "e-2,,,cls-1,org-s1,s-1,student,false,1999-13-01,",
  "e-3,,,cls-2,org-s1,t-2,teacher,true,,"
].join("\n") + "\n"

const withRows = (eol: string) =>
  withTempDir((dir) =>
    Effect.gen(function*() {
      writeSmallDistrict(dir)
      Fs.writeFileSync(NodePath.join(dir, "users.csv"), usersFile(eol))
      Fs.writeFileSync(NodePath.join(dir, "demographics.csv"), demographicsFile)
      Fs.writeFileSync(NodePath.join(dir, "enrollments.csv"), enrollmentsFile)
      return yield* readSet(dir)
    })
  )

describe("OneRoster CSV row problems", () => {
  for (const [label, eol] of [["LF", "\n"], ["CRLF", "\r\n"]] as const) {
    it.effect(`users.csv (${label}): every row is an item at its physical line, bad rows as Invalid`, () =>
      Effect.gen(function*() {
        const set = yield* withRows(eol)
        const feed = set.feeds.users
        assert.deepStrictEqual(feed!.items.map((i) => `${i.origin.line}:${i._tag}`), [
          "2:Valid",
          "4:Valid",
          "5:Invalid",
          "6:Invalid",
          "7:Invalid",
          "9:Valid"
        ])
        for (const item of feed!.items) assert.strictEqual(item.origin.file, "users.csv")

        // The multi-line cell is kept as given; the valid rows decode leniently (TRUE, Teacher).
        const first = at(feed, 2)
        assert.strictEqual(first._tag === "Valid" && first.record.givenName, `Ann${eol}Marie`)
        const last = at(feed, 9)
        assert.deepStrictEqual(last._tag === "Valid" && [last.record.sourceId, last.record.enabled, last.record.roles], [
          "t-2",
          true,
          ["teacher"]
        ])

        const role = invalidAt(feed, 5)
        assert.strictEqual(role.sourceId, "s-2")
        assert.include(role.problem, `column "role"`)
        assert.include(role.problem, "one of administrator, aide, guardian, parent, proctor, relative, student, teacher")

        const wide = invalidAt(feed, 6)
        assert.strictEqual(wide.sourceId, "s-3")
        assert.strictEqual(wide.problem, `the row has ${HEADERS.users.length + 1} fields but the header has ${HEADERS.users.length}`)

        const anonymous = invalidAt(feed, 7)
        assert.isNull(anonymous.sourceId)
        assert.include(anonymous.problem, `column "sourcedId"`)
        assert.include(anonymous.problem, "a non-empty value")

        for (const item of feed!.items) if (item._tag === "Invalid") assertNoPersonalValues(item.problem)
      }))
  }

  it.effect("demographics.csv: a date that does not exist is Invalid at its physical line, naming birthDate and the form", () =>
    Effect.gen(function*() {
      const set = yield* withRows("\n")
      const feed = set.feeds.demographics
      assert.deepStrictEqual(feed!.items.map((i) => `${i.origin.line}:${i._tag}`), ["2:Valid", "4:Invalid", "5:Valid"])
      const bad = invalidAt(feed, 4)
      assert.deepStrictEqual(bad.origin, { file: "demographics.csv", line: 4 })
      assert.strictEqual(bad.sourceId, "s-1")
      assert.strictEqual(bad.problem, `column "birthDate": expected empty or a date in YYYY-MM-DD form`)
      assertNoPersonalValues(bad.problem)
      const good = at(feed, 5)
      assert.deepStrictEqual(good._tag === "Valid" && good.record, { userSourceId: "s-3", status: "active", birthDate: "2014-07-09" })
    }))

  it.effect("enrollments.csv: an invalid row keeps its (class, user) identity", () =>
    Effect.gen(function*() {
      const set = yield* withRows("\n")
      const feed = set.feeds.enrollments
      const role = invalidAt(feed, 2)
      assert.deepStrictEqual([role.sourceId, role.classSourceId, role.userSourceId], ["e-1", "cls-1", "t-1"])
      assert.include(role.problem, `column "role"`)
      const date = invalidAt(feed, 3)
      assert.deepStrictEqual([date.sourceId, date.classSourceId, date.userSourceId], ["e-2", "cls-1", "s-1"])
      assert.strictEqual(date.problem, `column "beginDate": expected empty or a date in YYYY-MM-DD form`)
      assertNoPersonalValues(date.problem)
      assert.strictEqual(at(feed, 4)._tag, "Valid")
    }))

  it.effect("a quote inside an unquoted cell fails the file without echoing the cell", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        writeSmallDistrict(dir)
        Fs.writeFileSync(
          NodePath.join(dir, "users.csv"),
          [HEADERS.users.join(","), users({ sourcedId: "s-1", orgSourcedIds: "org-s1", role: "student", givenName: `Sam "Sammy" Smith` }).join(",")]
            .join("\n") + "\n"
        )
        const error = (yield* Effect.flip(readSet(dir))) as ProviderError
        assert.strictEqual(error._tag, "ProviderError")
        assert.strictEqual(error.reason, "Malformed")
        assert.strictEqual(error.file, "users.csv")
        assert.strictEqual(error.line, 2)
        assert.include(error.message, "a quote inside an unquoted cell (field 9)")
        assert.notInclude(`${error.where}${error.message}`, "Sam")
        assert.notInclude(`${error.where}${error.message}`, "Sammy")
      })
    ))

  it.effect("a file quoted throughout reads as unquoted; a broken quote among quoted records is named at its own line", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        writeSmallDistrict(dir)
        // Written as some SIS exports do: every cell quoted (these go to csv-parse, a batch at a
        // time; an unquoted record is split by the record filter).
        const quoted = (cells: ReadonlyArray<string>) => cells.map((c) => `"${c.replace(/"/g, "\"\"")}"`).join(",")
        const rows = ["s-1", "s-2", "s-3"].map((id) => users({ sourcedId: id, orgSourcedIds: "org-s1", role: "student", givenName: `Sam ${id}` }))
        const file = NodePath.join(dir, "users.csv")
        Fs.writeFileSync(file, [quoted(HEADERS.users), ...rows.map(quoted)].join("\r\n") + "\r\n")
        const all = yield* readSet(dir)
        Fs.writeFileSync(file, [HEADERS.users.join(","), ...rows.map((r) => r.join(","))].join("\n") + "\n")
        assert.deepStrictEqual(yield* readSet(dir), all)

        const bad = users({ sourcedId: "s-9", orgSourcedIds: "org-s1", role: "student", givenName: `Sam` })
        const badLine = quoted(bad).replace(`"Sam"`, `"Sam"Xavier`)
        Fs.writeFileSync(file, [quoted(HEADERS.users), ...rows.map(quoted), badLine, quoted(rows[0]!)].join("\n") + "\n")
        const error = (yield* Effect.flip(readSet(dir))) as ProviderError
        assert.strictEqual(error.reason, "Malformed")
        assert.strictEqual(error.file, "users.csv")
        assert.strictEqual(error.line, 5)
        assert.notInclude(`${error.where}${error.message}`, "Xavier")
      })
    ))

  it.effect("a quoted cell followed by other characters fails the file without echoing them", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        writeSmallDistrict(dir)
        Fs.writeFileSync(
          NodePath.join(dir, "users.csv"),
          [HEADERS.users.join(","), users({ sourcedId: "s-1", orgSourcedIds: "org-s1", role: "student", givenName: `"Sam"Xavier` }).join(",")]
            .join("\n") + "\n"
        )
        const error = (yield* Effect.flip(readSet(dir))) as ProviderError
        assert.strictEqual(error.reason, "Malformed")
        assert.strictEqual(error.file, "users.csv")
        assert.notInclude(`${error.where}${error.message}`, "Sam")
        assert.notInclude(`${error.where}${error.message}`, `"X"`)
      })
    ))

  it.effect("a manifest with an unterminated quote is Malformed, naming manifest.csv", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        writeSmallDistrict(dir)
        Fs.writeFileSync(NodePath.join(dir, "manifest.csv"), `propertyName,value\noneroster.version,"1.1\nfile.users,bulk\n`)
        const error = (yield* Effect.flip(readSet(dir))) as ProviderError
        assert.strictEqual(error.reason, "Malformed")
        assert.strictEqual(error.file, "manifest.csv")
        assert.include(error.message, "never closed")
      })
    ))

  it.effect("a file of the set changed while the set is read → NotReady at the end of the next file read (the run is deferred, never half old, half new)", () =>
    withTempDir((dir) =>
      Effect.scoped(Effect.gen(function*() {
        writeSmallDistrict(dir)
        const snapshot = yield* oneRosterCsvSnapshot(csvDistrict(dir), "auto", testCsvLimits)
        const orgs = yield* Stream.runCollect(snapshot.feeds.orgs!.items)
        assert.strictEqual(orgs.length, 2)
        // A writer starts on users.csv while the run reads the files before it.
        Fs.appendFileSync(NodePath.join(dir, "users.csv"), "s-9,,,true,org-s1,student,,,Nia,Nine,,,,,,,07,\n")
        const error = yield* Effect.flip(Stream.runDrain(snapshot.feeds.terms!.items))
        assert.strictEqual(error.reason, "NotReady")
        assert.match(error.message, /^the set changed while it was read: users\.csv changed size \(\d+ → \d+ bytes\); nothing was applied/)
        assert.isAbove(error.retryAfterMillis ?? 0, 0)
        assert.notInclude(error.message, "Nia")
      }))
    ))

  it.effect("a UTF-8 byte order mark before the header is not part of the first column name", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        writeSmallDistrict(dir)
        Fs.writeFileSync(NodePath.join(dir, "users.csv"), "\uFEFF" + usersFile("\r\n"))
        const set = yield* readSet(dir)
        assert.deepStrictEqual(set.feeds.users!.items.map((i) => `${i.origin.line}:${i._tag}`), [
          "2:Valid",
          "4:Valid",
          "5:Invalid",
          "6:Invalid",
          "7:Invalid",
          "9:Valid"
        ])
      })
    ))
})
