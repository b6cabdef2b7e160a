import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { HEADERS } from "../../bench/OneRosterGenerator.ts"
import { PROVIDERS, type Provider, scenario } from "../Accounts/ThreeProviders.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/**
 * Rostered users' identities (src/Reconcile/Identities.ts) through real syncs of one roster
 * in each provider: what each provider gives (CSV: sourcedId, identifier, userIds; REST: the
 * same and a legacy id from the metadata; Clever: its id, sis_id, teacher/student numbers),
 * a resync that writes nothing, an identity dropped (ended, not deleted), a login identity
 * claimed by a new user after its holder left, one listed for two users (stored for none),
 * and a returning user keeping its rows.
 */

const USERS_WITH_METADATA = [...HEADERS.users, "metadata.ic.legacysourceId"]

const write = (dir: string, domain: string) => {
  writeSmallDistrict(dir, domain)
  const extra: Record<string, Record<string, string>> = {
    "t-1": { userIds: "{LDAP:tess1},{ClassLink:cl-77}", identifier: "T100", "metadata.ic.legacysourceId": "t+1" },
    "t-2": { identifier: "T200" },
    "s-1": { userIds: "{LDAP:sam1}", identifier: "S100" }
  }
  writeCsv(dir, "users", readRows(dir, "users").map((u) => ({ ...u, ...extra[u["sourcedId"]!] })), USERS_WITH_METADATA)
}

const editUsers = (edit: (users: Array<Record<string, string>>, domain: string) => Array<Record<string, string>>) => (dir: string, domain: string) =>
  writeCsv(dir, "users", edit(readRows(dir, "users"), domain), USERS_WITH_METADATA)

interface Row {
  readonly sourceId: string
  readonly provider: string
  readonly kind: string
  readonly type: string
  readonly value: string
  readonly ended: string | null
}

const identities = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<Row>`
      SELECT u.source_id, i.provider, i.kind, i.type, i.value, i.ended_reason AS ended
      FROM user_identities i JOIN users u ON u.id = i.user_id
      WHERE i.district_id = ${district} ORDER BY u.source_id, i.kind, i.type, i.value`)

const fingerprint = (district: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly digest: string }>`
      SELECT md5(string_agg(ctid::text || ':' || xmin::text, ',' ORDER BY ctid)) AS digest FROM user_identities WHERE district_id = ${district}`
  ).pipe(Effect.map((rows) => rows[0]!.digest))

const of = (rows: ReadonlyArray<Row>, sourceId: string) =>
  rows.filter((r) => r.sourceId === sourceId).map((r) => `${r.kind}${r.type === "" ? "" : `:${r.type}`}=${r.value}${r.ended === null ? "" : ` (${r.ended})`}`)

