import { SqlClient, type SqlError } from "@effect/sql"
import { Config, Data, Effect, Redacted } from "effect"
import { createHash } from "node:crypto"
import { DIGEST_TABLES } from "./DigestTables.ts"

/**
 * The trust boundary in the database (README "Security"): three roles, and what each may
 * do to each of rosterd's objects.
 *
 * - **owner** owns every rosterd object and runs the migrations; nothing connects as it at
 *   run time. Owning is what lets a role `ALTER TABLE … DISABLE TRIGGER`, so no other role
 *   owns anything.
 * - **app** is what the daemon and the CLI connect as: it reads and writes what rosterd
 *   does, and is the writer the lock triggers let write district-synced data
 *   (migrations/0008_trust_boundary.ts).
 * - **platform** is for the ed-tech platform's application: it reads the roster, writes
 *   teacher-made classes and their memberships, adds account addresses, and confirms
 *   tokens through SECURITY DEFINER functions; nothing else.
 *
 * `GRANTS` below is the one place the rights are written down: the GRANT statements
 * (`grantStatements`) and the README's table (`grantsMarkdown`, `rosterd db grants
 * --markdown`) are both generated from it, and a test compares the README with it.
 *
 * Who applies them: `rosterd db setup-roles` (an administrative connection: creates the
 * roles, hands every rosterd object to the owner, takes PUBLIC's rights away), and every
 * migration run as the owner afterwards (`refreshGrants`), so objects a new migration adds
 * are covered before the app uses them. A digest of the statements is kept in
 * `rosterd_roles.grants`; they are applied again only when it differs.
 */

export const RoleKinds = ["owner", "app", "platform"] as const
export type RoleKind = (typeof RoleKinds)[number]
export type RoleNames = { readonly [K in RoleKind]: string }

export const DEFAULT_ROLE_NAMES: RoleNames = { owner: "rosterd_owner", app: "rosterd_app", platform: "rosterd_platform" }

/** Plain lower-case names: they are written into SQL (quoted all the same) and into the README. */
const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/

const roleName = (kind: RoleKind) =>
  Config.string(kind).pipe(
    Config.nested("roles"),
    Config.nested("database"),
    Config.nested("rosterd"),
    Config.withDefault(DEFAULT_ROLE_NAMES[kind]),
    Config.validate({
      message: `rosterd.database.roles.${kind} must be a plain role name (a-z, 0-9 and _, starting with a letter or _, at most 63)`,
      validation: (name) => ROLE_NAME.test(name)
    })
  )

/** `rosterd.database.roles.owner|app|platform`. */
export const roleNamesConfig: Config.Config<RoleNames> = Config.all({
  owner: roleName("owner"),
  app: roleName("app"),
  platform: roleName("platform")
}).pipe(
  Config.validate({
    message: "rosterd.database.roles: owner, app and platform must be three different roles",
    validation: (names) => new Set(RoleKinds.map((k) => names[k])).size === RoleKinds.length
  })
)

/** Advisory-lock key that serialises migrations and role/grant changes between processes. */
export const SCHEMA_LOCK = 0x524f5354_00000001n

export class RolesError extends Data.TaggedError("RolesError")<{ readonly message: string }> {}

// ---------------------------------------------------------------- the grant table

export type Privilege = "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MAINTAIN" | "EXECUTE" | "USAGE"

export interface GrantRow {
  /** A table or view name, or a function with its argument types: `rosterd_confirm_admin(text, bigint)`. */
  readonly object: string
  readonly type: "table" | "view" | "function"
  readonly app: ReadonlyArray<Privilege>
  readonly platform: ReadonlyArray<Privilege>
  /** One line for the README: why the platform has what it has (or has nothing). */
  readonly note: string
}

/**
 * The app's rights on a table: read and write. `MAINTAIN` (PostgreSQL 17+) lets it
 * `ANALYZE` the tables a large sync just changed (older servers: the sync's ANALYZE is
 * skipped with a warning and autovacuum catches up). No TRUNCATE, no ownership.
 */
const APP: ReadonlyArray<Privilege> = ["SELECT", "INSERT", "UPDATE", "DELETE", "MAINTAIN"]
const READ: ReadonlyArray<Privilege> = ["SELECT"]
const NONE: ReadonlyArray<Privilege> = []
const EXECUTE: ReadonlyArray<Privilege> = ["EXECUTE"]

const table = (object: string, platform: ReadonlyArray<Privilege>, note: string, app = APP): GrantRow => ({
  object,
  type: "table",
  app,
  platform,
  note
})

