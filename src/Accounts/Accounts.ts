import { SqlClient, type SqlError } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import * as NodePath from "node:path"
import { isAdminRole } from "../Domain/Roles.ts"
import { Audit, defaultActor } from "../Audit/Audit.ts"
import { readOperatorCsv } from "../Csv/OperatorFile.ts"
import { isEmail } from "../Domain/Values.ts"
import { pgErrorOfFailure, refusedAs } from "../Store/SqlErrors.ts"
import { Activation } from "./Activation.ts"

/**
 * The platform's accounts as operators handle them: importing the platform's existing
 * ("grassroots") accounts, adding an address, confirming an activation token, resending
 * one, looking at an account. The review queue is in Reviews.ts.
 *
 * Nothing here prints, logs or puts into an error a name, an e-mail address, a birth date
 * or a token: errors name files, lines, columns and ids.
 */

// ---------------------------------------------------------------- errors

export class AccountsImportError extends Schema.TaggedError<AccountsImportError>()("AccountsImportError", {
  file: Schema.String,
  line: Schema.optional(Schema.Number),
  problem: Schema.String
}) {
  override get message() {
    return `${this.file}${this.line === undefined ? "" : ` line ${this.line}`}: ${this.problem}; nothing was imported`
  }
}

export class InvalidEmail extends Schema.TaggedError<InvalidEmail>()("InvalidEmail", {}) {
  override get message() {
    return "the address is not a valid e-mail address (expected local@domain)"
  }
}

export class AccountNotFound extends Schema.TaggedError<AccountNotFound>()("AccountNotFound", {
  accountId: Schema.Number
}) {
  override get message() {
    return `no account ${this.accountId}`
  }
}

export class AccountMerged extends Schema.TaggedError<AccountMerged>()("AccountMerged", {
  accountId: Schema.Number,
  mergedInto: Schema.Number
}) {
  override get message() {
    return `account ${this.accountId} was merged into account ${this.mergedInto}; use that account`
  }
}

export class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", {
  userId: Schema.Number
}) {
  override get message() {
    return `no rostered user ${this.userId}`
  }
}

export class NotPendingTeacher extends Schema.TaggedError<NotPendingTeacher>()("NotPendingTeacher", {
  userId: Schema.Number,
  why: Schema.String
}) {
  override get message() {
    return `user ${this.userId} is not a teacher waiting for activation: ${this.why}`
  }
}

/** `rosterd_confirm_activation` said no: RSTOK (the token) or RSLNK (the chosen account). */
export class ActivationRefused extends Schema.TaggedError<ActivationRefused>()("ActivationRefused", {
  code: Schema.Literal("RSTOK", "RSLNK"),
  reason: Schema.String
}) {
  override get message() {
    return this.code === "RSTOK" ? `activation refused: ${this.reason}` : `cannot link: ${this.reason}`
  }
}

