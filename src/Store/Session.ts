import { SqlClient } from "@effect/sql"
import type { SqlConnection } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import type pg from "pg"

/**
 * A Postgres session of our own: a connection reserved from the pool (`sql.reserve`) for
 * as long as a scope is open. A sync run needs one — its lease is a session lock, its
 * staging tables are temp tables of the session, its COPY and its transaction run on it —
 * and so does a run slot. What that takes of @effect/sql-pg beyond its public API lives
 * here, in one place: the node-postgres client behind a connection, the result rows of
 * `executeRaw`, and pinning a fiber's statements to the connection.
 */

/** The node-postgres client behind a connection from `sql.reserve` (sql-pg keeps it as `pg`): COPY needs it (Copy.ts). */
export const rawClient = (connection: SqlConnection.Connection): pg.PoolClient => {
  const client = (connection as unknown as { readonly pg?: pg.PoolClient }).pg
  if (client === undefined) throw new Error("COPY needs a reserved connection (sql.reserve)")
  return client
}

/**
 * Every statement of `effect` on `connection`: `sql` and the modules that ask for the
 * SqlClient run there, and `withTransaction` opens its transaction there (sql-pg reads the
 * connection from `TransactionConnection`; a counter of -1 makes its first level a BEGIN,
 * not a savepoint).
 */
export const onConnection = (connection: SqlConnection.Connection, sql: SqlClient.SqlClient) =>
<A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provideService(SqlClient.TransactionConnection, [connection, -1] as const),
    Effect.provideService(SqlClient.SqlClient, sql)
  )

/** An advisory lock key: a text is hashed (`hashtext`), a number used as it is. */
const keyOf = (key: string | number) => (typeof key === "string" ? "hashtext($2)" : "$2")

/**
 * `pg_try_advisory_lock(namespace, key)` on the session: true when taken (it is the
 * session's until `sessionUnlock`, or until the session ends), false at once when another
 * session holds it.
 */
export const trySessionLock = (connection: SqlConnection.Connection, namespace: number, key: string | number): Effect.Effect<boolean, SqlError> =>
  Effect.map(
    connection.executeRaw(`SELECT pg_try_advisory_lock($1, ${keyOf(key)}) AS ok`, [namespace, key]),
    (result) => (result as { readonly rows: ReadonlyArray<{ readonly ok: boolean }> }).rows[0]?.ok === true
  )

export const sessionUnlock = (connection: SqlConnection.Connection, namespace: number, key: string | number): Effect.Effect<void, SqlError> =>
  Effect.asVoid(connection.executeRaw(`SELECT pg_advisory_unlock($1, ${keyOf(key)})`, [namespace, key]))
