import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import * as NodePath from "node:path"
import { randomBytes } from "node:crypto"
import pg from "pg"
import { Accounts } from "../../src/Accounts/Accounts.ts"
import { Merge } from "../../src/Accounts/Merge.ts"
import { Admins } from "../../src/Admins/Admins.ts"
import { Classes } from "../../src/Classes/Classes.ts"
import { LEASE_NAMESPACE } from "../../src/Reconcile/Lease.ts"
import { rosterFingerprint, TestDatabaseUrl } from "../support/Database.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { addDistrict, invitationToken } from "../Admins/support.ts"
import { AccountsTestLayer, latestToken, openReview, syncNow } from "./support.ts"

/**
 * `rosterd accounts merge` against a real database, on districts built by real syncs: what
 * moves (links, addresses, identities, teacher-made classes, memberships, admin rights,
 * review candidates, earlier merges), what the merged account keeps (its row, pointing to
 * the survivor), activation either way (an account in use makes waiting teachers active; two
 * pending accounts keep a link that works), refusals (same district, merged, self, a busy
 * lease) with nothing changed, and the link lock: only a merge, by rosterd's own role, moves
 * a link off an account in use; the platform cannot.
 */

const MergeTestLayer = Layer.mergeAll(Merge.Default, Classes.Default, Admins.Default).pipe(Layer.provideMerge(AccountsTestLayer))

/** A raw connection (a role's view, a competing session). */
const connect = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

const attempt = (client: pg.Client, statements: ReadonlyArray<string>) =>
  Effect.promise(async () => {
    try {
      await client.query("BEGIN")
      for (const statement of statements) await client.query(statement)
      await client.query("COMMIT")
      return { code: "ok", message: "" }
    } catch (error) {
      await client.query("ROLLBACK")
      const e = error as { code?: string; message?: string }
      return { code: e.code ?? "?", message: e.message ?? "" }
    }
  })

const grassroots = (externalId: string, emails: ReadonlyArray<string>, state: "active" | "pending" = "active") =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly id: number }>`
      INSERT INTO accounts (origin, external_id, state, display_name) VALUES ('grassroots', ${externalId}, ${state}, ${externalId}) RETURNING id`
    for (const email of emails) {
      yield* sql`INSERT INTO account_emails (account_id, email, email_key, added_by) VALUES (${row!.id}, ${email}, ${email.toLowerCase()}, 'import')`
    }
    return Number(row!.id)
  })

const linkOf = (district: string, sourceId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ readonly userId: number; readonly accountId: number; readonly activation: string }>`
      SELECT l.user_id::int, l.account_id::int, l.activation FROM users u JOIN account_links l ON l.user_id = u.id
      WHERE u.district_id = ${district} AND u.source_id = ${sourceId}`, (rows) => rows[0]!))

const accountRow = (id: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ readonly state: string; readonly mergedInto: number | null; readonly merged: boolean; readonly addresses: ReadonlyArray<string> }>`
      SELECT a.state, a.merged_into::int, a.merged_at IS NOT NULL AS merged,
             coalesce((SELECT array_agg(e.email_key ORDER BY e.email_key) FROM account_emails e WHERE e.account_id = a.id), '{}') AS addresses
      FROM accounts a WHERE a.id = ${id}`, (rows) => rows[0]!))

