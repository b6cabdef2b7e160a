import * as Fs from "node:fs"
import { writeManifest } from "../../bench/OneRosterGenerator.ts"
import { smallDistrictTerm, writeCsv } from "./Fixtures.ts"

/**
 * A privacy canary district: the small district's shape (one school, one class, one teacher
 * and students), every personal field a unique canary string, numbered per person, so a test
 * can search any output for each of them (test/Ops/PrivacyCanary.test.ts,
 * test/Http/StatusPageBrowser.test.ts).
 */
export interface Canaries {
  readonly given: string
  readonly family: string
  readonly middle: string
  readonly emailLocal: string
  readonly emailDomain: string
  readonly username: string
  readonly userId: string
  readonly identifier: string
  readonly phone: string
  readonly password: string
  readonly sms?: string
}

/** A OneRoster user whose every personal field is a canary; `n` numbers the person. */
export const canaryPerson = (canary: Canaries, id: string, role: string, n: number) => ({
  sourcedId: id,
  enabledUser: "true",
  orgSourcedIds: "org-s1",
  role,
  username: `${canary.username}${n}`,
  userIds: `{LDAP:${canary.userId}${n}}`,
  givenName: `${canary.given}${n}`,
  familyName: `${canary.family}${n}`,
  middleName: `${canary.middle}${n}`,
  identifier: `${canary.identifier}${n}`,
  email: `${canary.emailLocal}${n}@${canary.emailDomain}`,
  ...(canary.sms === undefined ? {} : { sms: canary.sms }),
  phone: canary.phone,
  password: canary.password,
  ...(role === "student" ? { grades: "07" } : {})
})

/**
 * Writes the set: the district and school, a school year, a course and class `cls-1` with
 * teacher `t-1` and students `s-1`, `s-2` enrolled; `extraUsers` are written too (e.g. a
 * student with no class); `demographics` as given.
 */
export const writeCanaryDistrict = (
  dir: string,
  canary: Canaries,
  options: { readonly extraUsers?: ReadonlyArray<Record<string, string>>; readonly demographics: ReadonlyArray<Record<string, string>> }
) => {
  Fs.mkdirSync(dir, { recursive: true })
  writeManifest(dir)
  writeCsv(dir, "orgs", [
    { sourcedId: "org-d", name: "Canary District", type: "district" },
    { sourcedId: "org-s1", name: "Canary School", type: "school", parentSourcedId: "org-d" }
  ])
  writeCsv(dir, "academicSessions", [{ sourcedId: "term-1", type: "schoolYear", ...smallDistrictTerm() }])
  writeCsv(dir, "courses", [{ sourcedId: "crs-1", title: "Math 7", schoolYearSourcedId: "term-1", orgSourcedId: "org-s1" }])
  writeCsv(dir, "classes", [
    { sourcedId: "cls-1", title: "Math 7 - P1", courseSourcedId: "crs-1", classType: "scheduled", schoolSourcedId: "org-s1", termSourcedIds: "term-1" }
  ])
  writeCsv(dir, "users", [
    canaryPerson(canary, "t-1", "teacher", 1),
    canaryPerson(canary, "s-1", "student", 2),
    canaryPerson(canary, "s-2", "student", 3),
    ...(options.extraUsers ?? [])
  ])
  writeCsv(dir, "enrollments", [
    { sourcedId: "e-1", classSourcedId: "cls-1", schoolSourcedId: "org-s1", userSourcedId: "t-1", role: "teacher", primary: "true" },
    { sourcedId: "e-2", classSourcedId: "cls-1", schoolSourcedId: "org-s1", userSourcedId: "s-1", role: "student" },
    { sourcedId: "e-3", classSourcedId: "cls-1", schoolSourcedId: "org-s1", userSourcedId: "s-2", role: "student" }
  ])
  writeCsv(dir, "demographics", options.demographics)
}
