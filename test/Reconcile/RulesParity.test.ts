import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import * as FakeClever from "../support/FakeClever/index.ts"
import * as FakeOneRoster from "../support/FakeOneRoster/index.ts"
import { readRows, tempDir, writeCsv } from "../support/Fixtures.ts"
import { syncTestLayer } from "../support/Layers.ts"
import { toCsv12 } from "../support/OneRoster12Csv.ts"
import { TEACHERS, writeRulesDistrict } from "../support/RulesDistrict.ts"

/**
 * The district rules apply alike whichever provider delivers the roster. The rules district
 * (test/support/RulesDistrict.ts, on the current school year, so the real clock) is synced
 * five times into one database: as a OneRoster 1.1 CSV set, through the fake Clever API,
 * through the fake OneRoster 1.1 REST server (ClassLink, OAuth 1.0a), as a OneRoster 1.2 CSV
 * set (roles.csv) and through the fake server's 1.2 binding with OAuth 2.0 client credentials
 * (Infinite Campus-style). Each district's rules
 * outcome is reduced to a fingerprint keyed by the CSV sourcedIds (Clever ids mapped back
 * through the fake's id map) and compared with the CSV district's.
 *
 * Each copy gets its own e-mail domain (the same address in two districts is one person to
 * account linking, a review item by design), and two account cases on top of the rules
 * district so linking is compared too: t-07's address belongs to an existing account
 * (linked by e-mail, active, no activation mail), and t-06 is given t-05's address (both
 * go to review as `email_shared`).
 *
 * Where the Clever API itself decides what a rule would decide (it names exactly one
 * primary teacher per section) or where its ids order differently, the Clever expectation
 * is derived from the CSV one by those differences only, each named where it is made.
 */

/** The sources compared: a provider, and for OneRoster its version. */
const PROVIDERS = ["oneroster-csv", "clever", "oneroster-rest", "oneroster-csv-12", "oneroster-rest-12"] as const
type Provider = (typeof PROVIDERS)[number]
const OAUTH2 = { clientId: "parity-client", clientSecret: "parity-client-secret" }

const CLEVER_TOKEN = "parity-clever-token"
const OAUTH = { key: "parity-key", secret: "parity-secret" }
const ZONE = "America/Chicago"
const CO_TEACHER_LIMIT = 9

/** The rule findings compared; data-quality findings are other tests' business. */
const RULE_CODES = [
  "excluded_section", "co_teacher_limit", "no_primary_teacher", "several_primary_teachers", "duplicate_period",
  "student_without_class", "missing_birth_date", "admin_district_office_only", "account_review"
] as const

interface Fingerprint {
  /** Every section: `active`, `inactive: <reason>`, or `excluded: <finding detail>` (never became a class). */
  readonly sections: Record<string, string>
  /** Teachers of each active class, primary first: `<user>` or `<user> (primary)`. */
  readonly teachers: Record<string, Array<string>>
  readonly students: Record<string, { readonly under13: boolean; readonly gradeLevels: Array<string> }>
  /** `<method>/<activation>` of each user's account link; `none` without one. */
  readonly links: Record<string, string>
  readonly activationMails: number
  /** `<code> <source id>` of the run's rule findings, sorted. */
  readonly findings: Array<string>
}

interface Synced {
  readonly districtId: string
  readonly runId: number
  readonly status: string
  /** A source ID as this district stores it → the CSV sourcedId it was made from. */
  readonly toCsv: (sourceId: string) => string
}

interface Served {
  readonly synced: Record<Provider, Synced>
  /** The primary teacher (`teacher`) Clever names for each section, by CSV sourcedIds. */
  readonly cleverPrimary: ReadonlyMap<string, string | null>
  /** The subject enumeration value Clever gives each section, by CSV sourcedId. */
  readonly cleverSubject: ReadonlyMap<string, string | undefined>
}

class Parity extends Context.Tag("test/RulesParity")<Parity, {
  /** The rules district. */
  readonly rules: Served
  /** The rules district plus an Art and a Health section (see the last test). */
  readonly subjects: Served
}>() {}

const grassroots = (email: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [account] = yield* sql<{ readonly id: number }>`
      INSERT INTO accounts (origin, external_id, state) VALUES ('grassroots', ${`ext-${email}`}, 'active') RETURNING id`
    yield* sql`INSERT INTO account_emails (account_id, email, email_key, added_by) VALUES (${account!.id}, ${email}, ${email}, 'import')`
  })

