import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { EntityKind } from "../Domain/Roster.ts"
import { digestCells } from "../Domain/Digest.ts"
import { digestTable } from "../Store/DigestTables.ts"
import { stagedColumns } from "./Entities.ts"

/**
 * Record digests: a resync decodes only what changed.
 *
 * A provider that can (the OneRoster CSV provider) offers its feeds as digests first
 * (`FeedDigests`, src/Providers/RosterProvider.ts): a 64-bit digest of each record as the
 * source sent it, seeded with the mapping's version, read without parsing the record. For
 * each district and kind the store keeps the digests of the records earlier runs read,
 * each with the **staging row it produced**, column for column (`roster_digests_<kind>`,
 * migrations/0019 and 0022; src/Store/DigestTables.ts).
 * A kind is staged in three steps (DigestStaging.ts `stageDigested`, called by StageRun.ts):
 *
 * 1. **scan**: every record's `(line, digest)` is COPYed into the session's `seen_<kind>`;
 *    Node holds nothing of it (flat memory at any size);
 * 2. **look up**: one anti-join finds the lines whose digest the store does not have; the
 *    provider reads the file again and decodes those records only, which are staged as
 *    always, each with its digest;
 * 3. **restore**: one join copies the staging rows of every other line from the store.
 *
 * The staging table ends up row for row what a full decode would have produced (each row
 * with its own line; a record repeated in the file is restored at each of its lines):
 * findings, the re-key detection, the district rules, the gate, the diff, counts and
 * change lists run on the same rows and cannot tell the difference. What the digests save
 * is Node's work — parsing, decoding, the value guard and COPY encoding of every
 * unchanged record, which was most of a no-op run.
 *
 * The mapping from digest to staging row depends only on the record and on code: it stays
 * true whatever the run does afterwards (a failure, a hold, a dry run), so the store is
 * written outside the run's transaction. Code is covered by the set's `version`: the
 * provider's mapping version, a fingerprint of the staging columns and value guard
 * (`STAGING_REVISION`), and the district's rules (which do not shape a staging row today;
 * they are included so that a rule change is always a full comparison). A set made under
 * another version is emptied: the run compares in full and says so in a note. A digest
 * missing from the store (an UNLOGGED table emptied by a crash) only means its record is
 * decoded again.
 *
 * `rosterd.sync.digests: false` (or a run's `digests: false`) turns all of this off: every
 * record is decoded, and the store is neither read nor written.
 */

/**
 * Bump with any change to how a decoded record becomes a staging row that the column list
 * does not show: the value guard (src/Domain/Values.ts), the COPY encoding, the staging columns.
 */
const STAGING_REVISION = "staging/1"

/** The part of a set's version that rosterd's own code decides, per kind. */
export const stagingVersion = (kind: EntityKind): string =>
  `${STAGING_REVISION}:${digestCells(0, stagedColumns(kind).map((c) => `${c.name} ${c.type}`)).hi.toString(16)}`

/** A set's version: the provider's mapping, rosterd's staging, the district's rules. */
export const setVersion = (kind: EntityKind, mapping: string, rules: unknown): string =>
  `${mapping}|${stagingVersion(kind)}|rules:${digestCells(0, [JSON.stringify(rules ?? null)]).hi.toString(16)}`

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))
const hex32 = (n: number) => HEX[n >>> 24]! + HEX[(n >>> 16) & 255]! + HEX[(n >>> 8) & 255]! + HEX[n & 255]!

/** A digest in COPY text for a bytea column (a table of hex pairs: ten million of these per large scan). */
export const digestCopy = (hi: number, lo: number): string => "\\\\x" + hex32(hi) + hex32(lo)

/** Why a kind is compared in full: no set yet, or a set made under another version. */
export type FullComparison = "none" | "version"

export interface DigestSetRef {
  readonly id: number
  /** null: the set's digests can be used. */
  readonly full: FullComparison | null
  /**
   * The set's rows have distinct keys (`keys_distinct`, migrations/0023): rows restored from
   * it cannot repeat each other's source IDs (Findings.ts reads only the decoded rows' keys).
   */
  readonly keysDistinct: boolean
  /** How many digests the set holds. */
  readonly entries: number
}

/**
 * The district's digest set of a kind, made under `version`. A set made under another
 * version is emptied and takes the new version (its digests would map records to staging
 * rows the current code does not make); a missing one is created empty.
 */
