import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import pg from "pg"
import { Reminders } from "../../src/Accounts/Reminders.ts"
import { Admins } from "../../src/Admins/Admins.ts"
import type { InviteInput } from "../../src/Admins/Model.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { TestDatabaseUrl } from "../support/Database.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { PROVIDERS, rosteredUser, serveEachProvider, type ServedDistrict } from "../Accounts/providers.ts"
import { AdminsTestLayer, invitationToken } from "./support.ts"

/**
 * `rosterd_confirm_admin` for a person whose rostered account is still pending (issue 15):
 * the invited address is a pending teacher's district address, so the invitation proves it
 * as the activation e-mail would — the pending account is activated and holds the admin's
 * rights, instead of a second account on the same address. Through real syncs in each
 * provider, confirmed as the platform's role (the function is SECURITY DEFINER). With
 * "log into my existing account" the teacher's links follow to the chosen account. Where the
 * address is not one pending account's (two of them, a former address, none), a new account
 * is made as before.
 */

const TestLayer = Reminders.Default.pipe(Layer.provideMerge(AdminsTestLayer))

const invite = (district: string, email: string): InviteInput => ({
  districtId: district, name: "Invited", email, permission: "view", canManageAdmins: false,
  role: "school", regionId: null, allSchools: true, schools: []
})

const accountsWithAddress = (emailKey: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ readonly id: number }>`
      SELECT DISTINCT a.id::int FROM accounts a JOIN account_emails e ON e.account_id = a.id
      WHERE e.email_key = ${emailKey} AND a.state <> 'merged' ORDER BY 1`, (rows) => rows.map((r) => r.id)))

const activationState = (userId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ readonly tokens: ReadonlyArray<string | null>; readonly messages: ReadonlyArray<string>; readonly sealed: number }>`
      SELECT array_agg(coalesce(t.revoked_reason, '-') ORDER BY t.id) AS tokens,
             array_agg(o.state ORDER BY t.id) AS messages,
             count(*) FILTER (WHERE o.link_ciphertext IS NOT NULL)::int AS sealed
      FROM activation_tokens t JOIN outbox o ON o.idempotency_key = 'teacher-activation:' || t.id
      WHERE t.user_id = ${userId}`, (rows) => rows[0]!))

