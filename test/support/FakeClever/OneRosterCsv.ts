/**
 * Converts a OneRoster 1.1 CSV bulk set (bench/OneRosterGenerator.ts, writeSmallDistrict, or
 * any set with the standard headers) into the records of one Clever district.
 *
 * Mapping (providers.md §4):
 * - the first org of type `district` → the district (required); orgs of type `school` → schools;
 *   other org types are dropped;
 * - academicSessions of type `term`/`semester`, plus any session a class names in
 *   `termSourcedIds` (so a class pointing at a `schoolYear` still has a term) → terms;
 * - courses → courses; classes → sections (a class whose school is not a school org is dropped);
 * - enrollments: `teacher` rows → `teachers` (file order), the first `primary=true` one →
 *   `teacher` (falling back to the first teacher, `null` without teachers); `student` rows →
 *   `students`; other roles and rows naming unknown classes/users are ignored;
 * - users: student → `roles.student`; teacher → `roles.teacher`; administrator →
 *   `roles.district_admin` when none of its orgs is a school and one is the district, else
 *   `roles.staff` (title "Administrator"); aide → `roles.staff` (title "Aide");
 *   parent/guardian/relative → `roles.contact`; other roles are dropped;
 * - rows with `status=tobedeleted` are skipped everywhere.
 *
 * Large files (users, enrollments, demographics) are streamed; only the Clever records and
 * the id map stay in memory (a few hundred MB for 100,000 students).
 */
import { parse } from "csv-parse"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { cleverIdFor, DEFAULT_IMPORTED_AT, IdMap, type SourceFile } from "./Ids.ts"
import { cleverDate, cleverDob, cleverGender, cleverSubject, cleverTimestamp, firstGrade, GRADE_ORDER } from "./Mapping.ts"
import type { ContactRole, Course, District, Grade, Name, Roles, School, Section, StaffRole, StudentRole, TeacherRole, Term, User } from "./Types.ts"

export interface DistrictData {
  readonly district: District
  readonly schools: ReadonlyArray<School>
  readonly terms: ReadonlyArray<Term>
  readonly courses: ReadonlyArray<Course>
  readonly sections: ReadonlyArray<Section>
  readonly users: ReadonlyArray<User>
  /** CSV sourcedId ↔ Clever id, both ways. */
  readonly ids: IdMap
}

export interface ConvertOptions {
  /** Time prefix of the imported ids and fallback for missing dateLastModified (default 2024-01-01). */
  readonly importedAt?: number
}

type Row = Readonly<Record<string, string | undefined>>

/**
 * Streams the rows of `<dir>/<file>.csv` to `onRow` as objects keyed by header; a missing
 * file has no rows. A callback drained per parser batch, not `for await` per row: that
 * halves the time of a 90 MB enrollments file.
 */
const readRows = (dir: string, file: string, onRow: (row: Row) => void): Promise<void> => {
  const path = NodePath.join(dir, `${file}.csv`)
  if (!Fs.existsSync(path)) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const parser = Fs.createReadStream(path, { highWaterMark: 1 << 20 })
      .on("error", reject)
      .pipe(parse({ bom: true, skip_empty_lines: true, relax_column_count: true }))
    let header: Array<string> | undefined
    parser.on("readable", () => {
      let cells: Array<string> | null
      while ((cells = parser.read() as Array<string> | null) !== null) {
        if (header === undefined) {
          header = cells.map((name) => name.trim())
          continue
        }
        const row: Record<string, string> = {}
        for (let i = 0; i < header.length; i++) row[header[i]!] = cells[i] ?? ""
        if (row["status"]?.trim().toLowerCase() !== "tobedeleted") onRow(row)
      }
    })
    parser.on("error", reject)
    parser.on("end", () => resolve())
  })
}

const text = (value: string | undefined): string | undefined => {
  const trimmed = value?.trim()
  return trimmed === undefined || trimmed === "" ? undefined : trimmed
}

const list = (value: string | undefined): Array<string> =>
  (value ?? "").split(",").map((item) => item.trim()).filter((item) => item !== "")

/** Leaves out keys whose value is undefined: Clever omits optional fields the SIS lacks. */
const compact = <T extends object>(record: { readonly [K in keyof T]: T[K] | undefined }): T => {
  const out = record as Record<string, unknown>
  for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key]
  return out as T
}

interface SectionDraft {
  readonly base: Omit<Section, "teacher" | "teachers" | "students">
  readonly teachers: Array<string>
  readonly students: Array<string>
  primary: string | undefined
}

