import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { afterAll } from "vitest"
import { DistrictErase } from "../../src/Districts/Erase.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { SpoolMailerLive } from "../../src/Mail/Mailer.ts"
import { Outbox } from "../../src/Mail/Outbox.ts"
import { Retention } from "../../src/Mail/Retention.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { syncTestLayer, testDataDir } from "../support/Layers.ts"

/**
 * Retention (src/Mail/Retention.ts) against a real Postgres and a real spool: what is older
 * than its period goes (rows back-dated, files' times moved back), what is not — pending
 * messages, recent ones, undecided holds, other files — stays; two replicas pruning at once
 * do no harm; and `district erase` takes the district's spooled mail with it, only its.
 */

const work = tempDir("rosterd-retention-")
afterAll(() => work.remove())
const spoolDir = NodePath.join(work.dir, "spool")

const settings = new Map([
  ...testDataDir,
  ["rosterd.mail.spoolDir", spoolDir],
  ["rosterd.mail.retentionDays", "30"],
  ["rosterd.changes.retentionDays", "90"],
  ["rosterd.csv.settleSeconds", "0"]
])

const TestLayer = Layer.mergeAll(Retention.Default, DistrictErase.Default, Outbox.Default.pipe(Layer.provide(SpoolMailerLive))).pipe(
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(settings))),
  Layer.provideMerge(syncTestLayer(settings))
)

const DAY_MS = 24 * 3600 * 1000

const insert = (key: string, state: string, district: string | null = null) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly id: number }>`
      INSERT INTO outbox (district_id, idempotency_key, kind, recipient, subject, body_text, state)
      VALUES (${district}, ${key}, 'pause_notice', ${`${key}@example.org`}, 'Subject', 'Body', ${state})
      RETURNING id`.pipe(Effect.map((rows) => Number(rows[0]!.id))))

/** Moves a message's end (or, for a pending one, its creation) back by `days`. */
const backdate = (id: number, days: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`UPDATE outbox SET finished_at = finished_at - make_interval(days => ${days}), created_at = created_at - make_interval(days => ${days})
        WHERE id = ${id}`)

const ids = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ readonly id: number }>`SELECT id FROM outbox ORDER BY id`.pipe(Effect.map((rows) => rows.map((r) => Number(r.id)))))

const spooled = () => (Fs.existsSync(spoolDir) ? Fs.readdirSync(spoolDir).sort() : [])

const agedFile = (name: string, days: number) => {
  const file = NodePath.join(spoolDir, name)
  const when = new Date(Date.now() - days * DAY_MS)
  Fs.utimesSync(file, when, when)
}

