import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import type { RunSummary } from "../../src/Reconcile/SyncRun.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import * as FakeClever from "../support/FakeClever/index.ts"
import * as FakeOneRoster from "../support/FakeOneRoster/index.ts"

/**
 * One scenario through the three providers (like test/Reconcile/RulesParity.test.ts): each
 * provider gets a CSV folder of its own (and its own e-mail domain: the same address in two
 * districts is one person to account linking), written and changed by the same functions;
 * the CSV district reads its folder, the Clever and OneRoster REST districts are served
 * from theirs by the fakes — started afresh for each sync, so a changed folder is what
 * they serve (Clever ids are derived from the CSV sourcedIds, so they stay the same).
 */

export const PROVIDERS = ["oneroster-csv", "clever", "oneroster-rest"] as const
export type Provider = (typeof PROVIDERS)[number]

const CLEVER_TOKEN = "identity-clever-token"
const OAUTH = { key: "identity-key", secret: "identity-secret" }

export interface Scenario {
  readonly root: string
  /** The district of each provider: `<label>-<short provider>`. */
  readonly district: (provider: Provider) => string
  /** The CSV folder each provider serves. */
  readonly dir: (provider: Provider) => string
  readonly domain: (provider: Provider) => string
  /** How the provider's district stores a CSV user sourcedId (Clever: its derived id). */
  readonly userId: (provider: Provider, csvSourceId: string) => string
  /** Changes each provider's folder alike. */
  readonly change: (edit: (dir: string, domain: string) => void) => void
  /** A full sync of one provider's district (the fakes serve the folder as it is now). */
  readonly sync: (provider: Provider) => Effect.Effect<RunSummary, unknown, Sync | SqlClient.SqlClient>
}

const short = { "oneroster-csv": "csv", clever: "clever", "oneroster-rest": "rest" } as const

export const scenario = (root: string, label: string, write: (dir: string, domain: string) => void, rules?: Readonly<Record<string, unknown>>) =>
  Effect.gen(function*() {
    const dir = (provider: Provider) => NodePath.join(root, label, short[provider])
    const domain = (provider: Provider) => `${label}-${short[provider]}.example`
    const district = (provider: Provider) => `${label}-${short[provider]}`
    const secret = (name: string, value: string) => {
      const path = NodePath.join(root, label, name)
      Fs.writeFileSync(path, value)
      return path
    }
    for (const provider of PROVIDERS) write(dir(provider), domain(provider))
    const store = yield* RosterStore
    for (const provider of PROVIDERS) {
      const settings = provider === "oneroster-csv"
        ? { path: dir(provider) }
        : provider === "clever"
        ? { districtId: "pending", tokenFile: secret("clever-token", CLEVER_TOKEN), baseUrl: "http://127.0.0.1:9", pageSize: 50 }
        : { baseUrl: "http://127.0.0.1:9", auth: "oauth1", keyFile: secret("key", OAUTH.key), secretFile: secret("secret", OAUTH.secret), pageSize: 50 }
      yield* store.addDistrict({
        id: district(provider) as DistrictId,
        name: `District ${district(provider)}`,
        provider,
        timezone: "America/Chicago",
        settings,
        ...(rules === undefined ? {} : { rules })
      })
    }
    const sync = (provider: Provider) =>
      Effect.scoped(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        if (provider === "clever") {
          const data = yield* Effect.promise(() => FakeClever.fromOneRosterCsv(dir(provider)))
          const fake = yield* Effect.acquireRelease(
            Effect.promise(() => FakeClever.start(data, { token: CLEVER_TOKEN, rateLimit: false })),
            (fake) => Effect.promise(() => fake.close())
          )
          yield* sql`UPDATE districts SET settings = settings || ${JSON.stringify({ districtId: data.district.id, baseUrl: fake.baseUrl })}::jsonb
                     WHERE id = ${district(provider)}`
        } else if (provider === "oneroster-rest") {
          const fake = yield* Effect.acquireRelease(
            Effect.promise(async () => FakeOneRoster.start(await FakeOneRoster.fromOneRosterCsv(dir(provider)), { oauth: OAUTH })),
            (fake) => Effect.promise(() => fake.close())
          )
          yield* sql`UPDATE districts SET settings = settings || ${JSON.stringify({ baseUrl: fake.baseUrl })}::jsonb WHERE id = ${district(provider)}`
        }
        return yield* Effect.flatMap(Sync, (s) => s.run(district(provider), { request: "full", trigger: "test" }))
      }))
    return {
      root,
      district,
      dir,
      domain,
      userId: (provider, csvSourceId) => (provider === "clever" ? FakeClever.cleverIdFor("users", csvSourceId) : csvSourceId),
      change: (edit) => {
        for (const provider of PROVIDERS) edit(dir(provider), domain(provider))
      },
      sync
    } satisfies Scenario
  })
