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
 *
 * Guardians and contacts (src/Reconcile/Contacts.ts):
 *
 * - `contact_links`: a contact (a user whose only roles are parent, guardian or relative)
 *   and one of its students, by source ID (providers share partial sets: the student may
 *   come later), with the relationship; ended, never deleted, by the sync (`missing_from_source`,
 *   `contact_removed`), deleted only by erase. Like `user_identities`, no foreign key to
 *   `users`: the sync writes both in one transaction, erase deletes both.
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

    CREATE TABLE contact_links (
      district_id        text NOT NULL,
      contact_user_id    bigint NOT NULL,
      student_source_id  text NOT NULL CHECK (student_source_id <> ''),
      relationship       text,
      active             boolean NOT NULL DEFAULT true,
      started_at         timestamptz NOT NULL DEFAULT now(),
      updated_at         timestamptz NOT NULL DEFAULT now(),
      ended_at           timestamptz,
      end_reason         text CHECK (end_reason IN ('missing_from_source', 'contact_removed')),
      PRIMARY KEY (contact_user_id, student_source_id),
      CHECK (active = (ended_at IS NULL)),
      CHECK ((ended_at IS NULL) = (end_reason IS NULL))
    );
    CREATE INDEX contact_links_by_student ON contact_links (district_id, student_source_id);
    COMMENT ON TABLE contact_links IS
      'Guardians and contacts linked to their students (rules.contacts.sync); written by the sync only. See README "Guardians and contacts".';
  `)
})
