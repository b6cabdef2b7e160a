import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { DistrictId } from "../../src/Domain/District.ts"
import { RunUndo } from "../../src/Districts/Undo.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { rosterFingerprint } from "../support/Database.ts"
import { generated, readRows, tempDir, writeCsv } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * Undo a run (src/Districts/Undo.ts) through real syncs of a generated district: a bad
 * source's full run (leavers, renames, newcomers) undone back to the roster before it; a
 * record changed again since is skipped and listed; a dry run writes nothing; unknown,
 * failed, expired and already undone runs are refused.
 */

type Row = Record<string, string>

/** The gate out of the way: the bad run must apply. */
const LOOSE = { gate: { maxDeactivatePercent: 100, maxDeactivations: 100000, maxUpdatePercent: 100, classMinSize: 1000 } }

const syncNow = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "full", trigger: "test", dryRun: false }))

const withDistrict = <A, E, R>(id: string, use: (dir: string, users: Array<Row>) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => tempDir(`rosterd-undo-${id}-`)),
    (tmp) =>
      Effect.gen(function*() {
        generated(tmp.dir, 120, id)
        const users = readRows(tmp.dir, "users").map((u) => ({ ...u, email: u["email"]!.replace("@", `.${id}@`) }))
        writeCsv(tmp.dir, "users", users)
        yield* Effect.flatMap(RosterStore, (store) =>
          store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "UTC", settings: { path: tmp.dir }, rules: LOOSE }))
        const first = yield* syncNow(id)
        assert.strictEqual(first.status, "succeeded")
        return yield* use(tmp.dir, users)
      }),
    (tmp) => Effect.sync(() => tmp.remove())
  )

/** What an undo must bring back: each user's state and values, and the open memberships. */
const snapshot = (district: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const users = yield* sql<{ readonly sourceId: string; readonly active: boolean; readonly familyName: string; readonly grades: ReadonlyArray<string> }>`
      SELECT source_id, active, family_name, grades FROM users WHERE district_id = ${district} ORDER BY source_id`
    const open = yield* sql<{ readonly pair: string }>`
      SELECT class_source_id || '/' || user_source_id AS pair FROM enrollments WHERE district_id = ${district} AND ended_at IS NULL ORDER BY 1`
    return { users: users.map((u) => ({ ...u })), open: open.map((o) => o.pair) }
  })

const newcomer = (n: number, id: string): Row => ({
  sourcedId: `usr-undo-${n}`, enabledUser: "true", orgSourcedIds: "org-000001", role: "student", givenName: "New", familyName: `Newcomer${n}`,
  email: `new${n}.${id}@undo.example`, grades: "07"
})

/** The bad source: 12 students gone (with their memberships), 15 renamed, 4 newcomers. */
const badSource = (dir: string, users: Array<Row>, id: string) => {
  const students = users.filter((u) => u["role"] === "student")
  const gone = new Set(students.slice(0, 12).map((u) => u["sourcedId"]!))
  const renamed = new Set(students.slice(20, 35).map((u) => u["sourcedId"]!))
  writeCsv(dir, "users", [
    ...users.filter((u) => !gone.has(u["sourcedId"]!)).map((u) => (renamed.has(u["sourcedId"]!) ? { ...u, familyName: "Garbled" } : u)),
    ...[1, 2, 3, 4].map((n) => newcomer(n, id))
  ])
  const enrollments = readRows(dir, "enrollments")
  writeCsv(dir, "enrollments", enrollments.filter((e) => !gone.has(e["userSourcedId"]!)))
  return { gone, renamed, restore: () => writeCsv(dir, "enrollments", enrollments) }
}

