import { type Options, parse, type Parser } from "csv-parse"
import { parse as parseSync } from "csv-parse/sync"
import { Chunk, Effect, Either, ParseResult, Schema, SchemaAST, Stream } from "effect"
import { csvErrorLine, csvSyntaxError } from "../../Csv/Syntax.ts"
import { ProviderError } from "../../Domain/Errors.ts"
import type { EntityKind, EntityRecord } from "../../Domain/Roster.ts"
import type { FeedDigests, FeedItem, RawItem } from "../RosterProvider.ts"
import type { CsvLimits } from "./CsvLimits.ts"
import { defaultCsvLimits, EXTRA_FIELDS, showBytes } from "./CsvLimits.ts"
import type { CsvSource } from "./CsvSource.ts"
import type { KnownDigest, QueuedRecord } from "./RecordFilter.ts"
import { RecordFilter } from "./RecordFilter.ts"
import type { CsvFileSpec } from "./Files.ts"

/**
 * Streams one CSV file of a set as feed items.
 *
 * csv-parse does the RFC 4180 work; rows come out of it in batches (one `read()` drain per
 * readable event) so the Effect stream handles thousands of rows per step, not one: this
 * is the hot path of a 10-million-enrollment district.
 *
 * Bounded (`rosterd.csv.*`): the source's `ByteGuard` caps the file's bytes and physical
 * lines; csv-parse caps a record (`max_record_size`, a quoted cell spanning many lines);
 * a header wider than `maxColumns`, or a row wider than its header by more than
 * `EXTRA_FIELDS`, fails the file at its line (the file's quoting is broken: its rows cannot
 * be told apart). Once the file is read, the set must still be what the run opened.
 */
export const csvFeedItems = <K extends EntityKind, Row>(
  source: CsvSource,
  spec: CsvFileSpec<K, Row>,
  limits: CsvLimits
): Stream.Stream<FeedItem<EntityRecord[K]>, ProviderError> => csvRows(source, spec, limits, (decoder) => decoder)

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
        Stream.concat(Stream.suspend(() => {
          if (filter.headerTooLarge) return Stream.fail(csvFileError({ code: "CSV_MAX_RECORD_SIZE", lines: 1 }, spec.file, limits))
          if (filter.header === undefined) {
            return Stream.fail(new ProviderError({ reason: "BadHeader", message: "the file is empty (no header row)", file: spec.file }))
          }
          const header = Either.try({
            try: () => parseSync(filter.header!, csvParseOptions(limits)) as Array<RawRow>,
            catch: (cause) => csvFileError(cause, spec.file, limits)
          }).pipe(Either.flatMap((rows) => readHeader(spec, rows[0] ?? [], limits)))
          return Either.isLeft(header) ? Stream.fail(header.left) : Stream.empty
        })),
        // A writer that started while this file was read: the set may be half old, half new.
        Stream.concat(Stream.drain(Stream.fromEffect(source.unchanged)))
      )
    })),
    read: (wanted) =>
      csvRows(
        source,
        spec,
        limits,
        (decoder) => (header, raw, line, queued) => ({ hi: queued!.hi, lo: queued!.lo, line, decode: () => decoder(header, raw, line) }),
        { version: seed, known: (_hi, _lo, line) => !wanted(line) }
      )
  }
}

type RowDecoder<K extends EntityKind> = (header: HeaderIndex, raw: RawRow, line: number) => FeedItem<EntityRecord[K]>

