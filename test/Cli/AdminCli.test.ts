import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, freePort, ROOT } from "../support/Cli.ts"
import { cliFixture, rosterd, rosterdWithInput, startDaemon } from "../support/CliFixture.ts"
import { sealedTokenWith } from "../support/MailLinks.ts"

/**
 * `rosterd admin …` end to end on the demo district, as an operator meets it: the bundled
 * config file (config/rosterd.yaml) declares `demo`; the daemon registers and syncs it; then
 * the CLI invites, confirms, lists, edits, resends and removes administrators, acting as
 * an operator or as an admin (`--as`). Output names ids, never addresses or tokens — except
 * `admin list`, the listing of administrators.
 */

describe("rosterd admin CLI on the demo district", () => {
  let env: Record<string, string>
  let client: pg.Client
  /** With the credentials key the commands seal invitation links with (DATABASE_URL: one must be configured). */
  const cli = cliFixture({ secretsKey: true })
  const work = cli.work
  const secretsKey = cli.secretsKey!

  /** The token of an admin's newest invitation: opened from its queued message's seal (no table holds it in clear). */
  const tokenOf = async (adminId: number) => {
    const { rows } = await client.query(`SELECT max(id)::text AS id FROM admin_tokens WHERE admin_id = $1`, [adminId])
    return sealedTokenWith(client, secretsKey.key, `admin-invitation:${rows[0].id}`)
  }
  /** `admin confirm` with the token on standard input, as an operator pipes it (never an argument). */
  const confirmWith = (token: string, extra: ReadonlyArray<string> = []) => rosterdWithInput(["admin", "confirm", "--token-stdin", ...extra], env, `${token}\n`)
  const noPersonalValues = (text: string) => {
    expect(text).not.toMatch(/@/)
    expect(text).not.toMatch(/Ada|Ben|Cy Three/)
  }

  beforeAll(async () => {
    env = {
      ...cli.env,
      ROSTERD_CONFIG: NodePath.join(ROOT, "config/rosterd.yaml"),
      ROSTERD_DATA_DIR: work.dir,
      ROSTERD_HTTP_PORT: String(await freePort()),
      ROSTERD_LOG_LEVEL: "warning"
    }
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
    // The daemon registers the districts the config file declares and syncs them at start.
    const daemon = startDaemon(env)
    try {
      await eventually(async () => {
        const { rows } = await client.query(`SELECT status FROM sync_runs WHERE district_id = 'demo' AND status = 'succeeded'`).catch(() => ({ rows: [] }))
        return rows.length > 0 ? true : undefined
      }, 90_000)
    } finally {
      expect(await daemon.stop()).toBe(0)
    }
  }, 180_000)
  afterAll(async () => {
    await client?.end()
  })

  it("lists the demo's roster admins; an operator invites, the invitee confirms; an admin invites within its schools", async () => {
    const roster = await rosterd(["admin", "list", "demo", "--json"], env)
    expect(roster.code).toBe(0)
    const listed = JSON.parse(roster.stdout) as Array<Record<string, any>>
    expect(listed.map((a) => [a.kind, a.rosterRecord.sourceId, a.schools, a.source, a.permission, a.invitation])).toEqual([
      ["roster", "usr-t-000001", ["org-sch-0001"], "CSV", "view", "pending"],
      ["roster", "usr-t-000014", ["org-sch-0002"], "CSV", "view", "pending"]
    ])

    const invited = await rosterd(
      ["admin", "invite", "demo", "--name", "Ada Admin", "--email", "ada@demo.example", "--all-schools", "--permission", "manage", "--can-manage-admins", "--by", "ops-anna"],
      env
    )
    expect(invited.code).toBe(0)
    expect(invited.stdout).toMatch(/^invited admin 1 in district demo: manage, can manage admins, all schools of district demo; invitation e-mail queued \(its link works until \d{4}-\d\d-\d\dT[\d:]+Z\)\n$/)
    noPersonalValues(invited.stdout + invited.stderr)
    const { rows: [mail] } = await client.query(`SELECT recipient, subject, state FROM outbox WHERE kind = 'admin_invitation'`)
    expect(mail).toEqual({ recipient: "ada@demo.example", subject: "Action needed: confirm your administrator account", state: "pending" })

    const token = await tokenOf(1)
    const confirmed = await confirmWith(token)
    expect(confirmed.code).toBe(0)
    expect(confirmed.stdout).toMatch(/^confirmed: admin 1; new account \d+ with the invited address holds the administrator access\n$/)
    const again = await confirmWith(token)
    expect(again.code).toBe(1)
    expect(again.stderr.trim()).toMatch(/^rosterd: invitation refused: invitation token \d+ was already used$/)
    expect(again.stdout + again.stderr).not.toContain(token)

    // Ada (manage, can manage admins, all schools) invites Ben (view, school 1).
    const ben = await rosterd(
      ["admin", "invite", "demo", "--name", "Ben Viewer", "--email", "ben@demo.example", "--schools", "org-sch-0001", "--permission", "view", "--as", "1"],
      env
    )
    expect(ben.code).toBe(0)
    expect(ben.stdout).toContain("invited admin 2 in district demo: view, school org-sch-0001 of district demo")
    // Ben confirms through the platform (the database function).
    await client.query(`SELECT * FROM rosterd_confirm_admin($1)`, [await tokenOf(2)])
  }, 120_000)

  it("enforces the acting admin's permission and scope; an operator may do anything", async () => {
    const viewer = await rosterd(
      ["admin", "invite", "demo", "--name", "Cy Three", "--email", "cy@demo.example", "--schools", "org-sch-0001", "--permission", "view", "--as", "2"],
      env
    )
    expect(viewer.code).toBe(1)
    expect(viewer.stderr.trim()).toBe("rosterd: not permitted: admin 2 may not invite administrators for school org-sch-0001 of district demo: view permission sees dashboards only")

    const upgraded = await rosterd(["admin", "edit", "2", "--permission", "manage", "--can-manage-admins", "--as", "1"], env)
    expect(upgraded.code).toBe(0)
    expect(upgraded.stdout.trim()).toBe("admin 2 edited (permission, canManageAdmins): school org-sch-0001 of district demo")

    const beyond = await rosterd(
      ["admin", "invite", "demo", "--name", "Cy Three", "--email", "cy@demo.example", "--schools", "org-sch-0002", "--permission", "view", "--as", "2"],
      env
    )
    expect(beyond.code).toBe(1)
    expect(beyond.stderr).toContain("its scope (school org-sch-0001 of district demo) does not cover school org-sch-0002 of district demo")
    noPersonalValues(beyond.stderr)

    const byOperator = await rosterd(
      ["admin", "invite", "demo", "--name", "Cy Three", "--email", "cy@demo.example", "--schools", "org-sch-0002", "--permission", "view"],
      env
    )
    expect(byOperator.code).toBe(0)
    expect(byOperator.stdout).toContain("invited admin 3")
  }, 120_000)

  it("resend invalidates the old link; list shows names, addresses, sources, states and stale invitations; remove; audit", async () => {
    const old = await tokenOf(3)
    const resent = await rosterd(["admin", "resend", "3", "--as", "1"], env)
    expect(resent.code).toBe(0)
    expect(resent.stdout).toMatch(/^invitation e-mail queued again for admin 3 .*earlier links no longer work\n$/)
    const dead = await confirmWith(old)
    expect(dead.code).toBe(1)
    expect(dead.stderr).toMatch(/invitation token \d+ was replaced by a newer one/)

    // Invited and never confirmed after rosterd.admins.staleAfterDays (here: at once).
    const stale = await rosterd(["admin", "list", "demo"], { ...env, ROSTERD_ADMINS_STALE_AFTER_DAYS: "0" })
    expect(stale.code).toBe(0)
    const lines = stale.stdout.trimEnd().split("\n")
    expect(lines[0]).toMatch(/^admin\s+name\s+e-mail\s+schools\s+permission\s+manages admins\s+source\s+invitation\s+roster record$/)
    expect(lines[1]).toMatch(/^admin 1\s+Ada Admin\s+ada@demo\.example\s+all\s+manage\s+yes\s+in-product\s+confirmed\s+-$/)
    expect(lines[2]).toMatch(/^admin 2\s+Ben Viewer\s+ben@demo\.example\s+org-sch-0001\s+manage\s+yes\s+in-product\s+confirmed\s+-$/)
    expect(lines[3]).toMatch(/^admin 3\s+Cy Three\s+cy@demo\.example\s+org-sch-0002\s+view\s+no\s+in-product\s+pending \(stale\)\s+-$/)
    expect(lines[4]).toMatch(/^user \d+\s+\S+ \S+\s+\S+@district\.example\.org\s+org-sch-0001\s+view\s+no\s+CSV\s+pending\s+usr-t-000001$/)
    expect(lines).toHaveLength(6)
    const staleOnly = JSON.parse((await rosterd(["admin", "list", "demo", "--stale", "--json"], { ...env, ROSTERD_ADMINS_STALE_AFTER_DAYS: "0" })).stdout)
    expect(staleOnly.map((a: { id: number }) => a.id)).toEqual([3])

    const removed = await rosterd(["admin", "remove", "3", "--by", "ops-anna", "--reason", "wrong school"], env)
    expect(removed.code).toBe(0)
    expect(removed.stdout).toContain("admin 3 removed")
    const { rows: [cancelled] } = await client.query(
      `SELECT count(*) FILTER (WHERE o.state = 'pending')::int AS pending FROM outbox o JOIN admin_tokens t ON o.idempotency_key = 'admin-invitation:' || t.id WHERE t.admin_id = 3`
    )
    expect(cancelled.pending).toBe(0)

    const audit = await rosterd(["audit", "--district", "demo", "--json"], env)
    const entries = (JSON.parse(audit.stdout) as Array<{ actor: string; action: string; subject: string; reason: string | null }>)
      .filter((e) => e.action.startsWith("admin."))
      .reverse()
    expect(entries.map((e) => [e.actor, e.action, e.subject])).toEqual([
      ["ops-anna", "admin.invite", "admin 1"],
      ["admin:1", "admin.confirm", "admin 1"],
      ["admin:1", "admin.invite", "admin 2"],
      ["admin:2", "admin.confirm", "admin 2"],
      ["admin:1", "admin.edit", "admin 2"],
      [expect.any(String), "admin.invite", "admin 3"],
      ["admin:1", "admin.resend", "admin 3"],
      ["ops-anna", "admin.remove", "admin 3"]
    ])
    noPersonalValues(audit.stdout)
  }, 120_000)

  it("partnerships: a region admin is listed in its region's districts", async () => {
    expect((await rosterd(["admin", "partnership", "add", "state", "--name", "State Partnership"], env)).code).toBe(0)
    const placed = await rosterd(["admin", "partnership", "add-district", "state", "demo", "--region", "north", "--region-name", "North"], env)
    expect(placed.stdout.trim()).toBe("district demo is in partnership state, region north (new)")
    const region = await rosterd(
      ["admin", "invite", "demo", "--name", "Rhea Region", "--email", "rhea@state.example", "--role", "region", "--region", "north", "--permission", "view"],
      env
    )
    expect(region.code).toBe(0)
    expect(region.stdout).toContain("region north of partnership state")
    const listed = JSON.parse((await rosterd(["admin", "list", "demo", "--json"], env)).stdout) as Array<Record<string, unknown>>
    // Not stale under the default rosterd.admins.staleAfterDays (30).
    expect(listed.find((a) => a["name"] === "Rhea Region")).toMatchObject({ role: "region", partnership: "state", region: "north", invitation: "pending", stale: false })
  }, 120_000)
})
