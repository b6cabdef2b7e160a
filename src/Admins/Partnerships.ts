import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { DistrictNotFound } from "../Domain/Errors.ts"
import type { Geography, Placement } from "./Permissions.ts"

/**
 * Partnerships (seed 003): a state or regional group of districts, optionally divided into
 * regions. A district is in at most one partnership, and in at most one of its regions.
 * Partnership and region roles of in-product admins cover the districts placed here.
 * Operators manage them (`rosterd admin partnership …`); audited.
 */

const Id = /^[a-z0-9][a-z0-9_-]{0,62}$/

export class PartnershipError extends Schema.TaggedError<PartnershipError>()("PartnershipError", {
  message: Schema.String
}) {}

export interface PartnershipView {
  readonly id: string
  readonly name: string
  readonly regions: ReadonlyArray<{ readonly id: string; readonly name: string; readonly districts: ReadonlyArray<string> }>
  /** Districts of the partnership in no region. */
  readonly districts: ReadonlyArray<string>
}

/** Where every placed district sits (small: one row per district in a partnership). */
export const loadGeography = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly districtId: string; readonly partnershipId: string; readonly regionId: string | null }>`
    SELECT district_id, partnership_id, region_id FROM partnership_districts`
  return new Map(rows.map((r) => [r.districtId, { partnershipId: r.partnershipId, regionId: r.regionId } satisfies Placement])) as Geography
})

export class Partnerships extends Effect.Service<Partnerships>()("rosterd/Partnerships", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit

    const checkId = (what: string, id: string) =>
      Id.test(id) ? Effect.void : Effect.fail(new PartnershipError({ message: `a ${what} id is 1-63 characters of a-z, 0-9, _ and -, starting with a letter or digit` }))

    /** `admin partnership add`: a new partnership. */
    const add = Effect.fn("Partnerships.add")(function*(id: string, name: string, by: string) {
      yield* checkId("partnership", id)
      return yield* sql.withTransaction(Effect.gen(function*() {
        const inserted = yield* sql`INSERT INTO partnerships (id, name) VALUES (${id}, ${name}) ON CONFLICT (id) DO NOTHING RETURNING id`
        if (inserted.length === 0) return yield* new PartnershipError({ message: `partnership ${id} already exists` })
        yield* audit.record({ actor: by, action: "partnership.add", subject: `partnership ${id}` })
        return { id }
      }))
    })

    /**
     * `admin partnership add-district`: places a district in a partnership (moving it from
     * another one), in a region of it or none; a region named for the first time is created.
     */
    const place = Effect.fn("Partnerships.place")(function*(
      partnershipId: string,
      districtId: string,
      region: { readonly id: string; readonly name: string } | null,
      by: string
    ) {
      if (region !== null) yield* checkId("region", region.id)
      return yield* sql.withTransaction(Effect.gen(function*() {
        const [partnership] = yield* sql`SELECT id FROM partnerships WHERE id = ${partnershipId} FOR UPDATE`
        if (partnership === undefined) return yield* new PartnershipError({ message: `no partnership ${partnershipId} (see rosterd admin partnership list)` })
        const [district] = yield* sql`SELECT id FROM districts WHERE id = ${districtId} AND removed_at IS NULL`
        if (district === undefined) return yield* new DistrictNotFound({ district: districtId })
        let regionCreated = false
        if (region !== null) {
          const created = yield* sql`INSERT INTO regions (partnership_id, id, name) VALUES (${partnershipId}, ${region.id}, ${region.name})
                                     ON CONFLICT DO NOTHING RETURNING id`
          regionCreated = created.length === 1
        }
        const [before] = yield* sql<{ readonly partnershipId: string; readonly regionId: string | null }>`
          SELECT partnership_id, region_id FROM partnership_districts WHERE district_id = ${districtId}`
        yield* sql`INSERT INTO partnership_districts (district_id, partnership_id, region_id)
                   VALUES (${districtId}, ${partnershipId}, ${region?.id ?? null})
                   ON CONFLICT (district_id) DO UPDATE SET partnership_id = excluded.partnership_id, region_id = excluded.region_id, added_at = now()`
        yield* audit.record({
          actor: by,
          action: "partnership.add-district",
          districtId,
          subject: `partnership ${partnershipId}`,
          details: {
            region: region?.id ?? null,
            regionCreated,
            previous: before === undefined ? null : { partnership: before.partnershipId, region: before.regionId }
          }
        })
        return { partnershipId, districtId, regionId: region?.id ?? null, regionCreated }
      }))
    })

    const list = Effect.fn("Partnerships.list")(function*() {
      const partnerships = yield* sql<{ readonly id: string; readonly name: string }>`SELECT id, name FROM partnerships ORDER BY id`
      const regions = yield* sql<{ readonly partnershipId: string; readonly id: string; readonly name: string }>`
        SELECT partnership_id, id, name FROM regions ORDER BY partnership_id, id`
      const placed = yield* sql<{ readonly districtId: string; readonly partnershipId: string; readonly regionId: string | null }>`
        SELECT district_id, partnership_id, region_id FROM partnership_districts ORDER BY district_id`
      return partnerships.map((p): PartnershipView => ({
        id: p.id,
        name: p.name,
        regions: regions.filter((r) => r.partnershipId === p.id).map((r) => ({
          id: r.id,
          name: r.name,
          districts: placed.filter((d) => d.partnershipId === p.id && d.regionId === r.id).map((d) => d.districtId)
        })),
        districts: placed.filter((d) => d.partnershipId === p.id && d.regionId === null).map((d) => d.districtId)
      }))
    })

    return {
      add: (id: string, name: string, by: string) => add(id, name, by).pipe(Effect.catchTag("SqlError", Effect.die)),
      place: (partnershipId: string, districtId: string, region: { readonly id: string; readonly name: string } | null, by: string) =>
        place(partnershipId, districtId, region, by).pipe(Effect.catchTag("SqlError", Effect.die)),
      list: () => list().pipe(Effect.orDie)
    } as const
  }),
  dependencies: [Audit.Default]
}) {}
