/**
 * A fake Clever API on a real `node:http` server (127.0.0.1, random port) serving a
 * {@link CleverDistrict}: bearer auth, Clever's rate limit, paged lists and events
 * (Routes.ts), per-test faults (Faults.ts) and a request log.
 *
 * Per request: faults that replace the API (`status`, `rateLimit`, `notJson`, `body`,
 * `redirect`) or hold it (`delay`) come first; then auth (missing/unknown token → 401
 * `{message:"Invalid token"}`, the forbidden token → 403), then the rate limit (429 once over
 * it), then the route; the remaining faults damage that response (Transport.ts).
 *
 * With `tls` it serves HTTPS (a test certificate), so a client's refusal to follow a link
 * from https down to http can be shown against a real TLS server.
 */
import * as Http from "node:http"
import * as Https from "node:https"
import type { AddressInfo } from "node:net"
import type { CleverDistrict } from "./CleverDistrict.ts"
import { type Fault, FaultControl, type FaultKind } from "./Faults.ts"
import type { Link } from "./Paging.ts"
import { type RateLimitOptions, RateLimiter, rateLimitHeaders } from "./RateLimit.ts"
import { type Reply, route } from "./Routes.ts"
import { amend, type Outgoing, replacement, send } from "./Transport.ts"

export interface FakeCleverOptions {
  /** The accepted district-app token(s). */
  readonly token: string | ReadonlyArray<string>
  /** A token Clever knows but refuses (403), e.g. an app the district stopped sharing with. */
  readonly forbiddenToken?: string
  readonly host?: string
  /** Default 0: a free port. */
  readonly port?: number
  /** Clever's per-token limit (default 1,200 a minute); `false` turns it off. */
  readonly rateLimit?: RateLimitOptions | false
  /** Page size without `limit` (default 100). */
  readonly defaultLimit?: number
  /** Largest `limit` (default 10,000; above it 413). */
  readonly maxLimit?: number
  /** How far back `/events` reaches, against the district's clock (default 30 days). */
  readonly eventRetentionMs?: number
  /** Serve HTTPS with this key and certificate (PEM); `baseUrl` is then `https://…`. */
  readonly tls?: { readonly key: string; readonly cert: string }
  /**
   * The app's OAuth client, for `GET /oauth/tokens?owner_type=district` (HTTP Basic with
   * the client id and secret): the district-app tokens of the districts that authorised
   * the app (`appTokens`, which a test may change: a district that disconnects).
   */
  readonly app?: { readonly clientId: string; readonly clientSecret: string; readonly tokens?: ReadonlyArray<AppToken> }
}

/** A district's authorisation of the app, as `/oauth/tokens` lists it. */
export interface AppToken {
  readonly id: string
  readonly district: string
  readonly accessToken: string
  readonly scopes?: ReadonlyArray<string>
  readonly created?: string
}

export interface RequestLog {
  readonly method: string
  /** Path and query as requested. */
  readonly path: string
  /** Status sent; 0 when the client went away before an answer (during a `delay`). */
  readonly status: number
  /** Whether an Authorization header was present (the token itself is never logged). */
  readonly auth: boolean
  /** The Host header as sent (which origin the client thought it talked to). */
  readonly host?: string
  /** The injected fault this request got, if any. */
  readonly fault?: FaultKind
  readonly at: number
}

export interface FakeClever {
  /** `http://127.0.0.1:<port>` — the API lives under `/v3.0`, and `links` uris are relative to this. */
  readonly baseUrl: string
  readonly port: number
  readonly district: CleverDistrict
  /** Every request, in arrival order (`requests.length = 0` to start over). */
  readonly requests: Array<RequestLog>
  readonly faults: FaultControl
  /** Undefined when the rate limit is off. `rateLimiter.reset()` forgets the counts. */
  readonly rateLimiter: RateLimiter | undefined
  /** The app's district tokens `/oauth/tokens` lists (change it to connect or disconnect a district). */
  readonly appTokens: Array<AppToken>
  close(): Promise<void>
}

export const DEFAULT_EVENT_RETENTION_MS = 30 * 24 * 60 * 60 * 1000

