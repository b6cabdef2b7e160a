import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { currentSchoolYear, writeManifest } from "../../bench/OneRosterGenerator.ts"
import { Admins } from "../../src/Admins/Admins.ts"
import { DEFAULT_ADMIN_TITLES } from "../../src/Domain/DistrictRules.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { latestToken } from "../Accounts/support.ts"
import * as FakeClever from "../support/FakeClever/index.ts"
import * as FakeOneRoster from "../support/FakeOneRoster/index.ts"
import { readRows, tempDir, writeCsv } from "../support/Fixtures.ts"
import { fastProviderRetries, syncTestLayer } from "../support/Layers.ts"
import { userId } from "./support.ts"

/**
 * Who administers what (issue 15, "Roles and masked data"), through real syncs of one
 * district served three ways — a OneRoster CSV set, the fake OneRoster 1.1 REST server and
 * the fake Clever API (converted from the same CSV: an administrator of the district org
 * becomes a Clever `district_admin`, of a school a `staff` titled "Administrator", an aide a
 * `staff` titled "Aide"):
 *
 * | user     | roster                               | expected                                         |
 * |----------|--------------------------------------|--------------------------------------------------|
 * | a-dist   | administrator of org-d (the district) | all schools, present and future; not reported    |
 * | a-s1     | administrator of org-s1               | org-s1 only                                      |
 * | a-office | administrator of org-office (a department; Clever: staff without schools) | nothing to see: reported `admin_district_office_only` |
 * | aide-1   | aide at org-s1                        | role `aide`: no account, no mail, no rights      |
 *
 * Then Clever's staff titles on their own: which titles are administrators by default, the
 * district's rule changing the list, and a title changing through Clever's events.
 */

const PROVIDERS = ["oneroster-csv", "clever", "oneroster-rest"] as const
type Provider = (typeof PROVIDERS)[number]

const CLEVER_TOKEN = "scope-clever-token"
const OAUTH = { key: "scope-key", secret: "scope-secret" }

const writeScopeDistrict = (dir: string, domain: string) => {
  const year = currentSchoolYear()
  Fs.mkdirSync(dir, { recursive: true })
  writeManifest(dir)
  writeCsv(dir, "orgs", [
    { sourcedId: "org-d", name: "Scope District", type: "district" },
    { sourcedId: "org-s1", name: "North School", type: "school", parentSourcedId: "org-d" },
    { sourcedId: "org-s2", name: "South School", type: "school", parentSourcedId: "org-d" },
    { sourcedId: "org-office", name: "Curriculum Office", type: "department", parentSourcedId: "org-d" }
  ])
  writeCsv(dir, "academicSessions", [
    { sourcedId: "term-year", title: `${year - 1}-${year}`, type: "schoolYear", startDate: `${year - 1}-08-01`, endDate: `${year}-07-31`, schoolYear: String(year) }
  ])
  writeCsv(dir, "courses", [
    { sourcedId: "crs-1", title: "Math 5", schoolYearSourcedId: "term-year", orgSourcedId: "org-s1", subjects: "Mathematics" },
    { sourcedId: "crs-2", title: "Math 6", schoolYearSourcedId: "term-year", orgSourcedId: "org-s2", subjects: "Mathematics" }
  ])
  const cls = (sourcedId: string, course: string, school: string) => ({
    sourcedId, title: `${sourcedId} class`, courseSourcedId: course, classType: "scheduled", schoolSourcedId: school, termSourcedIds: "term-year",
    periods: "1", subjects: "Mathematics"
  })
  writeCsv(dir, "classes", [cls("cls-1", "crs-1", "org-s1"), cls("cls-2", "crs-2", "org-s2")])
  const person = (sourcedId: string, role: string, org: string, grades = "") => ({
    sourcedId, enabledUser: "true", orgSourcedIds: org, role, givenName: `Given ${sourcedId}`, familyName: `Family ${sourcedId}`,
    email: `${sourcedId}@${domain}`, grades
  })
  writeCsv(dir, "users", [
    person("t-1", "teacher", "org-s1"),
    person("t-2", "teacher", "org-s2"),
    person("s-1", "student", "org-s1", "05"),
    person("s-2", "student", "org-s2", "06"),
    person("a-dist", "administrator", "org-d"),
    person("a-s1", "administrator", "org-s1"),
    person("a-office", "administrator", "org-office"),
    person("aide-1", "aide", "org-s1")
  ])
  const enr = (sourcedId: string, classSourcedId: string, school: string, userSourcedId: string, role: string) => ({
    sourcedId, classSourcedId, schoolSourcedId: school, userSourcedId, role, primary: role === "teacher" ? "true" : "false"
  })
  writeCsv(dir, "enrollments", [
    enr("e-1", "cls-1", "org-s1", "t-1", "teacher"),
    enr("e-2", "cls-1", "org-s1", "s-1", "student"),
    enr("e-3", "cls-2", "org-s2", "t-2", "teacher"),
    enr("e-4", "cls-2", "org-s2", "s-2", "student")
  ])
  writeCsv(dir, "demographics", [
    { sourcedId: "s-1", birthDate: `${year - 11}-03-01` },
    { sourcedId: "s-2", birthDate: `${year - 12}-04-01` }
  ])
}

