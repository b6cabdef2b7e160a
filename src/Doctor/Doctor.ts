import { SqlClient } from "@effect/sql"
import { Cause, Config, Effect, Option, Schema } from "effect"
import * as Fs from "node:fs"
import { latestMigration } from "../../migrations/index.ts"
import { ConfigFile } from "../Config/ConfigFile.ts"
import { declaredDistricts } from "../Config/Districts.ts"
import { District } from "../Domain/District.ts"
import { DistrictRules } from "../Domain/DistrictRules.ts"
import { spoolDirConfig } from "../Mail/Mailer.ts"
import { SmtpConfig, smtpHost, smtpTlsWarning, verifySmtp } from "../Mail/SmtpMailer.ts"
import { waitingActivations } from "../Accounts/Activation.ts"
import { withdrawnInvitations } from "../Admins/Admins.ts"
import { describeFailure } from "../Domain/Failure.ts"
import { DistrictCalendars } from "../Schedule/DistrictCalendars.ts"
import { Freshness } from "../Schedule/Freshness.ts"
import { RosterProvider } from "../Providers/RosterProvider.ts"
import { Secrets } from "../Secrets/Secrets.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { roleNamesConfig, roleStatus } from "../Store/Roles.ts"
import { mayWriteAsSet, ReferencesBySetConfig } from "../Reconcile/ReferencesBySet.ts"

/**
 * `rosterd doctor`: is this installation able to do its job? Each check gives ok, warn or
 * fail with one line of detail (ids, paths, hosts and counts — never a secret or a person).
 * The checks that need the database run only when it answers; none of them changes
 * anything (no migration, no sync, no mail sent).
 */

export type CheckStatus = "ok" | "warn" | "fail"

export interface CheckResult {
  readonly check: string
  readonly status: CheckStatus
  readonly detail: string
}

export const ok = (detail: string) => ({ status: "ok" as const, detail })
export const warn = (detail: string) => ({ status: "warn" as const, detail })
export const fail = (detail: string) => ({ status: "fail" as const, detail })

/** Runs one check: any failure or defect becomes a `fail` row with a one-line reason. */
export const check = <E, R>(name: string, effect: Effect.Effect<{ readonly status: CheckStatus; readonly detail: string }, E, R>) =>
  effect.pipe(
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("no answer within 30 seconds") }),
    Effect.map((result): CheckResult => ({ check: name, ...result })),
    Effect.catchAllCause((cause) =>
      Effect.succeed<CheckResult>({
        check: name,
        status: "fail",
        detail: Cause.isInterruptedOnly(cause) ? "interrupted" : describeFailure(cause).message.split("\n")[0]!
      })
    )
  )

/** The config file, its declared districts and the calendars beside it. */
export const configChecks = Effect.gen(function*() {
  const file = yield* ConfigFile
  const calendars = yield* DistrictCalendars
  return [
    yield* check("config", Effect.map(declaredDistricts, (districts) => ok(`${file.path}: ${districts.length} district(s) declared`))),
    yield* check("calendars", Effect.map(calendars.base(), () => ok(Fs.existsSync(calendars.path) ? calendars.path : "built-in defaults (no calendars.yaml beside the config)")))
  ]
})

/** How far the clocks may disagree before runs, pauses and staleness go wrong. */
const SKEW_WARN_MS = 5_000
const SKEW_FAIL_MS = 60_000

/** Reachability, migrations and the clock against the database's. Needs a SqlClient that did not migrate. */
export const databaseChecks = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const reach = yield* check("database", Effect.as(sql`SELECT 1`, ok("reachable")))
  if (reach.status !== "ok") return [reach]
  const migrations = yield* check("migrations", Effect.gen(function*() {
    const exists = yield* sql<{ readonly table: string | null }>`SELECT to_regclass('rosterd_migrations')::text AS table`
    if (exists[0]?.table === null) return fail(`none applied; run: rosterd migrate (newest is ${latestMigration})`)
    const rows = yield* sql<{ readonly latest: number | null }>`SELECT max(migration_id) AS latest FROM rosterd_migrations`
    const latest = rows[0]?.latest ?? 0
    if (latest < latestMigration) return fail(`at ${latest}, newest is ${latestMigration}; run: rosterd migrate`)
    if (latest > latestMigration) return warn(`the database is at ${latest}, newer than this rosterd (${latestMigration}): an older release?`)
    return ok(`up to date (${latest})`)
  }))
  const clock = yield* check("clock", Effect.gen(function*() {
    const before = Date.now()
    const rows = yield* sql<{ readonly now: Date }>`SELECT now() AS now`
    const local = (before + Date.now()) / 2
    const skew = rows[0]!.now.getTime() - local
    const text = `${skew >= 0 ? "+" : ""}${(skew / 1000).toFixed(1)} s from the database's clock`
    if (Math.abs(skew) > SKEW_FAIL_MS) return fail(`${text}: fix NTP on this host or the database's`)
    if (Math.abs(skew) > SKEW_WARN_MS) return warn(text)
    return ok(text)
  }))
  return [reach, migrations, clock, yield* rolesCheck, yield* referencesCheck]
})

