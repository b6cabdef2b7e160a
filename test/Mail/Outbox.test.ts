import { SqlClient } from "@effect/sql"
import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Fiber, Layer, Logger, Schedule } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { MailError, Mailer, scrubError, SpoolMailerLive } from "../../src/Mail/Mailer.ts"
import { backoffSeconds, Outbox } from "../../src/Mail/Outbox.ts"
import pg from "pg"
import { TestDatabase, TestDatabaseUrl } from "../support/Database.ts"
import { tempDir } from "../support/Fixtures.ts"
import { afterAll } from "vitest"

/**
 * The outbox worker against a real Postgres and the spool mailer. The mailer is wrapped by
 * a test double that records every send, can fail a message a chosen number of times (with
 * an error quoting the recipient, as SMTP replies do) and can be slowed down.
 */

const spool = tempDir("rosterd-outbox-")
const spoolDir = NodePath.join(spool.dir, "spool")
afterAll(() => spool.remove())

const settings = ConfigProvider.fromMap(new Map([
  ["rosterd.mail.spoolDir", spoolDir],
  ["rosterd.mail.from", "Roster <noreply@example.org>"],
  ["rosterd.mail.retryBaseSeconds", "10"],
  ["rosterd.mail.retryMaxSeconds", "30"],
  ["rosterd.mail.maxAttempts", "4"],
  ["rosterd.mail.pollSeconds", "0.2"]
]))

/** What the test double did, and what it is told to do. */
const mail = {
  /** Message ids handed to the spool, in order. */
  sent: [] as Array<string>,
  /** Message id → failures still to produce. */
  failures: new Map<string, number>(),
  /** Messages whose send dies (a defect) instead of failing. */
  dies: new Set<string>(),
  delay: "0 millis" as `${number} millis`,
  reset() {
    this.sent.length = 0
    this.failures.clear()
    this.dies.clear()
    this.delay = "0 millis"
  }
}

const TestMailer = Layer.effect(
  Mailer,
  Effect.map(Mailer, (spoolMailer) =>
    Mailer.of({
      send: (message) =>
        Effect.gen(function*() {
          yield* Effect.sleep(mail.delay)
          if (mail.dies.has(message.messageId)) return yield* Effect.dieMessage(`boom while sending to ${message.to}`)
          const left = mail.failures.get(message.messageId) ?? 0
          if (left > 0) {
            mail.failures.set(message.messageId, left - 1)
            return yield* new MailError({
              messageId: message.messageId,
              message: `550 5.1.1 <${message.to}>: Recipient address rejected (also tried ${message.to.toUpperCase()})`
            })
          }
          yield* spoolMailer.send(message)
          mail.sent.push(message.messageId)
        })
    }))
).pipe(Layer.provide(SpoolMailerLive))

const OutboxTestLayer = Outbox.Default.pipe(
  Layer.provide(TestMailer),
  Layer.provideMerge(TestDatabase),
  Layer.provide(Layer.setConfigProvider(settings))
)

interface Row {
  readonly id: number
  readonly state: string
  readonly attempts: number
  readonly lastError: string | null
  readonly sentAt: Date | null
  /** next_attempt_at − now(), in seconds. */
  readonly dueIn: number
}

const insert = (key: string, options: { readonly recipient?: string; readonly district?: string | null; readonly dueInSeconds?: number; readonly state?: string } = {}) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly id: number }>`
      INSERT INTO outbox (district_id, idempotency_key, kind, recipient, subject, body_text, body_html, state, next_attempt_at)
      VALUES (${options.district ?? null}, ${key}, 'pause-notice', ${options.recipient ?? `${key}@example.org`},
              ${`Subject of ${key}`}, ${`Body of ${key}`}, ${`<p>Body of ${key}</p>`}, ${options.state ?? "pending"},
              now() + make_interval(secs => ${options.dueInSeconds ?? 0}::float8))
      RETURNING id`.pipe(Effect.map((rows) => rows[0]!.id)))

const row = (id: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<Row>`SELECT id, state, attempts, last_error, sent_at, extract(epoch FROM next_attempt_at - now())::float8 AS due_in
             FROM outbox WHERE id = ${id}`.pipe(Effect.map((rows) => rows[0]!)))

