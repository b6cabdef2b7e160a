/**
 * Value conversions from OneRoster CSV 1.1 to Clever v3.0 (providers.md §4): grades,
 * birth dates, subjects, sex, timestamps.
 */
import type { Grade, Subject } from "./Types.ts"

/** Clever's grade enumeration in school order (used for a school's low/high grade). */
export const GRADE_ORDER: ReadonlyArray<Grade> = [
  "InfantToddler", "Preschool", "PreKindergarten", "TransitionalKindergarten", "Kindergarten",
  "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "PostGraduate"
]

const NAMED_GRADES: Readonly<Record<string, Grade>> = {
  IT: "InfantToddler",
  PR: "Preschool",
  PK: "PreKindergarten",
  TK: "TransitionalKindergarten",
  KG: "Kindergarten",
  PS: "PostGraduate",
  UG: "Ungraded",
  Other: "Other"
}

/** "KG" → "Kindergarten", "07" → "7"; empty → undefined; anything unknown → "Other". */
export const cleverGrade = (oneRoster: string | undefined): Grade | undefined => {
  const value = oneRoster?.trim() ?? ""
  if (value === "") return undefined
  const named = NAMED_GRADES[value]
  if (named !== undefined) return named
  if (/^\d{1,2}$/.test(value)) {
    const n = Number(value)
    if (n >= 1 && n <= 13) return String(n) as Grade
  }
  return "Other"
}

/** The first grade of a OneRoster list cell ("07" or "07,08"): Clever has one grade per record. */
export const firstGrade = (grades: string | undefined): Grade | undefined => cleverGrade(grades?.split(",")[0])

/** "2014-03-01" → "3/1/2014" (Clever's M/D/YYYY, no leading zeros); anything else → undefined. */
export const cleverDob = (birthDate: string | undefined): string | undefined => {
  const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(birthDate?.trim() ?? "")
  if (match === null) return undefined
  return `${Number(match[2])}/${Number(match[3])}/${match[1]}`
}

export const cleverGender = (sex: string | undefined): "M" | "F" | "X" | undefined => {
  switch (sex?.trim().toLowerCase()) {
    case "male":
    case "m":
      return "M"
    case "female":
    case "f":
      return "F"
    case "other":
    case "unspecified":
    case "x":
      return "X"
    default:
      return undefined
  }
}

/** OneRoster subjects are free text; Clever's section subject is an enumeration. */
export const cleverSubject = (subjects: string | undefined): Subject | undefined => {
  const text = subjects?.split(",")[0]?.trim().toLowerCase() ?? ""
  if (text === "") return undefined
  if (/math|algebra|geometry|calculus|statistic/.test(text)) return "math"
  if (/english|language arts|reading|writing|literature|\bela\b/.test(text)) return "english/language arts"
  if (/science|biology|chemistry|physics|earth/.test(text) && !/computer|social/.test(text)) return "science"
  if (/social|history|geography|civics|government|economics/.test(text)) return "social studies"
  if (/spanish|french|german|chinese|latin|japanese|world language/.test(text)) return "language"
  if (/computer|technology|engineering|coding/.test(text)) return "technology and engineering"
  if (/homeroom|advisory/.test(text)) return "homeroom/advisory"
  if (/physical education|\bpe\b|health/.test(text)) return "PE and health"
  if (/art|music|band|choir|theater|drama/.test(text)) return "arts and music"
  return "other"
}

/** A OneRoster dateLastModified (any ISO form) as Clever's `YYYY-MM-DDTHH:MM:SS.SSSZ`, or the fallback. */
export const cleverTimestamp = (value: string | undefined, fallback: string): string => {
  const ms = value === undefined || value.trim() === "" ? Number.NaN : Date.parse(value)
  return Number.isNaN(ms) ? fallback : new Date(ms).toISOString()
}

/** `YYYY-MM-DD` of a OneRoster date, or undefined. */
export const cleverDate = (value: string | undefined): string | undefined => {
  const match = /^\d{4}-\d{2}-\d{2}/.exec(value?.trim() ?? "")
  return match === null ? undefined : match[0]
}
