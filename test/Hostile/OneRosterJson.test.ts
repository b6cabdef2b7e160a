import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { OneRosterFaultRule } from "../support/FakeOneRoster/index.ts"
import { fastProviderRetries, syncTestLayer } from "../support/Layers.ts"
import { addAndSync, assertHeldOut, assertRejected, HostileOneRoster, hostileOneRosterLayer, hostileRun, oneRosterPersonal } from "./ProviderCases.ts"

/**
 * Hostile OneRoster 1.1 JSON (issue 14): pages of the wrong shape fail the run with the
 * endpoint and the JSON path named; records of the wrong shape — wrong types, things that are
 * not records, prototype-pollution keys, deep nesting, duplicates across pages, references
 * of the wrong type — are held out as findings (or read from their own fields only) while the
 * rest applies. Every case runs after a first good sync and must leave the roster as it was.
 */

const DISTRICT = "json-oneroster"
const USERS = "/ims/oneroster/v1p1/users"
const ENROLLMENTS = "/ims/oneroster/v1p1/enrollments"

const TestLayer = Layer.merge(syncTestLayer(fastProviderRetries), hostileOneRosterLayer(30))

const hostile = (rule: OneRosterFaultRule) =>
  Effect.gen(function*() {
    const fake = yield* HostileOneRoster
    const outcome = yield* hostileRun(DISTRICT, "full", () => void fake.faults.inject(rule), () => fake.faults.clear())
    return { outcome, leaks: [fake.key, fake.secret, ...oneRosterPersonal(fake)] }
  })

/** The first users page rewritten by `change` (the page object `{ users: [...] }`). */
const usersPage = (change: (page: { users: Array<Record<string, unknown>> }) => unknown, after = 0): OneRosterFaultRule => ({
  kind: "rewrite",
  match: USERS,
  after,
  times: 1,
  rewrite: change
})

const polluted = () => (({}) as Record<string, unknown>).polluted !== undefined || (({}) as Record<string, unknown>).sourcedId !== undefined

