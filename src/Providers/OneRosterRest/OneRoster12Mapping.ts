import { Schema } from "effect"
import type { User, UserIdentity, UserRole } from "../../Domain/Roster.ts"
import { agentsOf, oneRosterIdentities, statusOf } from "./OneRosterMapping.ts"
import { GUIDRef, LenientBoolean, LenientList } from "./OneRosterWire.ts"

/**
 * OneRoster **1.2** users → the neutral model: the one home of the 1.2 rules, for the REST
 * binding (`/ims/oneroster/rostering/v1p2`) and the CSV binding (`users.csv` + `roles.csv` +
 * `userProfiles.csv`, src/Providers/OneRosterCsv) alike. Every other 1.2 record (orgs,
 * sessions, courses, classes, enrollments, demographics) reads as 1.1's does: the 1.1
 * mapping (OneRosterMapping.ts) takes them, so both versions give the same records.
 *
 * What 1.2 changes for a user:
 *
 * - **`roles[]`** replaces `role` + `orgs`: each entry is a role at an org, `primary` or
 *   `secondary`. A person who teaches at one school and administers another is one user
 *   with both roles; `roles` lists each rosterd role once (the primary entry's first),
 *   `orgSourceIds` the orgs (the primary org first), and `orgRoles` each pair
 *   (`role:orgSourceId`), by which `roster_admins` scopes an administrator to the orgs it
 *   administers (migrations/0016).
 * - 1.2's finer roles map onto rosterd's: `districtAdministrator`, `siteAdministrator`,
 *   `systemAdministrator` and `principal` are administrators, `counselor` an aide (staff
 *   without administrator rights); the rest keep their names.
 * - **`primaryOrg`** is kept (`primaryOrgSourceId`); without one, the primary role's org.
 * - **`preferredFirstName`/`preferredLastName`** are stored beside the legal names.
 * - **`userProfiles[]`** become identities of kind `profile` (the `profileId`, typed by
 *   `vendorId[/applicationId]`); their credentials (usernames, passwords) are never read.
 */

const Text = Schema.optional(Schema.NullOr(Schema.String))
const Ref = Schema.optional(Schema.NullOr(GUIDRef))

/** A `roles[]` entry, read leniently: what is missing is judged by the mapping. */
export const RoleEntry = Schema.Struct({ roleType: Text, role: Text, org: Ref, userProfile: Text, beginDate: Text, endDate: Text })

export const UserRecord12 = Schema.Struct({
  sourcedId: Schema.String.pipe(Schema.minLength(1)),
  status: Text,
  dateLastModified: Text,
  username: Text,
  givenName: Text,
  familyName: Text,
  middleName: Text,
  preferredFirstName: Text,
  preferredMiddleName: Text,
  preferredLastName: Text,
  email: Text,
  identifier: Text,
  enabledUser: Schema.optional(Schema.NullOr(LenientBoolean)),
  grades: Schema.optional(Schema.NullOr(LenientList)),
  roles: Schema.optional(Schema.NullOr(Schema.Array(RoleEntry))),
  primaryOrg: Ref,
  agents: Schema.optional(Schema.NullOr(Schema.Array(GUIDRef))),
  // Read leniently by the mapping: a malformed entry is left out, it does not hold the user.
  userIds: Schema.optional(Schema.Unknown),
  userProfiles: Schema.optional(Schema.Unknown),
  metadata: Schema.optional(Schema.Unknown)
})
export type UserRecord12 = typeof UserRecord12.Type

/** 1.2's role vocabulary and what each is in rosterd's. */
const ROLE_OF: Readonly<Record<string, UserRole>> = {
  administrator: "administrator",
  districtadministrator: "administrator",
  siteadministrator: "administrator",
  systemadministrator: "administrator",
  principal: "administrator",
  aide: "aide",
  counselor: "aide",
  guardian: "guardian",
  parent: "parent",
  relative: "relative",
  proctor: "proctor",
  student: "student",
  teacher: "teacher"
}
const ROLE_NAMES = "administrator, aide, counselor, districtAdministrator, guardian, parent, principal, proctor, relative, siteAdministrator, student, systemAdministrator, teacher"

const blank = (value: string | null | undefined): string | null => {
  const trimmed = value?.trim() ?? ""
  return trimmed.length > 0 ? trimmed : null
}

export interface RoleAtOrg {
  readonly roleType: string | null | undefined
  readonly role: string | null | undefined
  readonly org: string | null | undefined
}

export interface UserRoles {
  readonly roles: ReadonlyArray<UserRole>
  readonly orgSourceIds: ReadonlyArray<string>
  readonly orgRoles: ReadonlyArray<string>
  readonly primaryOrgSourceId: string | null
}

/**
 * A 1.2 user's `roles[]` (and `primaryOrg`) as rosterd's roles, orgs and per-org roles; a
 * problem text (the record is held) when there is no role, or one rosterd does not know.
 */
