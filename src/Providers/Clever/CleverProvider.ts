import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Chunk, Clock, Duration, Effect, Either, Option, Schema, Stream } from "effect"
import type { District } from "../../Domain/District.ts"
import { InvalidDistrict, ProviderError } from "../../Domain/Errors.ts"
import type { Demographic, Enrollment, Org, User } from "../../Domain/Roster.ts"
import type { ProviderBudgets, ProviderHttp, RetryPolicy } from "../Http.ts"
import { noStoredCredentials, readCredential, type StoredCredentials } from "../Credentials.ts"
import { makeProviderHttp } from "../Http.ts"
import type { Feed, FeedItem, Feeds, ProviderState, RosterSnapshot, SyncRequest } from "../RosterProvider.ts"
import { makeSpool, type Spool } from "../Spool.ts"
import { cleverDeltaFeeds } from "./CleverEvents.ts"
import * as Map from "./CleverMapping.ts"
import { CleverCourse, CleverDistrict, CleverEvent, CleverSchool, CleverSection, CleverTerm, CleverUser, nextLink, Page } from "./CleverWire.ts"

/**
 * The Clever provider (Data API v3.0 + Events).
 *
 * **Full**: the district, then every list (schools, terms, courses, sections, users) paged
 * by following `links` rel `next` to the end. Enrollments come from section membership and
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
  baseUrl: Schema.optionalWith(Schema.String, { default: () => "https://api.clever.com" }),
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

/** Every record of a list, page by page, as raw values. */
const listPages = (http: ProviderHttp, first: string) =>
  Stream.paginateChunkEffect(first as string | undefined, (url) =>
    url === undefined
      ? Effect.succeed([Chunk.empty<readonly [unknown, number]>(), Option.none<string | undefined>()] as const)
      : http.getJson(url, Page).pipe(
        Effect.map((page) => {
          const next = nextLink(page)
          return [
            Chunk.unsafeFromArray(page.data.map((item, index) => [item.data, index] as const)),
            next === undefined ? Option.none() : Option.some(next as string | undefined)
          ] as const
        })
      ))

