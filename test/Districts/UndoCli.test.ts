import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture } from "../support/CliFixture.ts"
import { generated, readRows, writeCsv } from "../support/Fixtures.ts"

/**
 * `rosterd runs undo <run>` in process: the dry run prints the plan and changes nothing,
 * the undo prints its counts and is audited, a second one and an unknown run are refused
 * with one clear line; `runs <district>` still lists the history.
 */
describe("rosterd runs undo", () => {
  const cli = cliFixture()
  const dir = () => NodePath.join(cli.work.dir, "und")
  let client: pg.Client

  beforeAll(async () => {
    generated(dir(), 60, "undo-cli")
    const add = await cli.rosterd(["district", "add", "und", "--provider", "oneroster-csv", "--path", dir()])
    expect(add.code, add.stderr).toBe(0)
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
  })
  afterAll(async () => {
    await client?.end()
  })

  const active = async () => (await client.query(`SELECT count(*)::int AS n FROM users WHERE district_id = 'und' AND active`)).rows[0].n as number

  it("undoes a run, after a dry run that changes nothing", async () => {
    expect((await cli.rosterd(["sync", "und"])).code).toBe(0)
    const users = readRows(dir(), "users")
    writeCsv(dir(), "users", [...users, { ...users.find((u) => u.role === "student")!, sourcedId: "usr-cli-new", email: "cli-new@undo.example" }])
    const bad = JSON.parse((await cli.rosterd(["sync", "und", "--json"])).stdout)
    expect(bad.counts.users.created).toBe(1)
    const before = await active()

    const dry = await cli.rosterd(["runs", "undo", String(bad.runId), "--by", "erin", "--dry-run"])
    expect(dry.code, dry.stderr).toBe(0)
    expect(dry.stdout).toMatch(/would undo: run \d+ of und/)
    expect(dry.stdout).toMatch(/users\s+1\s+0\s+0\s+0/)
    expect(await active()).toBe(before)

    const done = await cli.rosterd(["runs", "undo", String(bad.runId), "--by", "erin", "--reason", "test"])
    expect(done.code, done.stderr).toBe(0)
    expect(done.stdout).toMatch(/undone: run \d+ of und/)
    expect(done.stdout).toMatch(/accounts and links are not undone/)
    expect(await active()).toBe(before - 1)
    const audit = await cli.rosterd(["audit", "--district", "und", "--json"])
    expect(JSON.parse(audit.stdout).some((a: { action: string; actor: string }) => a.action === "run.undo" && a.actor === "erin")).toBe(true)

    const again = await cli.rosterd(["runs", "undo", String(bad.runId), "--by", "erin"])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/cannot be undone: it was undone by erin/)
    const unknown = await cli.rosterd(["runs", "undo", "999999", "--by", "erin"])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/no run 999999/)
    const listed = await cli.rosterd(["runs", "und"])
    expect(listed.code).toBe(0)
    expect(listed.stdout).toMatch(/succeeded/)
  })
})
