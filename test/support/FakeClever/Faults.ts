/**
 * Faults a test injects into the fake server, each for a number of matching requests.
 *
 * Rules are tried in injection order and at most one fault applies to a request. `status`,
 * `rateLimit` and `notJson` answer instead of the API (before auth and the rate limit, like
 * a failing load balancer); `delay` waits and then serves normally; `dropConnection` and
 * `truncate` damage the real response on the wire; `noLinks` and `endEarly` damage the
 * real page's `links`.
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
