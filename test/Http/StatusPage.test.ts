import { HttpClient, HttpClientRequest, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it, layer } from "@effect/vitest"
import { afterAll, expect } from "vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import { ProcessEnv } from "../../src/Config/Environment.ts"
import { emptyRunCounts } from "../../src/Domain/RunCounts.ts"
import type { LocalDate } from "../../src/Domain/LocalDates.ts"
import { HttpAuth, HttpAuthConfig, sameSecret } from "../../src/Http/Auth.ts"
import { AllRoutes } from "../../src/Http/Server.ts"
import type { DistrictPage, OverviewRow } from "../../src/Http/StatusPage/Data.ts"
import { StatusPageData } from "../../src/Http/StatusPage/Data.ts"
import { districtPage, overviewPage, parseOverviewQuery, selectRows } from "../../src/Http/StatusPage/Pages.ts"
import { Freshness } from "../../src/Schedule/Freshness.ts"
import type { DistrictStatus, RunRecord } from "../../src/Store/Runs.ts"
import { eventually, freePort } from "../support/Cli.ts"
import { cliFixture, startDaemon } from "../support/CliFixture.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * The status page without a browser: hostile strings rendered as text, filter and sort, and
 * over a real server the security headers and `rosterd.http.auth` (bearer token from a file,
 * basic auth from an environment variable, probes left open).
 */

const HOSTILE = [`<script>alert(1)</script>`, `"><img src=x onerror=alert(2)>`, `' onmouseover='alert(3)`, `a\u202Egnp.exe`, `x\u2066y\u2069z`, `tab\tline\u0007`]

const status = (district: string, over: Partial<DistrictStatus> = {}): DistrictStatus => ({
  district,
  name: district,
  provider: "oneroster-csv",
  timezone: "UTC",
  lastRun: null,
  lastSuccessAt: null,
  nextRunAt: null,
  nextRun: null,
  paused: null,
  pendingHold: null,
  deferred: null,
  stale: false,
  failing: false,
  ...over
})

