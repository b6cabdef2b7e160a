/**
 * A deterministic generator of OneRoster 1.1 CSV bulk sets of any size, for the demo
 * district, the benchmark and tests. Same seed and size, same bytes.
 *
 * Ratios follow a typical US district: ~500 students per school, ~8 enrollments per
 * student, ~24 students per class (so a third as many classes as students), one staff
 * member per 12 students (teachers, plus one administrator per school), a co-teacher in
 * one class in ten, birth dates for every student but a few.
 *
 * Rows are written as they are generated (per school), so memory stays flat however large
 * the district.
 */
import * as Fs from "node:fs"
import * as NodePath from "node:path"

export interface GeneratorOptions {
  readonly students: number
  readonly seed: string
  /** The school year (its spring calendar year), for birth dates and terms; default: the current one. */
  readonly schoolYear?: number
  /** Students per school (default 500). */
  readonly schoolSize?: number
  /** Share of students without a birth date (default 0). */
  readonly missingBirthDates?: number
  /** Domain of generated e-mail addresses. */
  readonly emailDomain?: string
}

export interface GeneratedCounts {
  readonly schools: number
  readonly terms: number
  readonly courses: number
  readonly classes: number
  readonly users: number
  readonly students: number
  readonly enrollments: number
  readonly demographics: number
}

const FIRST = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Finn", "Grace", "Hugo", "Isla", "Jonah", "Kira", "Liam", "Maya", "Noah", "Olive", "Pablo", "Quinn", "Rosa", "Sami", "Tariq", "Uma", "Victor", "Wren", "Xavi", "Yara", "Zane"]
const LAST = ["Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen", "Kowalski", "Lopez", "Mensah", "Nguyen", "Okafor", "Patel", "Quispe", "Rossi", "Silva", "Tanaka", "Umarov", "Varga", "Weber", "Xu", "Yilmaz", "Zhou"]
const SUBJECTS = ["Mathematics", "English Language Arts", "Science", "Social Studies", "Spanish", "Computer Science", "Biology", "Chemistry"]

