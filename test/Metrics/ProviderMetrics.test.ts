import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Metrics } from "../../src/Metrics/Metrics.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import type { FaultRule } from "../support/FakeClever/index.ts"
import { fastProviderRetries, syncTestLayer } from "../support/Layers.ts"
import { FakeCleverDistrict, fakeCleverDistrictLayer } from "../support/FakeCleverDistrict.ts"
import { parseScrape } from "./support.ts"

/**
 * Provider requests and retries in the metrics, against the fake Clever API (a real HTTP
 * server on loopback) with injected faults: every request the fake logs is counted by its
 * status, and each retry by its reason.
 */

const TOKEN = "clever-metrics-token"

const Fake = FakeCleverDistrict
const FakeLayer = fakeCleverDistrictLayer({ token: TOKEN, students: 30 })

/** Fast retries, so fault tests take milliseconds. */
const TestLayer = Layer.merge(
  syncTestLayer(fastProviderRetries),
  FakeLayer
)

const scrape = Effect.flatMap(Metrics, (metrics) => metrics.render).pipe(Effect.map(({ text }) => ({ text, ...parseScrape(text) })))

/** Runs a fresh Clever district with `fault` injected; the counters' increments and the fake's request log. */
const syncWith = (id: string, fault?: FaultRule) =>
  Effect.gen(function*() {
    const fake = yield* Fake
    const store = yield* RosterStore
    yield* store.addDistrict({
      id: id as DistrictId,
      name: id,
      provider: "clever",
      timezone: "America/Chicago",
      settings: { districtId: fake.districtId, tokenFile: fake.tokenFile, baseUrl: fake.baseUrl, pageSize: 25 }
    })
    const before = yield* scrape
    fake.requests.length = 0
    if (fault !== undefined) fake.faults.inject(fault)
    const summary = yield* Effect.flatMap(Sync, (sync) => sync.run(id, { request: "full", trigger: "test" })).pipe(
      Effect.ensuring(Effect.sync(() => fake.faults.clear()))
    )
    const after = yield* scrape
    const delta = (name: string, labels: Record<string, string>) => (after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0)
    const logged = (status: number) => fake.requests.filter((r) => r.status === status).length
    return {
      summary,
      after,
      requests: (status: string) => delta("rosterd_provider_requests_total", { provider: "clever", status }),
      retries: (reason: string) => delta("rosterd_provider_retries_total", { provider: "clever", reason }),
      logged,
      total: fake.requests.length
    }
  })

layer(TestLayer, { timeout: "120 seconds", excludeTestServices: true })("provider metrics", (it) => {
  it.effect("a clean sync: every request counted by status, no retries", () =>
    Effect.gen(function*() {
      const run = yield* syncWith("metrics-clean")
      assert.strictEqual(run.summary.status, "succeeded")
      assert.isAbove(run.total, 5)
      assert.strictEqual(run.requests("200"), run.logged(200))
      assert.strictEqual(run.requests("200"), run.total)
      for (const reason of ["503", "429", "timeout", "connection", "broken", "invalid_body"]) assert.strictEqual(run.retries(reason), 0)
      assert.strictEqual(run.after.family("rosterd_provider_requests_total")?.type, "COUNTER")
      // Labels: the provider id and a status, never the URL, its query or the token.
      assert.notInclude(run.after.text, TOKEN)
      assert.notInclude(run.after.text, "/v3.0")
      assert.notInclude(run.after.text, "127.0.0.1")
    }))

  it.effect("a 503: the failed request and its retry are counted", () =>
    Effect.gen(function*() {
      const run = yield* syncWith("metrics-503", { kind: "status", status: 503, match: "/v3.0/users", times: 1 })
      assert.strictEqual(run.summary.status, "succeeded")
      assert.strictEqual(run.logged(503), 1)
      assert.strictEqual(run.requests("503"), 1)
      assert.strictEqual(run.retries("503"), 1)
      assert.strictEqual(run.requests("200"), run.logged(200))
      assert.strictEqual(run.requests("200") + run.requests("503"), run.total)
    }))

  it.effect("a 429 and an HTML error page: retried, each under its own reason", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      fake.faults.inject({ kind: "notJson", match: "/v3.0/sections", times: 1 })
      const run = yield* syncWith("metrics-429", { kind: "rateLimit", retryAfterSeconds: 1, match: "/v3.0/users", times: 1 })
      assert.strictEqual(run.summary.status, "succeeded")
      assert.strictEqual(run.requests("429"), 1)
      assert.strictEqual(run.retries("429"), 1)
      // The HTML page came with a 200: counted as a 200 request, retried as an invalid body.
      assert.strictEqual(run.retries("invalid_body"), 1)
      assert.strictEqual(run.requests("200"), run.logged(200))
    }))

  it.effect("a 500 that does not go away: bounded retries, all counted, the run fails", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      const store = yield* RosterStore
      yield* store.addDistrict({
        id: "metrics-500" as DistrictId,
        name: "metrics-500",
        provider: "clever",
        timezone: "America/Chicago",
        settings: { districtId: fake.districtId, tokenFile: fake.tokenFile, baseUrl: fake.baseUrl, pageSize: 25 }
      })
      const before = yield* scrape
      fake.faults.inject({ kind: "status", status: 500, match: "/v3.0/sections", times: 100 })
      const failed = yield* Effect.flip(Effect.flatMap(Sync, (sync) => sync.run("metrics-500", { request: "full", trigger: "test" }))).pipe(
        Effect.ensuring(Effect.sync(() => fake.faults.clear()))
      )
      assert.strictEqual(failed._tag, "ProviderError")
      const after = yield* scrape
      const delta = (name: string, labels: Record<string, string>) => (after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0)
      // attempts = 4: the first and three retries.
      assert.strictEqual(delta("rosterd_provider_requests_total", { provider: "clever", status: "500" }), 4)
      assert.strictEqual(delta("rosterd_provider_retries_total", { provider: "clever", reason: "500" }), 3)
      assert.strictEqual(after.value("rosterd_sync_runs_total", { district: "metrics-500", status: "failed" }), 1)
    }))
})