/** Makes a row due now (instead of waiting for its backoff). */
const makeDue = (id: number) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE outbox SET next_attempt_at = now() WHERE id = ${id}`)

const spooled = () => (Fs.existsSync(spoolDir) ? Fs.readdirSync(spoolDir).sort() : [])

/** Log lines written while `effect` runs. */
const capturingLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) => {
  const lines: Array<string> = []
  const logger = Logger.map(Logger.logfmtLogger, (line) => void lines.push(line))
  return Effect.map(Effect.provide(effect, Logger.replace(Logger.defaultLogger, logger)), (a) => [a, lines] as const)
}

const reset = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DELETE FROM outbox`
  mail.reset()
  Fs.rmSync(spoolDir, { recursive: true, force: true })
})

describe("outbox helpers", () => {
  it("backoff doubles from the base and is capped", () => {
    assert.deepStrictEqual([1, 2, 3, 4, 5, 60, 2000].map((n) => backoffSeconds(n, 30, 3600)), [30, 60, 120, 240, 480, 3600, 3600])
  })
  it("an error is stored without the recipient or any other address", () => {
    const text = scrubError("550 <Alice.Smith@Example.org>: no; cc bob@example.net\nbye", "alice.smith@example.org")
    assert.strictEqual(text, "550 <<recipient>>: no; cc <address> bye")
  })
})

