import type { Options } from "csv-parse"
import { parse as parseSync } from "csv-parse/sync"
import { Chunk, Effect, Either, ParseResult, Schema, SchemaAST, Stream } from "effect"
import { csvErrorLine, csvSyntaxError } from "../../Csv/Syntax.ts"
import { ProviderError } from "../../Domain/Errors.ts"
import type { EntityKind, EntityRecord } from "../../Domain/Roster.ts"
import type { FeedDigests, FeedItem, RawItem } from "../RosterProvider.ts"
import type { CsvLimits } from "./CsvLimits.ts"
import { defaultCsvLimits, EXTRA_FIELDS, showBytes } from "./CsvLimits.ts"
import type { CsvSource } from "./CsvSource.ts"
import type { KnownDigest, PassedRecord, RecordBatch } from "./RecordFilter.ts"
import { RecordFilter } from "./RecordFilter.ts"
import { columnwise } from "./CellMemo.ts"
import type { CsvFileSpec } from "./Files.ts"

/**
 * Streams one CSV file of a set as feed items.
 *
 * The `RecordFilter` tells the file's records apart and splits those without quotes
 * itself; csv-parse does the RFC 4180 work for the others, a batch at a time. Rows come in
 * batches of a read chunk so the Effect stream handles thousands of rows per step, not
 * one: this is the hot path of a 10-million-enrollment district.
 *
 * Bounded (`rosterd.csv.*`): the source's `ByteGuard` caps the file's bytes and physical
 * lines; a record is capped (`max_record_size`, a quoted cell spanning many lines);
 * a header wider than `maxColumns`, or a row wider than its header by more than
 * `EXTRA_FIELDS`, fails the file at its line (the file's quoting is broken: its rows cannot
 * be told apart). Once the file is read, the set must still be what the run opened.
 */
export const csvFeedItems = <K extends EntityKind, Row>(
  source: CsvSource,
  spec: CsvFileSpec<K, Row>,
  limits: CsvLimits
): Stream.Stream<FeedItem<EntityRecord[K]>, ProviderError> =>
  // Every record passed on (the digests the filter takes on the way are not used).
  csvRows(source, spec, limits, (decoder) => decoder, { version: spec.file, known: () => false })

/**
 * The same records as `csvFeedItems`, as digests first (`FeedDigests`): `scan` reads the
 * file's records without parsing them, each with its line and the digest of its bytes
 * (`RecordFilter`); `read` reads the file again and parses only the records whose line is
 * wanted. The digests' seed is `version` (`CSV_MAPPING_VERSION`), the file's name and its
 * header's bytes: a header changed in any way (a column added, renamed or moved) makes
 * every record of the file new. The bounds are the same, and `scan` checks the header as
 * a full read would.
 */
export const csvDigests = <K extends EntityKind, Row>(
  source: CsvSource,
  spec: CsvFileSpec<K, Row>,
  limits: CsvLimits,
  version: string
): FeedDigests<EntityRecord[K]> => {
  const seed = `${version}|${spec.file}`
  return {
    version,
    scan: Stream.unwrapScoped(Effect.gen(function*() {
      const input = yield* source.open(spec.file)
      const filter = new RecordFilter({ version: seed, maxRecordBytes: limits.maxRecordBytes, known: undefined })
      const scanned = input.pipe(filter)
      input.on("error", (cause) => scanned.destroy(cause))
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          scanned.destroy()
          input.destroy()
        })
      )
      return Stream.fromAsyncIterable(scanned as AsyncIterable<ReadonlyArray<number>>, (cause) => csvFileError(cause, spec.file, limits)).pipe(
        // The header, checked as a full read checks it; no header at all fails the file.
        Stream.concat(headerChecked(filter, spec, limits)),
        // A writer that started while this file was read: the set may be half old, half new.
        Stream.concat(Stream.drain(Stream.fromEffect(source.unchanged)))
      )
    })),
    read: (wanted) =>
      csvRows(
        source,
        spec,
        limits,
        (decoder) => (header, raw, record) => new PendingRecord(decoder, header, raw, record),
        { version: seed, known: () => false, unwanted: (line) => !wanted(line) }
      )
  }
}

type RowDecoder<K extends EntityKind> = (header: HeaderIndex, raw: RawRow, record: PassedRecord) => FeedItem<EntityRecord[K]>

