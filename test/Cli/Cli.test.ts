import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { cliFixture } from "../support/CliFixture.ts"
import { writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * The CLI as operators use it, against a real database, checking exit codes and output
 * (in process: test/support/CliFixture.ts; through bin/rosterd.mjs: ProcessExit.test.ts).
 */
describe("rosterd CLI", () => {
  const cli = cliFixture()
  const rosterd = (args: ReadonlyArray<string>) => cli.rosterd(args)
  const districtDir = NodePath.join(cli.work.dir, "small")

  beforeAll(() => writeSmallDistrict(districtDir))

  it("migrate reports an up-to-date database", async () => {
    const result = await rosterd(["migrate"])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("up to date")
  })

  it("district add registers a CSV district; bad input is refused with one line and exit 1", async () => {
    const added = await rosterd(["district", "add", "small", "--provider", "oneroster-csv", "--path", districtDir, "--timezone", "America/Chicago", "--name", "Small ISD"])
    expect(added.code).toBe(0)
    expect(added.stdout).toContain("added district small")

    const again = await rosterd(["district", "add", "small", "--provider", "oneroster-csv", "--path", districtDir])
    expect(again.code).toBe(1)
    expect(again.stderr.trim()).toBe(`rosterd: district "small" already exists`)

    const badPath = await rosterd(["district", "add", "other", "--provider", "oneroster-csv", "--path", "/nonexistent/set"])
    expect(badPath.code).toBe(1)
    expect(badPath.stderr).toContain("does not exist")

    const badZone = await rosterd(["district", "add", "other", "--provider", "oneroster-csv", "--path", districtDir, "--timezone", "Mars/Olympus"])
    expect(badZone.code).toBe(1)
    expect(badZone.stderr).toContain("unknown IANA time zone")

    const badId = await rosterd(["district", "add", "Bad Id!", "--provider", "oneroster-csv", "--path", districtDir])
    expect(badId.code).toBe(1)
    expect(badId.stderr.split("\n").filter((l) => l.length > 0)).toHaveLength(1)

    const listed = JSON.parse((await rosterd(["district", "list", "--json"])).stdout)
    expect(listed).toEqual([{ id: "small", name: "Small ISD", provider: "oneroster-csv", timezone: "America/Chicago", origin: "cli" }])
    const shown = JSON.parse((await rosterd(["district", "show", "small", "--json"])).stdout)
    expect(shown.settings.path).toBe(districtDir)
  })

  it("status before any run shows the district with lastRun null", async () => {
    const status = JSON.parse((await rosterd(["status", "--json"])).stdout)
    expect(status).toEqual([{ district: "small", name: "Small ISD", provider: "oneroster-csv", timezone: "America/Chicago", lastRun: null, lastSuccessAt: null, nextRunAt: null, nextRun: null, paused: null, pendingHold: null, deferred: null, stale: false, failing: false }])
  })

  it("sync runs a district and prints its counts; --json gives the summary", async () => {
    const text = await rosterd(["sync", "small"])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/small: run \d+ succeeded \(full\)/)
    expect(text.stdout).toMatch(/users\s+5\s+0\s+0\s+0/)

    const json = await rosterd(["sync", "small", "--json"])
    expect(json.code).toBe(0)
    const summary = JSON.parse(json.stdout)
    expect(summary.status).toBe("succeeded")
    expect(summary.counts.users).toEqual({ created: 0, updated: 0, deactivated: 0, unchanged: 5 })
  })

  it("status --json follows the status contract", async () => {
    const [status] = JSON.parse((await rosterd(["status", "--json"])).stdout)
    expect(Object.keys(status)).toEqual(expect.arrayContaining(["district", "provider", "lastRun", "lastSuccessAt", "nextRunAt"]))
    expect(status.lastRun).toMatchObject({ status: "succeeded", mode: "full" })
    expect(Object.keys(status.lastRun.counts)).toEqual(["schools", "terms", "courses", "classes", "users", "enrollments"])
    for (const counts of Object.values(status.lastRun.counts)) {
      expect(Object.keys(counts as object).sort()).toEqual(["created", "deactivated", "unchanged", "updated"])
    }
    expect(new Date(status.lastSuccessAt).toISOString()).toBe(status.lastSuccessAt)
    expect(new Date(status.lastRun.startedAt).toISOString()).toBe(status.lastRun.startedAt)
    const one = JSON.parse((await rosterd(["status", "small", "--json"])).stdout)
    expect(one).toHaveLength(1)
    const missing = await rosterd(["status", "nope"])
    expect(missing.code).toBe(1)
    expect(missing.stderr.trim()).toBe(`rosterd: no district "nope" (see \`rosterd district list\`)`)
  })

  it("a failing sync exits 1 with a one-line reason and is recorded; runs shows it", async () => {
    Fs.renameSync(NodePath.join(districtDir, "users.csv"), NodePath.join(districtDir, "users.moved"))
    try {
      const failed = await rosterd(["sync", "small"])
      expect(failed.code).toBe(1)
      expect(failed.stderr.trim().split("\n")).toHaveLength(1)
      expect(failed.stderr).toContain("users.csv")
    } finally {
      Fs.renameSync(NodePath.join(districtDir, "users.moved"), NodePath.join(districtDir, "users.csv"))
    }
    const runs = JSON.parse((await rosterd(["runs", "small", "--json"])).stdout)
    expect(runs.map((r: { status: string }) => r.status)).toEqual(["failed", "succeeded", "succeeded"])
    expect(runs[0].error).toContain("users.csv")
    const table = await rosterd(["runs", "small"])
    expect(table.stdout).toMatch(/failed\s+full\s+cli/)
  })

  it("runs --run shows one run with its findings (file, line, source id)", async () => {
    writeCsv(districtDir, "enrollments", [
      { sourcedId: "e-1", classSourcedId: "cls-1", userSourcedId: "t-1", role: "teacher", primary: "true" },
      { sourcedId: "e-9", classSourcedId: "cls-404", userSourcedId: "s-1", role: "student" }
    ])
    const summary = JSON.parse((await rosterd(["sync", "small", "--json"])).stdout)
    expect(summary.findings).toBeGreaterThanOrEqual(1)
    const run = await rosterd(["runs", "small", "--run", String(summary.runId)])
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("dangling_reference")
    expect(run.stdout).toContain("enrollments.csv:3")
    expect(run.stdout).toContain("e-9")
    const json = JSON.parse((await rosterd(["runs", "small", "--run", String(summary.runId), "--json"])).stdout)
    expect(json.findings).toContainEqual(expect.objectContaining({ code: "dangling_reference", file: "enrollments.csv", line: 3, sourceId: "e-9" }))
  })

  it("district remove stops syncing but keeps the data; unknown commands exit 2", async () => {
    const removed = await rosterd(["district", "remove", "small"])
    expect(removed.code).toBe(0)
    expect(JSON.parse((await rosterd(["district", "list", "--json"])).stdout)).toEqual([])
    const sync = await rosterd(["sync", "small"])
    expect(sync.code).toBe(1)
    const unknown = await rosterd(["frobnicate"])
    expect(unknown.code).toBe(2)
  })
})