/**
 * How the sync's bulk inserts check their foreign keys (src/Reconcile/ReferencesBySet.ts):
 * as a set where this role may turn the per-row triggers off; row by row otherwise (the
 * same rows, minutes slower for a district of a million students).
 */
export const referencesCheck = check("foreign keys on bulk writes", Effect.gen(function*() {
  if (!(yield* ReferencesBySetConfig)) return ok("checked row by row (rosterd.sync.referencesBySet: false)")
  if (yield* mayWriteAsSet) return ok("checked as a set: this role may set session_replication_role")
  return warn("checked row by row: this role may not set session_replication_role (PostgreSQL 15+: run rosterd db setup-roles as a superuser)")
}))

/**
 * The trust boundary (README "Security"): rosterd's roles exist and hold this code's
 * grants; in production (DATABASE_URL) rosterd does not run as the owner or a superuser;
 * the platform's role owns nothing, is above no line, and cannot create in the schema.
 */
export const rolesCheck = check("database roles", Effect.gen(function*() {
  const names = yield* roleNamesConfig
  const external = Option.isSome(yield* Config.option(Config.redacted("databaseUrl")))
  const status = yield* roleStatus(names)
  const problems: Array<string> = []
  if (external && status.superuser) problems.push(`connected as ${status.currentUser}, a superuser: connect as ${names.app} (DATABASE_URL)`)
  else if (external && status.owner) problems.push(`connected as ${status.currentUser}, which owns rosterd's tables (it could disable the locks): connect as ${names.app}, migrate with DATABASE_OWNER_URL`)
  if (status.missing.length > 0 || status.recorded.length === 0) {
    problems.push(`roles not set up${status.missing.length > 0 ? ` (${status.missing.join(", ")} missing)` : ""}: run rosterd db setup-roles`)
  } else if (status.grantsCurrent === false) {
    problems.push("the grants are not this rosterd's: run rosterd db setup-roles (or rosterd migrate as the owner)")
  }
  if (status.platformOwns > 0) problems.push(`${names.platform} owns ${status.platformOwns} object(s): it could disable their triggers`)
  if (status.platformAbove !== null) problems.push(`${names.platform} is ${status.platformAbove}: the locks do not hold it`)
  if (status.schemaOpen && status.platformAbove === null) problems.push(`${names.platform} may create objects in rosterd's schema`)
  return problems.length > 0
    ? warn(problems.join("; "))
    : ok(`connected as ${status.currentUser}; ${names.owner} owns, ${names.app} writes, ${names.platform} within its grants`)
}))

/** The time-zone database: the schedule and the pauses depend on it. */
export const timeZoneCheck = check("time zones", Effect.sync(() => {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: "America/Chicago" }).format(new Date())
    return ok(`IANA zones available (${Intl.DateTimeFormat().resolvedOptions().timeZone} here; districts use their own)`)
  } catch {
    return fail("this Node.js has no IANA time-zone data (use a full-icu build)")
  }
}))

/** The mail: the SMTP relay answers and accepts our login; or the spool is writable. */
export const mailCheck = check("mail", Effect.gen(function*() {
  const host = yield* smtpHost
  if (Option.isSome(host)) {
    const detail = `SMTP ${yield* verifySmtp}`
    const tls = smtpTlsWarning(yield* SmtpConfig)
    return tls === undefined ? ok(detail) : warn(`${detail}; ${tls}`)
  }
  const dir = yield* spoolDirConfig
  const writable = yield* Effect.try(() => {
    Fs.mkdirSync(dir, { recursive: true })
    Fs.accessSync(dir, Fs.constants.W_OK)
  }).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
  return writable ? warn(`no SMTP relay: mail is written to the spool ${dir} (set rosterd.mail.smtp.host to send it)`) : fail(`the mail spool ${dir} is not writable`)
}))

