import { staffRoleOf, type StaffRoleOf } from "../../Domain/Roles.ts"
import { defaultRules } from "../../Domain/DistrictRules.ts"
import type { Class, Course, Demographic, Enrollment, Org, RecordStatus, Term, User, UserIdentity, UserRole } from "../../Domain/Roster.ts"
import { isCalendarDate, wireDate } from "../../Domain/Values.ts"
import type { CleverSection, CleverUser } from "./CleverWire.ts"
import type { CleverCourse, CleverSchool, CleverTerm } from "./CleverWire.ts"

/**
 * Clever records → the neutral model (providers.md §4). Clever ids are the source IDs.
 * Grades become the CEDS codes OneRoster uses (`Kindergarten` → `KG`, `7` → `07`,
 * `PostGraduate` → `PS`), so districts of both providers read alike. E-mails are kept as
 * given; matching normalises them separately.
 */

const blank = (value: string | null | undefined): string | null => {
  const trimmed = value?.trim() ?? ""
  return trimmed.length > 0 ? trimmed : null
}

const GRADES: Readonly<Record<string, string>> = {
  InfantToddler: "IT",
  Preschool: "PR",
  PreKindergarten: "PK",
  TransitionalKindergarten: "TK",
  Kindergarten: "KG",
  PostGraduate: "PS",
  Ungraded: "UG",
  Other: "Other"
}

/** A Clever grade as a CEDS grade code; unknown values are kept as given. */
export const cleverGrade = (grade: string | null | undefined): string | null => {
  const value = blank(grade)
  if (value === null) return null
  if (/^\d{1,2}$/.test(value)) return value.padStart(2, "0")
  return GRADES[value] ?? value
}

/** Clever's `dob` is `M/D/YYYY` (1–2 digit month and day): as `YYYY-MM-DD`, or `undefined` when invalid. */
export const cleverDob = (dob: string | null | undefined): string | null | undefined => {
  const value = blank(dob)
  if (value === null) return null
  const match = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/.exec(value)
  if (match === null) return undefined
  const [, month, day, year] = match
  const iso = `${year}-${month!.padStart(2, "0")}-${day!.padStart(2, "0")}`
  // Whether the year is plausible for a birth date is the value guard's (src/Domain/Values.ts).
  return isCalendarDate(iso) ? iso : undefined
}

/** A term date (`YYYY-MM-DD` or a date-time) as `YYYY-MM-DD`; `undefined` when it names no day. */
const isoDate = (value: string | null | undefined): string | null | undefined => {
  const text = blank(value)
  if (text === null) return null
  return wireDate(text)
}

export const districtOrg = (id: string, name: string | null | undefined, status: RecordStatus = "active"): Org => ({
  sourceId: id,
  status,
  name: blank(name) ?? id,
  type: "district",
  identifier: null,
  parentSourceId: null
})

export const schoolOrg = (school: typeof CleverSchool.Type, status: RecordStatus = "active"): Org => ({
  sourceId: school.id,
  status,
  name: blank(school.name) ?? school.id,
  type: "school",
  identifier: blank(school.school_number) ?? blank(school.sis_id) ?? blank(school.nces_id),
  parentSourceId: blank(school.district)
})

/** A term; `undefined` when a date is present but not a date. */
export const term = (record: typeof CleverTerm.Type, status: RecordStatus = "active"): Term | undefined => {
  const startDate = isoDate(record.start_date)
  const endDate = isoDate(record.end_date)
  if (startDate === undefined || endDate === undefined) return undefined
  return { sourceId: record.id, status, title: blank(record.name) ?? record.id, type: "term", startDate, endDate, parentSourceId: null, schoolYear: null }
}

export const course = (record: typeof CleverCourse.Type, status: RecordStatus = "active"): Course => ({
  sourceId: record.id,
  status,
  title: blank(record.name) ?? blank(record.number) ?? record.id,
  courseCode: blank(record.number),
  schoolYearSourceId: null,
  orgSourceId: null,
  grades: [],
  subjects: [],
  subjectCodes: []
})

