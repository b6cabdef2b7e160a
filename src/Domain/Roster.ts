/**
 * The provider-neutral roster model.
 *
 * Every provider (OneRoster CSV, OneRoster REST, Clever) decodes its wire format into
 * these shapes; the store only ever sees these. Field names follow OneRoster where the
 * concept is the same, because it is the most general of the three vocabularies.
 *
 * These are plain readonly interfaces rather than Schema classes on purpose: a large
 * district streams ~10M enrollment records through the sync, and a class instance per
 * record would cost allocations for nothing. The wire schemas (which *are* `effect/Schema`)
 * live with each provider and produce these values.
 */

/** A calendar date as `YYYY-MM-DD` (no time zone: it is the district's local date). */
export type IsoDate = string

/** `active` upserts; `tobedeleted` removes (OneRoster delta files, Clever `*.deleted` events). */
export type RecordStatus = "active" | "tobedeleted"

export type OrgType = "district" | "school" | "department" | "local" | "state" | "national"

export interface Org {
  readonly sourceId: string
  readonly status: RecordStatus
  readonly name: string
  readonly type: OrgType
  readonly identifier: string | null
  readonly parentSourceId: string | null
}

export type SessionType = "schoolYear" | "semester" | "term" | "gradingPeriod"

export interface Term {
  readonly sourceId: string
  readonly status: RecordStatus
  readonly title: string
  readonly type: SessionType
  /** OneRoster requires the dates; Clever may leave them out. */
  readonly startDate: IsoDate | null
  readonly endDate: IsoDate | null
  readonly parentSourceId: string | null
  readonly schoolYear: string | null
}

export interface Course {
  readonly sourceId: string
  readonly status: RecordStatus
  readonly title: string
  readonly courseCode: string | null
  readonly schoolYearSourceId: string | null
  readonly orgSourceId: string | null
  readonly grades: ReadonlyArray<string>
  readonly subjects: ReadonlyArray<string>
  readonly subjectCodes: ReadonlyArray<string>
}

export type ClassType = "homeroom" | "scheduled"

export interface Class {
  readonly sourceId: string
  readonly status: RecordStatus
  readonly title: string
  readonly classCode: string | null
  readonly classType: ClassType | null
  readonly location: string | null
  readonly schoolSourceId: string
  readonly courseSourceId: string | null
  readonly termSourceIds: ReadonlyArray<string>
  readonly grades: ReadonlyArray<string>
  readonly subjects: ReadonlyArray<string>
  readonly subjectCodes: ReadonlyArray<string>
  readonly periods: ReadonlyArray<string>
}

/**
 * Roles a rostered person can hold. OneRoster 1.1 gives one per record; Clever merges
 * teacher / staff / district_admin into one user, hence a list.
 */
export type UserRole =
  | "student"
  | "teacher"
  | "administrator"
  | "aide"
  | "guardian"
  | "parent"
  | "proctor"
  | "relative"
  | "staff"
  | "district_admin"

/**
 * Kinds of identity a rostered person has beside their name and address (README "Accounts,
 * linking and activation", the identity model):
 *
 * - `source_id` — the record's own source ID (Clever `id`, OneRoster `sourcedId`). Not listed
 *   in `User.identities`: the store derives it from `User.sourceId`. A **login** identity:
 *   what a Clever or ClassLink sign-in carries.
 * - `user_id` — a OneRoster `userIds[]` entry (`{type, identifier}`; `type` is the district's
 *   label, e.g. `LDAP`, `ClassLink`). Also a **login** identity.
 * - `identifier` — OneRoster `identifier` (usually the SIS id).
 * - `sis_id`, `state_id`, `student_number`, `teacher_number`, `staff_id` — Clever's
 *   role records.
 * - `profile` — a OneRoster 1.2 `userProfiles[]` entry: `profileId` as the value, the
 *   `vendorId` (with `/applicationId` when given) as its type.
 * - `legacy_source_id` — an earlier source ID the provider still names: OneRoster
 *   `metadata.<ns>.legacysourceId` (`type` = `<ns>`, e.g. `ic` for Infinite Campus), Clever's
 *   role `legacy_id` (`type` = `clever`). What re-key detection matches on.
 *
 * A login identity belongs to one rostered user per district (migrations/0011_identities.ts).
 */
