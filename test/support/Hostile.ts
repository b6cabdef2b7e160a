import { SqlClient } from "@effect/sql"
import { assert } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { rosterFingerprint } from "./Database.ts"

/**
 * The hostile-input harness (test/Hostile/*.test.ts): what every hostile case asserts.
 *
 * - **The process survives with bounded memory**: `withPeakMemory` samples the resident set
 *   while the case runs; `assertBoundedMemory` fails when it grew past a bound.
 * - **Nothing of a rejected batch is applied**: `rosterFingerprint` (physical row versions of
 *   every roster table) before and after must be equal (`assertNothingApplied`).
 * - **The error or finding names what and where, without echoing the value**:
 *   `assertNames` / `assertNoLeak`.
 * - **No secret or personal value in any output**: `CapturedLogs` collects every log line
 *   (all levels) of the case; `assertNoLeak` searches them, the run record, findings and any
 *   other text the case printed.
 *
 * Naming convention, so the README's table can be compiled from the suite: every hostile
 * case is one `it` titled `<input> → <expected outcome>`, inside a `describe("hostile: <area>")`
 * whose area is one of: CSV files, zips, drop folders, Clever JSON, OneRoster JSON,
 * HTTP behaviour, values.
 */

/** Every log line of the effect it is provided to, formatted with all annotations and causes. */
export class CapturedLogs extends Effect.Service<CapturedLogs>()("test/CapturedLogs", {
  sync: () => {
    const lines: Array<string> = []
    return { lines, text: () => lines.join("\n") }
  }
}) {}

/** Replaces the default logger with one that records every line (debug included) into `CapturedLogs`. */
export const captureLogsLayer = Layer.unwrapEffect(
  Effect.map(CapturedLogs, (captured) =>
    Logger.replace(
      Logger.defaultLogger,
      Logger.map(Logger.logfmtLogger, (line) => {
        captured.lines.push(line)
      })
    ).pipe(Layer.merge(Logger.minimumLogLevel(LogLevel.All))))
).pipe(Layer.provideMerge(CapturedLogs.Default))

/** Fails when `text` contains any of `values` (personal data, secrets, hostile payloads). */
export const assertNoLeak = (text: string, values: ReadonlyArray<string>, what: string) => {
  for (const value of values) {
    if (value.length === 0) continue
    assert.notInclude(text, value, `${what} echoes a value it must not (${JSON.stringify(value.slice(0, 12))}…)`)
  }
}

/** Fails unless `text` names every one of `parts` (a file, a line, an endpoint, a source ID, a field). */
export const assertNames = (text: string, parts: ReadonlyArray<string | RegExp>, what: string) => {
  for (const part of parts) {
    if (typeof part === "string") assert.include(text, part, `${what} does not name ${part}`)
    else assert.match(text, part, `${what} does not match ${part}`)
  }
}

/** Runs `effect` and asserts the roster tables are physically unchanged by it (nothing applied). */
export const assertNothingApplied = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const before = yield* rosterFingerprint
    const exit = yield* Effect.exit(effect)
    const after = yield* rosterFingerprint
    assert.deepStrictEqual(after, before, "a rejected batch changed the roster")
    return exit
  })

/** The run row as operators see it (status, error, notes) and its findings' text. */
export const runRecordText = (runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const runs = yield* sql<{ readonly status: string; readonly errorReason: string | null; readonly error: string | null; readonly notes: string | null }>`
      SELECT status, error_reason, error, notes FROM sync_runs WHERE id = ${runId}`
    const findings = yield* sql<{ readonly code: string; readonly detail: string; readonly sourceId: string | null; readonly file: string | null; readonly line: number | null }>`
      SELECT code, detail, source_id, file, line FROM findings WHERE run_id = ${runId} ORDER BY id`
    return { run: runs[0], findings, text: JSON.stringify({ run: runs[0], findings }) }
  })

/** The newest run of a district (for cases whose run failed, where `Sync.run` returned no summary). */
export const lastRunId = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ readonly id: number }>`SELECT id FROM sync_runs WHERE district_id = ${district} ORDER BY id DESC LIMIT 1`,
      (rows) => rows[0]?.id
    ))

const MiB = 1024 * 1024

/**
 * Runs `effect` while sampling the process's resident set every 10 ms; returns its result
 * (as an Exit: a hostile case usually fails) and how far the resident set grew above where
 * it started, in MiB.
 */
export const withPeakMemory = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = process.memoryUsage.rss()
    let peak = start
    const timer = setInterval(() => {
      const now = process.memoryUsage.rss()
      if (now > peak) peak = now
    }, 10)
    const exit = yield* Effect.exit(effect).pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
    peak = Math.max(peak, process.memoryUsage.rss())
    return { exit, grewMiB: (peak - start) / MiB }
  })

/** Fails when the resident set grew more than `limitMiB` (default 256) during a hostile case. */
export const assertBoundedMemory = (grewMiB: number, limitMiB = 256) =>
  assert.isBelow(grewMiB, limitMiB, `memory grew ${grewMiB.toFixed(0)} MiB during a hostile input (limit ${limitMiB})`)
