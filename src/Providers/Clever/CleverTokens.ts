import { Effect, Schema } from "effect"
import { ProviderError } from "../../Domain/Errors.ts"

/**
 * Clever's list of the app's district tokens: `GET <oauthUrl>/oauth/tokens?owner_type=district`
 * with HTTP Basic (the app's client id and secret) — one entry per district that has
 * authorised the app, `{ data: [{ id, access_token, owner: { type, id }, scopes, created }] }`.
 * Used to find new districts (src/Districts/Discovery.ts) and to register one with its token.
 * The answer is read up to `MAX_BYTES`, redirects are not followed, and an attempt times out.
 * Errors name the status, never a token or the secret.
 */

const TokenEntry = Schema.Struct({
  id: Schema.String,
  access_token: Schema.String,
  owner: Schema.Struct({ type: Schema.String, id: Schema.String }),
  scopes: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  created: Schema.optional(Schema.NullOr(Schema.String))
})
const TokenList = Schema.Struct({ data: Schema.Array(TokenEntry) })

export interface DistrictToken {
  /** The authorisation's id (stable while the token itself may rotate). */
  readonly id: string
  /** Clever's district id. */
  readonly district: string
  readonly accessToken: string
  readonly scopes: ReadonlyArray<string>
  readonly created: string | null
}

const MAX_BYTES = 4 * 1024 * 1024

const fail = (message: string, reason: "Unauthorized" | "Unreachable" | "Malformed") => new ProviderError({ reason, message })

export const listDistrictTokens = (options: { readonly oauthUrl: string; readonly clientId: string; readonly clientSecret: string; readonly timeoutMs?: number }) =>
  Effect.tryPromise({
    try: async (signal) => {
      const url = `${options.oauthUrl.replace(/\/+$/, "")}/oauth/tokens?owner_type=district`
      const timeout = AbortSignal.timeout(options.timeoutMs ?? 30_000)
      const response = await fetch(url, {
        headers: {
          authorization: `Basic ${Buffer.from(`${options.clientId}:${options.clientSecret}`).toString("base64")}`,
          accept: "application/json"
        },
        redirect: "manual",
        signal: AbortSignal.any([signal, timeout])
      })
      const chunks: Array<Uint8Array> = []
      let size = 0
      const reader = response.body?.getReader()
      if (reader !== undefined) {
        while (true) {
          const chunk = await reader.read()
          if (chunk.done) break
          size += chunk.value.byteLength
          if (size > MAX_BYTES) {
            await reader.cancel()
            return { status: response.status, body: null }
          }
          chunks.push(chunk.value)
        }
      }
      return { status: response.status, body: Buffer.concat(chunks).toString("utf8") }
    },
    catch: (cause) => fail(`Clever's token list did not answer: ${cause instanceof Error ? cause.name : "error"}`, "Unreachable")
  }).pipe(
    Effect.flatMap(({ status, body }) => {
      if (status === 401 || status === 403) return Effect.fail(fail(`Clever refused the app's client id and secret (${status})`, "Unauthorized"))
      if (status < 200 || status >= 300) return Effect.fail(fail(`Clever's token list answered ${status}`, "Unreachable"))
      if (body === null) return Effect.fail(fail(`Clever's token list is larger than ${MAX_BYTES} bytes`, "Malformed"))
      return Schema.decodeUnknown(Schema.parseJson(TokenList))(body).pipe(
        Effect.mapError(() => fail("Clever's token list is not the expected JSON ({data: [{id, access_token, owner}]})", "Malformed"))
      )
    }),
    Effect.map((list) =>
      list.data
        .filter((entry) => entry.owner.type === "district")
        .map((entry): DistrictToken => ({
          id: entry.id,
          district: entry.owner.id,
          accessToken: entry.access_token,
          scopes: entry.scopes,
          created: entry.created ?? null
        }))
    ),
    Effect.withSpan("CleverTokens.list")
  )
