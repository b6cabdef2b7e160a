import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { ProviderError } from "../../src/Domain/Errors.ts"
import { writeManifest } from "../../bench/OneRosterGenerator.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"
import { bySourceId, copyDir, readSet, sample, validRecords, withTempDir, zipInto } from "./support.ts"

/**
 * Decoding the shared OneRoster CSV reference samples (real exports with real quirks)
 * through the provider, without a database.
 */

describe("OneRoster CSV samples: v1p1-full", () => {
  it.effect("is a full bulk set; courses and demographics (marked absent) are null feeds", () =>
    Effect.gen(function*() {
      const set = yield* readSet(sample("v1p1-full"))
      assert.strictEqual(set.mode, "full")
      assert.match(set.description, /^OneRoster 1\.1 CSV bulk set \(folder .*v1p1-full\)$/)
      assert.isNull(set.feeds.courses)
      assert.isNull(set.feeds.demographics)
      for (const kind of ["orgs", "terms", "classes", "users", "enrollments"] as const) {
        assert.strictEqual(set.feeds[kind]?.mode, "bulk", kind)
      }
      assert.strictEqual(set.feeds.terms?.name, "academicSessions.csv")
      // Every row of the sample decodes.
      assert.lengthOf(validRecords(set.feeds.orgs), 1)
      assert.lengthOf(validRecords(set.feeds.terms), 5)
      assert.lengthOf(validRecords(set.feeds.classes), 2)
      assert.lengthOf(validRecords(set.feeds.users), 6)
      assert.lengthOf(validRecords(set.feeds.enrollments), 6)
    }))

  it.effect("classes: Scheduled reads as scheduled, grade and term lists split, tobedeleted kept", () =>
    Effect.gen(function*() {
      const set = yield* readSet(sample("v1p1-full"))
      const classes = validRecords(set.feeds.classes)
      assert.deepStrictEqual(bySourceId(classes, "cls-222-123456"), {
        sourceId: "cls-222-123456",
        status: "active",
        title: "Introduction to Physics",
        classCode: "Phys 100 - 1",
        classType: "scheduled",
        location: "Room 2-B",
        schoolSourceId: "org-sch-222-456",
        courseSourceId: "crs-222-2023-456-12345",
        termSourceIds: ["as-trm-222-1234"],
        grades: ["09", "10", "11"],
        subjects: ["Science", "Physics", "Biology"],
        subjectCodes: ["PHY123", "ASV120"],
        periods: ["1"]
      })
      const history = bySourceId(classes, "cls-222-123478")
      assert.strictEqual(history.status, "tobedeleted")
      assert.strictEqual(history.classType, "homeroom")
      assert.deepStrictEqual(history.termSourceIds, ["as-trm-222-1234", "as-trm-222-1235"])
      assert.deepStrictEqual(history.periods, ["1", "2", "3"])
      assert.deepStrictEqual(history.grades, ["10"])
      // Lines are those of the file (header is line 1).
      assert.deepStrictEqual(set.feeds.classes!.items.map((item) => item.origin), [
        { file: "classes.csv", line: 2 },
        { file: "classes.csv", line: 3 }
      ])
    }))

  it.effect("academic sessions: the 1.0 status inactive reads as tobedeleted; dates and types as given", () =>
    Effect.gen(function*() {
      const terms = validRecords((yield* readSet(sample("v1p1-full"))).feeds.terms)
      assert.deepStrictEqual(terms.map((t) => `${t.sourceId}:${t.status}:${t.type}`), [
        "as-grp-222-23456:tobedeleted:gradingPeriod",
        "as-trm-222-1234:active:term",
        "as-grp-222-2345:tobedeleted:semester", // `inactive` in the file
        "as-grp-222-3456:active:schoolYear",
        "as-trm-222-1235:active:term" // the last line has no line break
      ])
      assert.deepStrictEqual(bySourceId(terms, "as-trm-222-1234"), {
        sourceId: "as-trm-222-1234",
        status: "active",
        title: "Session Title",
        type: "term",
        startDate: "2022-09-01",
        endDate: "2022-12-24",
        parentSourceId: "as-syr-222-2023",
        schoolYear: "2023"
      })
    }))

  it.effect("users: TRUE is enabled, an empty status is active, one role each, and no password anywhere", () =>
    Effect.gen(function*() {
      const set = yield* readSet(sample("v1p1-full"))
      const users = validRecords(set.feeds.users)
      assert.deepStrictEqual(bySourceId(users, "usr-222-123456"), {
        sourceId: "usr-222-123456",
        status: "active",
        enabled: true,
        roles: ["teacher"],
        username: "john.doe",
        givenName: "John",
        familyName: "Doe",
        middleName: "Michael",
        identifier: "john.doe",
        email: "john.doe@myschool.com",
        orgSourceIds: ["org-sch-222-456"],
        grades: ["12"],
        identities: [{ kind: "identifier", type: null, value: "john.doe" }],
        agents: []
      })
      // userIds `{LDAP:12}`: a login identity of its type.
      assert.deepStrictEqual(bySourceId(users, "usr-222-66778899").identities, [
        { kind: "identifier", type: null, value: "mary.jones" },
        { kind: "user_id", type: "LDAP", value: "12" }
      ])
      // Empty status and dateLastModified.
      const mary = bySourceId(users, "usr-222-66778899")
      assert.strictEqual(mary.status, "active")
      assert.strictEqual(mary.enabled, true)
      assert.deepStrictEqual(mary.roles, ["student"])
      assert.deepStrictEqual(bySourceId(users, "usr-222-1234561").roles, ["parent"])
      for (const user of users) {
        assert.notProperty(user, "password")
        assert.notInclude(JSON.stringify(user), "Password1-")
      }
      for (const item of set.feeds.users!.items) assert.notInclude(JSON.stringify(item), "Password1-")
    }))

  it.effect("orgs and enrollments decode as given (dangling references are not the provider's business)", () =>
    Effect.gen(function*() {
      const set = yield* readSet(sample("v1p1-full"))
      assert.deepStrictEqual(validRecords(set.feeds.orgs), [{
        sourceId: "org-sch-222-456",
        status: "active",
        name: "History Department",
        type: "department",
        identifier: "History",
        parentSourceId: "org-sch-222-3456"
      }])
      const enrollments = validRecords(set.feeds.enrollments)
      assert.deepStrictEqual(bySourceId(enrollments, "enr-t-222-12345-123456"), {
        sourceId: "enr-t-222-12345-123456",
        status: "active",
        classSourceId: "cls-222-123456",
        userSourceId: "usr-222-123456",
        schoolSourceId: "org-sch-222-456",
        role: "teacher",
        primary: false,
        beginDate: "2022-03-15",
        endDate: "2022-06-15"
      })
    }))
})

