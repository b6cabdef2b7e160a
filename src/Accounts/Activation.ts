import { SqlClient } from "@effect/sql"
import { Array as Arr, Config, Data, Effect } from "effect"
import { CONFIRMING_ROLES_SQL } from "../Domain/Roles.ts"
import { districtEmailMasked, maskedEmail } from "../Reconcile/Quality.ts"
import { type Key, type LinkContext, newLinkToken, sealLink, tokenHash } from "../Secrets/Cipher.ts"
import type { SecretsKeyInvalid, SecretsKeyMissing } from "../Secrets/Errors.ts"
import { Secrets } from "../Secrets/Secrets.ts"
import type { ActivationRules } from "../Domain/DistrictRules.ts"
import { activationMail, type Variant } from "./ActivationMail.ts"

/**
 * Teacher activation (and roster admins', when the district syncs them — see Linking.ts):
 * a single-use, expiring token per teacher whose district account is new (pending),
 * delivered by e-mail through the outbox in the same transaction as the change that
 * implies it. Confirming is `rosterd_confirm_activation(token, link_account)` in the
 * database (migrations/0002), called by the platform and by `rosterd accounts confirm`.
 *
 * **No usable token at rest** (migration 0009). The token is 32 random bytes made here, in
 * Node. `activation_tokens` keeps its SHA-256; the outbox row keeps the message's template
 * (`{link}` where the link goes), the page (`link_url`) and the token **sealed** with the
 * credentials key (AES-256-GCM, bound to that very message: Cipher.ts `sealLink`). The
 * worker renders the link when it sends; the seal is cleared once the message is sent or
 * cancelled, or its token used or revoked. So no table holds a token the confirm function
 * would accept: only the delivered message (and the spool's copy of it) does.
 *
 * **Set-based**, three statements whatever the number of teachers: one picks the due users,
 * one inserts the token hashes (Node made the tokens), one the messages with the tokens
 * sealed (each seal is bound to its message, whose idempotency key names the token's id).
 *
 * **Reminders** (`remind`, run by src/Accounts/Reminders.ts): the same e-mail with a
 * "Reminder" subject and a fresh token, numbered per teacher (`activation_tokens.reminder`);
 * a unique index makes reminder n of a teacher exist once whichever replica sends it, and the
 * teacher's earlier links are revoked in the same transaction.
 *
 * **Without a key** (DATABASE_URL and no `rosterd.secrets.keyFile|keyEnv`) nothing can be
 * sealed: a sync applies all the same and only notes how many e-mails wait; a teacher never
 * sent a token stays due, so the first run with a key sends them. A resend fails, naming
 * the setting. The embedded default creates its development key on first need.
 *
 * Config (`rosterd.accounts.*`):
 * - `activationUrl` — the platform's confirmation page, `{token}` replaced by the token;
 * - `activationTtlDays` — how long a token works (default 14);
 * - `platformName` — how the e-mail names the product (default "rosterd").
 */

const accountsConfig = <A>(config: Config.Config<A>) => config.pipe(Config.nested("accounts"), Config.nested("rosterd"))

export interface IssueOptions {
  readonly districtId: string
  /** Only these rostered users (platform ids); all due teachers of the district when absent. */
  readonly userIds?: ReadonlyArray<number>
  /**
   * `false` (a sync): only teachers never sent a token. `true` (resend): revoke the user's
   * unused tokens and send a new one, even if one was sent before.
   */
  readonly replace: boolean
}

/** Rostered users whose district account waits for its holder to confirm, with an address; `l` their link, `u` the user. */
// Not to a masked address (src/Reconcile/Quality.ts), and once per person: a record linked as the
// same person as another (`same_person`, Linking.ts) follows that record's confirmation.
export const PENDING_WITH_ADDRESS_WHERE = `u.active AND u.email IS NOT NULL AND u.roles && ${CONFIRMING_ROLES_SQL} AND l.activation = 'pending'
  AND l.method <> 'same_person' AND NOT ${maskedEmail("u.email")} AND NOT ${districtEmailMasked("u.district_id")}`
const PENDING_WITH_ADDRESS = `FROM account_links l JOIN users u ON u.id = l.user_id WHERE ${PENDING_WITH_ADDRESS_WHERE}`

/**
 * Who is due an activation e-mail when `replace` is off: never sent a token, or sent only
 * tokens withdrawn because their link had been stored in clear (migration 0009), which the
 * upgrade promised to replace.
 */
