import type {
  Class,
  ClassType,
  Course,
  Demographic,
  Enrollment,
  EnrollmentRole,
  Org,
  OrgType,
  RecordStatus,
  SessionType,
  Term,
  User,
  UserIdentity,
  UserRole
} from "../../Domain/Roster.ts"
import { wireDate } from "../../Domain/Values.ts"
import type { AcademicSessionRecord, ClassRecord, CourseRecord, DemographicsRecord, EnrollmentRecord, OrgRecord, UserRecord } from "./OneRosterWire.ts"

/**
 * OneRoster 1.1 JSON → the neutral model. The neutral model *is* OneRoster-shaped, so this
 * is mostly unwrapping references and normalising spelling. A record missing what it
 * cannot exist without returns a problem text (a finding) instead of a record.
 */

type Mapped<A> = { readonly record: A } | { readonly problem: string }

const blank = (value: string | null | undefined): string | null => {
  const trimmed = value?.trim() ?? ""
  return trimmed.length > 0 ? trimmed : null
}

const oneOf = <const V extends ReadonlyArray<string>>(values: V, text: string | null | undefined): V[number] | undefined => {
  const wanted = blank(text)?.toLowerCase()
  return values.find((value) => value.toLowerCase() === wanted)
}

/** `active`, or `tobedeleted` (1.0's `inactive` too). Unknown values read as active. */
export const statusOf = (status: string | null | undefined): RecordStatus => {
  const value = blank(status)?.toLowerCase()
  return value === "tobedeleted" || value === "inactive" ? "tobedeleted" : "active"
}

/**
 * `YYYY-MM-DD`, from a date or a date-time; `undefined` when it is neither (trailing text
 * after the date that is not a time of day included). Ranges are the value guard's.
 */
export const dateOf = (value: string | null | undefined): string | null | undefined => {
  const text = blank(value)
  if (text === null) return null
  return wireDate(text)
}

const ids = (refs: ReadonlyArray<{ readonly sourcedId: string }> | null | undefined) =>
  (refs ?? []).map((ref) => ref.sourcedId.trim()).filter((id) => id.length > 0)

export const org = (r: typeof OrgRecord.Type): Mapped<Org> => {
  const type = oneOf(["district", "school", "department", "local", "state", "national"] as const, r.type) as OrgType | undefined
  const name = blank(r.name)
  if (type === undefined) return { problem: `field "type": expected one of district, school, department, local, state, national` }
  if (name === null) return { problem: `field "name": expected a non-empty value` }
  return { record: { sourceId: r.sourcedId, status: statusOf(r.status), name, type, identifier: blank(r.identifier), parentSourceId: blank(r.parent?.sourcedId) } }
}

export const term = (r: typeof AcademicSessionRecord.Type): Mapped<Term> => {
  const type = oneOf(["schoolYear", "semester", "term", "gradingPeriod"] as const, r.type) as SessionType | undefined
  const startDate = dateOf(r.startDate)
  const endDate = dateOf(r.endDate)
  if (type === undefined) return { problem: `field "type": expected one of schoolYear, semester, term, gradingPeriod` }
  if (startDate === undefined || endDate === undefined) return { problem: `fields "startDate"/"endDate": expected dates in YYYY-MM-DD form` }
  return {
    record: {
      sourceId: r.sourcedId,
      status: statusOf(r.status),
      title: blank(r.title) ?? r.sourcedId,
      type,
      startDate,
      endDate,
      parentSourceId: blank(r.parent?.sourcedId),
      schoolYear: r.schoolYear === undefined || r.schoolYear === null ? null : String(r.schoolYear)
    }
  }
}

export const course = (r: typeof CourseRecord.Type): Mapped<Course> => ({
  record: {
    sourceId: r.sourcedId,
    status: statusOf(r.status),
    title: blank(r.title) ?? r.sourcedId,
    courseCode: blank(r.courseCode),
    schoolYearSourceId: blank(r.schoolYear?.sourcedId),
    orgSourceId: blank(r.org?.sourcedId),
    grades: [...(r.grades ?? [])],
    subjects: [...(r.subjects ?? [])],
    subjectCodes: [...(r.subjectCodes ?? [])]
  }
})

export const classOf = (r: typeof ClassRecord.Type): Mapped<Class> => {
  const school = blank(r.school?.sourcedId)
  if (school === null) return { problem: `field "school": expected a reference to the class's school` }
  return {
    record: {
      sourceId: r.sourcedId,
      status: statusOf(r.status),
      title: blank(r.title) ?? r.sourcedId,
      classCode: blank(r.classCode),
      classType: (oneOf(["homeroom", "scheduled"] as const, r.classType) ?? null) as ClassType | null,
      location: blank(r.location),
      schoolSourceId: school,
      courseSourceId: blank(r.course?.sourcedId),
      termSourceIds: ids(r.terms),
      grades: [...(r.grades ?? [])],
      subjects: [...(r.subjects ?? [])],
      subjectCodes: [...(r.subjectCodes ?? [])],
      periods: [...(r.periods ?? [])]
    }
  }
}

