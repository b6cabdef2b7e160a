import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Unchanged since applied (issue 17, src/Reconcile/Unchanged.ts): per district, what its
 * last applied run read and what the stored roster looked like when it committed, so a run
 * that reads the same records into the same stored roster can skip the comparison.
 *
 * - `source_key`: a digest of every feed's scan (each record's line and digest, in order),
 *   the digests' versions (mapping, staging, rules), the feeds' modes and files;
 * - `live_key`: a fingerprint of the district's stored roster (per table, the row count and
 *   the sum of the rows' transaction ids: any write by anyone changes it);
 * - `today`: the district's local date then (the current-terms rule depends on it);
 * - `findings_upto`: the last finding of that run's comparison (those a skipping run carries
 *   forward; the people's findings are judged again);
 * - `unchanged`: per kind, the records a comparison of the same feeds would find unchanged
 *   (what that run's comparison created, updated or found unchanged);
 * - `compared_at`: when the comparison whose findings those are ran (a mark carried
 *   forward by skipping runs keeps it: `rosterd.sync.compareEvery` bounds its age).
 *
 * Written in the run's transaction (a logged table: it is true exactly when that run is).
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE TABLE roster_applied (
      district_id   text PRIMARY KEY REFERENCES districts (id),
      run_id        bigint NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
      source_key    text NOT NULL,
      live_key      text NOT NULL,
      today         date NOT NULL,
      findings_upto bigint NOT NULL,
      unchanged     jsonb NOT NULL,
      compared_at   timestamptz NOT NULL,
      written_at    timestamptz NOT NULL DEFAULT now()
    );
  `)
})
