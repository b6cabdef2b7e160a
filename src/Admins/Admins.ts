import { SqlClient, type SqlError } from "@effect/sql"
import { Config, Effect, Option } from "effect"
import { isEmail } from "../Domain/Values.ts"
import { refusedAs } from "../Store/SqlErrors.ts"
import { Audit } from "../Audit/Audit.ts"
import { DistrictNotFound } from "../Domain/Errors.ts"
import { invitationMail } from "./InvitationMail.ts"
import { listAdmins } from "./AdminListing.ts"
import { AdminExists, AdminNotFound, AdminStateConflict, InvalidAdmin, InvitationRefused, NotPermitted, scopeOf } from "./Model.ts"
import type { AdminRow, EditChanges, EditOutcome, Grant, InviteInput, InviteOutcome, ScopeRequest, Who } from "./Model.ts"
import { loadGeography } from "./Partnerships.ts"
import type { Actor, AdminAction, Geography, Permission, Scope } from "./Permissions.ts"
import { authorize, describeScope } from "./Permissions.ts"
import { type LinkContext, newLinkToken, sealLink, tokenHash } from "../Secrets/Cipher.ts"
import { Secrets } from "../Secrets/Secrets.ts"

/**
 * Administrators (seeds 003, 004): in-product admins — invited, confirmed, edited, removed —
 * and the roster admins the sync brings (when the district's rule `syncAdmins` is on).
 *
 * - Every change is one transaction with its audit row; an invitation's e-mail is written to
 *   the outbox in the invite's (or resend's) transaction. The token is made in Node:
 *   `admin_tokens` keeps its SHA-256, the outbox row the message's template and the token
 *   sealed with the credentials key (as activations: src/Accounts/Activation.ts), rendered
 *   into the link when the message is sent and dropped once it is. Without a key (DATABASE_URL
 *   and no `rosterd.secrets.keyFile|keyEnv`) invite, resend and a new address fail, naming
 *   the setting.
 * - Who acts is an operator (`--by`, the default) or an admin (`--as <admin>`), whose
 *   permission and scope are enforced (Permissions.ts).
 * - Confirming is `rosterd_confirm_admin(token, link_account)` in the database
 *   (migrations/0004), called by the platform and by `rosterd admin confirm`.
 * - Nothing here logs or puts into an error or an audit row a name or an address: errors
 *   name admin ids, districts and school source IDs. Only `list` returns names and
 *   addresses — it is the operator's listing of administrators.
 *
 * Config (`rosterd.admins.*`): `invitationUrl` (the platform's confirmation page, `{token}`
 * replaced), `invitationTtlDays` (14), `staleAfterDays` (30: invited and not confirmed for
 * that long is listed as stale).
 */
// ---------------------------------------------------------------- the service

const adminsConfig = <A>(config: Config.Config<A>) => config.pipe(Config.nested("admins"), Config.nested("rosterd"))

const ADMIN_COLUMNS = `id, district_id, name, email, email_key, permission, can_manage_admins, role, partnership_id, region_id,
                       all_schools, school_source_ids AS schools, state, account_id`

/**
 * Invited admins whose newest invitation was withdrawn by the upgrade to sealed links
 * (migration 0009: its link had been stored in clear) and not sent again since: they need
 * `rosterd admin resend` (listed by `rosterd doctor`).
 */
export const withdrawnInvitations = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ readonly id: number }>`
    SELECT a.id FROM admins a
    WHERE a.state = 'invited'
      AND (SELECT t.revoked_reason FROM admin_tokens t WHERE t.admin_id = a.id ORDER BY t.id DESC LIMIT 1) = 'link_at_rest'
    ORDER BY a.id`.pipe(Effect.map((rows) => rows.map((r) => Number(r.id)))))

const normaliseSchools = (schools: ReadonlyArray<string>) => [...new Set(schools.map((s) => s.trim()).filter((s) => s.length > 0))].sort()

