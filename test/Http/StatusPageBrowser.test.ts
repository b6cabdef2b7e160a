import chromium from "@sparticuz/chromium"
import { HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import puppeteer, { type Browser, type Page } from "puppeteer-core"
import { afterAll } from "vitest"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { totalChanges } from "../../src/Domain/RunCounts.ts"
import { addDays } from "../../src/Schedule/PauseSpans.ts"
import { HttpRoutes } from "../../src/Http/Server.ts"
import { StatusPageData } from "../../src/Http/StatusPage/Data.ts"
import { StatusPageRoutes } from "../../src/Http/StatusPage/Routes.ts"
import { Holds } from "../../src/Reconcile/Holds.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { localDateAt } from "../../src/Schedule/Calendar.ts"
import { Freshness } from "../../src/Schedule/Freshness.ts"
import { Pauses } from "../../src/Schedule/Pauses.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { Runs } from "../../src/Store/Runs.ts"
import { asOwner } from "../support/Database.ts"
import { generated, readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"
import { canaryPerson, writeCanaryDistrict } from "../support/CanaryDistrict.ts"

/**
 * The status page in a real browser: headless Chromium (@sparticuz/chromium, shipped inside
 * the npm package) driven by puppeteer-core, one browser for the file. Districts are synced
 * for real — a healthy one, one held by the safety gate, one that fails, a deferred one, a
 * paused one, one never synced and stale, and one whose every personal field is a canary —
 * and what the browser renders is checked against the store. Screenshots land in the test's
 * temp dir (and, with ROSTERD_STATUS_SCREENSHOT=<file>, the README's).
 */

const CANARY = {
  given: "Pgivenqz31",
  family: "Pfamilyqz32",
  middle: "Pmiddleqz33",
  emailLocal: "pemailqz34",
  emailDomain: "canary-page.example",
  username: "puserqz35",
  userId: "puseridqz36",
  identifier: "pidentqz37",
  phone: "+1-555-0123-3838",
  password: "ppasswordqz39",
  birthDate: "2013-05-17"
}

/** A district name an operator (or a provider's org name copied by one) could give: markup, quotes, an RTL override. */
const HOSTILE_NAME = `Canary <script>window.__pwned = 1</script> "quoted" 'single' \u202Eevil`
const HOSTILE_REASON = `<img src=x onerror="window.__pwned=2"> winter \u202Ebreak`

/** s-3 has no class: a finding (student_without_class) the district page lists by source ID. */
const writeDistrict = (dir: string) =>
  writeCanaryDistrict(dir, CANARY, {
    extraUsers: [canaryPerson(CANARY, "s-3", "student", 4)],
    demographics: [{ sourcedId: "s-1", birthDate: CANARY.birthDate }]
  })

class BrowserTag extends Context.Tag("test/Browser")<BrowserTag, { readonly browser: Browser; readonly dir: string }>() {}

/** One headless Chromium for the file, with a fresh profile, no network of its own. */
const BrowserLive = Layer.scoped(
  BrowserTag,
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = Fs.mkdtempSync(NodePath.join(tempDir("rosterd-page-").dir, "run-"))
      const browser = await puppeteer.launch({
        executablePath: await chromium.executablePath(),
        headless: true,
        defaultViewport: { width: 1360, height: 900 },
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          `--user-data-dir=${NodePath.join(dir, "profile")}`
        ]
      })
      return { browser, dir }
    }),
    ({ browser, dir }) =>
      Effect.promise(async () => {
        await browser.close()
        Fs.rmSync(NodePath.dirname(dir), { recursive: true, force: true })
      })
  )
)

const ServerLayer = HttpServer.serve(HttpRouter.concat(HttpRoutes, StatusPageRoutes)).pipe(
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.provideMerge(Layer.mergeAll(StatusPageData.Default, Freshness.Default, Pauses.Default).pipe(Layer.provide(ConfigFile.fromDocument({})))),
  Layer.provideMerge(SyncTestLayer),
  Layer.merge(BrowserLive)
)

const baseUrl = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address as HttpServer.TcpAddress
  return `http://127.0.0.1:${address.port}`
})

/** A new tab that records what the page itself complains of (a CSP refusal shows there) and whether any script ran. */
const openPage = (path: string) =>
  Effect.gen(function*() {
    const { browser } = yield* BrowserTag
    const url = (yield* baseUrl) + path
    return yield* Effect.promise(async () => {
      const page = await browser.newPage()
      const complaints: Array<string> = []
      page.on("console", (message) => complaints.push(message.text()))
      page.on("pageerror", (error) => complaints.push(String(error)))
      const response = await page.goto(url, { waitUntil: "load" })
      return { page, complaints, status: response?.status() ?? 0, headers: response?.headers() ?? {} }
    })
  })

