import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * `rosterd district export`: after two districts are synced, the file has
 * one JSON line per row of the exported district — as many per kind as the database holds,
 * every user and enrollment, nothing of the other district — with mode 0600; an existing
 * file is kept unless `--force`; the printed summary and the audit row carry counts only.
 */
describe("rosterd district export", () => {
  let client: pg.Client
  const cli = cliFixture({ secretsKey: true })
  const work = cli.work

  const ok = async (args: ReadonlyArray<string>) => {
    const result = await rosterd(args, cli.env)
    expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: "" })
    return result
  }
  const count = async (text: string, params: ReadonlyArray<unknown> = ["ea"]) => (await client.query(text, [...params])).rows[0].n as number

  beforeAll(async () => {
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
    for (const [id, domain] of [["ea", "export-a.example"], ["eb", "export-b.example"]] as const) {
      const dir = NodePath.join(work.dir, id)
      writeSmallDistrict(dir, domain)
      await ok(["district", "add", id, "--provider", "oneroster-csv", "--path", dir])
      await ok(["sync", id])
    }
    await ok(["admin", "invite", "ea", "--name", "Ada Admin", "--email", "ada@export-a.example", "--all-schools", "--permission", "view"])
  }, 180_000)
  afterAll(async () => {
    await client?.end()
  })

  it("writes every row of the district as JSON lines, per kind as many as the database holds, mode 0600", async () => {
    const out = NodePath.join(work.dir, "ea.jsonl")
    const result = await ok(["district", "export", "ea", "--out", out, "--by", "dpo"])
    expect(result.stdout).not.toMatch(/@|Tess|Sam/)

    const text = Fs.readFileSync(out, "utf8")
    expect(text.endsWith("\n")).toBe(true)
    const lines = text.trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown> & { kind: string })
    expect(Object.keys(lines[0]!)[0]).toBe("kind")
    const perKind: Record<string, number> = {}
    for (const line of lines) perKind[line.kind] = (perKind[line.kind] ?? 0) + 1

    const expected = {
      district: await count(`SELECT count(*)::int AS n FROM districts WHERE id = $1`),
      school: await count(`SELECT count(*)::int AS n FROM schools WHERE district_id = $1`),
      term: await count(`SELECT count(*)::int AS n FROM terms WHERE district_id = $1`),
      course: await count(`SELECT count(*)::int AS n FROM courses WHERE district_id = $1`),
      class: await count(`SELECT count(*)::int AS n FROM classes WHERE district_id = $1`),
      user: await count(`SELECT count(*)::int AS n FROM users WHERE district_id = $1`),
      user_identity: await count(`SELECT count(*)::int AS n FROM user_identities WHERE district_id = $1`),
      enrollment: await count(`SELECT count(*)::int AS n FROM enrollments WHERE district_id = $1`),
      account_link: await count(`SELECT count(*)::int AS n FROM account_links l JOIN users u ON u.id = l.user_id WHERE u.district_id = $1`),
      account_review: await count(`SELECT count(*)::int AS n FROM account_reviews WHERE district_id = $1`),
      admin: await count(`SELECT count(*)::int AS n FROM admins WHERE district_id = $1`),
      sync_run: await count(`SELECT count(*)::int AS n FROM sync_runs WHERE district_id = $1`),
      finding: await count(`SELECT count(*)::int AS n FROM findings WHERE district_id = $1`)
    }
    expect(expected).toMatchObject({ district: 1, school: 2, term: 1, course: 1, class: 2, user: 5, enrollment: 5, account_link: 5, admin: 1, sync_run: 1 })
    expect({ ...Object.fromEntries(Object.keys(expected).map((k) => [k, 0])), ...perKind }).toEqual(expected)
    // The printed summary says the same.
    for (const [kind, n] of Object.entries(expected)) expect(result.stdout).toMatch(new RegExp(`^${kind}\\s+${n}$`, "m"))

    // Every user and enrollment of the district, with its columns; nothing of the other.
    const ids = async (table: string) => (await client.query(`SELECT id::int FROM ${table} WHERE district_id = 'ea' ORDER BY id`)).rows.map((r) => r.id as number)
    expect(lines.filter((l) => l.kind === "user").map((l) => l.id)).toEqual(await ids("users"))
    expect(lines.filter((l) => l.kind === "enrollment").map((l) => l.id)).toEqual(await ids("enrollments"))
    expect(lines.find((l) => l.kind === "user" && l.source_id === "t-1")).toMatchObject({ district_id: "ea", email: "tess@export-a.example", given_name: "Tess" })
    expect(lines.every((l) => l.kind === "district" ? l.id === "ea" : l.kind === "account_link" || l.district_id === "ea")).toBe(true)
    expect(text).not.toContain("export-b.example")
    expect(text).not.toContain('"eb"')

    expect(Fs.statSync(out).mode & 0o777).toBe(0o600)
    expect(Fs.readdirSync(work.dir).filter((f) => f.endsWith(".tmp"))).toEqual([])

    const { rows } = await client.query(`SELECT actor, action, district_id, subject, details FROM audit_log WHERE action = 'district.export'`)
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ actor: "dpo", district_id: "ea", subject: "district ea", details: { counts: expected, force: false } })
    expect(JSON.stringify(rows[0].details)).not.toMatch(/@|Tess/)
  }, 120_000)

  it("refuses to overwrite an existing file unless --force; the replacement is mode 0600 too", async () => {
    const out = NodePath.join(work.dir, "existing.jsonl")
    Fs.writeFileSync(out, "keep me\n", { mode: 0o644 })
    const refused = await rosterd(["district", "export", "ea", "--out", out], cli.env)
    expect(refused.code).toBe(1)
    expect(refused.stderr.trim()).toBe(`rosterd: ${out} exists: give --force to replace it`)
    expect(Fs.readFileSync(out, "utf8")).toBe("keep me\n")

    await ok(["district", "export", "ea", "--out", out, "--force"])
    expect(Fs.readFileSync(out, "utf8").split("\n")[0]).toMatch(/^\{"kind":"district","id":"ea",/)
    expect(Fs.statSync(out).mode & 0o777).toBe(0o600)

    const unknown = await rosterd(["district", "export", "nope", "--out", NodePath.join(work.dir, "nope.jsonl")], cli.env)
    expect(unknown.code).toBe(1)
    expect(Fs.existsSync(NodePath.join(work.dir, "nope.jsonl"))).toBe(false)
    expect(Fs.readdirSync(work.dir).filter((f) => f.endsWith(".tmp"))).toEqual([])
    expect(await count(`SELECT count(*)::int AS n FROM audit_log WHERE action = 'district.export'`, [])).toBe(2)
  }, 120_000)
})
