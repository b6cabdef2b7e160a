import { HttpClient, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { HttpRoutes } from "../../src/Http/Server.ts"
import { DistrictLease } from "../../src/Reconcile/Lease.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { localDateAt } from "../../src/Schedule/Calendar.ts"
import { Freshness } from "../../src/Schedule/Freshness.ts"
import { Pauses } from "../../src/Schedule/Pauses.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { asOwner } from "../support/Database.ts"
import { parseScrape } from "./support.ts"

/**
 * `GET /metrics` on a real HTTP server (random port) over a real database, after real
 * syncs: parsed with an independent text-format parser. The series are per process, and
 * the files of a test worker share one (vitest.config.ts): this file's districts have names
 * no other file uses, so the values below are exact.
 */
const ServerLayer = HttpServer.serve(HttpRoutes).pipe(
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.provideMerge(Layer.mergeAll(Freshness.Default, Pauses.Default, DistrictLease.Default).pipe(Layer.provide(ConfigFile.fromDocument({})))),
  Layer.provideMerge(SyncTestLayer)
)

const getMetrics = Effect.gen(function*() {
  const response = yield* HttpClient.get("/metrics")
  const text = yield* response.text
  return { status: response.status, headers: response.headers, text }
}).pipe(Effect.scoped)

const scrape = Effect.gen(function*() {
  const { status, text } = yield* getMetrics
  assert.strictEqual(status, 200, text)
  return { text, ...parseScrape(text) }
})

const sync = (district: string) => Effect.flatMap(Sync, (s) => s.run(district, { request: "auto", trigger: "test" }))

/** Whole days of the calendar's default windows are not wanted here. */
const noCalendar = { calendar: { disable: ["thanksgiving", "winter"] } }

layer(ServerLayer, { timeout: "120 seconds", excludeTestServices: true })("GET /metrics", (it) => {
  const small = tempDir()
  writeSmallDistrict(small.dir)
  const broken = tempDir()
  writeSmallDistrict(broken.dir, "broken.example")
  Fs.rmSync(NodePath.join(broken.dir, "users.csv"))

  it.effect("after a sync: the run, its duration and changes, holds, outbox, freshness and leases", () =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      const sql = yield* SqlClient.SqlClient
      yield* store.addDistrict({ id: "metrics-small" as DistrictId, name: "Small", provider: "oneroster-csv", timezone: "UTC", settings: { path: small.dir }, rules: noCalendar })
      const summary = yield* sync("metrics-small")
      assert.strictEqual(summary.status, "succeeded")

      const { status, headers, text } = yield* getMetrics
      assert.strictEqual(status, 200)
      assert.strictEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
      assert.strictEqual(headers["cache-control"], "no-store")
      const m = parseScrape(text)

      assert.strictEqual(m.family("rosterd_sync_runs_total")?.type, "COUNTER")
      assert.strictEqual(m.value("rosterd_sync_runs_total", { district: "metrics-small", status: "succeeded" }), 1)
      assert.isUndefined(m.value("rosterd_sync_runs_total", { district: "metrics-small", status: "failed" }))

      assert.strictEqual(m.family("rosterd_sync_run_duration_seconds")?.type, "HISTOGRAM")
      const duration = m.histogram("rosterd_sync_run_duration_seconds", { district: "metrics-small", mode: "full" })
      assert.strictEqual(duration?.count, 1)
      assert.closeTo(duration!.sum, summary.durationMs / 1000, 0.001)
      assert.strictEqual(duration?.buckets["+Inf"], 1)
      assert.strictEqual(duration?.buckets["3600"], 1)

      const changed = (kind: string, action: string) => m.value("rosterd_records_changed_total", { district: "metrics-small", kind, action })
      assert.strictEqual(changed("users", "created"), 5)
      assert.strictEqual(changed("enrollments", "created"), 5)
      assert.strictEqual(changed("classes", "created"), 2)
      assert.strictEqual(changed("schools", "created"), 2)
      assert.strictEqual(changed("users", "deactivated"), 0)
      for (const kind of ["schools", "terms", "courses", "classes", "users", "enrollments"] as const) {
        assert.strictEqual(changed(kind, "created"), summary.counts[kind].created, kind)
      }

      assert.strictEqual(m.value("rosterd_holds_pending", { district: "metrics-small" }), 0)
      const [outbox] = yield* sql<{ readonly pending: number; readonly failed: number }>`
        SELECT count(*) FILTER (WHERE state = 'pending')::int AS pending, count(*) FILTER (WHERE state = 'failed')::int AS failed FROM outbox`
      assert.strictEqual(m.value("rosterd_outbox_messages", { state: "pending" }), outbox!.pending)
      assert.strictEqual(m.value("rosterd_outbox_messages", { state: "failed" }), 0)

      const since = m.value("rosterd_district_seconds_since_success", { district: "metrics-small" })
      assert.isDefined(since)
      assert.isAtLeast(since!, 0)
      assert.isBelow(since!, 60)
      assert.strictEqual(m.value("rosterd_district_stale", { district: "metrics-small" }), 0)
      assert.strictEqual(m.value("rosterd_district_failing", { district: "metrics-small" }), 0)
      assert.strictEqual(m.value("rosterd_district_paused", { district: "metrics-small" }), 0)
      assert.strictEqual(m.value("rosterd_leases_held"), 0)

      // prom-client's process metrics come along, unprefixed.
      assert.isDefined(m.family("process_cpu_user_seconds_total"))
      assert.isDefined(m.family("nodejs_heap_size_used_bytes"))

      // Labels carry district ids, statuses and kinds: nothing personal, no names, no paths.
      for (const personal of ["tess@small.example", "Tess", "Sam", "Small School", "2014-03-01", small.dir]) assert.notInclude(text, personal)
    }))

  it.effect("a failed run counts as failed and shows the district failing", () =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      yield* store.addDistrict({ id: "metrics-broken" as DistrictId, name: "Broken", provider: "oneroster-csv", timezone: "UTC", settings: { path: broken.dir }, rules: noCalendar })
      const exit = yield* Effect.exit(sync("metrics-broken"))
      assert.isTrue(Exit.isFailure(exit))

      const m = yield* scrape
      assert.strictEqual(m.value("rosterd_sync_runs_total", { district: "metrics-broken", status: "failed" }), 1)
      assert.isUndefined(m.value("rosterd_sync_runs_total", { district: "metrics-broken", status: "succeeded" }))
      assert.strictEqual(m.histogram("rosterd_sync_run_duration_seconds", { district: "metrics-broken", mode: "full" })?.count, 1)
      assert.strictEqual(m.histogram("rosterd_sync_run_duration_seconds", { district: "metrics-small", mode: "full" })?.count, 1)
      assert.strictEqual(m.value("rosterd_district_failing", { district: "metrics-broken" }), 1)
      // Never synced successfully: no age, and not stale yet (it was just added).
      assert.isUndefined(m.value("rosterd_district_seconds_since_success", { district: "metrics-broken" }))
      assert.strictEqual(m.value("rosterd_district_stale", { district: "metrics-broken" }), 0)
      // Nothing was applied: no records counted for it.
      assert.isUndefined(m.value("rosterd_records_changed_total", { district: "metrics-broken", kind: "users", action: "created" }))
      // The earlier district is unchanged.
      assert.strictEqual(m.value("rosterd_sync_runs_total", { district: "metrics-small", status: "succeeded" }), 1)
      assert.strictEqual(m.value("rosterd_district_failing", { district: "metrics-small" }), 0)
      assert.strictEqual(m.value("rosterd_leases_held"), 0)
    }))

  it.effect("stale without a recent sync, but not while paused; a removed district's series disappear", () =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      const sql = yield* SqlClient.SqlClient
      const pauses = yield* Pauses
      yield* store.addDistrict({ id: "metrics-idle" as DistrictId, name: "Idle", provider: "oneroster-csv", timezone: "UTC", settings: { path: "/nowhere" }, rules: noCalendar })
      yield* sql`UPDATE districts SET created_at = now() - interval '25 hours' WHERE id = 'metrics-idle'`
      const before = yield* scrape
      assert.strictEqual(before.value("rosterd_district_stale", { district: "metrics-idle" }), 1)
      assert.strictEqual(before.value("rosterd_district_paused", { district: "metrics-idle" }), 0)

      const today = localDateAt(new Date(), "UTC")
      yield* pauses.add({ district: "metrics-idle", from: today, until: today, reason: "SIS migration", by: "test" })
      const paused = yield* scrape
      assert.strictEqual(paused.value("rosterd_district_stale", { district: "metrics-idle" }), 0)
      assert.strictEqual(paused.value("rosterd_district_paused", { district: "metrics-idle" }), 1)
      assert.notInclude(paused.text, "SIS migration")

      yield* store.removeDistrict("metrics-idle")
      const removed = yield* scrape
      for (const name of ["rosterd_district_stale", "rosterd_district_paused", "rosterd_district_failing", "rosterd_holds_pending"]) {
        assert.isUndefined(removed.value(name, { district: "metrics-idle" }), name)
      }
    }))

  it.effect("the leases gauge counts the leases this process holds", () =>
    Effect.gen(function*() {
      const leases = yield* DistrictLease
      yield* Effect.scoped(Effect.gen(function*() {
        yield* leases.hold("lease-a")
        yield* leases.hold("lease-b")
        assert.strictEqual((yield* scrape).value("rosterd_leases_held"), 2)
      }))
      assert.strictEqual((yield* scrape).value("rosterd_leases_held"), 0)
    }))

  it.effect("fails soft: 503 with one line when the database does not answer", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // Renaming a table takes its owner (the tests connect as rosterd's app role).
      yield* asOwner(`ALTER TABLE outbox RENAME TO outbox_hidden`)
      const down = yield* getMetrics.pipe(Effect.ensuring(asOwner(`ALTER TABLE outbox_hidden RENAME TO outbox`)))
      assert.strictEqual(down.status, 503)
      assert.strictEqual(down.headers["cache-control"], "no-store")
      assert.match(down.text, /^metrics unavailable[^\n]*\n$/)
      assert.strictEqual((yield* getMetrics).status, 200)
    }))
})
