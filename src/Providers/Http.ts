import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Config, Duration, Effect, Either, ParseResult, Random, RateLimiter, Schema, Scope, SynchronizedRef } from "effect"
import { createHash } from "node:crypto"
import { ProviderError } from "../Domain/Errors.ts"
import { Metrics } from "../Metrics/Metrics.ts"

/**
 * The HTTP behaviour every REST provider shares (Clever, OneRoster REST):
 *
 * - a request **budget** per credential (a token bucket shared by every run that uses it,
 *   e.g. half of Clever's 1,200 requests per minute);
 * - **429**: wait as the server says (`Retry-After` seconds or date, `X-RateLimit-Reset`
 *   unix time), plus jitter, then try again;
 * - **5xx, timeouts, dropped connections, cut-off bodies**: retry with capped exponential
 *   backoff and jitter, a bounded number of times;
 * - **401 / 403**: fail at once (a revoked token does not get better by asking again);
 * - a body that is not the expected JSON fails with the endpoint named.
 *
 * Every failure is a `ProviderError` that fails the run before anything is applied.
 * Messages name the endpoint path (never the token, never response bodies).
 *
 * Each attempt is counted in `rosterd_provider_requests_total{provider,status}` (the HTTP
 * status code, or `timeout` / `connection` / `broken` when no status came back) and each
 * retry in `rosterd_provider_retries_total{provider,reason}` (src/Metrics).
 */

export interface RetryPolicy {
  /** Attempts per request, the first included. */
  readonly attempts: number
  readonly base: Duration.Duration
  readonly max: Duration.Duration
  /** Longest wait a 429 may ask for before we give up on the run. */
  readonly maxRateLimitWait: Duration.Duration
  readonly timeout: Duration.Duration
}

/** `rosterd.providers.*` (`ROSTERD_PROVIDERS_RETRY_BASE`, …). */
export const RetryPolicyConfig: Config.Config<RetryPolicy> = Config.all({
  attempts: Config.integer("attempts").pipe(Config.withDefault(6)),
  base: Config.duration("retryBase").pipe(Config.withDefault(Duration.seconds(1))),
  max: Config.duration("retryMax").pipe(Config.withDefault(Duration.seconds(30))),
  maxRateLimitWait: Config.duration("maxRateLimitWait").pipe(Config.withDefault(Duration.minutes(2))),
  timeout: Config.duration("timeout").pipe(Config.withDefault(Duration.seconds(60)))
}).pipe(Config.nested("providers"), Config.nested("rosterd"))

export interface ProviderHttp {
  /** GETs `pathOrUrl` (relative to the base URL, or a path+query the server gave in a link) and decodes it. */
  readonly getJson: <A, I>(pathOrUrl: string, schema: Schema.Schema<A, I>) => Effect.Effect<A, ProviderError>
  /** Like `getJson`, with the response headers (lower-case names): paging totals and links. */
  readonly getJsonWithHeaders: <A, I>(
    pathOrUrl: string,
    schema: Schema.Schema<A, I>
  ) => Effect.Effect<{ readonly value: A; readonly headers: Readonly<Record<string, string>> }, ProviderError>
  /** Like `getJson`, but a 404 is a value (`null`), not a failure. */
  readonly getJsonOrNotFound: <A, I>(pathOrUrl: string, schema: Schema.Schema<A, I>) => Effect.Effect<A | null, ProviderError>
}

export interface ProviderHttpOptions {
  /** For messages: "Clever", "the OneRoster server". */
  readonly name: string
  /** For metrics labels: the provider's id (`clever`, `oneroster-rest`); by default derived from `name`. */
  readonly provider?: string
  readonly baseUrl: string
  /** Adds credentials to a request (a bearer token, an OAuth 1.0a signature of the final URL). */
  readonly authorize: (request: HttpClientRequest.HttpClientRequest) => Effect.Effect<HttpClientRequest.HttpClientRequest>
  /** The budget this credential draws from. */
  readonly budget: RateLimiter.RateLimiter
  readonly retry: RetryPolicy
}

/** A transient failure: worth another attempt. */
interface Transient {
  readonly _tag: "Transient"
  /** For the metrics' `reason` label: an HTTP status code, `timeout`, `connection`, `broken` or `invalid_body`. */
  readonly kind: string
  readonly reason: string
  /** The server said how long to wait. */
  readonly wait?: Duration.Duration | undefined
}

const transient = (kind: string, reason: string, wait?: Duration.Duration): Transient => ({ _tag: "Transient", kind, reason, wait })

/** The provider's id in metrics labels (never a URL, never a credential). */
const providerId = (options: ProviderHttpOptions) =>
  options.provider ?? (/clever/i.test(options.name) ? "clever" : /oneroster/i.test(options.name) ? "oneroster-rest" : "other")

