import { Migrator } from "@effect/sql"
import { Effect, Redacted } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import roster from "../../migrations/0001_roster.ts"
import districtRules from "../../migrations/0002_district_rules.ts"
import safety from "../../migrations/0003_safety.ts"
import admins from "../../migrations/0004_admins.ts"
import schedule from "../../migrations/0005_schedule.ts"
import credentials from "../../migrations/0006_credentials.ts"
import erase from "../../migrations/0007_erase.ts"
import { latestMigration } from "../../migrations/index.ts"
import { platformUrlFile, startTemporary } from "../../src/Store/EmbeddedPostgres.ts"
import { DEFAULT_ROLE_NAMES, grantsMarkdown } from "../../src/Store/Roles.ts"
import { pgClientLayer } from "../../src/Store/Sql.ts"
import { eventually, freePort, rosterd as rosterdProcess, startDaemon, writeConfig } from "../support/Cli.ts"
import { rosterd } from "../support/CliFixture.ts"
import { createTestDatabase, dropTestDatabase, roleUrl as roleUrlOf, type TestDatabaseInfo } from "../support/Database.ts"
import { tempDir } from "../support/Fixtures.ts"

/**
 * The roles through the CLI and the daemon: `rosterd db grants`, `rosterd doctor`'s
 * warnings about who rosterd connects as, and the embedded default — a new data dir (the
 * daemon connects as the app role; the platform's URL file works and is held to its
 * grants: a daemon process, and a CLI process beside it) and a cluster made before there
 * were roles (upgraded in place, nothing lost). Commands run in process
 * (test/support/CliFixture.ts) but beside the daemon.
 */

const query = async <A = Record<string, unknown>>(url: string, text: string, values: Array<unknown> = []) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(text, values)).rows as Array<A>
  } finally {
    await client.end()
  }
}

const modeOf = (path: string) => (Fs.statSync(path).mode & 0o777).toString(8)

describe("rosterd db grants", () => {
  it("--format markdown prints the README's table; --format sql the statements, for the configured role names", async () => {
    const work = tempDir()
    try {
      const env = { ROSTERD_CONFIG: writeConfig(work.dir, "rosterd:\n  logLevel: warning\n") }
      const markdown = await rosterd(["db", "grants", "--format", "markdown"], env)
      expect(markdown.code).toBe(0)
      expect(markdown.stdout.trim()).toBe(grantsMarkdown(DEFAULT_ROLE_NAMES))
      const sql = await rosterd(["db", "grants", "--format", "sql"], { ...env, ROSTERD_DATABASE_ROLES_PLATFORM: "web_app" })
      expect(sql.code).toBe(0)
      expect(sql.stdout).toContain(`GRANT SELECT ON TABLE "public"."users" TO "web_app";`)
      expect(sql.stdout).toContain(`GRANT EXECUTE ON FUNCTION "public"."rosterd_confirm_admin"(text, bigint) TO "web_app";`)
      expect(sql.stdout).not.toMatch(/ON TABLE "public"."outbox" TO "web_app"/)
      expect(sql.stdout).toContain(`GRANT SELECT, INSERT, UPDATE, DELETE, MAINTAIN ON TABLE "public"."outbox" TO "rosterd_app";`)
    } finally {
      work.remove()
    }
  })
})

describe("rosterd db setup-roles and migrate on an external Postgres", () => {
  it("a new database: a command as the app role stops with the step to run; setup-roles (admin) then migrate (owner) build it; the app works; a second setup-roles changes nothing and is audited", async () => {
    const work = tempDir()
    const name = `sec_${Math.random().toString(16).slice(2, 10)}`
    const roles = inject("postgres").roles
    const superuser = new URL(roleUrlOf("postgres"))
    await query(superuser.toString(), `CREATE DATABASE ${name}`)
    const at = (user: string, password: string) => {
      const url = new URL(superuser)
      url.pathname = `/${name}`
      url.username = user
      url.password = password
      return url.toString()
    }
    const admin = at(superuser.username, decodeURIComponent(superuser.password))
    const app = at(roles.app.user, roles.app.password)
    const owner = at(roles.owner.user, roles.owner.password)
    try {
      const config = writeConfig(work.dir, "rosterd:\n  logLevel: warning\n")
      const behind = await rosterd(["status"], { DATABASE_URL: app, ROSTERD_CONFIG: config })
      expect(behind.code).toBe(1)
      expect(behind.stderr.trim()).toMatch(/^rosterd: the database is at migration 0, this rosterd needs \d+, and rosterd_app may not change the schema: run `rosterd migrate` with DATABASE_OWNER_URL/)

      const env = { DATABASE_URL: app, DATABASE_ADMIN_URL: admin, DATABASE_OWNER_URL: owner, ROSTERD_CONFIG: config }
      const setup = await rosterd(["db", "setup-roles", "--json", "--by", "ops-test"], env)
      expect(setup.stderr).toBe("")
      const report = JSON.parse(setup.stdout) as { roles: Array<{ role: string; state: string }>; migrations: string; grants: string }
      expect(report.roles.map((r) => `${r.role}:${r.state}`)).toEqual(["rosterd_owner:existed", "rosterd_app:existed", "rosterd_platform:existed"])
      expect(report.migrations).toMatch(/^applied 0001_roster, .* as rosterd_owner$/)
      const status = await rosterd(["status"], { DATABASE_URL: app, ROSTERD_CONFIG: config })
      expect({ code: status.code, stderr: status.stderr }).toEqual({ code: 0, stderr: "" })

      const again = await rosterd(["db", "setup-roles", "--by", "ops-test"], env)
      expect(again.code).toBe(0)
      expect(again.stdout).toContain("ownership: 0 object(s) handed to rosterd_owner")
      expect(again.stdout).toContain("migrations: up to date")
      const audit = await query<{ actor: string }>(admin, `SELECT actor FROM audit_log WHERE action = 'db.setup-roles'`)
      expect(audit).toEqual([{ actor: "ops-test" }])
      for (const { password } of Object.values(roles)) expect(setup.stdout + again.stdout + again.stderr).not.toContain(password)
    } finally {
      await dropTestDatabase(name)
      work.remove()
    }
  }, 120_000)
})

