import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { DistrictNotFound } from "../Domain/Errors.ts"
import { isStudentOnly } from "../Domain/Roles.ts"
import { isEnrolledSql, studentActivation } from "../Reconcile/Rules/People.ts"
import { Accounts, refuseOnLock, UserNotFound } from "./Accounts.ts"
import { Activation, revokeActivations } from "./Activation.ts"

/**
 * The account review queue: rostered users the sync could not link on its own (several
 * accounts with the address, an address linked elsewhere, a shared address, an address that
 * is or lately was another rostered person's — `address_reused` —, or a provider identity
 * naming several accounts or a taken one — `identity_conflict`). An operator
 * resolves each one by linking the user to an existing account or by creating a new
 * district account. The link itself is guarded by the database (a link is permanent once
 * its account is in use: SQLSTATE RSLCK, surfaced as `Refused`).
 */

export class ReviewNotFound extends Schema.TaggedError<ReviewNotFound>()("ReviewNotFound", {
  reviewId: Schema.Number
}) {
  override get message() {
    return `no account review ${this.reviewId} (see \`rosterd accounts review list\`)`
  }
}

export class ReviewClosed extends Schema.TaggedError<ReviewClosed>()("ReviewClosed", {
  reviewId: Schema.Number,
  resolution: Schema.NullOr(Schema.String)
}) {
  override get message() {
    return `account review ${this.reviewId} is already resolved${this.resolution === null ? "" : ` (${this.resolution})`}`
  }
}

export class AccountTaken extends Schema.TaggedError<AccountTaken>()("AccountTaken", {
  accountId: Schema.Number,
  userId: Schema.Number
}) {
  override get message() {
    return `account ${this.accountId} is already linked to another active rostered user (${this.userId})`
  }
}

export class AlreadyLinked extends Schema.TaggedError<AlreadyLinked>()("AlreadyLinked", {
  userId: Schema.Number,
  accountId: Schema.Number
}) {
  override get message() {
    return `user ${this.userId} is already linked to account ${this.accountId}; to keep that link: rosterd accounts review link <review-id> --account ${this.accountId} --by <name>`
  }
}

export interface OpenReview {
  readonly id: number
  readonly district: string
  readonly userId: number
  readonly sourceId: string
  readonly reason: string
  readonly candidateAccountIds: ReadonlyArray<number>
  /** `address_reused`: the source IDs of the other rostered people whose address it is (or was). */
  readonly relatedSourceIds: ReadonlyArray<string>
  readonly createdAt: Date
}

export type Activation_ = "pending" | "active"

export interface LinkOutcome {
  readonly reviewId: number
  readonly userId: number
  readonly accountId: number
  readonly activation: Activation_
  /** The pending district account the user was linked to before (now merged), if any. */
  readonly movedFrom: number | null
}

export interface CreateOutcome {
  readonly reviewId: number
  readonly userId: number
  readonly accountId: number
  readonly accountState: "pending" | "active"
  readonly activation: Activation_
  readonly student: boolean
  /** Activation e-mails queued (teachers with an address in the roster: 1). */
  readonly activationMails: number
}

