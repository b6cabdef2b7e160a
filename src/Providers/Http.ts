import { FetchHttpClient, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError, HttpClientResponse } from "@effect/platform"
import { Config, Duration, Effect, Either, ParseResult, Random, RateLimiter, Schema, Scope, Stream, SynchronizedRef } from "effect"
import { createHash } from "node:crypto"
import { ProviderError } from "../Domain/Errors.ts"
import { Metrics } from "../Metrics/Metrics.ts"
import { formatBytes, truncate } from "./Limits.ts"

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
 * - a body that is not the expected JSON fails with the endpoint named;
 * - a body is read as a stream and counted: past `rosterd.providers.maxResponseBytes` the
 *   request fails (`TooLarge`) without reading, or holding, anything beyond the cap;
 * - **one origin**: every request — a path, a link a server handed us, a redirect — must be
 *   on the origin of the district's `baseUrl`, so the credentials (a bearer token, an OAuth
 *   signature) never go anywhere else. Another host or port, or `http` where the district
 *   says `https`, fails the run (`Unsafe`). Redirects are not left to `fetch`: a same-origin
 *   one is followed (at most 5), any other refused.
 *
 * Every failure is a `ProviderError` that fails the run before anything is applied.
 * Messages name the endpoint path (never the token, never response bodies, never a URL
 * a server made up for another origin).
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

/**
 * A REST provider's `baseUrl` setting: an http(s) URL, the district's origin (every request
 * stays on it). Checked where the settings are decoded: `district add` and each run.
 */
