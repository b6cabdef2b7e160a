import * as Crypto from "node:crypto"

/**
 * A webhook call: the signature, the URL rule and one bounded POST.
 *
 * **Signature** (README "Notifications and webhooks"): `X-Rosterd-Timestamp` is the Unix
 * time in seconds of the attempt, and `X-Rosterd-Signature: sha256=<hex>` the HMAC-SHA256,
 * keyed with the hook's secret, of `<timestamp>.<body>` (the raw body bytes). A receiver
 * recomputes it, compares in constant time and refuses old timestamps (replays).
 *
 * **URLs**: https, except loopback hosts (127.0.0.0/8, ::1, localhost) where http is
 * allowed for a receiver on the same machine. Redirects are not followed (a 3xx is a failed
 * attempt): a hook's URL is where its signed body goes, and nowhere else. At most
 * `MAX_RESPONSE_BYTES` of an answer are read, and an attempt has a timeout.
 */

export const signatureOf = (secret: string, timestamp: string, body: string) =>
  `sha256=${Crypto.createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i

/** Why a hook URL is refused, or undefined when it may be called. */
export const refuseUrl = (url: string): string | undefined => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return "not a URL"
  }
  if (parsed.username !== "" || parsed.password !== "") return "a webhook URL must not carry credentials (use the signing secret)"
  if (parsed.protocol === "https:") return undefined
  if (parsed.protocol === "http:" && LOOPBACK.test(parsed.hostname)) return undefined
  return "a webhook URL must be https (http only for a loopback receiver)"
}

/** A URL as operators see it: scheme, host and path — no query (it may hold a receiver's token). */
export const shownUrl = (url: string) => {
  try {
    const parsed = new URL(url)
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return "<invalid URL>"
  }
}

export const MAX_RESPONSE_BYTES = 64 * 1024

export interface PostOutcome {
  /** The receiver's status, or null when none came (refused, timeout). */
  readonly status: number | null
  readonly error?: string
}

/** One POST: no redirect followed, at most MAX_RESPONSE_BYTES read, aborted after `timeoutMs`. */
export const post = async (url: string, headers: Readonly<Record<string, string>>, body: string, timeoutMs: number): Promise<PostOutcome> => {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), timeoutMs)
  try {
    const response = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal: controller.signal })
    // Read (and drop) a bounded part of the answer, so the connection can be reused.
    const reader = response.body?.getReader()
    let read = 0
    if (reader !== undefined) {
      while (read < MAX_RESPONSE_BYTES) {
        const chunk = await reader.read()
        if (chunk.done) break
        read += chunk.value.byteLength
      }
      await reader.cancel().catch(() => undefined)
    }
    return response.status >= 200 && response.status < 300
      ? { status: response.status }
      : { status: response.status, error: response.status >= 300 && response.status < 400 ? `redirect ${response.status} not followed` : `answered ${response.status}` }
  } catch (error) {
    const aborted = controller.signal.aborted
    return { status: null, error: aborted ? `no answer within ${timeoutMs} ms` : `request failed: ${error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error)}` }
  } finally {
    clearTimeout(timer)
  }
}
