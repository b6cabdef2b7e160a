import { Schema } from "effect"
import type { AdminState, Permission, Scope } from "./Permissions.ts"

/**
 * The administrators' model: errors, inputs and listings (the service is Admins.ts).
 */

// ---------------------------------------------------------------- errors

export class AdminNotFound extends Schema.TaggedError<AdminNotFound>()("AdminNotFound", { adminId: Schema.Number }) {
  override get message() {
    return `no admin ${this.adminId} (see \`rosterd admin list <district>\`)`
  }
}

/** The acting admin may not do this (Permissions.ts says why). */
export class NotPermitted extends Schema.TaggedError<NotPermitted>()("NotPermitted", { reason: Schema.String }) {
  override get message() {
    return `not permitted: ${this.reason}`
  }
}

/** The request itself is wrong (bad address, unknown schools, role without its region…). */
export class InvalidAdmin extends Schema.TaggedError<InvalidAdmin>()("InvalidAdmin", { message: Schema.String }) {}

export class AdminExists extends Schema.TaggedError<AdminExists>()("AdminExists", {
  districtId: Schema.String,
  adminId: Schema.Number
}) {
  override get message() {
    return `district ${this.districtId} already has admin ${this.adminId} with this address: edit it instead (rosterd admin edit ${this.adminId})`
  }
}

export class AdminStateConflict extends Schema.TaggedError<AdminStateConflict>()("AdminStateConflict", {
  adminId: Schema.Number,
  state: Schema.String,
  wanted: Schema.String
}) {
  override get message() {
    return `admin ${this.adminId} is ${this.state === "active" ? "confirmed" : this.state}: ${this.wanted}`
  }
}

/** `rosterd_confirm_admin` said no: RSTOK (the token) or RSLNK (the chosen account). */
export class InvitationRefused extends Schema.TaggedError<InvitationRefused>()("InvitationRefused", {
  code: Schema.Literal("RSTOK", "RSLNK"),
  reason: Schema.String
}) {
  override get message() {
    return this.code === "RSTOK" ? `invitation refused: ${this.reason}` : `cannot use that account: ${this.reason}`
  }
}

// ---------------------------------------------------------------- model

export type Role = "school" | "region" | "partnership"

/** Who acts: an operator (recorded by name) or an in-product admin (`--as`). */
export interface Who {
  readonly by: string
  readonly as?: number
}

export interface ScopeRequest {
  readonly role: Role
  /** Region role: the region (of the district's partnership). School role: optional, must be the district's. */
  readonly regionId: string | null
  readonly allSchools: boolean
  readonly schools: ReadonlyArray<string>
}

export interface InviteInput extends ScopeRequest {
  readonly districtId: string
  readonly name: string
  readonly email: string
  readonly permission: Permission
  readonly canManageAdmins: boolean
}

/** What `edit` changes; absent fields stay. `allSchools: true` or `schools` replace the school list. */
export interface EditChanges {
  readonly name?: string
  readonly email?: string
  readonly permission?: Permission
  readonly canManageAdmins?: boolean
  readonly role?: Role
  readonly regionId?: string
  readonly allSchools?: boolean
  readonly schools?: ReadonlyArray<string>
}

/** A stored grant: role and scope columns of `admins`. */
export interface Grant {
  readonly role: Role
  readonly partnershipId: string | null
  readonly regionId: string | null
  readonly allSchools: boolean
  readonly schools: ReadonlyArray<string>
}

export interface AdminRow extends Grant {
  readonly id: number
  readonly districtId: string
  readonly email: string
  readonly emailKey: string
  readonly name: string
  readonly permission: Permission
  readonly canManageAdmins: boolean
  readonly state: AdminState
  readonly accountId: number | null
}

export const scopeOf = (districtId: string, grant: Grant): Scope =>
  grant.role === "partnership"
    ? { kind: "partnership", partnershipId: grant.partnershipId! }
    : grant.role === "region"
    ? { kind: "region", partnershipId: grant.partnershipId!, regionId: grant.regionId! }
    : grant.allSchools
    ? { kind: "district", districtId }
    : { kind: "schools", districtId, schools: grant.schools }

export type SourceLabel = "Clever" | "ClassLink" | "CSV" | "in-product"

const SOURCE_LABELS: Readonly<Record<string, SourceLabel>> = {
  clever: "Clever",
  classlink: "ClassLink",
  csv: "CSV",
  "in-product": "in-product",
  manual: "in-product"
}
export const sourceLabel = (source: string): SourceLabel => SOURCE_LABELS[source] ?? "in-product"

export interface RosterRecord {
  readonly userId: number
  readonly sourceId: string
  readonly roles: ReadonlyArray<string>
  readonly source: SourceLabel
  /** false: the roster no longer has this person (deactivated by a sync). */
  readonly active: boolean
}

/**
 * One line of `admin list`. `kind: "in-product"` rows are `admins` (id = admin id);
 * `kind: "roster"` rows are rostered users with an admin role (id = user id).
 */
export interface AdminListing {
  readonly kind: "in-product" | "roster"
  readonly id: number
  readonly name: string | null
  readonly email: string | null
  /** The district it was invited in (in-product) or is rostered in. */
  readonly district: string
  readonly role: Role
  readonly partnership: string | null
  readonly region: string | null
  readonly allSchools: boolean
  readonly schools: ReadonlyArray<string>
  readonly permission: Permission
  readonly canManageAdmins: boolean
  readonly source: SourceLabel
  /**
   * In-product: pending (invited, its newest link still works), expired (its newest link
   * expired: resend), confirmed, removed. Roster: pending (activation e-mail not
   * confirmed), confirmed (account active), no account (not linked yet: see the review queue).
   */
  readonly invitation: "pending" | "expired" | "confirmed" | "removed" | "no account"
  /** Invited and not confirmed for longer than `rosterd.admins.staleAfterDays`. */
  readonly stale: boolean
  readonly invitedAt: Date | null
  readonly confirmedAt: Date | null
  readonly accountId: number | null
  /** In-product: the person's rostered user in the district (same address or account), if any; roster: itself. */
  readonly rosterRecord: RosterRecord | null
  /**
   * Roster admins attached only to orgs without classes that are not the district (a
   * department, a local office): reported by the sync (`admin_district_office_only`).
   * District-level roster admins have `allSchools` instead.
   */
  readonly districtOfficeOnly: boolean
}

export interface InviteOutcome {
  readonly adminId: number
  readonly districtId: string
  readonly scope: Scope
  readonly permission: Permission
  readonly canManageAdmins: boolean
  readonly expiresAt: Date
}

export interface EditOutcome {
  readonly adminId: number
  readonly districtId: string
  /** Names of the fields that changed (no values). */
  readonly changed: ReadonlyArray<string>
  readonly scope: Scope
  /** A new invitation went to the new address (an invited admin's address changed). */
  readonly reinvited: boolean
}