layer(OutboxTestLayer, { timeout: "120 seconds", excludeTestServices: true })("outbox delivery", (it) => {
  it.effect("delivers due pending rows once, as .eml files in the spool, and marks them sent", () =>
    Effect.gen(function*() {
      yield* reset
      const sql = yield* SqlClient.SqlClient
      const outbox = yield* Outbox
      yield* sql`INSERT INTO districts (id, name, provider) VALUES ('mailtown', 'Mailtown', 'oneroster-csv')`
      const a = yield* insert("a", { district: "mailtown", recipient: "teacher.a@example.org" })
      const b = yield* insert("b")
      const c = yield* insert("c")
      const later = yield* insert("later", { dueInSeconds: 3600 })
      const cancelled = yield* insert("cancelled", { state: "cancelled" })

      const [counts, logs] = yield* capturingLogs(outbox.deliverDue())
      assert.deepStrictEqual(counts, { sent: 3, failed: 0, retried: 0 })
      assert.deepStrictEqual([...mail.sent].sort(), [`outbox-${a}`, `outbox-${b}`, `outbox-${c}`].sort())
      assert.deepStrictEqual(spooled(), [`outbox-${a}.eml`, `outbox-${b}.eml`, `outbox-${c}.eml`].sort())

      const eml = Fs.readFileSync(NodePath.join(spoolDir, `outbox-${a}.eml`), "utf8")
      assert.match(eml, /^To: teacher\.a@example\.org$/m)
      assert.match(eml, /^Subject: Subject of a$/m)
      assert.match(eml, new RegExp(`^Message-ID: <outbox-${a}@rosterd>$`, "m"))
      assert.include(eml, "Body of a")

      for (const id of [a, b, c]) {
        const r = yield* row(id)
        assert.strictEqual(r.state, "sent")
        assert.strictEqual(r.attempts, 1)
        assert.isNull(r.lastError)
        assert.instanceOf(r.sentAt, Date)
      }
      const notDue = yield* row(later)
      assert.strictEqual(notDue.state, "pending")
      assert.strictEqual(notDue.attempts, 0)
      assert.strictEqual((yield* row(cancelled)).state, "cancelled")

      // Logs name ids and kinds, never the recipient, the subject or the body.
      assert.isTrue(logs.some((line) => line.includes(`outboxId=${a}`) && line.includes("kind=pause-notice")))
      for (const line of logs) {
        assert.notMatch(line, /@example\.org|Subject of|Body of/)
      }

      // A second pass has nothing to send.
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 0, failed: 0, retried: 0 })
      assert.strictEqual(mail.sent.length, 3)
      assert.strictEqual((yield* row(a)).attempts, 1)
    }))

  it.effect("takes at most `limit` rows per call, oldest due first", () =>
    Effect.gen(function*() {
      yield* reset
      const outbox = yield* Outbox
      const first = yield* insert("first", { dueInSeconds: -30 })
      const second = yield* insert("second", { dueInSeconds: -20 })
      const third = yield* insert("third", { dueInSeconds: -10 })
      assert.deepStrictEqual(yield* outbox.deliverDue(2), { sent: 2, failed: 0, retried: 0 })
      assert.deepStrictEqual(mail.sent, [`outbox-${first}`, `outbox-${second}`])
      assert.strictEqual((yield* row(third)).state, "pending")
      assert.deepStrictEqual(yield* outbox.deliverDue(2), { sent: 1, failed: 0, retried: 0 })
      assert.deepStrictEqual(mail.sent, [`outbox-${first}`, `outbox-${second}`, `outbox-${third}`])
    }))

  it.effect("a failing message is retried with capped exponential backoff, then marked failed after maxAttempts", () =>
    Effect.gen(function*() {
      yield* reset
      const outbox = yield* Outbox
      const id = yield* insert("doomed", { recipient: "alice.smith@example.org" })
      mail.failures.set(`outbox-${id}`, 100)

      // maxAttempts 4, base 10 s, max 30 s: retries after 10, 20, 30 (capped) seconds.
      const expectedDelays = [10, 20, 30]
      for (const [i, expected] of expectedDelays.entries()) {
        const [counts, logs] = yield* capturingLogs(outbox.deliverDue())
        assert.deepStrictEqual(counts, { sent: 0, failed: 0, retried: 1 })
        const r = yield* row(id)
        assert.strictEqual(r.state, "pending")
        assert.strictEqual(r.attempts, i + 1)
        assert.closeTo(r.dueIn, expected, 2)
        assert.include(r.lastError, "Recipient address rejected")
        assert.notInclude(r.lastError!.toLowerCase(), "alice")
        assert.notInclude(r.lastError!, "@")
        for (const line of logs) assert.notInclude(line.toLowerCase(), "alice")
        // Not due yet: nothing happens until the backoff is over.
        assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 0, failed: 0, retried: 0 })
        assert.strictEqual((yield* row(id)).attempts, i + 1)
        yield* makeDue(id)
      }

      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 0, failed: 1, retried: 0 })
      const r = yield* row(id)
      assert.strictEqual(r.state, "failed")
      assert.strictEqual(r.attempts, 4)
      assert.isNull(r.sentAt)
      assert.notInclude(r.lastError!.toLowerCase(), "alice")

      // Failed is final: even when due, it is not tried again.
      yield* makeDue(id)
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 0, failed: 0, retried: 0 })
      assert.strictEqual((yield* row(id)).attempts, 4)
      assert.deepStrictEqual(mail.sent, [])
      assert.deepStrictEqual(spooled(), [])
    }))

  it.effect("a message that fails twice is sent on the third attempt, once, under the same message id", () =>
    Effect.gen(function*() {
      yield* reset
      const outbox = yield* Outbox
      const flaky = yield* insert("flaky")
      const fine = yield* insert("fine")
      const crashing = yield* insert("crashing", { recipient: "carol@example.org" })
      mail.failures.set(`outbox-${flaky}`, 2)
      mail.dies.add(`outbox-${crashing}`)

      // One failure does not hold the others up; a defect in the mailer is a failed attempt.
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 1, failed: 0, retried: 2 })
      assert.deepStrictEqual(mail.sent, [`outbox-${fine}`])
      assert.notInclude((yield* row(crashing)).lastError!, "carol")
      yield* makeDue(flaky)
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 0, failed: 0, retried: 1 })
      yield* makeDue(flaky)
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 1, failed: 0, retried: 0 })

      const r = yield* row(flaky)
      assert.strictEqual(r.state, "sent")
      assert.strictEqual(r.attempts, 3)
      assert.deepStrictEqual(mail.sent, [`outbox-${fine}`, `outbox-${flaky}`])
      assert.deepStrictEqual(spooled(), [`outbox-${fine}.eml`, `outbox-${flaky}.eml`].sort())
      assert.strictEqual((yield* row(crashing)).state, "pending")
    }))

  it.effect("concurrent deliverDue calls never send the same row twice", () =>
    Effect.gen(function*() {
      yield* reset
      const outbox = yield* Outbox
      const ids = yield* Effect.forEach(Array.from({ length: 30 }, (_, i) => `bulk-${i}`), (key) => insert(key))
      mail.delay = "20 millis" // so the three batches are in flight at the same time

      const results = yield* Effect.all([outbox.deliverDue(10), outbox.deliverDue(10), outbox.deliverDue(10)], { concurrency: "unbounded" })
      assert.strictEqual(results.reduce((n, c) => n + c.sent, 0), 30)
      for (const counts of results) assert.strictEqual(counts.sent, 10)
      assert.strictEqual(mail.sent.length, 30)
      assert.strictEqual(new Set(mail.sent).size, 30)
      assert.deepStrictEqual([...mail.sent].sort(), ids.map((id) => `outbox-${id}`).sort())
      for (const id of ids) {
        const r = yield* row(id)
        assert.strictEqual(r.state, "sent")
        assert.strictEqual(r.attempts, 1)
      }
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 0, failed: 0, retried: 0 })
    }))

  it.effect("a row locked by another transaction is skipped, not waited for, and sent later", () =>
    Effect.gen(function*() {
      yield* reset
      const sql = yield* SqlClient.SqlClient
      const outbox = yield* Outbox
      const locked = yield* insert("locked")
      const free = yield* insert("free")
      const held = yield* Deferred.make<void>()
      const done = yield* Deferred.make<void>()
      const holder = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`SELECT id FROM outbox WHERE id = ${locked} FOR UPDATE`
        yield* Deferred.succeed(held, undefined)
        yield* Deferred.await(done)
      })).pipe(Effect.fork)
      yield* Deferred.await(held)

      const counts = yield* outbox.deliverDue().pipe(Effect.timeout("5 seconds"))
      assert.deepStrictEqual(counts, { sent: 1, failed: 0, retried: 0 })
      assert.deepStrictEqual(mail.sent, [`outbox-${free}`])
      assert.strictEqual((yield* row(locked)).attempts, 0)

      yield* Deferred.succeed(done, undefined)
      yield* Fiber.join(holder)
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 1, failed: 0, retried: 0 })
      assert.deepStrictEqual(mail.sent, [`outbox-${free}`, `outbox-${locked}`])
    }))

  it.effect("an interrupted batch hands its unsent rows back at once, attempt uncounted", () =>
    Effect.gen(function*() {
      yield* reset
      const outbox = yield* Outbox
      const ids = yield* Effect.forEach(["i-1", "i-2", "i-3"], (key) => insert(key))
      mail.delay = "1000 millis"
      const fiber = yield* Effect.fork(outbox.deliverDue())
      // Once the first is recorded as sent, the second is in flight (a 1 s send).
      yield* row(ids[0]!).pipe(
        Effect.filterOrFail((r) => r.state === "sent"),
        Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 500 })
      )
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(mail.sent, [`outbox-${ids[0]}`])
      assert.strictEqual((yield* row(ids[0]!)).state, "sent")
      for (const id of ids.slice(1)) {
        const r = yield* row(id)
        assert.strictEqual(r.state, "pending")
        assert.strictEqual(r.attempts, 0)
        assert.isAtMost(r.dueIn, 0)
      }
      mail.delay = "0 millis"
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 2, failed: 0, retried: 0 })
    }))

  it.effect("list: newest first, by state, limited, no recipient beyond its domain; retry: failed and pending requeued, sent, cancelled and unknown refused", () =>
    Effect.gen(function*() {
      yield* reset
      const sql = yield* SqlClient.SqlClient
      const outbox = yield* Outbox
      const failed = yield* insert("l-failed", { recipient: "  Fay.Fail@Schools.Example " })
      const pending = yield* insert("l-pending", { dueInSeconds: 600 })
      const sent = yield* insert("l-sent", { state: "sent" })
      const cancelled = yield* insert("l-cancelled", { state: "cancelled" })
      yield* sql`UPDATE outbox SET state = 'failed', attempts = 4, last_error = 'gave up' WHERE id = ${failed}`
      yield* sql`UPDATE outbox SET attempts = 2 WHERE id = ${pending}`

      const all = yield* outbox.list()
      assert.deepStrictEqual(all.map((e) => e.id), [cancelled, sent, pending, failed])
      const entry = all.find((e) => e.id === failed)!
      assert.deepStrictEqual(
        { kind: entry.kind, state: entry.state, attempts: entry.attempts, lastError: entry.lastError, domain: entry.recipientDomain },
        { kind: "pause-notice", state: "failed", attempts: 4, lastError: "gave up", domain: "schools.example" }
      )
      assert.notProperty(entry, "recipient")
      assert.notProperty(entry, "subject")
      assert.deepStrictEqual((yield* outbox.list({ state: "failed" })).map((e) => e.id), [failed])
      assert.deepStrictEqual((yield* outbox.list({ limit: 2 })).map((e) => e.id), [cancelled, sent])

      const again = yield* outbox.retry(failed)
      assert.deepStrictEqual(again, { id: failed, kind: "pause-notice", districtId: null, previousState: "failed", previousAttempts: 4 })
      const r = yield* row(failed)
      assert.deepStrictEqual([r.state, r.attempts, r.lastError], ["pending", 0, "gave up"])
      assert.isAtMost(r.dueIn, 0)
      assert.strictEqual((yield* outbox.retry(pending)).previousAttempts, 2)
      assert.isAtMost((yield* row(pending)).dueIn, 0)

      const refusedSent = yield* Effect.flip(outbox.retry(sent))
      assert.strictEqual(refusedSent._tag, "OutboxMessageNotRetryable")
      assert.match(refusedSent.message, new RegExp(`^outbox message ${sent} was sent; a sent message is not sent again$`))
      const refusedCancelled = yield* Effect.flip(outbox.retry(cancelled))
      assert.include(refusedCancelled.message, "is cancelled")
      assert.strictEqual((yield* row(cancelled)).state, "cancelled")
      const unknown = yield* Effect.flip(outbox.retry(999_999))
      assert.strictEqual(unknown.message, "no outbox message 999999 (see rosterd outbox list)")

      // Both go out now.
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 2, failed: 0, retried: 0 })
      assert.deepStrictEqual([...mail.sent].sort(), [`outbox-${failed}`, `outbox-${pending}`].sort())
    }))

  it.effect("the run loop keeps delivering, and survives a failing pass", () =>
    Effect.gen(function*() {
      yield* reset
      const sql = yield* SqlClient.SqlClient
      const outbox = yield* Outbox
      const waitForSent = (id: number) =>
        row(id).pipe(
          Effect.filterOrFail((r) => r.state === "sent"),
          Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 })
        )

      const first = yield* insert("loop-1")
      const [, logs] = yield* capturingLogs(Effect.gen(function*() {
        const loop = yield* Effect.fork(outbox.run)
        yield* waitForSent(first)

        // The table disappears for a while: passes fail, the loop logs and goes on. (Renaming
        // it takes its owner: rosterd's app role, which the tests connect as, owns nothing.)
        const owner = new pg.Client({ connectionString: (yield* TestDatabaseUrl).ownerUrl })
        yield* Effect.promise(() => owner.connect())
        yield* Effect.promise(() => owner.query(`ALTER TABLE outbox RENAME TO outbox_away`))
        yield* Effect.sleep("600 millis")
        yield* Effect.promise(() => owner.query(`ALTER TABLE outbox_away RENAME TO outbox`))
        yield* Effect.promise(() => owner.end())
        const second = yield* insert("loop-2")
        yield* waitForSent(second)
        assert.isUndefined(yield* Fiber.poll(loop).pipe(Effect.map((exit) => exit._tag === "Some" ? exit : undefined)))
        yield* Fiber.interrupt(loop)
        assert.deepStrictEqual(mail.sent, [`outbox-${first}`, `outbox-${second}`])
      }))
      assert.isTrue(logs.some((line) => line.includes("outbox delivery failed, will try again")))
    }))
})
