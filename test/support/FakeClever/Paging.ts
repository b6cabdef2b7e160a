/**
 * Clever's range-based paging (providers.md §1.3): `limit`, `starting_after=<id>`,
 * `ending_before=<id>` (or `last`), and `links` with `self`, `next` when more records
 * follow the page, `prev` when some precede it. Link uris are relative
 * (`/v3.0/users?limit=1000&starting_after=<id>`) and keep every other query parameter.
 */
import type { Collection } from "./Collection.ts"

export interface Link {
  readonly rel: "self" | "next" | "prev"
  readonly uri: string
}

export interface PageQuery {
  readonly limit: number
  readonly startingAfter?: string
  /** An id or `"last"` (the newest page). */
  readonly endingBefore?: string
}

export type ParsedPageQuery =
  | { readonly _tag: "Ok"; readonly query: PageQuery }
  | { readonly _tag: "Error"; readonly status: 400 | 413; readonly message: string }

export interface PageLimits {
  readonly defaultLimit: number
  readonly maxLimit: number
}

export const parsePageQuery = (params: URLSearchParams, limits: PageLimits): ParsedPageQuery => {
  const raw = params.get("limit")
  let limit = limits.defaultLimit
  if (raw !== null) {
    if (!/^\d+$/.test(raw) || Number(raw) < 1) return { _tag: "Error", status: 400, message: `limit must be a positive integer` }
    limit = Number(raw)
    // Clever answers an oversized limit with 413 "request entity too large".
    if (limit > limits.maxLimit) return { _tag: "Error", status: 413, message: `Request Entity Too Large: limit may not exceed ${limits.maxLimit}` }
  }
  const startingAfter = params.get("starting_after") ?? undefined
  const endingBefore = params.get("ending_before") ?? undefined
  if (startingAfter !== undefined && endingBefore !== undefined) {
    return { _tag: "Error", status: 400, message: "starting_after and ending_before cannot be used together" }
  }
  return {
    _tag: "Ok",
    query: { limit, ...(startingAfter === undefined ? {} : { startingAfter }), ...(endingBefore === undefined ? {} : { endingBefore }) }
  }
}

export interface Page {
  /** Ids of the page, ascending. */
  readonly ids: ReadonlyArray<string>
  readonly hasNext: boolean
  readonly hasPrev: boolean
}

/**
 * Cuts a page out of a sorted collection, counting only records `matches` accepts (a
 * `role=` filter, the event window). The cursor id need not exist: ids are ordered, so
 * "after a deleted record" is still well defined.
 */
export const selectPage = <A extends { readonly id: string }>(
  collection: Collection<A>,
  query: PageQuery,
  matches: (record: A) => boolean = () => true
): Page => {
  const accept = (index: number) => matches(collection.at(index))
  const anyIn = (from: number, to: number) => {
    for (let i = from; i < to; i++) if (accept(i)) return true
    return false
  }
  const anyBefore = (to: number) => {
    for (let i = to - 1; i >= 0; i--) if (accept(i)) return true
    return false
  }
  const indexes: Array<number> = []
  if (query.endingBefore !== undefined) {
    const end = query.endingBefore === "last" ? collection.length : collection.lowerBound(query.endingBefore)
    for (let i = end - 1; i >= 0 && indexes.length < query.limit; i--) if (accept(i)) indexes.push(i)
    indexes.reverse()
    const first = indexes[0] ?? end
    return { ids: indexes.map((i) => collection.idAt(i)), hasPrev: anyBefore(first), hasNext: anyIn(end, collection.length) }
  }
  const start = query.startingAfter === undefined ? 0 : collection.upperBound(query.startingAfter)
  let i = start
  for (; i < collection.length && indexes.length < query.limit; i++) if (accept(i)) indexes.push(i)
  return { ids: indexes.map((index) => collection.idAt(index)), hasPrev: anyBefore(start), hasNext: anyIn(i, collection.length) }
}

/** `self`, plus `next`/`prev` for a non-empty page that has records after/before it. */
export const pageLinks = (path: string, params: URLSearchParams, query: PageQuery, page: Page): Array<Link> => {
  const search = params.toString()
  const links: Array<Link> = [{ rel: "self", uri: search === "" ? path : `${path}?${search}` }]
  const cursorUri = (cursor: "starting_after" | "ending_before", id: string) => {
    const next = new URLSearchParams()
    next.append("limit", String(query.limit))
    for (const [key, value] of params) if (key !== "limit" && key !== "starting_after" && key !== "ending_before") next.append(key, value)
    next.append(cursor, id)
    return `${path}?${next.toString()}`
  }
  const first = page.ids[0]
  const last = page.ids[page.ids.length - 1]
  if (page.hasNext && last !== undefined) links.push({ rel: "next", uri: cursorUri("starting_after", last) })
  if (page.hasPrev && first !== undefined) links.push({ rel: "prev", uri: cursorUri("ending_before", first) })
  return links
}
