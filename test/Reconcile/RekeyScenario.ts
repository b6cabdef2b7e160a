import { SqlClient } from "@effect/sql"
import { assert } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Rekey } from "../../src/Districts/Rekey.ts"
import { rekeySummary } from "../../src/Reconcile/Rekey.ts"
import type { RunSummary } from "../../src/Reconcile/SyncRun.ts"
import { Report } from "../../src/Report/Report.ts"
import { readRows, writeCsv } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { sealedToken } from "../support/MailLinks.ts"
import { assertSameRoster, deactivatedSince, heldRekey, rosterView, survivors } from "./RekeySupport.ts"

/**
 * Re-keyed sources (issue 15), the issue's scenario (RekeyIc.test.ts, RekeySis.test.ts, one file
 * each so the two run side by side): a 2,000-student district, synced, with
 * accounts and links, an activated teacher, a teacher-made class with rostered students,
 * enrollment history (ended periods) and an in-product admin of one school; then re-keyed
 *
 * - the **Infinite Campus** way (OneRoster 1.1 → 1.2: every user a new sourcedId, the old
 *   one in `metadata.ic.legacysourceId`), through the fake OneRoster REST server: first the
 *   users, then, separately, the classes;
 * - the **SIS-migration** way (new IDs, nothing in common but e-mail and birth date — the
 *   district sends no identifier), as CSV: first the users, then everything else (schools,
 *   terms, courses, classes: every reference follows).
 *
 * Each time: the full run is held as `rekey_suspected` and applies nothing; `district rekey
 * --run` applies its proposal (a dry run first, which changes nothing); the next run applies
 * no change at all; and the store equals a clean sync of the new IDs into a fresh district,
 * with every user, class, account, link, enrollment period and teacher-made membership the
 * same row as before — zero deactivations, zero new accounts.
 */

export const STUDENTS = 2000

export const TestLayer = Layer.mergeAll(Rekey.Default, Report.Default).pipe(Layer.provideMerge(SyncTestLayer))

export const zeroChanges = (run: RunSummary, label: string) => {
  for (const [kind, c] of Object.entries(run.counts)) {
    assert.deepStrictEqual({ kind, created: c.created, updated: c.updated, deactivated: c.deactivated }, { kind, created: 0, updated: 0, deactivated: 0 }, label)
  }
}

/** Accounts, links, an activated teacher, a teacher-made class, ended enrollments, an in-product admin. */
export const furnish = (district: string, dir: string, sync: () => Effect.Effect<RunSummary, unknown, any>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // Enrollment history: five memberships end (their rows stay, ended).
    const enrollments = readRows(dir, "enrollments")
    const ended = new Set(enrollments.filter((e) => e["role"] === "student").slice(0, 5).map((e) => e["sourcedId"]))
    writeCsv(dir, "enrollments", enrollments.filter((e) => !ended.has(e["sourcedId"])))
    const run = yield* sync()
    assert.strictEqual(run.status, "succeeded")
    assert.strictEqual(run.counts.enrollments.deactivated, 5)
    // A teacher confirms the activation e-mail.
    const [teacher] = yield* sql<{ readonly tokenId: number; readonly userId: number }>`
      SELECT t.id AS token_id, u.id AS user_id FROM activation_tokens t JOIN users u ON u.id = t.user_id
      WHERE u.district_id = ${district} AND 'teacher' = ANY (u.roles) ORDER BY u.source_id LIMIT 1`
    const token = yield* sealedToken(`teacher-activation:${teacher!.tokenId}`)
    const [confirmed] = yield* sql<{ readonly accountId: number; readonly outcome: string }>`
      SELECT * FROM rosterd_confirm_activation(${token}, NULL::bigint)`
    assert.strictEqual(confirmed!.outcome, "activated")
    // The teacher makes a class of their own and adds four rostered students (as the platform does).
    const [own] = yield* sql<{ readonly id: number }>`
      INSERT INTO classes (roster_source, title, owner_account_id) VALUES ('manual', 'Reading club', ${confirmed!.accountId}) RETURNING id`
    yield* sql`INSERT INTO enrollments (class_id, user_id, roster_source, role)
               SELECT ${own!.id}, u.id, 'manual', 'student' FROM users u
               WHERE u.district_id = ${district} AND 'student' = ANY (u.roles) ORDER BY u.source_id LIMIT 4`
    // An in-product admin of the first school.
    yield* sql`INSERT INTO admins (district_id, name, email, email_key, permission, role, school_source_ids, invited_by)
               VALUES (${district}, 'Pat Admin', ${`pat@${district}.example`}, ${`pat@${district}.example`}, 'view', 'school',
                       ARRAY['org-sch-0001'], 'operator:test')`
    return { teacherUser: Number(teacher!.userId), teacherAccount: Number(confirmed!.accountId), ownClass: Number(own!.id) }
  })

