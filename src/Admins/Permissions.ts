/**
 * Who may invite, edit, resend to and remove administrators (seed 003), as pure functions.
 *
 * - An **operator** (the CLI without `--as`) may do anything.
 * - An **admin** acts only when confirmed (active), with Manage permission and
 *   "can manage admins", and only within its own scope: every scope the action touches (the
 *   target admin's current scope and, for invite and edit, the scope it is given) must be
 *   covered by the acting admin's. So an admin can never grant beyond its own scope.
 * - **Scopes.** A school-role admin covers its schools in its district (or all of them:
 *   `district`); a region-role admin every school of every district of its region; a
 *   partnership-role admin every district of its partnership. "All schools" covers schools
 *   the district adds later, so a list of schools never covers it, even a complete one.
 *
 * Messages name admin ids, districts, regions, partnerships and school source IDs — never
 * names or addresses.
 */

export type Scope =
  | { readonly kind: "partnership"; readonly partnershipId: string }
  | { readonly kind: "region"; readonly partnershipId: string; readonly regionId: string }
  | { readonly kind: "district"; readonly districtId: string }
  | { readonly kind: "schools"; readonly districtId: string; readonly schools: ReadonlyArray<string> }

/** Where a district sits: its partnership and region, if any. */
export interface Placement {
  readonly partnershipId: string | null
  readonly regionId: string | null
}

/** District id → placement; a district not in the map is in no partnership. */
export type Geography = ReadonlyMap<string, Placement>

export type Permission = "view" | "manage"
export type AdminState = "invited" | "active" | "removed"

export interface ActingAdmin {
  readonly id: number
  readonly state: AdminState
  readonly permission: Permission
  readonly canManageAdmins: boolean
  readonly scope: Scope
}

export type Actor =
  | { readonly kind: "operator"; readonly name: string }
  | { readonly kind: "admin"; readonly admin: ActingAdmin }

export type AdminAction = "invite" | "edit" | "resend" | "remove"

export type Decision = { readonly allowed: true } | { readonly allowed: false; readonly reason: string }

const placementOf = (geography: Geography, districtId: string): Placement =>
  geography.get(districtId) ?? { partnershipId: null, regionId: null }

/** The district a district- or school-level scope is about. */
const districtOf = (scope: Scope): string | null =>
  scope.kind === "district" || scope.kind === "schools" ? scope.districtId : null

/** Does `outer` cover everything `inner` reaches? */
export const covers = (outer: Scope, inner: Scope, geography: Geography): boolean => {
  switch (outer.kind) {
    case "partnership": {
      if (inner.kind === "partnership" || inner.kind === "region") return inner.partnershipId === outer.partnershipId
      return placementOf(geography, districtOf(inner)!).partnershipId === outer.partnershipId
    }
    case "region": {
      if (inner.kind === "partnership") return false
      if (inner.kind === "region") return inner.partnershipId === outer.partnershipId && inner.regionId === outer.regionId
      const place = placementOf(geography, districtOf(inner)!)
      return place.partnershipId === outer.partnershipId && place.regionId === outer.regionId
    }
    case "district":
      return districtOf(inner) === outer.districtId
    case "schools":
      return inner.kind === "schools" && inner.districtId === outer.districtId &&
        inner.schools.every((school) => outer.schools.includes(school))
  }
}

/** A scope in words, for messages: `district demo`, `schools sch-1, sch-2 of district demo`, `region north of partnership p`. */
export const describeScope = (scope: Scope): string => {
  switch (scope.kind) {
    case "partnership":
      return `partnership ${scope.partnershipId}`
    case "region":
      return `region ${scope.regionId} of partnership ${scope.partnershipId}`
    case "district":
      return `all schools of district ${scope.districtId}`
    case "schools":
      return `school${scope.schools.length === 1 ? "" : "s"} ${scope.schools.join(", ")} of district ${scope.districtId}`
  }
}

const VERB: Readonly<Record<AdminAction, string>> = {
  invite: "invite administrators for",
  edit: "edit administrators of",
  resend: "resend invitations of administrators of",
  remove: "remove administrators of"
}

/**
 * May `actor` do `action` touching these scopes (the target admin's current scope, and the
 * scope it is given)?
 */
export const authorize = (actor: Actor, action: AdminAction, scopes: ReadonlyArray<Scope>, geography: Geography): Decision => {
  if (actor.kind === "operator") return { allowed: true }
  const admin = actor.admin
  const refuse = (why: string): Decision => ({ allowed: false, reason: `admin ${admin.id} may not ${VERB[action]} ${[...new Set(scopes.map(describeScope))].join(" and ")}: ${why}` })
  if (admin.state === "invited") return refuse("it has not confirmed its invitation")
  if (admin.state === "removed") return refuse("it was removed")
  if (admin.permission !== "manage") return refuse("view permission sees dashboards only")
  if (!admin.canManageAdmins) return refuse("it cannot manage administrators")
  const outside = scopes.filter((scope) => !covers(admin.scope, scope, geography))
  if (outside.length > 0) return refuse(`its scope (${describeScope(admin.scope)}) does not cover ${[...new Set(outside.map(describeScope))].join(" and ")}`)
  return { allowed: true }
}
