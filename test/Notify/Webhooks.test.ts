import { SqlClient } from "@effect/sql"
import { afterAll, assert, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as NodePath from "node:path"
import { Audit } from "../../src/Audit/Audit.ts"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Notify } from "../../src/Notify/Notify.ts"
import { notifySettings } from "../../src/Notify/Settings.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { TestDatabase } from "../support/Database.ts"
import { tempDir } from "../support/Fixtures.ts"

/**
 * Notifications and signed webhooks (src/Notify) against a real receiver on loopback:
 * the signature checked by a verifier written here from the README alone, retries of a
 * non-2xx answer, a 410 disabling the hook (audited), redirects not followed, one message
 * per occurrence across two replicas, stale and recovered episodes, the events found in
 * the store (a held run, a decided hold, opened reviews), and no secret at rest.
 */

// ---------------------------------------------------------------- the receiver's side

/**
 * The README's verification, written independently of src/Notify: HMAC-SHA256 of
 * "<X-Rosterd-Timestamp>.<raw body>" keyed with the shared secret, hex, after "sha256=";
 * compared in constant time; a timestamp more than five minutes off is refused.
 */
const verify = (secret: string, headers: Http.IncomingHttpHeaders, rawBody: string, nowSeconds = Date.now() / 1000): boolean => {
  const timestamp = String(headers["x-rosterd-timestamp"] ?? "")
  const signature = String(headers["x-rosterd-signature"] ?? "")
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > 300) return false
  const expected = "sha256=" + Crypto.createHmac("sha256", secret).update(timestamp + "." + rawBody).digest("hex")
  const a = Buffer.from(signature)
  const b = Buffer.from(expected)
  return a.length === b.length && Crypto.timingSafeEqual(a, b)
}

interface Received {
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
}

/** A receiver answering each request with the next scripted status (then the last one). */
const receiver = (statuses: ReadonlyArray<number>) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly received: Array<Received>; readonly server: Http.Server }>((resume) => {
      const received: Array<Received> = []
      let n = 0
      const server = Http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => {
          received.push({ path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") })
          const status = statuses[Math.min(n++, statuses.length - 1)]!
          if (status >= 300 && status < 400) res.setHeader("location", "/elsewhere")
          res.writeHead(status).end("ok")
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as { port: number }
        resume(Effect.succeed({ url: `http://127.0.0.1:${address.port}/hook`, received, server }))
      })
    }),
    ({ server }) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
  )

// ---------------------------------------------------------------- rosterd's side

const work = tempDir("rosterd-notify-")
const SECRET = "whsec-test-0123456789abcdef"
const secretFile = NodePath.join(work.dir, "hook-secret")
Fs.writeFileSync(secretFile, `${SECRET}\n`)
afterAll(() => work.remove())

/** A Notify over the test database with `notify` as `rosterd.notify` (a replica of its own each call). */
const notifyWith = (notify: Record<string, unknown>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Notify.pipe(Effect.provide(Notify.Default.pipe(
      Layer.provide(ConfigFile.fromDocument({ rosterd: { notify } })),
      Layer.provide(Layer.succeed(SqlClient.SqlClient, sql))
    ))))

const hook = (url: string, events: ReadonlyArray<string> = []) => ({ url, secretFile, events })

const addDistrict = (id: string) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "UTC", settings: { path: work.dir } }))

const deliveries = (url: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly id: number; readonly state: string; readonly attempts: number; readonly lastStatus: number | null }>`
      SELECT id, state, attempts, last_status FROM webhook_deliveries WHERE url = ${url} ORDER BY id`)

