import type { EntityKind, EntityRecord, UserIdentity } from "../Domain/Roster.ts"
import { normalizeGrades } from "../Domain/Grades.ts"
import { maskingBits } from "../Domain/Masking.ts"
import type { CopyValue } from "../Store/Copy.ts"

/**
 * How each entity kind maps onto its staging table and its live table.
 *
 * One list of columns per kind drives the staging DDL, the COPY encoding, and the diff
 * (which columns are compared and written), so adding a field is one line here plus a
 * migration.
 */
export interface Column<A> {
  /** Column name, the same in staging and live tables. */
  readonly name: string
  /** Its SQL type, the same in staging, plan and live tables. */
  readonly type: "text" | "date" | "boolean" | "text[]" | "smallint"
  readonly get: (record: A) => CopyValue
}

export interface EntitySpec<K extends EntityKind> {
  readonly kind: K
  /** The live table; `null` for demographics, which are merged into users. */
  readonly table: string | null
  /** Name used in counts and findings. */
  readonly label: string
  readonly sourceId: (record: EntityRecord[K]) => string
  readonly columns: ReadonlyArray<Column<EntityRecord[K]>>
  /**
   * Columns staged (after `columns`) but not compared or written by the keyed diff: a step
   * of their own applies them (users' `identities`: src/Reconcile/Identities.ts).
   */
  readonly staged?: ReadonlyArray<Column<EntityRecord[K]>>
}

/** The separator of kind, type and value in a staged identity (see src/Reconcile/Identities.ts). */
export const IDENTITY_SEPARATOR = "\u001f"

/** A user's identities as staged: `kind`, `type` (or empty) and `value` joined by U+001F. */
export const encodeIdentities = (identities: ReadonlyArray<UserIdentity>): ReadonlyArray<string> =>
  identities.map((i) => `${i.kind}${IDENTITY_SEPARATOR}${i.type ?? ""}${IDENTITY_SEPARATOR}${i.value}`)

const col = <A>(name: string, type: Column<A>["type"], get: Column<A>["get"]): Column<A> => ({ name, type, get })

