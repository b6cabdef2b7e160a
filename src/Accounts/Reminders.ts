import { SqlClient } from "@effect/sql"
import { Config, Duration, Effect, Layer, Schedule, Schema } from "effect"
import { CONFIRMING_ROLES_SQL } from "../Domain/Roles.ts"
import { Audit, defaultActor } from "../Audit/Audit.ts"
import { DistrictNotFound } from "../Domain/Errors.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { Accounts } from "./Accounts.ts"
import { ACTIVATION_MAILS, Activation, PENDING_WITH_ADDRESS_WHERE } from "./Activation.ts"

/**
 * Activation follow-up (issue 15): teachers (and roster admins) whose district account still
 * waits for them to confirm it.
 *
 * - **Reminders.** With the district rules `activation.remindAfterDays` (7) and
 *   `activation.maxReminders` (2), a pending teacher with an address whose last activation
 *   e-mail is `remindAfterDays` old gets a reminder ("Reminder: confirm your official …
 *   account") with a fresh link; the earlier link stops working. Set-based per district, in
 *   one transaction (src/Accounts/Activation.ts `remind`). The daemon checks every
 *   `rosterd.accounts.reminderCheck` (1 hour), on every replica: reminder n of a teacher is
 *   made once whichever replica comes first (a unique index, migrations/0013), and its
 *   e-mail is queued in the outbox with it, once.
 * - **`pending`**: who has not activated, by source ID, with the days since the first
 *   e-mail, the reminders sent and when the next one is due. No name, no address.
 * - **`resend`**: a new activation e-mail now (the earlier link stops working) for one
 *   teacher by source ID, or every pending teacher of the district with an address; audited.
 *   It is not a reminder: it does not count towards `maxReminders`, and the next reminder
 *   comes `remindAfterDays` after it.
 */

/** `rosterd.accounts.reminderCheck`: how often the daemon looks for due reminders. */
export const reminderCheck = Config.duration("reminderCheck").pipe(
  Config.nested("accounts"),
  Config.nested("rosterd"),
  Config.withDefault(Duration.hours(1))
)

export class UserNotInDistrict extends Schema.TaggedError<UserNotInDistrict>()("UserNotInDistrict", {
  district: Schema.String,
  sourceId: Schema.String
}) {
  override get message() {
    return `district ${this.district} has no rostered user with source ID ${this.sourceId}`
  }
}

export interface PendingPerson {
  readonly userId: number
  readonly sourceId: string
  readonly roles: ReadonlyArray<string>
  readonly accountId: number
  /** The roster gives an address: without one no e-mail can go out. */
  readonly hasAddress: boolean
  readonly firstMailAt: Date | null
  readonly daysSinceFirstMail: number | null
  readonly lastMailAt: Date | null
  readonly remindersSent: number
  /** When the newest link stops working (null: none that works). */
  readonly linkExpiresAt: Date | null
  /** When the next reminder is due (null: none will be — no mail yet, no address, or all sent). */
  readonly nextReminderAt: Date | null
}

export interface ResendOutcome {
  readonly districtId: string
  readonly users: ReadonlyArray<number>
  readonly issued: number
}

