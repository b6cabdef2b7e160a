import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../../src/Domain/District.ts"
import { Sync } from "../../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../../src/Store/RosterStore.ts"
import { findingCodesBesidesReviews } from "../../support/Database.ts"
import { type FakeOneRoster, fromOneRosterCsv, start, type StoredUser } from "../../support/FakeOneRoster/index.ts"
import { generated, readRows, tempDir } from "../../support/Fixtures.ts"
import { fastProviderRetries, syncTestLayer } from "../../support/Layers.ts"

/**
 * OneRoster 1.2 REST (`/ims/oneroster/rostering/v1p2`) against the fake server, which
 * serves 1.1 and 1.2 from the same district: the same roster as 1.1; `roles[]` across orgs
 * (one user, both roles, the administrator scoped to its own org); preferred names,
 * `primaryOrg` and `userProfiles` stored; deltas by dateLastModified; an unknown role held.
 */

const BEARER = "bearer-12"

interface Served extends FakeOneRoster {
  readonly bearerFile: string
  readonly csv: string
}
class Fake extends Context.Tag("test/FakeOneRoster12")<Fake, Served>() {}

const FakeLayer = Layer.scoped(
  Fake,
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = tempDir("oneroster-12-")
      const csv = NodePath.join(dir.dir, "csv")
      generated(csv, 120)
      const fake = await start(await fromOneRosterCsv(csv), { bearer: BEARER, maxLimit: 1000 })
      const bearerFile = NodePath.join(dir.dir, "bearer")
      Fs.writeFileSync(bearerFile, BEARER)
      return Object.assign(fake, { bearerFile, csv, remove: dir.remove })
    }),
    (fake) => Effect.promise(async () => {
      await fake.close()
      fake.remove()
    })
  )
)

const add = (id: string, version: "1.1" | "1.2") =>
  Effect.gen(function*() {
    const fake = yield* Fake
    yield* Effect.flatMap(RosterStore, (store) =>
      store.addDistrict({
        id: id as DistrictId,
        name: id,
        provider: "oneroster-rest",
        timezone: "UTC",
        settings: { baseUrl: fake.baseUrl, auth: "bearer", bearerFile: fake.bearerFile, pageSize: 50, version }
      }))
  })
const run = (id: string, request: "auto" | "full" | "delta" = "full") => Effect.flatMap(Sync, (sync) => sync.run(id, { request, trigger: "test" }))

/** A district's roster without ids, times and the 1.2-only user columns. */
const digest = (districtId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const out: Record<string, string | null> = {}
    for (const table of ["schools", "terms", "courses", "classes", "users", "enrollments"]) {
      const drop = table === "enrollments"
        ? "- 'id' - 'district_id' - 'class_id' - 'user_id' - 'started_at' - 'updated_at' - 'ended_at'"
        : table === "users"
        ? "- 'id' - 'district_id' - 'created_at' - 'updated_at' - 'deactivated_at' - 'primary_org_source_id' - 'org_roles' - 'preferred_given_name' - 'preferred_family_name'"
        : "- 'id' - 'district_id' - 'created_at' - 'updated_at' - 'deactivated_at'"
      const [row] = yield* sql.unsafe<{ digest: string | null }>(
        `SELECT md5(string_agg(x, E'\\n' ORDER BY x)) AS digest FROM (SELECT (to_jsonb(t) ${drop})::text AS x FROM ${table} t WHERE district_id = $1) s`,
        [districtId]
      )
      out[table] = row!.digest
    }
    return out
  })

