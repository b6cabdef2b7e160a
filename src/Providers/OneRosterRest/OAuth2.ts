import { FetchHttpClient, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientResponse } from "@effect/platform"
import { Clock, Duration, Effect, Either, Random, Schema, Stream } from "effect"
import { createHash } from "node:crypto"
import { ProviderError } from "../../Domain/Errors.ts"
import { Metrics } from "../../Metrics/Metrics.ts"
import type { RetryPolicy } from "../Http.ts"

/**
 * OAuth 2.0 client credentials (RFC 6749 §4.4), as Infinite Campus, Aeries, PowerSchool's
 * OneRoster plugin and the Ed-Fi OneRoster service ask for it — for OneRoster 1.1 and 1.2.
 *
 * - The token request is a `POST` of `grant_type=client_credentials` (and `scope` when the
 *   district gives one) to the token URL, the client authenticated with HTTP Basic (RFC 6749
 *   §2.3.1, the default) or with `client_id`/`client_secret` in the body, as the server wants.
 * - A token is kept **in memory only**, per credential (token URL, client, secret, scope),
 *   until shortly before its `expires_in` (a tenth of its life, at most a minute, earlier),
 *   read with Effect's `Clock`; a token without `expires_in` is kept until the API refuses it.
 *   Concurrent requests share one token request.
 * - A 401 from the API renews the token once for that request (a token revoked or expired
 *   early); a second 401 fails the run (src/Providers/Http.ts, `renew`).
 * - A refusal by the token endpoint (400 `invalid_client`, 401, 403) fails the run at once,
 *   before anything is read; 5xx, 408, 429, timeouts and dropped connections are retried
 *   with the providers' bounded backoff. Redirects are not followed (the secret would go
 *   with them).
 *
 * Neither the secret nor a token appears in a message, a log line or a metric label:
 * messages name the token URL's path and the HTTP status, and an `error` code only when it
 * is a plain RFC 6749 code.
 */

export interface ClientCredentials {
  readonly tokenUrl: string
  readonly clientId: string
  readonly clientSecret: string
  readonly scope: string | null
  /** Where the client authenticates: HTTP Basic (default) or the form body. */
  readonly tokenAuth: "basic" | "body"
}

/** The token endpoint's answer (RFC 6749 §5.1); `expires_in` as a number or its digits. */
const TokenResponse = Schema.Struct({
  access_token: Schema.String.pipe(Schema.minLength(1)),
  token_type: Schema.optional(Schema.String),
  expires_in: Schema.optional(Schema.Union(Schema.Number, Schema.NumberFromString))
})

/** Token answers are small: a body past this is not one. */
const MAX_TOKEN_BYTES = 64 * 1024

/** How much earlier than `expires_in` a token is renewed: a tenth of its life, at most a minute. */
export const renewalMargin = (lifetimeMs: number) => Math.min(60_000, lifetimeMs / 10)

interface Cached {
  readonly token: string
  /** Clock millis after which the token is renewed before use; `Infinity` without `expires_in`. */
  readonly renewAt: number
}

/** RFC 6749 §2.3.1: id and secret form-encoded, then joined for Basic. */
const formEncode = (value: string) => encodeURIComponent(value).replace(/%20/g, "+")

/** The path of the token URL, for messages (no host, no query: a query could carry anything). */
const pathOf = (url: string) => {
  try {
    return new URL(url).pathname
  } catch {
    return "(the token URL)"
  }
}

const cacheKey = (c: ClientCredentials) =>
  createHash("sha256").update([c.tokenUrl, c.clientId, c.clientSecret, c.scope ?? "", c.tokenAuth].join("\u0000")).digest("hex")

/**
 * The tokens of one provider instance (the daemon's, the CLI's): a token per credential,
 * shared by every run and request using it. Keys are hashes; nothing is written anywhere.
 */
