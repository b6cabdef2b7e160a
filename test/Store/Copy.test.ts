import { assert, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Effect, Stream } from "effect"
import { copyIn, copyValue } from "../../src/Store/Copy.ts"
import { rawClient } from "../../src/Store/Session.ts"
import { TestDatabase } from "../support/Database.ts"

/**
 * `copyIn` writes each line as UTF-8 into ~1 MB buffers (src/Store/Copy.ts): what reaches
 * the table must be exactly the rows, whatever falls on a buffer's edge — a multi-byte
 * character, a line longer than a buffer, escapes — and however the stream's chunks cut
 * the rows.
 */
const copied = (rows: ReadonlyArray<string>, chunkSize: number) =>
  Effect.scoped(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const connection = yield* sql.reserve
    const client = rawClient(connection)
    yield* Effect.promise(() => client.query("CREATE TEMP TABLE copied (n integer NOT NULL, v text)"))
    const count = yield* copyIn(
      client,
      "COPY pg_temp.copied (n, v) FROM STDIN",
      Stream.fromIterable(rows.map((v, n) => [n, v] as const)).pipe(Stream.rechunk(chunkSize)),
      ([n, v]) => `${n}\t${copyValue(v)}`
    )
    const read = yield* Effect.promise(() => client.query<{ readonly v: string }>("SELECT v FROM pg_temp.copied ORDER BY n"))
    yield* Effect.promise(() => client.query("DROP TABLE pg_temp.copied"))
    return { count, values: read.rows.map((row) => row.v) }
  }))

layer(TestDatabase, { timeout: "60 seconds" })("COPY into a table, through byte buffers", (it) => {
  it.effect("rows of every width and script arrive as they were, across buffers", () =>
    Effect.gen(function*() {
      const rows: Array<string> = []
      // ~3 MB of lines: several buffers, each edge landing somewhere else in a line.
      for (let i = 0; rows.length < 40_000; i++) {
        rows.push(`${"é".repeat(i % 7)}名前${i}\ttab\\slash\nnewline${"🙂".repeat(i % 3)}${"x".repeat(i % 31)}`)
      }
      // A line longer than a buffer (3 bytes a character: 1.5 MB), between short ones.
      rows.splice(17_000, 0, "語".repeat(500_000))
      rows.push("")
      for (const chunkSize of [1, 4_096]) {
        const { count, values } = yield* copied(rows, chunkSize)
        assert.strictEqual(count, rows.length)
        assert.strictEqual(values.length, rows.length)
        const firstWrong = values.findIndex((value, i) => value !== rows[i])
        assert.strictEqual(firstWrong, -1, `row ${firstWrong} differs (chunks of ${chunkSize})`)
      }
    }))
})
