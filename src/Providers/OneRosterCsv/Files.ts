import { Schema } from "effect"
import type { EntityKind, EntityRecord, UserRole } from "../../Domain/Roster.ts"
import { agentsOf, oneRosterIdentities } from "../OneRosterRest/OneRosterMapping.ts"
import { Bool, Enum, List, OptionalDate, OptionalEnum, OptionalText, RequiredDate, RequiredText, Status, UserIds } from "./Columns.ts"

/**
 * The OneRoster 1.1 CSV files rosterd reads, their columns and how a row becomes a
 * neutral record. Headers: providers.md §3.3. Columns we do not read (passwords, phone
 * numbers, race flags, gradebook files, vendor `metadata.*` columns) are ignored, and
 * never stored.
 */
/**
 * The version of this mapping, part of every record's digest (src/Reconcile/Digests.ts).
 * Bump it with any change that makes the same cells decode differently — a column read or
 * renamed, a default, a normalisation in Columns.ts — so that the next run of every
 * district compares in full instead of trusting digests made by the old code.
 */
export const CSV_MAPPING_VERSION = "oneroster-1.1-csv/3"

export interface CsvFileSpec<K extends EntityKind, Row> {
  readonly kind: K
  readonly file: string
  /** Missing one of these in the header fails the run: the file is not what it claims. */
  readonly required: ReadonlyArray<string>
  /** Read when present; an absent optional column reads as empty cells. */
  readonly optional: ReadonlyArray<string>
  /** Columns that must not be there (another OneRoster version's), and what they mean: the file is refused. */
  readonly refused?: { readonly columns: ReadonlyArray<string>; readonly why: string } | undefined
  readonly row: Schema.Schema<Row, Readonly<Record<string, string>>>
  /** The record, or what is wrong with the row beyond its cells (a 1.2 user without a role in roles.csv). */
  readonly toRecord: (row: Row) => EntityRecord[K] | { readonly problem: string }
  /** The identity of a row, read leniently, for rows that fail to decode. */
  readonly identity: (cells: Readonly<Record<string, string>>) => {
    readonly sourceId: string | null
    readonly classSourceId?: string | null
    readonly userSourceId?: string | null
  }
}

export const spec = <K extends EntityKind, Fields extends Schema.Struct.Fields>(options: {
  readonly kind: K
  readonly file: string
  readonly required: ReadonlyArray<keyof Fields & string>
  readonly fields: Fields
  readonly toRecord: (row: Schema.Struct.Type<Fields>) => EntityRecord[K] | { readonly problem: string }
  readonly identity?: CsvFileSpec<K, Schema.Struct.Type<Fields>>["identity"]
  readonly refused?: CsvFileSpec<K, Schema.Struct.Type<Fields>>["refused"]
}): CsvFileSpec<K, Schema.Struct.Type<Fields>> => ({
  kind: options.kind,
  file: options.file,
  required: options.required,
  refused: options.refused,
  optional: Object.keys(options.fields).filter((name) => !options.required.includes(name)),
  row: Schema.Struct(options.fields) as unknown as Schema.Schema<
    Schema.Struct.Type<Fields>,
    Readonly<Record<string, string>>
  >,
  toRecord: options.toRecord,
  identity: options.identity ?? ((cells) => ({ sourceId: blankToNull(cells.sourcedId) }))
})

const blankToNull = (value: string | undefined): string | null => {
  const trimmed = value?.trim() ?? ""
  return trimmed.length > 0 ? trimmed : null
}

export const OrgsFile = spec({
  kind: "orgs",
  file: "orgs.csv",
  required: ["sourcedId", "name", "type"],
  fields: {
    sourcedId: RequiredText,
    status: Status,
    name: RequiredText,
    type: Enum("district", "school", "department", "local", "state", "national"),
    identifier: OptionalText,
    parentSourcedId: OptionalText
  },
  toRecord: (row) => ({
    sourceId: row.sourcedId,
    status: row.status,
    name: row.name,
    type: row.type,
    identifier: row.identifier,
    parentSourceId: row.parentSourcedId
  })
})

export const AcademicSessionsFile = spec({
  kind: "terms",
  file: "academicSessions.csv",
  required: ["sourcedId", "title", "type", "startDate", "endDate"],
  fields: {
    sourcedId: RequiredText,
    status: Status,
    title: RequiredText,
    type: Enum("schoolYear", "semester", "term", "gradingPeriod"),
    startDate: RequiredDate,
    endDate: RequiredDate,
    parentSourcedId: OptionalText,
    schoolYear: OptionalText
  },
  toRecord: (row) => ({
    sourceId: row.sourcedId,
    status: row.status,
    title: row.title,
    type: row.type,
    startDate: row.startDate,
    endDate: row.endDate,
    parentSourceId: row.parentSourcedId,
    schoolYear: row.schoolYear
  })
})

