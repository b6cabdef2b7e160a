import { SqlClient } from "@effect/sql"
import { Cause, Config, Data, Duration, Effect, Exit, Option, Schema } from "effect"
import { Secrets } from "../Secrets/Secrets.ts"
import { MailError, Mailer, type MailMessage, scrubError } from "./Mailer.ts"
import { linkOf, renderLink } from "./Templates.ts"

/**
 * Delivery of the outbox: rows written by other code (e.g. Accounts/Activation.ts) in the
 * same transaction as the change implying them, sent afterwards through the `Mailer` port.
 *
 * **Claiming.** A short transaction picks due rows (`state = 'pending' AND next_attempt_at
 * <= now()`) with `FOR UPDATE SKIP LOCKED` and, in the same statement, counts the attempt
 * (`attempts + 1`) and moves `next_attempt_at` forward by a *lease*. Once it commits the
 * rows are no longer due, so other replicas (or a concurrent call) skip them without any
 * lock held during the sends; a replica whose claim overlaps sees them locked and skips
 * them too. The lease is `limit × sendTimeout + 60 s`, longer than the whole batch can
 * take, so a row is never due again while its claimer may still be sending it.
 *
 * **Delivery is at least once.** If the process dies after claiming, the rows become due
 * again when the lease ends; if it dies between sending and recording, the message is sent
 * again. The message id is `outbox-<id>`, stable across attempts, so a repeat replaces the
 * spool file and collapses with the first copy in mail clients. Because the attempt is
 * counted when claimed, a message that crashes the worker cannot loop forever: it reaches
 * `maxAttempts` like any failing one. When the worker is interrupted (daemon shutdown),
 * claimed rows it had not finished are handed back at once, their attempt uncounted.
 *
 * **Outcome.** Success: `state = 'sent'`, `sent_at`. Failure: `last_error` (the error with
 * e-mail addresses removed: SMTP replies often quote the recipient) and `next_attempt_at =
 * now() + min(retryMax, retryBase × 2^(attempts − 1))`, or `state = 'failed'` once
 * `attempts` reaches `maxAttempts`. `last_error` is kept after a later success, as a trace.
 *
 * **Links** (activation and invitation e-mails, migration 0009). Such a row holds the
 * message's template (`{link}`), the link page (`link_url`, `{token}`) and the token sealed
 * with the credentials key. The link is rendered here, just before the send, and never
 * written back: marking the row sent clears the seal in the same statement (and a trigger
 * clears it whatever makes the row sent or cancelled, or its token used or revoked). A
 * failed row keeps its seal, so `retry` still sends a working link; the same token, the
 * same link, on every attempt. A seal that does not open (its key is not configured, or the
 * row was altered: the seal is bound to the recipient, subject, bodies and link page) fails
 * the attempt like a refused send; a row whose seal is gone (its token used or replaced)
 * fails for good: nothing could be sent but a dead link.
 *
 * Logs carry outbox ids, kinds and attempt numbers only: never recipients, subjects or bodies.
 *
 * **Operators** see the queue with `list` (ids, kinds, districts, states, attempts, times,
 * errors: no recipient beyond its domain, no subject, no body) and put a failed message back
 * with `retry` (`rosterd outbox list|retry`).
 *
 * Config (`rosterd.mail.*`): `retryBaseSeconds` (30), `retryMaxSeconds` (3600), `maxAttempts`
 * (10), `pollSeconds` (10, the `run` loop), `batchSize` (20, rows per `deliverDue`),
 * `sendTimeoutSeconds` (30, one send; a timeout is a failed attempt).
 */

const mailConfig = <A>(config: Config.Config<A>) => config.pipe(Config.nested("mail"), Config.nested("rosterd"))

