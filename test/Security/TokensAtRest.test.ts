import { Migrator, SqlClient } from "@effect/sql"
import { assert, describe, layer } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Layer, Option, Redacted } from "effect"
import { simpleParser } from "mailparser"
import { createHash, randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, inject } from "vitest"
import roster from "../../migrations/0001_roster.ts"
import districtRules from "../../migrations/0002_district_rules.ts"
import safety from "../../migrations/0003_safety.ts"
import admins0004 from "../../migrations/0004_admins.ts"
import schedule from "../../migrations/0005_schedule.ts"
import credentials from "../../migrations/0006_credentials.ts"
import erase from "../../migrations/0007_erase.ts"
import outboxLinks from "../../migrations/0009_outbox_links.ts"
import { migrations } from "../../migrations/index.ts"
import { Accounts } from "../../src/Accounts/Accounts.ts"
import { Activation } from "../../src/Accounts/Activation.ts"
import { Admins, withdrawnInvitations } from "../../src/Admins/Admins.ts"
import type { InviteInput } from "../../src/Admins/Model.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { MailError, Mailer, type MailMessage, SpoolMailerLive } from "../../src/Mail/Mailer.ts"
import { Outbox } from "../../src/Mail/Outbox.ts"
import { SmtpMailerLive } from "../../src/Mail/SmtpMailer.ts"
import { RosterProviderLive } from "../../src/Providers/Providers.ts"
import { SyncLive } from "../../src/Accounts/SyncAccounts.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { Secrets } from "../../src/Secrets/Secrets.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { pgClientLayer } from "../../src/Store/Sql.ts"
import { TestDatabaseUrl } from "../support/Database.ts"
import { FakeCleverDistrict, fakeCleverDistrictLayer } from "../support/FakeCleverDistrict.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { fastProviderRetries, syncTestLayer, testDataDir } from "../support/Layers.ts"
import { sealedToken, testKeyFile } from "../support/MailLinks.ts"
import { type ReceivedMail, smtpServer } from "../Mail/SmtpTestServer.ts"

/**
 * Issue 14, "no live secret at rest": no table holds a token that `rosterd_confirm_activation`
 * or `rosterd_confirm_admin` would accept. After syncs (CSV and Clever), a resend, admin
 * invitations and a resend, confirmations, deliveries over SMTP and to the spool, a failed
 * attempt and cancellations, every column of every table (cast to text: text, bytea as hex,
 * json, arrays) is searched for every token issued, in each form it could take (as issued,
 * standard base64, hex of its bytes and of its text); none is found. Beside it: the link
 * works after delivery, a retried message carries the same link, a cancelled message's seal
 * is gone, a row altered in the database sends nothing, no key means no mail but a sync that
 * applies, a key rotation keeps pending links, and the upgrade of a database holding old
 * messages leaves no live token in clear.
 */

const work = tempDir("rosterd-tokens-")
afterAll(() => work.remove())
const spoolDir = NodePath.join(work.dir, "spool")

const USER = "rosterd-relay"
const PASSWORD = "Pw-tokens-at-rest-4c1d"
const passwordFile = NodePath.join(work.dir, "smtp-password")
Fs.writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 })

const ACTIVATION_URL = "https://platform.example/activate?token={token}"
// An `&` in the page: the HTML part must carry it escaped.
const INVITATION_URL = "https://platform.example/admin-invitation?from=mail&t={token}"

const settings = new Map([
  ...testDataDir,
  ...fastProviderRetries,
  ["rosterd.csv.settleSeconds", "0"],
  ["rosterd.accounts.activationUrl", ACTIVATION_URL],
  ["rosterd.admins.invitationUrl", INVITATION_URL],
  ["rosterd.accounts.platformName", "Classboard"],
  ["rosterd.mail.from", "Classboard <noreply@classboard.example>"],
  ["rosterd.mail.spoolDir", spoolDir],
  ["rosterd.mail.retryBaseSeconds", "1"],
  ["rosterd.mail.retryMaxSeconds", "1"]
])
const withSettings = (extra: Record<string, string> = {}) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map([...settings, ...Object.entries(extra)])))

const TestLayer = Layer.mergeAll(Admins.Default, Accounts.Default).pipe(
  Layer.provide(withSettings()),
  Layer.provideMerge(Layer.merge(syncTestLayer(settings), fakeCleverDistrictLayer({ token: "clever-token-tar", students: 20 })))
)

// ---------------------------------------------------------------- mailers

/** A mailer that takes each message (rendered, as it would go out) and refuses it, like a relay answering 451. */
const refusing = (taken: Array<MailMessage>) =>
  Layer.succeed(Mailer, Mailer.of({
    send: (message) =>
      Effect.sync(() => taken.push(message)).pipe(
        Effect.zipRight(Effect.fail(new MailError({ messageId: message.messageId, message: "451 4.3.0 try again later" })))
      )
  }))

