import { SqlClient } from "@effect/sql"
import { Config, Effect } from "effect"
import { CONFIRMING_ROLES_SQL } from "../Admins/Roles.ts"
import { activationMail, LINK_PLACEHOLDER } from "./ActivationMail.ts"

/**
 * Teacher activation (and roster admins', when the district syncs them — see Linking.ts):
 * a single-use, expiring token per teacher whose district account is
 * new (pending), delivered by e-mail through the outbox in the same transaction as the
 * change that implies it. Only the token's SHA-256 is stored; the token itself exists only
 * in the message. Confirming is `rosterd_confirm_activation(token, link_account)` in the
 * database (migrations/0002), called by the platform and by `rosterd accounts confirm`.
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

/**
 * Revokes the users' unused activation tokens; their messages, if not sent yet, would carry
 * a dead link, so they are cancelled too.
 */
export const revokeActivations = (userIds: ReadonlyArray<number>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`WITH revoked AS (
          UPDATE activation_tokens SET revoked_at = now()
          WHERE used_at IS NULL AND revoked_at IS NULL AND user_id = ANY (${userIds.map(Number)}::bigint[])
          RETURNING id)
        UPDATE outbox SET state = 'cancelled'
        WHERE state = 'pending' AND idempotency_key IN (SELECT 'teacher-activation:' || id FROM revoked)`)

export class Activation extends Effect.Service<Activation>()("rosterd/Activation", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const url = yield* accountsConfig(Config.string("activationUrl")).pipe(
      Config.withDefault("https://platform.invalid/activate?token={token}")
    )
    const ttlDays = yield* accountsConfig(Config.integer("activationTtlDays")).pipe(Config.withDefault(14))
    const platform = yield* accountsConfig(Config.string("platformName")).pipe(Config.withDefault("rosterd"))

    /** Issues tokens and queues their e-mails; returns how many. Set-based: one statement. */
    const issue = Effect.fn("Activation.issue")(function*(options: IssueOptions) {
      const [district] = yield* sql<{ readonly name: string }>`SELECT name FROM districts WHERE id = ${options.districtId}`
      if (district === undefined) return 0
      const mail = activationMail(platform, district.name, ttlDays, "teacher")
      const adminMail = activationMail(platform, district.name, ttlDays, "administrator")
      const only = options.userIds === undefined ? null : options.userIds.map(Number)
      if (options.replace) yield* revokeActivations(only ?? [])
      const [row] = yield* sql.unsafe<{ readonly issued: number }>(
        `WITH due AS MATERIALIZED (
           SELECT l.user_id, l.account_id, u.email, 'teacher' = ANY (u.roles) AS teacher,
                  replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '') AS token
           FROM account_links l JOIN users u ON u.id = l.user_id
           WHERE u.district_id = $1 AND u.active AND u.email IS NOT NULL AND u.roles && ${CONFIRMING_ROLES_SQL}
             AND l.activation = 'pending'
             AND ($2::bigint[] IS NULL OR l.user_id = ANY ($2::bigint[]))
             AND ($3 OR NOT EXISTS (SELECT 1 FROM activation_tokens t WHERE t.user_id = l.user_id))
         ),
         tokens AS (
           INSERT INTO activation_tokens (user_id, account_id, token_hash, expires_at)
           SELECT user_id, account_id, sha256(convert_to(token, 'UTF8')), now() + make_interval(days => $4) FROM due
           RETURNING id, user_id
         ),
         queued AS (
           INSERT INTO outbox (district_id, idempotency_key, kind, recipient, subject, body_text, body_html)
           SELECT $1, 'teacher-activation:' || t.id, 'teacher_activation', btrim(d.email), $5,
                  replace(CASE WHEN d.teacher THEN $6 ELSE $10 END, $8, replace($9, '{token}', d.token)),
                  replace(CASE WHEN d.teacher THEN $7 ELSE $11 END, $8, replace($9, '{token}', d.token))
           FROM tokens t JOIN due d USING (user_id)
           RETURNING 1
         )
         SELECT count(*)::int AS issued FROM queued`,
        [options.districtId, only, options.replace, ttlDays, mail.subject, mail.text, mail.html, LINK_PLACEHOLDER, url, adminMail.text, adminMail.html]
      )
      return row?.issued ?? 0
    })

    return { issue } as const
  })
}) {}
