import { FetchHttpClient } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { DistrictLease } from "../../src/Reconcile/Lease.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { type FakeClever, start as startClever } from "../support/FakeClever/index.ts"
import type { FaultRule } from "../support/FakeClever/index.ts"
import type { OneRosterFaultRule } from "../support/FakeOneRoster/index.ts"
import { FakeCleverDistrict, fakeCleverDistrictLayer } from "../support/FakeCleverDistrict.ts"
import { tempDir } from "../support/Fixtures.ts"
import { fastProviderRetries, syncTestLayer } from "../support/Layers.ts"
import { hasOpenssl, selfSignedCertificate } from "../Mail/SmtpTestServer.ts"
import {
  addAndSync,
  assertRejected,
  fetchTrusting,
  HostileOneRoster,
  hostileOneRosterLayer,
  hostileRun,
  oneRosterPersonal,
  startCatcher
} from "./ProviderCases.ts"

/**
 * Hostile HTTP behaviour from the two REST sources (issue 14, "bounded providers"): lying or
 * absurd totals, servers that ignore `offset` or never end, next links that stand still,
 * loop, leave the district's origin or drop to plain http, redirects elsewhere, bodies of
 * gigabytes or without end or drip-fed, absurd waits and headers — and a run past its
 * deadline. Each case: the process survives with bounded memory, nothing of the run is
 * applied (after a first good sync), the error names what and where without echoing the
 * hostile value, and neither the credentials nor anyone's name or e-mail is printed.
 */

const TOKEN = "hostile-clever-token-5f1d2c"
const CLEVER = "http-clever"
const ONEROSTER = "http-oneroster"

const settings = new Map([
  ...fastProviderRetries,
  ["rosterd.providers.timeout", "1 second"],
  ["rosterd.providers.maxResponseBytes", "4 MiB"],
  // Small caps over a small district, so a never-ending server is stopped after few pages.
  ["rosterd.providers.recordsMargin", "300"]
])

const TestLayer = Layer.mergeAll(
  syncTestLayer(settings),
  fakeCleverDistrictLayer({ token: TOKEN, students: 30 }),
  hostileOneRosterLayer(30)
)

const cleverPersonal = (fake: FakeClever) =>
  fake.district.users.all().slice(0, 40).flatMap((user) => [user.email ?? "", `${user.name?.first ?? ""} ${user.name?.last ?? ""}`.trim()])
    .filter((value) => value.length >= 6)

/** A hostile run of the Clever district with `rule` injected. */
const cleverCase = (rule: FaultRule, request: "full" | "delta" = "full", district = CLEVER) =>
  Effect.gen(function*() {
    const fake = yield* FakeCleverDistrict
    return yield* hostileRun(district, request, () => void fake.faults.inject(rule), () => fake.faults.clear())
  })

/** A hostile run of the OneRoster district with `rule` injected. */
const oneRosterCase = (rule: OneRosterFaultRule) =>
  Effect.gen(function*() {
    const fake = yield* HostileOneRoster
    return yield* hostileRun(ONEROSTER, "full", () => void fake.faults.inject(rule), () => fake.faults.clear())
  })

const leaks = Effect.gen(function*() {
  const clever = yield* FakeCleverDistrict
  const oneRoster = yield* HostileOneRoster
  return [TOKEN, oneRoster.key, oneRoster.secret, ...cleverPersonal(clever), ...oneRosterPersonal(oneRoster)]
})

const USERS = "/ims/oneroster/v1p1/users"

