import { SqlClient } from "@effect/sql"
import { Config, Data, Effect } from "effect"
import { CONFIRMING_ROLES_SQL } from "../Admins/Roles.ts"
import { districtEmailMasked, maskedEmail } from "../Reconcile/Quality.ts"
import { type LinkContext, newLinkToken, sealLink, tokenHash } from "../Secrets/Cipher.ts"
import type { SecretsKeyInvalid, SecretsKeyMissing } from "../Secrets/Errors.ts"
import { Secrets } from "../Secrets/Secrets.ts"
import { activationMail } from "./ActivationMail.ts"

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
const PENDING_WITH_ADDRESS = `FROM account_links l JOIN users u ON u.id = l.user_id
  WHERE u.active AND u.email IS NOT NULL AND u.roles && ${CONFIRMING_ROLES_SQL} AND l.activation = 'pending'
    AND l.method <> 'same_person' AND NOT ${maskedEmail("u.email")} AND NOT ${districtEmailMasked("u.district_id")}`

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
     * Issues tokens and queues their e-mails. Fails (nothing done) when no key can seal
     * them; `withheld` is for the caller that wants to go on without them.
     */
    const issueOrFail = (options: IssueOptions) =>
      Effect.gen(function*() {
        const [district] = yield* sql<{ readonly name: string }>`SELECT name FROM districts WHERE id = ${options.districtId}`
        if (district === undefined) return 0
        const only = options.userIds === undefined ? null : options.userIds.map(Number)
        // A resend needs the key before it revokes anything (its transaction would roll back
        // anyway; this way the error is the key's, not a half-done resend's).
        const early = options.replace ? yield* keyFor(options.districtId) : undefined
        if (options.replace) yield* revokeActivations(only ?? [])
        const due = yield* sql.unsafe<DueRow>(
          `SELECT l.user_id, l.account_id, btrim(u.email) AS recipient, 'teacher' = ANY (u.roles) AS teacher
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
        // The tokens first (their ids name the messages the seals are bound to), then the messages.
        const tokens = due.map((row) => ({ row, token: newLinkToken() }))
        const inserted = yield* sql.unsafe<{ readonly id: string; readonly tokenHash: Uint8Array }>(
          `INSERT INTO activation_tokens (user_id, account_id, token_hash, expires_at)
           SELECT user_id, account_id, token_hash, now() + make_interval(days => $4)
           FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS i(user_id, account_id, token_hash)
           RETURNING id::text, token_hash`,
          [tokens.map((t) => t.row.userId), tokens.map((t) => t.row.accountId), tokens.map((t) => tokenHash(t.token)), ttlDays]
        )
        const idOf = new Map(inserted.map((r) => [Buffer.from(r.tokenHash).toString("hex"), r.id]))
        const mails = { teacher: activationMail(platform, district.name, ttlDays, "teacher"), administrator: activationMail(platform, district.name, ttlDays, "administrator") }
        const sealed = tokens.map(({ row, token }) => {
          const mail = row.teacher ? mails.teacher : mails.administrator
          const context: LinkContext = {
            kind: "teacher_activation",
            idempotencyKey: `teacher-activation:${idOf.get(tokenHash(token).toString("hex"))!}`,
            recipient: row.recipient,
            subject: mail.subject,
            bodyText: mail.text,
            bodyHtml: mail.html,
            linkUrl: url
          }
          return { context, seal: sealLink(key, context, token) }
        })
        const [row] = yield* sql.unsafe<{ readonly issued: number }>(
          `WITH queued AS (
             INSERT INTO outbox (district_id, idempotency_key, kind, recipient, subject, body_text, body_html,
                                 link_url, link_key_id, link_iv, link_ciphertext, link_auth_tag)
             SELECT $1, idempotency_key, 'teacher_activation', recipient, $2, body_text, body_html, $3, key_id, iv, ciphertext, auth_tag
             FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[], $10::bytea[], $11::bytea[])
               AS i(idempotency_key, recipient, body_text, body_html, key_id, iv, ciphertext, auth_tag)
             RETURNING 1)
           SELECT count(*)::int AS issued FROM queued`,
          [
            options.districtId,
            mails.teacher.subject,
            url,
            sealed.map((s) => s.context.idempotencyKey),
            sealed.map((s) => s.context.recipient),
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

    return { issue, issueForRun } as const
  }),
  dependencies: [Secrets.Default]
}) {}

/** The run note for activation e-mails that wait for a key, if any. */
export const activationNote = (result: IssueResult): string | undefined =>
  result.withheld === 0
    ? undefined
    : `${result.withheld} activation e-mail${result.withheld === 1 ? "" : "s"} not issued yet: ${result.problem ?? "no credentials key"}; ` +
      "the first run with a key issues them"
