import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { Duplicates } from "../../src/Accounts/Duplicates.ts"
import { Merge } from "../../src/Accounts/Merge.ts"
import * as FakeClever from "../support/FakeClever/index.ts"
import { tempDir, writeSmallDistrict } from "../support/Fixtures.ts"
import { PROVIDERS, rosteredUser, serveEachProvider, type ServedDistrict } from "./providers.ts"
import { AccountsTestLayer } from "./support.ts"

/**
 * `rosterd accounts duplicates` over accounts made by real syncs in each provider (the same
 * small district served as CSV, Clever and OneRoster REST, each its own district): the same
 * students in three districts are three accounts with one name and birth date; a grassroots
 * account with a teacher's district address; a grassroots account known by a teacher's Clever
 * id. Groups carry account ids, the kind of match, counts and source IDs — no name, address or
 * birth date. A merge takes a group away.
 */

const TestLayer = Layer.mergeAll(Duplicates.Default, Merge.Default).pipe(Layer.provideMerge(AccountsTestLayer))

const grassroots = (externalId: string, email: string | null) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly id: number }>`
      INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', ${externalId}, 'active') RETURNING id::int`
    if (email !== null) yield* sql`INSERT INTO account_emails (account_id, email, email_key, added_by) VALUES (${row!.id}, ${email}, ${email.toLowerCase()}, 'import')`
    return row!.id
  })

layer(TestLayer, { timeout: "180 seconds", excludeTestServices: true })("duplicate accounts", (it) => {
  const work = tempDir("rosterd-duplicates-")

  it.scoped("shared address, provider identity, name and birth date: grouped for review, nothing personal shown; a merge clears its group", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const duplicates = yield* Duplicates
      const merge = yield* Merge
      const served = yield* serveEachProvider(work.dir, "dup", writeSmallDistrict)
      const d = (p: (typeof PROVIDERS)[number]): ServedDistrict => served[p]
      // Three districts with addresses of their own: only the students, the same children (names and birth dates) in each copy.
      assert.deepStrictEqual((yield* duplicates.find(Option.none())).map((g) => [g.match, g.accounts.length]), [
        ["name_birth_date", 3], ["name_birth_date", 3], ["name_birth_date", 3]
      ])
      const accountOf = (p: (typeof PROVIDERS)[number], csvId: string) => Effect.map(rosteredUser(d(p), csvId), (u) => u.accountId!)

      // Tess's own account with her CSV district's address, and an account known by Theo's Clever id.
      const tessOwn = yield* grassroots("g-tess", `Tess@${d("oneroster-csv").domain}`)
      const theoOwn = yield* grassroots("g-theo", null)
      yield* sql`INSERT INTO account_identities (account_id, provider, kind, subject, added_by)
                 VALUES (${theoOwn}, 'clever', 'source_id', ${FakeClever.cleverIdFor("users", "t-2")}, 'import')`

      const groups = yield* duplicates.find(Option.none())
      const summary = groups.map((g) => [g.match, g.accounts, g.shared])
      const students = yield* Effect.forEach(["s-1", "s-2", "s-3"], (s) =>
        Effect.map(Effect.forEach(PROVIDERS, (p) => accountOf(p, s)), (ids) => [...ids].sort((a, b) => a - b)))
      const tessCsv = yield* accountOf("oneroster-csv", "t-1")
      const theoClever = yield* accountOf("clever", "t-2")
      const expected = [
        ["address", [tessCsv, tessOwn].sort((a, b) => a - b), 1],
        ["identity", [theoClever, theoOwn].sort((a, b) => a - b), 1],
        ...students.map((ids) => ["name_birth_date", ids, 1])
      ]
      const byText = (a: ReadonlyArray<unknown>, b: ReadonlyArray<unknown>) => JSON.stringify(a).localeCompare(JSON.stringify(b))
      assert.deepStrictEqual([...summary].sort(byText), [...expected].sort(byText) as typeof summary)
      // Ordered by account ids (as numbers), then kind.
      const order = groups.map((g) => g.accounts)
      assert.deepStrictEqual(order, [...order].sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!))
      // Each group names the rostered people behind its accounts by source ID.
      const sam = groups.find((g) => g.match === "name_birth_date" && g.accounts.includes(students[0]![0]!))!
      assert.deepStrictEqual(sam.people.map((p) => [p.district, p.sourceId]).sort(), PROVIDERS.map((p) => [d(p).districtId, d(p).userSourceId("s-1")]).sort())
      const shown = JSON.stringify(groups)
      for (const personal of ["@", "Tess", "Sam", "Sia", "2014-03-01", "2014", "tess"]) assert.notInclude(shown, personal)

      // One district: the groups touching it.
      const clever = yield* duplicates.find(Option.some(d("clever").districtId))
      assert.deepStrictEqual(clever.map((g) => g.match).sort(), ["identity", "name_birth_date", "name_birth_date", "name_birth_date"])
      assert.strictEqual((yield* Effect.flip(duplicates.find(Option.some("nowhere"))))._tag, "DistrictNotFound")

      // Merged, they are one account: the group goes.
      yield* merge.merge(tessOwn, tessCsv, { by: "ops", reason: "duplicates review" })
      assert.isUndefined((yield* duplicates.find(Option.none())).find((g) => g.match === "address"))
    }))
})
