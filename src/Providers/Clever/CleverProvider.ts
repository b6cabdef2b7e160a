import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Chunk, Clock, Duration, Effect, Either, Option, Schema, Stream } from "effect"
import { staffRoleOf } from "../../Domain/Roles.ts"
import type { District } from "../../Domain/District.ts"
import { InvalidDistrict, ProviderError } from "../../Domain/Errors.ts"
import type { Demographic, Enrollment, Org, User } from "../../Domain/Roster.ts"
import type { Fetched, ProviderBudgets, ProviderHttp, RetryPolicy } from "../Http.ts"
import { noStoredCredentials, readCredential, type StoredCredentials } from "../Credentials.ts"
import { BaseUrl, makeProviderHttp } from "../Http.ts"
import { checkAdvance, collectionCaps, defaultProviderLimits, formatBytes, lastCountOf, makeCollectionGuard, pageKey } from "../Limits.ts"
import type { CollectionGuard, ProviderLimits } from "../Limits.ts"
import type { CountKind } from "../../Domain/RunCounts.ts"
import type { ProviderState } from "../../Store/Runs.ts"
import type { Feed, FeedItem, Feeds, RosterSnapshot, SyncRequest } from "../RosterProvider.ts"
import { makeSpool, type Spool } from "../Spool.ts"
import { cleverDeltaFeeds } from "./CleverEvents.ts"
import * as Map from "./CleverMapping.ts"
import { CleverCourse, CleverDistrict, CleverEvent, CleverSchool, CleverSection, CleverTerm, CleverUser, nextLink, Page } from "./CleverWire.ts"

/**
 * The Clever provider (Data API v3.0 + Events).
 *
 * **Full**: the district, then every list (schools, terms, courses, sections, users) paged
 * by following `links` rel `next` to the end — a `next` must move on (not the same page, not
 * the same `starting_after`, not a page already read) and stay on the district's origin, and
 * each list stays under its caps (src/Providers/Limits.ts). Enrollments come from section membership and
 * birth dates from users: both are spooled to disk while their listing streams and read
 * back as their own feeds, so each list is fetched once. Before listing, the newest event
 * id is taken as the cursor: events during the listing are replayed by the next delta
 * (snapshots make that harmless).
 *
 * **Delta**: the events after the cursor, reduced to the latest snapshot per record, as
 * delta feeds. It falls back to a full sync — and says why in the run record — when there
 * is no cursor, when the cursor is older than the events window allows (Clever keeps 30
 * days; we stop at 25), when Clever does not know the cursor, or when the events are too
 * many to be worth replaying.
 */

export const CleverSettings = Schema.Struct({
  districtId: Schema.NonEmptyTrimmedString,
  tokenFile: Schema.optional(Schema.String),
  tokenEnv: Schema.optional(Schema.String),
  baseUrl: Schema.optionalWith(BaseUrl, { default: () => "https://api.clever.com" }),
  pageSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 10_000)), { default: () => 1000 }),
  /** Half of Clever's 1,200 per minute per token, leaving room for the platform's own calls. */
  requestsPerMinute: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 600 }),
  /** A delta run becomes a full one when the last full sync is older than this (hours). */
  fullSyncEveryHours: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 24 })
})
export type CleverSettings = typeof CleverSettings.Type

/** Events are kept 30 days; a cursor older than this is not trusted. */
export const CURSOR_WINDOW = Duration.days(25)
/** More events than this in one delta: a full sync is cheaper and certain. */
export const MAX_DELTA_EVENTS = 100_000
/**
 * Events are held in memory until reduced: past this many bytes of event pages a delta is
 * not worth it either (and a server padding its events cannot grow the process).
 */
export const MAX_DELTA_EVENT_BYTES = 256 * 1024 * 1024

const API = "/v3.0"

/** One record of a page decoded leniently: a record that does not decode is a finding. */
const decodeRecord = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema)
  return (raw: unknown): Either.Either<A, string | null> => {
    const result = decode(raw)
    if (Either.isRight(result)) return Either.right(result.right)
    const id = typeof raw === "object" && raw !== null && typeof (raw as { id?: unknown }).id === "string" ? (raw as { id: string }).id : null
    return Either.left(id)
  }
}

