import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { readRows, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { sealedTokenWith } from "../support/MailLinks.ts"

/**
 * `rosterd district erase`: two districts synced with distinct domains,
 * `alpha`'s source IDs distinct too; alpha has a held run, findings, an outbox, a pause,
 * admins (one confirmed), a partnership place, credentials, a grassroots account linked
 * by address and one chosen at confirmation, a student in a teacher-made class and a
 * student's account owning one. Refusals change nothing; the erase leaves no row of alpha
 * in any table, nothing of its domain or source IDs anywhere, beta exactly as it was, the
 * people's own accounts kept and unlinked, and one audit row with the counts.
 */
describe("rosterd district erase", () => {
  let client: pg.Client
  let other: pg.Client
  const cli = cliFixture({ secretsKey: true })
  const work = cli.work
  const secretsKey = cli.secretsKey!
  const ids = { g1: 0, g2: 0, s3Account: 0, club: 0, ownedByStudent: 0 }

  const q = async <A = Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) => (await client.query(text, [...params])).rows as Array<A>
  const n = async (text: string, params: ReadonlyArray<unknown> = []) => Number((await q<{ n: number }>(text, params))[0]!.n)
  const ok = async (args: ReadonlyArray<string>) => {
    const result = await rosterd(args, cli.env)
    expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: "" })
    return result
  }
  const refused = async (args: ReadonlyArray<string>, message: RegExp) => {
    const before = await everything()
    const result = await rosterd(args, cli.env)
    expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 1, stdout: "" })
    expect(result.stderr.trim()).toMatch(message)
    expect(await everything()).toEqual(before)
  }

  const baseTables = async () =>
    (await q<{ name: string }>(`SELECT c.relname AS name FROM pg_class c WHERE c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace ORDER BY 1`))
      .map((r) => r.name)
  const districtTables = async () =>
    (await q<{ name: string }>(`SELECT c.relname AS name FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE a.attname = 'district_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace ORDER BY 1`))
      .map((r) => r.name)
  const digest = async (from: string, params: ReadonlyArray<unknown> = []) =>
    (await q<{ d: string }>(`SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS d FROM ${from}`, params))[0]!.d
  /** Every row of every table. */
  const everything = async () => {
    const out: Record<string, string> = {}
    for (const table of await baseTables()) out[table] = await digest(`${table} t`)
    return out
  }
  /** Beta's own rows: every table with a district column, and what hangs off its users. */
  const beta = async () => {
    const out: Record<string, string> = {}
    for (const table of await districtTables()) out[table] = await digest(`${table} t WHERE t.district_id = 'beta'`)
    const users = `SELECT id FROM users WHERE district_id = 'beta'`
    const accounts = `SELECT account_id FROM account_links WHERE user_id IN (${users})`
    out.links = await digest(`account_links t WHERE t.user_id IN (${users})`)
    out.accounts = await digest(`accounts t WHERE t.id IN (${accounts})`)
    out.emails = await digest(`account_emails t WHERE t.account_id IN (${accounts})`)
    out.tokens = await digest(`activation_tokens t WHERE t.user_id IN (${users})`)
    out.memberships = await digest(`enrollments t WHERE t.user_id IN (${users})`)
    return out
  }

  beforeAll(async () => {
    client = new pg.Client({ connectionString: cli.db.url })
    other = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
    await other.connect()
    const alpha = NodePath.join(work.dir, "alpha")
    const betaDir = NodePath.join(work.dir, "beta")
    writeSmallDistrict(alpha, "erase-a.example")
    // Alpha's source IDs of its own (xat-1, xacls-1, …), so a search for them means something.
    for (const file of Fs.readdirSync(alpha).filter((f) => f.endsWith(".csv") && f !== "manifest.csv")) {
      const path = NodePath.join(alpha, file)
      Fs.writeFileSync(path, Fs.readFileSync(path, "utf8").replace(/\b(org|term|crs|cls|t|s|e)-(\w+)/g, "xa$1-$2"))
    }
    writeSmallDistrict(betaDir, "erase-b.example")
    const grassroots = async (externalId: string, ...emails: Array<readonly [string, string]>) => {
      const id = (await q<{ id: number }>(`INSERT INTO accounts (origin, external_id) VALUES ('grassroots', $1) RETURNING id::int`, [externalId]))[0]!.id
      for (const [email, by] of emails) await q(`INSERT INTO account_emails (account_id, email, email_key, added_by) VALUES ($1, $2, $2, $3)`, [id, email, by])
      return id
    }
    // Tess's own account, given her district address by an operator: she links by address.
    ids.g1 = await grassroots("g-1", ["tess.home@home.example", "import"], ["tess@erase-a.example", "operator"])
    ids.g2 = await grassroots("g-2", ["theo.home@home.example", "import"])
    const rules = NodePath.join(work.dir, "rules.yaml")
    Fs.writeFileSync(rules, "gate:\n  maxDeactivations: 1\n")
    await ok(["district", "add", "alpha", "--provider", "oneroster-csv", "--path", alpha, "--rules-file", rules])
    await ok(["district", "add", "beta", "--provider", "oneroster-csv", "--path", betaDir])
    await ok(["sync", "alpha"])
    await ok(["sync", "beta"])
    // Theo confirms into his own account (the district account is merged, the address moves).
    const [mail] = await q<{ key: string }>(`SELECT idempotency_key AS key FROM outbox WHERE recipient = 'theo@erase-a.example'`)
    await q(`SELECT * FROM rosterd_confirm_activation($1, $2)`, [await sealedTokenWith(client, secretsKey.key, mail!.key), ids.g2])
    // An admin invited and confirmed (a new account), and a partnership admin covering beta too.
    await ok(["admin", "invite", "alpha", "--name", "Ada Admin", "--email", "ada@erase-a.example", "--all-schools", "--permission", "view"])
    const [invitation] = await q<{ key: string }>(`SELECT idempotency_key AS key FROM outbox WHERE recipient = 'ada@erase-a.example'`)
    await q(`SELECT * FROM rosterd_confirm_admin($1)`, [await sealedTokenWith(client, secretsKey.key, invitation!.key)])
    await q(`INSERT INTO partnerships (id, name) VALUES ('p1', 'P1')`)
    await q(`INSERT INTO partnership_districts (district_id, partnership_id) VALUES ('alpha', 'p1'), ('beta', 'p1')`)
    await q(`INSERT INTO admins (district_id, name, email, email_key, permission, role, partnership_id, invited_by)
             VALUES ('alpha', 'Pat Partner', 'pat@erase-a.example', 'pat@erase-a.example', 'view', 'partnership', 'p1', 'operator:test')`)
    await q(`INSERT INTO pauses (district_id, from_date, until_date, created_by) VALUES ('alpha', '2031-01-01', '2031-01-02', 'test'), (NULL, '2031-02-01', '2031-02-02', 'test')`)
    for (const d of ["alpha", "beta"]) {
      await q(`INSERT INTO district_credentials (district_id, name, key_id, iv, ciphertext, auth_tag) VALUES ($1, 'token', 'k1', $2, $3, $4)`,
        [d, Buffer.alloc(12, 1), Buffer.from("sealed"), Buffer.alloc(16, 2)])
    }
    // Teacher-made classes: Tess's club with a student of each district; one owned by an alpha student's account.
    const user = async (district: string, source: string) => (await q<{ id: number }>(`SELECT id::int FROM users WHERE district_id = $1 AND source_id = $2`, [district, source]))[0]!.id
    ids.s3Account = (await q<{ id: number }>(`SELECT account_id::int AS id FROM account_links WHERE user_id = $1`, [await user("alpha", "xas-3")]))[0]!.id
    const manual = async (owner: number, title: string) =>
      (await q<{ id: number }>(`INSERT INTO classes (roster_source, title, owner_account_id) VALUES ('manual', $1, $2) RETURNING id::int`, [title, owner]))[0]!.id
    ids.club = await manual(ids.g1, "Club")
    ids.ownedByStudent = await manual(ids.s3Account, "Study group")
    for (const u of [await user("alpha", "xas-1"), await user("beta", "s-1")]) {
      await q(`INSERT INTO enrollments (class_id, user_id, roster_source, role) VALUES ($1, $2, 'manual', 'student')`, [ids.club, u])
    }
    // Two students leave: held by the gate (holds, held changes, run changes).
    writeCsv(alpha, "users", readRows(alpha, "users").filter((u) => u.sourcedId !== "xas-2" && u.sourcedId !== "xas-3"))
    writeCsv(alpha, "enrollments", readRows(alpha, "enrollments").filter((e) => e.userSourcedId !== "xas-2" && e.userSourcedId !== "xas-3"))
    expect(JSON.parse((await ok(["sync", "alpha", "--json"])).stdout).status).toBe("held")
  }, 300_000)
  afterAll(async () => {
    await Promise.all([client?.end(), other?.end()])
  })

  it("refuses without the id confirmed, with a cross-district admin, under a running sync, or on an unknown table, changing nothing", async () => {
    await refused(["district", "erase", "alpha"], /^rosterd: erasing alpha cannot be undone: confirm with --confirm alpha .*nothing was erased$/)
    await refused(["district", "erase", "alpha", "--confirm", "beta"], /^rosterd: erasing alpha cannot be undone: confirm with --confirm alpha/)
    await refused(["district", "erase", "alpha", "--confirm", "alpha"], /^rosterd: administrators \d+ were invited in alpha and also cover other districts .*nothing was erased$/)
    await q(`UPDATE admins SET state = 'removed', removed_at = now(), removed_by = 'operator:test' WHERE name = 'Pat Partner'`)

    // A sync of alpha holds the lease (a session lock, as DistrictLease takes it).
    await other.query(`SELECT pg_advisory_lock(${0x524f5354}, hashtext('alpha'))`)
    await refused(["district", "erase", "alpha", "--confirm", "alpha"], /^rosterd: a sync of alpha is running .*nothing was erased$/)
    await other.query(`SELECT pg_advisory_unlock(${0x524f5354}, hashtext('alpha'))`)

    // Data of the district in a table erase does not know: all of it is rolled back. (A later
    // migration's table: the owner role creates it, the app role gets its rights by default.)
    const owner = new pg.Client({ connectionString: cli.db.ownerUrl })
    await owner.connect()
    await owner.query(`CREATE TABLE extra_notes (district_id text, note text)`)
    await q(`INSERT INTO extra_notes VALUES ('alpha', 'kept by a future feature')`)
    await refused(["district", "erase", "alpha", "--confirm", "alpha"], /^rosterd: rows of alpha remain in extra_notes, which erase does not know: nothing was erased$/)
    await owner.query(`DROP TABLE extra_notes`)
    await owner.end()
  }, 180_000)

  it("erases every row of the district, keeps the people's own accounts unlinked, leaves the other district as it was", async () => {
    const alphaUsers = (await q<{ id: number }>(`SELECT id::int FROM users WHERE district_id = 'alpha'`)).map((r) => r.id)
    const alphaClasses = (await q<{ id: number }>(`SELECT id::int FROM classes WHERE district_id = 'alpha'`)).map((r) => r.id)
    // What the erase must find (a CSV district keeps no sync cursor: Clever's are in the same list).
    for (const table of ["holds", "held_changes", "run_changes", "outbox", "pauses", "admins", "admin_tokens", "partnership_districts", "district_credentials"]) {
      const where = table === "held_changes" ? `run_id IN (SELECT run_id FROM holds WHERE district_id = 'alpha')`
        : table === "admin_tokens" ? `admin_id IN (SELECT id FROM admins WHERE district_id = 'alpha')` : `district_id = 'alpha'`
      expect({ table, some: (await n(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`)) > 0 }).toEqual({ table, some: true })
    }
    const betaBefore = await beta()

    const erased = await ok(["district", "erase", "alpha", "--confirm", "alpha", "--by", "dpo", "--reason", "contract ended"])
    expect(erased.stdout).toMatch(/^erased district alpha: \d+ rows removed$/m)
    expect(erased.stdout).toMatch(/^users\s+5$/m)
    expect(erased.stdout).toContain("3 accounts of people beyond the district (unlinked from it)")
    expect(erased.stdout).not.toMatch(/@|Tess|xat-/)

    // No row of alpha in any table with a district column, but the kept ones.
    for (const table of await districtTables()) {
      const left = await n(`SELECT count(*)::int AS n FROM ${table} WHERE district_id = 'alpha'`)
      expect({ table, left: table === "audit_log" || table === "sync_runs" ? 0 : left }).toEqual({ table, left: 0 })
    }
    expect(await q(`SELECT DISTINCT error, notes, source_description FROM sync_runs WHERE district_id = 'alpha'`)).toEqual([{ error: null, notes: null, source_description: null }])
    expect(await q(`SELECT name, settings, rules, removed_at IS NOT NULL AS removed, erased_at IS NOT NULL AS erased FROM districts WHERE id = 'alpha'`))
      .toEqual([{ name: "alpha", settings: {}, rules: {}, removed: true, erased: true }])
    // Nothing refers to its users or classes (every foreign key to them).
    const keys = await q<{ table: string; column: string; target: string }>(`
      SELECT c.conrelid::regclass::text AS table, a.attname AS column, c.confrelid::regclass::text AS target
      FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
      WHERE c.contype = 'f' AND c.confrelid IN ('users'::regclass, 'classes'::regclass)`)
    expect(keys.length).toBeGreaterThanOrEqual(6)
    for (const key of keys) {
      const wanted = key.target === "users" ? alphaUsers : alphaClasses
      expect({ ...key, n: await n(`SELECT count(*)::int AS n FROM ${key.table} WHERE ${key.column} = ANY ($1)`, [wanted]) }).toEqual({ ...key, n: 0 })
    }
    // Nothing of its domain anywhere (the audit log included), nor its source IDs.
    for (const table of await baseTables()) {
      expect({ table, n: await n(`SELECT count(*)::int AS n FROM ${table} t WHERE t::text LIKE '%erase-a.example%'`) }).toEqual({ table, n: 0 })
      if (table === "audit_log") continue
      expect({ table, n: await n(`SELECT count(*)::int AS n FROM ${table} t WHERE t::text ~ 'xa(org|term|crs|cls|t|s|e)-'`) }).toEqual({ table, n: 0 })
    }
    expect(await beta()).toEqual(betaBefore)

    // The people's own accounts: kept, unlinked, with their own addresses only.
    const account = async (id: number) => ({
      exists: await n(`SELECT count(*)::int AS n FROM accounts WHERE id = $1 AND district_id IS NULL`, [id]),
      links: await n(`SELECT count(*)::int AS n FROM account_links WHERE account_id = $1`, [id]),
      emails: (await q<{ email: string }>(`SELECT email FROM account_emails WHERE account_id = $1 ORDER BY 1`, [id])).map((r) => r.email)
    })
    expect(await account(ids.g1)).toEqual({ exists: 1, links: 0, emails: ["tess.home@home.example"] })
    expect(await account(ids.g2)).toEqual({ exists: 1, links: 0, emails: ["theo.home@home.example"] })
    expect(await account(ids.s3Account)).toEqual({ exists: 1, links: 0, emails: [] })
    expect(await q(`SELECT id::int, title FROM classes WHERE id = ANY ($1) ORDER BY id`, [[ids.club, ids.ownedByStudent]]))
      .toEqual([{ id: ids.club, title: "Club" }, { id: ids.ownedByStudent, title: "Study group" }])
    expect(await n(`SELECT count(*)::int AS n FROM enrollments WHERE class_id = $1`, [ids.club])).toBe(1) // beta's student
    expect(await n(`SELECT count(*)::int AS n FROM pauses WHERE district_id IS NULL`)).toBe(1)

    const audit = await q<{ actor: string; reason: string; details: { removed: Record<string, number>; accountsKept: number; runsKept: number } }>(
      `SELECT actor, reason, details FROM audit_log WHERE action = 'district.erase' AND district_id = 'alpha'`)
    expect(audit).toHaveLength(1)
    expect(audit[0]).toMatchObject({ actor: "dpo", reason: "contract ended", details: { accountsKept: 3, runsKept: 2 } })
    expect(audit[0]!.details.removed).toMatchObject({
      users: 5, classes: 2, enrollments: 5, schools: 2, terms: 1, courses: 1, account_links: 5, account_emails: 6,
      accounts: 4, enrollments_in_teacher_made_classes: 1, admins: 2, pauses: 1, district_credentials: 1, partnership_districts: 1, holds: 1
    })

    // Gone from the CLI: not listed, not synced.
    expect((await ok(["district", "list"])).stdout).not.toMatch(/^alpha /m)
    const sync = await rosterd(["sync", "alpha"], cli.env)
    expect(sync.code).toBe(1)
  }, 240_000)

  it("the sync still cannot delete rostered rows, and erase's writer can only delete", async () => {
    const attempt = async (writer: string, statement: string) => {
      await client.query("BEGIN")
      try {
        await client.query(`SELECT set_config('rosterd.writer', $1, true)`, [writer])
        await client.query(statement)
        return "done"
      } catch (error) {
        return `${(error as { code?: string }).code}: ${(error as Error).message.split(":")[0]}`
      } finally {
        await client.query("ROLLBACK")
      }
    }
    for (const table of ["enrollments", "users", "classes"]) {
      expect(await attempt("sync", `DELETE FROM ${table} WHERE district_id = 'beta'`)).toBe("RSLCK: rosterd rule rostered_never_deleted")
    }
    expect(await attempt("sync", `DELETE FROM account_links`)).toBe("RSLCK: rosterd rule permanent_link")
    expect(await attempt("erase", `UPDATE users SET given_name = 'X' WHERE district_id = 'beta'`)).toBe("RSLCK: rosterd rule synced_user_name")
    expect(await attempt("erase", `UPDATE classes SET title = 'X' WHERE district_id = 'beta'`)).toBe("RSLCK: rosterd rule synced_class_name")
    expect(await attempt("erase", `DELETE FROM enrollments WHERE district_id = 'beta'`)).toBe("done")
  })
})