layer(TestLayer, { timeout: "180 seconds", excludeTestServices: true })("hostile: HTTP behaviour", (it) => {
  it.effect("two districts, one per source, after a first good sync (the state every case must leave as it is)", () =>
    Effect.gen(function*() {
      const clever = yield* FakeCleverDistrict
      const oneRoster = yield* HostileOneRoster
      yield* addAndSync(CLEVER, "clever", { districtId: clever.districtId, tokenFile: clever.tokenFile, baseUrl: clever.baseUrl, pageSize: 10 })
      yield* addAndSync(ONEROSTER, "oneroster-rest", {
        baseUrl: oneRoster.baseUrl,
        auth: "oauth1",
        keyFile: oneRoster.files.key,
        secretFile: oneRoster.files.secret,
        pageSize: 10
      })
    }))

  it.effect("OneRoster X-Total-Count: 1000000000000 → fails at once (TooLarge) before a second request, the total never echoed", () =>
    Effect.gen(function*() {
      const fake = yield* HostileOneRoster
      fake.requests.length = 0
      const outcome = yield* oneRosterCase({ kind: "headers", headers: { "X-Total-Count": "1000000000000" }, match: USERS, times: Infinity })
      assertRejected(outcome, { reason: "TooLarge", names: [`GET ${USERS}`, "X-Total-Count", "rosterd.providers.recordsGrowth"], leaks: ["1000000000000", ...(yield* leaks)] })
      assert.strictEqual(fake.requests.filter((r) => r.path.startsWith(USERS)).length, 1)
    }))

  it.effect("OneRoster X-Total-Count: 1e3 (not a plain integer) → fails at once (Malformed), naming the header and endpoint", () =>
    Effect.gen(function*() {
      const outcome = yield* oneRosterCase({ kind: "headers", headers: { "X-Total-Count": "1e3" }, match: USERS, times: Infinity })
      assertRejected(outcome, { reason: "Malformed", names: [`GET ${USERS}`, "X-Total-Count", "is not a non-negative integer"], leaks: yield* leaks })
    }))

  it.effect("OneRoster X-Total-Count: -1 → fails at once (Malformed)", () =>
    Effect.gen(function*() {
      const outcome = yield* oneRosterCase({ kind: "headers", headers: { "X-Total-Count": "-1" }, match: USERS, times: Infinity })
      assertRejected(outcome, { reason: "Malformed", names: [`GET ${USERS}`, "X-Total-Count"], leaks: yield* leaks })
    }))

  it.effect("OneRoster server that ignores offset → stopped at the second page (Malformed), naming the listing and offsets", () =>
    Effect.gen(function*() {
      const outcome = yield* oneRosterCase({ kind: "ignoreOffset", match: USERS, times: Infinity })
      assertRejected(outcome, { reason: "Malformed", names: [`GET ${USERS} at offset 10`, "offset 0", "holds the same 10 records"], leaks: yield* leaks })
    }))

  it.effect("OneRoster pages that never end (no total, records made up forever) → stopped at the record cap (TooLarge), naming the setting", () =>
    Effect.gen(function*() {
      const fake = yield* HostileOneRoster
      fake.requests.length = 0
      const outcome = yield* oneRosterCase({ kind: "neverEmpty", match: USERS, times: Infinity })
      assertRejected(outcome, { reason: "TooLarge", names: [`GET ${USERS}`, /more than [\d,]+ records/, "rosterd.providers.recordsGrowth"], leaks: yield* leaks })
      // Cap: 10 × the users of the first sync + 300, at 10 a page.
      assert.isBelow(fake.requests.filter((r) => r.path.startsWith(USERS)).length, 200)
    }))

  it.effect("OneRoster X-Total-Count that lies (600 announced, ~40 served) → fails at the first empty page (Truncated)", () =>
    Effect.gen(function*() {
      const outcome = yield* oneRosterCase({ kind: "headers", headers: { "X-Total-Count": "600" }, match: USERS, times: Infinity })
      assertRejected(outcome, { reason: "Truncated", names: ["users", "X-Total-Count", "ended early"], leaks: yield* leaks })
    }))

  it.effect("a 1 GiB body announced by Content-Length → refused before reading (TooLarge), naming the endpoint and the setting", () =>
    Effect.gen(function*() {
      const outcome = yield* oneRosterCase({ kind: "hugeBody", bytes: 1024 ** 3, match: "/ims/oneroster/v1p1/classes", times: Infinity })
      assertRejected(outcome, { reason: "TooLarge", names: ["/ims/oneroster/v1p1/classes", "4 MiB", "rosterd.providers.maxResponseBytes"], leaks: yield* leaks })
    }))

  it.effect("a 1 GiB body without Content-Length → reading stops at the cap (TooLarge), memory bounded", () =>
    Effect.gen(function*() {
      const outcome = yield* cleverCase({ kind: "hugeBody", bytes: 1024 ** 3, declareLength: false, match: "/v3.0/sections", times: Infinity })
      assertRejected(outcome, { reason: "TooLarge", names: ["/v3.0/sections", "rosterd.providers.maxResponseBytes"], leaks: yield* leaks, memoryMiB: 128 })
    }))

  it.effect("a body that never ends → reading stops at the cap (TooLarge)", () =>
    Effect.gen(function*() {
      const outcome = yield* cleverCase({ kind: "endlessBody", match: "/v3.0/users", times: Infinity })
      assertRejected(outcome, { reason: "TooLarge", names: ["/v3.0/users", "rosterd.providers.maxResponseBytes"], leaks: yield* leaks, memoryMiB: 128 })
    }))

  it.effect("a body drip-fed a byte at a time → each attempt times out; Unreachable after bounded retries", () =>
    Effect.gen(function*() {
      const outcome = yield* oneRosterCase({ kind: "drip", chunkBytes: 1, intervalMs: 100, match: "/ims/oneroster/v1p1/orgs", times: Infinity })
      assertRejected(outcome, { reason: "Unreachable", names: ["/ims/oneroster/v1p1/orgs", "failed 4 times", "no answer within"], leaks: yield* leaks })
    }))

  it.effect("a 302 redirect to another origin → refused (Unsafe); the other origin receives nothing, least of all the token", () =>
    Effect.gen(function*() {
      const catcher = yield* Effect.acquireRelease(Effect.promise(startCatcher), (c) => Effect.promise(() => c.close()))
      const outcome = yield* cleverCase({ kind: "redirect", location: `${catcher.url}/v3.0/users?limit=10`, match: "/v3.0/users", times: Infinity })
      assertRejected(outcome, { reason: "Unsafe", names: ["/v3.0/users", "another origin", "not followed"], leaks: [catcher.url, ...(yield* leaks)] })
      assert.deepStrictEqual(catcher.requests, [])
    }).pipe(Effect.scoped))

  it.effect("redirects that loop on the same origin → stopped after 5 (Malformed)", () =>
    Effect.gen(function*() {
      const outcome = yield* cleverCase({ kind: "redirect", location: "/v3.0/terms?limit=10", match: "/v3.0/terms", times: Infinity })
      assertRejected(outcome, { reason: "Malformed", names: ["/v3.0/terms", "redirected more than 5 times"], leaks: yield* leaks })
    }))

  it.effect("Retry-After: 1000000000000 → gives up at once (Unreachable) instead of waiting", () =>
    Effect.gen(function*() {
      const fake = yield* FakeCleverDistrict
      fake.requests.length = 0
      const outcome = yield* cleverCase({ kind: "rateLimit", retryAfterSeconds: 1e12, match: "/v3.0/courses", times: Infinity })
      assertRejected(outcome, { reason: "Unreachable", names: ["/v3.0/courses", "asks to wait", "giving up"], leaks: yield* leaks })
      assert.strictEqual(fake.requests.filter((r) => r.path.startsWith("/v3.0/courses")).length, 1)
    }))

  it.effect("a 64 KiB response header → the response is refused by the HTTP client (Unreachable after bounded retries)", () =>
    Effect.gen(function*() {
      const outcome = yield* cleverCase({ kind: "headers", headers: { "X-Padding": "x".repeat(64 * 1024) }, match: "/v3.0/schools", times: Infinity })
      assertRejected(outcome, { reason: "Unreachable", names: ["/v3.0/schools", "failed 4 times"], leaks: yield* leaks })
    }))

  it.effect("binary garbage instead of JSON → Malformed after bounded retries, the body never echoed", () =>
    Effect.gen(function*() {
      const garbage = "\u0089PNG\r\n\u001a\n\u0000\u0000\u0000\rIHDR-garbage-7f3a"
      const outcome = yield* cleverCase({ kind: "body", body: garbage, contentType: "image/png", match: "/v3.0/sections", times: Infinity })
      assertRejected(outcome, { reason: "Malformed", names: ["/v3.0/sections", "not JSON"], leaks: ["IHDR-garbage-7f3a", ...(yield* leaks)] })
    }))

  it.effect("Clever next link pointing to itself → fails at once (Malformed), naming the page", () =>
    Effect.gen(function*() {
      const fake = yield* FakeCleverDistrict
      fake.requests.length = 0
      const outcome = yield* cleverCase({ kind: "next", to: "self", match: "/v3.0/users", times: Infinity })
      assertRejected(outcome, { reason: "Malformed", names: ["the next link of /v3.0/users?limit=10", "points to the same page"], leaks: yield* leaks })
      assert.strictEqual(fake.requests.filter((r) => r.path.startsWith("/v3.0/users")).length, 1)
    }))

  it.effect("Clever next link back to the first page (a loop) → fails (Malformed)", () =>
    Effect.gen(function*() {
      const outcome = yield* cleverCase({ kind: "next", to: "first", match: "/v3.0/users", after: 1, times: Infinity })
      assertRejected(outcome, { reason: "Malformed", names: ["/v3.0/users", "starting_after=", "points back to a page already read"], leaks: yield* leaks })
    }))

  it.effect("Clever next link that keeps the same starting_after under another URL → fails (Malformed)", () =>
    Effect.gen(function*() {
      const outcome = yield* cleverCase({ kind: "next", to: "sameCursor", match: "/v3.0/users", after: 1, times: Infinity })
      assertRejected(outcome, { reason: "Malformed", names: ["/v3.0/users", "keeps the same starting_after"], leaks: yield* leaks })
    }))

  it.effect("Clever next link to another origin → refused (Unsafe); that origin never sees the token", () =>
    Effect.gen(function*() {
      const catcher = yield* Effect.acquireRelease(Effect.promise(startCatcher), (c) => Effect.promise(() => c.close()))
      const outcome = yield* cleverCase({ kind: "next", to: `${catcher.url}{real}`, match: "/v3.0/users", times: Infinity })
      assertRejected(outcome, { reason: "Unsafe", names: ["the next link of /v3.0/users?limit=10", "another origin"], leaks: [catcher.url, ...(yield* leaks)] })
      assert.deepStrictEqual(catcher.requests, [])
    }).pipe(Effect.scoped))

  it.effect("the same page served again under a moving next link (duplicate pages) → fails (Malformed)", () =>
    Effect.gen(function*() {
      const outcome = yield* cleverCase({ kind: "repeatPage", match: "/v3.0/users", after: 1, times: Infinity })
      assertRejected(outcome, { reason: "Malformed", names: ["/v3.0/users", "holds the same 10 records as the page before it"], leaks: yield* leaks })
    }))

  it.effect("a Clever events next link pointing to itself → fails (Malformed) instead of paging forever", () =>
    Effect.gen(function*() {
      const outcome = yield* cleverCase({ kind: "next", to: "self", match: "/v3.0/events?limit", times: Infinity }, "delta")
      assertRejected(outcome, { reason: "Malformed", names: ["the next link of /v3.0/events", "points to the same page"], leaks: yield* leaks })
    }))

  it.effect.skipIf(!hasOpenssl)("Clever over https, a next link down to http → refused (Unsafe); nothing is asked over plain http", () =>
    Effect.gen(function*() {
      const fake = yield* FakeCleverDistrict
      const dir = yield* Effect.acquireRelease(Effect.sync(() => tempDir("hostile-tls-")), (d) => Effect.sync(d.remove))
      const { cert, key } = selfSignedCertificate(dir.dir)
      const secure = yield* Effect.acquireRelease(
        Effect.promise(() => startClever(fake.district, { token: TOKEN, tls: { key, cert }, rateLimit: false })),
        (s) => Effect.promise(() => s.close())
      )
      const trusting = Effect.provideService(FetchHttpClient.Fetch, fetchTrusting(cert))
      yield* addAndSync("https-clever", "clever", { districtId: fake.districtId, tokenFile: fake.tokenFile, baseUrl: secure.baseUrl, pageSize: 10 }).pipe(trusting)
      assert.isTrue(secure.baseUrl.startsWith("https://"))
      const plain = secure.baseUrl.replace(/^https:/, "http:")
      const outcome = yield* hostileRun("https-clever", "full", () => void secure.faults.inject({ kind: "next", to: `${plain}{real}`, match: "/v3.0/users", times: Infinity }), () => secure.faults.clear())
        .pipe(trusting)
      assertRejected(outcome, { reason: "Unsafe", names: ["the next link of /v3.0/users?limit=10", "from https to http"], leaks: yield* leaks })
      assert.isTrue(secure.requests.every((r) => r.auth))
    }).pipe(Effect.scoped))
})