export const rolesOf = (entries: ReadonlyArray<RoleAtOrg>, primaryOrg: string | null | undefined): UserRoles | { readonly problem: string } => {
  if (entries.length === 0) return { problem: `field "roles": expected at least one role` }
  const primaryFirst = [...entries.filter((e) => blank(e.roleType)?.toLowerCase() === "primary"), ...entries.filter((e) => blank(e.roleType)?.toLowerCase() !== "primary")]
  const roles: Array<UserRole> = []
  const orgs: Array<string> = []
  const orgRoles: Array<string> = []
  const primary = blank(primaryOrg)
  if (primary !== null) orgs.push(primary)
  for (const entry of primaryFirst) {
    const role = ROLE_OF[blank(entry.role)?.toLowerCase() ?? ""]
    if (role === undefined) return { problem: `field "roles": role expected to be one of ${ROLE_NAMES}` }
    if (!roles.includes(role)) roles.push(role)
    const org = blank(entry.org)
    if (org === null) continue
    if (!orgs.includes(org)) orgs.push(org)
    const pair = `${role}:${org}`
    if (!orgRoles.includes(pair)) orgRoles.push(pair)
  }
  return { roles, orgSourceIds: orgs, orgRoles, primaryOrgSourceId: primary ?? blank(primaryFirst[0]!.org) }
}

const isObject = (value: unknown): value is Readonly<Record<string, unknown>> => typeof value === "object" && value !== null && !Array.isArray(value)
const text = (value: unknown) => (typeof value === "string" ? blank(value) : null)

/** `userProfiles[]` entries as `profile` identities: `profileId`, typed `vendorId[/applicationId]`. */
export const profileIdentities = (profiles: ReadonlyArray<{ readonly profileId: string | null; readonly vendorId: string | null; readonly applicationId: string | null }>) => {
  const out: Array<UserIdentity> = []
  const seen = new Set<string>()
  for (const p of profiles) {
    const value = blank(p.profileId)
    if (value === null) continue
    const vendor = blank(p.vendorId)
    const application = blank(p.applicationId)
    const type = vendor === null ? null : application === null ? vendor : `${vendor}/${application}`
    const key = `${type ?? ""}\u0000${value}`
    if (seen.has(key)) continue
    seen.add(key)
    out.push({ kind: "profile", type, value })
  }
  return out
}

/** The JSON binding's `userProfiles` (anything: malformed entries are left out). */
const jsonProfiles = (value: unknown) =>
  Array.isArray(value)
    ? value.filter(isObject).map((p) => ({ profileId: text(p["profileId"]), vendorId: text(p["vendorId"]), applicationId: text(p["applicationId"]) }))
    : []

/** What both bindings give for a user, besides its roles. */
export interface UserFields12 {
  readonly sourcedId: string
  readonly status?: string | null | undefined
  readonly enabledUser?: boolean | null | undefined
  readonly username?: string | null | undefined
  readonly givenName?: string | null | undefined
  readonly familyName?: string | null | undefined
  readonly middleName?: string | null | undefined
  readonly preferredFirstName?: string | null | undefined
  readonly preferredLastName?: string | null | undefined
  readonly identifier?: string | null | undefined
  readonly email?: string | null | undefined
  readonly grades?: ReadonlyArray<string> | null | undefined
  /** OneRoster `agents`, as source IDs. */
  readonly agentSourceIds?: ReadonlyArray<string> | undefined
}

/** A 1.2 user from its fields, its roles and its identities (both bindings). */
export const user12 = (r: UserFields12, roles: UserRoles, identities: ReadonlyArray<UserIdentity>): User => ({
  sourceId: r.sourcedId,
  status: statusOf(r.status),
  enabled: r.enabledUser ?? true,
  roles: roles.roles,
  username: blank(r.username),
  givenName: blank(r.givenName),
  familyName: blank(r.familyName),
  middleName: blank(r.middleName),
  identifier: blank(r.identifier),
  email: blank(r.email),
  orgSourceIds: roles.orgSourceIds,
  grades: [...(r.grades ?? [])],
  identities,
  preferredGivenName: blank(r.preferredFirstName),
  preferredFamilyName: blank(r.preferredLastName),
  primaryOrgSourceId: roles.primaryOrgSourceId,
  orgRoles: roles.orgRoles,
  agents: agentsOf(r.agentSourceIds ?? [])
})

/** The REST binding's user. */
export const userOfJson = (r: UserRecord12): { readonly record: User } | { readonly problem: string } => {
  const roles = rolesOf((r.roles ?? []).map((e) => ({ roleType: e.roleType, role: e.role, org: e.org?.sourcedId })), r.primaryOrg?.sourcedId)
  if ("problem" in roles) return roles
  const identities = [...oneRosterIdentities(r), ...profileIdentities(jsonProfiles(r.userProfiles))]
  const agentSourceIds = (r.agents ?? []).map((a) => a.sourcedId.trim()).filter((id) => id.length > 0)
  return { record: user12({ ...r, agentSourceIds }, roles, identities) }
}