/** No hostile string reaches the markup as markup: what is left of each is escaped text. */
const assertInert = (html: string) => {
  assert.notInclude(html, "<script>")
  assert.notInclude(html, "<img")
  // No tag has an event handler attribute: with quoted values set aside (a `"` inside one is
  // always escaped), what is left of a tag is its name and attribute names.
  assert.notMatch(html.replace(/"[^"]*"/g, '""'), /<[^>]*\son[a-z]+=/i)
  assert.notInclude(html, "\u202E")
  assert.notInclude(html, "\u2066")
  assert.notInclude(html, "\u0007")
  assert.include(html, "&lt;script&gt;alert(1)&lt;/script&gt;")
  assert.include(html, "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;")
  assert.include(html, "&#39; onmouseover=&#39;alert(3)")
  assert.include(html, "a\\u202egnp.exe")
}

describe("status page rendering", () => {
  it("every provider-controlled string is text: district ids and names, errors, notes, pause names and reasons, source IDs", () => {
    const now = new Date("2026-12-03T12:00:00Z")
    const rows: ReadonlyArray<OverviewRow> = HOSTILE.map((h, i) => ({
      status: status(`d${i}${h}`, {
        name: h,
        failing: true,
        lastRun: { id: i + 1, status: "failed", mode: "full", startedAt: now.toISOString(), finishedAt: now.toISOString(), counts: emptyRunCounts, findings: 0, error: h },
        paused: { name: h, reason: h, until: now.toISOString() },
        deferred: { runId: 9, at: now.toISOString(), note: h }
      }),
      hold: null,
      openReviews: 0
    }))
    assertInert(overviewPage({ now, rows }, parseOverviewQuery(new URLSearchParams(`state=${encodeURIComponent(HOSTILE[0]!)}&sort="><x`))))
    const run = (id: number): RunRecord => ({
      id, districtId: "d", status: "failed", mode: "full", trigger: HOSTILE[1]!, startedAt: now, finishedAt: now, counts: null,
      sourceDescription: null, notes: HOSTILE[2]!, errorReason: null, error: HOSTILE.join(" "), findings: 1
    } as RunRecord)
    const page: DistrictPage = {
      now,
      status: rows[0]!.status,
      history: [run(2), run(1)],
      report: {
        district: HOSTILE[0]!,
        run: { id: 2, status: "failed", mode: "full", startedAt: now.toISOString(), finishedAt: null },
        findings: [{ code: HOSTILE[1]!, severity: "warning", entity: HOSTILE[2]!, count: 2, sourceIds: HOSTILE, sampleDetail: HOSTILE[0]! }],
        reviewQueue: { open: 0, ids: [] },
        masking: [],
        withoutAccount: 0
      },
      hold: {
        runId: 2, districtId: "d", state: "pending", createdAt: now, decidedBy: null, decidedAt: null, reason: null, closedByRun: null, outcome: null,
        tripped: [{ kind: HOSTILE[0]!, group: HOSTILE[1]!, rule: "deactivate_percent", count: 3, of: 4, limit: 10 }],
        counts: [{ kind: HOSTILE[3]!, action: HOSTILE[4]!, n: 3 }]
      },
      calendar: {
        from: "2026-12-03" as LocalDate,
        to: "2027-01-31" as LocalDate,
        spans: [{ key: HOSTILE[0]!, name: HOSTILE[1]!, from: "2026-12-05" as LocalDate, to: "2026-12-06" as LocalDate, reason: HOSTILE[2]!, source: "ad-hoc", startsAt: now, endsAt: now } as never]
      },
      lastError: { runId: 2, at: now, error: HOSTILE.join(" ") }
    }
    const html = districtPage(page)
    assertInert(html)
    // A hold that suspects a re-key shows its figures per kind and the pairs proposed.
    const rekeyed = districtPage({
      ...page,
      hold: { ...page.hold!, tripped: [{ kind: "users", group: "users", rule: "rekey_suspected", count: 180, of: 200, limit: 50 }] },
      report: {
        ...page.report,
        rekey: {
          runId: 2,
          state: "pending",
          kinds: [{ kind: "users", label: "users", suspected: true, active: 200, disappeared: 190, appeared: 190, matched: 180 }],
          proposed: [{ kind: "users", matchedOn: "email", n: 180 }]
        }
      }
    })
    assert.include(rekeyed, `<h2>Suspected re-key</h2>`)
    assert.include(rekeyed, `<tr data-kind="users"><td>users</td><td class="num">200</td><td class="num">190</td><td class="num">190</td><td class="num">180</td><td>yes</td></tr>`)
    assert.include(rekeyed, "180 users paired by email")
    assert.include(rekeyed, "<td>suspected re-key</td>")
    // The sample detail of a finding is never shown (only codes, counts and source IDs are).
    assert.strictEqual(html.split("&lt;script&gt;").length > 1, true)
  })

  it("filter by state, sort by a column either way; rows without a value sort last", () => {
    const at = (iso: string) => ({ id: 1, status: "succeeded" as const, mode: "full" as const, startedAt: iso, finishedAt: iso, counts: emptyRunCounts, findings: 0, error: null })
    const rows: ReadonlyArray<OverviewRow> = [
      { status: status("b", { lastRun: at("2026-12-02T00:00:00Z") }), hold: null, openReviews: 0 },
      { status: status("a", { failing: true, lastRun: { ...at("2026-12-03T00:00:00Z"), status: "failed" } }), hold: null, openReviews: 0 },
      { status: status("c"), hold: null, openReviews: 2 }
    ]
    const ids = (query: string) => selectRows(rows, parseOverviewQuery(new URLSearchParams(query))).map((r) => r.status.district)
    assert.deepStrictEqual(ids(""), ["a", "b", "c"])
    assert.deepStrictEqual(ids("state=failing"), ["a"])
    assert.deepStrictEqual(ids("state=review"), ["c"])
    assert.deepStrictEqual(ids("state=ok"), ["b", "c"])
    assert.deepStrictEqual(ids("sort=last-run"), ["b", "a", "c"])
    assert.deepStrictEqual(ids("sort=last-run&dir=desc"), ["a", "b", "c"])
    assert.deepStrictEqual(ids("sort=state"), ["a", "c", "b"])
    assert.deepStrictEqual(ids("state=bogus&sort=nope"), ["a", "b", "c"])
  })

  it("secrets compare equal only when equal, whatever their lengths", () => {
    assert.isTrue(sameSecret("s3cret-token", "s3cret-token"))
    assert.isFalse(sameSecret("s3cret-token", "s3cret-tokem"))
    assert.isFalse(sameSecret("s3cret", "s3cret-token"))
    assert.isFalse(sameSecret("", "x"))
  })

  it.effect("rosterd.http.auth refuses a file and a variable for one secret, and a user without a password", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<[string, string]>) =>
        Effect.either(Effect.withConfigProvider(HttpAuthConfig, ConfigProvider.fromMap(new Map(entries))))
      const both = yield* read([["rosterd.http.auth.bearerTokenFile", "/x"], ["rosterd.http.auth.bearerTokenEnv", "X"]])
      assert.isTrue(both._tag === "Left" && String(both.left).includes("bearerTokenFile or bearerTokenEnv"))
      const userOnly = yield* read([["rosterd.http.auth.basicUser", "ops"]])
      assert.isTrue(userOnly._tag === "Left" && String(userOnly.left).includes("go together"))
      const none = yield* read([])
      assert.isTrue(none._tag === "Right")
    }))
})

