import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { deriveKeyId } from "../../src/Secrets/Cipher.ts"
import { writeConfig } from "../support/Cli.ts"
import { cliFixture, rosterd, rosterdWithInput } from "../support/CliFixture.ts"
import { type FakeClever, fromOneRosterCsv, start } from "../support/FakeClever/index.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * Stored credentials from the operator's side (the CLI in process, the fake Clever API): a
 * Clever district whose token lives only in the database, a key rotation, a wrong key, and
 * configs holding secrets in plain text refused.
 */

describe("stored provider credentials", () => {
  const TOKEN = "tok-stored-5c0ffee1d"
  const cli = cliFixture()
  const work = cli.work
  const file = (name: string, content: string) => {
    const path = NodePath.join(work.dir, name)
    Fs.writeFileSync(path, content)
    return path
  }
  const key = (name: string) => {
    const bytes = randomBytes(32)
    return { path: file(name, bytes.toString("base64")), id: deriveKeyId(bytes) }
  }
  const keyA = key("a.key")
  const keyB = key("b.key")
  let fake: FakeClever
  let cleverDistrict: string
  let base: Record<string, string>
  const withKeyA = () => ({ ...base, ROSTERD_SECRETS_KEY_FILE: keyA.path })
  const outputs: Array<string> = []
  const run = async (args: ReadonlyArray<string>, env: Record<string, string>) => {
    const result = await rosterd(args, env)
    outputs.push(result.stdout, result.stderr)
    return result
  }
  const keyIds = async () => {
    const client = new pg.Client({ connectionString: cli.db.url })
    await client.connect()
    try {
      return (await client.query<{ key_id: string }>("SELECT key_id FROM district_credentials ORDER BY district_id, name")).rows.map((r) => r.key_id)
    } finally {
      await client.end()
    }
  }

  beforeAll(async () => {
    writeSmallDistrict(NodePath.join(work.dir, "csv"))
    const district = await fromOneRosterCsv(NodePath.join(work.dir, "csv"))
    cleverDistrict = district.districts.first()!.id
    fake = await start(district, { token: TOKEN })
    base = cli.env
  })
  afterAll(() => fake.close())

  it("a Clever district syncs with its token only in the database, encrypted", async () => {
    // Registered with a placeholder stored at once: the settings keep no file name.
    const added = await run(
      ["district", "add", "enc", "--provider", "clever", "--district-id", cleverDistrict, "--token-file", file("placeholder", "placeholder-token"), "--base-url", fake.baseUrl, "--store-credentials"],
      withKeyA()
    )
    expect(added.code).toBe(0)
    const set = await run(["district", "set-credentials", "enc", "--token-file", file("token", `${TOKEN}\n`), "--by", "ops"], withKeyA())
    expect(set.code).toBe(0)
    expect(set.stdout).toContain(`stored token of district enc, encrypted with key ${keyA.id}`)
    Fs.rmSync(NodePath.join(work.dir, "token"))
    Fs.rmSync(NodePath.join(work.dir, "placeholder"))

    const shown = JSON.parse((await run(["district", "show", "enc", "--json"], withKeyA())).stdout)
    expect(shown.settings).toEqual({ districtId: cleverDistrict, baseUrl: fake.baseUrl })
    expect(shown.storedCredentials).toMatchObject([{ name: "token", keyId: keyA.id }])

    const sync = await run(["sync", "enc"], withKeyA())
    expect(sync.stderr).toBe("")
    expect(sync.code).toBe(0)
    expect(sync.stdout).toMatch(/enc: run \d+ succeeded \(full\)/)

    const audit = JSON.parse((await run(["audit", "--district", "enc", "--json"], withKeyA())).stdout)
    expect(audit.map((e: { action: string }) => e.action)).toEqual(["district.set-credentials", "district.add"])
    expect(audit[0]).toMatchObject({ actor: "ops", details: { credentials: ["token"], keyId: keyA.id } })
    expect(audit[1].details.storedCredentials).toEqual(["token"])
  }, 180_000)

  it("usage: values never from argv; only the provider's names; no key, no storing", async () => {
    const wrongName = await run(["district", "set-credentials", "enc", "--bearer-file", file("b", "x")], withKeyA())
    expect(wrongName.code).toBe(1)
    expect(wrongName.stderr).toContain("a clever district takes --token-file or --token-stdin")
    const asArgument = await run(["district", "set-credentials", "enc", "--token", TOKEN], withKeyA())
    expect(asArgument.code).toBe(2)
    const noKey = await run(["district", "set-credentials", "enc", "--token-file", file("t2", TOKEN)], base)
    expect(noKey.code).toBe(1)
    expect(noKey.stderr).toContain("cannot store credential token of district enc: no credentials key is configured")
  }, 120_000)

  it("rotate-key moves every credential to the new key; the sync works with and then without the old key", async () => {
    const rotating = { ...base, ROSTERD_SECRETS_KEY_FILE: keyB.path, ROSTERD_SECRETS_PREVIOUS_KEY_FILES: keyA.path }
    const status = JSON.parse((await run(["secrets", "status", "--json"], rotating)).stdout)
    expect(status).toMatchObject({ keyId: keyB.id, previousKeyIds: [keyA.id], byKey: [{ keyId: keyA.id, count: 1, configured: true }] })
    expect((await run(["sync", "enc", "--full"], rotating)).code).toBe(0)

    const rotated = await run(["secrets", "rotate-key", "--by", "ops"], rotating)
    expect(rotated.code).toBe(0)
    expect(rotated.stdout).toContain(`re-encrypted 1 credential under key ${keyB.id} (1 from key ${keyA.id})`)
    expect(await keyIds()).toEqual([keyB.id])
    const [entry] = JSON.parse((await run(["audit", "--limit", "1", "--json"], rotating)).stdout)
    expect(entry).toMatchObject({ action: "secrets.rotate-key", actor: "ops", details: { keyId: keyB.id, reencrypted: 1 } })

    const onlyNew = { ...base, ROSTERD_SECRETS_KEY_FILE: keyB.path }
    const sync = await run(["sync", "enc", "--full"], onlyNew)
    expect(sync.code).toBe(0)

    // A token given on standard input replaces the stored one; still under key B.
    const viaStdin = await rosterdWithInput(["district", "set-credentials", "enc", "--token-stdin"], onlyNew, `${TOKEN}\n`)
    outputs.push(viaStdin.stdout, viaStdin.stderr)
    expect(viaStdin.code).toBe(0)
    expect((await run(["sync", "enc", "--full"], onlyNew)).code).toBe(0)
  }, 180_000)

  it("a wrong key or no key fails the sync with a clear one-line reason, never the token", async () => {
    const wrong = await run(["sync", "enc"], withKeyA())
    expect(wrong.code).toBe(1)
    expect(wrong.stderr.trim().split("\n")).toHaveLength(1)
    expect(wrong.stderr).toContain(`credential token of district enc is stored with key ${keyB.id}, which is not configured`)
    const none = await run(["sync", "enc"], base)
    expect(none.code).toBe(1)
    expect(none.stderr).toContain(`cannot read credential token of district enc (it is stored with key ${keyB.id}): no credentials key is configured`)
    const [lastRun] = JSON.parse((await run(["runs", "enc", "--json"], base)).stdout)
    expect(lastRun.status).toBe("failed")
    outputs.push(JSON.stringify(lastRun))
    for (const output of outputs) expect(output).not.toContain(TOKEN)
  }, 120_000)

  it("a config with a district's literal token or a literal SMTP password is refused", async () => {
    const token = writeConfig(work.dir, "districts:\n  - id: cl\n    provider: clever\n    token: abc123\n")
    const refused = await rosterd(["district", "list"], { ...base, ROSTERD_CONFIG: token })
    expect(refused.code).toBe(1)
    expect(refused.stderr.trim()).toMatch(/^rosterd: districts\[cl\]\.token holds a secret in plain text/)
    expect(refused.stderr).toContain("rosterd district set-credentials cl")
    expect(refused.stderr).not.toContain("abc123")

    const smtp = writeConfig(work.dir, "rosterd:\n  mail:\n    smtp:\n      host: smtp.example.org\n      user: rosterd\n      password: hunter2\n")
    const refusedSmtp = await rosterd(["status"], { ...base, ROSTERD_CONFIG: smtp })
    expect(refusedSmtp.code).toBe(1)
    expect(refusedSmtp.stderr).toContain("rosterd.mail.smtp.password holds a secret in plain text")
    expect(refusedSmtp.stderr).toContain("passwordFile")
    expect(refusedSmtp.stderr).not.toContain("hunter2")
  })
})
