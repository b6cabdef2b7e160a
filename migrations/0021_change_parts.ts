import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * A run's change list in parts (issue 17, src/Reconcile/ChangeList.ts): a group of
 * `run_changes` (kind, action, reason, fields, held) is stored as several rows, each with a
 * bounded array of source IDs, numbered by `part`. As one row per group, the first sync of
 * a district with ten million enrollments wrote one array of ten million `class/user` IDs —
 * built whole in one backend's memory, and refused by Postgres past 1 GB (about twenty
 * million enrollments with Clever's IDs).
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`ALTER TABLE run_changes ADD COLUMN part integer NOT NULL DEFAULT 0`)
})
