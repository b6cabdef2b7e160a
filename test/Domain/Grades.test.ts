import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { GRADE_LEVELS, type GradeLevel, normalizeGrade, normalizeGrades } from "../../src/Domain/Grades.ts"

const TABLE: ReadonlyArray<readonly [string, GradeLevel]> = [
  // pre-K: OneRoster/CEDS codes, Clever names, free text
  ["PK", "PK"],
  ["pk", "PK"],
  ["Pre-K", "PK"],
  ["PreK", "PK"],
  ["pre k", "PK"],
  ["Pre-Kindergarten", "PK"],
  ["PreKindergarten", "PK"],
  ["PR", "PK"],
  ["Preschool", "PK"],
  ["pre-school", "PK"],
  // kindergarten, transitional kindergarten
  ["K", "K"],
  ["k", "K"],
  ["KG", "K"],
  ["Kindergarten", "K"],
  ["kinder", "K"],
  ["Grade K", "K"],
  ["TK", "K"],
  ["TransitionalKindergarten", "K"],
  ["Transitional Kindergarten", "K"],
  ["transitional-kindergarten", "K"],
  // numbers, with and without leading zeros
  ["1", "1"],
  ["01", "1"],
  ["07", "7"],
  ["7", "7"],
  ["007", "7"],
  ["09", "9"],
  ["10", "10"],
  ["12", "12"],
  ["  12  ", "12"],
  // ordinals, "Grade n", "nth Grade", spelled
  ["1st", "1"],
  ["2nd", "2"],
  ["3rd", "3"],
  ["4th", "4"],
  ["11th", "11"],
  ["12th", "12"],
  ["Grade 7", "7"],
  ["grade 07", "7"],
  ["GRADE-7", "7"],
  ["Gr. 7", "7"],
  ["7th Grade", "7"],
  ["7th-grade", "7"],
  ["Seventh", "7"],
  ["seventh grade", "7"],
  ["first grade", "1"],
  ["First", "1"],
  ["Grade One", "1"],
  ["twelfth", "12"],
  ["Eleventh Grade", "11"],
  ["three", "3"],
  // outside K–12
  ["13", "Other"],
  ["14", "Other"],
  ["13th", "Other"],
  ["Grade 13", "Other"],
  ["0", "Other"],
  ["00", "Other"],
  ["PG", "Other"],
  ["PostGraduate", "Other"],
  ["Post-Graduate", "Other"],
  ["PS", "Other"], // CEDS Postsecondary; also what CleverMapping makes of PostGraduate
  ["UG", "Other"],
  ["Ungraded", "Other"],
  ["Other", "Other"],
  ["other", "Other"],
  ["IT", "Other"],
  ["InfantToddler", "Other"],
  // empty and unrecognised
  ["", "Other"],
  ["   ", "Other"],
  ["-", "Other"],
  ["grade", "Other"],
  ["1th", "Other"],
  ["2st", "Other"],
  ["1, 2", "Other"],
  ["9-12", "Other"],
  ["K-12", "Other"],
  ["Adult", "Other"],
  ["Kindergartens", "Other"],
  ["zeroth", "Other"]
]

/** The non-blank inputs of the table. */
const KNOWN = TABLE.map(([raw]) => raw).filter((raw) => raw.trim() !== "")

/** A known input with its case shuffled and spaces around it. */
const respelled = fc
  .tuple(fc.constantFrom(...KNOWN), fc.array(fc.boolean(), { minLength: 32, maxLength: 32 }), fc.constantFrom("", " ", "  ", "\t"), fc.constantFrom("", " ", "\n"))
  .map(([raw, upper, before, after]) => before + [...raw].map((c, i) => (upper[i] ? c.toUpperCase() : c.toLowerCase())).join("") + after)

const anyGradeInput = fc.oneof(fc.string(), fc.constantFrom(...TABLE.map(([raw]) => raw)), respelled, fc.constantFrom(...GRADE_LEVELS))

const isGradeLevel = (value: unknown): value is GradeLevel => (GRADE_LEVELS as ReadonlyArray<unknown>).includes(value)

describe("normalizeGrade", () => {
  it.each(TABLE)("%j → %s", (raw, expected) => {
    expect(normalizeGrade(raw)).toBe(expected)
  })

  it("every grade level normalises to itself", () => {
    for (const grade of GRADE_LEVELS) expect(normalizeGrade(grade)).toBe(grade)
  })

  it("always gives a grade level", () => {
    fc.assert(fc.property(anyGradeInput, (raw) => isGradeLevel(normalizeGrade(raw))))
  })

  it("is idempotent", () => {
    fc.assert(fc.property(anyGradeInput, (raw) => normalizeGrade(normalizeGrade(raw)) === normalizeGrade(raw)))
  })

  it("ignores case and surrounding spaces", () => {
    fc.assert(
      fc.property(respelled, (raw) => {
        const original = KNOWN.find((known) => known.toLowerCase() === raw.trim().toLowerCase())
        return original !== undefined && normalizeGrade(raw) === normalizeGrade(original)
      })
    )
  })
})

describe("normalizeGrades", () => {
  it("deduplicates and orders PK, K, 1–12, Other", () => {
    expect(normalizeGrades(["12", "Other", "07", "KG", "7", "Grade 7", "PK", "13", "UG", "Kindergarten", "01"]))
      .toEqual(["PK", "K", "1", "7", "12", "Other"])
    expect(normalizeGrades(["10", "9", "11", "2"])).toEqual(["2", "9", "10", "11"])
    expect(normalizeGrades([])).toEqual([])
  })

  it("is sorted in school order, without duplicates, and loses no grade", () => {
    fc.assert(
      fc.property(fc.array(anyGradeInput, { maxLength: 20 }), (raw) => {
        const out = normalizeGrades(raw)
        const positions = out.map((grade) => GRADE_LEVELS.indexOf(grade))
        expect(positions.every((p, i) => p >= 0 && (i === 0 || p > positions[i - 1]!))).toBe(true)
        expect(new Set(out).size).toBe(out.length)
        expect(new Set(out)).toEqual(new Set(raw.map(normalizeGrade)))
      })
    )
  })

  it("is idempotent", () => {
    fc.assert(fc.property(fc.array(anyGradeInput, { maxLength: 20 }), (raw) => {
      expect(normalizeGrades(normalizeGrades(raw))).toEqual(normalizeGrades(raw))
    }))
  })
})
