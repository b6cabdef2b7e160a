import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Merges, activation follow-up, an invitation confirmed by a pending teacher, and
 * non-district students in teacher-made classes (issue 15).
 *
 * - **Merges** (`rosterd accounts merge`, src/Accounts/Merge.ts). A link was permanent once
 *   its account was in use: it could only move off a pending district account. A merge
 *   must move every link of the merged account to the survivor, so the link lock now also
 *   lets a link move from an account **merged into** the account it moves to — and only
 *   while the transaction says it is a merge (`rosterd.writer = 'merge'`), which the
 *   statement-level role check refuses to anyone but rosterd's own roles (the platform has
 *   no right to update links or accounts at all). `accounts.merged_at` says when.
 * - **Reminders** (src/Accounts/Reminders.ts). `activation_tokens.reminder` numbers the
 *   reminders of a teacher (0: the first e-mail or an operator's resend); a unique index
 *   makes reminder *n* of a teacher exist once, whichever replica sends it first: the
 *   others' inserts meet it and do nothing, so they queue no e-mail either (the message's
 *   idempotency key names its token, as every activation's does).
 * - **Non-district students in teacher-made classes**: a membership is a rostered user's
 *   or a platform account's (`enrollments.account_id`, exactly one of the two). An
 *   account's membership is a teacher-made one (`manual` or `in-product`), as a student; in
 *   a district-synced class the lock trigger refuses it like any other insert. At most one
 *   open period per class and account.
 * - **`rosterd_confirm_admin`**: an invitation whose address is the address of exactly one
 *   pending account (a teacher's, or a roster admin's, district account waiting for its
 *   activation) activates that account instead of creating a second one on the same
 *   address: the invitation proves the address as the activation e-mail would. The
 *   account's pending teachers and admins become active and their activation links stop
 *   working. With `link_account` ("log into my existing account") the pending account's
 *   links move to the chosen account (as `rosterd_confirm_activation` does), unless that
 *   account is already linked to another active rostered user. Still SECURITY DEFINER,
 *   with the pinned search_path and schema-qualified names; outcome `activated` is new.
 * - **`rosterd_confirm_activation`** with `link_account` moves every link of the pending
 *   account (a pending account may hold one person's records of several districts after a
 *   merge), so no link stays on the account it merges.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ readonly schema: string }>`SELECT current_schema() AS schema`
  const s = `"${row!.schema.replace(/"/g, "\"\"")}"`
  const pinned = `SET search_path = pg_catalog, ${s}, pg_temp`
  yield* sql.unsafe(`
    -- ---------------------------------------------------------------- merges
    ALTER TABLE accounts ADD COLUMN merged_at timestamptz;

    -- A link is permanent once its account is in use: it may move off a pending district
    -- account (a teacher choosing "log into my existing account", a review), and, in a merge,
    -- from the merged account to the one it was merged into. Never removed.
    CREATE OR REPLACE FUNCTION rosterd_links_lock() RETURNS trigger LANGUAGE plpgsql ${pinned} AS $$
    BEGIN
      IF TG_OP = 'DELETE' THEN
        PERFORM ${s}.rosterd_refuse('permanent_link', format('the link of user %s to account %s is permanent', OLD.user_id, OLD.account_id));
      ELSIF NEW.user_id <> OLD.user_id OR (NEW.account_id <> OLD.account_id
            AND NOT EXISTS (SELECT 1 FROM ${s}.accounts a
                            WHERE a.id = OLD.account_id AND a.origin = 'district' AND a.state IN ('pending', 'merged'))
            AND NOT (current_setting('rosterd.writer', true) = 'merge'
                     AND EXISTS (SELECT 1 FROM ${s}.accounts a
                                 WHERE a.id = OLD.account_id AND a.state = 'merged' AND a.merged_into = NEW.account_id))) THEN
        PERFORM ${s}.rosterd_refuse('permanent_link', format('the link of user %s to account %s is permanent', OLD.user_id, OLD.account_id));
      END IF;
      RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END $$;

    -- The merge writer is rosterd's alone, like the sync and erase writers.
    DROP TRIGGER account_links_writer ON account_links;
    CREATE TRIGGER account_links_writer BEFORE INSERT OR UPDATE OR DELETE ON account_links FOR EACH STATEMENT
      WHEN (current_setting('rosterd.writer', true) IN ('sync', 'erase', 'merge')) EXECUTE FUNCTION rosterd_writer_check();

    -- ---------------------------------------------------------------- reminders
    ALTER TABLE activation_tokens ADD COLUMN reminder smallint NOT NULL DEFAULT 0 CHECK (reminder >= 0);
    CREATE UNIQUE INDEX activation_tokens_one_reminder ON activation_tokens (user_id, reminder) WHERE reminder > 0;

    -- ---------------------------------------------------------------- non-district students
    ALTER TABLE enrollments ALTER COLUMN user_id DROP NOT NULL;
    ALTER TABLE enrollments ADD COLUMN account_id bigint REFERENCES accounts (id);
    ALTER TABLE enrollments ADD CONSTRAINT enrollments_user_or_account CHECK ((user_id IS NULL) <> (account_id IS NULL));
    ALTER TABLE enrollments ADD CONSTRAINT enrollments_account_in_teacher_made CHECK (
      account_id IS NULL OR (roster_source IN ('manual', 'in-product') AND role = 'student'));
    CREATE UNIQUE INDEX enrollments_one_open_account_period ON enrollments (class_id, account_id)
      WHERE ended_at IS NULL AND account_id IS NOT NULL;
    CREATE INDEX enrollments_by_account ON enrollments (account_id) WHERE account_id IS NOT NULL;

    -- ---------------------------------------------------------------- confirm an activation
    -- As in 0008, but "log into my existing account" moves every link of the pending account,
    -- not only the confirming user's: after a merge of two pending accounts (one person in two
    -- districts) a pending account may hold several, and none may stay on a merged account.
    -- The others keep their activation state (their own links still confirm them).
    CREATE OR REPLACE FUNCTION rosterd_confirm_activation(p_token text, p_link_account bigint DEFAULT NULL)
    RETURNS TABLE (user_id bigint, account_id bigint, outcome text)
    LANGUAGE plpgsql SECURITY DEFINER ${pinned} AS $$
    #variable_conflict use_column
    DECLARE
      t ${s}.activation_tokens;
      link ${s}.account_links;
      target ${s}.accounts;
    BEGIN
      SELECT * INTO t FROM ${s}.activation_tokens WHERE token_hash = sha256(convert_to(p_token, 'UTF8')) FOR UPDATE;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'rosterd: unknown activation token' USING ERRCODE = 'RSTOK';
      ELSIF t.used_at IS NOT NULL THEN
        RAISE EXCEPTION 'rosterd: activation token % was already used', t.id USING ERRCODE = 'RSTOK';
      ELSIF t.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION 'rosterd: activation token % was replaced by a newer one', t.id USING ERRCODE = 'RSTOK';
      ELSIF t.expires_at <= now() THEN
        RAISE EXCEPTION 'rosterd: activation token % expired at %', t.id, t.expires_at USING ERRCODE = 'RSTOK';
      END IF;
      SELECT * INTO link FROM ${s}.account_links l WHERE l.user_id = t.user_id FOR UPDATE;
      IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM ${s}.users u WHERE u.id = t.user_id AND u.active) THEN
        RAISE EXCEPTION 'rosterd: user % is no longer an active rostered user', t.user_id USING ERRCODE = 'RSTOK';
      END IF;

      IF p_link_account IS NOT NULL AND p_link_account <> link.account_id THEN
        SELECT * INTO target FROM ${s}.accounts a WHERE a.id = p_link_account FOR UPDATE;
        IF NOT FOUND OR target.state = 'merged' THEN
          RAISE EXCEPTION 'rosterd: account % does not exist', p_link_account USING ERRCODE = 'RSLNK';
        END IF;
        IF EXISTS (SELECT 1 FROM ${s}.account_links o JOIN ${s}.users u ON u.id = o.user_id
                   WHERE o.account_id = p_link_account AND o.user_id <> t.user_id AND u.active) THEN
          RAISE EXCEPTION 'rosterd: account % is already linked to another active rostered user', p_link_account USING ERRCODE = 'RSLNK';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM ${s}.accounts a WHERE a.id = link.account_id AND a.origin = 'district' AND a.state = 'pending') THEN
          RAISE EXCEPTION 'rosterd: user % is already linked to account % for good', t.user_id, link.account_id USING ERRCODE = 'RSLNK';
        END IF;
        -- The district address moves to the chosen account, so later syncs find it there.
        INSERT INTO ${s}.account_emails (account_id, email, email_key, added_by)
          SELECT p_link_account, e.email, e.email_key, 'confirm' FROM ${s}.account_emails e WHERE e.account_id = link.account_id
          ON CONFLICT DO NOTHING;
        DELETE FROM ${s}.account_emails e WHERE e.account_id = link.account_id;
        UPDATE ${s}.account_links l SET account_id = p_link_account,
               method = CASE WHEN l.user_id = t.user_id THEN 'confirmed' ELSE l.method END
          WHERE l.account_id = link.account_id;
        UPDATE ${s}.activation_tokens a SET account_id = p_link_account
          WHERE a.account_id = link.account_id AND a.user_id <> t.user_id AND a.used_at IS NULL AND a.revoked_at IS NULL;
        UPDATE ${s}.accounts a SET state = 'merged', merged_into = p_link_account, merged_at = now(), updated_at = now()
          WHERE a.id = link.account_id;
        outcome := 'linked';
        account_id := p_link_account;
      ELSE
        outcome := 'activated';
        account_id := link.account_id;
      END IF;

      UPDATE ${s}.accounts a SET state = 'active', activated_at = coalesce(a.activated_at, now()), updated_at = now()
        WHERE a.id = account_id AND a.state = 'pending';
      UPDATE ${s}.account_links l SET activation = 'active', activated_at = coalesce(l.activated_at, now()), confirmed_at = now()
        WHERE l.user_id = t.user_id;
      UPDATE ${s}.activation_tokens a SET used_at = now() WHERE a.id = t.id;
      UPDATE ${s}.activation_tokens a SET revoked_at = now() WHERE a.user_id = t.user_id AND a.id <> t.id AND a.used_at IS NULL AND a.revoked_at IS NULL;
      -- Messages of the other tokens not sent yet would carry dead links.
      UPDATE ${s}.outbox o SET state = 'cancelled'
        WHERE o.state = 'pending' AND o.idempotency_key IN (
          SELECT 'teacher-activation:' || a.id FROM ${s}.activation_tokens a WHERE a.user_id = t.user_id AND a.id <> t.id);
      user_id := t.user_id;
      RETURN NEXT;
    END $$;

    -- ---------------------------------------------------------------- confirm an invitation
    CREATE OR REPLACE FUNCTION rosterd_confirm_admin(p_token text, p_link_account bigint DEFAULT NULL)
    RETURNS TABLE (admin_id bigint, account_id bigint, outcome text)
    LANGUAGE plpgsql SECURITY DEFINER ${pinned} AS $$
    #variable_conflict use_column
    DECLARE
      t ${s}.admin_tokens;
      a ${s}.admins;
      target ${s}.accounts;
      pending_ids bigint[];
      waiting bigint;
      used_pending bigint;
    BEGIN
      SELECT * INTO t FROM ${s}.admin_tokens WHERE token_hash = sha256(convert_to(p_token, 'UTF8')) FOR UPDATE;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'rosterd: unknown invitation token' USING ERRCODE = 'RSTOK';
      ELSIF t.used_at IS NOT NULL THEN
        RAISE EXCEPTION 'rosterd: invitation token % was already used', t.id USING ERRCODE = 'RSTOK';
      ELSIF t.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION 'rosterd: invitation token % was replaced by a newer one', t.id USING ERRCODE = 'RSTOK';
      ELSIF t.expires_at <= now() THEN
        RAISE EXCEPTION 'rosterd: invitation token % expired at %', t.id, t.expires_at USING ERRCODE = 'RSTOK';
      END IF;
      SELECT * INTO a FROM ${s}.admins x WHERE x.id = t.admin_id FOR UPDATE;
      IF a.state <> 'invited' THEN
        RAISE EXCEPTION 'rosterd: admin % is %', a.id, CASE a.state WHEN 'removed' THEN 'removed' ELSE 'already confirmed' END
          USING ERRCODE = 'RSTOK';
      END IF;

      -- The pending accounts with the invited address as a current one (a teacher's district
      -- account waiting for its activation): exactly one is the person's, and the invitation
      -- proves the address. A former address (migrations/0011) may be someone else's now.
      SELECT array_agg(DISTINCT x.id ORDER BY x.id) INTO pending_ids
        FROM ${s}.account_emails e JOIN ${s}.accounts x ON x.id = e.account_id
        WHERE e.email_key = a.email_key AND e.former_at IS NULL AND x.state = 'pending' AND x.origin = 'district';
      waiting := CASE WHEN cardinality(pending_ids) = 1 THEN pending_ids[1] END;

      IF p_link_account IS NOT NULL THEN
        SELECT * INTO target FROM ${s}.accounts x WHERE x.id = p_link_account FOR UPDATE;
        IF NOT FOUND OR target.state = 'merged' THEN
          RAISE EXCEPTION 'rosterd: account % does not exist', p_link_account USING ERRCODE = 'RSLNK';
        ELSIF target.state <> 'active' THEN
          RAISE EXCEPTION 'rosterd: account % is not active yet (its owner has not confirmed it)', p_link_account USING ERRCODE = 'RSLNK';
        END IF;
        account_id := p_link_account;
        outcome := 'linked';
        -- The pending account's links follow the holder to the chosen account, as a teacher's
        -- "log into my existing account" would move them, unless that account is another
        -- active rostered person's already (then the teacher still confirms on their own).
        IF waiting IS NOT NULL AND waiting <> p_link_account AND NOT EXISTS (
             SELECT 1 FROM ${s}.account_links o JOIN ${s}.users u ON u.id = o.user_id
             WHERE o.account_id = p_link_account AND u.active) THEN
          PERFORM 1 FROM ${s}.accounts x WHERE x.id = waiting FOR UPDATE;
          -- Its addresses move with what they came with (an address the chosen account has stays its own).
          UPDATE ${s}.account_emails e SET account_id = p_link_account WHERE e.account_id = waiting
            AND NOT EXISTS (SELECT 1 FROM ${s}.account_emails x WHERE x.account_id = p_link_account AND x.email_key = e.email_key);
          DELETE FROM ${s}.account_emails e WHERE e.account_id = waiting;
          UPDATE ${s}.account_links l SET account_id = p_link_account, method = 'confirmed' WHERE l.account_id = waiting;
          UPDATE ${s}.accounts x SET state = 'merged', merged_into = p_link_account, merged_at = now(), updated_at = now()
            WHERE x.id = waiting;
          used_pending := waiting;
          waiting := p_link_account;
        ELSE
          waiting := NULL;
        END IF;
      ELSIF waiting IS NOT NULL THEN
        PERFORM 1 FROM ${s}.accounts x WHERE x.id = waiting FOR UPDATE;
        UPDATE ${s}.accounts x SET state = 'active', activated_at = coalesce(x.activated_at, now()), updated_at = now()
          WHERE x.id = waiting;
        account_id := waiting;
        used_pending := waiting;
        outcome := 'activated';
      ELSE
        INSERT INTO ${s}.accounts (origin, state, district_id, activated_at) VALUES ('district', 'active', a.district_id, now())
          RETURNING id INTO account_id;
        outcome := 'created';
      END IF;

      -- The account's teachers and roster admins waiting for their activation are active now;
      -- their activation links stop working (the tokens' trigger cancels unsent messages).
      IF waiting IS NOT NULL THEN
        UPDATE ${s}.account_links l SET activation = 'active', activated_at = coalesce(l.activated_at, now()), confirmed_at = now()
          FROM ${s}.users u
          WHERE u.id = l.user_id AND l.account_id = waiting AND l.activation = 'pending'
            AND u.roles && ARRAY['teacher', 'administrator', 'district_admin', 'staff'];
        UPDATE ${s}.activation_tokens x SET revoked_at = now(), revoked_reason = 'admin_invitation'
          WHERE x.used_at IS NULL AND x.revoked_at IS NULL
            AND x.user_id IN (SELECT l.user_id FROM ${s}.account_links l WHERE l.account_id = waiting AND l.activation = 'active');
      END IF;

      INSERT INTO ${s}.account_emails (account_id, email, email_key, added_by)
        VALUES (rosterd_confirm_admin.account_id, btrim(a.email), a.email_key, 'confirm') ON CONFLICT DO NOTHING;

      UPDATE ${s}.admins x SET state = 'active', account_id = rosterd_confirm_admin.account_id, confirmed_at = now(), updated_at = now()
        WHERE x.id = a.id;
      UPDATE ${s}.admin_tokens x SET used_at = now() WHERE x.id = t.id;
      UPDATE ${s}.admin_tokens x SET revoked_at = now() WHERE x.admin_id = a.id AND x.id <> t.id AND x.used_at IS NULL AND x.revoked_at IS NULL;
      -- Messages of the other tokens not sent yet would carry dead links.
      UPDATE ${s}.outbox o SET state = 'cancelled'
        WHERE o.state = 'pending' AND o.idempotency_key IN (
          SELECT 'admin-invitation:' || x.id FROM ${s}.admin_tokens x WHERE x.admin_id = a.id AND x.id <> t.id);
      INSERT INTO ${s}.audit_log (actor, action, district_id, subject, details)
        VALUES ('admin:' || a.id, 'admin.confirm', a.district_id, 'admin ' || a.id,
                jsonb_build_object('accountId', rosterd_confirm_admin.account_id, 'outcome', rosterd_confirm_admin.outcome, 'token', t.id,
                                   'pendingAccount', used_pending));
      admin_id := a.id;
      RETURN NEXT;
    END $$;

    REVOKE ALL ON FUNCTION rosterd_confirm_activation(text, bigint) FROM PUBLIC;
    REVOKE ALL ON FUNCTION rosterd_confirm_admin(text, bigint) FROM PUBLIC;
  `)
})
