import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, freePort, startDaemon, writeConfig } from "../support/Cli.ts"
import { createTestDatabase, dropTestDatabase, type TestDatabaseInfo } from "../support/Database.ts"
import { generated, tempDir } from "../support/Fixtures.ts"

/**
 * Several `rosterd daemon` processes on one Postgres: each district is synced by one replica
 * at a time, a replica killed with SIGKILL has its districts taken over within a minute,
 * and SIGTERM stops a daemon without leaving anything half-applied.
 */

const query = async <A>(url: string, text: string, values: ReadonlyArray<unknown> = []): Promise<Array<A>> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(text, values as Array<unknown>)).rows as Array<A>
  } finally {
    await client.end()
  }
}

interface RunRow {
  readonly id: number
  readonly district_id: string
  readonly status: string
  readonly pid: number
  readonly trigger: string
  readonly started_at: Date
  readonly finished_at: Date | null
}

// ids are bigint: cast, or pg hands them over as strings (and "10" < "9").
const runs = (url: string) => query<RunRow>(url, "SELECT id::int AS id, district_id, status, pid, trigger, started_at, finished_at FROM sync_runs ORDER BY id")

const districtsYaml = (ids: ReadonlyArray<string>) =>
  ids.map((id) => `  - id: ${id}
    provider: oneroster-csv
    path: ${id}
    timezone: America/Chicago
    rules:
      scope: { currentTermsOnly: false }
`).join("")

describe("three replicas on one Postgres", () => {
  let db: TestDatabaseInfo
  const work = tempDir()
  const ids = Array.from({ length: 30 }, (_, i) => `district-${String(i + 1).padStart(2, "0")}`)
  beforeAll(async () => {
    db = await createTestDatabase()
    // Big enough that a run takes a moment (so one is going when a replica is killed), small enough for CI.
    for (const id of ids) generated(NodePath.join(work.dir, id), 600, id)
  })
  afterAll(async () => {
    await dropTestDatabase(db.name)
    work.remove()
  })

  it("syncs every district, never one by two replicas at once, at most clusterConcurrency at once, and takes over a killed replica's districts within a minute", async () => {
    const config = writeConfig(work.dir, `rosterd:
  sync:
    poll: 1 second
    concurrency: 2
    clusterConcurrency: 3
districts:
${districtsYaml(ids)}`)
    const daemons = await Promise.all([0, 1, 2].map(async () =>
      startDaemon({ DATABASE_URL: db.url, ROSTERD_CONFIG: config, ROSTERD_HTTP_PORT: String(await freePort()) })
    ))
    const [victim, ...survivors] = daemons
    try {
      // Kill one replica in the middle of one of its runs.
      const running = await eventually(async () => {
        const rows = await query<{ district_id: string }>(db.url, "SELECT district_id FROM sync_runs WHERE status = 'running' AND pid = $1", [victim!.child.pid])
        return rows.length > 0 ? rows : undefined
      }, 90_000, 20)
      victim!.child.kill("SIGKILL")
      const killedAt = Date.now()
      await victim!.exited

      // Every district ends up synced.
      const all = await eventually(async () => {
        const rows = await runs(db.url)
        const done = new Set(rows.filter((r) => r.status === "succeeded").map((r) => r.district_id))
        return ids.every((id) => done.has(id)) ? rows : undefined
      }, 120_000, 500)

      // The run the killed replica left is marked interrupted, and another replica finished that district within a minute.
      const cut = all.filter((r) => r.pid === victim!.child.pid && r.status !== "succeeded")
      expect(cut.length).toBeGreaterThan(0)
      expect(cut.map((r) => r.district_id)).toEqual(expect.arrayContaining(running.map((r) => r.district_id)))
      for (const run of cut) {
        expect(run.status).toBe("interrupted")
        const after = all.find((r) => r.district_id === run.district_id && r.id > run.id && r.status === "succeeded")
        expect(after, JSON.stringify(all.filter((r) => r.district_id === run.district_id))).toBeDefined()
        expect(after!.pid).not.toBe(victim!.child.pid)
        expect(after!.finished_at!.getTime() - killedAt).toBeLessThan(60_000)
      }

      // Never two runs of one district at once: per district, each run starts after the previous ended.
      for (const id of ids) {
        const own = all.filter((r) => r.district_id === id)
        for (let i = 1; i < own.length; i++) {
          expect(own[i]!.started_at.getTime()).toBeGreaterThanOrEqual(own[i - 1]!.finished_at!.getTime())
        }
      }
      // Each district ran once (plus the takeover of a cut run): the replicas did not all run every slot.
      for (const id of ids) {
        expect(all.filter((r) => r.district_id === id && r.status === "succeeded").length).toBe(1)
      }
      // At most 3 districts ran at once across the replicas (clusterConcurrency), though 3 × 2 could have.
      // (A cut run's end is recorded only when its district is taken over: left out.)
      const events = all.filter((r) => r.status === "succeeded")
        .flatMap((r) => [[r.started_at.getTime(), 1], [r.finished_at!.getTime(), -1]] as const)
        .sort((a, b) => a[0] - b[0] || a[1] - b[1])
      let atOnce = 0
      let most = 0
      for (const [, step] of events) most = Math.max(most, (atOnce += step))
      expect(most).toBeLessThanOrEqual(3)
      expect(most).toBeGreaterThanOrEqual(2) // and the replicas did run side by side
      // The survivors shared the work.
      const byPid = new Set(all.filter((r) => r.status === "succeeded").map((r) => r.pid))
      expect(byPid.size).toBeGreaterThanOrEqual(2)
      // And every district's next slot is its nightly one, in the future. (A replica records
      // the run's end first and the district's next slot just after: waited for.)
      const slots = await eventually(async () => {
        const rows = await query<{ next_run_at: Date | null }>(db.url, "SELECT next_run_at FROM districts")
        return rows.every((row) => row.next_run_at !== null) ? rows as Array<{ next_run_at: Date }> : undefined
      }, 30_000, 200)
      for (const slot of slots) expect(slot.next_run_at.getTime()).toBeGreaterThan(Date.now())
    } finally {
      for (const daemon of survivors) expect(await daemon.stop("SIGTERM")).toBe(0)
    }
  })
})

