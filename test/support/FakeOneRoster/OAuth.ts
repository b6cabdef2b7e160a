/**
 * Server-side OAuth 1.0a two-legged verification as a OneRoster 1.1 server (ClassLink's
 * Roster Server) does it (providers.md §2.2, RFC 5849 §3.4):
 *
 * 1. parse `Authorization: OAuth k="v",…` (values percent-decoded; `realm` ignored);
 * 2. `oauth_signature_method` must be `HMAC-SHA256` (IMS deprecated HMAC-SHA1 in 2018) and
 *    `oauth_version`, if sent, `1.0`;
 * 3. the consumer key must be known;
 * 4. `oauth_timestamp` within 10 minutes past / 5 minutes future of the server clock;
 * 5. the signature: the request's query parameters as the server decodes them (`%XX`,
 *    `+` as a space) plus the OAuth parameters, signed by `oauth-sign` — an implementation
 *    independent of both rosterd's signer and the tests' — over `GET&<base URI>&…` with
 *    `enc(secret)&`; compared in constant time;
 * 6. the nonce must not have been used by this key while its timestamp could still pass.
 *
 * The first failing check decides the 401; its description names it and never contains a
 * secret or a signature.
 */
import { timingSafeEqual } from "node:crypto"
import * as OAuthSign from "oauth-sign"

export interface OAuthCredentials {
  readonly key: string
  readonly secret: string
}

export interface OAuthWindow {
  /** How old a timestamp may be (default 600 s). */
  readonly pastSeconds: number
  /** How far ahead of the server clock a timestamp may be (default 300 s). */
  readonly futureSeconds: number
}

export type AuthCheck = "header" | "signature_method" | "version" | "consumer_key" | "timestamp" | "signature" | "nonce"

export type Verification =
  | { readonly ok: true; readonly consumerKey: string }
  | { readonly ok: false; readonly check: AuthCheck; readonly description: string }

export interface SignedRequest {
  /** `GET` */
  readonly method: string
  /** Scheme, lower-cased host, port unless default, path: what the client signed. */
  readonly baseUri: string
  /** The request's query, decoded. */
  readonly query: URLSearchParams
  /** The Authorization header. */
  readonly authorization: string
}

const REQUIRED = ["oauth_consumer_key", "oauth_signature_method", "oauth_timestamp", "oauth_nonce", "oauth_signature"] as const
const PARAM = /\s*([A-Za-z0-9_.~-]+)\s*=\s*"([^"]*)"\s*(,|$)/y

/** The parameters of an `OAuth …` Authorization header, decoded; undefined when malformed. */
export const parseOAuthHeader = (header: string): Map<string, string> | undefined => {
  const scheme = /^\s*OAuth\s+/i.exec(header)
  if (scheme === null) return undefined
  const params = new Map<string, string>()
  let at = scheme[0].length
  while (at < header.length) {
    PARAM.lastIndex = at
    const match = PARAM.exec(header)
    if (match === null || params.has(match[1]!)) return undefined
    try {
      params.set(match[1]!, decodeURIComponent(match[2]!))
    } catch {
      return undefined
    }
    at = PARAM.lastIndex
    if (match[3] === "" && at < header.length) return undefined
  }
  return params
}

const fail = (check: AuthCheck, description: string): Verification => ({ ok: false, check, description })

export class OAuthVerifier {
  private readonly secrets: ReadonlyMap<string, string>
  /** `<key> <nonce>` → when the timestamp it came with stops being accepted (ms). */
  private readonly nonces = new Map<string, number>()
  private insertsSinceSweep = 0

  constructor(
    credentials: ReadonlyArray<OAuthCredentials>,
    private readonly now: () => number = Date.now,
    private readonly window: OAuthWindow = { pastSeconds: 600, futureSeconds: 300 }
  ) {
    this.secrets = new Map(credentials.map((c) => [c.key, c.secret]))
  }

  /** Forgets the nonces seen (a test replaying a request on purpose). */
  forgetNonces(): void {
    this.nonces.clear()
  }

  verify(request: SignedRequest): Verification {
    const params = parseOAuthHeader(request.authorization)
    if (params === undefined) return fail("header", "malformed OAuth Authorization header")
    for (const name of REQUIRED) if (!params.has(name)) return fail("header", `OAuth parameter ${name} missing`)
    const method = params.get("oauth_signature_method")!
    if (method !== "HMAC-SHA256") return fail("signature_method", `oauth_signature_method ${method.slice(0, 20)} not accepted: only HMAC-SHA256`)
    const version = params.get("oauth_version")
    if (version !== undefined && version !== "1.0") return fail("version", "oauth_version must be 1.0")
    const consumerKey = params.get("oauth_consumer_key")!
    const secret = this.secrets.get(consumerKey)
    if (secret === undefined) return fail("consumer_key", "unknown oauth_consumer_key")

    const timestampText = params.get("oauth_timestamp")!
    if (!/^\d{1,12}$/.test(timestampText)) return fail("timestamp", "oauth_timestamp is not a number of seconds")
    const timestamp = Number(timestampText)
    const serverSeconds = Math.floor(this.now() / 1000)
    const skew = timestamp - serverSeconds
    if (skew < -this.window.pastSeconds || skew > this.window.futureSeconds) {
      return fail(
        "timestamp",
        `oauth_timestamp is ${Math.abs(skew)} s ${skew < 0 ? "in the past" : "in the future"} ` +
          `(accepted: ${this.window.pastSeconds} s past, ${this.window.futureSeconds} s future of the server clock)`
      )
    }

    const signed: Record<string, string | Array<string>> = Object.create(null) as Record<string, string | Array<string>>
    const add = (key: string, value: string) => {
      const existing = signed[key]
      signed[key] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value]
    }
    for (const [key, value] of request.query) if (key !== "oauth_signature") add(key, value)
    for (const [key, value] of params) if (key !== "oauth_signature" && key !== "realm") add(key, value)
    const expected = Buffer.from(OAuthSign.sign("HMAC-SHA256", request.method, request.baseUri, signed, secret))
    const given = Buffer.from(params.get("oauth_signature")!)
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return fail("signature", "oauth_signature does not match the request (signature check failed)")
    }

    // Only a verified request uses up its nonce: a forged one cannot burn nonces.
    const nonceKey = `${consumerKey} ${params.get("oauth_nonce")!}`
    const nowMs = this.now()
    const seen = this.nonces.get(nonceKey)
    if (seen !== undefined && seen >= nowMs) return fail("nonce", "oauth_nonce already used")
    this.nonces.set(nonceKey, (timestamp + this.window.pastSeconds) * 1000)
    if (++this.insertsSinceSweep >= 1000) this.sweep(nowMs)
    return { ok: true, consumerKey }
  }

  /** Drops nonces whose timestamps would be rejected anyway. */
  private sweep(nowMs: number): void {
    this.insertsSinceSweep = 0
    for (const [key, expiry] of this.nonces) if (expiry < nowMs) this.nonces.delete(key)
  }
}
