import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Chunk, Effect, Stream } from "effect"
import type pg from "pg"
import type { ProviderError } from "../Domain/Errors.ts"
import type { EntityKind, EntityRecord } from "../Domain/Roster.ts"
import { EntityKinds } from "../Domain/Roster.ts"
import type { FeedItem, KnownDigest, RawItem } from "../Providers/RosterProvider.ts"
import { guardOf, usableIdentity } from "../Domain/Values.ts"
import { copyIn, copyValue } from "../Store/Copy.ts"
import type { LoadOutcome } from "./Digests.ts"
import { clearDigests, digestCopy, loadDigests } from "./Digests.ts"
import { Entities, stagedColumns, stageTable } from "./Entities.ts"

/**
 * Staging: each feed of a snapshot is COPYed into a temporary table of the run's session.
 *
 * Temp tables are private to the session, unlogged, and vanish with it: a run that dies
 * half-way leaves nothing behind, and staging never touches the live tables. Every row
 * keeps its file line; a row that failed to decode is staged too (`invalid`), with the
 * identity that could be read, so the diff knows the record is still there.
 *
 * Every record passes the value guard (src/Domain/Values.ts) on its way in, whichever
 * provider it came from: no single value (a NUL, year 0000, a megabyte of name) can fail
 * the COPY and with it the district's every run. A record the guard holds out is staged
 * as `invalid`; fields it cleared or cleaned are noted in `cleared` / `stripped` (field
 * names only) for the findings.
 */

/** DDL for all staging tables (dropped first: the pooled session may have run a sync before). */
export const stagingDdl = (): string =>
  EntityKinds.map((kind) => {
    const table = stageTable(kind)
    const columns = stagedColumns(kind).map((column) => `${column.name} ${column.type}`)
    // Set by the checks on rows that repeat another (identical content, or the same
    // enrollment pair): the diff reads the kept row only.
    columns.push("shadowed boolean NOT NULL DEFAULT false")
    // Set by the district rules (out of scope, over the co-teacher limit): the record is
    // treated as removed from the source, with this as the reason (see Rules/).
    columns.push("excluded text")
    // The digest of the source record, when it was read undecoded (Digests.ts); null for
    // a row restored from the store, and for every row when digests are off.
    columns.push("digest bytea")
    const cached = [...CACHED_FIXED.map((c) => `${c} ${FIXED_TYPES[c]}`), ...stagedColumns(kind).map((c) => `${c.name} ${c.type}`)]
    return `DROP TABLE IF EXISTS pg_temp.${table};
CREATE TEMP TABLE ${table} (
  line integer NOT NULL,
  invalid boolean NOT NULL,
  problem text,
  cleared text,
  stripped text,
  status text,
  source_id text,
  ${columns.join(",\n  ")}
);
DROP TABLE IF EXISTS pg_temp.${cachedTable(kind)};
CREATE TEMP TABLE ${cachedTable(kind)} (${cached.join(", ")});
DROP TABLE IF EXISTS pg_temp.${seenTable(kind)};
CREATE TEMP TABLE ${seenTable(kind)} (line integer NOT NULL, digest bytea NOT NULL);`
  }).join("\n")

export const dropStagingDdl = (): string =>
  EntityKinds.map((kind) =>
    `DROP TABLE IF EXISTS pg_temp.${stageTable(kind)};
DROP TABLE IF EXISTS pg_temp.${cachedTable(kind)};
DROP TABLE IF EXISTS pg_temp.${seenTable(kind)};`
  ).join("\n")

/** A staging row's columns but its line, as stored under its digest (the row type of `cached_<kind>`). */
const CACHED_FIXED = ["invalid", "problem", "cleared", "stripped", "status", "source_id"] as const
const FIXED_TYPES = { invalid: "boolean", problem: "text", cleared: "text", stripped: "text", status: "text", source_id: "text" } as const
const cachedTable = (kind: EntityKind) => `cached_${kind}`
const seenTable = (kind: EntityKind) => `seen_${kind}`
const cachedColumns = (kind: EntityKind) => [...CACHED_FIXED, ...stagedColumns(kind).map((c) => c.name)]

