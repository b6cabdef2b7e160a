import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import { DistrictRules } from "../../src/Domain/DistrictRules.ts"
import { Schema } from "effect"
import { DistrictErase } from "../../src/Districts/Erase.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { type FakeClever, fromOneRosterCsv as cleverFromCsv, start as startClever } from "../support/FakeClever/index.ts"
import { type FakeOneRoster, fromOneRosterCsv, start } from "../support/FakeOneRoster/index.ts"
import { generated, readRows, tempDir } from "../support/Fixtures.ts"
import { syncTestLayer } from "../support/Layers.ts"

/**
 * Guardians and contacts (rules.contacts): off by default (not stored; stored ones
 * deactivated), on for OneRoster CSV, OneRoster REST and Clever (stored, linked to their
 * students with the relationship, kept in step: removal, a dropped student), a contact
 * without a student reported, the links erased with the district. Never in logs: the
 * findings carry source IDs.
 */

const work = tempDir("contacts-")
const csv = NodePath.join(work.dir, "csv")
generated(csv, 60)
const students = readRows(csv, "users").filter((u) => u.role === "student").map((u) => u.sourcedId!)
const school = readRows(csv, "users").find((u) => u.role === "student")!.orgSourcedIds!.split(",")[0]!
const header = Fs.readFileSync(NodePath.join(csv, "users.csv"), "utf8").split("\n")[0]!.split(",")
const usersFile = Fs.readFileSync(NodePath.join(csv, "users.csv"), "utf8")
/** A users.csv row in the file's own column order. */
const row = (cells: Record<string, string>) => header.map((h) => (cells[h] ?? "").includes(",") ? `"${cells[h]}"` : cells[h] ?? "").join(",")
const guardian = (id: string, role: string, agents: ReadonlyArray<string>) =>
  row({ sourcedId: id, enabledUser: "true", orgSourcedIds: school, role, username: id, givenName: "Pat", familyName: `Guardian ${id}`, email: `${id}@home.example`, agentSourcedIds: agents.join(",") })
const writeGuardians = (lines: ReadonlyArray<string>) => Fs.writeFileSync(NodePath.join(csv, "users.csv"), `${usersFile.trimEnd()}\n${lines.join("\n")}\n`)
writeGuardians([
  guardian("g-1", "parent", [students[0]!, students[1]!]),
  guardian("g-2", "guardian", [students[2]!]),
  guardian("g-3", "relative", [])
])

const ON = { contacts: { sync: true } }
const add = (id: string, provider: "oneroster-csv" | "oneroster-rest" | "clever", settings: Record<string, unknown>, rules: Record<string, unknown> = ON) =>
  Effect.flatMap(RosterStore, (store) => store.addDistrict({ id: id as DistrictId, name: id, provider, timezone: "UTC", settings, rules }))
const run = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "full", trigger: "test" }))

const contacts = (districtId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ sourceId: string; roles: Array<string>; active: boolean; reason: string | null }>`
      SELECT source_id, roles, active, deactivation_reason AS reason FROM users
      WHERE district_id = ${districtId} AND roles <@ ARRAY['guardian', 'parent', 'relative']::text[] ORDER BY source_id`)
const links = (districtId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ contact: string; student: string; relationship: string; active: boolean; endReason: string | null }>`
      SELECT u.source_id AS contact, l.student_source_id AS student, l.relationship, l.active, l.end_reason
      FROM contact_links l JOIN users u ON u.id = l.contact_user_id WHERE l.district_id = ${districtId} ORDER BY 1, 2`)

let rest: FakeOneRoster
let clever: FakeClever
const Fakes = Layer.scopedDiscard(Effect.acquireRelease(
  Effect.promise(async () => {
    rest = await start(await fromOneRosterCsv(csv), { bearer: "contacts-bearer" })
    const cleverDistrict = await cleverFromCsv(csv)
    clever = await startClever(cleverDistrict, { token: "contacts-token", rateLimit: false })
    Fs.writeFileSync(NodePath.join(work.dir, "bearer"), "contacts-bearer")
    Fs.writeFileSync(NodePath.join(work.dir, "token"), "contacts-token")
    return cleverDistrict.districts.first()!.id
  }),
  () => Effect.promise(async () => {
    await rest.close()
    await clever.close()
    work.remove()
  })
))

