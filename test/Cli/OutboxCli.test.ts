import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, freePort, writeConfig } from "../support/Cli.ts"
import { cliFixture, startDaemon } from "../support/CliFixture.ts"
import { startSmtpServer } from "../Mail/SmtpTestServer.ts"

/**
 * `rosterd outbox list|retry` as operators run them, then the daemon configured for SMTP
 * (config file + environment) sending the retried message to a real SMTP server; in
 * process (test/support/CliFixture.ts), the daemon's JSON log lines collected as its stdout.
 */

const SMTP_USER = "relay-user"
const SMTP_PASSWORD = "Cli-pw-5d1e-never-shown"

describe("rosterd outbox CLI", () => {
  let client: pg.Client
  const cli = cliFixture()
  const work = cli.work
  const ids = { sent: 0, failed: 0, pending: 0, cancelled: 0 }

  beforeAll(async () => {
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
    // A district the daemon does not sync (removed), so the only work is the outbox.
    await client.query(`INSERT INTO districts (id, name, provider, removed_at) VALUES ('mailcity', 'Mail City', 'oneroster-csv', now())`)
    const insert = async (key: string, state: string) =>
      (await client.query(
        `INSERT INTO outbox (district_id, idempotency_key, kind, recipient, subject, body_text, body_html, state)
         VALUES ('mailcity', $1, 'pause-notice', 'Pat.Person@MailCity.example', 'Confirm your official Classboard account',
                 'Confirm: https://platform.example/activate?token=secret-token-abc', '<p>secret-token-abc</p>', $2)
         RETURNING id::int`,
        [key, state]
      )).rows[0].id as number
    ids.sent = await insert("k-sent", "sent")
    ids.failed = await insert("k-failed", "failed")
    ids.pending = await insert("k-pending", "pending")
    ids.cancelled = await insert("k-cancelled", "cancelled")
    await client.query(`UPDATE outbox SET attempts = 1, sent_at = '2026-11-20T10:00:00Z' WHERE id = $1`, [ids.sent])
    await client.query(
      `UPDATE outbox SET attempts = 10, last_error = 'SMTP EENVELOPE (RCPT TO): 550 <<recipient>>: Recipient address rejected: mailbox full'
       WHERE id = $1`,
      [ids.failed]
    )
    await client.query(
      `UPDATE outbox SET attempts = 2, next_attempt_at = now() + interval '1 hour', last_error = 'SMTP ESOCKET (CONN): connect ECONNREFUSED'
       WHERE id = $1`,
      [ids.pending]
    )
  })
  afterAll(async () => {
    await client?.end()
  })

  const run = async (args: ReadonlyArray<string>, expectedCode = 0, extraEnv: Record<string, string> = {}) => {
    const result = await cli.rosterd(args, extraEnv)
    expect({ args, code: result.code, stderr: expectedCode === 0 ? result.stderr : "" }).toEqual({ args, code: expectedCode, stderr: "" })
    return result
  }

  it("list shows ids, kinds, districts, states, attempts, times and errors — never recipients, subjects or bodies; retry requeues a failed message and refuses a sent one", async () => {
    const listed = await run(["outbox", "list", "--json"])
    const entries = JSON.parse(listed.stdout)
    expect(entries.map((e: { id: number; state: string }) => [e.id, e.state])).toEqual([
      [ids.cancelled, "cancelled"],
      [ids.pending, "pending"],
      [ids.failed, "failed"],
      [ids.sent, "sent"]
    ])
    const failed = entries.find((e: { id: number }) => e.id === ids.failed)
    expect(failed).toEqual({
      id: ids.failed,
      kind: "pause-notice",
      district: "mailcity",
      state: "failed",
      attempts: 10,
      nextAttemptAt: null,
      sentAt: null,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
      lastError: "SMTP EENVELOPE (RCPT TO): 550 <<recipient>>: Recipient address rejected: mailbox full",
      recipientDomain: "mailcity.example"
    })
    expect(entries.find((e: { id: number }) => e.id === ids.sent).sentAt).toBe("2026-11-20T10:00:00.000Z")
    expect(entries.find((e: { id: number }) => e.id === ids.pending).nextAttemptAt).toMatch(/Z$/)

    const text = await run(["outbox", "list", "--state", "failed", "--limit", "5"])
    const lines = text.stdout.trim().split("\n")
    expect(lines[0]).toMatch(/^id\s+kind\s+district\s+state\s+attempts\s+next attempt \(UTC\)\s+sent \(UTC\)\s+last error$/)
    expect(lines[1]).toMatch(new RegExp(`^${ids.failed}\\s+pause-notice\\s+mailcity\\s+failed\\s+10\\s+-\\s+-\\s+SMTP EENVELOPE`))
    expect(lines.slice(2)).toEqual(["send a failed one again: rosterd outbox retry <id>"])
    for (const output of [listed.stdout, text.stdout]) {
      expect(output.toLowerCase()).not.toContain("pat.person")
      expect(output).not.toContain("Confirm your")
      expect(output).not.toContain("secret-token")
    }

    const retried = await run(["outbox", "retry", String(ids.failed), "--by", "ops-olga"])
    expect(retried.stdout.trim()).toBe(
      `outbox message ${ids.failed} (pause-notice) is pending again and due now (was failed after 10 attempts); the daemon sends it at its next poll`
    )
    const { rows: [row] } = await client.query(
      `SELECT state, attempts, next_attempt_at <= now() AS due, last_error FROM outbox WHERE id = $1`,
      [ids.failed]
    )
    expect(row).toMatchObject({ state: "pending", attempts: 0, due: true })
    expect(row.last_error).toContain("mailbox full")
    const { rows: audit } = await client.query(`SELECT actor, action, district_id, subject, details FROM audit_log WHERE action = 'outbox.retry'`)
    expect(audit).toEqual([{
      actor: "ops-olga",
      action: "outbox.retry",
      district_id: "mailcity",
      subject: `outbox ${ids.failed}`,
      details: { kind: "pause-notice", previousState: "failed", previousAttempts: 10 }
    }])

    const refused = await run(["outbox", "retry", String(ids.sent)], 1)
    expect(refused.stderr.trim()).toBe(`rosterd: outbox message ${ids.sent} was sent at 2026-11-20T10:00:00.000Z; a sent message is not sent again`)
    const { rows: [sent] } = await client.query(`SELECT state, attempts FROM outbox WHERE id = $1`, [ids.sent])
    expect(sent).toEqual({ state: "sent", attempts: 1 })
  }, 120_000)

  // After the test above: the failed message is pending again, due now.
  it("the daemon with SMTP settings (file + environment) sends the retried message to the SMTP server, once, and logs no secret", async () => {
    const server = await startSmtpServer({ user: SMTP_USER, password: SMTP_PASSWORD })
    const passwordFile = NodePath.join(work.dir, "smtp-password")
    Fs.writeFileSync(passwordFile, SMTP_PASSWORD, { mode: 0o600 })
    const config = writeConfig(work.dir, `rosterd:
  mail:
    from: Classboard <noreply@classboard.example>
    pollSeconds: 0.5
    smtp:
      host: 127.0.0.1
      port: ${server.port}
      user: ${SMTP_USER}
`)
    const daemon = startDaemon({
      DATABASE_URL: cli.db.url,
      ROSTERD_CONFIG: config,
      ROSTERD_HTTP_PORT: String(await freePort()),
      ROSTERD_MAIL_SMTP_PASSWORD_FILE: passwordFile
    })
    try {
      await eventually(async () => {
        const { rows: [row] } = await client.query(`SELECT state FROM outbox WHERE id = $1`, [ids.failed])
        return row.state === "sent" ? true : undefined
      }, 90_000)
      expect(server.received.map((m) => m.parsed.messageId)).toEqual([`<outbox-${ids.failed}@rosterd>`])
      expect(server.received[0]!.rcptTo.map((a) => a.toLowerCase())).toEqual(["pat.person@mailcity.example"])
      expect(server.received[0]!.user).toBe(SMTP_USER)
      // The pending one is not due for an hour; sent and cancelled ones are never sent.
      await new Promise((r) => setTimeout(r, 1500))
      expect(server.received).toHaveLength(1)
    } finally {
      expect(await daemon.stop()).toBe(0)
      await server.close()
    }
    const logs = daemon.lines.map((line) => JSON.parse(line) as { message: string; annotations?: Record<string, unknown> })
    expect(logs.some((l) => l.message === "mail goes out over SMTP" && l.annotations?.["smtpPort"] === server.port && l.annotations?.["auth"] === true)).toBe(true)
    expect(logs.some((l) => l.message === "mail sent over SMTP" && l.annotations?.["messageId"] === `outbox-${ids.failed}`)).toBe(true)
    const all = daemon.lines.join("\n") + daemon.errors.join("")
    expect(all).not.toContain(SMTP_PASSWORD)
    expect(all).not.toContain(SMTP_USER)
    expect(all.toLowerCase()).not.toContain("pat.person")
    expect(all).not.toContain("secret-token")
  }, 120_000)
})