/** Lowest and highest grade seen per school, as indexes into GRADE_ORDER. */
class GradeRange {
  private readonly ranges = new Map<string, [number, number]>()
  add(school: string, grade: Grade | undefined) {
    const index = grade === undefined ? -1 : GRADE_ORDER.indexOf(grade)
    if (index < 0) return
    const range = this.ranges.get(school)
    if (range === undefined) this.ranges.set(school, [index, index])
    else {
      range[0] = Math.min(range[0], index)
      range[1] = Math.max(range[1], index)
    }
  }
  low(school: string) {
    const range = this.ranges.get(school)
    return range === undefined ? undefined : GRADE_ORDER[range[0]]
  }
  high(school: string) {
    const range = this.ranges.get(school)
    return range === undefined ? undefined : GRADE_ORDER[range[1]]
  }
}

const byId = <A extends { readonly id: string }>(records: Array<A>): Array<A> =>
  records.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))

export const convertOneRosterCsv = async (dir: string, options: ConvertOptions = {}): Promise<DistrictData> => {
  const importedAt = options.importedAt ?? DEFAULT_IMPORTED_AT
  const importStamp = new Date(importedAt).toISOString()
  const ids = new IdMap(importedAt)
  const stamp = (row: Row) => cleverTimestamp(row["dateLastModified"], importStamp)
  const id = (file: SourceFile, row: Row) => ids.add(file, row["sourcedId"] ?? "")

  // Orgs: small, read whole. The district must be known before anything points at it.
  const orgRows: Array<Row> = []
  await readRows(dir, "orgs", (row) => orgRows.push(row))
  const districtRow = orgRows.find((row) => row["type"]?.trim() === "district")
  if (districtRow === undefined) throw new Error(`${dir}: orgs.csv has no org of type district`)
  const districtId = id("orgs", districtRow)
  const district: District = {
    id: districtId,
    name: text(districtRow["name"]) ?? "District",
    sis_type: "sftp",
    launch_date: stamp(districtRow).slice(0, 10),
    portal_url: `https://clever.com/in/${(text(districtRow["identifier"]) ?? districtRow["sourcedId"] ?? "district").toLowerCase()}`,
    login_methods: ["clever"],
    state: "running",
    last_sync: importStamp,
    pause_start: null,
    pause_end: null,
    error: ""
  }
  const schoolRows = orgRows.filter((row) => row["type"]?.trim() === "school")
  const schoolIds = new Map(schoolRows.map((row) => [row["sourcedId"] ?? "", id("orgs", row)]))
  const grades = new GradeRange()

  // Classes before terms: a class may name a session of any type as its term.
  const drafts = new Map<string, SectionDraft>()
  const termsNamedByClasses = new Set<string>()
  const classRows: Array<Row> = []
  await readRows(dir, "classes", (row) => {
    if (!schoolIds.has(row["schoolSourcedId"] ?? "")) return
    classRows.push(row)
    const term = list(row["termSourcedIds"])[0]
    if (term !== undefined) termsNamedByClasses.add(term)
  })

  const terms: Array<Term> = []
  await readRows(dir, "academicSessions", (row) => {
    const type = row["type"]?.trim()
    if (type !== "term" && type !== "semester" && !termsNamedByClasses.has(row["sourcedId"] ?? "")) return
    terms.push(compact<Term>({
      id: id("academicSessions", row),
      district: districtId,
      name: text(row["title"]),
      start_date: cleverDate(row["startDate"]),
      end_date: cleverDate(row["endDate"])
    }))
  })

  const courses: Array<Course> = []
  await readRows(dir, "courses", (row) => {
    courses.push(compact<Course>({ id: id("courses", row), district: districtId, name: text(row["title"]), number: text(row["courseCode"]) }))
  })

  for (const row of classRows) {
    const school = schoolIds.get(row["schoolSourcedId"] ?? "")!
    const courseSourcedId = text(row["courseSourcedId"])
    const termSourcedId = list(row["termSourcedIds"])[0]
    const grade = firstGrade(row["grades"])
    grades.add(school, grade)
    drafts.set(row["sourcedId"] ?? "", {
      base: compact<SectionDraft["base"]>({
        id: id("classes", row),
        district: districtId,
        school,
        course: courseSourcedId === undefined ? null : ids.cleverId("courses", courseSourcedId) ?? null,
        term_id: termSourcedId === undefined ? null : ids.cleverId("academicSessions", termSourcedId) ?? null,
        name: text(row["title"]) ?? "",
        sis_id: row["sourcedId"] ?? "",
        subject: cleverSubject(row["subjects"]),
        grade,
        period: list(row["periods"])[0],
        section_number: text(row["classCode"]),
        created: stamp(row),
        last_modified: stamp(row),
        ext: {}
      }),
      teachers: [],
      students: [],
      primary: undefined
    })
  }
  classRows.length = 0

  const demographics = new Map<string, { readonly dob: string | undefined; readonly gender: "M" | "F" | "X" | undefined }>()
  await readRows(dir, "demographics", (row) => {
    demographics.set(row["sourcedId"] ?? "", { dob: cleverDob(row["birthDate"]), gender: cleverGender(row["sex"]) })
  })

  const users: Array<User> = []
  await readRows(dir, "users", (row) => {
    const roles = userRoles(row, districtId, districtRow["sourcedId"] ?? "", schoolIds, demographics, importedAt)
    if (roles === undefined) return
    const userId = id("users", row)
    if (roles.student?.school !== undefined) grades.add(roles.student.school, roles.student.grade)
    users.push(compact<User>({
      id: userId,
      district: districtId,
      email: text(row["email"]),
      name: compact<Name>({ first: text(row["givenName"]), middle: text(row["middleName"]), last: text(row["familyName"]) }),
      roles: roles.student === undefined ? roles : { ...roles, student: { ...roles.student, legacy_id: userId } },
      created: stamp(row),
      last_modified: stamp(row)
    }))
  })
  demographics.clear()

  await readRows(dir, "enrollments", (row) => {
    const draft = drafts.get(row["classSourcedId"] ?? "")
    const user = ids.cleverId("users", row["userSourcedId"] ?? "")
    if (draft === undefined || user === undefined) return
    const role = row["role"]?.trim()
    if (role === "teacher") {
      draft.teachers.push(user)
      if (draft.primary === undefined && row["primary"]?.trim().toLowerCase() === "true") draft.primary = user
    } else if (role === "student") draft.students.push(user)
  })

  const sections: Array<Section> = []
  for (const draft of drafts.values()) {
    const teachers = [...new Set(draft.teachers)]
    sections.push({ ...draft.base, teacher: draft.primary ?? teachers[0] ?? null, teachers, students: [...new Set(draft.students)] })
  }
  drafts.clear()

  const schools = schoolRows.map((row): School => {
    const schoolId = schoolIds.get(row["sourcedId"] ?? "")!
    return compact<School>({
      id: schoolId,
      district: districtId,
      name: text(row["name"]) ?? "",
      sis_id: row["sourcedId"] ?? "",
      school_number: text(row["identifier"]) ?? row["sourcedId"] ?? "",
      low_grade: grades.low(schoolId),
      high_grade: grades.high(schoolId),
      created: stamp(row),
      last_modified: stamp(row),
      ext: {}
    })
  })

  return { district, schools: byId(schools), terms: byId(terms), courses: byId(courses), sections: byId(sections), users: byId(users), ids }
}

