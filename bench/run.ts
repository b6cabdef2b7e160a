/**
 * `npm run bench [-- --students 100000] [--seed bench] [--regenerate] [--keep]`
 *
 * How fast does a sync load a district, compared to the fastest way Postgres can take the
 * same rows? Three timed phases over one generated OneRoster CSV district:
 *
 * 1. **full sync** — `Sync.run` of a new district (staging, checks, diff, apply), in-process;
 * 2. **COPY baseline** — the same rows, same columns, same tables (foreign keys and all),
 *    loaded with plain `COPY` into a second fresh database; the COPY text is prepared before
 *    the timer starts, so the timer sees only Postgres loading rows;
 * 3. **no-op sync** — the same district again, unchanged; it must write no roster row
 *    (checked with pg_stat_user_tables and a ctid/xmin fingerprint of every roster table);
 * 4. **1 % resync** — a copy of the district with about 1 % of its records changed
 *    (bench/Mutate.ts: students added, removed and renamed, enrollments moved); its counts
 *    must be exactly those changes;
 * 5. the same district through the fake Clever and OneRoster REST servers (each sync in a
 *    process of its own; `--skip-rest` leaves them out).
 *
 * Before each phase the database is `VACUUM ANALYZE`d and `CHECKPOINT`ed, so no phase pays
 * for another's background work. Postgres is a throwaway embedded server, or, when
 * `DATABASE_URL` is set, two fresh databases created (and dropped) on that server.
 *
 * Progress goes to stderr; the report to stdout, ending with five machine-readable lines:
 * `resync_vs_copy=`, `rest_vs_copy=` (the slower REST provider), `full_vs_copy=`,
 * `noop_vs_copy=` (ratios of seconds) and `peak_rss_mib=` (this process). Each phase's own
 * peak RSS is in the table.
 */
import { ConfigProvider, Effect, Layer, ManagedRuntime, Redacted, type Tracer } from "effect"
import { spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import pg from "pg"
import type { DistrictId } from "../src/Domain/District.ts"
import { rosterSourceOf } from "../src/Domain/District.ts"
import { RosterProviderLive } from "../src/Providers/Providers.ts"
import type { RunCounts } from "../src/Domain/RunCounts.ts"
import { Entities } from "../src/Reconcile/Entities.ts"
import { Sync, SyncProgress } from "../src/Reconcile/SyncRun.ts"
import { SyncLive } from "../src/Accounts/SyncAccounts.ts"
import { startTemporary } from "../src/Store/EmbeddedPostgres.ts"
import { RosterStore } from "../src/Store/RosterStore.ts"
import { migrate, pgClientLayer } from "../src/Store/Sql.ts"
import { advanceSequences, loadCopy, type PreparedCopy } from "./Baseline.ts"
import { mutateDistrict } from "./Mutate.ts"
import { breakdown, machineCpuReader, PART, recordingTracer, serverCpuReader, slowestStatements, type SpanRecord, type Step } from "./Profile.ts"
import { benchTimezone } from "./Timezone.ts"

const ROOT = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "..")
const ROSTER_TABLES = ["schools", "terms", "courses", "classes", "users", "enrollments"] as const
const DISTRICT = "bench"
/** Fixed when the bench starts: every phase sees the same local day (Timezone.ts). */
const BENCH_TIMEZONE = benchTimezone()
const SCHOOL_SIZE = 500