export const openDigestSet = (districtId: string, kind: EntityKind, version: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [found] = yield* sql<{ readonly id: number; readonly version: string; readonly keysDistinct: boolean; readonly entries: number }>`
      SELECT id, version, keys_distinct AS "keysDistinct", entries::float8 AS entries
      FROM roster_digest_sets WHERE district_id = ${districtId} AND kind = ${kind}`
    if (found !== undefined && found.version === version) {
      return { id: found.id, full: null, keysDistinct: found.keysDistinct, entries: found.entries } satisfies DigestSetRef
    }
    if (found !== undefined) {
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe(`DELETE FROM ${digestTable(kind)} WHERE set_id = $1`, [found.id])
        yield* sql`UPDATE roster_digest_sets SET version = ${version}, entries = 0, keys_distinct = false, updated_at = now()
                   WHERE id = ${found.id}`
      }))
      return { id: found.id, full: "version", keysDistinct: false, entries: 0 } satisfies DigestSetRef
    }
    const [made] = yield* sql<{ readonly id: number }>`
      INSERT INTO roster_digest_sets (district_id, kind, version) VALUES (${districtId}, ${kind}, ${version})
      ON CONFLICT (district_id, kind) DO UPDATE SET version = excluded.version, entries = 0, keys_distinct = false, updated_at = now()
      RETURNING id`
    return { id: made!.id, full: "none", keysDistinct: false, entries: 0 } satisfies DigestSetRef
  }).pipe(Effect.withSpan("Digests.open", { attributes: { kind } }))

/**
 * What the duplicate checks may assume of a kind's staged keys (Findings.ts): from its
 * digest set (`keys_distinct`, migrations/0023), and from the rows staging decoded.
 */
export interface StagedKeys {
  /** The kind's digest set; null when it was staged without digests. */
  readonly setId: number | null
  /**
   * The rows restored from the set cannot repeat each other's keys (the set's rows are
   * distinct), but at the lines in `recheck`: a repeated key involves a row decoded by this
   * run (`digest IS NOT NULL`) or one of those lines.
   */
  readonly restoredDistinct: boolean
  /** Lines whose digest an earlier line of the scan may have listed (RepeatedDigests.ts). */
  readonly recheck: ReadonlyArray<number>
  /**
   * The set holds exactly the staged rows' digests once staged (a complete feed): when the
   * checks find no repeated key, the set is marked distinct for the next run.
   */
  readonly complete: boolean
  /**
   * Every staged row was decoded by this run (none restored), its keys watched: the lines
   * whose key may repeat an earlier line's (RepeatedKeys.ts). Null when not known (rows
   * restored, or too many lines).
   */
  readonly suspects: ReadonlyArray<number> | null
}

/** At most this many lines of a scan are listed for the checks (RepeatedDigests.ts); past it, they read every row. */
export const LINES_LISTED = 100_000

/**
 * Marks sets whose staged rows the checks found without a repeated key (in the run's
 * transaction: a run that rolls back leaves them unmarked, which only means the next run's
 * checks read every row). Adding rows to a set clears the mark (DigestStaging.ts).
 */
export const markKeysDistinct = (setIds: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (setIds.length === 0) return
    yield* sql`UPDATE roster_digest_sets SET keys_distinct = true WHERE id = ANY (${setIds}) AND NOT keys_distinct`
  })

/** Empties a district's digest set of one kind: its next run compares that kind in full. */
export const clearDigests = (kind: EntityKind, setId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql.unsafe(`DELETE FROM ${digestTable(kind)} WHERE set_id = $1`, [setId])
      // Another version than any code makes: the next run says why it compares in full.
      yield* sql`UPDATE roster_digest_sets SET version = 'discarded', entries = 0, keys_distinct = false, updated_at = now() WHERE id = ${setId}`
    }))
  })

/** What a note says for each reason of a full comparison. */
export const fullComparisonReason: { readonly [K in FullComparison]: string } = {
  none: "no digests stored",
  version: "the digests were made under another mapping, staging or rules version (or discarded)"
}

/** Whether the district has a run before this one that got as far as its apply (so digests were expected). */
export const hasEarlierRun = (districtId: string, runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly any: boolean }>`
      SELECT EXISTS (SELECT 1 FROM sync_runs WHERE district_id = ${districtId} AND id < ${runId}
                     AND status IN ('succeeded', 'held', 'dry-run')) AS any`
    return row?.any ?? false
  })