export const sectionClass = (section: CleverSection, status: RecordStatus = "active"): Class | undefined => {
  const school = blank(section.school)
  if (school === null) return undefined
  const grade = cleverGrade(section.grade)
  return {
    sourceId: section.id,
    status,
    title: blank(section.name) ?? section.id,
    classCode: blank(section.section_number) ?? blank(section.sis_id),
    classType: null,
    location: null,
    schoolSourceId: school,
    courseSourceId: blank(section.course),
    termSourceIds: blank(section.term_id) === null ? [] : [section.term_id!.trim()],
    grades: grade === null ? [] : [grade],
    // Clever's `subject` is a category from a fixed list ("PE and health", "arts and music"…),
    // not the district's wording: a code, matched by the scope rule's excludeSubjectCodes.
    subjects: [],
    subjectCodes: blank(section.subject) === null ? [] : [section.subject!.trim()],
    periods: blank(section.period) === null ? [] : [section.period!.trim()]
  }
}

export interface Membership {
  readonly userSourceId: string
  readonly role: "teacher" | "student"
  readonly primary: boolean
}

/** A section's members: the primary `teacher`, the other `teachers` (co-teachers), the `students`. */
export const sectionMembers = (section: {
  readonly teacher?: unknown
  readonly teachers?: unknown
  readonly students?: unknown
}): Array<Membership> => {
  const ids = (value: unknown): Array<string> => (Array.isArray(value) ? value.filter((v): v is string => typeof v === "string" && v.length > 0) : [])
  const primary = typeof section.teacher === "string" && section.teacher.length > 0 ? section.teacher : null
  const out: Array<Membership> = []
  if (primary !== null) out.push({ userSourceId: primary, role: "teacher", primary: true })
  for (const teacher of new Set(ids(section.teachers))) {
    if (teacher !== primary) out.push({ userSourceId: teacher, role: "teacher", primary: false })
  }
  for (const student of new Set(ids(section.students))) out.push({ userSourceId: student, role: "student", primary: false })
  return out
}

export const enrollment = (sectionId: string, school: string | null, member: Membership, status: RecordStatus = "active"): Enrollment => ({
  sourceId: `${sectionId}:${member.userSourceId}`,
  status,
  classSourceId: sectionId,
  userSourceId: member.userSourceId,
  schoolSourceId: school,
  role: member.role,
  primary: member.primary,
  beginDate: null,
  endDate: null
})

const defaultStaffRole = staffRoleOf(defaultRules.staff)

/**
 * A Clever contact (`roles.contact`, read leniently: a malformed entry is left out) as a
 * guardian: `parent` when it is some student's parent, `guardian` otherwise; its
 * `student_relationships` as agents, the relationship as Clever names it (lower case:
 * `parent`, `grandparent`, `aunt/uncle`, …), else its type. Whether it is stored is the
 * district's rule `contacts` (src/Reconcile/Contacts.ts).
 */
const contactOf = (record: CleverUser, status: RecordStatus): User | null => {
  const contact = record.roles.contact
  if (typeof contact !== "object" || contact === null) return null
  const text = (value: unknown) => (typeof value === "string" ? blank(value) : null)
  const relationships = (contact as { readonly student_relationships?: unknown }).student_relationships
  const agents = (Array.isArray(relationships) ? relationships : []).flatMap((entry: unknown) => {
    if (typeof entry !== "object" || entry === null) return []
    const e = entry as Readonly<Record<string, unknown>>
    const student = text(e["student"])
    return student === null ? [] : [{ sourceId: student, relationship: (text(e["relationship"]) ?? text(e["type"]))?.toLowerCase() ?? null }]
  })
  return {
    sourceId: record.id,
    status,
    enabled: true,
    roles: [agents.some((a) => a.relationship === "parent") ? "parent" : "guardian"],
    username: null,
    givenName: blank(record.name?.first),
    familyName: blank(record.name?.last),
    middleName: blank(record.name?.middle),
    identifier: text((contact as { readonly sis_id?: unknown }).sis_id),
    email: blank(record.email),
    orgSourceIds: blank(record.district) === null ? [] : [record.district!.trim()],
    grades: [],
    identities: [],
    agents
  }
}

