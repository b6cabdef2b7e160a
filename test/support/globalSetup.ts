import { SqlClient } from "@effect/sql"
import { Effect, Redacted } from "effect"
import type { TestProject } from "vitest/node"
import { startTemporary } from "../../src/Store/EmbeddedPostgres.ts"
import { migrate, pgClientLayer } from "../../src/Store/Sql.ts"
// @ts-expect-error: a plain ES module of the project's (bin/), without type declarations
import { buildBundle, bundleFresh } from "../../bin/bundle.mjs"

/**
 * Starts one real Postgres (the embedded one) for the whole test run and migrates a
 * template database; every test file clones the template into a database of its own
 * (test/support/Database.ts), so files run in parallel without seeing each other.
 */
export default async function setup(project: TestProject) {
  // The CLI and daemon processes the tests spawn run from the bundle: build it once, up front.
  if (!bundleFresh()) await buildBundle()
  const server = await startTemporary()
  const admin = { host: server.host, port: server.port, user: server.user, password: Redacted.value(server.password) }
  await Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`CREATE DATABASE rosterd_template`)
    }).pipe(Effect.provide(pgClientLayer({ host: admin.host, port: admin.port, username: admin.user, password: server.password, database: server.database })))
  )
  await Effect.runPromise(
    migrate.pipe(
      Effect.provide(pgClientLayer({ host: admin.host, port: admin.port, username: admin.user, password: server.password, database: "rosterd_template" }))
    )
  )
  project.provide("postgres", admin)
  return async () => {
    await server.stop()
  }
}

declare module "vitest" {
  export interface ProvidedContext {
    postgres: { host: string; port: number; user: string; password: string }
  }
}