export const GRANTS: ReadonlyArray<GrantRow> = [
  // The roster, as the platform reads it.
  table("districts", READ, "districts (settings hold no secret: credentials are in district_credentials)"),
  table("schools", READ, "roster"),
  table("terms", READ, "roster"),
  table("courses", READ, "roster"),
  table("classes", ["SELECT", "INSERT", "UPDATE", "DELETE"], "teacher-made classes: create, rename, delete; the lock triggers refuse district-synced ones"),
  table("users", READ, "rostered people: read only"),
  table("enrollments", ["SELECT", "INSERT", "UPDATE", "DELETE"], "memberships of teacher-made classes (synced students, and accounts not rostered in the district); the triggers refuse synced classes' memberships"),
  table("class_integrations", ["SELECT", "INSERT", "DELETE"], "integrations of teacher-made classes; the triggers refuse synced classes"),
  table("accounts", READ, "accounts (written by the confirm functions); a merged one's merged_into names the account that survived"),
  table("account_emails", ["SELECT", "INSERT"], "an account's addresses: the platform adds them"),
  table("account_links", READ, "which account a rostered user is (links are permanent)"),
  table("user_identities", READ, "rostered users' provider and login identities (Clever id, sourcedId, userIds, SIS ids); written by the sync only"),
  table("contact_links", READ, "guardians and contacts linked to their students, with the relationship (rules.contacts); written by the sync only"),
  table("account_identities", READ, "provider identities of accounts known without a roster (accounts import)"),
  table("admins", READ, "in-product administrators"),
  table("partnerships", READ, "partnerships"),
  table("regions", READ, "regions of partnerships"),
  table("partnership_districts", READ, "districts of partnerships"),
  { object: "roster_admins", type: "view", app: READ, platform: READ, note: "rostered administrators" },
  { object: "admin_rights", type: "view", app: READ, platform: READ, note: "who administers what: what the platform checks" },
  // rosterd's own and the operators': nothing for the platform.
  table("sync_runs", NONE, "run history (operators: rosterd runs, /status)"),
  table("findings", NONE, "data-quality findings (operators: rosterd report)"),
  table("sync_cursors", NONE, "change-feed positions"),
  table("pauses", NONE, "ad-hoc pauses"),
  table("account_reviews", NONE, "the operators' review queue"),
  table("district_masking", NONE, "personal fields a district masks (counts; account linking waits)"),
  table("holds", NONE, "held change sets"),
  table("held_changes", NONE, "held records, with new values"),
  table("rekey_suspicions", NONE, "figures of a run held as a suspected re-key"),
  table("rekey_proposals", NONE, "the source-ID mapping a held run proposes"),
  table("rekeys", NONE, "re-keys applied (who, when, counts)"),
  table("rekey_records", NONE, "each record a re-key rewrote: old and new source ID"),
  table("run_changes", NONE, "per-run change lists"),
  table("run_change_values", NONE, "before-values of what a run updated or deactivated (personal data: the app only)"),
  table("run_undos", NONE, "runs undone: who, when, counts, stale records"),
  table("roster_digest_sets", NONE, "per district and kind: the version and count of the record digests"),
  ...DIGEST_TABLES.map((name) => table(name, NONE, "record digests and the staging rows they produced (personal data: the app only)")),
  table("roster_applied", NONE, "per district: what its last applied run read, and the stored roster's fingerprint then"),
  table("outbox", NONE, "queued mail: recipients, bodies, sealed links"),
  table("notifications", NONE, "operator notifications: events with ids and counts (src/Notify)"),
  table("notify_state", NONE, "when notifications started"),
  table("notify_district_state", NONE, "per district: stale at the last look, and the episode"),
  table("webhook_deliveries", NONE, "webhook deliveries: URL, state, attempts (no body, no secret)"),
  table("webhooks_disabled", NONE, "webhook URLs whose receiver answered 410 Gone"),
  table("discovered_districts", NONE, "Clever districts that authorised the app (no token)"),
  table("activation_tokens", NONE, "token hashes: only through rosterd_confirm_activation"),
  table("admin_tokens", NONE, "token hashes: only through rosterd_confirm_admin"),
  table("district_credentials", NONE, "provider credentials (encrypted)"),
  table("audit_log", NONE, "append-only for rosterd too: no UPDATE or DELETE", ["SELECT", "INSERT", "MAINTAIN"]),
  table("rosterd_roles", NONE, "which roles are rosterd's (read by the lock triggers' check)", READ),
  table("rosterd_migrations", NONE, "applied migrations (the app checks; the owner writes)", READ),
  // Functions. The lock triggers' own functions (RETURNS trigger) are granted to no one.
  { object: "rosterd_confirm_activation(text, bigint)", type: "function", app: EXECUTE, platform: EXECUTE, note: "confirm a teacher's activation (SECURITY DEFINER)" },
  { object: "rosterd_confirm_admin(text, bigint)", type: "function", app: EXECUTE, platform: EXECUTE, note: "confirm an admin invitation (SECURITY DEFINER)" },
  { object: "rosterd_resolve_login(text, text, text)", type: "function", app: EXECUTE, platform: EXECUTE, note: "a Clever or ClassLink sign-in to its account (SECURITY DEFINER)" },
  { object: "rosterd_writer_allowed(name)", type: "function", app: EXECUTE, platform: EXECUTE, note: "called by the lock triggers for the writing role (SECURITY DEFINER)" },
  { object: "rosterd_synced(roster_source)", type: "function", app: EXECUTE, platform: EXECUTE, note: "called by the lock triggers for the writing role" },
  { object: "rosterd_refuse(text, text)", type: "function", app: EXECUTE, platform: EXECUTE, note: "called by the lock triggers for the writing role" }
]

