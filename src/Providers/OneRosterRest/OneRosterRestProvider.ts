import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Chunk, Clock, Effect, Either, Option, Schema, Stream } from "effect"
import type { District } from "../../Domain/District.ts"
import { InvalidDistrict, ProviderError } from "../../Domain/Errors.ts"
import type { EntityKind, EntityRecord } from "../../Domain/Roster.ts"
import { noStoredCredentials, readCredential, type StoredCredentials } from "../Credentials.ts"
import type { ProviderBudgets, ProviderHttp, RetryPolicy } from "../Http.ts"
import { BaseUrl, makeProviderHttp } from "../Http.ts"
import { collectionCaps, defaultProviderLimits, lastCountOf, makeCollectionGuard, parseCountHeader } from "../Limits.ts"
import type { ProviderLimits } from "../Limits.ts"
import type { CountKind } from "../../Domain/RunCounts.ts"
import type { ProviderState } from "../../Store/Runs.ts"
import type { Feed, FeedItem, Feeds, RosterSnapshot, SyncRequest } from "../RosterProvider.ts"
import { encodeQuery, sign } from "./OAuth1.ts"
import { type ClientCredentials, makeTokenCache, oauth2Authorization, type TokenCache } from "./OAuth2.ts"
import { UserRecord12, userOfJson } from "./OneRoster12Mapping.ts"
import * as Map from "./OneRosterMapping.ts"
import {
  AcademicSessionRecord,
  ClassRecord,
  CourseRecord,
  DemographicsRecord,
  EnrollmentRecord,
  OrgRecord,
  pageOf,
  UserRecord
} from "./OneRosterWire.ts"

/**
 * The OneRoster 1.1 REST provider (ClassLink's Roster Server, or its bearer proxy), over
 * `<base>/ims/oneroster/v1p1`.
 *
 * Each collection is read with `limit`/`offset` to the end. With an `X-Total-Count`, the
 * pages after the first are fetched up to 5 at a time (in order), and the listing must
 * deliver that many records: one that ends early (an empty page before the total) fails the
 * run before anything is applied. A server that silently caps `limit` is followed at its own
 * page size. Bounded (src/Providers/Limits.ts): offsets are generated one at a time; a total
 * that is not a plain integer, or beyond the collection's record cap, fails the run before a
 * second request; pages, records and bytes are counted against their caps, and a page that
 * repeats the one before (a server ignoring `offset`) stops the listing.
 *
 * **Delta** runs ask each collection for `dateLastModified>'<start of the last successful
 * run, minus a margin>'`: changed records and `tobedeleted` ones. Records deleted outright
 * are invisible to a filter, so full runs still come on their schedule.
 */

export const OneRosterRestSettings = Schema.Struct({
  baseUrl: BaseUrl,
  auth: Schema.Literal("oauth1", "bearer", "oauth2"),
  keyFile: Schema.optional(Schema.String),
  keyEnv: Schema.optional(Schema.String),
  secretFile: Schema.optional(Schema.String),
  secretEnv: Schema.optional(Schema.String),
  bearerFile: Schema.optional(Schema.String),
  bearerEnv: Schema.optional(Schema.String),
  /** OAuth 2.0 client credentials (OAuth2.ts): the token endpoint, the client, an optional scope. */
  tokenUrl: Schema.optional(BaseUrl),
  clientIdFile: Schema.optional(Schema.String),
  clientIdEnv: Schema.optional(Schema.String),
  clientSecretFile: Schema.optional(Schema.String),
  clientSecretEnv: Schema.optional(Schema.String),
  scope: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  /** Where the token request carries the client secret: HTTP Basic (RFC 6749's default) or the form body. */
  tokenAuth: Schema.optionalWith(Schema.Literal("basic", "body"), { default: () => "basic" as const }),
  /** The OneRoster version the server speaks: 1.1 (`/ims/oneroster/v1p1`) or 1.2 (`/ims/oneroster/rostering/v1p2`, OneRoster12Mapping.ts). */
  version: Schema.optionalWith(Schema.Literal("1.1", "1.2"), { default: () => "1.1" as const }),
  pageSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 10_000)), { default: () => 1000 }),
  /** Requests in flight at once for this district. */
  concurrency: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 5)), { default: () => 5 }),
  /** ClassLink publishes no limit; stay polite. */
  requestsPerMinute: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 600 }),
  fullSyncEveryHours: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 24 })
})
export type OneRosterRestSettings = typeof OneRosterRestSettings.Type

