import { Command, Options } from "@effect/cli"
import { SqlClient } from "@effect/sql"
import { Console, Effect, type Layer, Option } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { DatabaseTarget, migrate, pgClientLayer } from "../Store/Sql.ts"
import { GRANTS, grantsMarkdown, grantStatements, pinnedSearchPath, type RoleKind, RoleKinds, roleNamesConfig, setupRoles } from "../Store/Roles.ts"
import { actorOption, jsonFlag } from "./Options.ts"
import { json, table } from "./Output.ts"

/**
 * `rosterd db`: the database's roles and grants (README "Security").
 *
 * - `setup-roles` runs on an administrative connection: the embedded cluster's bootstrap
 *   superuser, or `DATABASE_ADMIN_URL` (else `DATABASE_URL`) — never a password on the
 *   command line. Then, when there is an owner connection, the migrations as the owner.
 * - `grants` prints the grant table (needs no database): the same rows the statements are
 *   made from.
 */

const setupRolesCommand = <E, R>(database: Layer.Layer<DatabaseTarget, E, R>) => Command.make(
  "setup-roles",
  { by: actorOption, json: jsonFlag("print the outcome as JSON") },
  (args) =>
    Effect.gen(function*() {
      const target = yield* DatabaseTarget
      const names = yield* roleNamesConfig
      const report = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const audit = yield* Audit
        return yield* sql.withTransaction(Effect.tap(setupRoles({ names }), (r) =>
          r.pendingSchema ? Effect.void : audit.record({
            actor: args.by,
            action: "db.setup-roles",
            subject: `roles ${names.owner}, ${names.app}, ${names.platform}`,
            details: { created: r.created, ownershipMoved: r.ownershipMoved, connectedAs: r.connectedAs }
          })))
      }).pipe(Effect.provide(Audit.Default), Effect.provide(pgClientLayer({ ...target.admin, maxConnections: 1 })))
      // The schema's migrations, as the owner, when rosterd has the owner's connection.
      const migrated = Option.isSome(target.owner)
        ? Option.some(yield* migrate.pipe(Effect.provide(pgClientLayer({ ...target.owner.value, maxConnections: 2 }))))
        : Option.none()
      const migrations = Option.match(migrated, {
        onNone: () => report.pendingSchema ? "not applied yet: run `rosterd migrate` with DATABASE_OWNER_URL (the owner role)" : "as they were (no owner connection: DATABASE_OWNER_URL)",
        onSome: (applied) => applied.length === 0 ? "up to date" : `applied ${applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`).join(", ")} as ${names.owner}`
      })
      const kindOf = (name: string) => RoleKinds.find((k) => names[k] === name) as RoleKind
      const roles = [...report.created.map((name) => ({ role: name, kind: kindOf(name), state: "created" })), ...report.existing.map((name) => ({ role: name, kind: kindOf(name), state: "existed" }))]
        .sort((a, b) => RoleKinds.indexOf(a.kind) - RoleKinds.indexOf(b.kind))
      if (args.json) {
        return yield* json({ connectedAs: report.connectedAs, schema: report.schema, roles, withoutPassword: report.withoutPassword, ownershipMoved: report.ownershipMoved, grants: report.grants, migrations })
      }
      yield* Console.log(`roles in schema ${report.schema} (set up as ${report.connectedAs}):`)
      yield* Console.log(table(["role", "kind", "state"], roles.map((r) => [r.role, r.kind, r.state])))
      yield* Console.log(`ownership: ${report.ownershipMoved} object(s) handed to ${names.owner}`)
      yield* Console.log(`grants: ${report.grants}`)
      yield* Console.log(`migrations: ${migrations}`)
      if (report.withoutPassword.length > 0 && !target.embedded) {
        yield* Console.log(
          `without a password: ${report.withoutPassword.join(", ")} — give each one (psql: \\password <role>), then run rosterd with ` +
            `DATABASE_URL as ${names.app} and DATABASE_OWNER_URL as ${names.owner}; the platform connects as ${names.platform}`
        )
      }
    }).pipe(Effect.provide(database))
).pipe(Command.withDescription(
  "create rosterd's owner, app and platform roles (missing ones), hand every rosterd object to the owner, take PUBLIC's rights and apply the grants; idempotent (audited)"
))

const grantsCommand = Command.make(
  "grants",
  {
    format: Options.choice("format", ["table", "markdown", "sql", "json"]).pipe(
      Options.withDefault("table" as const),
      Options.withDescription("table (default), markdown (the README's), sql (the statements for rosterd's objects) or json")
    ),
    schema: Options.text("schema").pipe(Options.withDefault("public"), Options.withDescription("the schema rosterd's objects are in (for --format sql)"))
  },
  (args) =>
    Effect.gen(function*() {
      const names = yield* roleNamesConfig
      if (args.format === "markdown") return yield* Console.log(grantsMarkdown(names))
      if (args.format === "json") return yield* json({ roles: names, grants: GRANTS })
      if (args.format === "sql") {
        const objects = GRANTS.map((g) => ({ name: g.object, type: g.type, owner: names.owner, pinned: true }))
        yield* Console.log(`-- rosterd's grants (MAINTAIN needs PostgreSQL 17+); functions run with search_path = ${pinnedSearchPath(args.schema)}`)
        return yield* Console.log(grantStatements(names, args.schema, objects, { maintain: true }).map((s) => `${s};`).join("\n"))
      }
      const text = (p: ReadonlyArray<string>) => (p.length === 0 ? "-" : p.join(", "))
      yield* Console.log(table(["object", "kind", names.app, names.platform], GRANTS.map((g) => [g.object, g.type, text(g.app), text(g.platform)])))
      yield* Console.log(`${names.owner} owns every object; other tables a migration adds: ${names.app} reads and writes them, ${names.platform} gets nothing`)
    })
).pipe(Command.withDescription("the grant table: what rosterd's app role and the platform's role may do to each rosterd object"))

/** `database` is built only by `setup-roles` (for the embedded default it starts the cluster); `grants` needs none. */
export const dbCommand = <E, R>(database: Layer.Layer<DatabaseTarget, E, R>) =>
  Command.make("db").pipe(
    Command.withDescription("the database's roles and grants: the boundary between rosterd and the platform"),
    Command.withSubcommands([setupRolesCommand(database), grantsCommand])
  )