/** A list as feed items of one kind, with `origin` naming the endpoint and the record's position. */
const listFeed = <A, I, R>(
  http: ProviderHttp,
  endpoint: string,
  pageSize: number,
  schema: Schema.Schema<A, I>,
  toItems: (record: A, origin: { file: string; line: number }) => ReadonlyArray<FeedItem<R>>
): Stream.Stream<FeedItem<R>, ProviderError> => {
  const decode = decodeRecord(schema)
  let position = 0
  return listPages(http, `${API}/${endpoint}?limit=${pageSize}`).pipe(
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
    const size = settings.pageSize

    // Memberships come inside sections, birth dates inside users: set aside per page, spooled.
    const memberships = yield* makeSpool<FeedItem<Enrollment>>("enrollments")
    const pendingMemberships: Array<FeedItem<Enrollment>> = []
    const birthDates = yield* makeSpool<FeedItem<Demographic>>("demographics")
    const pendingBirthDates: Array<FeedItem<Demographic>> = []

    const orgs: Stream.Stream<FeedItem<Org>, ProviderError> = Stream.make(
      valid(Map.districtOrg(settings.districtId, context.name), { file: `GET ${API}/districts`, line: 1 })
    ).pipe(Stream.concat(listFeed(http, "schools", size, CleverSchool, (school, origin) => [valid(Map.schoolOrg(school), origin)])))

    const classes = listFeed(http, "sections", size, CleverSection, (section, origin) => {
      const record = Map.sectionClass(section)
      if (record === undefined) return [{ _tag: "Invalid", origin, sourceId: section.id, problem: "the section has no school" }]
      for (const member of Map.sectionMembers(section)) {
        pendingMemberships.push(valid(Map.enrollment(section.id, record.schoolSourceId, member), origin))
      }
      return [valid(record, origin)]
    })

    const users = listFeed(http, "users", size, CleverUser, (record, origin): Array<FeedItem<User>> => {
      const mapped = Map.user(record)
      if (mapped === null) return []
      const dob = Map.demographic(record)
      if (dob === undefined) {
        pendingBirthDates.push({ _tag: "Invalid", origin, sourceId: record.id, problem: `field "roles.student.dob": expected a date in M/D/YYYY form` })
      } else if (dob !== null) {
        pendingBirthDates.push(valid(dob, origin))
      }
      return [valid(mapped, origin)]
    })

    const terms = listFeed(http, "terms", size, CleverTerm, (record, origin) => {
      const mapped = Map.term(record)
      return mapped === undefined
        ? [{ _tag: "Invalid", origin, sourceId: record.id, problem: "start_date or end_date is not a date" }]
        : [valid(mapped, origin)]
    })

    const bulk = <A>(name: string, items: Stream.Stream<FeedItem<A>, ProviderError>): Feed<A> => ({ mode: "bulk", name, items })
    const feeds: Feeds = {
      orgs: bulk(`GET ${API}/schools`, orgs),
      terms: bulk(`GET ${API}/terms`, terms),
      courses: bulk(`GET ${API}/courses`, listFeed(http, "courses", size, CleverCourse, (record, origin) => [valid(Map.course(record), origin)])),
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
}

/**
 * The district's settings and token, an HTTP session, and the check that the token's
 * district is the one configured (`GET /districts`): the start of every run, and all of
 * `rosterd doctor`'s probe.
 */
const connect = (dependencies: CleverDependencies, district: District) =>
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
    const http = yield* makeProviderHttp({
      name: "Clever",
      provider: "clever",
      baseUrl: settings.baseUrl,
      budget,
      retry: dependencies.retry,
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
    const context: CleverContext = { http, settings, district, name: match.name ?? null }
    return context
  })

/** `rosterd doctor`: the token opens the configured district (one request). */
export const cleverProbe = (dependencies: CleverDependencies) => (district: District) =>
  Effect.map(connect(dependencies, district), (context) => `the token opens Clever district ${context.settings.districtId} (${context.settings.baseUrl})`)

export const cleverSnapshot = (dependencies: CleverDependencies) => (district: District, request: SyncRequest, state: ProviderState) =>
  Effect.gen(function*() {
    const context = yield* connect(dependencies, district)
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
    return {
      mode: "delta",
      description: `Clever district ${settings.districtId} (${settings.baseUrl}), ${events.events.length} events`,
      feeds: cleverDeltaFeeds(events.events),
      cursor: { value: events.events.at(-1)?.id ?? state.cursor.value, takenAt: new Date(now) },
      notes: []
    } satisfies RosterSnapshot
  })

type EventsResult =
  | { readonly _tag: "Events"; readonly events: ReadonlyArray<CleverEvent> }
  | { readonly _tag: "Unknown" }
  | { readonly _tag: "TooMany" }

/** The events after `cursor` (`""`: all of them), in order, up to MAX_DELTA_EVENTS. */
const fetchEvents = (http: ProviderHttp, cursor: string, pageSize: number): Effect.Effect<EventsResult, ProviderError> =>
  Effect.gen(function*() {
    const decode = Schema.decodeUnknownEither(CleverEvent)
    const events: Array<CleverEvent> = []
    let url: string | undefined = `${API}/events?limit=${pageSize}${cursor === "" ? "" : `&starting_after=${encodeURIComponent(cursor)}`}`
    let first = true
    while (url !== undefined) {
      const page: Page | null = yield* http.getJsonOrNotFound(url, Page)
      if (page === null) {
        if (first) return { _tag: "Unknown" } as const
        return yield* new ProviderError({ reason: "Truncated", message: `Clever: ${url} vanished while listing events` })
      }
      first = false
      for (const item of page.data) {
        const event = decode(item.data)
        if (Either.isLeft(event)) {
          return yield* new ProviderError({ reason: "Malformed", message: `Clever: an event on ${url} is not the documented shape` })
        }
        events.push(event.right)
      }
      if (events.length > MAX_DELTA_EVENTS) return { _tag: "TooMany" } as const
      url = nextLink(page)
    }
    return { _tag: "Events", events } as const
  })
