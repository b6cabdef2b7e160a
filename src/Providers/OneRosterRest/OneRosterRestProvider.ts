import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Chunk, Clock, Effect, Either, Option, Schema, Stream } from "effect"
import type { District } from "../../Domain/District.ts"
import { InvalidDistrict, ProviderError } from "../../Domain/Errors.ts"
import type { EntityKind, EntityRecord } from "../../Domain/Roster.ts"
import { noStoredCredentials, readCredential, type StoredCredentials } from "../Credentials.ts"
import type { ProviderBudgets, ProviderHttp, RetryPolicy } from "../Http.ts"
import { makeProviderHttp } from "../Http.ts"
import type { Feed, FeedItem, Feeds, ProviderState, RosterSnapshot, SyncRequest } from "../RosterProvider.ts"
import { encodeQuery, sign } from "./OAuth1.ts"
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
 * deliver that many records: one that ends early fails the run before anything is
 * applied. A server that silently caps `limit` is followed at its own page size.
 *
 * **Delta** runs ask each collection for `dateLastModified>'<start of the last successful
 * run, minus a margin>'`: changed records and `tobedeleted` ones. Records deleted outright
 * are invisible to a filter, so full runs still come on their schedule.
 */

export const OneRosterRestSettings = Schema.Struct({
  baseUrl: Schema.String,
  auth: Schema.Literal("oauth1", "bearer"),
  keyFile: Schema.optional(Schema.String),
  keyEnv: Schema.optional(Schema.String),
  secretFile: Schema.optional(Schema.String),
  secretEnv: Schema.optional(Schema.String),
  bearerFile: Schema.optional(Schema.String),
  bearerEnv: Schema.optional(Schema.String),
  pageSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 10_000)), { default: () => 1000 }),
  /** Requests in flight at once for this district. */
  concurrency: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 5)), { default: () => 5 }),
  /** ClassLink publishes no limit; stay polite. */
  requestsPerMinute: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 600 }),
  fullSyncEveryHours: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 24 })
})
export type OneRosterRestSettings = typeof OneRosterRestSettings.Type

const API = "/ims/oneroster/v1p1"
/** A delta asks from a little before the last run started: clocks differ; replays are harmless. */
const WATERMARK_MARGIN_MS = 5 * 60_000