describe("OneRoster CSV samples: v1p1-minimal", () => {
  it.effect("empty optional cells read as null / empty lists / defaults; empty status is active", () =>
    Effect.gen(function*() {
      const set = yield* readSet(sample("v1p1-minimal"))
      assert.strictEqual(set.mode, "full")
      assert.isNull(set.feeds.courses)
      assert.isNull(set.feeds.demographics)

      assert.deepStrictEqual(validRecords(set.feeds.orgs), [{
        sourceId: "org-sch-222-456",
        status: "active",
        name: "History Department",
        type: "department",
        identifier: null,
        parentSourceId: null
      }])
      const terms = validRecords(set.feeds.terms)
      assert.lengthOf(terms, 5)
      for (const term of terms) {
        assert.strictEqual(term.status, "active")
        assert.isNull(term.parentSourceId)
      }

      const classes = validRecords(set.feeds.classes)
      assert.deepStrictEqual(bySourceId(classes, "cls-222-123456"), {
        sourceId: "cls-222-123456",
        status: "active",
        title: "Introduction to Physics",
        classCode: null,
        classType: "scheduled",
        location: null,
        schoolSourceId: "org-sch-222-456",
        courseSourceId: "crs-222-2023-456-12345",
        termSourceIds: ["as-trm-222-1234"],
        grades: [],
        subjects: [],
        subjectCodes: [],
        periods: []
      })
      assert.deepStrictEqual(bySourceId(classes, "cls-222-123478").termSourceIds, ["as-trm-222-1234", "as-trm-222-1235"])

      const users = validRecords(set.feeds.users)
      assert.lengthOf(users, 6)
      assert.deepStrictEqual(bySourceId(users, "usr-222-123456"), {
        sourceId: "usr-222-123456",
        status: "active",
        enabled: true,
        roles: ["teacher"],
        username: "john.doe",
        givenName: "John",
        familyName: "Doe",
        middleName: null,
        identifier: "jogn.doe",
        email: null,
        orgSourceIds: ["org-sch-222-456"],
        grades: [],
        identities: [{ kind: "identifier", type: null, value: "jogn.doe" }],
        agents: []
      })
      for (const user of users) assert.notInclude(JSON.stringify(user), "Password1-")

      const enrollments = validRecords(set.feeds.enrollments)
      assert.lengthOf(enrollments, 6)
      // Empty primary: false; empty dates: null.
      assert.deepStrictEqual(bySourceId(enrollments, "enr-s-222-12345-987654"), {
        sourceId: "enr-s-222-12345-987654",
        status: "active",
        classSourceId: "cls-222-123456",
        userSourceId: "usr-222-987654",
        schoolSourceId: "org-sch-222-456",
        role: "student",
        primary: false,
        beginDate: null,
        endDate: null
      })
    }))
})

