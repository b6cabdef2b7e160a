/**
 * The bench district's time zone: a fixed offset from UTC at which it is about noon when
 * the bench starts. A district's local date decides ages (a student turns 13 on a day) and
 * current terms; a bench that ran across the district's midnight would see its no-op sync
 * update the students whose birthday the new day is — rightly, and not a no-op. With the
 * district at noon, a bench shorter than twelve hours stays within one local day.
 */
export const benchTimezone = (now: Date = new Date()): string => {
  const offset = 12 - now.getUTCHours() // UTC+offset is about noon now: -11 … +12
  // (Etc/GMT zones count the other way: Etc/GMT-5 is five hours ahead of UTC.)
  return offset === 0 ? "UTC" : `Etc/GMT${offset > 0 ? "-" : "+"}${Math.abs(offset)}`
}