/**
 * The tables' sequences (identity columns): the app draws ids ahead with `nextval` (tokens,
 * accounts); the platform's inserts use the identity defaults, which need no right.
 */
const SEQUENCE_APP: ReadonlyArray<Privilege> = ["USAGE", "SELECT"]

/** Types rosterd's migrations create: handed to the owner (their USAGE stays PUBLIC's, as Postgres has it). */
export const TYPES: ReadonlyArray<string> = ["roster_source"]

// ---------------------------------------------------------------- statements

/** An object of rosterd's schema as the catalog has it. */
export interface CatalogObject {
  /** Table or view name, or `name(arg types)` for a function. */
  readonly name: string
  readonly type: "table" | "view" | "sequence" | "function" | "trigger"
  readonly owner: string
  /** Sequences: the table whose column they serve. */
  readonly parent?: string | null
  /** Functions: whether they run with a fixed search_path. */
  readonly pinned: boolean
}

const ident = (name: string) => `"${name.replace(/"/g, "\"\"")}"`

/** `name(args)` → `"schema"."name"(args)`; a table name → `"schema"."name"`. */
const qualified = (schema: string, object: string) => {
  const paren = object.indexOf("(")
  return paren < 0 ? `${ident(schema)}.${ident(object)}` : `${ident(schema)}.${ident(object.slice(0, paren))}${object.slice(paren)}`
}

export const pinnedSearchPath = (schema: string) => `pg_catalog, ${ident(schema)}, pg_temp`

export interface GrantOptions {
  /** The server knows `MAINTAIN` (PostgreSQL 17+). */
  readonly maintain: boolean
}

/**
 * The statements that give rosterd's objects exactly the rights of `GRANTS`: each known
 * object is reset (PUBLIC's and our roles' rights revoked) and granted. Objects the table
 * does not name get the safe default: a table owned by the owner (one a later migration
 * added) the app's usual rights and nothing for the platform; a trigger function nothing;
 * any other rosterd function EXECUTE for the app only.
 */
export const grantStatements = (names: RoleNames, schema: string, objects: ReadonlyArray<CatalogObject>, options: GrantOptions) => {
  const known = new Map(GRANTS.map((g) => [g.object, g]))
  const rights = (privileges: ReadonlyArray<Privilege>, type: CatalogObject["type"]) =>
    privileges.filter((p) => (p === "MAINTAIN" ? options.maintain && type === "table" : true))
  const out: Array<string> = []
  const grant = (privileges: ReadonlyArray<Privilege>, on: string, role: string) => {
    if (privileges.length > 0) out.push(`GRANT ${privileges.join(", ")} ON ${on} TO ${ident(role)}`)
  }
  for (const object of [...objects].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const row = known.get(object.name)
    const kind = object.type === "table" || object.type === "view" ? "TABLE" : object.type === "sequence" ? "SEQUENCE" : "FUNCTION"
    const on = `${kind} ${qualified(schema, object.name)}`
    if (object.type === "trigger") {
      out.push(`REVOKE ALL ON ${on} FROM PUBLIC, ${ident(names.app)}, ${ident(names.platform)}`)
      continue
    }
    if (object.type === "sequence") {
      out.push(`REVOKE ALL ON ${on} FROM PUBLIC, ${ident(names.app)}, ${ident(names.platform)}`)
      grant(SEQUENCE_APP, on, names.app)
      continue
    }
    if (row === undefined && object.type === "table" && object.owner !== names.owner) continue // not rosterd's
    out.push(`REVOKE ALL ON ${on} FROM PUBLIC, ${ident(names.app)}, ${ident(names.platform)}`)
    const app = row?.app ?? (object.type === "function" ? EXECUTE : object.type === "view" ? READ : APP)
    grant(rights(app, object.type), on, names.app)
    grant(rights(row?.platform ?? NONE, object.type), on, names.platform)
  }
  return out
}

