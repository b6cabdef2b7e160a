import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { type FakeClever, fromOneRosterCsv, start } from "../support/FakeClever/index.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/** A Clever district from the operator's side: `district add --provider clever`, `sync`, `status`. */
describe("rosterd with a Clever district", () => {
  const TOKEN = "tok-cli-0123456789"
  const cli = cliFixture({ env: { CLEVER_TOKEN: TOKEN } })
  const work = cli.work
  let fake: FakeClever
  let cleverDistrict: string

  beforeAll(async () => {
    writeSmallDistrict(NodePath.join(work.dir, "csv"))
    const district = await fromOneRosterCsv(NodePath.join(work.dir, "csv"))
    cleverDistrict = district.districts.first()!.id
    fake = await start(district, { token: TOKEN })
    Fs.writeFileSync(NodePath.join(work.dir, "token"), TOKEN)
  })
  afterAll(() => fake.close())

  it("adds, syncs and reports a Clever district; the token never shows", async () => {
    const added = await rosterd(
      ["district", "add", "clever-demo", "--provider", "clever", "--district-id", cleverDistrict, "--token-file", NodePath.join(work.dir, "token"), "--base-url", fake.baseUrl],
      cli.env
    )
    expect(added.code).toBe(0)
    const bad = await rosterd(["district", "add", "clever-bad", "--provider", "clever", "--district-id", cleverDistrict], cli.env)
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain("--token-file or --token-env")
    // The flags are checked with the schema each run decodes the settings with; a refusal names the flag.
    const token = ["--token-file", NodePath.join(work.dir, "token")]
    const refusals = await Promise.all([
      rosterd(["district", "add", "clever-bad", "--provider", "clever", ...token], cli.env),
      rosterd(["district", "add", "clever-bad", "--provider", "clever", "--district-id", cleverDistrict, ...token, "--page-size", "0"], cli.env),
      rosterd(["district", "add", "clever-bad", "--provider", "clever", "--district-id", cleverDistrict, ...token, "--base-url", "ftp://example.org"], cli.env)
    ])
    expect(refusals.map((r) => r.code)).toEqual([1, 1, 1])
    expect(refusals[0]!.stderr).toContain("--district-id is required for a clever district")
    expect(refusals[1]!.stderr).toMatch(/--page-size: .*between 1 and 10000/)
    expect(refusals[2]!.stderr).toContain("--base-url: must be an http(s) URL")
    expect((await rosterd(["district", "show", "clever-bad"], cli.env)).code).toBe(1)

    const sync = await rosterd(["sync", "clever-demo"], cli.env)
    expect(sync.code).toBe(0)
    expect(sync.stdout).toMatch(/clever-demo: run \d+ succeeded \(full\)/)

    const [status] = JSON.parse((await rosterd(["status", "--json"], cli.env)).stdout)
    expect(status).toMatchObject({ district: "clever-demo", provider: "clever", lastRun: { status: "succeeded", mode: "full" } })
    expect(status.lastRun.counts.users).toEqual({ created: 5, updated: 0, deactivated: 0, unchanged: 0 })
    expect(status.lastRun.counts.classes.created).toBe(2)
    expect(status.lastRun.counts.enrollments.created).toBe(5)

    // From the environment instead of a file; a delta with nothing new.
    const viaEnv = await rosterd(["district", "add", "clever-env", "--provider", "clever", "--district-id", cleverDistrict, "--token-env", "CLEVER_TOKEN", "--base-url", fake.baseUrl], cli.env)
    expect(viaEnv.code).toBe(0)
    expect((await rosterd(["sync", "clever-env"], cli.env)).code).toBe(0)
    const delta = JSON.parse((await rosterd(["sync", "clever-env", "--delta", "--json"], cli.env)).stdout)
    expect(delta.mode).toBe("delta")

    const shown = (await rosterd(["district", "show", "clever-demo", "--json"], cli.env)).stdout
    for (const output of [added.stdout, sync.stdout, sync.stderr, shown, JSON.stringify(status), JSON.stringify(delta)]) {
      expect(output).not.toContain(TOKEN)
    }
  })

  it("a revoked token fails the sync with a clear one-line reason", async () => {
    Fs.writeFileSync(NodePath.join(work.dir, "token"), "revoked-token")
    const sync = await rosterd(["sync", "clever-demo"], cli.env)
    expect(sync.code).toBe(1)
    expect(sync.stderr.trim()).toMatch(/^rosterd: Clever refused the credentials \(HTTP 401\)/)
    expect(sync.stderr).not.toContain("revoked-token")
  })
})