describe("rosterd doctor: who rosterd connects as", () => {
  let db: TestDatabaseInfo
  const work = tempDir()
  beforeAll(async () => {
    db = await createTestDatabase()
  })
  afterAll(async () => {
    await dropTestDatabase(db.name)
    work.remove()
  })

  const rolesCheck = async (url: string) => {
    const result = await rosterd(["doctor", "--json"], { DATABASE_URL: url, ROSTERD_CONFIG: writeConfig(work.dir, "rosterd:\n  logLevel: error\n") })
    const rows = JSON.parse(result.stdout) as Array<{ check: string; status: string; detail: string }>
    for (const { password } of Object.values(inject("postgres").roles)) expect(result.stdout + result.stderr).not.toContain(password)
    return rows.find((r) => r.check === "database roles")!
  }

  it("as the app role: ok; as the owner or a superuser: a warning that says what to do; the platform owning a table: a warning", async () => {
    expect(await rolesCheck(db.url)).toMatchObject({ status: "ok", detail: expect.stringContaining("connected as rosterd_app") })
    const asOwner = await rolesCheck(db.ownerUrl)
    expect(asOwner).toMatchObject({ status: "warn", detail: expect.stringContaining("connected as rosterd_owner, which owns rosterd's tables") })
    expect(asOwner.detail).toContain("DATABASE_OWNER_URL")
    expect(await rolesCheck(db.superuserUrl)).toMatchObject({ status: "warn", detail: expect.stringMatching(/connected as \w+, a superuser/) })

    await query(db.superuserUrl, `CREATE TABLE platform_things (id int); ALTER TABLE platform_things OWNER TO ${DEFAULT_ROLE_NAMES.platform}`)
    expect(await rolesCheck(db.url)).toMatchObject({ status: "warn", detail: expect.stringContaining("rosterd_platform owns 1 object(s)") })
    await query(db.superuserUrl, `DROP TABLE platform_things`)
    // A database whose roles were never recorded (a single-role deployment): set them up.
    await query(db.superuserUrl, `DELETE FROM rosterd_roles`)
    expect(await rolesCheck(db.superuserUrl)).toMatchObject({ status: "warn", detail: expect.stringContaining("roles not set up: run rosterd db setup-roles") })
  }, 120_000)
})

