import { assert, describe, it } from "@effect/vitest"
import { parse } from "csv-parse"
import { parse as parseSync } from "csv-parse/sync"
import fc from "fast-check"
import { Readable } from "node:stream"
import { csvParseOptions } from "../../src/Providers/OneRosterCsv/CsvFeed.ts"
import { defaultCsvLimits } from "../../src/Providers/OneRosterCsv/CsvLimits.ts"
import type { PassedRecord, RecordBatch } from "../../src/Providers/OneRosterCsv/RecordFilter.ts"
import { RecordFilter } from "../../src/Providers/OneRosterCsv/RecordFilter.ts"

/**
 * The record filter tells a CSV file's records apart before csv-parse does, so that known
 * records are never parsed (src/Providers/OneRosterCsv/RecordFilter.ts). It must agree with
 * csv-parse on every file csv-parse accepts: the same records, at the same lines, however
 * the bytes are chunked; and a second read that knows every record must drop all of them.
 */

type Row = ReadonlyArray<string>

/** csv-parse on its own, with rosterd's options: the rows and each row's line, empty rows dropped. */
const plainParse = async (chunks: ReadonlyArray<Buffer>): Promise<Array<{ line: number; row: Row }>> => {
  const out: Array<{ line: number; row: Row }> = []
  let next = 1
  for await (const row of Readable.from(chunks).pipe(parse(csvParseOptions(defaultCsvLimits)))) {
    const cells = row as Array<string>
    const line = next
    next += 1
    for (const cell of cells) for (const ch of cell) if (ch === "\n") next += 1
    if (cells.length === 1 && cells[0] === "") continue
    out.push({ line, row: cells })
  }
  return out
}

type QueuedRecord = Pick<PassedRecord, "line" | "hi" | "lo">

/**
 * The filter's output made rows: the header (parsed from the bytes it kept), then each
 * passed record with the line the filter announced — its cells as the filter split them,
 * or, for a record with quotes, the row csv-parse made of the batch's bytes.
 */
const filteredParse = async (chunks: ReadonlyArray<Buffer>, known: (hi: number, lo: number, line: number) => boolean) => {
  const filter = new RecordFilter({ version: "test|users.csv", maxRecordBytes: defaultCsvLimits.maxRecordBytes, known })
  const out: Array<{ line: number; row: Row; queued?: QueuedRecord; split: boolean }> = []
  const batches: Array<RecordBatch> = []
  for await (const batch of Readable.from(chunks).pipe(filter)) batches.push(batch as RecordBatch)
  if (filter.header !== undefined) out.push({ line: 1, row: (parseSync(filter.header, csvParseOptions(defaultCsvLimits)) as Array<Row>)[0]!, split: false })
  for (const batch of batches) {
    const rows = batch.quoted === undefined ? [] : parseSync(batch.quoted, csvParseOptions(defaultCsvLimits)) as Array<Row>
    const announced = batch.records.filter((r) => r.cells === undefined).length
    if (rows.length !== announced) throw new Error(`${rows.length} rows parsed of ${announced} records announced`)
    let next = 0
    for (const { line, hi, lo, cells } of batch.records) {
      out.push({ line, row: cells ?? rows[next++]!, queued: { line, hi, lo }, split: cells !== undefined })
    }
  }
  return { rows: out, filter }
}

/** Scan mode: each record's line and digest, from the batches it emits. */
const scan = async (chunks: ReadonlyArray<Buffer>): Promise<Array<QueuedRecord>> => {
  const filter = new RecordFilter({ version: "test|users.csv", maxRecordBytes: defaultCsvLimits.maxRecordBytes, known: undefined })
  const out: Array<QueuedRecord> = []
  for await (const batch of Readable.from(chunks).pipe(filter)) {
    const numbers = batch as ReadonlyArray<number>
    for (let i = 0; i < numbers.length; i += 3) out.push({ line: numbers[i]!, hi: numbers[i + 1]!, lo: numbers[i + 2]! })
  }
  return out
}

