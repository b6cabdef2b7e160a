import { Transform, type TransformCallback } from "node:stream"
import { BytesDigest, seedOf } from "../../Domain/Digest.ts"

/**
 * The records of a CSV file, told apart and digested **before** csv-parse, so that the
 * records the reconcile has read before are never parsed at all (src/Reconcile/Digests.ts).
 *
 * A `Transform` over the file's bytes (already through the `ByteGuard`), ahead of the
 * reader (`CsvFeed.ts`); it keeps the header's bytes for the reader to parse. It finds
 * where each record ends — RFC 4180: a quote opens a quoted cell only at the start of a
 * cell, `""` inside one is a quote, a record ends at CRLF, LF or CR outside
 * quotes, the same rules csv-parse applies with rosterd's options — and digests the
 * record's bytes, seeded with the mapping's version, the file's name and its header's
 * bytes. Then it asks the reconcile (`known`): a record it knows is dropped here; any other
 * is passed on, in batches (`RecordBatch`), with its line and digest.
 *
 * A passed record that holds no quote at all (nearly every record of nearly every file)
 * comes with its cells, split at its commas here: under RFC 4180, and csv-parse with
 * rosterd's options, such a record's cells are exactly the text between its commas, and
 * csv-parse's work (3–4 µs a record, more than everything else the filter does) would
 * only find the same. Every other record is passed on as bytes, for csv-parse.
 *
 * Why this is safe with a hand-written splitter: a digest is only ever known because
 * csv-parse once read exactly those bytes, passed on alone, as one valid record under the
 * same header (or, quote-free, split as csv-parse would). Where this splitter and csv-parse
 * could disagree — a quote in the middle of an unquoted cell, text after a closing quote, a
 * quote never closed — the record holds a quote, goes to csv-parse, and fails the file as
 * it would have without digests. A record longer than `maxRecordBytes` and a quote left
 * open at the end of the file are always passed on as bytes, for csv-parse to refuse. A
 * batch's bytes that csv-parse reads as more or fewer rows than the batch announced fail
 * the file (`CsvFeed.ts`).
 *
 * In **scan mode** (no `known`) nothing reaches csv-parse: the output is each record's
 * line and digest, for the reconcile to look up in its store all at once; the records it
 * does not have are then read again in filter mode, their lines wanted.
 *
 * Kept as csv-parse does: empty lines (and lines of just `""`) are skipped but counted;
 * a UTF-8 byte-order mark at the start is dropped; lines are counted per record plus the
 * line breaks inside quoted cells, so a record keeps the line it has in a full parse.
 */
/** Asked for each record's digest and line in filter mode: true drops the record. */
export type KnownDigest = (hi: number, lo: number, line: number) => boolean

/** A record passed on: its line, its digest, and its cells when it holds no quote. */
export interface PassedRecord {
  readonly line: number
  readonly hi: number
  readonly lo: number
  /** Undefined: the record's bytes are in its batch's `quoted`, for csv-parse. */
  readonly cells: ReadonlyArray<string> | undefined
}

/**
 * Filter mode's output: the records passed on from a chunk of the file, in order; the
 * bytes of those without cells, each ended by a line break, in the same order.
 */
export interface RecordBatch {
  readonly records: ReadonlyArray<PassedRecord>
  readonly quoted: Buffer | undefined
}

const QUOTE = 0x22
const COMMA = 0x2c
const LF = 0x0a
const CR = 0x0d

const enum State {
  CellStart,
  Unquoted,
  Quoted,
  /** A quote inside a quoted cell: `""` (a quote) or the cell's end. */
  QuoteInQuoted
}

const NEWLINE = Buffer.from("\n")
const BOM = Buffer.from([0xef, 0xbb, 0xbf])

export class RecordFilter extends Transform {
  private readonly digest = new BytesDigest()
  private seed: number | undefined = undefined
  private state = State.CellStart
  /** The record so far when it began in an earlier chunk. */
  private carry: Array<Buffer> = []
  private carried = 0
  /** Line breaks inside the current record's quoted cells. */
  private breaks = 0
  private nextLine = 1
  /** The last record ended at a CR: an LF right after it belongs to that record's end. */
  private afterCr = false
  private started = false
  private opening: Buffer = Buffer.alloc(0)
  /** The current record outgrew `maxRecordBytes`: what there is of it was passed on as it came. */
  private oversized = false
  /** The current record holds a quote (so far). */
  private sawQuote = false

  /** Records passed on so far (the header not counted), and records dropped as known. */
  passed = 0
  dropped = 0

  /** The header's bytes, once read (never passed on: the reader parses it from these). */
  header: Buffer | undefined = undefined
  /** The header was longer than `maxRecordBytes` (the file is refused). */
  headerTooLarge = false
  /** Scan mode: `[line, hi, lo, line, hi, lo, …]` of the records read from the current chunk. */
  private batch: Array<number> = []
  /** Filter mode: the records passed on from the current chunk. */
  private records: Array<PassedRecord> = []