describe("the embedded default runs with the roles", () => {
  it("a new data dir: the daemon connects as the app role; the platform's URL file (0600) connects as the platform role, held to its grants", async () => {
    const work = tempDir()
    const dataDir = NodePath.join(work.dir, "data")
    const port = await freePort()
    const env = { ROSTERD_DATA_DIR: dataDir, ROSTERD_HTTP_PORT: String(port), ROSTERD_CONFIG: writeConfig(work.dir, "rosterd:\n  logLevel: info\n") }
    const daemon = startDaemon(env)
    try {
      await eventually(async () => ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok ? true : undefined))
      const state = JSON.parse(Fs.readFileSync(NodePath.join(dataDir, "embedded-postgres.json"), "utf8")) as {
        user: string
        password: string
        database: string
        roles: Record<string, { name: string; password: string }>
      }
      expect(modeOf(NodePath.join(dataDir, "embedded-postgres.json"))).toBe("600")
      expect(Object.fromEntries(Object.entries(state.roles).map(([kind, r]) => [kind, r.name]))).toEqual(DEFAULT_ROLE_NAMES)
      const platformUrl = Fs.readFileSync(platformUrlFile(dataDir), "utf8").trim()
      expect(modeOf(platformUrlFile(dataDir))).toBe("600")

      const superuser = new URL(platformUrl)
      superuser.username = state.user
      superuser.password = state.password
      // Every connection the daemon keeps is the app role's.
      const sessions = await query<{ usename: string }>(superuser.toString(),
        `SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = $1`, [`rosterd:${daemon.child.pid}`])
      expect(sessions.map((s) => s.usename)).toEqual([DEFAULT_ROLE_NAMES.app])
      const [owner] = await query<{ owner: string }>(superuser.toString(), `SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = 'users'::regclass`)
      expect(owner!.owner).toBe(DEFAULT_ROLE_NAMES.owner)

      const [me] = await query<{ me: string; n: number }>(platformUrl, "SELECT current_user AS me, count(*)::int AS n FROM users")
      expect(me).toEqual({ me: DEFAULT_ROLE_NAMES.platform, n: 0 })
      await expect(query(platformUrl, "SELECT * FROM outbox")).rejects.toThrow(/permission denied for table outbox/)

      const doctor = await rosterdProcess(["doctor", "--json"], env)
      const checks = JSON.parse(doctor.stdout) as Array<{ check: string; status: string; detail: string }>
      const roles = checks.find((r) => r.check === "database roles")
      expect(roles).toMatchObject({ status: "ok", detail: expect.stringContaining("connected as rosterd_app") })
      // The embedded default lets the app check its bulk inserts' foreign keys as a set.
      expect(checks.find((r) => r.check === "foreign keys on bulk writes")).toMatchObject({ status: "ok", detail: expect.stringContaining("checked as a set") })
      for (const { password } of Object.values(state.roles)) expect(doctor.stdout + doctor.stderr + daemon.lines.join("\n")).not.toContain(password)
    } finally {
      expect(await daemon.stop("SIGTERM")).toBe(0)
      work.remove()
    }
  }, 120_000)

  it("a cluster made before there were roles (one superuser owning everything) upgrades in place: roles set up, objects handed to the owner, data kept", async () => {
    const server = await startTemporary()
    const work = tempDir()
    try {
      const superuser = `postgres://${server.user}:${encodeURIComponent(Redacted.value(server.password))}@${server.host}:${server.port}/${server.database}`
      // Before: migrations 0001-0007 and a district, all as the bootstrap superuser, as rosterd did.
      const upTo7 = Migrator.fromRecord({
        "0001_roster": roster,
        "0002_district_rules": districtRules,
        "0003_safety": safety,
        "0004_admins": admins,
        "0005_schedule": schedule,
        "0006_credentials": credentials,
        "0007_erase": erase
      })
      await Effect.runPromise(Migrator.make({})({ loader: upTo7, table: "rosterd_migrations" }).pipe(
        Effect.provide(pgClientLayer({ url: Redacted.make(superuser) }))
      ))
      await query(superuser, `INSERT INTO districts (id, name, provider) VALUES ('old', 'Old District', 'oneroster-csv')`)
      // A connection the way a running rosterd holds one: the CLI leaves the server running for it.
      const keep = new pg.Client({ connectionString: superuser, application_name: "rosterd:keep" })
      await keep.connect()
      try {
        const env = { ROSTERD_DATA_DIR: server.dataDir, ROSTERD_CONFIG: writeConfig(work.dir, "rosterd:\n  logLevel: warning\n") }
        const migrated = await rosterd(["migrate"], env)
        expect(migrated.stderr).toBe("")
        expect(migrated.stdout).toContain("applied: 0008_trust_boundary")
        const [after] = (await keep.query(`
          SELECT (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'users'::regclass) AS users_owner,
                 (SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'rosterd_confirm_activation') AS function_owner,
                 (SELECT count(*)::int FROM rosterd_roles) AS recorded,
                 (SELECT max(migration_id) FROM rosterd_migrations) AS latest,
                 (SELECT name FROM districts WHERE id = 'old') AS district`)).rows
        expect(after).toEqual({ users_owner: "rosterd_owner", function_owner: "rosterd_owner", recorded: 3, latest: latestMigration, district: "Old District" })
        const list = await rosterd(["district", "list"], env)
        expect(list.code).toBe(0)
        expect(list.stdout).toContain("old")
        const state = JSON.parse(Fs.readFileSync(NodePath.join(server.dataDir, "embedded-postgres.json"), "utf8")) as { roles?: Record<string, unknown> }
        expect(Object.keys(state.roles ?? {}).sort()).toEqual(["app", "owner", "platform"])
      } finally {
        await keep.end()
      }
    } finally {
      await server.stop()
      work.remove()
    }
  }, 120_000)
})