/**
 * A user, or `null` for a record with no role rosterd knows. Contacts (parents, guardians)
 * are users with a contact role (`contactOf`).
 * A staff record is `staff` (a school administrator) or `aide` by its title and roles, per
 * the district's rule `staff` (`staffRole`, built from it once per snapshot).
 */
export const user = (record: CleverUser, status: RecordStatus = "active", staffRole: StaffRoleOf = defaultStaffRole): User | null => {
  const { district_admin, staff, student, teacher } = record.roles
  const roles: Array<UserRole> = []
  if (student) roles.push("student")
  if (teacher) roles.push("teacher")
  if (staff) roles.push(staffRole([staff.title, ...(staff.roles ?? [])]))
  if (district_admin) roles.push("district_admin")
  if (roles.length === 0) return contactOf(record, status)
  const orgs = new Set<string>()
  for (const id of [student?.school, ...(student?.schools ?? []), teacher?.school, ...(teacher?.schools ?? []), ...(staff?.schools ?? [])]) {
    const value = blank(id)
    if (value !== null) orgs.add(value)
  }
  if (district_admin && blank(record.district) !== null) orgs.add(record.district!.trim())
  const grade = cleverGrade(student?.grade)
  return {
    sourceId: record.id,
    status,
    enabled: true,
    roles,
    username: blank(student?.credentials?.district_username) ?? blank(teacher?.credentials?.district_username) ??
      blank(staff?.credentials?.district_username),
    givenName: blank(record.name?.first),
    familyName: blank(record.name?.last),
    middleName: blank(record.name?.middle),
    identifier: blank(student?.student_number) ?? blank(student?.sis_id) ?? blank(teacher?.teacher_number) ??
      blank(teacher?.sis_id) ?? blank(staff?.staff_id),
    email: blank(record.email),
    orgSourceIds: [...orgs],
    grades: grade === null ? [] : [grade],
    identities: cleverIdentities(record)
  }
}

/** A student's birth date as demographics; `undefined` when `dob` is not a valid M/D/YYYY date. */
export const demographic = (record: CleverUser, status: RecordStatus = "active"): Demographic | null | undefined => {
  if (!record.roles.student) return null
  const birthDate = cleverDob(record.roles.student.dob)
  if (birthDate === undefined) return undefined
  return { userSourceId: record.id, status, birthDate }
}

/**
 * A Clever user's identities beside its id (Domain/Roster.ts `IdentityKind`), from its role
 * records: `sis_id`, `state_id`, `student_number` / `teacher_number`, `staff_id`, and a role's
 * `legacy_id` (its id before Clever's API v3) as `legacy_source_id` of type `clever`. Each once.
 */
export const cleverIdentities = (record: CleverUser): Array<UserIdentity> => {
  const out: Array<UserIdentity> = []
  const seen = new Set<string>()
  const add = (kind: UserIdentity["kind"], value: string | null | undefined, type: string | null = null) => {
    const text = blank(value)
    if (text === null || seen.has(`${kind}\u0000${text}`)) return
    seen.add(`${kind}\u0000${text}`)
    out.push({ kind, type, value: text })
  }
  const { staff, student, teacher } = record.roles
  add("sis_id", student?.sis_id)
  add("state_id", student?.state_id)
  add("student_number", student?.student_number)
  // (A student's v3 id is its old id: a legacy id equal to the id says nothing.)
  if (blank(student?.legacy_id) !== record.id) add("legacy_source_id", student?.legacy_id, "clever")
  add("sis_id", teacher?.sis_id)
  add("state_id", teacher?.state_id)
  add("teacher_number", teacher?.teacher_number)
  if (blank(teacher?.legacy_id) !== record.id) add("legacy_source_id", teacher?.legacy_id, "clever")
  add("staff_id", staff?.staff_id)
  return out
}
