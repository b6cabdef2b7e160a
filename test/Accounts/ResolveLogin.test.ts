import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import pg from "pg"
import { HEADERS } from "../../bench/OneRosterGenerator.ts"
import { Accounts } from "../../src/Accounts/Accounts.ts"
import { rosterd } from "../support/CliFixture.ts"
import { TestDatabaseUrl } from "../support/Database.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { AccountsTestLayer, writeFile } from "./support.ts"
import { editUsers, linkOf, mailsTo, PROVIDERS, type Provider, scenario } from "./ThreeProviders.ts"

/**
 * Provider and login identities at work (issue 15), through real syncs in each provider:
 *
 * - `accounts import` with identity columns: a grassroots account known by Tess's Clever id
 *   (Clever) or by her ClassLink login (a `userIds` entry: CSV, REST) is hers **before** the
 *   account that has her district address — identity first, e-mail second — active at once,
 *   with no activation e-mail; an identity the file gives two accounts, or that another
 *   account has, fails the whole import with the line;
 * - `rosterd_resolve_login(provider, subject, district)`, what the platform calls after a
 *   Clever or ClassLink sign-in: a Clever id, a OneRoster sourcedId, a `userIds` identifier,
 *   a grassroots account's imported identity; a sourcedId two districts use is an error
 *   without the district, not a guess; a departed user is reported inactive; the platform's
 *   role may call it; `rosterd accounts resolve` prints the same.
 */

const short = (provider: Provider) => (provider === "oneroster-csv" ? "csv" : provider === "clever" ? "clever" : "rest")

const write = (dir: string, domain: string) => {
  writeSmallDistrict(dir, domain)
  // Each district its own logins (the fakes are served from the same folders: the domain tells them apart).
  const tag = domain.split(".")[0]!.split("-").pop()!
  const logins: Record<string, string> = { "t-1": `{LDAP:tess-${tag}}`, "s-1": `{LDAP:sam-${tag}}` }
  writeCsv(dir, "users", readRows(dir, "users").map((u) => ({ ...u, userIds: logins[u["sourcedId"]!] ?? "" })), HEADERS.users)
}

