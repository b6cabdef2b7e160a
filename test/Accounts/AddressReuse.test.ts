import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Reviews } from "../../src/Accounts/Reviews.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { AccountsTestLayer, addCsvDistrict, syncNow } from "./support.ts"
import { addressesOf, editUsers, linkOf, mailsTo, PROVIDERS, reviewOf, scenario } from "./ThreeProviders.ts"

/**
 * Address reuse and address changes (issue 15), through real syncs of one roster in each
 * provider (CSV, Clever, OneRoster REST):
 *
 * - **takeover**: a teacher and a student leave; the district gives their addresses to a new
 *   teacher and a new student. Neither is linked to the departed person's account: each is a
 *   review item `address_reused` naming the other's source ID, with no account and no
 *   activation e-mail until an operator decides (`review create` → a fresh account and its
 *   e-mail; `review link` → the account the operator names);
 * - **returning person**: the departed teacher comes back (same source ID) and is their own
 *   account's again, without review — even though the newcomer holds the address now;
 * - **address change**: a linked teacher's address changes: the account gains it, the old
 *   one stays as a former address (no longer used for linking), no activation e-mail, one
 *   audit row for the run; a newcomer given the former address within the window is a review
 *   item too, and after the window (`rules.accounts.reuseWindowDays`) gets an account of their own.
 */

const dropEnrollmentsOf = (dir: string, ...users: Array<string>) =>
  writeCsv(dir, "enrollments", readRows(dir, "enrollments").filter((e) => !users.includes(e["userSourcedId"]!)))

const person = (sourcedId: string, role: string, given: string, family: string, email: string) => ({
  sourcedId, enabledUser: "true", orgSourcedIds: "org-s1", role, givenName: given, familyName: family, email
})