export const makeTokenCache = (dependencies: { readonly client: HttpClient.HttpClient; readonly retry: RetryPolicy }) => {
  const tokens = new Map<string, Cached>()
  // One token request at a time: requests in flight that all find the token expired wait for one.
  const lock = Effect.unsafeMakeSemaphore(1)
  const policy = dependencies.retry

  const request = (c: ClientCredentials) => {
    const where = pathOf(c.tokenUrl)
    const form: Array<readonly [string, string]> = [["grant_type", "client_credentials"]]
    if (c.scope !== null) form.push(["scope", c.scope])
    if (c.tokenAuth === "body") form.push(["client_id", c.clientId], ["client_secret", c.clientSecret])
    const body = form.map(([k, v]) => `${formEncode(k)}=${formEncode(v)}`).join("&")
    let req = HttpClientRequest.post(c.tokenUrl).pipe(
      HttpClientRequest.acceptJson,
      HttpClientRequest.bodyText(body, "application/x-www-form-urlencoded")
    )
    if (c.tokenAuth === "basic") {
      req = HttpClientRequest.setHeader(req, "authorization", `Basic ${Buffer.from(`${formEncode(c.clientId)}:${formEncode(c.clientSecret)}`).toString("base64")}`)
    }
    return { req, where }
  }

  const readBody = (response: HttpClientResponse.HttpClientResponse, where: string) =>
    Effect.gen(function*() {
      const chunks: Array<Uint8Array> = []
      let size = 0
      yield* Stream.runForEach(response.stream, (chunk) => {
        size += chunk.length
        if (size > MAX_TOKEN_BYTES) {
          return Effect.fail(new ProviderError({ reason: "TooLarge", message: `the OAuth 2.0 token endpoint ${where} answered with more than 64 KB; nothing was applied` }))
        }
        chunks.push(chunk)
        return Effect.void
      })
      return new TextDecoder().decode(Buffer.concat(chunks, size))
    })

  type Outcome =
    | { readonly _tag: "Token"; readonly token: string; readonly lifetimeMs: number | null }
    | { readonly _tag: "Retry"; readonly reason: string; readonly kind: string }

  /** One token request: a token, a reason to try again, or a failure of the run. */
  const attempt = (c: ClientCredentials) =>
    Effect.gen(function*() {
      const metrics = yield* Metrics
      const { req, where } = request(c)
      const refused = (status: number, code: string | null) =>
        new ProviderError({
          reason: "Unauthorized",
          message: `the OAuth 2.0 token endpoint ${where} refused the client credentials (HTTP ${status}${code === null ? "" : ` ${code}`}); check the district's client id and secret`
        })
      return yield* dependencies.client.execute(req).pipe(
        Effect.flatMap((response) =>
          Effect.gen(function*() {
            yield* metrics.providerRequest("oneroster-rest", String(response.status))
            const status = response.status
            if (status === 200) {
              const text = yield* readBody(response, where)
              let json: unknown
              try {
                json = JSON.parse(text)
              } catch {
                return { _tag: "Retry", kind: "invalid_body", reason: "the token answer is not JSON" } as Outcome
              }
              const decoded = Schema.decodeUnknownEither(TokenResponse)(json)
              if (Either.isLeft(decoded)) {
                return yield* new ProviderError({ reason: "Malformed", message: `the OAuth 2.0 token endpoint ${where} answered without an access_token` })
              }
              const type = decoded.right.token_type
              if (type !== undefined && type.toLowerCase() !== "bearer") {
                return yield* new ProviderError({ reason: "Malformed", message: `the OAuth 2.0 token endpoint ${where} gave a token of a type other than bearer` })
              }
              const expiresIn = decoded.right.expires_in
              return {
                _tag: "Token",
                token: decoded.right.access_token,
                lifetimeMs: expiresIn !== undefined && Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : null
              } satisfies Outcome as Outcome
            }
            if (status === 400 || status === 401 || status === 403) {
              // The `error` code of RFC 6749 §5.2 (invalid_client, invalid_scope, …), never its free text.
              const text = yield* readBody(response, where).pipe(Effect.orElseSucceed(() => ""))
              let code: string | null = null
              try {
                const error = (JSON.parse(text) as { readonly error?: unknown }).error
                if (typeof error === "string" && /^[a-z_]{1,40}$/.test(error)) code = error
              } catch {
                // not JSON: the status says enough
              }
              return yield* refused(status, code)
            }
            if (status >= 500 || status === 408 || status === 429) return { _tag: "Retry", kind: String(status), reason: `HTTP ${status}` } as Outcome
            return yield* new ProviderError({
              reason: "Malformed",
              message: `the OAuth 2.0 token endpoint ${where} answered HTTP ${status}${status >= 300 && status < 400 ? " (a redirect: not followed, the secret would go with it)" : ""}`
            })
          })
        ),
        Effect.scoped,
        Effect.provideService(FetchHttpClient.RequestInit, { redirect: "manual" }),
        Effect.timeoutFail({
          duration: policy.timeout,
          onTimeout: () => "timeout" as const
        }),
        Effect.catchAll((error): Effect.Effect<Outcome, ProviderError> => {
          if (error === "timeout") return Effect.succeed({ _tag: "Retry", kind: "timeout", reason: `no answer within ${Duration.format(policy.timeout)}` })
          if (error._tag === "ProviderError") return Effect.fail(error)
          return Effect.succeed({ _tag: "Retry", kind: error._tag === "RequestError" ? "connection" : "broken", reason: `the token request failed (${error.reason})` })
        })
      )
    })

  /** A fresh token from the endpoint, with the providers' bounded retries. */
  const fetchToken = (c: ClientCredentials) =>
    Effect.gen(function*() {
      const metrics = yield* Metrics
      for (let n = 1;; n++) {
        const outcome = yield* attempt(c)
        if (outcome._tag === "Token") return outcome
        if (n >= policy.attempts) {
          return yield* new ProviderError({
            reason: "Unreachable",
            message: `the OAuth 2.0 token endpoint ${pathOf(c.tokenUrl)} failed ${n} times, last: ${outcome.reason}`
          })
        }
        yield* metrics.providerRetry("oneroster-rest", outcome.kind)
        const jitter = yield* Random.nextRange(0.8, 1.2)
        yield* Effect.sleep(Duration.times(Duration.min(Duration.times(policy.base, 2 ** (n - 1)), policy.max), jitter))
      }
    }).pipe(Effect.withSpan("OAuth2.fetchToken"))

  return {
    /** The credential's token: the cached one while it is fresh, else a new one. */
    token: (c: ClientCredentials) =>
      lock.withPermits(1)(Effect.gen(function*() {
        const key = cacheKey(c)
        const now = yield* Clock.currentTimeMillis
        const cached = tokens.get(key)
        if (cached !== undefined && now < cached.renewAt) return cached.token
        const fresh = yield* fetchToken(c)
        const after = yield* Clock.currentTimeMillis
        const renewAt = fresh.lifetimeMs === null ? Infinity : after + fresh.lifetimeMs - renewalMargin(fresh.lifetimeMs)
        tokens.set(key, { token: fresh.token, renewAt })
        return fresh.token
      })),
    /** The API refused `token`: forget it (unless another request already replaced it). */
    invalidate: (c: ClientCredentials, token: string) =>
      Effect.sync(() => {
        const key = cacheKey(c)
        if (tokens.get(key)?.token === token) tokens.delete(key)
      })
  }
}

export type TokenCache = ReturnType<typeof makeTokenCache>

/**
 * The request hooks for `makeProviderHttp`: a bearer token on each request, and on a 401
 * the token that request carried is dropped, so the retry gets a new one.
 */
export const oauth2Authorization = (cache: TokenCache, credentials: ClientCredentials) => ({
  authorize: (request: HttpClientRequest.HttpClientRequest) =>
    Effect.map(cache.token(credentials), (token) => HttpClientRequest.bearerToken(request, token)),
  renew: (request: HttpClientRequest.HttpClientRequest) => {
    const header = request.headers["authorization"] ?? ""
    const token = /^Bearer (.+)$/.exec(header)?.[1]
    return Effect.as(token === undefined ? Effect.void : cache.invalidate(credentials, token), true)
  }
})
