import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * `rosterd pause`, `calendar`, `pauses`, `resume` as an operator meets them (in process,
 * real Postgres): a pause shows in the district's calendar, resume cancels it, both are in
 * the audit log, and bad input fails with one line and leaves the store as it was.
 */
describe("rosterd pause / resume", () => {
  let client: pg.Client
  const cli = cliFixture()
  const work = cli.work
  // Next year: the dates stay in the future whatever day the test runs.
  const year = new Date().getUTCFullYear() + 1

  const rows = async <A>(text: string): Promise<Array<A>> => (await client.query(text)).rows as Array<A>

  beforeAll(async () => {
    writeSmallDistrict(NodePath.join(work.dir, "small"))
    const added = await rosterd(["district", "add", "small", "--provider", "oneroster-csv", "--path", NodePath.join(work.dir, "small"),
      "--timezone", "America/Chicago"], cli.env)
    expect(added.code).toBe(0)
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
  })
  afterAll(async () => {
    await client?.end()
  })

  it("pause → calendar and pauses show it → resume cancels it; both audited", async () => {
    const paused = await rosterd(["pause", "small", "--from", `${year}-03-15`, "--until", `${year}-03-19`, "--reason", "SIS migration", "--by", "alice"], cli.env)
    expect(paused.stderr).toBe("")
    expect(paused.code).toBe(0)
    const [pause] = await rows<{ id: number; district_id: string; from_date: string; until_date: string; reason: string; created_by: string }>(
      "SELECT id::int, district_id, from_date::text, until_date::text, reason, created_by FROM pauses")
    expect(pause).toMatchObject({ district_id: "small", from_date: `${year}-03-15`, until_date: `${year}-03-19`, reason: "SIS migration", created_by: "alice" })
    expect(paused.stdout).toContain(`pause-${pause!.id}: small is paused from ${year}-03-15 through ${year}-03-19 (local dates, America/Chicago)`)

    const calendar = await rosterd(["calendar", "small", "--year", String(year)], cli.env)
    expect(calendar.code).toBe(0)
    expect(calendar.stdout).toMatch(new RegExp(`pause-${pause!.id}\\s+${year}-03-15\\s+${year}-03-19\\s+ad-hoc, id ${pause!.id}\\s+SIS migration`))
    expect(calendar.stdout).toMatch(/thanksgiving\s+\S+\s+\S+\s+calendar\s+Thanksgiving break/)
    const calendarJson = JSON.parse((await rosterd(["calendar", "small", "--year", String(year), "--json"], cli.env)).stdout)
    expect(calendarJson.pauses).toEqual([
      { id: pause!.id, name: `pause-${pause!.id}`, from: `${year}-03-15`, to: `${year}-03-19`, reason: "SIS migration", allDistricts: false, endedAt: null }
    ])
    expect(calendarJson.windows.map((w: { name: string }) => w.name)).toEqual(["thanksgiving", "winter"])

    const listed = JSON.parse((await rosterd(["pauses", "small", "--json"], cli.env)).stdout)
    expect(listed.map((p: { id: number }) => p.id)).toEqual([pause!.id])

    const resumed = await rosterd(["resume", "small", "--by", "bob"], cli.env)
    expect(resumed.code).toBe(0)
    expect(resumed.stdout).toContain(`cancelled pause-${pause!.id} (small, ${year}-03-15 – ${year}-03-19: SIS migration): it had not begun`)
    const [ended] = await rows<{ ended_by: string; ended: boolean }>("SELECT ended_by, ended_at IS NOT NULL AS ended FROM pauses")
    expect(ended).toEqual({ ended_by: "bob", ended: true })
    // Cancelled before it began: no longer in the calendar, nor among the pauses in effect.
    expect((await rosterd(["calendar", "small", "--year", String(year)], cli.env)).stdout).not.toContain(`pause-${pause!.id}`)
    expect((await rosterd(["pauses"], cli.env)).stdout).toContain("no ad-hoc pause in effect or scheduled")
    expect((await rosterd(["pauses", "--all-history"], cli.env)).stdout).toMatch(new RegExp(`pause-${pause!.id}\\s+small\\s+${year}-03-15`))

    const audit = await rows<{ actor: string; action: string; district_id: string; subject: string; reason: string | null; details: Record<string, unknown> }>(
      "SELECT actor, action, district_id, subject, reason, details FROM audit_log WHERE action IN ('pause', 'resume') ORDER BY id")
    expect(audit).toEqual([
      { actor: "alice", action: "pause", district_id: "small", subject: `pause ${pause!.id}`, reason: "SIS migration", details: { from: `${year}-03-15`, until: `${year}-03-19`, allDistricts: false } },
      { actor: "bob", action: "resume", district_id: "small", subject: "district small", reason: null, details: { ended: [pause!.id], allDistricts: false } }
    ])
  })

  it("--all pauses every district; the district's resume leaves it in place and says so", async () => {
    const paused = await rosterd(["pause", "--all", "--until", `${year}-01-10`, "--by", "alice"], cli.env)
    expect(paused.code).toBe(0)
    expect(paused.stdout).toMatch(/pause-\d+: every district is paused from \d{4}-\d{2}-\d{2} through \d{4}-01-10/)
    const resumed = await rosterd(["resume", "small"], cli.env)
    expect(resumed.code).toBe(0)
    expect(resumed.stdout).toContain("no ad-hoc pause of small was in effect or scheduled: nothing ended")
    expect(resumed.stdout).toContain("still paused by pause-")
    expect(resumed.stdout).toContain("a manual `rosterd sync small` runs at any time")
    const all = await rosterd(["resume", "--all"], cli.env)
    expect(all.code).toBe(0)
    expect(all.stdout).toMatch(/ended pause-\d+ \(every district, /)
    expect((await rows<{ n: number }>("SELECT count(*)::int AS n FROM pauses WHERE ended_at IS NULL"))[0]!.n).toBe(0)
  })

  it("bad input fails with one line and changes nothing", async () => {
    const before = await rows<{ pauses: number; audit: number }>("SELECT (SELECT count(*)::int FROM pauses) AS pauses, (SELECT count(*)::int FROM audit_log) AS audit")
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [["pause", "small", "--from", `${year}-05-02`, "--until", `${year}-05-01`], `rosterd: the pause's first day ${year}-05-02 is after its last day ${year}-05-01`],
      [["pause", "nowhere", "--until", `${year}-05-01`], `rosterd: no district "nowhere"`],
      [["pause", "small", "--until", "2020-01-01"], "rosterd: the pause's last day 2020-01-01 is in the past"],
      [["pause", "small", "--until", `${year}-13-01`], `rosterd: --until: expected a date YYYY-MM-DD, got "${year}-13-01"`],
      [["pause", "--until", `${year}-05-01`], "rosterd: give a district, or --all for every district"],
      [["pause", "small", "--all", "--until", `${year}-05-01`], "rosterd: give a district or --all, not both"],
      [["resume", "nowhere"], `rosterd: no district "nowhere"`]
    ]
    for (const [args, message] of cases) {
      const result = await rosterd(args, cli.env)
      expect(result.code, args.join(" ")).toBe(1)
      expect(result.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1)
      expect(result.stderr).toContain(message)
    }
    expect((await rosterd(["pause", "small"], cli.env)).code).toBe(2) // --until is required: a usage error
    expect(await rows("SELECT (SELECT count(*)::int FROM pauses) AS pauses, (SELECT count(*)::int FROM audit_log) AS audit")).toEqual(before)
  })
})
