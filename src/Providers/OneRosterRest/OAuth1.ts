import { createHmac, randomBytes } from "node:crypto"

/**
 * OAuth 1.0a two-legged request signing with HMAC-SHA256, as OneRoster 1.1 servers
 * (ClassLink's Roster Server) check it (providers.md §2.2, RFC 5849 §3.4).
 *
 * Written by hand on purpose: the quirks are exactly where generic libraries differ —
 * OneRoster filters carry `'`, `>` and `=` inside a query value; `encodeURIComponent`
 * leaves `! ' ( ) *` unescaped; URLSearchParams writes spaces as `+`; some libraries split
 * the query on raw `=`. Here the query is always sent RFC 3986-encoded, and the signature
 * is computed from the *decoded* parameters of the final URL, so what is signed is what
 * the server will decode. Golden tests pin it against an independent implementation.
 */

/** RFC 3986 percent-encoding: unreserved characters stay, everything else is `%XX` (upper-case hex). */
export const percentEncode = (value: string): string =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

/** A query string with every key and value RFC 3986-encoded (spaces as `%20`, never `+`). */
export const encodeQuery = (params: ReadonlyArray<readonly [string, string]>): string =>
  params.map(([key, value]) => `${percentEncode(key)}=${percentEncode(value)}`).join("&")

/** Scheme and host lower-cased, default ports dropped, path kept; no query, no fragment. */
export const baseStringUri = (url: URL): string => {
  const scheme = url.protocol.toLowerCase()
  const defaultPort = (scheme === "http:" && url.port === "80") || (scheme === "https:" && url.port === "443")
  const port = url.port === "" || defaultPort ? "" : `:${url.port}`
  return `${scheme}//${url.hostname.toLowerCase()}${port}${url.pathname}`
}

/** The signature base string: METHOD & enc(base URI) & enc(sorted, encoded parameters). */
export const signatureBaseString = (method: string, url: URL, oauthParams: Readonly<Record<string, string>>): string => {
  const params: Array<readonly [string, string]> = []
  // URLSearchParams decodes %XX and reads `+` as a space, as the server will.
  for (const [key, value] of url.searchParams) params.push([percentEncode(key), percentEncode(value)])
  for (const [key, value] of Object.entries(oauthParams)) {
    if (key !== "oauth_signature" && key !== "realm") params.push([percentEncode(key), percentEncode(value)])
  }
  params.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
  const normalized = params.map(([key, value]) => `${key}=${value}`).join("&")
  return `${method.toUpperCase()}&${percentEncode(baseStringUri(url))}&${percentEncode(normalized)}`
}

export interface SignOptions {
  readonly consumerKey: string
  readonly consumerSecret: string
  readonly method: string
  readonly url: URL
  /** Fixed in tests; random (16 bytes, hex) otherwise. */
  readonly nonce?: string
  /** Unix seconds; now otherwise. */
  readonly timestamp?: number
}

export interface Signed {
  readonly baseString: string
  readonly signature: string
  /** The `Authorization` header value. */
  readonly header: string
}

export const sign = (options: SignOptions): Signed => {
  const oauth = {
    oauth_consumer_key: options.consumerKey,
    oauth_nonce: options.nonce ?? randomBytes(16).toString("hex"),
    oauth_signature_method: "HMAC-SHA256",
    oauth_timestamp: String(options.timestamp ?? Math.floor(Date.now() / 1000))
  }
  const baseString = signatureBaseString(options.method, options.url, oauth)
  // Two-legged: no token, so the key is the encoded secret followed by a bare `&`.
  const signature = createHmac("sha256", `${percentEncode(options.consumerSecret)}&`).update(baseString).digest("base64")
  const fields = { ...oauth, oauth_signature: signature }
  const header = "OAuth " + Object.entries(fields).map(([key, value]) => `${key}="${percentEncode(value)}"`).join(",")
  return { baseString, signature, header }
}
