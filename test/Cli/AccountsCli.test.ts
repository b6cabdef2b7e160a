import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd, rosterdWithInput } from "../support/CliFixture.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"
import { sealedTokenWith } from "../support/MailLinks.ts"

/**
 * `rosterd accounts` and `rosterd report` as operators use them (in process): the
 * grassroots import, the review queue, confirming an activation token. Output carries ids
 * and counts — never an address or a token.
 */
describe("rosterd accounts CLI", () => {
  let client: pg.Client
  const cli = cliFixture({ secretsKey: true })
  const work = cli.work
  const districtDir = NodePath.join(work.dir, "small")
  // With DATABASE_URL a credentials key must be configured: it seals the activation links.
  const secretsKey = cli.secretsKey!

  beforeAll(async () => {
    writeSmallDistrict(districtDir)
    expect((await rosterd(["district", "add", "small", "--provider", "oneroster-csv", "--path", districtDir], cli.env)).code).toBe(0)
    expect((await rosterd(["sync", "small"], cli.env)).code).toBe(0)
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
  })
  afterAll(async () => {
    await client?.end()
  })

  it("accounts import loads a CSV with counts; a bad line fails it with file and line, nothing written", async () => {
    const file = NodePath.join(work.dir, "accounts.csv")
    Fs.writeFileSync(file, "external_id,email,display_name\ng-1,ann@home.example,Ann\ng-1,Ann@School.example,\ng-2,bob@home.example,Bob\n")
    const imported = await rosterd(["accounts", "import", file], cli.env)
    expect(imported.code).toBe(0)
    expect(imported.stdout.trim()).toBe(`imported ${file}: 3 rows, 2 accounts (2 created, 0 already present), 3 addresses added`)

    const bad = NodePath.join(work.dir, "bad.csv")
    Fs.writeFileSync(bad, "external_id,email\ng-3,carol@home.example\n,dan@home.example\n")
    const failed = await rosterd(["accounts", "import", bad], cli.env)
    expect(failed.code).toBe(1)
    expect(failed.stderr.trim()).toBe(`rosterd: ${bad} line 3: external_id is empty; nothing was imported`)
    const { rows } = await client.query(`SELECT external_id FROM accounts WHERE origin = 'grassroots' ORDER BY 1`)
    expect(rows).toEqual([{ external_id: "g-1" }, { external_id: "g-2" }])
  }, 60_000)

  it("review list, review create, confirm (once), show and report", async () => {
    // A teacher the sync has not seen (written as the sync writes), with an open review.
    await client.query("BEGIN")
    await client.query(`SELECT set_config('rosterd.writer', 'sync', true)`)
    const teacher = (await client.query(
      `INSERT INTO users (district_id, source_id, roster_source, roles, email, given_name, family_name)
       VALUES ('small', 't-9', 'csv', '{teacher}', 'nine@small.example', 'Nina', 'Nine') RETURNING id::int`
    )).rows[0].id as number
    await client.query("COMMIT")
    const reviewId = (await client.query(
      `INSERT INTO account_reviews (district_id, user_id, reason, candidate_account_ids)
       SELECT 'small', $1, 'several_accounts', array_agg(id ORDER BY id) FROM accounts WHERE origin = 'grassroots' RETURNING id::int`,
      [teacher]
    )).rows[0].id as number

    const listed = await rosterd(["accounts", "review", "list", "--district", "small", "--json"], cli.env)
    expect(listed.code).toBe(0)
    const reviews = JSON.parse(listed.stdout) as Array<Record<string, unknown>>
    expect(reviews.find((r) => r.id === reviewId)).toMatchObject({
      district: "small",
      userId: teacher,
      sourceId: "t-9",
      reason: "several_accounts",
      candidateAccountIds: [expect.any(Number), expect.any(Number)]
    })
    expect(listed.stdout).not.toContain("@")

    const created = await rosterd(["accounts", "review", "create", String(reviewId), "--by", "ops-anna"], cli.env)
    expect(created.code).toBe(0)
    const accountId = Number(/linked to new district account (\d+)/.exec(created.stdout)?.[1])
    expect(created.stdout).toContain("(account pending, activation pending; activation e-mail queued)")

    const tokenId = (await client.query(`SELECT max(id)::text AS id FROM activation_tokens WHERE user_id = $1`, [teacher])).rows[0].id as string
    const token = await sealedTokenWith(client, secretsKey.key, `teacher-activation:${tokenId}`)

    // Never from the command line: a token given as an argument is refused (and not echoed); no source at all is refused.
    const positional = await rosterd(["accounts", "confirm", token], cli.env)
    expect(positional.code).toBe(1)
    expect(positional.stderr).toMatch(/^rosterd: a token is never taken from the command line .*--token-stdin or give --token-file <path>/)
    expect(positional.stdout + positional.stderr).not.toContain(token)
    const none = await rosterd(["accounts", "confirm"], cli.env)
    expect(none.code).toBe(1)
    expect(none.stderr.trim()).toBe("rosterd: give the token on standard input (--token-stdin) or in a file (--token-file <path>); it is never taken from the command line")

    const tokenFile = NodePath.join(work.dir, "token.txt")
    Fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 })
    const confirmed = await rosterd(["accounts", "confirm", "--token-file", tokenFile], cli.env)
    expect(confirmed.code).toBe(0)
    expect(confirmed.stdout.trim()).toBe(`activated: user ${teacher}, account ${accountId}`)
    const again = await rosterdWithInput(["accounts", "confirm", "--token-stdin"], cli.env, token)
    expect(again.code).toBe(1)
    expect(again.stderr.trim()).toMatch(/^rosterd: activation refused: activation token \d+ was already used$/)
    expect(again.stderr + again.stdout).not.toContain(token)

    const shown = await rosterd(["accounts", "show", String(accountId), "--json"], cli.env)
    expect(shown.code).toBe(0)
    expect(JSON.parse(shown.stdout)).toMatchObject({
      id: accountId,
      origin: "district",
      state: "active",
      district: "small",
      addresses: 1,
      links: [{ userId: teacher, district: "small", sourceId: "t-9", roles: ["teacher"], method: "review", activation: "active" }]
    })
    expect(shown.stdout).not.toContain("@")

    const report = await rosterd(["report", "small"], cli.env)
    expect(report.code).toBe(0)
    expect(report.stdout).toMatch(/^small: findings of run \d+ \(succeeded, full, finished /)
    expect(report.stdout).toMatch(/review queue: (empty|\d+ open)/)
    expect(report.stdout).not.toContain("@")
  }, 120_000)
})