interface Collection<K extends EntityKind> {
  readonly kind: K
  readonly path: string
  readonly key: string
  readonly decode: (raw: unknown) => Either.Either<{ readonly record: EntityRecord[K] } | { readonly problem: string; readonly sourceId: string | null }>
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
      const id = typeof raw === "object" && raw !== null && typeof (raw as { sourcedId?: unknown }).sourcedId === "string"
        ? (raw as { sourcedId: string }).sourcedId
        : null
      if (Either.isLeft(decoded)) return Either.right({ problem: "the record does not have the fields OneRoster requires", sourceId: id })
      const mapped = map(decoded.right)
      return Either.right("record" in mapped ? mapped : { problem: mapped.problem, sourceId: id })
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

/** Every record of a collection, in order, as feed items. */
const listCollection = <K extends EntityKind>(
  http: ProviderHttp,
  spec: Collection<K>,
  settings: OneRosterRestSettings,
  filter: string | null
): Stream.Stream<FeedItem<EntityRecord[K]>, ProviderError> => {
  const Page = pageOf(spec.key)
  const endpoint = `${API}/${spec.path}`
  const url = (offset: number, limit: number) =>
    `${endpoint}?${encodeQuery([["limit", String(limit)], ["offset", String(offset)], ...(filter === null ? [] : [["filter", filter] as const])])}`
  const fetchPage = (offset: number, limit: number) =>
    http.getJsonWithHeaders(url(offset, limit), Page).pipe(Effect.map(({ headers, value }) => ({
      records: (value as Record<string, ReadonlyArray<unknown>>)[spec.key]!,
      total: headers["x-total-count"] === undefined ? null : Number(headers["x-total-count"])
    })))

  const toItems = (records: ReadonlyArray<unknown>, offset: number) => {
    const out: Array<FeedItem<EntityRecord[K]>> = []
    records.forEach((raw, index) => {
      const origin = { file: `GET ${endpoint}`, line: offset + index + 1 }
      const decoded = Either.getOrThrow(spec.decode(raw))
      out.push("record" in decoded ? { _tag: "Valid", record: decoded.record, origin } : { _tag: "Invalid", origin, sourceId: decoded.sourceId, problem: decoded.problem })
    })
    return Chunk.unsafeFromArray(out)
  }

  const truncated = (got: number, total: number) =>
    new ProviderError({ reason: "Truncated", message: `the OneRoster server listed ${got} of the ${total} ${spec.path} it announced (X-Total-Count); the listing ended early` })

  return Stream.unwrap(Effect.gen(function*() {
    const first = yield* fetchPage(0, settings.pageSize)
    const firstChunk = toItems(first.records, 0)
    if (first.total !== null && Number.isFinite(first.total)) {
      const total = first.total
      // A server that caps `limit` below ours is followed at its own page size.
      const step = first.records.length > 0 && first.records.length < settings.pageSize && first.records.length < total
        ? first.records.length
        : settings.pageSize
      const offsets: Array<number> = []
      for (let offset = first.records.length; offset < total; offset += step) offsets.push(offset)
      let received = first.records.length
      return Stream.fromChunk(firstChunk).pipe(
        Stream.concat(
          Stream.fromIterable(offsets).pipe(
            Stream.mapEffect((offset) => Effect.map(fetchPage(offset, step), (page) => ({ offset, page })), { concurrency: settings.concurrency }),
            Stream.mapChunks(Chunk.flatMap(({ offset, page }) => {
              received += page.records.length
              return toItems(page.records, offset)
            }))
          )
        ),
        Stream.concat(Stream.suspend(() => (received < total ? Stream.fail(truncated(received, total)) : Stream.empty)))
      )
    }
    // No total: page on until an empty page.
    return Stream.fromChunk(firstChunk).pipe(
      Stream.concat(
        first.records.length === 0 ? Stream.empty : Stream.paginateChunkEffect(first.records.length, (offset) =>
          fetchPage(offset, settings.pageSize).pipe(Effect.map((page) => [
            toItems(page.records, offset),
            page.records.length === 0 ? (Option.none() as Option.Option<number>) : Option.some(offset + page.records.length)
          ] as const)))
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
}

/** The district's settings and credentials and an HTTP session: the start of every run, and `rosterd doctor`'s probe. */
const connect = (dependencies: OneRosterRestDependencies, district: District) =>
  Effect.gen(function*() {
    const settings = yield* Schema.decodeUnknown(OneRosterRestSettings)(district.settings).pipe(
      Effect.mapError(() => new InvalidDistrict({ district: district.id, message: "a oneroster-rest district needs baseUrl and auth settings" }))
    )
    const base = settings.baseUrl.replace(/\/+$/, "")
    const stored = dependencies.credentials ?? noStoredCredentials
    const { authorize, credential } = settings.auth === "bearer"
      ? yield* Effect.map(
        readCredential(stored, district.id, "bearer", { file: settings.bearerFile, env: settings.bearerEnv }, "OneRoster bearer token"),
        (token) => ({
          authorize: (request: HttpClientRequest.HttpClientRequest) => Effect.succeed(HttpClientRequest.bearerToken(request, token.value)),
          credential: `${base}:bearer:${token.source}`
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
          credential: `${base}:oauth:${key.source}`
        }
      })
    const budget = yield* dependencies.budgets.forCredential("oneroster-rest", credential, settings.requestsPerMinute)
    const http = yield* makeProviderHttp({ name: "the OneRoster server", provider: "oneroster-rest", baseUrl: base, budget, retry: dependencies.retry, authorize }).pipe(
      Effect.provideService(HttpClient.HttpClient, dependencies.client)
    )
    return { http, settings, base }
  })

/** `rosterd doctor`: the credentials are accepted for one small page of orgs. */
export const oneRosterRestProbe = (dependencies: OneRosterRestDependencies) => (district: District) =>
  Effect.gen(function*() {
    const { http, settings } = yield* connect(dependencies, district)
    yield* http.getJson(`${API}/orgs?limit=1`, Schema.Unknown)
    return `the ${settings.auth === "bearer" ? "bearer token" : "OAuth key and secret"} open ${settings.baseUrl.replace(/\/+$/, "")}${API}/orgs`
  })

export const oneRosterRestSnapshot = (dependencies: OneRosterRestDependencies) =>
(district: District, request: SyncRequest, state: ProviderState) =>
  Effect.gen(function*() {
    const { base, http, settings } = yield* connect(dependencies, district)

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
    const feed = <K extends EntityKind>(kind: K): Feed<EntityRecord[K]> => ({
      mode,
      name: `GET ${API}/${COLLECTIONS[kind].path}`,
      items: listCollection(http, COLLECTIONS[kind] as unknown as Collection<K>, settings, filter)
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
      description: `OneRoster 1.1 REST ${base} (${settings.auth === "bearer" ? "bearer token" : "OAuth 1.0a"})` +
        (filter === null ? ", full listing" : `, changes since ${filter.slice("dateLastModified>".length)}`),
      feeds,
      notes
    } satisfies RosterSnapshot
  })