export class Reminders extends Effect.Service<Reminders>()("rosterd/Reminders", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* RosterStore
    const activation = yield* Activation
    const accounts = yield* Accounts
    const audit = yield* Audit

    const district = (districtId: string) =>
      Effect.flatMap(store.findDistrict(districtId), (found) =>
        found._tag === "Some" ? Effect.succeed(found.value) : Effect.fail(new DistrictNotFound({ district: districtId })))

    /** `rosterd accounts pending <district>`: who has not activated. */
    const pending = Effect.fn("Reminders.pending")(function*(districtId: string) {
      const { rules } = yield* district(districtId)
      const rows = yield* sql.unsafe<{
        readonly userId: number
        readonly sourceId: string
        readonly roles: ReadonlyArray<string>
        readonly accountId: number
        readonly hasAddress: boolean
        readonly firstAt: Date | null
        readonly lastAt: Date | null
        readonly reminders: number | null
        readonly expiresAt: Date | null
        readonly now: Date
      }>(
        `WITH mails AS (${ACTIVATION_MAILS}),
         live AS (
           SELECT DISTINCT ON (t.user_id) t.user_id, t.expires_at
           FROM activation_tokens t JOIN users u ON u.id = t.user_id AND u.district_id = $1
           WHERE t.used_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > now()
           ORDER BY t.user_id, t.id DESC)
         SELECT u.id AS user_id, u.source_id, u.roles, l.account_id, coalesce(btrim(u.email), '') <> '' AS has_address,
                m.first_at, m.last_at, m.reminders, v.expires_at, now() AS now
         FROM account_links l JOIN users u ON u.id = l.user_id
         LEFT JOIN mails m ON m.user_id = u.id LEFT JOIN live v ON v.user_id = u.id
         WHERE u.district_id = $1 AND u.active AND u.roles && ${CONFIRMING_ROLES_SQL} AND l.activation = 'pending'
         ORDER BY u.source_id`,
        [districtId]
      )
      const day = 24 * 3600 * 1000
      return rows.map((r): PendingPerson => {
        const reminders = r.reminders ?? 0
        const next = r.lastAt !== null && r.hasAddress && reminders < rules.activation.maxReminders
          ? new Date(r.lastAt.getTime() + rules.activation.remindAfterDays * day)
          : null
        return {
          userId: Number(r.userId),
          sourceId: r.sourceId,
          roles: r.roles,
          accountId: Number(r.accountId),
          hasAddress: r.hasAddress,
          firstMailAt: r.firstAt,
          daysSinceFirstMail: r.firstAt === null ? null : Math.floor((r.now.getTime() - r.firstAt.getTime()) / day),
          lastMailAt: r.lastAt,
          remindersSent: reminders,
          linkExpiresAt: r.expiresAt,
          nextReminderAt: next
        }
      })
    })

    /**
     * Every district's due reminders. A district whose links cannot be sealed (no key) is
     * logged and tried again at the next check; the others go on.
     */
    const sendDue = Effect.fn("Reminders.sendDue")(function*() {
      let queued = 0
      for (const d of yield* store.listDistricts()) {
        const sent = yield* activation.remind(d.id, d.rules.activation).pipe(
          Effect.catchTags({
            SecretsKeyMissing: (error) => Effect.as(Effect.logWarning("activation reminders wait for a credentials key", error.message), 0),
            SecretsKeyInvalid: (error) => Effect.as(Effect.logWarning("activation reminders wait for a credentials key", error.message), 0)
          }),
          Effect.annotateLogs({ district: d.id })
        )
        if (sent > 0) yield* Effect.logInfo("activation reminders queued").pipe(Effect.annotateLogs({ district: d.id, reminders: sent }))
        queued += sent
      }
      return queued
    })

    /**
     * `rosterd accounts resend-activation <district> --user <source id> | --all-pending`: a new
     * activation e-mail now; the earlier links stop working. Fails without a credentials key
     * (nothing revoked). One transaction; audited.
     */
    const resend = Effect.fn("Reminders.resend")(function*(
      districtId: string,
      target: { readonly sourceId: string } | "all-pending",
      by: string = defaultActor()
    ) {
      yield* district(districtId)
      if (target !== "all-pending") {
        const [user] = yield* sql<{ readonly id: number }>`
          SELECT id FROM users WHERE district_id = ${districtId} AND source_id = ${target.sourceId}`
        if (user === undefined) return yield* new UserNotInDistrict({ district: districtId, sourceId: target.sourceId })
        const result = yield* accounts.resendActivation(Number(user.id), by)
        return { districtId, users: [Number(user.id)], issued: result.issued } satisfies ResendOutcome
      }
      return yield* sql.withTransaction(Effect.gen(function*() {
        const due = yield* sql.unsafe<{ readonly userId: number }>(
          `SELECT l.user_id FROM account_links l JOIN users u ON u.id = l.user_id
           WHERE ${PENDING_WITH_ADDRESS_WHERE} AND u.district_id = $1
           ORDER BY l.user_id FOR UPDATE OF l`,
          [districtId]
        )
        const users = due.map((r) => Number(r.userId))
        const issued = users.length === 0 ? 0 : yield* activation.issue({ districtId, userIds: users, replace: true })
        yield* audit.record({
          actor: by,
          action: "account.resend-activation",
          districtId,
          subject: `district ${districtId}`,
          details: { allPending: true, users: users.length, issued }
        })
        return { districtId, users, issued } satisfies ResendOutcome
      }))
    })

    return { pending, sendDue, resend } as const
  }),
  dependencies: [Activation.Default, Accounts.Default, Audit.Default, RosterStore.Default]
}) {}

/**
 * The daemon's reminder loop: every `rosterd.accounts.reminderCheck`, from start. Every
 * replica runs it; a failed pass is logged and the next one comes. Without its service
 * (tests give one per replica); `RemindersLive` has it.
 */
export const RemindersWithoutDependencies = Layer.scopedDiscard(
  Effect.gen(function*() {
    const reminders = yield* Reminders
    const every = yield* reminderCheck
    yield* reminders.sendDue().pipe(
      Effect.catchAllCause((cause) => Effect.logError("activation reminders failed, will try again", cause)),
      Effect.repeat(Schedule.spaced(every)),
      Effect.forkScoped
    )
  })
)

/** The reminder loop with its service, as the daemon runs it beside the scheduler. */
export const RemindersLive = RemindersWithoutDependencies.pipe(Layer.provide(Reminders.Default))
