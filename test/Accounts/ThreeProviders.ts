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
import { readRows, writeCsv } from "../support/Fixtures.ts"

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

// ---------------------------------------------------------------- what the store says

export interface LinkView {
  readonly userId: number
  readonly accountId: number
  readonly method: string
  readonly activation: string
  readonly accountState: string
}

/** A rostered user's link (null: none), by its stored source ID. */
export const linkOf = (district: string, sourceId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<LinkView>`
      SELECT u.id AS user_id, l.account_id, l.method, l.activation, a.state AS account_state
      FROM users u JOIN account_links l ON l.user_id = u.id JOIN accounts a ON a.id = l.account_id
      WHERE u.district_id = ${district} AND u.source_id = ${sourceId}`
  ).pipe(Effect.map((rows) => (rows[0] === undefined ? null : { ...rows[0], userId: Number(rows[0].userId), accountId: Number(rows[0].accountId) })))

export interface ReviewView {
  readonly id: number
  readonly reason: string
  readonly candidates: ReadonlyArray<number>
  /** The other people's stored source IDs. */
  readonly related: ReadonlyArray<string>
}

/** A rostered user's open review item (null: none). */
export const reviewOf = (district: string, sourceId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly id: number; readonly reason: string; readonly candidates: ReadonlyArray<string>; readonly related: ReadonlyArray<string> | null }>`
      SELECT r.id, r.reason, r.candidate_account_ids::text[] AS candidates,
             (SELECT array_agg(o.source_id ORDER BY o.source_id) FROM users o WHERE o.id = ANY (r.related_user_ids)) AS related
      FROM account_reviews r JOIN users u ON u.id = r.user_id
      WHERE r.state = 'open' AND u.district_id = ${district} AND u.source_id = ${sourceId}`
  ).pipe(Effect.map((rows) =>
    rows[0] === undefined
      ? null
      : { id: Number(rows[0].id), reason: rows[0].reason, candidates: rows[0].candidates.map(Number), related: rows[0].related ?? [] } satisfies ReviewView
  ))

/** Activation e-mails queued in the district to this address (any state). */
export const mailsTo = (district: string, address: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly n: number }>`
      SELECT count(*)::int AS n FROM outbox WHERE district_id = ${district} AND kind = 'teacher_activation' AND recipient = ${address}`
  ).pipe(Effect.map((rows) => rows[0]!.n))

/** The current (`former: false`) or former addresses of an account, as keys. */
export const addressesOf = (accountId: number, former: boolean) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly emailKey: string }>`
      SELECT email_key FROM account_emails WHERE account_id = ${accountId} AND (former_at IS NOT NULL) = ${former} ORDER BY email_key`
  ).pipe(Effect.map((rows) => rows.map((r) => r.emailKey)))

/** The users of a CSV folder's users.csv, edited and written back (keeping any extra columns). */
export const editUsers = (dir: string, edit: (users: Array<Record<string, string>>) => Array<Record<string, string>>) => {
  const file = NodePath.join(dir, "users.csv")
  const [head] = Fs.readFileSync(file, "utf8").split("\n")
  const header = head!.split(",")
  writeCsv(dir, "users", edit(readRows(dir, "users")), header)
}