const API = "/ims/oneroster/v1p1"
const API_12 = "/ims/oneroster/rostering/v1p2"
const apiOf = (settings: { readonly version: "1.1" | "1.2" }) => (settings.version === "1.2" ? API_12 : API)
/** A delta asks from a little before the last run started: clocks differ; replays are harmless. */
const WATERMARK_MARGIN_MS = 5 * 60_000

interface Collection<K extends EntityKind> {
  readonly kind: K
  readonly path: string
  readonly key: string
  readonly decode: (raw: unknown) => Either.Either<{ readonly record: EntityRecord[K] } | Unreadable>
}

/** A record that did not decode: what identity could still be read, and why. */
interface Unreadable {
  readonly problem: string
  readonly sourceId: string | null
  /** Enrollments: the (class, user) pair that is their identity, when readable. */
  readonly classSourceId?: string | null
  readonly userSourceId?: string | null
}

/** `raw[key].sourcedId` when it is a string (a GUIDRef's id). */
const refId = (raw: unknown, key: string): string | null => {
  const ref = typeof raw === "object" && raw !== null && Object.hasOwn(raw, key) ? (raw as Record<string, unknown>)[key] : undefined
  const id = typeof ref === "object" && ref !== null && Object.hasOwn(ref, "sourcedId") ? (ref as { readonly sourcedId?: unknown }).sourcedId : undefined
  return typeof id === "string" ? id : null
}

const collection = <K extends EntityKind, A, I>(
  kind: K,
  path: string,
  key: string,
  schema: Schema.Schema<A, I>,
  map: (record: A) => { readonly record: EntityRecord[K] } | { readonly problem: string }
): Collection<K> => {
  const decode = Schema.decodeUnknownEither(schema)
  return {
    kind,
    path,
    key,
    decode: (raw) => {
      const decoded = decode(raw)
      const id = typeof raw === "object" && raw !== null && Object.hasOwn(raw, "sourcedId") && typeof (raw as { sourcedId?: unknown }).sourcedId === "string"
        ? (raw as { sourcedId: string }).sourcedId
        : null
      // An enrollment that does not decode keeps its (class, user) identity, so the stored
      // membership is held as it is rather than ended as missing.
      const identity = kind === "enrollments" ? { classSourceId: refId(raw, "class"), userSourceId: refId(raw, "user") } : {}
      if (Either.isLeft(decoded)) return Either.right({ problem: "the record does not have the fields OneRoster requires", sourceId: id, ...identity })
      const mapped = map(decoded.right)
      return Either.right("record" in mapped ? mapped : { problem: mapped.problem, sourceId: id, ...identity })
    }
  }
}

const COLLECTIONS = {
  orgs: collection("orgs", "orgs", "orgs", OrgRecord, Map.org),
  terms: collection("terms", "academicSessions", "academicSessions", AcademicSessionRecord, Map.term),
  courses: collection("courses", "courses", "courses", CourseRecord, Map.course),
  classes: collection("classes", "classes", "classes", ClassRecord, Map.classOf),
  users: collection("users", "users", "users", UserRecord, Map.user),
  demographics: collection("demographics", "demographics", "demographics", DemographicsRecord, Map.demographic),
  enrollments: collection("enrollments", "enrollments", "enrollments", EnrollmentRecord, Map.enrollment)
} as const

/** OneRoster 1.2: users carry `roles[]`, `primaryOrg`, preferred names and profiles; the rest reads as 1.1. */
const COLLECTIONS_12 = { ...COLLECTIONS, users: collection("users", "users", "users", UserRecord12, userOfJson) } as const

/** Which count of the last full sync a collection's cap grows from. */
const COUNT_OF: { readonly [K in EntityKind]: CountKind } = {
  orgs: "schools",
  terms: "terms",
  courses: "courses",
  classes: "classes",
  users: "users",
  demographics: "users",
  enrollments: "enrollments"
}

/** The sourcedIds of a page, as read (for the guard's repeat check). */
const idsOf = (records: ReadonlyArray<unknown>) =>
  records.map((raw) => {
    const id = typeof raw === "object" && raw !== null ? (raw as { readonly sourcedId?: unknown }).sourcedId : undefined
    return typeof id === "string" ? id : undefined
  })