const NEVER_SENT = `NOT EXISTS (SELECT 1 FROM activation_tokens t WHERE t.user_id = l.user_id
                                AND t.revoked_reason IS DISTINCT FROM 'link_at_rest')`

/** Activation e-mails every district's next sync would issue (for `rosterd doctor` when no key is configured). */
export const waitingActivations = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.unsafe<{ readonly n: number }>(`SELECT count(*)::int AS n ${PENDING_WITH_ADDRESS} AND ${NEVER_SENT}`).pipe(
    Effect.map((rows) => rows[0]?.n ?? 0)
  ))

/**
 * Revokes the users' unused activation tokens; their messages, if not sent yet, would carry
 * a dead link, so they are cancelled too (and lose their seal: migration 0009's trigger
 * does that whatever revokes a token).
 */
export const revokeActivations = (userIds: ReadonlyArray<number>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`WITH revoked AS (
          UPDATE activation_tokens SET revoked_at = now()
          WHERE used_at IS NULL AND revoked_at IS NULL AND user_id = ANY (${userIds.map(Number)}::bigint[])
          RETURNING id)
        UPDATE outbox SET state = 'cancelled'
        WHERE state = 'pending' AND idempotency_key IN (SELECT 'teacher-activation:' || id FROM revoked)`)

interface DueRow {
  readonly userId: number
  readonly accountId: number
  readonly recipient: string
  readonly teacher: boolean
  /** 0: a first e-mail or a resend; n: the teacher's n-th reminder. */
  readonly reminder: number
}

/** Due e-mails that no key could seal (a sync goes on without them). */
class Withheld extends Data.TaggedError("ActivationsWithheld")<{
  readonly count: number
  readonly error: SecretsKeyMissing | SecretsKeyInvalid
}> {}

/** What a sync's issuing did: mails queued, and mails that wait for a key (with why). */
export interface IssueResult {
  readonly issued: number
  readonly withheld: number
  readonly problem?: string
}

/**
 * Per teacher waiting for activation: when the first and the last activation e-mail were
 * made (tokens withdrawn by the upgrade to sealed links do not count: the sync sends those
 * again as first e-mails) and how many reminders went out. `$1` is the district.
 */
export const ACTIVATION_MAILS = `SELECT t.user_id, min(t.created_at) AS first_at, max(t.created_at) AS last_at,
         max(t.reminder)::int AS reminders
  FROM activation_tokens t JOIN users u ON u.id = t.user_id AND u.district_id = $1
  WHERE t.revoked_reason IS DISTINCT FROM 'link_at_rest'
  GROUP BY t.user_id`

/** Activation e-mails queued per statement (see `queue`). */
const QUEUE_SLICE = 1000