describe("OneRoster CSV samples: v1p2-small", () => {
  it.effect("a 1.2 delta set reads: users with their roles from roles.csv and profiles from userProfiles.csv (credentials never read)", () =>
    Effect.gen(function*() {
      const snapshot = yield* readSet(sample("v1p2-small"))
      assert.strictEqual(snapshot.mode, "delta")
      assert.match(snapshot.description, /^OneRoster 1\.2 CSV delta set/)
      const user = bySourceId(validRecords(snapshot.feeds.users), "USER_0")
      assert.deepStrictEqual(user.roles, ["student"])
      assert.deepStrictEqual(user.orgSourceIds, ["ORG_1"])
      assert.strictEqual(user.primaryOrgSourceId, "ORG_1")
      assert.deepStrictEqual(user.orgRoles, ["student:ORG_1"])
      assert.deepStrictEqual(user.identities, [{ kind: "identifier", type: null, value: "bruce.wayne" }, { kind: "profile", type: "WEI18954", value: "USER_PROFILE_1" }])
      assert.strictEqual(user.preferredGivenName, null)
      assert.notInclude(JSON.stringify(snapshot.feeds.users), "Batman")
      assert.isAbove(validRecords(snapshot.feeds.enrollments).length, 0)
    }))
})

describe("OneRoster CSV manifest", () => {
  it.effect("a file the manifest marks absent is not read even when it is present", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        writeSmallDistrict(dir)
        writeManifest(dir, { courses: "absent", demographics: "absent" })
        const set = yield* readSet(dir)
        assert.isNull(set.feeds.courses)
        assert.isNull(set.feeds.demographics)
        assert.lengthOf(validRecords(set.feeds.users), 5)
      })
    ))

  it.effect("a delta set is a delta snapshot whose absent files are null feeds; a full sync of it is refused", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        writeSmallDistrict(dir)
        writeManifest(dir, {
          users: "delta",
          orgs: "absent",
          academicSessions: "absent",
          courses: "absent",
          classes: "absent",
          demographics: "absent",
          enrollments: "absent"
        })
        const set = yield* readSet(dir)
        assert.strictEqual(set.mode, "delta")
        assert.strictEqual(set.feeds.users?.mode, "delta")
        // Absent files of a delta set mean "no changes", not an error.
        assert.isNull(set.feeds.orgs)
        assert.isNull(set.feeds.enrollments)
        const refused = yield* Effect.flip(readSet(dir, "full"))
        assert.strictEqual(refused._tag, "ModeNotAvailable")
      })
    ))

  it.effect("a path that does not exist is Unreachable; a file that is not a zip is Malformed", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        const missing = yield* Effect.flip(readSet(NodePath.join(dir, "nope")))
        assert.strictEqual((missing as ProviderError).reason, "Unreachable")
        const notZip = NodePath.join(dir, "roster.zip")
        Fs.writeFileSync(notZip, "sourcedId,name\n")
        const malformed = yield* Effect.flip(readSet(notZip))
        assert.strictEqual((malformed as ProviderError).reason, "Malformed")
      })
    ))
})

// Zips are written in the test with yazl (a dev dependency; yauzl, which rosterd reads them with, is its sibling).
describe("OneRoster CSV sets in a zip", () => {
  for (const name of ["v1p1-full", "v1p1-minimal"] as const) {
    it.effect(`${name}: the zip gives the same records, modes and lines as the folder`, () =>
      withTempDir((dir) =>
        Effect.gen(function*() {
          const zip = NodePath.join(dir, `${name}.zip`)
          yield* Effect.promise(() => zipInto(zip, sample(name), Fs.readdirSync(sample(name))))
          const fromFolder = yield* readSet(sample(name))
          const fromZip = yield* readSet(zip)
          assert.deepStrictEqual(fromZip.feeds, fromFolder.feeds)
          assert.strictEqual(fromZip.mode, fromFolder.mode)
          assert.include(fromZip.description, `zip ${zip}`)
        })
      ))
  }

  it.effect("a zip whose files sit inside one top-level folder reads like the folder", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        copyDir(sample("v1p1-full"), NodePath.join(dir, "District Export 2023"))
        const zip = NodePath.join(dir, "nested.zip")
        // The folder's own entry ("District Export 2023/") is stored too, as zip tools do.
        yield* Effect.promise(() => zipInto(zip, dir, ["District Export 2023"]))
        const fromFolder = yield* readSet(sample("v1p1-full"))
        const fromZip = yield* readSet(zip)
        assert.deepStrictEqual(fromZip.feeds, fromFolder.feeds)
      })
    ))

  it.effect("a zip without manifest.csv is refused as MissingFile", () =>
    withTempDir((dir) =>
      Effect.gen(function*() {
        const files = NodePath.join(dir, "files")
        copyDir(sample("v1p1-minimal"), files)
        Fs.rmSync(NodePath.join(files, "manifest.csv"))
        const zip = NodePath.join(dir, "no-manifest.zip")
        yield* Effect.promise(() => zipInto(zip, files, Fs.readdirSync(files)))
        const error = yield* Effect.flip(readSet(zip))
        assert.strictEqual((error as ProviderError).reason, "MissingFile")
        assert.strictEqual((error as ProviderError).file, "manifest.csv")
      })
    ))
})