/** The record id of a page item, when it has one (for the guard's repeat check). */
const itemId = (item: { readonly data: unknown }): string | undefined => {
  const id = typeof item.data === "object" && item.data !== null ? (item.data as { readonly id?: unknown }).id : undefined
  return typeof id === "string" ? id : undefined
}

/**
 * Walks a listing by its `next` links: each page is counted by `guard` (caps, a page that
 * repeats the one before), and each `next` must stay on the district's origin and move on.
 */
const walk = (http: ProviderHttp, first: string, guard: CollectionGuard) => {
  const seen = new Set<string>()
  return (url: string | URL) =>
    Effect.gen(function*() {
      const page = yield* http.getPage(url, Page)
      const where = pageKey(page.url)
      seen.add(where)
      yield* guard.page(`GET ${where}`, page.value.data.map(itemId), page.bytes)
      const link = nextLink(page.value)
      if (link === undefined) return { page: page.value, next: undefined }
      const next = yield* http.link(page.url, link)
      yield* checkAdvance("Clever", page.url, next, seen)
      return { page: page.value, next }
    }).pipe(Effect.withSpan("Clever.page", { attributes: { list: first } }))
}

/**
 * Pages fetched ahead of the one being read: the next page is on its way (the server making
 * it, the network carrying it) while this one is decoded and staged. A page holds at most
 * `pageSize` records (and is bounded in bytes): two of them are little memory.
 */
export const PAGES_AHEAD = 2

/** Every record of a list, page by page, as raw values. */
const listPages = (http: ProviderHttp, first: string, guard: CollectionGuard) => {
  const step = walk(http, first, guard)
  return Stream.paginateChunkEffect(first as string | URL | undefined, (url) =>
    url === undefined
      ? Effect.succeed([Chunk.empty<readonly [unknown, number]>(), Option.none<string | URL | undefined>()] as const)
      : step(url).pipe(
        Effect.map(({ next, page }) =>
          [
            Chunk.unsafeFromArray(page.data.map((item, index) => [item.data, index] as const)),
            next === undefined ? Option.none() : Option.some(next as string | URL | undefined)
          ] as const
        )
      )).pipe(Stream.bufferChunks({ capacity: PAGES_AHEAD }))
}

/** Which count of the last full sync a list's cap grows from. */
const COUNT_OF: Readonly<Record<string, CountKind>> = { schools: "schools", terms: "terms", courses: "courses", sections: "classes", users: "users" }

/** A list as feed items of one kind, with `origin` naming the endpoint and the record's position. */
const listFeed = <A, I, R>(
  context: CleverContext,
  endpoint: string,
  schema: Schema.Schema<A, I>,
  toItems: (record: A, origin: { file: string; line: number }) => ReadonlyArray<FeedItem<R>>
): Stream.Stream<FeedItem<R>, ProviderError> => {
  const decode = decodeRecord(schema)
  const pageSize = context.settings.pageSize
  let position = 0
  const caps = collectionCaps(context.limits, lastCountOf(context.lastFullCounts, COUNT_OF[endpoint]!), pageSize)
  return Stream.suspend(() => listPages(context.http, `${API}/${endpoint}?limit=${pageSize}`, makeCollectionGuard("Clever", `GET ${API}/${endpoint}`, caps))).pipe(
    Stream.mapChunks((chunk) => {
      const out: Array<FeedItem<R>> = []
      for (const [raw] of chunk) {
        position++
        const origin = { file: `GET ${API}/${endpoint}`, line: position }
        const decoded = decode(raw)
        if (Either.isRight(decoded)) out.push(...toItems(decoded.right, origin))
        else out.push({ _tag: "Invalid", origin, sourceId: decoded.left, problem: "the record does not have the fields Clever documents" })
      }
      return Chunk.unsafeFromArray(out)
    })
  )
}

const valid = <A>(record: A, origin: { file: string; line: number }): FeedItem<A> => ({ _tag: "Valid", record, origin })

export interface CleverContext {
  readonly http: ProviderHttp
  readonly settings: CleverSettings
  readonly district: District
  /** The Clever district's own record, from `/districts`. */
  readonly name: string | null
  readonly limits: ProviderLimits
  /** What the last full sync read, per kind: the base of each list's caps. */
  readonly lastFullCounts: ProviderState["lastFullCounts"]
}

