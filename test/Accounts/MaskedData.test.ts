import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { Report } from "../../src/Report/Report.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { AccountsTestLayer, addCsvDistrict, syncNow } from "./support.ts"
import { editUsers, linkOf, PROVIDERS, reviewOf, scenario } from "./ThreeProviders.ts"

/**
 * Masked data stops the harm (issue 15), through real syncs in each provider: a district
 * whose addresses are blanked, then hashed, gets no account, no link and no activation
 * e-mail for anyone — a grassroots account with a teacher's real address is not lost to a
 * fresh account meanwhile — with the finding's counts in the run and in `rosterd report`;
 * the run after it unmasks links everyone normally. One masked-looking address in an
 * otherwise plain district holds back only its person.
 */

const STUDENTS = Array.from({ length: 10 }, (_, i) => `m-${i}`)

const write = (dir: string, domain: string) => {
  writeSmallDistrict(dir, domain)
  writeCsv(dir, "users", [
    ...readRows(dir, "users"),
    ...STUDENTS.map((id) => ({
      sourcedId: id, enabledUser: "true", orgSourcedIds: "org-s1", role: "student", givenName: `Given ${id}`, familyName: `Family ${id}`,
      email: `${id}@${domain}`, grades: "07"
    }))
  ])
  writeCsv(dir, "enrollments", [
    ...readRows(dir, "enrollments"),
    ...STUDENTS.map((id) => ({ sourcedId: `e-${id}`, classSourcedId: "cls-1", schoolSourcedId: "org-s1", userSourcedId: id, role: "student" }))
  ])
}

/** The address each person has when the district shares it (as writeSmallDistrict and `write` give it). */
const REAL: Readonly<Record<string, string>> = { "t-1": "tess", "t-2": "theo", "s-1": "sam", "s-2": "sia", "s-3": "sol" }
const realEmail = (u: Readonly<Record<string, string>>, domain: string) => `${REAL[u["sourcedId"]!] ?? u["sourcedId"]}@${domain}`

const hashed = (email: string) => `${createHash("sha1").update(email).digest("hex").slice(0, 20)}@${email.split("@")[1]}`

