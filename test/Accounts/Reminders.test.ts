import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Option, Redacted } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { Accounts } from "../../src/Accounts/Accounts.ts"
import { Activation } from "../../src/Accounts/Activation.ts"
import { Reminders, RemindersWithoutDependencies } from "../../src/Accounts/Reminders.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Outbox } from "../../src/Mail/Outbox.ts"
import { SmtpMailerLive } from "../../src/Mail/SmtpMailer.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { pgClientLayer } from "../../src/Store/Sql.ts"
import { smtpServer } from "../Mail/SmtpTestServer.ts"
import { TestDatabaseUrl } from "../support/Database.ts"
import { generated, tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { syncTestLayer, testDataDir } from "../support/Layers.ts"
import { PROVIDERS, rosteredUser, serveEachProvider, type ServedDistrict } from "./providers.ts"

/**
 * Activation follow-up through real syncs in each provider (a CSV set, the fake Clever API,
 * the fake OneRoster REST server): a teacher who has not confirmed gets a reminder with a
 * fresh link once the last e-mail is `remindAfterDays` old, at most `maxReminders` times;
 * the earlier link stops working, the new one (delivered over real SMTP) confirms. Reminder
 * n of a teacher is made once when two replicas (two connection pools) send at the same
 * time; the daemon's loop sends them by itself; `pending` lists who waits, `resend` sends a
 * new e-mail for one teacher or all of a district's. Time passes by moving the e-mails'
 * creation back.
 */

const work = tempDir("rosterd-reminders-")
const USER = "relay"
const PASSWORD = "Pw-reminders-7e2b"
const passwordFile = NodePath.join(work.dir, "smtp-password")
Fs.writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 })

const settings = new Map([
  ...testDataDir,
  ["rosterd.csv.settleSeconds", "0"],
  ["rosterd.accounts.activationUrl", "https://platform.example/activate?token={token}"],
  ["rosterd.accounts.platformName", "Classboard"],
  ["rosterd.mail.from", "Classboard <noreply@classboard.example>"]
])
const config = (extra: Record<string, string> = {}) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map([...settings, ...Object.entries(extra)])))

const TestLayer = Layer.mergeAll(Reminders.Default, Activation.Default, Accounts.Default).pipe(
  Layer.provide(config()),
  Layer.provideMerge(syncTestLayer(settings))
)

const tokenIn = (text: string) => /https:\/\/platform\.example\/activate\?token=([A-Za-z0-9_-]{43})/.exec(text)?.[1]

/** Every activation e-mail of the district's users moves `days` into the past (as if they were sent then). */
const age = (days: number, districtId?: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`UPDATE activation_tokens t SET created_at = t.created_at - make_interval(days => ${days})
        FROM users u WHERE u.id = t.user_id AND (${districtId ?? null}::text IS NULL OR u.district_id = ${districtId ?? null})`)

const tokensOf = (userId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly id: number; readonly reminder: number; readonly used: boolean; readonly revokedReason: string | null; readonly revoked: boolean }>`
      SELECT id::int, reminder, used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked, revoked_reason
      FROM activation_tokens WHERE user_id = ${userId} ORDER BY id`)

const messageOf = (tokenId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ readonly id: number; readonly state: string; readonly subject: string; readonly sealed: boolean; readonly recipient: string }>`
      SELECT id::int, state, subject, link_ciphertext IS NOT NULL AS sealed, recipient FROM outbox
      WHERE idempotency_key = ${`teacher-activation:${tokenId}`}`, (rows) => rows[0]))

const smtpOutbox = (port: number) =>
  Outbox.Default.pipe(
    Layer.provide(SmtpMailerLive),
    Layer.provide(config({
      "rosterd.mail.smtp.host": "127.0.0.1",
      "rosterd.mail.smtp.port": String(port),
      "rosterd.mail.smtp.user": USER,
      "rosterd.mail.smtp.passwordFile": passwordFile
    }))
  )

/** A second replica: its own pool on the same database, its own services. */
const replica = Layer.mergeAll(Activation.Default, Reminders.Default).pipe(
  Layer.provide(config()),
  Layer.provide(Layer.unwrapEffect(Effect.map(TestDatabaseUrl, (db) => pgClientLayer({ url: Redacted.make(db.url) }))))
)