/** The newest event id (the bootstrap cursor), `""` when there is none yet, `null` when events are not enabled. */
const newestEvent = (http: ProviderHttp) =>
  http.getJsonOrNotFound(`${API}/events?ending_before=last&limit=1`, Page).pipe(
    Effect.map((page) => {
      if (page === null) return null
      const ids = page.data.flatMap((item) => {
        const id = (item.data as { id?: unknown } | null)?.id
        return typeof id === "string" ? [id] : []
      })
      return ids.length === 0 ? "" : ids.sort().at(-1)!
    })
  )

/** Passes a stream's chunks on after writing what its mapping set aside (`pending`) to `spool`. */
const spoolAlong = <A, S>(stream: Stream.Stream<A, ProviderError>, spool: Spool<S>, pending: Array<S>) =>
  stream.pipe(Stream.mapChunksEffect((chunk) => spool.append(pending.splice(0)).pipe(Effect.as(chunk))))

const fullSnapshot = (context: CleverContext, notes: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const { http, settings } = context
    const now = yield* Clock.currentTimeMillis
    const cursor = yield* newestEvent(http)

    // Memberships come inside sections, birth dates inside users: set aside per page, spooled.
    const memberships = yield* makeSpool<FeedItem<Enrollment>>("enrollments")
    const pendingMemberships: Array<FeedItem<Enrollment>> = []
    const birthDates = yield* makeSpool<FeedItem<Demographic>>("demographics")
    const pendingBirthDates: Array<FeedItem<Demographic>> = []

    const orgs: Stream.Stream<FeedItem<Org>, ProviderError> = Stream.make(
      valid(Map.districtOrg(settings.districtId, context.name), { file: `GET ${API}/districts`, line: 1 })
    ).pipe(Stream.concat(listFeed(context, "schools", CleverSchool, (school, origin) => [valid(Map.schoolOrg(school), origin)])))

    const classes = listFeed(context, "sections", CleverSection, (section, origin) => {
      const record = Map.sectionClass(section)
      if (record === undefined) return [{ _tag: "Invalid", origin, sourceId: section.id, problem: "the section has no school" }]
      for (const member of Map.sectionMembers(section)) {
        pendingMemberships.push(valid(Map.enrollment(section.id, record.schoolSourceId, member), origin))
      }
      return [valid(record, origin)]
    })

    const staffRole = staffRoleOf(context.district.rules.staff)
    const users = listFeed(context, "users", CleverUser, (record, origin): Array<FeedItem<User>> => {
      const mapped = Map.user(record, "active", staffRole)
      if (mapped === null) return []
      const dob = Map.demographic(record)
      if (dob === undefined) {
        pendingBirthDates.push({ _tag: "Invalid", origin, sourceId: record.id, problem: `field "roles.student.dob": expected a date in M/D/YYYY form` })
      } else if (dob !== null) {
        pendingBirthDates.push(valid(dob, origin))
      }
      return [valid(mapped, origin)]
    })

    const terms = listFeed(context, "terms", CleverTerm, (record, origin) => {
      const mapped = Map.term(record)
      return mapped === undefined
        ? [{ _tag: "Invalid", origin, sourceId: record.id, problem: "start_date or end_date is not a date" }]
        : [valid(mapped, origin)]
    })

    const bulk = <A>(name: string, items: Stream.Stream<FeedItem<A>, ProviderError>): Feed<A> => ({ mode: "bulk", name, items })
    const feeds: Feeds = {
      orgs: bulk(`GET ${API}/schools`, orgs),
      terms: bulk(`GET ${API}/terms`, terms),
      courses: bulk(`GET ${API}/courses`, listFeed(context, "courses", CleverCourse, (record, origin) => [valid(Map.course(record), origin)])),
      classes: bulk(`GET ${API}/sections`, spoolAlong(classes, memberships, pendingMemberships)),
      users: bulk(`GET ${API}/users`, spoolAlong(users, birthDates, pendingBirthDates)),
      // Read back only after the listings above: feeds are pulled in order.
      demographics: bulk(`GET ${API}/users (dob)`, birthDates.items),
      enrollments: bulk(`GET ${API}/sections (members)`, memberships.items)
    }
    return {
      mode: "full",
      description: `Clever district ${settings.districtId} (${settings.baseUrl}), full listing`,
      feeds,
      ...(cursor === null ? {} : { cursor: { value: cursor, takenAt: new Date(now) } }),
      notes: cursor === null ? [...notes, "Clever events are not enabled for this app: every run is a full sync"] : notes
    } satisfies RosterSnapshot
  })

