import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { generated, readRows, writeCsv } from "../support/Fixtures.ts"

/**
 * The safety gate as operators meet it through the CLI (real Postgres): a
 * partial export ("most students left") is held, listed, shown by source ID without personal
 * values, rejected, held again and approved; a dry run prints the change list and leaves the
 * roster exactly as it was; a run's stored change list is readable with `runs --changes`.
 */
describe("rosterd holds CLI", () => {
  const cli = cliFixture()
  const work = cli.work
  let client: pg.Client
  const districtDir = NodePath.join(work.dir, "gen")
  /** Students kept by the partial export; the others disappear from users, enrollments and demographics. */
  const KEPT = 20
  let students: Array<Record<string, string>> = []
  let dropped: Array<Record<string, string>> = []

  const one = async <A>(text: string, params: ReadonlyArray<unknown> = []): Promise<A> => (await client.query(text, [...params])).rows[0] as A

  const activeStudents = async () =>
    (await one<{ n: number }>(`SELECT count(*)::int AS n FROM users WHERE district_id = 'gen' AND active AND 'student' = ANY (roles)`)).n

  /** Every row version of the tables a sync writes, to prove a dry run wrote nothing. */
  const checksum = async () => {
    const out: Record<string, string> = {}
    for (const table of ["users", "enrollments", "outbox", "sync_cursors", "holds", "held_changes", "run_changes"]) {
      out[table] = (await one<{ digest: string | null }>(
        `SELECT md5(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid)) AS digest FROM ${table}`
      )).digest ?? "empty"
    }
    return out
  }

  beforeAll(async () => {
    generated(districtDir, 200)
    expect((await rosterd(["district", "add", "gen", "--provider", "oneroster-csv", "--path", districtDir], cli.env)).code).toBe(0)
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
    students = readRows(districtDir, "users").filter((u) => u.role === "student")
  })
  afterAll(async () => {
    await client?.end()
  })

  it("runs --run --changes lists what the first sync created, by source ID", async () => {
    const first = await rosterd(["sync", "gen", "--json"], cli.env)
    expect(first.code).toBe(0)
    const summary = JSON.parse(first.stdout)
    expect(summary.status).toBe("succeeded")
    expect(summary.held).toBeNull()

    const listed = await rosterd(["runs", "gen", "--run", String(summary.runId), "--changes", "--json"], cli.env)
    expect(listed.code).toBe(0)
    const changes = JSON.parse(listed.stdout)
    expect(changes).toMatchObject({ runId: summary.runId, district: "gen", retentionDays: 90 })
    const createdUsers = changes.changes.filter((g: { kind: string; action: string }) => g.kind === "users" && g.action === "create")
    const ids = createdUsers.flatMap((g: { sourceIds: Array<string> }) => g.sourceIds)
    expect(ids).toEqual(expect.arrayContaining([students[0]!.sourcedId, students[199]!.sourcedId]))
    expect(createdUsers.reduce((n: number, g: { count: number }) => n + g.count, 0)).toBe(summary.counts.users.created)
    expect(changes.changes.every((g: { held: boolean }) => !g.held)).toBe(true)
  }, 120_000)

  it("a dry run of a partial export prints the change list and what would be held, and writes nothing", async () => {
    // The partial export: most students are gone from every file.
    const kept = new Set(students.slice(0, KEPT).map((s) => s.sourcedId))
    dropped = students.filter((s) => !kept.has(s.sourcedId))
    const gone = new Set(dropped.map((s) => s.sourcedId))
    writeCsv(districtDir, "users", readRows(districtDir, "users").filter((u) => !gone.has(u.sourcedId!)))
    writeCsv(districtDir, "enrollments", readRows(districtDir, "enrollments").filter((e) => !gone.has(e.userSourcedId!)))
    writeCsv(districtDir, "demographics", readRows(districtDir, "demographics").filter((d) => !gone.has(d.sourcedId!)))

    const before = await checksum()
    const dry = await rosterd(["sync", "gen", "--dry-run", "--json"], cli.env)
    expect(dry.code).toBe(0)
    const summary = JSON.parse(dry.stdout)
    expect(summary.status).toBe("dry-run")
    expect(summary.held.tripped).toContainEqual(expect.objectContaining({ kind: "users", group: "student", count: dropped.length, of: students.length }))
    const deactivations = summary.changes.filter((c: { kind: string; action: string }) => c.kind === "users" && c.action === "deactivate")
    expect(deactivations).toHaveLength(dropped.length)
    expect(deactivations).toContainEqual({ kind: "users", action: "deactivate", sourceId: dropped[0]!.sourcedId, reason: expect.any(String), fields: [], held: true })
    expect(await checksum()).toEqual(before)
    expect(await activeStudents()).toBe(students.length)
  }, 120_000)

  it("the sync holds the deactivations; holds list and show name them by source ID, without personal values", async () => {
    const sync = await rosterd(["sync", "gen"], cli.env)
    expect(sync.stderr).toBe("")
    expect(sync.code).toBe(0)
    const runId = Number(/run (\d+) held \(full\)/.exec(sync.stdout)?.[1])
    expect(runId).toBeGreaterThan(0)
    expect(sync.stdout).toContain(`review: rosterd holds show ${runId}`)
    expect(sync.stdout).toMatch(new RegExp(`users\\s+0\\s+${dropped.length}\\n`))
    expect(await activeStudents()).toBe(students.length)
    const status = await rosterd(["status", "gen"], cli.env)
    expect(status.stdout).toMatch(new RegExp(`gen: changes of run ${runId} held since \\S+: rosterd holds show ${runId}`))

    const listed = JSON.parse((await rosterd(["holds", "list", "--json"], cli.env)).stdout)
    // One pending hold: the dry run left none behind.
    expect(listed).toHaveLength(1)
    expect(listed[0]).toMatchObject({ runId, districtId: "gen", state: "pending" })
    expect(listed[0].tripped).toContainEqual(expect.objectContaining({ kind: "users", group: "student", rule: "deactivate_percent", limit: 10 }))
    expect(listed[0].counts).toContainEqual({ kind: "users", action: "deactivate", n: dropped.length })

    const shown = await rosterd(["holds", "show", String(runId), "--json"], cli.env)
    expect(shown.code).toBe(0)
    const { changes, hold } = JSON.parse(shown.stdout)
    expect(hold.runId).toBe(runId)
    const users = changes.filter((c: { kind: string }) => c.kind === "users")
    expect(users.map((c: { sourceId: string }) => c.sourceId).sort()).toEqual(dropped.map((s) => s.sourcedId).sort())
    expect(users[0]).toEqual({ kind: "users", action: "deactivate", sourceId: expect.any(String), reason: expect.any(String), rule: "deactivate_percent", fields: [] })
    for (const s of dropped.slice(0, 5)) {
      expect(shown.stdout).not.toContain(s.givenName!)
      expect(shown.stdout).not.toContain(s.familyName!)
      expect(shown.stdout).not.toContain(s.email!)
    }
    expect(shown.stdout).not.toContain("@")

    const text = await rosterd(["holds", "show", String(runId)], cli.env)
    expect(text.code).toBe(0)
    expect(text.stdout).toContain(`hold of run ${runId} (district gen): pending`)
    expect(text.stdout).toMatch(/tripped: users \(student\) deactivate_percent 180 of 200 \(limit 10%\)/)
    expect(text.stdout).toMatch(new RegExp(`${changes.length - 200} more: use --json`))
  }, 180_000)

  it("reject leaves the roster; the next sync holds again; approve applies it; a decided hold cannot be decided again", async () => {
    const [pending] = JSON.parse((await rosterd(["holds", "list", "--district", "gen", "--json"], cli.env)).stdout)
    const rejected = await rosterd(["holds", "reject", String(pending.runId), "--by", "bob", "--reason", "the export was cut short"], cli.env)
    expect(rejected.code).toBe(0)
    expect(rejected.stdout).toContain(`rejected the hold of run ${pending.runId}`)
    expect(await activeStudents()).toBe(students.length)

    const again = JSON.parse((await rosterd(["sync", "gen", "--json"], cli.env)).stdout)
    expect(again.status).toBe("held")
    expect(again.held.counts.users).toEqual({ deactivated: dropped.length, updated: 0 })

    const approved = await rosterd(["holds", "approve", String(again.runId), "--by", "alice", "--reason", "the students moved to another district"], cli.env)
    expect(approved.stderr).toBe("")
    expect(approved.code).toBe(0)
    expect(approved.stdout).toContain(`approved the hold of run ${again.runId} (district gen): applied`)
    expect(approved.stdout).toContain(`users ${dropped.length}`)
    expect(await activeStudents()).toBe(KEPT)
    const inactive = await one<{ n: number }>(
      `SELECT count(*)::int AS n FROM users WHERE district_id = 'gen' AND NOT active AND source_id = ANY ($1::text[])`,
      [dropped.map((s) => s.sourcedId)]
    )
    expect(inactive.n).toBe(dropped.length)

    const twice = await rosterd(["holds", "approve", String(again.runId), "--by", "alice"], cli.env)
    expect(twice.code).toBe(1)
    expect(twice.stderr.trim()).toBe(`rosterd: the hold of run ${again.runId} is approved; only a pending hold can be decided`)
    const unknown = await rosterd(["holds", "reject", "999999", "--by", "alice"], cli.env)
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toBe("rosterd: run 999999 has no held changes (see rosterd holds list)")
    const noBy = await rosterd(["holds", "approve", String(again.runId)], cli.env)
    expect(noBy.code).toBe(2)

    const all = JSON.parse((await rosterd(["holds", "list", "--all", "--json"], cli.env)).stdout)
    expect(all.map((h: { runId: number; state: string; decidedBy: string }) => [h.runId, h.state, h.decidedBy])).toEqual([
      [again.runId, "approved", "alice"],
      [pending.runId, "rejected", "bob"]
    ])
  }, 240_000)
})
