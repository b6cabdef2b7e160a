import { Migrator, SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Config, Context, Data, Effect, Layer, Option, Redacted, String } from "effect"
import pg from "pg"
import { latestMigration, migrations } from "../../migrations/index.ts"
import { applicationName, EmbeddedPostgres } from "./EmbeddedPostgres.ts"
import { applyGrants, canGrant, grantReplicaWrites, grantsCurrent, recordedRoles, RoleKinds, type RoleNames, roleNamesConfig, SCHEMA_LOCK, setupRoles } from "./Roles.ts"

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

/** How to reach the database as one role: a URL, or host/port/user/password/database. */
export type ConnectionConfig = Omit<PgClient.PgClientConfig, keyof typeof clientOptions>

/** The client with rosterd's options (name transforms, type parsers) for the given connection. */
export const pgClientLayer = (config: ConnectionConfig) => PgClient.layer({ ...config, ...clientOptions })

/**
 * Where rosterd connects, and as whom (README "Security"):
 *
 * - `main`: what the daemon and the CLI use — `DATABASE_URL`, or the embedded cluster as
 *   the app role;
 * - `owner`: what migrations run as — `DATABASE_OWNER_URL`, or the embedded cluster as the
 *   owner role; none: migrations run on `main` (a single-role deployment);
 * - `admin`: what `rosterd db setup-roles` uses — `DATABASE_ADMIN_URL` (else `DATABASE_URL`),
 *   or the embedded cluster's bootstrap superuser.
 */
export interface DatabaseTargetShape {
  readonly main: ConnectionConfig
  readonly owner: Option.Option<ConnectionConfig>
  readonly admin: ConnectionConfig
  readonly embedded: boolean
}

export class DatabaseTarget extends Context.Tag("rosterd/DatabaseTarget")<DatabaseTarget, DatabaseTargetShape>() {}

export const DatabaseTargetLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const url = yield* Config.option(Config.redacted("databaseUrl"))
    const maxConnections = yield* Config.integer("maxConnections").pipe(
      Config.nested("database"),
      Config.nested("rosterd"),
      Config.withDefault(10)
    )
    if (Option.isSome(url)) {
      const ownerUrl = yield* Config.option(Config.redacted("databaseOwnerUrl"))
      const adminUrl = yield* Config.option(Config.redacted("databaseAdminUrl"))
      return Layer.succeed(DatabaseTarget, {
        main: { url: url.value, maxConnections },
        owner: Option.map(ownerUrl, (owner) => ({ url: owner })),
        admin: { url: Option.getOrElse(adminUrl, () => url.value) },
        embedded: false
      })
    }
    return Layer.effect(
      DatabaseTarget,
      Effect.gen(function*() {
        const embedded = yield* EmbeddedPostgres
        const at = (username: string, password: Redacted.Redacted): ConnectionConfig => ({
          host: embedded.host,
          port: embedded.port,
          username,
          password,
          database: embedded.database
        })
        const admin = at(embedded.user, embedded.password)
        yield* ensureRoles(embedded.roleNames, embedded.roles).pipe(Effect.provide(pgClientLayer({ ...admin, maxConnections: 1 })))
        return {
          main: { ...at(embedded.roleNames.app, embedded.roles.app), maxConnections },
          owner: Option.some(at(embedded.roleNames.owner, embedded.roles.owner)),
          admin,
          embedded: true
        }
      })
    ).pipe(Layer.provide(EmbeddedPostgres.Default))
  })
)

/**
 * The embedded cluster's roles, set up once by its bootstrap superuser (and again for a
 * cluster made before there were roles, or after the role names changed): afterwards
 * this is one look at `pg_roles` and `rosterd_roles`.
 */