const dueNow = (url: string) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE webhook_deliveries SET next_attempt_at = now() WHERE url = ${url}`)

layer(Layer.mergeAll(RosterStore.Default, Audit.Default).pipe(Layer.provideMerge(TestDatabase)), { timeout: "120 seconds", excludeTestServices: true })("notifications", (it) => {
  it.scoped("a webhook is signed as the README says; the body is {event, district, run, at, summary}; no secret at rest", () =>
    Effect.gen(function*() {
      const rx = yield* receiver([200])
      yield* addDistrict("nw1")
      const notify = yield* notifyWith({ webhooks: [hook(rx.url)] })
      const id = yield* notify.emit({ event: "run.held", occurrence: "run:9001", districtId: "nw1", runId: 9001, summary: { rules: ["deactivate_percent"], kinds: ["users"] } })
      assert.isTrue(Option.isSome(id))
      const counts = yield* notify.deliverDue()
      assert.deepStrictEqual(counts, { sent: 1, retried: 0, failed: 0, disabled: 0 })
      assert.strictEqual(rx.received.length, 1)
      const got = rx.received[0]!
      assert.isTrue(verify(SECRET, got.headers, got.body))
      // A changed body, another secret or an old timestamp fail the same verifier.
      assert.isFalse(verify(SECRET, got.headers, got.body.replace("nw1", "nw2")))
      assert.isFalse(verify("another-secret", got.headers, got.body))
      assert.isFalse(verify(SECRET, got.headers, got.body, Date.now() / 1000 + 3600))
      const body = JSON.parse(got.body)
      assert.deepStrictEqual(Object.keys(body).sort(), ["at", "district", "event", "run", "summary"])
      assert.deepInclude(body, { event: "run.held", district: "nw1", run: 9001 })
      assert.deepStrictEqual(body.summary, { rules: ["deactivate_percent"], kinds: ["users"] })
      assert.strictEqual(got.headers["x-rosterd-event"], "run.held")
      assert.deepStrictEqual((yield* deliveries(rx.url)).map((d) => d.state), ["sent"])
      // The secret is nowhere in the database.
      const sql = yield* SqlClient.SqlClient
      const [dump] = yield* sql<{ readonly text: string }>`
        SELECT (SELECT coalesce(string_agg(to_jsonb(n)::text, ''), '') FROM notifications n)
            || (SELECT coalesce(string_agg(to_jsonb(d)::text, ''), '') FROM webhook_deliveries d)
            || (SELECT coalesce(string_agg(to_jsonb(a)::text, ''), '') FROM audit_log a) AS text`
      assert.notInclude(dump!.text, SECRET)
    }))

  it.scoped("a receiver answering non-2xx is retried (same delivery id) until it takes it; a redirect is not followed", () =>
    Effect.gen(function*() {
      const rx = yield* receiver([500, 302, 200])
      const notify = yield* notifyWith({ webhooks: [hook(rx.url)] })
      yield* notify.emit({ event: "notify.test", occurrence: "retry-1", summary: { test: true } })
      assert.deepStrictEqual(yield* notify.deliverDue(), { sent: 0, retried: 1, failed: 0, disabled: 0 })
      const [first] = yield* deliveries(rx.url)
      assert.deepInclude(first, { state: "pending", attempts: 1, lastStatus: 500 })
      // Not due before its backoff.
      assert.deepStrictEqual(yield* notify.deliverDue(), { sent: 0, retried: 0, failed: 0, disabled: 0 })
      yield* dueNow(rx.url)
      assert.deepStrictEqual(yield* notify.deliverDue(), { sent: 0, retried: 1, failed: 0, disabled: 0 })
      assert.deepInclude((yield* deliveries(rx.url))[0], { state: "pending", attempts: 2, lastStatus: 302 })
      yield* dueNow(rx.url)
      assert.deepStrictEqual(yield* notify.deliverDue(), { sent: 1, retried: 0, failed: 0, disabled: 0 })
      assert.deepInclude((yield* deliveries(rx.url))[0], { state: "sent", attempts: 3, lastStatus: 200 })
      assert.deepStrictEqual(rx.received.map((r) => r.path), ["/hook", "/hook", "/hook"])
      assert.strictEqual(new Set(rx.received.map((r) => r.headers["x-rosterd-delivery"])).size, 1)
      assert.isTrue(rx.received.every((r) => verify(SECRET, r.headers, r.body)))
    }))

  it.scoped("410 Gone disables the hook with an audit row; later events make no delivery for it", () =>
    Effect.gen(function*() {
      const rx = yield* receiver([410])
      const notify = yield* notifyWith({ webhooks: [hook(rx.url)] })
      yield* notify.emit({ event: "notify.test", occurrence: "gone-1" })
      assert.deepStrictEqual(yield* notify.deliverDue(), { sent: 0, retried: 0, failed: 0, disabled: 1 })
      assert.deepStrictEqual((yield* deliveries(rx.url)).map((d) => d.state), ["disabled"])
      const sql = yield* SqlClient.SqlClient
      const audit = yield* sql<{ readonly actor: string; readonly subject: string }>`SELECT actor, subject FROM audit_log WHERE action = 'webhook.disabled'`
      assert.deepStrictEqual(audit.map((a) => [a.actor, a.subject]), [["rosterd", rx.url]])
      yield* notify.emit({ event: "notify.test", occurrence: "gone-2" })
      assert.strictEqual((yield* deliveries(rx.url)).length, 1)
      assert.strictEqual(rx.received.length, 1)
    }))

  it.scoped("two replicas seeing the same event write it once: one notification, one delivery per hook, one mail per contact", () =>
    Effect.gen(function*() {
      const rx = yield* receiver([200])
      yield* addDistrict("nw2")
      const settings = { email: ["ops@example.org", "oncall@example.net"], webhooks: [hook(rx.url, ["run.failed"])] }
      const [a, b] = [yield* notifyWith(settings), yield* notifyWith(settings)]
      const results = yield* Effect.all([
        a.emit({ event: "run.failed", occurrence: "run:77", districtId: "nw2", runId: 77 }),
        b.emit({ event: "run.failed", occurrence: "run:77", districtId: "nw2", runId: 77 })
      ], { concurrency: 2 })
      assert.strictEqual(results.filter(Option.isSome).length, 1)
      // A hook that does not want the event gets nothing.
      yield* a.emit({ event: "run.held", occurrence: "run:78", districtId: "nw2", runId: 78 })
      const sql = yield* SqlClient.SqlClient
      const [n] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM notifications WHERE event = 'run.failed' AND occurrence = 'run:77'`
      assert.strictEqual(n!.n, 1)
      assert.strictEqual((yield* deliveries(rx.url)).length, 1)
      const mails = yield* sql<{ readonly subject: string; readonly bodyText: string }>`
        SELECT subject, body_text FROM outbox WHERE kind = 'notification' AND district_id = 'nw2' ORDER BY id`
      assert.strictEqual(mails.length, 4) // two contacts × two events
      assert.strictEqual(mails[0]!.subject, "[rosterd] run.failed nw2")
      yield* Effect.all([a.deliverDue(), b.deliverDue()], { concurrency: 2 })
      assert.strictEqual(rx.received.length, 1)
      // notify list: targets without query or address.
      const listed = yield* a.list()
      assert.isTrue(listed.some((d) => d.channel === "email" && d.target === "@example.org"))
      assert.isFalse(JSON.stringify(listed).includes("ops@"))
    }))

  it.scoped("the store's events are found once, whichever replica scans: a held run, its decision, the reviews a run opened", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* addDistrict("nw3")
      const [a, b] = [yield* notifyWith({}), yield* notifyWith({})]
      yield* a.scan() // the first look sets notify_state.since: what happens from now on is announced
      const [run] = yield* sql<{ readonly id: number }>`
        INSERT INTO sync_runs (district_id, mode, status, trigger, finished_at, host, pid)
        VALUES ('nw3', 'full', 'held', 'test', now(), 'test', 1) RETURNING id`
      yield* sql`INSERT INTO holds (run_id, district_id, tripped)
                 VALUES (${run!.id}, 'nw3', ${JSON.stringify([{ kind: "users", group: "student", rule: "deactivate_percent", count: 30, of: 200, limit: 10 }])}::jsonb)`
      const counts = yield* Effect.all([a.scan(), b.scan()], { concurrency: 2 })
      assert.strictEqual(counts[0] + counts[1], 1)
      yield* sql`UPDATE holds SET state = 'approved', decided_at = now() WHERE run_id = ${run!.id}`
      assert.strictEqual((yield* b.scan()) + (yield* a.scan()), 1)
      // Two reviews the run opened: one message for both, counted, by reason (no person named).
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe(`SELECT set_config('rosterd.writer', 'sync', true)`)
        const users = yield* sql<{ readonly id: number }>`
          INSERT INTO users (district_id, source_id, roster_source, roles, given_name, family_name, email)
          VALUES ('nw3', 'u-1', 'csv', ARRAY['teacher'], 'Ada', 'Lovelace', 'ada@nw3.example'),
                 ('nw3', 'u-2', 'csv', ARRAY['teacher'], 'Alan', 'Turing', 'alan@nw3.example') RETURNING id`
        for (const user of users) yield* sql`INSERT INTO account_reviews (district_id, user_id, reason) VALUES ('nw3', ${user.id}, 'email_shared')`
      }))
      assert.strictEqual((yield* a.scan()) + (yield* b.scan()), 1)
      const rows = yield* sql<{ readonly event: string; readonly runId: number; readonly summary: Record<string, unknown> }>`
        SELECT event, run_id, summary FROM notifications WHERE district_id = 'nw3' ORDER BY id`
      assert.deepStrictEqual(rows.map((r) => [r.event, Number(r.runId)]), [
        ["run.held", Number(run!.id)],
        ["hold.decided", Number(run!.id)],
        ["review.opened", Number(run!.id)]
      ])
      assert.deepStrictEqual(rows[0]!.summary, { rules: ["deactivate_percent"], kinds: ["users"] })
      assert.deepStrictEqual(rows[1]!.summary, { decision: "approved" })
      assert.deepStrictEqual(rows[2]!.summary, { reviews: 2, reasons: ["email_shared"] })
      assert.notMatch(JSON.stringify(rows), /Ada|Lovelace|ada@|Turing/)
    }))

  it.scoped("stale and recovered are announced once per episode", () =>
    Effect.gen(function*() {
      yield* addDistrict("nw4")
      const notify = yield* notifyWith({})
      const seen: Array<string> = []
      for (const stale of [false, false, true, true, false, false, true]) {
        const id = yield* notify.freshness("nw4", stale)
        if (Option.isSome(id)) seen.push(stale ? "stale" : "recovered")
      }
      assert.deepStrictEqual(seen, ["stale", "recovered", "stale"])
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ readonly occurrence: string }>`SELECT occurrence FROM notifications WHERE district_id = 'nw4' ORDER BY id`
      assert.deepStrictEqual(rows.map((r) => r.occurrence), ["stale:nw4:1", "recovered:nw4:1", "stale:nw4:2"])
    }))

  it.effect("a hook's URL must be https (http only on loopback); the config error names the key, not the secret", () =>
    Effect.gen(function*() {
      const check = (notify: Record<string, unknown>) =>
        notifySettings.pipe(Effect.provide(ConfigFile.fromDocument({ rosterd: { notify } }, "/etc/rosterd.yaml")), Effect.flip)
      const plain = yield* check({ webhooks: [hook("http://hooks.example.org/x")] })
      assert.match(plain.message, /rosterd\.notify in \/etc\/rosterd\.yaml: .*https/)
      const creds = yield* check({ webhooks: [hook("https://user:pw@hooks.example.org/x")] })
      assert.match(creds.message, /must not carry credentials/)
      const ok = yield* notifySettings.pipe(Effect.provide(ConfigFile.fromDocument({ rosterd: { notify: { webhooks: [hook("http://localhost:9/x"), hook("https://hooks.example.org/x")] } } })))
      assert.strictEqual(ok.webhooks.length, 2)
    }))
})