const HTML_ERROR = "<!DOCTYPE html>\n<html><head><title>Clever | Error</title></head><body><h1>Something went wrong</h1></body></html>\n"

const json = (status: number, body: string, headers: Readonly<Record<string, string>> = {}): Outgoing => ({
  status,
  body,
  headers: { "Content-Type": "application/json; charset=utf-8", ...headers }
})

const message = (status: number, text: string, headers?: Readonly<Record<string, string>>) => json(status, JSON.stringify({ message: text }), headers)

/** Where a `next` fault points, for the request `url` (path and query) and the page's real `next`. */
const nextUri = (to: Extract<Fault, { kind: "next" }>["to"], url: URL, real: string | undefined): string => {
  const path = url.pathname
  if (to === "self") return `${path}${url.search}`
  const params = new URLSearchParams(url.searchParams)
  if (to === "first") {
    params.delete("starting_after")
    params.delete("ending_before")
    return `${path}?${params.toString()}`
  }
  if (to === "sameCursor") {
    // Another URL (one more parameter), the same cursor.
    params.append("page_hint", String((Number(params.get("page_hint")) || 0) + 1))
    return `${path}?${params.toString()}`
  }
  return to.replace("{real}", real ?? "")
}

/** The reply as JSON, minus (or with other) links as a fault says. */
const render = (reply: Reply, fault: Fault | undefined, url: URL): { readonly status: number; readonly body: string } => {
  if (reply._tag === "Error") return { status: reply.status, body: JSON.stringify({ message: reply.message }) }
  let links: ReadonlyArray<Link> = fault?.kind === "endEarly" ? reply.links.filter((link) => link.rel !== "next") : reply.links
  if (fault?.kind === "next") {
    const real = links.find((link) => link.rel === "next")?.uri
    links = [...links.filter((link) => link.rel !== "next"), { rel: "next", uri: nextUri(fault.to, url, real) }]
  }
  const tail = fault?.kind === "noLinks" ? "}" : `,"links":${JSON.stringify(links)}}`
  if (reply._tag === "Single") return { status: 200, body: reply.item.slice(0, -1) + tail }
  return { status: 200, body: `{"data":[${reply.items.join(",")}]${tail}` }
}

