import { SqlError } from "@effect/sql/SqlError"
import { Effect, Stream } from "effect"
import type pg from "pg"
import { from as copyFrom, to as copyTo } from "pg-copy-streams"

/**
 * Bulk loading with `COPY ... FROM STDIN` (text format), the fastest way into Postgres.
 * @effect/sql-pg has no COPY API, so this drives `pg-copy-streams` on the raw client of a
 * reserved connection (`rawClient`, Session.ts): the same session the rest of the run uses
 * (temp tables, locks).
 */

export type CopyValue = string | number | boolean | null | ReadonlyArray<string>

/** A value in COPY text format: `\N` for null, backslash escapes, `{...}` array literals. */
export const copyValue = (value: CopyValue): string => {
  if (value === null) return "\\N"
  if (typeof value === "boolean") return value ? "t" : "f"
  if (typeof value === "number") return String(value)
  if (typeof value === "string") return escapeText(value)
  return escapeText(arrayLiteral(value))
}

const NEEDS_ESCAPE = /[\\\t\n\r]/
const escapeText = (text: string) =>
  NEEDS_ESCAPE.test(text)
    ? text.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r")
    : text

const arrayLiteral = (items: ReadonlyArray<string>) => {
  if (items.length === 0) return "{}"
  let out = "{"
  for (let i = 0; i < items.length; i++) {
    if (i > 0) out += ","
    out += `"${items[i]!.replace(/\\/g, "\\\\").replace(/"/g, "\\\"")}"`
  }
  return out + "}"
}

const CHUNK_BYTES = 1 << 20
const LINE_BREAK = 0x0a

/**
 * Streams rows into `COPY <target> FROM STDIN`. `encode` turns each element into one
 * line (tab-separated, no newline). Each line goes straight into a ~1 MB buffer as UTF-8,
 * and full buffers are written, waiting when the socket is full, so memory stays flat.
 * (Lines kept as strings until a megabyte was joined outlived the young generation: at
 * 837,000 enrollments that cost 1.5–2 s of the main thread in the collector, the join and
 * the conversion to bytes.) A failure or interruption aborts the COPY (CopyFail) and
 * leaves the connection usable.
 */
export const copyIn = <A, E, R>(
  client: pg.PoolClient,
  statement: string,
  rows: Stream.Stream<A, E, R>,
  encode: (row: A) => string
): Effect.Effect<number, E | SqlError, R> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const stream = client.query(copyFrom(statement))
      let failure: Error | undefined
      stream.on("error", (error: Error) => {
        failure = error
      })
      return { stream, failure: () => failure }
    }),
    ({ failure, stream }) =>
      Effect.gen(function*() {
        let count = 0
        const write = (bytes: Buffer) =>
          Effect.async<void, SqlError>((resume) => {
            const error = failure()
            if (error !== undefined) return resume(Effect.fail(new SqlError({ cause: error, message: "COPY failed" })))
            if (stream.write(bytes)) return resume(Effect.void)
            const onDrain = () => {
              stream.off("error", onError)
              resume(Effect.void)
            }
            const onError = (cause: Error) => {
              stream.off("drain", onDrain)
              resume(Effect.fail(new SqlError({ cause, message: "COPY failed" })))
            }
            stream.once("drain", onDrain)
            stream.once("error", onError)
          })
        let buffer = Buffer.allocUnsafe(CHUNK_BYTES)
        let used = 0
        yield* Stream.runForEachChunk(rows, (chunk) => {
          const full: Array<Buffer> = []
          for (const row of chunk) {
            const text = encode(row)
            // UTF-8 takes at most three bytes per UTF-16 unit.
            if (used + 3 * text.length + 1 > buffer.length) {
              if (used > 0) {
                full.push(buffer.subarray(0, used))
                buffer = Buffer.allocUnsafe(CHUNK_BYTES)
                used = 0
              }
              if (3 * text.length + 1 > buffer.length) {
                full.push(Buffer.from(`${text}\n`))
                continue
              }
            }
            used += buffer.write(text, used)
            buffer[used++] = LINE_BREAK
          }
          count += chunk.length
          return full.length === 0 ? Effect.void : Effect.forEach(full, write, { discard: true })
        })
        if (used > 0) yield* write(buffer.subarray(0, used))
        yield* Effect.async<void, SqlError>((resume) => {
          const error = failure()
          if (error !== undefined) return resume(Effect.fail(new SqlError({ cause: error, message: "COPY failed" })))
          stream.once("finish", () => resume(Effect.void))
          stream.once("error", (cause: Error) => resume(Effect.fail(new SqlError({ cause, message: "COPY failed" }))))
          stream.end()
        })
        return count
      }),
    ({ stream }, exit) =>
      exit._tag === "Success" || stream.destroyed
        ? Effect.void
        : Effect.async<void>((resume) => {
          // destroy() sends CopyFail; the server answers with an error, after which the
          // connection is idle again.
          stream.once("close", () => resume(Effect.void))
          stream.destroy(new Error("rosterd: sync aborted"))
        })
  )

/**
 * Reads `COPY ... TO STDOUT` (text format), handing each line (without its newline) to
 * `onLine` as it arrives: nothing is buffered beyond one network chunk. Returns the lines read.
 */
export const copyOut = (
  client: pg.PoolClient,
  statement: string,
  onLine: (line: string) => void
): Effect.Effect<number, SqlError> =>
  Effect.async<number, SqlError>((resume) => {
    const stream = client.query(copyTo(statement))
    let rest = ""
    let count = 0
    stream.setEncoding("utf8")
    stream.on("data", (chunk: string) => {
      const text = rest + chunk
      let from = 0
      for (let at = text.indexOf("\n"); at !== -1; at = text.indexOf("\n", from)) {
        onLine(text.slice(from, at))
        count += 1
        from = at + 1
      }
      rest = text.slice(from)
    })
    stream.once("error", (cause: Error) => resume(Effect.fail(new SqlError({ cause, message: "COPY TO failed" }))))
    stream.once("end", () => resume(Effect.succeed(count)))
  })