/** Every record of a collection, in order, as feed items. */
const listCollection = <K extends EntityKind>(
  http: ProviderHttp,
  spec: Collection<K>,
  settings: OneRosterRestSettings,
  filter: string | null,
  limits: ProviderLimits,
  lastCount: number | undefined
): Stream.Stream<FeedItem<EntityRecord[K]>, ProviderError> => {
  const Page = pageOf(spec.key)
  const endpoint = `${apiOf(settings)}/${spec.path}`
  const listing = `GET ${endpoint}`
  const url = (offset: number, limit: number) =>
    `${endpoint}?${encodeQuery([["limit", String(limit)], ["offset", String(offset)], ...(filter === null ? [] : [["filter", filter] as const])])}`
  const fetchPage = (offset: number, limit: number) =>
    http.getPage(url(offset, limit), Page).pipe(Effect.map(({ bytes, headers, value }) => ({
      offset,
      limit,
      records: (value as Record<string, ReadonlyArray<unknown>>)[spec.key]!,
      total: headers["x-total-count"],
      bytes
    })))
  type Fetched = Effect.Effect.Success<ReturnType<typeof fetchPage>>

  const toItems = (records: ReadonlyArray<unknown>, offset: number) => {
    const out: Array<FeedItem<EntityRecord[K]>> = []
    records.forEach((raw, index) => {
      const origin = { file: listing, line: offset + index + 1 }
      const decoded = Either.getOrThrow(spec.decode(raw))
      out.push("record" in decoded ? { _tag: "Valid", record: decoded.record, origin } : { _tag: "Invalid", origin, ...decoded })
    })
    return Chunk.unsafeFromArray(out)
  }

  /**
   * More records than `limit` asked for: the offsets that follow would skip (or repeat) records,
   * and a full listing would then deactivate what it skipped. Refused, unless the first page is
   * the whole listing (a server that ignores `limit` on a small collection).
   */
  const overlong = (page: { readonly offset: number; readonly limit: number; readonly records: ReadonlyArray<unknown> }) =>
    new ProviderError({
      reason: "Malformed",
      message: `the OneRoster server answered ${listing} at offset ${page.offset} with ${page.records.length} records for limit=${page.limit}: ` +
        `it does not keep to limit, so its offsets cannot be trusted; nothing was applied`
    })

  const truncated = (got: number, total: number) =>
    new ProviderError({ reason: "Truncated", message: `the OneRoster server listed ${got} of the ${total} ${spec.path} it announced (X-Total-Count); the listing ended early` })

  return Stream.unwrap(Effect.gen(function*() {
    const first = yield* fetchPage(0, settings.pageSize)
    const total = parseCountHeader(first.total)
    if (total === "invalid") {
      return yield* new ProviderError({
        reason: "Malformed",
        message: `the OneRoster server's X-Total-Count for ${listing} is not a non-negative integer; nothing was applied`
      })
    }
    // A server that caps `limit` below ours is followed at its own page size.
    const step = first.records.length > 0 && first.records.length < settings.pageSize && (total === null || first.records.length < total)
      ? first.records.length
      : settings.pageSize
    const caps = collectionCaps(limits, lastCount, step)
    // A total past the cap fails before a second request: the offsets it implies are never made.
    if (total !== null && total > caps.records) {
      return yield* new ProviderError({
        reason: "TooLarge",
        message: `the OneRoster server announces more ${spec.path} for ${listing} (X-Total-Count) than the cap of ${caps.records.toLocaleString("en-US")} records (${caps.recordsBasis}); nothing was applied`
      })
    }
    const guard = makeCollectionGuard("the OneRoster server", listing, caps)
    const check = (page: Fetched) =>
      page.records.length > page.limit && !(page.offset === 0 && page.records.length === total)
        ? Effect.fail(overlong(page))
        : Effect.as(guard.page(`${listing} at offset ${page.offset}`, idsOf(page.records), page.bytes), page)
    yield* check(first)
    const firstItems = Stream.fromChunk(toItems(first.records, 0))

    if (total !== null) {
      if (first.records.length === 0 && total > 0) return yield* truncated(0, total)
      let received = first.records.length
      // Offsets one at a time, as they are needed (a stream, never a list of them all).
      const offsets = Stream.iterate(first.records.length, (offset) => offset + step).pipe(Stream.takeWhile((offset) => offset < total))
      return firstItems.pipe(
        Stream.concat(
          offsets.pipe(
            Stream.mapEffect((offset) => fetchPage(offset, step), { concurrency: settings.concurrency }),
            Stream.mapEffect((page) =>
              Effect.gen(function*() {
                yield* check(page)
                // An empty page before the announced total: the listing ended early (or the total lies).
                if (page.records.length === 0) return yield* truncated(received, total)
                received += page.records.length
                return page
              })
            ),
            Stream.mapChunks(Chunk.flatMap((page) => toItems(page.records, page.offset)))
          )
        ),
        Stream.concat(Stream.suspend(() => (received < total ? Stream.fail(truncated(received, total)) : Stream.empty)))
      )
    }
    // No total: page on until an empty page (or a cap, or a page that repeats the last).
    return firstItems.pipe(
      Stream.concat(
        first.records.length === 0 ? Stream.empty : Stream.paginateChunkEffect(first.records.length, (offset) =>
          fetchPage(offset, settings.pageSize).pipe(
            Effect.flatMap(check),
            Effect.map((page) => [
              toItems(page.records, offset),
              page.records.length === 0 ? (Option.none() as Option.Option<number>) : Option.some(offset + page.records.length)
            ] as const)
          )).pipe(
            // The next page on its way while this one is decoded and staged (each depends on
            // the one before: without a total, offsets cannot be fetched side by side).
            Stream.bufferChunks({ capacity: 2 })
          )
      )
    )
  }))
}

