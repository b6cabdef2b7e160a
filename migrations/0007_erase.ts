import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * District erasure (a data-processing agreement's end-of-contract deletion; see
 * src/Districts/Erase.ts).
 *
 * - **A third writer, `erase`.** A transaction that ran `set_config('rosterd.writer',
 *   'erase', true)` may *delete* rostered classes, users and enrollments, account links and
 *   in-product admins — and nothing else: its inserts and updates meet the same locks as
 *   any other writer's. The lock triggers are split so that the delete trigger has its own
 *   `WHEN` (still a setting compared to a constant: no function call per row skipped).
 * - **The sync can no longer delete.** Before, the sync's `WHEN` skipped the lock triggers
 *   for all its writes, deletes included; the sync never deletes, so now its deletes of
 *   rostered rows are refused (`rostered_never_deleted`) like anyone's.
 * - `districts.erased_at`: the district row stays (run history and audit rows refer to its
 *   id), emptied and marked.
 * - Indexes for the foreign-key checks of a bulk delete: without them, deleting a district's
 *   classes or accounts scans `enrollments`, `classes` or `activation_tokens` once per row.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    ALTER TABLE districts ADD COLUMN erased_at timestamptz;

    -- Rostered rows: writes other than deletes as before (only the sync); deletes only by erase.
    DROP TRIGGER classes_lock ON classes;
    CREATE TRIGGER classes_lock BEFORE INSERT OR UPDATE ON classes
      FOR EACH ROW WHEN (current_setting('rosterd.writer', true) IS DISTINCT FROM 'sync')
      EXECUTE FUNCTION rosterd_classes_lock();
    CREATE TRIGGER classes_lock_delete BEFORE DELETE ON classes
      FOR EACH ROW WHEN (current_setting('rosterd.writer', true) IS DISTINCT FROM 'erase')
      EXECUTE FUNCTION rosterd_classes_lock();

    DROP TRIGGER enrollments_lock ON enrollments;
    CREATE TRIGGER enrollments_lock BEFORE INSERT OR UPDATE ON enrollments
      FOR EACH ROW WHEN (current_setting('rosterd.writer', true) IS DISTINCT FROM 'sync')
      EXECUTE FUNCTION rosterd_enrollments_lock();
    CREATE TRIGGER enrollments_lock_delete BEFORE DELETE ON enrollments
      FOR EACH ROW WHEN (current_setting('rosterd.writer', true) IS DISTINCT FROM 'erase')
      EXECUTE FUNCTION rosterd_enrollments_lock();

    DROP TRIGGER users_lock ON users;
    CREATE TRIGGER users_lock BEFORE INSERT OR UPDATE ON users
      FOR EACH ROW WHEN (current_setting('rosterd.writer', true) IS DISTINCT FROM 'sync')
      EXECUTE FUNCTION rosterd_users_lock();
    CREATE TRIGGER users_lock_delete BEFORE DELETE ON users
      FOR EACH ROW WHEN (current_setting('rosterd.writer', true) IS DISTINCT FROM 'erase')
      EXECUTE FUNCTION rosterd_users_lock();

    -- Links stay permanent for everyone else; erase removes the erased district's links.
    DROP TRIGGER account_links_lock ON account_links;
    CREATE TRIGGER account_links_lock BEFORE UPDATE ON account_links
      FOR EACH ROW EXECUTE FUNCTION rosterd_links_lock();
    CREATE TRIGGER account_links_lock_delete BEFORE DELETE ON account_links
      FOR EACH ROW WHEN (current_setting('rosterd.writer', true) IS DISTINCT FROM 'erase')
      EXECUTE FUNCTION rosterd_links_lock();

    -- In-product admins: never written by a sync, never deleted, except by erase.
    DROP TRIGGER admins_lock ON admins;
    CREATE TRIGGER admins_lock BEFORE INSERT OR UPDATE ON admins
      FOR EACH ROW EXECUTE FUNCTION rosterd_admins_lock();
    CREATE TRIGGER admins_lock_delete BEFORE DELETE ON admins
      FOR EACH ROW WHEN (current_setting('rosterd.writer', true) IS DISTINCT FROM 'erase')
      EXECUTE FUNCTION rosterd_admins_lock();

    CREATE INDEX enrollments_by_class ON enrollments (class_id);
    CREATE INDEX account_reviews_by_user ON account_reviews (user_id);
    CREATE INDEX account_reviews_by_resolved_account ON account_reviews (resolved_account_id) WHERE resolved_account_id IS NOT NULL;
    CREATE INDEX activation_tokens_by_account ON activation_tokens (account_id);
    CREATE INDEX accounts_by_merged_into ON accounts (merged_into) WHERE merged_into IS NOT NULL;
    CREATE INDEX accounts_by_district ON accounts (district_id) WHERE district_id IS NOT NULL;
    CREATE INDEX classes_by_owner ON classes (owner_account_id) WHERE owner_account_id IS NOT NULL;
  `)
})