/**
 * A record `read` passes on, decoded when asked. A class, not an object with a closure:
 * one per record of a ten-million-row file, and a closure made per record cost its
 * allocation and, compiled with names kept (tsx), a `name` property defined on each.
 */
class PendingRecord<K extends EntityKind> implements RawItem<EntityRecord[K]> {
  readonly hi: number
  readonly lo: number
  readonly line: number
  constructor(
    private readonly decoder: RowDecoder<K>,
    private readonly header: HeaderIndex,
    private readonly raw: RawRow,
    private readonly record: PassedRecord
  ) {
    this.hi = record.hi
    this.lo = record.lo
    this.line = record.line
  }
  decode(): FeedItem<EntityRecord[K]> {
    return this.decoder(this.header, this.raw, this.record)
  }
}

/** The file's header, from the bytes the filter kept: read, and checked against the spec. */
const fileHeader = <K extends EntityKind, Row>(filter: RecordFilter, spec: CsvFileSpec<K, Row>, limits: CsvLimits): Either.Either<HeaderIndex, ProviderError> => {
  if (filter.headerTooLarge) return Either.left(csvFileError({ code: "CSV_MAX_RECORD_SIZE", lines: 1 }, spec.file, limits))
  if (filter.header === undefined) {
    return Either.left(new ProviderError({ reason: "BadHeader", message: "the file is empty (no header row)", file: spec.file }))
  }
  return Either.try({
    try: () => parseSync(filter.header!, csvParseOptions(limits)) as Array<RawRow>,
    catch: (cause) => csvFileError(cause, spec.file, limits)
  }).pipe(Either.flatMap((rows) =>
    rows.length > 1 ? Either.left(unaligned(spec.file, 1)) : readHeader(spec, rows[0] ?? [], limits)
  ))
}

/** Once the file is read: fails the stream when its header does not read or check (`fileHeader`). */
const headerChecked = <K extends EntityKind, Row>(filter: RecordFilter, spec: CsvFileSpec<K, Row>, limits: CsvLimits): Stream.Stream<never, ProviderError> =>
  Stream.suspend(() => Either.match(fileHeader(filter, spec, limits), { onLeft: Stream.fail, onRight: () => Stream.empty }))

/** csv-parse made more or fewer rows of a batch's bytes than the filter told records apart: no row can be placed. */
const unaligned = (file: string, line?: number) =>
  new ProviderError({
    reason: "Malformed",
    message: "the file's records cannot be told apart (its quoting is broken)",
    file,
    ...(line === undefined ? {} : { line })
  })

/**
 * The rows of a batch's records that came as bytes (they hold quotes), parsed by csv-parse.
 * Its error names the record it stopped in (csv-parse counts the records before it).
 */
const quotedRows = (batch: RecordBatch, file: string, limits: CsvLimits): Either.Either<ReadonlyArray<RawRow>, ProviderError> => {
  if (batch.quoted === undefined) return Either.right([])
  const announced = batch.records.filter((record) => record.cells === undefined)
  return Either.try({
    try: () => parseSync(batch.quoted!, csvParseOptions(limits)) as Array<RawRow>,
    catch: (cause) => {
      const records = (cause as { readonly records?: unknown } | null)?.records
      const line = typeof records === "number" ? announced[records]?.line : undefined
      return csvFileError(
        typeof cause === "object" && cause !== null ? Object.assign(cause, { lines: line }) : cause,
        file,
        limits
      )
    }
  }).pipe(Either.filterOrLeft(
    (rows) => rows.length === announced.length,
    (rows) => unaligned(file, announced[Math.min(rows.length, announced.length - 1)]?.line)
  ))
}

