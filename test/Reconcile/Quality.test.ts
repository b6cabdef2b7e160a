import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { MaskingBit, maskingBits } from "../../src/Domain/Masking.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { maskedEmail } from "../../src/Reconcile/Quality.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import { SyncTestLayer } from "../support/Layers.ts"

/** Data-quality findings: reported with source IDs and counts, never changing what is applied, never naming values. */
const syncFindings = (id: string, dir: string) =>
  Effect.gen(function*() {
    const store = yield* RosterStore
    const sql = yield* SqlClient.SqlClient
    yield* store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "UTC", settings: { path: dir } })
    const summary = yield* Effect.flatMap(Sync, (sync) => sync.run(id, { request: "auto", trigger: "test" }))
    const findings = yield* sql<{ severity: string; code: string; sourceId: string | null; line: number | null; detail: string }>`
      SELECT severity, code, source_id, line, detail FROM findings WHERE run_id = ${summary.runId} ORDER BY code, source_id`
    return { summary, findings }
  })

layer(SyncTestLayer, { timeout: "120 seconds", excludeTestServices: true })("data-quality findings", (it) => {
  it.effect("missing e-mail, missing birth date, no or several primary teachers, a repeated identical row", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      writeSmallDistrict(dir.dir)
      const users = readRows(dir.dir, "users")
      writeCsv(dir.dir, "users", [...users.map((u) => (u.sourcedId === "t-2" ? { ...u, email: "" } : u)), users.find((u) => u.sourcedId === "s-1")!])
      writeCsv(dir.dir, "demographics", readRows(dir.dir, "demographics").filter((d) => d.sourcedId !== "s-3"))
      writeCsv(dir.dir, "enrollments", readRows(dir.dir, "enrollments").map((e) =>
        e.sourcedId === "e-1" ? { ...e, primary: "false" } : e.sourcedId === "e-3" ? { ...e, classSourcedId: "cls-2", role: "teacher", primary: "true", userSourcedId: "t-1" } : e
      ))
      const { findings, summary } = yield* syncFindings("quality", dir.dir)
      const codes = findings.map((f) => `${f.code}:${f.sourceId}`)
      assert.includeMembers(codes, [
        "missing_email:t-2",
        "missing_birth_date:s-3",
        "several_primary_teachers:cls-2",
        "no_primary_teacher:cls-1",
        "repeated_record:s-1"
      ])
      // Reported, not refused: everyone is there, once.
      assert.strictEqual(summary.counts.users.created, 5)
      const repeated = findings.find((f) => f.code === "repeated_record")!
      assert.strictEqual(repeated.severity, "warning")
      assert.match(repeated.detail, /listed 2 times with identical content \(lines 4, 7\)/)
      for (const f of findings) for (const value of ["tess@small.example", "Theo", "Sam", "2014-03-01"]) assert.notInclude(f.detail, value)
      dir.remove()
    }))

  it.effect("masked personal fields are an error finding with counts, for each field", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      writeSmallDistrict(dir.dir)
      const students = Array.from({ length: 20 }, (_, i) => ({
        sourcedId: `m-${i}`,
        enabledUser: "true",
        orgSourcedIds: "org-s1",
        role: "student",
        givenName: "Student",
        familyName: "5f4dcc3b5aa765d61d8327deb882cf99",
        email: i < 15 ? "" : `m${i}@small.example`
      }))
      writeCsv(dir.dir, "users", [...readRows(dir.dir, "users"), ...students])
      const { findings, summary } = yield* syncFindings("masked", dir.dir)
      const masked = findings.filter((f) => f.code === "masked_pii")
      assert.strictEqual(masked.length, 3)
      assert.isTrue(masked.every((f) => f.severity === "error"))
      const text = masked.map((f) => f.detail).join("\n")
      assert.match(text, /e-mail looks masked: 15 of 25 users have none/)
      assert.match(text, /given name looks masked: .*20 of 25 users share one value/)
      assert.match(text, /family name looks masked: 20 of 25 look hashed/)
      assert.notInclude(text, "5f4dcc3b5aa765d61d8327deb882cf99")
      assert.notInclude(text, "Student")
      assert.strictEqual(summary.counts.users.created, 25)
      dir.remove()
    }))

  it.effect("a placeholder domain is one with a label among the words, in any case and position, nothing else", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // What the placeholder part of maskedEmail must say: a label is exactly one of the
      // words (the pattern it runs only after a cheaper LIKE found a word's fixed part).
      const words = /^(invalid|masked|redacted|hidden|anonymi[sz]ed|obfuscated)$/
      const domains = [
        "example.invalid", "INVALID", "masked.school.org", "a.redacted.b", "hidden", "anonymised.net", "ANONYMIZED.org",
        "obfuscated.example", "school.org", "invalidation.org", "unmasked.org", "hiddenvalley.edu", "anonymous.org",
        "anonymi.org", "anonymixed.org", "my-hidden.org", "red.acted.org", ".invalid", "invalid.", ""
      ]
      const rows = yield* sql.unsafe<{ readonly domain: string; readonly masked: boolean }>(
        `SELECT d AS domain, coalesce(${maskedEmail("('zq.local@' || d)")}, false) AS masked FROM unnest($1::text[]) AS d`,
        [domains]
      )
      for (const { domain, masked } of rows) {
        assert.strictEqual(masked, domain.toLowerCase().split(".").some((label) => words.test(label)), domain)
      }
      assert.strictEqual(rows.length, domains.length)
    }))

  it.effect("the masking bits taken when a record is decoded are what Postgres' patterns said of the staged values", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // The patterns the check ran over every staged user until the bits (issue 17),
      // against the bits of random values over the characters that matter to them.
      const hashed = (t: string) => `(${t} ~ '^([0-9a-f]{8,}|[a-z0-9+/]{40,}={0,2}|[*x#]+)$' OR (${t} ~ '^[0-9a-f]+$' AND ${t} ~ '[0-9]'))`
      const placeholder = (d: string) => `${d} ~ '(^|\\.)(invalid|masked|redacted|hidden|anonymi[sz]ed|obfuscated)(\\.|$)'`
      const alphabet = fc.constantFrom(..."0123456789abcdefABCDEFxX*#+/=.@-ghzGZéÉ", "masked", "invalid", "hidden", "anonymized")
      const value = fc.array(alphabet, { maxLength: 48 }).map((parts) => parts.join(""))
      const values = fc.sample(fc.oneof(value, fc.constant("")), 3000)
      const rows = yield* sql.unsafe<{ readonly v: string; readonly ph: boolean; readonly eh: boolean; readonly nh: boolean }>(
        `SELECT v, ${placeholder("split_part(lower(v), '@', 2)")} AS ph, ${hashed("split_part(lower(v), '@', 1)")} AS eh, ${hashed("lower(v)")} AS nh
         FROM unnest($1::text[]) AS v`,
        [values]
      )
      assert.strictEqual(rows.length, values.length)
      for (const { eh, nh, ph, v } of rows) {
        const email = (ph ? MaskingBit.emailPlaceholder : 0) | (!ph && eh ? MaskingBit.emailHashed : 0)
        assert.strictEqual(maskingBits(v, null, null), email, v)
        assert.strictEqual(maskingBits(null, v, v), nh ? MaskingBit.givenNameHashed | MaskingBit.familyNameHashed : 0, v)
      }
    }))
})