layer(TestLayer, { timeout: "180 seconds", excludeTestServices: true })("hostile: OneRoster JSON", (it) => {
  it.effect("a OneRoster district after a first good sync (the state every case must leave as it is)", () =>
    Effect.gen(function*() {
      const fake = yield* HostileOneRoster
      yield* addAndSync(DISTRICT, "oneroster-rest", { baseUrl: fake.baseUrl, auth: "oauth1", keyFile: fake.files.key, secretFile: fake.files.secret, pageSize: 10 })
    }))

  it.effect("a page without its collection key ({}) → fails (Malformed), naming the endpoint and the key", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile(usersPage(() => ({})))
      assertRejected(outcome, { reason: "Malformed", names: [USERS, "at users: missing"], leaks })
    }))

  it.effect("the collection key holding an object, not a list → fails (Malformed)", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile(usersPage((page) => ({ users: { ...page.users } })))
      assertRejected(outcome, { reason: "Malformed", names: [USERS, "at users: unexpected value"], leaks })
    }))

  it.effect("a body that is JSON null → fails (Malformed) at the top", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile({ kind: "rewrite", match: "/ims/oneroster/v1p1/classes", times: 1, rewrite: () => "null" })
      assertRejected(outcome, { reason: "Malformed", names: ["/ims/oneroster/v1p1/classes", "(at the top"], leaks })
    }))

  it.effect("a user with wrong types (givenName a number, enabledUser \"maybe\") → held out as a finding naming the source ID", () =>
    Effect.gen(function*() {
      const fake = yield* HostileOneRoster
      const first = fake.district.table("users").ids()[0]!
      const { leaks, outcome } = yield* hostile(usersPage((page) => ({ users: [{ ...page.users[0], givenName: 42, enabledUser: "maybe" }, ...page.users.slice(1)] })))
      assertHeldOut(outcome, { codes: ["invalid_record"], names: [`GET ${USERS}`, first, "line 1"], leaks })
    }))

  it.effect("list items that are not records (null, a string, a list) → held out as findings by position; the rest applies", () =>
    Effect.gen(function*() {
      const fake = yield* HostileOneRoster
      // On the last page, which has room for them under its limit of 10.
      const users = fake.district.table("users").length
      const lastPage = Math.floor((users - 1) / 10)
      const { leaks, outcome } = yield* hostile(usersPage((page) => ({ users: [...page.users, null, "usr-not-a-record", ["a", "list"]] }), lastPage))
      assertHeldOut(outcome, { codes: ["invalid_record"], names: [`GET ${USERS}`, `line ${users + 1}`, `line ${users + 3}`], leaks: ["usr-not-a-record", ...leaks] })
    }))

  it.effect("a page longer than the limit asked (10 records and 3 more) → refused (Malformed): the offsets after it would skip records", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile(usersPage((page) => ({ users: [...page.users, null, { sourcedId: "usr-extra-1" }, { sourcedId: "usr-extra-2" }] })))
      assertRejected(outcome, { reason: "Malformed", names: [`GET ${USERS} at offset 0`, "13 records for limit=10", "does not keep to limit"], leaks })
    }))

  it.effect("a record with \"__proto__\" and \"constructor\" keys → read from its own fields only: nothing changes, no prototype polluted", () =>
    Effect.gen(function*() {
      const { leaks, outcome } = yield* hostile(usersPage((page) =>
        JSON.stringify(page).replace(
          `{"sourcedId":`,
          `{"__proto__":{"polluted":true,"role":"administrator","email":"intruder@evil.example"},"constructor":{"prototype":{"polluted":true}},"sourcedId":`
        )
      ))
      assertHeldOut(outcome, { codes: [], names: [], leaks: ["intruder@evil.example", ...leaks] })
      assert.isFalse(polluted())
    }))

  it.effect("a record whose only sourcedId is inside \"__proto__\" → held out (no own id), not taken for that user; no prototype polluted", () =>
    Effect.gen(function*() {
      const fake = yield* HostileOneRoster
      const victim = fake.district.table("users").ids()[3]!
      const users = fake.district.table("users").length
      const lastPage = Math.floor((users - 1) / 10)
      const { leaks, outcome } = yield* hostile(usersPage((page) => {
        const text = JSON.stringify(page)
        return `{"users":[{"__proto__":{"sourcedId":"${victim}","status":"tobedeleted"},"givenName":"Mallory","familyName":"Intruder","role":"student"},${text.slice(`{"users":[`.length)}`
      }, lastPage))
      assertHeldOut(outcome, { codes: ["invalid_record"], names: [`GET ${USERS}`, `line ${lastPage * 10 + 1}`], leaks: ["Mallory", ...leaks] })
      assert.isFalse(polluted())
    }))

  it.effect("JSON nested 100,000 levels deep in a user's field → held out as a finding; parsing and decoding survive", () =>
    Effect.gen(function*() {
      const fake = yield* HostileOneRoster
      const first = fake.district.table("users").ids()[0]!
      const depth = 100_000
      const { leaks, outcome } = yield* hostile(usersPage((page) =>
        JSON.stringify({ users: [{ ...page.users[0], orgs: "@nested@" }, ...page.users.slice(1)] }).replace(`"@nested@"`, `${"[".repeat(depth)}${"]".repeat(depth)}`)
      ))
      assertHeldOut(outcome, { codes: ["invalid_record"], names: [`GET ${USERS}`, first], leaks })
    }))

  it.effect("the same sourcedId twice across pages, the copy different → duplicate_source_id, the stored record kept as it is", () =>
    Effect.gen(function*() {
      const fake = yield* HostileOneRoster
      const first = fake.district.table("users").all()[0] as unknown as Record<string, unknown>
      const lastPage = Math.floor((fake.district.table("users").length - 1) / 10)
      const { leaks, outcome } = yield* hostile(usersPage((page) => ({ users: [...page.users, { ...first, familyName: "Conflicting-Copy" }] }), lastPage))
      assertHeldOut(outcome, { codes: ["duplicate_source_id"], names: [String(first.sourcedId)], leaks: ["Conflicting-Copy", ...leaks] })
    }))

  it.effect("an enrollment with wrong types (primary \"maybe\", beginDate a number) → held out as a finding; the stored membership kept as it is", () =>
    Effect.gen(function*() {
      const fake = yield* HostileOneRoster
      // A student's (a teacher's would also move the class's primary teacher: a rule, not this case).
      const enrollments = fake.district.table("enrollments").all() as unknown as Array<{ readonly sourcedId: string; readonly role: string }>
      const index = enrollments.findIndex((e) => e.role === "student")
      const target = enrollments[index]!.sourcedId
      const { leaks, outcome } = yield* hostile({
        kind: "rewrite",
        match: ENROLLMENTS,
        after: Math.floor(index / 10),
        times: 1,
        rewrite: (page) => ({ enrollments: page.enrollments.map((e: Record<string, unknown>, i: number) => (i === index % 10 ? { ...e, primary: "maybe", beginDate: 42 } : e)) })
      })
      assertHeldOut(outcome, { codes: ["invalid_record"], names: [`GET ${ENROLLMENTS}`, target, `line ${index + 1}`], leaks })
    }))
})