const { values: args } = parseArgs({
  options: {
    students: { type: "string", default: "100000" },
    seed: { type: "string", default: "bench" },
    regenerate: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    "skip-rest": { type: "boolean", default: false },
    statements: { type: "string", default: "0" },
    "shared-buffers-mb": { type: "string" },
    "max-wal-size-mb": { type: "string" },
    help: { type: "boolean", short: "h", default: false }
  }
})
if (args.help) {
  process.stdout.write(`usage: npm run bench -- [--students N] [--seed S] [--regenerate] [--keep]
  --students N    district size (default 100000)
  --seed S        generator seed (default "bench")
  --regenerate    generate the CSV set again even if bench/.data has it
  --keep          keep the bench databases (only with DATABASE_URL; the embedded server is always removed)
  --skip-rest     leave out the Clever and OneRoster REST full syncs through the fake servers
  --statements N  after each phase's steps, its N slowest SQL statements (for finding what to work on)
  --shared-buffers-mb N, --max-wal-size-mb N  the embedded server's shared_buffers and max_wal_size (default: Postgres' own, 128 and 1024)
`)
  process.exit(0)
}
const students = Number(args.students)
if (!Number.isInteger(students) || students < 1) {
  process.stderr.write(`--students must be a positive integer, got "${args.students}"\n`)
  process.exit(2)
}

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`)
/** Peak RSS so far, for the progress lines: shows which step sets the peak. */
const peakRss = () => `peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`
/** The server's shared_buffers and max_wal_size, as read at the start (printed with the figures). */
let serverSettings = ""
const seconds = (ms: number) => (ms / 1000).toFixed(2)
const int = (n: number) => n.toLocaleString("en-US")

// ---------------------------------------------------------------------------------------
// Cleanup: run once, in reverse order, on success, failure and SIGINT/SIGTERM.

const finalizers: Array<{ readonly name: string; readonly run: () => Promise<unknown> }> = []
const onCleanup = (name: string, run: () => Promise<unknown>) => finalizers.push({ name, run })
let cleaning: Promise<void> | undefined
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const { name, run } of finalizers.reverse()) {
      try {
        await Promise.race([run(), new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), 30_000).unref())])
      } catch (error) {
        log(`cleanup: ${name} failed: ${error instanceof Error ? error.message : String(error)}`)
      }
    }
  })())
// `on`, not `once`: Ctrl-C reaches us twice (from the terminal and relayed by tsx), and a
// second signal must not kill the process half-way through the cleanup.
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  process.on(signal, () => {
    if (cleaning !== undefined) return
    log(`${signal}: cleaning up`)
    void cleanup().finally(() => process.exit(code))
  })
}

// ---------------------------------------------------------------------------------------
// 1. The district: generated once per parameters, in a child process (not in our RSS).

interface Marker {
  readonly students: number
  readonly seed: string
  readonly schoolSize: number
  readonly missingBirthDates: number
  /** Hash of the generator's source: a changed generator means new data. */
  readonly generator: string
  readonly counts?: Record<string, number>
}

interface RestResult {
  readonly ms: number
  readonly counts: RunCounts
  readonly findings: number
  readonly peakRssMib: number
}

/**
 * Starts a long-running `npx tsx <script>` (a fake provider server); resolves once it prints
 * its first stdout line. The servers hold the whole district in memory: they run without the
 * heap bound `npm run bench` gives rosterd's own processes (NODE_OPTIONS, package.json).
 */
const startChild = (script: string, childArgs: ReadonlyArray<string>) =>
  new Promise<{ readonly line: string; readonly stop: () => Promise<void> }>((resolve, reject) => {
    const { NODE_OPTIONS: _bounded, ...env } = process.env
    const child = spawn("npx", ["tsx", script, ...childArgs], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"], detached: true, env })
    let out = ""
    let exited = false
    const stop = () =>
      exited ? Promise.resolve() : new Promise<void>((done) => {
        child.once("exit", () => done())
        try {
          process.kill(-child.pid!, "SIGTERM")
        } catch {
          done()
        }
      })
    child.once("exit", () => {
      exited = true
    })
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      const newline = out.indexOf("\n")
      if (newline >= 0) resolve({ line: out.slice(0, newline), stop })
    })
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`${script} exited with ${code} before it was ready`)))
  })

/**
 * The heap bound rosterd runs under in production (deploy/rosterd.service, deploy/Dockerfile).
 * A sync measured in its own process gets it whatever started the bench: `npm run bench`
 * passes it in NODE_OPTIONS, but `npx tsx --max-old-space-size=384 bench/run.ts` bounds
 * only the bench's own heap, and an unbounded child's peak RSS is not the one a district
 * sees (the Clever sync reached 557 MiB that way, 335 MiB bounded).
 */
const DEPLOYED_HEAP = "--max-old-space-size=384"

const childEnv = (): NodeJS.ProcessEnv => {
  const options = process.env.NODE_OPTIONS ?? ""
  return /--max-old-space-size=/.test(options) ? process.env : { ...process.env, NODE_OPTIONS: `${options} ${DEPLOYED_HEAP}`.trim() }
}

/** Runs `npx tsx <script> ...args` from the repository root; resolves with its stdout's last line. */
const runChild = (script: string, childArgs: ReadonlyArray<string>) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn("npx", ["tsx", script, ...childArgs], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"], env: childEnv() })
    let out = ""
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString()
    })
    child.once("error", reject)
    child.once("exit", (code, signal) =>
      code === 0 ? resolve(out.trim().split("\n").pop() ?? "") : reject(new Error(`${script} exited with ${signal ?? code}`)))
  })

const ensureDistrict = async (): Promise<{ dir: string; reused: boolean; counts: Record<string, number> | undefined }> => {
  const dir = NodePath.join(ROOT, "bench", ".data", `district-${students}-${args.seed.replace(/[^A-Za-z0-9_-]/g, "_")}`)
  const markerFile = NodePath.join(dir, "bench-params.json")
  const wanted: Marker = {
    students,
    seed: args.seed,
    schoolSize: SCHOOL_SIZE,
    missingBirthDates: 0,
    generator: createHash("sha256").update(Fs.readFileSync(NodePath.join(ROOT, "bench", "OneRosterGenerator.ts"))).digest("hex").slice(0, 16)
  }
  if (!args.regenerate) {
    try {
      const found = JSON.parse(Fs.readFileSync(markerFile, "utf8")) as Marker
      const same = (Object.keys(wanted) as Array<keyof Marker>).every((key) => key === "counts" || found[key] === wanted[key])
      if (same && Fs.existsSync(NodePath.join(dir, "manifest.csv"))) return { dir, reused: true, counts: found.counts }
    } catch {
      // no marker: generate
    }
  }
  Fs.rmSync(dir, { recursive: true, force: true })
  log(`generating ${int(students)} students (seed "${args.seed}") into ${NodePath.relative(ROOT, dir)} …`)
  const started = performance.now()
  const counts = JSON.parse(
    await runChild("bench/generate.ts", [
      "--students", String(students),
      "--seed", args.seed,
      "--school-size", String(SCHOOL_SIZE),
      "--missing-birth-dates", "0",
      "--out", dir
    ])
  ) as Record<string, number>
  Fs.writeFileSync(markerFile, JSON.stringify({ ...wanted, counts }, null, 2) + "\n")
  log(`generated in ${seconds(performance.now() - started)} s: ${JSON.stringify(counts)}`)
  return { dir, reused: false, counts }
}

// ---------------------------------------------------------------------------------------
// 2. Postgres: a temporary embedded server, or DATABASE_URL's server.

const withDatabase = (url: URL, database: string) => {
  const copy = new URL(url.href)
  copy.pathname = `/${encodeURIComponent(database)}`
  return copy
}

const connect = async (url: URL) => {
  const client = new pg.Client({ connectionString: url.href, application_name: "rosterd-bench" })
  await client.connect()
  return client
}

const adminQuery = async (url: URL, text: string) => {
  const client = await connect(url)
  try {
    return (await client.query(text)).rows as Array<Record<string, unknown>>
  } finally {
    await client.end().catch(() => undefined)
  }
}

const startServer = async (): Promise<{ adminUrl: URL; description: string }> => {
  const external = process.env.DATABASE_URL
  if (external !== undefined && external !== "") {
    const url = new URL(external)
    return { adminUrl: url, description: `DATABASE_URL server ${url.hostname}:${url.port || 5432}` }
  }
  if (args.keep) log("--keep has no effect without DATABASE_URL: the embedded server and its data are removed at the end")
  log("starting a temporary embedded Postgres …")
  const megabytes = (value: string | undefined) => (value === undefined ? undefined : Number(value))
  const server = await startTemporary({ sharedBuffersMb: megabytes(args["shared-buffers-mb"]), maxWalSizeMb: megabytes(args["max-wal-size-mb"]) })
  onCleanup("stop the embedded Postgres", () => server.stop())
  const url = new URL(`postgres://${server.host}:${server.port}/${server.database}`)
  url.username = server.user
  url.password = Redacted.value(server.password)
  return { adminUrl: url, description: "temporary embedded Postgres" }
}

