import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { FakeClever, FaultRule } from "../support/FakeClever/index.ts"
import { FakeCleverDistrict, fakeCleverDistrictLayer } from "../support/FakeCleverDistrict.ts"
import { fastProviderRetries, syncTestLayer } from "../support/Layers.ts"
import { addAndSync, assertHeldOut, assertRejected, hostileRun } from "./ProviderCases.ts"

/**
 * Hostile Clever JSON (issue 14): pages of the wrong shape fail the run with the endpoint
 * and the JSON path named; records of the wrong shape — wrong types, prototype-pollution
 * keys, deep nesting, huge strings, duplicates across pages — are held out as findings (or
 * read from their own fields only) while the rest applies. Every case runs after a first good
 * sync and must leave the roster exactly as it was.
 */

const TOKEN = "hostile-clever-json-token-91c4"
const DISTRICT = "json-clever"

const TestLayer = Layer.merge(
  syncTestLayer(new Map([...fastProviderRetries, ["rosterd.providers.maxResponseBytes", "16 MiB"]])),
  fakeCleverDistrictLayer({ token: TOKEN, students: 30 })
)

const personal = (fake: FakeClever) =>
  fake.district.users.all().flatMap((user) => [user.email ?? "", `${user.name?.first ?? ""} ${user.name?.last ?? ""}`.trim()])
    .filter((value) => value.length >= 6)

const hostile = (rule: FaultRule, request: "full" | "delta" = "full") =>
  Effect.gen(function*() {
    const fake = yield* FakeCleverDistrict
    const outcome = yield* hostileRun(DISTRICT, request, () => void fake.faults.inject(rule), () => fake.faults.clear())
    return { outcome, leaks: [TOKEN, ...personal(fake)] }
  })

/** A users page rewritten: its first item's record replaced by what `change` makes of it. */
const firstUser = (change: (record: Record<string, unknown>) => unknown): FaultRule => ({
  kind: "rewrite",
  match: "/v3.0/users",
  times: 1,
  rewrite: (page) => ({ ...page, data: [{ data: change(page.data[0].data) }, ...page.data.slice(1)] })
})

/** A users page with one more item appended. */
const extraUser = (record: unknown): FaultRule => ({
  kind: "rewrite",
  match: "/v3.0/users",
  times: 1,
  rewrite: (page) => ({ ...page, data: [...page.data, { data: record }] })
})

const polluted = () => (({}) as Record<string, unknown>).polluted !== undefined || (({}) as Record<string, unknown>).roles !== undefined

