import { isUtf8 } from "node:buffer"
import { Transform, type TransformCallback } from "node:stream"
import { ProviderError } from "../../Domain/Errors.ts"
import { RATIO_FLOOR_BYTES, showBytes } from "./CsvLimits.ts"

/**
 * The bytes of one CSV file, checked before csv-parse sees them (a `Transform` that passes
 * every chunk on unchanged, or fails the file naming it and the line):
 *
 * - **what the file is**: a zip or gzip archive, UTF-16 (a byte-order mark, or NUL bytes in
 *   the header line) is not a UTF-8 CSV file, and is refused as such rather than parsed into
 *   nonsense;
 * - **UTF-8**: invalid bytes (a Windows-1252 export) fail the file at their line: decoded
 *   they would become U+FFFD in people's names, a value the source never held;
 * - **a byte-order mark after the start** (files joined together) fails the file at its line;
 * - **a physical line longer than `maxLineBytes`**: csv-parse bounds a record by its cells'
 *   characters, which a line of 10⁸ empty cells (commas only) never reaches;
 * - **size**: more than `maxBytes` bytes; for a zip entry also the zip's shared budget of
 *   inflated bytes and the compression ratio, counted on the real inflated bytes.
 *
 * Only byte counts and positions go into messages, never content. Chunks pass through as
 * they come (no copies), so the cost is a native UTF-8 check and a scan for line breaks.
 */

export interface ZipBudget {
  /** Inflated bytes of every entry read so far in this run. */
  inflated: number
  readonly maxTotalBytes: number
  readonly maxRatio: number
  readonly zipDescription: string
}

export interface GuardOptions {
  readonly file: string
  readonly maxBytes: number
  /** The setting that raises `maxBytes`, for the message. */
  readonly maxBytesSetting: string
  readonly maxLineBytes: number
  /** What caps a line, for the message (default: the setting). */
  readonly maxLineSetting?: string
  /** A zip entry: its compressed size and the zip's shared budget. */
  readonly zip?: { readonly compressedSize: number; readonly budget: ZipBudget }
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf])

/** Bytes an incomplete UTF-8 sequence at the end of `chunk` takes (0 when it ends on a boundary). */
const incompleteTail = (chunk: Buffer): number => {
  const end = chunk.length
  for (let back = 1; back <= 3 && back <= end; back++) {
    const byte = chunk[end - back]!
    if ((byte & 0xc0) === 0x80) continue // a continuation byte: look further back
    const needed = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1
    return needed > back ? back : 0
  }
  return 0
}

/** Offset of the first byte of `bytes` that is not valid UTF-8 (only called once a check failed). */
const firstInvalidUtf8 = (bytes: Buffer): number => {
  let i = 0
  while (i < bytes.length) {
    const b = bytes[i]!
    const length = b < 0x80 ? 1 : (b & 0xe0) === 0xc0 && b >= 0xc2 ? 2 : (b & 0xf0) === 0xe0 ? 3 : (b & 0xf8) === 0xf0 && b <= 0xf4 ? 4 : 0
    if (length === 0 || i + length > bytes.length) return i
    if (!isUtf8(bytes.subarray(i, i + length))) return i
    i += length
  }
  return bytes.length
}

export class ByteGuard extends Transform {
  private bytes = 0
  /** Lines finished so far (the current line is `lines + 1`) and bytes of the current line. */
  private lines = 0
  private lineBytes = 0
  /** An incomplete UTF-8 sequence held back from the previous chunk (its bytes were passed on). */
  private carry: Buffer = Buffer.alloc(0)
  /** The last two bytes seen, to find a byte-order mark split across chunks. */
  private tail: Buffer = Buffer.alloc(0)
  private sniffed = false
  private head: Buffer = Buffer.alloc(0)
  /** What ends a line: LF (and CRLF), or CR in a file whose first line ends with a lone CR (old Mac exports). */
  private breakByte = 10

  constructor(private readonly options: GuardOptions) {
    super()
  }

  private fail(reason: ProviderError["reason"], message: string, line?: number) {
    return new ProviderError({ reason, message, file: this.options.file, ...(line === undefined ? {} : { line }) })
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const error = this.check(chunk)
    if (error !== undefined) return done(error)
    done(null, chunk)
  }

  override _flush(done: TransformCallback): void {
    if (!this.sniffed) {
      const error = this.sniff(this.head, true)
      if (error !== undefined) return done(error)
    }
    if (this.carry.length > 0) return done(this.notUtf8(this.lines + 1))
    done()
  }