layer(Layer.mergeAll(SyncTestLayer, RunUndo.Default.pipe(Layer.provide(SyncTestLayer))), { timeout: "180 seconds", excludeTestServices: true })("undo a run", (it) => {
  it.effect("a bad source's full run is undone: newcomers deactivated, leavers back with their memberships, names restored; audited", () =>
    withDistrict("und1", (dir, users) =>
      Effect.gen(function*() {
        const before = yield* snapshot("und1")
        badSource(dir, users, "und1")
        const bad = yield* syncNow("und1")
        assert.strictEqual(bad.status, "succeeded")
        assert.deepInclude(bad.counts.users, { created: 4, updated: 15, deactivated: 12 })
        const undo = yield* RunUndo
        const outcome = yield* undo.undo(bad.runId, { by: "alice", reason: "the SIS export was broken" })
        const users_ = outcome.counts.find((c) => c.kind === "users")!
        assert.deepStrictEqual(users_, { kind: "users", deactivated: 4, reactivated: 12, restored: 15, stale: 0 })
        assert.deepStrictEqual(outcome.stale, [])
        const after = yield* snapshot("und1")
        // Everyone as before, and the newcomers deactivated (kept, never deleted).
        assert.deepStrictEqual(after.users.filter((u) => !u.sourceId.startsWith("usr-undo-")), before.users)
        assert.deepStrictEqual(after.users.filter((u) => u.sourceId.startsWith("usr-undo-")).map((u) => u.active), [false, false, false, false])
        assert.deepStrictEqual(after.open, before.open)
        const sql = yield* SqlClient.SqlClient
        const audit = yield* sql<{ readonly actor: string; readonly subject: string; readonly reason: string }>`
          SELECT actor, subject, reason FROM audit_log WHERE action = 'run.undo' AND district_id = 'und1'`
        assert.deepStrictEqual(audit.map((a) => [a.actor, a.subject, a.reason]), [["alice", `run ${bad.runId}`, "the SIS export was broken"]])
        // Once only.
        const again = yield* Effect.flip(undo.undo(bad.runId, { by: "alice" }))
        assert.strictEqual(again._tag, "RunNotUndoable")
        assert.match(again.message, /was undone by alice/)
      })))

  it.effect("a record changed again since the run is skipped and listed; the others are undone", () =>
    withDistrict("und2", (dir, users) =>
      Effect.gen(function*() {
        const before = yield* snapshot("und2")
        const { renamed } = badSource(dir, users, "und2")
        const bad = yield* syncNow("und2")
        // A later run renames two of the garbled students again: theirs is newer than the bad run.
        const later = [...renamed].slice(0, 2)
        const current = readRows(dir, "users")
        writeCsv(dir, "users", current.map((u) => (later.includes(u["sourcedId"]!) ? { ...u, familyName: "Corrected" } : u)))
        const next = yield* syncNow("und2")
        assert.strictEqual(next.counts.users.updated, 2)
        const outcome = yield* (yield* RunUndo).undo(bad.runId, { by: "bob" })
        assert.deepInclude(outcome.counts.find((c) => c.kind === "users")!, { restored: 13, stale: 2 })
        assert.deepStrictEqual(outcome.stale.filter((s) => s.kind === "users").map((s) => s.sourceId).sort(), later.sort())
        const after = yield* snapshot("und2")
        const byId = new Map(after.users.map((u) => [u.sourceId, u]))
        for (const u of before.users) {
          assert.strictEqual(byId.get(u.sourceId)!.familyName, later.includes(u.sourceId) ? "Corrected" : u.familyName)
        }
        const sql = yield* SqlClient.SqlClient
        const [record] = yield* sql<{ readonly stale: ReadonlyArray<{ readonly kind: string; readonly sourceId: string }> }>`
          SELECT stale FROM run_undos WHERE run_id = ${bad.runId}`
        assert.deepStrictEqual(record!.stale.filter((s) => s.kind === "users").map((s) => s.sourceId).sort(), later.sort())
      })))

  it.effect("a dry run shows the same undo and writes nothing", () =>
    withDistrict("und3", (dir, users) =>
      Effect.gen(function*() {
        badSource(dir, users, "und3")
        const bad = yield* syncNow("und3")
        const undo = yield* RunUndo
        const fingerprint = yield* rosterFingerprint
        const dry = yield* undo.undo(bad.runId, { by: "carol", dryRun: true })
        assert.isTrue(dry.dryRun)
        assert.deepInclude(dry.counts.find((c) => c.kind === "users")!, { deactivated: 4, reactivated: 12, restored: 15 })
        assert.deepStrictEqual(yield* rosterFingerprint, fingerprint)
        const sql = yield* SqlClient.SqlClient
        const [n] = yield* sql<{ readonly n: number }>`
          SELECT (SELECT count(*) FROM run_undos WHERE run_id = ${bad.runId}) + (SELECT count(*) FROM audit_log WHERE action = 'run.undo' AND district_id = 'und3') AS n`
        assert.strictEqual(Number(n!.n), 0)
        const real = yield* undo.undo(bad.runId, { by: "carol" })
        assert.deepStrictEqual(real.counts, dry.counts)
      })))

  it.effect("unknown, failed and expired runs are refused", () =>
    withDistrict("und4", () =>
      Effect.gen(function*() {
        const undo = yield* RunUndo
        const unknown = yield* Effect.flip(undo.undo(987654, { by: "dave" }))
        assert.strictEqual(unknown._tag, "RunNotFound")
        const sql = yield* SqlClient.SqlClient
        const [failed] = yield* sql<{ readonly id: number }>`
          INSERT INTO sync_runs (district_id, mode, status, trigger, finished_at, host, pid, error_reason)
          VALUES ('und4', 'full', 'failed', 'test', now(), 'test', 1, 'SourceUnavailable') RETURNING id`
        const notApplied = yield* Effect.flip(undo.undo(Number(failed!.id), { by: "dave" }))
        assert.match(notApplied.message, /ended failed: it applied nothing/)
        const [run] = yield* sql<{ readonly id: number }>`SELECT max(id) AS id FROM sync_runs WHERE district_id = 'und4' AND status = 'succeeded'`
        yield* sql`UPDATE sync_runs SET finished_at = now() - interval '400 days', started_at = now() - interval '400 days' WHERE id = ${run!.id}`
        const expired = yield* Effect.flip(undo.undo(Number(run!.id), { by: "dave" }))
        assert.strictEqual(expired._tag, "RunNotUndoable")
        assert.match(expired.message, /no longer kept \(rosterd\.changes\.retentionDays: 90 days\)/)
      })))
})
