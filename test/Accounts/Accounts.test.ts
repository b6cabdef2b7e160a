import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as NodePath from "node:path"
import { Accounts } from "../../src/Accounts/Accounts.ts"
import { Reviews } from "../../src/Accounts/Reviews.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { accountIdOf, AccountsTestLayer, addCsvDistrict, insertRosteredUser, latestToken, openReview, syncNow, writeFile } from "./support.ts"

/**
 * Accounts in-process against a real database: the grassroots import, addresses, the review
 * queue's two resolutions, and activation through the database's own confirm function.
 * Rostered users come from a sync of the small district; the users the reviews are about
 * are added afterwards (as the sync would write them) so the sync's own linking has not
 * decided anything about them.
 */
layer(AccountsTestLayer, { timeout: "120 seconds", excludeTestServices: true })("accounts", (it) => {
  const work = tempDir()
  const small = NodePath.join(work.dir, "small")
  writeSmallDistrict(small)

  const counts = Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly accounts: number; readonly emails: number }>`
      SELECT (SELECT count(*)::int FROM accounts) AS accounts, (SELECT count(*)::int FROM account_emails) AS emails`
    return row!
  })

  const emailsOf = (accountId: number) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ readonly emailKey: string; readonly addedBy: string }>`
        SELECT email_key, added_by FROM account_emails WHERE account_id = ${accountId} ORDER BY email_key`)

  it.effect("import: one account per external_id with all its addresses; a re-import adds only what is missing", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const accounts = yield* Accounts
      const file = writeFile(
        work.dir,
        "accounts.csv",
        [
          "external_id,email,display_name",
          "g-1, Ann.Teacher@Home.example ,Ann",
          "g-1,ann@school.example,",
          "g-1,ANN@school.example,",
          "g-2,bob@home.example,Bob",
          "",
          "g-3,,Carol"
        ].join("\n") + "\n"
      )
      const first = yield* accounts.importCsv(file)
      assert.deepStrictEqual(first, { rows: 5, accounts: 3, accountsCreated: 3, addressesAdded: 3, identitiesAdded: 0 })
      const rows = yield* sql<{ readonly externalId: string; readonly origin: string; readonly state: string; readonly displayName: string | null }>`
        SELECT external_id, origin, state, display_name FROM accounts ORDER BY external_id`
      assert.deepStrictEqual(rows.map((r) => [r.externalId, r.origin, r.state, r.displayName]), [
        ["g-1", "grassroots", "active", "Ann"],
        ["g-2", "grassroots", "active", "Bob"],
        ["g-3", "grassroots", "active", "Carol"]
      ])
      const g1 = yield* accountIdOf("g-1")
      assert.deepStrictEqual(yield* emailsOf(g1), [
        { emailKey: "ann.teacher@home.example", addedBy: "import" },
        { emailKey: "ann@school.example", addedBy: "import" }
      ])

      const again = yield* accounts.importCsv(file)
      assert.deepStrictEqual(again, { rows: 5, accounts: 3, accountsCreated: 0, addressesAdded: 0, identitiesAdded: 0 })

      const more = writeFile(work.dir, "more.csv", "display_name,external_id,email\n,g-2,bob@work.example\n,g-4,dan@home.example\nBobby,g-2,bob@home.example\n")
      assert.deepStrictEqual(yield* accounts.importCsv(more), { rows: 3, accounts: 2, accountsCreated: 1, addressesAdded: 2, identitiesAdded: 0 })
      const [bob] = yield* sql<{ readonly displayName: string }>`SELECT display_name FROM accounts WHERE external_id = 'g-2'`
      assert.strictEqual(bob!.displayName, "Bob") // an existing account is reused as it is
      assert.deepStrictEqual(yield* counts, { accounts: 4, emails: 5 })
    }))

  it.effect("import: a bad row fails the whole import naming file and line; nothing is written", () =>
    Effect.gen(function*() {
      const accounts = yield* Accounts
      const before = yield* counts
      const missingId = writeFile(work.dir, "missing-id.csv", "external_id,email\ng-10,new@home.example\n   ,orphan@home.example\n")
      const error = yield* Effect.flip(accounts.importCsv(missingId))
      assert.strictEqual(error._tag, "AccountsImportError")
      assert.strictEqual(error.message, `${missingId} line 3: external_id is empty; nothing was imported`)

      const badAddress = writeFile(work.dir, "bad-address.csv", "external_id,email\ng-11,fine@home.example\ng-12,not an address\n")
      const bad = yield* Effect.flip(accounts.importCsv(badAddress))
      assert.strictEqual(bad.message, `${badAddress} line 3: the email is not a valid e-mail address; nothing was imported`)
      assert.notInclude(bad.message, "not an address")

      const noColumn = writeFile(work.dir, "no-column.csv", "External_ID,email\ng-13,x@home.example\n")
      assert.include((yield* Effect.flip(accounts.importCsv(noColumn))).message, "line 1: the header has no external_id column (found \"External_ID\"")

      const ragged = writeFile(work.dir, "ragged.csv", "external_id,email\ng-14,x@home.example,extra\n")
      assert.include((yield* Effect.flip(accounts.importCsv(ragged))).message, "line 2: 3 fields where the header has 2")

      const quote = writeFile(work.dir, "quote.csv", "external_id,email\ng-15,\"x@home.example\n")
      assert.include((yield* Effect.flip(accounts.importCsv(quote))).message, "not valid CSV")

      assert.include((yield* Effect.flip(accounts.importCsv(NodePath.join(work.dir, "absent.csv")))).message, "absent.csv: the file does not exist")
      assert.deepStrictEqual(yield* counts, before)
    }))

  it.effect("add-email: an operator adds an address; a repeat is a no-op; merged and unknown accounts are refused", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const accounts = yield* Accounts
      const g3 = yield* accountIdOf("g-3")
      assert.isTrue(yield* accounts.addEmail(g3, " Carol@School.example"))
      assert.isFalse(yield* accounts.addEmail(g3, "carol@school.example "))
      assert.deepStrictEqual(yield* emailsOf(g3), [{ emailKey: "carol@school.example", addedBy: "operator" }])

      const invalid = yield* Effect.flip(accounts.addEmail(g3, "carol at school"))
      assert.strictEqual(invalid._tag, "InvalidEmail")
      assert.notInclude(invalid.message, "carol")
      const unknown = yield* Effect.flip(accounts.addEmail(999_999, "x@home.example"))
      assert.strictEqual(unknown.message, "no account 999999")

      const [merged] = yield* sql<{ readonly id: number }>`
        INSERT INTO accounts (origin, state, merged_into) VALUES ('district', 'merged', ${g3}) RETURNING id`
      const refused = yield* Effect.flip(accounts.addEmail(merged!.id, "x@home.example"))
      assert.strictEqual(refused._tag, "AccountMerged")
      assert.strictEqual(refused.message, `account ${merged!.id} was merged into account ${g3}; use that account`)
    }))

  it.effect("review link: a teacher is linked to an existing account and active at once; the review is resolved", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const reviews = yield* Reviews
      yield* addCsvDistrict("small", small)
      const summary = yield* syncNow("small")
      assert.strictEqual(summary.status, "succeeded")

      const teacher = yield* insertRosteredUser({ district: "small", sourceId: "t-9", role: "teacher", email: "nine@small.example", classSourceId: "cls-1" })
      const g2 = yield* accountIdOf("g-2")
      const reviewId = yield* openReview("small", teacher, "several_accounts", [g2])
      const listed = yield* reviews.list(Option.some("small"))
      assert.deepStrictEqual(
        listed.filter((r) => r.id === reviewId).map((r) => [r.district, r.userId, r.sourceId, r.reason, r.candidateAccountIds]),
        [["small", teacher, "t-9", "several_accounts", [g2]]]
      )

      const outcome = yield* reviews.link(reviewId, g2, "ops-anna")
      assert.deepStrictEqual(outcome, { reviewId, userId: teacher, accountId: g2, activation: "active", movedFrom: null })
      const [link] = yield* sql<{ readonly accountId: number; readonly method: string; readonly activation: string; readonly activatedAt: Date | null }>`
        SELECT account_id, method, activation, activated_at FROM account_links WHERE user_id = ${teacher}`
      assert.deepStrictEqual([link!.accountId, link!.method, link!.activation], [g2, "review", "active"])
      assert.isNotNull(link!.activatedAt)
      const [review] = yield* sql<{ readonly state: string; readonly resolution: string; readonly resolvedBy: string; readonly resolvedAccountId: number; readonly resolvedAt: Date | null }>`
        SELECT state, resolution, resolved_by, resolved_account_id, resolved_at FROM account_reviews WHERE id = ${reviewId}`
      assert.deepStrictEqual([review!.state, review!.resolution, review!.resolvedBy, review!.resolvedAccountId], ["resolved", "linked", "ops-anna", g2])
      assert.isNotNull(review!.resolvedAt)
      assert.isFalse((yield* reviews.list(Option.none())).some((r) => r.id === reviewId))

      const again = yield* Effect.flip(reviews.link(reviewId, g2, "ops-anna"))
      assert.strictEqual(again.message, `account review ${reviewId} is already resolved (linked)`)
      assert.strictEqual((yield* Effect.flip(reviews.link(999_999, g2, "ops"))).message, "no account review 999999 (see `rosterd accounts review list`)")
      assert.strictEqual((yield* Effect.flip(reviews.list(Option.some("nope")))).message, `no district "nope" (see \`rosterd district list\`)`)
    }))

  it.effect("review link: students follow their enrollments; a taken or merged account is refused, nothing changes", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const reviews = yield* Reviews
      const g2 = yield* accountIdOf("g-2")
      const g3 = yield* accountIdOf("g-3")
      const loose = yield* insertRosteredUser({ district: "small", sourceId: "s-9", role: "student", email: "s9@small.example" })
      const looseReview = yield* openReview("small", loose, "email_shared")
      const enrolled = yield* insertRosteredUser({ district: "small", sourceId: "s-8", role: "student", email: null, classSourceId: "cls-2" })
      const enrolledReview = yield* openReview("small", enrolled, "email_linked_elsewhere")

      // g-2 is linked to the active teacher t-9 (previous test).
      const taken = yield* Effect.flip(reviews.link(looseReview, g2, "ops"))
      assert.strictEqual(taken._tag, "AccountTaken")
      assert.match(taken.message, new RegExp(`^account ${g2} is already linked to another active rostered user \\(\\d+\\)$`))
      const [merged] = yield* sql<{ readonly id: number }>`SELECT id FROM accounts WHERE state = 'merged' LIMIT 1`
      assert.strictEqual((yield* Effect.flip(reviews.link(looseReview, merged!.id, "ops")))._tag, "AccountMerged")
      assert.strictEqual((yield* Effect.flip(reviews.link(looseReview, 999_999, "ops")))._tag, "AccountNotFound")
      const [still] = yield* sql<{ readonly state: string; readonly links: number }>`
        SELECT state, (SELECT count(*)::int FROM account_links WHERE user_id = ${loose}) AS links FROM account_reviews WHERE id = ${looseReview}`
      assert.deepStrictEqual(still, { state: "open", links: 0 })

      assert.strictEqual((yield* reviews.link(looseReview, g3, "ops")).activation, "pending")
      const g4 = yield* accountIdOf("g-4")
      assert.strictEqual((yield* reviews.link(enrolledReview, g4, "ops")).activation, "active")
    }))

  it.effect("review create: a new district account with the district address; a teacher's activation e-mail is queued", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const reviews = yield* Reviews
      const teacher = yield* insertRosteredUser({ district: "small", sourceId: "t-8", role: "teacher", email: " Eight@Small.example", classSourceId: "cls-2" })
      const reviewId = yield* openReview("small", teacher, "email_shared")
      const outcome = yield* reviews.create(reviewId, "ops-ben")
      assert.deepStrictEqual(
        { ...outcome, accountId: 0 },
        { reviewId, userId: teacher, accountId: 0, accountState: "pending", activation: "pending", student: false, activationMails: 1 }
      )
      const [account] = yield* sql<{ readonly origin: string; readonly state: string; readonly districtId: string }>`
        SELECT origin, state, district_id FROM accounts WHERE id = ${outcome.accountId}`
      assert.deepStrictEqual(account, { origin: "district", state: "pending", districtId: "small" })
      assert.deepStrictEqual(yield* emailsOf(outcome.accountId), [{ emailKey: "eight@small.example", addedBy: "sync" }])
      const [link] = yield* sql<{ readonly method: string; readonly activation: string }>`
        SELECT method, activation FROM account_links WHERE user_id = ${teacher}`
      assert.deepStrictEqual(link, { method: "review", activation: "pending" })
      const mail = yield* sql<{ readonly recipient: string; readonly kind: string; readonly state: string }>`
        SELECT o.recipient, o.kind, o.state FROM outbox o JOIN activation_tokens t ON o.idempotency_key = 'teacher-activation:' || t.id
        WHERE t.user_id = ${teacher}`
      assert.deepStrictEqual(mail, [{ recipient: "Eight@Small.example", kind: "teacher_activation", state: "pending" }])
      const [review] = yield* sql<{ readonly resolution: string; readonly resolvedBy: string; readonly resolvedAccountId: number }>`
        SELECT resolution, resolved_by, resolved_account_id FROM account_reviews WHERE id = ${reviewId}`
      assert.deepStrictEqual(review, { resolution: "created", resolvedBy: "ops-ben", resolvedAccountId: outcome.accountId })

      const student = yield* insertRosteredUser({ district: "small", sourceId: "s-7", role: "student", email: "s7@small.example", classSourceId: "cls-1" })
      const studentOutcome = yield* reviews.create(yield* openReview("small", student), "ops-ben")
      assert.deepStrictEqual([studentOutcome.accountState, studentOutcome.activation, studentOutcome.activationMails], ["active", "active", 0])
      const [tokens] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM activation_tokens WHERE user_id = ${student}`
      assert.strictEqual(tokens!.n, 0)

      // A user linked meanwhile (t-9, linked above) cannot get a second account.
      const [t9] = yield* sql<{ readonly id: number }>`SELECT id FROM users WHERE source_id = 't-9'`
      const linked = yield* Effect.flip(reviews.create(yield* openReview("small", t9!.id), "ops"))
      assert.strictEqual(linked._tag, "AlreadyLinked")
    }))

  it.effect("confirm: a token activates once; used, unknown, replaced and expired tokens are refused (RSTOK)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const accounts = yield* Accounts
      const [t8] = yield* sql<{ readonly id: number; readonly accountId: number }>`
        SELECT u.id, l.account_id FROM users u JOIN account_links l ON l.user_id = u.id WHERE u.source_id = 't-8'`
      const token = yield* latestToken(t8!.id)
      const result = yield* accounts.confirm(token, Option.none())
      assert.deepStrictEqual(result, { userId: t8!.id, accountId: t8!.accountId, outcome: "activated" })
      const [state] = yield* sql<{ readonly account: string; readonly link: string; readonly used: boolean }>`
        SELECT a.state AS account, l.activation AS link,
               (SELECT bool_and(used_at IS NOT NULL) FROM activation_tokens WHERE user_id = ${t8!.id}) AS used
        FROM account_links l JOIN accounts a ON a.id = l.account_id WHERE l.user_id = ${t8!.id}`
      assert.deepStrictEqual(state, { account: "active", link: "active", used: true })

      const used = yield* Effect.flip(accounts.confirm(token, Option.none()))
      assert.strictEqual(used._tag, "ActivationRefused")
      assert.match(used.message, /^activation refused: activation token \d+ was already used$/)
      assert.notInclude(used.message, token)
      assert.strictEqual((yield* Effect.flip(accounts.confirm("f".repeat(64), Option.none()))).message, "activation refused: unknown activation token")

      // Resending replaces the earlier token.
      const t6 = yield* insertRosteredUser({ district: "small", sourceId: "t-6", role: "teacher", email: "six@small.example", classSourceId: "cls-1" })
      yield* Effect.flatMap(Reviews, (r) => Effect.flatMap(openReview("small", t6), (id) => r.create(id, "ops")))
      const first = yield* latestToken(t6)
      yield* accounts.resendActivation(t6)
      const second = yield* latestToken(t6)
      assert.notStrictEqual(first, second)
      assert.match((yield* Effect.flip(accounts.confirm(first, Option.none()))).message, /was replaced by a newer one$/)

      yield* sql`UPDATE activation_tokens SET expires_at = now() - interval '1 day' WHERE user_id = ${t6} AND used_at IS NULL AND revoked_at IS NULL`
      assert.match((yield* Effect.flip(accounts.confirm(second, Option.none()))).message, /^activation refused: activation token \d+ expired at /)

      // resend-activation refuses anyone but a pending teacher.
      assert.include((yield* Effect.flip(accounts.resendActivation(t8!.id))).message, "already active")
      const [s7] = yield* sql<{ readonly id: number }>`SELECT id FROM users WHERE source_id = 's-7'`
      assert.include((yield* Effect.flip(accounts.resendActivation(s7!.id))).message, "not a teacher")
      assert.strictEqual((yield* Effect.flip(accounts.resendActivation(999_999))).message, "no rostered user 999999")
    }))

  it.effect("confirm --link-account moves the link off the pending district account; the link is then permanent (RSLCK)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const accounts = yield* Accounts
      const reviews = yield* Reviews
      const [t6] = yield* sql<{ readonly id: number; readonly accountId: number }>`
        SELECT u.id, l.account_id FROM users u JOIN account_links l ON l.user_id = u.id WHERE u.source_id = 't-6'`
      yield* accounts.resendActivation(t6!.id)
      const token = yield* latestToken(t6!.id)
      const g1 = yield* accountIdOf("g-1")
      const g2 = yield* accountIdOf("g-2")

      // g-2 is in use by another active rostered user: refused (RSLNK), the token still works.
      const refused = yield* Effect.flip(accounts.confirm(token, Option.some(g2)))
      assert.strictEqual(refused._tag, "ActivationRefused")
      assert.strictEqual(refused.message, `cannot link: account ${g2} is already linked to another active rostered user`)

      const result = yield* accounts.confirm(token, Option.some(g1))
      assert.deepStrictEqual(result, { userId: t6!.id, accountId: g1, outcome: "linked" })
      const [old] = yield* sql<{ readonly state: string; readonly mergedInto: number }>`
        SELECT state, merged_into FROM accounts WHERE id = ${t6!.accountId}`
      assert.deepStrictEqual(old, { state: "merged", mergedInto: g1 })
      assert.deepStrictEqual(yield* emailsOf(t6!.accountId), [])
      assert.deepInclude(yield* emailsOf(g1), { emailKey: "six@small.example", addedBy: "confirm" })
      const [link] = yield* sql<{ readonly accountId: number; readonly method: string; readonly activation: string }>`
        SELECT account_id, method, activation FROM account_links WHERE user_id = ${t6!.id}`
      assert.deepStrictEqual(link, { accountId: g1, method: "confirmed", activation: "active" })

      // Permanent: neither moved nor deleted, by SQL or by a review.
      const code = (statement: Effect.Effect<unknown, unknown>) =>
        Effect.map(Effect.flip(statement), (e) => ((e as { cause?: { code?: string } }).cause?.code))
      assert.strictEqual(yield* code(sql`UPDATE account_links SET account_id = ${g2} WHERE user_id = ${t6!.id}`), "RSLCK")
      assert.strictEqual(yield* code(sql`DELETE FROM account_links WHERE user_id = ${t6!.id}`), "RSLCK")
      const [spare] = yield* sql<{ readonly id: number }>`INSERT INTO accounts (origin, external_id) VALUES ('grassroots', 'g-50') RETURNING id`
      const moved = yield* Effect.flip(reviews.link(yield* openReview("small", t6!.id), spare!.id, "ops"))
      assert.strictEqual(moved._tag, "Refused")
      assert.match(moved.message, new RegExp(`^refused: rosterd rule permanent_link: the link of user ${t6!.id} to account ${g1} is permanent$`))
      const [after] = yield* sql<{ readonly accountId: number }>`SELECT account_id FROM account_links WHERE user_id = ${t6!.id}`
      assert.strictEqual(after!.accountId, g1)
    }))

  it.effect("show: origin, state, how many addresses and the linked rostered users — never the addresses", () =>
    Effect.gen(function*() {
      const accounts = yield* Accounts
      const g1 = yield* accountIdOf("g-1")
      const shown = yield* accounts.show(g1)
      assert.deepStrictEqual([shown.origin, shown.state, shown.externalId, shown.addresses], ["grassroots", "active", "g-1", 3])
      assert.deepStrictEqual(
        shown.links.map((l) => [l.districtId, l.sourceId, l.method, l.activation]),
        [["small", "t-6", "confirmed", "active"]]
      )
      assert.notInclude(JSON.stringify(shown), "@")
      assert.strictEqual((yield* Effect.flip(accounts.show(999_999)))._tag, "AccountNotFound")
      work.remove()
    }))
})
