import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Record digests, typed (issue 17): per entity kind, a table of the digest and the staging
 * row it produced, column for column (`roster_digests_<kind>`, src/Reconcile/Digests.ts),
 * instead of one table holding the row as text. Writing a first sync's rows no longer
 * formats each as a composite value, and restoring them no longer parses it: for 837,000
 * enrollments (the bench at 100k students), writing 2.9–3.7 → 2.3–2.5 s and restoring
 * 2.9–3.1 → 1.4–1.7 s.
 *
 * The columns are the staging table's but its line (`cachedColumns`, src/Reconcile/
 * Staging.ts), all nullable: the staging table's own constraints apply when a row is
 * restored. A test holds each table to the code's columns; a change of the staging columns
 * comes with a migration that changes the kind's table (the set's version changes with
 * them, so its stored rows are not used).
 *
 * A cache (UNLOGGED): the old table is dropped, and every district's next run compares in
 * full once, with a note.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    DROP TABLE roster_digests;
    UPDATE roster_digest_sets SET version = 'discarded', entries = 0, updated_at = now();
    CREATE UNLOGGED TABLE roster_digests_orgs (
      set_id integer NOT NULL,
      digest bytea NOT NULL,
      invalid boolean, problem text, cleared text, stripped text, status text, source_id text,
      name text,
      org_type text,
      identifier text,
      parent_source_id text,
      PRIMARY KEY (set_id, digest)
    );
    CREATE UNLOGGED TABLE roster_digests_terms (
      set_id integer NOT NULL,
      digest bytea NOT NULL,
      invalid boolean, problem text, cleared text, stripped text, status text, source_id text,
      title text,
      session_type text,
      start_date date,
      end_date date,
      parent_source_id text,
      school_year text,
      PRIMARY KEY (set_id, digest)
    );
    CREATE UNLOGGED TABLE roster_digests_courses (
      set_id integer NOT NULL,
      digest bytea NOT NULL,
      invalid boolean, problem text, cleared text, stripped text, status text, source_id text,
      title text,
      course_code text,
      school_year_source_id text,
      org_source_id text,
      grades text[],
      subjects text[],
      subject_codes text[],
      PRIMARY KEY (set_id, digest)
    );
    CREATE UNLOGGED TABLE roster_digests_classes (
      set_id integer NOT NULL,
      digest bytea NOT NULL,
      invalid boolean, problem text, cleared text, stripped text, status text, source_id text,
      title text,
      class_code text,
      class_type text,
      location text,
      school_source_id text,
      course_source_id text,
      term_source_ids text[],
      grades text[],
      subjects text[],
      subject_codes text[],
      periods text[],
      grade_levels text[],
      PRIMARY KEY (set_id, digest)
    );
    CREATE UNLOGGED TABLE roster_digests_users (
      set_id integer NOT NULL,
      digest bytea NOT NULL,
      invalid boolean, problem text, cleared text, stripped text, status text, source_id text,
      roles text[],
      enabled boolean,
      username text,
      given_name text,
      family_name text,
      middle_name text,
      identifier text,
      email text,
      org_source_ids text[],
      grades text[],
      grade_levels text[],
      preferred_given_name text,
      preferred_family_name text,
      primary_org_source_id text,
      org_roles text[],
      identities text[],
      agents text[],
      PRIMARY KEY (set_id, digest)
    );
    CREATE UNLOGGED TABLE roster_digests_demographics (
      set_id integer NOT NULL,
      digest bytea NOT NULL,
      invalid boolean, problem text, cleared text, stripped text, status text, source_id text,
      birth_date date,
      PRIMARY KEY (set_id, digest)
    );
    CREATE UNLOGGED TABLE roster_digests_enrollments (
      set_id integer NOT NULL,
      digest bytea NOT NULL,
      invalid boolean, problem text, cleared text, stripped text, status text, source_id text,
      class_source_id text,
      user_source_id text,
      role text,
      is_primary boolean,
      school_source_id text,
      begin_date date,
      end_date date,
      PRIMARY KEY (set_id, digest)
    );
  `)
})
