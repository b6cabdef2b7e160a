import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { DistrictNotFound } from "../Domain/Errors.ts"

/**
 * `rosterd accounts duplicates [--district <id>]`: accounts that look like one person, for an
 * operator to review (and merge: `rosterd accounts merge`, src/Accounts/Merge.ts). Nothing is
 * changed here, and nothing personal is shown: a group is its kind of match, its account ids,
 * how many shared values make it, and the rostered people linked to those accounts by source
 * ID. Kinds of match, over live accounts (merged ones are left out):
 *
 * - `address`: the same current address (trimmed, any case) on several accounts. Former
 *   addresses (a district address that changed) are not compared: a reused address is two
 *   people, which linking already guards against.
 * - `identity`: a provider identity that names one person everywhere on several accounts — a
 *   grassroots account's imported identity (`account_identities`) that a rostered user linked
 *   to another account also has (the way `rosterd_resolve_login` matches them), or the same
 *   Clever user id or state id on rostered users linked to different accounts. A source ID of
 *   OneRoster or a SIS number is only unique within its district, so it is not compared
 *   across districts.
 * - `name_birth_date`: rostered users linked to different accounts with the same given and
 *   family name (trimmed, any case) and birth date.
 *
 * One query, set-based. With a district: the groups in which at least one account is linked
 * to one of the district's users, or was created by the district.
 */

export type MatchKind = "address" | "identity" | "name_birth_date"

export interface LinkedPerson {
  readonly accountId: number
  readonly userId: number
  readonly district: string
  readonly sourceId: string
  readonly roles: ReadonlyArray<string>
  readonly active: boolean
}

export interface DuplicateGroup {
  readonly match: MatchKind
  readonly accounts: ReadonlyArray<number>
  /** How many distinct shared values (addresses, identities, name and birth date pairs) make this group. */
  readonly shared: number
  readonly people: ReadonlyArray<LinkedPerson>
}

/** The groups, as `(match, ids, shared)`; `$1` the district or NULL. */
const GROUPS = `
  WITH live AS (SELECT id FROM accounts WHERE state <> 'merged'),
  linked AS (
    SELECT l.account_id, u.* FROM account_links l JOIN live a ON a.id = l.account_id JOIN users u ON u.id = l.user_id),
  by_address AS (
    SELECT 'address' AS match, array_agg(DISTINCT e.account_id ORDER BY e.account_id) AS ids
    FROM account_emails e JOIN live a ON a.id = e.account_id
    WHERE e.former_at IS NULL
    GROUP BY e.email_key HAVING count(DISTINCT e.account_id) > 1),
  identities AS (
    -- A grassroots account's identity, and the rostered users resolve_login would find by it.
    SELECT 'account:' || i.provider || ':' || i.kind || ':' || i.subject AS value, i.account_id
    FROM account_identities i JOIN live a ON a.id = i.account_id
    UNION ALL
    SELECT 'account:' || i.provider || ':' || i.kind || ':' || ui.value, x.account_id
    FROM account_identities i JOIN live a ON a.id = i.account_id
    JOIN user_identities ui ON ui.value = i.subject AND ui.ended_at IS NULL
      AND ((i.provider = 'clever' AND ui.provider = 'clever' AND ui.kind = 'source_id' AND i.kind = 'source_id')
           OR (i.provider = 'oneroster' AND ui.provider IN ('oneroster', 'csv')
               AND (ui.kind = 'source_id' OR (ui.kind = 'user_id' AND i.kind = 'login'))))
    JOIN linked x ON x.id = ui.user_id
    UNION ALL
    -- Identities that are one person's beyond a district: Clever user ids, state ids.
    SELECT 'user:' || ui.provider || ':' || ui.kind || ':' || ui.type || ':' || ui.value, x.account_id
    FROM user_identities ui JOIN linked x ON x.id = ui.user_id
    WHERE ui.ended_at IS NULL AND ((ui.provider = 'clever' AND ui.kind = 'source_id') OR ui.kind = 'state_id')),
  by_identity AS (
    SELECT 'identity' AS match, array_agg(DISTINCT account_id ORDER BY account_id) AS ids
    FROM identities GROUP BY value HAVING count(DISTINCT account_id) > 1),
  by_person AS (
    SELECT 'name_birth_date' AS match, array_agg(DISTINCT account_id ORDER BY account_id) AS ids
    FROM linked
    WHERE birth_date IS NOT NULL AND coalesce(btrim(given_name), '') <> '' AND coalesce(btrim(family_name), '') <> ''
    GROUP BY lower(btrim(given_name)), lower(btrim(family_name)), birth_date
    HAVING count(DISTINCT account_id) > 1),
  groups AS (
    SELECT match, ids, count(*)::int AS shared
    FROM (SELECT * FROM by_address UNION ALL SELECT * FROM by_identity UNION ALL SELECT * FROM by_person) g
    GROUP BY match, ids)
  SELECT g.match, g.ids, g.shared FROM groups g
  WHERE $1::text IS NULL
     OR EXISTS (SELECT 1 FROM linked x WHERE x.account_id = ANY (g.ids) AND x.district_id = $1)
     OR EXISTS (SELECT 1 FROM accounts a WHERE a.id = ANY (g.ids) AND a.district_id = $1)
  ORDER BY g.ids, g.match`

export class Duplicates extends Effect.Service<Duplicates>()("rosterd/Duplicates", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const find = Effect.fn("Duplicates.find")(function*(districtId: Option.Option<string>) {
      const district = Option.getOrNull(districtId)
      if (district !== null) {
        const known = yield* sql`SELECT 1 FROM districts WHERE id = ${district}`
        if (known.length === 0) return yield* new DistrictNotFound({ district })
      }
      const groups = yield* sql.unsafe<{ readonly match: MatchKind; readonly ids: ReadonlyArray<string | number>; readonly shared: number }>(
        GROUPS,
        [district]
      )
      const ids = [...new Set(groups.flatMap((g) => g.ids.map(Number)))]
      const people = ids.length === 0 ? [] : yield* sql<{
        readonly accountId: number
        readonly userId: number
        readonly districtId: string
        readonly sourceId: string
        readonly roles: ReadonlyArray<string>
        readonly active: boolean
      }>`
        SELECT l.account_id, u.id AS user_id, u.district_id, u.source_id, u.roles, u.active
        FROM account_links l JOIN users u ON u.id = l.user_id
        WHERE l.account_id = ANY (${ids}::bigint[])
        ORDER BY l.account_id, u.district_id, u.source_id`
      return groups.map((g): DuplicateGroup => {
        const accounts = g.ids.map(Number)
        return {
          match: g.match,
          accounts,
          shared: g.shared,
          people: people
            .filter((p) => accounts.includes(Number(p.accountId)))
            .map((p) => ({
              accountId: Number(p.accountId),
              userId: Number(p.userId),
              district: p.districtId,
              sourceId: p.sourceId,
              roles: p.roles,
              active: p.active
            }))
        }
      })
    })

    return { find } as const
  })
}) {}
