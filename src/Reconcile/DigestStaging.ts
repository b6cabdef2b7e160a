import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Fiber, Stream } from "effect"
import { createHash } from "node:crypto"
import type pg from "pg"
import type { ProviderError } from "../Domain/Errors.ts"
import type { EntityKind, EntityRecord } from "../Domain/Roster.ts"
import type { FeedDigests, RawItem } from "../Providers/RosterProvider.ts"
import { copyIn, copyOut } from "../Store/Copy.ts"
import { rowsWritten } from "../Store/RowsWritten.ts"
import type { DigestSetRef, FullComparison, StagedKeys } from "./Digests.ts"
import { clearDigests, digestCopy, LINES_LISTED } from "./Digests.ts"
import { stagedColumns, stageTable } from "./Entities.ts"
import { digestTable } from "../Store/DigestTables.ts"
import { RepeatedDigests } from "./RepeatedDigests.ts"
import { RepeatedKeys, SUSPECTS_LISTED } from "./RepeatedKeys.ts"
import { cachedColumns, encoder, seenTable } from "./Staging.ts"

/**
 * Staging a feed offered as digests (Digests.ts explains the store): scan, look up,
 * decode what changed, restore the rest, write the store. The staging tables and the
 * encoding are Staging.ts's.
 */

/**
 * At most this much COPY text (characters; checked a read chunk at a time) of decoded rows
 * is held in memory while the restore runs (`stageDigested`): a 1 % resync of ten million
 * enrollments holds about 12 MB. Tests make it small, to stage past it.
 */
export class DecodedHeldChars extends Context.Reference<DecodedHeldChars>()("rosterd/DecodedHeldChars", {
  defaultValue: () => 32 * 1024 * 1024
}) {}

/** How a kind was staged with digests: rows decoded, rows restored, and why it compared in full (if it did). */
export interface DigestedStaging {
  readonly decoded: number
  readonly restored: number
  readonly full: FullComparison | null
  /** The kind's scan (taken while decoding, when it was decoded in full). */
  readonly scan: DigestScan
  /** What the checks may assume of the staged keys (Findings.ts). */
  readonly keys: StagedKeys
}

/**
 * The lines a scan found the store without, as a bitmap grown as needed (ten million
 * lines take 1.25 MB).
 */
class LineSet {
  private bits = new Uint8Array(1 << 12)
  size = 0
  add(line: number) {
    const byte = line >>> 3
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(this.bits.length * 2, byte + 1))
      grown.set(this.bits)
      this.bits = grown
    }
    const mask = 1 << (line & 7)
    if ((this.bits[byte]! & mask) === 0) {
      this.bits[byte]! |= mask
      this.size += 1
    }
  }
  has(line: number): boolean {
    const byte = line >>> 3
    return byte < this.bits.length && (this.bits[byte]! & (1 << (line & 7))) !== 0
  }
}

/**
 * A kind's scan: how many records it listed, and a fingerprint of the whole scan (every
 * record's line and digest, in order, seeded with the set's version): two scans with the
 * same fingerprint would stage the same rows (src/Reconcile/Unchanged.ts).
 */
export interface DigestScan {
  readonly set: DigestSetRef
  readonly scanned: number
  readonly fingerprint: string
  /**
   * Lines whose digest an earlier line may have listed (RepeatedDigests.ts); null when not
   * known (too many, a set not known distinct, or the scan was taken while decoding in full).
   */
  readonly repeats: ReadonlyArray<number> | null
}

const scanHash = (kind: EntityKind, version: string) => createHash("sha256").update(`${kind}\n${version}\n`)

/**
 * Scans a feed offered as digests into the session's `seen_<kind>`: each record's line
 * and digest, nothing parsed, nothing kept in Node. The set must be usable (`full` null).
 */
