import { Command } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import { Config, ConfigError, Console, Effect, Either, Layer, Logger, LogLevel } from "effect"
import { RemindersLive } from "../Accounts/Reminders.ts"
import { ConfigFile, ConfigProviderLive } from "../Config/ConfigFile.ts"
import { ProcessEnv } from "../Config/Environment.ts"
import { HttpLive } from "../Http/Server.ts"
import { RosterProviderLive } from "../Providers/Providers.ts"
import { DaemonLive } from "../Schedule/Daemon.ts"
import { DatabaseLive, DatabaseTargetLive, migrateDatabase, SqlLive } from "../Store/Sql.ts"
import { accountsCommand } from "./AccountCommands.ts"
import { adminCommand } from "./AdminCommands.ts"
import { auditCommand } from "./AuditCommand.ts"
import { calendarCommand } from "./CalendarCommand.ts"
import { classCommand, userCommand } from "./ClassCommands.ts"
import { dbCommand } from "./DbCommands.ts"
import { districtCommand, districtsCommand } from "./DistrictCommands.ts"
import { doctorCommand } from "./DoctorCommand.ts"
import { cliExit } from "./Exit.ts"
import { helpColour, helpFor } from "./Help.ts"
import { commandTree } from "./HelpTree.ts"
import { holdsCommand } from "./HoldCommands.ts"
import { notifyCommand } from "./NotifyCommands.ts"
import { outboxCommand } from "./OutboxCommands.ts"
import { terminalConsole } from "./Output.ts"
import { pauseCommand, pausesCommand, resumeCommand } from "./PauseCommands.ts"
import { reportCommand } from "./ReportCommand.ts"
import { secretsCommand } from "./SecretsCommands.ts"
import { Stdio } from "./Stdio.ts"
import { runsCommand, statusCommand, syncCommand } from "./SyncCommands.ts"

/**
 * The `rosterd` command tree over a given process (`makeCli`), and with main.ts the only
 * place where layers are composed. Each command provides the services it uses, and each
 * service its own dependencies; what is left is given here, once: the config (file +
 * environment, around every command), the database (migrated first, except for `doctor`,
 * `migrate` and `db`), the roster providers and the loggers.
 */

/** Config file + environment, for every command (read once a command runs: `--help` and usage errors read none). */
const ConfigLive = ConfigProviderLive.pipe(Layer.provideMerge(ConfigFile.Default))

/** `rosterd.logLevel`: trace, debug, info, warning (or warn), error, fatal, none — any case. */
const logLevel = Config.string("logLevel").pipe(
  Config.mapOrFail((text) => {
    const wanted = text.trim().toLowerCase().replace(/^warn$/, "warning")
    const level = LogLevel.allLevels.find((l) => l._tag.toLowerCase() === wanted)
    return level === undefined
      ? Either.left(ConfigError.InvalidData([], `logLevel must be one of trace, debug, info, warning, error, fatal, none (got "${text}")`))
      : Either.right(level)
  }),
  Config.nested("rosterd")
)

/** The daemon logs JSON lines to stdout (level `rosterd.logLevel`, default Info). */
const DaemonLoggerLive = Layer.unwrapEffect(
  Effect.map(Config.withDefault(logLevel, LogLevel.Info), (level) =>
    Layer.mergeAll(Logger.replace(Logger.defaultLogger, Logger.withConsoleLog(Logger.jsonLogger)), Logger.minimumLogLevel(level)))
)

/** Commands print results on stdout; their logs go to stderr, warnings and worse unless configured. */
const CommandLoggerLive = Layer.unwrapEffect(
  Effect.map(Config.withDefault(logLevel, LogLevel.Warning), (level) =>
    Layer.mergeAll(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)), Logger.minimumLogLevel(level)))
)

/** What the daemon and most commands run over: a migrated database and the roster providers (the `RosterProvider` port's adapter). */
const RosterDatabaseLive = RosterProviderLive.pipe(Layer.provideMerge(DatabaseLive))

/**
 * A command over the migrated database, logging as commands do. The logger is provided
 * last, so it is in place first: the migration's warnings go where the command's do.
 */
const overDatabase = <Name extends string, R, E, A>(command: Command.Command<Name, R, E, A>) =>
  command.pipe(Command.provide(RosterDatabaseLive), Command.provide(CommandLoggerLive))

const daemonCommand = Command.make("daemon", {}, () => Layer.launch(Layer.mergeAll(HttpLive, DaemonLive, RemindersLive))).pipe(
  Command.withDescription("run the sync daemon in the foreground (what `npm start` runs)"),
  Command.provide(RosterDatabaseLive),
  Command.provide(DaemonLoggerLive)
)

