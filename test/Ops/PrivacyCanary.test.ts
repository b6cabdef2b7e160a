import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, freePort, startDaemon, writeConfig } from "../support/Cli.ts"
import { rosterd } from "../support/CliFixture.ts"
import { createTestDatabase, dropTestDatabase, type TestDatabaseInfo } from "../support/Database.ts"
import { type FakeClever, fromOneRosterCsv, start } from "../support/FakeClever/index.ts"
import { writeCanaryDistrict } from "../support/CanaryDistrict.ts"
import { tempDir } from "../support/Fixtures.ts"
import { testKeyFile } from "../support/MailLinks.ts"
import { startSmtpServer, type SmtpTestServer } from "../Mail/SmtpTestServer.ts"

/**
 * No personal data and no secret, ever, in what operators and monitoring see. A district
 * whose every personal field carries a unique canary string is synced by the daemon (as CSV
 * and through Clever, with a canary token), its activation mail goes out over SMTP with a
 * canary password — once refused, once accepted — and a run fails on purpose. Every log
 * line of the daemon process (all it writes on stdout and stderr, at debug level), every
 * answer of /healthz, /readyz, /status and /metrics, and the operator commands' output (in
 * process, what they print and log) are searched for every canary.
 */

const CANARY = {
  given: "Cgivenqx71",
  family: "Cfamilyqx72",
  middle: "Cmiddleqx73",
  emailLocal: "cemailqx74",
  emailDomain: "canary-qx75.example",
  username: "cuserqx76",
  userId: "cuseridqx77",
  identifier: "cidentqx78",
  phone: "+1-555-0199-7979",
  sms: "+1-555-0199-8080",
  password: "cpasswordqx79",
  birthDate: "2013-02-27",
  badBirthDate: "cbirthqx80",
  cleverToken: "ctokenqx81-0123456789",
  smtpPassword: "csmtppwqx82"
}
/**
 * The e-mail domain is the district's, not a person's: `outbox list --json` shows recipients'
 * domains by design (README "Mail"). Every other canary is personal or secret.
 */
const secrets = Object.entries(CANARY).filter(([key]) => key !== "emailDomain").map(([, value]) => value)

/** One good birth date, one that does not decode (a finding that must not echo it). */
const writeDistrict = (dir: string) =>
  writeCanaryDistrict(dir, CANARY, {
    demographics: [{ sourcedId: "s-1", birthDate: CANARY.birthDate }, { sourcedId: "s-2", birthDate: CANARY.badBirthDate }]
  })