export const CoursesFile = spec({
  kind: "courses",
  file: "courses.csv",
  required: ["sourcedId", "title"],
  fields: {
    sourcedId: RequiredText,
    status: Status,
    schoolYearSourcedId: OptionalText,
    title: RequiredText,
    courseCode: OptionalText,
    grades: List,
    orgSourcedId: OptionalText,
    subjects: List,
    subjectCodes: List
  },
  toRecord: (row) => ({
    sourceId: row.sourcedId,
    status: row.status,
    title: row.title,
    courseCode: row.courseCode,
    schoolYearSourceId: row.schoolYearSourcedId,
    orgSourceId: row.orgSourcedId,
    grades: row.grades,
    subjects: row.subjects,
    subjectCodes: row.subjectCodes
  })
})

export const ClassesFile = spec({
  kind: "classes",
  file: "classes.csv",
  required: ["sourcedId", "title", "schoolSourcedId"],
  fields: {
    sourcedId: RequiredText,
    status: Status,
    title: RequiredText,
    grades: List,
    courseSourcedId: OptionalText,
    classCode: OptionalText,
    classType: OptionalEnum("homeroom", "scheduled"),
    location: OptionalText,
    schoolSourcedId: RequiredText,
    termSourcedIds: List,
    subjects: List,
    subjectCodes: List,
    periods: List
  },
  toRecord: (row) => ({
    sourceId: row.sourcedId,
    status: row.status,
    title: row.title,
    classCode: row.classCode,
    classType: row.classType,
    location: row.location,
    schoolSourceId: row.schoolSourcedId,
    courseSourceId: row.courseSourcedId,
    termSourceIds: row.termSourcedIds,
    grades: row.grades,
    subjects: row.subjects,
    subjectCodes: row.subjectCodes,
    periods: row.periods
  })
})

const OneRosterRole = Enum("administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher")

export const UsersFile = spec({
  kind: "users",
  file: "users.csv",
  required: ["sourcedId", "orgSourcedIds", "role"],
  fields: {
    sourcedId: RequiredText,
    status: Status,
    enabledUser: Bool(true),
    orgSourcedIds: List,
    role: OneRosterRole,
    username: OptionalText,
    givenName: OptionalText,
    familyName: OptionalText,
    middleName: OptionalText,
    identifier: OptionalText,
    email: OptionalText,
    grades: List,
    userIds: UserIds,
    agentSourcedIds: List
  },
  toRecord: (row) => ({
    sourceId: row.sourcedId,
    status: row.status,
    enabled: row.enabledUser,
    roles: [row.role as UserRole],
    username: row.username,
    givenName: row.givenName,
    familyName: row.familyName,
    middleName: row.middleName,
    identifier: row.identifier,
    email: row.email,
    orgSourceIds: row.orgSourcedIds,
    grades: row.grades,
    // OneRoster 1.1 CSV has `userIds` but no metadata: a vendor's `metadata.*` columns are not read.
    identities: oneRosterIdentities({ identifier: row.identifier, userIds: row.userIds }),
    agents: agentsOf(row.agentSourcedIds)
  })
})

export const EnrollmentsFile = spec({
  kind: "enrollments",
  file: "enrollments.csv",
  required: ["sourcedId", "classSourcedId", "userSourcedId", "role"],
  fields: {
    sourcedId: RequiredText,
    status: Status,
    classSourcedId: RequiredText,
    schoolSourcedId: OptionalText,
    userSourcedId: RequiredText,
    role: OneRosterRole,
    primary: Bool(false),
    beginDate: OptionalDate,
    endDate: OptionalDate
  },
  toRecord: (row) => ({
    sourceId: row.sourcedId,
    status: row.status,
    classSourceId: row.classSourcedId,
    userSourceId: row.userSourcedId,
    schoolSourceId: row.schoolSourcedId,
    role: row.role,
    primary: row.primary,
    beginDate: row.beginDate,
    endDate: row.endDate
  }),
  identity: (cells) => ({
    sourceId: blankToNull(cells.sourcedId),
    classSourceId: blankToNull(cells.classSourcedId),
    userSourceId: blankToNull(cells.userSourcedId)
  })
})

export const DemographicsFile = spec({
  kind: "demographics",
  file: "demographics.csv",
  required: ["sourcedId"],
  fields: {
    sourcedId: RequiredText,
    status: Status,
    birthDate: OptionalDate
  },
  toRecord: (row) => ({
    userSourceId: row.sourcedId,
    status: row.status,
    birthDate: row.birthDate
  })
})

/** The files of a set, by entity kind, and whether a set must contain them. */
export const CsvFiles = {
  orgs: { spec: OrgsFile, required: true, manifestKey: "file.orgs" },
  terms: { spec: AcademicSessionsFile, required: true, manifestKey: "file.academicSessions" },
  courses: { spec: CoursesFile, required: false, manifestKey: "file.courses" },
  classes: { spec: ClassesFile, required: true, manifestKey: "file.classes" },
  users: { spec: UsersFile, required: true, manifestKey: "file.users" },
  demographics: { spec: DemographicsFile, required: false, manifestKey: "file.demographics" },
  enrollments: { spec: EnrollmentsFile, required: true, manifestKey: "file.enrollments" }
} as const satisfies {
  readonly [K in EntityKind]: {
    readonly spec: CsvFileSpec<K, any>
    readonly required: boolean
    readonly manifestKey: string
  }
}
