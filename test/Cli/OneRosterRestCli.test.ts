import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliFixture, rosterd } from "../support/CliFixture.ts"
import { type FakeOneRoster, fromOneRosterCsv, start } from "../support/FakeOneRoster/index.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/** A ClassLink (OneRoster REST) district from the operator's side, signed and with a bearer token. */
describe("rosterd with a OneRoster REST district", () => {
  const KEY = "key-cli-77"
  const SECRET = "secret-cli-77"
  const BEARER = "bearer-cli-77"
  const cli = cliFixture({ env: { OR_SECRET: SECRET } })
  const work = cli.work
  let fake: FakeOneRoster
  const file = (name: string, value: string) => {
    const path = NodePath.join(work.dir, name)
    Fs.writeFileSync(path, value)
    return path
  }

  beforeAll(async () => {
    writeSmallDistrict(NodePath.join(work.dir, "csv"))
    fake = await start(await fromOneRosterCsv(NodePath.join(work.dir, "csv")), { oauth: { key: KEY, secret: SECRET }, bearer: BEARER })
  })
  afterAll(() => fake.close())

  it("adds signed and bearer districts, syncs them, reports their counts, never shows a secret", async () => {
    const signed = await rosterd(
      ["district", "add", "cl-signed", "--provider", "oneroster-rest", "--base-url", fake.baseUrl, "--key-file", file("key", KEY), "--secret-env", "OR_SECRET"],
      cli.env
    )
    expect(signed.code).toBe(0)
    const bearer = await rosterd(["district", "add", "cl-bearer", "--provider", "oneroster-rest", "--base-url", fake.baseUrl, "--bearer-file", file("bearer", BEARER)], cli.env)
    expect(bearer.code).toBe(0)
    const both = await rosterd(
      ["district", "add", "cl-both", "--provider", "oneroster-rest", "--base-url", fake.baseUrl, "--bearer-file", file("b2", BEARER), "--key-file", file("k2", KEY)],
      cli.env
    )
    expect(both.code).toBe(1)
    expect(both.stderr).toContain("give either")

    const outputs: Array<string> = []
    for (const id of ["cl-signed", "cl-bearer"]) {
      const sync = await rosterd(["sync", id], cli.env)
      expect(sync.code).toBe(0)
      outputs.push(sync.stdout, sync.stderr)
    }
    const status = JSON.parse((await rosterd(["status", "--json"], cli.env)).stdout)
    expect(status.map((s: { district: string }) => s.district)).toEqual(["cl-bearer", "cl-signed"])
    for (const s of status) {
      expect(s).toMatchObject({ provider: "oneroster-rest", lastRun: { status: "succeeded", mode: "full" } })
      expect(s.lastRun.counts.users.created).toBe(5)
      expect(s.lastRun.counts.enrollments.created).toBe(5)
    }
    outputs.push(JSON.stringify(status), (await rosterd(["district", "show", "cl-signed", "--json"], cli.env)).stdout)
    for (const output of outputs) for (const secret of [SECRET, BEARER, KEY]) expect(output).not.toContain(secret)
  })

  it("a wrong secret is refused by the server: one clear line, exit 1, nothing applied", async () => {
    const failed = await rosterd(["sync", "cl-signed"], { ...cli.env, OR_SECRET: "wrong" })
    expect(failed.code).toBe(1)
    expect(failed.stderr.trim()).toMatch(/^rosterd: the OneRoster server refused the credentials \(HTTP 401\)/)
    const [status] = JSON.parse((await rosterd(["status", "cl-signed", "--json"], cli.env)).stdout)
    expect(status.lastRun.status).toBe("failed")
    expect(status.lastSuccessAt).not.toBeNull()
  })
})