const csvRows = <K extends EntityKind, Row, Out>(
  source: CsvSource,
  spec: CsvFileSpec<K, Row>,
  limits: CsvLimits,
  make: (decoder: RowDecoder<K>) => (header: HeaderIndex, raw: RawRow, record: PassedRecord) => Out,
  /** The digests' seed, and which records to drop unparsed (`RecordFilter`). */
  digests: { readonly version: string; readonly known: KnownDigest; readonly unwanted?: (line: number) => boolean }
): Stream.Stream<Out, ProviderError> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const input = yield* source.open(spec.file)
    const filter = new RecordFilter({
      version: digests.version,
      maxRecordBytes: limits.maxRecordBytes,
      known: digests.known,
      unwanted: digests.unwanted
    })
    const batches = input.pipe(filter)
    input.on("error", (cause) => batches.destroy(cause))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        batches.destroy()
        input.destroy()
      })
    )
    const item = make(makeRowDecoder(spec))
    let header: HeaderIndex | undefined
    return Stream.fromAsyncIterable(batches as AsyncIterable<RecordBatch>, (cause) => csvFileError(cause, spec.file, limits)).pipe(
      Stream.mapEffect((batch) => {
        if (header === undefined) {
          const read = fileHeader(filter, spec, limits)
          if (Either.isLeft(read)) return Effect.fail(read.left)
          header = read.right
        }
        const parsed = quotedRows(batch, spec.file, limits)
        if (Either.isLeft(parsed)) return Effect.fail(parsed.left)
        const out: Array<Out> = []
        let next = 0
        for (const record of batch.records) {
          const row = record.cells ?? parsed.right[next++]!
          if (row.length > header.width + EXTRA_FIELDS) {
            return Effect.fail(
              new ProviderError({
                reason: "Malformed",
                message: `the row has ${row.length} fields, the header ${header.width}: the file's quoting or delimiters are broken`,
                file: spec.file,
                line: record.line
              })
            )
          }
          out.push(item(header, row, record))
        }
        return Effect.succeed(Chunk.unsafeFromArray(out))
      }),
      Stream.flattenChunks,
      // A file of a header alone: the header is still checked; no header at all fails the file.
      Stream.concat(Stream.suspend(() => header !== undefined ? Stream.empty : headerChecked(filter, spec, limits))),
      // A writer that started while this file was read: the set may be half old, half new.
      Stream.concat(Stream.drain(Stream.fromEffect(source.unchanged)))
    )
  }))

type RawRow = ReadonlyArray<string>

/**
 * csv-parse's options for every file of a set. Records end at CRLF, LF or CR, each on its
 * own (auto-detection would fix the first one it meets, and a file mixing CRLF and LF would
 * glue every other line into one cell). `max_record_size` bounds a record's characters.
 */
export const csvParseOptions = (limits: CsvLimits): Options => ({
  bom: true,
  relax_column_count: true,
  record_delimiter: ["\r\n", "\n", "\r"],
  max_record_size: limits.maxRecordBytes
})

/**
 * A file csv-parse gives up on (src/Csv/Syntax.ts says it without a cell), or a record
 * over `rosterd.csv.maxRecordBytes`.
 */
export const csvFileError = (cause: unknown, file: string, limits: Pick<CsvLimits, "maxRecordBytes"> = defaultCsvLimits): ProviderError =>
  typeof cause === "object" && cause !== null && (cause as { readonly code?: unknown }).code === "CSV_MAX_RECORD_SIZE"
    ? new ProviderError({
      reason: "TooLarge",
      message: `a record longer than ${showBytes(limits.maxRecordBytes)} (rosterd.csv.maxRecordBytes): a quote that is never closed, or not a roster record`,
      file,
      ...csvErrorLine(cause)
    })
    : csvSyntaxError(cause, file)

interface HeaderIndex {
  readonly width: number
  /** For each column the spec reads, its position in the row, or -1 when the file lacks it. */
  readonly positions: ReadonlyArray<readonly [name: string, index: number]>
}