describe("SIGTERM during a run", () => {
  let db: TestDatabaseInfo
  const work = tempDir()
  beforeAll(async () => {
    db = await createTestDatabase()
    generated(NodePath.join(work.dir, "big"), 4000, "big")
  })
  afterAll(async () => {
    await dropTestDatabase(db.name)
    work.remove()
  })

  const configWith = (grace: string) =>
    writeConfig(work.dir, `rosterd:
  sync:
    poll: 1 second
    shutdownGrace: ${grace}
districts:
${districtsYaml(["big"])}`)

  // The timeouts cover the waits below (a daemon process's start and a 4,000-student sync,
  // on a machine the other test files keep busy): the default minute did not, once.
  it("past the grace period: the run is interrupted, rolled back and recorded; the next start runs the slot again", { timeout: 200_000 }, async () => {
    const config = configWith("0 seconds")
    const env = { DATABASE_URL: db.url, ROSTERD_CONFIG: config, ROSTERD_HTTP_PORT: String(await freePort()) }
    const first = startDaemon(env)
    await eventually(async () => ((await runs(db.url)).some((r) => r.status === "running") ? true : undefined), 60_000, 20)
    await new Promise((r) => setTimeout(r, 300))
    expect(await first.stop("SIGTERM")).toBe(0)

    const [run] = await runs(db.url)
    expect(run).toMatchObject({ status: "interrupted", district_id: "big" })
    // Nothing of it was applied.
    const [counts] = await query<{ users: number; enrollments: number }>(db.url,
      "SELECT (SELECT count(*)::int FROM users) AS users, (SELECT count(*)::int FROM enrollments) AS enrollments")
    expect(counts).toEqual({ users: 0, enrollments: 0 })
    // The slot was not consumed: the next start runs it.
    const [slot] = await query<{ next_run_at: Date | null }>(db.url, "SELECT next_run_at FROM districts WHERE id = 'big'")
    expect(slot!.next_run_at).toBeNull()
    expect(first.lines.some((l) => l.includes("grace period over"))).toBe(true)

    const second = startDaemon({ ...env, ROSTERD_SYNC_SHUTDOWN_GRACE: "60 seconds" })
    try {
      await eventually(async () => ((await runs(db.url)).some((r) => r.status === "succeeded") ? true : undefined), 120_000)
    } finally {
      expect(await second.stop("SIGTERM")).toBe(0)
    }
    const [users] = await query<{ n: number }>(db.url, "SELECT count(*)::int AS n FROM users")
    expect(users!.n).toBeGreaterThan(4000)
  })

  it("within the grace period: the run finishes before the daemon exits", { timeout: 120_000 }, async () => {
    await query(db.url, "UPDATE districts SET next_run_at = NULL, next_run_request = 'full'")
    const config = configWith("2 minutes")
    const daemon = startDaemon({ DATABASE_URL: db.url, ROSTERD_CONFIG: config, ROSTERD_HTTP_PORT: String(await freePort()) })
    const before = (await runs(db.url)).length
    await eventually(async () => ((await runs(db.url)).slice(before).some((r) => r.status === "running") ? true : undefined), 60_000, 20)
    expect(await daemon.stop("SIGTERM")).toBe(0)
    const latest = (await runs(db.url)).slice(before)
    expect(latest.map((r) => r.status)).toEqual(["succeeded"])
    expect(daemon.lines.some((l) => l.includes("stopping: waiting for the running syncs"))).toBe(true)
  })
})