const migrateCommand = Command.make("migrate", {}, () =>
  Effect.gen(function*() {
    const applied = yield* migrateDatabase
    yield* Console.log(applied.length === 0 ? "the database is up to date" : `applied: ${applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`).join(", ")}`)
  })).pipe(
    Command.withDescription("apply pending database migrations (every command also does this first)"),
    Command.provide(SqlLive),
    Command.provide(CommandLoggerLive)
  )

const root = Command.make("rosterd").pipe(
  Command.withDescription("roster sync daemon: keeps a platform's roster in step with school districts' official rosters"),
  Command.withSubcommands([
    daemonCommand,
    overDatabase(syncCommand),
    overDatabase(statusCommand),
    overDatabase(runsCommand),
    overDatabase(districtCommand),
    overDatabase(districtsCommand),
    overDatabase(accountsCommand),
    overDatabase(adminCommand),
    overDatabase(classCommand),
    overDatabase(userCommand),
    overDatabase(reportCommand),
    overDatabase(holdsCommand),
    overDatabase(auditCommand),
    overDatabase(calendarCommand),
    overDatabase(pauseCommand),
    overDatabase(resumeCommand),
    overDatabase(pausesCommand),
    overDatabase(outboxCommand),
    overDatabase(notifyCommand),
    overDatabase(secretsCommand),
    // Connects without migrating: a database behind is reported, not upgraded.
    doctorCommand(RosterProviderLive.pipe(Layer.provideMerge(SqlLive))).pipe(Command.provide(CommandLoggerLive)),
    migrateCommand,
    // Builds the database target only for setup-roles (for the embedded default it starts the cluster).
    dbCommand(DatabaseTargetLive).pipe(Command.provide(CommandLoggerLive))
  ]),
  Command.provide(ConfigLive),
  // Every command runs with the terminal-safe Console (src/Cli/Output.ts) over the process's
  // (or a test's): what it prints and logs has control characters escaped, since source IDs,
  // file names and URLs come from providers.
  Command.transformHandler((handler) => Console.consoleWith((console) => Effect.withConsole(handler, terminalConsole(console))))
)

const run = Command.run(root, { name: "rosterd", version: "0.1.0" })

/** The command tree as help reads it (src/Cli/HelpTree.ts). */
export const rosterdTree = () => commandTree(root)

/**
 * What the command tree takes from the process it runs in: the environment (settings,
 * `ROSTERD_CONFIG`, variables that settings name), standard input and a terminal's
 * stderr, and the platform (@effect/cli's files, paths and terminal). The Console it prints
 * through is the one in effect where it runs. main.ts gives the real process; the in-process
 * tests give their own (test/support/CliFixture.ts).
 */
export type CliProcess = ProcessEnv | Stdio | CliApp.CliApp.Environment

/**
 * `rosterd` over `host` (a process, real or a test's): argv (as `process.argv`, node and script first) to the exit
 * code, after printing the one stderr line a failure gets (src/Cli/Exit.ts).
 */
export const makeCli = <E, R>(host: Layer.Layer<CliProcess, E, R>) => (argv: ReadonlyArray<string>) =>
  (wantsHelp(argv.slice(2)) ? printHelp(argv.slice(2)) : run(argv).pipe(
    Effect.exit,
    Effect.flatMap((exit) => {
      const { code, line } = cliExit(exit)
      return line === undefined ? Effect.succeed(code) : Effect.as(Console.error(line), code)
    })
  )).pipe(Effect.provide(host))

/**
 * Help is rosterd's own (src/Cli/Help.ts), not @effect/cli's: `rosterd`, and any command line
 * with `--help` or `-h` (but `--completions`, which @effect/cli answers). Usage errors, shell
 * completions and `--version` stay @effect/cli's.
 */
const wantsHelp = (args: ReadonlyArray<string>) =>
  args.length === 0 || (args.some((a) => a === "--help" || a === "-h") && !args.some((a) => a.startsWith("--completions")))

const printHelp = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const env = yield* ProcessEnv
    const stdio = yield* Stdio
    const colour = helpColour(env, stdio.outputIsTerminal?.() ?? false)
    const answer = helpFor(rosterdTree(), args.filter((a) => a !== "--help" && a !== "-h"), { colour })
    yield* answer.code === 0 ? Console.log(answer.text) : Console.error(answer.text)
    return answer.code
  })