export const start = async (district: CleverDistrict, options: FakeCleverOptions): Promise<FakeClever> => {
  const tokens = new Set(typeof options.token === "string" ? [options.token] : options.token)
  const limiter = options.rateLimit === false ? undefined : new RateLimiter(options.rateLimit ?? {})
  const settings = {
    defaultLimit: options.defaultLimit ?? 100,
    maxLimit: options.maxLimit ?? 10_000,
    eventRetentionMs: options.eventRetentionMs ?? DEFAULT_EVENT_RETENTION_MS
  }
  const faults = new FaultControl()
  const requests: Array<RequestLog> = []
  const appTokens: Array<AppToken> = [...(options.app?.tokens ?? [])]

  /** `GET /oauth/tokens?owner_type=district[&district=<id>]`: HTTP Basic with the app's client id and secret. */
  const listTokens = (req: Http.IncomingMessage, url: URL): Outgoing => {
    const app = options.app
    const basic = /^Basic\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "")?.[1]
    const expected = app === undefined ? undefined : Buffer.from(`${app.clientId}:${app.clientSecret}`).toString("base64")
    if (basic === undefined || expected === undefined || basic !== expected) return json(401, JSON.stringify({ error: "invalid_client" }))
    if (req.method !== "GET") return message(405, "Method Not Allowed")
    if (url.searchParams.get("owner_type") !== "district") return message(400, "owner_type must be district")
    const only = url.searchParams.get("district")
    const data = appTokens.filter((t) => only === null || t.district === only).map((t) => ({
      id: t.id,
      access_token: t.accessToken,
      owner: { type: "district", id: t.district },
      scopes: t.scopes ?? ["read:district_admins", "read:students", "read:teachers", "read:sections"],
      created: t.created ?? "2026-08-01T00:00:00.000Z"
    }))
    return json(200, JSON.stringify({ data }))
  }
  const delays = new Set<{ readonly timer: NodeJS.Timeout; readonly done: () => void }>()

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

  /** What the API answers, before transport faults. */
  const answer = (req: Http.IncomingMessage, url: URL, fault: Fault | undefined): Outgoing => {
    if (fault?.kind === "status") return message(fault.status, fault.message ?? Http.STATUS_CODES[fault.status] ?? "Error")
    if (fault?.kind === "rateLimit") {
      const headers: Record<string, string> = { "X-RateLimit-Limit": String(limiter?.limit ?? 1200), "X-RateLimit-Remaining": "0" }
      if (fault.retryAfterSeconds !== undefined) headers["Retry-After"] = String(fault.retryAfterSeconds)
      const resetIn = fault.resetInSeconds ?? (fault.retryAfterSeconds === undefined ? 1 : undefined)
      if (resetIn !== undefined) headers["X-RateLimit-Reset"] = String(Math.ceil(Date.now() / 1000 + resetIn))
      return message(429, "Too Many Requests", headers)
    }
    if (fault?.kind === "notJson") return { status: 200, body: HTML_ERROR, headers: { "Content-Type": "text/html; charset=utf-8" } }
    const replaced = replacement(fault)
    if (replaced !== undefined) return replaced
    if (url.pathname === "/oauth/tokens") return listTokens(req, url)

    const token = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "")?.[1]
    if (token !== undefined && token === options.forbiddenToken) return message(403, "Forbidden")
    if (token === undefined || !tokens.has(token)) return message(401, "Invalid token")
    const limit = limiter?.hit(token)
    const limitHeaders = limit === undefined ? {} : rateLimitHeaders(limit)
    if (limit !== undefined && !limit.allowed) return message(429, "Too Many Requests", limitHeaders)
    if (req.method !== "GET") return message(501, "Unsupported request", limitHeaders)

    let reply = route(district, url.pathname, url.searchParams, settings)
    if (fault?.kind === "repeatPage" && reply._tag === "List") {
      // The first page's records, under the links this request should have got.
      const first = new URLSearchParams(url.searchParams)
      first.delete("starting_after")
      first.delete("ending_before")
      const again = route(district, url.pathname, first, settings)
      if (again._tag === "List") reply = { ...reply, items: again.items }
    }
    const rendered = render(reply, fault, url)
    return json(rendered.status, rendered.body, limitHeaders)
  }

  const handle = async (req: Http.IncomingMessage, res: Http.ServerResponse) => {
    const at = Date.now()
    const rawUrl = req.url ?? "/"
    const url = new URL(rawUrl, "http://fake.invalid")
    const method = req.method ?? "GET"
    const fault = faults.take({ method, path: url.pathname, url: rawUrl, query: url.searchParams })
    const log = (status: number) =>
      requests.push({
        method,
        path: rawUrl,
        status,
        auth: req.headers.authorization !== undefined,
        ...(req.headers.host === undefined ? {} : { host: req.headers.host }),
        ...(fault === undefined ? {} : { fault: fault.kind }),
        at
      })
    res.on("error", () => {}) // a client that hangs up is part of the game, not a server failure

    if (fault?.kind === "delay") {
      await sleep(fault.ms)
      if (res.destroyed || req.socket.destroyed) return log(0)
    }
    const out = amend(answer(req, url, fault), fault, { method, path: url.pathname, url: rawUrl, query: url.searchParams })
    log(out.status)
    await send(res, out, fault)
  }

  const listener = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
    handle(req, res).catch((cause: unknown) => {
      // A bug in the fake: make it loud in the test output and answer 500.
      console.error("FakeClever: request failed", cause)
      if (!res.headersSent) res.writeHead(500, { "Content-Type": "application/json" })
      res.end(JSON.stringify({ message: "fake server error" }))
    })
  }
  const server = options.tls === undefined ? Http.createServer(listener) : Https.createServer({ key: options.tls.key, cert: options.tls.cert }, listener)
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

  return {
    appTokens,
    baseUrl: `${options.tls === undefined ? "http" : "https"}://${host}:${address.port}`,
    port: address.port,
    district,
    requests,
    faults,
    rateLimiter: limiter,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const delay of [...delays]) delay.done()
        server.close((cause) => (cause === undefined ? resolve() : reject(cause)))
        server.closeAllConnections()
      })
  }
}
