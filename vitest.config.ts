import * as Os from "node:os"
import * as NodePath from "node:path"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One embedded Postgres for the whole run; each test file gets its own database.
    globalSetup: ["test/support/globalSetup.ts"],
    // In-process tests read settings from the environment (Effect's default provider reads
    // `rosterd_dataDir`): the development credentials key that sealing activation links
    // creates lands in a temp dir, never in the checkout's .rosterd (npm start's).
    env: {
      rosterd_dataDir: NodePath.join(Os.tmpdir(), "rosterd-vitest-data"),
      // Fixtures are written moments before a sync: no waiting for a CSV set to settle
      // (a test of that sets rosterd.csv.settleSeconds itself).
      rosterd_csv_settleSeconds: "0"
    },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Test files share their worker's module cache: Effect and rosterd load once per worker,
    // not once per file (~90 s of a 5-minute suite). Files keep no state at module level that
    // another file could see; the one library that does (@effect/vitest's layer) is undone by
    // test/support/setupEach.ts before each file.
    poolOptions: { forks: { isolate: false } },
    setupFiles: ["test/support/setupEach.ts"],
    // 2-core CI machines: two files at a time keeps Postgres and the workers from starving each other.
    maxWorkers: 2,
    minWorkers: 1
  }
})