/**
 * Writes the district with `write` once per provider, serves the Clever and REST copies,
 * adds the three districts (`<label>-<provider>`) and syncs each once.
 */
const serveAll = (root: string, label: string, write: (dir: string, domain: string) => void) =>
  Effect.gen(function*() {
    const at = (...names: Array<string>) => NodePath.join(root, label, ...names)
    const dirs = {
      "oneroster-csv": at("csv"),
      clever: at("clever"),
      "oneroster-rest": at("rest"),
      "oneroster-csv-12": at("csv12"),
      "oneroster-rest-12": at("rest12")
    } as const
    for (const provider of PROVIDERS) {
      const domain = `${label}-${provider}.example`
      if (provider === "oneroster-csv-12") {
        // The same district in the 1.2 binding: roles.csv, 1.2 users.csv and manifest.
        write(at("csv12-as-11"), domain)
        toCsv12(at("csv12-as-11"), dirs[provider])
      } else write(dirs[provider], domain)
      yield* grassroots(`t-07@${domain}`)
    }
    const secret = (name: string, value: string) => {
      Fs.writeFileSync(at(name), value)
      return at(name)
    }

    const cleverDistrict = yield* Effect.promise(() => FakeClever.fromOneRosterCsv(dirs.clever))
    const clever = yield* Effect.acquireRelease(
      Effect.promise(() => FakeClever.start(cleverDistrict, { token: CLEVER_TOKEN, rateLimit: false })),
      (fake) => Effect.promise(() => fake.close())
    )
    const rest = yield* Effect.acquireRelease(
      Effect.promise(async () => FakeOneRoster.start(await FakeOneRoster.fromOneRosterCsv(dirs["oneroster-rest"]), { oauth: OAUTH })),
      (fake) => Effect.promise(() => fake.close())
    )
    const rest12 = yield* Effect.acquireRelease(
      Effect.promise(async () => FakeOneRoster.start(await FakeOneRoster.fromOneRosterCsv(dirs["oneroster-rest-12"]), { oauth2: OAUTH2 })),
      (fake) => Effect.promise(() => fake.close())
    )

    const settings: Record<Provider, Record<string, unknown>> = {
      "oneroster-csv": { path: dirs["oneroster-csv"] },
      // Small pages, so paging is part of what is compared.
      clever: { districtId: cleverDistrict.district.id, tokenFile: secret("clever-token", CLEVER_TOKEN), baseUrl: clever.baseUrl, pageSize: 7 },
      "oneroster-rest": {
        baseUrl: rest.baseUrl, auth: "oauth1", keyFile: secret("key", OAUTH.key), secretFile: secret("secret", OAUTH.secret), pageSize: 7
      },
      "oneroster-csv-12": { path: dirs["oneroster-csv-12"] },
      "oneroster-rest-12": {
        baseUrl: rest12.baseUrl, version: "1.2", auth: "oauth2", tokenUrl: rest12.tokenUrl,
        clientIdFile: secret("client-id", OAUTH2.clientId), clientSecretFile: secret("client-secret", OAUTH2.clientSecret), pageSize: 7
      }
    }
    const store = yield* RosterStore
    const sync = yield* Sync
    const cleverCsvId = (id: string) => cleverDistrict.ids.source(id)?.sourcedId ?? `(unknown Clever id ${id})`
    const synced = {} as Record<Provider, Synced>
    for (const provider of PROVIDERS) {
      const districtId = `${label}-${provider}`
      const kind = provider === "oneroster-csv-12" ? "oneroster-csv" : provider === "oneroster-rest-12" ? "oneroster-rest" : provider
      yield* store.addDistrict({ id: districtId as DistrictId, name: `District ${districtId}`, provider: kind, timezone: ZONE, settings: settings[provider] })
      const run = yield* sync.run(districtId, { request: "full", trigger: "test" })
      synced[provider] = { districtId, runId: run.runId, status: run.status, toCsv: provider === "clever" ? cleverCsvId : (id) => id }
    }
    const sections = cleverDistrict.sections.all()
    return {
      synced,
      cleverPrimary: new Map(sections.map((s) => [s.sis_id, s.teacher === null ? null : cleverCsvId(s.teacher)])),
      cleverSubject: new Map(sections.map((s) => [s.sis_id, s.subject]))
    } satisfies Served
  })

