import { Schema } from "effect"

/**
 * Clever Data API v3.0 on the wire (../shared/reference/providers.md §1; Clever's swagger).
 *
 * Pages are decoded strictly (a page must be `{ data: [...], links: [...] }`), records
 * leniently: everything but the id may be missing or null, as Clever documents, and a
 * record that still does not decode becomes a finding instead of failing the page.
 */

const Text = Schema.optional(Schema.NullOr(Schema.String))
const Texts = Schema.optional(Schema.NullOr(Schema.Array(Schema.String)))
const Id = Schema.String.pipe(Schema.minLength(1))

export const Link = Schema.Struct({ rel: Schema.String, uri: Schema.String })

/** A list page: each item wraps its record in `data` (sic: `{ data: [{ data: {...} }] }`). */
export const Page = Schema.Struct({
  data: Schema.Array(Schema.Struct({ data: Schema.Unknown })),
  links: Schema.Array(Link)
})
export type Page = typeof Page.Type

export const nextLink = (page: Page): string | undefined => page.links.find((link) => link.rel === "next")?.uri

const Credentials = Schema.optional(Schema.NullOr(Schema.Struct({ district_username: Text })))

export const CleverDistrict = Schema.Struct({ id: Id, name: Text })

export const CleverSchool = Schema.Struct({
  id: Id,
  district: Text,
  name: Text,
  sis_id: Text,
  school_number: Text,
  nces_id: Text
})

export const CleverTerm = Schema.Struct({ id: Id, name: Text, start_date: Text, end_date: Text })

export const CleverCourse = Schema.Struct({ id: Id, name: Text, number: Text })

export const CleverSection = Schema.Struct({
  id: Id,
  school: Text,
  name: Text,
  sis_id: Text,
  section_number: Text,
  subject: Text,
  grade: Text,
  period: Text,
  course: Text,
  term_id: Text,
  teacher: Text,
  teachers: Texts,
  students: Texts
})
export type CleverSection = typeof CleverSection.Type

export const CleverUser = Schema.Struct({
  id: Id,
  district: Text,
  email: Text,
  name: Schema.optional(Schema.NullOr(Schema.Struct({ first: Text, middle: Text, last: Text }))),
  roles: Schema.Struct({
    student: Schema.optional(Schema.NullOr(Schema.Struct({
      dob: Text,
      grade: Text,
      school: Text,
      schools: Texts,
      student_number: Text,
      sis_id: Text,
      state_id: Text,
      legacy_id: Text,
      credentials: Credentials
    }))),
    teacher: Schema.optional(Schema.NullOr(Schema.Struct({
      school: Text,
      schools: Texts,
      teacher_number: Text,
      sis_id: Text,
      state_id: Text,
      legacy_id: Text,
      credentials: Credentials
    }))),
    // `title` and the free-text `roles` tell a school administrator from an aide (src/Domain/Roles.ts).
    staff: Schema.optional(Schema.NullOr(Schema.Struct({ schools: Texts, staff_id: Text, title: Text, roles: Texts, credentials: Credentials }))),
    district_admin: Schema.optional(Schema.NullOr(Schema.Struct({ title: Text }))),
    contact: Schema.optional(Schema.Unknown)
  })
})
export type CleverUser = typeof CleverUser.Type

/**
 * A JSON object kept as parsed. (A `Schema.Record` would copy it key by key, and a
 * `"__proto__"` key — an ordinary own property after `JSON.parse` — would then set the
 * copy's prototype, lending it fields such as `id` the record does not have.)
 */
const JsonObject = Schema.declare(
  (input: unknown): input is Readonly<Record<string, unknown>> => typeof input === "object" && input !== null && !Array.isArray(input),
  { identifier: "JsonObject" }
)

/** Events: `<record type>.<created|updated|deleted>` with the record's snapshot after the change. */
export const CleverEvent = Schema.Struct({
  id: Id,
  type: Schema.String,
  created: Text,
  data: Schema.Struct({
    object: JsonObject,
    previous_attributes: Schema.optional(Schema.NullOr(JsonObject))
  }),
  // The swagger puts it beside `data`; Stripe-style APIs inside. Both are accepted.
  previous_attributes: Schema.optional(Schema.NullOr(JsonObject))
})
export type CleverEvent = typeof CleverEvent.Type
