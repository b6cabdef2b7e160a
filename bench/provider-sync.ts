/**
 * One full sync of a REST-provider district, in its own process so its time and peak
 * memory are its own (run by bench/run.ts against the fake Clever and OneRoster servers):
 *
 *   npx tsx bench/provider-sync.ts --database-url URL --provider clever|oneroster-rest --settings '<json>'
 *
 * Prints one JSON line: `{ "ms", "counts", "findings", "peakRssMib" }`.
 */
import { Effect, Layer, ManagedRuntime, Redacted, Schema } from "effect"
import { parseArgs } from "node:util"
import { type DistrictId, ProviderKind } from "../src/Domain/District.ts"
import { RosterProviderLive } from "../src/Providers/Providers.ts"
import { Sync } from "../src/Reconcile/SyncRun.ts"
import { SyncLive } from "../src/Accounts/SyncAccounts.ts"
import { RosterStore } from "../src/Store/RosterStore.ts"
import { pgClientLayer } from "../src/Store/Sql.ts"
import { benchTimezone } from "./Timezone.ts"

const { values } = parseArgs({
  options: {
    "database-url": { type: "string" },
    provider: { type: "string" },
    settings: { type: "string" }
  }
})
if (values["database-url"] === undefined || values.provider === undefined || values.settings === undefined) {
  console.error("usage: provider-sync.ts --database-url URL --provider clever|oneroster-rest --settings JSON")
  process.exit(2)
}
const provider = Schema.decodeUnknownSync(ProviderKind)(values.provider)

const runtime = ManagedRuntime.make(
  Layer.mergeAll(SyncLive, RosterStore.Default).pipe(
    Layer.provide(RosterProviderLive),
    Layer.provideMerge(pgClientLayer({ url: Redacted.make(values["database-url"]) }))
  )
)
try {
  const id = `bench-${provider}` as DistrictId
  const result = await runtime.runPromise(Effect.gen(function*() {
    const store = yield* RosterStore
    yield* store.addDistrict({ id, name: `Bench district (${provider})`, provider, timezone: benchTimezone(), settings: JSON.parse(values.settings!) })
    const sync = yield* Sync
    const started = performance.now()
    const summary = yield* sync.run(id, { request: "full", trigger: "bench" })
    return { ms: performance.now() - started, counts: summary.counts, findings: summary.findings }
  }))
  process.stdout.write(JSON.stringify({ ...result, peakRssMib: Math.round(process.resourceUsage().maxRSS / 1024) }) + "\n")
} finally {
  await runtime.dispose()
}
