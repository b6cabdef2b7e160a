import { Command } from "@effect/cli"
import { Config, ConfigError, Console, Effect, Either, Layer, Logger, LogLevel } from "effect"
import { Accounts } from "../Accounts/Accounts.ts"
import { Activation } from "../Accounts/Activation.ts"
import { Audit } from "../Audit/Audit.ts"
import { Reviews } from "../Accounts/Reviews.ts"
import { Duplicates } from "../Accounts/Duplicates.ts"
import { Merge } from "../Accounts/Merge.ts"
import { Reminders, RemindersLive } from "../Accounts/Reminders.ts"
import { ConfigFile, ConfigProviderLive } from "../Config/ConfigFile.ts"
import { HttpLive } from "../Http/Server.ts"
import { MailerLive } from "../Mail/SmtpMailer.ts"
import { Outbox } from "../Mail/Outbox.ts"
import { RosterProviderLive } from "../Providers/Providers.ts"
import { Holds } from "../Reconcile/Holds.ts"
import { SyncLive } from "../Accounts/SyncAccounts.ts"
import { DaemonLive } from "../Schedule/Daemon.ts"
import { Retention } from "../Mail/Retention.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { Runs } from "../Store/Runs.ts"
import { DatabaseLive, DatabaseTargetLive, migrateDatabase, SqlLive } from "../Store/Sql.ts"
import { accountsCommand } from "./AccountCommands.ts"
import { terminalConsole } from "./Output.ts"
import { Admins } from "../Admins/Admins.ts"
import { Partnerships } from "../Admins/Partnerships.ts"
import { adminCommand } from "./AdminCommands.ts"
import { DistrictCalendars } from "../Schedule/DistrictCalendars.ts"
import { auditCommand } from "./AuditCommand.ts"
import { calendarCommand } from "./CalendarCommand.ts"
import { doctorCommand } from "./DoctorCommand.ts"
import { Pauses } from "../Schedule/Pauses.ts"
import { PauseNotices } from "../Schedule/PauseNotices.ts"
import { Freshness } from "../Schedule/Freshness.ts"
import { Slots } from "../Schedule/Slots.ts"
import { DistrictLease } from "../Reconcile/Lease.ts"
import { pauseCommand, pausesCommand, resumeCommand } from "./PauseCommands.ts"
import { Classes } from "../Classes/Classes.ts"
import { classCommand, userCommand } from "./ClassCommands.ts"
import { districtCommand } from "./DistrictCommands.ts"
import { holdsCommand } from "./HoldCommands.ts"
import { outboxCommand } from "./OutboxCommands.ts"
import { Report } from "../Report/Report.ts"
import { reportCommand } from "./ReportCommand.ts"
import { runsCommand, statusCommand, syncCommand } from "./SyncCommands.ts"
import { Secrets } from "../Secrets/Secrets.ts"
import { secretsCommand } from "./SecretsCommands.ts"
import { dbCommand } from "./DbCommands.ts"

/**
 * The `rosterd` command tree, and the only place (with main.ts) where layers are composed.
 * Each command provides just what it needs: `migrate` no scheduler, `status` no HTTP.
 */

/** Config file + environment, for everything below. */
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

/** Store, reconcile and providers over a migrated database. */
const AppLive = Layer.mergeAll(SyncLive, RosterStore.Default, Runs.Default).pipe(
  Layer.provide(RosterProviderLive),
  Layer.provideMerge(DatabaseLive)
)

/** What commands use: the above, the held change sets, the audit log and the stored credentials. */
const CommandLive = Layer.mergeAll(Holds.Default, Audit.Default, Secrets.Default).pipe(
  Layer.provideMerge(AppLive),
  Layer.provideMerge(CommandLoggerLive),
  Layer.provide(ConfigLive)
)

/**
 * Accounts, reviews, teacher-made classes and the report, over the same migrated database.
 * `Activation.Default` is provided here (and in the services' own dependencies): review
 * create and resend-activation queue activation e-mails in their transactions.
 */
const AccountsCommandLive = Layer.mergeAll(
  Accounts.Default, Reviews.Default, Activation.Default, Classes.Default, Report.Default, Merge.Default, Duplicates.Default, Reminders.Default
).pipe(
  Layer.provideMerge(CommandLive)
)

/** `rosterd outbox`: the Outbox service over the same database (its mailer is only built, never used, by list and retry). */
const OutboxCommandLive = Outbox.Default.pipe(Layer.provide(MailerLive), Layer.provideMerge(CommandLive), Layer.provide(ConfigLive))

