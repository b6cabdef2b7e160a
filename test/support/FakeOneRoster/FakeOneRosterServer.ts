/**
 * A fake OneRoster 1.1 REST server (ClassLink Roster Server-like) on a real `node:http`
 * server (127.0.0.1, random port) serving a {@link OneRosterDistrict} under
 * `/ims/oneroster/v1p1`: OAuth 1.0a HMAC-SHA256 and/or a static bearer token, an optional
 * rate limit, paged lists with `X-Total-Count` and an RFC 5988 `Link` header (Routes.ts),
 * per-test faults (Faults.ts) and a request log.
 *
 * Per request: faults that replace the API (`status`, `rateLimit`, `notJson`, `body`,
 * `redirect`) or hold it (`delay`) come first; then auth (401 imsx_StatusInfo
 * `unauthorisedrequest`), then the rate limit (429 with `Retry-After`), then the route; the
 * remaining faults damage its answer (../FakeClever/Transport.ts).
 */
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type { Fault } from "../FakeClever/Faults.ts"
import { type RateLimitOptions, RateLimiter } from "../FakeClever/RateLimit.ts"
import { amend, type Outgoing, replacement, send } from "../FakeClever/Transport.ts"
import { type OneRosterFault, OneRosterFaultControl } from "./Faults.ts"
import { type AuthCheck, type OAuthCredentials, OAuthVerifier, type OAuthWindow } from "./OAuth.ts"
import { type OAuth2Options, TokenIssuer } from "./OAuth2.ts"
import type { OneRosterDistrict } from "./OneRosterDistrict.ts"
import { type CodeMinor, ListingCache, type Reply, route } from "./Routes.ts"
import { API_PATH_12, routePath, toUser11, toUser12 } from "./OneRoster12.ts"
import { API_PATH, BOOLEAN_FIELDS, type User } from "./Types.ts"

export interface FakeOneRosterOptions {
  /** OAuth 1.0a consumer(s) accepted (ClassLink direct access). */
  readonly oauth?: OAuthCredentials | ReadonlyArray<OAuthCredentials>
  /** A static bearer token accepted (ClassLink proxy style). At least one of `oauth`, `bearer`, `oauth2`. */
  readonly bearer?: string
  /** OAuth 2.0 client credentials (Infinite Campus style): a token endpoint, and its tokens accepted as bearer tokens (OAuth2.ts). */
  readonly oauth2?: OAuth2Options
  readonly host?: string
  /** Default 0: a free port. */
  readonly port?: number
  /** Off unless given (ClassLink publishes no limit): requests per window per consumer key or token. */
  readonly rateLimit?: RateLimitOptions | false
  /** Page size without `limit` (default 100). */
  readonly defaultLimit?: number
  /** Larger `limit`s are silently capped to this (default 1,000; `Infinity` for none). */
  readonly maxLimit?: number
  /** Send `enabledUser`, `primary` and the race flags as `"true"`/`"false"`, like some 1.1 servers. */
  readonly booleansAsStrings?: boolean
  /** Leave GUIDRef hrefs as paths (`/ims/oneroster/v1p1/…`) instead of absolute URLs. */
  readonly relativeHrefs?: boolean
  /** The server clock OAuth timestamps are checked against (default real time, not the district's clock). */
  readonly now?: () => number
  readonly oauthWindow?: OAuthWindow
}

export interface RequestLog {
  readonly method: string
  /** Path and query as requested (OAuth travels in the header, so nothing secret is here). */
  readonly path: string
  /** Status sent; 0 when the client went away before an answer (during a `delay`). */
  readonly status: number
  /** Whether an Authorization header was present (never its content). */
  readonly auth: boolean
  /** The scheme that passed. */
  readonly scheme?: "oauth" | "bearer"
  /** The check that failed, for a 401. */
  readonly authFailure?: AuthCheck | "missing" | "bearer" | "scheme" | "expired_token"
  readonly fault?: OneRosterFault["kind"]
  readonly at: number
}

export interface FakeOneRoster {
  /** `http://127.0.0.1:<port>`, the server root; the API lives under `/ims/oneroster/v1p1`. */
  readonly baseUrl: string
  readonly port: number
  readonly district: OneRosterDistrict
  /** Every request, in arrival order (`requests.length = 0` to start over). */
  readonly requests: Array<RequestLog>
  readonly faults: OneRosterFaultControl
  /** Undefined when the rate limit is off. */
  readonly rateLimiter: RateLimiter | undefined
  /** Undefined without `oauth`; `oauth.forgetNonces()` allows a replay. */
  readonly oauth: OAuthVerifier | undefined
  /** Undefined without `oauth2`: the token endpoint (`tokenUrl`), its log, `maxUses`, `expireAll()`. */
  readonly oauth2: TokenIssuer | undefined
  /** The token endpoint's URL (empty without `oauth2`). */
  readonly tokenUrl: string
  close(): Promise<void>
}

