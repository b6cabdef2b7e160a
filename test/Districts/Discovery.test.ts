import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import { Discovery } from "../../src/Districts/Discovery.ts"
import { pgClientLayer } from "../../src/Store/Sql.ts"
import { cliFixture } from "../support/CliFixture.ts"
import { type FakeClever, fromOneRosterCsv, start } from "../support/FakeClever/index.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * New districts found and announced (src/Districts/Discovery.ts) against the fake Clever's
 * token list: `districts discover` marks registered districts, `district add
 * --from-discovery` stores the token encrypted and syncs with it, the daemon's check
 * announces a new district once across two replicas, and a registered district whose token
 * disappears is announced, paused (nothing deactivated) and resumed when it comes back.
 */
describe("discovering Clever districts", () => {
  const CLIENT_ID = "app-client-id"
  const CLIENT_SECRET = "app-client-secret-0123"
  const NEW_TOKEN = "tok-discovered-0123456789"
  const cli = cliFixture({ secretsKey: true })
  let fake: FakeClever
  let cleverDistrict: string
  let client: pg.Client
  let env: Record<string, string>

  beforeAll(async () => {
    writeSmallDistrict(NodePath.join(cli.work.dir, "csv"))
    const district = await fromOneRosterCsv(NodePath.join(cli.work.dir, "csv"))
    cleverDistrict = district.districts.first()!.id
    fake = await start(district, {
      token: NEW_TOKEN,
      app: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, tokens: [{ id: "auth-1", district: cleverDistrict, accessToken: NEW_TOKEN }, { id: "auth-2", district: "5f0000000000000000000002", accessToken: "tok-other" }] }
    })
    const secretFile = NodePath.join(cli.work.dir, "clever-client-secret")
    Fs.writeFileSync(secretFile, `${CLIENT_SECRET}\n`)
    env = { ROSTERD_CLEVER_CLIENT_ID: CLIENT_ID, ROSTERD_CLEVER_CLIENT_SECRET_FILE: secretFile, ROSTERD_CLEVER_OAUTH_URL: fake.baseUrl }
    client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
  })
  afterAll(async () => {
    await client?.end()
    await fake?.close()
  })

  /** A replica's Discovery over the fixture's database. */
  const check = () => withDiscovery((d) => d.check())
  const withDiscovery = <A, E>(use: (d: Discovery) => Effect.Effect<A, E>) =>
    Effect.runPromise(Effect.flatMap(Discovery, use).pipe(
      Effect.provide(Discovery.Default.pipe(
        Layer.provide(ConfigFile.fromDocument({})),
        Layer.provide(pgClientLayer({ url: Redacted.make(cli.db.url) })),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([
          ["rosterd.clever.clientId", CLIENT_ID],
          ["rosterd.clever.clientSecretFile", env["ROSTERD_CLEVER_CLIENT_SECRET_FILE"]!],
          ["rosterd.clever.oauthUrl", fake.baseUrl]
        ]))))
      ))
    ))

  const rows = async <A>(text: string, params: ReadonlyArray<unknown> = []) => (await client.query(text, [...params])).rows as Array<A>

  it("discover lists the authorised districts; add --from-discovery stores the token encrypted and syncs with it", async () => {
    const listed = await cli.rosterd(["districts", "discover", "--json"], env)
    expect(listed.code, listed.stderr).toBe(0)
    expect(JSON.parse(listed.stdout).map((d: { cleverDistrict: string; registered: string | null }) => [d.cleverDistrict, d.registered]))
      .toEqual([[cleverDistrict, null], ["5f0000000000000000000002", null]])
    expect(listed.stdout).not.toContain(NEW_TOKEN)

    const added = await cli.rosterd(["district", "add", "found", "--provider", "clever", "--from-discovery", cleverDistrict, "--base-url", fake.baseUrl], env)
    expect(added.code, added.stderr).toBe(0)
    const [settings] = await rows<{ settings: Record<string, unknown> }>(`SELECT settings FROM districts WHERE id = 'found'`)
    expect(settings!.settings).toEqual({ districtId: cleverDistrict, baseUrl: fake.baseUrl })
    const stored = await rows<{ name: string }>(`SELECT name FROM district_credentials WHERE district_id = 'found'`)
    expect(stored.map((s) => s.name)).toEqual(["token"])
    const dump = await rows<{ text: string }>(`SELECT string_agg(to_jsonb(c)::text, '') AS text FROM district_credentials c`)
    expect(dump[0]!.text).not.toContain(NEW_TOKEN)
    const sync = await cli.rosterd(["sync", "found"], env)
    expect(sync.code, sync.stderr).toBe(0)

    const table = await cli.rosterd(["districts", "discover"], env)
    expect(table.stdout).toMatch(new RegExp(`${cleverDistrict}\\s+found`))
    expect(table.stdout).toContain("--from-discovery 5f0000000000000000000002")
    const unknown = await cli.rosterd(["district", "add", "nope", "--provider", "clever", "--from-discovery", "5f00000000000000000000ff"], env)
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/has not authorised the app/)
    const wrong = await cli.rosterd(["districts", "discover"], { ...env, ROSTERD_CLEVER_CLIENT_SECRET_FILE: NodePath.join(cli.work.dir, "csv", "users.csv") })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/refused the app's client id and secret \(401\)/)
    const none = await cli.rosterd(["districts", "discover"])
    expect(none.code).toBe(1)
    expect(none.stderr).toMatch(/set rosterd\.clever\.clientId/)
  })

  it("the check announces a new district once across two replicas; a registered one that leaves is paused, not deactivated, and resumes", async () => {
    const [a, b] = await Promise.all([check(), check()])
    expect(a.connected + b.connected).toBe(1) // the unregistered one; "found" is registered
    await check()
    const connected = await rows<{ occurrence: string }>(`SELECT occurrence FROM notifications WHERE event = 'district.connected'`)
    expect(connected.map((c) => c.occurrence)).toEqual(["connected:clever:5f0000000000000000000002:1"])

    const active = async () => (await rows<{ n: number }>(`SELECT count(*)::int AS n FROM users WHERE district_id = 'found' AND active`))[0]!.n
    const before = await active()
    const kept = fake.appTokens.splice(0, 1)
    const gone = await check()
    expect(gone.disconnected).toBe(1)
    const disconnected = await rows<{ districtId: string }>(`SELECT district_id AS "districtId" FROM notifications WHERE event = 'district.disconnected'`)
    expect(disconnected.map((d) => d.districtId)).toEqual(["found"])
    const paused = await cli.rosterd(["status", "found", "--json"], env)
    const status = JSON.parse(paused.stdout)
    expect((Array.isArray(status) ? status[0] : status).paused.reason).toMatch(/disconnected/)
    expect(await active()).toBe(before)
    expect((await check()).disconnected).toBe(0)

    fake.appTokens.unshift(...kept)
    const back = await check()
    expect(back.reconnected).toBe(1)
    const openPauses = async () => (await rows<{ n: number }>(`SELECT count(*)::int AS n FROM pauses WHERE district_id = 'found' AND ended_at IS NULL`))[0]!.n
    expect(await openPauses()).toBe(0)

    // A token refused to the end of the daemon's retries (401): the same, announced once; the list showing it resumes it.
    await withDiscovery((d) => d.markDisconnected("found"))
    await withDiscovery((d) => d.markDisconnected("found"))
    expect(await openPauses()).toBe(1)
    const refused = await rows<{ summary: Record<string, unknown> }>(`SELECT summary FROM notifications WHERE event = 'district.disconnected' ORDER BY id`)
    expect(refused.map((r) => r.summary["why"] ?? null)).toEqual([null, "token refused (401)"])
    expect((await check()).reconnected).toBe(1)
    expect(await openPauses()).toBe(0)
  })
})