/** What the Clever provider needs from the process: an HTTP client and the shared request budgets. */
export interface CleverDependencies {
  readonly client: HttpClient.HttpClient
  readonly budgets: ProviderBudgets
  readonly retry: RetryPolicy
  /** Credentials stored encrypted in the database, preferred to `tokenFile`/`tokenEnv`. */
  readonly credentials?: StoredCredentials | undefined
  /** Response and listing caps (`rosterd.providers.*`); the defaults when not given. */
  readonly limits?: ProviderLimits | undefined
}

/**
 * The district's settings and token, an HTTP session, and the check that the token's
 * district is the one configured (`GET /districts`): the start of every run, and all of
 * `rosterd doctor`'s probe.
 */
const connect = (dependencies: CleverDependencies, district: District, lastFullCounts: ProviderState["lastFullCounts"] = null) =>
  Effect.gen(function*() {
    const settings = yield* Schema.decodeUnknown(CleverSettings)(district.settings).pipe(
      Effect.mapError(() => new InvalidDistrict({ district: district.id, message: "a clever district needs the districtId setting (and a token: stored, or tokenFile or tokenEnv)" }))
    )
    const { value: token } = yield* readCredential(
      dependencies.credentials ?? noStoredCredentials,
      district.id,
      "token",
      { file: settings.tokenFile, env: settings.tokenEnv },
      "Clever token"
    )
    const budget = yield* dependencies.budgets.forCredential("clever", token, settings.requestsPerMinute)
    const limits = dependencies.limits ?? defaultProviderLimits
    const http = yield* makeProviderHttp({
      name: "Clever",
      provider: "clever",
      baseUrl: settings.baseUrl,
      budget,
      retry: dependencies.retry,
      maxResponseBytes: limits.maxResponseBytes,
      authorize: (request) => Effect.succeed(HttpClientRequest.bearerToken(request, token))
    }).pipe(Effect.provideService(HttpClient.HttpClient, dependencies.client))

    // The token's district must be the one configured.
    const districts = yield* http.getJson(`${API}/districts`, Page)
    const own = districts.data.flatMap((item) => Option.toArray(Schema.decodeUnknownOption(CleverDistrict)(item.data)))
    const match = own.find((d) => d.id === settings.districtId)
    if (match === undefined) {
      return yield* new InvalidDistrict({
        district: district.id,
        message: `the token does not give access to Clever district ${settings.districtId}${own.length > 0 ? ` (it belongs to ${own.map((d) => d.id).join(", ")})` : ""}`
      })
    }
    const context: CleverContext = { http, settings, district, name: match.name ?? null, limits, lastFullCounts }
    return context
  })

/** `rosterd doctor`: the token opens the configured district (one request). */
export const cleverProbe = (dependencies: CleverDependencies) => (district: District) =>
  Effect.map(connect(dependencies, district), (context) => `the token opens Clever district ${context.settings.districtId} (${context.settings.baseUrl})`)

