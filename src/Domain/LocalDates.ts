import { Schema } from "effect"

/** Local calendar dates as day numbers (days since 1970-01-01): the arithmetic the holiday calendar needs (src/Schedule/Calendar.ts). */

// ---------------------------------------------------------------------------------------
// Local dates as day numbers

export const MS_PER_DAY = 86_400_000
export const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/

/** Days since 1970-01-01 of a proleptic Gregorian date (no 0–99 year quirk of `Date.UTC`). */
export const dayNumber = (year: number, month: number, day: number): number => {
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  return Math.round(date.getTime() / MS_PER_DAY)
}

export const fromDayNumber = (days: number): { readonly year: number; readonly month: number; readonly day: number } => {
  const date = new Date(days * MS_PER_DAY)
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() }
}

/** 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday). */
export const weekdayOfDay = (days: number): number => (((days + 4) % 7) + 7) % 7

export const isLeapYear = (year: number) => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0

export const daysInMonth = (year: number, month: number): number =>
  month === 2 ? (isLeapYear(year) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31

export const pad = (n: number, width: number) => String(n).padStart(width, "0")

export const isValidIsoDate = (s: string): boolean => {
  const m = ISO_DATE.exec(s)
  if (m === null) return false
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])]
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month)
}

/** A calendar date without a time or zone, `YYYY-MM-DD`. Compares correctly as a string. */
export const LocalDate = Schema.String.pipe(
  Schema.filter((s) => isValidIsoDate(s) || `expected a date "YYYY-MM-DD", got ${JSON.stringify(s)}`, {
    identifier: "LocalDate"
  }),
  Schema.brand("LocalDate")
)
export type LocalDate = typeof LocalDate.Type

export const toDayNumber = (date: LocalDate): number => {
  const m = ISO_DATE.exec(date)!
  return dayNumber(Number(m[1]), Number(m[2]), Number(m[3]))
}

export const toLocalDate = (days: number): LocalDate => {
  const { day, month, year } = fromDayNumber(days)
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}` as LocalDate
}

/** `LocalDate` from year, month (1–12) and day; throws on a date that does not exist. */
export const localDate = (year: number, month: number, day: number): LocalDate => {
  const s = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`
  if (!isValidIsoDate(s)) throw new RangeError(`not a date: ${s}`)
  return s as LocalDate
}
