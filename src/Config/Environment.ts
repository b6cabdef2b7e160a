import { Context } from "effect"

/**
 * The environment variables rosterd reads by name: `ROSTERD_CONFIG` and every setting
 * (ConfigFile.ts), and the variables that settings name for a secret (a district's
 * `tokenEnv`/`keyEnv`/`secretEnv`/`bearerEnv`, the credentials key's `keyEnv`, the SMTP
 * password's `passwordEnv`).
 *
 * The process's own unless given: the CLI's in-process tests give each command the
 * environment a spawned `rosterd` would have had (test/support/CliFixture.ts), without
 * touching the test process's `process.env`.
 */
export class ProcessEnv extends Context.Reference<ProcessEnv>()("rosterd/ProcessEnv", {
  defaultValue: (): Readonly<Record<string, string | undefined>> => process.env
}) {}
