/**
 * The OneRoster 1.1 rostering endpoints (providers.md §2.3–2.4) over a
 * {@link OneRosterDistrict}: which records a GET selects, before serialization.
 *
 * - `/orgs`, `/schools` (orgs of type school), `/academicSessions`, `/terms` (sessions of
 *   type `term` only — the spec's reading; a `semester` is not a term), `/gradingPeriods`,
 *   `/courses`, `/classes`, `/users`, `/students`, `/teachers` (users of that role),
 *   `/enrollments`, `/demographics`, and `/<endpoint>/{sourcedId}` for each (a single
 *   that is not of the endpoint's kind, e.g. `/students/<a teacher>`, is 404);
 * - paging by `limit` (default 100, silently capped at `maxLimit`) and `offset` over a
 *   stable order (sourcedId, or `sort`=<scalar field> with `orderBy=asc|desc`, ties by
 *   sourcedId); `filter` (Filter.ts); `fields` (a projection);
 * - nested paths (`/schools/{id}/classes`, …) are not served: 501 `unsupportedoperation`.
 */
import { parseFilter } from "./Filter.ts"
import type { OneRosterDistrict } from "./OneRosterDistrict.ts"
import { API_PATH, FIELDS, type TableName } from "./Types.ts"

export interface Endpoint {
  readonly table: TableName
  /** The JSON wrapper keys of a list and of a single record. */
  readonly listKey: string
  readonly singleKey: string
  /** The subset of the table the endpoint serves. */
  readonly where?: (record: Readonly<Record<string, unknown>>) => boolean
}

const ofType = (type: string) => (record: Readonly<Record<string, unknown>>) => record["type"] === type
const ofRole = (role: string) => (record: Readonly<Record<string, unknown>>) => record["role"] === role

export const ENDPOINTS: Readonly<Record<string, Endpoint>> = {
  orgs: { table: "orgs", listKey: "orgs", singleKey: "org" },
  schools: { table: "orgs", listKey: "orgs", singleKey: "org", where: ofType("school") },
  academicSessions: { table: "academicSessions", listKey: "academicSessions", singleKey: "academicSession" },
  terms: { table: "academicSessions", listKey: "academicSessions", singleKey: "academicSession", where: ofType("term") },
  gradingPeriods: { table: "academicSessions", listKey: "academicSessions", singleKey: "academicSession", where: ofType("gradingPeriod") },
  courses: { table: "courses", listKey: "courses", singleKey: "course" },
  classes: { table: "classes", listKey: "classes", singleKey: "class" },
  users: { table: "users", listKey: "users", singleKey: "user" },
  students: { table: "users", listKey: "users", singleKey: "user", where: ofRole("student") },
  teachers: { table: "users", listKey: "users", singleKey: "user", where: ofRole("teacher") },
  enrollments: { table: "enrollments", listKey: "enrollments", singleKey: "enrollment" },
  demographics: { table: "demographics", listKey: "demographics", singleKey: "demographics" }
}

export type CodeMinor =
  | "invalid_filter_field" | "invalid_selection_field" | "invalid_sort_field" | "invaliddata" | "unauthorisedrequest"
  | "unknownobject" | "unsupportedoperation" | "forbidden" | "server_busy" | "internal_server_error"

export type Reply =
  | {
    readonly _tag: "List"
    readonly endpoint: Endpoint
    /** The page, in order. */
    readonly records: ReadonlyArray<object>
    /** Records matching the filter (X-Total-Count). */
    readonly total: number
    readonly offset: number
    /** The limit applied (the requested one, capped). */
    readonly limit: number
    readonly fields: ReadonlyArray<string> | undefined
  }
  | { readonly _tag: "Single"; readonly endpoint: Endpoint; readonly record: object; readonly fields: ReadonlyArray<string> | undefined }
  | { readonly _tag: "Error"; readonly status: number; readonly codeMinor: CodeMinor; readonly description: string }

export interface RouteSettings {
  readonly defaultLimit: number
  readonly maxLimit: number
}

const error = (status: number, codeMinor: CodeMinor, description: string): Reply => ({ _tag: "Error", status, codeMinor, description })

/**
 * Filtered and sorted listings by endpoint and query, kept while the table's version is
 * unchanged: a walk of 837 pages of enrollments with a filter scans the table once.
 */
export class ListingCache {
  private readonly entries = new Map<string, { readonly version: number; readonly ids: ReadonlyArray<string> }>()

  constructor(private readonly size = 16) {}

  get(key: string, version: number, compute: () => ReadonlyArray<string>): ReadonlyArray<string> {
    const hit = this.entries.get(key)
    if (hit !== undefined && hit.version === version) return hit.ids
    const ids = compute()
    this.entries.delete(key)
    this.entries.set(key, { version, ids })
    if (this.entries.size > this.size) this.entries.delete(this.entries.keys().next().value!)
    return ids
  }
}

