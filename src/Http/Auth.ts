import { type HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Config, ConfigError, Effect, Either, Option } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import * as Fs from "node:fs"
import { ProcessEnv } from "../Config/Environment.ts"

/**
 * `rosterd.http.auth`: an optional bearer token or basic-auth password in front of the status
 * page, `/status` and `/metrics` (`/healthz` and `/readyz` stay open for probes). The HTTP
 * server listens on loopback by default; bound elsewhere, this is what keeps a district's
 * state from whoever reaches the port.
 *
 * The config file names where a secret is — a file or an environment variable — never the
 * secret itself, and it is read at each request, so rotating it needs no restart. Comparisons
 * are constant-time over SHA-256 digests (equal lengths whatever was sent).
 */

const auth = <A>(config: Config.Config<A>) => config.pipe(Config.nested("auth"), Config.nested("http"), Config.nested("rosterd"))
const optionalText = (name: string) => auth(Config.option(Config.string(name))).pipe(Config.map(Option.filter((text) => text.trim() !== "")))

export interface SecretPlace {
  readonly file: Option.Option<string>
  readonly env: Option.Option<string>
}

export const HttpAuthConfig = Config.all({
  bearerTokenFile: optionalText("bearerTokenFile"),
  bearerTokenEnv: optionalText("bearerTokenEnv"),
  basicUser: optionalText("basicUser"),
  basicPasswordFile: optionalText("basicPasswordFile"),
  basicPasswordEnv: optionalText("basicPasswordEnv")
}).pipe(
  Config.mapOrFail((c) => {
    const path = ["rosterd", "http", "auth"]
    if (Option.isSome(c.bearerTokenFile) && Option.isSome(c.bearerTokenEnv)) {
      return Either.left(ConfigError.InvalidData(path, "set bearerTokenFile or bearerTokenEnv, not both"))
    }
    if (Option.isSome(c.basicPasswordFile) && Option.isSome(c.basicPasswordEnv)) {
      return Either.left(ConfigError.InvalidData(path, "set basicPasswordFile or basicPasswordEnv, not both"))
    }
    const hasPassword = Option.isSome(c.basicPasswordFile) || Option.isSome(c.basicPasswordEnv)
    if (Option.isSome(c.basicUser) !== hasPassword) {
      return Either.left(ConfigError.InvalidData(path, "basicUser and a password (basicPasswordFile or basicPasswordEnv) go together"))
    }
    const bearer: Option.Option<SecretPlace> = Option.isSome(c.bearerTokenFile) || Option.isSome(c.bearerTokenEnv)
      ? Option.some({ file: c.bearerTokenFile, env: c.bearerTokenEnv })
      : Option.none()
    const basic = Option.map(c.basicUser, (user) => ({ user, password: { file: c.basicPasswordFile, env: c.basicPasswordEnv } satisfies SecretPlace }))
    return Either.right({ bearer, basic })
  })
)
export type HttpAuthConfig = Config.Config.Success<typeof HttpAuthConfig>

/** A secret is missing or empty where the config says it is: the request gets 503, the log names the place, never a value. */
class SecretUnavailable {
  readonly _tag = "SecretUnavailable"
  constructor(readonly place: string) {}
}

const readPlace = (place: SecretPlace, env: Readonly<Record<string, string | undefined>>) =>
  Effect.gen(function*() {
    if (Option.isSome(place.file)) {
      const file = place.file.value
      const value = yield* Effect.try({ try: () => Fs.readFileSync(file, "utf8").trim(), catch: () => new SecretUnavailable(`the file ${file}`) })
      return value === "" ? yield* Effect.fail(new SecretUnavailable(`the file ${file} (empty)`)) : value
    }
    const name = Option.getOrElse(place.env, () => "")
    const value = env[name]?.trim() ?? ""
    return value === "" ? yield* Effect.fail(new SecretUnavailable(`the environment variable ${name}`)) : value
  })

const digest = (text: string) => createHash("sha256").update(text, "utf8").digest()

/** Constant-time equality whatever the lengths: both sides are hashed first. */
export const sameSecret = (given: string, expected: string) => timingSafeEqual(digest(given), digest(expected))

export type Verdict = "allowed" | "denied" | "unavailable"

export class HttpAuth extends Effect.Service<HttpAuth>()("rosterd/HttpAuth", {
  effect: Effect.gen(function*() {
    const config = yield* HttpAuthConfig
    // The environment as the service starts (the process's own: a live object, so a variable set later is seen).
    const env = yield* ProcessEnv
    const required = Option.isSome(config.bearer) || Option.isSome(config.basic)

    const check = (authorization: string | undefined): Effect.Effect<Verdict> =>
      Effect.gen(function*() {
        if (!required) return "allowed" as const
        const header = authorization ?? ""
        const space = header.indexOf(" ")
        const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase()
        const credentials = space === -1 ? "" : header.slice(space + 1).trim()
        if (scheme === "bearer" && Option.isSome(config.bearer)) {
          return sameSecret(credentials, yield* readPlace(config.bearer.value, env)) ? "allowed" as const : "denied" as const
        }
        if (scheme === "basic" && Option.isSome(config.basic)) {
          const decoded = Buffer.from(credentials, "base64").toString("utf8")
          const colon = decoded.indexOf(":")
          const user = colon === -1 ? decoded : decoded.slice(0, colon)
          const password = colon === -1 ? "" : decoded.slice(colon + 1)
          const expected = yield* readPlace(config.basic.value.password, env)
          // Both compared, always, so the time taken does not tell whether the user was right.
          const userOk = sameSecret(user, config.basic.value.user)
          const passwordOk = sameSecret(password, expected)
          return userOk && passwordOk ? "allowed" as const : "denied" as const
        }
        return "denied" as const
      }).pipe(
        Effect.catchAll((error) =>
          Effect.as(Effect.logError("HTTP authentication is configured, but its secret cannot be read").pipe(Effect.annotateLogs({ secret: error.place })), "unavailable" as const)
        )
      )

    /** What a 401 offers: the schemes configured. */
    const challenge = [
      ...(Option.isSome(config.bearer) ? [`Bearer realm="rosterd"`] : []),
      ...(Option.isSome(config.basic) ? [`Basic realm="rosterd", charset="UTF-8"`] : [])
    ].join(", ")

    /** Route middleware: the app only for an allowed request. */
    const middleware = <E, R>(app: HttpApp.Default<E, R>) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const verdict = yield* check(request.headers["authorization"])
        if (verdict === "allowed") return yield* app
        const headers = { "cache-control": "no-store", "x-content-type-options": "nosniff" }
        return verdict === "denied"
          ? HttpServerResponse.text("authentication required\n", { status: 401, headers: { ...headers, "www-authenticate": challenge } })
          : HttpServerResponse.text("authentication unavailable\n", { status: 503, headers })
      })

    return { required, check, middleware } as const
  })
}) {}
