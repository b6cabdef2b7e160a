import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Re-keyed sources (issue 15, README "Re-keyed sources").
 *
 * A district's SIS or provider sometimes gives every record a new source ID (Infinite Campus
 * moving from OneRoster 1.1 to 1.2, an SIS migration, a tenant rebuild). Read naively, that
 * is "everyone left, everyone new": every person deactivated and created again, new
 * accounts, lost history. A full run that looks like that (src/Reconcile/Rekey.ts) applies
 * nothing and is held with the mapping it proposes; `rosterd district rekey` rewrites the
 * source IDs in place (src/Districts/Rekey.ts).
 *
 * - **`rekey_suspicions`**: per kind of a held run, the figures it was judged on (active
 *   records, how many disappeared, how many appeared, how many of them matched one-to-one).
 * - **`rekey_proposals`**: the proposed mapping of a held run, one row per record: the live
 *   row (`live_id`), its old and its new source ID, and the identity it matched on
 *   (`legacy_source_id`, `identifier`, `email_birth_date`, `class_code_term`, …; never the
 *   value). Enrollments' own source IDs are proposed too (`class_user`: the same class and
 *   person once the classes and people are mapped).
 * - **`rekeys`** / **`rekey_records`**: each re-key applied (who, when, from which run's
 *   proposal or from an operator's file, the counts) and every record it rewrote, old and
 *   new source ID: so an old ID in a platform's log can still be traced.
 * - A hold whose proposal was applied is `rekeyed`.
 *
 * Source IDs only, no personal value; the platform's role gets nothing of them.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    ALTER TABLE holds DROP CONSTRAINT holds_state_check;
    ALTER TABLE holds ADD CONSTRAINT holds_state_check
      CHECK (state IN ('pending', 'approved', 'rejected', 'superseded', 'dropped', 'rekeyed'));

    CREATE TABLE rekey_suspicions (
      run_id       bigint NOT NULL REFERENCES holds (run_id),
      kind         text NOT NULL CHECK (kind IN ('orgs', 'terms', 'courses', 'classes', 'users')),
      -- Whether this kind crossed the thresholds (the run is held when one does); the
      -- other kinds' one-to-one matches are proposed all the same.
      suspected    boolean NOT NULL,
      active       integer NOT NULL,
      disappeared  integer NOT NULL,
      appeared     integer NOT NULL,
      matched      integer NOT NULL,
      PRIMARY KEY (run_id, kind)
    );

    CREATE TABLE rekey_proposals (
      run_id         bigint NOT NULL REFERENCES holds (run_id),
      kind           text NOT NULL CHECK (kind IN ('orgs', 'terms', 'courses', 'classes', 'users', 'enrollments')),
      live_id        bigint NOT NULL,
      old_source_id  text NOT NULL,
      new_source_id  text NOT NULL CHECK (new_source_id <> old_source_id),
      matched_on     text NOT NULL,
      PRIMARY KEY (run_id, kind, live_id)
    );

    CREATE TABLE rekeys (
      id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      district_id  text NOT NULL REFERENCES districts (id),
      -- The held run whose proposal was applied; null for an operator's mapping file.
      run_id       bigint REFERENCES holds (run_id),
      source       text NOT NULL CHECK (source IN ('proposal', 'operator')),
      applied_by   text NOT NULL,
      reason       text,
      applied_at   timestamptz NOT NULL DEFAULT now(),
      -- Records per kind, and rows rewritten per table and column.
      counts       jsonb NOT NULL
    );
    CREATE INDEX rekeys_by_district ON rekeys (district_id, id DESC);

    CREATE TABLE rekey_records (
      rekey_id       bigint NOT NULL REFERENCES rekeys (id),
      kind           text NOT NULL CHECK (kind IN ('orgs', 'terms', 'courses', 'classes', 'users', 'enrollments')),
      live_id        bigint NOT NULL,
      old_source_id  text NOT NULL,
      new_source_id  text NOT NULL,
      PRIMARY KEY (rekey_id, kind, live_id)
    );
    CREATE INDEX rekey_records_by_old ON rekey_records (old_source_id);
  `)
})
