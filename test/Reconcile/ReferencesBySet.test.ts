import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Ref } from "effect"
import pg from "pg"
import type { DistrictId } from "../../src/Domain/District.ts"
import { DanglingReferences, membershipsOutsideDistrict, writeReferencesBySet } from "../../src/Reconcile/ReferencesBySet.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { asOwner, TestDatabaseUrl } from "../support/Database.ts"
import { readRows, tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer, syncTestLayer } from "../support/Layers.ts"

/**
 * The sync's bulk inserts check their foreign keys as a set, with Postgres' per-row
 * triggers off (src/Reconcile/ReferencesBySet.ts). A row trigger of the test's own counts
 * the rows that passed through the triggers: none when the sync writes as a set, every one
 * when `rosterd.sync.referencesBySet` is off. A membership of another district's class
 * fails before anything is written, and the platform's role may not turn the triggers off.
 */

const small = tempDir()
writeSmallDistrict(small.dir, "references.example")
const ENROLLMENTS = readRows(small.dir, "enrollments").length
const USERS = readRows(small.dir, "users").length

/** A row trigger on enrollments, users and account links (the owner's: it counts whoever writes). */
const countRows = asOwner(`
  CREATE TABLE trigger_rows (tbl text NOT NULL);
  CREATE FUNCTION count_trigger_row() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
    BEGIN INSERT INTO trigger_rows VALUES (TG_TABLE_NAME); RETURN NULL; END $$;
  CREATE TRIGGER count_rows AFTER INSERT ON enrollments FOR EACH ROW EXECUTE FUNCTION count_trigger_row();
  CREATE TRIGGER count_rows AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION count_trigger_row();
  CREATE TRIGGER count_rows AFTER INSERT ON account_links FOR EACH ROW EXECUTE FUNCTION count_trigger_row();
  GRANT SELECT ON trigger_rows TO PUBLIC`)

const syncSmall = (id: string) =>
  Effect.gen(function*() {
    const store = yield* RosterStore
    yield* store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path: small.dir } })
    return yield* Effect.flatMap(Sync, (sync) => sync.run(id, { request: "full", trigger: "test" }))
  })

/** The district's links, as stored. */
const links = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM account_links l JOIN users u ON u.id = l.user_id WHERE u.district_id = ${district}`,
      ([row]) => row?.n ?? 0
    ))

const triggerRows = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly tbl: string; readonly n: number }>`SELECT tbl, count(*)::int AS n FROM trigger_rows GROUP BY tbl ORDER BY tbl`
  return Object.fromEntries(rows.map((r) => [r.tbl, r.n]))
})

/** Open memberships whose class or user is missing or another district's (what the keys and the set check rule out). */
const strays = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ readonly n: number }>`
    SELECT count(*)::int AS n FROM enrollments e
    WHERE e.district_id IS NOT NULL AND (
      NOT EXISTS (SELECT 1 FROM classes c WHERE c.id = e.class_id AND c.district_id = e.district_id)
      OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = e.user_id AND u.district_id = e.district_id))`
  return row?.n ?? -1
})

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("references checked as a set", (it) => {
  it.effect("a first sync writes its users, memberships and account links past the per-row triggers, and every reference holds", () =>
    Effect.gen(function*() {
      yield* countRows
      const summary = yield* syncSmall("refs-set")
      assert.strictEqual(summary.status, "succeeded")
      assert.strictEqual(summary.counts.enrollments.created, ENROLLMENTS)
      assert.strictEqual(summary.counts.users.created, USERS)
      assert.isAbove(yield* links("refs-set"), 0)
      assert.deepStrictEqual(yield* triggerRows, {})
      assert.strictEqual(yield* strays, 0)
      // The triggers are back on after the writes: a row written later in the same session passes through them.
      const sql = yield* SqlClient.SqlClient
      const [mode] = yield* sql<{ readonly mode: string }>`SELECT current_setting('session_replication_role') AS mode`
      assert.strictEqual(mode?.mode, "origin")
    }))

  it.effect("memberships of another district's class fail before anything is written", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const store = yield* RosterStore
      yield* store.addDistrict({ id: "refs-other" as DistrictId, name: "other", provider: "oneroster-csv", timezone: "America/Chicago", settings: { path: small.dir } })
      const written = yield* Ref.make(false)
      // A plan of one membership, a class and a user of district refs-set, written for `district`.
      const writeOne = (district: string) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql.unsafe(`CREATE TEMP TABLE plan_one ON COMMIT DROP AS
            SELECT 'create'::text AS action, c.id AS class_id, u.id AS user_id
            FROM classes c, users u WHERE c.district_id = 'refs-set' AND u.district_id = 'refs-set' LIMIT 1`)
          return yield* writeReferencesBySet({
            bySet: true,
            table: "enrollments",
            districtId: district,
            dangling: membershipsOutsideDistrict("plan_one"),
            write: Effect.as(Ref.set(written, true), "written")
          })
        }))
      const exit = yield* Effect.exit(writeOne("refs-other"))
      const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.instanceOf(defect, DanglingReferences)
      assert.include((defect as DanglingReferences).message, "1 rows to write reference a class or user that is not the district's")
      assert.isFalse(yield* Ref.get(written))
      // The same plan for its own district passes.
      assert.strictEqual(yield* writeOne("refs-set"), "written")
      assert.isTrue(yield* Ref.get(written))
    }))

  it.effect("the app's role may turn the per-row triggers off; the platform's may not", () =>
    Effect.gen(function*() {
      const info = yield* TestDatabaseUrl
      const attempt = (url: string) =>
        Effect.promise(async () => {
          const client = new pg.Client({ connectionString: url })
          await client.connect()
          try {
            await client.query("BEGIN")
            await client.query("SET LOCAL session_replication_role = replica")
            return "allowed"
          } catch (error) {
            return String((error as Error).message)
          } finally {
            await client.query("ROLLBACK").catch(() => undefined)
            await client.end()
          }
        })
      assert.strictEqual(yield* attempt(info.url), "allowed")
      assert.match(yield* attempt(info.platformUrl), /permission denied to set parameter "session_replication_role"/)
    }))
})

layer(syncTestLayer(new Map([["rosterd.sync.referencesBySet", "false"]])), { timeout: "120 seconds", excludeTestServices: true })(
  "references checked row by row (rosterd.sync.referencesBySet: false)",
  (it) => {
    it.effect("every user, membership and link passes through the per-row triggers; the same rows are written", () =>
      Effect.gen(function*() {
        yield* countRows
        const summary = yield* syncSmall("refs-rows")
        assert.strictEqual(summary.status, "succeeded")
        assert.strictEqual(summary.counts.enrollments.created, ENROLLMENTS)
        assert.deepStrictEqual(yield* triggerRows, { account_links: yield* links("refs-rows"), enrollments: ENROLLMENTS, users: USERS })
        assert.strictEqual(yield* strays, 0)
      }))
  }
)
