import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * The locks on district-synced data, as operators and platforms meet them: each write the
 * rules forbid is refused through the CLI (exit 1, `refused:` and the rule) and as plain SQL
 * from another client (SQLSTATE RSLCK), and leaves the store exactly as it was; the same
 * writes on a teacher-made class all work.
 */
describe("locks on district-synced data", () => {
  let client: pg.Client
  const cli = cliFixture()
  const work = cli.work
  const districtDir = NodePath.join(work.dir, "small")
  const ids = { cls1: 0, cls2: 0, t1: 0, s1: 0, s3: 0, owner: 0 }

  const one = async <A>(text: string, params: ReadonlyArray<unknown> = []): Promise<A> => (await client.query(text, [...params])).rows[0] as A

  /** Every row of the tables a refused write could touch. */
  const store = async () => {
    const out: Record<string, string> = {}
    for (const table of ["classes", "enrollments", "users", "class_integrations", "accounts", "account_links"]) {
      out[table] = (await one<{ digest: string }>(`SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS digest FROM ${table} t`)).digest
    }
    return out
  }

  const sqlError = async (text: string, params: ReadonlyArray<unknown> = []) => {
    try {
      await client.query(text, [...params])
    } catch (error) {
      return error as { code?: string; message: string }
    }
    throw new Error(`not refused: ${text}`)
  }

  beforeAll(async () => {
    writeSmallDistrict(districtDir)
    expect((await rosterd(["district", "add", "small", "--provider", "oneroster-csv", "--path", districtDir], cli.env)).code).toBe(0)
    const sync = await rosterd(["sync", "small"], cli.env)
    expect(sync.stderr).toBe("")
    expect(sync.code).toBe(0)
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
    const id = async (table: string, sourceId: string) =>
      (await one<{ id: number }>(`SELECT id::int FROM ${table} WHERE district_id = 'small' AND source_id = $1`, [sourceId])).id
    ids.cls1 = await id("classes", "cls-1")
    ids.cls2 = await id("classes", "cls-2")
    ids.t1 = await id("users", "t-1")
    ids.s1 = await id("users", "s-1")
    ids.s3 = await id("users", "s-3")
    ids.owner = (await one<{ id: number }>(`INSERT INTO accounts (origin, external_id) VALUES ('grassroots', 'owner-1') RETURNING id::int`)).id
  })
  afterAll(async () => {
    await client?.end()
  })

  it("every forbidden write is refused through the CLI and as direct SQL, and changes nothing", async () => {
    const cases: ReadonlyArray<{ readonly rule: string; readonly cli: ReadonlyArray<string>; readonly sql: string; readonly params: ReadonlyArray<unknown> }> = [
      {
        rule: "synced_class_name",
        cli: ["class", "rename", String(ids.cls1), "Renamed in product"],
        sql: `UPDATE classes SET title = 'Renamed in product' WHERE id = $1`,
        params: [ids.cls1]
      },
      {
        rule: "synced_class_members",
        cli: ["class", "add-student", String(ids.cls1), String(ids.s3)],
        sql: `INSERT INTO enrollments (class_id, user_id, roster_source, role) VALUES ($1, $2, 'manual', 'student')`,
        params: [ids.cls1, ids.s3]
      },
      {
        rule: "synced_class_members",
        cli: ["class", "remove-student", String(ids.cls1), String(ids.s1)],
        sql: `UPDATE enrollments SET ended_at = now(), end_reason = 'removed_in_product' WHERE class_id = $1 AND user_id = $2 AND ended_at IS NULL`,
        params: [ids.cls1, ids.s1]
      },
      {
        rule: "district_teacher_removal",
        cli: ["class", "remove-teacher", String(ids.cls1), String(ids.t1)],
        sql: `UPDATE enrollments SET ended_at = now(), end_reason = 'removed_in_product' WHERE class_id = $1 AND user_id = $2 AND ended_at IS NULL`,
        params: [ids.cls1, ids.t1]
      },
      {
        rule: "synced_class_integration",
        cli: ["class", "attach-integration", String(ids.cls1), "google-classroom"],
        sql: `INSERT INTO class_integrations (class_id, integration) VALUES ($1, 'google-classroom')`,
        params: [ids.cls1]
      },
      {
        rule: "synced_user_name",
        cli: ["user", "rename", String(ids.s1), "--given-name", "Samantha", "--family-name", "Other"],
        sql: `UPDATE users SET given_name = 'Samantha', family_name = 'Other' WHERE id = $1`,
        params: [ids.s1]
      },
      {
        rule: "rostered_never_deleted",
        cli: ["class", "delete", String(ids.cls2)],
        sql: `DELETE FROM classes WHERE id = $1`,
        params: [ids.cls2]
      }
    ]
    const before = await store()
    for (const c of cases) {
      const result = await rosterd(c.cli, cli.env)
      expect({ cli: c.cli, code: result.code }).toEqual({ cli: c.cli, code: 1 })
      const lines = result.stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(new RegExp(`^rosterd: refused: rosterd rule ${c.rule}: `))
      expect(result.stdout).toBe("")

      const error = await sqlError(c.sql, c.params)
      expect({ sql: c.sql, code: error.code }).toEqual({ sql: c.sql, code: "RSLCK" })
      expect(error.message).toMatch(new RegExp(`^rosterd rule ${c.rule}: `))
    }
    expect(await store()).toEqual(before)
  }, 180_000)

  it("a teacher-made class is free: create, rename, add a synced student, remove, re-add, attach an integration, delete", async () => {
    const created = await rosterd(["class", "create", "--owner", String(ids.owner), "--title", "Homework club"], cli.env)
    expect(created.code).toBe(0)
    const classId = Number(/created teacher-made class (\d+)/.exec(created.stdout)?.[1])
    expect(classId).toBeGreaterThan(0)
    const cls = await one<{ rosterSource: string; districtId: string | null; sourceId: string | null; ownerAccountId: number }>(
      `SELECT roster_source AS "rosterSource", district_id AS "districtId", source_id AS "sourceId", owner_account_id::int AS "ownerAccountId"
       FROM classes WHERE id = $1`,
      [classId]
    )
    expect(cls).toEqual({ rosterSource: "manual", districtId: null, sourceId: null, ownerAccountId: ids.owner })

    const steps: ReadonlyArray<ReadonlyArray<string>> = [
      ["class", "rename", String(classId), "Homework club (spring)"],
      ["class", "add-student", String(classId), String(ids.s1)],
      ["class", "remove-student", String(classId), String(ids.s1)],
      ["class", "add-student", String(classId), String(ids.s1)],
      ["class", "attach-integration", String(classId), "google-classroom"]
    ]
    for (const step of steps) {
      const result = await rosterd(step, cli.env)
      expect({ step, code: result.code, stderr: result.stderr }).toEqual({ step, code: 0, stderr: "" })
    }
    expect((await one<{ title: string }>(`SELECT title FROM classes WHERE id = $1`, [classId])).title).toBe("Homework club (spring)")
    const periods = (await client.query(
      `SELECT roster_source, role, district_id, source_id, ended_at IS NOT NULL AS ended, end_reason
       FROM enrollments WHERE class_id = $1 AND user_id = $2 ORDER BY id`,
      [classId, ids.s1]
    )).rows
    expect(periods).toEqual([
      { roster_source: "manual", role: "student", district_id: null, source_id: null, ended: true, end_reason: "removed_in_product" },
      { roster_source: "manual", role: "student", district_id: null, source_id: null, ended: false, end_reason: null }
    ])
    // The synced student's district enrollment is untouched.
    expect((await one<{ n: number }>(`SELECT count(*)::int AS n FROM enrollments WHERE class_id = $1 AND user_id = $2 AND ended_at IS NULL`, [ids.cls1, ids.s1])).n).toBe(1)
    expect((await client.query(`SELECT integration FROM class_integrations WHERE class_id = $1`, [classId])).rows).toEqual([{ integration: "google-classroom" }])

    const deleted = await rosterd(["class", "delete", String(classId)], cli.env)
    expect(deleted.code).toBe(0)
    const left = await one<{ classes: number; enrollments: number; integrations: number }>(
      `SELECT (SELECT count(*)::int FROM classes WHERE id = $1) AS classes,
              (SELECT count(*)::int FROM enrollments WHERE class_id = $1) AS enrollments,
              (SELECT count(*)::int FROM class_integrations WHERE class_id = $1) AS integrations`,
      [classId]
    )
    expect(left).toEqual({ classes: 0, enrollments: 0, integrations: 0 })
  }, 180_000)
})
