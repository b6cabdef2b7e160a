import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import pg from "pg"
import { inject } from "vitest"
import type { RoleKind } from "../../src/Store/Roles.ts"
import { pgClientLayer } from "../../src/Store/Sql.ts"

/**
 * A database of the test file's own, cloned from the migrated template (fast: no
 * migrations per file). `TestDatabase` provides `SqlClient`/`PgClient` on it **as rosterd's
 * app role**, what the daemon and the CLI connect as (test/support/globalSetup.ts); `url`
 * (the same role) is for processes spawned by tests (`DATABASE_URL`). A test that needs
 * more (renaming a table, the platform's view) connects with `ownerUrl`, `platformUrl` or
 * `superuserUrl`.
 */
export interface TestDatabaseInfo {
  readonly name: string
  /** As the app role. */
  readonly url: string
  /** As the owner role: owns every rosterd object (schema changes, trigger switches). */
  readonly ownerUrl: string
  /** As the platform's role. */
  readonly platformUrl: string
  /** As the cluster's bootstrap superuser. */
  readonly superuserUrl: string
}

export class TestDatabaseUrl extends Context.Tag("test/TestDatabaseUrl")<TestDatabaseUrl, TestDatabaseInfo>() {}

const admin = () => inject("postgres")

/** A connection URL to `database` as `role` (default: the cluster's superuser). */
export const roleUrl = (database: string, role?: RoleKind) => {
  const { host, port, roles } = admin()
  const { password, user } = role === undefined ? admin() : roles[role]
  return `postgres://${user}:${encodeURIComponent(password)}@${host}:${port}/${database}`
}

const adminQuery = async (text: string) => {
  const { host, password, port, user } = admin()
  const client = new pg.Client({ host, port, user, password, database: "postgres" })
  await client.connect()
  try {
    await client.query(text)
  } finally {
    await client.end()
  }
}

export const createTestDatabase = async (): Promise<TestDatabaseInfo> => {
  const name = `test_${randomBytes(6).toString("hex")}`
  await adminQuery(`CREATE DATABASE ${name} TEMPLATE rosterd_template`)
  return {
    name,
    url: roleUrl(name, "app"),
    ownerUrl: roleUrl(name, "owner"),
    platformUrl: roleUrl(name, "platform"),
    superuserUrl: roleUrl(name)
  }
}

export const dropTestDatabase = (name: string) => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)

/**
 * Runs `statement` as the owner role on the file's database: schema changes (renaming a
 * table away, adding a constraint) that rosterd's app role, what tests connect as, may not make.
 */
export const asOwner = (statement: string) =>
  Effect.flatMap(TestDatabaseUrl, (info) =>
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: info.ownerUrl })
      await client.connect()
      try {
        await client.query(statement)
      } finally {
        await client.end()
      }
    }))

/** Layer: a fresh database for this file, dropped when the layer is released. */
export const TestDatabase = Layer.unwrapScoped(
  Effect.gen(function*() {
    const info = yield* Effect.acquireRelease(
      Effect.promise(() => createTestDatabase()),
      (info) => Effect.promise(() => dropTestDatabase(info.name))
    )
    return pgClientLayer({ url: Redacted.make(info.url) }).pipe(Layer.merge(Layer.succeed(TestDatabaseUrl, info)))
  })
)


/** Every roster table's rows with their physical version, to prove a sync wrote nothing. */
export const rosterFingerprint = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const tables = [
    "schools", "terms", "courses", "classes", "users", "enrollments",
    "accounts", "account_emails", "account_links", "account_reviews", "activation_tokens", "outbox"
  ]
  const out: Record<string, string> = {}
  for (const table of tables) {
    const [row] = yield* sql.unsafe<{ readonly digest: string | null }>(
      `SELECT md5(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid)) AS digest FROM ${table}`
    )
    out[table] = row?.digest ?? "empty"
  }
  return out
})

/**
 * The finding codes of a run, except `account_review`: test files that sync one roster
 * into several districts of one database see the same addresses linked elsewhere.
 */
export const findingCodesBesidesReviews = (runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly code: string }>`
      SELECT DISTINCT code FROM findings WHERE run_id = ${runId} AND code <> 'account_review' ORDER BY code`
    return rows.map((r) => r.code)
  })
