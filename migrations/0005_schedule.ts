import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * The schedule (issue 8).
 *
 * - `districts.next_run_at` (0001) becomes the shared schedule of every replica: a district
 *   is *due* when it is in the past (or null: never scheduled). Beside it, what that slot
 *   runs (`next_run_request`: full / delta / auto; `next_run_trigger`: schedule, delta,
 *   catch-up, retry) and how many retries of a failed slot were already made
 *   (`retry_attempt`). A replica takes the district's lease, checks that the slot it saw is
 *   still the stored one (another replica may have just run it), runs, and writes the
 *   next slot before it lets the lease go (src/Schedule/Daemon.ts).
 * - `pauses`: ad-hoc pauses from `rosterd pause`, whole local days (`from_date` …
 *   `until_date`, both inclusive, in each district's zone), for one district or for every
 *   district (`district_id` null). `rosterd resume` ends one early (`ended_at`); rows are
 *   kept as history.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    ALTER TABLE districts
      ADD COLUMN next_run_request text NOT NULL DEFAULT 'auto' CHECK (next_run_request IN ('full', 'delta', 'auto')),
      ADD COLUMN next_run_trigger text NOT NULL DEFAULT 'schedule',
      ADD COLUMN retry_attempt integer NOT NULL DEFAULT 0 CHECK (retry_attempt >= 0);

    CREATE TABLE pauses (
      id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      district_id  text REFERENCES districts (id),
      from_date    date NOT NULL,
      until_date   date NOT NULL,
      reason       text,
      created_by   text NOT NULL,
      created_at   timestamptz NOT NULL DEFAULT now(),
      ended_at     timestamptz,
      ended_by     text,
      CHECK (from_date <= until_date)
    );
    CREATE INDEX pauses_by_district ON pauses (district_id, until_date);
  `)
})