layer(MergeTestLayer, { timeout: "180 seconds", excludeTestServices: true })("account merges", (it) => {
  const work = tempDir("rosterd-merge-")
  const dirs = { m: NodePath.join(work.dir, "m"), n: NodePath.join(work.dir, "n") }
  writeSmallDistrict(dirs.m, "m.example")
  // The same teachers in a second district, with the same addresses: each a pending account of its own there.
  writeSmallDistrict(dirs.n, "n.example")

  it.effect("a district's pending account into the grassroots account the teacher uses: everything moves, the teacher is active", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const merge = yield* Merge
      const classes = yield* Classes
      const admins = yield* Admins
      yield* addDistrict("m", dirs.m)
      assert.strictEqual((yield* syncNow("m")).status, "succeeded")
      const tess = yield* linkOf("m", "t-1")
      assert.strictEqual(tess.activation, "pending")
      const pendingAccount = tess.accountId
      const [firstMail] = yield* sql<{ readonly key: string }>`
        SELECT idempotency_key AS key FROM outbox WHERE idempotency_key = ${`teacher-activation:${(yield* sql<{ readonly id: number }>`SELECT max(id)::int AS id FROM activation_tokens WHERE user_id = ${tess.userId}`)[0]!.id}`}`
      assert.isDefined(firstMail)

      // Tess's own account on the platform: an address, a Clever identity, a class with a synced and a non-district student, admin rights.
      const own = yield* grassroots("g-tess", ["tess@home.example"])
      yield* sql`INSERT INTO account_identities (account_id, provider, kind, subject, added_by) VALUES (${own}, 'clever', 'source_id', 'clever-tess', 'import')`
      const club = yield* classes.create(own, "Chess club")
      const s1 = yield* linkOf("m", "s-1")
      yield* classes.addStudent(club, s1.userId)
      const portfolio = yield* grassroots("g-portfolio-kid", ["kid@home.example"])
      yield* classes.addStudent(club, { accountId: portfolio })
      const invited = yield* admins.invite({
        districtId: "m", name: "Tess", email: "tess.admin@m.example", permission: "view", canManageAdmins: false,
        role: "school", regionId: null, allSchools: true, schools: []
      }, { by: "ops" })
      yield* admins.confirm(yield* invitationToken(invited.adminId), Option.some(own))
      // The pending account owns a class too (the platform let Tess start one before she confirmed).
      const early = yield* classes.create(pendingAccount, "Early class")
      // An open review names the pending account as a candidate.
      const stranger = yield* linkOf("m", "t-2")
      const reviewId = yield* openReview("m", stranger.userId, "several_accounts", [pendingAccount, own])

      const outcome = yield* merge.merge(pendingAccount, own, { by: "ops-mia", reason: "same teacher (ticket 42)" })
      assert.deepStrictEqual(outcome, {
        from: pendingAccount,
        into: own,
        state: "active",
        moved: { links: 1, addresses: 1, identities: 0, classes: 1, memberships: 0, admins: 0, reviews: 1, mergedAccounts: 0 },
        membershipsEnded: 0,
        activated: 1,
        pendingLinksKept: 0,
        districts: ["m"]
      })
      assert.deepStrictEqual(yield* linkOf("m", "t-1"), { userId: tess.userId, accountId: own, activation: "active" })
      assert.deepStrictEqual(yield* accountRow(pendingAccount), { state: "merged", mergedInto: own, merged: true, addresses: [] })
      assert.deepStrictEqual(yield* accountRow(own), { state: "active", mergedInto: null, merged: false, addresses: ["tess.admin@m.example", "tess@home.example", "tess@m.example"] })
      const [owners] = yield* sql<{ readonly club: number; readonly early: number }>`
        SELECT (SELECT owner_account_id::int FROM classes WHERE id = ${club}) AS club, (SELECT owner_account_id::int FROM classes WHERE id = ${early}) AS early`
      assert.deepStrictEqual(owners, { club: own, early: own })
      // Nothing left to confirm: her activation link is dead and its unsent message cancelled, its seal gone.
      const tokens = yield* sql<{ readonly revoked: boolean }>`SELECT revoked_at IS NOT NULL AS revoked FROM activation_tokens WHERE user_id = ${tess.userId}`
      assert.deepStrictEqual(tokens.map((t) => t.revoked), [true])
      const [message] = yield* sql<{ readonly state: string; readonly sealed: boolean }>`
        SELECT state, link_ciphertext IS NOT NULL AS sealed FROM outbox WHERE idempotency_key = ${firstMail!.key}`
      assert.deepStrictEqual(message, { state: "cancelled", sealed: false })
      const [review] = yield* sql<{ readonly candidates: ReadonlyArray<string> }>`
        SELECT candidate_account_ids AS candidates FROM account_reviews WHERE id = ${reviewId}`
      assert.deepStrictEqual(review!.candidates.map(Number), [own])
      const [audit] = yield* sql<{ readonly actor: string; readonly subject: string; readonly reason: string; readonly details: Record<string, unknown> }>`
        SELECT actor, subject, reason, details FROM audit_log WHERE action = 'account.merge' ORDER BY id DESC LIMIT 1`
      assert.deepStrictEqual([audit!.actor, audit!.subject, audit!.reason], ["ops-mia", `account ${pendingAccount}`, "same teacher (ticket 42)"])
      assert.deepInclude(audit!.details, { into: own, state: "active", users: [tess.userId], districts: ["m"] })
      assert.notInclude(JSON.stringify(audit), "@")

      // The next sync leaves it as it is (the link is permanent, the address is on the survivor).
      assert.strictEqual((yield* syncNow("m")).status, "succeeded")
      assert.deepStrictEqual(yield* linkOf("m", "t-1"), { userId: tess.userId, accountId: own, activation: "active" })
      const [{ n: created }] = (yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM accounts a JOIN account_emails e ON e.account_id = a.id
        WHERE e.email_key = 'tess@m.example' AND a.state <> 'merged'`) as unknown as [{ n: number }]
      assert.strictEqual(created, 1)
    }))

  it.effect("the other way round: a grassroots account into a pending one; identities, admin rights and earlier merges follow", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const merge = yield* Merge
      const admins = yield* Admins
      const theo = yield* linkOf("m", "t-2")
      assert.strictEqual(theo.activation, "pending")
      // His own account has his district address too (another case), an identity, admin rights, and an older account merged into it.
      const own = yield* grassroots("g-theo", ["theo@home.example", "THEO@m.example"])
      yield* sql`INSERT INTO account_identities (account_id, provider, kind, subject, added_by) VALUES (${own}, 'oneroster', 'login', 'theo-cl', 'import')`
      const older = yield* grassroots("g-theo-old", ["theo@old.example"])
      const first = yield* merge.merge(older, own, { by: "ops", reason: null })
      assert.deepStrictEqual([first.state, first.moved.addresses, first.districts], ["active", 1, []])
      const invited = yield* admins.invite({
        districtId: "m", name: "Theo", email: "theo.admin@m.example", permission: "manage", canManageAdmins: false,
        role: "school", regionId: null, allSchools: false, schools: ["org-s1"]
      }, { by: "ops" })
      yield* admins.confirm(yield* invitationToken(invited.adminId), Option.some(own))

      const outcome = yield* merge.merge(own, theo.accountId, { by: "ops", reason: null })
      assert.deepStrictEqual(outcome, {
        from: own,
        into: theo.accountId,
        state: "active",
        moved: { links: 0, addresses: 3, identities: 1, classes: 0, memberships: 0, admins: 1, reviews: 0, mergedAccounts: 1 },
        membershipsEnded: 0,
        activated: 1,
        pendingLinksKept: 0,
        districts: ["m"]
      })
      assert.deepStrictEqual(yield* linkOf("m", "t-2"), { userId: theo.userId, accountId: theo.accountId, activation: "active" })
      assert.deepStrictEqual(yield* accountRow(theo.accountId), {
        state: "active", mergedInto: null, merged: false,
        addresses: ["theo.admin@m.example", "theo@home.example", "theo@m.example", "theo@old.example"]
      })
      assert.deepStrictEqual(yield* accountRow(older), { state: "merged", mergedInto: theo.accountId, merged: true, addresses: [] })
      const [moved] = yield* sql<{ readonly identity: number; readonly admin: number }>`
        SELECT (SELECT account_id::int FROM account_identities WHERE subject = 'theo-cl') AS identity,
               (SELECT account_id::int FROM admins WHERE id = ${invited.adminId}) AS admin`
      assert.deepStrictEqual(moved, { identity: theo.accountId, admin: theo.accountId })
      // The platform's view of rights follows: the survivor administers the district.
      const rights = yield* sql<{ readonly accountId: number }>`SELECT account_id::int FROM admin_rights WHERE admin_id = ${invited.adminId}`
      assert.deepStrictEqual(rights.map((r) => r.accountId), [theo.accountId])
    }))

  it.effect("memberships of teacher-made classes move; where both were members, the merged account's period ends", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const merge = yield* Merge
      const classes = yield* Classes
      const teacher = yield* grassroots("g-coach", ["coach@home.example"])
      const a = yield* grassroots("g-kid-a", ["kid.a@home.example"])
      const b = yield* grassroots("g-kid-b", ["kid.b@home.example"])
      const both = yield* classes.create(teacher, "Robotics")
      const onlyA = yield* classes.create(teacher, "Drama")
      yield* classes.addStudent(both, { accountId: a })
      yield* classes.addStudent(both, { accountId: b })
      yield* classes.addStudent(onlyA, { accountId: a })
      yield* classes.removeMember(onlyA, { accountId: a }, "student")
      yield* classes.addStudent(onlyA, { accountId: a })

      const outcome = yield* merge.merge(a, b, { by: "ops", reason: null })
      assert.deepStrictEqual([outcome.moved.memberships, outcome.membershipsEnded, outcome.state], [3, 1, "active"])
      const periods = yield* sql<{ readonly classId: number; readonly accountId: number; readonly open: boolean; readonly endReason: string | null }>`
        SELECT class_id::int, account_id::int, ended_at IS NULL AS open, end_reason FROM enrollments
        WHERE class_id IN (${both}, ${onlyA}) ORDER BY class_id, id`
      assert.deepStrictEqual(periods.map((p) => [p.classId, p.accountId, p.open, p.endReason]), [
        [both, b, false, "account_merged"],
        [both, b, true, null],
        [onlyA, b, false, "removed_in_product"],
        [onlyA, b, true, null]
      ])
    }))

  it.effect("two pending accounts (one teacher in two districts): the links wait on the survivor and each still confirms", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const merge = yield* Merge
      const accounts = yield* Accounts
      yield* addDistrict("n", dirs.n)
      assert.strictEqual((yield* syncNow("n")).status, "succeeded")
      const oDir = NodePath.join(work.dir, "o")
      writeSmallDistrict(oDir, "o.example")
      yield* addDistrict("o", oDir)
      assert.strictEqual((yield* syncNow("o")).status, "succeeded")
      const tessN = yield* linkOf("n", "t-1")
      const tessO = yield* linkOf("o", "t-1")
      const outcome = yield* merge.merge(tessN.accountId, tessO.accountId, { by: "ops", reason: null })
      assert.deepStrictEqual([outcome.state, outcome.moved.links, outcome.activated, outcome.pendingLinksKept, outcome.districts], [
        "pending", 1, 0, 1, ["n", "o"]
      ])
      assert.deepStrictEqual(yield* linkOf("n", "t-1"), { userId: tessN.userId, accountId: tessO.accountId, activation: "pending" })
      // The link e-mailed to her for district n still works, and activates the survivor.
      const confirmed = yield* accounts.confirm(yield* latestToken(tessN.userId), Option.none())
      assert.deepStrictEqual(confirmed, { userId: tessN.userId, accountId: tessO.accountId, outcome: "activated" })
      assert.strictEqual((yield* accountRow(tessO.accountId)).state, "active")
      assert.deepStrictEqual(yield* linkOf("o", "t-1"), { ...tessO, activation: "pending" })
      assert.deepStrictEqual((yield* accounts.confirm(yield* latestToken(tessO.userId), Option.none())).outcome, "activated")

      // Theo likewise; then "log into my existing account" with district o's link takes both links along.
      const theoN = yield* linkOf("n", "t-2")
      const theoO = yield* linkOf("o", "t-2")
      yield* merge.merge(theoN.accountId, theoO.accountId, { by: "ops", reason: null })
      const own = yield* grassroots("g-theo-2", ["theo2@home.example"])
      const linked = yield* accounts.confirm(yield* latestToken(theoO.userId), Option.some(own))
      assert.deepStrictEqual(linked, { userId: theoO.userId, accountId: own, outcome: "linked" })
      assert.deepStrictEqual(yield* linkOf("n", "t-2"), { userId: theoN.userId, accountId: own, activation: "pending" })
      assert.deepStrictEqual((yield* accountRow(theoO.accountId)).mergedInto, own)
      const [{ n: stranded }] = (yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM account_links l JOIN accounts a ON a.id = l.account_id WHERE a.state = 'merged'`) as unknown as [{ n: number }]
      assert.strictEqual(stranded, 0, "a link stayed on a merged account")
      assert.deepStrictEqual(yield* accounts.confirm(yield* latestToken(theoN.userId), Option.none()), {
        userId: theoN.userId, accountId: own, outcome: "activated"
      })
    }))

  it.scoped("refused, with nothing changed: two people of one district, itself, a merged or unknown account, a district being synced", () =>
    Effect.gen(function*() {
      const merge = yield* Merge
      const db = yield* TestDatabaseUrl
      const tess = yield* linkOf("n", "t-1")
      const sam = yield* linkOf("n", "s-1")
      const before = yield* rosterFingerprint
      const twoPeople = yield* Effect.flip(merge.merge(sam.accountId, tess.accountId, { by: "ops", reason: null }))
      assert.strictEqual(
        twoPeople.message,
        "merge refused: both accounts are linked to active rostered people of district n (s-1 and t-1): two people to the district, " +
          "or one person with two records the district must fix; nothing was changed"
      )
      assert.strictEqual((yield* Effect.flip(merge.merge(sam.accountId, sam.accountId, { by: "ops", reason: null })))._tag, "MergeRefused")
      const [{ id: merged }] = (yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ readonly id: number }>`SELECT id::int FROM accounts WHERE state = 'merged' ORDER BY id LIMIT 1`)) as unknown as [{ id: number }]
      const refused = yield* Effect.flip(merge.merge(merged, sam.accountId, { by: "ops", reason: null }))
      assert.strictEqual(refused._tag, "AccountMerged")
      assert.strictEqual((yield* Effect.flip(merge.merge(999_999, sam.accountId, { by: "ops", reason: null })))._tag, "AccountNotFound")

      // A sync of district n holds its lease (here: another session holding the same lock).
      const other = yield* connect(db.url)
      yield* Effect.promise(() => other.query(`SELECT pg_advisory_lock($1, hashtext('n'))`, [LEASE_NAMESPACE]))
      const sia = yield* linkOf("n", "s-2")
      const loose = yield* grassroots("g-loose", [])
      const busy = yield* Effect.flip(merge.merge(loose, sia.accountId, { by: "ops", reason: null }))
      assert.deepStrictEqual([busy._tag, (busy as { district?: string }).district], ["DistrictBusy", "n"])
      yield* Effect.promise(() => other.query(`SELECT pg_advisory_unlock($1, hashtext('n'))`, [LEASE_NAMESPACE]))
      const after = yield* rosterFingerprint
      assert.deepStrictEqual({ ...after, accounts: "-" }, { ...before, accounts: "-" })
    }))

  it.scoped("the link lock: only a merge, by rosterd's own role, moves a link off an account in use; the platform cannot, and sees merged_into", () =>
    Effect.gen(function*() {
      const db = yield* TestDatabaseUrl
      const app = yield* connect(db.url)
      const platform = yield* connect(db.platformUrl)
      const tess = yield* linkOf("m", "t-1")
      const other = yield* grassroots("g-target", [])

      const move = `UPDATE account_links SET account_id = ${other} WHERE user_id = ${tess.userId}`
      assert.deepInclude(yield* attempt(app, [move]), { code: "RSLCK" })
      assert.include((yield* attempt(app, [move])).message, "rosterd rule permanent_link")
      assert.deepInclude(yield* attempt(app, [`SELECT set_config('rosterd.writer', 'merge', true)`, move]), { code: "RSLCK" })

      // The platform has no right to write links or accounts at all…
      assert.deepInclude(yield* attempt(platform, [move]), { code: "42501" })
      assert.deepInclude(yield* attempt(platform, [`UPDATE accounts SET state = 'merged', merged_into = ${other} WHERE id = ${tess.accountId}`]), { code: "42501" })
      // …and reads where a merged account went.
      const { rows } = yield* Effect.promise(() =>
        platform.query(`SELECT merged_into::int AS "mergedInto" FROM accounts WHERE state = 'merged' AND external_id = 'g-theo-old'`))
      assert.deepStrictEqual(rows, [{ mergedInto: (yield* linkOf("m", "t-2")).accountId }])

      // A role with rights on both tables but not rosterd's (a legacy platform role) meets the role check.
      const superuser = yield* connect(db.superuserUrl)
      const name = `merger_${randomBytes(4).toString("hex")}`
      const password = randomBytes(12).toString("hex")
      yield* Effect.promise(() => superuser.query(`
        CREATE ROLE ${name} LOGIN PASSWORD '${password}';
        GRANT USAGE ON SCHEMA public TO ${name};
        GRANT SELECT, UPDATE ON accounts, account_links, users TO ${name};
        GRANT EXECUTE ON FUNCTION rosterd_writer_allowed(name), rosterd_refuse(text, text), rosterd_synced(roster_source) TO ${name};`))
      const url = new URL(db.superuserUrl)
      url.username = name
      url.password = password
      const intruder = yield* connect(url.toString())
      const markMerged = `UPDATE accounts SET state = 'merged', merged_into = ${other} WHERE id = ${tess.accountId}`
      const viaMerge = yield* attempt(intruder, [markMerged, `SELECT set_config('rosterd.writer', 'merge', true)`, move])
      assert.deepStrictEqual([viaMerge.code, /rosterd rule writer_role/.test(viaMerge.message)], ["RSLCK", true])
      const plain = yield* attempt(intruder, [markMerged, move])
      assert.deepStrictEqual([plain.code, /permanent_link/.test(plain.message)], ["RSLCK", true])
      assert.deepStrictEqual(yield* linkOf("m", "t-1"), tess)
    }))
})
