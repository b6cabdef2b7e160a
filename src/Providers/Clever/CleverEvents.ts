import { Either, Schema, Stream } from "effect"
import type { StaffRoleOf } from "../../Domain/Roles.ts"
import type { Class, Course, Demographic, Enrollment, Org, Term, User } from "../../Domain/Roster.ts"
import type { Feed, FeedItem, Feeds, Origin } from "../RosterProvider.ts"
import * as Map from "./CleverMapping.ts"
import type { CleverEvent } from "./CleverWire.ts"
import { CleverCourse, CleverSchool, CleverSection, CleverTerm, CleverUser } from "./CleverWire.ts"

/**
 * Clever events → delta feeds.
 *
 * Events are reduced to the latest per record first: a record changed five times since the
 * cursor is applied once, as it is now (every event carries the full record after the
 * change). That makes replays harmless: an event seen before yields the record as stored.
 * Section membership changes show as `sections.updated`; members dropped since the cursor
 * are read from each update's `previous_attributes` (Clever puts it inside `data` or beside
 * it; both are read) and become enrollment removals unless the section has them again.
 * A deleted user or section is removed; its enrollments end with it.
 */

const FILE = "GET /v3.0/events"

interface Latest {
  readonly action: "created" | "updated" | "deleted"
  readonly object: Readonly<Record<string, unknown>>
  readonly origin: Origin
  /** Sections: everyone some update removed since the cursor. */
  readonly dropped: Set<string>
}

const memberIds = (attributes: Readonly<Record<string, unknown>> | null | undefined): Array<string> => {
  if (!attributes) return []
  const ids: Array<string> = []
  if (typeof attributes.teacher === "string") ids.push(attributes.teacher)
  for (const key of ["teachers", "students"]) {
    const value = attributes[key]
    if (Array.isArray(value)) ids.push(...value.filter((v): v is string => typeof v === "string"))
  }
  return ids
}

const decoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema)
  return (object: unknown) => Either.getOrUndefined(decode(object))
}
const decodeSchool = decoder(CleverSchool)
const decodeTerm = decoder(CleverTerm)
const decodeCourse = decoder(CleverCourse)
const decodeSection = decoder(CleverSection)
const decodeUser = decoder(CleverUser)

const invalid = <A>(origin: Origin, id: string, what: string): FeedItem<A> => ({
  _tag: "Invalid",
  origin,
  sourceId: id,
  problem: `the ${what} in the event does not have the fields Clever documents`
})
const valid = <A>(record: A, origin: Origin): FeedItem<A> => ({ _tag: "Valid", record, origin })

/** Reduces events (in order) to the latest per record type and id. */
export const latestByRecord = (events: ReadonlyArray<CleverEvent>) => {
  const latest = new globalThis.Map<string, globalThis.Map<string, Latest>>()
  events.forEach((event, index) => {
    const [family, action] = event.type.split(".") as [string, string]
    if (action !== "created" && action !== "updated" && action !== "deleted") return
    const id = event.data.object.id
    if (typeof id !== "string") return
    const byId = latest.get(family) ?? new globalThis.Map<string, Latest>()
    latest.set(family, byId)
    const dropped = byId.get(id)?.dropped ?? new Set<string>()
    if (family === "sections" && action === "updated") {
      const previous = event.data.previous_attributes ?? event.previous_attributes
      const now = new Set(memberIds(event.data.object))
      for (const member of memberIds(previous)) if (!now.has(member)) dropped.add(member)
    }
    byId.set(id, { action, object: event.data.object, origin: { file: FILE, line: index + 1 }, dropped })
  })
  return (family: string) => [...(latest.get(family) ?? new globalThis.Map<string, Latest>()).entries()]
}

export const cleverDeltaFeeds = (events: ReadonlyArray<CleverEvent>, staffRole?: StaffRoleOf): Feeds => {
  const records = latestByRecord(events)
  const orgs: Array<FeedItem<Org>> = []
  const terms: Array<FeedItem<Term>> = []
  const courses: Array<FeedItem<Course>> = []
  const classes: Array<FeedItem<Class>> = []
  const users: Array<FeedItem<User>> = []
  const demographics: Array<FeedItem<Demographic>> = []
  const enrollments: Array<FeedItem<Enrollment>> = []

  for (const [id, { action, object, origin }] of records("schools")) {
    const school = decodeSchool(object)
    orgs.push(school === undefined ? invalid(origin, id, "school") : valid(Map.schoolOrg(school, action === "deleted" ? "tobedeleted" : "active"), origin))
  }
  for (const [id, { action, object, origin }] of records("terms")) {
    const term = decodeTerm(object)
    const mapped = term === undefined ? undefined : Map.term(term, action === "deleted" ? "tobedeleted" : "active")
    terms.push(mapped === undefined ? invalid(origin, id, "term") : valid(mapped, origin))
  }
  for (const [id, { action, object, origin }] of records("courses")) {
    const course = decodeCourse(object)
    courses.push(course === undefined ? invalid(origin, id, "course") : valid(Map.course(course, action === "deleted" ? "tobedeleted" : "active"), origin))
  }
  for (const [id, { action, dropped, object, origin }] of records("sections")) {
    const section = decodeSection(object)
    const mapped = section === undefined ? undefined : Map.sectionClass(section, action === "deleted" ? "tobedeleted" : "active")
    if (section === undefined || mapped === undefined) {
      classes.push(invalid(origin, id, "section"))
      continue
    }
    classes.push(valid(mapped, origin))
    if (action === "deleted") continue // its enrollments end with the class
    const members = Map.sectionMembers(section)
    for (const member of members) enrollments.push(valid(Map.enrollment(id, mapped.schoolSourceId, member), origin))
    const current = new Set(members.map((m) => m.userSourceId))
    for (const gone of dropped) {
      if (current.has(gone)) continue
      enrollments.push(valid(Map.enrollment(id, mapped.schoolSourceId, { userSourceId: gone, role: "student", primary: false }, "tobedeleted"), origin))
    }
  }
  for (const [id, { action, object, origin }] of records("users")) {
    const record = decodeUser(object)
    if (record === undefined) {
      users.push(invalid(origin, id, "user"))
      continue
    }
    const status = action === "deleted" ? "tobedeleted" : "active"
    const mapped = Map.user(record, status, staffRole)
    if (mapped === null) continue // a contact
    users.push(valid(mapped, origin))
    if (status === "active") {
      const dob = Map.demographic(record)
      if (dob === undefined) {
        demographics.push({ _tag: "Invalid", origin, sourceId: id, problem: `field "roles.student.dob": expected a date in M/D/YYYY form` })
      } else if (dob !== null) demographics.push(valid(dob, origin))
    }
  }

  const delta = <A>(items: ReadonlyArray<FeedItem<A>>): Feed<A> => ({ mode: "delta", name: FILE, items: Stream.fromIterable(items) })
  return {
    orgs: delta(orgs),
    terms: delta(terms),
    courses: delta(courses),
    classes: delta(classes),
    users: delta(users),
    demographics: delta(demographics),
    enrollments: delta(enrollments)
  }
}