/** The credentials key: configured, and every stored credential under a key that is. */
export const secretsCheck = check("credentials key", Effect.gen(function*() {
  const status = yield* Effect.flatMap(Secrets, (secrets) => secrets.status())
  const stored = status.byKey.reduce((n, k) => n + k.count, 0)
  const orphaned = status.byKey.filter((k) => !k.configured)
  if (orphaned.length > 0) {
    return fail(`${orphaned.map((k) => `${k.count} credential(s) under key ${k.keyId}`).join(", ")}, which is not configured`)
  }
  if (status.problem !== null) return stored === 0 ? warn(status.problem) : fail(status.problem)
  const old = status.byKey.filter((k) => k.keyId !== status.keyId)
  return old.length > 0
    ? warn(`key ${status.keyId}; ${old.map((k) => `${k.count} under previous key ${k.keyId}`).join(", ")}: run rosterd secrets rotate-key`)
    : ok(`key ${status.keyId}, ${stored} stored credential(s)`)
}))

/**
 * Activation and invitation links (sealed with the credentials key, never stored in clear):
 * none under a key that is not configured, whether new ones can be sealed (else how many
 * activation e-mails wait), and invitations the upgrade withdrew that still need a resend.
 */
export const linksCheck = check("mail links", Effect.gen(function*() {
  const status = yield* Effect.flatMap(Secrets, (secrets) => secrets.status())
  const unreadable = status.linksByKey.filter((k) => !k.configured)
  if (unreadable.length > 0) {
    return fail(`${unreadable.map((k) => `${k.count} link(s) sealed with key ${k.keyId}`).join(", ")}, which is not configured: those messages cannot be sent`)
  }
  const problems: Array<string> = []
  if (!status.canSeal) {
    const waiting = yield* waitingActivations
    problems.push(`no credentials key: activation e-mails and administrator invitations cannot be issued${waiting > 0 ? ` (${waiting} activation e-mail(s) wait)` : ""}; set rosterd.secrets.keyFile or rosterd.secrets.keyEnv`)
  }
  const withdrawn = yield* withdrawnInvitations
  if (withdrawn.length > 0) {
    const ids = withdrawn.length > 10 ? `${withdrawn.slice(0, 10).join(", ")} and ${withdrawn.length - 10} more` : withdrawn.join(", ")
    problems.push(`the upgrade withdrew the invitations of admins ${ids} (their links were stored in clear): rosterd admin resend <id>`)
  }
  if (problems.length > 0) return warn(problems.join("; "))
  const pending = status.linksByKey.reduce((n, k) => n + k.count, 0)
  return ok(`${pending} link(s) waiting in the outbox, sealed${status.keyId === null ? "" : ` with key ${status.keyId}`}; none stored in clear`)
}))

/** Each district's source answers with its settings and credentials; the schedule's view of how they stand. */
export const districtChecks = Effect.gen(function*() {
  const store = yield* RosterStore
  const provider = yield* RosterProvider
  const freshness = yield* Freshness
  const registered = yield* store.listDistricts()
  // Districts the config file declares but no daemon has registered yet are probed too.
  const known = new Set(registered.map((d) => d.id as string))
  const declared = (yield* declaredDistricts.pipe(Effect.orElseSucceed(() => []))).filter((d) => !known.has(d.id))
  const districts = [
    ...registered,
    ...declared.map((d) =>
      new District({ ...d, settings: { ...d.settings }, rules: Schema.decodeUnknownSync(DistrictRules)(d.rules ?? {}), origin: "config" })
    )
  ]
  const probes = yield* Effect.forEach(
    districts,
    (district) => check(`district ${district.id}`, Effect.map(provider.probe(district), (detail) => ok(`${district.provider}: ${detail}`))),
    { concurrency: 4 }
  )
  const standing = yield* check("freshness", Effect.map(freshness.status(), (statuses) => {
    const list = (ids: ReadonlyArray<string>) => (ids.length > 5 ? `${ids.slice(0, 5).join(", ")} and ${ids.length - 5} more` : ids.join(", "))
    const failing = statuses.filter((s) => s.failing).map((s) => s.district)
    const stale = statuses.filter((s) => s.stale).map((s) => s.district)
    const held = statuses.filter((s) => s.pendingHold !== null).map((s) => s.district)
    const problems = [
      ...(failing.length > 0 ? [`failing: ${list(failing)}`] : []),
      ...(stale.length > 0 ? [`stale: ${list(stale)}`] : []),
      ...(held.length > 0 ? [`changes held: ${list(held)}`] : [])
    ]
    return problems.length > 0 ? warn(`${problems.join("; ")} (rosterd status)`) : ok(`${statuses.length} district(s), none failing, stale or held`)
  }))
  return districts.length === 0 ? [{ check: "districts", status: "warn" as const, detail: "none registered (config districts: or rosterd district add)" }, standing] : [...probes, standing]
})