  private check(chunk: Buffer): ProviderError | undefined {
    const { maxBytes, maxBytesSetting, maxLineBytes, zip } = this.options
    this.bytes += chunk.length
    if (this.bytes > maxBytes) {
      return this.fail("TooLarge", `the file is larger than ${showBytes(maxBytes)} (${maxBytesSetting})`)
    }
    if (zip !== undefined) {
      const budget = zip.budget
      budget.inflated += chunk.length
      if (budget.inflated > budget.maxTotalBytes) {
        return this.fail("TooLarge", `the ${budget.zipDescription} inflates to more than ${showBytes(budget.maxTotalBytes)} in all (rosterd.csv.zip.maxTotalBytes)`)
      }
      if (this.bytes > RATIO_FLOOR_BYTES && this.bytes / Math.max(zip.compressedSize, 1) > budget.maxRatio) {
        return this.fail("TooLarge", `the entry inflates more than ${budget.maxRatio}:1 (rosterd.csv.zip.maxRatio): a zip bomb, or a damaged zip`)
      }
    }
    if (!this.sniffed) {
      // What the file is, from its first bytes and its first line (which may span chunks).
      this.head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk])
      const error = this.sniff(this.head, false)
      if (error !== undefined) return error
      if (this.sniffed) this.head = Buffer.alloc(0)
    }
    // UTF-8: first the character split by the previous chunk's end, then the chunk less
    // its own incomplete end (held back for the next one). No chunk is copied.
    let start = 0
    if (this.carry.length > 0) {
      const lead = this.carry[0]!
      const needed = (lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2) - this.carry.length
      const seam = Buffer.concat([this.carry, chunk.subarray(0, needed)])
      if (seam.length < needed + this.carry.length) {
        this.carry = seam // a chunk shorter than the rest of the character
        return undefined
      }
      if (!isUtf8(seam)) return this.notUtf8(this.lines + 1)
      start = needed
      this.carry = Buffer.alloc(0)
    }
    const body = chunk.subarray(start)
    const keep = incompleteTail(body)
    const whole = keep === 0 ? body : body.subarray(0, body.length - keep)
    if (!isUtf8(whole)) return this.notUtf8(this.lineAt(chunk, start + firstInvalidUtf8(whole)))
    if (keep > 0) this.carry = Buffer.from(body.subarray(body.length - keep))
    // A byte-order mark anywhere after the first bytes of the file.
    const bomAt = this.findBom(chunk)
    if (bomAt !== undefined) {
      return this.fail("Malformed", "a byte-order mark after the start of the file: several files joined into one?", this.lineAt(chunk, bomAt))
    }
    this.tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - 2)))
    // Line lengths (and the line count, for messages).
    let from = 0
    const breakByte = this.breakByte
    for (let at = chunk.indexOf(breakByte); at !== -1; at = chunk.indexOf(breakByte, from)) {
      if (this.lineBytes + (at - from) > maxLineBytes) return this.tooLong()
      this.lines += 1
      this.lineBytes = 0
      from = at + 1
    }
    this.lineBytes += chunk.length - from
    if (this.lineBytes > maxLineBytes) return this.tooLong()
    return undefined
  }

  private tooLong() {
    return this.fail(
      "TooLarge",
      `a line longer than ${showBytes(this.options.maxLineBytes)} (${this.options.maxLineSetting ?? "rosterd.csv.maxRecordBytes"}): not a roster record`,
      this.lines + 1
    )
  }

  /** The 1-based line of byte `at` of the chunk being checked (whose line breaks are not counted yet). */
  private lineAt(chunk: Buffer, at: number): number {
    let line = this.lines + 1
    for (let i = chunk.indexOf(this.breakByte); i !== -1 && i < at; i = chunk.indexOf(this.breakByte, i + 1)) line += 1
    return line
  }

  private notUtf8(line: number) {
    return this.fail("Malformed", "not valid UTF-8 (a file saved as Windows-1252 or Latin-1?); rosterd reads UTF-8 CSV files", line)
  }

  private findBom(chunk: Buffer): number | undefined {
    const start = this.bytes - chunk.length // offset of the chunk in the file
    // Split across the previous chunk and this one.
    if (this.tail.length > 0 && start > 0) {
      const seam = Buffer.concat([this.tail, chunk.subarray(0, 2)])
      const found = seam.indexOf(BOM)
      if (found !== -1 && start - this.tail.length + found > 0) return 0
    }
    const found = chunk.indexOf(BOM, start === 0 ? 1 : 0)
    return found === -1 ? undefined : found
  }

  /** Decides what the file is once its first line (or 4 KiB, or the whole file at its end) is in `head`. */
  private sniff(head: Buffer, atEnd: boolean): ProviderError | undefined {
    if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
      return this.fail("Unsupported", "a zip archive, not a CSV file (an archive inside the set is not read)")
    }
    if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
      return this.fail("Unsupported", "a gzip archive, not a CSV file")
    }
    if (head.length >= 2 && ((head[0] === 0xff && head[1] === 0xfe) || (head[0] === 0xfe && head[1] === 0xff))) {
      return this.fail("Unsupported", "saved as UTF-16 (its byte-order mark says so); rosterd reads UTF-8 CSV files", 1)
    }
    const lf = head.indexOf(10)
    const cr = head.indexOf(13)
    const newline = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr)
    if ((newline === -1 || newline === head.length - 1) && head.length < 4096 && !atEnd) return undefined // the header line is not complete yet
    if (newline !== -1 && newline === cr && head[cr + 1] !== 10) this.breakByte = 13
    const firstLine = head.subarray(0, newline === -1 ? Math.min(head.length, 4096) : newline)
    if (firstLine.indexOf(0) !== -1) {
      return this.fail("Unsupported", "NUL bytes in the header line: UTF-16 without a byte-order mark, or not a text file; rosterd reads UTF-8 CSV files", 1)
    }
    this.sniffed = true
    return undefined
  }
}
