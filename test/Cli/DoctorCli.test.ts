import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startSmtpServer, type SmtpTestServer } from "../Mail/SmtpTestServer.ts"
import { writeConfig } from "../support/Cli.ts"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { type FakeClever, fromOneRosterCsv, start } from "../support/FakeClever/index.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/** `rosterd doctor` against real things: a database, a CSV folder, a fake Clever, an SMTP server. */
describe("rosterd doctor", () => {
  const TOKEN = "doctor-token-0123456789"
  const SMTP_PASSWORD = "doctor-smtp-secret"
  const cli = cliFixture()
  const work = cli.work
  let fake: FakeClever
  let smtp: SmtpTestServer
  let env: Record<string, string>
  const passwordFile = NodePath.join(work.dir, "smtp-password")
  const tokenFile = NodePath.join(work.dir, "token")

  beforeAll(async () => {
    writeSmallDistrict(NodePath.join(work.dir, "csv"))
    const district = await fromOneRosterCsv(NodePath.join(work.dir, "csv"))
    fake = await start(district, { token: TOKEN })
    smtp = await startSmtpServer({ user: "rosterd", password: SMTP_PASSWORD })
    Fs.writeFileSync(tokenFile, TOKEN)
    Fs.writeFileSync(passwordFile, SMTP_PASSWORD)
    // The config names the SMTP server's port: written once the server listens.
    env = {
      ...cli.env,
      ROSTERD_CONFIG: writeConfig(work.dir, `rosterd:
  mail:
    smtp:
      host: 127.0.0.1
      port: ${smtp.port}
      user: rosterd
      passwordFile: ${passwordFile}
districts:
  - id: declared
    provider: oneroster-csv
    path: csv
`)
    }
    expect((await rosterd(["district", "add", "csv", "--provider", "oneroster-csv", "--path", NodePath.join(work.dir, "csv")], env)).code).toBe(0)
    const cleverId = district.districts.first()!.id
    expect((await rosterd(["district", "add", "clever", "--provider", "clever", "--district-id", cleverId, "--token-file", tokenFile, "--base-url", fake.baseUrl], env)).code).toBe(0)
  }, 120_000)
  afterAll(async () => {
    await fake.close()
    await smtp.close()
  })

  const doctor = async () => {
    const result = await rosterd(["doctor", "--json"], env)
    const rows = JSON.parse(result.stdout) as Array<{ check: string; status: string; detail: string }>
    for (const secret of [TOKEN, SMTP_PASSWORD]) expect(result.stdout + result.stderr).not.toContain(secret)
    return { code: result.code, stderr: result.stderr, rows: Object.fromEntries(rows.map((r) => [r.check, r])) }
  }

  it("all good: every check ok (or a warning), exit 0; the SMTP relay accepted the login and received nothing", async () => {
    const { code, rows } = await doctor()
    expect(code).toBe(0)
    // "declared" is in the config file but not registered yet (no daemon ran): probed all the same.
    for (const name of ["config", "calendars", "time zones", "database", "migrations", "clock", "district csv", "district clever", "district declared", "freshness", "mail"]) {
      expect(rows[name]?.status, name).toBe("ok")
    }
    expect(rows["district clever"]!.detail).toContain("the token opens Clever district")
    expect(rows["mail"]!.detail).toMatch(/authenticated/)
    expect(smtp.logins.some((l) => l.ok)).toBe(true)
    expect(smtp.received).toHaveLength(0)
  }, 120_000)

  it("each problem fails its own check, names it, and exits 1", async () => {
    Fs.writeFileSync(tokenFile, "a-revoked-token")
    Fs.writeFileSync(passwordFile, "a-wrong-password")
    Fs.rmSync(NodePath.join(work.dir, "csv", "manifest.csv"))
    // The migrations table is the owner's to change (rosterd's app role only reads it).
    const client = new pg.Client({ connectionString: cli.db.ownerUrl })
    await client.connect()
    const removed = (await client.query("DELETE FROM rosterd_migrations WHERE migration_id = (SELECT max(migration_id) FROM rosterd_migrations) RETURNING migration_id, name")).rows[0]
    try {
      const behind = await doctor()
      expect(behind.code).toBe(1)
      expect(behind.rows["migrations"]).toMatchObject({ status: "fail" })
      expect(behind.rows["migrations"]!.detail).toMatch(/run: rosterd migrate/)
      expect(behind.stderr.trim()).toMatch(/^rosterd: \d+ check\(s\) failed$/)
    } finally {
      // Put the migration record back as it was (doctor itself never migrates).
      await client.query("INSERT INTO rosterd_migrations (migration_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING", [removed.migration_id, removed.name])
      await client.end()
    }
    const { code, rows } = await doctor()
    expect(code).toBe(1)
    expect(rows["migrations"]!.status).toBe("ok")
    expect(rows["district clever"]).toMatchObject({ status: "fail" })
    expect(rows["district clever"]!.detail).toMatch(/Clever refused the credentials \(HTTP 401\)/)
    expect(rows["district csv"]).toMatchObject({ status: "fail" })
    expect(rows["district csv"]!.detail).toMatch(/manifest/)
    expect(rows["mail"]).toMatchObject({ status: "fail" })
    expect(rows["mail"]!.detail).toMatch(/SMTP EAUTH/)
  }, 120_000)
})