export type IdentityKind =
  | "source_id"
  | "user_id"
  | "identifier"
  | "sis_id"
  | "state_id"
  | "student_number"
  | "teacher_number"
  | "staff_id"
  | "profile"
  | "legacy_source_id"

/** Identity kinds a sign-in carries (`rosterd_resolve_login`, account linking by identity). */
export const LOGIN_IDENTITY_KINDS: ReadonlyArray<IdentityKind> = ["source_id", "user_id"]

export interface UserIdentity {
  readonly kind: Exclude<IdentityKind, "source_id">
  /** `user_id`: the entry's `type`; `legacy_source_id`: the namespace; otherwise `null`. */
  readonly type: string | null
  /** As the provider gives it (trimmed). Compared exactly. */
  readonly value: string
}

export interface User {
  readonly sourceId: string
  readonly status: RecordStatus
  readonly enabled: boolean
  readonly roles: ReadonlyArray<UserRole>
  readonly username: string | null
  readonly givenName: string | null
  readonly familyName: string | null
  readonly middleName: string | null
  readonly identifier: string | null
  /** As the district gives it; matching normalises (trim, lower case) separately. */
  readonly email: string | null
  readonly orgSourceIds: ReadonlyArray<string>
  readonly grades: ReadonlyArray<string>
  /** Every identity the provider gives beside `sourceId` (see `IdentityKind`); each once. */
  readonly identities: ReadonlyArray<UserIdentity>
  /**
   * OneRoster 1.2 only (absent elsewhere, stored empty): the names the person goes by
   * (`preferredFirstName`/`preferredLastName`; README "OneRoster 1.2", the display-name rule),
   * the `primaryOrg`, and each role at its org as `role:orgSourceId` (a teacher at one school
   * and an administrator at another is one user with both; `roster_admins` scopes the
   * administrator to its own orgs).
   */
  readonly preferredGivenName?: string | null
  readonly preferredFamilyName?: string | null
  readonly primaryOrgSourceId?: string | null
  readonly orgRoles?: ReadonlyArray<string>
  /**
   * Guardians and contacts (src/Reconcile/Contacts.ts): for a contact, its students; for a
   * student, its contacts (OneRoster `agents`, Clever `student_relationships`). `relationship`
   * when the source says it (Clever); otherwise the contact's role is.
   */
  readonly agents?: ReadonlyArray<Agent>
}

export interface Agent {
  readonly sourceId: string
  readonly relationship: string | null
}

export type EnrollmentRole = "student" | "teacher" | "administrator" | "aide" | "guardian" | "parent" | "proctor" | "relative"

export interface Enrollment {
  /** OneRoster gives one; Clever has none (the provider derives `section:user`). */
  readonly sourceId: string
  readonly status: RecordStatus
  readonly classSourceId: string
  readonly userSourceId: string
  readonly schoolSourceId: string | null
  readonly role: EnrollmentRole
  readonly primary: boolean
  readonly beginDate: IsoDate | null
  readonly endDate: IsoDate | null
}

/** Only what the rules need: the birth date (OneRoster demographics, Clever `dob`). */
export interface Demographic {
  readonly userSourceId: string
  readonly status: RecordStatus
  readonly birthDate: IsoDate | null
}

/** The entity kinds of a snapshot, in the order they are applied (references point backwards). */
export const EntityKinds = ["orgs", "terms", "courses", "classes", "users", "demographics", "enrollments"] as const
export type EntityKind = (typeof EntityKinds)[number]

export interface EntityRecord {
  readonly orgs: Org
  readonly terms: Term
  readonly courses: Course
  readonly classes: Class
  readonly users: User
  readonly demographics: Demographic
  readonly enrollments: Enrollment
}
