import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Duration, Effect, Stream } from "effect"
import type pg from "pg"
import type { District } from "../Domain/District.ts"
import type { ProviderError } from "../Domain/Errors.ts"
import type { EntityKind } from "../Domain/Roster.ts"
import { EntityKinds } from "../Domain/Roster.ts"
import type { FeedDigests, RosterSnapshot } from "../Providers/RosterProvider.ts"
import { planDdl } from "./Apply.ts"
import type { DigestSetRef, StagedKeys } from "./Digests.ts"
import { fullComparisonReason, hasEarlierRun, openDigestSet, setVersion } from "./Digests.ts"
import type { DigestScan } from "./DigestStaging.ts"
import { scanDigests, stageDigested } from "./DigestStaging.ts"
import { stageTable } from "./Entities.ts"
import { RepeatedKeys, SUSPECTS_LISTED } from "./RepeatedKeys.ts"
import { stageFeed, stagingDdl } from "./Staging.ts"
import type { AppliedMark } from "./Unchanged.ts"
import { readMark, sourceKey } from "./Unchanged.ts"

/**
 * The **stage** step of a sync run (SyncRun.ts): a snapshot's feeds into the session's temp
 * tables, in dependency order, before the run's transaction. Feeds offered as digests go
 * through the digest store (DigestStaging.ts: only changed records are decoded); others are
 * decoded and COPYed whole (Staging.ts). When every feed is complete and digested, all are
 * scanned first: if the scans are what the district's last applied run read (Unchanged.ts),
 * staging stops there, and the transaction decides whether the run may skip its comparison.
 */

/** What staging left for the transaction. */
export interface Staged {
  readonly notes: ReadonlyArray<string>
  /** The run's source key once it is staged (Unchanged.ts); null when the run can leave no mark. */
  readonly source: () => string | null
  /** Once staged, what the checks may assume of each kind's keys (Findings.ts). */
  readonly keys: () => Partial<Record<EntityKind, StagedKeys>>
  /**
   * A candidate to skip the comparison: the mark its scans matched, and the rest of
   * staging, for when the transaction finds the stored roster changed.
   */
  readonly unchanged: null | {
    readonly mark: AppliedMark
    readonly rest: Effect.Effect<ReadonlyArray<string>, ProviderError | SqlError, SqlClient.SqlClient>
  }
}


export interface StageOptions {
  /** Use the digest store (`rosterd.sync.digests`, a run's `digests`). */
  readonly digests: boolean
  /** `false` for a run asked to be full (`rosterd sync --full`): it compares, whatever the mark says. */
  readonly maySkip: boolean
  /** `rosterd.sync.compareEvery`: no mark whose comparison is older is used. */
  readonly compareEvery: Duration.Duration
  readonly progress: (kind: EntityKind, rows: number) => Effect.Effect<void>
}

/**
 * Stages every provided feed; returns the notes on kinds compared in full, the run's source
 * key, and — for a run whose scans match the district's mark — the candidate to skip the
 * comparison, with the rest of staging for when it may not.
 */
export const stageSnapshot = (snapshot: RosterSnapshot, client: pg.PoolClient, district: District, runId: number, options: StageOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { compareEvery, digests, maySkip, progress } = options
    yield* sql.unsafe(stagingDdl())
    yield* sql.unsafe(planDdl())
    const provided = EntityKinds.filter((kind) => snapshot.feeds[kind] !== null)
    const digested = (kind: EntityKind) => digests && snapshot.feeds[kind]?.digests !== undefined
    const versionOf = (kind: EntityKind) => setVersion(kind, snapshot.feeds[kind]!.digests!.version, district.rules)
    // A mark needs every feed complete and offered as digests.
    const markable = provided.every((kind) => digested(kind) && snapshot.feeds[kind]!.mode === "bulk")

    // 1. The digest sets, and the scans of those that can be used.
    const sets: Partial<Record<EntityKind, DigestSetRef>> = {}
    const scans: Partial<Record<EntityKind, DigestScan>> = {}
    const keys: Partial<Record<EntityKind, StagedKeys>> = {}
    for (const kind of provided.filter(digested)) {
      const set = yield* openDigestSet(district.id, kind, versionOf(kind))
      sets[kind] = set
      if (markable && set.full === null) {
        scans[kind] = yield* scanDigests(client, kind, snapshot.feeds[kind]!.digests as FeedDigests<any>, set, versionOf(kind), (rows) =>
          progress(kind, rows))
      }
    }
    const sourceOf = () =>
      markable
        ? sourceKey(district.rosterSource, provided.map((kind) => ({
          kind,
          mode: snapshot.feeds[kind]!.mode,
          file: snapshot.feeds[kind]!.name,
          version: versionOf(kind),
          scan: scans[kind]!
        })))
        : null

    // 2. The rest of staging: look up, decode and restore (or decode in full).
    const rest = Effect.gen(function*() {
      const full: Record<string, Array<string>> = {}
      // The diff only needs row counts and rough distributions of the staged tables: a
      // small sample keeps ANALYZE of a million-row table well under a second.
      yield* sql.unsafe(`SET default_statistics_target = 10`)
      for (const kind of provided) {
        const feed = snapshot.feeds[kind]!
        if (digested(kind)) {
          const done = yield* stageDigested(client, kind, feed.digests as FeedDigests<any>, {
            districtId: district.id,
            version: versionOf(kind),
            bulk: feed.mode === "bulk",
            progress: (rows) => progress(kind, rows)
          }, { set: sets[kind]!, scan: scans[kind] })
          scans[kind] = done.scan
          keys[kind] = done.keys
          if (done.full !== null) (full[done.full] ??= []).push(kind)
          yield* sql.unsafe(`ANALYZE pg_temp.${stageTable(kind)}`)
          continue
        }
        let staged = 0
        const items = (feed.items as Stream.Stream<any, any>).pipe(
          Stream.mapChunksEffect((chunk) => {
            staged += chunk.length
            return Effect.as(progress(kind, staged), chunk)
          })
        )
        const watched = new RepeatedKeys(SUSPECTS_LISTED)
        yield* stageFeed(client, kind, items, watched)
        keys[kind] = { setId: null, restoredDistinct: false, recheck: [], complete: false, suspects: watched.lines }
        yield* sql.unsafe(`ANALYZE pg_temp.${stageTable(kind)}`)
      }
      yield* sql.unsafe(`RESET default_statistics_target`)
      // A first run has no digests to use: no note. Later, a kind compared in full says why.
      if (full.none !== undefined && !(yield* hasEarlierRun(district.id, runId))) delete full.none
      return Object.entries(full).map(([why, kinds]) =>
        `compared in full (${kinds.join(", ")}): ${fullComparisonReason[why as keyof typeof fullComparisonReason]}`
      )
    })

    const scanned = provided.length > 0 && provided.every((kind) => scans[kind] !== undefined) ? sourceOf() : null
    const mark = scanned === null ? null : yield* readMark(district.id)
    const now = yield* Clock.currentTimeMillis
    if (maySkip && mark !== null && mark.sourceKey === scanned && now - mark.comparedAt < Duration.toMillis(compareEvery)) {
      return { notes: [], source: () => scanned, keys: () => keys, unchanged: { mark, rest } } satisfies Staged as Staged
    }
    const notes = yield* rest
    return { notes, source: sourceOf, keys: () => keys, unchanged: null } satisfies Staged as Staged
  })
