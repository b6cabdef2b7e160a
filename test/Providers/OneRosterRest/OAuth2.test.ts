import { FetchHttpClient, HttpClient } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { assert, describe, it, layer } from "@effect/vitest"
import { Context, Duration, Effect, Layer, TestClock } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../../src/Domain/District.ts"
import { makeTokenCache, renewalMargin } from "../../../src/Providers/OneRosterRest/OAuth2.ts"
import { Sync } from "../../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../../src/Store/RosterStore.ts"
import { rosterFingerprint } from "../../support/Database.ts"
import { type FakeOneRoster, fromOneRosterCsv, start } from "../../support/FakeOneRoster/index.ts"
import { generated, readRows, tempDir } from "../../support/Fixtures.ts"
import { fastProviderRetries, syncTestLayer } from "../../support/Layers.ts"

/**
 * OAuth 2.0 client credentials against the fake OneRoster server's token endpoint: the
 * token cache (Effect's TestClock drives expiry), full syncs that ask for one token, a token
 * expiring in the middle of a run (renewed on the 401, the run completes), a wrong secret
 * (refused at the token endpoint: nothing read, nothing applied) — and the secret and the
 * tokens nowhere in what rosterd keeps.
 */

const CLIENT_ID = "ic-client-42"
const CLIENT_SECRET = "ic-client-secret-0123456789"
const retry = { attempts: 3, base: Duration.millis(10), max: Duration.millis(50), maxRateLimitWait: Duration.seconds(1), timeout: Duration.seconds(5) }

describe("the OAuth 2.0 token cache", () => {
  const credentials = (fake: FakeOneRoster, overrides: Partial<{ clientSecret: string; tokenAuth: "basic" | "body" }> = {}) => ({
    tokenUrl: fake.tokenUrl,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    scope: null,
    tokenAuth: "basic" as const,
    ...overrides
  })
  const withFake = <A, E>(options: Parameters<typeof start>[1], use: (fake: FakeOneRoster) => Effect.Effect<A, E, HttpClient.HttpClient>) =>
    Effect.acquireUseRelease(
      Effect.promise(async () => {
        const { OneRosterDistrict } = await import("../../support/FakeOneRoster/index.ts")
        return start(OneRosterDistrict.empty(), options)
      }),
      use,
      (fake) => Effect.promise(() => fake.close())
    ).pipe(Effect.provide(FetchHttpClient.layer))

  it.effect("keeps a token until shortly before expires_in (by the Clock), then asks for a new one", () =>
    withFake({ oauth2: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, expiresInSeconds: 3600 } }, (fake) =>
      Effect.gen(function*() {
        const cache = makeTokenCache({ client: yield* HttpClient.HttpClient, retry })
        const c = credentials(fake)
        const first = yield* cache.token(c)
        assert.strictEqual(yield* cache.token(c), first)
        assert.strictEqual(fake.oauth2!.issued, 1)
        // Just before the renewal point: still the same token.
        yield* TestClock.adjust(Duration.millis(3_600_000 - renewalMargin(3_600_000) - 1))
        assert.strictEqual(yield* cache.token(c), first)
        yield* TestClock.adjust(Duration.millis(2))
        const second = yield* cache.token(c)
        assert.notStrictEqual(second, first)
        assert.strictEqual(fake.oauth2!.issued, 2)
        // A token the API refused is dropped; one another request already replaced is not.
        yield* cache.invalidate(c, first)
        assert.strictEqual(yield* cache.token(c), second)
        yield* cache.invalidate(c, second)
        assert.notStrictEqual(yield* cache.token(c), second)
        assert.strictEqual(fake.oauth2!.issued, 3)
      })))

  it.effect("concurrent requests for an expired token share one token request; the secret can go in the body", () =>
    withFake({ oauth2: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, clientAuth: "body", expiresInSeconds: null } }, (fake) =>
      Effect.gen(function*() {
        const cache = makeTokenCache({ client: yield* HttpClient.HttpClient, retry })
        const tokens = yield* Effect.all(Array.from({ length: 5 }, () => cache.token(credentials(fake, { tokenAuth: "body" }))), { concurrency: 5 })
        assert.strictEqual(new Set(tokens).size, 1)
        assert.strictEqual(fake.oauth2!.issued, 1)
        // Without expires_in a token is kept however long: until the API refuses it.
        yield* TestClock.adjust(Duration.days(30))
        assert.strictEqual(yield* cache.token(credentials(fake, { tokenAuth: "body" })), tokens[0])
        // Basic against a server that wants the body: refused, like a wrong secret.
        const refused = yield* Effect.flip(cache.token(credentials(fake)))
        assert.strictEqual(refused.reason, "Unauthorized")
      })))

  it.effect("a wrong secret is refused at once (no retries), with the status and the RFC 6749 code, never the secret", () =>
    withFake({ oauth2: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET } }, (fake) =>
      Effect.gen(function*() {
        const cache = makeTokenCache({ client: yield* HttpClient.HttpClient, retry })
        const error = yield* Effect.flip(cache.token(credentials(fake, { clientSecret: "not-the-secret" })))
        assert.strictEqual(error.reason, "Unauthorized")
        assert.strictEqual(error.message, "the OAuth 2.0 token endpoint /oauth2/token refused the client credentials (HTTP 401 invalid_client); check the district's client id and secret")
        assert.notInclude(error.message, "not-the-secret")
        assert.strictEqual(fake.requests.length, 1)
      })))
})

