import { SqlClient } from "@effect/sql"
import { Config, Duration, Effect, Option, Schema } from "effect"
import { InvalidDistrict } from "../Domain/Errors.ts"
import { Notify } from "../Notify/Notify.ts"
import { type DistrictToken, listDistrictTokens } from "../Providers/Clever/CleverTokens.ts"
import { readSecret } from "../Secrets/SecretRef.ts"

/**
 * New districts found and announced (README "New districts"): the districts that have
 * authorised the app in Clever, from Clever's token list (src/Providers/Clever/CleverTokens.ts)
 * with the app's client id and secret (`rosterd.clever.*`).
 *
 * - `discover` lists them, each marked with the rosterd district registered for it (a
 *   Clever district whose `settings.districtId` is that id), never with its token.
 * - `check` (the daemon, every `rosterd.clever.discoverEvery`, 24 hours; any replica, one at a
 *   time under a transaction lock) records them in `discovered_districts` and announces
 *   `district.connected` for one not seen before and not registered. A registered district
 *   whose token is gone from the list is **disconnected**: `district.disconnected` is
 *   announced and its syncs stop — an ad-hoc pause (`rosterd pauses`, reason "disconnected
 *   …") until it is listed again, when the pause ends; nothing is deactivated. A registered
 *   district whose token Clever refuses (401) on its runs, once the daemon's retries are
 *   spent, is disconnected the same way (`markDisconnected`); it is resumed when the list
 *   shows it (again).
 * - `tokenFor` gives one district's token, for `rosterd district add --from-discovery`,
 *   which stores it encrypted (src/Secrets).
 */

const clever = <A>(config: Config.Config<A>) => config.pipe(Config.nested("clever"), Config.nested("rosterd"))

export const DiscoveryConfig = Config.all({
  clientId: clever(Config.option(Config.string("clientId"))),
  clientSecretFile: clever(Config.option(Config.string("clientSecretFile"))),
  clientSecretEnv: clever(Config.option(Config.string("clientSecretEnv"))),
  oauthUrl: clever(Config.string("oauthUrl").pipe(Config.withDefault("https://clever.com"))),
  discoverEvery: clever(Config.duration("discoverEvery").pipe(Config.withDefault(Duration.hours(24))))
})

export class DiscoveryNotConfigured extends Schema.TaggedError<DiscoveryNotConfigured>()("DiscoveryNotConfigured", {}) {
  override get message() {
    return "set rosterd.clever.clientId and rosterd.clever.clientSecretFile (or clientSecretEnv): the app's Clever client id and secret"
  }
}

export class NotDiscovered extends Schema.TaggedError<NotDiscovered>()("NotDiscovered", { cleverDistrict: Schema.String }) {
  override get message() {
    return `Clever district ${this.cleverDistrict} has not authorised the app (see rosterd districts discover)`
  }
}

export interface Discovered {
  readonly cleverDistrict: string
  /** The rosterd district registered for it, or null. */
  readonly registered: string | null
  readonly scopes: ReadonlyArray<string>
  readonly created: string | null
}

/** Who created a pause for a disconnected district (its end is discovery's too). */
const PAUSED_BY = "rosterd (discovery)"
const PAUSE_REASON = "disconnected: the district withdrew the app's access in Clever; syncs resume when it authorises the app again"