/** A mailer that takes each message and accepts it. */
const taking = (taken: Array<MailMessage>) => Layer.succeed(Mailer, Mailer.of({ send: (message) => Effect.sync(() => void taken.push(message)) }))

const outboxWith = (mailer: Layer.Layer<Mailer, unknown>, extra: Record<string, string> = {}) =>
  Outbox.Default.pipe(Layer.provide(mailer), Layer.provide(withSettings(extra)))

const smtpSettings = (port: number): Record<string, string> => ({
  "rosterd.mail.smtp.host": "127.0.0.1",
  "rosterd.mail.smtp.port": String(port),
  "rosterd.mail.smtp.user": USER,
  "rosterd.mail.smtp.passwordFile": passwordFile
})

const deliver = (outbox: Layer.Layer<Outbox, unknown, SqlClient.SqlClient>, limit?: number) =>
  Effect.flatMap(Outbox, (o) => o.deliverDue(limit)).pipe(Effect.provide(outbox))

const makeAllDue = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE outbox SET next_attempt_at = now() WHERE state = 'pending'`)

// ---------------------------------------------------------------- tokens

/** The token of a rendered activation or invitation link (base64url, 43 characters). */
const tokenIn = (text: string) => /https:\/\/platform\.example\/[a-z-]+\?(?:token|from=mail&t)=([A-Za-z0-9_-]{43})/.exec(text)?.[1]

/** Each form a token could be stored in: as issued, standard base64 (padded or not), hex of its bytes and of its text. */
const formsOf = (token: string) => {
  const bytes = Buffer.from(token, "base64url")
  const standard = bytes.toString("base64")
  return [token, standard, standard.replace(/=+$/, ""), bytes.toString("hex"), Buffer.from(token, "utf8").toString("hex"), encodeURIComponent(token)]
}

interface Hit {
  readonly table: string
  readonly column: string
}

/**
 * Every column of every table of rosterd's schema, cast to text (bytea as `\x` hex, json and
 * arrays as their text), searched for any of `needles`. Over a superuser connection: nothing
 * is out of its sight.
 */
const scanDatabase = (needles: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const db = yield* TestDatabaseUrl
    const client = new pg.Client({ connectionString: db.superuserUrl })
    yield* Effect.promise(() => client.connect())
    try {
      const { rows: columns } = yield* Effect.promise(() =>
        client.query<{ table: string; column: string }>(
          `SELECT c.relname AS table, a.attname AS column
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY 1, 2`
        ))
      const hits: Array<Hit> = []
      for (const { column, table } of columns) {
        const { rows } = yield* Effect.promise(() =>
          client.query<{ found: boolean }>(
            `SELECT EXISTS (SELECT 1 FROM "${table}" t WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) f WHERE strpos(lower(t."${column}"::text), lower(f)) > 0)) AS found`,
            [needles]
          ))
        if (rows[0]!.found) hits.push({ table, column })
      }
      return { hits, columns: columns.length }
    } finally {
      yield* Effect.promise(() => client.end())
    }
  })

const outboxRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ readonly id: number; readonly idempotencyKey: string; readonly kind: string; readonly state: string; readonly sealed: boolean; readonly recipient: string }>`
    SELECT id, idempotency_key, kind, state, link_ciphertext IS NOT NULL AS sealed, recipient FROM outbox ORDER BY id`)

const inviteInput = (districtId: string, email: string): InviteInput => ({
  districtId,
  email,
  name: "Invited Admin",
  permission: "view",
  canManageAdmins: false,
  role: "school",
  regionId: null,
  allSchools: true,
  schools: []
})

const addCsv = (id: string) =>
  Effect.gen(function*() {
    const dir = NodePath.join(work.dir, id)
    writeSmallDistrict(dir, `${id}.example`)
    yield* Effect.flatMap(RosterStore, (store) =>
      store.addDistrict({ id: id as DistrictId, name: `District ${id}`, provider: "oneroster-csv", timezone: "UTC", settings: { path: dir } }))
  })

const syncNow = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "full", trigger: "test" }))

const userIdOf = (district: string, sourceId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly id: number }>`SELECT id FROM users WHERE district_id = ${district} AND source_id = ${sourceId}`.pipe(
      Effect.map((rows) => Number(rows[0]!.id))
    ))

const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) =>
    Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) as { _tag: string; message: string } | undefined : undefined)

layer(TestLayer, { timeout: "240 seconds", excludeTestServices: true })("no live token at rest", (it) => {
  it.scoped("after syncs, resends, invitations, confirmations, SMTP and spool deliveries, a failed attempt and cancellations, no table holds any issued token", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const accounts = yield* Accounts
      const admins = yield* Admins
      const fake = yield* FakeCleverDistrict
      const server = yield* smtpServer({ user: USER, password: PASSWORD })

      // Syncs: a CSV district and a Clever one queue their teachers' activation e-mails.
      yield* addCsv("csvd")
      assert.strictEqual((yield* syncNow("csvd")).status, "succeeded")
      yield* Effect.flatMap(RosterStore, (store) =>
        store.addDistrict({
          id: "cleverd" as DistrictId,
          name: "Clever District",
          provider: "clever",
          timezone: "UTC",
          settings: { districtId: fake.districtId, tokenFile: fake.tokenFile, baseUrl: fake.baseUrl, pageSize: 50 }
        }))
      assert.strictEqual((yield* syncNow("cleverd")).status, "succeeded")
      const clever = (yield* outboxRows).filter((r) => r.kind === "teacher_activation" && !r.recipient.endsWith("@csvd.example"))
      assert.isAbove(clever.length, 0)

      // Every issued token that is never delivered (its message cancelled) is read from its seal first, to be searched for too.
      const issued = new Set<string>()
      const keep = (token: string | undefined) => {
        assert.isDefined(token)
        issued.add(token!)
        return token!
      }

      // A resend: Theo's first message is cancelled, its seal dropped.
      const theo = yield* userIdOf("csvd", "t-2")
      const theoFirst = (yield* outboxRows).find((r) => r.recipient === "theo@csvd.example")!
      const theoOld = keep(yield* sealedToken(theoFirst.idempotencyKey))
      yield* accounts.resendActivation(theo)

      // Invitations: Ada and Bea; Bea's is resent.
      const ada = yield* admins.invite(inviteInput("csvd", "ada@admins-csvd.example"), { by: "ops-test" })
      const bea = yield* admins.invite(inviteInput("csvd", "bea@admins-csvd.example"), { by: "ops-test" })
      const beaFirst = (yield* outboxRows).find((r) => r.recipient === "bea@admins-csvd.example")!
      const beaOld = keep(yield* sealedToken(beaFirst.idempotencyKey))
      yield* admins.resend(bea.adminId, { by: "ops-test" })

      const before = yield* outboxRows
      const cancelled = before.filter((r) => r.state === "cancelled")
      assert.deepStrictEqual(cancelled.map((r) => r.id).sort(), [theoFirst.id, beaFirst.id].sort())
      for (const row of cancelled) assert.isFalse(row.sealed, `the cancelled message ${row.id} keeps its seal`)
      const pending = before.filter((r) => r.state === "pending")
      assert.isTrue(pending.every((r) => r.sealed))

      // A first attempt fails (the relay answers 451): the rendered messages are kept to compare.
      const firstAttempt: Array<MailMessage> = []
      const failed = yield* deliver(outboxWith(refusing(firstAttempt)), 100)
      assert.deepStrictEqual(failed, { sent: 0, failed: 0, retried: pending.length })
      assert.isTrue((yield* outboxRows).filter((r) => r.state === "pending").every((r) => r.sealed), "a failed attempt keeps the seal")
      yield* makeAllDue

      // Then half over SMTP, the rest to the spool.
      const half = Math.ceil(pending.length / 2)
      const overSmtp = yield* deliver(outboxWith(SmtpMailerLive, smtpSettings(server.port)), half)
      assert.strictEqual(overSmtp.sent, half)
      const toSpool = yield* deliver(outboxWith(SpoolMailerLive))
      assert.strictEqual(toSpool.sent, pending.length - half)

      // What arrived: each delivered message's link, with the same token as its failed attempt had.
      const delivered = new Map<string, string>()
      const mailOf = (mail: ReceivedMail) => ({ id: mail.parsed.messageId!.replace(/^<(.*)@rosterd>$/, "$1"), text: mail.parsed.text ?? "", html: String(mail.parsed.html) })
      const spoolMails = yield* Effect.promise(() =>
        Promise.all(Fs.readdirSync(spoolDir).map(async (file) => {
          const parsed = await simpleParser(Fs.readFileSync(NodePath.join(spoolDir, file)))
          return { id: file.replace(/\.eml$/, ""), text: parsed.text ?? "", html: String(parsed.html) }
        })))
      for (const mail of [...server.received.map(mailOf), ...spoolMails]) {
        const token = keep(tokenIn(mail.text))
        delivered.set(mail.id, token)
        // The HTML part holds the same link, its `&` escaped.
        assert.strictEqual(tokenIn(mail.html.replace(/&amp;/g, "&")), token)
        const earlier = firstAttempt.find((m) => m.messageId === mail.id)
        assert.isDefined(earlier, `no failed attempt of ${mail.id}`)
        assert.strictEqual(tokenIn(earlier!.text), token, `${mail.id} carried another link when retried`)
      }
      assert.strictEqual(delivered.size, pending.length)
      assert.include(spoolMails.find((m) => m.html.includes("admin-invitation"))?.html ?? server.received.map((m) => String(m.parsed.html)).join(), "from=mail&amp;t=")
      // Every message is over: no seal is left anywhere.
      assert.deepStrictEqual((yield* outboxRows).filter((r) => r.sealed).map((r) => r.id), [])

      // Every token ever issued was seen (delivered, or read before its message was cancelled)...
      const [{ n: issuedCount }] = (yield* sql<{ readonly n: number }>`
        SELECT ((SELECT count(*) FROM activation_tokens) + (SELECT count(*) FROM admin_tokens))::int AS n`) as unknown as [{ n: number }]
      assert.strictEqual(issued.size, issuedCount)
      // ...and is one the database knows by its hash.
      for (const token of issued) {
        const hash = createHash("sha256").update(token, "utf8").digest()
        const [known] = yield* sql<{ readonly n: number }>`
          SELECT ((SELECT count(*) FROM activation_tokens WHERE token_hash = ${hash}) + (SELECT count(*) FROM admin_tokens WHERE token_hash = ${hash}))::int AS n`
        assert.strictEqual(known!.n, 1)
      }

      // Confirmations with the delivered links: a CSV teacher, a Clever teacher, an admin.
      const tessRow = (yield* outboxRows).find((r) => r.recipient === "tess@csvd.example")!
      const activated = yield* accounts.confirm(delivered.get(`outbox-${tessRow.id}`)!, Option.none())
      assert.strictEqual(activated.outcome, "activated")
      const cleverToken = delivered.get(`outbox-${clever[0]!.id}`)!
      const [cleverConfirmed] = yield* sql<{ readonly outcome: string }>`SELECT * FROM rosterd_confirm_activation(${cleverToken}, NULL)`
      assert.strictEqual(cleverConfirmed!.outcome, "activated")
      const adaRow = (yield* outboxRows).find((r) => r.recipient === "ada@admins-csvd.example")!
      const adaConfirmed = yield* admins.confirm(delivered.get(`outbox-${adaRow.id}`)!)
      assert.strictEqual(Number(adaConfirmed.adminId), ada.adminId)
      // The replaced links do not work.
      assert.strictEqual((yield* failureOf(accounts.confirm(theoOld, Option.none())))?._tag, "ActivationRefused")
      assert.strictEqual((yield* failureOf(admins.confirm(beaOld)))?._tag, "InvitationRefused")

      // The search: first shown able to find (the recipients are stored, as they must be)...
      const control = yield* scanDatabase(["tess@csvd.example"])
      assert.deepInclude(control.hits, { table: "outbox", column: "recipient" })
      assert.deepInclude(control.hits, { table: "users", column: "email" })
      // ...then no column of any table holds any issued token, in any form.
      const scan = yield* scanDatabase([...issued].flatMap(formsOf))
      assert.isAbove(scan.columns, 100)
      assert.deepStrictEqual(scan.hits, [], `tokens found in ${scan.hits.map((h) => `${h.table}.${h.column}`).join(", ")}`)
    }))

  it.effect("a queued message redirected in the database (another recipient, an href to another site, another message's seal) → nothing sent, the attempt fails: its link does not open", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      yield* addCsv("tamper")
      const one = yield* admins.invite(inviteInput("tamper", "one@tamper.example"), { by: "ops-test" })
      const two = yield* admins.invite(inviteInput("tamper", "two@tamper.example"), { by: "ops-test" })
      const three = yield* admins.invite(inviteInput("tamper", "three@tamper.example"), { by: "ops-test" })
      const rowOf = (adminId: number) =>
        sql<{ readonly id: number }>`
          SELECT id FROM outbox WHERE idempotency_key = 'admin-invitation:' || (SELECT max(id) FROM admin_tokens WHERE admin_id = ${adminId})`.pipe(
          Effect.map((rows) => Number(rows[0]!.id))
        )
      const [a, b, c] = [yield* rowOf(one.adminId), yield* rowOf(two.adminId), yield* rowOf(three.adminId)]
      // Redirected to someone else; its page swapped for another site; another message's seal copied in.
      yield* sql`UPDATE outbox SET recipient = 'attacker@evil.example' WHERE id = ${a}`
      yield* sql`UPDATE outbox SET body_html = replace(body_html, '{link}', 'https://evil.example/?u={link}') WHERE id = ${b}`
      yield* sql`UPDATE outbox o SET link_iv = x.link_iv, link_ciphertext = x.link_ciphertext, link_auth_tag = x.link_auth_tag
                 FROM outbox x WHERE o.id = ${c} AND x.id = ${a}`

      const taken: Array<MailMessage> = []
      const counts = yield* deliver(outboxWith(taking(taken)), 100)
      const tampered = new Set([a, b, c].map((id) => `outbox-${id}`))
      assert.deepStrictEqual(taken.filter((m) => tampered.has(m.messageId)), [])
      assert.isAtLeast(counts.retried, 3)
      const rows = yield* sql<{ readonly id: number; readonly state: string; readonly lastError: string }>`
        SELECT id, state, last_error FROM outbox WHERE id = ANY (${[a, b, c]}::bigint[]) ORDER BY id`
      for (const row of rows) {
        assert.strictEqual(row.state, "pending")
        assert.match(row.lastError, /does not open with key \w+: the row was altered/)
      }
    }))

  it.effect("a failed message keeps its link for outbox retry; once its token is replaced the seal goes, retry refuses it, and a pending one fails for good", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const accounts = yield* Accounts
      yield* addCsv("retry")
      assert.strictEqual((yield* syncNow("retry")).status, "succeeded")
      const rowOf = (recipient: string) =>
        sql<{ readonly id: number; readonly state: string; readonly sealed: boolean; readonly lastError: string | null }>`
          SELECT id, state, link_ciphertext IS NOT NULL AS sealed, last_error FROM outbox WHERE recipient = ${recipient} ORDER BY id DESC LIMIT 1`.pipe(
          Effect.map((rows) => rows[0]!)
        )
      const tess = yield* rowOf("tess@retry.example")
      const theo = yield* rowOf("theo@retry.example")
      // Both fail for good (one attempt allowed).
      const once = { "rosterd.mail.maxAttempts": "1" }
      yield* deliver(outboxWith(refusing([]), once), 100)
      assert.deepInclude(yield* rowOf("tess@retry.example"), { state: "failed", sealed: true })

      // Tess's is retried by an operator and delivered: the link works.
      const outbox = yield* Effect.provide(Outbox, outboxWith(refusing([])))
      yield* outbox.retry(tess.id)
      const taken: Array<MailMessage> = []
      yield* deliver(outboxWith(taking(taken)), 100)
      const token = tokenIn(taken.find((m) => m.messageId === `outbox-${tess.id}`)!.text)!
      assert.strictEqual((yield* accounts.confirm(token, Option.none())).outcome, "activated")

      // Theo's token is replaced by a resend: his failed message loses its seal and cannot be retried.
      yield* accounts.resendActivation(yield* userIdOf("retry", "t-2"))
      assert.deepInclude(yield* rowOf("theo@retry.example"), { sealed: true, state: "pending" }) // the new one
      const [old] = yield* sql<{ readonly state: string; readonly sealed: boolean }>`
        SELECT state, link_ciphertext IS NOT NULL AS sealed FROM outbox WHERE id = ${theo.id}`
      assert.deepStrictEqual({ ...old! }, { state: "failed", sealed: false })
      const refused = yield* failureOf(outbox.retry(theo.id))
      assert.strictEqual(refused?._tag, "OutboxLinkGone")
      assert.include(refused!.message, "rosterd accounts resend-activation")

      // A pending message whose seal is gone (however it went) fails for good at once, sending nothing.
      yield* sql`UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = now() WHERE id = ${theo.id}`
      const none: Array<MailMessage> = []
      yield* deliver(outboxWith(taking(none)), 100)
      assert.isUndefined(none.find((m) => m.messageId === `outbox-${theo.id}`))
      const gone = yield* sql<{ readonly state: string; readonly lastError: string }>`SELECT state, last_error FROM outbox WHERE id = ${theo.id}`
      assert.strictEqual(gone[0]!.state, "failed")
      assert.include(gone[0]!.lastError, "its link was withdrawn")
    }))

  it.effect("no credentials key (DATABASE_URL): a sync applies and notes the waiting e-mails; invite and resend fail naming the setting; the first run with a key sends them", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* addCsv("nokey")
      const key = testKeyFile(work.dir, "nokey.key")
      const services = (extra: Record<string, string>) =>
        Layer.mergeAll(SyncLive, Admins.Default, Accounts.Default).pipe(
          Layer.provide(RosterProviderLive),
          Layer.provide(withSettings({ databaseUrl: "postgres://external.invalid/rosterd", ...extra }))
        )
      const withoutKey = services({})
      const withKey = services({ "rosterd.secrets.keyFile": key.path })

      const run = yield* syncNow("nokey").pipe(Effect.provide(withoutKey))
      assert.strictEqual(run.status, "succeeded")
      assert.strictEqual(run.counts.users.created, 5)
      assert.include(run.notes.join("\n"), "2 activation e-mails not issued yet: ")
      assert.include(run.notes.join("\n"), "rosterd.secrets.keyFile")
      const [recorded] = yield* sql<{ readonly notes: string }>`SELECT notes FROM sync_runs WHERE id = ${run.runId}`
      assert.include(recorded!.notes, "the first run with a key issues them")
      const mails = () => sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM outbox WHERE district_id = 'nokey'`.pipe(Effect.map((r) => r[0]!.n))
      assert.strictEqual(yield* mails(), 0)
      const [tokens] = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM activation_tokens t JOIN users u ON u.id = t.user_id WHERE u.district_id = 'nokey'`
      assert.strictEqual(tokens!.n, 0)

      const invite = yield* failureOf(Effect.flatMap(Admins, (a) => a.invite(inviteInput("nokey", "ann@nokey-admins.example"), { by: "ops-test" })).pipe(
        Effect.provide(withoutKey)
      ))
      assert.strictEqual(invite?._tag, "SecretsKeyMissing")
      assert.include(invite!.message, "rosterd.secrets.keyFile")
      const [admins] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM admins WHERE district_id = 'nokey'`
      assert.strictEqual(admins!.n, 0) // nothing half-done
      const teacher = yield* userIdOf("nokey", "t-1")
      const resent = yield* failureOf(Effect.flatMap(Accounts, (a) => a.resendActivation(teacher)).pipe(Effect.provide(withoutKey)))
      assert.strictEqual(resent?._tag, "SecretsKeyMissing")
      assert.include(resent!.message, "ROSTERD_SECRETS_KEY_FILE")

      // A key now: the next run issues them.
      const next = yield* syncNow("nokey").pipe(Effect.provide(withKey))
      assert.strictEqual(next.status, "succeeded")
      assert.deepStrictEqual(next.notes.filter((n) => n.includes("activation")), [])
      assert.strictEqual(yield* mails(), 2)
    }))

  it.effect("rotate-key re-seals pending links: with only the new key configured they still go out, and work; an altered one fails", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // This test's links only (the rotation takes every link of the outbox).
      yield* sql`DELETE FROM outbox`
      yield* addCsv("rotate")
      const keyA = testKeyFile(work.dir, "rotate-a.key")
      const keyB = testKeyFile(work.dir, "rotate-b.key")
      const external = { databaseUrl: "postgres://external.invalid/rosterd" }
      const onlyA = { ...external, "rosterd.secrets.keyFile": keyA.path }
      const rotating = { ...external, "rosterd.secrets.keyFile": keyB.path, "rosterd.secrets.previousKeyFiles": keyA.path }
      const onlyB = { ...external, "rosterd.secrets.keyFile": keyB.path }
      const syncWith = SyncLive.pipe(Layer.provide(RosterProviderLive), Layer.provide(withSettings(onlyA)))
      assert.strictEqual((yield* syncNow("rotate").pipe(Effect.provide(syncWith))).status, "succeeded")
      const keys = () => sql<{ readonly keyId: string }>`SELECT DISTINCT link_key_id AS key_id FROM outbox WHERE district_id = 'rotate' AND link_ciphertext IS NOT NULL`
      assert.deepStrictEqual((yield* keys()).map((k) => k.keyId), [keyA.key.id])
      // Before the rotation, the new key alone cannot open them: the attempt fails, naming the key, nothing sent.
      const early: Array<MailMessage> = []
      yield* deliver(outboxWith(taking(early), onlyB), 100)
      assert.deepStrictEqual(early, [])
      const [error] = yield* sql<{ readonly lastError: string }>`SELECT last_error FROM outbox WHERE district_id = 'rotate' LIMIT 1`
      assert.include(error!.lastError, `sealed with key ${keyA.key.id}, which is not configured`)

      // Without the old key the rotation refuses: those links would be lost. Nothing changes.
      const refused = yield* failureOf(Effect.flatMap(Secrets, (s) => s.rotate()).pipe(Effect.provide(Secrets.Default.pipe(Layer.provide(withSettings(onlyB))))))
      assert.strictEqual(refused?._tag, "LinkUnreadable")
      assert.deepStrictEqual((yield* keys()).map((k) => k.keyId), [keyA.key.id])

      // One of them altered meanwhile (redirected): it cannot be re-sealed, its message fails.
      const [altered] = yield* sql<{ readonly id: number }>`UPDATE outbox SET recipient = 'attacker@evil.example'
        WHERE id = (SELECT min(id) FROM outbox WHERE district_id = 'rotate') RETURNING id`
      const rotated = yield* Effect.flatMap(Secrets, (s) => s.rotate()).pipe(Effect.provide(Secrets.Default.pipe(Layer.provide(withSettings(rotating)))))
      assert.deepInclude(rotated, { keyId: keyB.key.id, links: 1, linksFailed: 1 })
      assert.deepStrictEqual((yield* keys()).map((k) => k.keyId), [keyB.key.id])
      const [failedRow] = yield* sql<{ readonly state: string; readonly sealed: boolean }>`
        SELECT state, link_ciphertext IS NOT NULL AS sealed FROM outbox WHERE id = ${altered!.id}`
      assert.deepStrictEqual({ ...failedRow! }, { state: "failed", sealed: false })

      yield* makeAllDue
      const taken: Array<MailMessage> = []
      assert.strictEqual((yield* deliver(outboxWith(taking(taken), onlyB), 100)).sent, 1)
      const token = tokenIn(taken[0]!.text)!
      const [confirmed] = yield* sql<{ readonly outcome: string }>`SELECT * FROM rosterd_confirm_activation(${token}, NULL)`
      assert.strictEqual(confirmed!.outcome, "activated")
    }))
})