interface Served extends FakeOneRoster {
  readonly files: { readonly id: string; readonly secret: string; readonly badSecret: string; readonly key: string; readonly oauth1Secret: string }
  readonly csv: string
}
class Fake extends Context.Tag("test/FakeOneRosterOAuth2")<Fake, Served>() {}

const FakeLayer = Layer.scoped(
  Fake,
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = tempDir("oneroster-oauth2-")
      const csv = NodePath.join(dir.dir, "csv")
      generated(csv, 120)
      const fake = await start(await fromOneRosterCsv(csv), {
        oauth: { key: "k1", secret: "s1" },
        oauth2: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, expiresInSeconds: 3600 },
        maxLimit: 1000
      })
      const write = (name: string, value: string) => {
        const file = NodePath.join(dir.dir, name)
        Fs.writeFileSync(file, value)
        return file
      }
      const files = { id: write("id", CLIENT_ID), secret: write("secret", CLIENT_SECRET), badSecret: write("bad", "wrong-secret-xyz"), key: write("key", "k1"), oauth1Secret: write("s1", "s1") }
      return Object.assign(fake, { files, csv, remove: dir.remove })
    }),
    (fake) => Effect.promise(async () => {
      await fake.close()
      fake.remove()
    })
  )
)

const add = (id: string, settings: Record<string, unknown>) =>
  Effect.gen(function*() {
    const fake = yield* Fake
    yield* Effect.flatMap(RosterStore, (store) =>
      store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-rest", timezone: "UTC", settings: { baseUrl: fake.baseUrl, pageSize: 50, ...settings } }))
  })
const oauth2 = (fake: Served) => ({ auth: "oauth2", tokenUrl: fake.tokenUrl, clientIdFile: fake.files.id, clientSecretFile: fake.files.secret })
const run = (id: string, request: "auto" | "full" | "delta" = "full") => Effect.flatMap(Sync, (sync) => sync.run(id, { request, trigger: "test" }))

/** Every text column of the run records and districts, and the findings: where a secret must never be. */
const keptText = (districtId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<{ t: string }>(
      `SELECT coalesce(string_agg(to_jsonb(r)::text, E'\\n'), '') AS t FROM sync_runs r WHERE district_id = $1
       UNION ALL SELECT coalesce(string_agg(to_jsonb(f)::text, E'\\n'), '') FROM findings f JOIN sync_runs r ON r.id = f.run_id WHERE r.district_id = $1
       UNION ALL SELECT coalesce(string_agg(to_jsonb(d)::text, E'\\n'), '') FROM districts d WHERE id = $1
       UNION ALL SELECT coalesce(string_agg(to_jsonb(a)::text, E'\\n'), '') FROM audit_log a`,
      [districtId]
    )
    return rows.map((r) => r.t).join("\n")
  })

