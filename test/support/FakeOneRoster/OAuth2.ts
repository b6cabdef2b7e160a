/**
 * The fake OneRoster server's OAuth 2.0 token endpoint (client credentials, RFC 6749 §4.4),
 * as Infinite Campus, Aeries or PowerSchool serve one: `POST` a form with
 * `grant_type=client_credentials` (and `scope`), the client authenticated with HTTP Basic
 * or with `client_id`/`client_secret` in the body, as the server is configured.
 *
 * Tokens are random, expire after `expiresInSeconds` of the server clock, or — for tests of
 * expiry in the middle of a run — after `maxUses` API requests each (`expireAll()` ends
 * every token now). A wrong client secret is a 401 `invalid_client`; an expired or unknown
 * token at the API a 401 `invalid_token` (FakeOneRosterServer.ts).
 */
import { randomBytes, timingSafeEqual } from "node:crypto"

export interface OAuth2Options {
  readonly clientId: string
  readonly clientSecret: string
  /** Where the client must authenticate (default `basic`; `either` accepts both). */
  readonly clientAuth?: "basic" | "body" | "either"
  /** Lifetime sent as `expires_in` (default 3600); `null` sends none. */
  readonly expiresInSeconds?: number | null
  /** A scope the request must ask for, when given. */
  readonly scope?: string
  /** The token endpoint's path (default `/oauth2/token`). */
  readonly path?: string
}

export interface TokenReply {
  readonly status: number
  readonly body: string
  readonly headers: Readonly<Record<string, string>>
}

interface Issued {
  readonly expiresAt: number
  uses: number
}

const JSON_TYPE = { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" }

const same = (a: string, b: string) => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** RFC 6749 §2.3.1: Basic's user and password are form-encoded. */
const formDecode = (value: string) => decodeURIComponent(value.replace(/\+/g, " "))

export class TokenIssuer {
  readonly path: string
  /** Token requests answered, by outcome. */
  readonly log: Array<{ readonly status: number; readonly error?: string }> = []
  /** API requests per token before it counts as expired; settable by tests (undefined: no limit). */
  maxUses: number | undefined = undefined
  private readonly tokens = new Map<string, Issued>()

  constructor(private readonly options: OAuth2Options, private readonly now: () => number = Date.now) {
    this.path = options.path ?? "/oauth2/token"
  }

  /** Tokens issued so far. */
  get issued(): number {
    return this.log.filter((entry) => entry.status === 200).length
  }

  /** Every token issued so far stops being accepted. */
  expireAll(): void {
    for (const [token, issued] of this.tokens) this.tokens.set(token, { ...issued, expiresAt: -1 })
  }

  /** Answers a token request. */
  issue(method: string, authorization: string | undefined, contentType: string | undefined, body: string): TokenReply {
    const fail = (status: number, error: string, headers: Record<string, string> = {}): TokenReply => {
      this.log.push({ status, error })
      return { status, body: JSON.stringify({ error, error_description: `refused: ${error}` }), headers: { ...JSON_TYPE, ...headers } }
    }
    if (method !== "POST") return fail(405, "invalid_request", { Allow: "POST" })
    if (!(contentType ?? "").toLowerCase().startsWith("application/x-www-form-urlencoded")) return fail(400, "invalid_request")
    const form = new URLSearchParams(body)
    if (form.get("grant_type") !== "client_credentials") return fail(400, "unsupported_grant_type")
    const mode = this.options.clientAuth ?? "basic"
    let client: { readonly id: string; readonly secret: string } | undefined
    const basic = /^\s*Basic\s+(\S+)\s*$/i.exec(authorization ?? "")
    if (basic !== null && mode !== "body") {
      const decoded = Buffer.from(basic[1]!, "base64").toString("utf8")
      const colon = decoded.indexOf(":")
      if (colon > 0) client = { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) }
    } else if (form.has("client_id") && mode !== "basic") {
      client = { id: form.get("client_id")!, secret: form.get("client_secret") ?? "" }
    }
    if (client === undefined || client.id !== this.options.clientId || !same(client.secret, this.options.clientSecret)) {
      return fail(401, "invalid_client", { "WWW-Authenticate": 'Basic realm="oneroster"' })
    }
    if (this.options.scope !== undefined && form.get("scope") !== this.options.scope) return fail(400, "invalid_scope")
    const token = randomBytes(24).toString("base64url")
    const lifetime = this.options.expiresInSeconds === undefined ? 3600 : this.options.expiresInSeconds
    this.tokens.set(token, { expiresAt: lifetime === null ? Infinity : this.now() + lifetime * 1000, uses: 0 })
    this.log.push({ status: 200 })
    const answer = { access_token: token, token_type: "Bearer", ...(lifetime === null ? {} : { expires_in: lifetime }), ...(this.options.scope === undefined ? {} : { scope: this.options.scope }) }
    return { status: 200, body: JSON.stringify(answer), headers: JSON_TYPE }
  }

  /** Whether the API accepts `token`; counts a use. */
  check(token: string): "ok" | "expired" | "unknown" {
    const issued = this.tokens.get(token)
    if (issued === undefined) return "unknown"
    if (this.now() >= issued.expiresAt || (this.maxUses !== undefined && issued.uses >= this.maxUses)) return "expired"
    issued.uses++
    return "ok"
  }
}