const closePage = (page: Page) => Effect.promise(() => page.close())

const screenshot = (page: Page, name: string) =>
  Effect.gen(function*() {
    const { dir } = yield* BrowserTag
    const file = NodePath.join(dir, `${name}.png`)
    yield* Effect.promise(() => page.screenshot({ path: file as `${string}.png`, fullPage: true }))
    assert.isAbove(Fs.statSync(file).size, 10_000, `${name}.png`)
    return file
  })

interface RenderedRow {
  readonly district: string
  readonly states: string
  readonly provider: string
  readonly lastRun: string
  readonly changes: string
  readonly hold: string
  readonly reviews: string
  readonly pausedUntil: string
  readonly nextRun: string
}

const renderedRows = (page: Page) =>
  Effect.promise(() =>
    page.$$eval("#districts tbody tr[data-district]", (rows) =>
      rows.map((row) => {
        const cell = (col: string) => (row.querySelector(`[data-col="${col}"]`)?.textContent ?? "").replace(/\s+/g, " ").trim()
        return {
          district: row.getAttribute("data-district") ?? "",
          states: row.getAttribute("data-states") ?? "",
          provider: cell("provider"),
          lastRun: cell("last-run"),
          changes: cell("changes"),
          hold: cell("hold"),
          reviews: cell("reviews"),
          pausedUntil: cell("paused-until"),
          nextRun: cell("next-run")
        }
      })
    )
  ) as Effect.Effect<ReadonlyArray<RenderedRow>>

const addCsvDistrict = (id: string, path: string, name = id, timezone = "UTC") =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name, provider: "oneroster-csv", timezone, settings: { path } }))

const syncNow = (id: string) => Effect.flatMap(Sync, (sync) => sync.run(id, { request: "auto", trigger: "test", dryRun: false }))

