import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Identity you can trust (issue 15): identities, address history, reuse protection, masked
 * data, and the platform's login resolution. README "Accounts, linking and activation".
 *
 * - **`user_identities`**: every identity a rostered user has beside name and address, one
 *   row per (user, provider, kind, type, value). `provider` is the district's provider family
 *   (`clever`, `oneroster` for OneRoster REST / ClassLink, `csv` for OneRoster CSV); `kind`
 *   is `source_id` (the record's own source ID), `user_id` (a OneRoster `userIds[]` entry,
 *   `type` its label), `identifier`, Clever's `sis_id` / `state_id` / `student_number` /
 *   `teacher_number` / `staff_id`, or `legacy_source_id` (`type` its namespace: `ic`,
 *   `clever`). `type` is `''` where there is none. Only the sync writes it
 *   (src/Reconcile/Identities.ts), like the roster: compare before write, nothing deleted.
 *   An identity the user's record no longer lists is **ended** (`ended_at`, `ended_reason`
 *   `missing_from_source`), not removed: a returning value reopens the same row. A user who
 *   leaves the roster keeps its rows as they were (a returning source ID comes back with
 *   them). **Login identities** (`source_id`, `user_id`) are unique per district among
 *   current rows: when another user of the district lists one, the former holder's row ends
 *   (`claimed`); one listed by several users in the same run is stored for none of them
 *   (`shared`, a finding).
 * - **`account_identities`**: provider identities an account is known by without a roster
 *   (grassroots accounts: `rosterd accounts import` columns `clever_id`,
 *   `oneroster_sourced_id`, `classlink_login`). One account per identity. Account linking
 *   tries them before the address.
 * - **`account_emails.former_at`, `source_user_id`**: the rostered user whose district
 *   address a row is (backfilled from the links), and when it stopped being that user's
 *   address. A former address is kept on the account, no longer used for linking.
 * - **Reviews** gain the reasons `address_reused` and `identity_conflict`, and
 *   `related_user_ids` (the other rostered users the reason is about: their source IDs are
 *   shown, never the address). **Links** gain the methods `identity` and `same_person`.
 * - **`district_masking`**: the personal fields of a district that its last complete users
 *   feed showed masked (blank, hashed, placeholder domains, one value shared by many), with
 *   the counts; linking reads it (also on delta runs) and makes no account, link or
 *   activation from a masked address.
 * - **`rosterd_resolve_login(provider, subject, district)`**: the platform's entry point from
 *   a Clever or ClassLink sign-in to the account; SECURITY DEFINER with a pinned search_path
 *   and schema-qualified names, like the confirm functions (migrations/0008).
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ readonly schema: string }>`SELECT current_schema() AS schema`
  const s = `"${row!.schema.replace(/"/g, "\"\"")}"`
  const pinned = `SET search_path = pg_catalog, ${s}, pg_temp`
  // The account an account id stands for: itself, or the one it was merged into (chains followed).
  const survivorOf = (id: string) => `(WITH RECURSIVE chain(id, next, depth) AS (
      SELECT a.id, a.merged_into, 0 FROM ${s}.accounts a WHERE a.id = ${id}
      UNION ALL
      SELECT a.id, a.merged_into, c.depth + 1 FROM chain c JOIN ${s}.accounts a ON a.id = c.next WHERE c.depth < 16)
    SELECT c.id FROM chain c WHERE c.next IS NULL LIMIT 1)`
  // Rostered users the subject names (a source ID outranks a userIds entry in its district).
  const rostered = `
    WITH matched AS (
      SELECT i.district_id, i.user_id, i.kind, i.type
      FROM ${s}.user_identities i
      WHERE i.value = p_subject AND i.provider = ANY (families) AND i.ended_at IS NULL
        AND (i.kind = 'source_id' OR (i.kind = 'user_id' AND 'login' = ANY (kinds)))
        AND (p_district IS NULL OR i.district_id = p_district)),
    best AS (
      SELECT m.* FROM matched m
      WHERE m.kind = 'source_id' OR NOT EXISTS (SELECT 1 FROM matched x WHERE x.district_id = m.district_id AND x.kind = 'source_id')),
    found AS (
      SELECT b.district_id, b.user_id, b.kind, b.type, l.activation, u.source_id, u.active AS user_active,
             ${survivorOf("l.account_id")} AS account_id
      FROM best b JOIN ${s}.users u ON u.id = b.user_id LEFT JOIN ${s}.account_links l ON l.user_id = b.user_id)
    SELECT f.account_id, coalesce(f.user_active AND f.activation = 'active' AND a.state = 'active', false), a.state,
           f.district_id, f.user_id, f.source_id, f.user_active,
           CASE WHEN f.kind = 'source_id' THEN 'source_id' ELSE 'user_id:' || f.type END
    FROM found f LEFT JOIN ${s}.accounts a ON a.id = f.account_id`
  // A grassroots account known by an imported identity.
  const grassroots = `
    SELECT DISTINCT ON (a.id) a.id AS account_id, a.state = 'active', a.state, NULL::text, NULL::bigint, NULL::text,
           NULL::boolean, 'account:' || i.kind
    FROM ${s}.account_identities i JOIN ${s}.accounts a ON a.id = ${survivorOf("i.account_id")}
    WHERE i.subject = p_subject AND i.provider = families[1] AND i.kind = ANY (kinds)
    ORDER BY a.id, i.kind DESC`
  yield* sql.unsafe(`
    -- No foreign keys: only the sync writes it (the lock below), from the users it has just
    -- written, and erase deletes it with them; checking 200,000 references one by one would
    -- cost a large district's first sync seconds.
    CREATE TABLE user_identities (
      district_id    text NOT NULL,
      user_id        bigint NOT NULL,
      provider       text NOT NULL CHECK (provider IN ('clever', 'oneroster', 'csv')),
      kind           text NOT NULL CHECK (kind IN ('source_id', 'user_id', 'identifier', 'sis_id', 'state_id',
                                                   'student_number', 'teacher_number', 'staff_id', 'legacy_source_id')),
      type           text NOT NULL DEFAULT '',
      value          text NOT NULL CHECK (value <> ''),
      first_seen_at  timestamptz NOT NULL DEFAULT now(),
      ended_at       timestamptz,
      ended_reason   text CHECK (ended_reason IN ('missing_from_source', 'claimed', 'shared')),
      PRIMARY KEY (user_id, provider, kind, type, value),
      CHECK ((ended_at IS NULL) = (ended_reason IS NULL))
    );
    -- A login identity names one rostered user per district (and finds it by value alone).
    CREATE UNIQUE INDEX user_identities_login ON user_identities (value, provider, kind, type, district_id)
      WHERE ended_at IS NULL AND kind IN ('source_id', 'user_id');

    CREATE TABLE account_identities (
      account_id  bigint NOT NULL REFERENCES accounts (id),
      -- clever: a Clever user id; oneroster: a OneRoster / ClassLink subject
      provider    text NOT NULL CHECK (provider IN ('clever', 'oneroster')),
      -- source_id: the rostered record's own id (clever_id, oneroster_sourced_id);
      -- login: what a ClassLink sign-in carries (a sourcedId or a userIds identifier)
      kind        text NOT NULL CHECK (kind IN ('source_id', 'login')),
      subject     text NOT NULL CHECK (subject <> '' AND length(subject) <= 256),
      added_by    text NOT NULL CHECK (added_by IN ('import', 'operator')),
      added_at    timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (account_id, provider, kind, subject)
    );
    CREATE UNIQUE INDEX account_identities_one_account ON account_identities (subject, provider, kind);

    ALTER TABLE account_emails
      ADD COLUMN former_at timestamptz,
      -- (no foreign key: the sync writes a hundred thousand at once; an erased district's
      -- users leave it naming nobody, which the sync reads as no one)
      ADD COLUMN source_user_id bigint;
    CREATE INDEX account_emails_by_source_user ON account_emails (source_user_id) WHERE source_user_id IS NOT NULL;
    UPDATE account_emails e SET source_user_id = l.user_id
    FROM account_links l JOIN users u ON u.id = l.user_id
    WHERE e.account_id = l.account_id AND e.email_key = lower(btrim(u.email)) AND e.source_user_id IS NULL;

    ALTER TABLE account_links DROP CONSTRAINT account_links_method_check;
    ALTER TABLE account_links ADD CONSTRAINT account_links_method_check
      CHECK (method IN ('email', 'created', 'confirmed', 'review', 'identity', 'same_person'));

    ALTER TABLE account_reviews DROP CONSTRAINT account_reviews_reason_check;
    ALTER TABLE account_reviews ADD CONSTRAINT account_reviews_reason_check
      CHECK (reason IN ('several_accounts', 'email_linked_elsewhere', 'email_shared', 'address_reused', 'identity_conflict'));
    ALTER TABLE account_reviews ADD COLUMN related_user_ids bigint[] NOT NULL DEFAULT '{}';

    CREATE TABLE district_masking (
      district_id  text NOT NULL REFERENCES districts (id),
      field        text NOT NULL CHECK (field IN ('email', 'given_name', 'family_name')),
      -- The complete run that saw it masked first, and the counts of the latest one that did.
      run_id       bigint NOT NULL REFERENCES sync_runs (id),
      since        timestamptz NOT NULL DEFAULT now(),
      total        integer NOT NULL,
      blank        integer NOT NULL,
      hashed       integer NOT NULL,
      placeholder  integer NOT NULL,
      shared       integer NOT NULL,
      PRIMARY KEY (district_id, field)
    );

    -- Only the sync writes identities; only erase deletes them (like users, migrations/0007).
    CREATE FUNCTION rosterd_identities_lock() RETURNS trigger LANGUAGE plpgsql ${pinned} AS $$
    BEGIN
      IF TG_OP = 'DELETE' THEN
        PERFORM ${s}.rosterd_refuse('rostered_never_deleted', format('identities of user %s are rostered; they end, never are deleted', OLD.user_id));
      ELSE
        PERFORM ${s}.rosterd_refuse('synced_user_fields', format('identities of user %s follow the district roster; only the sync changes them', NEW.user_id));
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER user_identities_lock BEFORE INSERT OR UPDATE ON user_identities
      FOR EACH ROW WHEN (current_setting('rosterd.writer', true) IS DISTINCT FROM 'sync')
      EXECUTE FUNCTION rosterd_identities_lock();
    CREATE TRIGGER user_identities_lock_delete BEFORE DELETE ON user_identities
      FOR EACH ROW WHEN (current_setting('rosterd.writer', true) IS DISTINCT FROM 'erase')
      EXECUTE FUNCTION rosterd_identities_lock();
    CREATE TRIGGER user_identities_writer BEFORE INSERT OR UPDATE OR DELETE ON user_identities FOR EACH STATEMENT
      WHEN (current_setting('rosterd.writer', true) IN ('sync', 'erase')) EXECUTE FUNCTION rosterd_writer_check();

    -- ---------------------------------------------------------------- resolve a login
    -- From a sign-in (Clever: the Clever user id; ClassLink / OneRoster: a sourcedId or a
    -- userIds identifier) to the account. A source ID match outranks a userIds one within a
    -- district. Rostered users first (the account they are linked to, merged accounts
    -- followed to the one that survived); otherwise a grassroots account by an identity
    -- imported for it. Errors: SQLSTATE 22023 (unknown provider, empty subject), RSAMB
    -- (ambiguous: several districts and no district given, or several accounts).
    CREATE FUNCTION rosterd_resolve_login(p_provider text, p_subject text, p_district text DEFAULT NULL)
    RETURNS TABLE (account_id bigint, active boolean, account_state text, district_id text, user_id bigint,
                   source_id text, user_active boolean, matched_by text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER ${pinned} AS $$
    #variable_conflict use_column
    DECLARE
      families text[];
      kinds text[];
      districts integer;
      accounts integer;
    BEGIN
      CASE lower(btrim(coalesce(p_provider, '')))
        WHEN 'clever' THEN families := ARRAY['clever']; kinds := ARRAY['source_id'];
        WHEN 'oneroster', 'classlink' THEN families := ARRAY['oneroster', 'csv']; kinds := ARRAY['source_id', 'login'];
        ELSE RAISE EXCEPTION 'rosterd: unknown login provider % (clever, classlink or oneroster)', p_provider USING ERRCODE = '22023';
      END CASE;
      IF p_subject IS NULL OR p_subject = '' THEN
        RAISE EXCEPTION 'rosterd: no subject to resolve' USING ERRCODE = '22023';
      END IF;

      SELECT count(DISTINCT r.district_id), count(DISTINCT coalesce(r.account_id, -r.user_id)) INTO districts, accounts
      FROM (${rostered}) r;
      IF districts > 1 THEN
        RAISE EXCEPTION 'rosterd: the subject names rostered users of % districts; give the district', districts USING ERRCODE = 'RSAMB';
      ELSIF accounts > 1 THEN
        RAISE EXCEPTION 'rosterd: the subject names % rostered users with different accounts', accounts USING ERRCODE = 'RSAMB';
      ELSIF districts = 1 THEN
        RETURN QUERY SELECT * FROM (${rostered}) r ORDER BY r.user_id;
        RETURN;
      END IF;

      SELECT count(DISTINCT g.account_id) INTO accounts FROM (${grassroots}) g;
      IF accounts > 1 THEN
        RAISE EXCEPTION 'rosterd: the subject names % accounts', accounts USING ERRCODE = 'RSAMB';
      END IF;
      RETURN QUERY SELECT * FROM (${grassroots}) g;
    END $$;
    REVOKE ALL ON FUNCTION rosterd_resolve_login(text, text, text) FROM PUBLIC;
  `)
})
