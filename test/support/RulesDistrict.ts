import { Clock, Effect } from "effect"
import * as Fs from "node:fs"
import { currentSchoolYear, writeManifest } from "../../bench/OneRosterGenerator.ts"
import { writeCsv } from "./Fixtures.ts"

/**
 * A hand-made district that trips every district rule once, for the rule tests (and the
 * same roster served by the fake Clever and OneRoster servers, for the parity test).
 *
 * School year `year` (its spring calendar year): `term-year` runs August 1 to July 31;
 * `term-past` is the year before. With `year = 2027`:
 *
 * | section            | what the rules do                                              |
 * |--------------------|----------------------------------------------------------------|
 * | cls-math-1, -2     | kept; both taught by t-01 in period 1 → duplicate_period         |
 * | cls-pe             | subject "Physical Education" → excluded_subject                  |
 * | cls-band           | title "Concert Band" → excluded_title                            |
 * | cls-old            | only in term-past → not_current_term                             |
 * | cls-big            | t-02 primary + 11 co-teachers (t-03…t-13) → t-12, t-13 left out  |
 * | cls-noprimary      | t-03, t-04, none primary → t-03 made primary                     |
 * | cls-twoprimary     | t-05, t-06 both primary → t-05 stays, t-06 co-teacher            |
 *
 * Students: s-1 (grade 07, 12 years old, in cls-math-1), s-2 (grade 13 → Other, turns 13
 * on `${year - 1}-11-20`, in cls-math-2), s-3 (KG → K, no class → pending, reported), s-4
 * (PreK → PK, no birth date → under 13, reported; in cls-big), s-5 (Ungraded → Other, only
 * in cls-pe → no class). a-1 is an administrator of the district office only: a department
 * org without classes, not the district org (an administrator of the district org covers
 * every school and is not reported: test/Admins/AdminScope.test.ts).
 */
export interface RulesDistrictOptions {
  readonly year?: number
  readonly emailDomain?: string
}

export const TEACHERS = Array.from({ length: 13 }, (_, i) => `t-${String(i + 1).padStart(2, "0")}`)

