import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Undo a run (issue 19; src/Districts/Undo.ts, README "Undo a run").
 *
 * - `run_change_values`: for each record a run updated or deactivated (what it applied,
 *   not what it held), its row id and the values its changed fields had before the run —
 *   personal values (names, addresses, birth dates): the app only, like `held_changes`,
 *   pruned with the change lists after `rosterd.changes.retentionDays` and deleted when the
 *   district is erased. What a run created is found from its change list (`run_changes`).
 * - `run_undos`: a run undone — by whom, why, when, what was done and what was skipped as
 *   changed since (kinds and source IDs only). A run is undone once.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE run_change_values (
      run_id       bigint NOT NULL REFERENCES sync_runs (id),
      district_id  text NOT NULL,
      kind         text NOT NULL,
      action       text NOT NULL CHECK (action IN ('update', 'deactivate')),
      live_id      bigint NOT NULL,
      before       jsonb NOT NULL,
      created_at   timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX run_change_values_by_run ON run_change_values (run_id, kind);
    CREATE INDEX run_change_values_by_age ON run_change_values (created_at);

    CREATE TABLE run_undos (
      run_id       bigint PRIMARY KEY REFERENCES sync_runs (id),
      district_id  text NOT NULL,
      undone_by    text NOT NULL,
      reason       text,
      undone_at    timestamptz NOT NULL DEFAULT now(),
      counts       jsonb NOT NULL,
      stale        jsonb NOT NULL
    );
  `)
})
