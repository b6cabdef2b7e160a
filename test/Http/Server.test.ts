import { HttpClient, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { DistrictId } from "../../src/Domain/District.ts"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import { HttpRoutes } from "../../src/Http/Server.ts"
import { Freshness } from "../../src/Schedule/Freshness.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { asOwner } from "../support/Database.ts"

/** The monitoring endpoints on a real HTTP server (random port), over a real database. */
const ServerLayer = HttpServer.serve(HttpRoutes).pipe(
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.provideMerge(Freshness.Default.pipe(Layer.provide(ConfigFile.fromDocument({})))),
  Layer.provideMerge(SyncTestLayer)
)

const getJson = (path: string) =>
  Effect.gen(function*() {
    const response = yield* HttpClient.get(path)
    const body = yield* response.json
    return { status: response.status, body: body as any, headers: response.headers }
  }).pipe(Effect.scoped)

layer(ServerLayer, { timeout: "120 seconds", excludeTestServices: true })("HTTP endpoints", (it) => {
  const small = tempDir()
  writeSmallDistrict(small.dir)

  it.effect("/healthz answers while the process is alive", () =>
    Effect.gen(function*() {
      const { body, status } = yield* getJson("/healthz")
      assert.strictEqual(status, 200)
      assert.deepStrictEqual(body, { status: "ok" })
    }))

  it.effect("/readyz is ready on a migrated database, and 503 when the database lacks the migrations", () =>
    Effect.gen(function*() {
      const ready = yield* getJson("/readyz")
      assert.strictEqual(ready.status, 200)
      const sql = yield* SqlClient.SqlClient
      // Renaming a table takes its owner (the tests connect as rosterd's app role).
      yield* asOwner(`ALTER TABLE rosterd_migrations RENAME TO rosterd_migrations_hidden`)
      const unready = yield* getJson("/readyz")
      yield* asOwner(`ALTER TABLE rosterd_migrations_hidden RENAME TO rosterd_migrations`)
      assert.strictEqual(unready.status, 503)
      assert.strictEqual(unready.body.status, "not ready")
    }))

  it.effect("/status follows the status contract, before and after a sync", () =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      yield* store.addDistrict({ id: "small" as DistrictId, name: "Small", provider: "oneroster-csv", timezone: "UTC", settings: { path: small.dir } })
      const before = yield* getJson("/status")
      assert.strictEqual(before.status, 200)
      assert.deepStrictEqual(before.body, [{ district: "small", name: "Small", provider: "oneroster-csv", timezone: "UTC", lastRun: null, lastSuccessAt: null, nextRunAt: null, nextRun: null, paused: null, pendingHold: null, deferred: null, stale: false, failing: false }])

      const summary = yield* Effect.flatMap(Sync, (sync) => sync.run("small", { request: "auto", trigger: "test" }))
      const after = yield* getJson("/status")
      const [entry] = after.body
      assert.strictEqual(entry.lastRun.id, summary.runId)
      assert.strictEqual(entry.lastRun.status, "succeeded")
      assert.strictEqual(entry.lastRun.mode, "full")
      assert.deepStrictEqual(entry.lastRun.counts, summary.counts)
      assert.strictEqual(entry.lastSuccessAt, entry.lastRun.finishedAt)
      assert.match(entry.lastRun.startedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      assert.strictEqual(after.headers["cache-control"], "no-store")
      // Source IDs and counts only: nothing personal from the roster.
      const text = JSON.stringify(after.body)
      for (const personal of ["tess@small.example", "Tess", "Sam", "2014-03-01"]) assert.notInclude(text, personal)
    }))

  it.effect("an unknown path is 404 with no body; no answer names the software or its version", () =>
    Effect.gen(function*() {
      const response = yield* HttpClient.get("/nope").pipe(Effect.scoped)
      assert.strictEqual(response.status, 404)
      for (const path of ["/healthz", "/readyz", "/status", "/metrics", "/nope"]) {
        const { headers, text } = yield* HttpClient.get(path).pipe(
          Effect.flatMap((r) => Effect.map(r.text, (text) => ({ headers: r.headers, text }))),
          Effect.scoped
        )
        assert.notProperty(headers, "server", path)
        assert.notProperty(headers, "x-powered-by", path)
        assert.notMatch(text, /rosterd\/\d|node\/?v?\d|version="?v?\d|effect@|at .*\.ts:\d+/i, path)
      }
    }))
})
