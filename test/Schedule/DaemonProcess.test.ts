import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, freePort, rosterd, startDaemon, writeConfig } from "../support/Cli.ts"
import { rosterd as rosterdInProcess } from "../support/CliFixture.ts"
import { createTestDatabase, dropTestDatabase, type TestDatabaseInfo } from "../support/Database.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * `rosterd daemon` as a process: syncs a new district at once and then on its schedule,
 * serves HTTP, logs JSON lines on stdout, stops on SIGTERM with exit 0; on the embedded
 * Postgres, CLI processes beside it attach to its server.
 */

const getStatus = async (port: number) => {
  const response = await fetch(`http://127.0.0.1:${port}/status`)
  return response.ok ? ((await response.json()) as Array<any>) : undefined
}

describe("the daemon, on an external Postgres (DATABASE_URL)", () => {
  let db: TestDatabaseInfo
  const work = tempDir()
  beforeAll(async () => {
    db = await createTestDatabase()
    writeSmallDistrict(NodePath.join(work.dir, "declared"))
    writeSmallDistrict(NodePath.join(work.dir, "added"))
  })
  afterAll(async () => {
    await dropTestDatabase(db.name)
    work.remove()
  })

  it("syncs declared districts at once and then on their schedule, picks up districts added by the CLI, logs JSON without PII, stops on SIGTERM", async () => {
    const port = await freePort()
    const config = writeConfig(work.dir, `rosterd:
  sync:
    poll: 1 second
districts:
  - id: declared
    name: Declared District
    provider: oneroster-csv
    path: declared
    timezone: America/New_York
    rules:
      schedule:
        deltaEvery: 3 seconds
`)
    const env = { DATABASE_URL: db.url, ROSTERD_CONFIG: config, ROSTERD_HTTP_PORT: String(port) }
    const daemon = startDaemon(env)
    try {
      const first = await eventually(async () => {
        const status = await getStatus(port)
        // The daemon records the next slot just after the run: wait for both.
        return status?.[0]?.lastRun?.status === "succeeded" && status[0].nextRunAt !== null ? status[0] : undefined
      })
      expect(first).toMatchObject({ district: "declared", name: "Declared District", provider: "oneroster-csv" })
      expect(first.lastRun.counts.users.created).toBe(5)
      expect(new Date(first.nextRunAt).getTime()).toBeGreaterThan(Date.now() - 1000)

      // Its schedule (a slot every 3 seconds): a second run (a no-op) follows.
      const second = await eventually(async () => {
        const status = await getStatus(port)
        return (status?.[0]?.lastRun?.id ?? 0) > first.lastRun.id && status![0].lastRun.status === "succeeded" ? status![0] : undefined
      })
      expect(second.lastRun.counts.users.unchanged).toBe(5)

      // A district added with the CLI while the daemon runs is synced without a restart.
      const added = await rosterdInProcess(["district", "add", "added", "--provider", "oneroster-csv", "--path", NodePath.join(work.dir, "added")], env)
      expect(added.code).toBe(0)
      await eventually(async () => {
        const status = await getStatus(port)
        return status?.find((s) => s.district === "added")?.lastRun?.status === "succeeded" ? true : undefined
      })
    } finally {
      const code = await daemon.stop("SIGTERM")
      expect(code).toBe(0)
    }
    // Every log line is JSON, and none carries roster PII.
    expect(daemon.lines.length).toBeGreaterThan(0)
    for (const line of daemon.lines) {
      const entry = JSON.parse(line)
      expect(entry).toHaveProperty("logLevel")
      for (const personal of ["tess@small.example", "Tess", "Sam", "2014-03-01"]) expect(line).not.toContain(personal)
    }
    expect(daemon.lines.some((l) => l.includes("sync succeeded") && l.includes('"district":"declared"'))).toBe(true)
  })
})

describe("the daemon on the embedded Postgres, with the CLI alongside", () => {
  const work = tempDir()
  Fs.chmodSync(work.dir, 0o755) // the unprivileged server user must reach it when tests run as root
  const dataDir = NodePath.join(work.dir, "data")
  afterAll(() => work.remove())

  const serverPid = () => {
    const state = JSON.parse(Fs.readFileSync(NodePath.join(dataDir, "embedded-postgres.json"), "utf8")) as { clusterDir: string }
    try {
      return Number(Fs.readFileSync(NodePath.join(state.clusterDir, "postmaster.pid"), "utf8").split("\n")[0])
    } catch {
      return undefined
    }
  }
  const alive = (pid: number | undefined) => {
    if (pid === undefined) return false
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }

  it("shares one running database between daemon and CLI, and stops it with the daemon", async () => {
    writeSmallDistrict(NodePath.join(work.dir, "district"))
    const config = writeConfig(work.dir, `districts:
  - id: embedded
    provider: oneroster-csv
    path: district
`)
    const port = await freePort()
    const env = { ROSTERD_DATA_DIR: dataDir, ROSTERD_CONFIG: config, ROSTERD_HTTP_PORT: String(port) }
    const daemon = startDaemon(env)
    let pid: number | undefined
    try {
      await eventually(async () => ((await getStatus(port))?.[0]?.lastRun?.status === "succeeded" ? true : undefined), 90_000)
      pid = serverPid()
      expect(alive(pid)).toBe(true)

      // The CLI attaches to the daemon's server: same data, no second Postgres, and leaves it running.
      const status = await rosterd(["status", "--json"], env)
      expect(status.code).toBe(0)
      expect(JSON.parse(status.stdout)[0]).toMatchObject({ district: "embedded", lastRun: { status: "succeeded" } })
      expect(serverPid()).toBe(pid)
      expect(alive(pid)).toBe(true)
      const sync = await rosterd(["sync", "embedded", "--json"], env)
      expect(sync.code).toBe(0)
      expect(JSON.parse(sync.stdout).counts.users.unchanged).toBe(5)
      expect(alive(pid)).toBe(true)
    } finally {
      expect(await daemon.stop("SIGTERM")).toBe(0)
    }
    // The daemon stopped its Postgres: no orphan.
    await eventually(async () => (alive(pid) ? undefined : true), 20_000)

    // Without a daemon, the CLI starts the server itself and stops it when done.
    const alone = await rosterd(["runs", "embedded", "--json"], env)
    expect(alone.code).toBe(0)
    expect(JSON.parse(alone.stdout).length).toBe(2)
    expect(alive(serverPid())).toBe(false)
  })
})
