/**
 * One full sync of a Clever district through an HTTP server, in its own process so its
 * peak memory is its own (run by bench/run.ts against the fake Clever API):
 *
 *   npx tsx bench/clever-sync.ts --database-url URL --base-url URL --district-id ID --token-file F [--page-size 1000]
 *
 * Prints one JSON line: `{ "ms", "counts", "findings", "requests", "peakRssMib" }`.
 */
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { parseArgs } from "node:util"
import type { DistrictId } from "../src/Domain/District.ts"
import { RosterProviderLive } from "../src/Providers/Providers.ts"
import { Sync } from "../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../src/Store/RosterStore.ts"
import { pgClientLayer } from "../src/Store/Sql.ts"

const { values } = parseArgs({
  options: {
    "database-url": { type: "string" },
    "base-url": { type: "string" },
    "district-id": { type: "string" },
    "token-file": { type: "string" },
    "page-size": { type: "string", default: "1000" }
  }
})
for (const required of ["database-url", "base-url", "district-id", "token-file"] as const) {
  if (values[required] === undefined) {
    console.error(`clever-sync: --${required} is required`)
    process.exit(2)
  }
}

const runtime = ManagedRuntime.make(
  Layer.mergeAll(Sync.Default, RosterStore.Default).pipe(
    Layer.provide(RosterProviderLive),
    Layer.provideMerge(pgClientLayer({ url: Redacted.make(values["database-url"]!) }))
  )
)
try {
  const result = await runtime.runPromise(Effect.gen(function*() {
    const store = yield* RosterStore
    yield* store.addDistrict({
      id: "bench-clever" as DistrictId,
      name: "Bench district (Clever)",
      provider: "clever",
      timezone: "UTC",
      settings: {
        districtId: values["district-id"]!,
        tokenFile: values["token-file"]!,
        baseUrl: values["base-url"]!,
        pageSize: Number(values["page-size"]),
        // The fake has no limit here; the budget must not be what is measured.
        requestsPerMinute: 100_000
      }
    })
    const sync = yield* Sync
    const started = performance.now()
    const summary = yield* sync.run("bench-clever", { request: "full", trigger: "bench" })
    return { ms: performance.now() - started, counts: summary.counts, findings: summary.findings }
  }))
  process.stdout.write(JSON.stringify({ ...result, peakRssMib: Math.round(process.resourceUsage().maxRSS / 1024) }) + "\n")
} finally {
  await runtime.dispose()
}
