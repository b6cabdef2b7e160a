import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Either, Layer, Redacted } from "effect"
import { describe } from "vitest"
import { randomBytes } from "node:crypto"
import pg from "pg"
import { Admins } from "../../src/Admins/Admins.ts"
import { Classes } from "../../src/Classes/Classes.ts"
import { DistrictErase } from "../../src/Districts/Erase.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { DEFAULT_ROLE_NAMES, GRANTS, type Privilege } from "../../src/Store/Roles.ts"
import { pgClientLayer } from "../../src/Store/Sql.ts"
import { latestToken } from "../Accounts/support.ts"
import { addDistrict, AdminsTestLayer, invitationToken } from "../Admins/support.ts"
import { TestDatabaseUrl } from "../support/Database.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * The trust boundary in the database (README "Security"), on a store synced by the real
 * sync (as the app role, like every test): the platform's role tries everything it must
 * not do — the `rosterd.writer` trick, deletes, renames, DDL, reading tokens and the
 * outbox, writing the audit log, erasing — and each attempt is refused with the store
 * unchanged (every table's physical row versions compared); what it may do works as that
 * role. The app role cannot change the schema or rewrite the audit log either; a role
 * with table rights but not rosterd's (a legacy platform role) meets the triggers.
 */

const { app, owner, platform } = DEFAULT_ROLE_NAMES

/** A raw connection as one role: these tests are about the SQLSTATE a statement gets. */
const connect = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: url, application_name: "rosterd-test:security" })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

class Platform extends Context.Tag("test/Platform")<Platform, pg.Client>() {}
class App extends Context.Tag("test/App")<App, pg.Client>() {}
/** A role with every right on the roster tables, but none of rosterd's roles (a legacy platform role). */
class Intruder extends Context.Tag("test/Intruder")<Intruder, pg.Client>() {}
/** The platform's in-product operations (src/Classes) on the platform's connection. */
class PlatformClasses extends Context.Tag("test/PlatformClasses")<PlatformClasses, Classes>() {}
/** rosterd's district erase, run on the platform's connection. */
class PlatformErase extends Context.Tag("test/PlatformErase")<PlatformErase, DistrictErase>() {}

const platformSql = Layer.unwrapEffect(Effect.map(TestDatabaseUrl, (db) => pgClientLayer({ url: Redacted.make(db.platformUrl) })))

const intruderName = `intruder_${randomBytes(4).toString("hex")}`

const IntruderLive = Layer.scoped(
  Intruder,
  Effect.gen(function*() {
    const db = yield* TestDatabaseUrl
    const superuser = yield* connect(db.superuserUrl)
    const password = randomBytes(12).toString("hex")
    yield* Effect.promise(() =>
      superuser.query(`
        CREATE ROLE ${intruderName} LOGIN PASSWORD '${password}';
        GRANT USAGE ON SCHEMA public TO ${intruderName};
        GRANT SELECT, INSERT, UPDATE, DELETE ON users, classes, enrollments, account_links, admins TO ${intruderName};
        GRANT EXECUTE ON FUNCTION rosterd_writer_allowed(name), rosterd_refuse(text, text), rosterd_synced(roster_source) TO ${intruderName};`)
    )
    const url = new URL(db.superuserUrl)
    url.username = intruderName
    url.password = password
    return yield* connect(url.toString())
  })
)

const RolesLive = Layer.mergeAll(
  Layer.scoped(Platform, Effect.flatMap(TestDatabaseUrl, (db) => connect(db.platformUrl))),
  Layer.scoped(App, Effect.flatMap(TestDatabaseUrl, (db) => connect(db.url))),
  IntruderLive,
  Layer.effect(PlatformClasses, Classes).pipe(Layer.provide(Classes.Default), Layer.provide(platformSql)),
  Layer.effect(PlatformErase, DistrictErase).pipe(Layer.provide(DistrictErase.DefaultWithoutDependencies), Layer.provide(platformSql))
)