/** Administrators and partnerships, over the same migrated database. */
const AdminCommandLive = Layer.mergeAll(Admins.Default, Partnerships.Default).pipe(Layer.provideMerge(CommandLive), Layer.provide(ConfigLive))

/** Ad-hoc pauses and the district calendars, over the same database: `pause`, `resume`, `pauses`, `calendar`. */
const PausesCommandLive = Layer.mergeAll(Pauses.Default, DistrictCalendars.Default).pipe(Layer.provideMerge(CommandLive), Layer.provide(ConfigLive))

/** `rosterd status`: the store's status with the schedule's view (pauses, staleness). */
const StatusCommandLive = Freshness.Default.pipe(Layer.provideMerge(PausesCommandLive), Layer.provide(ConfigLive))

const daemon = Command.make("daemon", {}, () =>
  Effect.never.pipe(Effect.provide(
    Layer.mergeAll(HttpLive, DaemonLive, RemindersLive).pipe(
      Layer.provide(Layer.mergeAll(
        Reminders.Default,
        Outbox.Default.pipe(Layer.provide(MailerLive)),
        Retention.Default,
        Slots.Default,
        DistrictLease.Default,
        PauseNotices.Default,
        Freshness.Default
      )),
      Layer.provideMerge(Pauses.Default),
      Layer.provide(DistrictCalendars.Default),
      Layer.provide(AppLive),
      Layer.provide(DaemonLoggerLive),
      Layer.provide(ConfigLive)
    )
  ))).pipe(Command.withDescription("run the sync daemon in the foreground (what `npm start` runs)"))

/** `rosterd doctor`: connects without migrating (a database behind is reported, not upgraded). */
const DoctorDatabaseLive = Layer.mergeAll(RosterStore.Default, RosterProviderLive, Freshness.Default, Secrets.Default).pipe(
  Layer.provideMerge(SqlLive)
)
const DoctorCommandLive = Layer.mergeAll(DistrictCalendars.Default, CommandLoggerLive).pipe(Layer.provideMerge(ConfigLive))

const migrateCommand = Command.make("migrate", {}, () =>
  Effect.gen(function*() {
    const applied = yield* migrateDatabase
    yield* Console.log(applied.length === 0 ? "the database is up to date" : `applied: ${applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`).join(", ")}`)
  }).pipe(Effect.provide(SqlLive.pipe(Layer.provideMerge(CommandLoggerLive), Layer.provide(ConfigLive))))).pipe(
    Command.withDescription("apply pending database migrations (every command also does this first)")
  )

const root = Command.make("rosterd").pipe(
  Command.withDescription("roster sync daemon: keeps a platform's roster in step with school districts' official rosters"),
  Command.withSubcommands([
    daemon,
    syncCommand.pipe(Command.provide(CommandLive)),
    statusCommand.pipe(Command.provide(StatusCommandLive)),
    runsCommand.pipe(Command.provide(CommandLive)),
    districtCommand.pipe(Command.provide(CommandLive)),
    accountsCommand.pipe(Command.provide(AccountsCommandLive)),
    adminCommand.pipe(Command.provide(AdminCommandLive)),
    classCommand.pipe(Command.provide(AccountsCommandLive)),
    userCommand.pipe(Command.provide(AccountsCommandLive)),
    reportCommand.pipe(Command.provide(AccountsCommandLive)),
    holdsCommand.pipe(Command.provide(CommandLive)),
    auditCommand.pipe(Command.provide(CommandLive)),
    calendarCommand.pipe(Command.provide(PausesCommandLive)),
    pauseCommand.pipe(Command.provide(PausesCommandLive)),
    resumeCommand.pipe(Command.provide(PausesCommandLive)),
    pausesCommand.pipe(Command.provide(PausesCommandLive)),
    outboxCommand.pipe(Command.provide(OutboxCommandLive)),
    secretsCommand.pipe(Command.provide(CommandLive)),
    doctorCommand(DoctorDatabaseLive).pipe(Command.provide(DoctorCommandLive)),
    migrateCommand,
    dbCommand(DatabaseTargetLive).pipe(Command.provide(CommandLoggerLive.pipe(Layer.provideMerge(ConfigLive))))
  ])
)

/**
 * Every command runs with the terminal-safe Console (src/Cli/Output.ts): what it prints and
 * logs has control characters escaped, since source IDs, file names and URLs come from providers.
 */
export const runCli = Command.run(
  root.pipe(Command.transformHandler((handler) => Effect.withConsole(handler, terminalConsole))),
  { name: "rosterd", version: "0.1.0" }
)