const encoder = <K extends EntityKind>(kind: K) => {
  const spec = Entities[kind]
  const columns = stagedColumns(kind)
  const isEnrollment = kind === "enrollments"
  const guard = guardOf(kind)
  // An unreadable row, or one the guard held out: its identity only (usable identifiers
  // only). For enrollments the identity is the (class, user) pair.
  const invalid = (line: number, problem: string, identity: ReturnType<typeof usableIdentity>) => {
    let text = `${line}\tt\t${copyValue(problem)}\t\\N\t\\N\t\\N\t${copyValue(identity.sourceId)}`
    for (const column of columns) {
      const value = isEnrollment && column.name === "class_source_id"
        ? identity.classSourceId
        : isEnrollment && column.name === "user_source_id"
        ? identity.userSourceId
        : null
      text += `\t${copyValue(value)}`
    }
    return text
  }
  return (item: FeedItem<EntityRecord[K]>): string => {
    if (item._tag === "Invalid") return invalid(item.origin.line, item.problem, usableIdentity(item))
    const checked = guard(item.record)
    if (checked._tag === "Held") return invalid(item.origin.line, checked.problem, checked)
    const record = checked.record
    let line = `${item.origin.line}\tf\t\\N\t${copyValue(checked.cleared)}\t${copyValue(checked.stripped)}\t${record.status}\t${
      copyValue(spec.sourceId(record))
    }`
    for (const column of columns) line += `\t${copyValue(column.get(record))}`
    return line
  }
}

/** COPYs one feed into its staging table; returns the number of rows staged. */
export const stageFeed = <K extends EntityKind>(
  client: pg.PoolClient,
  kind: K,
  items: Stream.Stream<FeedItem<EntityRecord[K]>, ProviderError>
): Effect.Effect<number, ProviderError | SqlError> => {
  const columns = ["line", "invalid", "problem", "cleared", "stripped", "status", "source_id", ...stagedColumns(kind).map((c) => c.name)]
  return copyIn(
    client,
    `COPY pg_temp.${stageTable(kind)} (${columns.join(", ")}) FROM STDIN`,
    items,
    encoder(kind)
  ).pipe(Effect.withSpan("Staging.stageFeed", { attributes: { kind } }))
}

/** How a kind was staged with digests: rows decoded, rows restored, and why it compared in full (if it did). */
export interface DigestedStaging {
  readonly decoded: number
  readonly restored: number
  readonly full: null | Extract<LoadOutcome, { readonly _tag: "Full" }>["why"]
}

/**
 * Stages a feed read undecoded (`RawItem`s), decoding only the records whose digest the
 * district's store does not know (Digests.ts), then restoring the staging rows of the
 * others from the store, and writing the store for the next run. `bulk`: the feed is the
 * complete set, so digests it did not list are dropped from the store.
 *
 * Outside the run's transaction: the store maps a record's digest to the staging row it
 * produces, true whatever becomes of this run.
 */