interface Served {
  readonly districtId: string
  readonly domain: string
  readonly status: string
  readonly runId: number
  /** A CSV sourcedId (user or org) → the source ID this district stores. */
  readonly fromCsv: (kind: "users" | "orgs", sourcedId: string) => string
}

class Scope extends Context.Tag("test/AdminScope")<Scope, {
  readonly served: Record<Provider, Served>
  readonly csvDir: string
  readonly clever: FakeClever.CleverDistrict
}>() {}

const ScopeLive = Layer.scoped(
  Scope,
  Effect.gen(function*() {
    const root = yield* Effect.acquireRelease(Effect.sync(() => tempDir("admin-scope-")), (tmp) => Effect.sync(() => tmp.remove()))
    const at = (...names: Array<string>) => NodePath.join(root.dir, ...names)
    const domain = (provider: Provider) => `scope-${provider}.example`
    const dirs = { "oneroster-csv": at("csv"), clever: at("clever"), "oneroster-rest": at("rest") } as const
    for (const provider of PROVIDERS) writeScopeDistrict(dirs[provider], domain(provider))
    const secret = (name: string, value: string) => {
      Fs.writeFileSync(at(name), value)
      return at(name)
    }
    const cleverDistrict = yield* Effect.promise(() => FakeClever.fromOneRosterCsv(dirs.clever))
    const clever = yield* Effect.acquireRelease(
      Effect.promise(() => FakeClever.start(cleverDistrict, { token: CLEVER_TOKEN, rateLimit: false })),
      (fake) => Effect.promise(() => fake.close())
    )
    const rest = yield* Effect.acquireRelease(
      Effect.promise(async () => FakeOneRoster.start(await FakeOneRoster.fromOneRosterCsv(dirs["oneroster-rest"]), { oauth: OAUTH })),
      (fake) => Effect.promise(() => fake.close())
    )
    // Clever staff beside the converted ones, by title (see the Clever test below).
    const school1 = cleverDistrict.ids.require("orgs", "org-s1")
    const staff = (first: string, role: Omit<FakeClever.StaffRole, "schools">) =>
      cleverDistrict.createUser({
        email: `${first}@${domain("clever")}`,
        name: { first, last: "Staff" },
        roles: { staff: { staff_id: first, schools: [school1], ...role } }
      })
    const extra = {
      principal: staff("c-principal", { title: "Principal" }),
      assistant: staff("c-assistant", { title: "Asst. Principal, Grades 6-8" }),
      rolesAide: staff("c-roles-aide", { roles: ["Aide"] }),
      untitled: staff("c-untitled", {}),
      secretary: staff("c-secretary", { title: "Principal's Secretary" }),
      coach: staff("c-coach", { title: "Instructional Coach" })
    }

    const settings: Record<Provider, Record<string, unknown>> = {
      "oneroster-csv": { path: dirs["oneroster-csv"] },
      clever: { districtId: cleverDistrict.districts.first()!.id, tokenFile: secret("clever-token", CLEVER_TOKEN), baseUrl: clever.baseUrl, pageSize: 5 },
      "oneroster-rest": { baseUrl: rest.baseUrl, auth: "oauth1", keyFile: secret("key", OAUTH.key), secretFile: secret("secret", OAUTH.secret), pageSize: 5 }
    }
    const store = yield* RosterStore
    const sync = yield* Sync
    const served = {} as Record<Provider, Served>
    const extraIds: Record<string, string> = Object.fromEntries(Object.values(extra).map((u) => [u.name.first!, u.id]))
    for (const provider of PROVIDERS) {
      const districtId = `scope-${provider}`
      yield* store.addDistrict({ id: districtId as DistrictId, name: districtId, provider, timezone: "America/Chicago", settings: settings[provider] })
      const run = yield* sync.run(districtId, { request: "full", trigger: "test" })
      served[provider] = {
        districtId,
        domain: domain(provider),
        status: run.status,
        runId: run.runId,
        fromCsv: provider === "clever"
          ? (kind, sourcedId) => extraIds[sourcedId] ?? cleverDistrict.ids.require(kind, sourcedId)
          : (_, sourcedId) => sourcedId
      }
    }
    return { served, csvDir: dirs["oneroster-csv"], clever: cleverDistrict }
  })
)

