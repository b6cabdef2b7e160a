import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * District-level roster admins cover all of the district's schools (issue 15).
 *
 * Until now a roster admin's rights were the orgs it is attached to, so a OneRoster
 * `administrator` whose org is the district, and a Clever `district_admin` (whose only org
 * is the district), had rights over no school: once active, they saw nothing. Now a roster
 * admin is **district-level** when it is a Clever `district_admin`, or when one of its orgs
 * is an org of type `district` of its district; `admin_rights` then gives it
 * `all_schools = true` and no school list — the representation of an in-product admin
 * invited with `--all-schools`, so it covers schools added later too.
 *
 * The ClassLink guide (seed 001) warns that "administrators who are associated with
 * district offices won't see usage data". For the district org itself the issue decides
 * otherwise: the district is every school. An admin attached only to other orgs without
 * classes (a department, a local office, a "District Office" the SIS files as a school)
 * still has nothing to see, and is still reported (`admin_district_office_only`).
 *
 * The same rule is `districtLevelSql` in src/Domain/Roles.ts (the listing and the finding);
 * it is written out here because an applied migration never changes. Same columns as
 * before (CREATE OR REPLACE keeps the view's grants: src/Store/Roles.ts).
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`
    CREATE OR REPLACE VIEW admin_rights AS
      SELECT a.account_id, d.district_id, a.role <> 'school' OR a.all_schools AS all_schools,
             CASE WHEN a.role = 'school' AND NOT a.all_schools THEN a.school_source_ids ELSE '{}'::text[] END AS school_source_ids,
             a.permission, a.can_manage_admins, 'in-product'::text AS roster_source, a.id AS admin_id, NULL::bigint AS user_id
      FROM admins a
      CROSS JOIN LATERAL (
        SELECT a.district_id WHERE a.role = 'school'
        UNION
        SELECT p.district_id FROM partnership_districts p
        WHERE p.partnership_id = a.partnership_id AND (a.role = 'partnership' OR (a.role = 'region' AND p.region_id = a.region_id))
      ) d
      WHERE a.state = 'active'
      UNION ALL
      SELECT r.account_id, r.district_id, s.district_level,
             CASE WHEN s.district_level THEN '{}'::text[] ELSE r.org_source_ids END,
             'view', false, r.roster_source::text, NULL::bigint, r.user_id
      FROM roster_admins r
      CROSS JOIN LATERAL (
        SELECT 'district_admin' = ANY (r.roles) OR EXISTS (
                 SELECT 1 FROM schools o
                 WHERE o.district_id = r.district_id AND o.org_type = 'district' AND o.source_id = ANY (r.org_source_ids)) AS district_level
      ) s
      WHERE r.active AND r.account_id IS NOT NULL AND r.activation = 'active';

    COMMENT ON VIEW admin_rights IS
      'Which account administers what, per district: in-product admins (partnership and region roles expanded) and active roster admins (district-level ones: all_schools). See README "Administrators".';
  `)
})