export const scanDigests = <K extends EntityKind>(
  client: pg.PoolClient,
  kind: K,
  digests: FeedDigests<EntityRecord[K]>,
  set: DigestSetRef,
  version: string,
  progress: (rows: number) => Effect.Effect<void>
): Effect.Effect<DigestScan, ProviderError | SqlError> =>
  Effect.gen(function*() {
    const seen = seenTable(kind)
    const hash = scanHash(kind, version)
    // Only a set whose rows have distinct keys needs the repeated lines (Findings.ts): for
    // any other the checks read every row, and the filter (up to 32 MB) would be wasted.
    const repeats = set.keysDistinct ? new RepeatedDigests(set.entries, LINES_LISTED) : null
    let scanned = 0
    yield* copyIn(client, `COPY pg_temp.${seen} (line, digest) FROM STDIN`, digests.scan, (batch) => {
      hash.update(Uint32Array.from(batch))
      const lines: Array<string> = []
      for (let i = 0; i < batch.length; i += 3) {
        repeats?.add(batch[i]!, batch[i + 1]!, batch[i + 2]!)
        lines.push(`${batch[i]}\t${digestCopy(batch[i + 1]!, batch[i + 2]!)}`)
      }
      scanned += lines.length
      return lines.join("\n")
    }).pipe(Effect.withSpan("Digests.scan", { attributes: { kind } }))
    yield* progress(scanned)
    return { set, scanned, fingerprint: hash.digest("hex"), repeats: repeats?.lines ?? null }
  })

/**
 * Stages a feed offered as digests (Digests.ts): scans every record's digest into
 * `seen_<kind>`, looks them all up in the district's store, decodes only the records it
 * does not have, and restores the staging rows of the others from the store; then writes
 * the store for the next run. `bulk`: the feed is the complete set, so digests it did not
 * list are dropped from the store. A kind whose set was made under another version (or
 * that has none) is decoded in full and its set written anew.
 *
 * Outside the run's transaction: the store maps a record's digest to the staging row it
 * produces, true whatever becomes of this run.
 */
