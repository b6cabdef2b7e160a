import { Migrator, SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Option, String } from "effect"
import pg from "pg"
import { migrations } from "../../migrations/index.ts"
import { applicationName, EmbeddedPostgres } from "./EmbeddedPostgres.ts"

/**
 * The Postgres client: `DATABASE_URL` when configured, otherwise the embedded cluster
 * (started, or attached to when another rosterd process already runs it).
 *
 * Rows come back camelCased; `date` columns stay `YYYY-MM-DD` strings (node-postgres would
 * turn them into local-midnight `Date`s, shifting birth dates across time zones), and
 * `bigint` ids and counts come back as numbers.
 */
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === 1082) return (value: string) => value // date
    if (oid === 20) return (value: string) => Number(value) // int8
    return pg.types.getTypeParser(oid, format as "text")
  }) as typeof pg.types.getTypeParser
}

const clientOptions = {
  applicationName: applicationName(),
  transformResultNames: String.snakeToCamel,
  transformQueryNames: String.camelToSnake,
  types
} as const

/** The client with rosterd's options (name transforms, type parsers) for the given connection. */
export const pgClientLayer = (config: Omit<PgClient.PgClientConfig, keyof typeof clientOptions>) =>
  PgClient.layer({ ...config, ...clientOptions })

export const SqlLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const url = yield* Config.option(Config.redacted("databaseUrl"))
    const maxConnections = yield* Config.integer("maxConnections").pipe(
      Config.nested("database"),
      Config.nested("rosterd"),
      Config.withDefault(10)
    )
    if (Option.isSome(url)) return pgClientLayer({ url: url.value, maxConnections })
    return Layer.unwrapEffect(
      Effect.map(EmbeddedPostgres, (embedded) =>
        pgClientLayer({
          host: embedded.host,
          port: embedded.port,
          username: embedded.user,
          password: embedded.password,
          database: embedded.database,
          maxConnections
        }))
    ).pipe(Layer.provide(EmbeddedPostgres.Default))
  })
)

/** Key of the session advisory lock that serialises migrations between processes. */
const MIGRATION_LOCK = 0x524f5354_00000001n

const runMigrator = Migrator.make({})

/**
 * Applies pending migrations. The migrator locks its table inside its transaction, but it
 * creates that table outside the lock, so replicas starting together on an empty database
 * can collide; a session advisory lock around the whole run serialises them.
 */
export const migrate = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* Effect.scoped(Effect.gen(function*() {
    const connection = yield* sql.reserve
    yield* Effect.acquireRelease(
      connection.executeRaw("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK.toString()]),
      () => Effect.orDie(connection.executeRaw("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK.toString()]))
    )
    return yield* runMigrator({ loader: migrations, table: "rosterd_migrations" })
  }))
}).pipe(Effect.withSpan("Store.migrate"))

export const MigratorLive = Layer.effectDiscard(migrate)

/** A migrated database: what every command but `migrate` itself needs. */
export const DatabaseLive = MigratorLive.pipe(Layer.provideMerge(SqlLive))