/** The rules district plus the two account cases (see the top of the file). */
const writeRules = (dir: string, domain: string) => {
  writeRulesDistrict(dir, { emailDomain: domain })
  writeCsv(dir, "users", readRows(dir, "users").map((u) => (u["sourcedId"] === "t-06" ? { ...u, email: `t-05@${domain}` } : u)))
}

/** …plus an Art section (subject "Art") and a Health section (subject "Health"), each with a teacher and a student. */
const writeSubjects = (dir: string, domain: string) => {
  writeRules(dir, domain)
  writeCsv(dir, "courses", [
    ...readRows(dir, "courses"),
    { sourcedId: "crs-art", title: "Drawing 7", schoolYearSourcedId: "term-year", orgSourcedId: "org-s1", subjects: "Art" },
    { sourcedId: "crs-health", title: "Wellness 7", schoolYearSourcedId: "term-year", orgSourcedId: "org-s1", subjects: "Health" }
  ])
  const section = (sourcedId: string, title: string, course: string, subject: string, period: string) => ({
    sourcedId, title, courseSourcedId: course, classType: "scheduled", schoolSourcedId: "org-s1", termSourcedIds: "term-year", periods: period, subjects: subject
  })
  writeCsv(dir, "classes", [
    ...readRows(dir, "classes"),
    section("cls-art", "Drawing 7 - A", "crs-art", "Art", "8"),
    section("cls-health", "Wellness 7 - A", "crs-health", "Health", "9")
  ])
  const enrollment = (sourcedId: string, cls: string, user: string, role: string) => ({
    sourcedId, classSourcedId: cls, schoolSourcedId: "org-s1", userSourcedId: user, role, primary: role === "teacher" ? "true" : "false"
  })
  writeCsv(dir, "enrollments", [
    ...readRows(dir, "enrollments"),
    enrollment("e-art-t", "cls-art", "t-08", "teacher"),
    enrollment("e-art-s", "cls-art", "s-1", "student"),
    enrollment("e-health-t", "cls-health", "t-09", "teacher"),
    enrollment("e-health-s", "cls-health", "s-1", "student")
  ])
}

const ParityLive = Layer.scoped(
  Parity,
  Effect.gen(function*() {
    const root = yield* Effect.acquireRelease(Effect.sync(() => tempDir("rules-parity-")), (tmp) => Effect.sync(() => tmp.remove()))
    const rules = yield* serveAll(root.dir, "rules", writeRules)
    const subjects = yield* serveAll(root.dir, "subjects", writeSubjects)
    return { rules, subjects }
  })
)

const byKey = <A>(entries: Iterable<readonly [string, A]>): Record<string, A> =>
  Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

const fingerprint = ({ districtId, runId, toCsv }: Synced) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const findings = yield* sql<{ readonly code: string; readonly sourceId: string | null; readonly detail: string }>`
      SELECT code, source_id, detail FROM findings WHERE run_id = ${runId} AND code IN ${sql.in(RULE_CODES)}`

    const classes = yield* sql<{ readonly sourceId: string; readonly active: boolean; readonly deactivationReason: string | null }>`
      SELECT source_id, active, deactivation_reason FROM classes WHERE district_id = ${districtId}`
    const sections = new Map(classes.map((c) => [toCsv(c.sourceId), c.active ? "active" : `inactive: ${c.deactivationReason}`]))
    for (const f of findings) {
      if (f.code === "excluded_section" && f.sourceId !== null) sections.set(toCsv(f.sourceId), `excluded: ${f.detail}`)
    }

    const taught = yield* sql<{ readonly classSourceId: string; readonly userSourceId: string; readonly isPrimary: boolean }>`
      SELECT e.class_source_id, e.user_source_id, e.is_primary
      FROM enrollments e JOIN classes c ON c.id = e.class_id AND c.active
      WHERE e.district_id = ${districtId} AND e.role = 'teacher' AND e.ended_at IS NULL`
    const teachers = new Map<string, Array<{ readonly user: string; readonly primary: boolean }>>()
    for (const e of taught) {
      const cls = toCsv(e.classSourceId)
      teachers.set(cls, [...(teachers.get(cls) ?? []), { user: toCsv(e.userSourceId), primary: e.isPrimary }])
    }

    const students = yield* sql<{ readonly sourceId: string; readonly under13: boolean; readonly gradeLevels: ReadonlyArray<string> }>`
      SELECT source_id, under_13, grade_levels FROM users WHERE district_id = ${districtId} AND 'student' = ANY (roles)`
    const links = yield* sql<{ readonly sourceId: string; readonly method: string | null; readonly activation: string | null }>`
      SELECT u.source_id, l.method, l.activation FROM users u LEFT JOIN account_links l ON l.user_id = u.id
      WHERE u.district_id = ${districtId}`
    const [mails] = yield* sql<{ readonly n: number }>`
      SELECT count(*)::int AS n FROM outbox WHERE district_id = ${districtId} AND kind = 'teacher_activation'`

    return {
      sections: byKey(sections),
      teachers: byKey([...teachers].map(([cls, list]) => [cls, teacherList(list)] as const)),
      students: byKey(students.map((s) => [toCsv(s.sourceId), { under13: s.under13, gradeLevels: [...s.gradeLevels] }] as const)),
      links: byKey(links.map((l) => [toCsv(l.sourceId), l.method === null ? "none" : `${l.method}/${l.activation}`] as const)),
      activationMails: mails!.n,
      findings: findings.map((f) => `${f.code} ${f.sourceId === null ? "(none)" : toCsv(f.sourceId)}`).sort()
    } satisfies Fingerprint
  })