const TestLayer = Layer.mergeAll(ScopeLive, Admins.Default).pipe(Layer.provideMerge(syncTestLayer(fastProviderRetries)))

const officeFindings = (runId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly sourceId: string }>`
      SELECT source_id FROM findings WHERE run_id = ${runId} AND code = 'admin_district_office_only' ORDER BY source_id`.pipe(
      Effect.map((rows) => rows.map((r) => r.sourceId))
    ))

/** What the platform reads: the account's `admin_rights` rows. */
const rightsOf = (accountId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly districtId: string; readonly allSchools: boolean; readonly schoolSourceIds: ReadonlyArray<string>; readonly permission: string; readonly userId: number }>`
      SELECT district_id, all_schools, school_source_ids, permission, user_id FROM admin_rights WHERE account_id = ${accountId}`)

/** The platform's question: may this account see this school's dashboards? */
const maySee = (accountId: number, districtId: string, school: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly ok: boolean }>`
      SELECT EXISTS (SELECT 1 FROM admin_rights WHERE account_id = ${accountId} AND district_id = ${districtId}
                     AND (all_schools OR ${school} = ANY (school_source_ids))) AS ok`.pipe(Effect.map((rows) => rows[0]!.ok)))

const linkOf = (districtId: string, sourceId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly roles: ReadonlyArray<string>; readonly method: string | null; readonly activation: string | null; readonly accountId: number | null }>`
      SELECT u.roles, l.method, l.activation, l.account_id FROM users u LEFT JOIN account_links l ON l.user_id = u.id
      WHERE u.district_id = ${districtId} AND u.source_id = ${sourceId}`.pipe(Effect.map((rows) => rows[0]!)))

const mailsTo = (address: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly kind: string }>`SELECT kind FROM outbox WHERE recipient = ${address}`.pipe(Effect.map((rows) => rows.map((r) => r.kind))))

/** Confirms a rostered admin's activation e-mail as its holder would; returns the account. */
const activate = (districtId: string, sourceId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly accountId: number }>`
      SELECT account_id FROM rosterd_confirm_activation(${yield* latestToken(yield* userId(districtId, sourceId))})`
    return row!.accountId
  })