layer(AccountsTestLayer, { timeout: "240 seconds", excludeTestServices: true })("identities at work", (it) => {
  it.effect("an imported provider identity links before the address, in each provider; rosterd_resolve_login finds Clever ids, sourcedIds, userIds and imported identities", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const accounts = yield* Accounts
      const tmp = tempDir("resolve-")
      const s = yield* scenario(tmp.dir, "login", write)

      // The platform's accounts: per provider, Tess's old account known by her identity (with a
      // personal address), and another account that has her district address.
      const rows = ["external_id,email,display_name,clever_id,oneroster_sourced_id,classlink_login"]
      for (const provider of PROVIDERS) {
        const identity = provider === "clever" ? `${s.userId("clever", "t-1")},,` : `,,tess-${short(provider)}`
        rows.push(`tess-${short(provider)},tess.home.${short(provider)}@mail.example,,${identity}`)
        rows.push(`other-${short(provider)},tess@${s.domain(provider)},,,,`)
      }
      // A grassroots account known only by a sourcedId no district rosters (yet).
      rows.push("library-77,,,,g-77,")
      const file = writeFile(tmp.dir, "accounts.csv", rows.join("\n") + "\n")
      const imported = yield* accounts.importCsv(file)
      assert.strictEqual(imported.identitiesAdded, 4)
      const idOf = (external: string) =>
        sql<{ readonly id: number }>`SELECT id FROM accounts WHERE external_id = ${external}`.pipe(Effect.map((r) => Number(r[0]!.id)))

      for (const provider of PROVIDERS) {
        yield* s.sync(provider)
        const d = s.district(provider)
        const tess = (yield* linkOf(d, s.userId(provider, "t-1")))!
        assert.strictEqual(tess.accountId, yield* idOf(`tess-${short(provider)}`), `${provider}: identity first`)
        assert.deepInclude(tess, { method: "identity", activation: "active", accountState: "active" }, provider)
        assert.strictEqual(yield* mailsTo(d, `tess@${s.domain(provider)}`), 0, provider)
        // The account she used gains her district address.
        const [has] = yield* sql<{ readonly n: number }>`
          SELECT count(*)::int AS n FROM account_emails WHERE account_id = ${tess.accountId} AND email_key = ${`tess@${s.domain(provider)}`}`
        assert.strictEqual(has!.n, 1, provider)
      }

      // rosterd_resolve_login, through the service the CLI uses.
      const resolve = (provider: string, subject: string, district?: string) =>
        accounts.resolve(provider, subject, Option.fromNullable(district))
      const clever = yield* resolve("clever", s.userId("clever", "t-1"))
      assert.deepStrictEqual(clever.map((r) => [r.accountId, r.active, r.districtId, r.sourceId, r.matchedBy]), [
        [yield* idOf("tess-clever"), true, s.district("clever"), s.userId("clever", "t-1"), "source_id"]
      ])
      // A sourcedId: the CSV and REST districts both have s-1 — an error without the district, never a guess.
      const ambiguous = yield* Effect.flip(resolve("classlink", "s-1"))
      assert.deepInclude(ambiguous, { _tag: "LoginNotResolved", code: "RSAMB" })
      const restSam = yield* resolve("classlink", "s-1", s.district("oneroster-rest"))
      assert.deepStrictEqual(restSam.map((r) => [r.districtId, r.sourceId, r.matchedBy, r.active]), [[s.district("oneroster-rest"), "s-1", "source_id", true]])
      assert.strictEqual(restSam[0]!.accountId, (yield* linkOf(s.district("oneroster-rest"), "s-1"))!.accountId)
      // A userIds identifier, each provider family its own (a CSV set's too).
      for (const provider of ["oneroster-csv", "oneroster-rest"] as const) {
        const byLogin = yield* resolve("oneroster", `sam-${short(provider)}`)
        assert.deepStrictEqual(byLogin.map((r) => [r.districtId, r.sourceId, r.matchedBy]), [[s.district(provider), "s-1", "user_id:LDAP"]])
      }
      // A grassroots account by its imported identity; nothing for an unknown subject or a Clever id asked as ClassLink.
      assert.deepStrictEqual((yield* resolve("classlink", "g-77")).map((r) => [r.accountId, r.districtId, r.matchedBy]), [
        [yield* idOf("library-77"), null, "account:source_id"]
      ])
      assert.deepStrictEqual(yield* resolve("clever", "000000000000000000000000"), [])
      assert.deepStrictEqual(yield* resolve("classlink", s.userId("clever", "t-1")), [])
      assert.deepInclude(yield* Effect.flip(resolve("google", "x")), { _tag: "LoginNotResolved", code: "22023" })

      // Sam leaves the REST district: still resolved (the platform decides), shown inactive.
      const rest = s.dir("oneroster-rest")
      editUsers(rest, (users) => users.filter((u) => u["sourcedId"] !== "s-1"))
      writeCsv(rest, "enrollments", readRows(rest, "enrollments").filter((e) => e["userSourcedId"] !== "s-1"))
      yield* s.sync("oneroster-rest")
      const gone = yield* resolve("classlink", "sam-rest")
      assert.deepStrictEqual(gone.map((r) => [r.sourceId, r.active, r.userActive]), [["s-1", false, false]])

      // The platform's role calls it (and nothing it may not read is needed).
      const db = yield* TestDatabaseUrl
      const platform = new pg.Client({ connectionString: db.platformUrl })
      yield* Effect.promise(() => platform.connect())
      const viaPlatform = yield* Effect.promise(() =>
        platform.query(`SELECT account_id::int, active, matched_by FROM rosterd_resolve_login('clever', $1)`, [s.userId("clever", "t-1")])
      )
      yield* Effect.promise(() => platform.end())
      assert.deepStrictEqual(viaPlatform.rows, [{ account_id: yield* idOf("tess-clever"), active: true, matched_by: "source_id" }])

      // The CLI prints the same (ids and states, never an address).
      const cli = yield* Effect.promise(() =>
        rosterd(["accounts", "resolve", "--provider", "classlink", "--subject", "s-1", "--district", s.district("oneroster-csv"), "--json"], { DATABASE_URL: db.url })
      )
      assert.strictEqual(cli.code, 0, cli.stderr)
      const printed = JSON.parse(cli.stdout) as Array<{ readonly sourceId: string; readonly districtId: string; readonly matchedBy: string }>
      assert.deepStrictEqual(printed.map((r) => [r.districtId, r.sourceId, r.matchedBy]), [[s.district("oneroster-csv"), "s-1", "source_id"]])
      assert.notInclude(cli.stdout, "@")
      const refused = yield* Effect.promise(() => rosterd(["accounts", "resolve", "--provider", "classlink", "--subject", "s-1"], { DATABASE_URL: db.url }))
      assert.strictEqual(refused.code, 1)
      assert.match(refused.stderr, /names rostered users of 2 districts; give the district/)
      tmp.remove()
    }))

  it.effect("an identity names one account: given to two accounts in a file, or already another account's, the import fails with the line", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const accounts = yield* Accounts
      const tmp = tempDir("import-identities-")
      const twice = writeFile(tmp.dir, "twice.csv", "external_id,clever_id\nx-1,5f00aa\nx-2,5f00aa\n")
      const error = yield* Effect.flip(accounts.importCsv(twice))
      assert.strictEqual(error._tag, "AccountsImportError")
      assert.match(error.message, /twice\.csv line 3: its clever_id is given to another external_id earlier in the file/)
      assert.notInclude(error.message, "5f00aa")
      const [none] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM accounts WHERE external_id IN ('x-1', 'x-2')`
      assert.strictEqual(none!.n, 0)
      yield* accounts.importCsv(writeFile(tmp.dir, "one.csv", "external_id,clever_id\nx-1,5f00aa\n"))
      const taken = yield* Effect.flip(accounts.importCsv(writeFile(tmp.dir, "taken.csv", "external_id,email,clever_id\nx-3,,5f00aa\n")))
      assert.match(taken.message, /taken\.csv line 2: its clever_id already belongs to account \d+/)
      // The same again is no change.
      const again = yield* accounts.importCsv(writeFile(tmp.dir, "again.csv", "external_id,clever_id\nx-1,5f00aa\n"))
      assert.strictEqual(again.identitiesAdded, 0)
      tmp.remove()
    }))
})