  constructor(
    private readonly options: {
      /** The mapping's version and the file: the digests' seed (with the header's bytes). */
      readonly version: string
      readonly maxRecordBytes: number
      /**
       * Filter mode: asked for each record; true drops it. Scan mode (`undefined`): nothing
       * goes to csv-parse; the output is each record's line and digest, in batches
       * (`[line, hi, lo, …]`), a record csv-parse is bound to refuse (longer than the limit,
       * a quote never closed) with the digest 0:0, which no record has in the store.
       */
      readonly known: KnownDigest | undefined
      /**
       * Filter mode by line (the records the reconcile asked for after a scan): true drops
       * the record before it is digested; `known` is asked of the others. Hashing a record
       * the reconcile does not want is most of the cost of reading it (the scan listed it).
       */
      readonly unwanted?: ((line: number) => boolean) | undefined
    }
  ) {
    // One batch waiting at most: batches buffered ahead are rows kept alive (CsvSource.ts).
    super({ readableObjectMode: true, readableHighWaterMark: 1 })
  }

  override _transform(input: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let chunk = input
    let from = 0
    if (!this.started) {
      // A byte-order mark may come cut over the first chunks: wait for three bytes.
      chunk = this.opening.length === 0 ? input : Buffer.concat([this.opening, input])
      if (chunk.length < 3 && BOM.subarray(0, chunk.length).equals(chunk)) {
        this.opening = chunk
        return done()
      }
      this.started = true
      this.opening = Buffer.alloc(0)
      if (chunk.length >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) from = 3
    }
    const out: Array<Buffer> = []
    let state = this.state
    let recordStart = from
    // The chunk's next LF, quote and CR at or after a position, looked up natively as the
    // records pass them (-1: none left in the chunk; each is searched for again only once
    // passed, so a chunk is searched about once for each, whatever its line endings).
    let nextLf = chunk.indexOf(LF, from)
    let nextQuote = chunk.indexOf(QUOTE, from)
    let nextCr = chunk.indexOf(CR, from)
    for (let i = from; i < chunk.length; i++) {
      // A record that starts here and ends at an LF with no quote or CR before it (nearly
      // every record) is found by native search, not byte by byte: the state machine below
      // would only walk its cells to that LF (0.4 of the scan's 1.1 s of CPU at 837k
      // enrollments). Any other record goes through the machine.
      if (i === recordStart && state === State.CellStart && !this.afterCr && this.carried === 0 && !this.oversized) {
        if (nextLf !== -1 && nextLf < i) nextLf = chunk.indexOf(LF, i)
        if (nextQuote !== -1 && nextQuote < i) nextQuote = chunk.indexOf(QUOTE, i)
        if (nextCr !== -1 && nextCr < i) nextCr = chunk.indexOf(CR, i)
        const lf = nextLf
        if (lf !== -1 && (nextQuote === -1 || nextQuote > lf) && (nextCr === -1 || nextCr > lf)) {
          this.endRecord(chunk, recordStart, lf, out, false)
          recordStart = lf + 1
          i = lf
          continue
        }
      }
      const byte = chunk[i]!
      if (byte === QUOTE) this.sawQuote = true
      if (this.afterCr) {
        this.afterCr = false
        if (byte === LF) {
          recordStart = i + 1
          continue
        }
      }
      switch (state) {
        case State.Quoted:
          if (byte === QUOTE) state = State.QuoteInQuoted
          else if (byte === LF) this.breaks += 1
          continue
        case State.QuoteInQuoted:
          if (byte === QUOTE) {
            state = State.Quoted
            continue
          }
          break
        case State.CellStart:
          if (byte === QUOTE) {
            state = State.Quoted
            continue
          }
          break
        case State.Unquoted:
          break
      }
      // Outside quotes.
      if (byte === COMMA) {
        state = State.CellStart
      } else if (byte === LF || byte === CR) {
        this.endRecord(chunk, recordStart, i, out, false)
        state = State.CellStart
        if (byte === CR) this.afterCr = true
        recordStart = i + 1
      } else {
        state = State.Unquoted
      }
    }
    this.state = state
    if (recordStart < chunk.length) this.keep(chunk.subarray(recordStart), out)
    this.sendOn(out)
    done()
  }

  override _flush(done: TransformCallback): void {
    const out: Array<Buffer> = []
    // A file of one or two bytes that began like a byte-order mark: passed on as it is.
    if (!this.started && this.opening.length > 0) this.keep(this.opening, out)
    // A quote still open at the end: csv-parse is to refuse it, whatever its digest.
    if (this.carried > 0 || this.oversized) this.endRecord(Buffer.alloc(0), 0, 0, out, this.state === State.Quoted)
    this.sendOn(out)
    done()
  }

