import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { AdminListing, Role } from "./Model.ts"
import { sourceLabel } from "./Model.ts"
import type { AdminState, Permission } from "./Permissions.ts"
import { districtLevelSql } from "../Domain/Roles.ts"

/**
 * `rosterd admin list`: a district's administrators, in-product and rostered, with their
 * invitation state and the roster record that is the same person. Two set-based queries;
 * the district is checked by the caller (src/Admins/Admins.ts).
 *
 * - in-product admins whose scope reaches the district: invited there, or a partnership /
 *   region role covering it (`all`: removed ones too), with their newest token's expiry
 *   and the roster record with their address or linked to their account;
 * - roster admins (the `roster_admins` view): none when the district does not sync admins;
 *   district-level ones (src/Domain/Roles.ts) with all schools, as `admin_rights` has them.
 */
export const listAdmins = (districtId: string, all: boolean, staleAfterDays: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const inProduct = yield* sql.unsafe<{
      readonly id: number
      readonly districtId: string
      readonly name: string
      readonly email: string
      readonly role: Role
      readonly partnershipId: string | null
      readonly regionId: string | null
      readonly allSchools: boolean
      readonly schools: ReadonlyArray<string>
      readonly permission: Permission
      readonly canManageAdmins: boolean
      readonly state: AdminState
      readonly accountId: number | null
      readonly invitedAt: Date
      readonly confirmedAt: Date | null
      readonly stale: boolean
      readonly expired: boolean
      readonly recordUserId: number | null
      readonly recordSourceId: string | null
      readonly recordRoles: ReadonlyArray<string> | null
      readonly recordSource: string | null
      readonly recordActive: boolean | null
    }>(
      `WITH place AS (SELECT partnership_id, region_id FROM partnership_districts WHERE district_id = $1),
       listed AS (
         SELECT a.* FROM admins a
         WHERE ($2 OR a.state <> 'removed')
           AND (a.district_id = $1
                OR (a.role = 'partnership' AND a.partnership_id = (SELECT partnership_id FROM place))
                OR (a.role = 'region' AND (a.partnership_id, a.region_id) = (SELECT partnership_id, region_id FROM place)))),
       newest AS (
         SELECT DISTINCT ON (admin_id) admin_id, expires_at FROM admin_tokens
         WHERE admin_id IN (SELECT id FROM listed) ORDER BY admin_id, id DESC),
       records AS (
         -- The same person in the district's roster: by address, or linked to the admin's account.
         SELECT DISTINCT ON (admin_id) * FROM (
           SELECT l.id AS admin_id, u.id AS user_id, u.source_id, u.roles, u.roster_source::text AS source, u.active
           FROM listed l JOIN users u ON u.district_id = l.district_id AND lower(btrim(u.email)) = l.email_key
           UNION
           SELECT l.id, u.id, u.source_id, u.roles, u.roster_source::text, u.active
           FROM listed l JOIN account_links k ON k.account_id = l.account_id JOIN users u ON u.id = k.user_id AND u.district_id = l.district_id
         ) m ORDER BY admin_id, active DESC, user_id)
       SELECT l.id, l.district_id, l.name, l.email, l.role, l.partnership_id, l.region_id, l.all_schools,
              l.school_source_ids AS schools, l.permission, l.can_manage_admins, l.state, l.account_id, l.invited_at, l.confirmed_at,
              l.state = 'invited' AND l.invited_at <= now() - $3::float8 * interval '1 day' AS stale,
              l.state = 'invited' AND coalesce(n.expires_at <= now(), true) AS expired,
              r.user_id AS record_user_id, r.source_id AS record_source_id, r.roles AS record_roles, r.source AS record_source,
              r.active AS record_active
       FROM listed l LEFT JOIN newest n ON n.admin_id = l.id LEFT JOIN records r ON r.admin_id = l.id
       ORDER BY l.id`,
      [districtId, all, staleAfterDays]
    )
    const roster = yield* sql<{
      readonly userId: number
      readonly sourceId: string
      readonly source: string
      readonly roles: ReadonlyArray<string>
      readonly orgSourceIds: ReadonlyArray<string>
      readonly accountId: number | null
      readonly activation: "pending" | "active" | null
      readonly givenName: string | null
      readonly familyName: string | null
      readonly email: string | null
      readonly districtLevel: boolean
      readonly districtOfficeOnly: boolean
    }>`
      -- The orgs that have classes, once: asked per administrator, "a class at one of my orgs"
      -- scanned every class of the district for each (quadratic in a large district).
      WITH taught_at AS MATERIALIZED (
        SELECT DISTINCT school_source_id AS org FROM classes WHERE district_id = ${districtId} AND active)
      SELECT r.user_id, r.source_id, r.roster_source::text AS source, r.roles, r.org_source_ids, r.account_id, r.activation,
             u.given_name, u.family_name, btrim(u.email) AS email, l.district_level,
             NOT l.district_level AND NOT EXISTS (SELECT 1 FROM unnest(r.org_source_ids) AS o(org)
                                                  WHERE o.org IN (SELECT org FROM taught_at)) AS district_office_only
      FROM roster_admins r JOIN users u ON u.id = r.user_id
      CROSS JOIN LATERAL (SELECT ${sql.literal(districtLevelSql("r"))} AS district_level) l
      WHERE r.district_id = ${districtId} AND r.active
      ORDER BY r.source_id`
    const listed: Array<AdminListing> = inProduct.map((a) => ({
      kind: "in-product",
      id: a.id,
      name: a.name,
      email: a.email,
      district: a.districtId,
      role: a.role,
      partnership: a.partnershipId,
      region: a.regionId,
      allSchools: a.allSchools,
      schools: a.schools,
      permission: a.permission,
      canManageAdmins: a.canManageAdmins,
      source: "in-product",
      invitation: a.state === "active" ? "confirmed" : a.state === "removed" ? "removed" : a.expired ? "expired" : "pending",
      stale: a.stale,
      invitedAt: a.invitedAt,
      confirmedAt: a.confirmedAt,
      accountId: a.accountId,
      rosterRecord: a.recordUserId === null
        ? null
        : {
          userId: a.recordUserId,
          sourceId: a.recordSourceId!,
          roles: a.recordRoles!,
          source: sourceLabel(a.recordSource!),
          active: a.recordActive!
        },
      districtOfficeOnly: false
    }))
    for (const r of roster) {
      const name = [r.givenName, r.familyName].filter((part) => part !== null).join(" ")
      listed.push({
        kind: "roster",
        id: r.userId,
        name: name.length === 0 ? null : name,
        email: r.email,
        district: districtId,
        role: "school",
        partnership: null,
        region: null,
        // District-level: every school, present and future, as `admin_rights` gives it.
        allSchools: r.districtLevel,
        schools: r.districtLevel ? [] : r.orgSourceIds,
        permission: "view",
        canManageAdmins: false,
        source: sourceLabel(r.source),
        invitation: r.activation === null ? "no account" : r.activation === "active" ? "confirmed" : "pending",
        stale: false,
        invitedAt: null,
        confirmedAt: null,
        accountId: r.accountId,
        rosterRecord: { userId: r.userId, sourceId: r.sourceId, roles: r.roles, source: sourceLabel(r.source), active: true },
        districtOfficeOnly: r.districtOfficeOnly
      })
    }
    return listed
  })