layer(Layer.mergeAll(DistrictErase.Default.pipe(Layer.provideMerge(syncTestLayer(new Map()))), Fakes), { timeout: "120 seconds", excludeTestServices: true })("guardians and contacts", (it) => {
  it.effect("off (the default): guardians are not stored, nothing is linked; contacts.accounts is refused", () =>
    Effect.gen(function*() {
      yield* add("off", "oneroster-csv", { path: csv }, {})
      const summary = yield* run("off")
      assert.strictEqual(summary.status, "succeeded")
      assert.deepStrictEqual(yield* contacts("off"), [])
      assert.deepStrictEqual(yield* links("off"), [])
      const refused = Schema.decodeUnknownEither(DistrictRules)({ contacts: { sync: true, accounts: true } })
      assert.isTrue(refused._tag === "Left" && refused.left.message.includes("contacts.accounts is not supported yet"))
    }))

  it.effect("on, from OneRoster CSV, OneRoster REST and Clever: contacts stored, linked to their students with the relationship; one without a student reported", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* add("csv", "oneroster-csv", { path: csv })
      yield* add("rest", "oneroster-rest", { baseUrl: rest.baseUrl, auth: "bearer", bearerFile: NodePath.join(work.dir, "bearer") })
      const cleverId = clever.district.districts.first()!.id
      yield* add("clever", "clever", { districtId: cleverId, tokenFile: NodePath.join(work.dir, "token"), baseUrl: clever.baseUrl })
      for (const id of ["csv", "rest"]) {
        const summary = yield* run(id)
        assert.strictEqual(summary.status, "succeeded")
        assert.deepStrictEqual((yield* contacts(id)).map((c) => [c.sourceId, c.roles, c.active]), [
          ["g-1", ["parent"], true],
          ["g-2", ["guardian"], true],
          ["g-3", ["relative"], true]
        ])
        assert.deepStrictEqual((yield* links(id)).map((l) => [l.contact, l.student, l.relationship, l.active]), [
          ["g-1", students[0], "parent", true],
          ["g-1", students[1], "parent", true],
          ["g-2", students[2], "guardian", true]
        ])
        const findings = yield* sql<{ sourceId: string }>`SELECT source_id FROM findings WHERE run_id = ${summary.runId} AND code = 'contact_without_student'`
        assert.deepStrictEqual(findings.map((f) => f.sourceId), ["g-3"])
      }
      // Clever: its own ids; contacts with their relationships, as Clever names them.
      const summary = yield* run("clever")
      assert.strictEqual(summary.status, "succeeded")
      const cleverLinks = yield* links("clever")
      assert.strictEqual(cleverLinks.length, 3)
      assert.deepStrictEqual(cleverLinks.map((l) => l.relationship).sort(), ["other", "parent", "parent"])
      const cleverContacts = yield* contacts("clever")
      assert.strictEqual(cleverContacts.length, 3)
      assert.deepStrictEqual(cleverContacts.map((c) => c.roles[0]).sort(), ["guardian", "guardian", "parent"])
      // A second run changes nothing.
      const [before] = yield* sql<{ x: string }>`SELECT string_agg(xmin::text, ',' ORDER BY contact_user_id, student_source_id) AS x FROM contact_links`
      yield* run("csv")
      const [after] = yield* sql<{ x: string }>`SELECT string_agg(xmin::text, ',' ORDER BY contact_user_id, student_source_id) AS x FROM contact_links`
      assert.strictEqual(after!.x, before!.x)
    }))

  it.effect("kept in step: a student dropped ends its link, a removed contact is deactivated and its links end; the rule turned off deactivates contacts", () =>
    Effect.gen(function*() {
      writeGuardians([guardian("g-1", "parent", [students[0]!]), guardian("g-3", "relative", [students[3]!])])
      yield* run("csv")
      assert.deepStrictEqual((yield* contacts("csv")).map((c) => [c.sourceId, c.active, c.reason]), [
        ["g-1", true, null],
        ["g-2", false, "missing_from_source"],
        ["g-3", true, null]
      ])
      assert.deepStrictEqual((yield* links("csv")).map((l) => [l.contact, l.student, l.active, l.endReason]), [
        ["g-1", students[0], true, null],
        ["g-1", students[1], false, "missing_from_source"],
        ["g-2", students[2], false, "contact_removed"],
        ["g-3", students[3], true, null]
      ])
      // Every contact going at once empties a role group: the safety gate holds it, as it would any such loss.
      yield* Effect.flatMap(RosterStore, (store) => store.setRules("csv", {}))
      assert.strictEqual((yield* run("csv")).status, "held")
      yield* Effect.flatMap(RosterStore, (store) => store.setRules("csv", { gate: { holdEmptying: false } }))
      const off = yield* run("csv")
      assert.deepStrictEqual([off.status, off.counts.users.deactivated], ["succeeded", 2])
      assert.deepStrictEqual((yield* contacts("csv")).map((c) => [c.sourceId, c.active, c.reason]), [
        ["g-1", false, "contacts_off"],
        ["g-2", false, "missing_from_source"],
        ["g-3", false, "contacts_off"]
      ])
      assert.isTrue((yield* links("csv")).every((l) => !l.active))
    }))

  it.effect("erase takes the contact links with the district", () =>
    Effect.gen(function*() {
      assert.isAbove((yield* links("rest")).length, 0)
      yield* Effect.flatMap(DistrictErase, (erase) => erase.erase("rest", { by: "test", reason: null }))
      assert.deepStrictEqual(yield* links("rest"), [])
    }))
})