export const stageDigested = <K extends EntityKind>(
  client: pg.PoolClient,
  kind: K,
  digests: FeedDigests<EntityRecord[K]>,
  options: {
    readonly districtId: string
    readonly version: string
    readonly bulk: boolean
    readonly progress: (rows: number) => Effect.Effect<void>
  },
  /** The kind's digest set (Digests.ts `openDigestSet`), and its scan when it was scanned already. */
  prepared: { readonly set: DigestSetRef; readonly scan?: DigestScan | undefined }
): Effect.Effect<DigestedStaging, ProviderError | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { set, scan: done } = prepared
    const stage = stageTable(kind)
    const seen = seenTable(kind)
    // The keys of the rows decoded: when none is restored, what the checks need (RepeatedKeys.ts).
    const watched = new RepeatedKeys(SUSPECTS_LISTED)
    const encode = encoder(kind, watched)
    const store = digestTable(kind)
    const columns = ["line", "invalid", "problem", "cleared", "stripped", "status", "source_id", ...stagedColumns(kind).map((c) => c.name), "digest"]
    let scanned = 0
    let decoded = 0
    /**
     * The staging table's first page that may hold a decoded row: the restore's rows come
     * first, the decoded ones are COPYed after them, at its last page or after. The store's
     * write reads from there (a TID range), not the restored rows too (837k of them at 100k
     * students: 0.1 s). Were a decoded row before it, it would only be decoded again next run.
     */
    let decodedFrom = 0

    const copyStatement = `COPY pg_temp.${stage} (${columns.join(", ")}) FROM STDIN`
    /** A record's staging row in COPY text, with its digest. */
    const encodeItem = (item: RawItem<EntityRecord[K]>) => `${encode(item.decode())}\t${digestCopy(item.hi, item.lo)}`
    /** Records read, counted as decoded. */
    const counted = (items: Stream.Stream<RawItem<EntityRecord[K]>, ProviderError>, onChunk?: (chunk: Iterable<RawItem<EntityRecord[K]>>) => void) =>
      items.pipe(Stream.mapChunksEffect((chunk) => {
        onChunk?.(chunk)
        decoded += chunk.length
        return Effect.as(options.progress(scanned + decoded), chunk)
      }))
    /** Decodes and stages the records whose line is wanted, each with its digest. */
    const decode = (wanted: (line: number) => boolean, onChunk?: (chunk: Iterable<RawItem<EntityRecord[K]>>) => void) =>
      copyIn(client, copyStatement, counted(digests.read(wanted), onChunk), encodeItem)

    /**
     * Decodes the records whose line is wanted while Postgres restores the others: Node's
     * work (reading the file again, decoding) and the restore's (a join and an insert of
     * every unchanged row) take turns otherwise, on a machine with a core for each. The
     * rows are held as COPY text until the restore is done (the session runs one statement
     * at a time), up to `DecodedHeldChars`; past it, the rest are decoded and staged after
     * the restore, as they come.
     */
    const decodeWhileRestoring = (wanted: (line: number) => boolean, restore: Effect.Effect<void, SqlError, SqlClient.SqlClient>) =>
      Effect.gen(function*() {
        const budget = yield* DecodedHeldChars
        const held: Array<string> = []
        let chars = 0
        let lastLine = 0
        const restoring = yield* Effect.fork(restore)
        // (Lines come in file order: what is not held is after `lastLine`.)
        yield* counted(digests.read(wanted).pipe(Stream.takeWhile(() => chars <= budget))).pipe(
          Stream.runForEach((item) =>
            Effect.sync(() => {
              const row = encodeItem(item)
              held.push(row)
              chars += row.length
              lastLine = item.line
            })
          ),
          // (The restore finishes whatever becomes of the reading: the session is free after.)
          Effect.ensuring(Fiber.await(restoring))
        )
        yield* Fiber.join(restoring)
        const [pages] = yield* sql.unsafe<{ readonly from: number }>(
          `SELECT greatest(pg_relation_size('pg_temp.${stage}') / current_setting('block_size')::int - 1, 0)::int AS from`
        )
        decodedFrom = pages?.from ?? 0
        if (held.length > 0) yield* copyIn(client, copyStatement, Stream.fromIterable(held), (row) => row)
        if (chars > budget) yield* decode((line) => line > lastLine && wanted(line))
      })

    let scan: DigestScan
    if (set.full !== null) {
      // Every record decoded; the scan's fingerprint taken on the way (the same lines and
      // digests, in the same order, as a scan would list).
      const hash = scanHash(kind, options.version)
      yield* decode(() => true, (chunk) => {
        const batch: Array<number> = []
        for (const item of chunk) batch.push(item.line, item.hi, item.lo)
        hash.update(Uint32Array.from(batch))
      })
      scan = { set, scanned: decoded, fingerprint: hash.digest("hex"), repeats: null }
    } else {
      // 1. scan: every record's line and digest, into the session's seen_<kind>.
      scan = done ?? (yield* scanDigests(client, kind, digests, set, options.version, options.progress))
      scanned = scan.scanned
      // Statistics for the joins below: without them the planner guesses at the temp
      // table's size and may look each digest up by index, one at a time. (Not taken by the
      // scan itself: a run that skips its comparison never joins, Unchanged.ts.)
      yield* sql.unsafe(`ANALYZE pg_temp.${seen}`)

      // 2. look up: the lines whose digest the store lacks, decoded from the source. In a
      // bulk feed the same pass finds the stored digests the feed no longer lists, and drops
      // them (a full join of the scan and the set, in place of two anti-joins each reading
      // both; the store is a cache, true whatever becomes of this run). They are dropped by
      // the row positions the join read, not looked up again in the index: one probe each
      // took 0.49 s for the 10,000 records a 1 % resync removes at 100k students.
      const unknown = new LineSet()
      const lookUp = options.bulk
        ? `WITH j AS MATERIALIZED (
             SELECT s.line, c.at AS gone
             FROM pg_temp.${seen} s FULL JOIN (SELECT ctid AS at, digest FROM ${store} WHERE set_id = ${set.id}) c ON c.digest = s.digest
             WHERE s.digest IS NULL OR c.digest IS NULL),
           dropped AS (
             DELETE FROM ${store} d WHERE d.ctid = ANY (ARRAY(SELECT gone FROM j WHERE gone IS NOT NULL)) AND d.set_id = ${set.id}
             RETURNING 1),
           -- (data-modifying: carried out whether or not the query reads it)
           counted AS (
             UPDATE roster_digest_sets SET entries = entries - (SELECT count(*) FROM dropped), updated_at = now()
             WHERE id = ${set.id} AND EXISTS (SELECT 1 FROM dropped)
             RETURNING 1)
           SELECT line FROM j WHERE line IS NOT NULL`
        : `SELECT s.line FROM pg_temp.${seen} s
           WHERE NOT EXISTS (SELECT 1 FROM ${store} c WHERE c.set_id = ${set.id} AND c.digest = s.digest)`
      yield* copyOut(client, `COPY (${lookUp}) TO STDOUT`, (line) => unknown.add(Number(line))).pipe(
        Effect.withSpan("Digests.lookUp", { attributes: { kind } })
      )
      // 3. restore: every other line's staging row, from the store.
      const expected = scanned - unknown.size
      const restore = Effect.gen(function*() {
        if (expected === 0) return
        const cached = cachedColumns(kind)
        // A stored row the staging table refuses (a cache written by another hand) would put
        // its values in Postgres's message: the run fails with a message of its own, and the
        // next run compares in full.
        const inconsistent = (found: string) =>
          Effect.zipRight(
            clearDigests(kind, set.id),
            Effect.die(new Error(`the stored digests of ${kind} did not restore (${found}): they were discarded, the next run compares in full`))
          )
        const restored = yield* rowsWritten(
          `INSERT INTO pg_temp.${stage} (line, ${cached.join(", ")})
           SELECT s.line, ${cached.map((c) => `c.${c}`).join(", ")}
           FROM pg_temp.${seen} s JOIN ${store} c ON c.set_id = $1 AND c.digest = s.digest`,
          [set.id]
        ).pipe(
          Effect.catchTag("SqlError", () => inconsistent("a stored staging row is unreadable")),
          Effect.withSpan("Digests.restore", { attributes: { kind } })
        )
        // Rows gone between the look-up and the restore: nothing of this run is applied.
        if (restored !== expected) return yield* inconsistent(`${restored} of ${expected} staging rows found`)
      })
      yield* unknown.size === 0 ? restore : decodeWhileRestoring((line) => unknown.has(line), restore)
    }

    // The store for the next run: the new records' staging rows (in digest order: the
    // index is written front to back, not at random — about 2.5 times faster), and the
    // set's count. (The records a bulk feed no longer lists went at the look-up.)
    const cached = cachedColumns(kind)
    yield* sql.withTransaction(Effect.gen(function*() {
      const count = (statement: string) => rowsWritten(statement, [set.id])
      // A digest staged twice (a line repeated in the file) is stored once (DISTINCT ON).
      // The digests decoded are those the look-up did not find (or all of them, into a set
      // just emptied or made), and the district's runs are serialized by its lease, so none
      // is stored yet; still, each is guarded, the cheap way for each case. Into a set just
      // emptied or made: an anti-join (against nothing), sparing ON CONFLICT's speculative
      // insertion of every row (837k digests: 4.1–4.3 → 2.4–2.7 s). The few records a resync
      // decodes, into a full set: ON CONFLICT, one index probe each — an anti-join would read
      // the whole set's index (8,000 digests into a set of 835k: 169 → 49 ms; at 1.2M
      // students it cost the resync seconds).
      const fresh = set.full !== null
      const inserted = decoded === 0 ? 0 : yield* count(
        `INSERT INTO ${store} (set_id, digest, ${cached.join(", ")})
         SELECT DISTINCT ON (digest) $1, digest, ${cached.join(", ")}
         FROM pg_temp.${stage} s
         WHERE digest IS NOT NULL${decodedFrom > 0 ? ` AND ctid >= '(${decodedFrom},0)'::tid` : ""}${fresh ? ` AND NOT EXISTS (SELECT 1 FROM ${store} c WHERE c.set_id = $1 AND c.digest = s.digest)` : ""}
         ORDER BY digest${fresh ? "" : "\n         ON CONFLICT (set_id, digest) DO NOTHING"}`
      )
      // New rows may repeat a stored row's key: the set is no longer known distinct
      // (migrations/0023) until this run's checks find it so.
      if (inserted > 0) {
        yield* sql`UPDATE roster_digest_sets SET entries = entries + ${inserted}, keys_distinct = false, updated_at = now() WHERE id = ${set.id}`
      }
    })).pipe(Effect.withSpan("Digests.write", { attributes: { kind } }))
    const restored = set.full === null ? scanned - decoded : 0
    return {
      decoded,
      restored,
      full: set.full,
      scan,
      keys: {
        setId: set.id,
        restoredDistinct: set.full === null && set.keysDistinct && scan.repeats !== null,
        recheck: scan.repeats ?? [],
        complete: options.bulk,
        // (Rows restored were never seen by the filter: then the lines it reports are not enough.)
        suspects: restored === 0 ? watched.lines : null
      }
    }
  }).pipe(Effect.withSpan("Staging.stageDigested", { attributes: { kind } }))