export class Activation extends Effect.Service<Activation>()("rosterd/Activation", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const secrets = yield* Secrets
    const url = yield* accountsConfig(Config.string("activationUrl")).pipe(
      Config.withDefault("https://platform.invalid/activate?token={token}")
    )
    const ttlDays = yield* accountsConfig(Config.integer("activationTtlDays")).pipe(Config.withDefault(14))
    const platform = yield* accountsConfig(Config.string("platformName")).pipe(Config.withDefault("rosterd"))

    const keyFor = (districtId: string) => secrets.sealingKey(`seal the activation links of district ${districtId}`)

    /**
     * Tokens and their e-mails for `due`, set-based: one statement inserts the token hashes
     * (Node made the tokens), one the messages with the tokens sealed (each seal bound to its
     * message, whose idempotency key names the token's id). A reminder's token is inserted
     * only if that reminder of that teacher does not exist yet (another replica may have just
     * made it): rows that meet it get no token, hence no e-mail; the teacher's earlier links
     * are revoked for those that got one. Returns how many e-mails were queued.
     */
    const queue = (
      district: { readonly id: string; readonly name: string },
      due: ReadonlyArray<DueRow>,
      key: Key,
      variant: Variant
    ) =>
      // In slices: each message carries its own copy of the bodies in the statement's
      // arrays, so the whole district at once (100k teachers of a 1.2M-student district)
      // would build hundreds of MB of parameters.
      Effect.reduce(Arr.chunksOf(due, QUEUE_SLICE), 0, (issued, slice) =>
        Effect.map(queueSlice(district, slice, key, variant), (n) => issued + n))

    const queueSlice = (
      district: { readonly id: string; readonly name: string },
      due: ReadonlyArray<DueRow>,
      key: Key,
      variant: Variant
    ) =>
      Effect.gen(function*() {
        const tokens = due.map((row) => ({ row, token: newLinkToken() }))
        const inserted = yield* sql.unsafe<{ readonly id: string; readonly tokenHash: Uint8Array; readonly userId: string }>(
          `INSERT INTO activation_tokens (user_id, account_id, token_hash, expires_at, reminder)
           SELECT user_id, account_id, token_hash, now() + make_interval(days => $4), reminder
           FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $5::smallint[]) AS i(user_id, account_id, token_hash, reminder)
           ${variant === "reminder" ? "ON CONFLICT (user_id, reminder) WHERE reminder > 0 DO NOTHING" : ""}
           RETURNING id::text, token_hash, user_id::text`,
          [
            tokens.map((t) => t.row.userId),
            tokens.map((t) => t.row.accountId),
            tokens.map((t) => tokenHash(t.token)),
            ttlDays,
            tokens.map((t) => t.row.reminder)
          ]
        )
        if (inserted.length === 0) return 0
        const idOf = new Map(inserted.map((r) => [Buffer.from(r.tokenHash).toString("hex"), r.id]))
        if (variant === "reminder") {
          // The earlier links stop working (migration 0009's trigger cancels their unsent messages).
          yield* sql.unsafe(
            `UPDATE activation_tokens SET revoked_at = now(), revoked_reason = 'reminder'
             WHERE user_id = ANY ($1::bigint[]) AND id <> ALL ($2::bigint[]) AND used_at IS NULL AND revoked_at IS NULL`,
            [inserted.map((r) => r.userId), inserted.map((r) => r.id)]
          )
        }
        const mails = {
          teacher: activationMail(platform, district.name, ttlDays, "teacher", variant),
          administrator: activationMail(platform, district.name, ttlDays, "administrator", variant)
        }
        const sealed = tokens.flatMap(({ row, token }) => {
          const tokenId = idOf.get(tokenHash(token).toString("hex"))
          if (tokenId === undefined) return [] // a reminder another replica made first
          const mail = row.teacher ? mails.teacher : mails.administrator
          const context: LinkContext = {
            kind: "teacher_activation",
            idempotencyKey: `teacher-activation:${tokenId}`,
            recipient: row.recipient,
            subject: mail.subject,
            bodyText: mail.text,
            bodyHtml: mail.html,
            linkUrl: url
          }
          return [{ context, seal: sealLink(key, context, token) }]
        })
        const [row] = yield* sql.unsafe<{ readonly issued: number }>(
          `WITH queued AS (
             INSERT INTO outbox (district_id, idempotency_key, kind, recipient, subject, body_text, body_html,
                                 link_url, link_key_id, link_iv, link_ciphertext, link_auth_tag)
             SELECT $1, idempotency_key, 'teacher_activation', recipient, subject, body_text, body_html, $2, key_id, iv, ciphertext, auth_tag
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[], $10::bytea[], $11::bytea[])
               AS i(idempotency_key, recipient, subject, body_text, body_html, key_id, iv, ciphertext, auth_tag)
             RETURNING 1)
           SELECT count(*)::int AS issued FROM queued`,
          [
            district.id,
            url,
            sealed.map((s) => s.context.idempotencyKey),
            sealed.map((s) => s.context.recipient),
            sealed.map((s) => s.context.subject),
            sealed.map((s) => s.context.bodyText),
            sealed.map((s) => s.context.bodyHtml),
            sealed.map((s) => s.seal.keyId),
            sealed.map((s) => Buffer.from(s.seal.iv)),
            sealed.map((s) => Buffer.from(s.seal.ciphertext)),
            sealed.map((s) => Buffer.from(s.seal.authTag))
          ]
        )
        return row?.issued ?? 0
      })

    const districtOf = (districtId: string) =>
      Effect.map(sql<{ readonly id: string; readonly name: string }>`SELECT id, name FROM districts WHERE id = ${districtId}`, (rows) => rows[0])

    /**
     * Issues tokens and queues their e-mails. Fails (nothing done) when no key can seal
     * them; `withheld` is for the caller that wants to go on without them.
     */
    const issueOrFail = (options: IssueOptions) =>
      Effect.gen(function*() {
        const district = yield* districtOf(options.districtId)
        if (district === undefined) return 0
        const only = options.userIds === undefined ? null : options.userIds.map(Number)
        // A resend needs the key before it revokes anything (its transaction would roll back
        // anyway; this way the error is the key's, not a half-done resend's).
        const early = options.replace ? yield* keyFor(options.districtId) : undefined
        if (options.replace) yield* revokeActivations(only ?? [])
        const due = yield* sql.unsafe<DueRow>(
          `SELECT l.user_id, l.account_id, btrim(u.email) AS recipient, 'teacher' = ANY (u.roles) AS teacher, 0 AS reminder
           ${PENDING_WITH_ADDRESS}
             AND u.district_id = $1 AND ($2::bigint[] IS NULL OR l.user_id = ANY ($2::bigint[]))
             AND ($3 OR ${NEVER_SENT})
           ORDER BY l.user_id`,
          [options.districtId, only, options.replace]
        )
        if (due.length === 0) return 0
        const key = early ?? (yield* keyFor(options.districtId).pipe(
          Effect.mapError((error) => new Withheld({ count: due.length, error }))
        ))
        return yield* queue(district, due, key, "first")
      })

    /**
     * Issues tokens and queues their e-mails; returns how many. A resend (`replace`) fails
     * when no key can seal the link; otherwise the e-mails simply wait (0, logged) for the
     * next sync with a key.
     */
    const issue = Effect.fn("Activation.issue")(function*(options: IssueOptions) {
      return yield* issueOrFail(options).pipe(
        Effect.catchTag("ActivationsWithheld", (w) =>
          Effect.as(Effect.logWarning("activation e-mails wait for a credentials key").pipe(Effect.annotateLogs({ withheld: w.count })), 0))
      )
    })

    /** A sync's issuing: what is due in the district; never fails for want of a key (the run applies, with a note). */
    const issueForRun = Effect.fn("Activation.issueForRun")(function*(districtId: string) {
      return yield* issueOrFail({ districtId, replace: false }).pipe(
        Effect.map((issued): IssueResult => ({ issued, withheld: 0 })),
        Effect.catchTag("ActivationsWithheld", (w) => Effect.succeed<IssueResult>({ issued: 0, withheld: w.count, problem: w.error.message })),
        // Without `replace` the key is only asked for once something is due (the path above).
        Effect.catchTags({
          SecretsKeyMissing: (error) => Effect.succeed<IssueResult>({ issued: 0, withheld: 0, problem: error.message }),
          SecretsKeyInvalid: (error) => Effect.succeed<IssueResult>({ issued: 0, withheld: 0, problem: error.message })
        })
      )
    })

    /**
     * The district's due reminders (rules `activation.remindAfterDays`, `maxReminders`): a
     * teacher or roster admin still pending, with an address, whose last activation e-mail
     * is at least `remindAfterDays` old and who had fewer than `maxReminders` reminders gets
     * the next one, with a fresh link; the earlier link stops working. One transaction, set-
     * based whatever the number of teachers. Safe from several replicas at once: reminder n
     * of a teacher is made once (see `queue`). Fails, doing nothing, when no key can seal
     * the links (the caller logs it; they are due again at the next check).
     */
    const remind = Effect.fn("Activation.remind")(function*(districtId: string, rules: ActivationRules) {
      if (rules.maxReminders === 0) return 0
      return yield* sql.withTransaction(Effect.gen(function*() {
        const district = yield* districtOf(districtId)
        if (district === undefined) return 0
        const due = yield* sql.unsafe<DueRow>(
          `WITH mails AS (${ACTIVATION_MAILS})
           SELECT l.user_id, l.account_id, btrim(u.email) AS recipient, 'teacher' = ANY (u.roles) AS teacher, m.reminders + 1 AS reminder
           FROM account_links l JOIN users u ON u.id = l.user_id JOIN mails m ON m.user_id = l.user_id
           WHERE ${PENDING_WITH_ADDRESS_WHERE} AND u.district_id = $1
             AND m.reminders < $2 AND m.last_at <= now() - make_interval(days => $3)
           ORDER BY l.user_id`,
          [districtId, rules.maxReminders, rules.remindAfterDays]
        )
        if (due.length === 0) return 0
        return yield* queue(district, due, yield* keyFor(districtId), "reminder")
      }))
    })

    return { issue, issueForRun, remind } as const
  }),
  dependencies: [Secrets.Default]
}) {}

/** The run note for activation e-mails that wait for a key, if any. */
export const activationNote = (result: IssueResult): string | undefined =>
  result.withheld === 0
    ? undefined
    : `${result.withheld} activation e-mail${result.withheld === 1 ? "" : "s"} not issued yet: ${result.problem ?? "no credentials key"}; ` +
      "the first run with a key issues them"
