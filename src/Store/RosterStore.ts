import { SqlClient } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { District, DistrictId, type NewDistrict } from "../Domain/District.ts"
import { DistrictRules } from "../Domain/DistrictRules.ts"
import { DistrictExists, DistrictNotFound } from "../Domain/Errors.ts"

/**
 * The districts: the store's operator-facing side. (Their runs: Store/Runs.ts; the roster
 * tables themselves are written only by the reconcile, see Reconcile/.)
 *
 * SQL failures here are infrastructure failures the caller cannot handle: they become
 * defects, reported by the CLI and the daemon as such.
 */

const DistrictRow = Schema.Struct({
  id: DistrictId,
  name: Schema.String,
  provider: District.fields.provider,
  timezone: Schema.String,
  settings: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  rules: DistrictRules,
  origin: Schema.Literal("config", "cli")
})

export class RosterStore extends Effect.Service<RosterStore>()("rosterd/RosterStore", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const decodeDistrict = Schema.decodeUnknown(DistrictRow)
    const toDistrict = (row: unknown) =>
      decodeDistrict(row).pipe(Effect.map((d) => new District(d)), Effect.orDie)

    const findDistrict = Effect.fn("RosterStore.findDistrict")(function*(id: string) {
      const rows = yield* sql`SELECT id, name, provider, timezone, settings, rules, origin FROM districts
                              WHERE id = ${id} AND removed_at IS NULL`
      return rows.length === 0 ? Option.none() : Option.some(yield* toDistrict(rows[0]))
    })

    const getDistrict = (id: string) =>
      findDistrict(id).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(new DistrictNotFound({ district: id })),
          onSome: Effect.succeed
        }))
      )

    const listDistricts = Effect.fn("RosterStore.listDistricts")(function*() {
      const rows = yield* sql`SELECT id, name, provider, timezone, settings, rules, origin FROM districts
                              WHERE removed_at IS NULL ORDER BY id`
      return yield* Effect.forEach(rows, toDistrict)
    })

    /** `district add`: a new district (or one removed earlier, brought back with new settings). */
    const addDistrict = Effect.fn("RosterStore.addDistrict")(function*(input: NewDistrict) {
      const rows = yield* sql`
        INSERT INTO districts (id, name, provider, timezone, settings, rules, origin)
        VALUES (${input.id}, ${input.name}, ${input.provider}, ${input.timezone}, ${JSON.stringify(input.settings)}::jsonb,
                ${JSON.stringify(input.rules ?? {})}::jsonb, 'cli')
        ON CONFLICT (id) DO UPDATE
          SET name = excluded.name, provider = excluded.provider, timezone = excluded.timezone,
              settings = excluded.settings, rules = excluded.rules, origin = 'cli', removed_at = NULL, updated_at = now()
          WHERE districts.removed_at IS NOT NULL
        RETURNING id`
      if (rows.length === 0) return yield* new DistrictExists({ district: input.id })
      return yield* getDistrict(input.id)
    })

    /** Districts declared in the config file are (re)registered at every daemon start. */
    const declareDistrict = Effect.fn("RosterStore.declareDistrict")(function*(input: NewDistrict) {
      yield* sql`
        INSERT INTO districts (id, name, provider, timezone, settings, rules, origin)
        VALUES (${input.id}, ${input.name}, ${input.provider}, ${input.timezone}, ${JSON.stringify(input.settings)}::jsonb,
                ${JSON.stringify(input.rules ?? {})}::jsonb, 'config')
        ON CONFLICT (id) DO UPDATE
          SET name = excluded.name, provider = excluded.provider, timezone = excluded.timezone,
              settings = excluded.settings, rules = excluded.rules, origin = 'config', removed_at = NULL, updated_at = now()
          WHERE (districts.name, districts.provider, districts.timezone, districts.settings, districts.rules, districts.origin, districts.removed_at)
                IS DISTINCT FROM (excluded.name, excluded.provider, excluded.timezone, excluded.settings, excluded.rules, 'config', NULL)`
    })

    /** `district rules --file`: the operator's rules, as written. */
    const setRules = Effect.fn("RosterStore.setRules")(function*(id: string, rules: Readonly<Record<string, unknown>>) {
      const rows = yield* sql`UPDATE districts SET rules = ${JSON.stringify(rules)}::jsonb, updated_at = now()
                              WHERE id = ${id} AND removed_at IS NULL RETURNING id`
      if (rows.length === 0) return yield* new DistrictNotFound({ district: id })
      return yield* getDistrict(id)
    })

    /** Stops syncing the district. Its roster rows and history stay (erasure is a separate, explicit act). */
    const removeDistrict = Effect.fn("RosterStore.removeDistrict")(function*(id: string) {
      const rows = yield* sql`UPDATE districts SET removed_at = now(), next_run_at = NULL
                              WHERE id = ${id} AND removed_at IS NULL RETURNING id`
      if (rows.length === 0) return yield* new DistrictNotFound({ district: id })
    })

    const setNextRunAt = (id: string, at: Date | null) =>
      sql`UPDATE districts SET next_run_at = ${at} WHERE id = ${id}`.pipe(Effect.asVoid, Effect.orDie)

    return {
      findDistrict: (id: string) => Effect.orDie(findDistrict(id)),
      getDistrict: (id: string) => getDistrict(id).pipe(Effect.catchTag("SqlError", Effect.die)),
      listDistricts: () => Effect.orDie(listDistricts()),
      addDistrict: (input: NewDistrict) => addDistrict(input).pipe(Effect.catchTag("SqlError", Effect.die)),
      declareDistrict: (input: NewDistrict) => Effect.orDie(declareDistrict(input)),
      removeDistrict: (id: string) => removeDistrict(id).pipe(Effect.catchTag("SqlError", Effect.die)),
      setRules: (id: string, rules: Readonly<Record<string, unknown>>) => setRules(id, rules).pipe(Effect.catchTag("SqlError", Effect.die)),
      setNextRunAt
    } as const
  })
}) {}
