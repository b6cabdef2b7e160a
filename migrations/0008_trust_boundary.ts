import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * The trust boundary between rosterd and the platform (issue 14; README "Security").
 *
 * - **The lock triggers decide by role.** Until now "the sync" (and "erase") was whoever
 *   ran `set_config('rosterd.writer', …)`, which any session may do. The row triggers keep
 *   their `WHEN` on that setting (a constant comparison, no function call per row: the sync
 *   writes a million rows), and **statement-level** triggers on the locked tables now ask,
 *   once per statement and only when the setting is `sync` or `erase`, whether the
 *   statement's role is one of rosterd's: a member of the owner or the app role recorded
 *   in `rosterd_roles` (written by `rosterd db setup-roles` and after every migration, see
 *   src/Store/Roles.ts), or, while none is recorded (a single-role deployment), a member
 *   of the role that owns the tables (superusers count as members of every role). Anyone
 *   else is refused with SQLSTATE RSLCK, rule `writer_role`, whatever they set.
 * - **Pinned search_path.** Trigger and helper functions ran with the caller's
 *   `search_path`, so a session could shadow a table they read (a temporary `classes`
 *   whose rows all say `manual`) and walk past a lock. Every rosterd function now runs
 *   with `pg_catalog, <schema>, pg_temp`: the catalog first, temporary objects last.
 * - **The confirm functions are SECURITY DEFINER**: the platform calls them with no right
 *   on the token, account or outbox tables, and they run as their owner with the pinned
 *   path and schema-qualified names inside. Their behaviour is unchanged. PUBLIC loses
 *   EXECUTE on them; the grants (src/Store/Roles.ts) give it to rosterd's app role and the
 *   platform's role.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ readonly schema: string }>`SELECT current_schema() AS schema`
  const s = `"${row!.schema.replace(/"/g, "\"\"")}"`
  const pinned = `SET search_path = pg_catalog, ${s}, pg_temp`
  yield* sql.unsafe(`
    -- Which roles are rosterd's (kind owner, app, platform), and the digest of the grants last
    -- applied to them. Empty: a single-role deployment (see above).
    CREATE TABLE rosterd_roles (
      kind        text PRIMARY KEY CHECK (kind IN ('owner', 'app', 'platform')),
      role_name   name NOT NULL,
      grants      text,
      updated_at  timestamptz NOT NULL DEFAULT now()
    );

    -- Owned by the owner: reads rosterd_roles, which the caller may not; p_user is the
    -- caller's current_user (inside this function current_user is the owner).
    CREATE FUNCTION rosterd_writer_allowed(p_user name) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER ${pinned} AS $$
      SELECT CASE
        WHEN EXISTS (SELECT 1 FROM ${s}.rosterd_roles)
        THEN EXISTS (SELECT 1 FROM ${s}.rosterd_roles r JOIN pg_catalog.pg_roles g ON g.rolname = r.role_name
                     WHERE r.kind IN ('owner', 'app') AND pg_catalog.pg_has_role(p_user, g.oid, 'MEMBER'))
        ELSE pg_catalog.pg_has_role(p_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = '${s}.users'::regclass), 'MEMBER')
      END
    $$;

    CREATE FUNCTION rosterd_writer_check() RETURNS trigger LANGUAGE plpgsql ${pinned} AS $$
    BEGIN
      IF NOT ${s}.rosterd_writer_allowed(current_user) THEN
        PERFORM ${s}.rosterd_refuse('writer_role', format(
          'role %s may not write %s as rosterd''s %s writer; only rosterd''s own roles may (rosterd.writer is not a password)',
          current_user, TG_TABLE_NAME, current_setting('rosterd.writer', true)));
      END IF;
      RETURN NULL;
    END $$;

    CREATE TRIGGER classes_writer BEFORE INSERT OR UPDATE OR DELETE ON classes FOR EACH STATEMENT
      WHEN (current_setting('rosterd.writer', true) IN ('sync', 'erase')) EXECUTE FUNCTION rosterd_writer_check();
    CREATE TRIGGER enrollments_writer BEFORE INSERT OR UPDATE OR DELETE ON enrollments FOR EACH STATEMENT
      WHEN (current_setting('rosterd.writer', true) IN ('sync', 'erase')) EXECUTE FUNCTION rosterd_writer_check();
    CREATE TRIGGER users_writer BEFORE INSERT OR UPDATE OR DELETE ON users FOR EACH STATEMENT
      WHEN (current_setting('rosterd.writer', true) IN ('sync', 'erase')) EXECUTE FUNCTION rosterd_writer_check();
    CREATE TRIGGER account_links_writer BEFORE INSERT OR UPDATE OR DELETE ON account_links FOR EACH STATEMENT
      WHEN (current_setting('rosterd.writer', true) IN ('sync', 'erase')) EXECUTE FUNCTION rosterd_writer_check();
    CREATE TRIGGER admins_writer BEFORE INSERT OR UPDATE OR DELETE ON admins FOR EACH STATEMENT
      WHEN (current_setting('rosterd.writer', true) IN ('sync', 'erase')) EXECUTE FUNCTION rosterd_writer_check();

    ALTER FUNCTION rosterd_synced(roster_source) ${pinned};
    ALTER FUNCTION rosterd_refuse(text, text) ${pinned};
    ALTER FUNCTION rosterd_classes_lock() ${pinned};
    ALTER FUNCTION rosterd_enrollments_lock() ${pinned};
    ALTER FUNCTION rosterd_users_lock() ${pinned};
    ALTER FUNCTION rosterd_integrations_lock() ${pinned};
    ALTER FUNCTION rosterd_links_lock() ${pinned};
    ALTER FUNCTION rosterd_admins_lock() ${pinned};

    -- Unchanged behaviour (0002), now SECURITY DEFINER with schema-qualified names.
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
        UPDATE ${s}.account_links l SET account_id = p_link_account, method = 'confirmed' WHERE l.user_id = t.user_id;
        UPDATE ${s}.accounts a SET state = 'merged', merged_into = p_link_account, updated_at = now() WHERE a.id = link.account_id;
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

    -- Unchanged behaviour (0004), now SECURITY DEFINER with schema-qualified names.
    CREATE OR REPLACE FUNCTION rosterd_confirm_admin(p_token text, p_link_account bigint DEFAULT NULL)
    RETURNS TABLE (admin_id bigint, account_id bigint, outcome text)
    LANGUAGE plpgsql SECURITY DEFINER ${pinned} AS $$
    #variable_conflict use_column
    DECLARE
      t ${s}.admin_tokens;
      a ${s}.admins;
      target ${s}.accounts;
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

      IF p_link_account IS NOT NULL THEN
        SELECT * INTO target FROM ${s}.accounts x WHERE x.id = p_link_account FOR UPDATE;
        IF NOT FOUND OR target.state = 'merged' THEN
          RAISE EXCEPTION 'rosterd: account % does not exist', p_link_account USING ERRCODE = 'RSLNK';
        ELSIF target.state <> 'active' THEN
          RAISE EXCEPTION 'rosterd: account % is not active yet (its owner has not confirmed it)', p_link_account USING ERRCODE = 'RSLNK';
        END IF;
        account_id := p_link_account;
        outcome := 'linked';
      ELSE
        INSERT INTO ${s}.accounts (origin, state, district_id, activated_at) VALUES ('district', 'active', a.district_id, now())
          RETURNING id INTO account_id;
        outcome := 'created';
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
                jsonb_build_object('accountId', rosterd_confirm_admin.account_id, 'outcome', rosterd_confirm_admin.outcome, 'token', t.id));
      admin_id := a.id;
      RETURN NEXT;
    END $$;

    REVOKE ALL ON FUNCTION rosterd_confirm_activation(text, bigint) FROM PUBLIC;
    REVOKE ALL ON FUNCTION rosterd_confirm_admin(text, bigint) FROM PUBLIC;
    REVOKE ALL ON FUNCTION rosterd_writer_allowed(name) FROM PUBLIC;
  `)
})