const teacherList = (list: ReadonlyArray<{ readonly user: string; readonly primary: boolean }>) =>
  [...list]
    .sort((a, b) => Number(b.primary) - Number(a.primary) || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0))
    .map((t) => (t.primary ? `${t.user} (primary)` : t.user))

/**
 * What the CSV outcome becomes for Clever, by the API's differences only:
 *
 * - **One primary teacher, chosen by Clever.** A Clever section has one `teacher` field (the
 *   primary, "guaranteed") beside `teachers`; "sections can have only one primary teacher".
 *   A section marked with none or several primaries in the SIS reaches us with exactly the
 *   one Clever named, so `no_primary_teacher` and `several_primary_teachers` cannot arise
 *   (for sections with teachers) and the primary is Clever's choice, not our rule's.
 * - **Source IDs are Clever ids.** The co-teacher limit keeps the first nine co-teachers by
 *   source ID — the same rule, over Clever's ids (hash-like ObjectIDs), so which two of
 *   cls-big's eleven co-teachers are left out differs from the CSV district's.
 */
const cleverExpectation = (csv: Fingerprint, served: Served): Fingerprint => {
  const teachers = { ...csv.teachers }
  for (const [cls, list] of Object.entries(csv.teachers)) {
    const primary = served.cleverPrimary.get(cls) ?? null
    const users = list.map((t) => t.replace(/ \(primary\)$/, ""))
    teachers[cls] = teacherList(users.map((user) => ({ user, primary: user === primary })))
  }
  // cls-big: t-02 primary; of t-03…t-13 the first nine by Clever id.
  const byCleverId = TEACHERS.slice(2).sort((a, b) => (FakeClever.cleverIdFor("users", a) < FakeClever.cleverIdFor("users", b) ? -1 : 1))
  teachers["cls-big"] = teacherList([{ user: "t-02", primary: true }, ...byCleverId.slice(0, CO_TEACHER_LIMIT).map((user) => ({ user, primary: false }))])
  return {
    ...csv,
    teachers,
    findings: csv.findings.filter((f) => !f.startsWith("no_primary_teacher ") && !f.startsWith("several_primary_teachers "))
  }
}

const TestLayer = ParityLive.pipe(
  Layer.provideMerge(syncTestLayer(new Map([
    ["rosterd.providers.retryBase", "10 millis"],
    ["rosterd.providers.retryMax", "100 millis"],
    ["rosterd.providers.attempts", "4"],
    ["rosterd.providers.timeout", "5 seconds"]
  ])))
)