layer(TestLayer, { timeout: "300 seconds", excludeTestServices: true })("activation reminders", (it) => {
  it.scoped("in each provider: reminders after remindAfterDays, at most maxReminders, each with a fresh link that works; the old one dies", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const reminders = yield* Reminders
      const accounts = yield* Accounts
      const server = yield* smtpServer({ user: USER, password: PASSWORD })
      const served = yield* serveEachProvider(work.dir, "remind", writeSmallDistrict)
      const districts = PROVIDERS.map((p) => served[p])
      const deliver = Effect.flatMap(Outbox, (o) => o.deliverDue(200)).pipe(Effect.provide(smtpOutbox(server.port)))

      // The first e-mails go out with the syncs; nothing is due yet.
      const first = yield* deliver
      assert.strictEqual(first.sent, 2 * PROVIDERS.length)
      for (const d of districts) {
        const listed = yield* reminders.pending(d.districtId)
        const expected: Array<Array<unknown>> = ["t-1", "t-2"].map((t) => [d.userSourceId(t), 0, 0, true])
        assert.deepStrictEqual(
          listed.map((p): Array<unknown> => [p.sourceId, p.remindersSent, p.daysSinceFirstMail, p.hasAddress]),
          expected.sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1))
        )
        for (const p of listed) {
          assert.strictEqual(p.nextReminderAt!.getTime() - p.lastMailAt!.getTime(), 7 * 24 * 3600 * 1000)
          assert.isNotNull(p.linkExpiresAt)
        }
      }
      assert.strictEqual(yield* reminders.sendDue(), 0)

      // Six days on: still not due. Eight: the first reminder for every waiting teacher.
      yield* age(6)
      assert.strictEqual(yield* reminders.sendDue(), 0)
      yield* age(2)
      assert.strictEqual(yield* reminders.sendDue(), 2 * PROVIDERS.length)
      assert.strictEqual(yield* reminders.sendDue(), 0, "a reminder is sent once")
      for (const d of districts) {
        for (const t of ["t-1", "t-2"]) {
          const user = yield* rosteredUser(d, t)
          const tokens = yield* tokensOf(user.id)
          assert.deepStrictEqual(tokens.map((k) => [k.reminder, k.revoked, k.revokedReason]), [[0, true, "reminder"], [1, false, null]])
          const reminder = yield* messageOf(tokens[1]!.id)
          assert.deepStrictEqual([reminder!.state, reminder!.subject, reminder!.sealed], ["pending", "Reminder: confirm your official Classboard account", true])
          // The first message was delivered: it stays sent, without a seal.
          assert.deepStrictEqual([(yield* messageOf(tokens[0]!.id))!.state, (yield* messageOf(tokens[0]!.id))!.sealed], ["sent", false])
        }
        assert.deepStrictEqual((yield* reminders.pending(d.districtId)).map((p) => [p.remindersSent, p.daysSinceFirstMail]), [[1, 8], [1, 8]])
      }

      // Delivered over SMTP: the reminder's link confirms; the first e-mail's link no longer does.
      assert.strictEqual((yield* deliver).sent, 2 * PROVIDERS.length)
      for (const d of districts) {
        const tess = yield* rosteredUser(d, "t-1")
        const mails = server.received.filter((m) => m.rcptTo.includes(`tess@${d.domain}`))
        assert.deepStrictEqual(mails.map((m) => m.parsed.subject), ["Confirm your official Classboard account", "Reminder: confirm your official Classboard account"])
        assert.include(mails[1]!.parsed.text ?? "", "The link in our earlier message no longer works")
        const old = yield* Effect.flip(accounts.confirm(tokenIn(mails[0]!.parsed.text ?? "")!, Option.none()))
        assert.include(old.message, "replaced by a newer one")
        const confirmed = yield* accounts.confirm(tokenIn(mails[1]!.parsed.text ?? "")!, Option.none())
        assert.deepStrictEqual(confirmed, { userId: tess.id, accountId: tess.accountId!, outcome: "activated" })
        assert.deepStrictEqual((yield* reminders.pending(d.districtId)).map((p) => p.sourceId), [d.userSourceId("t-2")])
      }

      // A week later Theo gets his second reminder; after that, none (maxReminders 2). Tess is active: none for her.
      yield* age(7)
      assert.strictEqual(yield* reminders.sendDue(), PROVIDERS.length)
      yield* age(30)
      assert.strictEqual(yield* reminders.sendDue(), 0)
      for (const d of districts) {
        const theo = yield* rosteredUser(d, "t-2")
        assert.deepStrictEqual((yield* tokensOf(theo.id)).map((k) => [k.reminder, k.revoked]), [[0, true], [1, true], [2, false]])
        const [listed] = yield* reminders.pending(d.districtId)
        assert.deepStrictEqual([listed!.remindersSent, listed!.nextReminderAt], [2, null])
        assert.strictEqual((yield* tokensOf((yield* rosteredUser(d, "t-1")).id)).length, 2)
      }
      // Nothing personal in what operators see.
      const shown = JSON.stringify(yield* Effect.forEach(districts, (d) => reminders.pending(d.districtId)))
      for (const text of ["@", "Theo", "Tess"]) assert.notInclude(shown, text)
      const [{ n: students }] = (yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM activation_tokens t JOIN users u ON u.id = t.user_id WHERE 'student' = ANY (u.roles)`) as unknown as [{ n: number }]
      assert.strictEqual(students, 0)
    }))

  it.effect("per-district rules: remindAfterDays 3 reminds sooner; maxReminders 0 never reminds", () =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      const sync = yield* Sync
      const reminders = yield* Reminders
      for (const [id, rules] of [["soon", { activation: { remindAfterDays: 3 } }], ["never", { activation: { maxReminders: 0 } }]] as const) {
        const dir = NodePath.join(work.dir, id)
        writeSmallDistrict(dir, `${id}.example`)
        yield* store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "UTC", settings: { path: dir }, rules })
        assert.strictEqual((yield* sync.run(id, { request: "full", trigger: "test" })).status, "succeeded")
      }
      const before = yield* reminders.sendDue()
      yield* age(3, "soon")
      yield* age(3, "never")
      assert.strictEqual((yield* reminders.sendDue()) - before, 2)
      yield* age(60, "never")
      assert.strictEqual(yield* reminders.sendDue(), 0)
      const [never] = yield* reminders.pending("never")
      assert.deepStrictEqual([never!.remindersSent, never!.nextReminderAt], [0, null])
    }))

  it.scoped("two replicas at once: every reminder exactly once, its e-mail queued once", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const store = yield* RosterStore
      const sync = yield* Sync
      const dir = NodePath.join(work.dir, "race")
      generated(dir, 400, "reminder-race")
      yield* store.addDistrict({ id: "race" as DistrictId, name: "Race", provider: "oneroster-csv", timezone: "UTC", settings: { path: dir } })
      assert.strictEqual((yield* sync.run("race", { request: "full", trigger: "test" })).status, "succeeded")
      const [{ n: waiting }] = (yield* sql<{ readonly n: number }>`
        SELECT count(DISTINCT t.user_id)::int AS n FROM activation_tokens t JOIN users u ON u.id = t.user_id WHERE u.district_id = 'race'`) as unknown as [{ n: number }]
      assert.isAbove(waiting, 5)
      const rules = { remindAfterDays: 7, maxReminders: 2 }
      const a = yield* Activation
      const b = Context.get(yield* Layer.build(replica), Activation)
      for (let round = 1; round <= 2; round++) {
        yield* age(8, "race")
        const sent = yield* Effect.all([a.remind("race", rules), b.remind("race", rules), a.remind("race", rules), b.remind("race", rules)], {
          concurrency: "unbounded"
        })
        assert.strictEqual(sent.reduce((x, y) => x + y, 0), waiting, `round ${round}: ${sent.join(" + ")}`)
        const [counts] = yield* sql<{ readonly tokens: number; readonly mails: number; readonly live: number }>`
          SELECT count(*)::int AS tokens,
                 (SELECT count(*)::int FROM outbox o WHERE o.idempotency_key IN (
                    SELECT 'teacher-activation:' || x.id FROM activation_tokens x JOIN users v ON v.id = x.user_id
                    WHERE v.district_id = 'race' AND x.reminder = ${round})) AS mails,
                 count(*) FILTER (WHERE t.revoked_at IS NULL)::int AS live
          FROM activation_tokens t JOIN users u ON u.id = t.user_id WHERE u.district_id = 'race' AND t.reminder = ${round}`
        assert.deepStrictEqual(counts, { tokens: waiting, mails: waiting, live: waiting })
        // One live link per teacher: the reminder's.
        const [{ n: live }] = (yield* sql<{ readonly n: number }>`
          SELECT count(*)::int AS n FROM activation_tokens t JOIN users u ON u.id = t.user_id
          WHERE u.district_id = 'race' AND t.revoked_at IS NULL AND t.used_at IS NULL`) as unknown as [{ n: number }]
        assert.strictEqual(live, waiting)
      }
    }))

  it.scoped("the daemon's loop sends due reminders by itself, on two replicas at once, once", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const store = yield* RosterStore
      const sync = yield* Sync
      const dir = NodePath.join(work.dir, "loop")
      writeSmallDistrict(dir, "loop.example")
      yield* store.addDistrict({ id: "loop" as DistrictId, name: "Loop", provider: "oneroster-csv", timezone: "UTC", settings: { path: dir } })
      assert.strictEqual((yield* sync.run("loop", { request: "full", trigger: "test" })).status, "succeeded")
      yield* age(8, "loop")
      const fast = config({ "rosterd.accounts.reminderCheck": "50 millis" })
      yield* Layer.build(Layer.mergeAll(
        RemindersWithoutDependencies.pipe(Layer.provide(Reminders.Default), Layer.provide(fast)),
        RemindersWithoutDependencies.pipe(Layer.provide(replica), Layer.provide(fast))
      ))
      const reminded = sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM activation_tokens t JOIN users u ON u.id = t.user_id WHERE u.district_id = 'loop' AND t.reminder = 1`
      for (let i = 0; i < 100 && (yield* reminded)[0]!.n < 2; i++) yield* Effect.sleep("50 millis")
      yield* Effect.sleep("300 millis") // a few more passes of both loops
      assert.strictEqual((yield* reminded)[0]!.n, 2)
      const [{ n: mails }] = (yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM outbox WHERE district_id = 'loop' AND subject LIKE 'Reminder:%'`) as unknown as [{ n: number }]
      assert.strictEqual(mails, 2)
    }))

  it.effect("resend: one teacher by source ID, or every pending teacher of the district; audited; unknown source IDs refused", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const reminders = yield* Reminders
      const d: ServedDistrict = { provider: "oneroster-csv", districtId: "loop", domain: "loop.example", dir: "", userSourceId: (id) => id, classSourceId: (id) => id }
      const theo = yield* rosteredUser(d, "t-2")
      const before = (yield* tokensOf(theo.id)).length
      const one = yield* reminders.resend("loop", { sourceId: "t-2" }, "ops-rita")
      assert.deepStrictEqual(one, { districtId: "loop", users: [theo.id], issued: 1 })
      const tokens = yield* tokensOf(theo.id)
      assert.strictEqual(tokens.length, before + 1)
      assert.deepStrictEqual(tokens.map((k) => k.revoked), [...Array(before).fill(true), false])
      assert.strictEqual(tokens.at(-1)!.reminder, 0, "a resend is not a reminder")

      const all = yield* reminders.resend("loop", "all-pending", "ops-rita")
      assert.deepStrictEqual([all.users.length, all.issued], [2, 2])
      const audit = yield* sql<{ readonly actor: string; readonly subject: string; readonly details: Record<string, unknown> }>`
        SELECT actor, subject, details FROM audit_log WHERE action = 'account.resend-activation' AND district_id = 'loop' ORDER BY id`
      assert.deepStrictEqual(audit.map((a) => [a.actor, a.subject]), [["ops-rita", `user ${theo.id}`], ["ops-rita", "district loop"]])
      assert.deepStrictEqual(audit[1]!.details, { allPending: true, users: 2, issued: 2 })

      const unknown = yield* Effect.flip(reminders.resend("loop", { sourceId: "t-404" }))
      assert.strictEqual(unknown.message, "district loop has no rostered user with source ID t-404")
      const noDistrict = yield* Effect.flip(reminders.resend("nowhere", "all-pending"))
      assert.strictEqual(noDistrict._tag, "DistrictNotFound")
    }))
})