const secrets = tempDir("rosterd-http-auth-")
const tokenFile = NodePath.join(secrets.dir, "token")
const TOKEN = "bearer-Zq8m-3f1c"
const PASSWORD = "basic-pw-7e2a"

const settings = new Map([
  ["rosterd.http.auth.bearerTokenFile", tokenFile],
  ["rosterd.http.auth.basicUser", "ops"],
  ["rosterd.http.auth.basicPasswordEnv", "STATUS_PAGE_TEST_PASSWORD"]
])

/** The daemon's routes (AllRoutes) on a real server, with both kinds of authentication configured. */
const AuthServer = Layer.unwrapEffect(Effect.map(AllRoutes, (routes) => HttpServer.serve(routes))).pipe(
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.provideMerge(Layer.mergeAll(StatusPageData.Default, Freshness.Default).pipe(Layer.provide(ConfigFile.fromDocument({})))),
  Layer.provideMerge(HttpAuth.Default.pipe(Layer.provide(Layer.succeed(ProcessEnv, { STATUS_PAGE_TEST_PASSWORD: PASSWORD })))),
  Layer.provideMerge(SyncTestLayer),
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(settings)))
)

const get = (path: string, authorization?: string) =>
  HttpClient.execute(HttpClientRequest.get(path).pipe(authorization === undefined ? (r) => r : HttpClientRequest.setHeader("authorization", authorization))).pipe(
    Effect.flatMap((r) => Effect.map(r.text, (text) => ({ status: r.status, headers: r.headers, text }))),
    Effect.scoped
  )