const HTML_PAGE = "<!DOCTYPE html>\n<html><head><title>ClassLink</title></head><body><h1>Roster Server is under maintenance</h1></body></html>\n"

const JSON_TYPE = { "Content-Type": "application/json; charset=utf-8" }

/** An imsx_StatusInfo error body (1.1 binding; providers.md §2.8). */
export const statusInfo = (codeMinor: CodeMinor, description: string) => ({
  imsx_codeMajor: "failure",
  imsx_severity: "error",
  imsx_description: description,
  imsx_CodeMinor: { imsx_codeMinorField: [{ imsx_codeMinorFieldName: "TargetEndSystem", imsx_codeMinorFieldValue: codeMinor }] }
})

const failure = (status: number, codeMinor: CodeMinor, description: string, headers: Readonly<Record<string, string>> = {}): Outgoing => ({
  status,
  body: JSON.stringify(statusInfo(codeMinor, description)),
  headers: { ...JSON_TYPE, ...headers }
})

const codeMinorFor = (status: number): CodeMinor =>
  status === 400 ? "invaliddata" : status === 401 ? "unauthorisedrequest" : status === 403 ? "forbidden" : status === 404 ? "unknownobject"
  : status === 429 || status === 503 ? "server_busy" : "internal_server_error"

export const start = async (district: OneRosterDistrict, options: FakeOneRosterOptions): Promise<FakeOneRoster> => {
  const credentials = options.oauth === undefined ? [] : Array.isArray(options.oauth) ? options.oauth : [options.oauth as OAuthCredentials]
  if (credentials.length === 0 && options.bearer === undefined && options.oauth2 === undefined) {
    throw new Error("FakeOneRoster: give oauth credentials, a bearer token or oauth2 client credentials")
  }
  const issuer = options.oauth2 === undefined ? undefined : new TokenIssuer(options.oauth2, options.now ?? Date.now)
  const verifier = credentials.length === 0 ? undefined : new OAuthVerifier(credentials, options.now ?? Date.now, options.oauthWindow)
  const limiter = options.rateLimit === undefined || options.rateLimit === false ? undefined : new RateLimiter(options.rateLimit)
  const limiterNow = (options.rateLimit === undefined || options.rateLimit === false ? undefined : options.rateLimit.now) ?? Date.now
  const settings = { defaultLimit: options.defaultLimit ?? 100, maxLimit: options.maxLimit ?? 1000 }
  const cache = new ListingCache()
  const faults = new OneRosterFaultControl()
  const requests: Array<RequestLog> = []
  const delays = new Set<{ readonly timer: NodeJS.Timeout; readonly done: () => void }>()
  let baseUrl = ""

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const entry = { timer: setTimeout(() => finish(), ms), done: () => finish() }
      const finish = () => {
        clearTimeout(entry.timer)
        delays.delete(entry)
        resolve()
      }
      delays.add(entry)
    })

  type Authenticated = { readonly ok: true; readonly scheme: "oauth" | "bearer"; readonly principal: string } | {
    readonly ok: false
    readonly check: NonNullable<RequestLog["authFailure"]>
    readonly description: string
  }

  const authenticate = (req: Http.IncomingMessage, url: URL, rawPath: string): Authenticated => {
    const header = req.headers.authorization
    if (header === undefined || header.trim() === "") return { ok: false, check: "missing", description: "Authorization header missing" }
    const bearer = /^\s*Bearer\s+(\S+)\s*$/i.exec(header)
    if (bearer !== null) {
      if (options.bearer !== undefined && bearer[1] === options.bearer) return { ok: true, scheme: "bearer", principal: bearer[1] }
      const issued = issuer?.check(bearer[1]!)
      if (issued === "ok") return { ok: true, scheme: "bearer", principal: "oauth2" }
      if (issued === "expired") return { ok: false, check: "expired_token", description: "the access token has expired" }
      return { ok: false, check: "bearer", description: options.bearer === undefined ? "bearer tokens are not accepted here: sign with OAuth 1.0a" : "invalid bearer token" }
    }
    if (!/^\s*OAuth\s/i.test(header) || verifier === undefined) {
      return { ok: false, check: "scheme", description: verifier === undefined ? "only a bearer token is accepted here" : "unsupported Authorization scheme" }
    }
    // The base URI the client signed: how it reached us (Host), without the query.
    const host = (req.headers.host ?? new URL(baseUrl).host).toLowerCase().replace(/:80$/, "")
    const result = verifier.verify({ method: req.method ?? "GET", baseUri: `http://${host}${rawPath}`, query: url.searchParams, authorization: header })
    return result.ok ? { ok: true, scheme: "oauth", principal: result.consumerKey } : { ok: false, check: result.check, description: result.description }
  }

  /** What the API answers (before transport faults), and how auth went, for the log. */
  const answer = (req: Http.IncomingMessage, url: URL, rawPath: string, fault: OneRosterFault | undefined): [Outgoing, Partial<RequestLog>] => {
    if (fault?.kind === "status") return [failure(fault.status, codeMinorFor(fault.status), fault.message ?? Http.STATUS_CODES[fault.status] ?? "Error"), {}]
    if (fault?.kind === "rateLimit") {
      const seconds = fault.retryAfterSeconds ?? fault.resetInSeconds ?? 1
      return [failure(429, "server_busy", "Too Many Requests", { "Retry-After": String(seconds) }), {}]
    }
    if (fault?.kind === "notJson") return [{ status: 200, body: HTML_PAGE, headers: { "Content-Type": "text/html; charset=utf-8" } }, {}]
    const replaced = replacement(fault as Fault | undefined)
    if (replaced !== undefined) return [replaced, {}]

    const auth = authenticate(req, url, rawPath)
    if (!auth.ok) {
      const challenge = verifier === undefined ? "Bearer" : `OAuth realm="${baseUrl}${API_PATH}"`
      return [failure(401, "unauthorisedrequest", auth.description, { "WWW-Authenticate": challenge }), { authFailure: auth.check }]
    }
    const logged = { scheme: auth.scheme }
    const limit = limiter?.hit(auth.principal)
    if (limit !== undefined && !limit.allowed) {
      const retryAfter = Math.max(1, limit.reset - Math.floor(limiterNow() / 1000))
      return [failure(429, "server_busy", "Too Many Requests", { "Retry-After": String(retryAfter) }), logged]
    }
    if (req.method !== "GET") return [failure(405, "unsupportedoperation", "only GET is supported", { Allow: "GET" }), logged]
    if (fault?.kind === "ignoreOffset") {
      // The page at offset 0, whatever was asked; links and total as if the offset had moved.
      const first = new URLSearchParams(url.searchParams)
      first.set("offset", "0")
      const asked = route(district, routePath(url.pathname), url.searchParams, settings, cache)
      const served = route(district, routePath(url.pathname), first, settings, cache)
      return [render(asked._tag === "List" && served._tag === "List" ? { ...asked, records: served.records } : asked, url, fault), logged]
    }
    return [render(route(district, routePath(url.pathname), url.searchParams, settings, cache), url, fault), logged]
  }

  const serialize = (table: keyof typeof BOOLEAN_FIELDS, record: object, fields: ReadonlyArray<string> | undefined, v12 = false): string => {
    // Users as the version asked for them (OneRoster12.ts); other records read the same in both.
    let out = (table === "users" ? (v12 ? toUser12(record as User) : toUser11(record as User)) : record) as Record<string, unknown>
    if (options.booleansAsStrings === true) {
      for (const field of BOOLEAN_FIELDS[table] ?? []) {
        if (typeof out[field] !== "boolean") continue
        if (out === record) out = { ...out }
        out[field] = String(out[field])
      }
    }
    if (fields !== undefined) out = Object.fromEntries(fields.filter((field) => field in out).map((field) => [field, out[field]]))
    return JSON.stringify(out)
  }

  const absolute = (body: string) => (options.relativeHrefs === true ? body : body.replaceAll(`"href":"${API_PATH}/`, `"href":"${baseUrl}${API_PATH}/`))

  const render = (reply: Reply, url: URL, fault: OneRosterFault | undefined): Outgoing => {
    const v12 = url.pathname.startsWith(API_PATH_12)
    if (reply._tag === "Error") return failure(reply.status, reply.codeMinor, reply.description)
    if (reply._tag === "Single") {
      return { status: 200, body: absolute(`{"${reply.endpoint.singleKey}":${serialize(reply.endpoint.table, reply.record, reply.fields, v12)}}`), headers: JSON_TYPE }
    }
    let { records, total } = reply
    let hideNext = false
    if (fault?.kind === "neverEmpty" && records.length < reply.limit) {
      // Made-up records past the end: the listing never reaches an empty page.
      const template = (records.at(-1) ?? district.table(reply.endpoint.table).all().at(-1) ?? {}) as Record<string, unknown>
      const made = Array.from({ length: reply.limit - records.length }, (_, i) => ({ ...template, sourcedId: `made-up-${reply.offset + records.length + i}` }))
      records = [...records, ...made]
    }
    if (fault?.kind === "endEarly") {
      const mode = fault.mode ?? "empty"
      if (mode === "empty") records = []
      else if (mode === "short") records = records.slice(0, Math.floor(records.length / 2))
      else total = fault.count ?? reply.offset + records.length
      hideNext = mode !== "wrongCount"
    }
    const headers: Record<string, string> = { ...JSON_TYPE, "X-Total-Count": String(total) }
    if ((fault?.kind === "noLinks" && fault.dropTotal === true) || fault?.kind === "neverEmpty") delete headers["X-Total-Count"]
    if (fault?.kind !== "noLinks" && fault?.kind !== "neverEmpty") headers["Link"] = linkHeader(url, reply.offset, reply.limit, total, hideNext)
    const items = records.map((record) => serialize(reply.endpoint.table, record, reply.fields, v12))
    return { status: 200, body: absolute(`{"${reply.endpoint.listKey}":[${items.join(",")}]}`), headers }
  }

  /** RFC 5988 links for first/prev/next/last, keeping every other query parameter of the request. */
  const linkHeader = (url: URL, offset: number, limit: number, total: number, hideNext: boolean): string => {
    const at = (target: number) => {
      const query = new URLSearchParams()
      for (const [key, value] of url.searchParams) if (key !== "limit" && key !== "offset") query.append(key, value)
      query.append("limit", String(limit))
      query.append("offset", String(target))
      return `<${baseUrl}${url.pathname}?${query.toString()}>`
    }
    const last = total === 0 ? 0 : Math.floor((total - 1) / limit) * limit
    const links = [`${at(0)}; rel="first"`]
    if (offset > 0) links.push(`${at(Math.max(0, offset - limit))}; rel="prev"`)
    if (!hideNext && offset + limit < total) links.push(`${at(offset + limit)}; rel="next"`)
    links.push(`${at(last)}; rel="last"`)
    return links.join(", ")
  }

  const handle = async (req: Http.IncomingMessage, res: Http.ServerResponse) => {
    const at = Date.now()
    const rawUrl = req.url ?? "/"
    const rawPath = rawUrl.split("?")[0]!
    const url = new URL(rawUrl, "http://fake.invalid")
    const method = req.method ?? "GET"
    const fault = faults.takeOneRoster({ method, path: url.pathname, url: rawUrl, query: url.searchParams })
    const log = (status: number, extra: Partial<RequestLog> = {}) =>
      requests.push({ method, path: rawUrl, status, auth: req.headers.authorization !== undefined, ...extra, ...(fault === undefined ? {} : { fault: fault.kind }), at })
    res.on("error", () => {}) // a client that hangs up is part of the game, not a server failure

    if (issuer !== undefined && url.pathname === issuer.path) {
      const chunks: Array<Buffer> = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const reply = issuer.issue(method, req.headers.authorization, req.headers["content-type"], Buffer.concat(chunks).toString("utf8"))
      log(reply.status)
      return send(res, reply, undefined)
    }

    if (fault?.kind === "delay") {
      await sleep(fault.ms)
      if (res.destroyed || req.socket.destroyed) return log(0)
    }
    const [answered, extra] = answer(req, url, rawPath, fault)
    const out = amend(answered, fault as Fault | undefined, { method, path: url.pathname, url: rawUrl, query: url.searchParams })
    log(out.status, extra)
    await send(res, out, fault as Fault | undefined)
  }

  const server = Http.createServer((req, res) => {
    handle(req, res).catch((cause: unknown) => {
      // A bug in the fake: make it loud in the test output and answer 500.
      console.error("FakeOneRoster: request failed", cause)
      if (!res.headersSent) res.writeHead(500, JSON_TYPE)
      res.end(JSON.stringify(statusInfo("internal_server_error", "fake server error")))
    })
  })
  // Large pages over keep-alive connections: no server-side timeouts get in the way of slow clients.
  server.keepAliveTimeout = 5_000
  server.requestTimeout = 0

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address
  baseUrl = `http://${host}:${address.port}`

  return {
    baseUrl,
    port: address.port,
    district,
    requests,
    faults,
    rateLimiter: limiter,
    oauth: verifier,
    oauth2: issuer,
    tokenUrl: issuer === undefined ? "" : `${baseUrl}${issuer.path}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const delay of [...delays]) delay.done()
        server.close((cause) => (cause === undefined ? resolve() : reject(cause)))
        server.closeAllConnections()
      })
  }
}