const ROLES = ["administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher"] as const

/** A string (a number as its digits) trimmed, or null. */
const scalar = (value: unknown): string | null =>
  typeof value === "string" ? blank(value) : typeof value === "number" && Number.isFinite(value) ? String(value) : null

const isObject = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const LEGACY_KEY = /^legacy_?sourced?_?id$/i

/**
 * A OneRoster user's identities beside its sourcedId (Domain/Roster.ts `IdentityKind`):
 * `identifier`; each `userIds[]` entry `{type, identifier}` (`user_id`, its type kept); and a
 * `legacysourceId` in the metadata — nested (`metadata.ic.legacysourceId`) or flat
 * (`metadata["ic.legacysourceId"]`), the namespace (`ic`) as its type — which Infinite Campus
 * gives when its 1.2 ids replace 1.1's. Entries that are not `{type, identifier}` objects
 * with an identifier are left out; each identity is listed once.
 */
export const oneRosterIdentities = (r: { readonly identifier?: string | null | undefined; readonly userIds?: unknown; readonly metadata?: unknown }) => {
  const out: Array<UserIdentity> = []
  const seen = new Set<string>()
  const add = (kind: UserIdentity["kind"], type: string | null, value: string | null) => {
    if (value === null) return
    const key = `${kind}\u0000${type ?? ""}\u0000${value}`
    if (seen.has(key)) return
    seen.add(key)
    out.push({ kind, type, value })
  }
  add("identifier", null, blank(r.identifier))
  if (Array.isArray(r.userIds)) {
    for (const entry of r.userIds) {
      if (isObject(entry)) add("user_id", scalar(entry["type"]), scalar(entry["identifier"]))
    }
  }
  if (isObject(r.metadata)) {
    for (const [key, value] of Object.entries(r.metadata)) {
      const dot = key.lastIndexOf(".")
      if (LEGACY_KEY.test(key.slice(dot + 1))) add("legacy_source_id", dot < 0 ? null : blank(key.slice(0, dot)), scalar(value))
      else if (isObject(value)) {
        for (const [inner, legacy] of Object.entries(value)) if (LEGACY_KEY.test(inner)) add("legacy_source_id", blank(key), scalar(legacy))
      }
    }
  }
  return out
}

/** OneRoster `agents` (a guardian's students, a student's guardians); the relationship is the contact's role. */
export const agentsOf = (sourceIds: ReadonlyArray<string>) => sourceIds.map((sourceId) => ({ sourceId, relationship: null }))

export const user = (r: typeof UserRecord.Type): Mapped<User> => {
  const role = oneOf(ROLES, r.role)
  if (role === undefined) return { problem: `field "role": expected one of ${ROLES.join(", ")}` }
  return {
    record: {
      sourceId: r.sourcedId,
      status: statusOf(r.status),
      enabled: r.enabledUser ?? true,
      roles: [role as UserRole],
      username: blank(r.username),
      givenName: blank(r.givenName),
      familyName: blank(r.familyName),
      middleName: blank(r.middleName),
      identifier: blank(r.identifier),
      email: blank(r.email),
      orgSourceIds: ids(r.orgs),
      grades: [...(r.grades ?? [])],
      identities: oneRosterIdentities(r),
      agents: agentsOf(ids(r.agents))
    }
  }
}

export const enrollment = (r: typeof EnrollmentRecord.Type): Mapped<Enrollment> => {
  const role = oneOf(ROLES, r.role)
  const beginDate = dateOf(r.beginDate)
  const endDate = dateOf(r.endDate)
  if (role === undefined) return { problem: `field "role": expected one of ${ROLES.join(", ")}` }
  if (beginDate === undefined || endDate === undefined) return { problem: `fields "beginDate"/"endDate": expected dates in YYYY-MM-DD form` }
  return {
    record: {
      sourceId: r.sourcedId,
      status: statusOf(r.status),
      classSourceId: r.class.sourcedId,
      userSourceId: r.user.sourcedId,
      schoolSourceId: blank(r.school?.sourcedId),
      role: role as EnrollmentRole,
      primary: r.primary ?? false,
      beginDate,
      endDate
    }
  }
}

export const demographic = (r: typeof DemographicsRecord.Type): Mapped<Demographic> => {
  const birthDate = dateOf(r.birthDate)
  if (birthDate === undefined) return { problem: `field "birthDate": expected a date in YYYY-MM-DD form` }
  return { record: { userSourceId: r.sourcedId, status: statusOf(r.status), birthDate } }
}
