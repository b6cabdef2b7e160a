import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Deferred runs (issue 14, bounded files).
 *
 * A OneRoster CSV set that is still being written (a file modified within
 * `rosterd.csv.settleSeconds`, or one whose size changes between two looks, or while it is
 * read) is not read: the run ends `deferred`, with a note saying which file and when it
 * will be tried again, and nothing applied. It is not a failure: the district does not show
 * `failing`, and the daemon tries again after the settle time without counting a retry.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_status_check;
    ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_status_check
      CHECK (status IN ('running', 'succeeded', 'failed', 'held', 'interrupted', 'dry-run', 'deferred'));
  `)
})