export const stageDigested = <K extends EntityKind>(
  client: pg.PoolClient,
  kind: K,
  raw: (known: KnownDigest) => Stream.Stream<RawItem<EntityRecord[K]>, ProviderError>,
  options: {
    readonly districtId: string
    readonly version: string
    readonly bulk: boolean
    readonly progress: (rows: number) => Effect.Effect<void>
  }
): Effect.Effect<DigestedStaging, ProviderError | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { districtId, version } = options
    const loaded = yield* loadDigests(client, districtId, kind, version)
    const set = loaded.set
    const encode = encoder(kind)
    let decoded = 0
    // The provider asks for each record before parsing it: a known one is noted as seen (its
    // staging row is restored below) and never reaches this stream.
    let known = 0
    const changed = raw((hi, lo, line) => {
      const seen = set.see(hi, lo, line)
      if (seen) known += 1
      return seen
    }).pipe(
      Stream.mapChunksEffect((chunk) => {
        const out: Array<string> = []
        for (const item of chunk) out.push(`${encode(item.decode())}\t${digestCopy(item.hi, item.lo)}`)
        decoded += out.length
        return Effect.as(options.progress(known + decoded), Chunk.unsafeFromArray(out))
      })
    )
    const columns = ["line", "invalid", "problem", "cleared", "stripped", "status", "source_id", ...stagedColumns(kind).map((c) => c.name), "digest"]
    yield* copyIn(client, `COPY pg_temp.${stageTable(kind)} (${columns.join(", ")}) FROM STDIN`, changed, (line) => line)
    yield* options.progress(known + decoded)

    // The records read before: their (line, digest), then their staging rows from the store.
    const expected = set.restoredCount()
    if (expected > 0) {
      yield* copyIn(
        client,
        `COPY pg_temp.${seenTable(kind)} (line, digest) FROM STDIN`,
        Stream.fromIterable({ [Symbol.iterator]: () => set.restoredCopy(8192) }),
        (batch) => batch
      )
      // Statistics for the join below: without them the planner guesses at the temp
      // table's size and may look each digest up by index, one at a time.
      yield* sql.unsafe(`ANALYZE pg_temp.${seenTable(kind)}`)
      const cached = cachedColumns(kind)
      // A stored row that no longer parses would put its values in Postgres's message: the
      // run fails with a message of its own, and the next run compares in full.
      const inconsistent = (found: string) =>
        Effect.zipRight(
          clearDigests(districtId, kind),
          Effect.die(new Error(`the stored digests of ${kind} did not restore (${found}): they were discarded, the next run compares in full`))
        )
      const [row] = yield* sql.unsafe<{ readonly n: number }>(
        `WITH restored AS (
           INSERT INTO pg_temp.${stageTable(kind)} (line, ${cached.join(", ")})
           SELECT x.line, ${cached.map((c) => `(x.r).${c}`).join(", ")}
           FROM (SELECT s.line, c.staged::pg_temp.${cachedTable(kind)} AS r
                 FROM pg_temp.${seenTable(kind)} s
                 JOIN roster_digests c ON c.district_id = $1 AND c.kind = $2 AND c.digest = s.digest
                 -- A fence: flattened, the subquery's cast would be evaluated once per
                 -- column read from it (13 times a row for enrollments: 16 s instead of 2.5 s
                 -- for 837k rows).
                 OFFSET 0) x
           RETURNING 1)
         SELECT count(*)::int AS n FROM restored`,
        [districtId, kind]
      ).pipe(Effect.catchTag("SqlError", () => inconsistent("a stored staging row is unreadable")))
      // Rows gone between loading and restoring: nothing of this run is applied.
      if ((row?.n ?? 0) !== expected) return yield* inconsistent(`${row?.n ?? 0} of ${expected} staging rows found`)
    }

    // The store for the next run: the new records' staging rows; in a bulk feed, without
    // the records that are gone; the set's version, count and checksum.
    const summary = set.summary(options.bulk)
    const cached = cachedColumns(kind)
    yield* sql.withTransaction(Effect.gen(function*() {
      if (decoded > 0) {
        yield* sql.unsafe(
          // A digest staged twice (a line repeated in the file) is stored once: DO NOTHING
          // skips the repeat within this statement too, without sorting 10 million rows first.
          `INSERT INTO roster_digests (district_id, kind, digest, staged)
           SELECT $1, $2, digest, ROW(${cached.join(", ")})::pg_temp.${cachedTable(kind)}::text
           FROM pg_temp.${stageTable(kind)} WHERE digest IS NOT NULL
           ON CONFLICT DO NOTHING`,
          [districtId, kind]
        )
      }
      if (options.bulk && loaded._tag === "Loaded" && set.unseen() > 0) {
        yield* sql.unsafe(
          `DELETE FROM roster_digests c WHERE c.district_id = $1 AND c.kind = $2
             AND NOT EXISTS (SELECT 1 FROM pg_temp.${seenTable(kind)} s WHERE s.digest = c.digest)
             AND NOT EXISTS (SELECT 1 FROM pg_temp.${stageTable(kind)} s WHERE s.digest = c.digest)`,
          [districtId, kind]
        )
      }
      yield* sql`
        INSERT INTO roster_digest_sets (district_id, kind, version, entries, checksum)
        VALUES (${districtId}, ${kind}, ${version}, ${summary.entries}, ${summary.checksum})
        ON CONFLICT (district_id, kind) DO UPDATE
          SET version = excluded.version, entries = excluded.entries, checksum = excluded.checksum, updated_at = now()`
    }))
    return { decoded, restored: expected, full: loaded._tag === "Full" ? loaded.why : null }
  }).pipe(Effect.withSpan("Staging.stageDigested", { attributes: { kind } }))
