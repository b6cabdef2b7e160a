import { Migrator, SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import roster from "../../migrations/0001_roster.ts"
import districtRules from "../../migrations/0002_district_rules.ts"
import safety from "../../migrations/0003_safety.ts"
import admins from "../../migrations/0004_admins.ts"
import schedule from "../../migrations/0005_schedule.ts"
import credentials from "../../migrations/0006_credentials.ts"
import erase from "../../migrations/0007_erase.ts"
import { latestMigration } from "../../migrations/index.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { RosterProviderLive } from "../../src/Providers/Providers.ts"
import { SyncLive } from "../../src/Accounts/SyncAccounts.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { DEFAULT_ROLE_NAMES, grantsCurrent, grantsMarkdown, type RoleNames, setupRoles } from "../../src/Store/Roles.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { migrate, pgClientLayer } from "../../src/Store/Sql.ts"
import { createTestDatabase, dropTestDatabase, roleUrl } from "../support/Database.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { testDataDir } from "../support/Layers.ts"

/**
 * `rosterd db setup-roles` and the migrations' grant pass on real databases: a fresh one
 * (only the owner may build it), a single-role database from before the roles (it keeps
 * working, then hands everything to the owner with nothing lost), two processes setting up
 * at once, a later migration's table and function, and the README's grant table.
 */

const ROOT = NodePath.resolve(import.meta.dirname, "../..")

const withDatabase = <A, E>(url: string, effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  effect.pipe(Effect.provide(pgClientLayer({ url: Redacted.make(url), maxConnections: 2 })))

/** An empty database of the test's own (not the migrated template), dropped afterwards. */
const emptyDatabase = Effect.acquireRelease(
  Effect.promise(async () => {
    const name = `sec_${randomBytes(6).toString("hex")}`
    const admin = new pg.Client({ connectionString: roleUrl("postgres") })
    await admin.connect()
    await admin.query(`CREATE DATABASE ${name}`)
    await admin.end()
    return name
  }),
  (name) => Effect.promise(() => dropTestDatabase(name))
)

/** Role names of the test's own (roles are the cluster's: other test files keep the defaults). */
const freshNames = (): RoleNames => {
  const tag = randomBytes(4).toString("hex")
  return { owner: `t${tag}_owner`, app: `t${tag}_app`, platform: `t${tag}_platform` }
}

const withNames = (names: RoleNames) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
    ["rosterd.database.roles.owner", names.owner],
    ["rosterd.database.roles.app", names.app],
    ["rosterd.database.roles.platform", names.platform]
  ])))

const urlAs = (database: string, user: string, password: string) => {
  const url = new URL(roleUrl(database))
  url.username = user
  url.password = password
  return url.toString()
}

/** The sync, over `url`. */
const syncOver = (url: string) =>
  Layer.mergeAll(SyncLive, RosterStore.Default).pipe(
    Layer.provide(RosterProviderLive),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([...testDataDir, ["rosterd.csv.settleSeconds", "0"]])))),
    Layer.provideMerge(pgClientLayer({ url: Redacted.make(url) }))
  )

const syncSmall = (url: string, district: string, dir: string) =>
  Effect.gen(function*() {
    const store = yield* RosterStore
    if ((yield* store.listDistricts()).every((d) => d.id !== district)) {
      yield* store.addDistrict({ id: district as DistrictId, name: district, provider: "oneroster-csv", timezone: "UTC", settings: { path: dir } })
    }
    return yield* Effect.flatMap(Sync, (sync) => sync.run(district, { request: "full", trigger: "test" }))
  }).pipe(Effect.provide(syncOver(url)))

const failureOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "succeeded"