const csvRows = <K extends EntityKind, Row, Out>(
  source: CsvSource,
  spec: CsvFileSpec<K, Row>,
  limits: CsvLimits,
  make: (decoder: RowDecoder<K>) => (header: HeaderIndex, raw: RawRow, line: number, queued?: QueuedRecord) => Out,
  /** Digest the records first and parse only those `known` says no to (`RecordFilter`). */
  digests?: { readonly version: string; readonly known: KnownDigest }
): Stream.Stream<Out, ProviderError> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const input = yield* source.open(spec.file)
    const filter = digests === undefined
      ? undefined
      : new RecordFilter({ version: digests.version, maxRecordBytes: limits.maxRecordBytes, known: digests.known })
    // Empty lines are kept (and skipped below) so that line numbers can be counted without
    // csv-parse's per-record info objects, which cost more than the parsing itself.
    const parser = (filter === undefined ? input : input.pipe(filter)).pipe(parse(csvParseOptions(limits)))
    input.on("error", (cause) => parser.destroy(cause))
    filter?.on("error", (cause) => parser.destroy(cause))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        parser.destroy()
        filter?.destroy()
        input.destroy()
      })
    )
    const item = make(makeRowDecoder(spec))
    const lines = lineCounter()
    // A row csv-parse made that the filter did not announce, or the reverse: the two did not
    // tell the file's records apart alike (its quoting is broken), so no row can be placed.
    const unaligned = (line?: number) =>
      new ProviderError({
        reason: "Malformed",
        message: "the file's records cannot be told apart (its quoting is broken)",
        file: spec.file,
        ...(line === undefined ? {} : { line })
      })
    let header: HeaderIndex | undefined
    return Stream.fromAsyncIterable(drainBatches(parser), (cause) => csvFileError(cause, spec.file, limits)).pipe(
      Stream.mapEffect((batch) => {
        const out: Array<Out> = []
        for (const row of batch) {
          // The header is never queued: it is the first row either way.
          const queued = filter !== undefined && header !== undefined ? filter.next() : undefined
          if (filter !== undefined && header !== undefined && queued === undefined) return Effect.fail(unaligned())
          const line = queued !== undefined ? queued.line : lines(row)
          if (row.length === 1 && row[0] === "") continue // an empty line
          if (header === undefined) {
            const parsed = readHeader(spec, row, limits)
            if (Either.isLeft(parsed)) return Effect.fail(parsed.left)
            header = parsed.right
            continue
          }
          if (row.length > header.width + EXTRA_FIELDS) {
            return Effect.fail(
              new ProviderError({
                reason: "Malformed",
                message: `the row has ${row.length} fields, the header ${header.width}: the file's quoting or delimiters are broken`,
                file: spec.file,
                line
              })
            )
          }
          out.push(item(header, row, line, queued))
        }
        return Effect.succeed(Chunk.unsafeFromArray(out))
      }),
      Stream.flattenChunks,
      Stream.concat(Stream.suspend(() =>
        header === undefined
          ? Stream.fail(new ProviderError({ reason: "BadHeader", message: "the file is empty (no header row)", file: spec.file }))
          : filter !== undefined && filter.pending > 0
          ? Stream.fail(unaligned(filter.next()?.line))
          : Stream.empty
      )),
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

/** Physical line of each record: one line per record, plus the line breaks inside quoted cells. */
const lineCounter = () => {
  let next = 1
  return (row: RawRow): number => {
    const line = next
    next += 1
    for (const cell of row) {
      for (let at = cell.indexOf("\n"); at !== -1; at = cell.indexOf("\n", at + 1)) next += 1
    }
    return line
  }
}

/** Yields the rows the parser has buffered, as arrays, each time it becomes readable. */
async function* drainBatches(parser: Parser): AsyncGenerator<Array<RawRow>> {
  let failure: unknown = undefined
  let ended = false
  let wake: (() => void) | undefined
  parser.on("readable", () => wake?.())
  parser.once("end", () => {
    ended = true
    wake?.()
  })
  parser.once("error", (cause) => {
    failure = cause
    wake?.()
  })
  while (true) {
    const batch: Array<RawRow> = []
    let row: RawRow | null
    while (batch.length < 8192 && (row = parser.read() as RawRow | null) !== null) batch.push(row)
    if (failure !== undefined) throw failure
    if (batch.length > 0) {
      yield batch
      continue
    }
    if (ended) return
    await new Promise<void>((resolve) => {
      wake = resolve
    })
    wake = undefined
  }
}

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
  return (header: HeaderIndex, raw: RawRow, line: number): FeedItem<EntityRecord[K]> => {
    const width = raw.length
    const cells: Record<string, string> = {}
    for (const [name, index] of header.positions) {
      cells[name] = index >= 0 && index < width ? raw[index]! : ""
    }
    const origin = { file: spec.file, line }
    if (width !== header.width) {
      return {
        _tag: "Invalid",
        origin,
        ...spec.identity(cells),
        problem: `the row has ${width} fields but the header has ${header.width}`
      }
    }
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
