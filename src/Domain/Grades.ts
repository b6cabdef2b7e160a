/**
 * Grade levels as the product shows them. The product serves K–12, so reports list the
 * grades PK, K and 1–12 and put everything outside that range (infant/toddler,
 * postsecondary, grade 13, ungraded, unknown or garbled values) together under "Other"
 * instead of showing each district's own spelling. Providers disagree on spelling:
 * OneRoster sends CEDS codes ("07", "KG", "PK", "PR", "PS", "UG"), Clever's own names
 * ("Kindergarten", "TransitionalKindergarten", "PostGraduate") usually arrive already
 * mapped to those codes (src/Providers/Clever/CleverMapping.ts), and CSVs or free text
 * may say "Grade 7", "7th", "Seventh" or "Pre-K".
 *
 * CEDS codes used here: PR is Preschool and PK Prekindergarten (both → "PK"); TK is
 * Transitional Kindergarten (→ "K"); PS is Postsecondary, which is also what Clever's
 * `PostGraduate` becomes, so it is "Other"; IT (infant/toddler), 13 and UG are "Other".
 */

/** Every grade level, in school order; "Other" last. */
export const GRADE_LEVELS = ["PK", "K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "Other"] as const

export type GradeLevel = (typeof GRADE_LEVELS)[number]

const PRE_K: ReadonlyArray<string> = ["pk", "prek", "prekindergarten", "prekinder", "pr", "preschool"]
const KINDERGARTEN: ReadonlyArray<string> = [
  "k", "kg", "kinder", "kindergarten", "tk", "transitionalk", "transitionalkinder", "transitionalkindergarten"
]
const CARDINALS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
const ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh", "twelfth"]

/** Lower-cased words with the punctuation, spaces and hyphens between them removed → grade. */
const NAMED: ReadonlyMap<string, GradeLevel> = new Map<string, GradeLevel>([
  ...PRE_K.map((word) => [word, "PK"] as const),
  ...KINDERGARTEN.map((word) => [word, "K"] as const),
  ...CARDINALS.map((word, i) => [word, String(i + 1) as GradeLevel] as const),
  ...ORDINALS.map((word, i) => [word, String(i + 1) as GradeLevel] as const)
])

const ordinalSuffix = (n: number): string =>
  n % 10 === 1 && n !== 11 ? "st" : n % 10 === 2 && n !== 12 ? "nd" : n % 10 === 3 && n !== 13 ? "rd" : "th"

/** "7", "07", "7th" → 7 when between 1 and 12; anything else → undefined. */
const numbered = (word: string): GradeLevel | undefined => {
  const match = /^(\d+)(st|nd|rd|th)?$/.exec(word)
  if (match === null) return undefined
  const n = Number(match[1])
  if (!Number.isInteger(n) || n < 1 || n > 12) return undefined
  if (match[2] !== undefined && match[2] !== ordinalSuffix(n)) return undefined
  return String(n) as GradeLevel
}

/** One grade as given by a provider or typed by a person → the grade level reports show. */
export const normalizeGrade = (raw: string): GradeLevel => {
  const lower = raw.trim().toLowerCase()
  // Two numbers apart ("1, 2", "9-12") are a list or a range, not one grade.
  if (/\d[^a-z0-9]+\d/.test(lower)) return "Other"
  const word = lower
    .replace(/[^a-z0-9]+/g, "")
    .replace(/^(grade|gr)(?=.)/, "")
    .replace(/(?<=.)(grade|gr)$/, "")
  return NAMED.get(word) ?? numbered(word) ?? "Other"
}

/** A record's grades → its distinct grade levels in school order (PK, K, 1–12, Other). */
export const normalizeGrades = (raw: ReadonlyArray<string>): Array<GradeLevel> => {
  const found = new Set(raw.map(normalizeGrade))
  return GRADE_LEVELS.filter((grade) => found.has(grade))
}
