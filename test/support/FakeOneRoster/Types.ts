/**
 * Record shapes of the OneRoster 1.1 REST binding as the fake serves them (providers.md
 * §2.6–2.7; field names and enumerations from
 * ../shared/reference/data/oneroster-1.1-openapi/oneroster-v1p1-openapi3.json).
 *
 * Only the rostering entities are modelled. Scalar string fields the CSV leaves blank are
 * sent as `""` (ClassLink sends empty strings rather than leaving fields out); references
 * and boolean race flags the CSV leaves blank are left out. Booleans are JSON booleans
 * here; the server can send them as strings (`booleansAsStrings`).
 */

/** Where the API lives under the server root. */
export const API_PATH = "/ims/oneroster/v1p1"

export type Status = "active" | "tobedeleted"

export type RefType =
  | "academicSession" | "category" | "class" | "course" | "demographics" | "enrollment" | "lineItem"
  | "org" | "resource" | "result" | "student" | "teacher" | "user" | "term" | "gradingPeriod"

/**
 * A reference. `href` is a path under the server root (`/ims/oneroster/v1p1/orgs/<id>`)
 * in the district; the server makes it absolute with its base URL when it answers.
 */
export interface GUIDRef {
  readonly href: string
  readonly sourcedId: string
  readonly type: RefType
}

export interface Base {
  readonly sourcedId: string
  readonly status: Status
  /** ISO 8601 UTC with milliseconds, e.g. `2026-08-15T00:00:00.000Z`. */
  readonly dateLastModified: string
  readonly metadata?: Readonly<Record<string, unknown>>
}

export type OrgType = "department" | "district" | "local" | "national" | "school" | "state"

export interface Org extends Base {
  readonly name: string
  readonly type: OrgType | (string & {})
  readonly identifier: string
  readonly parent?: GUIDRef
  /** Orgs naming this one as parent, kept in step by the district. */
  readonly children: ReadonlyArray<GUIDRef>
}

export type SessionType = "gradingPeriod" | "semester" | "schoolYear" | "term"

export interface AcademicSession extends Base {
  readonly title: string
  readonly type: SessionType | (string & {})
  /** `YYYY-MM-DD` */
  readonly startDate: string
  readonly endDate: string
  readonly parent?: GUIDRef
  readonly children: ReadonlyArray<GUIDRef>
  /** `YYYY`, the year the school year ends. */
  readonly schoolYear: string
}

export interface Course extends Base {
  readonly title: string
  readonly courseCode: string
  readonly schoolYear?: GUIDRef
  readonly grades: ReadonlyArray<string>
  readonly subjects: ReadonlyArray<string>
  readonly subjectCodes: ReadonlyArray<string>
  readonly org?: GUIDRef
}

export interface Class extends Base {
  readonly title: string
  readonly classCode: string
  readonly classType: "homeroom" | "scheduled" | (string & {})
  readonly location: string
  readonly grades: ReadonlyArray<string>
  readonly subjects: ReadonlyArray<string>
  readonly subjectCodes: ReadonlyArray<string>
  readonly course?: GUIDRef
  readonly school?: GUIDRef
  readonly terms: ReadonlyArray<GUIDRef>
  /** A string in the 1.1 OpenAPI (the CSV cell as is, e.g. `"1"` or `"1,2"`); an array only in 1.2. */
  readonly periods: string
}

export type Role = "administrator" | "aide" | "guardian" | "parent" | "proctor" | "relative" | "student" | "teacher"

export interface UserId {
  readonly type: string
  readonly identifier: string
}

export interface User extends Base {
  readonly username: string
  readonly userIds: ReadonlyArray<UserId>
  readonly enabledUser: boolean
  readonly givenName: string
  readonly familyName: string
  readonly middleName: string
  readonly role: Role | (string & {})
  readonly identifier: string
  readonly email: string
  readonly sms: string
  readonly phone: string
  readonly agents: ReadonlyArray<GUIDRef>
  readonly orgs: ReadonlyArray<GUIDRef>
  readonly grades: ReadonlyArray<string>
  /** Only when the CSV has one. */
  readonly password?: string
}

