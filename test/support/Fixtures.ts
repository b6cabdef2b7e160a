import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { currentSchoolYear, generateDistrict, HEADERS, writeManifest } from "../../bench/OneRosterGenerator.ts"

/** A temporary folder, removed by the returned function. */
export const tempDir = (prefix = "rosterd-test-") => {
  const dir = Fs.mkdtempSync(NodePath.join(Os.tmpdir(), prefix))
  return { dir, remove: () => Fs.rmSync(dir, { recursive: true, force: true }) }
}

/** Generates a district into `dir` (see bench/OneRosterGenerator.ts). */
export const generated = (dir: string, students: number, seed = "test") => generateDistrict(dir, { students, seed, schoolSize: 100 })

type Row = Readonly<Record<string, string>>

const cell = (value: string) => (/[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value)

/** Writes a CSV file with the standard OneRoster header of `file` (or the given header). */
export const writeCsv = (dir: string, file: keyof typeof HEADERS, rows: ReadonlyArray<Row>, header: ReadonlyArray<string> = HEADERS[file]) => {
  const lines = [header.join(","), ...rows.map((row) => header.map((name) => cell(row[name] ?? "")).join(","))]
  Fs.writeFileSync(NodePath.join(dir, `${file}.csv`), lines.join("\n") + "\n")
}

/** Reads a CSV file written by the generator or writeCsv as rows (simple: no quoted commas in our fixtures' ids). */
export const readRows = (dir: string, file: keyof typeof HEADERS): Array<Record<string, string>> => {
  const [head, ...lines] = Fs.readFileSync(NodePath.join(dir, `${file}.csv`), "utf8").trimEnd().split("\n")
  const names = head!.split(",")
  return lines.map((line) => Object.fromEntries(splitCsvLine(line).map((value, i) => [names[i]!, value])))
}

const splitCsvLine = (line: string): Array<string> => {
  const out: Array<string> = []
  let current = ""
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        current += '"'
        i++
      } else if (ch === '"') quoted = false
      else current += ch
    } else if (ch === '"') quoted = true
    else if (ch === ",") {
      out.push(current)
      current = ""
    } else current += ch
  }
  out.push(current)
  return out
}

/** The small district's one term: the current school year, August to July (so its classes are always current). */
export const smallDistrictTerm = () => {
  const year = currentSchoolYear()
  return { title: `${year - 1}-${String(year).slice(2)}`, startDate: `${year - 1}-08-01`, endDate: `${year}-07-31`, schoolYear: String(year) }
}

/**
 * A small hand-made district: 1 school, 1 term, 2 classes, 2 teachers, 3 students. Give
 * districts sharing a database their own `emailDomain`: the same address in two districts
 * is the same person to account linking (a review item).
 */
export const writeSmallDistrict = (dir: string, emailDomain = "small.example") => {
  const term = smallDistrictTerm()
  Fs.mkdirSync(dir, { recursive: true })
  writeManifest(dir)
  writeCsv(dir, "orgs", [
    { sourcedId: "org-d", name: "Small District", type: "district" },
    { sourcedId: "org-s1", name: "Small School", type: "school", parentSourcedId: "org-d" }
  ])
  writeCsv(dir, "academicSessions", [
    { sourcedId: "term-1", type: "schoolYear", ...term }
  ])
  writeCsv(dir, "courses", [{ sourcedId: "crs-1", title: "Math 7", schoolYearSourcedId: "term-1", orgSourcedId: "org-s1" }])
  writeCsv(dir, "classes", [
    { sourcedId: "cls-1", title: "Math 7 - P1", courseSourcedId: "crs-1", classType: "scheduled", schoolSourcedId: "org-s1", termSourcedIds: "term-1" },
    { sourcedId: "cls-2", title: "Math 7 - P2", courseSourcedId: "crs-1", classType: "scheduled", schoolSourcedId: "org-s1", termSourcedIds: "term-1" }
  ])
  writeCsv(dir, "users", [
    { sourcedId: "t-1", enabledUser: "true", orgSourcedIds: "org-s1", role: "teacher", givenName: "Tess", familyName: "One", email: `tess@${emailDomain}` },
    { sourcedId: "t-2", enabledUser: "true", orgSourcedIds: "org-s1", role: "teacher", givenName: "Theo", familyName: "Two", email: `theo@${emailDomain}` },
    { sourcedId: "s-1", enabledUser: "true", orgSourcedIds: "org-s1", role: "student", givenName: "Sam", familyName: "A", email: `sam@${emailDomain}`, grades: "07" },
    { sourcedId: "s-2", enabledUser: "true", orgSourcedIds: "org-s1", role: "student", givenName: "Sia", familyName: "B", email: `sia@${emailDomain}`, grades: "07" },
    { sourcedId: "s-3", enabledUser: "true", orgSourcedIds: "org-s1", role: "student", givenName: "Sol", familyName: "C", email: `sol@${emailDomain}`, grades: "07" }
  ])
  writeCsv(dir, "enrollments", [
    { sourcedId: "e-1", classSourcedId: "cls-1", schoolSourcedId: "org-s1", userSourcedId: "t-1", role: "teacher", primary: "true" },
    { sourcedId: "e-2", classSourcedId: "cls-2", schoolSourcedId: "org-s1", userSourcedId: "t-2", role: "teacher", primary: "true" },
    { sourcedId: "e-3", classSourcedId: "cls-1", schoolSourcedId: "org-s1", userSourcedId: "s-1", role: "student" },
    { sourcedId: "e-4", classSourcedId: "cls-1", schoolSourcedId: "org-s1", userSourcedId: "s-2", role: "student" },
    { sourcedId: "e-5", classSourcedId: "cls-2", schoolSourcedId: "org-s1", userSourcedId: "s-3", role: "student" }
  ])
  writeCsv(dir, "demographics", [
    { sourcedId: "s-1", birthDate: "2014-03-01" },
    { sourcedId: "s-2", birthDate: "2013-11-20" },
    { sourcedId: "s-3", birthDate: "2014-07-09" }
  ])
}
