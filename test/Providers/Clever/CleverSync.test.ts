import { SqlClient } from "@effect/sql"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import * as Fs from "node:fs"
import type { DistrictId } from "../../../src/Domain/District.ts"
import type { ProviderError } from "../../../src/Domain/Errors.ts"
import { Sync } from "../../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../../src/Store/RosterStore.ts"
import { Holds } from "../../../src/Reconcile/Holds.ts"
import { PAGES_AHEAD } from "../../../src/Providers/Clever/CleverProvider.ts"
import { RosterProviderLive } from "../../../src/Providers/Providers.ts"
import { RosterProvider } from "../../../src/Providers/RosterProvider.ts"
import { Runs } from "../../../src/Store/Runs.ts"
import { findingCodesBesidesReviews, rosterFingerprint } from "../../support/Database.ts"
import type { FaultRule } from "../../support/FakeClever/index.ts"
import { fastProviderRetries, syncTestLayer } from "../../support/Layers.ts"
import { FakeCleverDistrict, fakeCleverDistrictLayer } from "../../support/FakeCleverDistrict.ts"

/**
 * The Clever provider against the fake Clever API (a real HTTP server on loopback):
 * full listings, deltas from events, replays, the window fallback, and faults — each fault
 * ending in the same store as a clean run, or failing with nothing applied.
 */

const TOKEN = "clever-district-token"

const Fake = FakeCleverDistrict
const FakeLayer = fakeCleverDistrictLayer({ token: TOKEN, students: 200, forbiddenToken: "revoked" })

/** Fast retries, so fault tests take milliseconds, not the production seconds. */
const TestLayer = Layer.merge(
  syncTestLayer(fastProviderRetries),
  FakeLayer
)

const addClever = (id: string, overrides: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const fake = yield* Fake
    const store = yield* RosterStore
    yield* store.addDistrict({
      id: id as DistrictId,
      name: id,
      provider: "clever",
      timezone: "America/Chicago",
      settings: { districtId: fake.districtId, tokenFile: fake.tokenFile, baseUrl: fake.baseUrl, pageSize: 25, ...overrides }
    })
  })

const run = (id: string, request: "auto" | "full" | "delta" = "auto") => Effect.flatMap(Sync, (sync) => sync.run(id, { request, trigger: "test" }))

/** A district's roster content without ids and times, to compare two districts' stores. */
const contentDigest = (districtId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const out: Record<string, string | null> = {}
    for (const table of ["schools", "terms", "courses", "classes", "users"]) {
      const [row] = yield* sql.unsafe<{ digest: string | null }>(
        `SELECT md5(string_agg(x, E'\\n' ORDER BY x)) AS digest FROM (
           SELECT (to_jsonb(t) - 'id' - 'district_id' - 'created_at' - 'updated_at' - 'deactivated_at')::text AS x
           FROM ${table} t WHERE district_id = $1) s`,
        [districtId]
      )
      out[table] = row!.digest
    }
    const [enrollments] = yield* sql.unsafe<{ digest: string | null }>(
      `SELECT md5(string_agg(x, E'\\n' ORDER BY x)) AS digest FROM (
         SELECT (to_jsonb(t) - 'id' - 'district_id' - 'class_id' - 'user_id' - 'started_at' - 'updated_at' - 'ended_at')::text
                || (t.ended_at IS NULL)::text AS x
         FROM enrollments t WHERE district_id = $1) s`,
      [districtId]
    )
    out.enrollments = enrollments!.digest
    return out
  })

