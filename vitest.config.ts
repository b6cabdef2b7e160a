import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One embedded Postgres for the whole run; each test file gets its own database.
    globalSetup: ["test/support/globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // 2-core CI machines: two files at a time keeps Postgres and the workers from starving each other.
    maxWorkers: 2,
    minWorkers: 1
  }
})
