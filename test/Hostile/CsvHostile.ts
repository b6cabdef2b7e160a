import { assert } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Layer, Option } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import type { ProviderFailure } from "../../src/Domain/Errors.ts"
import { ProviderError } from "../../src/Domain/Errors.ts"
import { RosterProviderLive } from "../../src/Providers/Providers.ts"
import type { RunSummary } from "../../src/Reconcile/SyncRun.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { SyncLive } from "../../src/Accounts/SyncAccounts.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { Runs } from "../../src/Store/Runs.ts"
import { zipInto } from "../Providers/support.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import {
  assertBoundedMemory,
  assertNames,
  assertNoLeak,
  assertNothingApplied,
  CapturedLogs,
  captureLogsLayer,
  lastRunId,
  runRecordText,
  withPeakMemory
} from "../support/Hostile.ts"

/**
 * Shared by the hostile-file suites (CsvFiles, Zips, DropFolders): a small CSV district
 * synced once (the "first good sync"), then broken, then synced again under the harness:
 * bounded memory, nothing applied, the error names file (and line) without echoing
 * content, and no personal value in the logs or the run record.
 */

export const addCsvDistrict = (id: string, path: string) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path } }))

export const syncNow = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "auto", trigger: "test" }))

/** The small district's personal values (writeSmallDistrict): never in an error, a note, a log line. */
export const personal = (domain: string) => [
  "Tess",
  "Theo",
  "Sam",
  "Sia",
  "Sol",
  `tess@${domain}`,
  `theo@${domain}`,
  `sam@${domain}`,
  `sia@${domain}`,
  `sol@${domain}`,
  "2014-03-01",
  "2013-11-20",
  "2014-07-09"
]

export interface SyncedSet {
  readonly id: string
  /** The folder holding the set's files (for a zip district: where they are written before zipping). */
  readonly dir: string
  /** What the district's settings point at: the folder, or the zip. */
  readonly path: string
  /** A scratch folder of the case's own (removed with the set). */
  readonly scratch: string
  readonly domain: string
}

/**
 * A district synced once from the small fixture (succeeded, no findings), as a folder or a
 * zip of it, in temp folders removed after `use`: the state every case starts from.
 */
export const withSyncedDistrict = <A, E, R>(
  id: string,
  use: (set: SyncedSet) => Effect.Effect<A, E, R>,
  options: { readonly zip?: boolean } = {}
) =>
  Effect.acquireUseRelease(
    Effect.sync(() => tempDir(`rosterd-hostile-${id}-`)),
    (tmp) =>
      Effect.gen(function*() {
        const domain = `${id}.example`
        const dir = NodePath.join(tmp.dir, "set")
        writeSmallDistrict(dir, domain)
        const scratch = NodePath.join(tmp.dir, "scratch")
        Fs.mkdirSync(scratch)
        const path = options.zip === true ? NodePath.join(tmp.dir, "set.zip") : dir
        if (options.zip === true) yield* Effect.promise(() => zipInto(path, dir, Fs.readdirSync(dir)))
        yield* addCsvDistrict(id, path)
        const first = yield* syncNow(id)
        assert.strictEqual(first.status, "succeeded")
        assert.strictEqual(first.findings, 0)
        return yield* use({ id, dir, path, scratch, domain })
      }),
    (tmp) => Effect.sync(() => tmp.remove())
  )

export interface Refusal {
  readonly reason: ProviderFailure
  /** What the run's one-line error must name: the file, `line N`, the setting … */
  readonly names: ReadonlyArray<string | RegExp>
  /** Hostile content that must not come back in any output (beside the personal values). */
  readonly leaks?: ReadonlyArray<string>
  /** The memory bound of the case (MiB of resident set growth; default 256). */
  readonly memoryMiB?: number
}

/**
 * Syncs the broken district and asserts the harness's promises: the run failed with
 * `reason` before anything was applied, with bounded memory; its record names what and
 * where; nothing personal or hostile comes back in the error, the run record or any log line.
 */
export const expectRefused = <E2 = never, R2 = never>(set: SyncedSet, expected: Refusal, sync?: Layer.Layer<Sync, E2, R2>) =>
  Effect.gen(function*() {
    const run: Effect.Effect<RunSummary, unknown, Sync | R2> = sync === undefined ? syncNow(set.id) : syncNow(set.id).pipe(Effect.provide(sync))
    const { exit, grewMiB } = yield* withPeakMemory(assertNothingApplied(run))
    assertBoundedMemory(grewMiB, expected.memoryMiB)
    const inner = outcome(exit)
    assert.isTrue(Exit.isFailure(inner), "the sync was expected to fail")
    const failure = errorOf(inner)
    assert.instanceOf(failure, ProviderError, `expected a ProviderError, got ${String(failure)}`)
    const provider = failure as ProviderError
    assert.strictEqual(provider.reason, expected.reason, `${provider.where}${provider.message}`)

    const runId = yield* lastRunId(set.id)
    const record = yield* runRecordText(runId!)
    assert.strictEqual(record.run?.status, "failed")
    assert.strictEqual(record.run?.errorReason, expected.reason)
    assert.strictEqual(record.run?.error, `${provider.where}${provider.message}`)
    assert.notMatch(record.run!.error!, /[\r\n]/, "the run's error is one line")
    assertNames(record.run!.error!, expected.names, "the run's error")
    assert.lengthOf(record.findings, 0, "a refused set records no findings")

    const logs = (yield* CapturedLogs).text()
    const values = [...personal(set.domain), ...(expected.leaks ?? [])]
    assertNoLeak(record.text, values, "the run record")
    assertNoLeak(logs, values, "the captured logs")
    return provider
  }).pipe(Effect.provide(captureLogsLayer))