export class Reviews extends Effect.Service<Reviews>()("rosterd/Reviews", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const accounts = yield* Accounts
    const activation = yield* Activation
    const audit = yield* Audit

    const list = Effect.fn("Reviews.list")(function*(districtId: Option.Option<string>) {
      if (Option.isSome(districtId)) {
        const known = yield* sql`SELECT 1 FROM districts WHERE id = ${districtId.value}`
        if (known.length === 0) return yield* new DistrictNotFound({ district: districtId.value })
      }
      const rows = yield* sql<{
        readonly id: number
        readonly districtId: string
        readonly userId: number
        readonly sourceId: string
        readonly reason: string
        readonly candidateAccountIds: ReadonlyArray<string | number>
        readonly relatedSourceIds: ReadonlyArray<string> | null
        readonly createdAt: Date
      }>`
        SELECT r.id, r.district_id, r.user_id, u.source_id, r.reason, r.candidate_account_ids, r.created_at,
               (SELECT array_agg(o.source_id ORDER BY o.source_id) FROM users o WHERE o.id = ANY (r.related_user_ids)) AS related_source_ids
        FROM account_reviews r JOIN users u ON u.id = r.user_id
        WHERE r.state = 'open' ${Option.isSome(districtId) ? sql`AND r.district_id = ${districtId.value}` : sql``}
        ORDER BY r.id`
      return rows.map((r): OpenReview => ({
        id: r.id,
        district: r.districtId,
        userId: r.userId,
        sourceId: r.sourceId,
        reason: r.reason,
        candidateAccountIds: r.candidateAccountIds.map(Number),
        relatedSourceIds: r.relatedSourceIds ?? [],
        createdAt: r.createdAt
      }))
    })

    /** The open review and its rostered user, both locked for the transaction. */
    const openReview = (reviewId: number) =>
      Effect.gen(function*() {
        const [review] = yield* sql<{ readonly id: number; readonly userId: number; readonly state: string; readonly resolution: string | null }>`
          SELECT id, user_id, state, resolution FROM account_reviews WHERE id = ${reviewId} FOR UPDATE`
        if (review === undefined) return yield* new ReviewNotFound({ reviewId })
        if (review.state !== "open") return yield* new ReviewClosed({ reviewId, resolution: review.resolution })
        const [user] = yield* sql<{
          readonly id: number
          readonly districtId: string
          readonly roles: ReadonlyArray<string>
          readonly enrolled: boolean
          readonly linkedTo: number | null
        }>`
          SELECT u.id, u.district_id, u.roles, ${sql.literal(isEnrolledSql("u.id", "u.district_id"))} AS enrolled,
                 l.account_id AS linked_to
          FROM users u LEFT JOIN account_links l ON l.user_id = u.id
          WHERE u.id = ${review.userId}
          FOR UPDATE OF u`
        if (user === undefined) return yield* new UserNotFound({ userId: review.userId })
        const student = isStudentOnly(user.roles)
        return { review, user, student }
      })

    const resolve = (reviewId: number, resolution: "linked" | "created", accountId: number, by: string) =>
      sql`UPDATE account_reviews
          SET state = 'resolved', resolution = ${resolution}, resolved_account_id = ${accountId},
              resolved_by = ${by}, resolved_at = now(), updated_at = now()
          WHERE id = ${reviewId}`

    /**
     * `review link`: the user's link goes to the chosen account. Teachers are active at once
     * (they already use that account); students are active while enrolled in an active
     * class. A link to a pending district account (made by a sync) may move; any other
     * existing link is permanent and the database refuses the move.
     */
    const link = Effect.fn("Reviews.link")(function*(reviewId: number, accountId: number, by: string) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const { review, student, user } = yield* openReview(reviewId)
        const account = yield* accounts.lockUsableAccount(accountId)
        const [other] = yield* sql<{ readonly userId: number }>`
          SELECT l.user_id FROM account_links l JOIN users u ON u.id = l.user_id
          WHERE l.account_id = ${accountId} AND l.user_id <> ${user.id} AND u.active
          ORDER BY l.user_id LIMIT 1`
        if (other !== undefined) return yield* new AccountTaken({ accountId, userId: other.userId })
        const activationState: Activation_ = student ? studentActivation(user.enrolled) : "active"
        let movedFrom: number | null = null
        if (user.linkedTo === null) {
          yield* sql`
            INSERT INTO account_links (user_id, account_id, method, activation, activated_at)
            VALUES (${user.id}, ${accountId}, 'review', ${activationState}, CASE WHEN ${activationState} = 'active' THEN now() END)`
        } else {
          // Moving a link is the database's decision (trigger account_links_lock).
          yield* refuseOnLock(sql`
            UPDATE account_links
            SET account_id = ${accountId}, method = 'review', activation = ${activationState},
                activated_at = CASE WHEN ${activationState} = 'active' THEN coalesce(activated_at, now()) ELSE activated_at END
            WHERE user_id = ${user.id}`)
          if (user.linkedTo !== accountId) {
            movedFrom = user.linkedTo
            // The district address goes with the user, so later syncs find it on the chosen account.
            yield* sql`
              INSERT INTO account_emails (account_id, email, email_key, added_by, former_at, source_user_id)
              SELECT ${accountId}, e.email, e.email_key, 'operator', e.former_at, e.source_user_id FROM account_emails e WHERE e.account_id = ${movedFrom}
              ON CONFLICT DO NOTHING`
            yield* sql`DELETE FROM account_emails WHERE account_id = ${movedFrom}`
            yield* sql`
              UPDATE accounts SET state = 'merged', merged_into = ${accountId}, updated_at = now()
              WHERE id = ${movedFrom} AND state = 'pending'`
          }
        }
        if (activationState === "active") {
          if (account.state === "pending") {
            yield* sql`UPDATE accounts SET state = 'active', activated_at = coalesce(activated_at, now()), updated_at = now()
                       WHERE id = ${accountId}`
          }
          // Nothing left to confirm: earlier activation links stop working.
          yield* revokeActivations([user.id]).pipe(Effect.provideService(SqlClient.SqlClient, sql))
        }
        yield* resolve(review.id, "linked", accountId, by)
        yield* audit.record({
          actor: by,
          action: "review.link",
          districtId: user.districtId,
          subject: `review ${review.id}`,
          details: { userId: user.id, accountId, activation: activationState, movedFrom }
        })
        return { reviewId: review.id, userId: user.id, accountId, activation: activationState, movedFrom } satisfies LinkOutcome
      }))
    })

    /**
     * `review create`: a new district account for the user, with the user's district
     * address. Teachers start pending and get their activation e-mail (queued in the same
     * transaction); students are active while enrolled in an active class.
     */
    const create = Effect.fn("Reviews.create")(function*(reviewId: number, by: string) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const { review, student, user } = yield* openReview(reviewId)
        if (user.linkedTo !== null) return yield* new AlreadyLinked({ userId: user.id, accountId: user.linkedTo })
        const activationState: Activation_ = student ? studentActivation(user.enrolled) : "pending"
        const accountState = activationState
        const [account] = yield* sql<{ readonly id: number }>`
          INSERT INTO accounts (origin, state, district_id, activated_at)
          VALUES ('district', ${accountState}, ${user.districtId}, CASE WHEN ${accountState} = 'active' THEN now() END)
          RETURNING id`
        const accountId = account!.id
        yield* sql`
          INSERT INTO account_emails (account_id, email, email_key, added_by, source_user_id)
          SELECT ${accountId}, btrim(u.email), lower(btrim(u.email)), 'sync', u.id FROM users u
          WHERE u.id = ${user.id} AND coalesce(btrim(u.email), '') <> ''`
        yield* sql`
          INSERT INTO account_links (user_id, account_id, method, activation, activated_at)
          VALUES (${user.id}, ${accountId}, 'review', ${activationState}, CASE WHEN ${activationState} = 'active' THEN now() END)`
        const activationMails = student
          ? 0
          : yield* activation.issue({ districtId: user.districtId, userIds: [user.id], replace: false })
        yield* resolve(review.id, "created", accountId, by)
        yield* audit.record({
          actor: by,
          action: "review.create",
          districtId: user.districtId,
          subject: `review ${review.id}`,
          details: { userId: user.id, accountId, accountState, activationMails }
        })
        return {
          reviewId: review.id,
          userId: user.id,
          accountId,
          accountState,
          activation: activationState,
          student,
          activationMails
        } satisfies CreateOutcome
      }))
    })

    return { list, link, create } as const
  }),
  dependencies: [Accounts.Default, Activation.Default, Audit.Default]
}) {}