export interface Enrollment extends Base {
  readonly user: GUIDRef
  readonly class: GUIDRef
  readonly school: GUIDRef
  readonly role: Role | (string & {})
  /** `false` when the CSV leaves it blank (students, co-teachers). */
  readonly primary: boolean
  readonly beginDate: string
  readonly endDate: string
}

export const RACE_FLAGS = [
  "americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican", "nativeHawaiianOrOtherPacificIslander",
  "white", "demographicRaceTwoOrMoreRaces", "hispanicOrLatinoEthnicity"
] as const

export type Demographics = Base & {
  /** `YYYY-MM-DD` or `""`. */
  readonly birthDate: string
  readonly sex: "male" | "female" | (string & {})
  readonly countryOfBirthCode: string
  readonly stateOfBirthAbbreviation: string
  readonly cityOfBirth: string
  readonly publicSchoolResidenceStatus: string
} & { readonly [K in (typeof RACE_FLAGS)[number]]?: boolean }

/** The district's tables, by the name of their base endpoint. */
export interface Records {
  readonly orgs: Org
  readonly academicSessions: AcademicSession
  readonly courses: Course
  readonly classes: Class
  readonly users: User
  readonly enrollments: Enrollment
  readonly demographics: Demographics
}

export type TableName = keyof Records

export const TABLES: ReadonlyArray<TableName> = ["orgs", "academicSessions", "courses", "classes", "users", "enrollments", "demographics"]

/** The GUIDRef type of a record of each table, and the path its `href` points to. */
export const REF_TYPE: Readonly<Record<TableName, RefType>> = {
  orgs: "org",
  academicSessions: "academicSession",
  courses: "course",
  classes: "class",
  users: "user",
  enrollments: "enrollment",
  demographics: "demographics"
}

interface FieldSet {
  /** Scalars, string arrays and `metadata`: filterable, sortable, selectable. */
  readonly scalars: ReadonlyArray<string>
  /** GUIDRef fields (single or array): selectable, filterable as `<field>.sourcedId|type|href`. */
  readonly refs: ReadonlyArray<string>
}

const BASE = ["sourcedId", "status", "dateLastModified", "metadata"]

/** The fields of each table's records, for `filter`, `sort` and `fields` validation. */
export const FIELDS: Readonly<Record<TableName, FieldSet>> = {
  orgs: { scalars: [...BASE, "name", "type", "identifier"], refs: ["parent", "children"] },
  academicSessions: { scalars: [...BASE, "title", "type", "startDate", "endDate", "schoolYear"], refs: ["parent", "children"] },
  courses: { scalars: [...BASE, "title", "courseCode", "grades", "subjects", "subjectCodes"], refs: ["schoolYear", "org"] },
  classes: {
    scalars: [...BASE, "title", "classCode", "classType", "location", "grades", "subjects", "subjectCodes", "periods"],
    refs: ["course", "school", "terms"]
  },
  users: {
    scalars: [...BASE, "username", "userIds", "enabledUser", "givenName", "familyName", "middleName", "role", "identifier", "email", "sms", "phone", "grades", "password"],
    refs: ["agents", "orgs"]
  },
  enrollments: { scalars: [...BASE, "role", "primary", "beginDate", "endDate"], refs: ["user", "class", "school"] },
  demographics: {
    scalars: [...BASE, "birthDate", "sex", ...RACE_FLAGS, "countryOfBirthCode", "stateOfBirthAbbreviation", "cityOfBirth", "publicSchoolResidenceStatus"],
    refs: []
  }
}

/** Boolean fields, sent as `"true"`/`"false"` by servers that stringify them. */
export const BOOLEAN_FIELDS: Readonly<Partial<Record<TableName, ReadonlyArray<string>>>> = {
  users: ["enabledUser"],
  enrollments: ["primary"],
  demographics: RACE_FLAGS
}