  private sendOn(out: Array<Buffer>) {
    if (this.options.known === undefined) {
      if (this.batch.length > 0) this.push(this.batch)
      this.batch = []
    } else if (this.records.length > 0 || out.length > 0) {
      const batch: RecordBatch = { records: this.records, quoted: out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out) }
      this.records = []
      this.push(batch)
    }
  }

  /** Part of a record that goes on in the next chunk. */
  private keep(part: Buffer, out: Array<Buffer>) {
    if (this.oversized) {
      if (this.seed !== undefined) out.push(part)
      return
    }
    this.carry.push(part)
    this.carried += part.length
    if (this.carried > this.options.maxRecordBytes) {
      // Past the limit: a record is passed on as it comes (csv-parse refuses it), never held
      // whole, announced in the batch that carries its first bytes; a header is dropped (the
      // file is refused, `headerTooLarge`).
      this.oversized = true
      if (this.seed !== undefined) {
        out.push(...this.carry)
        if (this.options.known !== undefined) this.records.push({ line: this.nextLine, hi: 0, lo: 0, cells: undefined })
      }
      this.carry = []
      this.carried = 0
    }
  }

  /** The record that ends at `end` of `chunk` (started at `start`, or in earlier chunks). */
  private endRecord(chunk: Buffer, start: number, end: number, out: Array<Buffer>, forcePass: boolean) {
    const line = this.nextLine
    this.nextLine += 1 + this.breaks
    this.breaks = 0
    const quoted = this.sawQuote
    this.sawQuote = false
    if (this.oversized) {
      this.oversized = false
      if (this.seed === undefined) {
        // The header itself is over the limit: no record can be digested under it, and the
        // file is refused (`headerTooLarge`). What was passed of it goes no further.
        this.seed = 0
        this.headerTooLarge = true
        return
      }
      // (Filter mode announced it with its first bytes.)
      if (this.options.known === undefined) this.batch.push(line, 0, 0)
      else out.push(chunk.subarray(start, end), NEWLINE)
      this.passed += 1
      return
    }
    const carry = this.carry
    const length = this.carried + end - start
    if (length === 0 || (length === 2 && this.isTwoQuotes(chunk, start, end))) {
      // An empty line (or `""`): csv-parse's row [""], skipped; only its line counts.
      this.resetCarry()
      return
    }
    if (this.seed === undefined && length > this.options.maxRecordBytes) {
      // A header over the limit (held whole within a chunk): as above.
      this.seed = 0
      this.headerTooLarge = true
      this.resetCarry()
      return
    }
    if (this.seed === undefined) {
      // The header: kept for the reader to parse; its bytes seed every record's digest.
      this.digest.start(0)
      for (const part of carry) this.digest.update(part, 0, part.length)
      this.digest.update(chunk, start, end)
      const header = this.digest.finish()
      this.seed = seedOf(`${this.options.version}|${header.hi.toString(16)}${header.lo.toString(16)}`)
      this.header = Buffer.concat([...carry, chunk.subarray(start, end)])
      this.resetCarry()
      return
    }
    const unwanted = this.options.unwanted
    if (unwanted !== undefined && !forcePass && length <= this.options.maxRecordBytes && unwanted(line)) {
      this.dropped += 1
      this.resetCarry()
      return
    }
    this.digest.start(this.seed)
    for (const part of carry) this.digest.update(part, 0, part.length)
    this.digest.update(chunk, start, end)
    const { hi, lo } = this.digest.finish()
    if (this.options.known === undefined) {
      const refused = forcePass || length > this.options.maxRecordBytes
      this.batch.push(line, refused ? 0 : hi, refused ? 0 : lo)
      this.passed += 1
      this.resetCarry()
      return
    }
    if (!forcePass && length <= this.options.maxRecordBytes && this.options.known(hi, lo, line)) {
      this.dropped += 1
      this.resetCarry()
      return
    }
    this.passed += 1
    if (quoted || forcePass || length > this.options.maxRecordBytes) {
      this.records.push({ line, hi, lo, cells: undefined })
      out.push(...this.carry, chunk.subarray(start, end), NEWLINE)
    } else {
      // No quote: the cells are the text between the commas (UTF-8 decoded as csv-parse
      // decodes each cell: a comma is never part of a malformed sequence).
      const text = this.carried === 0 ? chunk.toString("utf8", start, end) : Buffer.concat([...this.carry, chunk.subarray(start, end)]).toString("utf8")
      this.records.push({ line, hi, lo, cells: text.split(",") })
    }
    this.resetCarry()
  }

  private resetCarry() {
    if (this.carried > 0) {
      this.carry = []
      this.carried = 0
    }
  }

  private isTwoQuotes(chunk: Buffer, start: number, end: number): boolean {
    const bytes = this.carried === 0 ? chunk.subarray(start, end) : Buffer.concat([...this.carry, chunk.subarray(start, end)])
    return bytes[0] === QUOTE && bytes[1] === QUOTE
  }
}