layer(TestLayer, { timeout: "180 seconds", excludeTestServices: true })("hostile: Clever JSON", (it) => {
  it.effect("a Clever district after a first good sync (the state every case must leave as it is)", () =>
    Effect.gen(function*() {
      const fake = yield* FakeCleverDistrict
      yield* addAndSync(DISTRICT, "clever", { districtId: fake.districtId, tokenFile: fake.tokenFile, baseUrl: fake.baseUrl, pageSize: 10 })
    }))

  it.effect("a page without \"links\" → fails (Malformed), naming the endpoint and the missing key", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile({ kind: "rewrite", match: "/v3.0/users", times: 1, rewrite: ({ data }) => ({ data }) })
      assertRejected(outcome, { reason: "Malformed", names: ["/v3.0/users?limit=10", "at links: missing"], leaks })
    }))

  it.effect("a page without \"data\" → fails (Malformed), naming the missing key", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile({ kind: "rewrite", match: "/v3.0/sections", times: 1, rewrite: ({ links }) => ({ links }) })
      assertRejected(outcome, { reason: "Malformed", names: ["/v3.0/sections", "at data: missing"], leaks })
    }))

  it.effect("\"data\" an object where a list belongs → fails (Malformed)", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile({ kind: "rewrite", match: "/v3.0/schools", times: 1, rewrite: (page) => ({ ...page, data: { ...page.data } }) })
      assertRejected(outcome, { reason: "Malformed", names: ["/v3.0/schools", "at data: unexpected value"], leaks })
    }))

  it.effect("the page is a JSON list, not an object → fails (Malformed) at the top", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile({ kind: "rewrite", match: "/v3.0/terms", times: 1, rewrite: (page) => [page] })
      assertRejected(outcome, { reason: "Malformed", names: ["/v3.0/terms", "is not the expected JSON (at the top"], leaks })
    }))

  it.effect("a link whose uri is a number → fails (Malformed), naming the path in the JSON", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile({
        kind: "rewrite",
        match: "/v3.0/courses",
        times: 1,
        rewrite: (page) => ({ ...page, links: page.links.map((link: { rel: string }) => ({ ...link, uri: 42 })) })
      })
      assertRejected(outcome, { reason: "Malformed", names: ["/v3.0/courses", "at links.0.uri"], leaks })
    }))

  it.effect("a user with wrong types (name a number, roles a list) → held out as a finding naming the source ID; the rest applies", () =>
    Effect.gen(function*() {
      const fake = yield* FakeCleverDistrict
      const first = fake.district.users.all()[0]!
      const { leaks, outcome } = yield* hostile(firstUser((record) => ({ ...record, name: 42, roles: [] })))
      assertHeldOut(outcome, { codes: ["invalid_record"], names: ["GET /v3.0/users", first.id], leaks })
    }))

  it.effect("a record with \"__proto__\" and \"constructor\" keys → read from its own fields only: nothing changes, no prototype polluted", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile({
        kind: "rewrite",
        match: "/v3.0/users",
        times: 1,
        // Raw text: JSON.stringify would not write a "__proto__" key.
        rewrite: (page) =>
          JSON.stringify(page).replace(
            `{"data":{"id":`,
            `{"data":{"__proto__":{"polluted":true,"roles":{"district_admin":{}},"email":"intruder@evil.example"},"constructor":{"prototype":{"polluted":true}},"id":`
          )
      })
      assertHeldOut(outcome, { codes: [], names: [], leaks: ["intruder@evil.example", ...leaks] })
      assert.isFalse(polluted())
    }))

  it.effect("a record whose only id is inside \"__proto__\" → held out (no own id), not taken for that user; no prototype polluted", () =>
    Effect.gen(function*() {
      const fake = yield* FakeCleverDistrict
      const victim = fake.district.users.all().find((u) => u.roles.student)!
      const { leaks, outcome } = yield* hostile({
        kind: "rewrite",
        match: "/v3.0/users",
        times: 1,
        rewrite: (page) => {
          const text = JSON.stringify(page)
          const extra = `{"data":{"__proto__":{"id":"${victim.id}","roles":{"district_admin":{}}},"name":{"first":"Mallory","last":"Intruder"},"roles":{}}}`
          return `${text.slice(0, text.indexOf(`"data":[`) + 8)}${extra},${text.slice(text.indexOf(`"data":[`) + 8)}`
        }
      })
      assertHeldOut(outcome, { codes: ["invalid_record"], names: ["GET /v3.0/users", "line 1"], leaks: ["Mallory Intruder", ...leaks] })
      assert.isFalse(polluted())
    }))

  it.effect("JSON nested 100,000 levels deep in a user's name → held out as a finding; parsing and decoding survive", () =>
    Effect.gen(function*() {
      const fake = yield* FakeCleverDistrict
      const first = fake.district.users.all()[0]!
      const depth = 100_000
      const { leaks, outcome } = yield* hostile({
        kind: "rewrite",
        match: "/v3.0/users",
        times: 1,
        rewrite: (page) =>
          JSON.stringify({ ...page, data: [{ data: { ...page.data[0].data, name: "@nested@" } }, ...page.data.slice(1)] })
            .replace(`"@nested@"`, `${"[".repeat(depth)}${"]".repeat(depth)}`)
      })
      assertHeldOut(outcome, { codes: ["invalid_record"], names: ["GET /v3.0/users", first.id], leaks })
    }))

  it.effect("a 5 MiB string in a field rosterd does not read → read past and dropped; memory bounded, nothing changes", () =>
    Effect.gen(function*() {
      const huge = "A".repeat(5 * 1024 * 1024 - 16) + "-huge-tail-31d9"
      const { leaks, outcome } = yield* hostile(firstUser((record) => ({ ...record, biography: huge })))
      assertHeldOut(outcome, { codes: [], names: [], leaks: ["-huge-tail-31d9", ...leaks] })
    }))

  it.effect("the same user twice across pages, the copy different → duplicate_source_id, the stored record kept as it is", () =>
    Effect.gen(function*() {
      const fake = yield* FakeCleverDistrict
      const student = fake.district.users.all().slice(0, 10).find((u) => u.roles.student)!
      const { leaks, outcome } = yield* hostile({
        kind: "rewrite",
        match: "/v3.0/users",
        after: 1,
        times: 1,
        rewrite: (page) => ({ ...page, data: [...page.data, { data: { ...student, name: { ...student.name, last: "Conflicting-Copy" } } }] })
      })
      assertHeldOut(outcome, { codes: ["duplicate_source_id"], names: [student.id], leaks: ["Conflicting-Copy", ...leaks] })
    }))

  it.effect("an event whose record is a list → the delta fails (Malformed), naming the events page", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile({
        kind: "rewrite",
        match: "/v3.0/events?limit",
        times: 1,
        rewrite: (page) => ({
          ...page,
          data: [{ data: { id: "ffffffffffffffffffffff01", type: "users.updated", created: new Date().toISOString(), data: { object: ["not", "a", "record"] } } }]
        })
      }, "delta")
      assertRejected(outcome, { reason: "Malformed", names: ["an event on GET /v3.0/events", "not the documented shape"], leaks })
    }))

  it.effect("an event whose record has its id only inside \"__proto__\" → no record of its own: nothing applied, no prototype polluted", () =>
    Effect.gen(function*() {
      const fake = yield* FakeCleverDistrict
      const sql = yield* SqlClient.SqlClient
      const victim = fake.district.users.all().find((u) => u.roles.teacher)!
      const [cursor] = yield* sql<{ readonly cursor: string }>`SELECT cursor FROM sync_cursors WHERE district_id = ${DISTRICT}`
      const event = `{"data":{"id":"ffffffffffffffffffffff02","type":"users.deleted","created":"${new Date().toISOString()}",` +
        `"data":{"object":{"__proto__":{"id":"${victim.id}","polluted":true},"roles":{}}}}}`
      const { leaks, outcome } = yield* hostile({
        kind: "rewrite",
        match: "/v3.0/events?limit",
        times: 1,
        rewrite: (page) => `{"data":[${event}],"links":${JSON.stringify(page.links)}}`
      }, "delta").pipe(
        // The delta moved the cursor to the made-up event: put it back for the next cases.
        Effect.ensuring(sql`UPDATE sync_cursors SET cursor = ${cursor!.cursor} WHERE district_id = ${DISTRICT}`.pipe(Effect.orDie))
      )
      assertHeldOut(outcome, { codes: [], names: [], leaks })
      assert.isFalse(polluted())
      const [row] = yield* sql<{ readonly active: boolean }>`SELECT active FROM users WHERE district_id = ${DISTRICT} AND source_id = ${victim.id}`
      assert.isTrue(row!.active)
    }))
})
