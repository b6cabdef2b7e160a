/**
 * The fake OneRoster server's 1.2 view of the same district: `/ims/oneroster/rostering/v1p2`
 * serves every collection the 1.1 path does, from the same records. Only users differ
 * (the 1.2 binding, §4.13 of the 1.2 information model): `roles[]` (`roleType`, `role`,
 * `org`) instead of `role` + `orgs`, `primaryOrg`, `preferredFirstName`/`preferredLastName`,
 * `userProfiles`, and `enabledUser` as a string.
 *
 * A test gives a user 1.2-only data in `v12` (its roles across orgs, preferred names,
 * profiles); without it the 1.2 roles are its 1.1 role at each of its orgs, the first
 * primary. The 1.1 view never shows `v12`.
 */
import type { GUIDRef, User } from "./Types.ts"
import { API_PATH } from "./Types.ts"

export const API_PATH_12 = "/ims/oneroster/rostering/v1p2"

export interface Role12 {
  readonly roleType: "primary" | "secondary"
  readonly role: string
  readonly org: GUIDRef
}

export interface UserProfile12 {
  readonly profileId: string
  readonly profileType: string
  readonly vendorId: string
  readonly applicationId?: string
  readonly description?: string
  readonly credentials?: ReadonlyArray<{ readonly type: string; readonly username: string; readonly password?: string }>
}

export interface User12Data {
  readonly roles?: ReadonlyArray<Role12>
  readonly primaryOrg?: GUIDRef
  readonly preferredFirstName?: string
  readonly preferredLastName?: string
  readonly userProfiles?: ReadonlyArray<UserProfile12>
}

/** A user record as the fake keeps it: 1.1 fields, and 1.2-only data in `v12`. */
export type StoredUser = User & { readonly v12?: User12Data }

/** The 1.1 path a 1.2 request reads (the same records). */
export const routePath = (path: string) => (path.startsWith(API_PATH_12) ? API_PATH + path.slice(API_PATH_12.length) : path)

export const toUser11 = (user: StoredUser): User => {
  if (user.v12 === undefined) return user
  const { v12: _, ...rest } = user
  return rest
}

export const toUser12 = (user: StoredUser): Record<string, unknown> => {
  const { v12, role, orgs, ...rest } = user
  const roles = v12?.roles ?? orgs.map((org, i) => ({ roleType: i === 0 ? "primary" : "secondary", role, org }))
  return {
    ...rest,
    enabledUser: String(user.enabledUser),
    roles,
    ...(v12?.primaryOrg ?? orgs[0] ? { primaryOrg: v12?.primaryOrg ?? orgs[0] } : {}),
    preferredFirstName: v12?.preferredFirstName ?? "",
    preferredMiddleName: "",
    preferredLastName: v12?.preferredLastName ?? "",
    userProfiles: v12?.userProfiles ?? []
  }
}