const ensureRoles = (names: RoleNames, passwords: { readonly [K in keyof RoleNames]: Redacted.Redacted }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const wanted = RoleKinds.map((k) => names[k])
    const [present] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM pg_roles WHERE rolname IN ${sql.in(wanted)}`
    const { recorded } = yield* recordedRoles
    const settled = present?.n === wanted.length && RoleKinds.every((k) => recorded.some((r) => r.kind === k && r.roleName === names[k]))
    if (!settled) yield* setupRoles({ names, passwords })
    // (A cluster set up before the sync checked references per set gains the app's right here.)
    else yield* grantReplicaWrites(names, true)
  }).pipe(Effect.withSpan("Store.ensureRoles"))

/** The main connection, with the target it came from. */
export const SqlLive = Layer.unwrapEffect(Effect.map(DatabaseTarget, (target) => pgClientLayer(target.main))).pipe(
  Layer.provideMerge(DatabaseTargetLive)
)

const runMigrator = Migrator.make({})

/** A migration is pending and this connection's role may not apply it. */
export class MigrationsNeedOwner extends Data.TaggedError("MigrationsNeedOwner")<{
  readonly role: string
  readonly applied: number
}> {
  override get message() {
    return `the database is at migration ${this.applied}, this rosterd needs ${latestMigration}, and ${this.role} may not ` +
      "change the schema: run `rosterd migrate` with DATABASE_OWNER_URL set to the owner role (see the README, \"Security\")"
  }
}

/** Where the schema stands, and whether this connection may change it. */
const schemaState = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ readonly present: boolean; readonly role: string; readonly mayChange: boolean }>`
    SELECT to_regclass('rosterd_migrations') IS NOT NULL AS present, current_user AS role,
           CASE WHEN to_regclass('rosterd_migrations') IS NULL THEN has_schema_privilege(current_schema(), 'CREATE')
                ELSE (SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = to_regclass('rosterd_migrations')) END AS may_change`
  const applied = row!.present
    ? (yield* sql<{ readonly latest: number | null }>`SELECT max(migration_id) AS latest FROM rosterd_migrations`)[0]?.latest ?? 0
    : 0
  return { applied, role: row!.role, mayChange: row!.mayChange }
})

/** Runs `effect` holding the schema lock (a session advisory lock on a reserved connection). */
const withSchemaLock = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* Effect.scoped(Effect.gen(function*() {
      const connection = yield* sql.reserve
      yield* Effect.acquireRelease(
        connection.executeRaw("SELECT pg_advisory_lock($1)", [SCHEMA_LOCK.toString()]),
        () => Effect.orDie(connection.executeRaw("SELECT pg_advisory_unlock($1)", [SCHEMA_LOCK.toString()]))
      )
      return yield* effect
    }))
  })

/**
 * The grant pass after migrations (src/Store/Roles.ts): when the roles are set up (or this
 * is the owner's first migration) and the grants recorded are not this code's. Only a
 * connection with the owner's rights can give them; any other says so in the log.
 */
const refreshGrants = (names: RoleNames, locked: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const current = yield* grantsCurrent(names)
    const [me] = yield* sql<{ readonly role: string }>`SELECT current_user AS role`
    if (current === true || (current === null && me?.role !== names.owner)) return
    if (!(yield* canGrant)) {
      return yield* Effect.logWarning(
        "the database's grants are not this rosterd's: run `rosterd db setup-roles`, or migrate as the owner (DATABASE_OWNER_URL)"
      )
    }
    const apply = sql.withTransaction(applyGrants(names, { force: false }))
    yield* locked ? apply : withSchemaLock(apply)
  })

/**
 * Applies pending migrations on this connection, then the grant pass. The migrator locks
 * its table inside its transaction, but it creates that table outside the lock, so
 * replicas starting together on an empty database can collide; a session advisory lock
 * around the whole run serialises them (and the grant passes). Up to date, it takes no
 * lock at all: the app role may read the migrations table but not lock it.
 */
export const migrate = Effect.gen(function*() {
  const names = yield* roleNamesConfig
  const before = yield* schemaState
  if (before.applied >= latestMigration) {
    yield* refreshGrants(names, false)
    return []
  }
  if (!before.mayChange) return yield* new MigrationsNeedOwner({ role: before.role, applied: before.applied })
  return yield* withSchemaLock(Effect.gen(function*() {
    const applied = yield* runMigrator({ loader: migrations, table: "rosterd_migrations" })
    yield* refreshGrants(names, true)
    return applied
  }))
}).pipe(Effect.withSpan("Store.migrate"))

/** `migrate` on the owner's connection when there is one (`DATABASE_OWNER_URL`, the embedded owner), else on the main one. */
export const migrateDatabase = Effect.gen(function*() {
  const target = yield* DatabaseTarget
  return yield* Option.match(target.owner, {
    onNone: () => migrate,
    // Two connections: one holds the advisory lock, the other runs the migrations.
    onSome: (owner) => migrate.pipe(Effect.provide(pgClientLayer({ ...owner, maxConnections: 2 })))
  })
})

export const MigratorLive = Layer.effectDiscard(migrateDatabase)

/** A migrated database: what every command but `migrate` itself needs. */
export const DatabaseLive = MigratorLive.pipe(Layer.provideMerge(SqlLive))