/** `rosterd_resolve_login` said no: an unknown provider or an empty subject (22023), or an ambiguous subject (RSAMB). */
export class LoginNotResolved extends Schema.TaggedError<LoginNotResolved>()("LoginNotResolved", {
  code: Schema.Literal("22023", "RSAMB"),
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

/**
 * A lock of the database refused a write (SQLSTATE RSLCK): the message is the database's
 * own, which names the rule (`rosterd rule synced_class_name: …`).
 */
export class Refused extends Schema.TaggedError<Refused>()("Refused", {
  rule: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `refused: ${this.reason}`
  }
}

// ---------------------------------------------------------------- helpers

/** The `Refused` a failure stands for, when it is a lock refusal of the database (SQLSTATE RSLCK). */
const lockRefusal = (error: unknown): Refused | undefined => {
  const pg = pgErrorOfFailure(error)
  if (Option.isNone(pg) || pg.value.code !== "RSLCK") return undefined
  const rule = /^rosterd rule ([a-z_]+):/.exec(pg.value.message)?.[1] ?? "unknown"
  return new Refused({ rule, reason: pg.value.message })
}

/** Turns the database's lock refusals (SQLSTATE RSLCK) into `Refused`; other failures pass unchanged. */
export const refuseOnLock = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | Refused, R> =>
  Effect.catchIf(effect, (error) => lockRefusal(error) !== undefined, (error) => Effect.fail(lockRefusal(error)!))


// ---------------------------------------------------------------- CSV import

export interface ImportCounts {
  readonly rows: number
  /** Distinct external ids in the file. */
  readonly accounts: number
  readonly accountsCreated: number
  readonly addressesAdded: number
  /** Provider identities (`clever_id`, `oneroster_sourced_id`, `classlink_login`) added. */
  readonly identitiesAdded: number
}

interface ImportRows {
  readonly externalIds: Array<string>
  readonly emails: Array<string | null>
  readonly displayNames: Array<string | null>
  /** One entry per identity cell: its row's external id and line, and what it is. */
  readonly identities: {
    readonly externalIds: Array<string>
    readonly lines: Array<number>
    readonly providers: Array<string>
    readonly kinds: Array<string>
    readonly subjects: Array<string>
    readonly columns: Array<string>
  }
}

/**
 * The optional identity columns: what a grassroots account is known by at a provider, so the
 * sync links its rostered person by that first, by address second (src/Accounts/Linking.ts).
 * `clever_id`: a Clever user id; `oneroster_sourced_id`: a OneRoster sourcedId (ClassLink,
 * any OneRoster source, CSV included); `classlink_login`: what a ClassLink sign-in carried —
 * a sourcedId or a `userIds` identifier.
 */
const IDENTITY_COLUMNS = {
  clever_id: { provider: "clever", kind: "source_id" },
  oneroster_sourced_id: { provider: "oneroster", kind: "source_id" },
  classlink_login: { provider: "oneroster", kind: "login" }
} as const

const COLUMNS = ["external_id", "email", "display_name", ...Object.keys(IDENTITY_COLUMNS) as Array<keyof typeof IDENTITY_COLUMNS>] as const

/**
 * Reads the whole file into column arrays (one statement per column later, not per row).
 * Any bad row fails the whole import with its line; cell values never reach a message.
 */
const readImportFile = (file: string) =>
  Effect.suspend(() => {
    const rows: ImportRows = {
      externalIds: [],
      emails: [],
      displayNames: [],
      identities: { externalIds: [], lines: [], providers: [], kinds: [], subjects: [], columns: [] }
    }
    return readOperatorCsv(file, (refusal) => new AccountsImportError({ file, ...refusal }), (names, headerLine, refuse) => {
      if (!names.includes("external_id")) {
        const near = names.find((name) => name.toLowerCase().replace(/[\s-]/g, "_") === "external_id")
        refuse(`the header has no external_id column${near === undefined ? "" : ` (found "${near}": column names are lower case)`}`, headerLine)
      }
      const positions = Object.fromEntries(COLUMNS.map((column) => [column, names.indexOf(column)])) as Record<(typeof COLUMNS)[number], number>
      return (record, line) => {
        const cell = (column: (typeof COLUMNS)[number]) => {
          const at = positions[column]
          const value = at === -1 ? "" : (record[at] ?? "").trim()
          return value === "" ? null : value
        }
        const externalId = cell("external_id")
        if (externalId === null) refuse("external_id is empty", line)
        const email = cell("email")
        if (email !== null && !isEmail(email)) refuse("the email is not a valid e-mail address", line)
        rows.externalIds.push(externalId!)
        rows.emails.push(email)
        rows.displayNames.push(cell("display_name"))
        for (const [column, identity] of Object.entries(IDENTITY_COLUMNS) as Array<[keyof typeof IDENTITY_COLUMNS, (typeof IDENTITY_COLUMNS)[keyof typeof IDENTITY_COLUMNS]]>) {
          const subject = cell(column)
          if (subject === null) continue
          if (subject.length > 256 || /[\u0000-\u001f\u007f]/.test(subject)) refuse(`${column} is not a usable identifier`, line)
          rows.identities.externalIds.push(externalId!)
          rows.identities.lines.push(line)
          rows.identities.providers.push(identity.provider)
          rows.identities.kinds.push(identity.kind)
          rows.identities.subjects.push(subject)
          rows.identities.columns.push(column)
        }
      }
    }).pipe(Effect.as(rows))
  })

/** A row of `rosterd_resolve_login`. */
export interface ResolvedLogin {
  readonly accountId: number | null
  /** The account may be used now: active, and (through a rostered user) that user active and its link confirmed. */
  readonly active: boolean
  readonly accountState: string | null
  readonly districtId: string | null
  readonly userId: number | null
  readonly sourceId: string | null
  readonly userActive: boolean | null
  /** `source_id`, `user_id:<type>`, or `account:source_id|login` (a grassroots account's imported identity). */
  readonly matchedBy: string
}

// ---------------------------------------------------------------- the service

export class Accounts extends Effect.Service<Accounts>()("rosterd/Accounts", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const activation = yield* Activation
    const audit = yield* Audit

    /**
     * `accounts import`: all or nothing, in one transaction; idempotent (an existing
     * external id is reused, an address it already has is skipped). Two set-based
     * statements whatever the size of the file. Audited (counts only) in the same transaction.
     */
    const importCsv = Effect.fn("Accounts.importCsv")(function*(file: string, actor: string = defaultActor()) {
      const rows = yield* readImportFile(file)
      const result = yield* sql.withTransaction(Effect.gen(function*() {
        const [created] = yield* sql<{ readonly created: number }>`
          WITH input AS (
            SELECT * FROM unnest(${rows.externalIds}::text[], ${rows.displayNames}::text[]) WITH ORDINALITY AS r(external_id, display_name, n)
          ),
          firsts AS (
            SELECT DISTINCT ON (external_id) external_id, display_name FROM input ORDER BY external_id, display_name IS NULL, n
          ),
          inserted AS (
            INSERT INTO accounts (origin, external_id, display_name, state)
            SELECT 'grassroots', external_id, display_name, 'active' FROM firsts
            ON CONFLICT (external_id) DO NOTHING
            RETURNING 1
          )
          SELECT count(*)::int AS created FROM inserted`
        const [added] = yield* sql<{ readonly added: number }>`
          WITH input AS (
            SELECT external_id, btrim(email) AS email, lower(btrim(email)) AS email_key, n
            FROM unnest(${rows.externalIds}::text[], ${rows.emails}::text[]) WITH ORDINALITY AS r(external_id, email, n)
            WHERE email IS NOT NULL
          ),
          firsts AS (
            SELECT DISTINCT ON (external_id, email_key) external_id, email, email_key FROM input ORDER BY external_id, email_key, n
          ),
          inserted AS (
            INSERT INTO account_emails (account_id, email, email_key, added_by)
            SELECT a.id, f.email, f.email_key, 'import' FROM firsts f JOIN accounts a ON a.external_id = f.external_id
            ON CONFLICT (account_id, email_key) DO NOTHING
            RETURNING 1
          )
          SELECT count(*)::int AS added FROM inserted`
        // An identity names one account: one the file gives two accounts, or that another
        // account already has, fails the import (with the line, never the value).
        const { identities } = rows
        if (identities.subjects.length > 0) {
          const [clash] = yield* sql<{ readonly line: number; readonly column: string; readonly other: string | null }>`
            WITH input AS (
              SELECT * FROM unnest(${identities.externalIds}::text[], ${identities.lines}::int[], ${identities.providers}::text[],
                                   ${identities.kinds}::text[], ${identities.subjects}::text[], ${identities.columns}::text[])
                AS i(external_id, line, provider, kind, subject, col))
            SELECT i.line, i.col AS column, NULL AS other FROM input i
            WHERE EXISTS (SELECT 1 FROM input j WHERE j.provider = i.provider AND j.kind = i.kind AND j.subject = i.subject
                          AND j.external_id <> i.external_id AND j.line < i.line)
            UNION ALL
            SELECT i.line, i.col, o.account_id::text FROM input i
            JOIN account_identities o ON o.provider = i.provider AND o.kind = i.kind AND o.subject = i.subject
            JOIN accounts a ON a.id = o.account_id
            WHERE a.external_id IS DISTINCT FROM i.external_id
            ORDER BY line LIMIT 1`
          if (clash !== undefined) {
            return yield* new AccountsImportError({
              file,
              line: clash.line,
              problem: clash.other === null
                ? `its ${clash.column} is given to another external_id earlier in the file (an identity names one account)`
                : `its ${clash.column} already belongs to account ${clash.other} (an identity names one account)`
            })
          }
        }
        const [identitiesAdded] = identities.subjects.length === 0 ? [{ added: 0 }] : yield* sql<{ readonly added: number }>`
          WITH input AS (
            SELECT DISTINCT external_id, provider, kind, subject
            FROM unnest(${identities.externalIds}::text[], ${identities.providers}::text[], ${identities.kinds}::text[], ${identities.subjects}::text[])
              AS i(external_id, provider, kind, subject)),
          inserted AS (
            INSERT INTO account_identities (account_id, provider, kind, subject, added_by)
            SELECT a.id, i.provider, i.kind, i.subject, 'import' FROM input i JOIN accounts a ON a.external_id = i.external_id
            ON CONFLICT DO NOTHING
            RETURNING 1)
          SELECT count(*)::int AS added FROM inserted`
        const result = { accountsCreated: created?.created ?? 0, addressesAdded: added?.added ?? 0, identitiesAdded: identitiesAdded?.added ?? 0 }
        yield* audit.record({
          actor,
          action: "accounts.import",
          subject: `file ${NodePath.basename(file)}`,
          details: { rows: rows.externalIds.length, accounts: new Set(rows.externalIds).size, ...result }
        })
        return result
      }))
      return {
        rows: rows.externalIds.length,
        accounts: new Set(rows.externalIds).size,
        ...result
      } satisfies ImportCounts
    })

    /** The account, locked for the rest of the transaction; merged accounts are refused. */
    const lockUsableAccount = Effect.fn("Accounts.lockUsableAccount")(function*(accountId: number) {
      const [account] = yield* sql<{ readonly id: number; readonly state: string; readonly mergedInto: number | null; readonly origin: string }>`
        SELECT id, state, merged_into, origin FROM accounts WHERE id = ${accountId} FOR UPDATE`
      if (account === undefined) return yield* new AccountNotFound({ accountId })
      if (account.state === "merged") return yield* new AccountMerged({ accountId, mergedInto: account.mergedInto ?? 0 })
      return account
    })

    /** `accounts add-email`: true when added, false when the account already had it. Audited without the address. */
    const addEmail = Effect.fn("Accounts.addEmail")(function*(accountId: number, email: string, actor: string = defaultActor()) {
      const address = email.trim()
      if (!isEmail(address)) return yield* new InvalidEmail()
      return yield* sql.withTransaction(Effect.gen(function*() {
        yield* lockUsableAccount(accountId)
        const inserted = yield* sql`
          INSERT INTO account_emails (account_id, email, email_key, added_by)
          VALUES (${accountId}, ${address}, lower(btrim(${address}::text)), 'operator')
          ON CONFLICT (account_id, email_key) DO NOTHING
          RETURNING 1`
        yield* audit.record({ actor, action: "account.add-email", subject: `account ${accountId}`, details: { added: inserted.length === 1 } })
        return inserted.length === 1
      }))
    })

    /** `accounts show`: never the addresses or the name, only how many addresses. */
    const show = Effect.fn("Accounts.show")(function*(accountId: number) {
      const [account] = yield* sql<{
        readonly id: number
        readonly origin: string
        readonly state: string
        readonly externalId: string | null
        readonly districtId: string | null
        readonly mergedInto: number | null
        readonly createdAt: Date
        readonly activatedAt: Date | null
        readonly addresses: number
      }>`
        SELECT a.id, a.origin, a.state, a.external_id, a.district_id, a.merged_into, a.created_at, a.activated_at,
               (SELECT count(*)::int FROM account_emails e WHERE e.account_id = a.id) AS addresses
        FROM accounts a WHERE a.id = ${accountId}`
      if (account === undefined) return yield* new AccountNotFound({ accountId })
      const links = yield* sql<{
        readonly userId: number
        readonly districtId: string
        readonly sourceId: string
        readonly roles: ReadonlyArray<string>
        readonly active: boolean
        readonly method: string
        readonly activation: string
      }>`
        SELECT l.user_id, u.district_id, u.source_id, u.roles, u.active, l.method, l.activation
        FROM account_links l JOIN users u ON u.id = l.user_id
        WHERE l.account_id = ${accountId} ORDER BY l.user_id`
      return { ...account, links }
    })

    /** `accounts confirm`: the database function does the work (and the platform calls the same). */
    const confirm = Effect.fn("Accounts.confirm")(function*(token: string, linkAccount: Option.Option<number>) {
      const rows = yield* sql<{ readonly userId: number; readonly accountId: number; readonly outcome: "activated" | "linked" }>`
        SELECT * FROM rosterd_confirm_activation(${token}, ${Option.getOrNull(linkAccount)}::bigint)`.pipe(
        refusedAs(["RSTOK", "RSLNK"], (code, reason) => new ActivationRefused({ code, reason }))
      )
      return rows[0]!
    })

    /** `accounts resend-activation`: revokes the teacher's unused tokens and queues a new one; audited. */
    const resendActivation = Effect.fn("Accounts.resendActivation")(function*(userId: number, actor: string = defaultActor()) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const [user] = yield* sql<{
          readonly districtId: string
          readonly roles: ReadonlyArray<string>
          readonly active: boolean
          readonly hasEmail: boolean
          readonly activation: string | null
        }>`
          SELECT u.district_id, u.roles, u.active, (coalesce(btrim(u.email), '') <> '') AS has_email, l.activation
          FROM users u LEFT JOIN account_links l ON l.user_id = u.id
          WHERE u.id = ${userId}
          FOR UPDATE OF u`
        if (user === undefined) return yield* new UserNotFound({ userId })
        const refuse = (why: string) => new NotPendingTeacher({ userId, why })
        if (!user.roles.some((role) => role === "teacher" || isAdminRole(role))) return yield* refuse("not a teacher or administrator")
        if (!user.active) return yield* refuse("no longer active in the roster")
        if (user.activation === null) return yield* refuse("not linked to an account yet (see `rosterd accounts review list`)")
        if (user.activation !== "pending") return yield* refuse("already active")
        if (!user.hasEmail) return yield* refuse("the roster gives no e-mail address, so no activation e-mail can be sent")
        const issued = yield* activation.issue({ districtId: user.districtId, userIds: [userId], replace: true })
        if (issued === 0) return yield* refuse("no activation could be issued")
        yield* audit.record({
          actor,
          action: "account.resend-activation",
          districtId: user.districtId,
          subject: `user ${userId}`,
          details: { issued }
        })
        return { districtId: user.districtId, issued }
      }))
    })

    /**
     * `accounts resolve`: what `rosterd_resolve_login` (the platform's entry point) says of a
     * sign-in's subject — the account, whether it is active, and the rostered user it came
     * from (or the grassroots account by its imported identity). Empty when nothing matches.
     */
    const resolve = Effect.fn("Accounts.resolve")(function*(provider: string, subject: string, districtId: Option.Option<string>) {
      const rows = yield* sql<ResolvedLogin>`
        SELECT * FROM rosterd_resolve_login(${provider}, ${subject}, ${Option.getOrNull(districtId)})`.pipe(
        refusedAs(["RSAMB", "22023"], (code, reason) => new LoginNotResolved({ code, reason }))
      )
      return rows.map((r): ResolvedLogin => ({ ...r, accountId: r.accountId === null ? null : Number(r.accountId), userId: r.userId === null ? null : Number(r.userId) }))
    })

    return { importCsv, addEmail, show, confirm, resendActivation, lockUsableAccount, resolve } as const
  }),
  dependencies: [Activation.Default, Audit.Default]
}) {}