export interface OneRosterRestDependencies {
  readonly client: HttpClient.HttpClient
  readonly budgets: ProviderBudgets
  readonly retry: RetryPolicy
  /** Credentials stored encrypted in the database (`key`, `secret`, `bearer`), preferred to the settings' files and variables. */
  readonly credentials?: StoredCredentials | undefined
  /** Response and listing caps (`rosterd.providers.*`); the defaults when not given. */
  readonly limits?: ProviderLimits | undefined
}

const AUTH_NAMES = { oauth1: "OAuth 1.0a", bearer: "bearer token", oauth2: "OAuth 2.0 client credentials" } as const

/** OAuth 2.0: the token URL and the client id and secret (stored as `key` and `secret`, like OAuth 1.0a's). */
const clientCredentials = (stored: StoredCredentials, district: District, settings: OneRosterRestSettings, base: string) =>
  Effect.gen(function*() {
    const invalid = (message: string) => new InvalidDistrict({ district: district.id, message })
    if (settings.tokenUrl === undefined) return yield* invalid("an oauth2 oneroster-rest district needs tokenUrl (--token-url)")
    // The secret travels to the token URL: never in clear when the API itself is reached over https.
    if (base.startsWith("https:") && settings.tokenUrl.startsWith("http:")) {
      return yield* invalid("tokenUrl is http while baseUrl is https: the client secret would travel in clear")
    }
    const id = yield* readCredential(stored, district.id, "key", { file: settings.clientIdFile, env: settings.clientIdEnv }, "OAuth 2.0 client id")
    const secret = yield* readCredential(stored, district.id, "secret", { file: settings.clientSecretFile, env: settings.clientSecretEnv }, "OAuth 2.0 client secret")
    const credentials: ClientCredentials = {
      tokenUrl: settings.tokenUrl,
      clientId: id.value,
      clientSecret: secret.value,
      scope: settings.scope ?? null,
      tokenAuth: settings.tokenAuth
    }
    return { credentials, source: id.source }
  })

