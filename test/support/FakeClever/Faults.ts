/**
 * Faults a test injects into the fake server, each for a number of matching requests.
 *
 * Rules are tried in injection order and at most one fault applies to a request. `status`,
 * `rateLimit`, `notJson`, `body` and `redirect` answer instead of the API (before auth and
 * the rate limit, like a failing load balancer or a hostile front); `delay` waits and then
 * serves normally; `dropConnection`, `truncate`, `hugeBody`, `endlessBody` and `drip` damage
 * or replace the response on the wire (Transport.ts); `noLinks`, `endEarly`, `next` and
 * `repeatPage` damage the real page's `links` or data; `rewrite` hands the real JSON to a
 * function and sends what it returns; `headers` adds or replaces response headers.
 *
 * The hostile modes (issue 14) behave like the broken or hostile servers a daemon meets:
 * a next link to itself or elsewhere, pages that never end or repeat, bodies of gigabytes,
 * bodies that never end or arrive a few bytes at a time, headers that lie.
 */
export type Fault =
  /** Answers with this status and `{ message }` (500, 502, 503, …). */
  | { readonly kind: "status"; readonly status: number; readonly message?: string }
  /**
   * A 429 outside the real limit. Sends `Retry-After` when `retryAfterSeconds` is given and
   * `X-RateLimit-Reset` (now + `resetInSeconds`) when that is given; with neither, a reset in 1 s.
   */
  | { readonly kind: "rateLimit"; readonly retryAfterSeconds?: number; readonly resetInSeconds?: number }
  /** Sends the headers (with the full Content-Length) and half the body, then destroys the socket. */
  | { readonly kind: "dropConnection" }
  /** A 200 whose body stops halfway, sent without Content-Length and closing the connection: invalid JSON. */
  | { readonly kind: "truncate" }
  /** A 200 with an HTML body, as Clever answers some wrong-token requests. */
  | { readonly kind: "notJson" }
  /** The real page without its `links` array. */
  | { readonly kind: "noLinks" }
  /** Waits `ms` before serving normally (for client timeouts). */
  | { readonly kind: "delay"; readonly ms: number }
  /** The real page without its `next` link although more records remain. */
  | { readonly kind: "endEarly" }
  /**
   * The page's `next` link replaced (added when the page has none): `"self"` (the request's
   * own path and query), `"first"` (the listing's first page, a loop), `"sameCursor"` (a
   * different URL keeping the request's `starting_after`), or any URI — e.g. on another
   * origin, or `http://` for an `https` server.
   */
  | { readonly kind: "next"; readonly to: "self" | "first" | "sameCursor" | (string & {}) }
  /** The listing's first page served again for this request, with the links the request should have got (duplicate pages). */
  | { readonly kind: "repeatPage" }
  /** The real JSON body (parsed) handed to `rewrite`; what it returns is sent with status 200 (a string as is, anything else as JSON). */
  | { readonly kind: "rewrite"; readonly rewrite: (body: any, request: FaultRequest) => unknown }
  /** This body (any text, any content type) with status 200, instead of the API. */
  | { readonly kind: "body"; readonly body: string; readonly contentType?: string }
  /** A redirect (default 302) to `location`, instead of the API. */
  | { readonly kind: "redirect"; readonly location: string; readonly status?: number }
  /** Headers added to (or replacing those of) the real response: bogus totals, huge values. */
  | { readonly kind: "headers"; readonly headers: Readonly<Record<string, string>> }
  /**
   * A 200 JSON body of `bytes` bytes (valid JSON: a list padded with whitespace), streamed
   * with backpressure; Content-Length sent unless `declareLength` is false.
   */
  | { readonly kind: "hugeBody"; readonly bytes: number; readonly declareLength?: boolean }
  /** A 200 body that never ends (chunked), until the client hangs up. */
  | { readonly kind: "endlessBody" }
  /** The real response, `chunkBytes` at a time every `intervalMs` (a drip-fed body). */
  | { readonly kind: "drip"; readonly chunkBytes: number; readonly intervalMs: number }

export type FaultKind = Fault["kind"]

export interface FaultRequest {
  readonly method: string
  /** Path without the query, e.g. `/v3.0/users`. */
  readonly path: string
  /** Path and query as requested, e.g. `/v3.0/users?limit=2&starting_after=…`. */
  readonly url: string
  readonly query: URLSearchParams
}

/**
 * Which requests a rule applies to: a prefix of the path and query (`"/v3.0/users"` also
 * matches `/v3.0/users/<id>` and `/v3.0/users?role=student`), a RegExp tested on the path
 * and query, or a predicate. Without one, every request.
 */
export type FaultMatch = string | RegExp | ((request: FaultRequest) => boolean)

export type FaultRule = Fault & {
  readonly match?: FaultMatch
  /** How many matching requests get the fault (default 1; `Infinity` for all). */
  readonly times?: number
  /** How many matching requests to let through first (default 0): "fail the third page". */
  readonly after?: number
}

export interface FaultHandle {
  readonly rule: FaultRule
  /** Requests that got the fault so far. */
  readonly fired: number
  /** Occurrences left. */
  readonly remaining: number
  /** Removes the rule. */
  cancel(): void
}

interface RuleState {
  readonly rule: FaultRule
  seen: number
  fired: number
}

const matches = (match: FaultMatch | undefined, request: FaultRequest): boolean => {
  if (match === undefined) return true
  if (typeof match === "string") return request.url.startsWith(match)
  if (match instanceof RegExp) {
    match.lastIndex = 0 // a /g RegExp would otherwise skip every other request
    return match.test(request.url)
  }
  return match(request)
}

export class FaultControl {
  private rules: Array<RuleState> = []

  inject(rule: FaultRule): FaultHandle {
    const state: RuleState = { rule, seen: 0, fired: 0 }
    this.rules.push(state)
    const times = rule.times ?? 1
    return {
      rule,
      get fired() {
        return state.fired
      },
      get remaining() {
        return Math.max(0, times - state.fired)
      },
      cancel: () => {
        this.rules = this.rules.filter((other) => other !== state)
      }
    }
  }

  clear(): void {
    this.rules = []
  }

  /** Rules with occurrences left. */
  get pending(): ReadonlyArray<FaultRule> {
    return this.rules.filter((state) => state.fired < (state.rule.times ?? 1)).map((state) => state.rule)
  }

  /** The fault this request gets, if any, using up one occurrence of its rule. */
  take(request: FaultRequest): Fault | undefined {
    for (const state of this.rules) {
      const { rule } = state
      if (state.fired >= (rule.times ?? 1) || !matches(rule.match, request)) continue
      state.seen++
      if (state.seen <= (rule.after ?? 0)) continue
      state.fired++
      return rule
    }
    return undefined
  }
}
