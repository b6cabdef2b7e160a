import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer, Redacted } from "effect"
import pg from "pg"
import { Classes } from "../../src/Classes/Classes.ts"
import { DistrictErase } from "../../src/Districts/Erase.ts"
import { pgClientLayer } from "../../src/Store/Sql.ts"
import { TestDatabaseUrl } from "../support/Database.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { PROVIDERS, rosteredUser, serveEachProvider } from "./providers.ts"
import { AccountsTestLayer } from "./support.ts"

/**
 * Teacher-made classes hold students who are not rostered in the district (a platform's
 * Basic or Portfolio student): a membership names the account. Through real syncs in each
 * provider: district-synced classes stay locked for such members too (the triggers refuse,
 * as the app and as the platform's role), teacher-made ones take them — by rosterd's Classes
 * and by the platform with its own role and SQL. Memberships keep periods; deleting the
 * class takes them; erasing a district keeps an account that is a member beyond it.
 */

/** The Classes service on the platform's own connection, as the platform would run the same statements. */
class PlatformClasses extends Context.Tag("test/PlatformClasses")<PlatformClasses, Classes>() {}
const PlatformClassesLive = Layer.effect(PlatformClasses, Classes).pipe(
  Layer.provide(Classes.Default),
  Layer.provide(Layer.unwrapEffect(Effect.map(TestDatabaseUrl, (db) => pgClientLayer({ url: Redacted.make(db.platformUrl) }))))
)

const TestLayer = Layer.mergeAll(Classes.Default, DistrictErase.Default, PlatformClassesLive).pipe(Layer.provideMerge(AccountsTestLayer))

const account = (externalId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ readonly id: number }>`
      INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', ${externalId}, 'active') RETURNING id::int`, (rows) => rows[0]!.id))

const memberships = (classId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly userId: number | null; readonly accountId: number | null; readonly rosterSource: string; readonly role: string; readonly districtId: string | null; readonly open: boolean }>`
      SELECT user_id::int, account_id::int, roster_source, role, district_id, ended_at IS NULL AS open
      FROM enrollments WHERE class_id = ${classId} ORDER BY id`)

const classOf = (districtId: string, sourceId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ readonly id: number }>`SELECT id::int FROM classes WHERE district_id = ${districtId} AND source_id = ${sourceId}`, (rows) => rows[0]!.id))

