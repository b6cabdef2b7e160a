import { describe, expect, it } from "vitest"
import { Chunk, Effect, Stream } from "effect"
import { cleverDeltaFeeds } from "../../../src/Providers/Clever/CleverEvents.ts"
import { staffRoleOf } from "../../../src/Domain/Roles.ts"
import { defaultRules } from "../../../src/Domain/DistrictRules.ts"
import { cleverDob, cleverGrade, sectionMembers, user } from "../../../src/Providers/Clever/CleverMapping.ts"
import type { CleverEvent } from "../../../src/Providers/Clever/CleverWire.ts"
import { rateLimitWait } from "../../../src/Providers/Http.ts"
import type { Feed } from "../../../src/Providers/RosterProvider.ts"

const drain = <A>(feed: Feed<A> | null) =>
  feed === null ? [] : Chunk.toArray(Effect.runSync(Stream.runCollect(feed.items)))

describe("Clever mapping", () => {
  it("grades become CEDS codes", () => {
    expect(["Kindergarten", "1", "9", "12", "13", "PreKindergarten", "TransitionalKindergarten", "PostGraduate", "Ungraded", "Other", "", null].map(cleverGrade))
      .toEqual(["KG", "01", "09", "12", "13", "PK", "TK", "PS", "UG", "Other", null, null])
  })

  it("dob M/D/YYYY becomes a date; impossible dates are refused", () => {
    expect(cleverDob("3/1/2014")).toBe("2014-03-01")
    expect(cleverDob("12/31/2009")).toBe("2009-12-31")
    expect(cleverDob("")).toBe(null)
    expect(cleverDob(null)).toBe(null)
    expect(cleverDob("2/30/2014")).toBe(undefined)
    expect(cleverDob("2014-03-01")).toBe(undefined)
  })

  it("users keep their roles, schools and the e-mail as given; contacts are guardians with their students (stored only with rules.contacts)", () => {
    const teacher = user({
      id: "u1",
      district: "d1",
      email: " Teacher@School.Example ",
      name: { first: "Ada", last: "Lovelace" },
      roles: { teacher: { schools: ["s1", "s2"], teacher_number: "T9" }, staff: { schools: ["s3"], title: "Principal" }, district_admin: { title: "x" } }
    })
    expect(teacher).toMatchObject({
      sourceId: "u1",
      roles: ["teacher", "staff", "district_admin"],
      orgSourceIds: ["s1", "s2", "s3", "d1"],
      identifier: "T9",
      email: "Teacher@School.Example"
    })
    expect(user({ id: "c1", roles: { contact: {} } })).toMatchObject({ roles: ["guardian"], agents: [] })
    expect(user({
      id: "c2",
      district: "d1",
      roles: { contact: { student_relationships: [{ student: "s9", relationship: "Parent", type: "Parent/Guardian" }, { student: "s8", type: "Emergency" }, { relationship: "Other" }] } }
    })).toMatchObject({ roles: ["parent"], orgSourceIds: ["d1"], agents: [{ sourceId: "s9", relationship: "parent" }, { sourceId: "s8", relationship: "emergency" }] })
    expect(user({ id: "x", roles: {} })).toBe(null)
  })

  it("staff are administrators (staff) or aides by their title and roles, per the district's rule", () => {
    const staff = (role: { readonly title?: string | null; readonly roles?: ReadonlyArray<string> | null }, rules = defaultRules.staff) =>
      user({ id: "u", roles: { staff: { schools: ["s1"], ...role } } }, "active", staffRoleOf(rules))?.roles
    // The default titles: whole words, any case, in the title or in one of the roles.
    for (const title of ["Principal", "Assistant Principal", "asst. principal, grades 6-8", "SUPERINTENDENT", "Dean of Students", "School Administrator", "Director of Curriculum", "Head of School"]) {
      expect(staff({ title }), title).toEqual(["staff"])
    }
    expect(staff({ roles: ["Portal Access", "Principal"] })).toEqual(["staff"])
    // Not administrative: aides, other titles, none at all; an aide word wins beside an admin word.
    for (const title of ["Aide", "Instructional Aide", "Paraprofessional", "Administrative Assistant", "Counselor", "Principal's Secretary", "Aide to the Director"]) {
      expect(staff({ title }), title).toEqual(["aide"])
    }
    expect(staff({ roles: ["Aide"] })).toEqual(["aide"])
    expect(staff({ title: "Principal", roles: ["Aide"] })).toEqual(["aide"])
    expect(staff({})).toEqual(["aide"])
    expect(staff({ title: "  ", roles: [] })).toEqual(["aide"])
    // The district's own lists; "*" makes every staff record an administrator (except the aide words).
    const coaches = { adminTitles: ["coach"], aideTitles: [] }
    expect([staff({ title: "Math Coach" }, coaches), staff({ title: "Principal" }, coaches)]).toEqual([["staff"], ["aide"]])
    const everyone = { adminTitles: ["*"], aideTitles: ["aide"] }
    expect([staff({}, everyone), staff({ title: "Counselor" }, everyone), staff({ title: "Aide" }, everyone)]).toEqual([["staff"], ["staff"], ["aide"]])
    // A teacher who is also an aide is a teacher and an aide; a district admin stays one whatever its title.
    expect(user({ id: "u", roles: { teacher: { schools: ["s1"] }, staff: { title: "Aide" } } })?.roles).toEqual(["teacher", "aide"])
    expect(user({ id: "u", district: "d1", roles: { district_admin: { title: "Aide" } } })?.roles).toEqual(["district_admin"])
  })

  it("a section's members: the primary teacher, co-teachers once, then students", () => {
    expect(sectionMembers({ teacher: "t1", teachers: ["t1", "t2", "t2"], students: ["s1", "s2"] })).toEqual([
      { userSourceId: "t1", role: "teacher", primary: true },
      { userSourceId: "t2", role: "teacher", primary: false },
      { userSourceId: "s1", role: "student", primary: false },
      { userSourceId: "s2", role: "student", primary: false }
    ])
  })
})