layer(Layer.merge(syncTestLayer(fastProviderRetries), FakeLayer), { timeout: "120 seconds", excludeTestServices: true })("OneRoster 1.2 REST", (it) => {
  it.effect("a 1.2 full sync reads /ims/oneroster/rostering/v1p2 and gives the roster 1.1 gives, plus each user's primary org and org roles", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      yield* add("v11", "1.1")
      yield* add("v12", "1.2")
      assert.strictEqual((yield* run("v11")).status, "succeeded")
      fake.requests.length = 0
      const summary = yield* run("v12")
      assert.strictEqual(summary.status, "succeeded")
      assert.strictEqual(summary.counts.users.created, readRows(fake.csv, "users").length)
      assert.deepStrictEqual(yield* findingCodesBesidesReviews(summary.runId), [])
      assert.isTrue(fake.requests.every((r) => r.path.startsWith("/ims/oneroster/rostering/v1p2/")))
      assert.deepStrictEqual(yield* digest("v12"), yield* digest("v11"))
      const sql = yield* SqlClient.SqlClient
      const teacher = fake.district.users.all().find((u) => u.role === "teacher")!
      const [row] = yield* sql<{ primaryOrgSourceId: string; orgRoles: Array<string> }>`
        SELECT primary_org_source_id, org_roles FROM users WHERE district_id = 'v12' AND source_id = ${teacher.sourcedId}`
      assert.strictEqual(row!.primaryOrgSourceId, teacher.orgs[0]!.sourcedId)
      assert.deepStrictEqual(row!.orgRoles, teacher.orgs.map((o) => `teacher:${o.sourcedId}`))
      const [description] = yield* sql<{ source: string }>`SELECT source_description AS source FROM sync_runs WHERE id = ${summary.runId}`
      assert.match(description!.source, /^OneRoster 1\.2 REST/)
    }))

  it.effect("roles across orgs: one user teaching at one school and administering another has both roles, administers the second only; preferred names and profiles are stored; a delta carries a change", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const sql = yield* SqlClient.SqlClient
      const data = fake.district
      const a = data.orgs.all().find((o) => o.type === "school")!
      const b = data.create("orgs", { sourcedId: "org-second-school", name: "Second School", type: "school", identifier: "S2" } as never)
      const teacher = data.users.all().find((u) => u.role === "teacher" && u.orgs[0]?.sourcedId === a.sourcedId)!
      data.update("users", teacher.sourcedId, (u) => ({
        ...u,
        orgs: [data.ref("orgs", a.sourcedId), data.ref("orgs", b.sourcedId)],
        v12: {
          roles: [
            { roleType: "primary", role: "teacher", org: data.ref("orgs", a.sourcedId) },
            { roleType: "secondary", role: "siteAdministrator", org: data.ref("orgs", b.sourcedId) }
          ],
          primaryOrg: data.ref("orgs", a.sourcedId),
          preferredFirstName: "Sam",
          preferredLastName: "Lee",
          userProfiles: [{ profileId: "lms-77", profileType: "lms", vendorId: "canvas", applicationId: "k12", credentials: [{ type: "password", username: "x", password: "never-stored-pw" }] }]
        }
      } as StoredUser))
      const unknown = data.users.all().find((u) => u.role === "student")!
      data.update("users", unknown.sourcedId, (u) => ({ ...u, v12: { roles: [{ roleType: "primary", role: "janitor", org: u.orgs[0]! }] } } as StoredUser))

      const delta = yield* run("v12", "delta")
      assert.strictEqual(delta.mode, "delta")
      assert.strictEqual(delta.counts.users.updated, 1)
      const [row] = yield* sql<{ roles: Array<string>; orgSourceIds: Array<string>; orgRoles: Array<string>; preferredGivenName: string; preferredFamilyName: string; givenName: string }>`
        SELECT roles, org_source_ids, org_roles, preferred_given_name, preferred_family_name, given_name
        FROM users WHERE district_id = 'v12' AND source_id = ${teacher.sourcedId}`
      assert.deepStrictEqual(row!.roles, ["teacher", "administrator"])
      assert.deepStrictEqual(row!.orgSourceIds, [a.sourcedId, b.sourcedId])
      assert.deepStrictEqual(row!.orgRoles, [`teacher:${a.sourcedId}`, `administrator:${b.sourcedId}`])
      assert.deepStrictEqual([row!.preferredGivenName, row!.preferredFamilyName], ["Sam", "Lee"])
      assert.strictEqual(row!.givenName, teacher.givenName)
      const [admin] = yield* sql<{ orgSourceIds: Array<string> }>`SELECT org_source_ids FROM roster_admins WHERE district_id = 'v12' AND source_id = ${teacher.sourcedId}`
      assert.deepStrictEqual(admin!.orgSourceIds, [b.sourcedId])
      const identities = yield* sql<{ kind: string; type: string; value: string }>`
        SELECT i.kind, i.type, i.value FROM user_identities i JOIN users u ON u.id = i.user_id
        WHERE u.district_id = 'v12' AND u.source_id = ${teacher.sourcedId} AND i.kind = 'profile'`
      assert.deepStrictEqual(identities.map((i) => [i.kind, i.type, i.value]), [["profile", "canvas/k12", "lms-77"]])
      const [leak] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM user_identities WHERE value LIKE '%never-stored-pw%'`
      assert.strictEqual(leak!.n, 0)

      // The unknown role holds the user as it was: a finding, no change.
      const findings = yield* sql<{ code: string; sourceId: string }>`SELECT code, source_id FROM findings WHERE run_id = ${delta.runId} AND code = 'invalid_record'`
      assert.deepStrictEqual(findings.map((f) => f.sourceId), [unknown.sourcedId])
      const [held] = yield* sql<{ roles: Array<string>; active: boolean }>`SELECT roles, active FROM users WHERE district_id = 'v12' AND source_id = ${unknown.sourcedId}`
      assert.deepStrictEqual(held!.roles, ["student"])
    }))
})