const positive = (name: string, fallback: number) =>
  mailConfig(Config.number(name).pipe(
    Config.validate({ message: `${name} must be a positive number`, validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  ))

const positiveInteger = (name: string, fallback: number) =>
  mailConfig(Config.integer(name).pipe(
    Config.validate({ message: `${name} must be a positive integer`, validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  ))

export const OutboxConfig = Config.all({
  retryBaseSeconds: positive("retryBaseSeconds", 30),
  retryMaxSeconds: positive("retryMaxSeconds", 3600),
  maxAttempts: positiveInteger("maxAttempts", 10),
  pollSeconds: positive("pollSeconds", 10),
  batchSize: positiveInteger("batchSize", 20),
  sendTimeoutSeconds: positive("sendTimeoutSeconds", 30)
})

export interface DeliveryCounts {
  /** Delivered to the Mailer and marked `sent`. */
  readonly sent: number
  /** Failed for the last allowed time: now `failed`. */
  readonly failed: number
  /** Failed, scheduled for another attempt. */
  readonly retried: number
}

interface ClaimedRow {
  readonly id: number
  readonly kind: string
  readonly idempotencyKey: string
  readonly recipient: string
  readonly subject: string
  readonly bodyText: string
  readonly bodyHtml: string | null
  readonly attempts: number
  readonly linkUrl: string | null
  readonly linkKeyId: string | null
  readonly linkIv: Uint8Array | null
  readonly linkCiphertext: Uint8Array | null
  readonly linkAuthTag: Uint8Array | null
}

/** A link message whose seal is gone: no attempt can send it but with a dead link. */
class LinkGone extends Data.TaggedError("LinkGone")<{ readonly message: string }> {}

export const OutboxState = Schema.Literal("pending", "sent", "failed", "cancelled")
export type OutboxState = typeof OutboxState.Type

/** A message as operators see it: never the recipient (its domain at most), the subject or the body. */
export interface OutboxEntry {
  readonly id: number
  readonly kind: string
  readonly districtId: string | null
  readonly state: OutboxState
  readonly attempts: number
  readonly nextAttemptAt: Date
  readonly sentAt: Date | null
  readonly lastError: string | null
  readonly createdAt: Date
  /** The part after the `@`, lower-cased: which mail system, not which person. */
  readonly recipientDomain: string
}

export interface RetriedMessage {
  readonly id: number
  readonly kind: string
  readonly districtId: string | null
  readonly previousState: OutboxState
  readonly previousAttempts: number
}

export class OutboxMessageNotFound extends Schema.TaggedError<OutboxMessageNotFound>()("OutboxMessageNotFound", { id: Schema.Number }) {
  override get message() {
    return `no outbox message ${this.id} (see rosterd outbox list)`
  }
}

/** What sends a new link instead, by kind. */
const resendHint = (kind: string) =>
  kind === "admin_invitation"
    ? "rosterd admin resend <admin-id>"
    : kind === "teacher_activation"
    ? "rosterd accounts resend-activation <user-id>"
    : "a new message"

const linkGoneText = (kind: string) =>
  `its link was withdrawn (the token was used or replaced, or the upgrade removed it); send a new one with ${resendHint(kind)}`

export class OutboxLinkGone extends Schema.TaggedError<OutboxLinkGone>()("OutboxLinkGone", { id: Schema.Number, kind: Schema.String }) {
  override get message() {
    return `outbox message ${this.id} is not sent again: ${linkGoneText(this.kind)}`
  }
}

export class OutboxMessageNotRetryable extends Schema.TaggedError<OutboxMessageNotRetryable>()("OutboxMessageNotRetryable", {
  id: Schema.Number,
  state: OutboxState,
  sentAt: Schema.NullOr(Schema.String)
}) {
  override get message() {
    return this.state === "sent"
      ? `outbox message ${this.id} was sent${this.sentAt === null ? "" : ` at ${this.sentAt}`}; a sent message is not sent again`
      : `outbox message ${this.id} is cancelled (a newer message replaced it, e.g. a resent activation); it is not sent again`
  }
}

/** Delay before the next attempt after `attempts` failed ones (1-based), in seconds. */
export const backoffSeconds = (attempts: number, baseSeconds: number, maxSeconds: number) =>
  Math.min(maxSeconds, baseSeconds * 2 ** Math.max(0, attempts - 1))

export class Outbox extends Effect.Service<Outbox>()("rosterd/Outbox", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const mailer = yield* Mailer
    const secrets = yield* Secrets
    const config = yield* OutboxConfig
    const sendTimeout = Duration.seconds(config.sendTimeoutSeconds)

    /** Claims up to `limit` due rows: one statement, its own short transaction. */
    const claim = (limit: number) => {
      const leaseSeconds = limit * config.sendTimeoutSeconds + 60
      return sql.withTransaction(sql<ClaimedRow>`
        WITH due AS (
          SELECT id FROM outbox
          WHERE state = 'pending' AND next_attempt_at <= now()
          ORDER BY next_attempt_at, id
          LIMIT ${limit}
          FOR UPDATE SKIP LOCKED
        )
        UPDATE outbox o
        SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => ${leaseSeconds}::float8)
        FROM due WHERE o.id = due.id
        RETURNING o.id, o.kind, o.idempotency_key, o.recipient, o.subject, o.body_text, o.body_html, o.attempts,
                  o.link_url, o.link_key_id, o.link_iv, o.link_ciphertext, o.link_auth_tag`).pipe(
        Effect.map((rows) => [...rows].sort((a, b) => a.id - b.id))
      )
    }

    /** Sent: the sealed token goes in the same statement (the delivered message is its only copy now). */
    const markSent = (row: ClaimedRow) =>
      sql`UPDATE outbox SET state = 'sent', sent_at = now(), link_key_id = NULL, link_iv = NULL, link_ciphertext = NULL, link_auth_tag = NULL
          WHERE id = ${row.id} AND state = 'pending'`

    const markFailed = (row: ClaimedRow, error: string, final: boolean, delaySeconds: number) =>
      final
        ? sql`UPDATE outbox SET state = 'failed', last_error = ${error} WHERE id = ${row.id} AND state = 'pending'`
        : sql`UPDATE outbox SET last_error = ${error}, next_attempt_at = now() + make_interval(secs => ${delaySeconds}::float8)
              WHERE id = ${row.id} AND state = 'pending'`

    /** Hands claimed rows back (interrupted before finishing them): due now, attempt uncounted. */
    const release = (ids: ReadonlyArray<number>) =>
      ids.length === 0 ? Effect.void : sql`
        UPDATE outbox SET attempts = greatest(attempts - 1, 0), next_attempt_at = now()
        WHERE id = ANY (${ids}::bigint[]) AND state = 'pending'`.pipe(
        Effect.asVoid,
        // Shutdown must not hang on an unreachable database: the lease covers that case.
        Effect.timeout("5 seconds"),
        Effect.catchAllCause((cause) => Effect.logWarning("could not hand back claimed outbox rows", cause))
      )

    /** The message to send: a link message gets its link, from its sealed token, now. */
    const message = (row: ClaimedRow): Effect.Effect<MailMessage, MailError | LinkGone> =>
      Effect.gen(function*() {
        const plain: MailMessage = {
          messageId: `outbox-${row.id}`,
          to: row.recipient,
          subject: row.subject,
          text: row.bodyText,
          ...(row.bodyHtml === null ? {} : { html: row.bodyHtml })
        }
        if (row.linkUrl === null) return plain
        if (row.linkKeyId === null || row.linkIv === null || row.linkCiphertext === null || row.linkAuthTag === null) {
          return yield* new LinkGone({ message: linkGoneText(row.kind) })
        }
        const token = yield* secrets.openLink({
          id: row.id,
          kind: row.kind,
          idempotencyKey: row.idempotencyKey,
          recipient: row.recipient,
          subject: row.subject,
          bodyText: row.bodyText,
          bodyHtml: row.bodyHtml,
          linkUrl: row.linkUrl,
          linkKeyId: row.linkKeyId,
          linkIv: row.linkIv,
          linkCiphertext: row.linkCiphertext,
          linkAuthTag: row.linkAuthTag
        }).pipe(Effect.mapError((error) => new MailError({ messageId: plain.messageId, message: error.message })))
        const link = linkOf(row.linkUrl, token)
        return {
          ...plain,
          text: renderLink(row.bodyText, link, false),
          ...(row.bodyHtml === null ? {} : { html: renderLink(row.bodyHtml, link, true) })
        }
      })

    const errorText = (cause: Cause.Cause<MailError | LinkGone>) =>
      Option.match(Cause.failureOption(cause), {
        onNone: () => `unexpected: ${Cause.pretty(cause)}`,
        onSome: (error) => error.message
      })

    /** Sends one claimed row and records the outcome. Once the send is over, recording it is not interrupted. */
    const deliverOne = (row: ClaimedRow) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const exit = yield* restore(Effect.flatMap(message(row), mailer.send).pipe(
            Effect.timeoutFail({
              duration: sendTimeout,
              onTimeout: () => new MailError({ messageId: `outbox-${row.id}`, message: `no answer within ${Duration.format(sendTimeout)}` })
            })
          )).pipe(Effect.exit)
          if (Exit.isSuccess(exit)) {
            yield* markSent(row)
            yield* Effect.logInfo("outbox message sent")
            return "sent" as const
          }
          if (Cause.isInterruptedOnly(exit.cause)) return yield* Effect.interrupt
          const error = scrubError(errorText(exit.cause), row.recipient)
          const gone = Option.exists(Cause.failureOption(exit.cause), (e) => e._tag === "LinkGone")
          const final = gone || row.attempts >= config.maxAttempts
          const delay = backoffSeconds(row.attempts, config.retryBaseSeconds, config.retryMaxSeconds)
          yield* markFailed(row, error, final, delay)
          const tag = Option.match(Cause.failureOption(exit.cause), { onNone: () => "Defect", onSome: (e) => e._tag })
          if (final) {
            yield* Effect.logError("outbox message failed for good").pipe(Effect.annotateLogs({ error: tag }))
            return "failed" as const
          }
          yield* Effect.logWarning("outbox delivery failed, will retry").pipe(Effect.annotateLogs({ error: tag, retryInSeconds: delay }))
          return "retried" as const
        })
      ).pipe(Effect.annotateLogs({ outboxId: row.id, kind: row.kind, attempt: row.attempts }))

    /**
     * Claims due rows (at most `limit`, default `batchSize`), sends them one by one and
     * records each outcome. SQL failures are defects (the `run` loop logs them).
     */
    const deliverDue = Effect.fn("Outbox.deliverDue")(
      function*(limit: number = config.batchSize) {
        const counts = { sent: 0, failed: 0, retried: 0 }
        if (!(limit > 0)) return counts as DeliveryCounts
        const rows = yield* claim(Math.floor(limit))
        yield* Effect.annotateCurrentSpan({ claimed: rows.length })
        if (rows.length === 0) return counts as DeliveryCounts
        const unfinished = new Set(rows.map((row) => row.id))
        yield* Effect.forEach(rows, (row) =>
          deliverOne(row).pipe(Effect.tap((outcome) =>
            Effect.sync(() => {
              counts[outcome]++
              unfinished.delete(row.id)
            })
          )), { discard: true }).pipe(
            Effect.onInterrupt(() => release([...unfinished]))
          )
        yield* Effect.annotateCurrentSpan(counts)
        return counts as DeliveryCounts
      },
      Effect.orDie
    )

    /**
     * Delivers forever: a batch, then another at once if the batch was full, else after
     * `pollSeconds`. Never fails: an error is logged and the loop goes on.
     */
    const run: Effect.Effect<never> = Effect.gen(function*() {
      yield* Effect.logInfo("outbox delivery started").pipe(
        Effect.annotateLogs({ pollSeconds: config.pollSeconds, batchSize: config.batchSize })
      )
      while (true) {
        const counts = yield* deliverDue().pipe(
          Effect.map(Option.some),
          Effect.catchAllCause((cause) => Effect.as(Effect.logError("outbox delivery failed, will try again", cause), Option.none()))
        )
        const full = Option.exists(counts, (c) => c.sent + c.failed + c.retried >= config.batchSize)
        if (!full) yield* Effect.sleep(Duration.seconds(config.pollSeconds))
      }
    })

    /** The queue, newest first; `state` narrows it. */
    const list = Effect.fn("Outbox.list")(function*(options: { readonly state?: OutboxState; readonly limit?: number } = {}) {
      return yield* sql<OutboxEntry>`
        SELECT id, kind, district_id, state, attempts, next_attempt_at, sent_at, last_error, created_at,
               lower(split_part(btrim(recipient), '@', 2)) AS recipient_domain
        FROM outbox
        WHERE ${options.state === undefined ? sql`true` : sql`state = ${options.state}`}
        ORDER BY id DESC
        LIMIT ${options.limit ?? 50}`
    }, Effect.orDie)

    /**
     * A failed (or pending) message becomes pending, due now, its attempts counted from zero
     * (`last_error` stays as a trace). Sent and cancelled messages are refused. Retrying a
     * message a worker is sending right now may send it twice (same Message-ID).
     */
    const retry = Effect.fn("Outbox.retry")(function*(id: number) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const [row] = yield* sql<{
          readonly kind: string
          readonly districtId: string | null
          readonly state: OutboxState
          readonly attempts: number
          readonly sentAt: Date | null
          readonly linkGone: boolean
        }>`
          SELECT kind, district_id, state, attempts, sent_at, (link_url IS NOT NULL AND link_ciphertext IS NULL) AS link_gone
          FROM outbox WHERE id = ${id} FOR UPDATE`
        if (row === undefined) return yield* new OutboxMessageNotFound({ id })
        if (row.state === "sent" || row.state === "cancelled") {
          return yield* new OutboxMessageNotRetryable({
            id,
            state: row.state,
            sentAt: row.sentAt === null ? null : new Date(row.sentAt).toISOString()
          })
        }
        if (row.linkGone) return yield* new OutboxLinkGone({ id, kind: row.kind })
        yield* sql`UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = now() WHERE id = ${id}`
        yield* Effect.logInfo("outbox message queued again").pipe(Effect.annotateLogs({ outboxId: id, previousState: row.state }))
        return { id, kind: row.kind, districtId: row.districtId, previousState: row.state, previousAttempts: row.attempts } satisfies RetriedMessage
      }))
    }, Effect.catchTag("SqlError", Effect.die))

    return { deliverDue, run, list, retry } as const
  }),
  dependencies: [Secrets.Default]
}) {}