export class Admins extends Effect.Service<Admins>()("rosterd/Admins", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit
    const secrets = yield* Secrets
    const url = yield* adminsConfig(Config.string("invitationUrl")).pipe(
      Config.withDefault("https://platform.invalid/admin-invitation?token={token}")
    )
    const ttlDays = yield* adminsConfig(Config.integer("invitationTtlDays")).pipe(Config.withDefault(14))
    const staleAfterDays = yield* adminsConfig(Config.number("staleAfterDays")).pipe(Config.withDefault(30))
    const platform = yield* Config.string("platformName").pipe(Config.nested("accounts"), Config.nested("rosterd"), Config.withDefault("rosterd"))

    const districtNamed = (districtId: string) =>
      Effect.gen(function*() {
        const [district] = yield* sql<{ readonly id: string; readonly name: string }>`
          SELECT id, name FROM districts WHERE id = ${districtId} AND removed_at IS NULL`
        if (district === undefined) return yield* new DistrictNotFound({ district: districtId })
        return district
      })

    const lockAdmin = (adminId: number) =>
      Effect.gen(function*() {
        const [row] = yield* sql.unsafe<AdminRow>(`SELECT ${ADMIN_COLUMNS} FROM admins WHERE id = $1 FOR UPDATE`, [adminId])
        if (row === undefined) return yield* new AdminNotFound({ adminId })
        return row
      })

    /** The actor, and how the audit log and `invited_by` name it. */
    const resolveActor = (who: Who) =>
      Effect.gen(function*() {
        if (who.as === undefined) return { actor: { kind: "operator", name: who.by } as Actor, name: who.by, invitedBy: `operator:${who.by}` }
        const [row] = yield* sql.unsafe<AdminRow>(`SELECT ${ADMIN_COLUMNS} FROM admins WHERE id = $1`, [who.as])
        if (row === undefined) return yield* new AdminNotFound({ adminId: who.as })
        const actor: Actor = {
          kind: "admin",
          admin: { id: row.id, state: row.state, permission: row.permission, canManageAdmins: row.canManageAdmins, scope: scopeOf(row.districtId, row) }
        }
        return { actor, name: `admin:${row.id}`, invitedBy: `admin:${row.id}` }
      })

    const enforce = (actor: Actor, action: AdminAction, scopes: ReadonlyArray<Scope>, geography: Geography) => {
      const decision = authorize(actor, action, scopes, geography)
      return decision.allowed ? Effect.void : Effect.fail(new NotPermitted({ reason: decision.reason }))
    }

    /** Checks a requested scope against the district, its partnership and its schools; the grant to store. */
    const resolveGrant = (districtId: string, request: ScopeRequest, geography: Geography) =>
      Effect.gen(function*() {
        const invalid = (message: string) => new InvalidAdmin({ message })
        const place = geography.get(districtId)
        const schools = normaliseSchools(request.schools)
        if (request.role !== "school" && (request.allSchools || schools.length > 0)) {
          return yield* invalid(`--schools and --all-schools belong to the school role; a ${request.role} role covers every school of its ${request.role}`)
        }
        if (request.role !== "school" && place === undefined) {
          return yield* invalid(`district ${districtId} is in no partnership, so there is no ${request.role} role (see rosterd admin partnership)`)
        }
        if (request.role === "partnership") {
          if (request.regionId !== null) return yield* invalid("a partnership role covers every region: drop --region")
          return { role: "partnership", partnershipId: place!.partnershipId, regionId: null, allSchools: false, schools: [] } satisfies Grant
        }
        if (request.role === "region") {
          if (request.regionId === null) return yield* invalid("a region role needs --region <id>")
          const known = yield* sql`SELECT 1 FROM regions WHERE partnership_id = ${place!.partnershipId} AND id = ${request.regionId}`
          if (known.length === 0) return yield* invalid(`partnership ${place!.partnershipId} has no region ${request.regionId}`)
          return { role: "region", partnershipId: place!.partnershipId, regionId: request.regionId, allSchools: false, schools: [] } satisfies Grant
        }
        if (request.regionId !== null && place?.regionId !== request.regionId) {
          return yield* invalid(`district ${districtId} is not in region ${request.regionId}`)
        }
        if (request.allSchools === (schools.length > 0)) {
          return yield* invalid(request.allSchools ? "give --schools or --all-schools, not both" : "give the schools (--schools <id,id…>) or --all-schools")
        }
        if (schools.length > 0) {
          const found = yield* sql<{ readonly sourceId: string }>`
            SELECT source_id FROM schools WHERE district_id = ${districtId} AND active AND source_id = ANY (${schools}::text[])`
          const unknown = schools.filter((s) => !found.some((f) => f.sourceId === s))
          if (unknown.length > 0) return yield* invalid(`district ${districtId} has no active school ${unknown.join(", ")} (school source IDs, as the roster gives them)`)
        }
        return { role: "school", partnershipId: null, regionId: null, allSchools: request.allSchools, schools } satisfies Grant
      })

    /** Revokes the admin's unused tokens; their messages not sent yet are cancelled (they would carry dead links). */
    const revokeTokens = (adminId: number) =>
      sql`WITH revoked AS (
            UPDATE admin_tokens SET revoked_at = now() WHERE admin_id = ${adminId} AND used_at IS NULL AND revoked_at IS NULL
            RETURNING id)
          UPDATE outbox SET state = 'cancelled'
          WHERE state = 'pending' AND idempotency_key IN (SELECT 'admin-invitation:' || id FROM revoked)`

    /**
     * A new token and its e-mail in the outbox: the token sealed with the credentials key
     * (bound to this message, whose idempotency key names the token's id), its SHA-256 in
     * `admin_tokens`.
     */
    const issueInvitation = (admin: { readonly id: number; readonly districtId: string; readonly permission: Permission }, districtName: string) =>
      Effect.gen(function*() {
        const key = yield* secrets.sealingKey(`seal the invitation link of admin ${admin.id}`)
        const mail = invitationMail(platform, districtName, admin.permission, ttlDays)
        const token = newLinkToken()
        const [issued] = yield* sql<{ readonly tokenId: string; readonly expiresAt: Date; readonly recipient: string }>`
          WITH issued AS (
            INSERT INTO admin_tokens (admin_id, token_hash, expires_at)
            VALUES (${admin.id}, ${tokenHash(token)}, now() + make_interval(days => ${ttlDays}))
            RETURNING id, expires_at)
          SELECT i.id::text AS token_id, i.expires_at, btrim(a.email) AS recipient FROM issued i JOIN admins a ON a.id = ${admin.id}`
        const context: LinkContext = {
          kind: "admin_invitation",
          idempotencyKey: `admin-invitation:${issued!.tokenId}`,
          recipient: issued!.recipient,
          subject: mail.subject,
          bodyText: mail.text,
          bodyHtml: mail.html,
          linkUrl: url
        }
        const sealed = sealLink(key, context, token)
        yield* sql`
          INSERT INTO outbox (district_id, idempotency_key, kind, recipient, subject, body_text, body_html,
                              link_url, link_key_id, link_iv, link_ciphertext, link_auth_tag)
          VALUES (${admin.districtId}, ${context.idempotencyKey}, ${context.kind}, ${context.recipient}, ${context.subject},
                  ${context.bodyText}, ${context.bodyHtml}, ${url}, ${sealed.keyId}, ${sealed.iv}, ${sealed.ciphertext}, ${sealed.authTag})`
        return { tokenId: Number(issued!.tokenId), expiresAt: issued!.expiresAt }
      })

    const liveAdminWithAddress = (districtId: string, emailKey: string, except: number | null) =>
      sql<{ readonly id: number }>`
        SELECT id FROM admins WHERE district_id = ${districtId} AND email_key = ${emailKey} AND state <> 'removed'
          AND id IS DISTINCT FROM ${except}::bigint`

    const checkAddress = (email: string) => {
      const address = email.trim()
      return isEmail(address)
        ? Effect.succeed({ email: address, emailKey: address.toLowerCase() })
        : Effect.fail(new InvalidAdmin({ message: "the address is not a valid e-mail address (expected local@domain)" }))
    }

    const grantDetails = (grant: Grant, permission: Permission, canManageAdmins: boolean) => ({
      role: grant.role,
      partnership: grant.partnershipId,
      region: grant.regionId,
      allSchools: grant.allSchools,
      schools: grant.schools,
      permission,
      canManageAdmins
    })

    // ------------------------------------------------------------ invite

    const invite = Effect.fn("Admins.invite")(function*(input: InviteInput, who: Who) {
      const name = input.name.trim()
      if (name.length === 0) return yield* new InvalidAdmin({ message: "--name is empty" })
      const { email, emailKey } = yield* checkAddress(input.email)
      if (input.canManageAdmins && input.permission !== "manage") {
        return yield* new InvalidAdmin({ message: "--can-manage-admins needs --permission manage" })
      }
      return yield* sql.withTransaction(Effect.gen(function*() {
        const district = yield* districtNamed(input.districtId)
        const geography = yield* loadGeography
        const grant = yield* resolveGrant(district.id, input, geography)
        const scope = scopeOf(district.id, grant)
        const { actor, invitedBy, name: actorName } = yield* resolveActor(who)
        yield* enforce(actor, "invite", [scope], geography)
        const [existing] = yield* liveAdminWithAddress(district.id, emailKey, null)
        if (existing !== undefined) return yield* new AdminExists({ districtId: district.id, adminId: existing.id })
        const [row] = yield* sql<{ readonly id: number }>`
          INSERT INTO admins (district_id, name, email, email_key, permission, can_manage_admins, role, partnership_id, region_id,
                              all_schools, school_source_ids, invited_by)
          VALUES (${district.id}, ${name}, ${email}, ${emailKey}, ${input.permission}, ${input.canManageAdmins}, ${grant.role},
                  ${grant.partnershipId}, ${grant.regionId}, ${grant.allSchools}, ${grant.schools}::text[], ${invitedBy})
          RETURNING id`
        const adminId = row!.id
        const issued = yield* issueInvitation({ id: adminId, districtId: district.id, permission: input.permission }, district.name)
        yield* audit.record({
          actor: actorName,
          action: "admin.invite",
          districtId: district.id,
          subject: `admin ${adminId}`,
          details: { ...grantDetails(grant, input.permission, input.canManageAdmins), token: issued.tokenId }
        })
        return {
          adminId,
          districtId: district.id,
          scope,
          permission: input.permission,
          canManageAdmins: input.canManageAdmins,
          expiresAt: issued.expiresAt
        } satisfies InviteOutcome
      }))
    })

    // ------------------------------------------------------------ edit

    const edit = Effect.fn("Admins.edit")(function*(adminId: number, changes: EditChanges, who: Who) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const current = yield* lockAdmin(adminId)
        if (current.state === "removed") {
          return yield* new AdminStateConflict({ adminId, state: current.state, wanted: "a removed admin is not edited (invite the person again)" })
        }
        const district = yield* districtNamed(current.districtId)
        const geography = yield* loadGeography
        const role = changes.role ?? current.role
        const scopeChanged = changes.role !== undefined || changes.regionId !== undefined || changes.allSchools === true ||
          changes.schools !== undefined
        const keepSchools = role === "school" && current.role === "school" && changes.allSchools !== true && changes.schools === undefined
        const grant: Grant = scopeChanged
          ? yield* resolveGrant(current.districtId, {
            role,
            regionId: changes.regionId ?? (role === "region" && current.role === "region" ? current.regionId : null),
            allSchools: keepSchools ? current.allSchools : changes.allSchools === true,
            schools: keepSchools ? current.schools : changes.schools ?? []
          }, geography)
          : current
        const permission = changes.permission ?? current.permission
        // Down to view: managing admins goes with it (it needs manage).
        const canManageAdmins = changes.canManageAdmins ?? (permission === "manage" && current.canManageAdmins)
        if (canManageAdmins && permission !== "manage") return yield* new InvalidAdmin({ message: "--can-manage-admins needs --permission manage" })
        const name = changes.name?.trim() ?? current.name
        if (name.length === 0) return yield* new InvalidAdmin({ message: "--name is empty" })
        const address = changes.email === undefined ? { email: current.email, emailKey: current.emailKey } : yield* checkAddress(changes.email)

        const scope = scopeOf(current.districtId, grant)
        const { actor, name: actorName } = yield* resolveActor(who)
        yield* enforce(actor, "edit", [scopeOf(current.districtId, current), scope], geography)

        const sameSchools = grant.allSchools === current.allSchools && grant.schools.join("\u0000") === current.schools.join("\u0000")
        const changed = [
          ...(name !== current.name ? ["name"] : []),
          ...(address.email !== current.email ? ["email"] : []),
          ...(permission !== current.permission ? ["permission"] : []),
          ...(canManageAdmins !== current.canManageAdmins ? ["canManageAdmins"] : []),
          ...(grant.role !== current.role ? ["role"] : []),
          ...(grant.partnershipId !== current.partnershipId || grant.regionId !== current.regionId ? ["region"] : []),
          ...(!sameSchools ? ["schools"] : [])
        ]
        if (changed.length === 0) return { adminId, districtId: current.districtId, changed, scope, reinvited: false } satisfies EditOutcome
        const readdressed = address.emailKey !== current.emailKey
        if (changed.includes("email") && current.state !== "invited") {
          return yield* new AdminStateConflict({
            adminId,
            state: current.state,
            wanted: "its address belongs to its confirmed account; remove it and invite the new address instead"
          })
        }
        if (readdressed) {
          const [existing] = yield* liveAdminWithAddress(current.districtId, address.emailKey, adminId)
          if (existing !== undefined) return yield* new AdminExists({ districtId: current.districtId, adminId: existing.id })
        }
        yield* sql`
          UPDATE admins SET name = ${name}, email = ${address.email}, email_key = ${address.emailKey}, permission = ${permission},
                 can_manage_admins = ${canManageAdmins}, role = ${grant.role}, partnership_id = ${grant.partnershipId},
                 region_id = ${grant.regionId}, all_schools = ${grant.allSchools}, school_source_ids = ${grant.schools}::text[],
                 updated_at = now()
          WHERE id = ${adminId}`
        // A new address gets a new invitation; the old address's link stops working.
        let token: number | null = null
        if (readdressed) {
          yield* revokeTokens(adminId)
          token = (yield* issueInvitation({ id: adminId, districtId: current.districtId, permission }, district.name)).tokenId
        }
        yield* audit.record({
          actor: actorName,
          action: "admin.edit",
          districtId: current.districtId,
          subject: `admin ${adminId}`,
          details: { changed, ...grantDetails(grant, permission, canManageAdmins), ...(token === null ? {} : { token }) }
        })
        return { adminId, districtId: current.districtId, changed, scope, reinvited: readdressed } satisfies EditOutcome
      }))
    })

    // ------------------------------------------------------------ resend, remove

    const resend = Effect.fn("Admins.resend")(function*(adminId: number, who: Who) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const current = yield* lockAdmin(adminId)
        if (current.state !== "invited") {
          return yield* new AdminStateConflict({ adminId, state: current.state, wanted: "only an invitation not yet confirmed is resent" })
        }
        const district = yield* districtNamed(current.districtId)
        const geography = yield* loadGeography
        const { actor, name: actorName } = yield* resolveActor(who)
        yield* enforce(actor, "resend", [scopeOf(current.districtId, current)], geography)
        yield* revokeTokens(adminId)
        const issued = yield* issueInvitation(current, district.name)
        yield* audit.record({ actor: actorName, action: "admin.resend", districtId: current.districtId, subject: `admin ${adminId}`, details: { token: issued.tokenId } })
        return { adminId, districtId: current.districtId, expiresAt: issued.expiresAt }
      }))
    })

    const remove = Effect.fn("Admins.remove")(function*(adminId: number, who: Who, reason: string | null) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const current = yield* lockAdmin(adminId)
        if (current.state === "removed") return yield* new AdminStateConflict({ adminId, state: current.state, wanted: "nothing to remove" })
        const geography = yield* loadGeography
        const { actor, name: actorName } = yield* resolveActor(who)
        yield* enforce(actor, "remove", [scopeOf(current.districtId, current)], geography)
        yield* revokeTokens(adminId)
        yield* sql`UPDATE admins SET state = 'removed', removed_at = now(), removed_by = ${actorName}, updated_at = now() WHERE id = ${adminId}`
        yield* audit.record({
          actor: actorName,
          action: "admin.remove",
          districtId: current.districtId,
          subject: `admin ${adminId}`,
          reason,
          details: { was: current.state, accountId: current.accountId }
        })
        return { adminId, districtId: current.districtId, was: current.state, accountId: current.accountId }
      }))
    })

    // ------------------------------------------------------------ confirm

    /** `admin confirm`: the database function does the work (the platform calls the same); it writes the audit row. */
    const confirm = Effect.fn("Admins.confirm")(function*(token: string, linkAccount: Option.Option<number>) {
      const rows = yield* sql<{ readonly adminId: number; readonly accountId: number; readonly outcome: "created" | "linked" | "activated" }>`
        SELECT * FROM rosterd_confirm_admin(${token}, ${Option.getOrNull(linkAccount)}::bigint)`.pipe(
        refusedAs(["RSTOK", "RSLNK"], (code, reason) => new InvitationRefused({ code, reason }))
      )
      return rows[0]!
    })

    // ------------------------------------------------------------ list

    /**
     * The district's administrators: in-product admins whose scope reaches it (invited there,
     * or a partnership / region role covering it), then its roster admins (none when the
     * district does not sync admins). `all`: removed admins too.
     */
    const list = Effect.fn("Admins.list")(function*(districtId: string, options: { readonly all?: boolean } = {}) {
      yield* districtNamed(districtId)
      return yield* listAdmins(districtId, options.all ?? false, staleAfterDays)
    })

    const dieOnSql = <A, E, R>(effect: Effect.Effect<A, E | SqlError.SqlError, R>) =>
      Effect.catchIf(effect, (error): error is SqlError.SqlError => (error as { _tag?: unknown })._tag === "SqlError", Effect.die) as Effect.Effect<A, Exclude<E, SqlError.SqlError>, R>

    return {
      invite: (input: InviteInput, who: Who) => dieOnSql(invite(input, who)),
      edit: (adminId: number, changes: EditChanges, who: Who) => dieOnSql(edit(adminId, changes, who)),
      resend: (adminId: number, who: Who) => dieOnSql(resend(adminId, who)),
      remove: (adminId: number, who: Who, reason: string | null = null) => dieOnSql(remove(adminId, who, reason)),
      confirm: (token: string, linkAccount: Option.Option<number> = Option.none()) => dieOnSql(confirm(token, linkAccount)),
      list: (districtId: string, options?: { readonly all?: boolean }) => dieOnSql(list(districtId, options)),
      staleAfterDays
    } as const
  }),
  dependencies: [Audit.Default, Secrets.Default]
}) {}

