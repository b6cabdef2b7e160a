import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * The follow-up commands as operators run them (one each): `accounts pending`,
 * `accounts resend-activation <district> --user`, `accounts duplicates`, `accounts merge` and
 * `class add-student --account`. Output carries ids, source IDs and counts — never a name,
 * an address or a token. (What they do is tested in-process: test/Accounts, test/Admins.)
 */
describe("rosterd accounts follow-up CLI", () => {
  let client: pg.Client
  const cli = cliFixture({ secretsKey: true })
  const work = cli.work
  const districtDir = NodePath.join(work.dir, "small")

  const one = async <A>(text: string, values: ReadonlyArray<unknown> = []) => (await client.query(text, [...values])).rows[0] as A

  beforeAll(async () => {
    writeSmallDistrict(districtDir)
    const added = await rosterd(["district", "add", "small", "--provider", "oneroster-csv", "--path", districtDir], cli.env)
    expect(added.stderr).toBe("")
    expect(added.code).toBe(0)
    const synced = await rosterd(["sync", "small"], cli.env)
    expect(synced.stderr).toBe("")
    expect(synced.code).toBe(0)
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
  }, 120_000)
  afterAll(async () => {
    await client?.end()
  })

  it("pending lists who has not activated; resend-activation <district> --user sends one a new link", async () => {
    const pending = await rosterd(["accounts", "pending", "small", "--json"], cli.env)
    expect(pending.code).toBe(0)
    const people = JSON.parse(pending.stdout) as Array<Record<string, unknown>>
    expect(people.map((p) => [p.sourceId, p.remindersSent, p.daysSinceFirstMail, p.hasAddress])).toEqual([["t-1", 0, 0, true], ["t-2", 0, 0, true]])
    expect(pending.stdout).not.toMatch(/@|Tess|Theo/)

    const { id: theo } = await one<{ id: number }>(`SELECT id::int FROM users WHERE district_id = 'small' AND source_id = 't-2'`)
    const resent = await rosterd(["accounts", "resend-activation", "small", "--user", "t-2", "--by", "ops-cli"], cli.env)
    expect({ code: resent.code, stdout: resent.stdout.trim(), stderr: resent.stderr }).toEqual({
      code: 0,
      stdout: `activation e-mail queued for t-2 (user ${theo}) of small; earlier activation links no longer work`,
      stderr: ""
    })
    const tokens = (await client.query(`SELECT revoked_at IS NOT NULL AS revoked FROM activation_tokens WHERE user_id = $1 ORDER BY id`, [theo])).rows
    expect(tokens).toEqual([{ revoked: true }, { revoked: false }])
    expect(await one(`SELECT actor FROM audit_log WHERE action = 'account.resend-activation' ORDER BY id DESC LIMIT 1`)).toEqual({ actor: "ops-cli" })
  }, 60_000)

  it("duplicates shows a grassroots account sharing a teacher's address; merge joins them; the teacher is active", async () => {
    const { id: tessAccount } = await one<{ id: number }>(`
      SELECT l.account_id::int AS id FROM account_links l JOIN users u ON u.id = l.user_id WHERE u.district_id = 'small' AND u.source_id = 't-1'`)
    const { id: own } = await one<{ id: number }>(`INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', 'g-tess', 'active') RETURNING id::int`)
    await client.query(`INSERT INTO account_emails (account_id, email, email_key, added_by) VALUES ($1, 'Tess@small.example', 'tess@small.example', 'import')`, [own])

    const found = await rosterd(["accounts", "duplicates", "--district", "small", "--json"], cli.env)
    expect(found.code).toBe(0)
    const groups = JSON.parse(found.stdout) as Array<{ match: string; accounts: Array<number>; people: Array<{ sourceId: string }> }>
    expect(groups.map((g) => [g.match, g.accounts, g.people.map((p) => p.sourceId)])).toEqual([["address", [tessAccount, own], ["t-1"]]])
    expect(found.stdout).not.toMatch(/@|Tess/)

    const merged = await rosterd(["accounts", "merge", String(tessAccount), String(own), "--by", "ops-cli", "--reason", "same teacher"], cli.env)
    expect({ code: merged.code, stdout: merged.stdout.trim(), stderr: merged.stderr }).toEqual({
      code: 0,
      stdout: `account ${tessAccount} merged into account ${own} (active): moved 1 link, 0 addresses, 0 identities, 0 teacher-made classes, ` +
        "0 memberships, 0 admin records; 1 waiting teacher now active",
      stderr: ""
    })
    expect(await one(`SELECT state, merged_into::int AS "mergedInto" FROM accounts WHERE id = $1`, [tessAccount])).toEqual({ state: "merged", mergedInto: own })
    const again = await rosterd(["accounts", "merge", String(tessAccount), String(own), "--by", "ops-cli"], cli.env)
    expect({ code: again.code, stderr: again.stderr.trim() }).toEqual({ code: 1, stderr: `rosterd: account ${tessAccount} was merged into account ${own}; use that account` })
  }, 60_000)

  it("class add-student --account puts a platform account in a teacher-made class", async () => {
    const { id: owner } = await one<{ id: number }>(`INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', 'g-coach', 'active') RETURNING id::int`)
    const { id: kid } = await one<{ id: number }>(`INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', 'g-kid', 'active') RETURNING id::int`)
    const { id: club } = await one<{ id: number }>(`INSERT INTO classes (roster_source, title, owner_account_id) VALUES ('manual', 'Chess', $1) RETURNING id::int`, [owner])
    const added = await rosterd(["class", "add-student", String(club), "--account", String(kid)], cli.env)
    expect({ code: added.code, stdout: added.stdout.trim(), stderr: added.stderr }).toEqual({ code: 0, stdout: `added account ${kid} to class ${club}`, stderr: "" })
    expect((await client.query(`SELECT user_id, account_id::int AS "accountId", roster_source AS source FROM enrollments WHERE class_id = $1`, [club])).rows)
      .toEqual([{ user_id: null, accountId: kid, source: "manual" }])
  }, 60_000)
})
