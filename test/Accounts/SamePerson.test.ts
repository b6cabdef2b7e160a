import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { latestToken } from "./support.ts"
import { AccountsTestLayer } from "./support.ts"
import { editUsers, linkOf, mailsTo, PROVIDERS, reviewOf, scenario } from "./ThreeProviders.ts"

/**
 * Two linking rules through real syncs in each provider (issue 15):
 *
 * - **one person, two records**: OneRoster 1.1 gives a person who teaches at one school and
 *   administers another two records with the same address and names. Both are linked to one
 *   account (one activation e-mail; the second record follows the first's confirmation) —
 *   not two review items, and no account missing. Two records that merely share an address
 *   (other names) are never merged: both go to review;
 * - **a teacher without an address** gets a finding and no account (nobody could activate
 *   it); the account, and its activation e-mail, come with the address.
 */

const write = (dir: string, domain: string) => {
  writeSmallDistrict(dir, domain)
  writeCsv(dir, "orgs", [
    ...readRows(dir, "orgs"),
    { sourcedId: "org-s2", name: "Second School", type: "school", parentSourcedId: "org-d" }
  ])
  const staff = (sourcedId: string, role: string, org: string, given: string, family: string, email: string) => ({
    sourcedId, enabledUser: "true", orgSourcedIds: org, role, givenName: given, familyName: family, email
  })
  writeCsv(dir, "users", [
    ...readRows(dir, "users"),
    // Tess teaches at org-s1 (t-1) and administers org-s2: a second record, the same person.
    staff("a-5", "administrator", "org-s2", "Tess", "One", `tess@${domain}`),
    // Theo's address, someone else's name: not the same person.
    staff("a-6", "administrator", "org-s2", "Ann", "Other", `theo@${domain}`),
    // A teacher the roster gives no address.
    staff("t-3", "teacher", "org-s1", "Ned", "Nomail", "")
  ])
}

layer(AccountsTestLayer, { timeout: "240 seconds", excludeTestServices: true })("same person, no address", (it) => {
  it.effect("one person's two records share one account, records that only share an address are reviewed, a teacher without an address waits for one, in each provider", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tmp = tempDir("same-person-")
      const s = yield* scenario(tmp.dir, "same", write)
      for (const provider of PROVIDERS) {
        const run = yield* s.sync(provider)
        const d = s.district(provider)
        const id = (csv: string) => s.userId(provider, csv)
        const t1 = (yield* linkOf(d, id("t-1")))!
        const a5 = (yield* linkOf(d, id("a-5")))!
        assert.strictEqual(a5.accountId, t1.accountId, `${provider}: one account for both records`)
        assert.deepStrictEqual([t1.method, a5.method], ["created", "same_person"], provider)
        assert.deepStrictEqual([t1.activation, a5.activation], ["pending", "pending"], provider)
        assert.isNull(yield* reviewOf(d, id("t-1")), provider)
        assert.isNull(yield* reviewOf(d, id("a-5")), provider)
        // One activation e-mail for the person.
        assert.strictEqual(yield* mailsTo(d, `tess@${s.domain(provider)}`), 1, provider)
        const [same] = yield* sql<{ readonly sourceId: string; readonly detail: string }>`
          SELECT source_id, detail FROM findings WHERE run_id = ${run.runId} AND code = 'same_person'`
        assert.strictEqual(same!.sourceId, id("a-5"), provider)
        assert.include(same!.detail, id("t-1"), provider)

        // Theo and Ann share an address, not a name: never merged, both reviewed.
        assert.isNull(yield* linkOf(d, id("t-2")), provider)
        assert.isNull(yield* linkOf(d, id("a-6")), provider)
        assert.strictEqual((yield* reviewOf(d, id("t-2")))!.reason, "email_shared", provider)
        assert.strictEqual((yield* reviewOf(d, id("a-6")))!.reason, "email_shared", provider)

        // Ned has no address: no account (nobody could activate it), a finding.
        assert.isNull(yield* linkOf(d, id("t-3")), provider)
        const [ned] = yield* sql<{ readonly n: number }>`
          SELECT count(*)::int AS n FROM findings WHERE run_id = ${run.runId} AND code = 'teacher_without_address' AND source_id = ${id("t-3")}`
        assert.strictEqual(ned!.n, 1, provider)

        // Tess confirms through her one e-mail; her administrator record follows at the next run.
        const [confirmed] = yield* sql<{ readonly outcome: string }>`SELECT * FROM rosterd_confirm_activation(${yield* latestToken(t1.userId)}, NULL)`
        assert.strictEqual(confirmed!.outcome, "activated", provider)
        yield* s.sync(provider)
        assert.deepInclude(yield* linkOf(d, id("a-5")), { activation: "active", accountState: "active" }, provider)
        assert.strictEqual(yield* mailsTo(d, `tess@${s.domain(provider)}`), 1, provider)
      }

      // Ned's address arrives: his account, pending, with its activation e-mail.
      s.change((dir, domain) => editUsers(dir, (users) => users.map((u) => (u["sourcedId"] === "t-3" ? { ...u, email: `ned@${domain}` } : u))))
      for (const provider of PROVIDERS) {
        yield* s.sync(provider)
        const d = s.district(provider)
        assert.deepInclude(yield* linkOf(d, s.userId(provider, "t-3")), { method: "created", activation: "pending", accountState: "pending" }, provider)
        assert.strictEqual(yield* mailsTo(d, `ned@${s.domain(provider)}`), 1, provider)
      }
      tmp.remove()
    }))
})