export const writeRulesDistrict = (dir: string, options: RulesDistrictOptions = {}) => {
  const year = options.year ?? currentSchoolYear()
  const domain = options.emailDomain ?? "rules.example"
  Fs.mkdirSync(dir, { recursive: true })
  writeManifest(dir)
  writeCsv(dir, "orgs", [
    { sourcedId: "org-d", name: "Rules District", type: "district" },
    { sourcedId: "org-s1", name: "Rules Middle School", type: "school", parentSourcedId: "org-d" },
    { sourcedId: "org-office", name: "Rules District Office", type: "department", parentSourcedId: "org-d" }
  ])
  writeCsv(dir, "academicSessions", [
    { sourcedId: "term-year", title: `${year - 1}-${year}`, type: "schoolYear", startDate: `${year - 1}-08-01`, endDate: `${year}-07-31`, schoolYear: String(year) },
    { sourcedId: "term-past", title: `${year - 2}-${year - 1}`, type: "schoolYear", startDate: `${year - 2}-08-01`, endDate: `${year - 1}-07-31`, schoolYear: String(year - 1) }
  ])
  writeCsv(dir, "courses", [
    { sourcedId: "crs-math", title: "Math 7", schoolYearSourcedId: "term-year", orgSourcedId: "org-s1", subjects: "Mathematics" },
    { sourcedId: "crs-pe", title: "Fitness 7", schoolYearSourcedId: "term-year", orgSourcedId: "org-s1", subjects: "Physical Education" },
    { sourcedId: "crs-music", title: "Music 7", schoolYearSourcedId: "term-year", orgSourcedId: "org-s1", subjects: "Music" }
  ])
  const cls = (sourcedId: string, title: string, course: string, term = "term-year", periods = "") => ({
    sourcedId, title, courseSourcedId: course, classType: "scheduled", schoolSourcedId: "org-s1", termSourcedIds: term, periods,
    subjects: course === "crs-pe" ? "Physical Education" : course === "crs-music" ? "Music" : "Mathematics"
  })
  writeCsv(dir, "classes", [
    cls("cls-math-1", "Math 7 - A", "crs-math", "term-year", "1"),
    cls("cls-math-2", "Math 7 - B", "crs-math", "term-year", "1"),
    cls("cls-pe", "Fitness 7", "crs-pe", "term-year", "2"),
    cls("cls-band", "Concert Band", "crs-music", "term-year", "3"),
    cls("cls-old", "Math 6 - A", "crs-math", "term-past", "4"),
    cls("cls-big", "Math 7 - Team", "crs-math", "term-year", "5"),
    cls("cls-noprimary", "Math 7 - C", "crs-math", "term-year", "6"),
    cls("cls-twoprimary", "Math 7 - D", "crs-math", "term-year", "7")
  ])
  const person = (sourcedId: string, role: string, grades = "", org = "org-s1") => ({
    sourcedId, enabledUser: "true", orgSourcedIds: org, role, givenName: `Given ${sourcedId}`, familyName: `Family ${sourcedId}`,
    email: `${sourcedId}@${domain}`, grades
  })
  writeCsv(dir, "users", [
    ...TEACHERS.map((t) => person(t, "teacher")),
    person("s-1", "student", "07"),
    person("s-2", "student", "13"),
    person("s-3", "student", "KG"),
    person("s-4", "student", "PK"),
    person("s-5", "student", "UG"),
    person("a-1", "administrator", "", "org-office")
  ])
  let n = 0
  const enr = (classSourcedId: string, userSourcedId: string, role: string, primary = false) => ({
    sourcedId: `e-${++n}`, classSourcedId, schoolSourcedId: "org-s1", userSourcedId, role, primary: primary ? "true" : "false"
  })
  writeCsv(dir, "enrollments", [
    enr("cls-math-1", "t-01", "teacher", true),
    enr("cls-math-2", "t-01", "teacher", true),
    enr("cls-pe", "t-01", "teacher", true),
    enr("cls-band", "t-01", "teacher", true),
    enr("cls-old", "t-01", "teacher", true),
    enr("cls-big", "t-02", "teacher", true),
    ...TEACHERS.slice(2).map((t) => enr("cls-big", t, "teacher")),
    enr("cls-noprimary", "t-03", "teacher"),
    enr("cls-noprimary", "t-04", "teacher"),
    enr("cls-twoprimary", "t-05", "teacher", true),
    enr("cls-twoprimary", "t-06", "teacher", true),
    enr("cls-math-1", "s-1", "student"),
    enr("cls-math-2", "s-2", "student"),
    enr("cls-big", "s-4", "student"),
    enr("cls-pe", "s-5", "student"),
    enr("cls-old", "s-1", "student")
  ])
  writeCsv(dir, "demographics", [
    { sourcedId: "s-1", birthDate: `${year - 13}-03-01` },
    { sourcedId: "s-2", birthDate: `${year - 14}-11-20` },
    { sourcedId: "s-3", birthDate: `${year - 14}-01-15` },
    { sourcedId: "s-5", birthDate: `${year - 13}-05-05` }
  ])
}

/** A clock at `iso` (moving on from there), for runs that must happen on a given date. */
export const clockAt = (iso: string): Clock.Clock => {
  const live = Clock.make()
  const offset = Date.parse(iso) - live.unsafeCurrentTimeMillis()
  const nanos = () => live.unsafeCurrentTimeNanos() + BigInt(offset) * 1_000_000n
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => live.unsafeCurrentTimeMillis() + offset,
    unsafeCurrentTimeNanos: nanos,
    currentTimeMillis: Effect.sync(() => live.unsafeCurrentTimeMillis() + offset),
    currentTimeNanos: Effect.sync(nanos),
    sleep: (duration) => live.sleep(duration)
  }
}
