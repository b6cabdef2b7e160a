import { SqlClient } from "@effect/sql"
import { Effect, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import type { TestProject } from "vitest/node"
import { startTemporary } from "../../src/Store/EmbeddedPostgres.ts"
import { DEFAULT_ROLE_NAMES, type RoleKind, RoleKinds, setupRoles } from "../../src/Store/Roles.ts"
import { migrate, pgClientLayer } from "../../src/Store/Sql.ts"
// @ts-expect-error: a plain ES module of the project's (bin/), without type declarations
import { buildBundle, bundleFresh } from "../../bin/bundle.mjs"

/**
 * Starts one real Postgres (the embedded one) for the whole test run and migrates a
 * template database; every test file clones the template into a database of its own
 * (test/support/Database.ts), so files run in parallel without seeing each other.
 *
 * The template is set up the way a deployment is (README "Security"): the bootstrap
 * superuser creates rosterd's roles (cluster-wide, so once for the run) and hands the
 * schema to the owner, the owner runs the migrations (and the grant pass), and the tests
 * connect as the app role — the suite is the proof that the app's grants suffice. The
 * roles' passwords reach the test files through `inject("postgres")`.
 */
export default async function setup(project: TestProject) {
  // The CLI and daemon processes the tests spawn run from the bundle: build it once, up front.
  if (!bundleFresh()) await buildBundle()
  const server = await startTemporary()
  const superuser = { host: server.host, port: server.port, user: server.user, password: Redacted.value(server.password) }
  const at = (database: string, username = superuser.user, password = superuser.password) =>
    pgClientLayer({ host: superuser.host, port: superuser.port, username, password: Redacted.make(password), database })
  const roles = Object.fromEntries(
    RoleKinds.map((kind) => [kind, { user: DEFAULT_ROLE_NAMES[kind], password: randomBytes(18).toString("base64url") }])
  ) as TestRoles
  await Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`CREATE DATABASE rosterd_template`)
    }).pipe(Effect.provide(at(server.database)))
  )
  await Effect.runPromise(
    setupRoles({
      names: DEFAULT_ROLE_NAMES,
      passwords: Object.fromEntries(RoleKinds.map((kind) => [kind, Redacted.make(roles[kind].password)]))
    }).pipe(Effect.provide(at("rosterd_template")))
  )
  await Effect.runPromise(migrate.pipe(Effect.provide(at("rosterd_template", roles.owner.user, roles.owner.password))))
  project.provide("postgres", { ...superuser, roles })
  return async () => {
    await server.stop()
  }
}

export type TestRoles = { readonly [K in RoleKind]: { readonly user: string; readonly password: string } }

declare module "vitest" {
  export interface ProvidedContext {
    /** The cluster's bootstrap superuser (creates and drops databases), and rosterd's roles. */
    postgres: { host: string; port: number; user: string; password: string; roles: TestRoles }
  }
}
