/**
 * The Data and Events API of the fake, as a pure function from an authorized GET to a
 * reply (the server adds auth, rate limiting, faults and the wire).
 *
 * Served: `/v3.0|v3.1/{districts,schools,terms,courses,sections,users,events}` (lists) and
 * `/…/<collection>/<id>` (single records). Sub-resources (`/schools/<id>/users`, …) answer
 * 501 "Unsupported request", not 404, so a client cannot mistake them for a deleted record.
 *
 * Events: only events whose `created` is within `eventRetentionMs` of the district's clock
 * are listed. `starting_after` / `ending_before` on `/events` must name a listed event:
 * an unknown id, or one that has aged out of the window, answers 404
 * `{ message: "Not Found: event <id> is not in the retained event window" }` — the client's
 * cue to resync from the Data API. (Clever documents only "not found"; the wording is ours.)
 * `ending_before=last` needs no event and gives the newest page (empty when there are none).
 */
import type { CleverDistrict } from "./CleverDistrict.ts"
import type { Collection } from "./Collection.ts"
import { type Link, type PageLimits, pageLinks, parsePageQuery, selectPage } from "./Paging.ts"
import { type CleverEvent, type CollectionName, COLLECTIONS, type Role, type User } from "./Types.ts"

export type Reply =
  | { readonly _tag: "List"; readonly items: ReadonlyArray<string>; readonly links: ReadonlyArray<Link> }
  /** `item` is the cached `{"data":{…}}` of the record. */
  | { readonly _tag: "Single"; readonly item: string; readonly links: ReadonlyArray<Link> }
  | { readonly _tag: "Error"; readonly status: number; readonly message: string }

export interface RouteSettings extends PageLimits {
  readonly eventRetentionMs: number
}

const ROLES: ReadonlySet<string> = new Set<Role>(["student", "teacher", "staff", "district_admin", "contact"])
const PATH = /^\/(v3\.[01])\/([a-z_]+)(?:\/([^/]+))?(\/.*)?$/

const error = (status: number, message: string): Reply => ({ _tag: "Error", status, message })
const notFound = error(404, "Not Found")

export const route = (district: CleverDistrict, path: string, query: URLSearchParams, settings: RouteSettings): Reply => {
  const match = PATH.exec(path)
  if (match === null) return notFound
  const [, version, name, id, rest] = match as unknown as [string, string, string, string | undefined, string | undefined]
  const isEvents = name === "events"
  if (!isEvents && !(COLLECTIONS as ReadonlyArray<string>).includes(name)) return notFound
  if (rest !== undefined) return error(501, "Unsupported request")
  const collection = isEvents ? district.events : district.collection(name as CollectionName)
  const visible = isEvents ? eventWindow(district, settings.eventRetentionMs) : () => true

  if (id !== undefined) {
    const decoded = decodeURIComponent(id)
    const record = collection.get(decoded)
    if (record === undefined || !visible(record as CleverEvent)) return notFound
    return { _tag: "Single", item: collection.item(decoded), links: [{ rel: "self", uri: `/${version}/${name}/${id}` }] }
  }

  const parsed = parsePageQuery(query, settings)
  if (parsed._tag === "Error") return error(parsed.status, parsed.message)
  const listPath = `/${version}/${name}`
  if (isEvents) {
    for (const cursor of [parsed.query.startingAfter, parsed.query.endingBefore]) {
      if (cursor === undefined || cursor === "last") continue
      const event = district.events.get(cursor)
      if (event === undefined || !visible(event)) {
        return error(404, `Not Found: event ${cursor} is not in the retained event window`)
      }
    }
    const filter = eventFilter(query)
    const page = selectPage(district.events, parsed.query, (event) => visible(event) && filter(event))
    return list(district.events, page.ids, pageLinks(listPath, query, parsed.query, page))
  }
  let filter: (record: never) => boolean = () => true
  if (name === "users" && query.has("role")) {
    const role = query.get("role")!
    if (!ROLES.has(role)) return error(400, `role must be one of ${[...ROLES].join(", ")}`)
    filter = (user: User) => user.roles[role as Role] !== undefined
  }
  const page = selectPage(collection as Collection<{ readonly id: string }>, parsed.query, filter as (record: { readonly id: string }) => boolean)
  return list(collection as Collection<{ readonly id: string }>, page.ids, pageLinks(listPath, query, parsed.query, page))
}

const list = (collection: Collection<{ readonly id: string }>, ids: ReadonlyArray<string>, links: ReadonlyArray<Link>): Reply => ({
  _tag: "List",
  items: ids.map((id) => collection.item(id)),
  links
})

/** Events still retained: created no earlier than `retentionMs` before the district's now. */
const eventWindow = (district: CleverDistrict, retentionMs: number) => {
  const oldest = district.clock.now() - retentionMs
  return (event: CleverEvent) => Date.parse(event.created) >= oldest
}

/** `record_type=` (repeatable) and `school=` filters of `/events`. */
const eventFilter = (query: URLSearchParams) => {
  const types = query.getAll("record_type")
  const school = query.get("school")
  return (event: CleverEvent): boolean => {
    if (types.length > 0 && !types.includes(event.type.split(".")[0]!)) return false
    return school === null || touchesSchool(event, school)
  }
}

const touchesSchool = (event: CleverEvent, school: string): boolean => {
  const object = event.data.object as Readonly<Record<string, unknown>>
  const mentions = (value: unknown) => value === school || (Array.isArray(value) && value.includes(school))
  switch (event.type.split(".")[0]) {
    case "schools":
      return object["id"] === school
    case "sections":
      return mentions(object["school"])
    case "users": {
      const roles = (object["roles"] ?? {}) as Readonly<Record<string, Readonly<Record<string, unknown>> | undefined>>
      return Object.values(roles).some((role) => role !== undefined && (mentions(role["school"]) || mentions(role["schools"])))
    }
    default:
      // District-wide records (districts, terms, courses) concern every school.
      return true
  }
}
