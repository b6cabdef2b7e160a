import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * The safety gate and operator review: held change sets, the per-run change list, the
 * audit log, and dry runs in the run history.
 *
 * - A run whose destructive part trips a threshold applies the rest and keeps that part in
 *   `held_changes` (one row per record), under a `holds` row tied to the run, until an
 *   operator approves or rejects it, or a later full run supersedes or drops it.
 * - `run_changes` is the record-level list of what each run did, compact: one row per
 *   (kind, action, reason, changed fields) with the source IDs as an array, so a first sync
 *   of a million records adds a handful of rows. Pruned after a retention period.
 * - `audit_log`: every operator action (who, what, when, why).
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_status_check;
    ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_status_check
      CHECK (status IN ('running', 'succeeded', 'failed', 'held', 'interrupted', 'dry-run'));

    CREATE TABLE holds (
      run_id       bigint PRIMARY KEY REFERENCES sync_runs (id),
      district_id  text NOT NULL REFERENCES districts (id),
      -- pending: waiting for an operator; approved / rejected: decided; superseded: a later
      -- full run proposed (some of) the same changes and holds or applies them itself;
      -- dropped: a later full run no longer proposes any of them (the source recovered).
      state        text NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'approved', 'rejected', 'superseded', 'dropped')),
      -- Which thresholds tripped, with their figures: [{kind, group, rule, count, of, limit}].
      tripped      jsonb NOT NULL,
      created_at   timestamptz NOT NULL DEFAULT now(),
      decided_by   text,
      decided_at   timestamptz,
      reason       text,
      -- What an approval applied, and what it skipped as stale.
      outcome      jsonb,
      closed_by_run bigint REFERENCES sync_runs (id)
    );
    CREATE UNIQUE INDEX holds_one_pending ON holds (district_id) WHERE state = 'pending';

    CREATE TABLE held_changes (
      run_id      bigint NOT NULL REFERENCES holds (run_id),
      kind        text NOT NULL,
      action      text NOT NULL CHECK (action IN ('deactivate', 'update')),
      live_id     bigint NOT NULL,
      source_id   text NOT NULL,
      reason      text,
      -- The rule of the gate that held it (e.g. deactivate_percent).
      rule        text NOT NULL,
      -- Updates: the names of the fields that change, and the new row (to apply on approval).
      fields      text[] NOT NULL DEFAULT '{}',
      new_values  jsonb,
      PRIMARY KEY (run_id, kind, live_id)
    );

    CREATE TABLE run_changes (
      run_id       bigint NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
      district_id  text NOT NULL REFERENCES districts (id),
      kind         text NOT NULL,
      action       text NOT NULL CHECK (action IN ('create', 'update', 'deactivate')),
      reason       text,
      fields       text[] NOT NULL DEFAULT '{}',
      held         boolean NOT NULL DEFAULT false,
      source_ids   text[] NOT NULL,
      created_at   timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX run_changes_by_run ON run_changes (run_id);
    CREATE INDEX run_changes_by_age ON run_changes (created_at);

    CREATE TABLE audit_log (
      id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      at           timestamptz NOT NULL DEFAULT now(),
      actor        text NOT NULL,
      action       text NOT NULL,
      district_id  text,
      subject      text,
      reason       text,
      details      jsonb NOT NULL DEFAULT '{}'::jsonb
    );
    CREATE INDEX audit_log_by_district ON audit_log (district_id, id DESC);
  `)
})
