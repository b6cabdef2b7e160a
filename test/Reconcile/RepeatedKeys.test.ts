import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { RepeatedKeys } from "../../src/Reconcile/RepeatedKeys.ts"

/**
 * The filter staging keeps of the keys it decodes (src/Reconcile/RepeatedKeys.ts): the
 * duplicate checks of a feed decoded whole look only at the lines it reports, so it may
 * never miss a repeated source ID or enrollment pair.
 */
interface Row {
  readonly sourceId: string | null
  readonly classSourceId: string | null
  readonly userSourceId: string | null
}

/** The lines whose source ID, or class and user, an earlier line had. */
const repeatedLines = (rows: ReadonlyArray<Row>) => {
  const ids = new Set<string>()
  const pairs = new Set<string>()
  const out: Array<number> = []
  rows.forEach((row, line) => {
    const pair = row.classSourceId !== null && row.userSourceId !== null ? JSON.stringify([row.classSourceId, row.userSourceId]) : null
    if ((row.sourceId !== null && ids.has(row.sourceId)) || (pair !== null && pairs.has(pair))) out.push(line)
    if (row.sourceId !== null) ids.add(row.sourceId)
    if (pair !== null) pairs.add(pair)
  })
  return out
}

describe("repeated keys", () => {
  it("reports every line whose source ID or class and user an earlier line had, whatever the keys and their order", () => {
    // Few distinct values, so keys repeat often; a separator inside a value, and an ID
    // equal to a class or a user, must not make two different keys one.
    const id = fc.oneof(fc.constantFrom("a", "b", "a\u001fb", "ab", "c", "é", "😀"), fc.string({ maxLength: 3 }))
    const row = fc.record({
      sourceId: fc.option(id, { nil: null }),
      classSourceId: fc.option(id, { nil: null }),
      userSourceId: fc.option(id, { nil: null })
    })
    fc.assert(
      fc.property(fc.array(row, { maxLength: 300 }), (rows) => {
        const keys = new RepeatedKeys(10_000)
        rows.forEach((r, line) => keys.add(line, r.sourceId, r.classSourceId, r.userSourceId))
        const reported = new Set(keys.lines)
        for (const line of repeatedLines(rows)) expect(reported.has(line)).toBe(true)
      }),
      { numRuns: 500 }
    )
  })

  it("finds repeats across the filters it adds as it fills, and rarely reports a new key", () => {
    // 400,000 enrollments (800,000 keys: past the first filters), every 10,000th repeating
    // an ID and every 10,000th (offset) a class and user from far back.
    const keys = new RepeatedKeys(100_000)
    const rows = 400_000
    const repeats = new Set<number>()
    for (let line = 0; line < rows; line++) {
      const idRepeat = line > 0 && line % 10_000 === 0
      const pairRepeat = line % 10_000 === 5_000
      if (idRepeat || pairRepeat) repeats.add(line)
      keys.add(
        line,
        `enr-${idRepeat ? line - 9_999 : line}`,
        `cls-${pairRepeat ? 7 : Math.floor(line / 25)}`,
        `usr-${pairRepeat ? 7 * 25 + 3 : line}`
      )
    }
    const reported = new Set(keys.lines)
    for (const line of repeats) expect(reported.has(line)).toBe(true)
    // False alarms (about 3 in 1,000 keys, two keys a line): at most 1 % of the lines.
    expect(reported.size - repeats.size).toBeLessThanOrEqual(rows / 100)
  })

  it("gives up past its cap: the checks then read every row", () => {
    const keys = new RepeatedKeys(3)
    for (let line = 0; line < 5; line++) keys.add(line, "same")
    expect(keys.lines).toBeNull()
  })
})
