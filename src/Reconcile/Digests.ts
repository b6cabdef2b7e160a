import type { SqlError } from "@effect/sql/SqlError"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type pg from "pg"
import type { EntityKind } from "../Domain/Roster.ts"
import { digestCells } from "../Domain/Digest.ts"
import { copyOut } from "../Store/Copy.ts"
import { stagedColumns } from "./Entities.ts"

/**
 * Record digests: a resync decodes only what changed.
 *
 * A provider that can (the OneRoster CSV provider) hands each record over undecoded, with
 * a 64-bit digest of the cells its mapping reads, seeded with the mapping's version
 * (`RawItem`, src/Providers/RosterProvider.ts). For each district and kind the store keeps
 * the digests of the records the last runs read, each with the **staging row it produced**
 * (`roster_digests`, migrations/0015). At the start of a kind's staging the digests are
 * loaded into a `DigestSet` (typed arrays, 12 bytes a slot); then per record:
 *
 * - digest known → the record is exactly what was read before: it is not decoded, guarded
 *   or encoded; only `(line, digest)` is noted, and after the COPY its staging row is
 *   copied from the store in one statement (`restoreSql`);
 * - digest unknown, or seen a second time in this feed → decoded and staged as always,
 *   and its staging row stored under its digest.
 *
 * The staging table ends up row for row what a full decode would have produced (the line
 * is the record's own): findings, the re-key detection, the district rules, the gate, the
 * diff, counts and change lists run on the same rows and cannot tell the difference. What
 * the digests save is Node's work — parsing aside, the decoding, value guard and COPY
 * encoding of every unchanged record, which was most of a no-op run.
 *
 * The mapping from digest to staging row depends only on the record's cells and on code:
 * it stays true whatever the run does afterwards (a failure, a hold, a dry run), so the
 * store is written outside the run's transaction. Code is covered by the set's `version`:
 * the provider's mapping version, a fingerprint of the staging columns and value guard
 * (`STAGING_VERSION`), and the district's rules (which do not shape a staging row today;
 * they are included so that a rule change is always a full comparison). A set made under
 * another version, or whose rows do not add up to its count and checksum, is not used:
 * the run compares in full and says so in a note, and writes the set anew.
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

const EMPTY = 0
/** Loaded from the store and not (yet) seen in this run. */
const UNSEEN = -1

/**
 * An open-addressing hash set of 64-bit digests (two Uint32Arrays), each slot with a
 * state: empty, loaded-but-unseen, or the line it was seen at. Sized for the district's
 * largest kind (10 million enrollments: about 160 MB at most, for the one kind being
 * staged; a Map of strings would take ten times that).
 */
export class DigestSet {
  private hi: Uint32Array
  private lo: Uint32Array
  private state: Int32Array
  private used = 0

  constructor(expected: number) {
    const capacity = Math.max(64, Math.ceil(expected / 0.7))
    this.hi = new Uint32Array(capacity)
    this.lo = new Uint32Array(capacity)
    this.state = new Int32Array(capacity)
  }

  get size(): number {
    return this.used
  }

