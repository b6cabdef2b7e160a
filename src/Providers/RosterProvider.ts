import type { Effect, Scope, Stream } from "effect"
import { Context } from "effect"
import type { District } from "../Domain/District.ts"
import type { DistrictBusy, InvalidDistrict, ModeNotAvailable, ProviderError } from "../Domain/Errors.ts"
import type { EntityKind, EntityRecord } from "../Domain/Roster.ts"
import type { Cursor, ProviderState } from "../Store/Runs.ts"

/** Where a record came from, for findings: a file and line, or a request and position. */
export interface Origin {
  readonly file: string
  readonly line: number
}

/**
 * One record of a feed. A record that fails to decode is not dropped: it is reported
 * as `Invalid`, keeping whatever identity could be read, so the reconcile leaves the
 * stored record as it is instead of treating it as gone.
 */
export type FeedItem<A> =
  | { readonly _tag: "Valid"; readonly record: A; readonly origin: Origin }
  | {
    readonly _tag: "Invalid"
    readonly origin: Origin
    /** The record's source ID, when it could be read. */
    readonly sourceId: string | null
    /** For enrollments, whose identity is the (class, user) pair. */
    readonly classSourceId?: string | null
    readonly userSourceId?: string | null
    /** What is wrong, naming columns and expectations, never values. */
    readonly problem: string
  }

/**
 * `bulk`: the feed is the complete set; anything stored and not in it is gone.
 * `delta`: the feed holds changes only; removals come as `tobedeleted` records.
 */
export type FeedMode = "bulk" | "delta"

export interface Feed<A> {
  readonly mode: FeedMode
  /** Where a reader finds it, for messages: a file name or an endpoint. */
  readonly name: string
  readonly items: Stream.Stream<FeedItem<A>, ProviderError>
  /**
   * Record digests, so the reconcile decodes only records it has not read before
   * (src/Reconcile/Digests.ts). Optional: a provider without them is always decoded in
   * full. Pull `items` or `digests`, not both.
   */
  readonly digests?: FeedDigests<A> | undefined
}

/**
 * A feed's records as digests first, decoded on demand. The reconcile scans the digests,
 * looks them all up in its store at once, then reads only the records it does not have.
 */
export interface FeedDigests<A> {
  /**
   * What the digests depend on besides what the source sent: the mapping's name and
   * version. Bump the version whenever the same record would decode differently (a column
   * read, a default, a normalisation): digests made under another version are not used.
   */
  readonly version: string
  /** Every record's line and digest, nothing decoded: batches of `[line, hi, lo, line, hi, lo, …]`. */
  readonly scan: Stream.Stream<ReadonlyArray<number>, ProviderError>
  /** The records whose line `wanted` says yes to, each with its digest and a way to decode it. */
  readonly read: (wanted: (line: number) => boolean) => Stream.Stream<RawItem<A>, ProviderError>
}

/**
 * A record to decode: its digest (of what the source sent for it, seeded with the feed's
 * digests' `version`), its line, and a way to decode it. `decode` is called at most once.
 */
export interface RawItem<A> {
  readonly hi: number
  readonly lo: number
  readonly line: number
  readonly decode: () => FeedItem<A>
}

export type Feeds = { readonly [K in EntityKind]: Feed<EntityRecord[K]> | null }

/**
 * What a provider hands to the reconcile: one feed per entity kind, or `null` when the
 * source does not provide that kind (an optional file left out): such a kind is left
 * untouched by the run.
 */
export interface RosterSnapshot {
  readonly mode: "full" | "delta"
  /** For the run record and logs: what was read, without secrets. */
  readonly description: string
  readonly feeds: Feeds
  /**
   * Where the provider's change feed stands once this snapshot is applied (Clever: the
   * newest event id, taken *before* a full listing so nothing falls between). Stored in the
   * same transaction as the changes; `undefined` leaves the stored cursor as it is.
   */
  readonly cursor?: Cursor | undefined
  /** Decisions worth telling an operator (a delta that fell back to a full sync, and why). */
  readonly notes?: ReadonlyArray<string> | undefined
}

export type SyncRequest = "full" | "delta" | "auto"

export type SnapshotError = ProviderError | InvalidDistrict | ModeNotAvailable | DistrictBusy

/**
 * The port every roster source implements. The snapshot lives in a scope (open files,
 * HTTP sessions); feeds are pulled in the order of `EntityKinds`, each at most once.
 */
export class RosterProvider extends Context.Tag("rosterd/RosterProvider")<RosterProvider, {
  readonly snapshot: (
    district: District,
    request: SyncRequest,
    state: ProviderState
  ) => Effect.Effect<RosterSnapshot, SnapshotError, Scope.Scope>
  /**
   * One cheap look at the source with the district's settings and credentials (`rosterd
   * doctor`): a line saying what answered (ids, hosts and paths — never a credential).
   */
  readonly probe: (district: District) => Effect.Effect<string, SnapshotError>
}>() {}
