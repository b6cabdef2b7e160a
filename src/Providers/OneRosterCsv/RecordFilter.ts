import { Transform, type TransformCallback } from "node:stream"
import { BytesDigest, seedOf } from "../../Domain/Digest.ts"

/**
 * The records of a CSV file, told apart and digested **before** csv-parse, so that the
 * records the reconcile has read before are never parsed at all (src/Reconcile/Digests.ts).
 *
 * A `Transform` between the file's bytes (already through the `ByteGuard`) and csv-parse.
 * It finds where each record ends — RFC 4180: a quote opens a quoted cell only at the
 * start of a cell, `""` inside one is a quote, a record ends at CRLF, LF or CR outside
 * quotes, the same rules csv-parse applies with rosterd's options — and digests the
 * record's bytes, seeded with the mapping's version, the file's name and its header's
 * bytes. Then it asks the reconcile (`known`): a record it knows is dropped here; any other
 * is passed on to csv-parse, and its line and digest queued (`next()`) for the row
 * csv-parse will make of it.
 *
 * Why this is safe with a hand-written splitter: a digest is only ever known because
 * csv-parse once read exactly those bytes, passed on alone, as one valid record under the
 * same header. Where this splitter and csv-parse could disagree — a quote in the middle of
 * an unquoted cell, text after a closing quote, a quote never closed — csv-parse fails the
 * file, and the record holding that text is one it never accepted, so it is passed on and
 * fails the run as it would have without digests. A record longer than `maxRecordBytes`
 * and a quote left open at the end of the file are always passed on, for csv-parse to
 * refuse. A row csv-parse makes that this queue did not announce (or the reverse) fails
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

export interface QueuedRecord {
  readonly line: number
  readonly hi: number
  readonly lo: number
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
  private readonly queue: Array<QueuedRecord> = []
  private head = 0
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

  /** Records passed on to csv-parse so far, and records dropped as known. */
  passed = 0
  dropped = 0

  /** Scan mode: the header's bytes, once read (the header is checked from them). */
  header: Buffer | undefined = undefined
  /** Scan mode: the header was longer than `maxRecordBytes` (the file is refused). */
  headerTooLarge = false
  /** Scan mode: `[line, hi, lo, line, hi, lo, …]` of the records read from the current chunk. */
  private batch: Array<number> = []

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
    }
  ) {
    super(options.known === undefined ? { readableObjectMode: true } : {})
  }

  /** The line and digest of the next row csv-parse makes (undefined when none was announced). */
  next(): QueuedRecord | undefined {
    if (this.head === this.queue.length) return undefined
    const record = this.queue[this.head]!
    this.head += 1
    // Keep the queue short: drop what was read once half of it is.
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head)
      this.head = 0
    }
    return record
  }

  /** Records announced and not yet taken: 0 once csv-parse has made a row of each. */
  get pending(): number {
    return this.queue.length - this.head
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
    for (let i = from; i < chunk.length; i++) {
      const byte = chunk[i]!
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
    } else if (out.length > 0) {
      this.push(out.length === 1 ? out[0] : Buffer.concat(out))
    }
  }

  /** Part of a record that goes on in the next chunk. */
  private keep(part: Buffer, out: Array<Buffer>) {
    if (this.oversized) {
      out.push(part)
      return
    }
    this.carry.push(part)
    this.carried += part.length
    if (this.carried > this.options.maxRecordBytes) {
      // Past the limit: pass it on as it comes (csv-parse refuses it), never holding it whole.
      this.oversized = true
      out.push(...this.carry)
      this.carry = []
      this.carried = 0
    }
  }

  /** The record that ends at `end` of `chunk` (started at `start`, or in earlier chunks). */
  private endRecord(chunk: Buffer, start: number, end: number, out: Array<Buffer>, forcePass: boolean) {
    const line = this.nextLine
    this.nextLine += 1 + this.breaks
    this.breaks = 0
    if (this.oversized) {
      this.oversized = false
      if (this.seed === undefined) {
        // The header itself is over the limit: no record can be digested under it. Scan mode
        // says so (`headerTooLarge`); filter mode passes it on for csv-parse to refuse.
        this.seed = 0
        if (this.options.known === undefined) this.headerTooLarge = true
        else out.push(chunk.subarray(start, end), NEWLINE)
        return
      }
      if (this.options.known === undefined) this.batch.push(line, 0, 0)
      else {
        out.push(chunk.subarray(start, end), NEWLINE)
        this.queue.push({ line, hi: 0, lo: 0 })
      }
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
      if (this.options.known === undefined) {
        this.headerTooLarge = true
        this.resetCarry()
      } else this.pass(chunk, start, end, out)
      return
    }
    if (this.seed === undefined) {
      // The header: always passed on; its bytes seed every record's digest.
      this.digest.start(0)
      for (const part of carry) this.digest.update(part, 0, part.length)
      this.digest.update(chunk, start, end)
      const header = this.digest.finish()
      this.seed = seedOf(`${this.options.version}|${header.hi.toString(16)}${header.lo.toString(16)}`)
      if (this.options.known === undefined) {
        this.header = Buffer.concat([...carry, chunk.subarray(start, end)])
        this.resetCarry()
      } else this.pass(chunk, start, end, out)
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
    this.queue.push({ line, hi, lo })
    this.passed += 1
    this.pass(chunk, start, end, out)
  }

  private pass(chunk: Buffer, start: number, end: number, out: Array<Buffer>) {
    out.push(...this.carry, chunk.subarray(start, end), NEWLINE)
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
