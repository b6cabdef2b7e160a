import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * No live token at rest in the outbox (issue 14).
 *
 * Until now an activation or invitation message was queued with its link, token included,
 * in `body_text` / `body_html`, kept for good: anyone able to read the outbox (a backup, a
 * replica, a role with SELECT) could confirm a pending teacher's or admin's account for
 * themselves. From here on:
 *
 * - the bodies hold the template (`{link}` where the link goes) and `link_url` the page it
 *   opens (`{token}` where the token goes); the token is **sealed** (AES-256-GCM with the
 *   credentials key, kept outside the database: src/Secrets/Cipher.ts `sealLink`) in
 *   `link_key_id`, `link_iv`, `link_ciphertext`, `link_auth_tag`. The worker opens it and
 *   renders the link when it sends the message (src/Mail/Outbox.ts);
 * - the seal is cleared when the message is sent or cancelled (the trigger below, whatever
 *   the path: the worker, a resend, a confirm function), and when its token is used or
 *   revoked (the token tables' triggers). A `failed` message keeps it, so `rosterd outbox
 *   retry` can still deliver a working link; it goes when the row is pruned;
 * - `finished_at`: when the message left `pending`, what the retention counts from
 *   (`rosterd.mail.retentionDays`, src/Mail/Retention.ts).
 *
 * What was stored before is made harmless here: every token that still worked (unused,
 * not revoked, not expired) is revoked with `revoked_reason = 'link_at_rest'`; the old
 * bodies lose their tokens (64 hex digits, the only form rosterd made); old messages not
 * sent yet (pending or failed) are cancelled. A teacher whose token was revoked so gets a
 * new message, in the new form, from the district's next sync (src/Accounts/Activation.ts
 * treats such a token as never sent); an invited administrator needs `rosterd admin resend`,
 * which `rosterd doctor` lists.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    ALTER TABLE outbox
      ADD COLUMN link_url         text,
      ADD COLUMN link_key_id      text,
      ADD COLUMN link_iv          bytea,
      ADD COLUMN link_ciphertext  bytea,
      ADD COLUMN link_auth_tag    bytea,
      ADD COLUMN finished_at      timestamptz;
    ALTER TABLE outbox ADD CONSTRAINT outbox_link_sealed CHECK (
      (link_key_id IS NULL AND link_iv IS NULL AND link_ciphertext IS NULL AND link_auth_tag IS NULL)
      OR (link_url IS NOT NULL AND link_key_id <> '' AND octet_length(link_iv) = 12 AND link_ciphertext IS NOT NULL
          AND octet_length(link_auth_tag) = 16));
    -- Never a seal on a message that is over: the trigger clears it, this makes sure.
    ALTER TABLE outbox ADD CONSTRAINT outbox_link_only_while_open CHECK (link_ciphertext IS NULL OR state IN ('pending', 'failed'));

    UPDATE outbox SET finished_at = coalesce(sent_at, created_at) WHERE state <> 'pending';
    CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state <> 'pending';

    ALTER TABLE activation_tokens ADD COLUMN revoked_reason text;
    ALTER TABLE admin_tokens ADD COLUMN revoked_reason text;

    -- A message leaving 'pending' is over: when (for the retention), and its seal goes with a
    -- send or a cancellation, whichever statement did it.
    CREATE FUNCTION rosterd_outbox_settle() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.state = 'pending' THEN
        NEW.finished_at := NULL;
      ELSIF TG_OP = 'INSERT' THEN
        NEW.finished_at := coalesce(NEW.finished_at, now());
      ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        NEW.finished_at := now();
      END IF;
      IF NEW.state IN ('sent', 'cancelled') THEN
        NEW.link_key_id := NULL;
        NEW.link_iv := NULL;
        NEW.link_ciphertext := NULL;
        NEW.link_auth_tag := NULL;
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER outbox_settle BEFORE INSERT OR UPDATE ON outbox
      FOR EACH ROW EXECUTE FUNCTION rosterd_outbox_settle();

    -- A token used or revoked: the message that carries it is cancelled if not sent yet, and
    -- loses its seal in any state (a failed one would otherwise keep a dead, or used, token).
    -- TG_ARGV[0] is the idempotency key prefix of the table's messages. Set-based: one
    -- statement per statement on the token table, over its transition table.
    CREATE FUNCTION rosterd_tokens_settle() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE outbox o
      SET state = CASE WHEN o.state = 'pending' THEN 'cancelled' ELSE o.state END,
          link_key_id = NULL, link_iv = NULL, link_ciphertext = NULL, link_auth_tag = NULL
      FROM settled t
      WHERE (t.used_at IS NOT NULL OR t.revoked_at IS NOT NULL)
        AND o.idempotency_key = TG_ARGV[0] || t.id
        AND (o.state = 'pending' OR o.link_ciphertext IS NOT NULL);
      RETURN NULL;
    END $$;
    CREATE TRIGGER activation_tokens_settle AFTER UPDATE ON activation_tokens
      REFERENCING NEW TABLE AS settled FOR EACH STATEMENT EXECUTE FUNCTION rosterd_tokens_settle('teacher-activation:');
    CREATE TRIGGER admin_tokens_settle AFTER UPDATE ON admin_tokens
      REFERENCING NEW TABLE AS settled FOR EACH STATEMENT EXECUTE FUNCTION rosterd_tokens_settle('admin-invitation:');

    -- The old bodies without their tokens; old messages not sent yet are cancelled (they
    -- would carry a dead link: their replacements come in the new form).
    UPDATE outbox
    SET body_text = regexp_replace(body_text, '[0-9a-f]{64}', '(removed)', 'g'),
        body_html = regexp_replace(body_html, '[0-9a-f]{64}', '(removed)', 'g'),
        state = CASE WHEN state IN ('pending', 'failed') THEN 'cancelled' ELSE state END,
        last_error = CASE WHEN state IN ('pending', 'failed')
                          THEN 'cancelled by the upgrade: its link was stored in clear (a new message replaces it)'
                          ELSE last_error END
    WHERE kind IN ('teacher_activation', 'admin_invitation') AND link_url IS NULL
      AND (body_text ~ '[0-9a-f]{64}' OR body_html ~ '[0-9a-f]{64}');

    -- Every token that still works (each was issued with its link in a stored body): revoked,
    -- marked to be issued again.
    UPDATE activation_tokens SET revoked_at = now(), revoked_reason = 'link_at_rest'
      WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > now();
    UPDATE admin_tokens SET revoked_at = now(), revoked_reason = 'link_at_rest'
      WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > now();

    -- A replica still running the old code would queue a link in clear: its insert is refused
    -- (its run fails and rolls back) instead of a live token landing in the table again.
    -- NOT VALID: the old rows above are judged already; every new or changed row is checked.
    ALTER TABLE outbox ADD CONSTRAINT outbox_link_messages_sealed
      CHECK (kind NOT IN ('teacher_activation', 'admin_invitation') OR state <> 'pending' OR link_url IS NOT NULL) NOT VALID;
  `)
})
