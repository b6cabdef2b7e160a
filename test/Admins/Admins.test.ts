import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import { latestToken } from "../Accounts/support.ts"
import { Admins } from "../../src/Admins/Admins.ts"
import type { InviteInput } from "../../src/Admins/Model.ts"
import { Partnerships } from "../../src/Admins/Partnerships.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { writeRulesDistrict } from "../support/RulesDistrict.ts"
import { addDistrict, AdminsTestLayer, adminsFingerprint, invitationToken, sqlState, userId } from "./support.ts"

/**
 * Administrators against a real Postgres: roster admins through real syncs (rule
 * `syncAdmins`), in-product admins invited, confirmed through the database function the
 * platform calls, resent, edited and removed with their permissions enforced, partnership
 * and region scopes, and a sync that never touches them.
 */

const syncNow = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "full", trigger: "test" }))

const operator = { by: "ops-test" }

const invite = (input: Partial<InviteInput> & Pick<InviteInput, "districtId" | "email">, who: { readonly by: string; readonly as?: number } = operator) =>
  Effect.flatMap(Admins, (admins) =>
    admins.invite({
      name: "Ada Admin",
      permission: "manage",
      canManageAdmins: false,
      role: "school",
      regionId: null,
      allSchools: false,
      schools: [],
      ...input
    }, who))

/** Invites and confirms (a new account); returns the admin id and its account. */
const confirmedAdmin = (input: Parameters<typeof invite>[0], who?: { readonly by: string; readonly as?: number }) =>
  Effect.gen(function*() {
    const invited = yield* invite(input, who)
    const token = yield* invitationToken(invited.adminId)
    const confirmed = yield* Effect.flatMap(Admins, (admins) => admins.confirm(token))
    return { id: invited.adminId, accountId: confirmed.accountId }
  })

const confirmSql = (token: string, linkAccount: number | null = null) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly adminId: number; readonly accountId: number; readonly outcome: string }>`
      SELECT * FROM rosterd_confirm_admin(${token}, ${linkAccount}::bigint)`)

const failureOf = <A, E extends { readonly _tag: string; readonly message: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (error) => ({ tag: error._tag, message: error.message }))