layer(TestLayer, { timeout: "180 seconds", excludeTestServices: true })("Clever provider", (it) => {
  it.effect("a full sync lists everything, pages to the end, and records the newest event as the cursor", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const sql = yield* SqlClient.SqlClient
      yield* addClever("reference")
      fake.requests.length = 0
      const summary = yield* run("reference")
      const data = fake.district
      assert.strictEqual(summary.status, "succeeded")
      assert.strictEqual(summary.mode, "full")
      assert.strictEqual(summary.counts.schools.created, data.schools.length + 1)
      assert.strictEqual(summary.counts.terms.created, data.terms.length)
      assert.strictEqual(summary.counts.courses.created, data.courses.length)
      assert.strictEqual(summary.counts.classes.created, data.sections.length)
      const people = data.users.all().filter((u) => u.roles.student || u.roles.teacher || u.roles.staff || u.roles.district_admin)
      assert.strictEqual(summary.counts.users.created, people.length)
      const memberships = data.sections.all().reduce((n, s) => n + new Set([s.teacher, ...(s.teachers ?? []), ...(s.students ?? [])].filter(Boolean)).size, 0)
      assert.strictEqual(summary.counts.enrollments.created, memberships)
      assert.deepStrictEqual(yield* findingCodesBesidesReviews(summary.runId), [])
      // Paged at 25 with `limit`, following `next` links to the end: every users page was asked for.
      const userPages = fake.requests.filter((r) => r.path.startsWith("/v3.0/users"))
      assert.strictEqual(userPages.length, Math.ceil(data.users.length / 25))
      assert.isTrue(fake.requests.every((r) => r.auth))
      // Birth dates arrive through the student role; the cursor is the newest event.
      const [student] = yield* sql<{ birthDate: string | null; roles: Array<string> }>`
        SELECT birth_date, roles FROM users WHERE district_id = 'reference' AND 'student' = ANY (roles) LIMIT 1`
      assert.match(student!.birthDate!, /^\d{4}-\d\d-\d\d$/)
      const [cursor] = yield* sql<{ cursor: string }>`SELECT cursor FROM sync_cursors WHERE district_id = 'reference'`
      assert.strictEqual(cursor!.cursor, data.latestEventId() ?? "")
    }))

  it.effect("a delta applies created, updated and deleted users and enrollment changes; a second one writes nothing; a replay changes nothing", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const sql = yield* SqlClient.SqlClient
      const data = fake.district
      yield* addClever("delta")
      yield* run("delta")
      const [{ cursor: before }] = (yield* sql<{ cursor: string }>`SELECT cursor FROM sync_cursors WHERE district_id = 'delta'`) as any

      const school = data.schools.first()!.id
      const section = data.sections.all().find((s) => (s.students ?? []).length >= 2)!
      const [leaving, staying] = section.students!
      const created = data.createUser({ district: data.districts.first()!.id, email: "new@clever.example", name: { first: "New", last: "Student" }, roles: { student: { school, schools: [school], dob: "4/5/2015", grade: "5" } } } as never)
      const renamed = data.users.all().find((u) => u.roles.teacher)!
      data.updateUser(renamed.id, { name: { last: "Renamed" } } as never)
      const deleted = data.users.all().find((u) => u.roles.student && u.id !== leaving && u.id !== staying && !(section.students ?? []).includes(u.id))!
      data.deleteUser(deleted.id)
      data.updateSection(section.id, { students: [staying!, created.id] } as never)

      // The section loses most of its students: the safety gate holds those ends for review.
      const delta = yield* run("delta", "delta")
      assert.strictEqual(delta.mode, "delta")
      assert.strictEqual(delta.status, "held")
      assert.deepInclude(delta.held!.tripped[0], { kind: "enrollments", rule: "class_cut" })
      assert.deepStrictEqual(delta.counts.users, { created: 1, updated: 1, deactivated: 1, unchanged: 0 })
      yield* Effect.flatMap(Holds, (holds) => holds.approve(delta.runId, "test", null))
      const [renamedRow] = yield* sql<{ familyName: string }>`SELECT family_name FROM users WHERE district_id = 'delta' AND source_id = ${renamed.id}`
      assert.strictEqual(renamedRow!.familyName, "Renamed")
      const [deletedRow] = yield* sql<{ active: boolean; deactivationReason: string }>`
        SELECT active, deactivation_reason FROM users WHERE district_id = 'delta' AND source_id = ${deleted.id}`
      assert.deepStrictEqual([deletedRow!.active, deletedRow!.deactivationReason], [false, "tobedeleted"])
      const members = yield* sql<{ userSourceId: string }>`
        SELECT user_source_id FROM enrollments WHERE district_id = 'delta' AND class_source_id = ${section.id} AND ended_at IS NULL AND role = 'student'`
      assert.sameMembers(members.map((m) => m.userSourceId), [staying!, created.id])
      const [newcomer] = yield* sql<{ birthDate: string }>`SELECT birth_date FROM users WHERE district_id = 'delta' AND source_id = ${created.id}`
      assert.strictEqual(newcomer!.birthDate, "2015-04-05")

      // No new events: nothing written.
      const fingerprint = yield* rosterFingerprint
      const quiet = yield* run("delta", "delta")
      assert.strictEqual(totalChanges(quiet.counts), 0)
      assert.deepStrictEqual(yield* rosterFingerprint, fingerprint)

      // Replaying the same events from the older cursor: nothing written either.
      yield* sql`UPDATE sync_cursors SET cursor = ${before} WHERE district_id = 'delta'`
      const replay = yield* run("delta", "delta")
      assert.strictEqual(replay.mode, "delta")
      assert.strictEqual(totalChanges(replay.counts), 0)
      assert.deepStrictEqual(yield* rosterFingerprint, fingerprint)
    }))

  it.effect("a cursor older than 25 days, or one Clever no longer knows, falls back to a full sync and says so", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* addClever("window")
      yield* run("window")
      yield* sql`UPDATE sync_cursors SET taken_at = now() - interval '26 days' WHERE district_id = 'window'`
      const aged = yield* run("window", "delta")
      assert.strictEqual(aged.mode, "full")
      assert.match(aged.notes.join(" "), /older than/)
      const [record] = yield* sql<{ notes: string; mode: string }>`SELECT notes, mode FROM sync_runs WHERE id = ${aged.runId}`
      assert.match(record!.notes, /fell back to a full sync/)

      yield* sql`UPDATE sync_cursors SET cursor = '0123456789abcdef01234567' WHERE district_id = 'window'`
      const unknown = yield* run("window", "delta")
      assert.strictEqual(unknown.mode, "full")
      assert.match(unknown.notes.join(" "), /no longer knows/)
    }))

  // The state every fault case must end in: a clean full sync of the fake as it is now.
  it.effect("while a page is staged the next ones are on their way: fetched ahead, never more than PAGES_AHEAD unread", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const store = yield* RosterStore
      const runs = yield* Runs
      yield* addClever("ahead")
      const district = yield* store.getDistrict("ahead" as DistrictId)
      const provider = yield* RosterProvider.pipe(Effect.provide(RosterProviderLive))
      const usersPages = () => fake.requests.filter((r) => r.path.startsWith("/v3.0/users")).length
      yield* Effect.scoped(Effect.gen(function*() {
        const snapshot = yield* provider.snapshot(district, "full", yield* runs.providerState(district.id))
        fake.requests.length = 0
        // Read the users' first page, then stop reading (as a sync does while it stages a page).
        const pull = yield* Stream.toPull(snapshot.feeds.users!.items)
        yield* pull
        yield* Effect.sleep("300 millis")
        const asked = usersPages()
        // Pages beyond the one read were asked for; no more than the buffer holds (and the one
        // waiting to enter it) — the listing does not run ahead to its end.
        assert.isAtLeast(asked, 2)
        assert.isAtMost(asked, 1 + PAGES_AHEAD + 1)
        assert.isAbove(Math.ceil(fake.district.users.length / 25), 1 + PAGES_AHEAD + 1)
      }))
    }))

  it.effect("a clean full sync, the reference for the fault cases", () =>
    Effect.gen(function*() {
      yield* addClever("reference-clean")
      assert.strictEqual((yield* run("reference-clean")).status, "succeeded")
    }))

  describe("faults", () => {
    const transient: ReadonlyArray<readonly [string, FaultRule]> = [
      ["two 500s", { kind: "status", status: 500, match: "/v3.0/users", times: 2 }],
      ["a 502 and a 503", { kind: "status", status: 502, match: "/v3.0/sections", times: 1 }],
      ["a 429 burst with X-RateLimit-Reset", { kind: "rateLimit", resetInSeconds: 1, match: "/v3.0/users", times: 3 }],
      ["a 429 with Retry-After", { kind: "rateLimit", retryAfterSeconds: 1, match: "/v3.0/sections", times: 1 }],
      ["a connection dropped mid-page", { kind: "dropConnection", match: "/v3.0/users", after: 2, times: 1 }],
      ["a page cut off in the middle", { kind: "truncate", match: "/v3.0/sections", after: 1, times: 1 }],
      ["an HTML error page", { kind: "notJson", match: "/v3.0/users", times: 1 }],
      ["a page slower than the timeout", { kind: "delay", ms: 3000, match: "/v3.0/schools", times: 1 }]
    ]
    for (const [name, rule] of transient) {
      it.effect(`${name}: retried, and the store ends as after a clean run`, () =>
        Effect.gen(function*() {
          const fake = yield* Fake
          const id = `fault-${name.replace(/[^a-z0-9]+/g, "-").replace(/-+$/, "")}`.slice(0, 60)
          yield* addClever(id)
          const handle = fake.faults.inject(rule)
          const summary = yield* run(id).pipe(Effect.ensuring(Effect.sync(() => fake.faults.clear())))
          assert.isAtLeast(handle.fired, 1)
          assert.strictEqual(summary.status, "succeeded")
          assert.deepStrictEqual(yield* contentDigest(id), yield* contentDigest("reference-clean"))
        }))
    }

    const fatal: ReadonlyArray<readonly [string, FaultRule | "revoked" | "other-district", ProviderError["reason"] | "InvalidDistrict"]> = [
      ["a revoked token (401)", "revoked", "Unauthorized"],
      ["a token of another district", "other-district", "InvalidDistrict"],
      ["a 500 that does not go away", { kind: "status", status: 500, match: "/v3.0/sections", times: 100 }, "Unreachable"],
      ["a page without its links array", { kind: "noLinks", match: "/v3.0/users", after: 1, times: 100 }, "Malformed"]
    ]
    for (const [name, fault, reason] of fatal) {
      it.effect(`${name}: the run fails at once or after bounded retries, and nothing is applied`, () =>
        Effect.gen(function*() {
          const fake = yield* Fake
          const sql = yield* SqlClient.SqlClient
          const id = `fatal-${name.replace(/[^a-z0-9]+/g, "-").replace(/-+$/, "")}`.slice(0, 60)
          yield* addClever(id)
          yield* run(id)
          const before = yield* rosterFingerprint
          if (fault === "revoked") {
            Fs.writeFileSync(`${fake.tokenFile}.revoked`, "revoked")
            yield* sql`UPDATE districts SET settings = settings || ${JSON.stringify({ tokenFile: `${fake.tokenFile}.revoked` })}::jsonb WHERE id = ${id}`
          } else if (fault === "other-district") {
            yield* sql`UPDATE districts SET settings = settings || '{"districtId": "5f0000000000000000000000"}'::jsonb WHERE id = ${id}`
          } else {
            fake.faults.inject(fault)
          }
          fake.requests.length = 0
          // Requests that arrived from now on: an earlier test's delayed request may still be logged late.
          const since = Date.now()
          const error = yield* Effect.flip(run(id, "full")).pipe(Effect.ensuring(Effect.sync(() => fake.faults.clear())))
          assert.strictEqual(error._tag === "ProviderError" ? error.reason : error._tag, reason)
          if (fault === "revoked") assert.strictEqual(fake.requests.filter((r) => r.at >= since).length, 1) // no retry storm
          assert.notInclude(error.message, TOKEN)
          assert.deepStrictEqual(yield* rosterFingerprint, before)
          const [last] = yield* sql<{ status: string; error: string }>`
            SELECT status, error FROM sync_runs WHERE district_id = ${id} ORDER BY id DESC LIMIT 1`
          assert.strictEqual(last!.status, "failed")
          assert.notInclude(last!.error, TOKEN)
        }))
    }
  })

  // A section lists its own members: one that stops decoding (or loses its school) lists
  // none. Its class is held as invalid, and its memberships with it — none ends, however
  // small the class (the class-cut gate only judges classes of five members or more).
  const broken: ReadonlyArray<readonly [string, (section: any) => any]> = [
    ["has no school", (section) => ({ ...section, school: undefined })],
    ["does not decode", (section) => ({ ...section, students: 7 })]
  ]
  for (const [name, breakIt] of broken) {
    it.effect(`a section that ${name}: its class and its memberships are held, none ends`, () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const fake = yield* Fake
        const id = `broken-section-${name.replaceAll(" ", "-")}`
        // A small class (two students): fewer members than the class-cut gate judges.
        const section = fake.district.sections.all().find((s) => s.students.length > 2)!
        const original = section
        fake.district.updateSection(section.id, (s) => ({ ...s, students: s.students.slice(0, 2) }))
        const small = fake.district.sections.get(section.id)!
        const restore = Effect.sync(() => fake.district.updateSection(section.id, () => original))
        yield* addClever(id)
        assert.strictEqual((yield* run(id).pipe(Effect.onError(() => restore))).status, "succeeded")
        const open = (classId: string) =>
          Effect.map(sql<{ readonly n: number }>`
            SELECT count(*)::int AS n FROM enrollments WHERE district_id = ${id} AND class_source_id = ${classId} AND ended_at IS NULL`, ([row]) => row!.n)
        const members = yield* open(section.id)
        assert.strictEqual(members, 2 + small.teachers.length)
        fake.district.updateSection(section.id, breakIt)
        const after = yield* run(id, "full").pipe(Effect.ensuring(Effect.sync(() => fake.district.updateSection(section.id, () => small))))
        assert.strictEqual(after.status, "succeeded")
        assert.strictEqual(yield* open(section.id), members)
        assert.strictEqual(after.counts.enrollments.deactivated, 0)
        const [cls] = yield* sql<{ readonly active: boolean }>`SELECT active FROM classes WHERE district_id = ${id} AND source_id = ${section.id}`
        assert.isTrue(cls!.active)
        const findings = yield* Effect.flatMap(Runs, (runs) => runs.findings(after.runId))
        assert.isTrue(findings.some((f) => f.severity === "error" && f.entity === "classes" && f.sourceId === section.id))
        // Mended: the next run changes nothing of it.
        const mended = yield* run(id, "full").pipe(Effect.ensuring(restore))
        assert.strictEqual(yield* open(section.id), members)
        assert.strictEqual(mended.counts.enrollments.deactivated, 0)
      }))
  }
})

const totalChanges = (counts: Record<string, { created: number; updated: number; deactivated: number }>) =>
  Object.values(counts).reduce((n, c) => n + c.created + c.updated + c.deactivated, 0)