layer(ServerLayer, { timeout: "240 seconds", excludeTestServices: true })("the status page in a browser", (it) => {
  const work = tempDir("rosterd-status-page-")
  afterAll(() => work.remove())
  const dirs = {
    healthy: NodePath.join(work.dir, "healthy"),
    reviewed: NodePath.join(work.dir, "reviewed"),
    held: NodePath.join(work.dir, "held"),
    canary: NodePath.join(work.dir, "canary")
  }

  it.effect("the districts table shows each district as the store has it: real syncs, a held run, a failure, a deferred run, a pause, a stale district", () =>
    Effect.gen(function*() {
      // healthy: two real syncs, the second with one student fewer and one renamed class.
      writeSmallDistrict(dirs.healthy, "healthy.example")
      yield* addCsvDistrict("healthy", dirs.healthy, "Healthy Unified", "America/Chicago")
      assert.strictEqual((yield* syncNow("healthy")).status, "succeeded")
      writeCsv(dirs.healthy, "users", readRows(dirs.healthy, "users").filter((u) => u["sourcedId"] !== "s-3"))
      writeCsv(dirs.healthy, "enrollments", readRows(dirs.healthy, "enrollments").filter((e) => e["userSourcedId"] !== "s-3"))
      // reviewed: the same addresses as healthy's people: account linking opens review items.
      writeSmallDistrict(dirs.reviewed, "healthy.example")
      yield* addCsvDistrict("reviewed", dirs.reviewed, "Reviewed County")
      assert.strictEqual((yield* syncNow("reviewed")).status, "succeeded")
      // held: 30 of 200 students gone at once trips the 10 % gate.
      generated(dirs.held, 200, "held")
      writeCsv(dirs.held, "users", readRows(dirs.held, "users").map((u) => ({ ...u, email: u["email"]!.replace("@", ".held@") })))
      yield* addCsvDistrict("held", dirs.held, "Held Heights", "America/New_York")
      assert.strictEqual((yield* syncNow("held")).status, "succeeded")
      const users = readRows(dirs.held, "users")
      const gone = new Set(users.filter((u) => u["role"] === "student").slice(0, 30).map((u) => u["sourcedId"]))
      writeCsv(dirs.held, "users", users.filter((u) => !gone.has(u["sourcedId"])))
      const held = yield* syncNow("held")
      assert.strictEqual(held.status, "held")
      assert.strictEqual((yield* syncNow("healthy")).status, "succeeded")
      // failing: its folder does not exist.
      yield* addCsvDistrict("failing", NodePath.join(work.dir, "nowhere"), "Failing Falls")
      const failed = yield* syncNow("failing").pipe(Effect.either)
      assert.isTrue(failed._tag === "Left" || failed.right.status === "failed")
      // deferred: a run the source was not ready for, recorded through the run repository as a sync records one.
      writeSmallDistrict(NodePath.join(work.dir, "deferred"), "deferred.example")
      yield* addCsvDistrict("deferred", NodePath.join(work.dir, "deferred"), "Deferred Dale")
      const runs = yield* Runs
      const deferredRun = yield* runs.start("deferred", { mode: "full", trigger: "test" })
      yield* runs.finish(deferredRun.id, "deferred", { notes: "users.csv changed 3 s ago: waiting for the set to settle" })
      // paused: an ad-hoc pause from today, with a hostile reason.
      writeSmallDistrict(NodePath.join(work.dir, "paused"), "paused.example")
      yield* addCsvDistrict("paused", NodePath.join(work.dir, "paused"), "Paused Plains", "Europe/Berlin")
      assert.strictEqual((yield* syncNow("paused")).status, "succeeded")
      const today = localDateAt(new Date(), "Europe/Berlin")
      yield* Effect.flatMap(Pauses, (pauses) => pauses.add({ district: "paused", from: today, until: addDays(today, 9), reason: HOSTILE_REASON, by: "test" }))
      // stale: never synced, registered three days ago.
      yield* addCsvDistrict("stale", NodePath.join(work.dir, "nowhere-stale"), "Stale Springs")
      yield* asOwner(`UPDATE districts SET created_at = now() - interval '3 days' WHERE id = 'stale'`)
      // canary: every personal field a canary, a hostile name.
      writeDistrict(dirs.canary)
      yield* addCsvDistrict("canary", dirs.canary, HOSTILE_NAME)
      assert.notStrictEqual((yield* syncNow("canary")).status, "failed")

      const { complaints, headers, page, status } = yield* openPage("/")
      assert.strictEqual(status, 200)
      assert.match(headers["content-security-policy"] ?? "", /default-src 'none'.*frame-ancestors 'none'/)
      assert.strictEqual(headers["x-content-type-options"], "nosniff")
      assert.strictEqual(headers["x-frame-options"], "DENY")
      const rows = yield* renderedRows(page)
      const statuses = yield* Effect.flatMap(Freshness, (f) => f.status())
      const pending = yield* Effect.flatMap(Holds, (h) => h.list({}))
      const sql = yield* SqlClient.SqlClient
      const reviews = new Map(
        (yield* sql<{ readonly districtId: string; readonly n: number }>`SELECT district_id, count(*)::int AS n FROM account_reviews WHERE state = 'open' GROUP BY district_id`)
          .map((r) => [r.districtId, r.n])
      )
      assert.deepStrictEqual(rows.map((r) => r.district), statuses.map((s) => s.district))
      for (const s of statuses) {
        const row = rows.find((r) => r.district === s.district)!
        const states = row.states.split(" ")
        assert.strictEqual(row.provider, s.provider, s.district)
        assert.strictEqual(states.includes("failing"), s.failing, `${s.district} failing`)
        assert.strictEqual(states.includes("stale"), s.stale, `${s.district} stale`)
        assert.strictEqual(states.includes("held"), s.pendingHold !== null, `${s.district} held`)
        assert.strictEqual(states.includes("paused"), s.paused !== null, `${s.district} paused`)
        assert.strictEqual(states.includes("deferred"), s.deferred !== null, `${s.district} deferred`)
        assert.strictEqual(row.changes, s.lastRun === null ? "" : String(totalChanges(s.lastRun.counts)), `${s.district} changes`)
        if (s.lastRun !== null) assert.include(row.lastRun, s.lastRun.status, s.district)
        assert.strictEqual(row.reviews, String(reviews.get(s.district) ?? "") , `${s.district} reviews`)
        const hold = pending.find((h) => h.districtId === s.district)
        if (hold === undefined) assert.strictEqual(row.hold, "", s.district)
        else for (const c of hold.counts) assert.include(row.hold, `${c.n} ${c.kind} ${c.action}`, s.district)
      }
      const byId = new Map(rows.map((r) => [r.district, r.states.split(" ")]))
      assert.includeMembers(byId.get("held")!, ["held"])
      assert.includeMembers(byId.get("failing")!, ["failing"])
      assert.includeMembers(byId.get("paused")!, ["paused"])
      assert.includeMembers(byId.get("deferred")!, ["deferred"])
      assert.includeMembers(byId.get("stale")!, ["stale"])
      assert.includeMembers(byId.get("reviewed")!, ["review"])
      assert.deepStrictEqual(byId.get("healthy"), ["ok"])
      assert.isAbove(reviews.get("reviewed") ?? 0, 0)
      // The paused district's pause ends in its own zone: a local time with the zone's abbreviation.
      assert.match(rows.find((r) => r.district === "paused")!.pausedUntil, /^\d{4}-\d\d-\d\d 00:00 GMT\+1|CES?T/)
      // The hashed style sheet applied (the CSP refused nothing) and no script ran.
      const header = yield* Effect.promise(() => page.$eval("header", (el) => getComputedStyle(el).backgroundColor))
      assert.strictEqual(header, "rgb(29, 36, 48)")
      assert.deepStrictEqual(complaints, [])
      assert.isUndefined(yield* Effect.promise(() => page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)))
      yield* screenshot(page, "districts")
      yield* closePage(page)
      // The README's picture: the districts worst first.
      const readme = process.env["ROSTERD_STATUS_SCREENSHOT"]
      if (readme !== undefined) {
        const sorted = yield* openPage("/?sort=state")
        yield* Effect.promise(() => sorted.page.setViewport({ width: 1720, height: 640 }))
        yield* Effect.promise(() => sorted.page.screenshot({ path: readme as `${string}.png` }))
        yield* closePage(sorted.page)
      }
    }))

  it.effect("filter and sort are links: the failing filter shows only failing districts, a header sorts", () =>
    Effect.gen(function*() {
      const { page } = yield* openPage("/")
      yield* Effect.promise(() => Promise.all([page.waitForNavigation(), page.click(`a[data-filter="failing"]`)]))
      assert.match(page.url(), /\?state=failing$/)
      const failing = yield* renderedRows(page)
      const statuses = yield* Effect.flatMap(Freshness, (f) => f.status())
      assert.deepStrictEqual(failing.map((r) => r.district), statuses.filter((s) => s.failing).map((s) => s.district))
      assert.isAbove(failing.length, 0)
      // Back to all, sorted by changes, most first (a second click on the header turns the order).
      yield* Effect.promise(() => Promise.all([page.waitForNavigation(), page.click(`a[data-filter="all"]`)]))
      yield* Effect.promise(() => Promise.all([page.waitForNavigation(), page.click(`th[data-sort="changes"] a`)]))
      yield* Effect.promise(() => Promise.all([page.waitForNavigation(), page.click(`th[data-sort="changes"] a`)]))
      assert.match(page.url(), /sort=changes&dir=desc/)
      const sorted = yield* renderedRows(page)
      const withRuns = statuses.filter((s) => s.lastRun !== null)
      const expected = withRuns.slice().sort((a, b) => totalChanges(b.lastRun!.counts) - totalChanges(a.lastRun!.counts) || a.district.localeCompare(b.district))
      assert.deepStrictEqual(sorted.slice(0, expected.length).map((r) => r.district), expected.map((s) => s.district))
      assert.deepStrictEqual(sorted.slice(expected.length).map((r) => r.lastRun), statuses.filter((s) => s.lastRun === null).map(() => "never"))
      yield* closePage(page)
    }))

  it.effect("a district page: charts of its runs, findings by rule, the pending hold, the pause calendar, its last error", () =>
    Effect.gen(function*() {
      const { complaints, page } = yield* openPage("/")
      yield* Effect.promise(() => Promise.all([page.waitForNavigation(), page.click(`tr[data-district="held"] a.district`)]))
      assert.match(page.url(), /\/districts\/held$/)
      const history = yield* Effect.flatMap(Runs, (runs) => runs.list("held", 30))
      const charted = history.filter((r) => r.status !== "dry-run")
      const bars = yield* Effect.promise(() =>
        page.$$eval("#changes-chart rect.bar", (rects) => rects.map((r) => ({ run: r.getAttribute("data-run"), kind: r.getAttribute("class"), n: r.getAttribute("data-count") })))
      )
      assert.strictEqual(bars.length, charted.length * 3)
      for (const run of charted) {
        const created = Object.values(run.counts!).reduce((n, c) => n + c.created, 0)
        assert.deepInclude(bars, { run: String(run.id), kind: "bar created", n: String(created) })
      }
      assert.strictEqual(yield* Effect.promise(() => page.$$eval("#duration-chart rect.bar", (r) => r.length)), charted.filter((r) => r.finishedAt !== null).length)
      // The hold: what tripped and the held counts per kind and action, as Holds has them.
      const [hold] = yield* Effect.flatMap(Holds, (h) => h.list({ districtId: "held" }))
      const tripped = yield* Effect.promise(() => page.$$eval("#tripped tbody tr", (rows) => rows.map((r) => Array.from(r.querySelectorAll("td"), (td) => td.textContent))))
      assert.deepStrictEqual(tripped, hold!.tripped.map((t) => [t.kind, t.group, t.rule, String(t.count), String(t.of), `${t.limit}%`]))
      const held = yield* Effect.promise(() => page.$$eval("#held tbody tr", (rows) => rows.map((r) => Array.from(r.querySelectorAll("td"), (td) => td.textContent))))
      assert.deepStrictEqual(held, hold!.counts.map((c) => [c.kind, c.action, String(c.n)]))
      yield* screenshot(page, "district-held")
      yield* closePage(page)

      // The paused district's calendar marks the days of its pauses: its ten ad-hoc days, and
      // the holiday windows of the default calendar that fall within the 60 days.
      const paused = yield* openPage("/districts/paused")
      const days = yield* Effect.promise(() => paused.page.$$eval(".calendar .day.paused", (cells) => cells.map((c) => c.getAttribute("data-date"))))
      const today = localDateAt(new Date(), "Europe/Berlin")
      const district = yield* Effect.flatMap(RosterStore, (store) => store.getDistrict("paused"))
      const spans = yield* Effect.flatMap(Pauses, (pauses) => pauses.windowsFor(district, today, addDays(today, 59)))
      const expected = Array.from({ length: 60 }, (_, i) => addDays(today, i)).filter((d) => spans.some((s) => s.from <= d && d <= s.to))
      assert.deepStrictEqual(days, expected)
      assert.includeMembers(days, Array.from({ length: 10 }, (_, i) => addDays(today, i)))
      assert.strictEqual(yield* Effect.promise(() => paused.page.$$eval(".calendar .day[data-date]", (c) => c.length)), 60)
      // The hostile reason is shown as text, its override visible as \u202e.
      const reason = yield* Effect.promise(() => paused.page.$eval("#pauses tbody tr td:last-child", (td) => td.textContent))
      assert.strictEqual(reason, HOSTILE_REASON.replace("\u202E", "\\u202e"))
      yield* closePage(paused.page)

      // The failing district names its provider and its last error, as the run recorded it.
      const failing = yield* openPage("/districts/failing")
      const [run] = yield* Effect.flatMap(Runs, (runs) => runs.list("failing", 1))
      assert.strictEqual(yield* Effect.promise(() => failing.page.$eval("#last-error", (e) => e.textContent)), run!.error)
      assert.strictEqual(yield* Effect.promise(() => failing.page.$eval("[data-provider]", (e) => e.textContent)), "oneroster-csv")
      yield* closePage(failing.page)

      // The canary district's findings by rule, with source IDs.
      const canary = yield* openPage("/districts/canary")
      const codes = yield* Effect.promise(() => canary.page.$$eval("#findings-table tbody tr", (rows) => rows.map((r) => r.getAttribute("data-code"))))
      assert.include(codes, "student_without_class")
      assert.include(yield* Effect.promise(() => canary.page.$eval(`tr[data-code="student_without_class"]`, (r) => r.textContent)), "s-3")
      assert.deepStrictEqual([...complaints, ...canary.complaints], [])
      yield* closePage(canary.page)

      const missing = yield* openPage("/districts/nope")
      assert.strictEqual(missing.status, 404)
      yield* closePage(missing.page)
    }))

  it.effect("no page carries personal data, and no provider-controlled string runs as markup", () =>
    Effect.gen(function*() {
      const statuses = yield* Effect.flatMap(Freshness, (f) => f.status())
      const paths = ["/", "/?sort=state", ...statuses.map((s) => `/districts/${encodeURIComponent(s.district)}`)]
      for (const path of paths) {
        const { complaints, page } = yield* openPage(path)
        const html = yield* Effect.promise(() => page.content())
        for (const canary of Object.values(CANARY)) assert.notInclude(html, canary, `${path}: ${canary}`)
        assert.notInclude(html, "<script", path)
        assert.notInclude(html, "<img", path)
        assert.isUndefined(yield* Effect.promise(() => page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)), path)
        assert.deepStrictEqual(complaints, [], path)
        yield* closePage(page)
      }
      // The hostile name reads as written, its override made visible.
      const { page } = yield* openPage("/districts/canary")
      const title = yield* Effect.promise(() => page.$eval("h1", (h) => h.textContent))
      assert.strictEqual(title, `canary · ${HOSTILE_NAME.replace("\u202E", "\\u202e")}`)
      yield* screenshot(page, "district-canary")
      yield* closePage(page)
    }))
})