/** mulberry32, seeded from the string. */
const random = (seed: string) => {
  let state = 0x9e3779b9
  for (let i = 0; i < seed.length; i++) state = Math.imul(state ^ seed.charCodeAt(i), 0x85ebca6b) >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const pad = (n: number, width = 6) => String(n).padStart(width, "0")

/** RFC 4180 quoting, only where needed. */
const cell = (value: string | number | boolean) => {
  const text = String(value)
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}
const line = (values: ReadonlyArray<string | number | boolean>) => values.map(cell).join(",") + "\n"

class CsvWriter {
  private buffer: Array<string> = []
  private size = 0
  private readonly fd: number
  constructor(path: string, header: ReadonlyArray<string>) {
    this.fd = Fs.openSync(path, "w")
    this.write(header)
  }
  write(values: ReadonlyArray<string | number | boolean>) {
    const text = line(values)
    this.buffer.push(text)
    this.size += text.length
    if (this.size > 1 << 20) this.flush()
  }
  flush() {
    if (this.buffer.length > 0) Fs.writeSync(this.fd, this.buffer.join(""))
    this.buffer = []
    this.size = 0
  }
  close() {
    this.flush()
    Fs.closeSync(this.fd)
  }
}

export const HEADERS = {
  orgs: ["sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"],
  academicSessions: ["sourcedId", "status", "dateLastModified", "title", "type", "startDate", "endDate", "parentSourcedId", "schoolYear"],
  courses: ["sourcedId", "status", "dateLastModified", "schoolYearSourcedId", "title", "courseCode", "grades", "orgSourcedId", "subjects", "subjectCodes"],
  classes: ["sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId", "classCode", "classType", "location", "schoolSourcedId", "termSourcedIds", "subjects", "subjectCodes", "periods"],
  users: ["sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role", "username", "userIds", "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone", "agentSourcedIds", "grades", "password"],
  enrollments: ["sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId", "userSourcedId", "role", "primary", "beginDate", "endDate"],
  demographics: ["sourcedId", "status", "dateLastModified", "birthDate", "sex", "americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican", "nativeHawaiianOrOtherPacificIslander", "white", "demographicRaceTwoOrMoreRaces", "hispanicOrLatinoEthnicity", "countryOfBirthCode", "stateOfBirthAbbreviation", "cityOfBirth", "publicSchoolResidenceStatus"]
} as const

export const writeManifest = (dir: string, modes: Partial<Record<string, "bulk" | "delta" | "absent">> = {}) => {
  const files = ["academicSessions", "categories", "classes", "classResources", "courses", "courseResources", "demographics", "enrollments", "lineItems", "orgs", "resources", "results", "users"]
  const rows = files.map((name) => [`file.${name}`, modes[name] ?? (["academicSessions", "classes", "courses", "demographics", "enrollments", "orgs", "users"].includes(name) ? "bulk" : "absent")])
  Fs.writeFileSync(
    NodePath.join(dir, "manifest.csv"),
    line(["propertyName", "value"]) + line(["manifest.version", "1.0"]) + line(["oneroster.version", "1.1"]) +
      rows.map((row) => line(row)).join("") + line(["source.systemName", "rosterd generator"]) + line(["source.systemCode", "rosterd"])
  )
}

/** The school year (its spring calendar year) containing `now`: from August on, the next one. */
export const currentSchoolYear = (now = new Date()) => (now.getUTCMonth() >= 7 ? now.getUTCFullYear() + 1 : now.getUTCFullYear())

export const generateDistrict = (dir: string, options: GeneratorOptions): GeneratedCounts => {
  Fs.mkdirSync(dir, { recursive: true })
  const rand = random(options.seed)
  const pick = <A>(items: ReadonlyArray<A>) => items[Math.floor(rand() * items.length)]!
  const year = options.schoolYear ?? currentSchoolYear()
  const schoolSize = options.schoolSize ?? 500
  const domain = options.emailDomain ?? "district.example.org"
  const stamp = `${year - 1}-08-15T00:00:00Z`
  const schoolCount = Math.max(1, Math.round(options.students / schoolSize))

  writeManifest(dir)
  const orgs = new CsvWriter(NodePath.join(dir, "orgs.csv"), HEADERS.orgs)
  const sessions = new CsvWriter(NodePath.join(dir, "academicSessions.csv"), HEADERS.academicSessions)
  const courses = new CsvWriter(NodePath.join(dir, "courses.csv"), HEADERS.courses)
  const classes = new CsvWriter(NodePath.join(dir, "classes.csv"), HEADERS.classes)
  const users = new CsvWriter(NodePath.join(dir, "users.csv"), HEADERS.users)
  const enrollments = new CsvWriter(NodePath.join(dir, "enrollments.csv"), HEADERS.enrollments)
  const demographics = new CsvWriter(NodePath.join(dir, "demographics.csv"), HEADERS.demographics)

  const counts = { schools: schoolCount, terms: 3, courses: 0, classes: 0, users: 0, students: 0, enrollments: 0, demographics: 0 }
  orgs.write(["org-district", "", stamp, "Generated Unified School District", "district", "GUSD", ""])
  // The school year covers the whole calendar year, so generated classes (all on it) are
  // always in the current term whatever the date; the semesters are there for realism.
  sessions.write(["term-year", "", stamp, `${year - 1}-${year} School Year`, "schoolYear", `${year - 1}-08-01`, `${year}-07-31`, "", year])
  sessions.write(["term-fall", "", stamp, `Fall ${year - 1}`, "semester", `${year - 1}-08-15`, `${year - 1}-12-20`, "term-year", year])
  sessions.write(["term-spring", "", stamp, `Spring ${year}`, "semester", `${year}-01-05`, `${year}-06-15`, "term-year", year])

  let studentNo = 0
  let staffNo = 0
  let classNo = 0
  let courseNo = 0
  let enrollmentNo = 0
  for (let s = 1; s <= schoolCount; s++) {
    const school = `org-sch-${pad(s, 4)}`
    orgs.write([school, "", stamp, `School ${s}`, "school", `SCH${pad(s, 4)}`, "org-district"])
    const studentsHere = s < schoolCount
      ? Math.floor(options.students / schoolCount)
      : options.students - Math.floor(options.students / schoolCount) * (schoolCount - 1)
    const gradeBand = s % 3 === 0 ? [9, 12] : s % 3 === 1 ? [0, 5] : [6, 8]
    const grades = Array.from({ length: gradeBand[1]! - gradeBand[0]! + 1 }, (_, i) => (i + gradeBand[0]! === 0 ? "KG" : pad(i + gradeBand[0]!, 2)))

    // Staff: one per 12 students, the first of each school an administrator.
    const teachers: Array<string> = []
    const staffHere = Math.max(2, Math.round(studentsHere / 12))
    for (let t = 0; t < staffHere; t++) {
      staffNo++
      const id = `usr-t-${pad(staffNo)}`
      const first = pick(FIRST)
      const last = pick(LAST)
      const role = t === 0 ? "administrator" : "teacher"
      users.write([id, "", stamp, "true", school, role, `t${pad(staffNo)}`, "", first, last, "", `T${pad(staffNo)}`, `${first}.${last}.t${staffNo}@${domain}`.toLowerCase(), "", "", "", "", ""])
      counts.users++
      if (role === "teacher") teachers.push(id)
    }

    // Courses and classes: a third as many classes as students, each with a primary teacher.
    const classIds: Array<string> = []
    const coursesHere = Math.max(1, Math.round(studentsHere / 60))
    const courseIds: Array<string> = []
    for (let c = 0; c < coursesHere; c++) {
      courseNo++
      const subject = SUBJECTS[c % SUBJECTS.length]!
      const id = `crs-${pad(courseNo)}`
      courseIds.push(id)
      courses.write([id, "", stamp, "term-year", `${subject} ${grades[c % grades.length]}`, `C${pad(courseNo)}`, grades[c % grades.length]!, school, subject, ""])
      counts.courses++
    }
    const classesHere = Math.max(8, Math.round(studentsHere / 3))
    for (let k = 0; k < classesHere; k++) {
      classNo++
      const id = `cls-${pad(classNo)}`
      classIds.push(id)
      const course = courseIds[k % courseIds.length]!
      const term = "term-year"
      // Teacher i's j-th class is in period 2j + (i mod 2) + 1: a teacher never has two
      // sections in one period, nor does a co-teacher (a neighbour, of the other parity).
      const teacherIndex = k % teachers.length
      const period = 2 * Math.floor(k / teachers.length) + (teacherIndex % 2) + 1
      classes.write([id, "", stamp, `${SUBJECTS[k % SUBJECTS.length]} - Period ${period}`, grades[k % grades.length]!, course, `K${pad(classNo)}`, "scheduled", `Room ${100 + (k % 40)}`, school, term, SUBJECTS[k % SUBJECTS.length]!, "", String(period)])
      counts.classes++
      const teacher = teachers[teacherIndex]!
      enrollmentNo++
      enrollments.write([`enr-${pad(enrollmentNo, 8)}`, "", stamp, id, school, teacher, "teacher", "true", `${year - 1}-08-15`, `${year}-06-15`])
      counts.enrollments++
      if (k % 10 === 0 && teachers.length > 1) {
        enrollmentNo++
        const coTeacher = teachers[teacherIndex + 1 < teachers.length ? teacherIndex + 1 : teacherIndex - 1]!
        enrollments.write([`enr-${pad(enrollmentNo, 8)}`, "", stamp, id, school, coTeacher, "teacher", "false", `${year - 1}-08-15`, `${year}-06-15`])
        counts.enrollments++
      }
    }

    for (let i = 0; i < studentsHere; i++) {
      studentNo++
      const id = `usr-s-${pad(studentNo)}`
      const first = pick(FIRST)
      const last = pick(LAST)
      const grade = grades[i % grades.length]!
      users.write([id, "", stamp, "true", school, "student", `s${pad(studentNo)}`, "", first, last, "", `S${pad(studentNo)}`, `${first}.${last}.${studentNo}@students.${domain}`.toLowerCase(), "", "", "", grade, ""])
      counts.users++
      counts.students++
      const gradeNumber = grade === "KG" ? 0 : Number(grade)
      if (rand() >= (options.missingBirthDates ?? 0)) {
        const birthYear = year - 6 - gradeNumber
        const month = 1 + Math.floor(rand() * 12)
        const day = 1 + Math.floor(rand() * 28)
        demographics.write([id, "", stamp, `${birthYear}-${pad(month, 2)}-${pad(day, 2)}`, rand() < 0.5 ? "female" : "male", "", "", "", "", "", "", "", "", "", "", ""])
        counts.demographics++
      }
      // Eight distinct classes of the school.
      const chosen = new Set<number>()
      const want = Math.min(8, classIds.length)
      while (chosen.size < want) chosen.add(Math.floor(rand() * classIds.length))
      for (const k of chosen) {
        enrollmentNo++
        enrollments.write([`enr-${pad(enrollmentNo, 8)}`, "", stamp, classIds[k]!, school, id, "student", "false", `${year - 1}-08-15`, `${year}-06-15`])
        counts.enrollments++
      }
    }
  }
  for (const writer of [orgs, sessions, courses, classes, users, enrollments, demographics]) writer.close()
  return counts
}
