import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { readRows, tempDir, writeCsv } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { clockAt, writeRulesDistrict } from "../support/RulesDistrict.ts"

/**
 * Unchanged since applied (src/Reconcile/Unchanged.ts): a run reading what the last applied
 * run read, into the roster it left, skips the comparison — and leaves what a comparison
 * would have left. Each test runs two districts on the same files and dates: `a` as
 * configured (it may skip), `b` with digests off (it always compares), and holds them to
 * the same counts, findings, notes and change lists. Anything that could make a comparison
 * find something — a write to the stored roster, a term ending, a hold — makes `a` compare.
 */

const YEAR = 2027
const MID_NOVEMBER = "2026-11-19T18:00:00Z"
const SKIPPED = /^unchanged since run \d+: /

const addDistrict = (id: string, path: string) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path } }))

interface RunOptions {
  readonly digests?: boolean
  readonly dryRun?: boolean
  readonly request?: "auto" | "full"
}

const runAt = (id: string, iso: string, options: RunOptions = {}) =>
  Effect.flatMap(Sync, (sync) => sync.run(id, { request: "auto", trigger: "test", ...options })).pipe(Effect.withClock(clockAt(iso)))

/** What a run left that a comparison decides: its findings and change list, without the district's own names. */
const runRecord = (runId: number, district: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const findings = yield* sql<{ readonly f: string }>`
      SELECT concat_ws(' ', severity, code, entity, source_id, file, line, replace(detail, ${district}, 'D')) AS f
      FROM findings WHERE run_id = ${runId} ORDER BY 1`
    const changes = yield* sql<{ readonly c: string }>`
      SELECT concat_ws(' ', kind, action, reason, fields::text, held, (SELECT string_agg(x, ',' ORDER BY x) FROM unnest(source_ids) x)) AS c
      FROM run_changes WHERE run_id = ${runId} ORDER BY 1`
    return { findings: findings.map((r) => r.f), changes: changes.map((r) => r.c) }
  })

/** The district's synced roster rows' versions: a run that writes nothing leaves it as it was. */
const rowVersions = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ readonly v: string }>`
        SELECT (SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY id) FROM users WHERE district_id = ${district}) ||
               (SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY id) FROM enrollments WHERE district_id = ${district}) AS v`,
      ([row]) => row?.v
    ))

/** Runs both districts at `iso`; checks they agree; returns `a`'s run. */
const both = (pair: ReturnType<typeof districts>, iso: string, options: Omit<RunOptions, "digests"> = {}) =>
  Effect.gen(function*() {
    const a = yield* runAt(pair.a, iso, options)
    const b = yield* runAt(pair.b, iso, { ...options, digests: false })
    assert.strictEqual(a.status, b.status)
    assert.deepStrictEqual(a.counts, b.counts)
    assert.deepStrictEqual(a.held?.counts ?? null, b.held?.counts ?? null)
    // Only `a` can skip, or say why its digests were not used.
    const normal = (notes: ReadonlyArray<string>) =>
      notes.filter((n) => !SKIPPED.test(n) && !n.startsWith("compared in full")).map((n) => n.replace(/\d+/g, "N"))
    assert.deepStrictEqual(normal(a.notes), normal(b.notes))
    if (options.dryRun !== true) assert.deepStrictEqual(yield* runRecord(a.runId, pair.a), yield* runRecord(b.runId, pair.b))
    return a
  })

const districts = (name: string) => {
  const dirs = { a: tempDir(), b: tempDir() }
  writeRulesDistrict(dirs.a.dir, { year: YEAR, emailDomain: `${name}-a.example` })
  writeRulesDistrict(dirs.b.dir, { year: YEAR, emailDomain: `${name}-b.example` })
  return {
    a: `${name}-a`,
    b: `${name}-b`,
    dirs,
    add: Effect.zipRight(addDistrict(`${name}-a`, dirs.a.dir), addDistrict(`${name}-b`, dirs.b.dir)),
    /** Rewrites a file of both districts. */
    edit: (file: "users" | "enrollments", change: (rows: Array<Record<string, string>>) => Array<Record<string, string>>) => {
      for (const dir of [dirs.a.dir, dirs.b.dir]) writeCsv(dir, file, change(readRows(dir, file)))
    },
    remove: () => {
      dirs.a.remove()
      dirs.b.remove()
    }
  }
}

