import * as Fs from "node:fs"
import * as NodePath from "node:path"
import * as Os from "node:os"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { readRows, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * The audit log as operators read it (`rosterd audit`): district add, rules
 * and remove, an accounts import, and hold decisions each leave one row with who, what and
 * why — ids and counts, never an address or a name.
 */
describe("rosterd audit CLI", () => {
  let client: pg.Client
  // With DATABASE_URL a credentials key must be configured: it seals activation links (a resend needs it).
  const cli = cliFixture({ secretsKey: true })
  const work = cli.work
  const districtDir = NodePath.join(work.dir, "small")

  beforeAll(async () => {
    writeSmallDistrict(districtDir, "audit.example")
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
  })
  afterAll(async () => {
    await client?.end()
  })

  it("operator actions are audited with actor, subject and reason; --district and --limit filter", async () => {
    const ok = async (args: ReadonlyArray<string>) => {
      const result = await rosterd(args, cli.env)
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: "" })
      return result
    }
    await ok(["district", "add", "small", "--provider", "oneroster-csv", "--path", districtDir, "--by", "carol"])
    // A tight gate, so two students leaving is held.
    const rules = NodePath.join(work.dir, "rules.yaml")
    Fs.writeFileSync(rules, "gate:\n  maxDeactivations: 1\ncoTeacherLimit: 2\n")
    await ok(["district", "rules", "small", "--file", rules, "--by", "carol"])
    const accounts = NodePath.join(work.dir, "accounts.csv")
    Fs.writeFileSync(accounts, "external_id,email,display_name\ng-1,ann@home.example,Ann Example\ng-2,bob@home.example,Bob Example\n")
    await ok(["accounts", "import", accounts])
    await ok(["sync", "small"])

    writeCsv(districtDir, "users", readRows(districtDir, "users").filter((u) => u.sourcedId !== "s-2" && u.sourcedId !== "s-3"))
    writeCsv(districtDir, "enrollments", readRows(districtDir, "enrollments").filter((e) => e.userSourcedId !== "s-2" && e.userSourcedId !== "s-3"))
    writeCsv(districtDir, "demographics", readRows(districtDir, "demographics").filter((d) => d.sourcedId === "s-1"))
    const first = JSON.parse((await ok(["sync", "small", "--json"])).stdout)
    expect(first.status).toBe("held")
    await ok(["holds", "reject", String(first.runId), "--by", "dave", "--reason", "export cut short"])
    const second = JSON.parse((await ok(["sync", "small", "--json"])).stdout)
    expect(second.status).toBe("held")
    await ok(["holds", "approve", String(second.runId), "--by", "erin", "--reason", "two students moved away"])
    await ok(["district", "remove", "small", "--by", "carol"])

    const log = await ok(["audit", "--json"])
    const entries = JSON.parse(log.stdout)
    expect(entries.map((e: { actor: string; action: string; districtId: string | null; subject: string | null; reason: string | null }) =>
      [e.actor, e.action, e.districtId, e.subject, e.reason]
    )).toEqual([
      ["carol", "district.remove", "small", "district small", null],
      ["erin", "hold.approve", "small", `run ${second.runId}`, "two students moved away"],
      ["dave", "hold.reject", "small", `run ${first.runId}`, "export cut short"],
      [Os.userInfo().username, "accounts.import", null, "file accounts.csv", null],
      ["carol", "district.rules", "small", "district small", null],
      ["carol", "district.add", "small", "district small", null]
    ])
    expect(entries[3].details).toEqual({ rows: 2, accounts: 2, identitiesAdded: 0, accountsCreated: 2, addressesAdded: 2 })
    expect(entries[4].details).toEqual({ sections: ["coTeacherLimit", "gate"] })
    expect(entries[1].details).toMatchObject({ applied: { users: 2 }, stale: 0 })
    expect(new Date(entries[0].at).toISOString()).toBe(entries[0].at)
    expect(log.stdout).not.toContain("@")
    expect(log.stdout).not.toContain("Example")

    const filtered = JSON.parse((await ok(["audit", "--district", "small", "--limit", "2", "--json"])).stdout)
    expect(filtered.map((e: { action: string }) => e.action)).toEqual(["district.remove", "hold.approve"])
    const text = await ok(["audit", "--limit", "3"])
    expect(text.stdout).toMatch(/^at \(UTC\)\s+actor\s+action\s+district\s+subject\s+reason/)
    expect(text.stdout).toMatch(/erin\s+hold\.approve\s+small\s+run \d+\s+two students moved away/)
  }, 240_000)

  // After the test above: the district and the imported accounts are there.
  it("review create (its --by), add-email and resend-activation (the operating-system user) are audited without addresses", async () => {
    // A teacher the sync has not seen (written as the sync writes), with an open review.
    await client.query("BEGIN")
    await client.query(`SELECT set_config('rosterd.writer', 'sync', true)`)
    const teacher = (await client.query(
      `INSERT INTO users (district_id, source_id, roster_source, roles, email, given_name, family_name)
       VALUES ('small', 't-9', 'csv', '{teacher}', 'nine@audit.example', 'Nina', 'Nine') RETURNING id::int`
    )).rows[0].id as number
    await client.query("COMMIT")
    const reviewId = (await client.query(
      `INSERT INTO account_reviews (district_id, user_id, reason, candidate_account_ids)
       SELECT 'small', $1, 'several_accounts', array_agg(id ORDER BY id) FROM accounts WHERE origin = 'grassroots' RETURNING id::int`,
      [teacher]
    )).rows[0].id as number
    const grassroots = (await client.query(`SELECT id::int FROM accounts WHERE external_id = 'g-1'`)).rows[0].id as number

    for (const args of [
      ["accounts", "review", "create", String(reviewId), "--by", "ops-anna"],
      ["accounts", "add-email", String(grassroots), "ann@school.example"],
      ["accounts", "resend-activation", String(teacher)]
    ]) {
      const result = await rosterd(args, cli.env)
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: "" })
    }
    const { rows } = await client.query(
      `SELECT actor, action, district_id AS "districtId", subject, details FROM audit_log
       WHERE action IN ('review.create', 'account.add-email', 'account.resend-activation') ORDER BY id`
    )
    expect(rows).toEqual([
      {
        actor: "ops-anna",
        action: "review.create",
        districtId: "small",
        subject: `review ${reviewId}`,
        details: { userId: teacher, accountId: expect.any(Number), accountState: "pending", activationMails: 1 }
      },
      { actor: Os.userInfo().username, action: "account.add-email", districtId: null, subject: `account ${grassroots}`, details: { added: true } },
      { actor: Os.userInfo().username, action: "account.resend-activation", districtId: "small", subject: `user ${teacher}`, details: { issued: 1 } }
    ])
    expect(JSON.stringify(rows)).not.toContain("@")
  }, 120_000)
})
