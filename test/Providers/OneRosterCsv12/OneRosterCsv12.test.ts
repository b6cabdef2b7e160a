import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../../src/Domain/District.ts"
import { ProviderError } from "../../../src/Domain/Errors.ts"
import { Sync } from "../../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../../src/Store/RosterStore.ts"
import { findingCodesBesidesReviews, rosterFingerprint } from "../../support/Database.ts"
import { generated, readRows, tempDir } from "../../support/Fixtures.ts"
import { syncTestLayer } from "../../support/Layers.ts"
import { toCsv12 } from "../../support/OneRoster12Csv.ts"
import { readSet, validRecords, zipInto } from "../support.ts"

/**
 * OneRoster 1.2 CSV sets (roles.csv, userProfiles.csv, 1.2 users.csv): full and delta syncs
 * give what the same district's 1.1 set gives, plus the 1.2 data; zip and folder alike; a set
 * that mixes versions is refused naming the file and what it found, with nothing applied.
 */

const work = tempDir("oneroster-csv12-")
const v11 = NodePath.join(work.dir, "v11")
const v12 = NodePath.join(work.dir, "v12")
generated(v11, 120)
const teacher = readRows(v11, "users").find((u) => u.role === "teacher")!
const student = readRows(v11, "users").find((u) => u.role === "student")!
const otherSchool = readRows(v11, "orgs").find((o) => o.type === "district")!.sourcedId!
toCsv12(v11, v12, {
  [teacher.sourcedId!]: {
    roles: [{ roleType: "primary", role: "teacher", org: teacher.orgSourcedIds!.split(",")[0]! }, { roleType: "secondary", role: "principal", org: otherSchool }],
    preferredGivenName: "Sam",
    preferredFamilyName: "Lee",
    profiles: [{ id: "profile-1", vendorId: "canvas", applicationId: "k12" }]
  }
})

const add = (id: string, path: string) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "UTC", settings: { path } }))
const run = (id: string, request: "auto" | "full" | "delta" = "auto") => Effect.flatMap(Sync, (sync) => sync.run(id, { request, trigger: "test" }))

const usersDigest = (districtId: string, except: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ d: string }>`
      SELECT md5(string_agg(concat_ws('|', source_id, active, roles::text, given_name, family_name, email, org_source_ids::text, grades::text), E'\\n' ORDER BY source_id)) AS d
      FROM users WHERE district_id = ${districtId} AND source_id <> ${except}`
    const [rest] = yield* sql<{ d: string }>`
      SELECT md5(string_agg(concat_ws('|', c.source_id, c.title, c.school_source_id, e.user_source_id, e.role), E'\\n' ORDER BY c.source_id, e.user_source_id)) AS d
      FROM classes c JOIN enrollments e ON e.class_id = c.id WHERE c.district_id = ${districtId}`
    return [row!.d, rest!.d]
  })