const skipped = (run: { readonly notes: ReadonlyArray<string> }) => run.notes.some((n) => SKIPPED.test(n))

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("unchanged since applied", (it) => {
  it.effect("the same files again: nothing compared, nothing written, the same counts, findings and notes as a comparison", () =>
    Effect.gen(function*() {
      const pair = districts("same")
      yield* pair.add
      const first = yield* both(pair, MID_NOVEMBER)
      assert.isFalse(skipped(first))
      const before = yield* rowVersions(pair.a)
      const again = yield* both(pair, MID_NOVEMBER)
      assert.isTrue(skipped(again), again.notes.join("; "))
      assert.strictEqual(yield* rowVersions(pair.a), before)
      // Its findings are the comparison's (carried forward) and the people's (judged again).
      assert.isAbove(again.findings, 0)
      // A dry run skips too, and leaves the mark for the real runs after it.
      const dry = yield* both(pair, MID_NOVEMBER, { dryRun: true })
      assert.isTrue(skipped(dry))
      assert.isTrue(skipped(yield* both(pair, MID_NOVEMBER)))
      // `rosterd sync --full` compares, mark or not; and marks again.
      assert.isFalse(skipped(yield* both(pair, MID_NOVEMBER, { request: "full" })))
      assert.isTrue(skipped(yield* both(pair, MID_NOVEMBER)))
      // A mark is used for a week at most (rosterd.sync.compareEvery): then a comparison, which marks again.
      assert.isTrue(skipped(yield* both(pair, "2026-11-26T17:00:00Z")))
      assert.isFalse(skipped(yield* both(pair, "2026-11-26T19:00:00Z")))
      assert.isTrue(skipped(yield* both(pair, "2026-11-26T20:00:00Z")))
      pair.remove()
    }))

  it.effect("a birthday on a skipped run: written, counted and listed as a comparison would", () =>
    Effect.gen(function*() {
      const pair = districts("bday")
      yield* pair.add
      yield* both(pair, MID_NOVEMBER)
      // s-2 turns 13 on 2026-11-20 (test/support/RulesDistrict.ts).
      const birthday = yield* both(pair, "2026-11-20T18:00:00Z")
      assert.isTrue(skipped(birthday))
      assert.strictEqual(birthday.counts.users.updated, 1)
      const sql = yield* SqlClient.SqlClient
      const [s2] = yield* sql<{ readonly under13: boolean }>`SELECT under_13 FROM users WHERE district_id = ${pair.a} AND source_id = 's-2'`
      assert.isFalse(s2!.under13)
      assert.deepStrictEqual((yield* runRecord(birthday.runId, pair.a)).changes, ["users update {under_13} f s-2"])
      // The mark it left names the roster after that write: the next run skips again, and writes nothing.
      const after = yield* both(pair, "2026-11-20T19:00:00Z")
      assert.isTrue(skipped(after))
      assert.strictEqual(after.counts.users.updated, 0)
      pair.remove()
    }))

  it.effect("a term that ended since is compared: its classes are deactivated under the gate, as by a comparison", () =>
    Effect.gen(function*() {
      const pair = districts("term")
      yield* pair.add
      yield* both(pair, MID_NOVEMBER)
      // The school year is over: every class's term has ended, which the gate holds for review.
      const summer = yield* both(pair, "2027-08-02T18:00:00Z")
      assert.isFalse(skipped(summer))
      assert.strictEqual(summer.status, "held")
      // A hold leaves no mark: the same files again are compared again.
      const again = yield* both(pair, "2027-08-02T18:00:00Z")
      assert.isFalse(skipped(again))
      assert.strictEqual(again.status, "held")
      pair.remove()
    }))

  it.effect("a write to the stored roster since the last run (an undo, a released hold, a merge) is compared and put right", () =>
    Effect.gen(function*() {
      const pair = districts("write")
      yield* pair.add
      yield* both(pair, MID_NOVEMBER)
      const sql = yield* SqlClient.SqlClient
      // What an undo does: the sync's writer, under the lease, outside a run.
      const rename = (district: string) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql`SELECT set_config('rosterd.writer', 'sync', true)`
          yield* sql`UPDATE users SET given_name = 'Changed' WHERE district_id = ${district} AND source_id = 's-1'`
        }))
      yield* rename(pair.a)
      yield* rename(pair.b)
      const next = yield* both(pair, MID_NOVEMBER)
      assert.isFalse(skipped(next))
      assert.strictEqual(next.counts.users.updated, 1)
      const [s1] = yield* sql<{ readonly givenName: string }>`SELECT given_name FROM users WHERE district_id = ${pair.a} AND source_id = 's-1'`
      assert.notStrictEqual(s1!.givenName, "Changed")
      // Put right and marked again: the next run skips.
      assert.isTrue(skipped(yield* both(pair, MID_NOVEMBER)))
      pair.remove()
    }))

  it.effect("a changed file is compared; after a deactivation once more; changed rules are compared; then the same again skips", () =>
    Effect.gen(function*() {
      const pair = districts("edit")
      yield* pair.add
      yield* both(pair, MID_NOVEMBER)
      pair.edit("enrollments", (rows) => rows.filter((r) => !(r.classSourcedId === "cls-math-1" && r.userSourcedId === "s-1")))
      const edited = yield* both(pair, MID_NOVEMBER)
      assert.isFalse(skipped(edited))
      assert.strictEqual(edited.counts.enrollments.deactivated, 1)
      // A run that deactivated leaves no mark: the next compares (and finds nothing), the one after skips.
      assert.isFalse(skipped(yield* both(pair, MID_NOVEMBER)))
      assert.isTrue(skipped(yield* both(pair, MID_NOVEMBER)))
      // A removed user whose enrollment is still listed: deactivated, then reported dangling
      // by the comparison after, and by the runs that skip it.
      pair.edit("users", (rows) => rows.filter((r) => r.sourcedId !== "s-2"))
      yield* both(pair, MID_NOVEMBER)
      assert.isFalse(skipped(yield* both(pair, MID_NOVEMBER)))
      const dangling = yield* both(pair, MID_NOVEMBER)
      assert.isTrue(skipped(dangling))
      assert.isTrue((yield* runRecord(dangling.runId, pair.a)).findings.some((f) => f.includes("dangling_reference enrollments")))
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE districts SET rules = '{"accounts": {"reuseWindowDays": 200}}'::jsonb WHERE id IN (${pair.a}, ${pair.b})`
      const ruled = yield* both(pair, MID_NOVEMBER)
      assert.isFalse(skipped(ruled))
      assert.isTrue(skipped(yield* both(pair, MID_NOVEMBER)))
      pair.remove()
    }))
})