  private slot(hi: number, lo: number): number {
    const capacity = this.state.length
    let at = (lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0
    at %= capacity
    while (this.state[at] !== EMPTY && (this.hi[at] !== hi || this.lo[at] !== lo)) {
      at += 1
      if (at === capacity) at = 0
    }
    return at
  }

  private grow() {
    const { hi, lo, state } = this
    const capacity = state.length * 2
    this.hi = new Uint32Array(capacity)
    this.lo = new Uint32Array(capacity)
    this.state = new Int32Array(capacity)
    for (let i = 0; i < state.length; i++) {
      if (state[i] === EMPTY) continue
      const at = this.slot(hi[i]!, lo[i]!)
      this.hi[at] = hi[i]!
      this.lo[at] = lo[i]!
      this.state[at] = state[i]!
    }
  }

  /** A digest from the store. False when it was there already (the store's rows repeat one). */
  load(hi: number, lo: number): boolean {
    return this.put(hi, lo, UNSEEN)
  }

  private put(hi: number, lo: number, state: number): boolean {
    if ((this.used + 1) / this.state.length > 0.8) this.grow()
    const at = this.slot(hi, lo)
    if (this.state[at] !== EMPTY) return false
    this.hi[at] = hi
    this.lo[at] = lo
    this.state[at] = state
    this.used += 1
    return true
  }

  /**
   * A record of this run. True when its digest was loaded and is seen for the first time:
   * its staging row can be restored. False otherwise (new, or a repeat within the feed):
   * decode it; a new digest is added, seen at this line.
   */
  see(hi: number, lo: number, line: number): boolean {
    const at = this.slot(hi, lo)
    const state = this.state[at]!
    if (state === UNSEEN) {
      this.state[at] = line
      return true
    }
    if (state === EMPTY) this.put(hi, lo, -2 - line)
    return false
  }

  /** How many loaded digests were seen: the records to restore. */
  restoredCount(): number {
    let n = 0
    for (let i = 0; i < this.state.length; i++) if (this.state[i]! > 0) n += 1
    return n
  }

  /**
   * The restored records as COPY text for `(line, digest)`, `size` rows a batch, made as
   * they are pulled (10 million rows are never in memory at once).
   */
  *restoredCopy(size: number): Generator<string> {
    let batch: Array<string> = []
    for (let i = 0; i < this.state.length; i++) {
      const state = this.state[i]!
      if (state <= 0) continue
      batch.push(`${state}\t${digestCopy(this.hi[i]!, this.lo[i]!)}`)
      if (batch.length === size) {
        yield batch.join("\n")
        batch = []
      }
    }
    if (batch.length > 0) yield batch.join("\n")
  }

  /** How many loaded digests were not seen: records gone from a bulk feed. */
  unseen(): number {
    let n = 0
    for (let i = 0; i < this.state.length; i++) if (this.state[i] === UNSEEN) n += 1
    return n
  }

  /** Count and checksum of the digests a store holds after this run (`bulk`: only those seen). */
  summary(bulk: boolean): { readonly entries: number; readonly checksum: string } {
    let entries = 0
    const acc = new Checksum()
    for (let i = 0; i < this.state.length; i++) {
      const state = this.state[i]!
      if (state === EMPTY || (bulk && state === UNSEEN)) continue
      entries += 1
      acc.add(this.hi[i]!, this.lo[i]!)
    }
    return { entries, checksum: acc.text() }
  }
}

/** An order-independent checksum of a set of digests (XOR of each half, sum of the low halves). */
class Checksum {
  private x = 0
  private y = 0
  private z = 0
  add(hi: number, lo: number) {
    this.x ^= hi
    this.y ^= lo
    this.z = (this.z + lo) >>> 0
  }
  text(): string {
    return [this.x >>> 0, this.y >>> 0, this.z].map((n) => n.toString(16).padStart(8, "0")).join("-")
  }
}

/** A digest in COPY text for a bytea column. */
export const digestCopy = (hi: number, lo: number): string =>
  `\\\\x${hi.toString(16).padStart(8, "0")}${lo.toString(16).padStart(8, "0")}`

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`

export type LoadOutcome =
  | { readonly _tag: "Loaded"; readonly set: DigestSet }
  | { readonly _tag: "Full"; readonly set: DigestSet; readonly why: "none" | "version" | "inconsistent" }

/**
 * The district's digests of a kind, if they were made under `version` and add up to their
 * count and checksum. Otherwise an empty set, the reason, and the kind's stored digests
 * deleted (they are rewritten by this run).
 */
export const loadDigests = (
  client: pg.PoolClient,
  districtId: string,
  kind: EntityKind,
  version: string
): Effect.Effect<LoadOutcome, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [meta] = yield* sql<{ readonly version: string; readonly entries: string; readonly checksum: string }>`
      SELECT version, entries::text, checksum FROM roster_digest_sets WHERE district_id = ${districtId} AND kind = ${kind}`
    const full = (why: "none" | "version" | "inconsistent") =>
      Effect.as(clearDigests(districtId, kind), { _tag: "Full", set: new DigestSet(0), why } as const)
    if (meta === undefined) return yield* full("none")
    if (meta.version !== version) return yield* full("version")
    const expected = Number(meta.entries)
    const set = new DigestSet(expected)
    const sum = new Checksum()
    let bad = 0
    yield* copyOut(
      client,
      `COPY (SELECT digest FROM roster_digests WHERE district_id = ${literal(districtId)} AND kind = ${literal(kind)}) TO STDOUT`,
      (line) => {
        // `\\x` and 16 hex digits
        if (line.length !== 19) {
          bad += 1
          return
        }
        const hi = parseInt(line.slice(3, 11), 16)
        const lo = parseInt(line.slice(11, 19), 16)
        if (!set.load(hi, lo)) bad += 1
        sum.add(hi, lo)
      }
    )
    if (bad > 0 || set.size !== expected || sum.text() !== meta.checksum) return yield* full("inconsistent")
    return { _tag: "Loaded", set } as const
  }).pipe(Effect.withSpan("Digests.load", { attributes: { kind } }))

/** Deletes a district's digests of one kind (or of every kind). */
export const clearDigests = (districtId: string, kind?: EntityKind) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (kind === undefined) {
      yield* sql`DELETE FROM roster_digest_sets WHERE district_id = ${districtId}`
      yield* sql`DELETE FROM roster_digests WHERE district_id = ${districtId}`
    } else {
      yield* sql`DELETE FROM roster_digest_sets WHERE district_id = ${districtId} AND kind = ${kind}`
      yield* sql`DELETE FROM roster_digests WHERE district_id = ${districtId} AND kind = ${kind}`
    }
  })

/** What a note says for each reason of a full comparison. */
export const fullComparisonReason = {
  none: "no digests stored",
  version: "the digests were made under another mapping, staging or rules version",
  inconsistent: "the stored digests did not add up (count or checksum): discarded"
} as const

/** Whether the district has a run before this one that got as far as its apply (so digests were expected). */
export const hasEarlierRun = (districtId: string, runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly any: boolean }>`
      SELECT EXISTS (SELECT 1 FROM sync_runs WHERE district_id = ${districtId} AND id < ${runId}
                     AND status IN ('succeeded', 'held', 'dry-run')) AS any`
    return row?.any ?? false
  })
