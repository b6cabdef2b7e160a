import { Config, ConfigError, Effect, Either } from "effect"
import { ProviderError } from "../Domain/Errors.ts"
import type { CountKind } from "../Domain/RunCounts.ts"

/**
 * How much a REST source may hand one run, so a broken or hostile server fails the run
 * instead of taking the daemon down (issue 14, "bounded providers").
 *
 * - **Per response**: at most `maxResponseBytes`, counted while the body streams in
 *   (src/Providers/Http.ts); nothing beyond it is read or buffered.
 * - **Per collection** (one listing: Clever's users, OneRoster's enrollments, …):
 *   - records: `recordsGrowth` × the count of that kind in the district's last successful
 *     full run + `recordsMargin`, never more than `maxRecords` (which is also the cap of a
 *     first sync, when there is no count yet);
 *   - pages: what those records fill at the page size the server serves, plus a few;
 *   - bytes: `maxCollectionBytes` over all its responses.
 *
 * A cap crossed fails the run (`ProviderError`, reason `TooLarge`) before anything is
 * applied, naming the listing, the cap and the setting that raises it.
 */

export interface ProviderLimits {
  readonly maxResponseBytes: number
  readonly maxRecords: number
  readonly recordsGrowth: number
  readonly recordsMargin: number
  readonly maxCollectionBytes: number
}

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

export const defaultProviderLimits: ProviderLimits = {
  maxResponseBytes: 64 * MiB,
  maxRecords: 50_000_000,
  recordsGrowth: 10,
  recordsMargin: 10_000,
  maxCollectionBytes: 16 * GiB
}

const UNITS: Readonly<Record<string, number>> = { "": 1, b: 1, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3, kib: KiB, mib: MiB, gib: GiB }

/** `67108864`, `64 MiB`, `500 MB`: a byte count. */
export const parseByteSize = (text: string): number | undefined => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  if (match === null) return undefined
  const unit = UNITS[match[2]!.toLowerCase()]
  if (unit === undefined) return undefined
  const bytes = Math.floor(Number(match[1]) * unit)
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined
}

const byteSize = (name: string) =>
  Config.string(name).pipe(Config.mapOrFail((text) => {
    const bytes = parseByteSize(text)
    return bytes === undefined
      ? Either.left(ConfigError.InvalidData([name], `expected a size in bytes, such as 67108864 or "64 MiB"`))
      : Either.right(bytes)
  }))

