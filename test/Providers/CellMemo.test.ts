import { assert, describe, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import fc from "fast-check"
import type { CellPositions } from "../../src/Providers/OneRosterCsv/CellMemo.ts"
import { columnwise } from "../../src/Providers/OneRosterCsv/CellMemo.ts"
import { CsvFiles } from "../../src/Providers/OneRosterCsv/Files.ts"
import { usersFile12 } from "../../src/Providers/OneRosterCsv/Files12.ts"

/**
 * Rows of a CSV file are decoded column by column with a memo of each column's recent
 * cells (src/Providers/OneRosterCsv/CellMemo.ts) instead of by the file's `Schema.Struct`.
 * It must decode every row exactly as the Struct does — the same values, the same keys in
 * the same order — and give back every row the Struct refuses, however the cells repeat,
 * whatever the header's order, and past the points where a memo is emptied or given up.
 */

const specs = [
  ...Object.values(CsvFiles).map((file) => file.spec),
  usersFile12({ roles: new Map(), unreadable: new Set(), profiles: new Map() })
]

/** Cells that read, cells that do not, and everything between, for every kind of column. */
const interesting = [
  "", " ", "active", "Active ", "tobedeleted", "inactive", "bogus", "true", "FALSE", " false", "yes",
  "2026-01-05", "2026-02-30", " 2025-12-31 ", "05/01/2026", "student", "Teacher", "aide", "administrator", "guardian",
  "school", "district", "schoolYear", "term", "gradingPeriod", "semester", "homeroom", "scheduled", "KG", "09", "PK,KG",
  "{LDAP:12},{LTI:15}", "x:1,y:2", "a,b", "  padded  ", "ünïcødé", "1", "0", "e@x.test", "\t"
]

/** A pool of cells for one run: some interesting, some random; rows draw from it so cells repeat. */
const pool = fc.array(fc.oneof(fc.constantFrom(...interesting), fc.string({ maxLength: 8 })), { minLength: 1, maxLength: 12 })

const structOf = (spec: (typeof specs)[number]) => Schema.decodeUnknownEither(spec.row as Schema.Schema<unknown, Readonly<Record<string, string>>>)

/** The header: the spec's columns in some order, some optional ones left out, some unknown ones added. */
const headerFor = (columns: ReadonlyArray<string>, required: ReadonlyArray<string>) =>
  fc.tuple(
    fc.shuffledSubarray([...columns], { minLength: columns.length, maxLength: columns.length }),
    fc.array(fc.boolean(), { minLength: columns.length, maxLength: columns.length }),
    fc.nat(2)
  ).map(([order, keep, extra]) => [
    ...order.filter((name, i) => keep[i] || required.includes(name)),
    ...Array.from({ length: extra }, (_, i) => `extra${i}`)
  ])

const positionsOf = (header: ReadonlyArray<string>, columns: ReadonlyArray<string>): CellPositions =>
  columns.map((name) => [name, header.indexOf(name)] as const)

const cellsOf = (positions: CellPositions, row: ReadonlyArray<string>) =>
  Object.fromEntries(positions.map(([name, index]) => [name, index >= 0 && index < row.length ? row[index]! : ""]))

describe("decoding rows column by column (CellMemo)", () => {
  for (const spec of specs) {
    const columns = [...spec.required, ...spec.optional]
    it(`${spec.file}${spec === specs.at(-1) ? " (1.2)" : ""}: every row as the Struct decodes it`, () => {
      const struct = structOf(spec)
      const byColumn = columnwise(spec.row)
      assert.isNotNull(byColumn, "the spec's Struct decodes column by column")
      fc.assert(
        fc.property(headerFor(columns, spec.required), pool, fc.array(fc.array(fc.nat(), { minLength: 0, maxLength: columns.length + 2 }), { minLength: 1, maxLength: 200 }), (header, cells, picks) => {
          const positions = positionsOf(header, columns)
          const decode = byColumn!(positions)
          for (const pick of picks) {
            // Rows of the header's width mostly; now and then a short one.
            const width = pick.length > columns.length ? header.length : Math.min(header.length, pick.length)
            const row = Array.from({ length: width }, (_, i) => cells[(pick[i % Math.max(1, pick.length)] ?? i) % cells.length]!)
            const expected = struct(cellsOf(positions, row))
            const actual = decode(row)
            if (Either.isLeft(expected)) {
              assert.isUndefined(actual, "a row the Struct refuses is given back undecoded")
            } else {
              assert.deepStrictEqual(actual, expected.right as Record<string, unknown>)
              assert.deepStrictEqual(Object.keys(actual!), Object.keys(expected.right as object), "the same keys, in the same order")
            }
          }
        }),
        { numRuns: 60 }
      )
    })
  }

  it("past the memo's size and its probe: long runs of mixed cells still decode as the Struct does", () => {
    const spec = CsvFiles.enrollments.spec
    const columns = [...spec.required, ...spec.optional]
    const struct = structOf(spec)
    const decode = columnwise(spec.row)!(positionsOf(columns, columns))
    const rng = fc.sample(fc.nat(), { numRuns: 30_000, seed: 17 })
    let decoded = 0
    for (let i = 0; i < 10_000; i++) {
      const n = rng[i]!
      const cells: Record<string, string> = {
        sourcedId: `e-${i}`, // unique: its memo gives up
        status: ["", "active", "tobedeleted", "bogus"][n % 8] ?? "",
        classSourcedId: `c-${rng[i + 10_000]! % 3000}`, // more than the memo holds: it is emptied and refilled
        schoolSourcedId: n % 7 === 0 ? "" : `s-${n % 50}`,
        userSourcedId: `u-${rng[i + 20_000]! % 9000}`,
        role: ["student", "teacher", "Aide", "nobody"][(n >> 4) % 8] ?? "student",
        primary: ["", "true", "FALSE", "maybe"][(n >> 7) % 8] ?? "",
        beginDate: ["", "2026-08-20", "2026-02-30"][(n >> 10) % 6] ?? "",
        endDate: ["", "2027-06-10"][(n >> 13) % 2]!
      }
      const row = columns.map((name) => cells[name]!)
      const expected = struct(cells)
      const actual = decode(row)
      if (Either.isLeft(expected)) assert.isUndefined(actual)
      else {
        decoded += 1
        assert.deepStrictEqual(actual, expected.right as Record<string, unknown>)
      }
    }
    assert.isAbove(decoded, 5_000, "most rows decode")
  })

  it("positions that leave a column out entirely: every row is left to the Struct", () => {
    const spec = CsvFiles.enrollments.spec
    const columns = [...spec.required, ...spec.optional].filter((name) => name !== "endDate")
    const decode = columnwise(spec.row)!(positionsOf(columns, columns))
    assert.isUndefined(decode(columns.map((name) => name === "role" ? "student" : name === "status" ? "active" : "x")))
  })

  it("values that are objects are never shared between rows", () => {
    const spec = CsvFiles.users.spec
    const columns = [...spec.required, ...spec.optional]
    const decode = columnwise(spec.row)!(positionsOf(columns, columns))
    const row = columns.map((name) => name === "sourcedId" ? "u-1" : name === "role" ? "student" : name === "orgSourcedIds" ? "s-1,s-2" : "")
    const first = decode(row)!
    const second = decode(row)!
    assert.deepStrictEqual(first.orgSourcedIds, second.orgSourcedIds)
    assert.notStrictEqual(first.orgSourcedIds, second.orgSourcedIds)
  })
})