layer(AdminsTestLayer, { timeout: "180 seconds", excludeTestServices: true })("administrators", (it) => {
  it.effect("roster admins get accounts and links like teachers when syncAdmins is on; none when it is off", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const on = tempDir()
      const off = tempDir()
      writeRulesDistrict(on.dir, { emailDomain: "admins-on.example" })
      writeRulesDistrict(off.dir, { emailDomain: "admins-off.example" })
      yield* addDistrict("admins-on", on.dir)
      yield* addDistrict("admins-off", off.dir, { syncAdmins: false })
      yield* syncNow("admins-on")
      yield* syncNow("admins-off")

      const linkOf = (district: string, sourceId: string) =>
        sql<{ readonly method: string | null; readonly activation: string | null; readonly state: string | null }>`
          SELECT l.method, l.activation, a.state FROM users u
          LEFT JOIN account_links l ON l.user_id = u.id LEFT JOIN accounts a ON a.id = l.account_id
          WHERE u.district_id = ${district} AND u.source_id = ${sourceId}`.pipe(Effect.map((rows) => rows[0]!))
      const mailsTo = (address: string) =>
        sql<{ readonly kind: string }>`SELECT kind FROM outbox WHERE recipient = ${address}`.pipe(Effect.map((rows) => rows.map((r) => r.kind)))

      // On: a-1 (administrator of the district office, a department) is linked like a teacher: a new pending
      // district account, and the activation e-mail.
      assert.deepStrictEqual(yield* linkOf("admins-on", "a-1"), { method: "created", activation: "pending", state: "pending" })
      assert.deepStrictEqual(yield* mailsTo("a-1@admins-on.example"), ["teacher_activation"])
      const listedOn = yield* admins.list("admins-on")
      const a1 = listedOn.find((a) => a.kind === "roster" && a.rosterRecord?.sourceId === "a-1")
      assert.deepInclude(a1, {
        name: "Given a-1 Family a-1",
        email: "a-1@admins-on.example",
        schools: ["org-office"],
        allSchools: false,
        permission: "view",
        canManageAdmins: false,
        source: "CSV",
        invitation: "pending",
        districtOfficeOnly: true
      })
      // Confirming the activation e-mail gives the roster admin its rights.
      const [activated] = yield* sql<{ readonly accountId: number }>`
        SELECT * FROM rosterd_confirm_activation(${yield* latestToken(yield* userId("admins-on", "a-1"))})`
      const rights = yield* sql<{ readonly districtId: string; readonly permission: string; readonly rosterSource: string; readonly schoolSourceIds: Array<string> }>`
        SELECT district_id, permission, roster_source, school_source_ids FROM admin_rights WHERE account_id = ${activated!.accountId}`
      assert.deepStrictEqual(rights, [{ districtId: "admins-on", permission: "view", rosterSource: "csv", schoolSourceIds: ["org-office"] }])
      assert.strictEqual((yield* admins.list("admins-on")).find((a) => a.id === a1!.id)!.invitation, "confirmed")

      // Clever's staff (school admins) and district admins are roster admins too; a district admin
      // covers every school (test/Admins/AdminScope.test.ts has it through real syncs).
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`SELECT set_config('rosterd.writer', 'sync', true)`
        yield* sql`INSERT INTO users (district_id, source_id, roster_source, roles, email, org_source_ids)
                   VALUES ('admins-on', 'clever-staff', 'clever', '{staff}', 'staff@admins-on.example', '{org-s1}'),
                          ('admins-on', 'clever-da', 'clever', '{district_admin}', NULL, '{org-d}')`
      }))
      const clever = (yield* admins.list("admins-on")).filter((a) => a.source === "Clever")
      assert.deepStrictEqual(clever.map((a) => [a.rosterRecord!.sourceId, a.allSchools, a.schools, a.districtOfficeOnly, a.invitation]), [
        ["clever-da", true, [], false, "no account"],
        ["clever-staff", false, ["org-s1"], false, "no account"]
      ])

      // Off (Classkick): no account for a-1, no e-mail; teachers as before; no roster admins listed.
      assert.deepStrictEqual(yield* linkOf("admins-off", "a-1"), { method: null, activation: null, state: null })
      assert.deepStrictEqual(yield* mailsTo("a-1@admins-off.example"), [])
      assert.deepInclude(yield* linkOf("admins-off", "t-02"), { method: "created", activation: "pending" })
      assert.deepStrictEqual((yield* admins.list("admins-off")).filter((a) => a.kind === "roster"), [])
      // A second sync of each changes nothing about it.
      yield* syncNow("admins-off")
      assert.deepStrictEqual(yield* linkOf("admins-off", "a-1"), { method: null, activation: null, state: null })
      on.remove()
      off.remove()
    }))

  it.effect("invite: the e-mail in the outbox in the same transaction; confirming creates an account, or adds the address to an existing one", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { emailDomain: "invite.example" })
      yield* addDistrict("invite", dir.dir)
      yield* syncNow("invite")

      const ada = yield* invite({ districtId: "invite", name: "Ada Lovelace", email: "  Ada@Admins.Example ", allSchools: true, canManageAdmins: true })
      assert.deepInclude(ada, { districtId: "invite", permission: "manage", canManageAdmins: true, scope: { kind: "district", districtId: "invite" } })
      const [mail] = yield* sql<{ readonly kind: string; readonly recipient: string; readonly subject: string; readonly bodyText: string; readonly bodyHtml: string; readonly state: string; readonly districtId: string; readonly linkUrl: string }>`
        SELECT kind, recipient, subject, body_text, body_html, state, district_id, link_url FROM outbox
        WHERE idempotency_key LIKE 'admin-invitation:%' AND district_id = 'invite'`
      assert.deepInclude(mail, { kind: "admin_invitation", recipient: "Ada@Admins.Example", subject: "Action needed: confirm your administrator account", state: "pending" })
      assert.include(mail!.bodyText, "District invite has invited you to be an administrator")
      // The stored body is the template: the link (with its token) is put in only when the message is sent.
      assert.include(mail!.bodyHtml, "<a href=\"{link}\">")
      assert.strictEqual(mail!.linkUrl, "https://platform.invalid/admin-invitation?token={token}")
      for (const body of [mail!.bodyText, mail!.bodyHtml]) {
        assert.notInclude(body, "Ada")
        assert.notInclude(body, "Lovelace")
        assert.notInclude(body, "ops-test")
      }
      // Only the token's hash is stored (and the token sealed in the message, for the worker).
      const token = yield* invitationToken(ada.adminId)
      const [stored] = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM admin_tokens WHERE token_hash = sha256(convert_to(${token}, 'UTF8')) AND admin_id = ${ada.adminId}`
      assert.strictEqual(stored!.n, 1)

      const listed = (yield* admins.list("invite")).find((a) => a.kind === "in-product")!
      assert.deepInclude(listed, { id: ada.adminId, name: "Ada Lovelace", email: "Ada@Admins.Example", source: "in-product", invitation: "pending", stale: false, allSchools: true })

      // Confirm through the database function, as the platform does: a new account.
      const [confirmed] = yield* confirmSql(token)
      assert.deepInclude(confirmed, { adminId: ada.adminId, outcome: "created" })
      const [account] = yield* sql<{ readonly state: string; readonly origin: string; readonly emails: Array<string> }>`
        SELECT a.state, a.origin, array_agg(e.email_key) AS emails FROM accounts a JOIN account_emails e ON e.account_id = a.id
        WHERE a.id = ${confirmed!.accountId} GROUP BY a.id`
      assert.deepStrictEqual(account, { state: "active", origin: "district", emails: ["ada@admins.example"] })
      const [row] = yield* sql<{ readonly state: string; readonly accountId: number }>`SELECT state, account_id FROM admins WHERE id = ${ada.adminId}`
      assert.deepStrictEqual(row, { state: "active", accountId: confirmed!.accountId })
      const rights = yield* sql`SELECT district_id, all_schools, permission, can_manage_admins FROM admin_rights WHERE account_id = ${confirmed!.accountId}`
      assert.deepStrictEqual(rights, [{ districtId: "invite", allSchools: true, permission: "manage", canManageAdmins: true }])
      assert.strictEqual(yield* sqlState(confirmSql(token)), "RSTOK") // single use
      assert.strictEqual(yield* sqlState(confirmSql("0".repeat(64))), "RSTOK") // unknown
      assert.strictEqual((yield* admins.list("invite")).find((a) => a.id === ada.adminId)!.invitation, "confirmed")

      // "Log into my existing account": that account gains the address and the rights.
      const [grassroots] = yield* sql<{ readonly id: number }>`
        INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', 'g-bea', 'active') RETURNING id`
      yield* sql`INSERT INTO account_emails (account_id, email, email_key, added_by) VALUES (${grassroots!.id}, 'bea@home.example', 'bea@home.example', 'import')`
      const bea = yield* invite({ districtId: "invite", name: "Bea", email: "bea@work.example", schools: ["org-s1"], permission: "view" })
      // A pending account (a teacher who has not confirmed yet) cannot be chosen; a missing one neither.
      const pendingTeacher = yield* sql<{ readonly accountId: number }>`
        SELECT l.account_id FROM account_links l JOIN users u ON u.id = l.user_id WHERE u.district_id = 'invite' AND u.source_id = 't-02'`
      const beaToken = yield* invitationToken(bea.adminId)
      assert.deepStrictEqual(yield* failureOf(admins.confirm(beaToken, Option.some(pendingTeacher[0]!.accountId))), {
        tag: "InvitationRefused",
        message: `cannot use that account: account ${pendingTeacher[0]!.accountId} is not active yet (its owner has not confirmed it)`
      })
      assert.strictEqual(yield* sqlState(confirmSql(beaToken, 999_999)), "RSLNK")
      const linked = yield* admins.confirm(beaToken, Option.some(grassroots!.id))
      assert.deepStrictEqual(linked, { adminId: bea.adminId, accountId: grassroots!.id, outcome: "linked" })
      const emails = yield* sql<{ readonly emailKey: string; readonly addedBy: string }>`
        SELECT email_key, added_by FROM account_emails WHERE account_id = ${grassroots!.id} ORDER BY email_key`
      assert.deepStrictEqual(emails, [{ emailKey: "bea@home.example", addedBy: "import" }, { emailKey: "bea@work.example", addedBy: "confirm" }])
      assert.deepStrictEqual(
        yield* sql`SELECT district_id, school_source_ids, permission FROM admin_rights WHERE account_id = ${grassroots!.id}`,
        [{ districtId: "invite", schoolSourceIds: ["org-s1"], permission: "view" }]
      )

      // Audited, without names or addresses.
      const audit = yield* sql<{ readonly actor: string; readonly action: string; readonly subject: string; readonly details: unknown }>`
        SELECT actor, action, subject, details FROM audit_log WHERE district_id = 'invite' ORDER BY id`
      assert.deepStrictEqual(audit.map((a) => [a.actor, a.action, a.subject]), [
        ["ops-test", "admin.invite", `admin ${ada.adminId}`],
        [`admin:${ada.adminId}`, "admin.confirm", `admin ${ada.adminId}`],
        ["ops-test", "admin.invite", `admin ${bea.adminId}`],
        [`admin:${bea.adminId}`, "admin.confirm", `admin ${bea.adminId}`]
      ])
      assert.notMatch(JSON.stringify(audit), /@|Ada|Lovelace|Bea"/)
      dir.remove()
    }))

  it.effect("resend issues a new token and invalidates the old one (its unsent message cancelled); a new address is re-invited", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const dir = tempDir()
      writeSmallDistrict(dir.dir, "resend.example")
      yield* addDistrict("resend", dir.dir)
      yield* syncNow("resend")
      const { adminId } = yield* invite({ districtId: "resend", email: "cy@resend.example", schools: ["org-s1"] })
      const first = yield* invitationToken(adminId)
      yield* admins.resend(adminId, operator)
      const second = yield* invitationToken(adminId)
      assert.notStrictEqual(first, second)
      const states = yield* sql<{ readonly state: string }>`
        SELECT o.state FROM outbox o JOIN admin_tokens t ON o.idempotency_key = 'admin-invitation:' || t.id
        WHERE t.admin_id = ${adminId} ORDER BY t.id`
      assert.deepStrictEqual(states.map((s) => s.state), ["cancelled", "pending"])
      assert.deepStrictEqual(yield* failureOf(admins.confirm(first)), {
        tag: "InvitationRefused",
        message: `invitation refused: invitation token ${(yield* sql<{ readonly id: number }>`SELECT min(id) AS id FROM admin_tokens WHERE admin_id = ${adminId}`)[0]!.id} was replaced by a newer one`
      })

      // Editing the address of an invitation not yet confirmed: a new invitation goes there.
      const edited = yield* admins.edit(adminId, { email: "cyrus@resend.example", name: "Cyrus" }, operator)
      assert.deepStrictEqual(edited.changed, ["name", "email"])
      assert.isTrue(edited.reinvited)
      const third = yield* invitationToken(adminId)
      const [to] = yield* sql<{ readonly recipient: string }>`
        SELECT recipient FROM outbox WHERE idempotency_key = 'admin-invitation:' || (SELECT max(id) FROM admin_tokens WHERE admin_id = ${adminId})`
      assert.strictEqual(to!.recipient, "cyrus@resend.example")
      assert.strictEqual(yield* sqlState(confirmSql(second)), "RSTOK")
      yield* admins.confirm(third)
      // Confirmed: nothing to resend, and its address belongs to its account now.
      assert.strictEqual((yield* failureOf(admins.resend(adminId, operator))).tag, "AdminStateConflict")
      assert.strictEqual((yield* failureOf(admins.edit(adminId, { email: "c@resend.example" }, operator))).tag, "AdminStateConflict")
      const audit = yield* sql<{ readonly action: string; readonly details: { readonly changed?: Array<string> } }>`
        SELECT action, details FROM audit_log WHERE district_id = 'resend' AND action LIKE 'admin.%' ORDER BY id`
      assert.deepStrictEqual(audit.map((a) => a.action), ["admin.invite", "admin.resend", "admin.edit", "admin.confirm"])
      assert.deepStrictEqual(audit[2]!.details.changed, ["name", "email"])
      assert.notInclude(JSON.stringify(audit), "cyrus")
      dir.remove()
    }))

  it.effect("permissions: view cannot invite, manage without can-manage-admins cannot, a scoped admin not beyond its schools; an operator can", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { emailDomain: "perm.example" })
      yield* addDistrict("perm", dir.dir)
      yield* syncNow("perm")
      const boss = yield* confirmedAdmin({ districtId: "perm", email: "boss@perm.example", schools: ["org-s1"], canManageAdmins: true })
      const viewer = yield* confirmedAdmin({ districtId: "perm", email: "viewer@perm.example", schools: ["org-s1"], permission: "view" })
      const manager = yield* confirmedAdmin({ districtId: "perm", email: "manager@perm.example", allSchools: true })
      const invited = yield* invite({ districtId: "perm", email: "invited@perm.example", allSchools: true, canManageAdmins: true })

      const attempt = (as: number, input: Partial<InviteInput>) =>
        failureOf(invite({ districtId: "perm", email: "new@perm.example", schools: ["org-s1"], ...input }, { by: "ops-test", as }))
      assert.deepStrictEqual(yield* attempt(viewer.id, {}), {
        tag: "NotPermitted",
        message: `not permitted: admin ${viewer.id} may not invite administrators for school org-s1 of district perm: view permission sees dashboards only`
      })
      assert.include((yield* attempt(manager.id, {})).message, "it cannot manage administrators")
      assert.include((yield* attempt(invited.adminId, {})).message, "it has not confirmed its invitation")
      assert.include((yield* attempt(boss.id, { schools: ["org-d"] })).message, "its scope (school org-s1 of district perm) does not cover school org-d of district perm")
      assert.include((yield* attempt(boss.id, { schools: [], allSchools: true })).message, "does not cover all schools of district perm")
      assert.strictEqual((yield* attempt(9_999_999, {})).tag, "AdminNotFound")
      // Within its scope: allowed, recorded as invited by the admin.
      const helper = yield* invite({ districtId: "perm", email: "helper@perm.example", schools: ["org-s1"], permission: "view" }, { by: "ops-test", as: boss.id })
      const [by] = yield* sql<{ readonly invitedBy: string }>`SELECT invited_by FROM admins WHERE id = ${helper.adminId}`
      assert.strictEqual(by!.invitedBy, `admin:${boss.id}`)
      // Edit and remove: the target's current scope and the new one must both be covered.
      assert.strictEqual((yield* failureOf(admins.edit(manager.id, { permission: "view" }, { by: "x", as: boss.id }))).tag, "NotPermitted")
      assert.strictEqual((yield* failureOf(admins.edit(viewer.id, { allSchools: true }, { by: "x", as: boss.id }))).tag, "NotPermitted")
      const upgraded = yield* admins.edit(viewer.id, { permission: "manage", canManageAdmins: true }, { by: "x", as: boss.id })
      assert.deepStrictEqual(upgraded.changed, ["permission", "canManageAdmins"])
      assert.deepStrictEqual((yield* admins.edit(viewer.id, { canManageAdmins: false }, operator)).changed, ["canManageAdmins"])
      yield* admins.edit(viewer.id, { canManageAdmins: true }, operator)
      // Lowering to view drops managing admins (it needs manage).
      assert.deepStrictEqual((yield* admins.edit(viewer.id, { permission: "view" }, operator)).changed, ["permission", "canManageAdmins"])
      yield* admins.edit(viewer.id, { permission: "manage", canManageAdmins: true }, operator)
      assert.deepStrictEqual((yield* admins.edit(viewer.id, { permission: "manage" }, operator)).changed, [])
      assert.strictEqual((yield* failureOf(admins.remove(manager.id, { by: "x", as: boss.id }))).tag, "NotPermitted")
      assert.strictEqual((yield* failureOf(admins.resend(invited.adminId, { by: "x", as: boss.id }))).tag, "NotPermitted")
      yield* admins.remove(helper.adminId, { by: "x", as: boss.id }, "left the school")
      // The operator may do anything.
      yield* admins.remove(manager.id, operator)
      const after = yield* admins.list("perm", { all: true })
      assert.deepStrictEqual(
        after.filter((a) => a.kind === "in-product").map((a) => [a.id, a.invitation]),
        [[boss.id, "confirmed"], [viewer.id, "confirmed"], [manager.id, "removed"], [invited.adminId, "pending"], [helper.adminId, "removed"]]
      )
      assert.deepStrictEqual((yield* admins.list("perm")).filter((a) => a.kind === "in-product").map((a) => a.id), [boss.id, viewer.id, invited.adminId])
      // A removed admin's account loses the rights.
      assert.deepStrictEqual(yield* sql`SELECT 1 FROM admin_rights WHERE account_id = ${manager.accountId}`, [])

      // Bad requests, whoever asks.
      const bad = (input: Partial<InviteInput>) => failureOf(invite({ districtId: "perm", email: "bad@perm.example", ...input }))
      assert.deepStrictEqual(yield* bad({ schools: ["org-s1"], permission: "view", canManageAdmins: true }), {
        tag: "InvalidAdmin",
        message: "--can-manage-admins needs --permission manage"
      })
      assert.include((yield* bad({ schools: ["org-s1", "org-nope"] })).message, "district perm has no active school org-nope")
      assert.include((yield* bad({})).message, "give the schools")
      assert.include((yield* bad({ schools: ["org-s1"], allSchools: true })).message, "not both")
      assert.include((yield* bad({ email: "not-an-address", schools: ["org-s1"] })).message, "not a valid e-mail address")
      assert.include((yield* bad({ role: "partnership" })).message, "district perm is in no partnership")
      assert.deepStrictEqual(yield* failureOf(invite({ districtId: "perm", email: "BOSS@perm.example", schools: ["org-s1"] })), {
        tag: "AdminExists",
        message: `district perm already has admin ${boss.id} with this address: edit it instead (rosterd admin edit ${boss.id})`
      })
      assert.strictEqual((yield* failureOf(invite({ districtId: "nope", email: "x@perm.example", allSchools: true }))).tag, "DistrictNotFound")
      dir.remove()
    }))

  it.effect("a sync never changes or removes manual admins; a teacher who is also a manual admin loses only the teacher record", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const dir = tempDir()
      writeRulesDistrict(dir.dir, { emailDomain: "both.example" })
      yield* addDistrict("both", dir.dir)
      yield* syncNow("both")
      // t-01 confirms the teacher account, then is invited as an admin and confirms with it.
      const teacher = yield* userId("both", "t-01")
      const [teacherAccount] = yield* sql<{ readonly accountId: number }>`SELECT * FROM rosterd_confirm_activation(${yield* latestToken(teacher)})`
      const { adminId } = yield* invite({ districtId: "both", name: "Tess Teacher", email: "T-01@both.example", allSchools: true, permission: "view" })
      yield* admins.confirm(yield* invitationToken(adminId), Option.some(teacherAccount!.accountId))
      const other = yield* invite({ districtId: "both", email: "other@both.example", schools: ["org-s1"] })
      const listed = (yield* admins.list("both")).find((a) => a.id === adminId && a.kind === "in-product")!
      assert.deepStrictEqual(listed.rosterRecord, { userId: teacher, sourceId: "t-01", roles: ["teacher"], source: "CSV", active: true })

      // The sync's own transaction cannot write admins (the lock), and nobody deletes them.
      const asSync = (statement: string) =>
        sql.withTransaction(Effect.zipRight(sql`SELECT set_config('rosterd.writer', 'sync', true)`, sql.unsafe(statement)))
      assert.strictEqual(yield* sqlState(asSync(`UPDATE admins SET permission = 'manage'`)), "RSLCK")
      assert.strictEqual(yield* sqlState(asSync(`INSERT INTO admins (district_id, name, email, email_key, permission, all_schools, invited_by) VALUES ('both', 'x', 'x@x.example', 'x@x.example', 'view', true, 'sync')`)), "RSLCK")
      assert.strictEqual(yield* sqlState(sql`DELETE FROM admins WHERE id = ${other.adminId}`), "RSLCK")

      // t-01 leaves the roster (and its classes).
      const before = yield* adminsFingerprint
      writeCsv(dir.dir, "users", readRows(dir.dir, "users").filter((u) => u["sourcedId"] !== "t-01"))
      writeCsv(dir.dir, "enrollments", readRows(dir.dir, "enrollments").filter((e) => e["userSourcedId"] !== "t-01"))
      const run = yield* syncNow("both")
      assert.strictEqual(run.status, "succeeded")
      assert.strictEqual(run.counts.users.deactivated, 1)
      assert.deepStrictEqual(yield* adminsFingerprint, before)
      const [user] = yield* sql<{ readonly active: boolean; readonly linked: boolean }>`
        SELECT u.active, EXISTS (SELECT 1 FROM account_links l WHERE l.user_id = u.id) AS linked FROM users u WHERE u.id = ${teacher}`
      assert.deepStrictEqual(user, { active: false, linked: true })
      const after = (yield* admins.list("both")).find((a) => a.id === adminId && a.kind === "in-product")!
      assert.deepInclude(after, { invitation: "confirmed", permission: "view", allSchools: true })
      assert.deepStrictEqual(after.rosterRecord, { userId: teacher, sourceId: "t-01", roles: ["teacher"], source: "CSV", active: false })
      assert.deepStrictEqual(
        yield* sql`SELECT district_id, roster_source FROM admin_rights WHERE account_id = ${teacherAccount!.accountId}`,
        [{ districtId: "both", rosterSource: "in-product" }]
      )
      // Nor does the sync remove an admin nobody rostered.
      assert.strictEqual((yield* admins.list("both")).find((a) => a.id === other.adminId)!.invitation, "pending")
      dir.remove()
    }))

  it.effect("invitations not confirmed for longer than staleAfterDays are listed as stale; an expired link as expired", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const dir = tempDir()
      writeSmallDistrict(dir.dir, "stale.example")
      yield* addDistrict("stale", dir.dir)
      yield* syncNow("stale")
      const old = yield* invite({ districtId: "stale", email: "old@stale.example", allSchools: true })
      const fresh = yield* invite({ districtId: "stale", email: "fresh@stale.example", allSchools: true })
      const done = yield* confirmedAdmin({ districtId: "stale", email: "done@stale.example", allSchools: true })
      yield* sql`UPDATE admins SET invited_at = now() - interval '31 days' WHERE id IN (${old.adminId}, ${done.id})`
      yield* sql`UPDATE admin_tokens SET expires_at = now() - interval '17 days' WHERE admin_id = ${old.adminId}`
      assert.strictEqual(admins.staleAfterDays, 30)
      const listed = yield* admins.list("stale")
      assert.deepStrictEqual(listed.map((a) => [a.id, a.invitation, a.stale]), [
        [old.adminId, "expired", true],
        [fresh.adminId, "pending", false],
        [done.id, "confirmed", false]
      ])
      // Resending makes the link work again; the invitation stays stale until confirmed.
      yield* admins.resend(old.adminId, operator)
      assert.deepStrictEqual((yield* admins.list("stale")).filter((a) => a.id === old.adminId).map((a) => [a.invitation, a.stale]), [["pending", true]])
      dir.remove()
    }))

  it.effect("partnerships: partnership and region roles cover their districts; scoped admins act only there", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const admins = yield* Admins
      const partnerships = yield* Partnerships
      const dirs = ["p-north-1", "p-north-2", "p-south", "p-alone"].map((id) => ({ id, dir: tempDir() }))
      for (const { dir, id } of dirs) {
        writeSmallDistrict(dir.dir, `${id}.example`)
        yield* addDistrict(id, dir.dir)
        yield* syncNow(id)
      }
      yield* partnerships.add("state", "State Partnership", "ops-test")
      yield* partnerships.place("state", "p-north-1", { id: "north", name: "North" }, "ops-test")
      yield* partnerships.place("state", "p-north-2", { id: "north", name: "North" }, "ops-test")
      yield* partnerships.place("state", "p-south", { id: "south", name: "South" }, "ops-test")
      assert.deepStrictEqual(yield* partnerships.list(), [{
        id: "state",
        name: "State Partnership",
        regions: [{ id: "north", name: "North", districts: ["p-north-1", "p-north-2"] }, { id: "south", name: "South", districts: ["p-south"] }],
        districts: []
      }])
      assert.strictEqual((yield* failureOf(partnerships.add("state", "again", "ops-test"))).tag, "PartnershipError")

      const whole = yield* confirmedAdmin({ districtId: "p-north-1", email: "whole@state.example", role: "partnership", canManageAdmins: true })
      const north = yield* confirmedAdmin({ districtId: "p-north-1", email: "north@state.example", role: "region", regionId: "north", canManageAdmins: true })
      const ids = (district: string) => Effect.map(admins.list(district), (list) => list.filter((a) => a.kind === "in-product").map((a) => a.id))
      assert.deepStrictEqual(yield* ids("p-north-2"), [whole.id, north.id])
      assert.deepStrictEqual(yield* ids("p-south"), [whole.id])
      assert.deepStrictEqual(yield* ids("p-alone"), [])
      const rights = (accountId: number) =>
        Effect.map(sql<{ readonly districtId: string }>`SELECT district_id FROM admin_rights WHERE account_id = ${accountId} ORDER BY district_id`, (rows) => rows.map((r) => r.districtId))
      assert.deepStrictEqual(yield* rights(whole.accountId), ["p-north-1", "p-north-2", "p-south"])
      assert.deepStrictEqual(yield* rights(north.accountId), ["p-north-1", "p-north-2"])

      // The region admin: its region's districts, nothing beyond.
      const asNorth = { by: "ops-test", as: north.id }
      yield* invite({ districtId: "p-north-2", email: "school@north.example", allSchools: true }, asNorth)
      yield* invite({ districtId: "p-north-2", email: "region@north.example", role: "region", regionId: "north" }, asNorth)
      assert.include((yield* failureOf(invite({ districtId: "p-south", email: "s@south.example", allSchools: true }, asNorth))).message, "does not cover all schools of district p-south")
      assert.include((yield* failureOf(invite({ districtId: "p-south", email: "s@south.example", role: "region", regionId: "south" }, asNorth))).message, "does not cover region south of partnership state")
      assert.include((yield* failureOf(invite({ districtId: "p-north-1", email: "p@state.example", role: "partnership" }, asNorth))).message, "does not cover partnership state")
      assert.strictEqual((yield* failureOf(admins.remove(whole.id, asNorth))).tag, "NotPermitted")
      // The partnership admin: every district of the partnership, not one outside.
      const asWhole = { by: "ops-test", as: whole.id }
      yield* invite({ districtId: "p-south", email: "s@south.example", role: "region", regionId: "south" }, asWhole)
      yield* admins.edit(north.id, { role: "region", regionId: "south" }, asWhole)
      assert.deepStrictEqual(yield* rights(north.accountId), ["p-south"])
      assert.strictEqual((yield* failureOf(invite({ districtId: "p-alone", email: "a@alone.example", allSchools: true }, asWhole))).tag, "NotPermitted")

      // Roles need their partnership and region.
      const bad = (input: Partial<InviteInput>) => failureOf(invite({ districtId: "p-north-1", email: "bad@state.example", ...input }))
      assert.strictEqual((yield* bad({ role: "region" })).message, "a region role needs --region <id>")
      assert.strictEqual((yield* bad({ role: "region", regionId: "east" })).message, "partnership state has no region east")
      assert.strictEqual((yield* bad({ role: "school", regionId: "south", allSchools: true })).message, "district p-north-1 is not in region south")
      assert.include((yield* bad({ role: "region", regionId: "north", allSchools: true })).message, "--schools and --all-schools belong to the school role")
      yield* invite({ districtId: "p-north-1", email: "school@state.example", role: "school", regionId: "north", schools: ["org-s1"] })
      for (const { dir } of dirs) dir.remove()
    }))
})
