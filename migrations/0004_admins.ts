import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Administrators (seeds 003, 004).
 *
 * - **Roster admins** are rostered users with an admin role (OneRoster `administrator`,
 *   Clever `district_admin` and `staff` — Clever's "school admins/staff"), in districts
 *   whose rule `syncAdmins` is on (the default). Their scope is the orgs they are attached
 *   to. They are not a table: `roster_admins` is a view over `users` (and their links).
 * - **In-product admins** (`admins`) are invited by an operator or by another admin, and
 *   gain their rights on an account when they confirm the invitation. The sync never
 *   writes them: a trigger refuses any write to `admins` from a sync transaction, and rows
 *   are never deleted (removal is `state = 'removed'`).
 * - **Partnerships** group districts (a state or regional partnership); a **region** is a
 *   subset of a partnership's districts. A district is in at most one partnership, and in
 *   at most one of its regions.
 * - Invitation tokens are single-use and expiring; only their SHA-256 is stored.
 *   `rosterd_confirm_admin(token, link_account)` is the platform's entry point (and the
 *   CLI's), like `rosterd_confirm_activation`.
 * - `admin_rights`: one row per account and district it administers, from both sources —
 *   what the platform reads to decide what an account may see.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE partnerships (
      id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
      name        text NOT NULL,
      created_at  timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE regions (
      partnership_id  text NOT NULL REFERENCES partnerships (id),
      id              text NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
      name            text NOT NULL,
      created_at      timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (partnership_id, id)
    );

    -- A district's place: its partnership, and its region there (if any).
    CREATE TABLE partnership_districts (
      district_id     text PRIMARY KEY REFERENCES districts (id),
      partnership_id  text NOT NULL REFERENCES partnerships (id),
      region_id       text,
      added_at        timestamptz NOT NULL DEFAULT now(),
      FOREIGN KEY (partnership_id, region_id) REFERENCES regions (partnership_id, id)
    );
    CREATE INDEX partnership_districts_by_partnership ON partnership_districts (partnership_id, region_id);

    CREATE TABLE admins (
      id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      -- The district the admin was invited in (whose Manage Administrators page lists it).
      district_id         text NOT NULL REFERENCES districts (id),
      name                text NOT NULL CHECK (btrim(name) <> ''),
      email               text NOT NULL,
      email_key           text NOT NULL CHECK (email_key = lower(btrim(email_key)) AND email_key <> ''),
      -- view: the dashboards; manage: also the users of its schools.
      permission          text NOT NULL CHECK (permission IN ('view', 'manage')),
      -- May invite, edit and remove admins within its own scope.
      can_manage_admins   boolean NOT NULL DEFAULT false,
      -- school: schools of its district (or all of them); region / partnership: every school of
      -- every district of its region / partnership.
      role                text NOT NULL DEFAULT 'school' CHECK (role IN ('school', 'region', 'partnership')),
      partnership_id      text REFERENCES partnerships (id),
      region_id           text,
      all_schools         boolean NOT NULL DEFAULT false,
      school_source_ids   text[] NOT NULL DEFAULT '{}',
      -- Set when the invitation is confirmed: the account that holds the rights.
      account_id          bigint REFERENCES accounts (id),
      state               text NOT NULL DEFAULT 'invited' CHECK (state IN ('invited', 'active', 'removed')),
      -- 'operator:<name>' or 'admin:<id>'.
      invited_by          text NOT NULL,
      invited_at          timestamptz NOT NULL DEFAULT now(),
      confirmed_at        timestamptz,
      removed_at          timestamptz,
      removed_by          text,
      updated_at          timestamptz NOT NULL DEFAULT now(),
      FOREIGN KEY (partnership_id, region_id) REFERENCES regions (partnership_id, id),
      CHECK (NOT can_manage_admins OR permission = 'manage'),
      CHECK (state <> 'active' OR (account_id IS NOT NULL AND confirmed_at IS NOT NULL)),
      CHECK ((state = 'removed') = (removed_at IS NOT NULL)),
      CHECK (CASE role
               WHEN 'school' THEN all_schools <> (cardinality(school_source_ids) > 0)
               WHEN 'region' THEN partnership_id IS NOT NULL AND region_id IS NOT NULL AND cardinality(school_source_ids) = 0
               ELSE partnership_id IS NOT NULL AND region_id IS NULL AND cardinality(school_source_ids) = 0 END)
    );
    -- One live admin record per address and district.
    CREATE UNIQUE INDEX admins_one_per_address ON admins (district_id, email_key) WHERE state <> 'removed';
    CREATE INDEX admins_by_partnership ON admins (partnership_id, region_id) WHERE partnership_id IS NOT NULL;
    CREATE INDEX admins_by_account ON admins (account_id) WHERE account_id IS NOT NULL;

    CREATE TABLE admin_tokens (
      id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      admin_id    bigint NOT NULL REFERENCES admins (id),
      token_hash  bytea NOT NULL UNIQUE,
      created_at  timestamptz NOT NULL DEFAULT now(),
      expires_at  timestamptz NOT NULL,
      used_at     timestamptz,
      revoked_at  timestamptz
    );
    CREATE INDEX admin_tokens_by_admin ON admin_tokens (admin_id);

    -- The sync never writes in-product admins; nobody deletes them (removal is a state).
    CREATE FUNCTION rosterd_admins_lock() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF current_setting('rosterd.writer', true) = 'sync' THEN
        PERFORM rosterd_refuse('manual_admin', 'in-product admins are never changed or removed by a sync');
      ELSIF TG_OP = 'DELETE' THEN
        PERFORM rosterd_refuse('admins_never_deleted', format('admin %s is removed with rosterd admin remove (state removed), never deleted', OLD.id));
      END IF;
      RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END $$;
    CREATE TRIGGER admins_lock BEFORE INSERT OR UPDATE OR DELETE ON admins
      FOR EACH ROW EXECUTE FUNCTION rosterd_admins_lock();

    -- Rostered users with an admin role, in districts that sync admins (rule syncAdmins,
    -- default on). Scope: the orgs they are attached to.
    CREATE VIEW roster_admins AS
      SELECT u.id AS user_id, u.district_id, u.source_id, u.roster_source, u.roles, u.active,
             u.org_source_ids, l.account_id, l.activation
      FROM users u
      JOIN districts d ON d.id = u.district_id AND coalesce((d.rules ->> 'syncAdmins')::boolean, true)
      LEFT JOIN account_links l ON l.user_id = u.id
      WHERE u.roles && ARRAY['administrator', 'district_admin', 'staff'];

    -- Which account administers what: active in-product admins (partnership and region roles
    -- expanded to their districts) and active, confirmed roster admins (permission view).
    CREATE VIEW admin_rights AS
      SELECT a.account_id, d.district_id, a.role <> 'school' OR a.all_schools AS all_schools,
             CASE WHEN a.role = 'school' AND NOT a.all_schools THEN a.school_source_ids ELSE '{}'::text[] END AS school_source_ids,
             a.permission, a.can_manage_admins, 'in-product'::text AS roster_source, a.id AS admin_id, NULL::bigint AS user_id
      FROM admins a
      CROSS JOIN LATERAL (
        SELECT a.district_id WHERE a.role = 'school'
        UNION
        SELECT p.district_id FROM partnership_districts p
        WHERE p.partnership_id = a.partnership_id AND (a.role = 'partnership' OR (a.role = 'region' AND p.region_id = a.region_id))
      ) d
      WHERE a.state = 'active'
      UNION ALL
      SELECT r.account_id, r.district_id, false, r.org_source_ids, 'view', false, r.roster_source::text, NULL::bigint, r.user_id
      FROM roster_admins r
      WHERE r.active AND r.account_id IS NOT NULL AND r.activation = 'active';

    -- The platform's entry point (and the CLI's): confirm an administrator invitation. Without
    -- p_link_account a new account is created with the invited address; with it ("log into my
    -- existing account") that account gains the address. Either way the account gains the
    -- admin's rights. Errors: RSTOK (unknown, used, replaced or expired token; the admin was
    -- removed) or RSLNK (the chosen account cannot be used). Audited in the same transaction.
    CREATE FUNCTION rosterd_confirm_admin(p_token text, p_link_account bigint DEFAULT NULL)
    RETURNS TABLE (admin_id bigint, account_id bigint, outcome text)
    LANGUAGE plpgsql AS $$
    #variable_conflict use_column
    DECLARE
      t admin_tokens;
      a admins;
      target accounts;
    BEGIN
      SELECT * INTO t FROM admin_tokens WHERE token_hash = sha256(convert_to(p_token, 'UTF8')) FOR UPDATE;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'rosterd: unknown invitation token' USING ERRCODE = 'RSTOK';
      ELSIF t.used_at IS NOT NULL THEN
        RAISE EXCEPTION 'rosterd: invitation token % was already used', t.id USING ERRCODE = 'RSTOK';
      ELSIF t.revoked_at IS NOT NULL THEN
        RAISE EXCEPTION 'rosterd: invitation token % was replaced by a newer one', t.id USING ERRCODE = 'RSTOK';
      ELSIF t.expires_at <= now() THEN
        RAISE EXCEPTION 'rosterd: invitation token % expired at %', t.id, t.expires_at USING ERRCODE = 'RSTOK';
      END IF;
      SELECT * INTO a FROM admins x WHERE x.id = t.admin_id FOR UPDATE;
      IF a.state <> 'invited' THEN
        RAISE EXCEPTION 'rosterd: admin % is %', a.id, CASE a.state WHEN 'removed' THEN 'removed' ELSE 'already confirmed' END
          USING ERRCODE = 'RSTOK';
      END IF;

      IF p_link_account IS NOT NULL THEN
        SELECT * INTO target FROM accounts x WHERE x.id = p_link_account FOR UPDATE;
        IF NOT FOUND OR target.state = 'merged' THEN
          RAISE EXCEPTION 'rosterd: account % does not exist', p_link_account USING ERRCODE = 'RSLNK';
        ELSIF target.state <> 'active' THEN
          RAISE EXCEPTION 'rosterd: account % is not active yet (its owner has not confirmed it)', p_link_account USING ERRCODE = 'RSLNK';
        END IF;
        account_id := p_link_account;
        outcome := 'linked';
      ELSE
        INSERT INTO accounts (origin, state, district_id, activated_at) VALUES ('district', 'active', a.district_id, now())
          RETURNING id INTO account_id;
        outcome := 'created';
      END IF;
      INSERT INTO account_emails (account_id, email, email_key, added_by)
        VALUES (rosterd_confirm_admin.account_id, btrim(a.email), a.email_key, 'confirm') ON CONFLICT DO NOTHING;

      UPDATE admins x SET state = 'active', account_id = rosterd_confirm_admin.account_id, confirmed_at = now(), updated_at = now()
        WHERE x.id = a.id;
      UPDATE admin_tokens x SET used_at = now() WHERE x.id = t.id;
      UPDATE admin_tokens x SET revoked_at = now() WHERE x.admin_id = a.id AND x.id <> t.id AND x.used_at IS NULL AND x.revoked_at IS NULL;
      -- Messages of the other tokens not sent yet would carry dead links.
      UPDATE outbox o SET state = 'cancelled'
        WHERE o.state = 'pending' AND o.idempotency_key IN (
          SELECT 'admin-invitation:' || x.id FROM admin_tokens x WHERE x.admin_id = a.id AND x.id <> t.id);
      INSERT INTO audit_log (actor, action, district_id, subject, details)
        VALUES ('admin:' || a.id, 'admin.confirm', a.district_id, 'admin ' || a.id,
                jsonb_build_object('accountId', rosterd_confirm_admin.account_id, 'outcome', rosterd_confirm_admin.outcome, 'token', t.id));
      admin_id := a.id;
      RETURN NEXT;
    END $$;
  `)
})