describe("rosterd db setup-roles and the grant pass", () => {
  it.scoped("a fresh database: the app role may not build it (the error names DATABASE_OWNER_URL); the owner's migrations record the roles and apply the grants; then the app finds it up to date", () =>
    Effect.gen(function*() {
      const name = yield* emptyDatabase
      const report = yield* withDatabase(roleUrl(name), setupRoles({ names: DEFAULT_ROLE_NAMES }))
      assert.deepStrictEqual({ created: report.created, pending: report.pendingSchema }, { created: [], pending: true })
      assert.deepStrictEqual([...report.existing].sort(), Object.values(DEFAULT_ROLE_NAMES).sort())

      const refused = yield* Effect.exit(withDatabase(roleUrl(name, "app"), migrate))
      assert.include(failureOf(refused), "MigrationsNeedOwner")
      assert.include(failureOf(refused), "DATABASE_OWNER_URL")

      const applied = yield* withDatabase(roleUrl(name, "owner"), migrate)
      assert.strictEqual(applied.at(-1)?.[0], latestMigration)
      const check = yield* withDatabase(roleUrl(name, "app"), Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const recorded = yield* sql<{ readonly kind: string; readonly roleName: string }>`SELECT kind, role_name FROM rosterd_roles ORDER BY kind`
        const [rights] = yield* sql<{ readonly app: boolean; readonly platform: boolean }>`
          SELECT has_table_privilege('rosterd_app', 'outbox', 'INSERT') AS app, has_table_privilege('rosterd_platform', 'outbox', 'SELECT') AS platform`
        return { recorded, rights, current: yield* grantsCurrent(DEFAULT_ROLE_NAMES), again: yield* migrate }
      }))
      assert.deepStrictEqual(check, {
        recorded: [{ kind: "app", roleName: "rosterd_app" }, { kind: "owner", roleName: "rosterd_owner" }, { kind: "platform", roleName: "rosterd_platform" }],
        rights: { app: true, platform: false },
        current: true,
        again: []
      })
    }))

  it.scoped("setup-roles is idempotent and two processes may run it at once: roles created once, the second run changes nothing", () =>
    Effect.gen(function*() {
      const names = freshNames()
      const db = yield* Effect.acquireRelease(Effect.promise(() => createTestDatabase()), (info) => Effect.promise(() => dropTestDatabase(info.name)))
      const passwords = { owner: Redacted.make("o-pass"), app: Redacted.make("a-pass"), platform: Redacted.make("p-pass") }
      // Two connections, two transactions, at once: one waits for the other's lock and finds the roles made.
      const [first, second] = yield* Effect.all([
        withDatabase(db.superuserUrl, setupRoles({ names, passwords })),
        withDatabase(db.superuserUrl, setupRoles({ names, passwords }))
      ], { concurrency: 2 })
      assert.deepStrictEqual([...first.created, ...second.created].sort(), Object.values(names).sort())
      assert.deepStrictEqual([first.ownershipMoved, second.ownershipMoved].sort((a, b) => a - b)[0], 0)
      assert.isAbove(Math.max(first.ownershipMoved, second.ownershipMoved), 30)
      const third = yield* withDatabase(db.superuserUrl, setupRoles({ names, passwords }))
      assert.deepStrictEqual({ created: third.created, moved: third.ownershipMoved }, { created: [], moved: 0 })
      assert.strictEqual(yield* withDatabase(db.superuserUrl, grantsCurrent(names)), true)
      // The new app role works on the clone's data with the password set up.
      const [row] = yield* withDatabase(urlAs(db.name, names.app, "a-pass"), Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ readonly me: string }>`SELECT current_user AS me`))
      assert.strictEqual(row!.me, names.app)
    }))

  it.scoped("a single-role database from before the roles keeps working after the upgrade; setup-roles then hands it to the owner, the app syncs it, nothing lost", () =>
    Effect.gen(function*() {
      const name = yield* emptyDatabase
      const superuser = roleUrl(name)
      const dir = tempDir()
      yield* Effect.addFinalizer(() => Effect.sync(dir.remove))
      writeSmallDistrict(dir.dir, "legacy.example")

      // Before: migrations 0001-0007 and a rostered user, all as one role (the superuser here).
      const upTo7 = Migrator.fromRecord({
        "0001_roster": roster,
        "0002_district_rules": districtRules,
        "0003_safety": safety,
        "0004_admins": admins,
        "0005_schedule": schedule,
        "0006_credentials": credentials,
        "0007_erase": erase
      })
      yield* withDatabase(superuser, Effect.gen(function*() {
        yield* Migrator.make({})({ loader: upTo7, table: "rosterd_migrations" })
        const sql = yield* SqlClient.SqlClient
        yield* sql.withTransaction(sql.unsafe(`
          INSERT INTO districts (id, name, provider) VALUES ('before', 'Before', 'oneroster-csv');
          SELECT set_config('rosterd.writer', 'sync', true);
          INSERT INTO users (district_id, source_id, roster_source, roles) VALUES ('before', 'u-1', 'csv', '{student}')`))
      }))

      // The upgrade as that role: no roles recorded, the owner of the tables (and superusers) write as the sync.
      const names = freshNames()
      const upgraded = yield* withDatabase(superuser, migrate).pipe(withNames(names))
      assert.strictEqual(upgraded[0]?.[0], 8)
      assert.strictEqual((yield* syncSmall(superuser, "legacy", dir.dir)).status, "succeeded")
      const outsider = `t${randomBytes(4).toString("hex")}_outsider`
      const refused = yield* withDatabase(superuser, Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`CREATE ROLE ${outsider}; GRANT SELECT, UPDATE ON users TO ${outsider};
          GRANT EXECUTE ON FUNCTION rosterd_writer_allowed(name), rosterd_refuse(text, text) TO ${outsider}`)
        return yield* Effect.flip(sql.withTransaction(Effect.gen(function*() {
          yield* sql.unsafe(`SET LOCAL ROLE ${outsider}`)
          yield* sql`SELECT set_config('rosterd.writer', 'sync', true)`
          yield* sql`UPDATE users SET given_name = 'Mallory'`
        })))
      }))
      assert.include(String((refused.cause as Error).message), "rosterd rule writer_role")

      // setup-roles: the roles, the objects to the owner, the grants; then the app syncs the same district.
      const passwords = { owner: Redacted.make("o"), app: Redacted.make("a"), platform: Redacted.make("p") }
      const report = yield* withDatabase(superuser, setupRoles({ names, passwords }))
      assert.deepStrictEqual([...report.created].sort(), Object.values(names).sort())
      assert.isAbove(report.ownershipMoved, 30)
      assert.match(report.grants, /^applied/)
      const again = yield* syncSmall(urlAs(name, names.app, "a"), "legacy", dir.dir)
      assert.deepStrictEqual({ status: again.status, users: again.counts.users }, {
        status: "succeeded",
        users: { created: 0, updated: 0, deactivated: 0, unchanged: 5 }
      })
      const after = yield* withDatabase(superuser, Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ readonly users: number; readonly owner: string; readonly recorded: number }>`
          SELECT (SELECT count(*)::int FROM users WHERE district_id IN ('legacy', 'before') AND active) AS users,
                 (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'users'::regclass) AS owner,
                 (SELECT count(*)::int FROM rosterd_roles) AS recorded`
        return row
      }))
      assert.deepStrictEqual(after, { users: 6, owner: names.owner, recorded: 3 })
    }))

  it.scoped("a later migration's table gets the app's rights at once (default privileges) and none for the platform; the next migrate records the grants and pins its function", () =>
    Effect.gen(function*() {
      const db = yield* Effect.acquireRelease(Effect.promise(() => createTestDatabase()), (info) => Effect.promise(() => dropTestDatabase(info.name)))
      yield* withDatabase(db.ownerUrl, Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`CREATE TABLE later_things (id int); CREATE FUNCTION rosterd_later() RETURNS int LANGUAGE sql AS 'SELECT 1'`)
      }))
      const rights = (sql: SqlClient.SqlClient) =>
        sql<{ readonly app: boolean; readonly platform: boolean; readonly pinned: boolean; readonly publicExecute: boolean }>`
          SELECT has_table_privilege('rosterd_app', 'later_things', 'INSERT') AS app,
                 has_table_privilege('rosterd_platform', 'later_things', 'SELECT') AS platform,
                 (SELECT proconfig IS NOT NULL FROM pg_proc WHERE proname = 'rosterd_later') AS pinned,
                 has_function_privilege('public', 'rosterd_later()', 'EXECUTE') AS public_execute`
      const before = yield* withDatabase(db.url, Effect.gen(function*() {
        return { rights: (yield* rights(yield* SqlClient.SqlClient))[0], current: yield* grantsCurrent(DEFAULT_ROLE_NAMES) }
      }))
      assert.deepStrictEqual(before, { rights: { app: true, platform: false, pinned: false, publicExecute: true }, current: false })
      assert.deepStrictEqual(yield* withDatabase(db.ownerUrl, migrate), [])
      const after = yield* withDatabase(db.url, Effect.gen(function*() {
        return { rights: (yield* rights(yield* SqlClient.SqlClient))[0], current: yield* grantsCurrent(DEFAULT_ROLE_NAMES) }
      }))
      assert.deepStrictEqual(after, { rights: { app: true, platform: false, pinned: true, publicExecute: false }, current: true })
    }))

  it.scoped("setup-roles refuses a platform role that is a member of the app role, and a connection that is not an administrator", () =>
    Effect.gen(function*() {
      const name = yield* emptyDatabase
      const names = freshNames()
      yield* withDatabase(roleUrl(name), Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe(`CREATE ROLE ${names.app}; CREATE ROLE ${names.platform} IN ROLE ${names.app}`)))
      const member = yield* Effect.exit(withDatabase(roleUrl(name), setupRoles({ names })))
      assert.include(failureOf(member), `${names.platform} is a member of ${names.app}: the roles would draw no line`)
      const notAdmin = yield* Effect.exit(withDatabase(roleUrl(name, "app"), setupRoles({ names: DEFAULT_ROLE_NAMES })))
      assert.include(failureOf(notAdmin), "setup-roles needs a superuser or a role with CREATEROLE; connected as rosterd_app")
      // Nothing was made by the refused run (one transaction).
      const [row] = yield* withDatabase(roleUrl(name), Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM pg_roles WHERE rolname = ${names.owner}`))
      assert.strictEqual(row!.n, 0)
    }))

  it.scoped("setup-roles lets the app, never the platform, turn the per-row triggers off (session_replication_role)", () =>
    Effect.gen(function*() {
      const name = yield* emptyDatabase
      const names = freshNames()
      yield* withDatabase(roleUrl(name), setupRoles({ names }))
      const may = (role: string) =>
        withDatabase(roleUrl(name), Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.map(sql<{ readonly may: boolean }>`SELECT has_parameter_privilege(${role}, 'session_replication_role', 'SET') AS may`, ([row]) => row?.may)))
      assert.isTrue(yield* may(names.app))
      assert.isFalse(yield* may(names.platform))
      // A platform role that holds it could turn the lock triggers off: refused.
      yield* withDatabase(roleUrl(name), Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe(`GRANT SET ON PARAMETER session_replication_role TO ${names.platform}`)))
      const refused = yield* Effect.exit(withDatabase(roleUrl(name), setupRoles({ names })))
      assert.include(failureOf(refused), `${names.platform} may set session_replication_role, which turns the lock triggers off`)
    }))

  it("the README's grant table is the one the code generates (rosterd db grants --format markdown)", () => {
    const readme = Fs.readFileSync(NodePath.join(ROOT, "README.md"), "utf8")
    assert.include(readme, grantsMarkdown(DEFAULT_ROLE_NAMES), "paste `rosterd db grants --format markdown` into the README's \"Database roles and grants\"")
  })
})
