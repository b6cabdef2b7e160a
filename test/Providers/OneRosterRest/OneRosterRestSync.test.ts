import { SqlClient } from "@effect/sql"
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../../src/Domain/District.ts"
import { Sync } from "../../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../../src/Store/RosterStore.ts"
import { findingCodesBesidesReviews, rosterFingerprint } from "../../support/Database.ts"
import { type FakeOneRoster, fromOneRosterCsv, type OneRosterFaultRule, start } from "../../support/FakeOneRoster/index.ts"
import { generated, readRows, tempDir } from "../../support/Fixtures.ts"
import { fastProviderRetries, syncTestLayer } from "../../support/Layers.ts"

/**
 * The OneRoster 1.1 REST provider against the fake server (real HTTP on loopback, OAuth
 * 1.0a verified like a real server): signed and bearer full syncs, a tampered signature,
 * deltas by dateLastModified, and faults.
 */

const KEY = "consumer-key-1"
const SECRET = "consumer-secret-1"
const BEARER = "proxy-bearer-token-1"

interface Served extends FakeOneRoster {
  readonly files: { readonly key: string; readonly secret: string; readonly badSecret: string; readonly bearer: string }
  readonly csv: string
}
class Fake extends Context.Tag("test/FakeOneRoster")<Fake, Served>() {}

const FakeLayer = Layer.scoped(
  Fake,
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = tempDir("oneroster-sync-")
      const csv = NodePath.join(dir.dir, "csv")
      generated(csv, 150)
      const fake = await start(await fromOneRosterCsv(csv), { oauth: { key: KEY, secret: SECRET }, bearer: BEARER, maxLimit: 1000 })
      const write = (name: string, value: string) => {
        const file = NodePath.join(dir.dir, name)
        Fs.writeFileSync(file, value)
        return file
      }
      const files = { key: write("key", KEY), secret: write("secret", SECRET), badSecret: write("bad-secret", "not-the-secret"), bearer: write("bearer", BEARER) }
      return Object.assign(fake, { files, csv, remove: dir.remove })
    }),
    (fake) => Effect.promise(async () => {
      await fake.close()
      fake.remove()
    })
  )
)

const TestLayer = Layer.merge(
  syncTestLayer(fastProviderRetries),
  FakeLayer
)

const add = (id: string, auth: "oauth1" | "bearer", overrides: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const fake = yield* Fake
    const store = yield* RosterStore
    const credentials = auth === "bearer" ? { bearerFile: fake.files.bearer } : { keyFile: fake.files.key, secretFile: fake.files.secret }
    yield* store.addDistrict({
      id: id as DistrictId,
      name: id,
      provider: "oneroster-rest",
      timezone: "UTC",
      settings: { baseUrl: fake.baseUrl, auth, pageSize: 100, ...credentials, ...overrides }
    })
  })

const run = (id: string, request: "auto" | "full" | "delta" = "auto") => Effect.flatMap(Sync, (sync) => sync.run(id, { request, trigger: "test" }))

const changes = (counts: Record<string, { created: number; updated: number; deactivated: number }>) =>
  Object.values(counts).reduce((n, c) => n + c.created + c.updated + c.deactivated, 0)

/** A district's roster content without ids and times. */
const contentDigest = (districtId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const out: Record<string, string | null> = {}
    for (const table of ["schools", "terms", "courses", "classes", "users", "enrollments"]) {
      const drop = table === "enrollments"
        ? "- 'id' - 'district_id' - 'class_id' - 'user_id' - 'started_at' - 'updated_at' - 'ended_at'"
        : "- 'id' - 'district_id' - 'created_at' - 'updated_at' - 'deactivated_at'"
      const [row] = yield* sql.unsafe<{ digest: string | null }>(
        `SELECT md5(string_agg(x, E'\\n' ORDER BY x)) AS digest FROM (SELECT (to_jsonb(t) ${drop})::text AS x FROM ${table} t WHERE district_id = $1) s`,
        [districtId]
      )
      out[table] = row!.digest
    }
    return out
  })