layer(Layer.merge(syncTestLayer(new Map()), Layer.scopedDiscard(Effect.addFinalizer(() => Effect.sync(() => work.remove())))), {
  timeout: "120 seconds",
  excludeTestServices: true
})("OneRoster 1.2 CSV", (it) => {
  it.effect("a 1.2 bulk set syncs to the roster its 1.1 set gives (but for the teacher's second role), with roles, orgs, preferred names and profiles from the 1.2 files", () =>
    Effect.gen(function*() {
      yield* add("csv11", v11)
      yield* add("csv12", v12)
      assert.strictEqual((yield* run("csv11")).status, "succeeded")
      const summary = yield* run("csv12")
      assert.strictEqual(summary.status, "succeeded")
      assert.strictEqual(summary.counts.users.created, readRows(v11, "users").length)
      assert.deepStrictEqual(yield* findingCodesBesidesReviews(summary.runId), [])
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ roles: Array<string>; orgRoles: Array<string>; preferredGivenName: string; primaryOrgSourceId: string }>`
        SELECT roles, org_roles, preferred_given_name, primary_org_source_id FROM users WHERE district_id = 'csv12' AND source_id = ${teacher.sourcedId!}`
      const home = teacher.orgSourcedIds!.split(",")[0]!
      assert.deepStrictEqual(row!.roles, ["teacher", "administrator"])
      assert.deepStrictEqual(row!.orgRoles, [`teacher:${home}`, `administrator:${otherSchool}`])
      assert.strictEqual(row!.preferredGivenName, "Sam")
      assert.strictEqual(row!.primaryOrgSourceId, home)
      const profiles = yield* sql<{ type: string; value: string }>`
        SELECT i.type, i.value FROM user_identities i JOIN users u ON u.id = i.user_id WHERE u.district_id = 'csv12' AND i.kind = 'profile'`
      assert.deepStrictEqual(profiles.map((p) => [p.type, p.value]), [["canvas/k12", "profile-1"]])
      // Everyone else is as 1.1 has them: the same users, classes and enrollments.
      assert.deepStrictEqual(yield* usersDigest("csv12", teacher.sourcedId!), yield* usersDigest("csv11", teacher.sourcedId!))
      // A second identical run writes nothing.
      const fingerprint = yield* rosterFingerprint
      assert.strictEqual((yield* run("csv12")).counts.users.updated, 0)
      assert.deepStrictEqual(yield* rosterFingerprint, fingerprint)
    }))

  it.effect("a 1.2 delta set: a changed preferred name and a tobedeleted user apply; nothing is removed for being absent", () =>
    Effect.gen(function*() {
      const delta11 = NodePath.join(work.dir, "d11")
      const delta12 = NodePath.join(work.dir, "d12")
      Fs.mkdirSync(delta11, { recursive: true })
      const header = Fs.readFileSync(NodePath.join(v11, "users.csv"), "utf8").split("\n")[0]!
      const lines = Fs.readFileSync(NodePath.join(v11, "users.csv"), "utf8").split("\n")
      const line = (id: string) => lines.find((l) => l.startsWith(`${id},`))!
      const removed = readRows(v11, "users").filter((u) => u.role === "student")[1]!
      Fs.writeFileSync(NodePath.join(delta11, "users.csv"), `${header}\n${line(student.sourcedId!)}\n${line(removed.sourcedId!).replace(/^([^,]*),[^,]*,/, "$1,tobedeleted,")}\n`)
      Fs.writeFileSync(
        NodePath.join(delta11, "manifest.csv"),
        "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.users,delta\nfile.orgs,absent\nfile.academicSessions,absent\nfile.classes,absent\nfile.enrollments,absent\n"
      )
      toCsv12(delta11, delta12, { [student.sourcedId!]: { preferredGivenName: "Robin" } })
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE districts SET settings = ${JSON.stringify({ path: delta12 })}::jsonb WHERE id = 'csv12'`)
      const summary = yield* run("csv12")
      assert.strictEqual(summary.mode, "delta")
      assert.strictEqual(summary.counts.users.updated, 1)
      assert.strictEqual(summary.counts.users.deactivated, 1)
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ preferredGivenName: string }>`SELECT preferred_given_name FROM users WHERE district_id = 'csv12' AND source_id = ${student.sourcedId!}`
      assert.strictEqual(row!.preferredGivenName, "Robin")
      const [active] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM users WHERE district_id = 'csv12' AND active`
      assert.isAbove(active!.n, 100)
    }))

  it.effect("a zip of the 1.2 set reads as the folder does", () =>
    Effect.gen(function*() {
      const zip = NodePath.join(work.dir, "v12.zip")
      yield* Effect.promise(() => zipInto(zip, v12, Fs.readdirSync(v12)))
      const [folder, zipped] = [yield* readSet(v12), yield* readSet(zip)]
      assert.deepStrictEqual(validRecords(zipped.feeds.users), validRecords(folder.feeds.users))
      assert.isTrue(validRecords(folder.feeds.users).some((u) => (u.orgRoles ?? []).length === 2))
    }))

  it.effect("a set mixing versions is refused, naming the file and what it found; nothing is applied", () =>
    Effect.gen(function*() {
      // 1.2 manifest, 1.1 users.csv.
      const mixed = NodePath.join(work.dir, "mixed")
      Fs.cpSync(v12, mixed, { recursive: true })
      Fs.copyFileSync(NodePath.join(v11, "users.csv"), NodePath.join(mixed, "users.csv"))
      const first = yield* Effect.flip(readSet(mixed))
      assert.instanceOf(first, ProviderError)
      assert.strictEqual((first as ProviderError).file, "users.csv")
      assert.match(first.message, /"role" and "orgSourcedIds", the columns of a OneRoster 1\.1 users\.csv, but the manifest says oneroster\.version 1\.2/)
      // 1.1 manifest, roles.csv beside it.
      const other = NodePath.join(work.dir, "mixed11")
      Fs.cpSync(v11, other, { recursive: true })
      Fs.copyFileSync(NodePath.join(v12, "roles.csv"), NodePath.join(other, "roles.csv"))
      yield* add("mixed", other)
      const before = yield* rosterFingerprint
      const error = yield* Effect.flip(run("mixed"))
      assert.strictEqual((error as ProviderError).file, "roles.csv")
      assert.include(error.message, "roles.csv is a OneRoster 1.2 file, but the manifest says oneroster.version 1.1")
      assert.deepStrictEqual(yield* rosterFingerprint, before)
      // A 1.2 set without roles.csv.
      const bare = NodePath.join(work.dir, "bare12")
      Fs.cpSync(v12, bare, { recursive: true })
      Fs.rmSync(NodePath.join(bare, "roles.csv"))
      const missing = yield* Effect.flip(readSet(bare))
      assert.strictEqual((missing as ProviderError).reason, "MissingFile")
      assert.include(missing.message, "needs roles.csv")
    }))
})