/**
 * The whole-run deadline, with a source slower than it: its own layer, so the deadline
 * (`rosterd.sync.runTimeout`) is short and the provider's per-request timeout long.
 */
const DeadlineLayer = Layer.mergeAll(
  syncTestLayer(new Map([...fastProviderRetries, ["rosterd.providers.timeout", "2 minutes"], ["rosterd.sync.runTimeout", "6 seconds"]])),
  fakeCleverDistrictLayer({ token: TOKEN, students: 30 })
)

layer(DeadlineLayer, { timeout: "120 seconds", excludeTestServices: true })("hostile: HTTP behaviour", (it) => {
  describe("run deadline", () => {
    it.effect("a source slower than rosterd.sync.runTimeout (a page drip-fed mid-staging) → Timeout: rolled back, recorded failed, the lease free", () =>
      Effect.gen(function*() {
        const fake = yield* FakeCleverDistrict
        const sql = yield* SqlClient.SqlClient
        yield* addAndSync("deadline", "clever", { districtId: fake.districtId, tokenFile: fake.tokenFile, baseUrl: fake.baseUrl, pageSize: 10 })
        const outcome = yield* cleverCase({ kind: "drip", chunkBytes: 1, intervalMs: 200, match: "/v3.0/users", after: 1, times: Infinity }, "full", "deadline")
        assertRejected(outcome, { reason: "Timeout", names: ["6s", "rosterd.sync.runTimeout", "nothing was applied"], leaks: [TOKEN, ...cleverPersonal(fake)] })
        // No run is left running, and the lease is free: it can be taken, and another sync runs.
        const [running] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM sync_runs WHERE district_id = 'deadline' AND status = 'running'`
        assert.strictEqual(running!.n, 0)
        yield* Effect.scoped(Effect.flatMap(DistrictLease, (leases) => leases.hold("deadline"))).pipe(Effect.provide(DistrictLease.Default))
        const again = yield* Effect.flatMap(Sync, (sync) => sync.run("deadline", { request: "full", trigger: "test" }))
        assert.strictEqual(again.status, "succeeded")
      }))
  })
})
