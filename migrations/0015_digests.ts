import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Record digests (issue 17): what each district's source sent last, so a resync decodes
 * only the records that changed (src/Reconcile/Digests.ts).
 *
 * - `roster_digest_sets`: one row per district and entity kind — the version the digests
 *   were made under (the provider's mapping, rosterd's staging, the district's rules), how
 *   many there are and a checksum of them. A set whose version differs, or whose rows do
 *   not add up to its count and checksum, is not used: the run compares in full.
 * - `roster_digests`: per record read, its 64-bit digest and the staging row it produced
 *   (the staging table's row as text, without its line): an unchanged record is staged
 *   from here instead of being decoded again.
 *
 * Both are UNLOGGED: they are a cache of what the source sent, not roster state. A crash
 * empties them, and the next run of each district compares in full (with a note) and
 * writes them again. The staged rows hold what the roster tables hold (names, e-mails,
 * birth dates): only the app may read them, never the platform (src/Store/Roles.ts), and
 * `district erase` deletes them with the district's roster.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE UNLOGGED TABLE roster_digest_sets (
      district_id text NOT NULL,
      kind text NOT NULL,
      version text NOT NULL,
      entries bigint NOT NULL,
      checksum text NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (district_id, kind)
    );
    CREATE UNLOGGED TABLE roster_digests (
      district_id text NOT NULL,
      kind text NOT NULL,
      digest bytea NOT NULL,
      staged text NOT NULL,
      PRIMARY KEY (district_id, kind, digest)
    );
  `)
})