const resync = (districtId: string, request: "full" | "delta") => Effect.flatMap(Sync, (sync) => sync.run(districtId, { request, trigger: "test" }))

layer(TestLayer, { timeout: "180 seconds", excludeTestServices: true })("administrators' scope", (it) => {
  for (const provider of PROVIDERS) {
    it.effect(`${provider}: a district-level admin sees every school once active, a school admin its school; only the office admin is reported`, () =>
      Effect.gen(function*() {
        const { served } = yield* Scope
        const { districtId, domain, fromCsv, runId, status } = served[provider]
        assert.strictEqual(status, "succeeded")
        const id = (sourcedId: string) => fromCsv("users", sourcedId)
        const school = (sourcedId: string) => fromCsv("orgs", sourcedId)

        // The finding is raised for the office admin only, not for the district-level one.
        assert.deepStrictEqual(yield* officeFindings(runId), [id("a-office")])

        // Every admin is linked like a teacher: pending, one activation e-mail; no rights before confirming.
        for (const admin of ["a-dist", "a-s1", "a-office"]) {
          assert.deepInclude(yield* linkOf(districtId, id(admin)), { method: "created", activation: "pending" }, admin)
          assert.deepStrictEqual(yield* mailsTo(`${admin}@${domain}`), ["teacher_activation"], admin)
        }
        const pendingAccount = (yield* linkOf(districtId, id("a-dist"))).accountId!
        assert.deepStrictEqual(yield* rightsOf(pendingAccount), [])

        const district = yield* activate(districtId, id("a-dist"))
        const school1 = yield* activate(districtId, id("a-s1"))
        const office = yield* activate(districtId, id("a-office"))
        assert.deepStrictEqual((yield* rightsOf(district)).map((r) => [r.districtId, r.allSchools, [...r.schoolSourceIds], r.permission]), [
          [districtId, true, [], "view"]
        ])
        assert.deepStrictEqual((yield* rightsOf(school1)).map((r) => [r.allSchools, [...r.schoolSourceIds]]), [[false, [school("org-s1")]]])
        for (const s of ["org-s1", "org-s2"]) {
          assert.isTrue(yield* maySee(district, districtId, school(s)), s)
          assert.strictEqual(yield* maySee(school1, districtId, school(s)), s === "org-s1", s)
          assert.isFalse(yield* maySee(office, districtId, school(s)), s)
        }

        // The aide: role aide, no account, no e-mail, no rights, not an administrator.
        const aide = yield* linkOf(districtId, id("aide-1"))
        assert.deepStrictEqual([[...aide.roles], aide.method], [["aide"], null])
        assert.deepStrictEqual(yield* mailsTo(`aide-1@${domain}`), [])

        // admin list shows the same scopes.
        const listed = (yield* Effect.flatMap(Admins, (admins) => admins.list(districtId))).filter((a) => a.kind === "roster")
        const row = (sourcedId: string) => listed.find((a) => a.rosterRecord?.sourceId === id(sourcedId))
        assert.deepInclude(row("a-dist"), { allSchools: true, schools: [], districtOfficeOnly: false, invitation: "confirmed" })
        assert.deepInclude(row("a-s1"), { allSchools: false, schools: [school("org-s1")], districtOfficeOnly: false })
        assert.deepInclude(row("a-office"), { allSchools: false, districtOfficeOnly: true })
        assert.isUndefined(row("aide-1"))
      }))
  }

  it.effect("oneroster-csv: a school added later is covered by the district-level admin, not by the school admin; the finding stays off", () =>
    Effect.gen(function*() {
      const { csvDir, served } = yield* Scope
      const { districtId } = served["oneroster-csv"]
      writeCsv(csvDir, "orgs", [...readRows(csvDir, "orgs"), { sourcedId: "org-s3", name: "New School", type: "school", parentSourcedId: "org-d" }])
      writeCsv(csvDir, "classes", [
        ...readRows(csvDir, "classes"),
        { sourcedId: "cls-3", title: "cls-3 class", courseSourcedId: "crs-1", classType: "scheduled", schoolSourcedId: "org-s3", termSourcedIds: "term-year", periods: "2" }
      ])
      const run = yield* resync(districtId, "full")
      assert.strictEqual(run.status, "succeeded")
      const accountOf = (sourceId: string) => Effect.map(linkOf(districtId, sourceId), (l) => l.accountId!)
      assert.isTrue(yield* maySee(yield* accountOf("a-dist"), districtId, "org-s3"))
      assert.isFalse(yield* maySee(yield* accountOf("a-s1"), districtId, "org-s3"))
      assert.deepStrictEqual(yield* officeFindings(run.runId), ["a-office"])
    }))

  it.effect("clever: only staff with an administrative title are administrators; the district's rule changes the list; a title changed through events changes the role", () =>
    Effect.gen(function*() {
      const { clever, served } = yield* Scope
      const { districtId, domain, fromCsv } = served.clever
      const id = (name: string) => fromCsv("users", name)
      const state = (name: string) =>
        Effect.map(linkOf(districtId, id(name)), (l) => `${l.roles.join(",")} ${l.method ?? "no account"}`)
      const mails = (name: string) => mailsTo(`${name}@${domain}`)

      // Defaults: "Principal", "Asst. Principal, …" administer; "Aide" in roles, no title at all,
      // "Principal's Secretary" (an aide word wins) and "Instructional Coach" do not.
      assert.deepStrictEqual(yield* state("c-principal"), "staff created")
      assert.deepStrictEqual(yield* state("c-assistant"), "staff created")
      for (const name of ["c-roles-aide", "c-untitled", "c-secretary", "c-coach"]) {
        assert.deepStrictEqual(yield* state(name), "aide no account", name)
        assert.deepStrictEqual(yield* mails(name), [], name)
      }
      assert.deepStrictEqual(yield* mails("c-principal"), ["teacher_activation"])

      // The district counts coaches as administrators: after the next full sync the coach is one.
      yield* Effect.flatMap(RosterStore, (store) => store.setRules(districtId, { staff: { adminTitles: [...DEFAULT_ADMIN_TITLES, "coach"] } }))
      assert.strictEqual((yield* resync(districtId, "full")).status, "succeeded")
      assert.deepStrictEqual(yield* state("c-coach"), "staff created")
      assert.deepStrictEqual(yield* mails("c-coach"), ["teacher_activation"])
      assert.deepStrictEqual(yield* state("c-untitled"), "aide no account")

      // Through Clever's events (the delta maps with the district's rule too): the untitled staff
      // becomes "Math Coach" (an administrator in this district now: an account and the e-mail);
      // the principal, active, becomes an aide and loses the rights (its account and link stay:
      // links are permanent).
      const principalAccount = yield* activate(districtId, id("c-principal"))
      assert.lengthOf(yield* rightsOf(principalAccount), 1)
      clever.updateUser(id("c-untitled"), { roles: { staff: { title: "Math Coach" } } })
      clever.updateUser(id("c-principal"), { roles: { staff: { title: "Instructional Aide" } } })
      const delta = yield* resync(districtId, "delta")
      assert.deepStrictEqual([delta.mode, delta.status], ["delta", "succeeded"])
      assert.deepStrictEqual(yield* state("c-untitled"), "staff created")
      assert.deepStrictEqual(yield* mails("c-untitled"), ["teacher_activation"])
      assert.deepStrictEqual(yield* state("c-principal"), "aide created")
      assert.deepStrictEqual(yield* rightsOf(principalAccount), [])
      assert.isUndefined((yield* Effect.flatMap(Admins, (a) => a.list(districtId))).find((a) => a.rosterRecord?.sourceId === id("c-principal")))
    }))
})
