import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as NodePath from "node:path"
import { afterAll, beforeAll } from "vitest"
import { cliFixture } from "../support/CliFixture.ts"

/**
 * `rosterd notify test` and `rosterd notify list`, in process: the test event reaches the
 * hook at once and the contacts' mail is queued; the list shows the hook's URL without its
 * query and the address's domain only.
 */

const bodies: Array<string> = []
const server = Http.createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (c: Buffer) => chunks.push(c))
  req.on("end", () => {
    bodies.push(Buffer.concat(chunks).toString("utf8"))
    res.writeHead(204).end()
  })
})
let port = 0
beforeAll(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => {
  port = (server.address() as { port: number }).port
  resolve()
})))
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

describe("rosterd notify", () => {
  const cli = cliFixture()
  const config = () => {
    const secret = NodePath.join(cli.work.dir, "hook-secret")
    Fs.writeFileSync(secret, "cli-hook-secret-value\n")
    const path = NodePath.join(cli.work.dir, "notify.yaml")
    Fs.writeFileSync(path, [
      "rosterd:",
      "  logLevel: warning",
      "  notify:",
      "    email: [ops@example.org]",
      "    webhooks:",
      `      - url: "http://127.0.0.1:${port}/hook?token=receiver-token"`,
      `        secretFile: ${secret}`,
      ""
    ].join("\n"))
    return { ROSTERD_CONFIG: path }
  }

  it("notify test calls the hook now and queues the mail; notify list shows no body, secret, query or address", async () => {
    const env = config()
    const sent = await cli.rosterd(["notify", "test", "--event", "run.failed"], env)
    assert.strictEqual(sent.code, 0, sent.stderr)
    assert.match(sent.stdout, /1 e-mail queued .*webhooks: 1 delivered/)
    assert.strictEqual(bodies.length, 1)
    assert.deepInclude(JSON.parse(bodies[0]!), { event: "run.failed", district: null, run: null, summary: { test: true } })
    const listed = await cli.rosterd(["notify", "list"], env)
    assert.strictEqual(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, /webhook\s+run\.failed/)
    assert.match(listed.stdout, /email\s+run\.failed/)
    assert.include(listed.stdout, `http://127.0.0.1:${port}/hook`)
    for (const hidden of ["receiver-token", "cli-hook-secret-value", "ops@", "\"summary\""]) assert.notInclude(listed.stdout, hidden)
    const json = await cli.rosterd(["notify", "list", "--json"], env)
    const rows = JSON.parse(json.stdout) as Array<{ readonly channel: string; readonly state: string; readonly target: string }>
    assert.deepStrictEqual(rows.map((r) => [r.channel, r.state]).sort(), [["email", "pending"], ["webhook", "sent"]])
    assert.notInclude(json.stdout, "receiver-token")
  })

  it("without contacts, notify test says so", async () => {
    const result = await cli.rosterd(["notify", "test"])
    assert.strictEqual(result.code, 0, result.stderr)
    assert.match(result.stdout, /nobody is notified/)
  })
})