/** The district every case works on, synced once (as the app role) before the cases run. */
const SeedLive = Layer.effectDiscard(Effect.gen(function*() {
  const dir = tempDir()
  writeSmallDistrict(dir.dir, "security.example")
  yield* addDistrict("sec", dir.dir)
  const summary = yield* Effect.flatMap(Sync, (sync) => sync.run("sec", { request: "full", trigger: "test" }))
  assert.strictEqual(summary.status, "succeeded")
}))

const TestLayer = Layer.mergeAll(RolesLive, SeedLive).pipe(Layer.provideMerge(AdminsTestLayer))

// ---------------------------------------------------------------- helpers

const one = <A extends object>(sql: SqlClient.SqlClient, text: string) =>
  Effect.map(sql.unsafe<A>(text), (rows) => rows[0]!)

const ids = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const id = (table: string, source: string) =>
    Effect.map(one<{ readonly id: number }>(sql, `SELECT id FROM ${table} WHERE district_id = 'sec' AND source_id = '${source}'`), (r) => r.id)
  const student = yield* id("users", "s-1")
  const teacher = yield* id("users", "t-1")
  const syncedClass = yield* id("classes", "cls-1")
  const { accountId } = yield* one<{ readonly accountId: number }>(sql, `SELECT account_id FROM account_links WHERE user_id = ${teacher}`)
  return { student, teacher, syncedClass, teacherAccount: accountId }
})

/** Every table of the schema: its rows' physical versions (a refused statement leaves them all as they were). */
const everything = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const tables = yield* sql<{ readonly name: string }>`
    SELECT relname AS name FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY relname`
  const out: Record<string, string> = {}
  for (const { name } of tables) {
    const row = yield* one<{ readonly digest: string | null }>(sql, `SELECT md5(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid)) AS digest FROM "${name}"`)
    out[name] = row.digest ?? "empty"
  }
  return out
})

/** Runs `statements` in one transaction on `client`: "ok", or the SQLSTATE and message of the refusal. */
const attempt = (client: pg.Client, statements: ReadonlyArray<string>, values: ReadonlyArray<unknown> = []) =>
  Effect.promise(async () => {
    await client.query("BEGIN")
    try {
      for (const statement of statements) await client.query(statement, statement.includes("$1") ? [...values] : [])
      await client.query("COMMIT")
      return { code: "ok", message: "" }
    } catch (error) {
      await client.query("ROLLBACK")
      const e = error as { readonly code?: string; readonly message: string }
      return { code: e.code ?? "none", message: e.message }
    }
  })

/** `statements` are refused with `code` (and a message matching `pattern`), and no table changed. */
const refused = (client: pg.Client, code: string, pattern: RegExp | null, statements: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const before = yield* everything
    const result = yield* attempt(client, statements)
    assert.strictEqual(result.code, code, `${statements.join("; ")} → ${result.code} ${result.message}`)
    if (pattern !== null) assert.match(result.message, pattern)
    assert.deepStrictEqual(yield* everything, before, "a refused statement changed the store")
  })

const asSync = "SELECT set_config('rosterd.writer', 'sync', true)"
const asErase = "SELECT set_config('rosterd.writer', 'erase', true)"

