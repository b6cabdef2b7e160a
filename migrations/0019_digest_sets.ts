import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Record digests, rekeyed for speed (issue 17): each stored digest belongs to its set by a
 * small integer (`set_id`) instead of repeating the district and the kind, so the primary
 * key is an integer and eight bytes — writing 837k digests of a 100k-student first sync
 * went from ~8 s to ~3 s (the old key compared two collated texts per step of the index),
 * and looking them up is one hash join. Sets no longer keep a checksum: a digest missing
 * from the store only means its record is decoded again (src/Reconcile/Digests.ts).
 *
 * The tables are a cache (UNLOGGED, emptied by a crash): they are dropped and made anew,
 * and every district's next run compares in full once, with a note.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    DROP TABLE roster_digests;
    DROP TABLE roster_digest_sets;
    CREATE UNLOGGED TABLE roster_digest_sets (
      id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      district_id text NOT NULL,
      kind text NOT NULL,
      version text NOT NULL,
      entries bigint NOT NULL DEFAULT 0,
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (district_id, kind)
    );
    CREATE UNLOGGED TABLE roster_digests (
      set_id integer NOT NULL,
      digest bytea NOT NULL,
      staged text NOT NULL,
      PRIMARY KEY (set_id, digest)
    );
  `)
})