layer(AccountsTestLayer, { timeout: "240 seconds", excludeTestServices: true })("masked data", (it) => {
  it.effect("blank and hashed addresses make no account, link or e-mail in each provider; unmasked, the next run links normally", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const report = yield* Report
      const tmp = tempDir("masked-")
      // (Every address changes at once: the safety gate would hold it for an operator.)
      const s = yield* scenario(tmp.dir, "masked", write, { gate: { maxUpdatePercent: 100 } })
      // Tess used the platform before with her district address.
      const grassroots: Record<string, number> = {}
      for (const provider of PROVIDERS) {
        const [account] = yield* sql<{ readonly id: number }>`
          INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', ${`tess-${provider}`}, 'active') RETURNING id`
        const email = `tess@${s.domain(provider)}`
        yield* sql`INSERT INTO account_emails (account_id, email, email_key, added_by) VALUES (${account!.id}, ${email}, ${email}, 'import')`
        grassroots[provider] = Number(account!.id)
      }
      const accountsAndMail = (district: string) =>
        sql<{ readonly links: number; readonly mails: number; readonly accounts: number }>`
          SELECT (SELECT count(*)::int FROM account_links l JOIN users u ON u.id = l.user_id WHERE u.district_id = ${district}) AS links,
                 (SELECT count(*)::int FROM outbox WHERE district_id = ${district}) AS mails,
                 (SELECT count(*)::int FROM accounts WHERE district_id = ${district}) AS accounts`.pipe(Effect.map((rows) => rows[0]!))

      for (const [masking, mask] of [
        ["blank", (_: string) => ""],
        ["hashed", hashed]
      ] as const) {
        s.change((dir, domain) => editUsers(dir, (users) => users.map((u) => ({ ...u, email: mask(realEmail(u, domain)) }))))
        for (const provider of PROVIDERS) {
          const run = yield* s.sync(provider)
          const d = s.district(provider)
          assert.strictEqual(run.status, "succeeded", `${provider} ${masking}`)
          assert.deepStrictEqual(yield* accountsAndMail(d), { links: 0, mails: 0, accounts: 0 }, `${provider} ${masking}: nothing made from masked addresses`)
          assert.isNull(yield* reviewOf(d, s.userId(provider, "t-1")), `${provider} ${masking}: no review either`)
          const found = yield* sql<{ readonly code: string; readonly detail: string }>`
            SELECT code, detail FROM findings WHERE run_id = ${run.runId} AND code IN ('masked_pii', 'accounts_wait_masked') ORDER BY code`
          assert.deepStrictEqual(found.map((f) => f.code), ["accounts_wait_masked", "masked_pii"], `${provider} ${masking}`)
          assert.match(found[0]!.detail, /^15 people get no account/, `${provider} ${masking}`)
          assert.match(found[1]!.detail, masking === "blank" ? /e-mail looks masked: 15 of 15 users have none/ : /e-mail looks masked: 15 of 15 look hashed/)
          for (const f of found) assert.notInclude(f.detail, "@", provider)
          const shown = yield* report.make(d)
          assert.deepInclude(shown.masking[0], { field: "email", total: 15, ...(masking === "blank" ? { blank: 15 } : { hashed: 15 }) }, provider)
          assert.strictEqual(shown.withoutAccount, 15, provider)
        }
      }

      // The district shares the addresses again: everyone is linked, Tess to the account she used before.
      s.change((dir, domain) => editUsers(dir, (users) => users.map((u) => ({ ...u, email: realEmail(u, domain) }))))
      for (const provider of PROVIDERS) {
        yield* s.sync(provider)
        const d = s.district(provider)
        assert.deepInclude(yield* linkOf(d, s.userId(provider, "t-1")), { accountId: grassroots[provider]!, method: "email", activation: "active" }, provider)
        assert.deepInclude(yield* linkOf(d, s.userId(provider, "t-2")), { method: "created", activation: "pending" }, provider)
        assert.deepInclude(yield* linkOf(d, s.userId(provider, "m-3")), { method: "created", activation: "active" }, provider)
        const { links, mails } = yield* accountsAndMail(d)
        assert.deepStrictEqual([links, mails], [15, 1], provider) // one activation e-mail: Theo's
        assert.deepStrictEqual((yield* report.make(d)).masking, [], provider)
      }
      tmp.remove()
    }))

  it.effect("one address that looks masked (hashed, a placeholder domain) holds back only its person", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tmp = tempDir("masked-one-")
      writeSmallDistrict(tmp.dir, "one.example")
      editUsers(tmp.dir, (users) =>
        users.map((u) =>
          u["sourcedId"] === "t-2" ? { ...u, email: "9f86d081884c7d65@one.example" } : u["sourcedId"] === "s-2" ? { ...u, email: "sia@masked.invalid" } : u
        )
      )
      yield* addCsvDistrict("masked-one", tmp.dir)
      const run = yield* syncNow("masked-one")
      assert.isNull(yield* linkOf("masked-one", "t-2"))
      assert.isNull(yield* linkOf("masked-one", "s-2"))
      assert.isNotNull(yield* linkOf("masked-one", "t-1"))
      assert.isNotNull(yield* linkOf("masked-one", "s-1"))
      const found = yield* sql<{ readonly sourceId: string; readonly detail: string }>`
        SELECT source_id, detail FROM findings WHERE run_id = ${run.runId} AND code = 'masked_email' ORDER BY source_id`
      assert.deepStrictEqual(found.map((f) => f.sourceId), ["s-2", "t-2"])
      const [mails] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM outbox WHERE district_id = 'masked-one' AND recipient LIKE '9f86%'`
      assert.strictEqual(mails!.n, 0)
      tmp.remove()
    }))
})