describe("Clever events", () => {
  const section = (students: Array<string>, name = "Math") => ({ id: "sec1", school: "s1", name, teacher: "t1", teachers: ["t1"], students })
  const event = (id: string, type: string, object: Record<string, unknown>, previous?: Record<string, unknown>, beside = false): CleverEvent =>
    ({
      id,
      type,
      created: "2026-11-01T00:00:00.000Z",
      data: { object, ...(previous && !beside ? { previous_attributes: previous } : {}) },
      ...(previous && beside ? { previous_attributes: previous } : {})
    }) as CleverEvent

  it("reduce to the latest record; members dropped since the cursor become removals, unless back", () => {
    const feeds = cleverDeltaFeeds([
      event("e1", "sections.updated", section(["a", "b"]), { students: ["a", "b", "c"] }),
      event("e2", "sections.updated", section(["a", "b", "d"], "Math 2"), { students: ["a", "b"], name: "Math" }, true),
      event("e3", "sections.updated", section(["b", "d"], "Math 2"), { students: ["a", "b", "d"] })
    ])
    const classes = drain(feeds.classes)
    expect(classes).toHaveLength(1)
    expect(classes[0]).toMatchObject({ _tag: "Valid", record: { sourceId: "sec1", title: "Math 2", status: "active" } })
    const enrollments = drain(feeds.enrollments).map((i) => i._tag === "Valid" ? `${i.record.userSourceId}:${i.record.status}` : "invalid")
    expect(enrollments.sort()).toEqual(["a:tobedeleted", "b:active", "c:tobedeleted", "d:active", "t1:active"])
    expect(feeds.enrollments!.mode).toBe("delta")
  })

  it("created, updated and deleted users; a deleted section ends with no member list", () => {
    const student = (id: string, dob: string) => ({ id, roles: { student: { dob, school: "s1" } }, name: { first: "X" } })
    const feeds = cleverDeltaFeeds([
      event("e1", "users.created", student("u1", "1/2/2015")),
      event("e2", "users.updated", student("u1", "1/3/2015")),
      event("e3", "users.deleted", student("u2", "5/5/2014")),
      event("e4", "sections.deleted", section(["a"])),
      event("e5", "resources.created", { id: "r1" })
    ])
    const users = drain(feeds.users).map((i) => i._tag === "Valid" ? `${i.record.sourceId}:${i.record.status}` : "invalid")
    expect(users).toEqual(["u1:active", "u2:tobedeleted"])
    const dobs = drain(feeds.demographics).map((i) => i._tag === "Valid" ? `${i.record.userSourceId}:${i.record.birthDate}` : "invalid")
    expect(dobs).toEqual(["u1:2015-01-03"])
    expect(drain(feeds.classes).map((i) => i._tag === "Valid" ? i.record.status : "invalid")).toEqual(["tobedeleted"])
    expect(drain(feeds.enrollments)).toEqual([])
  })
})

describe("rate-limit waits", () => {
  it("reads Retry-After (seconds or date) and X-RateLimit-Reset (unix seconds)", () => {
    const now = Date.parse("2026-11-23T12:00:00Z")
    expect(rateLimitWait({ "retry-after": "7" }, now)).toMatchObject({ value: { _tag: "Millis", millis: 7000 } })
    expect(rateLimitWait({ "retry-after": "Mon, 23 Nov 2026 12:00:30 GMT" }, now)).toMatchObject({ value: { millis: 30000 } })
    expect(rateLimitWait({ "x-ratelimit-reset": String(now / 1000 + 12) }, now)).toMatchObject({ value: { millis: 12000 } })
    expect(rateLimitWait({}, now)).toBe(undefined)
    // Only plain digits are numbers: `Number()` would read "" as 0 and "0x10" as 16.
    for (const bogus of ["", "0x10", "1e3", "-5", "Infinity", "soon"]) expect(rateLimitWait({ "retry-after": bogus }, now)).toBe(undefined)
    expect(rateLimitWait({ "x-ratelimit-reset": "1e12" }, now)).toBe(undefined)
  })
})