layer(TestLayer, { timeout: "120 seconds", excludeTestServices: true })("database roles", (it) => {
describe("hostile: database roles", () => {
  // ------------------------------------------------------------ the platform's role
  it.effect("the platform sets rosterd.writer = 'erase' and deletes students → refused (no DELETE on users); nothing deleted", () =>
    Effect.gen(function*() {
      const { student } = yield* ids
      yield* refused(yield* Platform, "42501", /permission denied for table users/, [asErase, `DELETE FROM users WHERE id = ${student}`])
      yield* refused(yield* Platform, "42501", /permission denied/, [asErase, `DELETE FROM users WHERE district_id = 'sec'`])
    }))

  it.effect("the platform sets rosterd.writer = 'sync' and rewrites a synced name → refused; the name unchanged", () =>
    Effect.gen(function*() {
      const { student } = yield* ids
      yield* refused(yield* Platform, "42501", /permission denied for table users/, [asSync, `UPDATE users SET given_name = 'Mallory' WHERE id = ${student}`])
      yield* refused(yield* Platform, "42501", /permission denied for table users/, [`UPDATE users SET given_name = 'Mallory' WHERE id = ${student}`])
    }))

  it.effect("the platform sets rosterd.writer = 'sync' and renames a synced class → refused by rule writer_role (RSLCK)", () =>
    Effect.gen(function*() {
      const { syncedClass } = yield* ids
      yield* refused(yield* Platform, "RSLCK", /rosterd rule writer_role: role rosterd_platform may not write classes as rosterd's sync writer/, [
        asSync,
        `UPDATE classes SET title = 'Renamed' WHERE id = ${syncedClass}`
      ])
    }))

  it.effect("the platform sets rosterd.writer = 'sync' and adds a student to a synced class → refused by rule writer_role", () =>
    Effect.gen(function*() {
      const { syncedClass } = yield* ids
      const sql = yield* SqlClient.SqlClient
      // s-3 is in the other class: adding it to this one is a new membership.
      const { id: s3 } = yield* one<{ readonly id: number }>(sql, `SELECT id FROM users WHERE district_id = 'sec' AND source_id = 's-3'`)
      yield* refused(yield* Platform, "RSLCK", /writer_role/, [
        asSync,
        `INSERT INTO enrollments (class_id, user_id, roster_source, role) VALUES (${syncedClass}, ${s3}, 'manual', 'student')`
      ])
    }))

  it.effect("the platform sets rosterd.writer = 'erase' and deletes a synced class and its enrollments → refused by rule writer_role", () =>
    Effect.gen(function*() {
      const { syncedClass } = yield* ids
      yield* refused(yield* Platform, "RSLCK", /writer_role: role rosterd_platform may not write enrollments as rosterd's erase writer/, [
        asErase,
        `DELETE FROM enrollments WHERE class_id = ${syncedClass}`
      ])
      yield* refused(yield* Platform, "RSLCK", /writer_role/, [asErase, `DELETE FROM classes WHERE id = ${syncedClass}`])
    }))

  it.effect("the platform sets rosterd.writer = 'erase' and deletes links and admins → refused (no DELETE on them)", () =>
    Effect.gen(function*() {
      const { teacher } = yield* ids
      yield* refused(yield* Platform, "42501", /permission denied for table account_links/, [asErase, `DELETE FROM account_links WHERE user_id = ${teacher}`])
      yield* refused(yield* Platform, "42501", /permission denied for table admins/, [asErase, `DELETE FROM admins`])
    }))

  it.effect("the platform runs rosterd's district erase on its own connection → fails; nothing erased", () =>
    Effect.gen(function*() {
      const before = yield* everything
      const erase = yield* PlatformErase
      const exit = yield* Effect.exit(erase.erase("sec", { by: "mallory", reason: null }))
      assert.isTrue(exit._tag === "Failure", "the platform erased a district")
      assert.deepStrictEqual(yield* everything, before)
    }))

  it.effect("the platform disables a lock trigger, alters or truncates a table → refused (it owns nothing)", () =>
    Effect.gen(function*() {
      const client = yield* Platform
      yield* refused(client, "42501", /must be owner of table users/, ["ALTER TABLE users DISABLE TRIGGER users_lock"])
      yield* refused(client, "42501", /must be owner of table classes/, ["ALTER TABLE classes DISABLE TRIGGER ALL"])
      yield* refused(client, "42501", /must be owner/, ["ALTER TABLE enrollments DROP CONSTRAINT enrollments_rostered_or_manual"])
      yield* refused(client, "42501", /permission denied for table users/, ["TRUNCATE users CASCADE"])
      yield* refused(client, "42501", /must be owner/, ["DROP TRIGGER classes_writer ON classes"])
    }))

  it.effect("the platform reads the outbox, tokens, credentials, held values, change lists or the audit log → permission denied for each", () =>
    Effect.gen(function*() {
      const client = yield* Platform
      for (const table of ["outbox", "activation_tokens", "admin_tokens", "district_credentials", "held_changes", "run_changes", "audit_log", "holds", "rosterd_roles", "rosterd_migrations"]) {
        const result = yield* attempt(client, [`SELECT * FROM ${table} LIMIT 1`])
        assert.strictEqual(result.code, "42501", `the platform read ${table}`)
        assert.include(result.message, `permission denied for table ${table}`)
      }
    }))

  it.effect("the platform writes the audit log or a token → refused; nothing written", () =>
    Effect.gen(function*() {
      const client = yield* Platform
      yield* refused(client, "42501", /permission denied for table audit_log/, ["INSERT INTO audit_log (actor, action) VALUES ('mallory', 'db.forged')"])
      yield* refused(client, "42501", /permission denied for table audit_log/, ["DELETE FROM audit_log"])
      yield* refused(client, "42501", /permission denied for table activation_tokens/, [
        "INSERT INTO activation_tokens (user_id, account_id, token_hash, expires_at) SELECT user_id, account_id, sha256('x'), now() + interval '1 day' FROM account_links LIMIT 1"
      ])
      yield* refused(client, "42501", /permission denied for table outbox/, ["UPDATE outbox SET state = 'pending'"])
    }))

  it.effect("the platform shadows classes with a temporary table saying 'manual', then adds a student to a synced class → still refused (pinned search_path)", () =>
    Effect.gen(function*() {
      const { syncedClass } = yield* ids
      const sql = yield* SqlClient.SqlClient
      const { id: s3 } = yield* one<{ readonly id: number }>(sql, `SELECT id FROM users WHERE district_id = 'sec' AND source_id = 's-3'`)
      yield* refused(yield* Platform, "RSLCK", /rosterd rule synced_class_members/, [
        `CREATE TEMP TABLE classes ON COMMIT DROP AS SELECT id, 'manual'::roster_source AS roster_source FROM public.classes`,
        `SET LOCAL search_path = pg_temp, public`,
        `INSERT INTO public.enrollments (class_id, user_id, roster_source, role) VALUES (${syncedClass}, ${s3}, 'manual', 'student')`
      ])
    }))

  it.effect("the platform takes rosterd's role (SET ROLE) or creates objects in its schema → refused", () =>
    Effect.gen(function*() {
      const client = yield* Platform
      yield* refused(client, "42501", /permission denied to set role "rosterd_app"/, [`SET ROLE ${app}`])
      yield* refused(client, "42501", /permission denied to set role "rosterd_owner"/, [`SET ROLE ${owner}`])
      yield* refused(client, "42501", /permission denied for schema public/, ["CREATE TABLE public.shadow (id int)"])
      yield* refused(client, "42501", /permission denied for schema public/, [
        "CREATE FUNCTION public.rosterd_synced(source text) RETURNS boolean LANGUAGE sql AS $$ SELECT false $$"
      ])
    }))

  // ------------------------------------------------------------ a role with rights but not rosterd's
  it.effect("a role with every right on users but not rosterd's sets rosterd.writer = 'sync' or 'erase' → refused by rule writer_role", () =>
    Effect.gen(function*() {
      const { student, syncedClass } = yield* ids
      const client = yield* Intruder
      const writer = new RegExp(`writer_role: role ${intruderName} may not write users`)
      yield* refused(client, "RSLCK", writer, [asSync, `UPDATE users SET given_name = 'Mallory' WHERE id = ${student}`])
      yield* refused(client, "RSLCK", writer, [asErase, `DELETE FROM users WHERE id = ${student}`])
      yield* refused(client, "RSLCK", /writer_role/, [asErase, `DELETE FROM enrollments WHERE class_id = ${syncedClass}`])
      // Without the setting, the row triggers' own rules answer, as for anyone.
      yield* refused(client, "RSLCK", /rosterd rule synced_user_name/, [`UPDATE users SET given_name = 'Mallory' WHERE id = ${student}`])
      yield* refused(client, "RSLCK", /rosterd rule rostered_never_deleted/, [`DELETE FROM users WHERE id = ${student}`])
    }))

  // ------------------------------------------------------------ the app role
  it.effect("rosterd's app role disables a trigger, alters, drops or creates a table, or rewrites the audit log → refused", () =>
    Effect.gen(function*() {
      const client = yield* App
      yield* refused(client, "42501", /must be owner of table users/, ["ALTER TABLE users DISABLE TRIGGER users_lock"])
      yield* refused(client, "42501", /must be owner of table users/, ["ALTER TABLE users ADD COLUMN note text"])
      yield* refused(client, "42501", /must be owner of table outbox/, ["DROP TABLE outbox"])
      yield* refused(client, "42501", /permission denied for schema public/, ["CREATE TABLE public.scratch (id int)"])
      yield* refused(client, "42501", /permission denied for table audit_log/, ["UPDATE audit_log SET actor = 'someone else'"])
      yield* refused(client, "42501", /permission denied for table audit_log/, ["DELETE FROM audit_log"])
      yield* refused(client, "42501", /permission denied for table run_changes/, ["TRUNCATE run_changes"])
      yield* refused(client, "42501", /permission denied to set role "rosterd_owner"/, [`SET ROLE ${owner}`])
    }))
})