const reset = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DELETE FROM outbox`
  Fs.rmSync(spoolDir, { recursive: true, force: true })
})

layer(TestLayer, { timeout: "120 seconds", excludeTestServices: true })("retention", (it) => {
  it.effect("messages: sent, cancelled and failed ones older than retentionDays are deleted; pending and recent ones stay", () =>
    Effect.gen(function*() {
      yield* reset
      const retention = yield* Retention
      const oldSent = yield* insert("old-sent", "sent")
      const oldCancelled = yield* insert("old-cancelled", "cancelled")
      const oldFailed = yield* insert("old-failed", "failed")
      const oldPending = yield* insert("old-pending", "pending")
      const recentSent = yield* insert("recent-sent", "sent")
      const recentFailed = yield* insert("recent-failed", "failed")
      for (const id of [oldSent, oldCancelled, oldFailed, oldPending]) yield* backdate(id, 31)
      for (const id of [recentSent, recentFailed]) yield* backdate(id, 29)

      const counts = yield* retention.prune()
      assert.strictEqual(counts.messages, 3)
      assert.deepStrictEqual(yield* ids, [oldPending, recentSent, recentFailed])
      // Nothing more the next time: a pass deletes each row once.
      assert.strictEqual((yield* retention.prune()).messages, 0)
    }))

  it.effect("a message that leaves pending gets its finished_at then (the retention counts from it), and loses it when retried", () =>
    Effect.gen(function*() {
      yield* reset
      const sql = yield* SqlClient.SqlClient
      const outbox = yield* Outbox
      const id = yield* insert("finish", "pending")
      const before = yield* sql<{ readonly finishedAt: Date | null }>`SELECT finished_at FROM outbox WHERE id = ${id}`
      assert.isNull(before[0]!.finishedAt)
      yield* sql`UPDATE outbox SET state = 'failed' WHERE id = ${id}`
      const failed = yield* sql<{ readonly finishedAt: Date | null }>`SELECT finished_at FROM outbox WHERE id = ${id}`
      assert.isNotNull(failed[0]!.finishedAt)
      yield* outbox.retry(id)
      const retried = yield* sql<{ readonly finishedAt: Date | null }>`SELECT finished_at FROM outbox WHERE id = ${id}`
      assert.isNull(retried[0]!.finishedAt)
    }))

  it.effect("the spool: .eml files written more than retentionDays ago are removed; newer ones and other files stay", () =>
    Effect.gen(function*() {
      yield* reset
      const retention = yield* Retention
      const outbox = yield* Outbox
      const a = yield* insert("spool-a", "pending")
      const b = yield* insert("spool-b", "pending")
      const c = yield* insert("spool-c", "pending")
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 3, failed: 0, retried: 0 })
      Fs.writeFileSync(NodePath.join(spoolDir, "README.txt"), "an operator's note\n")
      agedFile(`outbox-${a}.eml`, 31)
      agedFile(`outbox-${b}.eml`, 29)
      agedFile("README.txt", 400)

      const counts = yield* retention.prune()
      assert.strictEqual(counts.spoolFiles, 1)
      assert.deepStrictEqual(spooled(), ["README.txt", `outbox-${b}.eml`, `outbox-${c}.eml`].sort())
    }))

  it.effect("held changes: the new values of holds decided more than changes.retentionDays ago are cleared; pending holds and the rest of each row stay", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const retention = yield* Retention
      yield* sql`INSERT INTO districts (id, name, provider) VALUES ('held', 'Held', 'oneroster-csv')`
      const run = (n: number) =>
        sql<{ readonly id: number }>`
          INSERT INTO sync_runs (district_id, mode, status, trigger, host, pid) VALUES ('held', 'full', 'held', ${`test-${n}`}, 'test', 1)
          RETURNING id`.pipe(Effect.map((rows) => Number(rows[0]!.id)))
      const holds = [
        { state: "approved", decidedDaysAgo: 91 },
        { state: "rejected", decidedDaysAgo: 89 },
        { state: "superseded", decidedDaysAgo: 120 },
        { state: "pending", decidedDaysAgo: null }
      ]
      const runs: Array<number> = []
      for (const [n, hold] of holds.entries()) {
        const runId = yield* run(n)
        runs.push(runId)
        yield* sql`
          INSERT INTO holds (run_id, district_id, state, tripped, decided_at, created_at)
          VALUES (${runId}, 'held', ${hold.state}, '[]'::jsonb,
                  CASE WHEN ${hold.decidedDaysAgo}::int IS NULL THEN NULL ELSE now() - make_interval(days => ${hold.decidedDaysAgo}::int) END,
                  now() - interval '400 days')`
        yield* sql`
          INSERT INTO held_changes (run_id, kind, action, live_id, source_id, rule, fields, new_values)
          VALUES (${runId}, 'users', 'update', ${n + 1}, ${`u-${n}`}, 'update_percent', '{family_name}',
                  ${JSON.stringify({ given_name: "Pat", family_name: `Person${n}`, email: `pat${n}@example.org` })}::jsonb)`
      }

      const counts = yield* retention.prune()
      assert.strictEqual(counts.heldValues, 2)
      const rows = yield* sql<{ readonly runId: number; readonly sourceId: string; readonly fields: Array<string>; readonly cleared: boolean }>`
        SELECT run_id, source_id, fields, new_values IS NULL AS cleared FROM held_changes WHERE run_id = ANY (${runs}::bigint[]) ORDER BY run_id`
      assert.deepStrictEqual(rows.map((r) => [r.sourceId, r.fields, r.cleared]), [
        ["u-0", ["family_name"], true], // approved 91 days ago
        ["u-1", ["family_name"], false], // rejected 89 days ago
        ["u-2", ["family_name"], true], // superseded 120 days ago
        ["u-3", ["family_name"], false] // pending: an approval still needs them
      ])
      // The decided holds themselves stay (what was held, who decided): only the values go.
      const [kept] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM holds WHERE run_id = ANY (${runs}::bigint[])`
      assert.strictEqual(kept!.n, 4)
    }))

  it.effect("two replicas pruning at once delete each row once, neither fails", () =>
    Effect.gen(function*() {
      yield* reset
      const retention = yield* Retention
      for (let n = 0; n < 40; n++) yield* Effect.flatMap(insert(`twice-${n}`, "sent"), (id) => backdate(id, 60))
      const [one, two] = yield* Effect.all([retention.prune(), retention.prune()], { concurrency: 2 })
      assert.strictEqual(one.messages + two.messages, 40)
      assert.deepStrictEqual(yield* ids, [])
    }))

  it.effect("district erase removes the district's spooled mail from the spool, and no other district's", () =>
    Effect.gen(function*() {
      yield* reset
      const store = yield* RosterStore
      const sync = yield* Sync
      const outbox = yield* Outbox
      const sql = yield* SqlClient.SqlClient
      for (const id of ["gone", "stays"]) {
        const dir = NodePath.join(work.dir, id)
        writeSmallDistrict(dir, `${id}.example`)
        yield* store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "UTC", settings: { path: dir } })
        assert.strictEqual((yield* sync.run(id, { request: "full", trigger: "test" })).status, "succeeded")
      }
      assert.deepStrictEqual(yield* outbox.deliverDue(), { sent: 4, failed: 0, retried: 0 })
      const byDistrict = yield* sql<{ readonly id: number; readonly districtId: string }>`SELECT id, district_id FROM outbox ORDER BY id`
      const files = (district: string) => byDistrict.filter((r) => r.districtId === district).map((r) => `outbox-${r.id}.eml`)
      assert.deepStrictEqual(spooled(), [...files("gone"), ...files("stays")].sort())

      const erased = yield* Effect.flatMap(DistrictErase, (eraser) => eraser.erase("gone", { by: "test", reason: null }))
      assert.strictEqual(erased.spoolFilesRemoved, 2)
      assert.deepStrictEqual(spooled(), files("stays").sort())
    }))
})