/** The Clever roles of a OneRoster user row, or undefined for roles Clever has no place for. */
const userRoles = (
  row: Row,
  districtId: string,
  districtOrg: string,
  schoolIds: ReadonlyMap<string, string>,
  demographics: ReadonlyMap<string, { readonly dob: string | undefined; readonly gender: "M" | "F" | "X" | undefined }>,
  importedAt: number
): Roles | undefined => {
  const sourcedId = row["sourcedId"] ?? ""
  const schools = list(row["orgSourcedIds"]).flatMap((org) => {
    const school = schoolIds.get(org)
    return school === undefined ? [] : [school]
  })
  const username = text(row["username"])
  const credentials = username === undefined ? undefined : { district_username: username }
  switch (row["role"]?.trim().toLowerCase()) {
    case "student": {
      const demo = demographics.get(sourcedId)
      return {
        student: compact<StudentRole>({
          sis_id: sourcedId,
          student_number: text(row["identifier"]),
          dob: demo?.dob,
          grade: firstGrade(row["grades"]),
          gender: demo?.gender,
          school: schools[0],
          schools,
          credentials
        })
      }
    }
    case "teacher":
      return {
        teacher: compact<TeacherRole>({
          sis_id: sourcedId,
          teacher_number: text(row["identifier"]),
          district: districtId,
          school: schools[0],
          schools,
          credentials
        })
      }
    case "administrator":
      // At the district org: a district admin. At no school and not the district (a department): staff without schools.
      if (schools.length === 0 && list(row["orgSourcedIds"]).includes(districtOrg)) return { district_admin: { title: "District Administrator" } }
      return { staff: compact<StaffRole>({ staff_id: text(row["identifier"]) ?? sourcedId, title: "Administrator", roles: [], schools, credentials }) }
    case "aide":
      return { staff: compact<StaffRole>({ staff_id: text(row["identifier"]) ?? sourcedId, title: "Aide", roles: [], schools, credentials }) }
    case "parent":
    case "guardian":
    case "relative": {
      const relationship = row["role"]?.trim().toLowerCase() === "parent" ? "Parent" : "Other"
      return {
        contact: compact<ContactRole>({
          sis_id: sourcedId,
          phone: text(row["phone"]),
          // Agents are students, maybe further down the file: their ids are a pure function of the sourcedId.
          student_relationships: list(row["agentSourcedIds"]).map((agent) => ({
            student: cleverIdFor("users", agent, importedAt),
            relationship,
            type: "Parent/Guardian"
          }))
        })
      }
    }
    default:
      return undefined
  }
}
