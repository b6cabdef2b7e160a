import { SqlClient } from "@effect/sql"
import { assert, describe, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { Secrets } from "../../src/Secrets/Secrets.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { type FakeOneRoster, fromOneRosterCsv, start } from "../support/FakeOneRoster/index.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { syncTestLayer } from "../support/Layers.ts"

/**
 * The OneRoster REST provider with credentials stored in the database: OAuth key and secret
 * with no file or variable in the settings, a stored bearer token preferred to a stale file,
 * and a tampered row failing the run with the store's message.
 */

const KEY = "stored-consumer-key"
const SECRET = "stored-consumer-secret"
const BEARER = "stored-bearer"

const dir = tempDir("rosterd-stored-")
const keyFile = NodePath.join(dir.dir, "credentials.key")
Fs.writeFileSync(keyFile, randomBytes(32).toString("base64"))
const staleBearer = NodePath.join(dir.dir, "stale-bearer")
Fs.writeFileSync(staleBearer, "revoked-bearer")

class Fake extends Context.Tag("test/StoredFakeOneRoster")<Fake, FakeOneRoster>() {}
const FakeLayer = Layer.scoped(
  Fake,
  Effect.acquireRelease(
    Effect.promise(async () => {
      writeSmallDistrict(NodePath.join(dir.dir, "csv"))
      return start(await fromOneRosterCsv(NodePath.join(dir.dir, "csv")), { oauth: { key: KEY, secret: SECRET }, bearer: BEARER })
    }),
    (fake) => Effect.promise(() => fake.close().then(() => dir.remove()))
  )
)

const settings = new Map([
  ["databaseUrl", "postgres://external"],
  ["rosterd.secrets.keyFile", keyFile],
  ["rosterd.providers.retryBase", "10 millis"],
  ["rosterd.providers.attempts", "2"]
])
/** The sync with its providers, and the store for the test's own writes, on one database under the same key settings. */
const TestLayer = Secrets.Default.pipe(
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(settings))),
  Layer.provideMerge(syncTestLayer(settings)),
  Layer.merge(FakeLayer)
)

const add = (id: string, auth: "oauth1" | "bearer", extra: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const fake = yield* Fake
    const store = yield* RosterStore
    yield* store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-rest", timezone: "UTC", settings: { baseUrl: fake.baseUrl, auth, ...extra } })
  })
const run = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "full", trigger: "test" }))

describe("stored credentials in a sync", () => {
  layer(TestLayer, { timeout: "120 seconds", excludeTestServices: true })((it) => {
    it.effect("OAuth key and secret only in the database sign the requests", () =>
      Effect.gen(function*() {
        const secrets = yield* Secrets
        yield* add("signed", "oauth1")
        yield* secrets.store("signed", "key", KEY)
        yield* secrets.store("signed", "secret", SECRET)
        const summary = yield* run("signed")
        assert.strictEqual(summary.status, "succeeded")
        assert.strictEqual(summary.counts.users.created, 5)
      }))

    it.effect("a stored bearer token wins over the file the settings name; a tampered one fails the run naming it", () =>
      Effect.gen(function*() {
        const secrets = yield* Secrets
        const sql = yield* SqlClient.SqlClient
        yield* add("bearer", "bearer", { bearerFile: staleBearer })
        yield* secrets.store("bearer", "bearer", BEARER)
        assert.strictEqual((yield* run("bearer")).status, "succeeded")

        yield* sql`UPDATE district_credentials SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1) WHERE district_id = 'bearer'`
        const error = yield* Effect.flip(run("bearer"))
        assert.strictEqual(error._tag, "InvalidDistrict")
        assert.match(error.message, /^credential bearer of district bearer does not decrypt with key [0-9a-f]{8}: wrong key or tampered/)
      }))
  })
})