/**
 * One re-key, start to end: the held run, the proposal, a dry run, the re-key, the run after
 * it, and the comparison with a clean sync of the new set.
 */
export const rekeyAndCompare = (options: {
  readonly district: string
  readonly sync: () => Effect.Effect<RunSummary, unknown, any>
  readonly cleanSync: () => Effect.Effect<RunSummary, unknown, any>
  readonly clean: string
  readonly suspected: ReadonlyArray<string>
  /** The match kinds expected per kind label, each with its count. */
  readonly matched: Readonly<Record<string, Readonly<Record<string, number>>>>
}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rekey = yield* Rekey
    const before = yield* survivors(options.district)
    const viewBefore = yield* rosterView(options.district)
    const since = new Date()

    // The full run of the re-keyed source: held, nothing applied.
    const held = yield* options.sync()
    assert.strictEqual(held.status, "held")
    assert.deepStrictEqual(heldRekey(held), [...options.suspected])
    zeroChanges(held, "the held run applies nothing")
    assert.deepStrictEqual(yield* survivors(options.district), before)
    assertSameRoster(yield* rosterView(options.district), viewBefore, "the held run applies nothing")
    assert.include(held.notes.join(" "), `rosterd district rekey ${options.district} --run ${held.runId}`)

    // Its proposal, per kind and match kind (counts only; what `holds show` prints).
    const summary = (yield* rekeySummary(held.runId))!
    assert.deepStrictEqual(summary.kinds.filter((k) => k.suspected).map((k) => k.label), [...options.suspected])
    const proposed: Record<string, Record<string, number>> = {}
    for (const m of summary.proposed) (proposed[m.kind] ??= {})[m.matchedOn] = m.n
    for (const [kind, expected] of Object.entries(options.matched)) assert.deepStrictEqual(proposed[kind], expected, kind)
    // `rosterd report` shows it while it is pending.
    const report = yield* Effect.flatMap(Report, (r) => r.make(options.district))
    assert.strictEqual(report.rekey?.runId, held.runId)

    // A dry run says what would change and changes nothing.
    const fingerprint = yield* rowVersions(options.district)
    const dry = yield* rekey.rekey(options.district, { run: held.runId }, { by: "test", dryRun: true })
    assert.isTrue(dry.dryRun)
    assert.isNull(dry.rekeyId)
    assert.deepStrictEqual(yield* rowVersions(options.district), fingerprint)

    const done = yield* rekey.rekey(options.district, { run: held.runId }, { by: "test", reason: "IC 1.2" })
    assert.deepStrictEqual(done.records, dry.records)
    assert.deepStrictEqual(done.rewritten, dry.rewritten)
    const [hold] = yield* sql<{ readonly state: string; readonly decidedBy: string }>`SELECT state, decided_by FROM holds WHERE run_id = ${held.runId}`
    assert.deepStrictEqual(hold, { state: "rekeyed", decidedBy: "test" })
    const [audited] = yield* sql<{ readonly action: string; readonly subject: string }>`
      SELECT action, subject FROM audit_log WHERE district_id = ${options.district} ORDER BY id DESC LIMIT 1`
    assert.deepStrictEqual(audited, { action: "district.rekey", subject: `run ${held.runId}` })

    // The next run finds every record under its new ID: nothing to create, change or end.
    const after = yield* options.sync()
    assert.strictEqual(after.status, "succeeded", after.notes.join("; "))
    zeroChanges(after, "the run after the re-key")
    assert.strictEqual(yield* deactivatedSince(options.district, since), 0)
    assert.deepStrictEqual(yield* survivors(options.district), before, "the same rows, accounts, links and enrollment periods")

    // …and the store is what a clean sync of the new IDs makes.
    const clean = yield* options.cleanSync()
    assert.strictEqual(clean.status, "succeeded")
    assertSameRoster(yield* rosterView(options.district), yield* rosterView(options.clean), `${options.district} vs ${options.clean}`)
    return { held, done }
  })

/** Physical row versions of the district's tables a re-key writes (a dry run must leave them). */
export const rowVersions = (district: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const out: Record<string, string> = {}
    for (const table of ["schools", "terms", "courses", "classes", "users", "enrollments", "user_identities", "admins", "holds", "rekeys", "audit_log"]) {
      const where = table === "rekeys" || table === "audit_log" ? "true" : `district_id = '${district}'`
      const [row] = yield* sql.unsafe<{ readonly digest: string | null }>(
        `SELECT md5(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid)) AS digest FROM ${table} WHERE ${where}`
      )
      out[table] = row?.digest ?? "empty"
    }
    return out
  })