layer(AccountsTestLayer, { timeout: "240 seconds", excludeTestServices: true })("address reuse and changes", (it) => {
  it.effect("a reused address never takes over the departed person's account, for a teacher and a student, in each provider; the returning person keeps theirs; an address change is kept as former", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const reviews = yield* Reviews
      const tmp = tempDir("reuse-")
      const s = yield* scenario(tmp.dir, "reuse", (dir, domain) => writeSmallDistrict(dir, domain))
      const before: Record<string, { readonly t1: number; readonly s1: number; readonly t2: number }> = {}
      for (const provider of PROVIDERS) {
        yield* s.sync(provider)
        const d = s.district(provider)
        const t1 = (yield* linkOf(d, s.userId(provider, "t-1")))!
        const s1 = (yield* linkOf(d, s.userId(provider, "s-1")))!
        const t2 = (yield* linkOf(d, s.userId(provider, "t-2")))!
        assert.deepInclude(t1, { method: "created", activation: "pending" }, provider)
        assert.deepInclude(s1, { method: "created", activation: "active" }, provider)
        assert.strictEqual(yield* mailsTo(d, `tess@${s.domain(provider)}`), 1, provider)
        before[provider] = { t1: t1.accountId, s1: s1.accountId, t2: t2.accountId }
      }

      // t-1 and s-1 leave; t-7 gets t-1's address, s-9 gets s-1's; t-2's address changes.
      s.change((dir, domain) => {
        editUsers(dir, (users) => [
          ...users.filter((u) => u["sourcedId"] !== "t-1" && u["sourcedId"] !== "s-1")
            .map((u) => (u["sourcedId"] === "t-2" ? { ...u, email: `theo.new@${domain}` } : u)),
          person("t-7", "teacher", "Tara", "Seven", `tess@${domain}`),
          person("s-9", "student", "Sid", "Nine", `sam@${domain}`)
        ])
        dropEnrollmentsOf(dir, "t-1", "s-1")
      })
      for (const provider of PROVIDERS) {
        const run = yield* s.sync(provider)
        const d = s.district(provider)
        const id = (csv: string) => s.userId(provider, csv)
        for (const [newcomer, departed] of [["t-7", "t-1"], ["s-9", "s-1"]] as const) {
          assert.isNull(yield* linkOf(d, id(newcomer)), `${provider}: ${newcomer} is not linked`)
          const review = (yield* reviewOf(d, id(newcomer)))!
          assert.strictEqual(review.reason, "address_reused", provider)
          assert.deepStrictEqual(review.related, [id(departed)], provider)
        }
        // The departed people's accounts are theirs alone.
        const linked = yield* sql<{ readonly n: number }>`
          SELECT count(*)::int AS n FROM account_links WHERE account_id IN (${before[provider]!.t1}, ${before[provider]!.s1})`
        assert.strictEqual(linked[0]!.n, 2, provider)
        // No activation e-mail for the newcomer.
        assert.strictEqual(yield* mailsTo(d, `tess@${s.domain(provider)}`), 1, provider)
        // Reported with both source IDs, never the address.
        const [finding] = yield* sql<{ readonly detail: string }>`
          SELECT detail FROM findings WHERE run_id = ${run.runId} AND code = 'account_review' AND source_id = ${id("t-7")}`
        assert.include(finding!.detail, id("t-1"), provider)
        assert.notInclude(finding!.detail, "@", provider)

        // t-2: the new address is added, the old one is kept as former; no new activation e-mail.
        const t2 = (yield* linkOf(d, id("t-2")))!
        assert.strictEqual(t2.accountId, before[provider]!.t2, provider)
        assert.deepStrictEqual(yield* addressesOf(t2.accountId, false), [`theo.new@${s.domain(provider)}`], provider)
        assert.deepStrictEqual(yield* addressesOf(t2.accountId, true), [`theo@${s.domain(provider)}`], provider)
        assert.strictEqual(yield* mailsTo(d, `theo.new@${s.domain(provider)}`), 0, provider)
        const audit = yield* sql<{ readonly details: { readonly addressesAdded: number; readonly accounts: ReadonlyArray<number> } }>`
          SELECT details FROM audit_log WHERE action = 'sync.addresses' AND district_id = ${d} AND subject = ${`run ${run.runId}`}`
        assert.strictEqual(audit.length, 1, provider)
        assert.strictEqual(audit[0]!.details.addressesAdded, 1, provider)
        assert.deepStrictEqual(audit[0]!.details.accounts, [t2.accountId], provider)
        assert.notInclude(JSON.stringify(audit[0]), "@", provider)
      }

      // t-1 returns: its own account, no review. t-8 is given t-2's former address.
      s.change((dir, domain) =>
        editUsers(dir, (users) => [
          ...users,
          person("t-1", "teacher", "Tess", "One", `tess@${domain}`),
          person("t-8", "teacher", "Tim", "Eight", `theo@${domain}`)
        ])
      )
      for (const provider of PROVIDERS) {
        yield* s.sync(provider)
        const d = s.district(provider)
        const id = (csv: string) => s.userId(provider, csv)
        assert.strictEqual((yield* linkOf(d, id("t-1")))!.accountId, before[provider]!.t1, provider)
        assert.isNull(yield* reviewOf(d, id("t-1")), provider)
        const t8 = (yield* reviewOf(d, id("t-8")))!
        assert.deepInclude(t8, { reason: "address_reused", related: [id("t-2")] }, provider)
        assert.isNull(yield* linkOf(d, id("t-8")), provider)
        // The newcomers' items stay open until someone decides.
        assert.strictEqual((yield* reviewOf(d, id("t-7")))!.reason, "address_reused", provider)
      }

      // An operator decides: t-7 gets a fresh account (and its activation e-mail), s-9 the account named.
      for (const provider of PROVIDERS) {
        const d = s.district(provider)
        const id = (csv: string) => s.userId(provider, csv)
        const created = yield* reviews.create((yield* reviewOf(d, id("t-7")))!.id, "ops")
        assert.notStrictEqual(created.accountId, before[provider]!.t1, provider)
        assert.strictEqual(created.activationMails, 1, provider)
        assert.strictEqual(yield* mailsTo(d, `tess@${s.domain(provider)}`), 2, provider)
        const [own] = yield* sql<{ readonly id: number }>`
          INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', ${`sid-${provider}`}, 'active') RETURNING id`
        const linked = yield* reviews.link((yield* reviewOf(d, id("s-9")))!.id, Number(own!.id), "ops")
        assert.strictEqual(linked.accountId, Number(own!.id), provider)
        // The next sync keeps every decision, and the returning teacher's account is still hers.
        yield* s.sync(provider)
        assert.strictEqual((yield* linkOf(d, id("t-7")))!.accountId, created.accountId, provider)
        assert.strictEqual((yield* linkOf(d, id("s-9")))!.accountId, Number(own!.id), provider)
        assert.strictEqual((yield* linkOf(d, id("t-1")))!.accountId, before[provider]!.t1, provider)
      }
      tmp.remove()
    }))

  it.effect("a former address counts as its person's for rules.accounts.reuseWindowDays days only", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tmp = tempDir("reuse-window-")
      writeSmallDistrict(tmp.dir, "window.example")
      yield* addCsvDistrict("window", tmp.dir)
      yield* sql`UPDATE districts SET rules = '{"accounts": {"reuseWindowDays": 30}}' WHERE id = 'window'`
      yield* syncNow("window")
      const theo = (yield* linkOf("window", "t-2"))!
      editUsers(tmp.dir, (users) => users.map((u) => (u["sourcedId"] === "t-2" ? { ...u, email: "theo.new@window.example" } : u)))
      yield* syncNow("window")
      // Changed 31 days ago: outside the window.
      yield* sql`UPDATE account_emails SET former_at = now() - interval '31 days' WHERE account_id = ${theo.accountId} AND former_at IS NOT NULL`
      editUsers(tmp.dir, (users) => [...users, person("t-8", "teacher", "Tim", "Eight", "theo@window.example")])
      yield* syncNow("window")
      const t8 = (yield* linkOf("window", "t-8"))!
      // Not Theo's account: a former address is never used for linking. A fresh account.
      assert.notStrictEqual(t8.accountId, theo.accountId)
      assert.deepInclude(t8, { method: "created", activation: "pending" })
      assert.isNull(yield* reviewOf("window", "t-8"))
      tmp.remove()
    }))
})