/** The owner's default privileges: what the app gets on tables a later migration creates, before any grant pass. */
export const defaultPrivilegeStatements = (names: RoleNames, schema: string, options: GrantOptions) => [
  `ALTER DEFAULT PRIVILEGES FOR ROLE ${ident(names.owner)} IN SCHEMA ${ident(schema)} GRANT ${
    APP.filter((p) => p !== "MAINTAIN" || options.maintain).join(", ")
  } ON TABLES TO ${ident(names.app)}`,
  `ALTER DEFAULT PRIVILEGES FOR ROLE ${ident(names.owner)} IN SCHEMA ${ident(schema)} GRANT ${SEQUENCE_APP.join(", ")} ON SEQUENCES TO ${ident(names.app)}`
]

/** Every rosterd function runs with a fixed search_path (see migrations/0008): the ones a later migration added, too. */
export const pinStatements = (schema: string, objects: ReadonlyArray<CatalogObject>) =>
  objects
    .filter((o) => (o.type === "function" || o.type === "trigger") && !o.pinned)
    .map((o) => `ALTER FUNCTION ${qualified(schema, o.name)} SET search_path = ${pinnedSearchPath(schema)}`)

export const digestOf = (statements: ReadonlyArray<string>) =>
  createHash("sha256").update(statements.join(";\n")).digest("hex").slice(0, 16)

// ---------------------------------------------------------------- the README's table

const privilegeText = (privileges: ReadonlyArray<Privilege>) =>
  privileges.length === 0 ? "—" : privileges.map((p) => (p === "MAINTAIN" ? "MAINTAIN¹" : p)).join(", ")

/** The grant table as Markdown (`rosterd db grants --markdown`; the README holds the defaults' version). */
export const grantsMarkdown = (names: RoleNames) => {
  const rows = GRANTS.map((g) =>
    `| \`${g.object}\` | ${g.type} | ${privilegeText(g.app)} | ${privilegeText(g.platform)} | ${g.note} |`
  )
  return [
    `| object | kind | \`${names.app}\` (rosterd) | \`${names.platform}\` (platform) | what for |`,
    "| --- | --- | --- | --- | --- |",
    ...rows,
    `| the tables' sequences | sequence | ${privilegeText(SEQUENCE_APP)} | — | ids drawn ahead (\`nextval\`); the platform's inserts use the identity defaults, which need none |`,
    `| any other table a migration adds | table | ${privilegeText(APP)} | — | the owner's default privileges; the platform gets nothing unless this table says so |`,
    "| the lock triggers' functions (`RETURNS trigger`) | function | — | — | fired by the triggers, called by no one |",
    `| schema | schema | USAGE | USAGE | \`${names.owner}\` owns every object above and alone may CREATE; PUBLIC has no right on any of them |`,
    "",
    "¹ PostgreSQL 17 and later (lets the sync `ANALYZE` what it just changed)."
  ].join("\n")
}

// ---------------------------------------------------------------- the database

/** rosterd's objects in the current schema: tables, views, `rosterd_*` functions. */
const catalog = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly name: string; readonly type: CatalogObject["type"]; readonly owner: string; readonly pinned: boolean; readonly parent: string | null }>`
    SELECT c.relname AS name, CASE WHEN c.relkind IN ('v', 'm') THEN 'view' WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS type,
           pg_get_userbyid(c.relowner) AS owner, true AS pinned,
           (SELECT t.relname FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
            WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid
              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS parent
    FROM pg_class c
    WHERE c.relnamespace = to_regnamespace(current_schema()) AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
    UNION ALL
    SELECT p.proname || '(' || oidvectortypes(p.proargtypes) || ')',
           CASE WHEN p.prorettype = 'trigger'::regtype THEN 'trigger' ELSE 'function' END,
           pg_get_userbyid(p.proowner),
           coalesce(EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%'), false),
           NULL
    FROM pg_proc p
    WHERE p.pronamespace = to_regnamespace(current_schema()) AND p.proname LIKE 'rosterd\\_%'`
  return rows as ReadonlyArray<CatalogObject>
})

const serverOptions = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ readonly version: number; readonly schema: string }>`
    SELECT current_setting('server_version_num')::int AS version, current_schema() AS schema`
  return { schema: row!.schema, options: { maintain: row!.version >= 170000 } satisfies GrantOptions }
})