export class Discovery extends Effect.Service<Discovery>()("rosterd/Discovery", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const notify = yield* Notify
    const config = yield* DiscoveryConfig

    /** The token list, with tokens: internal. */
    const tokens = Effect.gen(function*() {
      if (Option.isNone(config.clientId)) return yield* new DiscoveryNotConfigured()
      const ref = { file: Option.getOrUndefined(config.clientSecretFile), env: Option.getOrUndefined(config.clientSecretEnv) }
      if (ref.file === undefined && ref.env === undefined) return yield* new DiscoveryNotConfigured()
      const clientSecret = yield* readSecret("discovery", ref, "Clever client secret").pipe(
        Effect.mapError((e) => new InvalidDistrict({ district: "rosterd.clever", message: e.message }))
      )
      return yield* listDistrictTokens({ oauthUrl: config.oauthUrl, clientId: config.clientId.value, clientSecret })
    })

    const registeredClever = sql<{ readonly id: string; readonly clever: string }>`
      SELECT id, settings->>'districtId' AS clever FROM districts WHERE provider = 'clever' AND removed_at IS NULL`

    const view = (list: ReadonlyArray<DistrictToken>, registered: ReadonlyArray<{ readonly id: string; readonly clever: string }>): Array<Discovered> =>
      list.map((t) => ({
        cleverDistrict: t.district,
        registered: registered.find((r) => r.clever === t.district)?.id ?? null,
        scopes: t.scopes,
        created: t.created
      }))

    const discover = Effect.fn("Discovery.discover")(function*() {
      const list = yield* tokens
      return view(list, yield* Effect.orDie(registeredClever))
    })

    const tokenFor = Effect.fn("Discovery.tokenFor")(function*(cleverDistrict: string) {
      const found = (yield* tokens).find((t) => t.district === cleverDistrict)
      if (found === undefined) return yield* new NotDiscovered({ cleverDistrict })
      return found.accessToken
    })

    /** One look at the list: new districts announced, registered ones that left paused (and resumed when back). */
    const check = Effect.fn("Discovery.check")(function*() {
      const list = yield* tokens
      return yield* sql.withTransaction(Effect.gen(function*() {
        const [lock] = yield* sql<{ readonly ok: boolean }>`SELECT pg_try_advisory_xact_lock(hashtext('rosterd.discovery')) AS ok`
        if (lock?.ok !== true) return { connected: 0, disconnected: 0, reconnected: 0 } // another replica is looking
        const registered = yield* registeredClever
        const ids = list.map((t) => t.district)
        // Seen now: new ones inserted, returning ones (missing before) back with a new episode.
        const seen = yield* sql<{ readonly source: string; readonly episode: number; readonly isNew: boolean; readonly returned: boolean }>`
          WITH listed AS (SELECT unnest(${ids}::text[]) AS source),
          old AS (SELECT source_district, missing_since FROM discovered_districts WHERE provider = 'clever' AND source_district IN (SELECT source FROM listed)),
          upserted AS (
            INSERT INTO discovered_districts (provider, source_district)
            SELECT 'clever', source FROM listed
            ON CONFLICT (provider, source_district) DO UPDATE
              SET last_seen_at = now(), missing_since = NULL,
                  episode = discovered_districts.episode + CASE WHEN discovered_districts.missing_since IS NULL THEN 0 ELSE 1 END
            RETURNING source_district, episode)
          SELECT u.source_district AS source, u.episode, o.source_district IS NULL AS is_new, o.missing_since IS NOT NULL AS returned
          FROM upserted u LEFT JOIN old o ON o.source_district = u.source_district`
        // Gone from the list since the last look.
        const gone = yield* sql<{ readonly source: string; readonly episode: number }>`
          UPDATE discovered_districts SET missing_since = now()
          WHERE provider = 'clever' AND missing_since IS NULL AND NOT (source_district = ANY (${ids}::text[]))
          RETURNING source_district AS source, episode`
        const counts = { connected: 0, disconnected: 0, reconnected: 0 }
        for (const s of seen) {
          const district = registered.find((r) => r.clever === s.source)
          if (district === undefined && (s.isNew || s.returned)) {
            const announced = yield* notify.emit({
              event: "district.connected",
              occurrence: `connected:clever:${s.source}:${s.episode}`,
              summary: { provider: "clever", cleverDistrict: s.source }
            })
            if (Option.isSome(announced)) counts.connected++
          }
          if (district !== undefined && s.returned) {
            // Back: the pause discovery made ends today.
            yield* sql`UPDATE pauses SET ended_at = now(), ended_by = ${PAUSED_BY}
                       WHERE district_id = ${district.id} AND created_by = ${PAUSED_BY} AND ended_at IS NULL`
            counts.reconnected++
          }
        }
        for (const g of gone) {
          const district = registered.find((r) => r.clever === g.source)
          if (district === undefined) continue
          yield* sql`INSERT INTO pauses (district_id, from_date, until_date, reason, created_by)
                     SELECT ${district.id}, current_date - 1, current_date + 3650, ${PAUSE_REASON}, ${PAUSED_BY}
                     WHERE NOT EXISTS (SELECT 1 FROM pauses WHERE district_id = ${district.id} AND created_by = ${PAUSED_BY} AND ended_at IS NULL)`
          const announced = yield* notify.emit({
            event: "district.disconnected",
            occurrence: `disconnected:clever:${g.source}:${g.episode}`,
            districtId: district.id,
            summary: { provider: "clever", cleverDistrict: g.source, syncs: "paused" }
          })
          if (Option.isSome(announced)) counts.disconnected++
        }
        return counts
      })).pipe(Effect.catchTag("SqlError", Effect.die))
    })

    /**
     * A registered Clever district whose token was refused (401) after the daemon's retries:
     * disconnected as if gone from the list — paused, announced once per episode. The next
     * look at the list that shows it resumes it.
     */
    const markDisconnected = Effect.fn("Discovery.markDisconnected")(function*(districtId: string) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const [district] = yield* sql<{ readonly clever: string | null }>`
          SELECT settings->>'districtId' AS clever FROM districts WHERE id = ${districtId} AND provider = 'clever'`
        if (district?.clever == null) return Option.none<number>()
        const [row] = yield* sql<{ readonly episode: number }>`
          INSERT INTO discovered_districts (provider, source_district, missing_since) VALUES ('clever', ${district.clever}, now())
          ON CONFLICT (provider, source_district) DO UPDATE SET missing_since = coalesce(discovered_districts.missing_since, now())
          RETURNING episode`
        yield* sql`INSERT INTO pauses (district_id, from_date, until_date, reason, created_by)
                   SELECT ${districtId}, current_date - 1, current_date + 3650, ${PAUSE_REASON}, ${PAUSED_BY}
                   WHERE NOT EXISTS (SELECT 1 FROM pauses WHERE district_id = ${districtId} AND created_by = ${PAUSED_BY} AND ended_at IS NULL)`
        return yield* notify.emit({
          event: "district.disconnected",
          occurrence: `disconnected:clever:${district.clever}:${row!.episode}`,
          districtId,
          summary: { provider: "clever", cleverDistrict: district.clever, syncs: "paused", why: "token refused (401)" }
        })
      }))
    }, (effect) => effect.pipe(Effect.catchTag("SqlError", Effect.die)))

    return { discover, tokenFor, check, markDisconnected, config } as const
  }),
  dependencies: [Notify.Default]
}) {}
