import { ConfigProvider, Layer } from "effect"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { SyncLive } from "../../src/Accounts/SyncAccounts.ts"
import { RosterProviderLive } from "../../src/Providers/Providers.ts"
import { Audit } from "../../src/Audit/Audit.ts"
import { Holds } from "../../src/Reconcile/Holds.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { Runs } from "../../src/Store/Runs.ts"
import { TestDatabase } from "./Database.ts"

/** The reconcile over a real Postgres database of the test file's own, with the live providers. */
export const SyncTestLayer = Layer.mergeAll(SyncLive, RosterStore.Default, Runs.Default, Holds.Default, Audit.Default).pipe(
  Layer.provide(RosterProviderLive),
  Layer.provideMerge(TestDatabase)
)

/** The same, with settings (e.g. fast provider retries) as `rosterd.x.y` keys. */
export const syncTestLayer = (settings: ReadonlyMap<string, string>) =>
  Layer.mergeAll(SyncLive, RosterStore.Default, Runs.Default, Holds.Default, Audit.Default).pipe(
    Layer.provide(RosterProviderLive),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([...testDataDir, ...csvNoSettle, ...settings])))),
    Layer.provideMerge(TestDatabase)
  )

/**
 * Where in-process tests keep data a setting would put under `./.rosterd` (the development
 * credentials key that seals activation links): the same temp dir as vitest.config.ts gives
 * the environment, never the checkout's own.
 */
export const testDataDir: ReadonlyMap<string, string> = new Map([["rosterd.dataDir", process.env.rosterd_dataDir ?? NodePath.join(Os.tmpdir(), "rosterd-vitest-data")]])

/**
 * Fixtures are written moments before a sync: no waiting for a CSV set to settle (as
 * vitest.config.ts gives the environment; a test of settling sets the key itself).
 */
export const csvNoSettle: ReadonlyMap<string, string> = new Map([["rosterd.csv.settleSeconds", "0"]])

/** Provider retries in milliseconds rather than seconds, so fault tests are quick. */
export const fastProviderRetries: ReadonlyMap<string, string> = new Map([
  ["rosterd.providers.retryBase", "10 millis"],
  ["rosterd.providers.retryMax", "100 millis"],
  ["rosterd.providers.attempts", "4"],
  ["rosterd.providers.timeout", "2 seconds"],
  ["rosterd.providers.maxRateLimitWait", "5 seconds"]
])