const readHeader = <K extends EntityKind, Row>(
  spec: CsvFileSpec<K, Row>,
  raw: RawRow,
  limits: CsvLimits
): Either.Either<HeaderIndex, ProviderError> => {
  if (raw.length > limits.maxColumns) {
    return Either.left(
      new ProviderError({
        reason: "TooLarge",
        message: `the header has ${raw.length} columns, more than ${limits.maxColumns} (rosterd.csv.maxColumns)`,
        file: spec.file,
        line: 1
      })
    )
  }
  const names = raw.map((cell) => cell.trim())
  // A column rosterd reads, named twice: which one holds the values cannot be told.
  const read = new Set<string>([...spec.required, ...spec.optional])
  const twice = names.find((name, i) => read.has(name) && names.indexOf(name) !== i)
  if (twice !== undefined) {
    return Either.left(
      new ProviderError({
        reason: "BadHeader",
        message: `the header names the column "${twice}" twice (fields ${names.indexOf(twice) + 1} and ${names.lastIndexOf(twice) + 1})`,
        file: spec.file,
        line: 1
      })
    )
  }
  const refused = spec.refused?.columns.filter((column) => names.includes(column)) ?? []
  if (refused.length > 0) {
    return Either.left(
      new ProviderError({
        reason: "BadHeader",
        message: `the header has ${refused.map((c) => `"${c}"`).join(" and ")}, ${spec.refused!.why}`,
        file: spec.file,
        line: 1
      })
    )
  }
  const missing = spec.required.filter((column) => !names.includes(column))
  if (missing.length > 0) {
    const hints = missing.flatMap((column) => {
      const near = names.find((name) => name.toLowerCase() === column.toLowerCase())
      return near === undefined ? [] : [`found "${near}" (column names are case-sensitive)`]
    })
    return Either.left(
      new ProviderError({
        reason: "BadHeader",
        message: `the header lacks the required column${missing.length > 1 ? "s" : ""} ${
          missing.map((c) => `"${c}"`).join(", ")
        }${hints.length > 0 ? `; ${hints.join("; ")}` : ""}`,
        file: spec.file,
        line: 1
      })
    )
  }
  return Either.right({
    width: names.length,
    positions: [...spec.required, ...spec.optional].map((name) => [name, names.indexOf(name)] as const)
  })
}

/** Builds the per-row decoder: cells → Schema decode → neutral record, or an `Invalid` item. */
const makeRowDecoder = <K extends EntityKind, Row>(spec: CsvFileSpec<K, Row>) => {
  const decode = Schema.decodeUnknownEither(spec.row)
  const expectations = describeColumns(spec.row)
  // Column by column, recent cells remembered (CellMemo.ts); a row it cannot decode is decoded whole below.
  const byColumn = columnwise(spec.row)
  let decodeRow: ((row: RawRow) => Record<string, unknown> | undefined) | undefined
  let decodeRowFor: HeaderIndex | undefined
  const cellsOf = (header: HeaderIndex, raw: RawRow) => {
    const cells: Record<string, string> = {}
    for (const [name, index] of header.positions) {
      cells[name] = index >= 0 && index < raw.length ? raw[index]! : ""
    }
    return cells
  }
  return (header: HeaderIndex, raw: RawRow, { line }: PassedRecord): FeedItem<EntityRecord[K]> => {
    const width = raw.length
    const origin = { file: spec.file, line }
    if (width !== header.width) {
      return {
        _tag: "Invalid",
        origin,
        ...spec.identity(cellsOf(header, raw)),
        problem: `the row has ${width} fields but the header has ${header.width}`
      }
    }
    if (byColumn !== null) {
      if (decodeRowFor !== header) {
        decodeRow = byColumn(header.positions)
        decodeRowFor = header
      }
      const row = decodeRow!(raw)
      if (row !== undefined) {
        const record = spec.toRecord(row as Row)
        return "problem" in record
          ? { _tag: "Invalid", origin, ...spec.identity(cellsOf(header, raw)), problem: record.problem }
          : { _tag: "Valid", record, origin }
      }
    }
    const cells = cellsOf(header, raw)
    const decoded = decode(cells)
    if (Either.isRight(decoded)) {
      const record = spec.toRecord(decoded.right)
      return "problem" in record ? { _tag: "Invalid", origin, ...spec.identity(cells), problem: record.problem } : { _tag: "Valid", record, origin }
    }
    return { _tag: "Invalid", origin, ...spec.identity(cells), problem: describeFailure(decoded.left, expectations) }
  }
}

/** Column → what it expects, from the column schemas' `description` annotations. */
const describeColumns = (schema: Schema.Schema.Any): ReadonlyMap<string, string> => {
  const out = new Map<string, string>()
  const ast = schema.ast
  if (SchemaAST.isTypeLiteral(ast)) {
    for (const property of ast.propertySignatures) {
      const description = SchemaAST.getDescriptionAnnotation(property.type)
      if (description._tag === "Some") out.set(String(property.name), description.value)
    }
  }
  return out
}

/** `column "birthDate": expected a date in YYYY-MM-DD form` — the value itself is never echoed. */
const describeFailure = (error: ParseResult.ParseError, expectations: ReadonlyMap<string, string>): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const columns = [...new Set(issues.map((issue) => String(issue.path[0] ?? "?")))]
  return columns.map((column) => `column "${column}": expected ${expectations.get(column) ?? "a valid value"}`).join("; ")
}