export const cleverSnapshot = (dependencies: CleverDependencies) => (district: District, request: SyncRequest, state: ProviderState) =>
  Effect.gen(function*() {
    const context = yield* connect(dependencies, district, state.lastFullCounts)
    const { http, settings } = context

    const now = yield* Clock.currentTimeMillis
    const wantsDelta = request === "delta" ||
      (request === "auto" && state.lastFullSyncAt !== null &&
        now - state.lastFullSyncAt.getTime() < settings.fullSyncEveryHours * 3_600_000)
    if (!wantsDelta) return yield* fullSnapshot(context, [])
    if (state.cursor === null) return yield* fullSnapshot(context, ["delta fell back to a full sync: no event cursor yet"])
    if (now - state.cursor.takenAt.getTime() > Duration.toMillis(CURSOR_WINDOW)) {
      return yield* fullSnapshot(context, [
        `delta fell back to a full sync: the event cursor is from ${state.cursor.takenAt.toISOString()}, older than the ${Duration.format(CURSOR_WINDOW)} Clever's events can be trusted for`
      ])
    }
    const events = yield* fetchEvents(http, state.cursor.value, settings.pageSize)
    if (events._tag === "Unknown") return yield* fullSnapshot(context, ["delta fell back to a full sync: Clever no longer knows the event cursor"])
    if (events._tag === "TooMany") {
      return yield* fullSnapshot(context, [`delta fell back to a full sync: more than ${MAX_DELTA_EVENTS} events since the cursor`])
    }
    if (events._tag === "TooBig") {
      return yield* fullSnapshot(context, [`delta fell back to a full sync: the events since the cursor are more than ${formatBytes(MAX_DELTA_EVENT_BYTES)}`])
    }
    return {
      mode: "delta",
      description: `Clever district ${settings.districtId} (${settings.baseUrl}), ${events.events.length} events`,
      feeds: cleverDeltaFeeds(events.events, staffRoleOf(district.rules.staff)),
      cursor: { value: events.events.at(-1)?.id ?? state.cursor.value, takenAt: new Date(now) },
      notes: []
    } satisfies RosterSnapshot
  })

type EventsResult =
  | { readonly _tag: "Events"; readonly events: ReadonlyArray<CleverEvent> }
  | { readonly _tag: "Unknown" }
  | { readonly _tag: "TooMany" }
  | { readonly _tag: "TooBig" }

/**
 * The events after `cursor` (`""`: all of them), in order, up to MAX_DELTA_EVENTS and
 * MAX_DELTA_EVENT_BYTES (beyond either, a full sync instead). The same guards as the lists:
 * every `next` stays on the origin and moves on; pages are capped (empty pages that never end
 * stop too) and a page repeating the one before fails the run.
 */
const fetchEvents = (http: ProviderHttp, cursor: string, pageSize: number): Effect.Effect<EventsResult, ProviderError> =>
  Effect.gen(function*() {
    const decode = Schema.decodeUnknownEither(CleverEvent)
    const events: Array<CleverEvent> = []
    const seen = new Set<string>()
    // Counts and bytes past their bounds mean a full sync instead (below); pages that go on
    // without events, or repeat, fail.
    const guard = makeCollectionGuard("Clever", `GET ${API}/events`, {
      records: Infinity,
      bytes: Infinity,
      pages: Math.ceil(MAX_DELTA_EVENTS / pageSize) + 10,
      recordsBasis: "",
      pagesBasis: `what ${MAX_DELTA_EVENTS} events fill at ${pageSize} a page, past which a full sync is cheaper`
    })
    let bytes = 0
    let url: string | URL | undefined = `${API}/events?limit=${pageSize}${cursor === "" ? "" : `&starting_after=${encodeURIComponent(cursor)}`}`
    let first = true
    while (url !== undefined) {
      const page: Fetched<Page> | null = yield* http.getPageOrNotFound(url, Page)
      if (page === null) {
        if (first) return { _tag: "Unknown" } as const
        return yield* new ProviderError({ reason: "Truncated", message: `Clever: ${pageKey(url as URL)} vanished while listing events` })
      }
      first = false
      const where = pageKey(page.url)
      seen.add(where)
      bytes += page.bytes
      if (bytes > MAX_DELTA_EVENT_BYTES) return { _tag: "TooBig" } as const
      yield* guard.page(`GET ${where}`, page.value.data.map(itemId), page.bytes)
      for (const item of page.value.data) {
        const event = decode(item.data)
        if (Either.isLeft(event)) {
          return yield* new ProviderError({ reason: "Malformed", message: `Clever: an event on GET ${where} is not the documented shape` })
        }
        events.push(event.right)
      }
      if (events.length > MAX_DELTA_EVENTS) return { _tag: "TooMany" } as const
      const link = nextLink(page.value)
      if (link === undefined) break
      const next: URL = yield* http.link(page.url, link)
      yield* checkAdvance("Clever", page.url, next, seen)
      url = next
    }
    return { _tag: "Events", events } as const
  })
