import type { Console as ConsoleService } from "effect"
import { NodeContext } from "@effect/platform-node"
import { Cause, Console, Effect, Exit, Fiber, Layer } from "effect"
import * as Util from "node:util"
import { afterAll, beforeAll } from "vitest"
import { makeCli } from "../../src/Cli/Cli.ts"
import { consoleOf } from "../../src/Cli/Output.ts"
import { Stdio } from "../../src/Cli/Stdio.ts"
import { ProcessEnv } from "../../src/Config/Environment.ts"
import { type CliResult, cleanEnv, writeConfig } from "./Cli.ts"
import { createTestDatabase, dropTestDatabase, type TestDatabaseInfo } from "./Database.ts"
import { tempDir } from "./Fixtures.ts"
import { testKeyFile } from "./MailLinks.ts"

/**
 * The `rosterd` command tree run in the test's own process: argv in; stdout, stderr and the
 * exit code out, as a spawned `rosterd` would give them (test/support/Cli.ts), without
 * starting a process, loading the bundle and connecting anew for every command.
 *
 * It is the same program: `makeCli` (src/Cli/Cli.ts) over another process — the
 * environment a spawned rosterd would have had (`cleanEnv`: no inherited DATABASE_*_URL or
 * ROSTERD_* settings, the tests' data dir, no CSV settling), standard input given as text
 * and no terminal, a Console that collects what is printed and logged. What only a real
 * process shows (the exit code through bin/rosterd.mjs, signals, the daemon's JSON log
 * lines, several processes on one database) stays with the process tests.
 */

/**
 * A console that hands each line to `stdout` or `stderr` as Node's writes it: log, info,
 * debug, dir and table to stdout; error, warn and trace to stderr.
 */
const capturingConsole = (stdout: (line: string) => void, stderr: (line: string) => void): ConsoleService.Console => {
  const out = (...args: ReadonlyArray<unknown>) => stdout(Util.format(...args))
  const err = (...args: ReadonlyArray<unknown>) => stderr(Util.format(...args))
  const counts = new Map<string, number>()
  const unsafe: ConsoleService.UnsafeConsole = {
    assert: (condition, ...args) => (condition ? undefined : err("Assertion failed:", ...args)),
    clear: () => undefined,
    count: (label = "default") => {
      counts.set(label, (counts.get(label) ?? 0) + 1)
      out(`${label}: ${counts.get(label)}`)
    },
    countReset: (label = "default") => void counts.delete(label),
    debug: out,
    dir: (item, options) => out(Util.inspect(item, options)),
    dirxml: out,
    error: err,
    group: out,
    groupCollapsed: out,
    groupEnd: () => undefined,
    info: out,
    log: out,
    table: (data) => out(Util.inspect(data)),
    time: () => undefined,
    timeEnd: () => undefined,
    timeLog: (label, ...args) => out(label, ...args),
    trace: err,
    warn: err
  }
  return consoleOf(unsafe)
}

/**
 * Runs `rosterd <args>` in process with `env` as its environment (added to what `cleanEnv`
 * gives every spawned rosterd) and `input` on its standard input.
 */
export const rosterd = async (args: ReadonlyArray<string>, env: Record<string, string>, input = ""): Promise<CliResult> => {
  const stdout: Array<string> = []
  const stderr: Array<string> = []
  const line = (into: Array<string>) => (text: string) => void into.push(`${text}\n`)
  const code = await Effect.runPromise(makeCli(testProcess(env, input, line(stdout), line(stderr)))(["node", "rosterd", ...args]))
  return { code, stdout: stdout.join(""), stderr: stderr.join("") }
}

/** A process for `makeCli`: `env` as a spawned rosterd would see it, `input` on stdin, no terminal, output to `stdout`/`stderr`. */
const testProcess = (env: Record<string, string>, input: string, stdout: (line: string) => void, stderr: (line: string) => void) =>
  Layer.mergeAll(
    NodeContext.layer,
    Layer.succeed(ProcessEnv, cleanEnv(env)),
    Layer.succeed(Stdio, { readInput: async () => input, inputIsTerminal: () => false, errorIsTerminal: () => false, writeError: stderr }),
    Console.setConsole(capturingConsole(stdout, stderr))
  )