/** `Retry-After` (seconds or HTTP date) or `X-RateLimit-Reset` (unix seconds), relative to `now`. */
export const rateLimitWait = (headers: Readonly<Record<string, string>>, now: number): Duration.Duration | undefined => {
  const retryAfter = headers["retry-after"]
  if (retryAfter !== undefined) {
    const seconds = Number(retryAfter)
    if (Number.isFinite(seconds)) return Duration.seconds(Math.max(0, seconds))
    const date = Date.parse(retryAfter)
    if (!Number.isNaN(date)) return Duration.millis(Math.max(0, date - now))
  }
  const reset = Number(headers["x-ratelimit-reset"])
  if (Number.isFinite(reset) && reset > 0) return Duration.millis(Math.max(0, reset * 1000 - now))
  return undefined
}

/** Path and query of a URL, for messages (no host: it may carry credentials; no fragment). */
const where = (url: string) => {
  try {
    const parsed = new URL(url)
    return parsed.pathname + parsed.search
  } catch {
    return url
  }
}

export const makeProviderHttp = (options: ProviderHttpOptions) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const metrics = yield* Metrics
    const provider = providerId(options)
    const policy = options.retry
    const base = options.baseUrl.replace(/\/+$/, "")
    const urlOf = (pathOrUrl: string) => (/^https?:\/\//.test(pathOrUrl) ? pathOrUrl : `${base}${pathOrUrl.startsWith("/") ? "" : "/"}${pathOrUrl}`)

    /** One attempt: a response body (text), 404 as null, or a transient / final failure. */
    const attempt = (url: string) =>
      Effect.gen(function*() {
        const request = yield* options.authorize(HttpClientRequest.get(url).pipe(HttpClientRequest.acceptJson))
        // Each attempt counts once: by its status as soon as the headers arrive, else by what went wrong.
        let counted = false
        const count = (status: string) =>
          Effect.suspend(() => {
            if (counted) return Effect.void
            counted = true
            return metrics.providerRequest(provider, status)
          })
        const result = yield* options.budget(
          client.execute(request).pipe(
            Effect.tap((response) => count(String(response.status))),
            Effect.flatMap((response) => Effect.map(response.text, (text) => ({ status: response.status, headers: response.headers, text }))),
            Effect.scoped,
            Effect.timeoutFail({ duration: policy.timeout, onTimeout: () => transient("timeout", `no answer within ${Duration.format(policy.timeout)}`) })
          )
        ).pipe(
          Effect.catchTags({
            RequestError: (error) => Effect.fail(transient("connection", `connection failed (${error.reason})`)),
            ResponseError: (error) => Effect.fail(transient("broken", `the response broke off (${error.reason})`))
          }),
          Effect.tapError((failure) => count(failure.kind))
        )
        const { headers, status, text } = result
        if (status === 200) return { text, headers }
        if (status === 404) return null
        if (status === 401 || status === 403) {
          return yield* new ProviderError({
            reason: "Unauthorized",
            message: `${options.name} refused the credentials (HTTP ${status}) for ${where(url)}; check the district's token`
          })
        }
        if (status === 429) return yield* Effect.fail(transient("429", "rate limited (HTTP 429)", rateLimitWait(headers, Date.now()) ?? policy.base))
        if (status >= 500 || status === 408) return yield* Effect.fail(transient(String(status), `HTTP ${status}`))
        return yield* new ProviderError({ reason: "Malformed", message: `${options.name} answered HTTP ${status} for ${where(url)}` })
      })

    /** Attempts until a body, with the waits of the policy; gives up as `Unreachable`. */
    type Body = { readonly text: string; readonly headers: Readonly<Record<string, string>> }
    const fetchText = (url: string): Effect.Effect<Body | null, ProviderError> => {
      const loop = (n: number): Effect.Effect<Body | null, ProviderError> =>
        attempt(url).pipe(
          Effect.catchIf((error): error is Transient => error._tag === "Transient", (failure) =>
            Effect.gen(function*() {
              if (n >= policy.attempts) {
                return yield* new ProviderError({
                  reason: "Unreachable",
                  message: `${options.name}: ${where(url)} failed ${n} times, last: ${failure.reason}`
                })
              }
              const backoff = Duration.min(Duration.times(policy.base, 2 ** (n - 1)), policy.max)
              const wanted = failure.wait ?? backoff
              if (Duration.greaterThan(wanted, policy.maxRateLimitWait)) {
                return yield* new ProviderError({
                  reason: "Unreachable",
                  message: `${options.name} asks to wait ${Duration.format(wanted)} for ${where(url)}; giving up this run`
                })
              }
              const jitter = yield* Random.nextRange(0.8, 1.2)
              yield* metrics.providerRetry(provider, failure.kind)
              yield* Effect.logDebug("provider request retried").pipe(
                Effect.annotateLogs({ provider: options.name, path: where(url), reason: failure.reason, attempt: n })
              )
              yield* Effect.sleep(Duration.times(wanted, failure.wait !== undefined ? Math.max(1, jitter) : jitter))
              return yield* loop(n + 1)
            })),
          Effect.mapError((error) => error as ProviderError)
        )
      return loop(1).pipe(Effect.withSpan("ProviderHttp.get", { attributes: { provider: options.name, path: where(url) } }))
    }

    const decode = <A, I>(url: string, text: string, schema: Schema.Schema<A, I>) =>
      Effect.gen(function*() {
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          return yield* Either.left(transient("invalid_body", "the body is not JSON (cut off, or an error page)"))
        }
        const decoded = Schema.decodeUnknownEither(schema)(json, { errors: "first" })
        if (Either.isLeft(decoded)) {
          const [issue] = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
          return yield* new ProviderError({
            reason: "Malformed",
            message: `${options.name}: ${where(url)} is not the expected JSON (at ${issue?.path.join(".") || "the top"}: ${
              issue?._tag === "Missing" ? "missing" : "unexpected value"
            })`
          })
        }
        return decoded.right
      })

    /** GET + decode, where a body that is not JSON at all counts as a transient failure too. */
    const getJsonOr = <A, I>(pathOrUrl: string, schema: Schema.Schema<A, I>, allowNotFound: boolean) => {
      const url = urlOf(pathOrUrl)
      const loop = (n: number): Effect.Effect<{ value: A; headers: Body["headers"] } | null, ProviderError> =>
        fetchText(url).pipe(
          Effect.flatMap((body) => {
            if (body === null) {
              return allowNotFound
                ? Effect.succeed(null)
                : Effect.fail(new ProviderError({ reason: "Malformed", message: `${options.name} answered HTTP 404 for ${where(url)}` }))
            }
            return decode(url, body.text, schema).pipe(
              Effect.map((value) => ({ value, headers: body.headers })),
              Effect.catchIf((e): e is Transient => e._tag === "Transient", (failure) =>
                n >= policy.attempts
                  ? Effect.fail(new ProviderError({ reason: "Malformed", message: `${options.name}: ${where(url)}: ${failure.reason}` }))
                  : metrics.providerRetry(provider, failure.kind).pipe(
                    Effect.zipRight(Effect.sleep(Duration.times(policy.base, n))),
                    Effect.zipRight(loop(n + 1))
                  )),
              Effect.mapError((e) => e as ProviderError)
            )
          })
        )
      return loop(1)
    }

    return {
      getJson: <A, I>(pathOrUrl: string, schema: Schema.Schema<A, I>) =>
        getJsonOr(pathOrUrl, schema, false).pipe(Effect.map((result) => result!.value)),
      getJsonWithHeaders: <A, I>(pathOrUrl: string, schema: Schema.Schema<A, I>) =>
        getJsonOr(pathOrUrl, schema, false).pipe(Effect.map((result) => result!)),
      getJsonOrNotFound: <A, I>(pathOrUrl: string, schema: Schema.Schema<A, I>) =>
        getJsonOr(pathOrUrl, schema, true).pipe(Effect.map((result) => result?.value ?? null))
    } satisfies ProviderHttp
  })

