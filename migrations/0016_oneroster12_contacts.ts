import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * OneRoster 1.2 (issue 18).
 *
 * - `users.preferred_given_name`, `preferred_family_name`: the names a person goes by
 *   (`preferredFirstName`/`preferredLastName`), beside the legal ones; the display-name rule
 *   is the README's ("OneRoster 1.2"). `primary_org_source_id`: the user's `primaryOrg`.
 *   `org_roles`: each role at its org, `role:orgSourceId` (roles never hold a colon). Empty
 *   for the other sources.
 * - `user_identities.kind` gains `profile` (a 1.2 `userProfiles[]` entry).
 * - `roster_admins` scopes an administrator to the orgs where it *is* one when the source
 *   says per org (`org_roles`): a teacher at one school and an administrator at another
 *   administers the second only. Same columns (CREATE OR REPLACE keeps the grants); without
 *   `org_roles` the orgs are `org_source_ids`, as before.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    ALTER TABLE users
      ADD COLUMN preferred_given_name text,
      ADD COLUMN preferred_family_name text,
      ADD COLUMN primary_org_source_id text,
      ADD COLUMN org_roles text[] NOT NULL DEFAULT '{}';

    ALTER TABLE user_identities DROP CONSTRAINT user_identities_kind_check;
    ALTER TABLE user_identities ADD CONSTRAINT user_identities_kind_check
      CHECK (kind IN ('source_id', 'user_id', 'identifier', 'sis_id', 'state_id', 'student_number', 'teacher_number',
                      'staff_id', 'legacy_source_id', 'profile'));

    CREATE OR REPLACE VIEW roster_admins AS
      SELECT u.id AS user_id, u.district_id, u.source_id, u.roster_source, u.roles, u.active,
             CASE WHEN cardinality(u.org_roles) = 0 THEN u.org_source_ids
                  ELSE ARRAY(SELECT DISTINCT substr(e, strpos(e, ':') + 1) FROM unnest(u.org_roles) e
                             WHERE split_part(e, ':', 1) IN ('administrator', 'district_admin', 'staff'))
             END AS org_source_ids,
             l.account_id, l.activation
      FROM users u
      JOIN districts d ON d.id = u.district_id AND coalesce((d.rules ->> 'syncAdmins')::boolean, true)
      LEFT JOIN account_links l ON l.user_id = u.id
      WHERE u.roles && ARRAY['administrator', 'district_admin', 'staff'];
  `)
})
