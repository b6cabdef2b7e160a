import { ParseResult, Schema } from "effect"

/**
 * OneRoster 1.1 JSON records (providers.md §2.6; the 1.1 OpenAPI), decoded leniently:
 * real servers send booleans as strings, `grades` as a comma-joined string, `periods` as a
 * string or an array, `inactive` for removed, dates with or without a time, and leave out
 * whatever the district does not share. Only the identity and what a record cannot exist
 * without are required; a record that still does not decode becomes a finding.
 */

const Text = Schema.optional(Schema.NullOr(Schema.String))

/** A reference to another record: `{ href, sourcedId, type }`; only the id matters here. */
export const GUIDRef = Schema.Struct({ sourcedId: Schema.String, type: Text, href: Text })
const Ref = Schema.optional(Schema.NullOr(GUIDRef))
const Refs = Schema.optional(Schema.NullOr(Schema.Array(GUIDRef)))

/** `true`, `"true"`, `"TRUE"` … */
export const LenientBoolean = Schema.Union(
  Schema.Boolean,
  Schema.transformOrFail(Schema.String, Schema.Boolean, {
    strict: true,
    decode: (text, _, ast) => {
      const value = text.trim().toLowerCase()
      return value === "true" ? ParseResult.succeed(true) : value === "false" || value === "" ? ParseResult.succeed(false) : ParseResult.fail(new ParseResult.Type(ast, text))
    },
    encode: (value) => ParseResult.succeed(String(value))
  })
)

/** An array of strings, or one comma-joined string. */
export const LenientList = Schema.Union(
  Schema.Array(Schema.String),
  Schema.transform(Schema.String, Schema.Array(Schema.String), {
    strict: true,
    decode: (text) => text.split(",").map((item) => item.trim()).filter((item) => item.length > 0),
    encode: (items) => items.join(",")
  })
)
const List = Schema.optional(Schema.NullOr(LenientList))

const Base = {
  sourcedId: Schema.String.pipe(Schema.minLength(1)),
  status: Text,
  dateLastModified: Text
}

export const OrgRecord = Schema.Struct({ ...Base, name: Text, type: Text, identifier: Text, parent: Ref })
export const AcademicSessionRecord = Schema.Struct({
  ...Base,
  title: Text,
  type: Text,
  startDate: Text,
  endDate: Text,
  parent: Ref,
  schoolYear: Schema.optional(Schema.NullOr(Schema.Union(Schema.String, Schema.Number)))
})
export const CourseRecord = Schema.Struct({
  ...Base,
  title: Text,
  courseCode: Text,
  grades: List,
  subjects: List,
  subjectCodes: List,
  org: Ref,
  schoolYear: Ref
})
export const ClassRecord = Schema.Struct({
  ...Base,
  title: Text,
  classCode: Text,
  classType: Text,
  location: Text,
  grades: List,
  subjects: List,
  subjectCodes: List,
  periods: List,
  course: Ref,
  school: Ref,
  terms: Refs
})
export const UserRecord = Schema.Struct({
  ...Base,
  username: Text,
  givenName: Text,
  familyName: Text,
  middleName: Text,
  role: Text,
  email: Text,
  identifier: Text,
  enabledUser: Schema.optional(Schema.NullOr(LenientBoolean)),
  orgs: Refs,
  /** A guardian's students, a student's guardians (src/Reconcile/Contacts.ts). */
  agents: Refs,
  grades: List,
  // Read leniently by the mapping (oneRosterIdentities): a malformed entry is left out, it
  // does not hold the whole user.
  userIds: Schema.optional(Schema.Unknown),
  metadata: Schema.optional(Schema.Unknown)
})
export const EnrollmentRecord = Schema.Struct({
  ...Base,
  user: GUIDRef,
  class: GUIDRef,
  school: Ref,
  role: Text,
  primary: Schema.optional(Schema.NullOr(LenientBoolean)),
  beginDate: Text,
  endDate: Text
})
export const DemographicsRecord = Schema.Struct({ ...Base, birthDate: Text })

/** A list page: `{ "<collection>": [ ... ] }` (extra keys such as imsx statuses are ignored). */
export const pageOf = (key: string) => Schema.Struct({ [key]: Schema.Array(Schema.Unknown) })
