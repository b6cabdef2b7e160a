import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { readRows, writeSmallDistrict } from "../support/Fixtures.ts"
import { rekeyUsers } from "../Reconcile/RekeySupport.ts"

/**
 * A re-keyed source as operators meet it (real Postgres): the sync says it
 * is held as a suspected re-key and how to decide; `holds show` and `report` show the
 * figures per kind and match kind without a personal value; `district rekey --run` with
 * `--dry-run` changes nothing, then re-keys; the next sync changes nothing; the audit log
 * has it; a mapping file that is not there is refused with exit 1.
 */
describe("rosterd district rekey", () => {
  let client: pg.Client
  const cli = cliFixture()
  const work = cli.work
  const dir = NodePath.join(work.dir, "small")

  const one = async <A>(text: string, params: ReadonlyArray<unknown> = []): Promise<A> => (await client.query(text, [...params])).rows[0] as A
  const checksum = async () =>
    (await one<{ digest: string }>(
      `SELECT md5(string_agg(source_id || ':' || xmin::text, ',' ORDER BY source_id)) AS digest FROM users WHERE district_id = 'small'`
    )).digest

  beforeAll(async () => {
    writeSmallDistrict(dir, "rekey-cli.example")
    const rules = NodePath.join(work.dir, "rules.yaml")
    // Five people are few: a re-key of them is still one.
    Fs.writeFileSync(rules, "rekey:\n  minRecords: 1\n")
    expect((await rosterd(["district", "add", "small", "--provider", "oneroster-csv", "--path", dir, "--rules-file", rules], cli.env)).code).toBe(0)
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
  })
  afterAll(async () => {
    await client?.end()
  })

  it("held as a suspected re-key, shown without personal values, re-keyed by --run (dry run first), then nothing changes", async () => {
    expect((await rosterd(["sync", "small"], cli.env)).code).toBe(0)
    const people = readRows(dir, "users")
    rekeyUsers(dir, (id) => `sis2-${id}`, { legacy: false })

    const held = await rosterd(["sync", "small"], cli.env)
    expect(held.code).toBe(0)
    const runId = Number(/run (\d+) held/.exec(held.stdout)?.[1])
    expect(held.stdout).toContain("tripped: users rekey_suspected: 5 of 5 active re-keyed one-to-one (limit 20% gone)")
    expect(held.stdout).toContain(`rosterd district rekey small --run ${runId} --by <name>`)

    const show = await rosterd(["holds", "show", String(runId)], cli.env)
    expect(show.code).toBe(0)
    expect(show.stdout).toContain("suspected re-key of small (nothing of the run was applied):")
    expect(show.stdout).toContain("users 5 of 5 disappeared, 5 appeared, 5 paired (email_birth_date 3, email_name 2) — suspected")
    expect(show.stdout).toContain("enrollments 5 paired by class and person (class_user)")
    expect(show.stdout).toContain(`rosterd district rekey small --run ${runId} --by <name> [--dry-run]`)
    const report = await rosterd(["report", "small"], cli.env)
    expect(report.stdout).toContain("users 5 of 5 disappeared, 5 appeared, 5 paired (email_birth_date 3, email_name 2)")
    for (const output of [held.stdout, show.stdout, report.stdout]) {
      for (const person of people) {
        expect(output).not.toContain(person["email"])
        expect(output).not.toContain(person["givenName"])
      }
    }

    const before = await checksum()
    const dry = await rosterd(["district", "rekey", "small", "--run", String(runId), "--by", "ops", "--dry-run"], cli.env)
    expect(dry.code).toBe(0)
    expect(dry.stdout).toContain(`dry run, nothing was changed: would re-key district small from the proposal of run ${runId}: users 5, enrollments 5`)
    expect(dry.stdout).toMatch(/users\s+\|?\s*source_id\s+\|?\s*5/)
    expect(await checksum()).toBe(before)

    const done = await rosterd(["district", "rekey", "small", "--run", String(runId), "--by", "ops", "--reason", "new SIS"], cli.env)
    expect(done.code).toBe(0)
    expect(done.stdout).toContain(`re-keyed district small from the proposal of run ${runId}: users 5, enrollments 5`)
    expect(done.stdout).toContain("the next sync applies the source's other changes: rosterd sync small")
    expect((await one<{ ids: Array<string> }>(`SELECT array_agg(source_id ORDER BY source_id) AS ids FROM users WHERE district_id = 'small'`)).ids)
      .toEqual(["sis2-s-1", "sis2-s-2", "sis2-s-3", "sis2-t-1", "sis2-t-2"])

    const after = await rosterd(["sync", "small", "--json"], cli.env)
    const summary = JSON.parse(after.stdout)
    expect(summary.status).toBe("succeeded")
    for (const counts of Object.values(summary.counts) as Array<{ created: number; updated: number; deactivated: number }>) {
      expect([counts.created, counts.updated, counts.deactivated]).toEqual([0, 0, 0])
    }
    const audit = await rosterd(["audit", "--district", "small", "--json"], cli.env)
    const entry = JSON.parse(audit.stdout).find((e: { action: string }) => e.action === "district.rekey")
    expect(entry).toMatchObject({ actor: "ops", subject: `run ${runId}`, reason: "new SIS", details: { source: "proposal" } })

    const again = await rosterd(["district", "rekey", "small", "--run", String(runId), "--by", "ops"], cli.env)
    expect(again.code).toBe(1)
    expect(again.stderr).toContain(`the hold of run ${runId} is rekeyed`)
    const missing = await rosterd(["district", "rekey", "small", "--map", NodePath.join(work.dir, "nope.csv"), "--by", "ops"], cli.env)
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("nope.csv: the file does not exist; nothing was changed")
  }, 180_000)
})