layer(TestLayer, { timeout: "180 seconds", excludeTestServices: true })("district rules across providers", (it) => {
  it.effect("the rules district syncs from a CSV set, Clever and OneRoster REST, and the CSV outcome trips every rule", () =>
    Effect.gen(function*() {
      const { rules } = yield* Parity
      for (const provider of PROVIDERS) assert.strictEqual(rules.synced[provider].status, "succeeded", provider)
      // The reference is not vacuous: every compared rule fires in the CSV district.
      const csv = yield* fingerprint(rules.synced["oneroster-csv"])
      assert.deepStrictEqual([...new Set(csv.findings.map((f) => f.split(" ")[0]))].sort(), [...RULE_CODES].sort())
      assert.deepStrictEqual(csv.teachers["cls-big"], ["t-02 (primary)", "t-03", "t-04", "t-05", "t-06", "t-07", "t-08", "t-09", "t-10", "t-11"])
      assert.strictEqual(csv.links["t-07"], "email/active")
      assert.strictEqual(csv.links["t-05"], "none")
      // 13 teachers: not t-07 (an account already in use), not t-05/t-06 (in review); and a-1, the
      // administrator (the rule syncAdmins is on by default).
      assert.strictEqual(csv.links["a-1"], "created/pending")
      assert.strictEqual(csv.activationMails, 11)
    }))

  it.effect("OneRoster REST (ClassLink): the same outcome as the CSV set", () =>
    Effect.gen(function*() {
      const { rules } = yield* Parity
      const csv = yield* fingerprint(rules.synced["oneroster-csv"])
      assert.deepStrictEqual(yield* fingerprint(rules.synced["oneroster-rest"]), csv)
    }))

  it.effect("OneRoster 1.2, as a CSV set and over REST with OAuth 2.0: the same outcome as the 1.1 CSV set", () =>
    Effect.gen(function*() {
      const { rules, subjects } = yield* Parity
      for (const served of [rules, subjects]) {
        const csv = yield* fingerprint(served.synced["oneroster-csv"])
        assert.deepStrictEqual(yield* fingerprint(served.synced["oneroster-csv-12"]), csv)
        assert.deepStrictEqual(yield* fingerprint(served.synced["oneroster-rest-12"]), csv)
      }
    }))

  it.effect("Clever: the same outcome, except the primary teacher Clever names itself and the order of its ids", () =>
    Effect.gen(function*() {
      const { rules } = yield* Parity
      const csv = yield* fingerprint(rules.synced["oneroster-csv"])
      const clever = yield* fingerprint(rules.synced.clever)
      assert.deepStrictEqual(clever, cleverExpectation(csv, rules))
      // The exceptions are real here, not hypothetical: Clever's ids do leave out others.
      assert.notDeepEqual(clever.teachers["cls-big"], csv.teachers["cls-big"])
    }))

  /**
   * Clever's section `subject` is a category from a fixed list ("PE and health", "arts and
   * music", …), not the district's text, and Clever courses carry no subjects. It is read
   * as a subject code, and the default `excludeSubjectCodes` holds the two categories that
   * contain the default subjects. So through Clever an Art section is excluded like
   * everywhere, and a Health section too (it shares "PE and health") — the one difference
   * Clever's API leaves, documented in the README.
   */
  it.effect("Clever's subject categories: an Art section excluded as everywhere; a Health section excluded too (its category is PE and health)", () =>
    Effect.gen(function*() {
      const { subjects } = yield* Parity
      for (const provider of PROVIDERS) assert.strictEqual(subjects.synced[provider].status, "succeeded", provider)
      const csv = yield* fingerprint(subjects.synced["oneroster-csv"])
      const rest = yield* fingerprint(subjects.synced["oneroster-rest"])
      const clever = yield* fingerprint(subjects.synced.clever)
      assert.deepStrictEqual(rest, csv)

      const subjectRule = "excluded: its subject is one the district excludes; the section is not rostered"
      assert.deepStrictEqual([csv.sections["cls-art"], csv.sections["cls-health"]], [subjectRule, "active"])
      assert.deepStrictEqual([subjects.cleverSubject.get("cls-art"), subjects.cleverSubject.get("cls-health")], ["arts and music", "PE and health"])
      assert.deepStrictEqual([clever.sections["cls-art"], clever.sections["cls-health"]], [subjectRule, subjectRule])
      // Everything else as in the rules district.
      const withoutProbe = (f: Fingerprint) => ({
        ...f,
        sections: { ...f.sections, "cls-art": "(probe)", "cls-health": "(probe)" },
        teachers: Object.fromEntries(Object.entries(f.teachers).filter(([cls]) => cls !== "cls-art" && cls !== "cls-health")),
        findings: f.findings.filter((x) => !x.endsWith(" cls-art") && !x.endsWith(" cls-health"))
      })
      assert.deepStrictEqual(withoutProbe(clever), withoutProbe(cleverExpectation(csv, subjects)))
    }))
})