layer(TestLayer, { timeout: "180 seconds", excludeTestServices: true })("non-district students in teacher-made classes", (it) => {
  const work = tempDir("rosterd-nondistrict-")

  it.scoped("in each provider: a teacher-made class takes a platform account; a synced class refuses it, from rosterd and from the platform", () =>
    Effect.gen(function*() {
      const classes = yield* Classes
      const platformClasses = yield* PlatformClasses
      const db = yield* TestDatabaseUrl
      const served = yield* serveEachProvider(work.dir, "nd", writeSmallDistrict)
      const portfolio = yield* account("g-portfolio")
      const basic = yield* account("g-basic")
      for (const provider of PROVIDERS) {
        const d = served[provider]
        const tess = yield* rosteredUser(d, "t-1")
        const sam = yield* rosteredUser(d, "s-1")
        const club = yield* classes.create(tess.accountId!, `Chess club (${provider})`)

        assert.strictEqual(yield* classes.addStudent(club, { accountId: portfolio }), "added")
        assert.strictEqual(yield* classes.addStudent(club, { accountId: portfolio }), "already a member")
        assert.strictEqual(yield* classes.addStudent(club, sam.id), "added")
        // The platform, as its own role, does the same.
        assert.strictEqual(yield* platformClasses.addStudent(club, { accountId: basic }), "added")
        yield* platformClasses.removeMember(club, { accountId: basic }, "student")
        assert.strictEqual(yield* platformClasses.addStudent(club, { accountId: basic }), "added")
        assert.deepStrictEqual((yield* memberships(club)).map((m) => [m.userId, m.accountId, m.rosterSource, m.role, m.districtId, m.open]), [
          [null, portfolio, "manual", "student", null, true],
          [sam.id, null, "manual", "student", null, true],
          [null, basic, "manual", "student", null, false],
          [null, basic, "manual", "student", null, true]
        ])

        // The district's class stays the district's.
        const synced = yield* classOf(d.districtId, d.classSourceId("cls-1"))
        const before = yield* memberships(synced)
        for (const service of [classes, platformClasses]) {
          const refused = yield* Effect.flip(service.addStudent(synced, { accountId: portfolio }))
          assert.deepInclude(refused, { _tag: "Refused", rule: "synced_class_members" }, provider)
        }
        // Raw SQL as the platform, with the sync's setting: its role is not rosterd's.
        const client = new pg.Client({ connectionString: db.platformUrl })
        yield* Effect.promise(() => client.connect())
        const raw = yield* Effect.promise(async () => {
          try {
            await client.query("BEGIN")
            await client.query(`SELECT set_config('rosterd.writer', 'sync', true)`)
            await client.query(`INSERT INTO enrollments (class_id, account_id, roster_source, role) VALUES ($1, $2, 'manual', 'student')`, [synced, portfolio])
            return "inserted"
          } catch (error) {
            return (error as { message: string }).message
          } finally {
            await client.query("ROLLBACK").catch(() => undefined)
            await client.end()
          }
        })
        assert.match(raw, /rosterd rule writer_role/)
        assert.deepStrictEqual(yield* memberships(synced), before)
      }
    }))

  it.effect("what a membership of an account may be: a student's, in a teacher-made class, one of the two; merged and unknown accounts refused", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const classes = yield* Classes
      const owner = yield* account("g-owner")
      const kid = yield* account("g-kid")
      const club = yield* classes.create(owner, "Art club")
      const state = (statement: Effect.Effect<unknown, unknown>) =>
        Effect.map(Effect.flip(statement), (e) => ((e as { cause?: { code?: string } }).cause?.code ?? "none"))
      assert.strictEqual(yield* state(sql`INSERT INTO enrollments (class_id, account_id, roster_source, role) VALUES (${club}, ${kid}, 'manual', 'teacher')`), "23514")
      const [someone] = yield* sql<{ readonly id: number }>`SELECT id::int FROM users LIMIT 1`
      assert.strictEqual(
        yield* state(sql`INSERT INTO enrollments (class_id, user_id, account_id, roster_source, role) VALUES (${club}, ${someone!.id}, ${kid}, 'manual', 'student')`),
        "23514"
      )
      assert.strictEqual(yield* state(sql`INSERT INTO enrollments (class_id, roster_source, role) VALUES (${club}, 'manual', 'student')`), "23514")

      const [merged] = yield* sql<{ readonly id: number }>`
        INSERT INTO accounts (origin, state, merged_into) VALUES ('district', 'merged', ${kid}) RETURNING id::int`
      assert.strictEqual((yield* Effect.flip(classes.addStudent(club, { accountId: merged!.id })))._tag, "AccountMerged")
      assert.strictEqual((yield* Effect.flip(classes.addStudent(club, { accountId: 999_999 })))._tag, "AccountNotFound")
      const notIn = yield* Effect.flip(classes.removeMember(club, { accountId: kid }, "student"))
      assert.strictEqual(notIn.message, `account ${kid} has no open student enrollment in class ${club}`)

      yield* classes.addStudent(club, { accountId: kid })
      yield* classes.remove(club)
      assert.deepStrictEqual(yield* memberships(club), [])
    }))

  it.effect("erasing a district keeps its account that is a member of a teacher-made class beyond it (the membership stays)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const classes = yield* Classes
      const erase = yield* DistrictErase
      const d = { provider: "oneroster-csv" as const, districtId: "nd-oneroster-csv", domain: "", dir: "", userSourceId: (id: string) => id, classSourceId: (id: string) => id }
      const sol = yield* rosteredUser(d, "s-3")
      const coach = yield* account("g-coach")
      const club = yield* classes.create(coach, "Summer camp")
      yield* classes.addStudent(club, { accountId: sol.accountId! })
      yield* erase.erase(d.districtId, { by: "ops", reason: null })
      const [kept] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM accounts WHERE id = ${sol.accountId!}`
      assert.strictEqual(kept!.n, 1)
      assert.deepStrictEqual((yield* memberships(club)).map((m) => [m.accountId, m.open]), [[sol.accountId, true]])
    }))
})
