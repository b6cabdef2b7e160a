import * as OAuthSign from "oauth-sign"
import { describe, expect, it } from "vitest"
import { encodeQuery, percentEncode, sign, signatureBaseString } from "../../../src/Providers/OneRosterRest/OAuth1.ts"

/**
 * Golden tests of the OAuth 1.0a HMAC-SHA256 signer: fixed nonce and timestamp, the exact
 * base string, and the signature checked against `oauth-sign` (an independent
 * implementation, a dev dependency only).
 */
const oracle = (url: URL, consumerKey: string, consumerSecret: string, nonce: string, timestamp: number) => {
  const params: Record<string, string> = {
    oauth_consumer_key: consumerKey,
    oauth_nonce: nonce,
    oauth_signature_method: "HMAC-SHA256",
    oauth_timestamp: String(timestamp)
  }
  for (const [key, value] of url.searchParams) params[key] = value
  const base = `${url.protocol}//${url.hostname}${url.port && url.port !== "443" && url.port !== "80" ? `:${url.port}` : ""}${url.pathname}`
  return OAuthSign.sign("HMAC-SHA256", "GET", base.toLowerCase(), params, consumerSecret)
}

describe("OAuth 1.0a signing (HMAC-SHA256)", () => {
  it("encodes per RFC 3986, including the characters encodeURIComponent leaves alone", () => {
    expect(percentEncode("dateLastModified>'2026-11-01T00:00:00Z'")).toBe("dateLastModified%3E%272026-11-01T00%3A00%3A00Z%27")
    expect(percentEncode("a b+c!*()~._-")).toBe("a%20b%2Bc%21%2A%28%29~._-")
    expect(encodeQuery([["filter", "status='active'"], ["limit", "10"]])).toBe("filter=status%3D%27active%27&limit=10")
  })

  it("signs a delta filter request: golden base string and signature, equal to oauth-sign's", () => {
    const url = new URL(
      "https://OneRoster.Example.org:443/ims/oneroster/v1p1/users?limit=1000&offset=0&filter=dateLastModified%3E%272026-11-01T00%3A00%3A00Z%27"
    )
    const signed = sign({ consumerKey: "key", consumerSecret: "s3cr3t!&", method: "GET", url, nonce: "abc123", timestamp: 1700000000 })
    expect(signed.baseString).toBe(
      "GET&https%3A%2F%2Foneroster.example.org%2Fims%2Foneroster%2Fv1p1%2Fusers&" +
        "filter%3DdateLastModified%253E%25272026-11-01T00%253A00%253A00Z%2527%26limit%3D1000%26oauth_consumer_key%3Dkey%26" +
        "oauth_nonce%3Dabc123%26oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D1700000000%26offset%3D0"
    )
    expect(signed.signature).toBe("LHyUOHrtG/yup2lvJmP9pvT6V7WG+UKIMrFeSPglMP0=")
    expect(signed.signature).toBe(oracle(url, "key", "s3cr3t!&", "abc123", 1700000000))
    expect(signed.header).toBe(
      'OAuth oauth_consumer_key="key",oauth_nonce="abc123",oauth_signature_method="HMAC-SHA256",' +
        'oauth_timestamp="1700000000",oauth_signature="LHyUOHrtG%2Fyup2lvJmP9pvT6V7WG%2BUKIMrFeSPglMP0%3D"'
    )
  })

  it("signs a two-predicate filter with spaces and a plus sign, a non-default port and an empty secret", () => {
    const url = new URL("http://localhost:8080/ims/oneroster/v1p1/classes?filter=title%3D%27Math%20%2B%20Art%27%20AND%20status%3D%27active%27&limit=5")
    const signed = sign({ consumerKey: "k e y", consumerSecret: "", method: "get", url, nonce: "n", timestamp: 1 })
    expect(signed.baseString).toBe(
      "GET&http%3A%2F%2Flocalhost%3A8080%2Fims%2Foneroster%2Fv1p1%2Fclasses&" +
        "filter%3Dtitle%253D%2527Math%2520%252B%2520Art%2527%2520AND%2520status%253D%2527active%2527%26limit%3D5%26" +
        "oauth_consumer_key%3Dk%2520e%2520y%26oauth_nonce%3Dn%26oauth_signature_method%3DHMAC-SHA256%26oauth_timestamp%3D1"
    )
    expect(signed.signature).toBe("IA6ZWaTzF9iU31ASLciPK9YEiESkq0ryo+ZOzDOVA9o=")
    expect(signed.signature).toBe(oracle(url, "k e y", "", "n", 1))
  })

  it("reads a `+` in the query as a space, as the server decodes it", () => {
    const plus = new URL("http://h/p?q=a+b")
    const space = new URL("http://h/p?q=a%20b")
    const oauth = { oauth_consumer_key: "k", oauth_nonce: "n", oauth_signature_method: "HMAC-SHA256", oauth_timestamp: "1" }
    expect(signatureBaseString("GET", plus, oauth)).toBe(signatureBaseString("GET", space, oauth))
  })

  it("sorts repeated keys by value and leaves oauth_signature and realm out", () => {
    const url = new URL("http://h/p?b=2&a=2&a=1")
    const base = signatureBaseString("GET", url, { oauth_signature: "x", realm: "r", oauth_nonce: "n" })
    expect(base).toBe("GET&http%3A%2F%2Fh%2Fp&a%3D1%26a%3D2%26b%3D2%26oauth_nonce%3Dn")
  })

  it("fresh nonces and the current time when not fixed", () => {
    const url = new URL("http://h/p")
    const a = sign({ consumerKey: "k", consumerSecret: "s", method: "GET", url })
    const b = sign({ consumerKey: "k", consumerSecret: "s", method: "GET", url })
    expect(a.header).not.toBe(b.header)
    const timestamp = Number(/oauth_timestamp="(\d+)"/.exec(a.header)![1])
    expect(Math.abs(timestamp - Date.now() / 1000)).toBeLessThan(5)
  })
})
