import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Cause, ConfigProvider, Deferred, Effect, Exit, Fiber, Layer, Logger, Schedule } from "effect"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as NodePath from "node:path"
import { afterAll } from "vitest"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Mailer, type MailMessage } from "../../src/Mail/Mailer.ts"
import { Outbox } from "../../src/Mail/Outbox.ts"
import { MailerLive } from "../../src/Mail/SmtpMailer.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { ROOT } from "../support/Cli.ts"
import { TestDatabaseUrl } from "../support/Database.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { syncTestLayer, testDataDir } from "../support/Layers.ts"
import { freePort, hasOpenssl, type ReceivedMail, selfSignedCertificate, smtpServer } from "./SmtpTestServer.ts"

/**
 * The SMTP mailer through the outbox, against a real SMTP server on loopback (smtp-server,
 * AUTH required) and a real Postgres; what arrives is parsed with mailparser. Covers a sync's
 * activation e-mails end to end, a server that is down and comes back, a worker killed
 * between the send and the mark (at least once, same Message-ID), PII-free errors, STARTTLS
 * and the choice between SMTP and the spool.
 */

const work = tempDir("rosterd-smtp-")
afterAll(() => work.remove())

const USER = "rosterd-relay"
const PASSWORD = "Pw-7f3a9c-never-in-logs"
const passwordFile = NodePath.join(work.dir, "smtp-password")
Fs.writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 })

const ACTIVATION_URL = "https://platform.example/activate?token={token}"

/** The shared layer: the sync (for real activation e-mails) over the file's own database. */
const TestLayer = syncTestLayer(new Map([
  ["rosterd.accounts.activationUrl", ACTIVATION_URL],
  ["rosterd.accounts.platformName", "Classboard"]
]))

/** Settings of an outbox that sends over SMTP to `port` on loopback. */
const smtpSettings = (port: number, extra: Record<string, string> = {}): Record<string, string> => ({
  "rosterd.mail.from": "Classboard <noreply@classboard.example>",
  "rosterd.mail.smtp.host": "127.0.0.1",
  "rosterd.mail.smtp.port": String(port),
  "rosterd.mail.smtp.user": USER,
  "rosterd.mail.smtp.passwordFile": passwordFile,
  "rosterd.mail.smtp.connectionTimeoutSeconds": "3",
  "rosterd.mail.smtp.greetingTimeoutSeconds": "3",
  "rosterd.mail.smtp.socketTimeoutSeconds": "5",
  "rosterd.mail.retryBaseSeconds": "1",
  "rosterd.mail.retryMaxSeconds": "2",
  "rosterd.mail.pollSeconds": "0.2",
  "rosterd.mail.sendTimeoutSeconds": "10",
  // The development key the sync sealed the activation links with (the tests' data dir).
  ...Object.fromEntries(testDataDir),
  ...extra
})

const withConfig = (settings: Record<string, string>) => Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(settings))))

/** The outbox with `MailerLive` (SMTP or spool, as the settings say), as the daemon builds it. */
const outboxWith = (settings: Record<string, string>) =>
  Outbox.Default.pipe(Layer.provide(MailerLive), Layer.provide(withConfig(settings)))

/** The mailer alone. */
const mailerWith = (settings: Record<string, string>) => MailerLive.pipe(Layer.provide(withConfig(settings)))

/** Log lines written while `effect` runs. */
const capturingLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) => {
  const lines: Array<string> = []
  const logger = Logger.map(Logger.logfmtLogger, (line) => void lines.push(line))
  return Effect.map(Effect.provide(effect, Logger.replace(Logger.defaultLogger, logger)), (a) => [a, lines] as const)
}

interface Row {
  readonly id: number
  readonly recipient: string
  readonly state: string
  readonly attempts: number
  readonly lastError: string | null
  /** next_attempt_at − now(), in seconds. */
  readonly dueIn: number
}

const rows = (where: "all" | ReadonlyArray<number> = "all") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<Row>`SELECT id, recipient, state, attempts, last_error, extract(epoch FROM next_attempt_at - now())::float8 AS due_in
             FROM outbox WHERE ${where === "all" ? sql`true` : sql`id = ANY (${where}::bigint[])`} ORDER BY id`)