/**
 * `rosterd daemon` in process, its stdout lines (the JSON log) and stderr collected; `stop`
 * interrupts it — what the runtime does on SIGTERM, so the graceful stop runs — and gives
 * the exit code the process would have had. The signal itself, and what only separate
 * processes show, is test/Schedule/DaemonProcess.test.ts's.
 */
export const startDaemon = (env: Record<string, string>) => {
  const lines: Array<string> = []
  const errors: Array<string> = []
  const fiber = Effect.runFork(makeCli(testProcess(env, "", (line) => void lines.push(line), (line) => void errors.push(`${line}\n`)))(["node", "rosterd", "daemon"]))
  return {
    lines,
    errors,
    stop: async (): Promise<number> => {
      const exit = await Effect.runPromise(Fiber.interrupt(fiber))
      return Exit.isSuccess(exit) ? exit.value : Cause.isInterruptedOnly(exit.cause) ? 0 : 1
    }
  }
}

/** `rosterd <args>` with `input` on standard input (`--token-stdin`, `--token-stdin` of set-credentials). */
export const rosterdWithInput = (args: ReadonlyArray<string>, env: Record<string, string>, input: string) => rosterd(args, env, input)

export interface CliFixtureOptions {
  /** The config file's text (`rosterd.yaml` in the work dir); default: log warnings and worse. */
  readonly config?: string
  /** A credentials key file (ROSTERD_SECRETS_KEY_FILE): with DATABASE_URL, what seals activation and invitation links. */
  readonly secretsKey?: boolean
  /** More settings or variables for every command. */
  readonly env?: Record<string, string>
}

export interface CliFixture {
  /** The test file's database (its URL is DATABASE_URL, the app role). */
  readonly db: TestDatabaseInfo
  /** A work dir of the file's own, removed after the file. */
  readonly work: { readonly dir: string }
  /** What every command gets: DATABASE_URL, ROSTERD_CONFIG and the options' settings. */
  readonly env: Record<string, string>
  /** The credentials key file, with `secretsKey`. */
  readonly secretsKey: ReturnType<typeof testKeyFile> | undefined
  /** `rosterd <args>` in process with the fixture's env (`extra` added). */
  readonly rosterd: (args: ReadonlyArray<string>, extra?: Record<string, string>) => Promise<CliResult>
  /** The same with `input` on standard input. */
  readonly rosterdWithInput: (args: ReadonlyArray<string>, input: string, extra?: Record<string, string>) => Promise<CliResult>
}

/**
 * The setup CLI test files share: a database of the file's own, a work dir, a config file,
 * and optionally a credentials key; created before the file's tests, dropped after. Call
 * it in a `describe` (or at the top of the file).
 */
export const cliFixture = (options: CliFixtureOptions = {}): CliFixture => {
  const work = tempDir()
  const secretsKey = options.secretsKey === true ? testKeyFile(work.dir) : undefined
  let db: TestDatabaseInfo | undefined
  let env: Record<string, string> | undefined
  beforeAll(async () => {
    db = await createTestDatabase()
    env = {
      DATABASE_URL: db.url,
      ROSTERD_CONFIG: writeConfig(work.dir, options.config ?? "rosterd:\n  logLevel: warning\n"),
      ...(secretsKey === undefined ? {} : { ROSTERD_SECRETS_KEY_FILE: secretsKey.path }),
      ...options.env
    }
  })
  afterAll(async () => {
    if (db !== undefined) await dropTestDatabase(db.name)
    work.remove()
  })
  const ready = <A>(value: A | undefined, what: string): A => {
    if (value === undefined) throw new Error(`cliFixture: ${what} is made in beforeAll`)
    return value
  }
  return {
    get db() {
      return ready(db, "the database")
    },
    work,
    get env() {
      return ready(env, "the environment")
    },
    secretsKey,
    rosterd: (args, extra = {}) => rosterd(args, { ...ready(env, "the environment"), ...extra }),
    rosterdWithInput: (args, input, extra = {}) => rosterd(args, { ...ready(env, "the environment"), ...extra }, input)
  }
}