layer(AuthServer, { timeout: "60 seconds", excludeTestServices: true })("status page over HTTP", (it) => {
  Fs.writeFileSync(tokenFile, `${TOKEN}\n`)
  afterAll(() => secrets.remove())
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`

  it.effect("with rosterd.http.auth: the page, /status and /metrics need the token or the password; the probes stay open", () =>
    Effect.gen(function*() {
      for (const path of ["/", "/districts/x", "/status", "/metrics"]) {
        const anonymous = yield* get(path)
        assert.strictEqual(anonymous.status, 401, path)
        assert.match(anonymous.headers["www-authenticate"] ?? "", /^Bearer realm="rosterd", Basic realm="rosterd"/)
        assert.notInclude(anonymous.text, TOKEN)
        assert.strictEqual((yield* get(path, `Bearer ${TOKEN}x`)).status, 401, path)
        assert.strictEqual((yield* get(path, basic("ops", `${PASSWORD}x`))).status, 401, path)
        assert.strictEqual((yield* get(path, basic("root", PASSWORD))).status, 401, path)
      }
      assert.strictEqual((yield* get("/", `Bearer ${TOKEN}`)).status, 200)
      assert.strictEqual((yield* get("/", `bearer ${TOKEN}`)).status, 200)
      assert.strictEqual((yield* get("/status", basic("ops", PASSWORD))).status, 200)
      assert.strictEqual((yield* get("/districts/nope", basic("ops", PASSWORD))).status, 404)
      assert.strictEqual((yield* get("/healthz")).status, 200)
      assert.notStrictEqual((yield* get("/readyz")).status, 401)
      // Rotated in its file: the next request reads the new token.
      Fs.writeFileSync(tokenFile, "rotated-token\n")
      assert.strictEqual((yield* get("/", `Bearer ${TOKEN}`)).status, 401)
      assert.strictEqual((yield* get("/", "Bearer rotated-token")).status, 200)
      // Gone: 503, and nothing in the answer about where or what.
      Fs.rmSync(tokenFile)
      const gone = yield* get("/", "Bearer rotated-token")
      assert.strictEqual(gone.status, 503)
      assert.notInclude(gone.text, tokenFile)
      Fs.writeFileSync(tokenFile, `${TOKEN}\n`)
    }))

  it.effect("the pages carry the security headers: a CSP without script or unhashed style, no framing, no sniffing, no referrer", () =>
    Effect.gen(function*() {
      for (const path of ["/", "/?state=failing&sort=changes&dir=desc", "/districts/nope"]) {
        const { headers, text } = yield* get(path, `Bearer ${TOKEN}`)
        const csp = headers["content-security-policy"] ?? ""
        assert.match(csp, /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'$/, path)
        assert.notInclude(csp, "unsafe-inline")
        assert.strictEqual(headers["x-content-type-options"], "nosniff")
        assert.strictEqual(headers["x-frame-options"], "DENY")
        assert.strictEqual(headers["referrer-policy"], "no-referrer")
        assert.strictEqual(headers["cache-control"], "no-store")
        assert.match(headers["content-type"] ?? "", /^text\/html; charset=utf-8/)
        assert.notInclude(text, "<script")
        assert.notMatch(text, /\sstyle="/)
        assert.strictEqual(text.match(/<style>/g)?.length, 1)
      }
    }))
})

describe("the daemon serves the status page", () => {
  const cli = cliFixture()

  it("on its HTTP port, behind rosterd.http.auth from the environment, with the page's headers", async () => {
    writeSmallDistrict(NodePath.join(cli.work.dir, "small"), "daemon-page.example")
    expect((await cli.rosterd(["district", "add", "small", "--provider", "oneroster-csv", "--path", NodePath.join(cli.work.dir, "small"), "--name", "Small <b>Town</b>"])).code).toBe(0)
    const port = await freePort()
    const token = "daemon-page-token-5b1d"
    const daemon = startDaemon({
      ...cli.env,
      ROSTERD_DATA_DIR: cli.work.dir,
      ROSTERD_HTTP_PORT: String(port),
      ROSTERD_HTTP_AUTH_BEARER_TOKEN_ENV: "STATUS_PAGE_DAEMON_TOKEN",
      STATUS_PAGE_DAEMON_TOKEN: token
    })
    try {
      const base = `http://127.0.0.1:${port}`
      await eventually(async () => ((await fetch(`${base}/healthz`).catch(() => undefined))?.ok ? true : undefined), 60_000)
      expect((await fetch(`${base}/`)).status).toBe(401)
      expect((await fetch(`${base}/status`)).status).toBe(401)
      const page = await fetch(`${base}/`, { headers: { authorization: `Bearer ${token}` } })
      expect(page.status).toBe(200)
      expect(page.headers.get("content-security-policy")).toMatch(/^default-src 'none'; style-src 'sha256-/)
      expect(page.headers.get("x-frame-options")).toBe("DENY")
      const html = await page.text()
      expect(html).toContain(`data-district="small"`)
      expect(html).toContain("Small &lt;b&gt;Town&lt;/b&gt;")
      const district = await fetch(`${base}/districts/small`, { headers: { authorization: `Bearer ${token}` } })
      expect(district.status).toBe(200)
    } finally {
      expect(await daemon.stop()).toBe(0)
    }
  }, 120_000)
})