/** The district's settings and credentials and an HTTP session: the start of every run, and `rosterd doctor`'s probe. */
const connect = (dependencies: OneRosterRestDependencies, tokens: TokenCache, district: District) =>
  Effect.gen(function*() {
    const settings = yield* Schema.decodeUnknown(OneRosterRestSettings)(district.settings).pipe(
      Effect.mapError(() => new InvalidDistrict({ district: district.id, message: "a oneroster-rest district needs baseUrl and auth settings" }))
    )
    const base = settings.baseUrl.replace(/\/+$/, "")
    const stored = dependencies.credentials ?? noStoredCredentials
    const { authorize, credential, renew } = settings.auth === "oauth2"
      ? yield* Effect.map(clientCredentials(stored, district, settings, base), ({ credentials, source }) => ({
        ...oauth2Authorization(tokens, credentials),
        credential: `${base}:oauth2:${source}`
      }))
      : settings.auth === "bearer"
      ? yield* Effect.map(
        readCredential(stored, district.id, "bearer", { file: settings.bearerFile, env: settings.bearerEnv }, "OneRoster bearer token"),
        (token) => ({
          authorize: (request: HttpClientRequest.HttpClientRequest) => Effect.succeed(HttpClientRequest.bearerToken(request, token.value)),
          credential: `${base}:bearer:${token.source}`,
          renew: undefined
        })
      )
      : yield* Effect.gen(function*() {
        const key = yield* readCredential(stored, district.id, "key", { file: settings.keyFile, env: settings.keyEnv }, "OAuth consumer key")
        const secret = yield* readCredential(stored, district.id, "secret", { file: settings.secretFile, env: settings.secretEnv }, "OAuth consumer secret")
        const consumerKey = key.value
        const consumerSecret = secret.value
        // Signed per request: each gets a fresh nonce and timestamp, over its final URL.
        return {
          authorize: (request: HttpClientRequest.HttpClientRequest) =>
            Effect.sync(() =>
              HttpClientRequest.setHeader(request, "authorization", sign({ consumerKey, consumerSecret, method: request.method, url: new URL(request.url) }).header)
            ),
          credential: `${base}:oauth:${key.source}`,
          renew: undefined
        }
      })
    const budget = yield* dependencies.budgets.forCredential("oneroster-rest", credential, settings.requestsPerMinute)
    const limits = dependencies.limits ?? defaultProviderLimits
    const http = yield* makeProviderHttp({
      name: "the OneRoster server",
      provider: "oneroster-rest",
      baseUrl: base,
      budget,
      retry: dependencies.retry,
      maxResponseBytes: limits.maxResponseBytes,
      authorize,
      ...(renew === undefined ? {} : { renew })
    }).pipe(Effect.provideService(HttpClient.HttpClient, dependencies.client))
    return { http, settings, base, limits }
  })

/** `rosterd doctor`: the credentials are accepted for one small page of orgs. */
export const oneRosterRestProbe = (dependencies: OneRosterRestDependencies, tokens: TokenCache = makeTokenCache(dependencies)) => (district: District) =>
  Effect.gen(function*() {
    const { http, settings } = yield* connect(dependencies, tokens, district)
    yield* http.getJson(`${apiOf(settings)}/orgs?limit=1`, Schema.Unknown)
    const what = settings.auth === "bearer" ? "bearer token" : settings.auth === "oauth2" ? "OAuth 2.0 client credentials (a token from the token URL)" : "OAuth key and secret"
    return `the ${what} open ${settings.baseUrl.replace(/\/+$/, "")}${apiOf(settings)}/orgs`
  })

/** `tokens`: OAuth 2.0 tokens live as long as the provider, so the daemon's runs share them until they expire. */
export const oneRosterRestSnapshot = (dependencies: OneRosterRestDependencies, tokens: TokenCache = makeTokenCache(dependencies)) =>
(district: District, request: SyncRequest, state: ProviderState) =>
  Effect.gen(function*() {
    const { base, http, limits, settings } = yield* connect(dependencies, tokens, district)

    const now = yield* Clock.currentTimeMillis
    const wantsDelta = request === "delta" ||
      (request === "auto" && state.lastFullSyncAt !== null && now - state.lastFullSyncAt.getTime() < settings.fullSyncEveryHours * 3_600_000)
    const notes: Array<string> = []
    let filter: string | null = null
    if (wantsDelta) {
      if (state.lastSuccessAt === null) notes.push("delta fell back to a full sync: no earlier successful run to start from")
      else filter = `dateLastModified>'${new Date(state.lastSuccessAt.getTime() - WATERMARK_MARGIN_MS).toISOString().replace(/\.\d{3}Z$/, "Z")}'`
    }
    const mode = filter === null ? "bulk" : "delta"
    const collections = settings.version === "1.2" ? COLLECTIONS_12 : COLLECTIONS
    const feed = <K extends EntityKind>(kind: K): Feed<EntityRecord[K]> => ({
      mode,
      name: `GET ${apiOf(settings)}/${collections[kind].path}`,
      items: listCollection(http, collections[kind] as unknown as Collection<K>, settings, filter, limits, lastCountOf(state.lastFullCounts, COUNT_OF[kind]))
    })
    const feeds: Feeds = {
      orgs: feed("orgs"),
      terms: feed("terms"),
      courses: feed("courses"),
      classes: feed("classes"),
      users: feed("users"),
      demographics: feed("demographics"),
      enrollments: feed("enrollments")
    }
    return {
      mode: mode === "bulk" ? "full" : "delta",
      description: `OneRoster ${settings.version} REST ${base} (${AUTH_NAMES[settings.auth]})` +
        (filter === null ? ", full listing" : `, changes since ${filter.slice("dateLastModified>".length)}`),
      feeds,
      notes
    } satisfies RosterSnapshot
  })