export const Entities: { readonly [K in EntityKind]: EntitySpec<K> } = {
  orgs: {
    kind: "orgs",
    table: "schools",
    label: "schools",
    sourceId: (r) => r.sourceId,
    columns: [
      col("name", "text", (r) => r.name),
      col("org_type", "text", (r) => r.type),
      col("identifier", "text", (r) => r.identifier),
      col("parent_source_id", "text", (r) => r.parentSourceId)
    ]
  },
  terms: {
    kind: "terms",
    table: "terms",
    label: "terms",
    sourceId: (r) => r.sourceId,
    columns: [
      col("title", "text", (r) => r.title),
      col("session_type", "text", (r) => r.type),
      col("start_date", "date", (r) => r.startDate),
      col("end_date", "date", (r) => r.endDate),
      col("parent_source_id", "text", (r) => r.parentSourceId),
      col("school_year", "text", (r) => r.schoolYear)
    ]
  },
  courses: {
    kind: "courses",
    table: "courses",
    label: "courses",
    sourceId: (r) => r.sourceId,
    columns: [
      col("title", "text", (r) => r.title),
      col("course_code", "text", (r) => r.courseCode),
      col("school_year_source_id", "text", (r) => r.schoolYearSourceId),
      col("org_source_id", "text", (r) => r.orgSourceId),
      col("grades", "text[]", (r) => r.grades),
      col("subjects", "text[]", (r) => r.subjects),
      col("subject_codes", "text[]", (r) => r.subjectCodes)
    ]
  },
  classes: {
    kind: "classes",
    table: "classes",
    label: "classes",
    sourceId: (r) => r.sourceId,
    columns: [
      col("title", "text", (r) => r.title),
      col("class_code", "text", (r) => r.classCode),
      col("class_type", "text", (r) => r.classType),
      col("location", "text", (r) => r.location),
      col("school_source_id", "text", (r) => r.schoolSourceId),
      col("course_source_id", "text", (r) => r.courseSourceId),
      col("term_source_ids", "text[]", (r) => r.termSourceIds),
      col("grades", "text[]", (r) => r.grades),
      col("subjects", "text[]", (r) => r.subjects),
      col("subject_codes", "text[]", (r) => r.subjectCodes),
      col("periods", "text[]", (r) => r.periods),
      // Grade rule: PK, K, 1-12 or Other (see Domain/Grades.ts); the district's values stay in `grades`.
      col("grade_levels", "text[]", (r) => normalizeGrades(r.grades))
    ]
  },
  users: {
    kind: "users",
    table: "users",
    label: "users",
    sourceId: (r) => r.sourceId,
    columns: [
      col("roles", "text[]", (r) => r.roles),
      col("enabled", "boolean", (r) => r.enabled),
      col("username", "text", (r) => r.username),
      col("given_name", "text", (r) => r.givenName),
      col("family_name", "text", (r) => r.familyName),
      col("middle_name", "text", (r) => r.middleName),
      col("identifier", "text", (r) => r.identifier),
      col("email", "text", (r) => r.email),
      col("org_source_ids", "text[]", (r) => r.orgSourceIds),
      col("grades", "text[]", (r) => r.grades),
      col("grade_levels", "text[]", (r) => normalizeGrades(r.grades)),
      // OneRoster 1.2 (migrations/0016): empty for the other sources.
      col("preferred_given_name", "text", (r) => r.preferredGivenName ?? null),
      col("preferred_family_name", "text", (r) => r.preferredFamilyName ?? null),
      col("primary_org_source_id", "text", (r) => r.primaryOrgSourceId ?? null),
      col("org_roles", "text[]", (r) => r.orgRoles ?? [])
    ],
    staged: [
      col("identities", "text[]", (r) => encodeIdentities(r.identities)),
      // `sourceId` U+001F `relationship` (src/Reconcile/Contacts.ts); entries with control characters are left out.
      col("agents", "text[]", (r) => (r.agents ?? []).filter((a) => !/[\u0000-\u001f\u007f]/.test(a.sourceId + (a.relationship ?? ""))).map((a) => `${a.sourceId}\u001f${a.relationship ?? ""}`)),
      // How the personal fields look to the masking check, judged once (src/Domain/Masking.ts).
      col("masking", "smallint", (r) => maskingBits(r.email, r.givenName, r.familyName))
    ]
  },
  demographics: {
    kind: "demographics",
    table: null,
    label: "demographics",
    sourceId: (r) => r.userSourceId,
    columns: [col("birth_date", "date", (r) => r.birthDate)]
  },
  enrollments: {
    kind: "enrollments",
    table: "enrollments",
    label: "enrollments",
    sourceId: (r) => r.sourceId,
    columns: [
      col("class_source_id", "text", (r) => r.classSourceId),
      col("user_source_id", "text", (r) => r.userSourceId),
      col("role", "text", (r) => r.role),
      col("is_primary", "boolean", (r) => r.primary),
      col("school_source_id", "text", (r) => r.schoolSourceId),
      col("begin_date", "date", (r) => r.beginDate),
      col("end_date", "date", (r) => r.endDate)
    ]
  }
}

/** Keyed by `(district_id, source_id)` in the live store: everything but enrollments and demographics. */
export const KeyedKinds = ["orgs", "terms", "courses", "classes", "users"] as const
export type KeyedKind = (typeof KeyedKinds)[number]

/** Every staged column of a kind: the diffed ones, then the staged-only ones. */
export const stagedColumns = <K extends EntityKind>(kind: K): ReadonlyArray<Column<EntityRecord[K]>> => {
  const spec = Entities[kind] as EntitySpec<K>
  return spec.staged === undefined ? spec.columns : [...spec.columns, ...spec.staged]
}

/** The staging table of a kind (a temp table of the run's session). */
export const stageTable = (kind: EntityKind) => `stage_${kind}`

/**
 * SQL: a staged row (alias `s`) that a run applies: it read, repeats no other, is listed as
 * active and is in scope (the district rules excluded nothing of it).
 */
export const listedStaged = (s = "s") => `NOT ${s}.invalid AND NOT ${s}.shadowed AND ${s}.status = 'active' AND ${s}.excluded IS NULL`
