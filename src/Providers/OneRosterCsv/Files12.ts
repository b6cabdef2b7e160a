import { Effect, Stream } from "effect"
import type { User } from "../../Domain/Roster.ts"
import { profileIdentities, type RoleAtOrg, rolesOf, user12 } from "../OneRosterRest/OneRoster12Mapping.ts"
import { oneRosterIdentities } from "../OneRosterRest/OneRosterMapping.ts"
import { Bool, List, OptionalText, RequiredText, Status, UserIds } from "./Columns.ts"
import { csvFeedItems } from "./CsvFeed.ts"
import type { CsvLimits } from "./CsvLimits.ts"
import type { CsvSource } from "./CsvSource.ts"
import { spec } from "./Files.ts"

/**
 * The OneRoster **1.2** CSV binding's users: `users.csv` (1.2 columns: no `role`, no
 * `orgSourcedIds`; `preferredGivenName`, `preferredFamilyName`, `primaryOrgSourcedId`),
 * with each user's roles from `roles.csv` (`userSourcedId`, `roleType`, `role`,
 * `orgSourcedId`) and profiles from `userProfiles.csv` (`userSourcedId`, `vendorId`,
 * `applicationId`; credentials are never read). The rules are the REST binding's
 * (src/Providers/OneRosterRest/OneRoster12Mapping.ts): both versions give the same records.
 * The other files of a 1.2 set read as 1.1's (Files.ts).
 *
 * `roles.csv` and `userProfiles.csv` are read before `users.csv` and kept in memory by user
 * (the 100,000-student bench district's sync peaks about 100 MiB higher than its 1.1 set's). A role row that does not
 * read holds its user (its roles cannot be known); `tobedeleted` role rows are not roles.
 */

export const ROLES_FILE = "roles.csv"
export const PROFILES_FILE = "userProfiles.csv"

/** Columns only a OneRoster 1.1 `users.csv` has: found in a 1.2 set, the set mixes versions. */
export const USERS_11_COLUMNS = ["role", "orgSourcedIds"] as const

interface RoleRow {
  readonly user: string
  readonly status: string
  readonly role: RoleAtOrg
}

const RolesFile = spec({
  kind: "users",
  file: ROLES_FILE,
  required: ["sourcedId", "userSourcedId", "roleType", "role", "orgSourcedId"],
  fields: {
    sourcedId: RequiredText,
    status: Status,
    userSourcedId: RequiredText,
    roleType: RequiredText,
    role: RequiredText,
    orgSourcedId: RequiredText
  },
  toRecord: (row) => ({ user: row.userSourcedId, status: row.status, role: { roleType: row.roleType, role: row.role, org: row.orgSourcedId } }) as RoleRow as never,
  identity: (cells) => ({ sourceId: cells.userSourcedId?.trim() || null })
})

interface ProfileRow {
  readonly user: string
  readonly status: string
  readonly profile: { readonly profileId: string; readonly vendorId: string | null; readonly applicationId: string | null }
}

const ProfilesFile = spec({
  kind: "users",
  file: PROFILES_FILE,
  required: ["sourcedId", "userSourcedId", "vendorId"],
  fields: {
    sourcedId: RequiredText,
    status: Status,
    userSourcedId: RequiredText,
    vendorId: OptionalText,
    applicationId: OptionalText
  },
  toRecord: (row) =>
    ({ user: row.userSourcedId, status: row.status, profile: { profileId: row.sourcedId, vendorId: row.vendorId, applicationId: row.applicationId } }) as ProfileRow as never,
  identity: (cells) => ({ sourceId: cells.userSourcedId?.trim() || null })
})

export interface UserRoles12 {
  readonly roles: ReadonlyMap<string, ReadonlyArray<RoleAtOrg>>
  /** Users with a role row that did not read: held. */
  readonly unreadable: ReadonlySet<string>
  readonly profiles: ReadonlyMap<string, ReadonlyArray<ProfileRow["profile"]>>
}

/** `roles.csv` (required) and `userProfiles.csv` (optional), by user. */
export const readUserRoles = (source: CsvSource, limits: CsvLimits, hasProfiles: boolean) =>
  Effect.gen(function*() {
    const roles = new Map<string, Array<RoleAtOrg>>()
    const unreadable = new Set<string>()
    yield* Stream.runForEach(csvFeedItems(source, RolesFile as never, limits), (item) =>
      Effect.sync(() => {
        if (item._tag === "Invalid") {
          if (item.sourceId !== null) unreadable.add(item.sourceId)
          return
        }
        const row = item.record as unknown as RoleRow
        if (row.status === "tobedeleted") return
        const list = roles.get(row.user)
        if (list === undefined) roles.set(row.user, [row.role])
        else list.push(row.role)
      }))
    const profiles = new Map<string, Array<ProfileRow["profile"]>>()
    if (hasProfiles) {
      yield* Stream.runForEach(csvFeedItems(source, ProfilesFile as never, limits), (item) =>
        Effect.sync(() => {
          if (item._tag === "Invalid") return
          const row = item.record as unknown as ProfileRow
          if (row.status === "tobedeleted") return
          const list = profiles.get(row.user)
          if (list === undefined) profiles.set(row.user, [row.profile])
          else list.push(row.profile)
        }))
    }
    return { roles, unreadable, profiles } satisfies UserRoles12
  })

/** `users.csv` of a 1.2 set, its roles and profiles joined from the other two files. */
export const usersFile12 = (by: UserRoles12) =>
  spec({
    kind: "users",
    file: "users.csv",
    required: ["sourcedId"],
    refused: {
      columns: USERS_11_COLUMNS,
      why: "the columns of a OneRoster 1.1 users.csv, but the manifest says oneroster.version 1.2: a set that mixes OneRoster versions is refused"
    },
    fields: {
      sourcedId: RequiredText,
      status: Status,
      enabledUser: Bool(true),
      username: OptionalText,
      userIds: UserIds,
      givenName: OptionalText,
      familyName: OptionalText,
      middleName: OptionalText,
      identifier: OptionalText,
      email: OptionalText,
      grades: List,
      agentSourcedIds: List,
      preferredGivenName: OptionalText,
      preferredFamilyName: OptionalText,
      primaryOrgSourcedId: OptionalText
    },
    toRecord: (row): User | { readonly problem: string } => {
      const removed = row.status === "tobedeleted"
      if (by.unreadable.has(row.sourcedId) && !removed) return { problem: `a row of ${ROLES_FILE} for this user does not read: its roles cannot be known` }
      const found = rolesOf(by.roles.get(row.sourcedId) ?? [], row.primaryOrgSourcedId)
      // A user being removed needs no role (its role rows are usually removed with it).
      const roles = "problem" in found && removed ? { roles: [], orgSourceIds: [], orgRoles: [], primaryOrgSourceId: null } : found
      if ("problem" in roles) return { problem: roles.problem.replace(`field "roles": expected at least one role`, `no role in ${ROLES_FILE}`) }
      const identities = [
        ...oneRosterIdentities({ identifier: row.identifier, userIds: row.userIds }),
        ...profileIdentities(by.profiles.get(row.sourcedId) ?? [])
      ]
      return user12(
        { ...row, preferredFirstName: row.preferredGivenName, preferredLastName: row.preferredFamilyName, agentSourceIds: row.agentSourcedIds },
        roles,
        identities
      )
    }
  })
