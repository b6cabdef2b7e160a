import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * How a user's personal fields look to the masking check, judged when the record is
 * decoded (issue 17, src/Domain/Masking.ts): a column of the users' staging rows, so of
 * their digest table too. The users' digest set's version changes with the staging columns,
 * so each district's next run decodes its users in full once and stores the new column.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`ALTER TABLE roster_digests_users ADD COLUMN masking smallint`)
})