/**
 * Request budgets, one per credential, shared by all runs in this process (several
 * districts can share a credential; a run retried soon after must not start a fresh
 * allowance). Keyed by a hash: the credential itself is never kept as a key.
 */
export class ProviderBudgets extends Effect.Service<ProviderBudgets>()("rosterd/ProviderBudgets", {
  scoped: Effect.gen(function*() {
    const scope = yield* Effect.scope
    const budgets = yield* SynchronizedRef.make(new Map<string, RateLimiter.RateLimiter>())
    return {
      /** The budget of `credential`: `perMinute` requests per minute. */
      forCredential: (provider: string, credential: string, perMinute: number): Effect.Effect<RateLimiter.RateLimiter> => {
        const key = `${provider}:${perMinute}:${createHash("sha256").update(credential).digest("hex").slice(0, 16)}`
        return SynchronizedRef.modifyEffect(budgets, (map) => {
          const existing = map.get(key)
          if (existing !== undefined) return Effect.succeed([existing, map] as const)
          return RateLimiter.make({ limit: perMinute, interval: Duration.minutes(1), algorithm: "token-bucket" }).pipe(
            Effect.provideService(Scope.Scope, scope),
            Effect.map((limiter) => [limiter, new Map(map).set(key, limiter)] as const)
          )
        })
      }
    }
  })
}) {}