const cell = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom("a", "b", "Z", "1", " ", "é", "😀"), maxLength: 6 }) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom("a", ",", "\"", "\n", "\r", " "), maxLength: 6 }) }
)

/** A row as a writer would quote it: RFC 4180, quotes only where needed (or always). */
const encode = (cells: Row, quoteAll: boolean) =>
  cells.map((c) => (quoteAll || /[",\r\n]/.test(c) ? `"${c.replace(/"/g, "\"\"")}"` : c)).join(",")

const file = fc.record({
  bom: fc.boolean(),
  rows: fc.array(fc.record({ cells: fc.array(cell, { minLength: 1, maxLength: 4 }), quoteAll: fc.boolean(), blankBefore: fc.nat(2) }), {
    maxLength: 12
  }),
  delimiter: fc.constantFrom("\n", "\r\n", "\r"),
  mixed: fc.boolean(),
  trailing: fc.boolean(),
  cuts: fc.array(fc.nat(400), { maxLength: 8 })
}).map(({ bom, rows, delimiter, mixed, trailing, cuts }) => {
  const delimiters = ["\n", "\r\n", "\r"]
  let text = (bom ? "\uFEFF" : "") + "sourcedId,givenName,familyName"
  rows.forEach((r, i) => {
    const end = mixed ? delimiters[i % 3]! : delimiter
    text += end.repeat(r.blankBefore + 1) + encode(r.cells, r.quoteAll)
  })
  if (trailing) text += delimiter
  const bytes = Buffer.from(text)
  // The same bytes in chunks cut at arbitrary places (inside a CRLF, a quoted cell, a character).
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<Buffer> = []
  let from = 0
  for (const at of points) {
    if (at > from) chunks.push(bytes.subarray(from, at))
    from = Math.max(from, at)
  }
  chunks.push(bytes.subarray(from))
  return chunks
})

describe("record filter", () => {
  it("finds the same records at the same lines as csv-parse, however the bytes are chunked; known records are dropped", async () => {
    await fc.assert(
      fc.asyncProperty(file, async (chunks) => {
        const expected = await plainParse(chunks)
        const first = await filteredParse(chunks, () => false)
        assert.deepStrictEqual(first.rows.map(({ line, row }) => ({ line, row })), expected)
        // Only records without a quote are split by the filter.
        for (const r of first.rows) if (r.split) assert.isFalse(r.row.some((c) => c.includes("\"")))

        // A second read knowing every digest of the first passes on the header only.
        const seen = new Set(first.rows.flatMap((r) => (r.queued === undefined ? [] : [`${r.queued.hi}:${r.queued.lo}`])))
        const second = await filteredParse(chunks, (hi, lo) => seen.has(`${hi}:${lo}`))
        assert.strictEqual(second.rows.length, Math.min(1, expected.length))
        assert.strictEqual(second.filter.dropped, first.filter.passed)

        // Scan mode (nothing parsed) finds the same lines and digests, and the header.
        const scanned = await scan(chunks)
        assert.deepStrictEqual(scanned, first.rows.flatMap((r) => (r.queued === undefined ? [] : [r.queued])))

        // The same rows cut differently give the same digests.
        const whole = await filteredParse([Buffer.concat(chunks)], () => false)
        assert.deepStrictEqual(whole.rows.map((r) => r.queued), first.rows.map((r) => r.queued))
      }),
      { numRuns: 300 }
    )
  })

  it("a record without quotes is split as csv-parse reads it, whatever its bytes (malformed UTF-8 included)", async () => {
    // Bytes a writer in another encoding, or a broken one, leaves: lead and continuation
    // bytes out of place, next to the commas the split cuts at.
    const byte = fc.constantFrom(0x61, 0x2c, 0x20, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0xff, 0x80)
    const record = fc.array(byte, { minLength: 1, maxLength: 12 }).map((bytes) => Buffer.from(bytes))
    await fc.assert(
      fc.asyncProperty(fc.array(record, { minLength: 1, maxLength: 6 }), fc.nat(60), async (records, cut) => {
        const bytes = Buffer.concat([Buffer.from("a,b\n"), ...records.flatMap((r) => [r, Buffer.from("\n")])])
        const at = cut % (bytes.length + 1)
        const chunks = [bytes.subarray(0, at), bytes.subarray(at)].filter((c) => c.length > 0)
        const filtered = await filteredParse(chunks, () => false)
        assert.deepStrictEqual(filtered.rows.map(({ line, row }) => ({ line, row })), await plainParse(chunks))
      }),
      { numRuns: 300 }
    )
  })

  it("a known record changed by one byte is passed on; a header changed in any way makes every record new", async () => {
    const text = "sourcedId,givenName\ns-1,Ann\ns-2,Bo\n"
    const first = await filteredParse([Buffer.from(text)], () => false)
    const seen = new Set(first.rows.flatMap((r) => (r.queued === undefined ? [] : [`${r.queued.hi}:${r.queued.lo}`])))
    const known = (hi: number, lo: number) => seen.has(`${hi}:${lo}`)

    const changed = await filteredParse([Buffer.from("sourcedId,givenName\ns-1,Ann\ns-2,Bob\n")], known)
    assert.deepStrictEqual(changed.rows.map((r) => [r.line, ...r.row]), [[1, "sourcedId", "givenName"], [3, "s-2", "Bob"]])

    const reheaded = await filteredParse([Buffer.from("sourcedId,givenName \ns-1,Ann\ns-2,Bo\n")], known)
    assert.strictEqual(reheaded.filter.dropped, 0)
    assert.strictEqual(reheaded.rows.length, 3)
  })

  it("broken quoting reaches csv-parse and fails as it would without the filter", async () => {
    const cases = [
      "sourcedId,givenName\ns-1,\"Ann\ns-2,Bo\n", // a quote never closed
      "sourcedId,givenName\ns-1,An\"n\n", // a quote inside an unquoted cell
      "sourcedId,givenName\ns-1,\"Ann\"x\n" // text after a closing quote
    ]
    for (const text of cases) {
      const plain = await plainParse([Buffer.from(text)]).then(() => "ok", (e: { code?: string }) => e.code ?? "error")
      const filtered = await filteredParse([Buffer.from(text)], () => false).then(() => "ok", (e: { code?: string }) => e.code ?? "error")
      assert.notStrictEqual(plain, "ok", JSON.stringify(text))
      assert.strictEqual(filtered, plain, JSON.stringify(text))
    }
  })

  it("a header longer than the record limit is refused, not read as a record (no row is digested under it, nothing of it passed on)", async () => {
    const filter = new RecordFilter({ version: "test|users.csv", maxRecordBytes: 64, known: undefined })
    const out: Array<number> = []
    for await (const batch of Readable.from([Buffer.from(`${"x".repeat(100)}\ns-1,Ann\ns-2,Bo\n`)]).pipe(filter)) {
      out.push(...(batch as ReadonlyArray<number>))
    }
    assert.isTrue(filter.headerTooLarge)
    assert.isUndefined(filter.header)
    // The records after it are still told apart (lines 2 and 3), under a seed no real header gives.
    assert.deepStrictEqual([out[0], out[3]], [2, 3])

    // Filter mode alike: none of the header's bytes is passed on (its pieces came over three
    // chunks); the reader refuses the file from `headerTooLarge`.
    const reader = new RecordFilter({ version: "test|users.csv", maxRecordBytes: 64, known: () => false })
    const batches: Array<RecordBatch> = []
    const text = `${"x".repeat(100)}\ns-1,Ann\n`
    for await (const batch of Readable.from([text.slice(0, 40), text.slice(40, 80), text.slice(80)].map((t) => Buffer.from(t))).pipe(reader)) {
      batches.push(batch as RecordBatch)
    }
    assert.isTrue(reader.headerTooLarge)
    assert.isUndefined(reader.header)
    assert.isTrue(batches.every((b) => b.quoted === undefined))
    assert.deepStrictEqual(batches.flatMap((b) => b.records.map((r) => [r.line, r.cells])), [[2, ["s-1", "Ann"]]])
  })
})