/**
 * Which objects of the schema are rosterd's: the known ones, the `rosterd_*` functions, and
 * tables or views the owner made (a later migration's). In a schema shared with the
 * platform, the platform's own tables are none of these.
 */
const rosterdObjects = (names: RoleNames, objects: ReadonlyArray<CatalogObject>) => {
  const known = new Set(GRANTS.map((g) => g.object))
  return objects.filter((o) =>
    known.has(o.name) || o.type === "function" || o.type === "trigger" || o.owner === names.owner ||
    (o.type === "sequence" && o.parent != null && known.has(o.parent))
  )
}

/**
 * The grant pass for the current catalog: its statements and their digest. The digest
 * covers the objects the grant table names (and every rosterd function): a table the grant
 * table does not name already has the owner's default privileges, so it alone does not make
 * the grants out of date (the next pass includes it all the same).
 */
const grantPlan = (names: RoleNames) =>
  Effect.gen(function*() {
    const { options, schema } = yield* serverOptions
    const objects = rosterdObjects(names, yield* catalog)
    const known = new Set(GRANTS.map((g) => g.object))
    const named = objects.filter((o) =>
      known.has(o.name) || o.type === "function" || o.type === "trigger" || (o.type === "sequence" && o.parent != null && known.has(o.parent))
    )
    const defaults = defaultPrivilegeStatements(names, schema, options)
    const grants = [...grantStatements(names, schema, objects, options), ...defaults]
    return {
      schema,
      objects,
      grants,
      pins: pinStatements(schema, objects),
      digest: digestOf([...grantStatements(names, schema, named, options), ...defaults])
    }
  })

const rolesTableExists = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ readonly present: boolean }>`SELECT to_regclass('rosterd_roles') IS NOT NULL AS present`, ([row]) => row?.present === true))

/** The roles recorded in `rosterd_roles` (empty: a single-role deployment, or roles not set up yet). */
export const recordedRoles = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if (!(yield* rolesTableExists)) return { recorded: [] as ReadonlyArray<{ readonly kind: string; readonly roleName: string; readonly grants: string | null }>, table: false }
  const recorded = yield* sql<{ readonly kind: string; readonly roleName: string; readonly grants: string | null }>`
    SELECT kind, role_name, grants FROM rosterd_roles ORDER BY kind`
  return { recorded, table: true }
})

const missingRoles = (names: RoleNames) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const wanted = RoleKinds.map((k) => names[k])
    const rows = yield* sql<{ readonly rolname: string }>`SELECT rolname FROM pg_roles WHERE rolname IN ${sql.in(wanted)}`
    const present = new Set(rows.map((r) => r.rolname))
    return wanted.filter((name) => !present.has(name))
  })

/**
 * Records the roles and applies the grant pass, when needed (`force`: always). Runs as the
 * owner (or an administrator): grants on objects are their owner's to give. The caller
 * holds `SCHEMA_LOCK` and runs it in a transaction. Does nothing for a database whose
 * roles are not set up (no `rosterd_roles`, or roles missing): the single-role deployment.
 */
export const applyGrants = (names: RoleNames, options: { readonly force: boolean }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (!(yield* rolesTableExists)) return { applied: false, reason: "no rosterd schema yet (run the migrations)" } as const
    const missing = yield* missingRoles(names)
    if (missing.length > 0) return { applied: false, reason: `roles missing: ${missing.join(", ")} (run rosterd db setup-roles)` } as const
    const plan = yield* grantPlan(names)
    const { recorded } = yield* recordedRoles
    const current = recorded.length === RoleKinds.length &&
      RoleKinds.every((k) => recorded.some((r) => r.kind === k && r.roleName === names[k] && r.grants === plan.digest))
    if (current && plan.pins.length === 0 && !options.force) return { applied: false, reason: "current" } as const
    for (const statement of [...plan.pins, ...plan.grants]) yield* sql.unsafe(statement)
    for (const kind of RoleKinds) {
      yield* sql`
        INSERT INTO rosterd_roles (kind, role_name, grants) VALUES (${kind}, ${names[kind]}, ${plan.digest})
        ON CONFLICT (kind) DO UPDATE SET role_name = EXCLUDED.role_name, grants = EXCLUDED.grants, updated_at = now()`
    }
    return { applied: true, reason: `${plan.grants.length} statements`, digest: plan.digest } as const
  })

/** Whether this connection may run the grant pass: it has the privileges of the owner of `rosterd_roles`. */
export const canGrant = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ readonly can: boolean | null }>`
    SELECT pg_has_role(current_user, c.relowner, 'USAGE') AS can FROM pg_class c WHERE c.oid = to_regclass('rosterd_roles')`
  return row?.can === true
})