// ---------------------------------------------------------------- the upgrade

describe("the upgrade of a database that stored links in clear (migration 0009)", () => {
  const before = { "0001_roster": roster, "0002_district_rules": districtRules, "0003_safety": safety, "0004_admins": admins0004, "0005_schedule": schedule, "0006_credentials": credentials, "0007_erase": erase }
  const name = `test_upgrade_${randomBytes(4).toString("hex")}`
  const admin = () => inject("postgres")
  const adminQuery = async (text: string) => {
    const { host, password, port, user } = admin()
    const client = new pg.Client({ host, port, user, password, database: "postgres" })
    await client.connect()
    try {
      await client.query(text)
    } finally {
      await client.end()
    }
  }
  const database = Layer.unwrapScoped(Effect.gen(function*() {
    yield* Effect.acquireRelease(
      Effect.promise(() => adminQuery(`CREATE DATABASE ${name}`)),
      () => Effect.promise(() => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
    )
    const { host, password, port, user } = admin()
    return pgClientLayer({ host, port, username: user, password: Redacted.make(password), database: name })
  }))

  layer(database, { timeout: "120 seconds" })((it) => {
    it.effect("live tokens in old bodies are revoked and scrubbed, old messages not sent are cancelled; teachers get new links from the next run, admins are listed for a resend", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const migrate = Migrator.make({})
        yield* migrate({ loader: Migrator.fromRecord(before), table: "rosterd_migrations" })

        // The old code's way: a 64-hex token, its SHA-256 stored, the link in the body.
        const oldToken = () => randomBytes(32).toString("hex")
        const tokens = { sent: oldToken(), pending: oldToken(), expired: oldToken(), admin: oldToken() }
        yield* sql`INSERT INTO districts (id, name, provider) VALUES ('old', 'Old District', 'oneroster-csv')`
        const teacher = (source: string) =>
          Effect.gen(function*() {
            const [user] = yield* sql.withTransaction(Effect.gen(function*() {
              yield* sql`SELECT set_config('rosterd.writer', 'sync', true)`
              return yield* sql<{ readonly id: number }>`
                INSERT INTO users (district_id, source_id, roster_source, roles, email, given_name, family_name)
                VALUES ('old', ${source}, 'csv', '{teacher}', ${`${source}@old.example`}, 'Given', 'Family') RETURNING id`
            }))
            const [account] = yield* sql<{ readonly id: number }>`INSERT INTO accounts (origin, state, district_id) VALUES ('district', 'pending', 'old') RETURNING id`
            yield* sql`INSERT INTO account_links (user_id, account_id, method, activation) VALUES (${user!.id}, ${account!.id}, 'created', 'pending')`
            return { user: Number(user!.id), account: Number(account!.id) }
          })
        const queue = (kind: string, key: string, recipient: string, token: string, state: string) =>
          sql`INSERT INTO outbox (district_id, idempotency_key, kind, recipient, subject, body_text, body_html, state)
              VALUES ('old', ${key}, ${kind}, ${recipient}, 'Confirm',
                      ${`Confirm here:\nhttps://platform.example/activate?token=${token}\n`},
                      ${`<p><a href="https://platform.example/activate?token=${token}">Confirm</a></p>`}, ${state})`
        const hash = (token: string) => createHash("sha256").update(token, "utf8").digest()
        const issue = (who: { readonly user: number; readonly account: number }, token: string, expiresInDays: number) =>
          sql<{ readonly id: number }>`
            INSERT INTO activation_tokens (user_id, account_id, token_hash, expires_at)
            VALUES (${who.user}, ${who.account}, ${hash(token)}, now() + make_interval(days => ${expiresInDays})) RETURNING id`.pipe(
            Effect.map((rows) => Number(rows[0]!.id))
          )
        const sent = yield* teacher("t-sent")
        const waiting = yield* teacher("t-pending")
        const expired = yield* teacher("t-expired")
        yield* queue("teacher_activation", `teacher-activation:${yield* issue(sent, tokens.sent, 14)}`, "t-sent@old.example", tokens.sent, "sent")
        yield* queue("teacher_activation", `teacher-activation:${yield* issue(waiting, tokens.pending, 14)}`, "t-pending@old.example", tokens.pending, "pending")
        yield* queue("teacher_activation", `teacher-activation:${yield* issue(expired, tokens.expired, -1)}`, "t-expired@old.example", tokens.expired, "sent")
        const [invited] = yield* sql<{ readonly id: number }>`
          INSERT INTO admins (district_id, name, email, email_key, permission, role, all_schools, invited_by)
          VALUES ('old', 'Old Admin', 'admin@old.example', 'admin@old.example', 'view', 'school', true, 'operator:test') RETURNING id`
        const [adminToken] = yield* sql<{ readonly id: number }>`
          INSERT INTO admin_tokens (admin_id, token_hash, expires_at) VALUES (${invited!.id}, ${hash(tokens.admin)}, now() + interval '14 days') RETURNING id`
        yield* queue("admin_invitation", `admin-invitation:${adminToken!.id}`, "admin@old.example", tokens.admin, "sent")

        // The upgrade.
        const applied = yield* migrate({ loader: Migrator.fromRecord({ ...before, "0009_outbox_links": outboxLinks }), table: "rosterd_migrations" })
        assert.deepStrictEqual(applied.map(([id]) => id), [9])

        // No stored text holds a token any more.
        const bodies = yield* sql<{ readonly recipient: string; readonly state: string; readonly bodyText: string; readonly bodyHtml: string; readonly lastError: string | null }>`
          SELECT recipient, state, body_text, body_html, last_error FROM outbox ORDER BY id`
        for (const body of bodies) {
          for (const token of Object.values(tokens)) {
            assert.notInclude(body.bodyText, token)
            assert.notInclude(body.bodyHtml, token)
          }
          assert.include(body.bodyText, "token=(removed)")
        }
        // The message not sent yet is cancelled (with why); the sent ones stay sent.
        assert.deepStrictEqual(bodies.map((b) => [b.recipient, b.state]), [
          ["t-sent@old.example", "sent"],
          ["t-pending@old.example", "cancelled"],
          ["t-expired@old.example", "sent"],
          ["admin@old.example", "sent"]
        ])
        assert.include(bodies[1]!.lastError!, "its link was stored in clear")
        // The tokens that worked are revoked (a copy in a backup is dead too); the expired one is left as it was.
        const revoked = yield* sql<{ readonly userId: number; readonly reason: string | null }>`
          SELECT user_id, revoked_reason AS reason FROM activation_tokens ORDER BY id`
        assert.deepStrictEqual(revoked.map((r) => r.reason), ["link_at_rest", "link_at_rest", null])
        const refused = yield* Effect.flip(sql`SELECT * FROM rosterd_confirm_activation(${tokens.sent}, NULL)`)
        assert.strictEqual((refused.cause as { code?: string }).code, "RSTOK")

        // The next run's issuing sends the two teachers new links, in the new form; not the expired one.
        // (That run is today's code, on a database at its own level: the migrations this old
        // database skipped are applied in order — 0008 too, which it never had.)
        const applied9 = new Set([...Object.keys(before), "0009_outbox_links"].map((key) => Number(key.split("_")[0])))
        for (const [id, , load] of yield* migrations) {
          if (!applied9.has(id)) yield* Effect.flatten(load as Effect.Effect<Effect.Effect<void, unknown, SqlClient.SqlClient>>)
        }
        const activation = Activation.Default.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([...settings])))))
        const issued = yield* Effect.flatMap(Activation, (a) => a.issue({ districtId: "old", replace: false })).pipe(Effect.provide(activation))
        assert.strictEqual(issued, 2)
        const fresh = yield* sql<{ readonly recipient: string; readonly sealed: boolean; readonly bodyText: string }>`
          SELECT recipient, link_ciphertext IS NOT NULL AS sealed, body_text FROM outbox WHERE state = 'pending' ORDER BY recipient`
        assert.deepStrictEqual(fresh.map((f) => [f.recipient, f.sealed]), [["t-pending@old.example", true], ["t-sent@old.example", true]])
        for (const f of fresh) assert.include(f.bodyText, "{link}")
        // And once sent, the next run sends nothing again.
        assert.strictEqual(yield* Effect.flatMap(Activation, (a) => a.issue({ districtId: "old", replace: false })).pipe(Effect.provide(activation)), 0)

        // The invited admin is listed for a resend (rosterd doctor says so).
        assert.deepStrictEqual(yield* withdrawnInvitations, [Number(invited!.id)])

        // A replica still on the old code queues a link in clear: refused, nothing stored.
        const oldReplica = yield* Effect.flip(queue("teacher_activation", "teacher-activation:old-replica", "t-late@old.example", oldToken(), "pending"))
        assert.strictEqual((oldReplica.cause as { code?: string }).code, "23514")
        assert.strictEqual((yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM outbox WHERE idempotency_key = 'teacher-activation:old-replica'`)[0]!.n, 0)
      }))
  })
})
