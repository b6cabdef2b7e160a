import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import * as FakeClever from "../support/FakeClever/index.ts"
import * as FakeOneRoster from "../support/FakeOneRoster/index.ts"

/**
 * One roster, written as a OneRoster CSV set, served three ways into one database (as
 * test/Reconcile/RulesParity.test.ts does): the CSV set itself, the fake Clever API and the
 * fake OneRoster 1.1 REST server (OAuth 1.0a). Each copy is its own district
 * (`<label>-<provider>`) with its own e-mail domain, so an address is one person's in one
 * district only. Clever names users by its own ids: `sourceId` maps a CSV sourcedId to the
 * id the district stores.
 */

export const PROVIDERS = ["oneroster-csv", "clever", "oneroster-rest"] as const
export type Provider = (typeof PROVIDERS)[number]

const CLEVER_TOKEN = "followup-clever-token"
const OAUTH = { key: "followup-key", secret: "followup-secret" }

export interface ServedDistrict {
  readonly provider: Provider
  readonly districtId: string
  readonly domain: string
  /** The CSV dir the copy was written to (CSV: the district's own source). */
  readonly dir: string
  /** A CSV sourcedId of a user → the source ID the district stores for it. */
  readonly userSourceId: (csvId: string) => string
  /** The same for a class (a section, to Clever). */
  readonly classSourceId: (csvId: string) => string
}

/**
 * Writes the roster with `write(dir, domain)` once per provider, serves the Clever and REST
 * copies (closed with the scope), adds the districts (with `rules`) and syncs each once.
 */
export const serveEachProvider = (
  root: string,
  label: string,
  write: (dir: string, domain: string) => void,
  rules: Record<string, unknown> = {}
) =>
  Effect.gen(function*() {
    const store = yield* RosterStore
    const sync = yield* Sync
    const served = {} as Record<Provider, ServedDistrict>
    for (const provider of PROVIDERS) {
      const dir = NodePath.join(root, label, provider)
      const domain = `${label}-${provider}.example`
      write(dir, domain)
      const secret = (name: string, value: string) => {
        const path = NodePath.join(root, label, `${provider}-${name}`)
        Fs.writeFileSync(path, value)
        return path
      }
      let settings: Record<string, unknown> = { path: dir }
      let userSourceId = (id: string) => id
      let classSourceId = (id: string) => id
      if (provider === "clever") {
        const district = yield* Effect.promise(() => FakeClever.fromOneRosterCsv(dir))
        const fake = yield* Effect.acquireRelease(
          Effect.promise(() => FakeClever.start(district, { token: CLEVER_TOKEN, rateLimit: false })),
          (f) => Effect.promise(() => f.close())
        )
        settings = { districtId: district.district.id, tokenFile: secret("token", CLEVER_TOKEN), baseUrl: fake.baseUrl }
        userSourceId = (id) => FakeClever.cleverIdFor("users", id)
        classSourceId = (id) => FakeClever.cleverIdFor("classes", id)
      } else if (provider === "oneroster-rest") {
        const fake = yield* Effect.acquireRelease(
          Effect.promise(async () => FakeOneRoster.start(await FakeOneRoster.fromOneRosterCsv(dir), { oauth: OAUTH })),
          (f) => Effect.promise(() => f.close())
        )
        settings = { baseUrl: fake.baseUrl, auth: "oauth1", keyFile: secret("key", OAUTH.key), secretFile: secret("secret", OAUTH.secret) }
      }
      const districtId = `${label}-${provider}`
      yield* store.addDistrict({ id: districtId as DistrictId, name: `District ${districtId}`, provider, timezone: "America/Chicago", settings, rules })
      const run = yield* sync.run(districtId, { request: "full", trigger: "test" })
      if (run.status !== "succeeded") return yield* Effect.dieMessage(`the first sync of ${districtId} ended ${run.status}`)
      served[provider] = { provider, districtId, domain, dir, userSourceId, classSourceId }
    }
    return served
  })

/** A rostered user's id and its link, by the CSV sourcedId. */
export const rosteredUser = (district: ServedDistrict, csvId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly id: number; readonly accountId: number | null; readonly activation: string | null }>`
      SELECT u.id, l.account_id, l.activation FROM users u LEFT JOIN account_links l ON l.user_id = u.id
      WHERE u.district_id = ${district.districtId} AND u.source_id = ${district.userSourceId(csvId)}`
    if (row === undefined) return yield* Effect.dieMessage(`no user ${csvId} in ${district.districtId}`)
    return { id: Number(row.id), accountId: row.accountId === null ? null : Number(row.accountId), activation: row.activation }
  })