/** Whether the recorded grant digest is the one this code would apply (null: roles not set up). */
export const grantsCurrent = (names: RoleNames) =>
  Effect.gen(function*() {
    const { recorded } = yield* recordedRoles
    if (recorded.length === 0) return null
    const plan = yield* grantPlan(names)
    return plan.pins.length === 0 && recorded.every((r) => r.grants === plan.digest) &&
      RoleKinds.every((k) => recorded.some((r) => r.kind === k && r.roleName === names[k]))
  })

// ---------------------------------------------------------------- setup-roles

export interface SetupOptions {
  readonly names: RoleNames
  /** LOGIN passwords to set (the embedded default's generated ones); roles created without one get none. */
  readonly passwords?: Partial<Record<RoleKind, Redacted.Redacted>>
}

export interface SetupReport {
  readonly connectedAs: string
  readonly schema: string
  readonly created: ReadonlyArray<string>
  readonly existing: ReadonlyArray<string>
  /** Roles created or found without a password (an external database: the operator gives them one). */
  readonly withoutPassword: ReadonlyArray<string>
  readonly ownershipMoved: number
  readonly grants: string
  /** Migrations not applied yet (they run as the owner: `rosterd migrate`). */
  readonly pendingSchema: boolean
}

const quoteLiteral = (text: string) => `'${text.replace(/'/g, "''")}'`

/** SQLSTATEs of a role created meanwhile by another process: duplicate_object, unique_violation. */
const raced = (error: SqlError.SqlError) => {
  const code = (error.cause as { readonly code?: unknown } | undefined)?.code
  return code === "42710" || code === "23505"
}

/**
 * The app may turn Postgres' per-row triggers off for the sync's bulk inserts, which then
 * check their foreign keys as a set (src/Reconcile/ReferencesBySet.ts): `SET` on
 * `session_replication_role`, which only a superuser can grant, from PostgreSQL 15 on.
 * The platform's role must never have it: it would turn the lock triggers off.
 */
/** Whether the server grants rights on parameters (`GRANT SET ON PARAMETER`, `has_parameter_privilege`): PostgreSQL 15+. */
export const parameterGrants = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ readonly n: number }>`SELECT current_setting('server_version_num')::int AS n`, ([row]) => (row?.n ?? 0) >= 150000))

export const grantReplicaWrites = (names: RoleNames, superuser: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (!(yield* parameterGrants)) return
    const [held] = yield* sql<{ readonly app: boolean; readonly platform: boolean }>`
      SELECT has_parameter_privilege(${names.app}, 'session_replication_role', 'SET') AS app,
             has_parameter_privilege(${names.platform}, 'session_replication_role', 'SET') AS platform`
    if (held?.platform) {
      return yield* new RolesError({
        message: `${names.platform} may set session_replication_role, which turns the lock triggers off: revoke it (REVOKE SET ON PARAMETER session_replication_role FROM ${names.platform})`
      })
    }
    if (!held?.app && superuser) yield* sql.unsafe(`GRANT SET ON PARAMETER session_replication_role TO ${ident(names.app)}`)
  })

/**
 * `rosterd db setup-roles`: idempotent, safe to run again and from two processes at once
 * (an advisory lock serialises it with migrations; a role created meanwhile by a process
 * on another database of the cluster is taken as existing). Needs a superuser, or a role
 * with CREATEROLE that owns rosterd's objects (it makes itself a member of the owner to
 * hand them over). One transaction: all of it or nothing.
 */