/**
 * A quiet start for the next phase: `VACUUM ANALYZE` both bench databases (so neither has
 * autovacuum work pending from the phase before), wait for running autovacuum workers,
 * then `CHECKPOINT`.
 */
const settle = async (clients: ReadonlyArray<pg.Client>) => {
  for (const client of clients) await client.query("VACUUM ANALYZE")
  const deadline = Date.now() + 120_000
  while (Date.now() < deadline) {
    const { rows } = await clients[0]!.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND datname IS NOT NULL`
    )
    if (rows[0]!.n === 0) break
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  await clients[0]!.query("CHECKPOINT").catch((error: Error) => log(`CHECKPOINT failed (${error.message}); continuing without`))
}

/** Rows inserted, updated or deleted in the roster tables, per the statistics collector. */
const rosterWrites = async (client: pg.Client) => {
  await client.query("SELECT pg_stat_force_next_flush()")
  await client.query("SELECT pg_stat_clear_snapshot()")
  const { rows } = await client.query<{ n: string }>(
    `SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint AS n FROM pg_stat_user_tables WHERE relname = ANY($1)`,
    [ROSTER_TABLES]
  )
  return Number(rows[0]!.n)
}

/**
 * Backends flush their table statistics when idle, at most once a second: wait until the
 * count has been still for 1.5 s (at most 15 s).
 */
const settledRosterWrites = async (client: pg.Client) => {
  const deadline = Date.now() + 15_000
  let last = await rosterWrites(client)
  let stableSince = Date.now()
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    const now = await rosterWrites(client)
    if (now !== last) {
      last = now
      stableSince = Date.now()
    } else if (Date.now() - stableSince >= 1500) break
  }
  return last
}

/** Every roster row's physical version (test/support/Database.ts rosterFingerprint). */
const fingerprint = async (client: pg.Client) => {
  const out: Record<string, string> = {}
  for (const table of ROSTER_TABLES) {
    const { rows } = await client.query<{ digest: string | null }>(
      `SELECT md5(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid)) AS digest FROM ${table}`
    )
    out[table] = rows[0]?.digest ?? "empty"
  }
  return out
}

/** Order-independent content hash of each roster table (ids and timestamps aside). */
const contentHashes = async (client: pg.Client) => {
  const keyed = (kind: "orgs" | "terms" | "courses" | "classes" | "users") => [
    "source_id",
    "roster_source",
    "active",
    ...Entities[kind].columns.map((c) => c.name),
    ...(kind === "users" ? ["birth_date"] : [])
  ]
  const queries: Record<string, string> = {
    schools: `SELECT ${keyed("orgs")} FROM schools WHERE district_id = '${DISTRICT}'`,
    terms: `SELECT ${keyed("terms")} FROM terms WHERE district_id = '${DISTRICT}'`,
    courses: `SELECT ${keyed("courses")} FROM courses WHERE district_id = '${DISTRICT}'`,
    classes: `SELECT ${keyed("classes")} FROM classes WHERE district_id = '${DISTRICT}'`,
    users: `SELECT ${keyed("users")} FROM users WHERE district_id = '${DISTRICT}'`,
    enrollments: `SELECT e.source_id, e.roster_source, e.ended_at IS NULL AS open, ${
      Entities.enrollments.columns.map((c) => `e.${c.name}`).join(", ")
    }, c.source_id AS class_ref, u.source_id AS user_ref
      FROM enrollments e JOIN classes c ON c.id = e.class_id JOIN users u ON u.id = e.user_id WHERE e.district_id = '${DISTRICT}'`
  }
  const out: Record<string, { rows: number; hash: string }> = {}
  for (const [table, query] of Object.entries(queries)) {
    const { rows } = await client.query<{ n: string; h: string }>(
      `SELECT count(*) AS n, coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text AS h FROM (${query}) t`
    )
    out[table] = { rows: Number(rows[0]!.n), hash: rows[0]!.h }
  }
  return out
}

const emptyCounts: RunCounts = {
  schools: { created: 0, updated: 0, deactivated: 0, unchanged: 0 },
  terms: { created: 0, updated: 0, deactivated: 0, unchanged: 0 },
  courses: { created: 0, updated: 0, deactivated: 0, unchanged: 0 },
  classes: { created: 0, updated: 0, deactivated: 0, unchanged: 0 },
  users: { created: 0, updated: 0, deactivated: 0, unchanged: 0 },
  enrollments: { created: 0, updated: 0, deactivated: 0, unchanged: 0 }
}

const changedRows = (counts: RunCounts) =>
  Object.values(counts).reduce((sum, c) => sum + c.created + c.updated + c.deactivated, 0)

interface PhaseResult {
  readonly name: string
  readonly ms: number
  readonly rows: number
  readonly nodeCpuMs: number
  readonly serverCpuS: number | undefined
  readonly otherCpuS: number | undefined
  readonly peakRssMib: number
}

const nodeCpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

// ---------------------------------------------------------------------------------------

const main = async () => {
  const district = await ensureDistrict()
  const { adminUrl, description } = await startServer()

  const tag = `rosterd_bench_${process.pid}_${randomBytes(3).toString("hex")}`
  const syncDb = `${tag}_sync`
  const copyDb = `${tag}_copy`
  for (const name of [syncDb, copyDb]) {
    await adminQuery(adminUrl, `CREATE DATABASE ${name}`)
    if (!(args.keep && process.env.DATABASE_URL)) {
      onCleanup(`drop database ${name}`, () => adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
    }
  }
  const syncUrl = withDatabase(adminUrl, syncDb)
  const copyUrl = withDatabase(adminUrl, copyDb)
  for (const url of [syncUrl, copyUrl]) {
    await Effect.runPromise(migrate.pipe(Effect.provide(pgClientLayer({ url: Redacted.make(url.href) }))))
  }
  const [versionRow] = await adminQuery(adminUrl, "SHOW server_version")
  const setting = async (name: string) => String((await adminQuery(adminUrl, `SHOW ${name}`))[0]?.[name])
  // (The server's sizing shapes every figure at scale: README, *Embedded Postgres sizing*.)
  serverSettings = `shared_buffers ${await setting("shared_buffers")}, max_wal_size ${await setting("max_wal_size")}`
  log(`${description} (PostgreSQL ${String(versionRow?.server_version)}, ${serverSettings}): databases ${syncDb}, ${copyDb} migrated (${peakRss()})`)

  // Server CPU, when the server is local and readable.
  let serverCpu: (() => number) | undefined
  if (["127.0.0.1", "localhost", "[::1]"].includes(adminUrl.hostname)) {
    const rows = await adminQuery(adminUrl, "SHOW data_directory").catch(() => [])
    const dir = rows[0]?.data_directory
    if (typeof dir === "string") serverCpu = serverCpuReader(dir)
  }
  const machineCpu = serverCpu === undefined ? undefined : machineCpuReader()

  const syncObserver = await connect(syncUrl)
  onCleanup("close the sync database observer", () => syncObserver.end())
  const copyClient = await connect(copyUrl)
  onCleanup("close the COPY database client", () => copyClient.end())

  // The sync, in-process, over its own pool. The set was generated complete (perhaps a moment
  // ago): no waiting for it to settle (rosterd.csv.settleSeconds).
  const noSettle = Layer.setConfigProvider(
    ConfigProvider.fromMap(new Map([["rosterd.csv.settleSeconds", "0"]])).pipe(ConfigProvider.orElse(() => ConfigProvider.fromEnv()))
  )
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(SyncLive, RosterStore.Default).pipe(
      Layer.provide(RosterProviderLive.pipe(Layer.provide(noSettle))),
      Layer.provideMerge(pgClientLayer({ url: Redacted.make(syncUrl.href) }))
    )
  )
  onCleanup("close the sync runtime", () => runtime.dispose())
  const path = district.dir
  await runtime.runPromise(Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: DISTRICT as DistrictId, name: "Bench district", provider: "oneroster-csv", timezone: BENCH_TIMEZONE, settings: { path } })))
  // The 1 % resync ends ~10,000 memberships, past the safety gate's default absolute limit: the
  // bench measures syncing, not holding, so the gate is opened wide from the start (a rule
  // change later would invalidate the digests, and the resync would compare in full).
  await runtime.runPromise(Effect.flatMap(RosterStore, (store) =>
    store.setRules(DISTRICT, { gate: { maxDeactivatePercent: 100, maxDeactivations: 100_000_000, maxUpdatePercent: 100 } })))

  // The baseline's COPY text, prepared before any timer starts (in a child process: its
  // memory is not the sync's).
  const copyDir = Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "rosterd-bench-copy-"))
  onCleanup("remove the COPY files", async () => Fs.rmSync(copyDir, { recursive: true, force: true }))
  log("preparing the COPY text of the baseline …")
  const started = performance.now()
  const prepared = JSON.parse(
    await runChild("bench/prepare-copy.ts", [
      "--data", district.dir,
      "--out", copyDir,
      "--district", DISTRICT,
      "--roster-source", rosterSourceOf("oneroster-csv")
    ])
  ) as PreparedCopy
  log(`prepared ${int(prepared.tables.reduce((n, t) => n + t.rows, 0))} rows in ${seconds(performance.now() - started)} s` +
    (prepared.skipped > 0 ? `, ${prepared.skipped} CSV rows skipped (a sync would not write them either)` : "") + ` (${peakRss()})`)
  await copyClient.query(
    `INSERT INTO districts (id, name, provider, timezone, settings, origin) VALUES ($1, 'Bench district', 'oneroster-csv', $3, $2::jsonb, 'cli')`,
    [DISTRICT, JSON.stringify({ path }), BENCH_TIMEZONE]
  )

  /**
   * Settles the database, runs `before` (measurements), then times `body`. The phase's peak
   * RSS is sampled every 50 ms (the process's maxRSS only ever grows, so it cannot tell one
   * phase from the one before).
   */
  const timed = async <A>(name: string, before: () => Promise<void>, body: () => Promise<A>) => {
    await settle([syncObserver, copyClient])
    await before()
    global.gc?.()
    let phaseRss = process.memoryUsage.rss()
    const sampler = setInterval(() => {
      phaseRss = Math.max(phaseRss, process.memoryUsage.rss())
    }, 50)
    const cpu0 = nodeCpuMs()
    const machine0 = machineCpu?.()
    const server0 = serverCpu?.()
    const t0 = performance.now()
    const value = await body().finally(() => clearInterval(sampler))
    const ms = performance.now() - t0
    phaseRss = Math.max(phaseRss, process.memoryUsage.rss())
    const peakRssMib = Math.round(phaseRss / 1024 / 1024)
    const nodeCpu = nodeCpuMs() - cpu0
    const server1 = serverCpu?.()
    const machine1 = machineCpu?.()
    const serverCpuS = server0 === undefined || server1 === undefined ? undefined : server1 - server0
    const otherCpuS = machine0 === undefined || machine1 === undefined || serverCpuS === undefined
      ? undefined
      : Math.max(0, machine1 - machine0 - serverCpuS - nodeCpu / 1000)
    log(`${name}: ${seconds(ms)} s (peak RSS in the phase ${peakRssMib} MiB; ${peakRss()})`)
    if (otherCpuS !== undefined && otherCpuS > 0.1 * (ms / 1000)) {
      log(`  note: other processes kept the machine busy for ${otherCpuS.toFixed(1)} CPU-s during this phase; its time is inflated`)
    }
    return { value, ms, nodeCpuMs: nodeCpu, serverCpuS, otherCpuS, peakRssMib }
  }

  const runSync = (spans: Map<Tracer.AnySpan, SpanRecord>) =>
    runtime.runPromise(
      Effect.gen(function*() {
        const sync = yield* Sync
        const base = yield* Effect.tracer
        return yield* sync.run(DISTRICT, { request: "auto", trigger: "bench" }).pipe(
          Effect.withTracer(recordingTracer(base, spans)),
          Effect.provideService(SyncProgress, {
            staging: () => Effect.void,
            phase: (phase) => Effect.sync(() => phase === "fetch" || phase === "apply" ? log(`  … ${phase === "fetch" ? "staging" : "applying"}`) : undefined)
          })
        )
      })
    )

  // 3. The full sync.
  log("full sync …")
  const fullSpans = new Map<Tracer.AnySpan, SpanRecord>()
  let writesBeforeFull = 0
  const full = await timed("full sync", async () => {
    writesBeforeFull = await settledRosterWrites(syncObserver)
  }, () => runSync(fullSpans))
  const fullWrites = (await settledRosterWrites(syncObserver)) - writesBeforeFull
  if (full.value.findings > 0) log(`note: the full sync recorded ${full.value.findings} findings`)

  // 4. The COPY baseline.
  log("COPY baseline …")
  const copy = await timed("COPY baseline", async () => {}, () => loadCopy(copyClient, prepared))
  await advanceSequences(copyClient, prepared)
  const copyRows = Object.values(copy.value).reduce((n, t) => n + t.rows, 0)

  log("checking that both databases hold the same rows …")
  const [syncContent, copyContent] = await Promise.all([contentHashes(syncObserver), contentHashes(copyClient)])
  const mismatched = ROSTER_TABLES.filter((t) => syncContent[t]!.rows !== copyContent[t]!.rows || syncContent[t]!.hash !== copyContent[t]!.hash)

  // 5. The no-op sync.
  log("no-op sync …")
  const noopSpans = new Map<Tracer.AnySpan, SpanRecord>()
  let writesBeforeNoop = 0
  let fingerprintBefore: Record<string, string> = {}
  const noop = await timed("no-op sync", async () => {
    writesBeforeNoop = await settledRosterWrites(syncObserver)
    fingerprintBefore = await fingerprint(syncObserver)
  }, () => runSync(noopSpans))
  const noopWrites = (await settledRosterWrites(syncObserver)) - writesBeforeNoop
  const fingerprintAfter = await fingerprint(syncObserver)
  const unchangedTables = ROSTER_TABLES.filter((t) => fingerprintBefore[t] === fingerprintAfter[t])

  // 5b. The 1 % resync: a copy of the district with about 1 % of its records changed
  //     (bench/Mutate.ts), outside bench/.data (it is removed at the end).
  log("writing the 1 % change …")
  const changedDir = Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "rosterd-bench-resync-"))
  onCleanup("remove the changed district", async () => Fs.rmSync(changedDir, { recursive: true, force: true }))
  const expected = await mutateDistrict(district.dir, changedDir)
  await syncObserver.query(`UPDATE districts SET settings = jsonb_set(settings, '{path}', to_jsonb($1::text)) WHERE id = $2`, [changedDir, DISTRICT])
  log(`1 % resync (${int(expected.changedRecords)} records changed) …`)
  const resyncSpans = new Map<Tracer.AnySpan, SpanRecord>()
  let writesBeforeResync = 0
  const resync = await timed("1 % resync", async () => {
    writesBeforeResync = await settledRosterWrites(syncObserver)
  }, () => runSync(resyncSpans))
  const resyncWrites = (await settledRosterWrites(syncObserver)) - writesBeforeResync
  const got = resync.value.counts
  const resyncCountsRight = resync.value.status === "succeeded" && got.users.created === expected.users.created && got.users.updated === expected.users.updated &&
    got.users.deactivated === expected.users.deactivated && got.enrollments.created === expected.enrollments.created &&
    got.enrollments.deactivated === expected.enrollments.deactivated && got.enrollments.updated === 0 &&
    (["schools", "terms", "courses", "classes"] as const).every((k) => changedRows({ ...emptyCounts, [k]: got[k] }) === 0)

  // 6. The same district from the REST providers: each fake server (its own process) serves
  //    the district converted from the CSV set; each full sync runs in a process of its own,
  //    so the time and peak memory reported are that sync's.
  const restPhase = async (label: string, provider: "clever" | "oneroster-rest", server: string, serverArgs: ReadonlyArray<string>,
    settingsOf: (served: { baseUrl: string; districtId?: string }) => Record<string, unknown>) => {
    const database = `${tag}_${provider.replace("-", "_")}`
    await adminQuery(adminUrl, `CREATE DATABASE ${database}`)
    if (!(args.keep && process.env.DATABASE_URL)) {
      onCleanup(`drop database ${database}`, () => adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))
    }
    const url = withDatabase(adminUrl, database)
    await Effect.runPromise(migrate.pipe(Effect.provide(pgClientLayer({ url: Redacted.make(url.href) }))))
    log(`starting the fake ${label} …`)
    const fake = await startChild(server, [...serverArgs, "--csv", district.dir])
    onCleanup(`stop the fake ${label}`, () => fake.stop())
    const served = JSON.parse(fake.line) as { baseUrl: string; districtId?: string }
    log(`${label} full sync (pages of 1,000) …`)
    await settle([syncObserver, copyClient])
    const result = JSON.parse(await runChild("bench/provider-sync.ts", [
      "--database-url", url.href,
      "--provider", provider,
      "--settings", JSON.stringify({ ...settingsOf(served), pageSize: 1000, requestsPerMinute: 100_000 })
    ])) as RestResult
    log(`${label} full sync: ${seconds(result.ms)} s, peak RSS ${result.peakRssMib} MiB (its own process)`)
    await fake.stop()
    return { ...result, label }
  }
  const rest: Array<RestResult & { readonly label: string }> = []
  if (!args["skip-rest"]) {
    const secret = (name: string) => {
      const file = NodePath.join(copyDir, name)
      Fs.writeFileSync(file, `bench-${name}-${randomBytes(8).toString("hex")}`, { mode: 0o600 })
      return file
    }
    const token = secret("clever-token")
    rest.push(await restPhase("Clever API", "clever", "test/support/FakeClever/cli.ts", ["--token", Fs.readFileSync(token, "utf8"), "--rate-limit", "off"],
      (served) => ({ districtId: served.districtId, tokenFile: token, baseUrl: served.baseUrl })))
    const key = secret("oneroster-key")
    const secretFile = secret("oneroster-secret")
    rest.push(await restPhase("OneRoster REST server", "oneroster-rest", "test/support/FakeOneRoster/cli.ts",
      ["--key", Fs.readFileSync(key, "utf8"), "--secret", Fs.readFileSync(secretFile, "utf8"), "--max-limit", "1000", "--rate-limit", "off"],
      (served) => ({ baseUrl: served.baseUrl, auth: "oauth1", keyFile: key, secretFile })))
  }

  // ---- report ------------------------------------------------------------------------
  const phases: Array<PhaseResult> = [
    { ...full, name: "full sync", rows: fullWrites },
    { ...copy, name: "COPY baseline", rows: copyRows },
    { ...noop, name: "no-op sync", rows: noopWrites },
    { ...resync, name: "1 % resync", rows: resyncWrites }
  ]
  const peakRssMib = Math.round(process.resourceUsage().maxRSS / 1024)
  const out: Array<string> = []
  const pad = (text: string, width: number, right = false) => (right ? text.padStart(width) : text.padEnd(width))
  const counts = district.counts
  out.push("")
  out.push(`rosterd bench: ${int(students)} students (seed "${args.seed}"), ${description} (${serverSettings}), ${Os.cpus().length} CPUs, Node ${process.version}`)
  out.push(`district: ${NodePath.relative(ROOT, district.dir)} (${district.reused ? "reused" : "generated"})` +
    (counts === undefined ? "" : `: ${int(counts.users ?? 0)} users, ${int(counts.classes ?? 0)} classes, ${int(counts.enrollments ?? 0)} enrollments`))
  out.push("")
  const cpu = (value: number | undefined) => (value === undefined ? "n/a" : value.toFixed(2))
  out.push(`${pad("phase", 16)}${pad("seconds", 10, true)}${pad("x COPY", 8, true)}${pad("rows", 13, true)}${pad("node CPU s", 13, true)}${
    pad("server CPU s", 15, true)
  }${pad("other CPU s", 14, true)}${pad("peak RSS MiB", 14, true)}`)
  for (const p of phases) {
    out.push(`${pad(p.name, 16)}${pad(seconds(p.ms), 10, true)}${pad((p.ms / copy.ms).toFixed(2), 8, true)}${pad(int(p.rows), 13, true)}${
      pad(seconds(p.nodeCpuMs), 13, true)
    }${pad(cpu(p.serverCpuS), 15, true)}${pad(cpu(p.otherCpuS), 14, true)}${pad(String(p.peakRssMib), 14, true)}`)
  }
  out.push("")
  out.push(`${pad("table", 14)}${pad("sync created", 14, true)}${pad("COPY rows", 12, true)}${pad("COPY s", 9, true)}${pad("same rows", 11, true)}`)
  const createdBy: Record<string, number> = {
    schools: full.value.counts.schools.created,
    terms: full.value.counts.terms.created,
    courses: full.value.counts.courses.created,
    classes: full.value.counts.classes.created,
    users: full.value.counts.users.created,
    enrollments: full.value.counts.enrollments.created
  }
  for (const t of ROSTER_TABLES) {
    const loaded = copy.value[t] ?? { rows: 0, ms: 0 }
    out.push(`${pad(t, 14)}${pad(int(createdBy[t]!), 14, true)}${pad(int(loaded.rows), 12, true)}${pad(seconds(loaded.ms), 9, true)}${
      pad(mismatched.includes(t) ? "NO" : "yes", 11, true)
    }`)
  }
  out.push("")
  out.push(`full sync: counts say ${int(changedRows(full.value.counts))} rows changed, pg_stat says ${int(fullWrites)} roster rows written; ${full.value.findings} findings`)
  out.push(`no-op sync: ${int(changedRows(noop.value.counts))} changes counted, ${int(noopWrites)} roster rows written (pg_stat), ` +
    `ctid/xmin fingerprint unchanged in ${unchangedTables.length}/${ROSTER_TABLES.length} tables`)
  out.push(`1 % resync: ${resync.value.status}${resync.value.notes.length > 0 ? ` (${resync.value.notes.join("; ")})` : ""}; users +${got.users.created} ~${got.users.updated} -${got.users.deactivated} (expected +${expected.users.created} ~${expected.users.updated} -${expected.users.deactivated}), ` +
    `enrollments +${got.enrollments.created} -${got.enrollments.deactivated} (expected +${expected.enrollments.created} -${expected.enrollments.deactivated}); ` +
    `${int(resyncWrites)} roster rows written (pg_stat)`)

  const showBreakdown = (title: string, spans: Map<Tracer.AnySpan, SpanRecord>) => {
    const { steps, totalMs } = breakdown(spans)
    const shown = steps.filter((s) => s.wallMs >= 50)
    const rest = steps.filter((s) => s.wallMs < 50 && !s.label.startsWith(PART))
    const accounted = steps.filter((s) => !s.label.startsWith(PART)).reduce((n, s) => n + s.wallMs, 0)
    out.push("")
    out.push(`${pad(title, 56)}${pad("seconds", 9, true)}${pad("node CPU s", 12, true)}`)
    const row = (s: Pick<Step, "label" | "wallMs" | "cpuMs">) =>
      out.push(`  ${pad(s.label, 54)}${pad(seconds(s.wallMs), 9, true)}${pad(seconds(s.cpuMs), 12, true)}`)
    for (const s of shown) row(s)
    if (rest.length > 0) {
      row({ label: `${rest.length} smaller steps`, wallMs: rest.reduce((n, s) => n + s.wallMs, 0), cpuMs: rest.reduce((n, s) => n + s.cpuMs, 0) })
    }
    out.push(`  ${pad("rest (commit, transaction, run bookkeeping)", 54)}${pad(seconds(totalMs - accounted), 9, true)}`)
    const slowest = Number(args.statements)
    if (slowest > 0) {
      out.push(`  slowest statements:`)
      for (const s of slowestStatements(spans, slowest)) {
        out.push(`    ${pad(seconds(s.wallMs), 7, true)}  ${s.text}`)
      }
    }
  }
  showBreakdown("full sync, step by step", fullSpans)
  showBreakdown("no-op sync, step by step", noopSpans)
  showBreakdown("1 % resync, step by step", resyncSpans)

  for (const r of rest) {
    out.push("")
    out.push(`${r.label} full sync (fake server on loopback, pages of 1,000, OAuth/bearer as in production, sync in its own process):`)
    out.push(`  ${seconds(r.ms)} s (${(r.ms / copy.ms).toFixed(2)} x COPY), ${int(changedRows(r.counts))} rows changed, ` +
      `${r.findings} findings, peak RSS ${r.peakRssMib} MiB`)
  }
  out.push("")
  out.push(`peak RSS of the bench process: ${peakRssMib} MiB`)
  if (args.keep && process.env.DATABASE_URL) out.push(`kept databases: ${syncDb}, ${copyDb}`)

  const problems: Array<string> = []
  if (mismatched.length > 0) problems.push(`the baseline differs from the sync in ${mismatched.join(", ")}`)
  if (noopWrites !== 0 || unchangedTables.length !== ROSTER_TABLES.length || changedRows(noop.value.counts) !== 0) {
    problems.push("the no-op sync wrote roster rows")
  }
  if (!resyncCountsRight) problems.push("the 1 % resync's counts are not exactly the changes made")
  for (const problem of problems) out.push(`PROBLEM: ${problem}`)

  out.push(`resync_vs_copy=${(resync.ms / copy.ms).toFixed(2)}`)
  out.push(`rest_vs_copy=${rest.length === 0 ? "n/a" : (Math.max(...rest.map((r) => r.ms)) / copy.ms).toFixed(2)}`)

  out.push(`full_vs_copy=${(full.ms / copy.ms).toFixed(2)}`)
  out.push(`noop_vs_copy=${(noop.ms / copy.ms).toFixed(2)}`)
  out.push(`peak_rss_mib=${peakRssMib}`)
  process.stdout.write(out.join("\n") + "\n")
  return problems.length === 0 ? 0 : 1
}

let exitCode = 1
try {
  exitCode = await main()
} catch (error) {
  // After a signal, the cleanup closing connections under the run is what failed: say nothing.
  if (cleaning === undefined) log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
} finally {
  await cleanup()
}
process.exit(exitCode)