describe("the platform's allowed operations, as its role", () => {
  it.effect("a teacher-made class: created, renamed, synced students added, removed and re-added, an integration attached, deleted", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const classes = yield* PlatformClasses
      const { student, teacherAccount } = yield* ids
      const id = yield* classes.create(teacherAccount, "Chess club")
      yield* classes.rename(id, "Chess club (Tuesdays)")
      assert.strictEqual(yield* classes.addStudent(id, student), "added")
      yield* classes.removeMember(id, student, "student")
      assert.strictEqual(yield* classes.addStudent(id, student), "added")
      assert.strictEqual(yield* classes.attachIntegration(id, "google-classroom"), "attached")
      const periods = yield* sql<{ readonly ended: boolean }>`
        SELECT ended_at IS NOT NULL AS ended FROM enrollments WHERE class_id = ${id} AND user_id = ${student} ORDER BY id`
      assert.deepStrictEqual(periods.map((p) => p.ended), [true, false])
      const [made] = yield* sql<{ readonly title: string; readonly rosterSource: string }>`SELECT title, roster_source FROM classes WHERE id = ${id}`
      assert.deepStrictEqual(made, { title: "Chess club (Tuesdays)", rosterSource: "manual" })
      yield* classes.remove(id)
      const left = yield* sql<{ readonly n: number }>`
        SELECT (SELECT count(*)::int FROM classes WHERE id = ${id}) + (SELECT count(*)::int FROM enrollments WHERE class_id = ${id})
             + (SELECT count(*)::int FROM class_integrations WHERE class_id = ${id}) AS n`
      assert.strictEqual(left[0]!.n, 0)
    }))

  it.effect("a synced class stays the district's for the platform: rename, add a student, attach an integration → refused with the rule", () =>
    Effect.gen(function*() {
      const classes = yield* PlatformClasses
      const { student, syncedClass } = yield* ids
      const before = yield* everything
      const rule = (effect: Effect.Effect<unknown, unknown>) => Effect.map(Effect.flip(effect), (e) => (e as { readonly rule?: string }).rule)
      assert.strictEqual(yield* rule(classes.rename(syncedClass, "Renamed")), "synced_class_name")
      assert.strictEqual(yield* rule(classes.addStudent(syncedClass, student)), "synced_class_members")
      assert.strictEqual(yield* rule(classes.attachIntegration(syncedClass, "google-classroom")), "synced_class_integration")
      assert.strictEqual(yield* rule(classes.remove(syncedClass)), "rostered_never_deleted")
      assert.deepStrictEqual(yield* everything, before)
    }))

  it.effect("an account gains an address the platform adds", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { teacherAccount } = yield* ids
      const result = yield* attempt(yield* Platform, [
        `INSERT INTO account_emails (account_id, email, email_key, added_by) VALUES (${teacherAccount}, 'Tess.Home@Home.Example', 'tess.home@home.example', 'operator')`
      ])
      assert.strictEqual(result.code, "ok", result.message)
      const rows = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM account_emails WHERE account_id = ${teacherAccount} AND email_key = 'tess.home@home.example'`
      assert.strictEqual(rows[0]!.n, 1)
    }))

  it.effect("the platform confirms a teacher's activation with rosterd_confirm_activation: the link and account become active", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { teacher, teacherAccount } = yield* ids
      const token = yield* latestToken(teacher)
      const client = yield* Platform
      const rows = yield* Effect.promise(() => client.query("SELECT user_id, account_id, outcome FROM rosterd_confirm_activation($1)", [token]))
      assert.deepStrictEqual(rows.rows, [{ user_id: String(teacher), account_id: String(teacherAccount), outcome: "activated" }])
      const [link] = yield* sql<{ readonly activation: string; readonly state: string }>`
        SELECT l.activation, a.state FROM account_links l JOIN accounts a ON a.id = l.account_id WHERE l.user_id = ${teacher}`
      assert.deepStrictEqual(link, { activation: "active", state: "active" })
      // Used once: the same token again is refused by the function, as for anyone.
      const again = yield* attempt(client, ["SELECT * FROM rosterd_confirm_activation($1)"], [token])
      assert.strictEqual(again.code, "RSTOK")
    }))

  it.effect("the platform confirms an admin invitation with rosterd_confirm_admin: a new account with the admin's rights, audited", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const invited = yield* admins.invite({
        districtId: "sec",
        name: "Ada Admin",
        email: "ada@security.example",
        permission: "view",
        canManageAdmins: false,
        role: "school",
        regionId: null,
        allSchools: true,
        schools: []
      }, { by: "ops-test" })
      const token = yield* invitationToken(invited.adminId)
      const client = yield* Platform
      const rows = yield* Effect.promise(() => client.query("SELECT admin_id, outcome FROM rosterd_confirm_admin($1)", [token]))
      assert.deepStrictEqual(rows.rows, [{ admin_id: String(invited.adminId), outcome: "created" }])
      const [admin] = yield* sql<{ readonly state: string; readonly audited: number }>`
        SELECT state, (SELECT count(*)::int FROM audit_log WHERE action = 'admin.confirm' AND subject = 'admin ' || ${invited.adminId}) AS audited
        FROM admins WHERE id = ${invited.adminId}`
      assert.deepStrictEqual(admin, { state: "active", audited: 1 })
      const rights = yield* Effect.promise(() => client.query("SELECT district_id, permission FROM admin_rights WHERE admin_id = $1", [invited.adminId]))
      assert.deepStrictEqual(rights.rows, [{ district_id: "sec", permission: "view" }])
    }))

  it.effect("the platform reads every table and view the grant table gives it", () =>
    Effect.gen(function*() {
      const client = yield* Platform
      const readable = GRANTS.filter((g) => g.type !== "function" && g.platform.includes("SELECT"))
      assert.isAbove(readable.length, 10)
      for (const g of readable) {
        const result = yield* attempt(client, [`SELECT count(*) FROM ${g.object}`])
        assert.strictEqual(result.code, "ok", `${g.object}: ${result.message}`)
      }
      const users = yield* Effect.promise(() => client.query("SELECT count(*)::int AS n FROM users WHERE district_id = 'sec'"))
      assert.strictEqual(users.rows[0].n, 5)
    }))
})

describe("the grants in the database are the grant table", () => {
  const tablePrivileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"] as const

  it.effect("every role's rights on every rosterd table, view and function are exactly what GRANTS says", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [{ maintain }] = (yield* sql<{ readonly maintain: boolean }>`SELECT current_setting('server_version_num')::int >= 170000 AS maintain`) as ReadonlyArray<{ readonly maintain: boolean }> as [{ readonly maintain: boolean }]
      const mismatches: Array<string> = []
      for (const g of GRANTS) {
        for (const [kind, role] of [["app", app], ["platform", platform]] as const) {
          const expected = g[kind]
          if (g.type === "function") {
            const [row] = yield* sql<{ readonly has: boolean }>`SELECT has_function_privilege(${role}, ${g.object}, 'EXECUTE') AS has`
            if (row!.has !== expected.includes("EXECUTE")) mismatches.push(`${role} EXECUTE ${g.object}: ${row!.has}`)
            continue
          }
          const privileges: ReadonlyArray<string> = maintain && g.type === "table" ? [...tablePrivileges, "MAINTAIN"] : tablePrivileges
          for (const privilege of privileges) {
            const [row] = yield* sql<{ readonly has: boolean }>`SELECT has_table_privilege(${role}, ${g.object}, ${privilege}) AS has`
            if (row!.has !== expected.includes(privilege as Privilege)) mismatches.push(`${role} ${privilege} ${g.object}: ${row!.has}`)
          }
        }
      }
      assert.deepStrictEqual(mismatches, [])
    }))

  it.effect("the owner owns every rosterd object; PUBLIC has no right on any; every rosterd function has a pinned search_path; the confirm functions are SECURITY DEFINER", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const notOwned = yield* sql<{ readonly name: string; readonly owner: string }>`
        SELECT c.relname AS name, pg_get_userbyid(c.relowner) AS owner FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'S', 'i') AND pg_get_userbyid(c.relowner) <> ${owner}
        UNION ALL SELECT p.proname, pg_get_userbyid(p.proowner) FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND pg_get_userbyid(p.proowner) <> ${owner}
        UNION ALL SELECT t.typname, pg_get_userbyid(t.typowner) FROM pg_type t
        WHERE t.typnamespace = 'public'::regnamespace AND pg_get_userbyid(t.typowner) <> ${owner}`
      assert.deepStrictEqual(notOwned, [])
      const publicRights = yield* sql<{ readonly name: string }>`
        SELECT c.relname AS name FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
        WHERE c.relnamespace = 'public'::regnamespace AND a.grantee = 0
        UNION ALL SELECT p.proname FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
        WHERE p.pronamespace = 'public'::regnamespace AND a.grantee = 0`
      assert.deepStrictEqual(publicRights, [])
      const unpinned = yield* sql<{ readonly name: string }>`
        SELECT proname AS name FROM pg_proc WHERE pronamespace = 'public'::regnamespace
          AND NOT coalesce(EXISTS (SELECT 1 FROM unnest(proconfig) c WHERE c = 'search_path=pg_catalog, public, pg_temp'), false)`
      assert.deepStrictEqual(unpinned, [])
      const definers = yield* sql<{ readonly name: string }>`
        SELECT proname AS name FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prosecdef ORDER BY proname`
      assert.deepStrictEqual(definers.map((d) => d.name), ["rosterd_confirm_activation", "rosterd_confirm_admin", "rosterd_resolve_login", "rosterd_writer_allowed"])
    }))

  it.effect("every table, view and function a migration made is in the grant table (a new one needs a decision about the platform)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const objects = yield* sql<{ readonly name: string }>`
        SELECT relname AS name FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v', 'm')
        UNION ALL SELECT proname || '(' || oidvectortypes(proargtypes) || ')' FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace AND prorettype <> 'trigger'::regtype`
      const known = new Set(GRANTS.map((g) => g.object))
      assert.deepStrictEqual(objects.map((o) => o.name).filter((name) => !known.has(name)).sort(), [],
        "add these to GRANTS in src/Store/Roles.ts (and `rosterd db grants --format markdown` into the README)")
    }))

  it.effect("the platform's role owns nothing and is a member of neither rosterd role; the app is not a member of the owner", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ readonly owns: number; readonly platformInApp: boolean; readonly platformInOwner: boolean; readonly appInOwner: boolean }>`
        SELECT (SELECT count(*)::int FROM pg_class WHERE relowner = ${platform}::regrole)
             + (SELECT count(*)::int FROM pg_proc WHERE proowner = ${platform}::regrole) AS owns,
               pg_has_role(${platform}, ${app}, 'MEMBER') AS platform_in_app,
               pg_has_role(${platform}, ${owner}, 'MEMBER') AS platform_in_owner,
               pg_has_role(${app}, ${owner}, 'MEMBER') AS app_in_owner`
      assert.deepStrictEqual(row, { owns: 0, platformInApp: false, platformInOwner: false, appInOwner: false })
      const either = yield* Effect.either(sql`SELECT 1 FROM rosterd_roles`)
      assert.isTrue(Either.isRight(either), "the app reads rosterd_roles")
    }))
})
})