const PATH = new RegExp(`^${API_PATH.replace(/\//g, "\\/")}\\/([A-Za-z]+)(?:\\/([^/]+))?(\\/.*)?$`)

export const route = (district: OneRosterDistrict, path: string, query: URLSearchParams, settings: RouteSettings, cache: ListingCache): Reply => {
  const match = PATH.exec(path)
  const endpoint = match === null ? undefined : ENDPOINTS[match[1]!]
  if (match === null || endpoint === undefined) return error(404, "unknownobject", `no such endpoint: ${path}`)
  const [, name, rawId, rest] = match as unknown as [string, string, string | undefined, string | undefined]
  if (rest !== undefined) return error(501, "unsupportedoperation", `nested endpoints are not served by this fake: ${path}`)
  const fieldSet = FIELDS[endpoint.table]
  const table = district.table(endpoint.table)

  const fieldsParam = query.get("fields")
  let fields: Array<string> | undefined
  if (fieldsParam !== null) {
    fields = fieldsParam.split(",").map((field) => field.trim()).filter((field) => field !== "")
    const unknown = fields.filter((field) => !fieldSet.scalars.includes(field) && !fieldSet.refs.includes(field))
    if (unknown.length > 0) return error(400, "invalid_selection_field", `unknown field(s) for ${name}: ${unknown.join(", ")}`)
  }

  if (rawId !== undefined) {
    let id: string
    try {
      id = decodeURIComponent(rawId)
    } catch {
      return error(404, "unknownobject", `${name}/${rawId} not found`)
    }
    const record = table.get(id) as Readonly<Record<string, unknown>> | undefined
    if (record === undefined || (endpoint.where !== undefined && !endpoint.where(record))) return error(404, "unknownobject", `${name}/${id} not found`)
    return { _tag: "Single", endpoint, record, fields }
  }

  const limitParam = query.get("limit")
  const offsetParam = query.get("offset")
  if (limitParam !== null && !/^\d+$/.test(limitParam)) return error(400, "invaliddata", "limit must be a positive integer")
  if (offsetParam !== null && !/^\d+$/.test(offsetParam)) return error(400, "invaliddata", "offset must be a non-negative integer")
  const requested = limitParam === null ? settings.defaultLimit : Number(limitParam)
  if (requested < 1) return error(400, "invaliddata", "limit must be a positive integer")
  // Real servers cap an oversized limit without saying so: clients must page by X-Total-Count/Link, not by short pages.
  const limit = Math.min(requested, settings.maxLimit)
  const offset = offsetParam === null ? 0 : Number(offsetParam)

  const sort = query.get("sort")
  const orderBy = (query.get("orderBy") ?? "asc").toLowerCase()
  if (sort !== null && !fieldSet.scalars.includes(sort)) return error(400, "invalid_sort_field", `cannot sort ${name} by ${sort}`)
  if (orderBy !== "asc" && orderBy !== "desc" && orderBy !== "acs") return error(400, "invalid_sort_field", `orderBy must be asc or desc`)

  const filterParam = query.get("filter")
  const filter = filterParam === null || filterParam.trim() === "" ? undefined : parseFilter(filterParam, fieldSet)
  if (filter?._tag === "Error") return error(400, "invalid_filter_field", filter.message)

  const where = endpoint.where
  const test = filter?.test
  const ids = where === undefined && test === undefined && sort === null
    ? table.ids()
    : cache.get(`${name}\u0000${filterParam ?? ""}\u0000${sort ?? ""}\u0000${orderBy}`, table.version, () => {
      let records = table.all() as unknown as Array<Readonly<Record<string, unknown>>>
      if (where !== undefined || test !== undefined) records = records.filter((record) => (where === undefined || where(record)) && (test === undefined || test(record)))
      if (sort !== null) records = sortBy(records, sort, orderBy === "desc")
      return records.map((record) => record["sourcedId"] as string)
    })
  const records = ids.slice(offset, offset + limit).map((id) => table.get(id)!)
  return { _tag: "List", endpoint, records, total: ids.length, offset, limit, fields }
}

/** A stable sort on one scalar field (arrays by their first element); missing values last. */
const sortBy = (records: Array<Readonly<Record<string, unknown>>>, field: string, descending: boolean) => {
  const key = (record: Readonly<Record<string, unknown>>): string | undefined => {
    const value = record[field]
    const first = Array.isArray(value) ? value[0] : value
    return first === undefined || first === null ? undefined : typeof first === "object" ? JSON.stringify(first) : String(first)
  }
  const keyed = records.map((record) => ({ record, key: key(record) }))
  keyed.sort((a, b) => {
    if (a.key === b.key) return 0
    if (a.key === undefined) return 1
    if (b.key === undefined) return -1
    const c = a.key < b.key ? -1 : 1
    return descending ? -c : c
  })
  return keyed.map((entry) => entry.record)
}
