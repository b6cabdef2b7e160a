import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { generated, readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { sealedToken } from "../support/MailLinks.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { writeRulesDistrict } from "../support/RulesDistrict.ts"

/**
 * Accounts and rostered users through real syncs: linking by e-mail, new district accounts,
 * the review queue, student and teacher activation (the e-mail in the outbox, the token
 * confirmed through the database function the platform calls), permanent links.
 */

const addDistrict = (id: string, path: string) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: `District ${id}`, provider: "oneroster-csv", timezone: "UTC", settings: { path } }))

const syncNow = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "auto", trigger: "test" }))

/** A grassroots account with these addresses (as `accounts import` stores them); returns its id. */
const grassroots = (externalId: string, ...emails: Array<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [account] = yield* sql<{ readonly id: number }>`
      INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', ${externalId}, 'active') RETURNING id`
    for (const email of emails) {
      yield* sql`INSERT INTO account_emails (account_id, email, email_key, added_by)
                 VALUES (${account!.id}, ${email}, ${email.trim().toLowerCase()}, 'import')`
    }
    return Number(account!.id)
  })

interface LinkRow {
  readonly sourceId: string
  readonly accountId: number | null
  readonly method: string | null
  readonly activation: string | null
  readonly origin: string | null
  readonly state: string | null
}

const links = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<LinkRow>`
      SELECT u.source_id, l.account_id, l.method, l.activation, a.origin, a.state
      FROM users u LEFT JOIN account_links l ON l.user_id = u.id LEFT JOIN accounts a ON a.id = l.account_id
      WHERE u.district_id = ${district} ORDER BY u.source_id`).pipe(
    Effect.map((rows) => new Map(rows.map((r) => [r.sourceId, { ...r, accountId: r.accountId === null ? null : Number(r.accountId) }])))
  )

const reviews = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly sourceId: string; readonly reason: string; readonly candidates: Array<string> }>`
      SELECT u.source_id, r.reason, r.candidate_account_ids::text[] AS candidates
      FROM account_reviews r JOIN users u ON u.id = r.user_id
      WHERE r.district_id = ${district} AND r.state = 'open' ORDER BY u.source_id`)

const activationMails = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly recipient: string; readonly subject: string; readonly bodyText: string; readonly idempotencyKey: string }>`
      SELECT recipient, subject, body_text, idempotency_key FROM outbox
      WHERE district_id = ${district} AND kind = 'teacher_activation' ORDER BY recipient`)

/** The token of a queued activation e-mail: sealed in the outbox row (no table holds it in clear), opened as the worker would. */
const tokenOf = (mail: { readonly idempotencyKey: string }) => sealedToken(mail.idempotencyKey)

const confirm = (token: string, linkAccount: number | null = null) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly userId: number; readonly accountId: number; readonly outcome: string }>`
      SELECT * FROM rosterd_confirm_activation(${token}, ${linkAccount}::bigint)`)