layer(SyncTestLayer, { timeout: "180 seconds", excludeTestServices: true })("identities", (it) => {
  it.effect("each provider's identities are stored, kept by a resync that writes nothing, ended when dropped or claimed, never deleted", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const tmp = tempDir("identities-")
      const s = yield* scenario(tmp.dir, "ids", write)
      for (const provider of PROVIDERS) assert.strictEqual((yield* s.sync(provider)).status, "succeeded", provider)

      const expected: Record<Provider, { readonly provider: string; readonly t1: ReadonlyArray<string>; readonly s1: ReadonlyArray<string> }> = {
        "oneroster-csv": {
          provider: "csv",
          // OneRoster 1.1 CSV: sourcedId, identifier, userIds (a vendor's metadata columns are not read).
          t1: ["identifier=T100", "source_id=t-1", "user_id:ClassLink=cl-77", "user_id:LDAP=tess1"],
          s1: ["identifier=S100", "source_id=s-1", "user_id:LDAP=sam1"]
        },
        "oneroster-rest": {
          provider: "oneroster",
          t1: ["identifier=T100", "legacy_source_id:ic=t+1", "source_id=t-1", "user_id:ClassLink=cl-77", "user_id:LDAP=tess1"],
          s1: ["identifier=S100", "source_id=s-1", "user_id:LDAP=sam1"]
        },
        clever: {
          provider: "clever",
          // The fake gives every Clever user its CSV sourcedId as sis_id, its identifier as teacher/student number.
          t1: ["sis_id=t-1", `source_id=${s.userId("clever", "t-1")}`, "teacher_number=T100"],
          s1: ["sis_id=s-1", `source_id=${s.userId("clever", "s-1")}`, "student_number=S100"]
        }
      }
      const before: Record<string, string> = {}
      for (const provider of PROVIDERS) {
        const rows = yield* identities(s.district(provider))
        assert.deepStrictEqual(of(rows, s.userId(provider, "t-1")), [...expected[provider].t1], provider)
        assert.deepStrictEqual(of(rows, s.userId(provider, "s-1")), [...expected[provider].s1], provider)
        assert.isTrue(rows.every((r) => r.provider === expected[provider].provider), provider)
        // Every user has its source ID as a login identity.
        assert.strictEqual(rows.filter((r) => r.kind === "source_id").length, 5, provider)
        before[provider] = yield* fingerprint(s.district(provider))
      }

      // An unchanged roster writes no identity.
      for (const provider of PROVIDERS) {
        yield* s.sync(provider)
        assert.strictEqual(yield* fingerprint(s.district(provider)), before[provider], `${provider}: a no-op resync wrote identities`)
      }

      // t-1 leaves; t-9 arrives with t-1's LDAP login; s-1 drops its identifier; s-2 and s-3 both list one login.
      s.change(editUsers((users, domain) => [
        ...users.filter((u) => u["sourcedId"] !== "t-1").map((u) =>
          u["sourcedId"] === "s-1" ? { ...u, identifier: "" } : u["sourcedId"] === "s-2" || u["sourcedId"] === "s-3" ? { ...u, userIds: "{LDAP:twin}" } : u
        ),
        { sourcedId: "t-9", enabledUser: "true", orgSourcedIds: "org-s1", role: "teacher", givenName: "Nia", familyName: "Nine", email: `nia@${domain}`, userIds: "{LDAP:tess1}" }
      ]))
      for (const provider of PROVIDERS) {
        const run = yield* s.sync(provider)
        const rows = yield* identities(s.district(provider))
        const id = (csv: string) => s.userId(provider, csv)
        // A dropped identity ends; the row stays.
        assert.include(of(rows, id("s-1")).join(), provider === "clever" ? "student_number=S100 (missing_from_source)" : "identifier=S100 (missing_from_source)", provider)
        // The departed t-1 keeps its rows (a returning source ID comes back with them)…
        assert.include(of(rows, id("t-1")), `source_id=${id("t-1")}`, provider)
        if (provider === "oneroster-csv" || provider === "oneroster-rest") {
          // …but its login, given to t-9, is t-9's now: a login names one person.
          assert.include(of(rows, id("t-1")), "user_id:LDAP=tess1 (claimed)", provider)
          assert.include(of(rows, id("t-9")), "user_id:LDAP=tess1", provider)
          // Listed for two users: stored for neither, reported by source ID.
          assert.notInclude(of(rows, id("s-2")).join(), "twin", provider)
          assert.notInclude(of(rows, id("s-3")).join(), "twin", provider)
          const found = yield* sql<{ readonly sourceId: string; readonly detail: string }>`
            SELECT source_id, detail FROM findings WHERE run_id = ${run.runId} AND code = 'shared_login_identity' ORDER BY source_id`
          assert.deepStrictEqual(found.map((f) => f.sourceId), ["s-2", "s-3"], provider)
          assert.notInclude(found[0]!.detail, "twin")
        }
      }

      // t-1 returns: the same rows again (nothing new, the ended login stays t-9's).
      s.change(editUsers((users, domain) => [
        ...users,
        { sourcedId: "t-1", enabledUser: "true", orgSourcedIds: "org-s1", role: "teacher", givenName: "Tess", familyName: "One", email: `tess@${domain}`, identifier: "T100" }
      ]))
      for (const provider of PROVIDERS) {
        const [first] = yield* sql<{ readonly firstSeenAt: Date }>`
          SELECT i.first_seen_at FROM user_identities i JOIN users u ON u.id = i.user_id
          WHERE u.district_id = ${s.district(provider)} AND u.source_id = ${s.userId(provider, "t-1")} AND i.kind = 'source_id'`
        yield* s.sync(provider)
        const rows = yield* identities(s.district(provider))
        const t1 = of(rows, s.userId(provider, "t-1"))
        assert.include(t1, `source_id=${s.userId(provider, "t-1")}`, provider)
        assert.isFalse(t1.some((x) => x.startsWith("user_id:LDAP=tess1") && !x.endsWith("(claimed)")), provider)
        const [again] = yield* sql<{ readonly firstSeenAt: Date }>`
          SELECT i.first_seen_at FROM user_identities i JOIN users u ON u.id = i.user_id
          WHERE u.district_id = ${s.district(provider)} AND u.source_id = ${s.userId(provider, "t-1")} AND i.kind = 'source_id'`
        assert.deepStrictEqual(again!.firstSeenAt, first!.firstSeenAt, provider)
      }

      // Only the sync writes identities: the platform may read them, nothing else.
      const refused = yield* Effect.flip(sql`UPDATE user_identities SET value = 'x' WHERE district_id = ${s.district("oneroster-csv")}`)
      assert.include(String((refused as { cause?: { code?: string } }).cause?.code), "RSLCK")
      tmp.remove()
    }))
})