/** The sync's own exit, from inside the harness's (whose wrappers never fail themselves). */
const outcome = <A, E, E2>(exit: Exit.Exit<Exit.Exit<A, E>, E2>): Exit.Exit<A, E> => {
  if (Exit.isFailure(exit)) throw new Error(`the harness itself failed: ${Cause.pretty(exit.cause)}`)
  return exit.value
}

/** The exit's expected error (a defect or an interruption is `undefined`: a test failure). */
const errorOf = <A, E>(exit: Exit.Exit<A, E>): unknown =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/**
 * Syncs a district whose set is still being written and asserts the run was *deferred*:
 * no failure, nothing applied, a note naming the file, and the district not failing.
 */
export const expectDeferred = <E2 = never, R2 = never>(
  set: SyncedSet,
  sync: Layer.Layer<Sync, E2, R2> | undefined,
  names: ReadonlyArray<string | RegExp>
) =>
  Effect.gen(function*() {
    const run: Effect.Effect<RunSummary, unknown, Sync | R2> = sync === undefined ? syncNow(set.id) : syncNow(set.id).pipe(Effect.provide(sync))
    const { exit, grewMiB } = yield* withPeakMemory(assertNothingApplied(run))
    assertBoundedMemory(grewMiB)
    const inner = outcome(exit)
    assert.isTrue(Exit.isSuccess(inner), `a deferred run is no failure: ${Exit.isFailure(inner) ? String(errorOf(inner)) : ""}`)
    const summary = Exit.isSuccess(inner) ? inner.value : undefined
    assert.strictEqual(summary?.status, "deferred")
    assert.isAbove(summary!.retryAfterMs ?? 0, 0)
    const record = yield* runRecordText(summary!.runId)
    assert.strictEqual(record.run?.status, "deferred")
    assert.isNull(record.run?.error ?? null)
    assert.isNull(record.run?.errorReason ?? null)
    assertNames(record.run!.notes!, names, "the deferred run's note")
    const [status] = yield* Effect.flatMap(Runs, (runs) => runs.status(set.id))
    assert.isFalse(status!.failing, "a deferred run is not a failure")
    assert.strictEqual(status!.lastRun?.status, "succeeded", "lastRun stays the last run that reached a verdict")
    assert.strictEqual(status!.deferred?.runId, summary!.runId)
    const logs = (yield* CapturedLogs).text()
    assertNoLeak(record.text + logs, personal(set.domain), "the deferred run's record and logs")
    return summary!
  }).pipe(Effect.provide(captureLogsLayer))

/**
 * A `Sync` whose provider waits for a set to settle (the suite's default does not: its
 * fixtures are written moments before they are read). Settings as `rosterd.csv.x` keys;
 * anything else as the environment gives it (like SyncTestLayer).
 */
export const syncWith = (settings: Readonly<Record<string, string>>) =>
  SyncLive.pipe(
    Layer.provide(RosterProviderLive.pipe(Layer.provide(Layer.setConfigProvider(
      ConfigProvider.fromMap(new Map(Object.entries(settings))).pipe(ConfigProvider.orElse(() => ConfigProvider.fromEnv()))
    ))))
  )

/** Writes `total` bytes to `path` in chunks made by `chunk(i)`, never holding the file in memory. */
export const writeStreamed = (path: string, head: string, chunk: Buffer, count: number, tail = "") => {
  const fd = Fs.openSync(path, "w")
  try {
    Fs.writeSync(fd, head)
    for (let i = 0; i < count; i++) Fs.writeSync(fd, chunk)
    Fs.writeSync(fd, tail)
  } finally {
    Fs.closeSync(fd)
  }
}

/** Replaces the district's zip with a zip of `dir` (entries as given, or the folder's files). */
export const rezip = (set: SyncedSet, entries?: ReadonlyArray<string>) =>
  Effect.promise(async () => {
    const next = `${set.path}.new`
    await zipInto(next, set.dir, entries ?? Fs.readdirSync(set.dir))
    Fs.renameSync(next, set.path)
  })