describe("privacy canaries", () => {
  const work = tempDir()
  let db: TestDatabaseInfo
  let fake: FakeClever
  let smtp: SmtpTestServer
  let cleverDistrict: string
  beforeAll(async () => {
    db = await createTestDatabase()
    writeDistrict(NodePath.join(work.dir, "csv"))
    const district = await fromOneRosterCsv(NodePath.join(work.dir, "csv"))
    cleverDistrict = district.districts.first()!.id
    fake = await start(district, { token: CANARY.cleverToken })
    smtp = await startSmtpServer({ user: "rosterd", password: CANARY.smtpPassword })
  })
  afterAll(async () => {
    await fake.close()
    await smtp.close()
    await dropTestDatabase(db.name)
    work.remove()
  })

  it("appear in no log line, no health/status/metrics answer and no operator output", async () => {
    const tokenFile = NodePath.join(work.dir, "clever-token")
    Fs.writeFileSync(tokenFile, "a-wrong-token-first", { mode: 0o600 })
    const passwordFile = NodePath.join(work.dir, "smtp-password")
    Fs.writeFileSync(passwordFile, "a-wrong-password-first", { mode: 0o600 })
    const port = await freePort()
    const config = writeConfig(work.dir, `rosterd:
  logLevel: debug
  sync:
    poll: 1 second
    retryBase: 1 second
    retryMax: 2 seconds
  mail:
    pollSeconds: 0.5
    retryBaseSeconds: 1
    retryMaxSeconds: 1
    smtp:
      host: 127.0.0.1
      port: ${smtp.port}
      user: rosterd
      passwordFile: ${passwordFile}
districts:
  - id: canary-csv
    provider: oneroster-csv
    path: csv
    rules:
      scope: { currentTermsOnly: false }
`)
    // With DATABASE_URL a credentials key must be configured: it seals the activation links.
    const env = { DATABASE_URL: db.url, ROSTERD_CONFIG: config, ROSTERD_HTTP_PORT: String(port), ROSTERD_SECRETS_KEY_FILE: testKeyFile(work.dir).path }
    const added = await rosterd(
      ["district", "add", "canary-clever", "--provider", "clever", "--district-id", cleverDistrict, "--token-file", tokenFile, "--base-url", fake.baseUrl],
      env
    )
    expect(added.code).toBe(0)
    const seen: Array<string> = [added.stdout, added.stderr]
    const daemon = startDaemon(env)
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      // The wrong Clever token fails (and retries); the wrong SMTP password fails delivery.
      await eventually(async () => {
        const { rows } = await client.query("SELECT count(*)::int AS n FROM sync_runs WHERE district_id = 'canary-clever' AND status = 'failed'")
        return rows[0].n > 0 ? true : undefined
      }, 60_000)
      await eventually(async () => {
        const { rows } = await client.query("SELECT count(*)::int AS n FROM outbox WHERE attempts > 0 AND last_error IS NOT NULL")
        return rows[0].n > 0 ? true : undefined
      }, 60_000)
      // Then the right ones: both syncs succeed and the activation mail goes out.
      Fs.writeFileSync(tokenFile, CANARY.cleverToken)
      Fs.writeFileSync(passwordFile, CANARY.smtpPassword)
      await eventually(async () => {
        const { rows } = await client.query("SELECT count(DISTINCT district_id)::int AS n FROM sync_runs WHERE status = 'succeeded'")
        return rows[0].n === 2 ? true : undefined
      }, 90_000)
      await eventually(async () => (smtp.received.length > 0 ? true : undefined), 60_000)
      // The canaries did reach the store and the mail: the search below can find them.
      const { rows: [stored] } = await client.query("SELECT given_name FROM users WHERE source_id = 't-1' LIMIT 1")
      expect(String(stored.given_name)).toContain(CANARY.given)
      expect(smtp.received.some((m) => m.rcptTo.some((r) => r.includes(CANARY.emailDomain)))).toBe(true)

      for (const path of ["/healthz", "/readyz", "/status", "/metrics"]) {
        const response = await fetch(`http://127.0.0.1:${port}${path}`)
        expect(response.status, path).toBe(200)
        seen.push(await response.text())
      }
      for (const args of [["status"], ["status", "--json"], ["runs", "canary-csv", "--json"], ["runs", "canary-clever"], ["report", "canary-csv", "--json"], ["outbox", "list", "--json"], ["holds", "list", "--all"], ["audit"]]) {
        const result = await rosterd(args, env)
        expect(result.code, args.join(" ")).toBe(0)
        seen.push(result.stdout, result.stderr)
      }
      const { rows: runs } = await client.query("SELECT id, district_id FROM sync_runs")
      for (const run of runs) {
        const result = await rosterd(["runs", run.district_id, "--run", String(run.id), "--json"], env)
        seen.push(result.stdout, result.stderr)
      }
    } finally {
      await client.end()
      expect(await daemon.stop("SIGTERM")).toBe(0)
    }
    seen.push(...daemon.lines, ...daemon.errors)
    expect(daemon.lines.length).toBeGreaterThan(10)
    // The finding for the bad birth date is there, without its value.
    expect(seen.join("\n")).toMatch(/birthDate/)
    const everything = seen.join("\n")
    for (const secret of secrets) {
      expect(everything.includes(secret), `found ${secret}`).toBe(false)
    }
    // Nor an address.
    expect(everything).not.toContain("@" + CANARY.emailDomain)
    expect(everything).not.toMatch(/[\w.+-]+@[\w-]+\.example/)
  }, 300_000)
})