layer(Layer.merge(syncTestLayer(fastProviderRetries), FakeLayer), { timeout: "120 seconds", excludeTestServices: true })("OneRoster REST with OAuth 2.0", (it) => {
  it.effect("a full sync with client credentials: one token for every page and for the next run; the same roster as OAuth 1.0a", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      yield* add("oauth2", oauth2(fake))
      yield* add("oauth1", { auth: "oauth1", keyFile: fake.files.key, secretFile: fake.files.oauth1Secret })
      fake.requests.length = 0
      const first = yield* run("oauth2")
      assert.strictEqual(first.status, "succeeded")
      assert.strictEqual(first.counts.users.created, readRows(fake.csv, "users").length)
      assert.strictEqual(fake.oauth2!.issued, 1)
      const pages = fake.requests.filter((r) => r.path.startsWith("/ims/"))
      assert.isAbove(pages.length, 7)
      assert.isTrue(pages.every((r) => r.status === 200 && r.scheme === "bearer"))
      assert.strictEqual((yield* run("oauth2")).status, "succeeded")
      assert.strictEqual(fake.oauth2!.issued, 1)
      assert.strictEqual((yield* run("oauth1")).status, "succeeded")
      const sql = yield* SqlClient.SqlClient
      const digest = (id: string) =>
        sql<{ d: string }>`SELECT md5(string_agg(source_id || coalesce(email, '') || array_to_string(roles, ','), ',' ORDER BY source_id)) AS d FROM users WHERE district_id = ${id}`
      assert.deepStrictEqual(yield* digest("oauth2"), yield* digest("oauth1"))
    }))

  it.effect("a token that expires in the middle of a run is renewed on the 401, once per request: the run completes", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      yield* add("expiring", oauth2(fake))
      const issuedBefore = fake.oauth2!.issued
      // More uses than requests in flight (5): a renewed token outlives the requests racing for it, as one that expires by time does.
      fake.oauth2!.maxUses = 12
      fake.requests.length = 0
      const summary = yield* run("expiring").pipe(Effect.ensuring(Effect.sync(() => (fake.oauth2!.maxUses = undefined))))
      assert.strictEqual(summary.status, "succeeded")
      assert.strictEqual(summary.counts.users.created, readRows(fake.csv, "users").length)
      const refused = fake.requests.filter((r) => r.status === 401)
      assert.isAtLeast(refused.length, 2)
      assert.isTrue(refused.every((r) => r.authFailure === "expired_token"))
      assert.isAtLeast(fake.oauth2!.issued - issuedBefore, 2)
      const text = yield* keptText("expiring")
      assert.notInclude(text, CLIENT_SECRET)
    }))

  it.effect("a token the server keeps refusing fails the run after one renewal, with nothing applied", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      yield* add("revoked", oauth2(fake))
      const before = yield* rosterFingerprint
      fake.oauth2!.maxUses = 0
      fake.requests.length = 0
      const error = yield* Effect.flip(run("revoked")).pipe(Effect.ensuring(Effect.sync(() => (fake.oauth2!.maxUses = undefined))))
      assert.strictEqual((error as { reason?: string }).reason, "Unauthorized")
      assert.match(error.message, /refused the credentials \(HTTP 401\)/)
      // The first request, its renewal, and the second refusal: no more.
      assert.deepStrictEqual(fake.requests.filter((r) => r.path.startsWith("/ims/")).map((r) => r.status), [401, 401])
      assert.deepStrictEqual(yield* rosterFingerprint, before)
    }))

  it.effect("a wrong client secret fails at once at the token endpoint: no API request, nothing applied, the secret nowhere", () =>
    Effect.gen(function*() {
      const fake = yield* Fake
      yield* add("wrong", { ...oauth2(fake), clientSecretFile: fake.files.badSecret })
      const before = yield* rosterFingerprint
      fake.requests.length = 0
      const error = yield* Effect.flip(run("wrong"))
      assert.strictEqual((error as { reason?: string }).reason, "Unauthorized")
      assert.match(error.message, /token endpoint \/oauth2\/token refused the client credentials \(HTTP 401 invalid_client\)/)
      assert.deepStrictEqual(fake.requests.map((r) => [r.path, r.status]), [["/oauth2/token", 401]])
      assert.deepStrictEqual(yield* rosterFingerprint, before)
      const sql = yield* SqlClient.SqlClient
      const [last] = yield* sql<{ status: string; error: string }>`SELECT status, error FROM sync_runs WHERE district_id = 'wrong' ORDER BY id DESC LIMIT 1`
      assert.strictEqual(last!.status, "failed")
      assert.match(last!.error, /invalid_client/)
      const text = yield* keptText("wrong")
      for (const secret of ["wrong-secret-xyz", CLIENT_SECRET]) assert.notInclude(text, secret)
    }))
})
