import { parse } from "csv-parse/sync"
import * as Fs from "node:fs"
import * as NodePath from "node:path"

/**
 * A OneRoster 1.1 CSV set rewritten as the 1.2 binding gives the same district: `users.csv`
 * with 1.2's columns (no `role`, no `orgSourcedIds`; `primaryOrgSourcedId`, preferred
 * names), each user's role at each of its orgs in `roles.csv` (the first primary), and the
 * manifest at `oneroster.version` 1.2 with `file.roles` in the users' mode. The other files
 * are copied as they are (1.2 keeps their columns). `extra` adds 1.2-only data by user:
 * roles across orgs, preferred names, profiles.
 */

export interface Extra12 {
  readonly roles?: ReadonlyArray<{ readonly roleType: "primary" | "secondary"; readonly role: string; readonly org: string }>
  readonly preferredGivenName?: string
  readonly preferredFamilyName?: string
  readonly profiles?: ReadonlyArray<{ readonly id: string; readonly vendorId: string; readonly applicationId?: string }>
}

const cell = (value: string) => (/[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value)
const write = (file: string, header: ReadonlyArray<string>, rows: ReadonlyArray<Readonly<Record<string, string>>>) =>
  Fs.writeFileSync(file, [header.join(","), ...rows.map((row) => header.map((h) => cell(row[h] ?? "")).join(","))].join("\n") + "\n")
const read = (file: string): Array<Record<string, string>> => parse(Fs.readFileSync(file, "utf8"), { columns: true, bom: true, skip_empty_lines: true })

const USERS_12 = [
  "sourcedId", "status", "dateLastModified", "enabledUser", "username", "userIds", "givenName", "familyName", "middleName", "identifier", "email",
  "sms", "phone", "agentSourcedIds", "grades", "password", "userMasterIdentifier", "preferredGivenName", "preferredMiddleName", "preferredFamilyName",
  "primaryOrgSourcedId", "pronouns"
]
const ROLES = ["sourcedId", "status", "dateLastModified", "userSourcedId", "roleType", "role", "beginDate", "endDate", "orgSourcedId", "userProfileSourcedId"]
const PROFILES = ["sourcedId", "status", "dateLastModified", "userSourcedId", "profileType", "vendorId", "applicationId", "description", "credentialType", "username", "password"]

export const toCsv12 = (from: string, to: string, extra: Readonly<Record<string, Extra12>> = {}) => {
  Fs.mkdirSync(to, { recursive: true })
  for (const file of Fs.readdirSync(from)) {
    if (file !== "users.csv" && file !== "manifest.csv") Fs.copyFileSync(NodePath.join(from, file), NodePath.join(to, file))
  }
  const manifest = read(NodePath.join(from, "manifest.csv"))
  const usersMode = manifest.find((p) => p.propertyName === "file.users")?.value ?? "absent"
  const props = manifest
    .filter((p) => p.propertyName !== "file.roles" && p.propertyName !== "file.userProfiles")
    .map((p) => (p.propertyName === "oneroster.version" ? { ...p, value: "1.2" } : p))
  const hasProfiles = Object.values(extra).some((e) => (e.profiles ?? []).length > 0)
  props.push({ propertyName: "file.roles", value: usersMode }, { propertyName: "file.userProfiles", value: hasProfiles ? usersMode : "absent" })
  write(NodePath.join(to, "manifest.csv"), ["propertyName", "value"], props)
  if (usersMode === "absent") return
  const users = read(NodePath.join(from, "users.csv"))
  const roles: Array<Record<string, string>> = []
  const profiles: Array<Record<string, string>> = []
  const users12 = users.map((u) => {
    const orgs = (u.orgSourcedIds ?? "").split(",").map((o) => o.trim()).filter((o) => o !== "")
    const more = extra[u.sourcedId!] ?? {}
    const userRoles = more.roles ?? orgs.map((org, i) => ({ roleType: i === 0 ? "primary" : "secondary", role: u.role ?? "", org }))
    userRoles.forEach((r, i) =>
      roles.push({ sourcedId: `role-${u.sourcedId}-${i}`, status: u.status ?? "", userSourcedId: u.sourcedId!, roleType: r.roleType, role: r.role, orgSourcedId: r.org })
    )
    for (const p of more.profiles ?? []) {
      profiles.push({ sourcedId: p.id, userSourcedId: u.sourcedId!, profileType: "lms", vendorId: p.vendorId, applicationId: p.applicationId ?? "", credentialType: "password", username: "u", password: "never-read-pw" })
    }
    return {
      ...u,
      preferredGivenName: more.preferredGivenName ?? "",
      preferredFamilyName: more.preferredFamilyName ?? "",
      primaryOrgSourcedId: userRoles[0]?.org ?? orgs[0] ?? ""
    }
  })
  write(NodePath.join(to, "users.csv"), USERS_12, users12)
  write(NodePath.join(to, "roles.csv"), ROLES, roles)
  if (hasProfiles) write(NodePath.join(to, "userProfiles.csv"), PROFILES, profiles)
}
