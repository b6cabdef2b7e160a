import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture } from "../../support/CliFixture.ts"
import { type FakeOneRoster, fromOneRosterCsv, start } from "../../support/FakeOneRoster/index.ts"
import { writeSmallDistrict } from "../../support/Fixtures.ts"

/** An Infinite Campus-style district (OAuth 2.0 client credentials) from the operator's side: add, doctor, sync, stored credentials. */
describe("rosterd with an OAuth 2.0 OneRoster district", () => {
  const ID = "campus-client-7"
  const SECRET = "campus-secret-0987654321"
  const cli = cliFixture({ secretsKey: true, env: { IC_SECRET: SECRET } })
  let fake: FakeOneRoster
  const file = (name: string, value: string) => {
    const path = NodePath.join(cli.work.dir, name)
    Fs.writeFileSync(path, value)
    return path
  }

  beforeAll(async () => {
    writeSmallDistrict(NodePath.join(cli.work.dir, "csv"))
    fake = await start(await fromOneRosterCsv(NodePath.join(cli.work.dir, "csv")), {
      oauth2: { clientId: ID, clientSecret: SECRET, clientAuth: "either", scope: "roster-core.readonly" }
    })
  })
  afterAll(() => fake.close())

  it("district add checks the OAuth 2.0 flags and names the one missing", async () => {
    const base = ["district", "add", "ic-bad", "--provider", "oneroster-rest", "--base-url", fake.baseUrl]
    const noUrl = await cli.rosterd([...base, "--auth", "oauth2", "--client-id-file", file("id0", ID), "--client-secret-env", "IC_SECRET"])
    expect(noUrl.code).toBe(1)
    expect(noUrl.stderr).toContain("--token-url is required for --auth oauth2")
    const noSecret = await cli.rosterd([...base, "--token-url", fake.tokenUrl, "--client-id-file", file("id1", ID)])
    expect(noSecret.code).toBe(1)
    expect(noSecret.stderr).toContain("OAuth 2.0 needs the client id")
    const badUrl = await cli.rosterd([...base, "--token-url", "ftp://x", "--client-id-file", file("id2", ID), "--client-secret-env", "IC_SECRET"])
    expect(badUrl.code).toBe(1)
    expect(badUrl.stderr).toContain("--token-url: must be an http(s) URL")
    const mixed = await cli.rosterd([...base, "--token-url", fake.tokenUrl, "--key-file", file("k", "x"), "--client-id-env", "X", "--client-secret-env", "Y"])
    expect(mixed.code).toBe(1)
    const wrongAuth = await cli.rosterd([...base, "--auth", "bearer", "--key-file", file("k2", "x"), "--secret-env", "Y"])
    expect(wrongAuth.code).toBe(1)
    expect(wrongAuth.stderr).toContain("--auth bearer does not match")
  })

  it("adds a district with --auth oauth2 (secret from a variable, in the body), probes it with doctor, syncs it; never shows the secret or a token", async () => {
    const added = await cli.rosterd([
      "district", "add", "ic", "--provider", "oneroster-rest", "--base-url", fake.baseUrl, "--auth", "oauth2",
      "--token-url", fake.tokenUrl, "--client-id-file", file("id", ID), "--client-secret-env", "IC_SECRET",
      "--scope", "roster-core.readonly", "--token-auth", "body"
    ])
    expect(added.stderr).toBe("")
    expect(added.code).toBe(0)
    const shown = JSON.parse((await cli.rosterd(["district", "show", "ic", "--json"])).stdout)
    expect(shown.settings).toMatchObject({ auth: "oauth2", tokenUrl: fake.tokenUrl, clientSecretEnv: "IC_SECRET", scope: "roster-core.readonly", tokenAuth: "body" })

    const doctor = await cli.rosterd(["doctor", "--json"])
    const row = JSON.parse(doctor.stdout).find((r: { check: string }) => r.check === "district ic")
    expect(row).toMatchObject({ status: "ok" })
    expect(row.detail).toContain("OAuth 2.0 client credentials")

    const sync = await cli.rosterd(["sync", "ic"])
    expect(sync.code).toBe(0)
    const [status] = JSON.parse((await cli.rosterd(["status", "ic", "--json"])).stdout)
    expect(status.lastRun).toMatchObject({ status: "succeeded", mode: "full" })
    expect(status.lastRun.counts.users.created).toBe(5)
    const runs = await cli.rosterd(["runs", "ic", "--json"])

    const outputs = [added, doctor, sync, runs].flatMap((r) => [r.stdout, r.stderr]).join("\n") + JSON.stringify(shown) + JSON.stringify(status)
    expect(outputs).not.toContain(SECRET)
    // Tokens are random: look for the shape the fake gives them (32 base64url characters) next to "Bearer" or "access_token".
    expect(outputs).not.toMatch(/Bearer [A-Za-z0-9_-]{20,}|access_token/)
  })

  it("an OAuth 2.0 district speaking OneRoster 1.2 (--oneroster-version 1.2) syncs through /ims/oneroster/rostering/v1p2", async () => {
    const added = await cli.rosterd([
      "district", "add", "ic12", "--provider", "oneroster-rest", "--base-url", fake.baseUrl, "--oneroster-version", "1.2",
      "--token-url", fake.tokenUrl, "--client-id-file", file("id12", ID), "--client-secret-env", "IC_SECRET", "--scope", "roster-core.readonly"
    ])
    expect(added.stderr).toBe("")
    expect(added.code).toBe(0)
    expect(JSON.parse((await cli.rosterd(["district", "show", "ic12", "--json"])).stdout).settings.version).toBe("1.2")
    fake.requests.length = 0
    const sync = await cli.rosterd(["sync", "ic12"])
    expect(sync.code).toBe(0)
    expect(fake.requests.filter((r) => r.path.startsWith("/ims/")).every((r) => r.path.startsWith("/ims/oneroster/rostering/v1p2/"))).toBe(true)
    const bad = await cli.rosterd(["district", "add", "ic13", "--provider", "oneroster-rest", "--base-url", fake.baseUrl, "--oneroster-version", "1.3", "--bearer-env", "X"])
    expect(bad.code).not.toBe(0)
  })

  it("--store-credentials keeps the client id and secret encrypted; a wrong stored secret fails with one clear line", async () => {
    const added = await cli.rosterd([
      "district", "add", "ic-stored", "--provider", "oneroster-rest", "--base-url", fake.baseUrl,
      "--token-url", fake.tokenUrl, "--client-id-file", file("id3", ID), "--client-secret-file", file("secret3", SECRET),
      "--scope", "roster-core.readonly", "--store-credentials"
    ])
    expect(added.code).toBe(0)
    const shown = JSON.parse((await cli.rosterd(["district", "show", "ic-stored", "--json"])).stdout)
    expect(shown.settings.clientSecretFile).toBeUndefined()
    expect(shown.storedCredentials.map((c: { name: string }) => c.name).sort()).toEqual(["key", "secret"])
    expect((await cli.rosterd(["sync", "ic-stored"])).code).toBe(0)

    const stored = await cli.rosterd(["district", "set-credentials", "ic-stored", "--key-file", file("id4", ID), "--secret-file", file("secret4", "a-wrong-one")])
    expect(stored.code).toBe(0)
    const failed = await cli.rosterd(["sync", "ic-stored"])
    expect(failed.code).toBe(1)
    expect(failed.stderr.trim()).toMatch(/^rosterd: the OAuth 2.0 token endpoint \/oauth2\/token refused the client credentials \(HTTP 401 invalid_client\)/)
    expect(failed.stderr + failed.stdout).not.toContain("a-wrong-one")
  })
})