export const setupRoles = (options: SetupOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { names } = options
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK.toString()}::bigint)`
      const [me] = yield* sql<{ readonly name: string; readonly superuser: boolean; readonly createrole: boolean; readonly database: string; readonly schema: string | null }>`
        SELECT current_user AS name, r.rolsuper AS superuser, r.rolcreaterole AS createrole,
               current_database() AS database, current_schema() AS schema
        FROM pg_roles r WHERE r.rolname = current_user`
      if (me === undefined || me.schema === null) return yield* new RolesError({ message: "no current schema (check the connection's search_path)" })
      if (!me.superuser && !me.createrole) {
        return yield* new RolesError({ message: `setup-roles needs a superuser or a role with CREATEROLE; connected as ${me.name}` })
      }
      if (RoleKinds.some((k) => names[k] === me.name)) {
        return yield* new RolesError({ message: `run setup-roles as an administrator, not as one of the roles it sets up (connected as ${me.name})` })
      }
      const schema = me.schema
      const s = ident(schema)

      // 1. The roles.
      const created: Array<string> = []
      const existing: Array<string> = []
      for (const kind of RoleKinds) {
        const name = names[kind]
        const password = options.passwords?.[kind]
        const pw = password === undefined ? "" : ` PASSWORD ${quoteLiteral(Redacted.value(password))}`
        const made = yield* sql.withTransaction(sql.unsafe(`CREATE ROLE ${ident(name)} LOGIN${pw}`)).pipe(
          Effect.as(true),
          Effect.catchIf(raced, () => Effect.succeed(false))
        )
        if (made) created.push(name)
        else {
          existing.push(name)
          if (password !== undefined) yield* sql.unsafe(`ALTER ROLE ${ident(name)} LOGIN${pw}`)
        }
      }
      // A boundary only if neither the app nor the platform is above it.
      const [privileged] = yield* sql<{ readonly problem: string | null }>`
        SELECT string_agg(problem, '; ') AS problem FROM (
          SELECT r.rolname || ' is a superuser' AS problem FROM pg_roles r WHERE r.rolname IN (${names.app}, ${names.platform}) AND r.rolsuper
          UNION ALL SELECT ${names.platform}::text || ' is a member of ' || x FROM unnest(ARRAY[${names.owner}, ${names.app}]::text[]) x
            WHERE pg_has_role(${names.platform}::name, x::name, 'MEMBER')
          UNION ALL SELECT ${names.app}::text || ' is a member of ' || ${names.owner}::text
            WHERE pg_has_role(${names.app}::name, ${names.owner}::name, 'MEMBER')
        ) p`
      if (privileged?.problem) {
        return yield* new RolesError({ message: `${privileged.problem}: the roles would draw no line (see the README, "Security")` })
      }
      // pg_authid is for superusers only: a CREATEROLE administrator cannot tell.
      const [pw] = me.superuser
        ? yield* sql<{ readonly without: ReadonlyArray<string> | null }>`
            SELECT array_agg(rolname::text ORDER BY rolname) AS without FROM pg_authid
            WHERE rolname IN ${sql.in(RoleKinds.map((k) => names[k]))} AND rolpassword IS NULL`
        : [{ without: null }]

      // 2. The administrator hands objects over only as a member of the owner (superusers are).
      if (!me.superuser) {
        const [member] = yield* sql<{ readonly is: boolean }>`SELECT pg_has_role(current_user, ${names.owner}, 'MEMBER') AS is`
        if (!member?.is) yield* sql.unsafe(`GRANT ${ident(names.owner)} TO CURRENT_USER`)
      }

      // 3. Database and schema: connect for all three, temporary tables for the app (staging),
      //    CREATE on the schema for the owner alone (nobody else can plant an object there).
      const database = ident(me.database)
      const needs = yield* sql<{ readonly statement: string }>`
        SELECT statement FROM (VALUES
          (NOT has_database_privilege(${names.owner}, current_database(), 'CONNECT'), ${`GRANT CONNECT ON DATABASE ${database} TO ${ident(names.owner)}`}),
          (NOT has_database_privilege(${names.app}, current_database(), 'CONNECT'), ${`GRANT CONNECT ON DATABASE ${database} TO ${ident(names.app)}`}),
          (NOT has_database_privilege(${names.app}, current_database(), 'TEMPORARY'), ${`GRANT TEMPORARY ON DATABASE ${database} TO ${ident(names.app)}`}),
          (NOT has_database_privilege(${names.platform}, current_database(), 'CONNECT'), ${`GRANT CONNECT ON DATABASE ${database} TO ${ident(names.platform)}`}),
          (NOT (has_schema_privilege(${names.owner}, current_schema(), 'USAGE') AND has_schema_privilege(${names.owner}, current_schema(), 'CREATE')), ${`GRANT USAGE, CREATE ON SCHEMA ${s} TO ${ident(names.owner)}`}),
          (NOT has_schema_privilege(${names.app}, current_schema(), 'USAGE'), ${`GRANT USAGE ON SCHEMA ${s} TO ${ident(names.app)}`}),
          (NOT has_schema_privilege(${names.platform}, current_schema(), 'USAGE'), ${`GRANT USAGE ON SCHEMA ${s} TO ${ident(names.platform)}`}),
          (EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                   WHERE n.oid = to_regnamespace(current_schema()) AND a.grantee = 0 AND a.privilege_type = 'CREATE'),
           ${`REVOKE CREATE ON SCHEMA ${s} FROM PUBLIC`})
        ) AS v (needed, statement) WHERE needed`
      for (const { statement } of needs) yield* sql.unsafe(statement)
      yield* grantReplicaWrites(names, me.superuser)

      // 4. Every rosterd object to the owner (its indexes, sequences and triggers follow).
      const objects = yield* catalog
      const known = new Set([...GRANTS.map((g) => g.object)])
      const moves = [
        ...objects
          .filter((o) => o.owner !== names.owner && (known.has(o.name) || o.type === "function" || o.type === "trigger"))
          .map((o) => `ALTER ${o.type === "table" ? "TABLE" : o.type === "view" ? "VIEW" : "FUNCTION"} ${qualified(schema, o.name)} OWNER TO ${ident(names.owner)}`),
        ...(yield* sql<{ readonly name: string }>`
          SELECT t.typname AS name FROM pg_type t
          WHERE t.typnamespace = to_regnamespace(current_schema()) AND t.typname IN ${sql.in(TYPES)}
            AND pg_get_userbyid(t.typowner) <> ${names.owner}`).map((t) => `ALTER TYPE ${qualified(schema, t.name)} OWNER TO ${ident(names.owner)}`)
      ]
      for (const statement of moves) yield* sql.unsafe(statement)

      // 5. Default privileges, then the grant pass (once the migrations made rosterd_roles).
      const { options: grantOptions } = yield* serverOptions
      for (const statement of defaultPrivilegeStatements(names, schema, grantOptions)) yield* sql.unsafe(statement)
      const grants = yield* applyGrants(names, { force: true })
      const pending = !(yield* rolesTableExists)
      return {
        connectedAs: me.name,
        schema,
        created,
        existing,
        withoutPassword: pw?.without ?? [],
        ownershipMoved: moves.length,
        grants: grants.applied ? `applied (${grants.reason})` : grants.reason,
        pendingSchema: pending
      } satisfies SetupReport
    }))
  })

// ---------------------------------------------------------------- status (doctor)

export interface RoleStatus {
  readonly currentUser: string
  readonly superuser: boolean
  /** The connection has the owner's privileges: it owns rosterd's tables (or is a member of who does). */
  readonly owner: boolean
  /** Configured roles that do not exist. */
  readonly missing: ReadonlyArray<string>
  /** Kinds recorded in `rosterd_roles` (empty: roles not set up). */
  readonly recorded: ReadonlyArray<string>
  /** Objects of this database the platform role owns. */
  readonly platformOwns: number
  /** Why the platform role is above the boundary, if it is. */
  readonly platformAbove: string | null
  /** PUBLIC or the platform role may create objects in rosterd's schema. */
  readonly schemaOpen: boolean
  readonly grantsCurrent: boolean | null
}

export const roleStatus = (names: RoleNames) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [me] = yield* sql<{ readonly currentUser: string; readonly superuser: boolean; readonly owner: boolean | null }>`
      SELECT current_user AS current_user, r.rolsuper AS superuser,
             (SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = to_regclass('users')) AS owner
      FROM pg_roles r WHERE r.rolname = current_user`
    const missing = yield* missingRoles(names)
    const { recorded } = yield* recordedRoles
    const platformExists = !missing.includes(names.platform)
    const [platform] = platformExists
      ? yield* sql<{ readonly owns: number; readonly above: string | null; readonly open: boolean }>`
          SELECT (SELECT count(*)::int FROM pg_class WHERE relowner = r.oid)
               + (SELECT count(*)::int FROM pg_proc WHERE proowner = r.oid)
               + (SELECT count(*)::int FROM pg_namespace WHERE nspowner = r.oid)
               + (SELECT count(*)::int FROM pg_type WHERE typowner = r.oid AND typrelid = 0 AND typelem = 0) AS owns,
                 CASE WHEN r.rolsuper THEN 'a superuser'
                      ELSE (SELECT 'a member of ' || string_agg(o.rolname, ' and ') FROM pg_roles o
                            WHERE o.rolname IN (${names.owner}, ${names.app}) AND pg_has_role(r.oid, o.oid, 'MEMBER'))
                 END AS above,
                 has_schema_privilege(r.oid, current_schema(), 'CREATE') AS open
          FROM pg_roles r WHERE r.rolname = ${names.platform}`
      : [undefined]
    return {
      currentUser: me!.currentUser,
      superuser: me!.superuser,
      owner: me!.owner === true,
      missing,
      recorded: recorded.map((r) => r.kind),
      platformOwns: platform?.owns ?? 0,
      platformAbove: platform?.above ?? null,
      schemaOpen: platform?.open ?? false,
      grantsCurrent: yield* grantsCurrent(names)
    } satisfies RoleStatus
  })