layer(TestLayer, { timeout: "180 seconds", excludeTestServices: true })("confirming an invitation as a pending teacher", (it) => {
  const work = tempDir("rosterd-confirm-pending-")
  let served: Record<(typeof PROVIDERS)[number], ServedDistrict>

  it.scoped("in each provider: the pending account is activated and holds the rights; no second account; her activation link stops", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const reminders = yield* Reminders
      const db = yield* TestDatabaseUrl
      served = yield* serveEachProvider(work.dir, "cp", writeSmallDistrict)
      const platform = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const client = new pg.Client({ connectionString: db.platformUrl })
          await client.connect()
          return client
        }),
        (client) => Effect.promise(() => client.end())
      )
      for (const provider of PROVIDERS) {
        const d = served[provider]
        const tess = yield* rosteredUser(d, "t-1")
        assert.strictEqual(tess.activation, "pending")
        const address = `tess@${d.domain}`
        const invited = yield* admins.invite(invite(d.districtId, ` Tess@${d.domain.toUpperCase()}`), { by: "ops" })
        // The platform's confirmation page, as the platform's role.
        const token = yield* invitationToken(invited.adminId)
        const confirmed = (yield* Effect.promise(() =>
          platform.query(`SELECT admin_id::int AS "adminId", account_id::int AS "accountId", outcome FROM rosterd_confirm_admin($1)`, [token]))).rows[0]
        assert.deepStrictEqual(confirmed, { adminId: invited.adminId, accountId: tess.accountId, outcome: "activated" }, provider)

        assert.deepStrictEqual(yield* accountsWithAddress(address), [tess.accountId], `${provider}: a second account on the address`)
        const [account] = yield* sql<{ readonly state: string; readonly activated: boolean }>`
          SELECT state, activated_at IS NOT NULL AS activated FROM accounts WHERE id = ${tess.accountId}`
        assert.deepStrictEqual(account, { state: "active", activated: true })
        const [link] = yield* sql<{ readonly activation: string; readonly confirmed: boolean }>`
          SELECT activation, confirmed_at IS NOT NULL AS confirmed FROM account_links WHERE user_id = ${tess.id}`
        assert.deepStrictEqual(link, { activation: "active", confirmed: true })
        assert.deepStrictEqual(yield* activationState(tess.id), { tokens: ["admin_invitation"], messages: ["cancelled"], sealed: 0 })
        const rights = yield* sql<{ readonly source: string }>`
          SELECT roster_source AS source FROM admin_rights WHERE account_id = ${tess.accountId} ORDER BY 1`
        assert.deepStrictEqual(rights.map((r) => r.source), ["in-product"])
        const [audit] = yield* sql<{ readonly details: Record<string, unknown> }>`
          SELECT details FROM audit_log WHERE action = 'admin.confirm' AND subject = ${`admin ${invited.adminId}`}`
        assert.deepInclude(audit!.details, { accountId: tess.accountId, outcome: "activated", pendingAccount: tess.accountId })
        assert.deepStrictEqual((yield* reminders.pending(d.districtId)).map((p) => p.sourceId), [d.userSourceId("t-2")])

        // The next sync keeps it: no new account, no new activation e-mail.
        assert.strictEqual((yield* Effect.flatMap(Sync, (s) => s.run(d.districtId, { request: "full", trigger: "test" }))).status, "succeeded")
        assert.deepStrictEqual(yield* rosteredUser(d, "t-1"), { id: tess.id, accountId: tess.accountId, activation: "active" })
        assert.deepStrictEqual(yield* activationState(tess.id), { tokens: ["admin_invitation"], messages: ["cancelled"], sealed: 0 })
      }
    }))

  it.effect("with \"log into my existing account\": the pending teacher's link moves to the chosen account, the pending one is merged into it", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const d = served["oneroster-csv"]
      const theo = yield* rosteredUser(d, "t-2")
      const [own] = yield* sql<{ readonly id: number }>`
        INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', 'g-theo', 'active') RETURNING id::int`
      const invited = yield* admins.invite(invite(d.districtId, `theo@${d.domain}`), { by: "ops" })
      const confirmed = yield* admins.confirm(yield* invitationToken(invited.adminId), Option.some(own!.id))
      assert.deepStrictEqual(confirmed, { adminId: invited.adminId, accountId: own!.id, outcome: "linked" })
      assert.deepStrictEqual(yield* rosteredUser(d, "t-2"), { id: theo.id, accountId: own!.id, activation: "active" })
      const [pending] = yield* sql<{ readonly state: string; readonly mergedInto: number; readonly merged: boolean; readonly addresses: number }>`
        SELECT state, merged_into::int, merged_at IS NOT NULL AS merged,
               (SELECT count(*)::int FROM account_emails WHERE account_id = a.id) AS addresses
        FROM accounts a WHERE id = ${theo.accountId!}`
      assert.deepStrictEqual(pending, { state: "merged", mergedInto: own!.id, merged: true, addresses: 0 })
      assert.deepStrictEqual(yield* accountsWithAddress(`theo@${d.domain}`), [own!.id])
      const [method] = yield* sql<{ readonly method: string }>`SELECT method FROM account_links WHERE user_id = ${theo.id}`
      assert.strictEqual(method!.method, "confirmed")
      assert.deepStrictEqual((yield* activationState(theo.id)).sealed, 0)
    }))

  it.effect("a chosen account that is another active person's: the admin gets it, the pending teacher keeps waiting on her own", () =>
    Effect.gen(function*() {
      const admins = yield* Admins
      const d = served.clever
      const theo = yield* rosteredUser(d, "t-2")
      const sam = yield* rosteredUser(d, "s-1")
      const invited = yield* admins.invite(invite(d.districtId, `theo@${d.domain}`), { by: "ops" })
      const confirmed = yield* admins.confirm(yield* invitationToken(invited.adminId), Option.some(sam.accountId!))
      assert.deepStrictEqual(confirmed.outcome, "linked")
      assert.deepStrictEqual(yield* rosteredUser(d, "t-2"), theo)
      assert.deepStrictEqual((yield* activationState(theo.id)).tokens, ["-"])
    }))

  it.effect("not one pending account's address (two of them, or a former address): a new account, as before", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const d = served["oneroster-rest"]
      const theo = yield* rosteredUser(d, "t-2")
      // A second pending account with Theo's address (an operator's review create elsewhere).
      const [twin] = yield* sql<{ readonly id: number }>`
        INSERT INTO accounts (origin, state) VALUES ('district', 'pending') RETURNING id::int`
      yield* sql`INSERT INTO account_emails (account_id, email, email_key, added_by) VALUES (${twin!.id}, ${`theo@${d.domain}`}, ${`theo@${d.domain}`}, 'sync')`
      const both = yield* admins.invite(invite(d.districtId, `theo@${d.domain}`), { by: "ops" })
      const created = yield* admins.confirm(yield* invitationToken(both.adminId))
      assert.strictEqual(created.outcome, "created")
      assert.notInclude([theo.accountId, twin!.id], created.accountId)
      assert.deepStrictEqual(yield* rosteredUser(d, "t-2"), theo)

      // An address that is a former one of a pending account (a district address that changed) may be someone else's now.
      const clever = served.clever
      const theoClever = yield* rosteredUser(clever, "t-2")
      assert.strictEqual(theoClever.activation, "pending")
      yield* sql`UPDATE account_emails SET former_at = now() WHERE account_id = ${theoClever.accountId!}`
      const former = yield* admins.invite(invite(d.districtId, `theo@${clever.domain}`), { by: "ops" })
      const fresh = yield* admins.confirm(yield* invitationToken(former.adminId))
      assert.strictEqual(fresh.outcome, "created")
      assert.deepStrictEqual(yield* rosteredUser(clever, "t-2"), theoClever)
    }))
})