export const BaseUrl = Schema.String.pipe(Schema.pattern(/^https?:\/\//, { message: () => "must be an http(s) URL" }))

/** `rosterd.providers.*` (`ROSTERD_PROVIDERS_RETRY_BASE`, …). */

export const RetryPolicyConfig: Config.Config<RetryPolicy> = Config.all({
  attempts: Config.integer("attempts").pipe(Config.withDefault(6)),
  base: Config.duration("retryBase").pipe(Config.withDefault(Duration.seconds(1))),
  max: Config.duration("retryMax").pipe(Config.withDefault(Duration.seconds(30))),
  maxRateLimitWait: Config.duration("maxRateLimitWait").pipe(Config.withDefault(Duration.minutes(2))),
  timeout: Config.duration("timeout").pipe(Config.withDefault(Duration.seconds(60)))
}).pipe(Config.nested("providers"), Config.nested("rosterd"))

/** A decoded response with what paging needs: headers (lower-case names), its size, the URL it came from. */
export interface Fetched<A> {
  readonly value: A
  readonly headers: Readonly<Record<string, string>>
  /** The body's size in bytes (as delivered, after any content decoding). */
  readonly bytes: number
  /** The absolute URL that answered (after same-origin redirects). */
  readonly url: URL
}

export interface ProviderHttp {
  /** GETs `pathOrUrl` (relative to the base URL, or a URL on its origin the server gave in a link) and decodes it. */
  readonly getJson: <A, I>(pathOrUrl: string | URL, schema: Schema.Schema<A, I>) => Effect.Effect<A, ProviderError>
  /** Like `getJson`, but a 404 is a value (`null`), not a failure. */
  readonly getJsonOrNotFound: <A, I>(pathOrUrl: string | URL, schema: Schema.Schema<A, I>) => Effect.Effect<A | null, ProviderError>
  /** Like `getJson`, with headers, size and URL: a page of a listing. */
  readonly getPage: <A, I>(pathOrUrl: string | URL, schema: Schema.Schema<A, I>) => Effect.Effect<Fetched<A>, ProviderError>
  /** Like `getPage`, but a 404 is `null`. */
  readonly getPageOrNotFound: <A, I>(pathOrUrl: string | URL, schema: Schema.Schema<A, I>) => Effect.Effect<Fetched<A> | null, ProviderError>
  /**
   * A link a server handed us on the page `from` (a `next` link), resolved like any request
   * and refused (`Unsafe`, naming `from`, never the link) unless it is on the district's origin.
   */
  readonly link: (from: URL, link: string) => Effect.Effect<URL, ProviderError>
}

export interface ProviderHttpOptions {
  /** For messages: "Clever", "the OneRoster server". */
  readonly name: string
  /** For metrics labels: the provider's id (`clever`, `oneroster-rest`); by default derived from `name`. */
  readonly provider?: string
  readonly baseUrl: string
  /** Adds credentials to a request (a bearer token, an OAuth 1.0a signature of the final URL, an OAuth 2.0 token it may first have to ask for). */
  readonly authorize: (request: HttpClientRequest.HttpClientRequest) => Effect.Effect<HttpClientRequest.HttpClientRequest, ProviderError>
  /**
   * A 401 for `request`: may the credentials be renewed (an OAuth 2.0 token revoked or expired
   * early)? When it answers true the request is sent once more, authorized afresh; a second 401
   * fails as any other. Without it, a 401 fails at once.
   */
  readonly renew?: (request: HttpClientRequest.HttpClientRequest) => Effect.Effect<boolean, ProviderError>
  /** The budget this credential draws from. */
  readonly budget: RateLimiter.RateLimiter
  readonly retry: RetryPolicy
  /** Largest body read (`rosterd.providers.maxResponseBytes`). */
  readonly maxResponseBytes: number
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

/**
 * `Retry-After` (seconds or HTTP date) or `X-RateLimit-Reset` (unix seconds), relative to
 * `now`. Numbers are read as plain digits only (`Number()` would take `""` as 0, `0x10` as
 * 16, `1e3` as 1000); anything else is as good as absent: the policy's own backoff applies.
 */
export const rateLimitWait = (headers: Readonly<Record<string, string>>, now: number): Duration.Duration | undefined => {
  const retryAfter = headers["retry-after"]?.trim()
  if (retryAfter !== undefined && retryAfter !== "") {
    if (/^\d{1,16}$/.test(retryAfter)) return Duration.seconds(Number(retryAfter))
    const date = /^[A-Za-z]{3}, /.test(retryAfter) ? Date.parse(retryAfter) : NaN
    if (!Number.isNaN(date)) return Duration.millis(Math.max(0, date - now))
  }
  const reset = headers["x-ratelimit-reset"]?.trim()
  if (reset !== undefined && /^\d{1,16}(\.\d{1,6})?$/.test(reset) && Number(reset) > 0) return Duration.millis(Math.max(0, Number(reset) * 1000 - now))
  return undefined
}

/** Path and query of a URL, for messages (no host: it may carry credentials; no fragment; percent-encoded, kept short). */
const where = (url: string | URL) => {
  try {
    const parsed = typeof url === "string" ? new URL(url) : url
    return truncate(parsed.pathname + parsed.search)
  } catch {
    return "(a URL that does not parse)"
  }
}

/** At most this many same-origin redirects per request. */
const MAX_REDIRECTS = 5
const REDIRECTS = new Set([301, 302, 303, 307, 308])

/** What one attempt brought back. */
type Answer =
  | { readonly _tag: "Body"; readonly text: string; readonly bytes: number; readonly headers: Readonly<Record<string, string>> }
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "Redirect"; readonly location: string }
  | { readonly _tag: "Renewed" }

/** An answer, or a status to judge (401, 429, 5xx, …). */
type Reply = Answer | { readonly _tag: "Status"; readonly status: number; readonly headers: Readonly<Record<string, string>> }

export const makeProviderHttp = (options: ProviderHttpOptions) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const metrics = yield* Metrics
    const provider = providerId(options)
    const policy = options.retry
    const maxBytes = options.maxResponseBytes
    const base = options.baseUrl.replace(/\/+$/, "")
    const home = new URL(base)

    /**
     * Where a request for `pathOrUrl` goes, or why it may not. `/v3.0/users` and `users` are
     * appended to the base URL (which may have a path of its own); an absolute URL (or `//host`)
     * must be on the base URL's origin.
     */
    const resolve = (pathOrUrl: string | URL, refused: (why: string) => string): Either.Either<URL, ProviderError> => {
      if (pathOrUrl instanceof URL) return onOrigin(pathOrUrl, refused)
      let url: URL
      try {
        url = /^[a-z][a-z0-9+.-]*:|^\/\//i.test(pathOrUrl)
          ? new URL(pathOrUrl, home)
          : new URL(`${base}${pathOrUrl.startsWith("/") ? "" : "/"}${pathOrUrl}`)
      } catch {
        return Either.left(new ProviderError({ reason: "Malformed", message: refused("is not a URL") }))
      }
      return onOrigin(url, refused)
    }

    /** The credentials go to the district's origin only: same scheme, host and port. */
    const onOrigin = (url: URL, refused: (why: string) => string): Either.Either<URL, ProviderError> => {
      if (url.origin === home.origin) return Either.right(url)
      const downgrade = home.protocol === "https:" && url.protocol === "http:" && url.hostname === home.hostname
      return Either.left(
        new ProviderError({
          reason: "Unsafe",
          message: refused(
            downgrade
              ? "goes from https to http; not followed (the credentials are only sent over https to the district's baseUrl)"
              : "points to another origin than the district's baseUrl; not followed (the credentials are only sent there)"
          )
        })
      )
    }

    const tooLarge = (url: URL) =>
      new ProviderError({
        reason: "TooLarge",
        message: `${options.name}: the response to ${where(url)} is larger than ${formatBytes(maxBytes)} (rosterd.providers.maxResponseBytes); nothing was applied`
      })

    /** The body, counted as it streams in: past the cap, stop reading (the rest is never buffered). */
    const readBody = (response: HttpClientResponse.HttpClientResponse, url: URL) =>
      Effect.gen(function*() {
        const declared = response.headers["content-length"]?.trim()
        if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > maxBytes) return yield* tooLarge(url)
        const chunks: Array<Uint8Array> = []
        let size = 0
        yield* Stream.runForEach(response.stream, (chunk) => {
          size += chunk.length
          if (size > maxBytes) return tooLarge(url)
          chunks.push(chunk)
          return Effect.void
        })
        // As `Response.text()` decodes: UTF-8, a byte-order mark dropped, bad bytes replaced.
        return { text: new TextDecoder().decode(Buffer.concat(chunks, size)), bytes: size }
      })

    /** One attempt: a body, a 404, a redirect, or a transient / final failure. */
    const attempt = (url: URL, mayRenew: boolean) =>
      Effect.gen(function*() {
        const request = yield* options.authorize(HttpClientRequest.get(url.href).pipe(HttpClientRequest.acceptJson))
        // Each attempt counts once: by its status as soon as the headers arrive, else by what went wrong.
        let counted = false
        const count = (status: string) =>
          Effect.suspend(() => {
            if (counted) return Effect.void
            counted = true
            return metrics.providerRequest(provider, status)
          })
        const answer: Reply =
          yield* options.budget(
            client.execute(request).pipe(
              Effect.tap((response) => count(String(response.status))),
              Effect.flatMap((response): Effect.Effect<Reply, ProviderError | HttpClientError.ResponseError> => {
                if (response.status === 200) return Effect.map(readBody(response, url), (body) => ({ _tag: "Body", ...body, headers: response.headers }))
                if (response.status === 404) return Effect.succeed({ _tag: "NotFound" })
                const location = response.headers["location"]
                if (REDIRECTS.has(response.status) && location !== undefined) return Effect.succeed({ _tag: "Redirect", location })
                return Effect.succeed({ _tag: "Status", status: response.status, headers: response.headers })
              }),
              Effect.scoped,
              // Redirects are ours to check (the credentials must not follow one elsewhere).
              Effect.provideService(FetchHttpClient.RequestInit, { redirect: "manual" }),
              Effect.timeoutFail({ duration: policy.timeout, onTimeout: () => transient("timeout", `no answer within ${Duration.format(policy.timeout)}`) })
            )
          ).pipe(
            Effect.catchTags({
              RequestError: (error) => Effect.fail(transient("connection", `connection failed (${error.reason})`)),
              ResponseError: (error) => Effect.fail(transient("broken", `the response broke off (${error.reason})`))
            }),
            Effect.tapError((failure) => (failure._tag === "Transient" ? count(failure.kind) : Effect.void))
          )
        if (answer._tag !== "Status") return answer
        const { headers, status } = answer
        if (status === 401 && mayRenew && options.renew !== undefined && (yield* options.renew(request))) return { _tag: "Renewed" } as const
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

    /** Attempts until a body, with the waits of the policy; gives up as `Unreachable`. Same-origin redirects are followed. */
    type Body = Extract<Answer, { readonly _tag: "Body" }> & { readonly url: URL }
    const fetchText = (start: URL): Effect.Effect<Body | null, ProviderError> => {
      // `renewed`: this request's credentials were renewed after a 401 once already.
      const loop = (url: URL, n: number, hops: number, renewed = false): Effect.Effect<Body | null, ProviderError> =>
        attempt(url, !renewed).pipe(
          Effect.flatMap((answer): Effect.Effect<Body | null, ProviderError> => {
            if (answer._tag === "Body") return Effect.succeed({ ...answer, url })
            if (answer._tag === "NotFound") return Effect.succeed(null)
            if (answer._tag === "Renewed") return loop(url, n, hops, true)
            const refused = (why: string) => `${options.name}: the redirect of ${where(url)} ${why}`
            if (hops >= MAX_REDIRECTS) {
              return Effect.fail(new ProviderError({ reason: "Malformed", message: `${options.name}: ${where(start)} redirected more than ${MAX_REDIRECTS} times` }))
            }
            let target: URL
            try {
              target = new URL(answer.location, url)
            } catch {
              return Effect.fail(new ProviderError({ reason: "Malformed", message: refused("is not a URL") }))
            }
            return Either.match(onOrigin(target, refused), {
              onLeft: Effect.fail,
              onRight: (next) => loop(next, 1, hops + 1, renewed)
            })
          }),
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
              return yield* loop(url, n + 1, hops, renewed)
            })),
          Effect.mapError((error) => error as ProviderError)
        )
      return loop(start, 1, 0).pipe(Effect.withSpan("ProviderHttp.get", { attributes: { provider: options.name, path: where(start) } }))
    }

    const decode = <A, I>(url: URL, text: string, schema: Schema.Schema<A, I>) =>
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
            message: `${options.name}: ${where(url)} is not the expected JSON (at ${truncate(issue?.path.join(".") || "the top", 80)}: ${
              issue?._tag === "Missing" ? "missing" : "unexpected value"
            })`
          })
        }
        return decoded.right
      })

    /** GET + decode, where a body that is not JSON at all counts as a transient failure too. */
    const getOr = <A, I>(pathOrUrl: string | URL, schema: Schema.Schema<A, I>, allowNotFound: boolean): Effect.Effect<Fetched<A> | null, ProviderError> =>
      Either.match(resolve(pathOrUrl, (why) => `${options.name}: a request ${why}`), {
        onLeft: Effect.fail,
        onRight: (url) => {
          const loop = (n: number): Effect.Effect<Fetched<A> | null, ProviderError> =>
            fetchText(url).pipe(
              Effect.flatMap((body) => {
                if (body === null) {
                  return allowNotFound
                    ? Effect.succeed(null)
                    : Effect.fail(new ProviderError({ reason: "Malformed", message: `${options.name} answered HTTP 404 for ${where(url)}` }))
                }
                return decode(body.url, body.text, schema).pipe(
                  Effect.map((value): Fetched<A> => ({ value, headers: body.headers, bytes: body.bytes, url: body.url })),
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
      })

    return {
      getJson: <A, I>(pathOrUrl: string | URL, schema: Schema.Schema<A, I>) => getOr(pathOrUrl, schema, false).pipe(Effect.map((result) => result!.value)),
      getJsonOrNotFound: <A, I>(pathOrUrl: string | URL, schema: Schema.Schema<A, I>) =>
        getOr(pathOrUrl, schema, true).pipe(Effect.map((result) => result?.value ?? null)),
      getPage: <A, I>(pathOrUrl: string | URL, schema: Schema.Schema<A, I>) => getOr(pathOrUrl, schema, false).pipe(Effect.map((result) => result!)),
      getPageOrNotFound: <A, I>(pathOrUrl: string | URL, schema: Schema.Schema<A, I>) => getOr(pathOrUrl, schema, true),
      link: (from: URL, link: string) => resolve(link, (why) => `${options.name}: the next link of ${where(from)} ${why}`)
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
