import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Whether a digest set's stored rows have distinct keys (issue 17, src/Reconcile/Findings.ts):
 * no source ID twice, and — for enrollments — no class and user twice among the valid rows.
 * Set by a run whose complete feed the checks found without a repeated key (the set then
 * holds exactly that run's staged rows); cleared whenever rows are added to the set. While
 * it holds, the rows a resync restores from the set cannot repeat each other's keys, so the
 * checks look for repeats only among the keys of the records it decoded: at 100k students,
 * two aggregates over 837,000 enrollments become two probes of them.
 *
 * A cache like the rest of the set (UNLOGGED): false, the default, only means the checks
 * read every row.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`ALTER TABLE roster_digest_sets ADD COLUMN keys_distinct boolean NOT NULL DEFAULT false`)
})
