/**
 * Record shapes of the Clever Data API v3.0 as the fake serves them (field names and
 * enumerations from ../shared/reference/data/clever-swagger/v3.0.yml and v3.0-events.yml).
 *
 * Only what a roster sync reads is modelled; optional scalars the source data does not
 * have are left out of the record (Clever omits or nulls them — a client must tolerate
 * both), except `section.teacher`, which is `null` for a section without teachers.
 */

export type Grade =
  | "InfantToddler" | "Preschool" | "PreKindergarten" | "TransitionalKindergarten" | "Kindergarten"
  | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "10" | "11" | "12" | "13"
  | "PostGraduate" | "Ungraded" | "Other" | ""

export type Subject =
  | "english/language arts" | "math" | "science" | "social studies" | "language" | "homeroom/advisory"
  | "interventions/online learning" | "technology and engineering" | "PE and health" | "arts and music" | "other" | ""

export interface Name {
  readonly first?: string
  readonly middle?: string
  readonly last?: string
}

export interface Credentials {
  readonly district_username?: string
}

export interface District {
  readonly id: string
  readonly name: string
  readonly sis_type: string
  readonly launch_date: string
  readonly portal_url: string
  readonly login_methods: ReadonlyArray<string>
  readonly state?: "running" | "pending" | "error" | "paused" | "success" | ""
  readonly last_sync?: string | null
  readonly pause_start?: string | null
  readonly pause_end?: string | null
  readonly error?: string
}

export interface School {
  readonly id: string
  readonly district: string
  readonly name: string
  readonly sis_id: string
  readonly school_number: string
  readonly low_grade?: Grade
  readonly high_grade?: Grade
  readonly created: string
  readonly last_modified: string
  readonly ext?: Readonly<Record<string, unknown>>
}

export interface Term {
  readonly id: string
  readonly district: string
  readonly name?: string
  /** `YYYY-MM-DD` */
  readonly start_date?: string
  readonly end_date?: string
}

export interface Course {
  readonly id: string
  readonly district: string
  readonly name?: string
  readonly number?: string
}

export interface Section {
  readonly id: string
  readonly district: string
  readonly school: string
  readonly course?: string | null
  readonly term_id?: string | null
  /** The primary teacher; `null` when the section has no teacher. */
  readonly teacher: string | null
  /** Every teacher, the primary one included. */
  readonly teachers: ReadonlyArray<string>
  readonly students: ReadonlyArray<string>
  readonly name: string
  readonly sis_id: string
  readonly subject?: Subject
  readonly grade?: Grade
  readonly period?: string
  readonly section_number?: string
  readonly created: string
  readonly last_modified: string
  readonly ext?: Readonly<Record<string, unknown>>
}

export interface StudentRole {
  readonly sis_id?: string
  readonly student_number?: string
  readonly state_id?: string
  /** `M/D/YYYY`, no leading zeros. */
  readonly dob?: string
  readonly grade?: Grade
  readonly graduation_year?: string
  readonly gender?: "M" | "F" | "X" | ""
  readonly race?: string
  readonly hispanic_ethnicity?: "Y" | "N" | ""
  readonly ell_status?: "Y" | "N" | ""
  /** Primary school. */
  readonly school?: string
  readonly schools?: ReadonlyArray<string>
  readonly credentials?: Credentials
  readonly legacy_id?: string
  readonly ext?: Readonly<Record<string, unknown>>
}

export interface TeacherRole {
  readonly sis_id?: string
  readonly teacher_number?: string
  readonly state_id?: string
  readonly title?: string
  readonly district?: string
  readonly school?: string
  readonly schools?: ReadonlyArray<string>
  readonly credentials?: Credentials
  readonly legacy_id?: string
  readonly ext?: Readonly<Record<string, unknown>>
}

export interface StaffRole {
  readonly staff_id?: string
  readonly title?: string
  readonly department?: string
  readonly roles?: ReadonlyArray<string>
  readonly schools?: ReadonlyArray<string>
  readonly credentials?: Credentials
  readonly legacy_id?: string
  readonly ext?: Readonly<Record<string, unknown>>
}

export interface DistrictAdminRole {
  readonly title?: string
  readonly legacy_id?: string
}

export interface ContactRole {
  readonly sis_id?: string
  readonly phone?: string
  readonly phone_type?: "Cell" | "Home" | "Work" | "Other" | ""
  readonly legacy_id?: string
  readonly student_relationships?: ReadonlyArray<{
    readonly student: string
    readonly relationship?: "Parent" | "Grandparent" | "Self" | "Aunt/Uncle" | "Sibling" | "Other" | ""
    readonly type?: "Parent/Guardian" | "Emergency" | "Primary" | "Secondary" | "Family" | "Other" | ""
  }>
}

export interface Roles {
  readonly student?: StudentRole
  readonly teacher?: TeacherRole
  readonly staff?: StaffRole
  readonly district_admin?: DistrictAdminRole
  readonly contact?: ContactRole
}

export type Role = keyof Roles

export interface User {
  readonly id: string
  readonly district: string
  readonly email?: string
  readonly name: Name
  readonly roles: Roles
  readonly created: string
  readonly last_modified: string
}

/** The collections the fake serves, by their URL segment. */
export interface Records {
  readonly districts: District
  readonly schools: School
  readonly terms: Term
  readonly courses: Course
  readonly sections: Section
  readonly users: User
}

export type CollectionName = keyof Records

export const COLLECTIONS: ReadonlyArray<CollectionName> = ["districts", "schools", "terms", "courses", "sections", "users"]

export type EventType = `${CollectionName}.${"created" | "updated" | "deleted"}`

/**
 * An event as listed by `/v3.0/events`. `previous_attributes` (old values of the changed
 * top-level fields, `*.updated` only) sits inside `data` by default, or beside it with the
 * district's `previousAttributes: "beside"` option — the swagger and Stripe-style APIs
 * disagree, so the provider must read both places.
 */
export interface CleverEvent {
  readonly id: string
  readonly type: EventType | (string & {})
  readonly created: string
  readonly data: {
    readonly object: Records[CollectionName] | ForeignObject
    readonly previous_attributes?: Readonly<Record<string, unknown>>
  }
  readonly previous_attributes?: Readonly<Record<string, unknown>>
}

/** The object of an event the fake does not model (e.g. `resources.created`), appended by a test. */
export interface ForeignObject {
  readonly id: string
  readonly [key: string]: unknown
}
