import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"

/**
 * What a database failure says, read the one way @effect/sql-pg keeps it: the Postgres
 * error (node-postgres' DatabaseError) as the SqlError's cause. rosterd's functions and
 * triggers refuse with SQLSTATEs of their own (RSLCK a lock, RSTOK a token, RSLNK a link,
 * RSAMB an ambiguous login; migrations/) and a message that names no personal value.
 */

/** The Postgres error behind a SqlError, when there is one. */
export const pgErrorOf = (error: SqlError): Option.Option<{ readonly code: string; readonly message: string }> => {
  const cause = error.cause as { readonly code?: unknown; readonly message?: unknown } | undefined
  return typeof cause === "object" && cause !== null && typeof cause.code === "string"
    ? Option.some({ code: cause.code, message: typeof cause.message === "string" ? cause.message : "" })
    : Option.none()
}

/** The Postgres error behind any failure that is a SqlError. */
export const pgErrorOfFailure = (error: unknown) =>
  typeof error === "object" && error !== null && (error as { readonly _tag?: unknown })._tag === "SqlError"
    ? pgErrorOf(error as SqlError)
    : Option.none()

/**
 * A refusal of the database with one of `codes` as the caller's error, from the code and
 * the message without its "rosterd: " prefix; any other failure passes unchanged.
 */
export const refusedAs = <C extends string, E2>(codes: ReadonlyArray<C>, refusal: (code: C, reason: string) => E2) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | E2, R> =>
  Effect.catchIf(
    effect,
    (error) => Option.exists(pgErrorOfFailure(error), (pg) => (codes as ReadonlyArray<string>).includes(pg.code)),
    (error) => {
      const pg = Option.getOrThrow(pgErrorOfFailure(error))
      return Effect.fail(refusal(pg.code as C, pg.message.replace(/^rosterd: /, "")))
    }
  )