/** The SQLSTATE of a failed statement. */
const sqlState = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flip(effect).pipe(Effect.map((error) => ((error as { cause?: { code?: string } }).cause?.code ?? "none")))

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("account linking", (it) => {
  it.effect("linked by e-mail (trimmed, any case) to an existing account; otherwise a new district account", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { emailDomain: "link.example" })
      // The district writes t-01's address in another case, with spaces.
      writeCsv(dir.dir, "users", readRows(dir.dir, "users").map((u) => (u["sourcedId"] === "t-01" ? { ...u, email: "  T-01@Link.EXAMPLE " } : u)))
      const mine = yield* grassroots("ext-1", "t-01@link.example")
      const student = yield* grassroots("ext-2", "S-1@link.example")
      yield* addDistrict("link", dir.dir)
      yield* syncNow("link")
      const stored = yield* links("link")
      assert.deepInclude(stored.get("t-01"), { accountId: mine, method: "email", activation: "active", origin: "grassroots" })
      assert.deepInclude(stored.get("s-1"), { accountId: student, method: "email", activation: "active" })
      assert.deepInclude(stored.get("t-02"), { method: "created", activation: "pending", origin: "district", state: "pending" })
      // Students: active while enrolled; s-3 has no class.
      assert.deepInclude(stored.get("s-3"), { method: "created", activation: "pending" })
      assert.deepInclude(stored.get("s-4"), { method: "created", activation: "active", state: "active" })
      // Roster admins are linked like teachers (the rule syncAdmins is on by default; test/Admins covers it off).
      assert.deepInclude(stored.get("a-1"), { method: "created", activation: "pending", origin: "district", state: "pending" })
      // Activation e-mails: new teachers (and the admin) only; not t-01, who already uses the platform.
      const mails = yield* activationMails("link")
      assert.strictEqual(mails.length, 13)
      assert.notInclude(mails.map((m) => m.recipient), "T-01@Link.EXAMPLE")
      assert.include(mails.map((m) => m.recipient), "t-02@link.example")
      assert.match(mails[0]!.subject, /^Confirm your official .* account$/)
      assert.include(mails[0]!.bodyText, "District link")
      assert.notInclude(mails[0]!.bodyText, "Given") // no names in the message
      // A second sync links nothing new and sends nothing again.
      const again = yield* syncNow("link")
      assert.strictEqual(again.status, "succeeded")
      assert.strictEqual((yield* activationMails("link")).length, 13)
      assert.deepStrictEqual(yield* links("link"), stored)
      dir.remove()
    }))

  it.effect("never guessed: two accounts, an address linked to another rostered user, or one shared in the roster go to review", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { emailDomain: "review.example" })
      const users = readRows(dir.dir, "users").map((u) => (u["sourcedId"] === "t-06" ? { ...u, email: "t-05@review.example" } : u))
      writeCsv(dir.dir, "users", users)
      const a = yield* grassroots("ext-a", "t-03@review.example")
      const b = yield* grassroots("ext-b", "T-03@review.example ")
      // t-04's address belongs to an account already linked to an active user of another district.
      const other = tempDir()
      writeRulesDistrict(other.dir, { emailDomain: "elsewhere.example" })
      writeCsv(other.dir, "users", readRows(other.dir, "users").map((u) => (u["sourcedId"] === "t-09" ? { ...u, email: "t-04@review.example" } : u)))
      yield* addDistrict("elsewhere", other.dir)
      yield* syncNow("elsewhere")
      yield* addDistrict("review", dir.dir)
      const run = yield* syncNow("review")

      const queue = yield* reviews("review")
      assert.deepStrictEqual(queue.map((r) => [r.sourceId, r.reason]), [
        ["t-03", "several_accounts"],
        ["t-04", "email_linked_elsewhere"],
        ["t-05", "email_shared"],
        ["t-06", "email_shared"]
      ])
      assert.deepStrictEqual(queue[0]!.candidates, [String(a), String(b)])
      const stored = yield* links("review")
      for (const id of ["t-03", "t-04", "t-05", "t-06"]) assert.isNull(stored.get(id)!.accountId, `${id} is not linked`)
      // Reported, by source ID only.
      const reported = yield* sql<{ readonly sourceId: string; readonly detail: string }>`
        SELECT source_id, detail FROM findings WHERE run_id = ${run.runId} AND code = 'account_review' ORDER BY source_id`
      assert.deepStrictEqual(reported.map((f) => f.sourceId), ["t-03", "t-04", "t-05", "t-06"])
      for (const f of reported) assert.notMatch(f.detail, /@/)
      // No activation e-mail for someone not linked.
      assert.notInclude((yield* activationMails("review")).map((m) => m.recipient), "t-03@review.example")
      // The next run keeps one open item per user.
      yield* syncNow("review")
      assert.strictEqual((yield* reviews("review")).length, 4)
      // When the district fixes t-06's address, t-05 and t-06 are linked and their items closed.
      writeCsv(dir.dir, "users", readRows(dir.dir, "users").map((u) => (u["sourcedId"] === "t-06" ? { ...u, email: "t-06@review.example" } : u)))
      yield* syncNow("review")
      assert.deepStrictEqual((yield* reviews("review")).map((r) => r.sourceId), ["t-03", "t-04"])
      assert.isNotNull((yield* links("review")).get("t-06")!.accountId)
      dir.remove()
      other.remove()
    }))

  it.effect("an address added to an account before the first sync links the teacher to it (several addresses)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { emailDomain: "prep.example" })
      const account = yield* grassroots("ext-prep", "teacher.personal@mail.example")
      yield* sql`INSERT INTO account_emails (account_id, email, email_key, added_by)
                 VALUES (${account}, 't-07@prep.example', 't-07@prep.example', 'operator')`
      yield* addDistrict("prep", dir.dir)
      yield* syncNow("prep")
      assert.deepInclude((yield* links("prep")).get("t-07"), { accountId: account, method: "email", activation: "active" })
      dir.remove()
    }))

  it.effect("students are active only while enrolled in a class", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { emailDomain: "students.example" })
      yield* addDistrict("students", dir.dir)
      yield* syncNow("students")
      assert.strictEqual((yield* links("students")).get("s-3")!.activation, "pending")
      const enrollments = readRows(dir.dir, "enrollments")
      writeCsv(dir.dir, "enrollments", [...enrollments, {
        sourcedId: "e-new", classSourcedId: "cls-math-1", schoolSourcedId: "org-s1", userSourcedId: "s-3", role: "student", primary: "false"
      }])
      yield* syncNow("students")
      assert.deepInclude((yield* links("students")).get("s-3"), { activation: "active", state: "active" })
      writeCsv(dir.dir, "enrollments", enrollments)
      const run = yield* syncNow("students")
      assert.strictEqual((yield* links("students")).get("s-3")!.activation, "pending")
      const sql = yield* SqlClient.SqlClient
      const [reported] = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM findings WHERE run_id = ${run.runId} AND code = 'student_without_class' AND source_id = 's-3'`
      assert.strictEqual(reported!.n, 1)
      dir.remove()
    }))

  it.effect("a teacher confirms with the token from the e-mail: single use; or links an account used before, for good", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { emailDomain: "confirm.example" })
      yield* addDistrict("confirm", dir.dir)
      yield* syncNow("confirm")
      const mails = yield* activationMails("confirm")
      const mailTo = (who: string) => mails.find((m) => m.recipient === `${who}@confirm.example`)!

      // t-02 activates the new account.
      const t02 = yield* tokenOf(mailTo("t-02"))
      const [activated] = yield* confirm(t02)
      assert.strictEqual(activated!.outcome, "activated")
      assert.deepInclude((yield* links("confirm")).get("t-02"), { activation: "active", state: "active", method: "created" })
      assert.strictEqual(yield* sqlState(confirm(t02)), "RSTOK") // used
      assert.strictEqual(yield* sqlState(confirm("0".repeat(64))), "RSTOK") // unknown

      // t-03 used the platform before with another address: links that account instead.
      const before = yield* grassroots("ext-old", "t03.personal@mail.example")
      const [pending] = yield* sql<{ readonly accountId: number }>`
        SELECT l.account_id FROM account_links l JOIN users u ON u.id = l.user_id WHERE u.district_id = 'confirm' AND u.source_id = 't-03'`
      const [linked] = yield* confirm(yield* tokenOf(mailTo("t-03")), before)
      assert.strictEqual(linked!.outcome, "linked")
      assert.deepInclude((yield* links("confirm")).get("t-03"), { accountId: before, method: "confirmed", activation: "active" })
      const [merged] = yield* sql<{ readonly state: string; readonly mergedInto: number }>`
        SELECT state, merged_into FROM accounts WHERE id = ${pending!.accountId}`
      assert.deepStrictEqual([merged!.state, Number(merged!.mergedInto)], ["merged", before])
      // The district address moved to the account, so the platform finds it there.
      const addresses = yield* sql<{ readonly emailKey: string }>`SELECT email_key FROM account_emails WHERE account_id = ${before} ORDER BY 1`
      assert.deepStrictEqual(addresses.map((a) => a.emailKey), ["t-03@confirm.example", "t03.personal@mail.example"])

      // Links are permanent: neither a later sync nor direct SQL undoes them.
      writeCsv(dir.dir, "users", readRows(dir.dir, "users").map((u) => (u["sourcedId"] === "t-03" ? { ...u, email: "new.t03@confirm.example" } : u)))
      yield* syncNow("confirm")
      assert.strictEqual((yield* links("confirm")).get("t-03")!.accountId, before)
      assert.strictEqual(
        yield* sqlState(sql`DELETE FROM account_links WHERE account_id = ${before}`),
        "RSLCK"
      )
      const other = yield* grassroots("ext-other")
      assert.strictEqual(
        yield* sqlState(sql`UPDATE account_links SET account_id = ${other} WHERE account_id = ${before}`),
        "RSLCK"
      )
      // An expired token is refused.
      yield* sql`UPDATE activation_tokens SET expires_at = now() - interval '1 minute' WHERE used_at IS NULL`
      assert.strictEqual(yield* sqlState(confirm(yield* tokenOf(mailTo("t-04")))), "RSTOK")
      dir.remove()
    }))

  it.effect("previous classes of a linked account stay where they are", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { emailDomain: "keep.example" })
      const account = yield* grassroots("ext-keep", "t-08@keep.example")
      const [own] = yield* sql<{ readonly id: number }>`
        INSERT INTO classes (roster_source, title, owner_account_id) VALUES ('manual', 'My old class', ${account}) RETURNING id`
      yield* addDistrict("keep", dir.dir)
      yield* syncNow("keep")
      assert.strictEqual((yield* links("keep")).get("t-08")!.accountId, account)
      const [still] = yield* sql<{ readonly title: string; readonly ownerAccountId: number; readonly districtId: string | null }>`
        SELECT title, owner_account_id, district_id FROM classes WHERE id = ${own!.id}`
      assert.deepStrictEqual([still!.title, Number(still!.ownerAccountId), still!.districtId], ["My old class", account, null])
      dir.remove()
    }))

  it.effect("a district with more teachers than one statement's slice: each teacher gets exactly one token and one e-mail", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      writeSmallDistrict(dir.dir, "many.example")
      // 2,500 more teachers: three slices of activation e-mails (Activation.ts queues 1,000 a statement).
      const more = Array.from({ length: 2500 }, (_, i) => ({
        sourcedId: `tm-${i}`, enabledUser: "true", orgSourcedIds: "org-s1", role: "teacher",
        givenName: "Many", familyName: `Teacher ${i}`, email: `tm-${i}@many.example`
      }))
      writeCsv(dir.dir, "users", [...readRows(dir.dir, "users"), ...more])
      yield* addDistrict("many", dir.dir)
      const run = yield* syncNow("many")
      assert.strictEqual(run.status, "succeeded")
      const [counts] = yield* sql<{ readonly mails: number; readonly recipients: number; readonly tokens: number; readonly teachers: number }>`
        SELECT (SELECT count(*)::int FROM outbox WHERE district_id = 'many' AND kind = 'teacher_activation') AS mails,
               (SELECT count(DISTINCT recipient)::int FROM outbox WHERE district_id = 'many' AND kind = 'teacher_activation') AS recipients,
               (SELECT count(*)::int FROM activation_tokens t JOIN users u ON u.id = t.user_id WHERE u.district_id = 'many') AS tokens,
               (SELECT count(*)::int FROM users WHERE district_id = 'many' AND 'teacher' = ANY (roles)) AS teachers`
      assert.deepStrictEqual(counts, { mails: 2502, recipients: 2502, tokens: 2502, teachers: 2502 })
      dir.remove()
    }))

  it.effect("an address ten or more people share is masked: none of them is linked by it, reviewed for it, or sent mail at it", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dir = tempDir()
      generated(dir.dir, 200, "sharing")
      const teachers = readRows(dir.dir, "users").filter((u) => u["role"] === "teacher").map((u) => u["sourcedId"]!)
      // Ten of 216 users: the address is shared by many, the district's addresses are not masked.
      const sharing = new Set(teachers.slice(0, 10))
      writeCsv(dir.dir, "users", readRows(dir.dir, "users").map((u) => (sharing.has(u["sourcedId"]!) ? { ...u, email: "Office@sharing.example" } : u)))
      const office = yield* grassroots("ext-office", "office@sharing.example")
      yield* addDistrict("sharing", dir.dir)
      yield* syncNow("sharing")
      const stored = yield* links("sharing")
      for (const id of sharing) assert.notStrictEqual(stored.get(id)!.accountId, office, `${id} is not linked to the address's account`)
      assert.deepStrictEqual((yield* reviews("sharing")).filter((r) => sharing.has(r.sourceId)), [])
      assert.notInclude((yield* activationMails("sharing")).map((m) => m.recipient.toLowerCase()), "office@sharing.example")
      // The others link as usual.
      assert.isNotNull(stored.get(teachers[10]!)!.accountId)
      const [masked] = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM findings WHERE district_id = 'sharing' AND code = 'masked_pii'`
      assert.strictEqual(masked!.n, 0)
      dir.remove()
    }))

  it.effect("an account known by a person's source ID but linked to another active person goes to review; one not linked is linked", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // District "known": its t-01 links by e-mail to an account that also carries t-02's source ID of district "conflict".
      const known = tempDir()
      writeRulesDistrict(known.dir, { emailDomain: "known.example" })
      const held = yield* grassroots("ext-held", "t-01@known.example")
      yield* addDistrict("known", known.dir)
      yield* syncNow("known")
      assert.strictEqual((yield* links("known")).get("t-01")!.accountId, held)
      const free = yield* grassroots("ext-free")
      yield* sql`INSERT INTO account_identities (account_id, provider, kind, subject, added_by) VALUES
                 (${held}, 'oneroster', 'login', 'x-t-02', 'import'), (${free}, 'oneroster', 'login', 'x-t-03', 'import')`
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { emailDomain: "conflict.example" })
      writeCsv(dir.dir, "users", readRows(dir.dir, "users").map((u) => ({ ...u, sourcedId: `x-${u["sourcedId"]}` })))
      writeCsv(dir.dir, "enrollments", readRows(dir.dir, "enrollments").map((e) => ({ ...e, userSourcedId: `x-${e["userSourcedId"]}` })))
      yield* addDistrict("conflict", dir.dir)
      yield* syncNow("conflict")
      const stored = yield* links("conflict")
      assert.isNull(stored.get("x-t-02")!.accountId)
      assert.deepStrictEqual((yield* reviews("conflict")).map((r) => [r.sourceId, r.reason, r.candidates]), [["x-t-02", "identity_conflict", [String(held)]]])
      assert.deepInclude(stored.get("x-t-03"), { accountId: free, method: "identity" })
      known.remove()
      dir.remove()
    }))
})