const insert = (key: string, recipient: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly id: number }>`
      INSERT INTO outbox (idempotency_key, kind, recipient, subject, body_text, body_html)
      VALUES (${key}, 'pause-notice', ${recipient}, ${`Subject ${key}`}, ${`Body ${key}`}, ${`<p>Body ${key}</p>`})
      RETURNING id`.pipe(Effect.map((r) => r[0]!.id)))

const makeDue = (id: number) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE outbox SET next_attempt_at = now() WHERE id = ${id}`)

const reset = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DELETE FROM outbox`)

const messageIds = (mails: ReadonlyArray<ReceivedMail>) => mails.map((m) => m.parsed.messageId)

const waitFor = <A, E>(probe: Effect.Effect<A | undefined, E, SqlClient.SqlClient>) =>
  probe.pipe(
    Effect.flatMap((a) => (a === undefined ? Effect.fail("not yet" as const) : Effect.succeed(a as A))),
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 200 }),
    Effect.orDie
  )

layer(TestLayer, { timeout: "120 seconds", excludeTestServices: true })("the SMTP mailer", (it) => {
  it.scoped("delivers a sync's teacher activations: subject, recipient, token link, text and HTML, Message-ID; the password is never logged", () =>
    Effect.gen(function*() {
      yield* reset
      const sql = yield* SqlClient.SqlClient
      const store = yield* RosterStore
      const sync = yield* Sync
      const server = yield* smtpServer({ user: USER, password: PASSWORD })

      const dir = NodePath.join(work.dir, "smalltown")
      writeSmallDistrict(dir, "smalltown.example")
      yield* store.addDistrict({ id: "smalltown" as DistrictId, name: "Smalltown Unified", provider: "oneroster-csv", timezone: "America/Chicago", settings: { path: dir } })
      yield* sync.run("smalltown", { request: "full", trigger: "test" })
      const queued = yield* rows()
      assert.deepStrictEqual(queued.map((r) => [r.recipient, r.state]), [["tess@smalltown.example", "pending"], ["theo@smalltown.example", "pending"]])

      const [counts, logs] = yield* capturingLogs(Effect.flatMap(Outbox, (outbox) => outbox.deliverDue()).pipe(
        Effect.provide(outboxWith(smtpSettings(server.port)))
      ))
      assert.deepStrictEqual(counts, { sent: 2, failed: 0, retried: 0 })
      assert.strictEqual(server.received.length, 2)
      assert.deepStrictEqual(server.logins, [{ user: USER, ok: true }, { user: USER, ok: true }])

      for (const row of queued) {
        const mail = server.received.find((m) => m.rcptTo.includes(row.recipient))
        assert.isDefined(mail, `nothing arrived for outbox ${row.id}`)
        const { parsed } = mail!
        assert.deepStrictEqual(mail!.rcptTo, [row.recipient])
        assert.strictEqual(mail!.mailFrom, "noreply@classboard.example")
        assert.strictEqual(mail!.user, USER)
        assert.strictEqual(parsed.subject, "Confirm your official Classboard account")
        assert.strictEqual(parsed.messageId, `<outbox-${row.id}@rosterd>`)
        assert.strictEqual(Array.isArray(parsed.to) ? undefined : parsed.to?.text, row.recipient)
        assert.deepStrictEqual(parsed.from?.value, [{ name: "Classboard", address: "noreply@classboard.example" }])

        // The token link, in the text and the HTML part; its SHA-256 is the stored token hash of this teacher.
        const text = parsed.text ?? ""
        const html = typeof parsed.html === "string" ? parsed.html : ""
        const link = /https:\/\/platform\.example\/activate\?token=([A-Za-z0-9_-]{43})/.exec(text)
        assert.isNotNull(link, text)
        assert.include(html, `href="${link![0]}"`)
        assert.include(text, "Smalltown Unified")
        assert.include(html, "Smalltown Unified")
        const [token] = yield* sql<{ readonly email: string }>`
          SELECT u.email FROM activation_tokens t JOIN users u ON u.id = t.user_id
          WHERE t.token_hash = ${createHash("sha256").update(link![1]!).digest()}`
        assert.strictEqual(token?.email, row.recipient)
        // No more personal data than needed: no names, no classes.
        for (const personal of ["Tess", "Theo", "One", "Two", "Math 7"]) {
          assert.notInclude(text, personal)
          assert.notInclude(html, personal)
        }
      }
      assert.deepStrictEqual((yield* rows()).map((r) => r.state), ["sent", "sent"])

      // Logs name message ids; never the password, the user, a recipient, a subject or a body.
      assert.isTrue(logs.some((line) => line.includes("mail sent over SMTP") && line.includes(`messageId=outbox-${queued[0]!.id}`)), logs.join("\n"))
      for (const line of logs) {
        assert.notInclude(line, PASSWORD)
        assert.notInclude(line, USER)
        assert.notInclude(line, "smalltown.example")
        assert.notInclude(line, "Confirm your")
        assert.notInclude(line, "token=")
      }
    }))

  it.scoped("SMTP down: messages stay pending with a retry and a PII-free error, and go out once each when the server is back", () =>
    Effect.gen(function*() {
      yield* reset
      const port = yield* Effect.promise(() => freePort())
      const a = yield* insert("down-a", "ann.archer@down.example")
      const b = yield* insert("down-b", "ben.baker@down.example")

      yield* Effect.gen(function*() {
        const outbox = yield* Outbox
        const [counts, logs] = yield* capturingLogs(outbox.deliverDue())
        assert.deepStrictEqual(counts, { sent: 0, failed: 0, retried: 2 })
        for (const row of yield* rows([a, b])) {
          assert.strictEqual(row.state, "pending")
          assert.strictEqual(row.attempts, 1)
          assert.closeTo(row.dueIn, 1, 0.9)
          assert.match(row.lastError!, /^SMTP (ECONNECTION|ESOCKET)/)
          assert.include(row.lastError!, "ECONNREFUSED")
          assert.notInclude(row.lastError!, "@")
          assert.notInclude(row.lastError!, PASSWORD)
        }
        assert.isTrue(logs.some((line) => line.includes("outbox delivery failed, will retry")))
        for (const line of logs) {
          assert.notInclude(line, "down.example")
          assert.notInclude(line, PASSWORD)
        }

        // The daemon's loop keeps trying; the server comes back on the same port.
        const loop = yield* Effect.fork(outbox.run)
        yield* Effect.sleep("1500 millis")
        assert.deepStrictEqual((yield* rows([a, b])).map((r) => r.state), ["pending", "pending"])
        const server = yield* smtpServer({ port, user: USER, password: PASSWORD })
        yield* waitFor(Effect.map(rows([a, b]), (r) => (r.every((row) => row.state === "sent") ? true : undefined)))
        yield* Fiber.interrupt(loop)

        assert.deepStrictEqual([...messageIds(server.received)].sort(), [`<outbox-${a}@rosterd>`, `<outbox-${b}@rosterd>`].sort())
        // Nothing is due any more: another pass sends nothing, the server saw each message once.
        assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 0, failed: 0, retried: 0 })
        assert.strictEqual(server.received.length, 2)
        for (const row of yield* rows([a, b])) assert.isAtLeast(row.attempts, 2)
      }).pipe(Effect.provide(outboxWith(smtpSettings(port))))
    }))

  it.scoped("a worker killed after the server accepted a message and before marking it: sent again after the lease, same Message-ID, never a third time", () =>
    Effect.gen(function*() {
      yield* reset
      const db = yield* TestDatabaseUrl
      const server = yield* smtpServer({ user: USER, password: PASSWORD })
      const id = yield* insert("crash", "carla.crash@crash.example")
      const settings = { ...smtpSettings(server.port), "rosterd.mail.sendTimeoutSeconds": "20" }

      // The worker: a real process, claiming and sending like the daemon; it hangs once the server
      // has accepted the message, and is SIGKILLed there: the row is never marked.
      const child = spawn(process.execPath, ["--import", "tsx", NodePath.join(ROOT, "test/Mail/crash-worker.ts"), JSON.stringify({ databaseUrl: db.url, ...settings })], {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (chunk: Buffer) => void (stdout += chunk.toString()))
      child.stderr.on("data", (chunk: Buffer) => void (stderr += chunk.toString()))
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code)))
      yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")))

      yield* Effect.promise(() =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`the worker did not send in time; stderr: ${stderr}`)), 60_000)
          const check = () => {
            if (stdout.includes(`sent outbox-${id}\n`)) {
              clearTimeout(timer)
              resolve()
            }
          }
          child.stdout.on("data", check)
          void exited.then((how) => {
            clearTimeout(timer)
            reject(new Error(`the worker exited (${String(how)}) before sending; stderr: ${stderr}`))
          })
        })
      )
      assert.strictEqual(server.received.length, 1)
      child.kill("SIGKILL")
      assert.strictEqual(yield* Effect.promise(() => exited), "SIGKILL")

      // Claimed (the attempt counted), never marked: pending, and not due while the lease runs
      // (1 row × sendTimeout 20 s + 60 s).
      const [claimed] = yield* rows([id])
      assert.strictEqual(claimed!.state, "pending")
      assert.strictEqual(claimed!.attempts, 1)
      assert.isAbove(claimed!.dueIn, 60)

      yield* Effect.gen(function*() {
        const outbox = yield* Outbox
        assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 0, failed: 0, retried: 0 })
        assert.strictEqual(server.received.length, 1)

        // The lease ends (time passes): the message goes out again, under the same Message-ID.
        yield* makeDue(id)
        assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 1, failed: 0, retried: 0 })
        assert.strictEqual(server.received.length, 2)
        assert.deepStrictEqual(messageIds(server.received), [`<outbox-${id}@rosterd>`, `<outbox-${id}@rosterd>`])
        const [first, second] = server.received
        assert.strictEqual(second!.parsed.subject, first!.parsed.subject)
        assert.strictEqual(second!.parsed.text, first!.parsed.text)
        const [sent] = yield* rows([id])
        assert.strictEqual(sent!.state, "sent")
        assert.strictEqual(sent!.attempts, 2)

        // Sent is final: never a third time.
        yield* makeDue(id)
        assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 0, failed: 0, retried: 0 })
        yield* Effect.sleep("300 millis")
        assert.strictEqual(server.received.length, 2)
      }).pipe(Effect.provide(outboxWith(settings)))
    }), { timeout: 90_000 })

  it.scoped("refused credentials, a refused recipient and an unreadable password file fail with messages that name no address, user or password", () =>
    Effect.gen(function*() {
      const server = yield* smtpServer({ user: USER, password: PASSWORD, refuse: /^nobody\./ })
      const message: MailMessage = { messageId: "outbox-900", to: "nobody.known@refuse.example", subject: "S", text: "T" }
      const sendWith = (settings: Record<string, string>, m: MailMessage = message) =>
        Effect.flatMap(Mailer, (mailer) => mailer.send(m)).pipe(Effect.provide(mailerWith(settings)), Effect.flip)

      process.env["ROSTERD_TEST_SMTP_PASSWORD"] = "Wrong-password-42"
      yield* Effect.addFinalizer(() => Effect.sync(() => delete process.env["ROSTERD_TEST_SMTP_PASSWORD"]))
      const badLogin = yield* sendWith({
        ...smtpSettings(server.port),
        "rosterd.mail.smtp.passwordFile": "",
        "rosterd.mail.smtp.passwordEnv": "ROSTERD_TEST_SMTP_PASSWORD"
      }, { ...message, to: "ok@refuse.example" })
      assert.strictEqual(badLogin._tag, "MailError")
      assert.match(badLogin.message, /^SMTP EAUTH/)
      assert.include(badLogin.message, "535")
      assert.deepStrictEqual(server.logins, [{ user: USER, ok: false }])
      for (const secret of ["Wrong-password-42", USER, "@"]) assert.notInclude(badLogin.message, secret)

      const refused = yield* sendWith(smtpSettings(server.port))
      assert.match(refused.message, /^SMTP EENVELOPE/)
      assert.include(refused.message, "550")
      assert.include(refused.message, "<recipient>")
      assert.notInclude(refused.message, "nobody")
      assert.notInclude(refused.message, PASSWORD)

      const missing = yield* sendWith({ ...smtpSettings(server.port), "rosterd.mail.smtp.passwordFile": NodePath.join(work.dir, "absent") })
      assert.strictEqual(missing.message, `cannot read the SMTP password file ${NodePath.join(work.dir, "absent")}`)
      assert.strictEqual(server.received.length, 0)

      // A user without a password (or the reverse) is a configuration error at start.
      const exit = yield* Effect.exit(Effect.provide(Mailer, mailerWith({ ...smtpSettings(server.port), "rosterd.mail.smtp.passwordFile": "" })))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "user and a password")
    }))

  it.scoped.skipIf(!hasOpenssl)("STARTTLS: used when offered, verified against caFile; requireTls refuses a server without it", () =>
    Effect.gen(function*() {
      const certificate = selfSignedCertificate(work.dir)
      const tlsServer = yield* smtpServer({ user: USER, password: PASSWORD, tls: certificate })
      const message: MailMessage = { messageId: "outbox-901", to: "tls@tls.example", subject: "Over TLS", text: "T" }
      const send = (settings: Record<string, string>) =>
        Effect.flatMap(Mailer, (mailer) => mailer.send(message)).pipe(Effect.provide(mailerWith(settings)))

      yield* send(smtpSettings(tlsServer.port, { "rosterd.mail.smtp.caFile": certificate.certFile, "rosterd.mail.smtp.requireTls": "true" }))
      assert.strictEqual(tlsServer.received.length, 1)
      assert.isTrue(tlsServer.received[0]!.secure)
      assert.strictEqual(tlsServer.received[0]!.parsed.messageId, "<outbox-901@rosterd>")

      // An untrusted certificate is not accepted: no fallback to plain text.
      const untrusted = yield* Effect.flip(send(smtpSettings(tlsServer.port)))
      assert.match(untrusted.message, /^SMTP (ETLS|ESOCKET)/)
      assert.strictEqual(tlsServer.received.length, 1)

      const plainServer = yield* smtpServer({ user: USER, password: PASSWORD })
      const noTls = yield* Effect.flip(send(smtpSettings(plainServer.port, { "rosterd.mail.smtp.requireTls": "true" })))
      assert.match(noTls.message, /^SMTP ETLS/)
      assert.strictEqual(plainServer.received.length, 0)
      assert.deepStrictEqual(plainServer.logins, [])
    }))

  it.scoped("an interrupted send (the outbox's send timeout, shutdown) closes the SMTP connection at once", () =>
    Effect.gen(function*() {
      // A server that accepts the connection and never greets.
      const closed = yield* Deferred.make<void>()
      const silent = Net.createServer((socket) => {
        socket.on("error", () => {})
        socket.on("close", () => Deferred.unsafeDone(closed, Exit.void))
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void silent.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.async<void>((resume) => void silent.close(() => resume(Effect.void)))
      )
      const { port } = silent.address() as Net.AddressInfo
      const message: MailMessage = { messageId: "outbox-903", to: "slow@slow.example", subject: "S", text: "T" }
      const outcome = yield* Effect.flatMap(Mailer, (mailer) => mailer.send(message)).pipe(
        Effect.provide(mailerWith(smtpSettings(port, { "rosterd.mail.smtp.greetingTimeoutSeconds": "30" }))),
        Effect.timeout("300 millis"),
        Effect.exit
      )
      assert.isTrue(Exit.isFailure(outcome) && Cause.isFailType(outcome.cause) && outcome.cause.error._tag === "TimeoutException")
      // Not after the 30 s greeting timeout: now.
      yield* Deferred.await(closed).pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error("the connection stayed open") }))
    }))

  it.scoped("MailerLive: the spool without rosterd.mail.smtp.host, SMTP with it", () =>
    Effect.gen(function*() {
      const server = yield* smtpServer({ user: USER, password: PASSWORD })
      const spoolDir = NodePath.join(work.dir, "spool")
      const message: MailMessage = { messageId: "outbox-902", to: "choice@choice.example", subject: "Which way", text: "T" }
      const send = (settings: Record<string, string>) =>
        Effect.flatMap(Mailer, (mailer) => mailer.send(message)).pipe(Effect.provide(mailerWith(settings)))

      yield* send({ "rosterd.mail.spoolDir": spoolDir, "rosterd.mail.smtp.host": "" })
      assert.deepStrictEqual(Fs.readdirSync(spoolDir), ["outbox-902.eml"])
      assert.strictEqual(server.received.length, 0)

      yield* send({ ...smtpSettings(server.port), "rosterd.mail.spoolDir": spoolDir })
      assert.strictEqual(server.received.length, 1)
      assert.deepStrictEqual(Fs.readdirSync(spoolDir), ["outbox-902.eml"])
    }))
})