/** `rosterd.providers.*` (`ROSTERD_PROVIDERS_MAX_RESPONSE_BYTES`, …). */
export const ProviderLimitsConfig: Config.Config<ProviderLimits> = Config.all({
  maxResponseBytes: byteSize("maxResponseBytes").pipe(Config.withDefault(defaultProviderLimits.maxResponseBytes)),
  maxRecords: Config.integer("maxRecords").pipe(
    Config.validate({ message: "expected a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(defaultProviderLimits.maxRecords)
  ),
  recordsGrowth: Config.number("recordsGrowth").pipe(
    Config.validate({ message: "expected a number of at least 1", validation: (n) => n >= 1 }),
    Config.withDefault(defaultProviderLimits.recordsGrowth)
  ),
  recordsMargin: Config.integer("recordsMargin").pipe(
    Config.validate({ message: "expected a non-negative integer", validation: (n) => n >= 0 }),
    Config.withDefault(defaultProviderLimits.recordsMargin)
  ),
  maxCollectionBytes: byteSize("maxCollectionBytes").pipe(Config.withDefault(defaultProviderLimits.maxCollectionBytes))
}).pipe(Config.nested("providers"), Config.nested("rosterd"))

/** `64 MiB`, `1.5 GiB`, `512 bytes`: for messages. */
export const formatBytes = (bytes: number): string =>
  bytes >= GiB ? `${+(bytes / GiB).toFixed(1)} GiB` : bytes >= MiB ? `${+(bytes / MiB).toFixed(1)} MiB` : bytes >= KiB ? `${+(bytes / KiB).toFixed(1)} KiB` : `${bytes} bytes`

const count = (n: number) => n.toLocaleString("en-US")

export interface CollectionCaps {
  readonly records: number
  readonly pages: number
  readonly bytes: number
  /** How the record cap came about and the setting that raises it, for messages. */
  readonly recordsBasis: string
  /** The same for the page cap. */
  readonly pagesBasis: string
}

/** A collection's caps, from the district's last full count of its kind (none: a first sync) and the page size served. */
export const collectionCaps = (limits: ProviderLimits, lastCount: number | undefined, pageSize: number): CollectionCaps => {
  const grown = lastCount === undefined ? Infinity : Math.ceil(limits.recordsGrowth * lastCount) + limits.recordsMargin
  const records = Math.min(limits.maxRecords, grown)
  const recordsBasis = records === limits.maxRecords
    ? `rosterd.providers.maxRecords${lastCount === undefined ? ", the cap while there is no earlier full sync to compare with" : ""}`
    : `${limits.recordsGrowth} × the ${count(lastCount!)} of the last full sync + ${count(limits.recordsMargin)}; rosterd.providers.recordsGrowth and recordsMargin raise it`
  // Pages: what the records fill at the page size served, plus a few for short last pages.
  const pages = Math.ceil(records / Math.max(1, pageSize)) + 10
  const pagesBasis = `what ${count(records)} records fill at ${count(pageSize)} a page; ${recordsBasis}`
  return { records, pages, bytes: limits.maxCollectionBytes, recordsBasis, pagesBasis }
}

/** The last full count of a kind, when the store has one. */
export const lastCountOf = (counts: Readonly<Partial<Record<CountKind, number>>> | null, kind: CountKind): number | undefined =>
  counts === null ? undefined : counts[kind]

/**
 * Counts one listing's pages, records and bytes against its caps, and notices a server that
 * hands the same page again (it ignores `offset`, or its cursor does not move): each page is
 * checked in order, before its records go on.
 */
export interface CollectionGuard {
  /** `ids`: the page's record ids, as read (for the repeat check); `bytes`: the response's size. */
  readonly page: (where: string, ids: ReadonlyArray<string | undefined>, bytes: number) => Effect.Effect<void, ProviderError>
  readonly records: () => number
}

export const makeCollectionGuard = (source: string, listing: string, caps: CollectionCaps): CollectionGuard => {
  let pages = 0
  let records = 0
  let bytes = 0
  let previous: ReadonlyArray<string | undefined> = []
  let previousWhere = ""
  const tooLarge = (message: string) => Effect.fail(new ProviderError({ reason: "TooLarge", message: `${source}: ${listing} ${message}; nothing was applied` }))
  return {
    records: () => records,
    page: (where, ids, size) =>
      Effect.suspend(() => {
        pages++
        records += ids.length
        bytes += size
        if (records > caps.records) return tooLarge(`lists more than ${count(caps.records)} records (${caps.recordsBasis})`)
        if (pages > caps.pages) {
          return tooLarge(`goes on past ${count(caps.pages)} pages (${caps.pagesBasis})`)
        }
        if (bytes > caps.bytes) return tooLarge(`sent more than ${formatBytes(caps.bytes)} (rosterd.providers.maxCollectionBytes)`)
        const repeated = ids.length > 0 && ids.length === previous.length && ids.every((id, i) => id !== undefined && id === previous[i])
        if (repeated) {
          return Effect.fail(
            new ProviderError({
              reason: "Malformed",
              message: `${source}: ${where} holds the same ${count(ids.length)} records as the page before it (${previousWhere}): the server does not move through the listing; nothing was applied`
            })
          )
        }
        previous = ids
        previousWhere = where
        return Effect.void
      })
  }
}

/**
 * A count header (`X-Total-Count`): `null` when absent, a number when it is a plain
 * non-negative integer, `"invalid"` otherwise (`1e12`, `-1`, `0x10`, `12abc`, two values,
 * an empty string — `Number()` would read some of those as numbers).
 */
export const parseCountHeader = (value: string | undefined): number | null | "invalid" => {
  if (value === undefined) return null
  const trimmed = value.trim()
  if (!/^\d{1,16}$/.test(trimmed)) return "invalid"
  const n = Number(trimmed)
  return Number.isSafeInteger(n) ? n : "invalid"
}

/** Query parameters by which a next link moves through a listing. */
const CURSORS = ["starting_after", "ending_before", "offset", "cursor", "page", "after"] as const

/**
 * Checks that a server's `next` link moves on from the page that carried it: not the same
 * URL, not a page already read (a loop), no cursor left where it was, no offset that did not
 * grow. `seen` holds the pages read so far (path and sorted query). The link is never put
 * in the message (it is the server's text); the page that carried it is.
 */
export const checkAdvance = (source: string, from: URL, next: URL, seen: Set<string>): Either.Either<void, ProviderError> => {
  const where = pageKey(from)
  const fail = (why: string) =>
    Either.left(new ProviderError({ reason: "Malformed", message: `${source}: the next link of ${truncate(where)} ${why}; a listing that does not move on is stopped, nothing was applied` }))
  if (next.href === from.href) return fail("points to the same page")
  for (const name of CURSORS) {
    const before = from.searchParams.get(name)
    const after = next.searchParams.get(name)
    if (before === null || after === null) continue
    if (after === before) return fail(`keeps the same ${name}`)
    if (name === "offset" && /^\d+$/.test(before) && /^\d+$/.test(after) && Number(after) <= Number(before)) return fail("does not move the offset forward")
  }
  if (seen.has(pageKey(next))) return fail("points back to a page already read")
  return Either.void
}

/** A page's identity for loop detection: path and sorted query. */
export const pageKey = (url: URL): string => {
  const params = [...url.searchParams].sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : x > y ? 1 : 0) : a < b ? -1 : 1))
  return `${url.pathname}?${new URLSearchParams(params).toString()}`
}

/** Server-provided text in messages is kept short. */
export const truncate = (text: string, max = 200) => (text.length > max ? `${text.slice(0, max)}…` : text)