layer(TestLayer, { timeout: "180 seconds", excludeTestServices: true })("OneRoster REST provider", (it) => {
  it.effect("a signed full sync reads every collection to its X-Total-Count, in pages signed one by one", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      yield* add("signed", "oauth1")
      fake.requests.length = 0
      const summary = yield* run("signed")
      const csvUsers = readRows(fake.csv, "users").length
      assert.strictEqual(summary.status, "succeeded")
      assert.strictEqual(summary.mode, "full")
      assert.strictEqual(summary.counts.users.created, csvUsers)
      assert.strictEqual(summary.counts.enrollments.created, readRows(fake.csv, "enrollments").length)
      assert.strictEqual(summary.counts.classes.created, readRows(fake.csv, "classes").length)
      assert.strictEqual(summary.counts.terms.created, readRows(fake.csv, "academicSessions").length)
      assert.deepStrictEqual(yield* findingCodesBesidesReviews(summary.runId), [])
      const userPages = fake.requests.filter((r) => r.path.includes("/users?"))
      assert.strictEqual(userPages.length, Math.ceil(csvUsers / 100))
      assert.isTrue(fake.requests.every((r) => r.status === 200))
    }))

  it.effect("a bearer-token district (ClassLink's proxy) syncs to the same roster", () =>
    Effect.gen(function*() {
      yield* add("bearer", "bearer")
      const summary = yield* run("bearer")
      assert.strictEqual(summary.status, "succeeded")
      assert.deepStrictEqual(yield* contentDigest("bearer"), yield* contentDigest("signed"))
    }))

  it.effect("a tampered signature (wrong secret) is refused: the run fails at once, clearly, with nothing applied", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const sql = yield* SqlClient.SqlClient
      const before = yield* rosterFingerprint
      yield* sql`UPDATE districts SET settings = settings || ${JSON.stringify({ secretFile: fake.files.badSecret })}::jsonb WHERE id = 'signed'`
      fake.requests.length = 0
      const error = yield* Effect.flip(run("signed", "full"))
      yield* sql`UPDATE districts SET settings = settings || ${JSON.stringify({ secretFile: fake.files.secret })}::jsonb WHERE id = 'signed'`
      assert.strictEqual(error._tag, "ProviderError")
      assert.strictEqual((error as { reason: string }).reason, "Unauthorized")
      assert.match(error.message, /refused the credentials \(HTTP 401\)/)
      assert.notInclude(error.message, SECRET)
      assert.strictEqual(fake.requests.length, 1)
      assert.deepStrictEqual(yield* rosterFingerprint, before)
    }))

  it.effect("a delta applies what changed since the last run (tobedeleted too); a second identical one writes nothing; a full run sees hard deletes", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const sql = yield* SqlClient.SqlClient
      const data = fake.district
      const students = data.users.all().filter((u) => u.role === "student")
      const [renamed, removed, vanished] = [students[0]!, students[1]!, students[2]!]
      data.update("users", renamed.sourcedId, { familyName: "Delta" } as never)
      data.markToBeDeleted("users", removed.sourcedId)
      data.create("users", { ...renamed, dateLastModified: undefined, sourcedId: "usr-new-1", email: "new1@district.example.org", familyName: "Newcomer" } as never)
      const enrollment = data.enrollments.all().find((e) => e.user.sourcedId === renamed.sourcedId)!
      data.markToBeDeleted("enrollments", enrollment.sourcedId)

      const delta = yield* run("signed", "delta")
      assert.strictEqual(delta.mode, "delta")
      assert.deepStrictEqual(delta.counts.users, { created: 1, updated: 1, deactivated: 1, unchanged: 0 })
      // The tobedeleted enrollment, and the removed student's own enrollments with them.
      const removedEnrollments = data.enrollments.all().filter((e) => e.user.sourcedId === removed.sourcedId).length
      assert.strictEqual(delta.counts.enrollments.deactivated, 1 + removedEnrollments)
      const [row] = yield* sql<{ familyName: string }>`SELECT family_name FROM users WHERE district_id = 'signed' AND source_id = ${renamed.sourcedId}`
      assert.strictEqual(row!.familyName, "Delta")

      const fingerprint = yield* rosterFingerprint
      const again = yield* run("signed", "delta")
      assert.strictEqual(changes(again.counts), 0)
      assert.deepStrictEqual(yield* rosterFingerprint, fingerprint)

      // A hard delete is invisible to a filter; the next full listing notices it.
      data.hardDelete("users", vanished.sourcedId)
      assert.strictEqual(changes((yield* run("signed", "delta")).counts), 0)
      const full = yield* run("signed", "full")
      assert.strictEqual(full.counts.users.deactivated, 1)
      const [gone] = yield* sql<{ active: boolean; deactivationReason: string }>`
        SELECT active, deactivation_reason FROM users WHERE district_id = 'signed' AND source_id = ${vanished.sourcedId}`
      assert.deepStrictEqual([gone!.active, gone!.deactivationReason], [false, "missing_from_source"])
    }))

  it.effect("a clean full sync, the reference for the fault cases", () =>
    Effect.gen(function*() {
      yield* add("reference", "oauth1")
      assert.strictEqual((yield* run("reference")).status, "succeeded")
    }))

  describe("faults", () => {
    const transient: ReadonlyArray<readonly [string, OneRosterFaultRule]> = [
      ["two 500s", { kind: "status", status: 500, match: "/ims/oneroster/v1p1/users", times: 2 }],
      ["a 429 with Retry-After", { kind: "rateLimit", retryAfterSeconds: 1, match: "/ims/oneroster/v1p1/enrollments", times: 1 }],
      ["a connection dropped mid-page", { kind: "dropConnection", match: "/ims/oneroster/v1p1/enrollments", after: 2, times: 1 }],
      ["a page cut off in the middle", { kind: "truncate", match: "/ims/oneroster/v1p1/users", after: 1, times: 1 }],
      ["an HTML maintenance page", { kind: "notJson", match: "/ims/oneroster/v1p1/classes", times: 1 }],
      ["a page slower than the timeout", { kind: "delay", ms: 3000, match: "/ims/oneroster/v1p1/orgs", times: 1 }],
      ["no Link header and no X-Total-Count", { kind: "noLinks", dropTotal: true, match: "/ims/oneroster/v1p1/users", times: 100 }]
    ] as never
    for (const [name, rule] of transient) {
      it.effect(`${name}: the store ends as after a clean run`, () =>
        Effect.gen(function*() {
          const fake = yield* Fake
          const id = `fault-${name.replace(/[^a-z0-9]+/g, "-").replace(/-+$/, "")}`.slice(0, 60)
          yield* add(id, "oauth1")
          const handle = fake.faults.inject(rule)
          const summary = yield* run(id).pipe(Effect.ensuring(Effect.sync(() => fake.faults.clear())))
          assert.isAtLeast(handle.fired, 1)
          assert.strictEqual(summary.status, "succeeded")
          assert.deepStrictEqual(yield* contentDigest(id), yield* contentDigest("reference"))
        }))
    }

    const fatal: ReadonlyArray<readonly [string, OneRosterFaultRule, string]> = [
      ["an empty page before X-Total-Count is reached", { kind: "endEarly", mode: "empty", match: "/ims/oneroster/v1p1/enrollments", after: 2, times: 100 }, "Truncated"],
      ["a 500 that does not go away", { kind: "status", status: 500, match: "/ims/oneroster/v1p1/classes", times: 100 }, "Unreachable"]
    ] as never
    for (const [name, rule, reason] of fatal) {
      it.effect(`${name}: the run fails and nothing is applied`, () =>
        Effect.gen(function*() {
          const fake = yield* Fake
          const sql = yield* SqlClient.SqlClient
          const id = `fatal-${name.replace(/[^a-z0-9]+/g, "-").replace(/-+$/, "")}`.slice(0, 60)
          yield* add(id, "oauth1")
          yield* run(id)
          const before = yield* rosterFingerprint
          fake.faults.inject(rule)
          const error = yield* Effect.flip(run(id, "full")).pipe(Effect.ensuring(Effect.sync(() => fake.faults.clear())))
          assert.strictEqual((error as { reason?: string }).reason, reason)
          assert.deepStrictEqual(yield* rosterFingerprint, before)
          const [last] = yield* sql<{ status: string }>`SELECT status FROM sync_runs WHERE district_id = ${id} ORDER BY id DESC LIMIT 1`
          assert.strictEqual(last!.status, "failed")
        }))
    }
  })
})
