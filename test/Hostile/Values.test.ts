import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { DistrictId } from "../../src/Domain/District.ts"
import type { RunSummary } from "../../src/Reconcile/SyncRun.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { writeConfig } from "../support/Cli.ts"
import { rosterd } from "../support/CliFixture.ts"
import { asOwner, TestDatabaseUrl } from "../support/Database.ts"
import { fromOneRosterCsv as cleverFromCsv, start as startClever } from "../support/FakeClever/index.ts"
import { fromOneRosterCsv, type OneRosterDistrict, start as startOneRoster } from "../support/FakeOneRoster/index.ts"
import type { CleverDistrict } from "../support/FakeClever/CleverDistrict.ts"
import { readRows, tempDir, writeCsv, writeSmallDistrict } from "../support/Fixtures.ts"
import {
  assertBoundedMemory,
  assertNames,
  assertNoLeak,
  assertNothingApplied,
  CapturedLogs,
  captureLogsLayer,
  lastRunId,
  runRecordText,
  withPeakMemory
} from "../support/Hostile.ts"
import { fastProviderRetries, syncTestLayer } from "../support/Layers.ts"

/**
 * Hostile values (issue 14, "bad values never block a district"), through real syncs of the
 * small district (1 school, 1 term, 2 classes, 2 teachers, 3 students) from a CSV folder, the
 * fake OneRoster REST server and the fake Clever API. Every case checks that:
 *
 * - the run goes on: the district's other records apply (or, for a database error, the run
 *   fails with nothing applied);
 * - the finding (or the run's error) names what and where — file or endpoint, line or
 *   position, source ID, field — and never the value: not in the findings, the run record,
 *   nor any log line (all levels captured);
 * - the store never holds the bad value: a held record keeps its stored version, a cleared
 *   field is empty, a cleaned one holds exactly the documented normalisation.
 *
 * Users of the small district, by line of users.csv: t-1 2, t-2 3, s-1 4, s-2 5, s-3 6.
 */

const TestLayer = syncTestLayer(new Map([...fastProviderRetries, ["rosterd.csv.settleSeconds", "0"]]))

const BEARER = "hostile-values-bearer"
const CLEVER_TOKEN = "hostile-values-clever-token"

type Row = Record<string, string>

const sync = (id: string) => Effect.flatMap(Sync, (s) => s.run(id, { request: "full", trigger: "test" }))

const addDistrict = (id: string, provider: "oneroster-csv" | "oneroster-rest" | "clever", settings: Record<string, unknown>) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider, timezone: "America/Chicago", settings }))

interface Finding {
  readonly severity: string
  readonly code: string
  readonly entity: string
  readonly sourceId: string | null
  readonly file: string | null
  readonly line: number | null
  readonly detail: string
}

const findingsOf = (runId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<Finding>`SELECT severity, code, entity, source_id, file, line, detail FROM findings
                 WHERE run_id = ${runId} AND code NOT IN ('account_review') ORDER BY code, entity, line`)

/** Every roster row of a district as Postgres prints it (row literals: control characters raw, not escaped). */
const storeText = (district: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const parts: Array<string> = []
    for (const table of ["schools", "terms", "courses", "classes", "users", "enrollments"]) {
      const [row] = yield* sql.unsafe<{ readonly text: string | null }>(
        `SELECT string_agg(t::text, E'\\n') AS text FROM ${table} t WHERE district_id = $1`,
        [district]
      )
      parts.push(row?.text ?? "")
    }
    return parts.join("\n")
  })

const storedUser = (district: string, sourceId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly version: string; readonly givenName: string | null; readonly email: string | null; readonly birthDate: string | null }>`
      SELECT ctid::text || ':' || xmin::text AS version, given_name, email, birth_date::text AS birth_date
      FROM users WHERE district_id = ${district} AND source_id = ${sourceId}`.pipe(Effect.map((rows) => rows[0])))

const sourceIdsOf = (district: string, table: "users" | "classes" | "enrollments") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ readonly sourceId: string }>(
      `SELECT source_id FROM ${table} WHERE district_id = $1 AND ${table === "enrollments" ? "ended_at IS NULL" : "active"} ORDER BY source_id`,
      [district]
    ).pipe(Effect.map((rows) => rows.map((r) => r.sourceId))))

/**
 * The outcome of one hostile sync: its summary (or failure), findings, the run record's
 * text, and every log line it wrote.
 */
const hostileSync = (district: string) =>
  Effect.gen(function*() {
    const logs = yield* CapturedLogs
    logs.lines.length = 0
    const exit = yield* Effect.exit(sync(district))
    const runId = exit._tag === "Success" ? exit.value.runId : (yield* lastRunId(district))!
    const record = yield* runRecordText(runId)
    const findings = yield* findingsOf(runId)
    return { exit, runId, findings, record, logs: logs.text() }
  })

/** Asserts that no output of the run (findings, run record, logs) holds any of `values`. */
const assertNoEcho = (outcome: { readonly findings: ReadonlyArray<Finding>; readonly record: { readonly text: string }; readonly logs: string }, values: ReadonlyArray<string>) => {
  assertNoLeak(outcome.logs, values, "a log line")
  assertNoLeak(outcome.record.text, values, "the run record")
  assertNoLeak(outcome.findings.map((f) => `${f.sourceId ?? ""} ${f.file ?? ""} ${f.detail}`).join("\n"), values, "a finding")
}

const succeeded = (exit: Exit.Exit<RunSummary, unknown>): RunSummary => {
  if (Exit.isFailure(exit)) assert.fail(`the run failed: ${Cause.pretty(exit.cause)}`)
  return (exit as Exit.Success<RunSummary, unknown>).value
}

const findingText = (f: Finding) => `${f.code} ${f.file} line ${f.line} ${f.sourceId} ${f.detail}`

const only = (findings: ReadonlyArray<Finding>, code: string) => {
  const found = findings.filter((f) => f.code === code)
  assert.lengthOf(found, 1, `expected one ${code} finding, got ${JSON.stringify(findings.map((f) => f.code))}`)
  return found[0]!
}

/** A CSV district in a folder of its own: the small district, changed by `tamper`, synced once. */
const csvCase = (id: string, tamper: (dir: string) => void) =>
  Effect.acquireUseRelease(
    Effect.sync(() => tempDir(`rosterd-hostile-${id}-`)),
    (tmp) =>
      Effect.gen(function*() {
        writeSmallDistrict(tmp.dir, `${id}.example`)
        tamper(tmp.dir)
        yield* addDistrict(id, "oneroster-csv", { path: tmp.dir })
        return yield* hostileSync(id)
      }),
    (tmp) => Effect.sync(() => tmp.remove())
  )

/** The same, but synced clean first: the second, tampered sync must leave held records as stored. */
const csvCaseAfterCleanSync = <A, E, R>(id: string, tamper: (dir: string) => void, use: (outcome: Effect.Effect.Success<ReturnType<typeof hostileSync>>) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => tempDir(`rosterd-hostile-${id}-`)),
    (tmp) =>
      Effect.gen(function*() {
        writeSmallDistrict(tmp.dir, `${id}.example`)
        yield* addDistrict(id, "oneroster-csv", { path: tmp.dir })
        const first = yield* sync(id)
        assert.strictEqual(first.status, "succeeded")
        tamper(tmp.dir)
        return yield* use(yield* hostileSync(id))
      }),
    (tmp) => Effect.sync(() => tmp.remove())
  )

const editRows = (dir: string, file: "users" | "classes" | "enrollments" | "demographics", edit: (row: Row) => Row) =>
  writeCsv(dir, file, readRows(dir, file).map(edit))

const editUser = (dir: string, sourcedId: string, fields: Row) =>
  editRows(dir, "users", (u) => (u.sourcedId === sourcedId ? { ...u, ...fields } : u))

/** A OneRoster REST district served by the fake server from the small district, changed by `tamper`. */
const restCase = (id: string, tamper: (district: OneRosterDistrict) => void) =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const tmp = tempDir(`rosterd-hostile-${id}-`)
      const csv = NodePath.join(tmp.dir, "csv")
      writeSmallDistrict(csv, `${id}.example`)
      const district = await fromOneRosterCsv(csv)
      tamper(district)
      const server = await startOneRoster(district, { bearer: BEARER })
      const bearerFile = NodePath.join(tmp.dir, "bearer")
      Fs.writeFileSync(bearerFile, BEARER)
      return { tmp, server, bearerFile }
    }),
    ({ bearerFile, server }) =>
      Effect.gen(function*() {
        yield* addDistrict(id, "oneroster-rest", { baseUrl: server.baseUrl, auth: "bearer", bearerFile, pageSize: 100 })
        return yield* hostileSync(id)
      }),
    ({ server, tmp }) => Effect.promise(async () => {
      await server.close()
      tmp.remove()
    })
  )

/** A Clever district served by the fake Clever API from the small district, changed by `tamper`. */
const cleverCase = (id: string, tamper: (district: CleverDistrict) => void) =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const tmp = tempDir(`rosterd-hostile-${id}-`)
      const csv = NodePath.join(tmp.dir, "csv")
      writeSmallDistrict(csv, `${id}.example`)
      const district = await cleverFromCsv(csv)
      tamper(district)
      const server = await startClever(district, { token: CLEVER_TOKEN, rateLimit: false })
      const tokenFile = NodePath.join(tmp.dir, "token")
      Fs.writeFileSync(tokenFile, CLEVER_TOKEN)
      return { tmp, server, tokenFile, districtId: district.district.id }
    }),
    ({ districtId, server, tokenFile }) =>
      Effect.gen(function*() {
        yield* addDistrict(id, "clever", { districtId, tokenFile, baseUrl: server.baseUrl, pageSize: 100 })
        return yield* hostileSync(id)
      }),
    ({ server, tmp }) => Effect.promise(async () => {
      await server.close()
      tmp.remove()
    })
  )

layer(TestLayer, { timeout: "300 seconds", excludeTestServices: true })("hostile: values", (it) => {
  // ------------------------------------------------------------------------------ dates

  it.effect("birth date 2023-02-30 (no such day) → the demographics row is held (invalid_record names birthDate); the stored birth date stays", () =>
    csvCaseAfterCleanSync("feb-30", (dir) => editRows(dir, "demographics", (d) => (d.sourcedId === "s-2" ? { ...d, birthDate: "2023-02-30" } : d)), (outcome) =>
      Effect.gen(function*() {
        const summary = succeeded(outcome.exit)
        assert.deepStrictEqual(summary.counts.users, { created: 0, updated: 0, deactivated: 0, unchanged: 5 })
        const held = only(outcome.findings, "invalid_record")
        assertNames(findingText(held), ["demographics.csv", "line 3", "s-2", "birthDate"], "the finding")
        assertNoEcho(outcome, ["2023-02-30", "2013-11-20"])
        assert.strictEqual((yield* storedUser("feb-30", "s-2"))!.birthDate, "2013-11-20")
      })).pipe(Effect.provide(captureLogsLayer)))

  it.effect("birth date 0000-01-01 (year 0000, which Postgres refuses) → held, not a failed COPY; the other students' birth dates apply", () =>
    csvCaseAfterCleanSync("year-0", (dir) =>
      editRows(dir, "demographics", (d) => (d.sourcedId === "s-1" ? { ...d, birthDate: "0000-01-01" } : d.sourcedId === "s-3" ? { ...d, birthDate: "2014-07-10" } : d)), (outcome) =>
      Effect.gen(function*() {
        const summary = succeeded(outcome.exit)
        assert.strictEqual(summary.status, "succeeded")
        assert.strictEqual(summary.counts.users.updated, 1, "s-3's new birth date applies")
        const held = only(outcome.findings, "invalid_record")
        assertNames(findingText(held), ["demographics.csv", "line 2", "s-1", `"birthDate"`, "1900-01-01 to 2100-12-31"], "the finding")
        assertNoEcho(outcome, ["0000-01-01", "2014-03-01"])
        assert.strictEqual((yield* storedUser("year-0", "s-1"))!.birthDate, "2014-03-01")
        assert.strictEqual((yield* storedUser("year-0", "s-3"))!.birthDate, "2014-07-10")
      })).pipe(Effect.provide(captureLogsLayer)))

  it.effect("birth date 1850-06-01 (before 1900) → held (outside 1900–2100); the user itself applies", () =>
    Effect.gen(function*() {
      const outcome = yield* csvCase("born-1850", (dir) => editRows(dir, "demographics", (d) => (d.sourcedId === "s-2" ? { ...d, birthDate: "1850-06-01" } : d)))
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 5)
      assertNames(findingText(only(outcome.findings, "invalid_record")), ["demographics.csv", "line 3", "s-2", "birthDate"], "the finding")
      assertNoEcho(outcome, ["1850-06-01"])
      assert.isNull((yield* storedUser("born-1850", "s-2"))!.birthDate)
      assert.notInclude(yield* storeText("born-1850"), "1850-06-01")
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("enrollment endDate 9999-12-31 (\"no end\") → that enrollment is held (outside 1990–2100), the other four apply", () =>
    Effect.gen(function*() {
      const outcome = yield* csvCase("end-9999", (dir) => editRows(dir, "enrollments", (e) => (e.sourcedId === "e-4" ? { ...e, endDate: "9999-12-31" } : e)))
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.enrollments.created, 4)
      assertNames(findingText(only(outcome.findings, "invalid_record")), ["enrollments.csv", "line 5", "e-4", "endDate", "1990-01-01 to 2100-12-31"], "the finding")
      assertNoEcho(outcome, ["9999-12-31"])
      assert.deepStrictEqual(yield* sourceIdsOf("end-9999", "enrollments"), ["e-1", "e-2", "e-3", "e-5"])
      assert.notInclude(yield* storeText("end-9999"), "9999-12-31")
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("OneRoster JSON enrollment beginDate with trailing garbage (2024-08-15; DROP TABLE users) → held (it used to be cut to its first 10 characters)", () =>
    Effect.gen(function*() {
      const garbage = "2024-08-15; DROP TABLE users"
      const outcome = yield* restCase("rest-garbage-date", (district) => {
        const [e3] = district.enrollments.all().filter((e) => e.user.sourcedId === "s-1")
        district.update("enrollments", e3!.sourcedId, { beginDate: garbage })
      })
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 5)
      assert.strictEqual(summary.counts.enrollments.created, 4)
      const held = only(outcome.findings, "invalid_record")
      assertNames(findingText(held), ["GET /ims/oneroster/v1p1/enrollments", "beginDate"], "the finding")
      assertNoEcho(outcome, ["DROP TABLE", garbage])
      assert.notInclude(yield* storeText("rest-garbage-date"), "DROP")
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("OneRoster JSON birth date 0000-01-01 → held; the user applies without one", () =>
    Effect.gen(function*() {
      const outcome = yield* restCase("rest-year-0", (district) => {
        district.update("demographics", "s-3", { birthDate: "0000-01-01" })
      })
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 5)
      assertNames(findingText(only(outcome.findings, "invalid_record")), ["GET /ims/oneroster/v1p1/demographics", "s-3", "birthDate"], "the finding")
      assertNoEcho(outcome, ["0000-01-01"])
      assert.isNull((yield* storedUser("rest-year-0", "s-3"))!.birthDate)
      assert.strictEqual((yield* storedUser("rest-year-0", "s-1"))!.birthDate, "2014-03-01")
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("Clever dob 1/1/0000 → held (outside 1900–2100); the student and the others' birth dates apply", () =>
    Effect.gen(function*() {
      const outcome = yield* cleverCase("clever-year-0", (district) => {
        const id = district.ids.require("users", "s-2")
        district.updateUser(id, (u) => ({ ...u, roles: { ...u.roles, student: { ...u.roles.student!, dob: "1/1/0000" } } }))
      })
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 5)
      const held = only(outcome.findings, "invalid_record")
      assertNames(held.detail, ["birthDate"], "the finding")
      assertNames(held.file ?? "", ["/v3.0/users"], "the finding")
      assertNoEcho(outcome, ["1/1/0000", "0000-01-01"])
      assert.notInclude(yield* storeText("clever-year-0"), "0000-01-01")
    }).pipe(Effect.provide(captureLogsLayer)))

  // ------------------------------------------------------------------------------ control characters

  it.effect("a NUL byte in a given name (Qzx\\0vyl) → stored as Qzxvyl (control_characters names users.csv, line, s-2, givenName); the COPY no longer fails", () =>
    Effect.gen(function*() {
      const outcome = yield* csvCase("nul-name", (dir) => editUser(dir, "s-2", { givenName: "Qzx\u0000vyl" }))
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 5)
      const cleaned = only(outcome.findings, "control_characters")
      assertNames(findingText(cleaned), ["users.csv", "line 5", "s-2", `"givenName"`], "the finding")
      assert.strictEqual(cleaned.severity, "warning")
      assertNoEcho(outcome, ["Qzx", "vyl"])
      assert.strictEqual((yield* storedUser("nul-name", "s-2"))!.givenName, "Qzxvyl")
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("a NUL byte in a user's sourcedId → the user is held out (invalid_record at its line, naming sourceId, echoing no ID); the other four users apply", () =>
    Effect.gen(function*() {
      const outcome = yield* csvCase("nul-id", (dir) => editUser(dir, "s-2", { sourcedId: "s-\u0000Qzx" }))
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 4)
      const held = only(outcome.findings, "invalid_record")
      assert.isNull(held.sourceId)
      assertNames(findingText(held), ["users.csv", "line 5", `"sourceId"`], "the finding")
      assertNoEcho(outcome, ["Qzx"])
      assert.deepStrictEqual(yield* sourceIdsOf("nul-id", "users"), ["s-1", "s-3", "t-1", "t-2"])
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("terminal escape sequences in a class title (\\x1b]0;…\\x07\\x1b[2J) → stored without the control characters; control_characters names classes.csv, line and field", () =>
    Effect.gen(function*() {
      const outcome = yield* csvCase("esc-title", (dir) =>
        editRows(dir, "classes", (c) => (c.sourcedId === "cls-2" ? { ...c, title: "\x1b]0;Pwned-7k\x07\x1b[2J\x1b[HMath 7 - P2" } : c)))
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.classes.created, 2)
      assertNames(findingText(only(outcome.findings, "control_characters")), ["classes.csv", "line 3", "cls-2", `"title"`], "the finding")
      assertNoEcho(outcome, ["Pwned-7k", "\x1b"])
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ readonly title: string }>`SELECT title FROM classes WHERE district_id = 'esc-title' AND source_id = 'cls-2'`
      assert.strictEqual(row!.title, "]0;Pwned-7k[2J[HMath 7 - P2")
      assert.notInclude(yield* storeText("esc-title"), "\x1b")
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("a C1 control (U+0085) inside a class's termSourcedIds → the class is held out (a reference is an identifier); the other class applies", () =>
    Effect.gen(function*() {
      const outcome = yield* csvCase("c1-ref", (dir) =>
        editRows(dir, "classes", (c) => (c.sourcedId === "cls-2" ? { ...c, termSourcedIds: "term-1,term-\u0085Qzx" } : c)))
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.classes.created, 1)
      const held = only(outcome.findings, "invalid_record")
      assertNames(findingText(held), ["classes.csv", "line 3", "cls-2", "termSourceIds"], "the finding")
      assertNoEcho(outcome, ["Qzx"])
      assert.deepStrictEqual(yield* sourceIdsOf("c1-ref", "classes"), ["cls-1"])
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("OneRoster JSON given name with lone surrogates (\\ud800, \\udfff) → stored without them; control_characters names the endpoint, position and field", () =>
    Effect.gen(function*() {
      const outcome = yield* restCase("rest-surrogates", (district) => {
        district.update("users", "s-1", { givenName: "Q\ud800zx\udfffvyl" })
      })
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 5)
      const cleaned = only(outcome.findings, "control_characters")
      assertNames(findingText(cleaned), ["GET /ims/oneroster/v1p1/users", "line 1", "s-1", `"givenName"`], "the finding")
      assertNoEcho(outcome, ["Qzxvyl", "zx"])
      assert.strictEqual((yield* storedUser("rest-surrogates", "s-1"))!.givenName, "Qzxvyl")
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("OneRoster JSON class sourcedId with a NUL byte → held out (no ID echoed); the other class, its enrollments and every user apply", () =>
    Effect.gen(function*() {
      const outcome = yield* restCase("rest-nul-class", (district) => {
        const cls = district.classes.get("cls-2")!
        district.hardDelete("classes", "cls-2")
        const { dateLastModified: _d, status: _s, ...rest } = cls
        district.create("classes", { ...rest, sourcedId: "cls-\u0000Qzx" })
      })
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.classes.created, 1)
      assert.strictEqual(summary.counts.users.created, 5)
      assert.strictEqual(summary.counts.enrollments.created, 3, "cls-1's three enrollments")
      const held = only(outcome.findings, "invalid_record")
      assert.isNull(held.sourceId)
      assertNames(findingText(held), ["GET /ims/oneroster/v1p1/classes", `"sourceId"`], "the finding")
      assertNoEcho(outcome, ["Qzx"])
      assert.deepStrictEqual(yield* sourceIdsOf("rest-nul-class", "classes"), ["cls-1"])
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("right-to-left override characters in a name (U+202E) → kept as given (they are how RTL names are written; rosterd renders no name), no finding", () =>
    Effect.gen(function*() {
      const name = "\u202eQzxvyl\u202c"
      const outcome = yield* csvCase("rtl-name", (dir) => editUser(dir, "s-3", { givenName: name }))
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 5)
      assert.deepStrictEqual(outcome.findings.map((f) => f.code), [])
      assertNoEcho(outcome, ["Qzxvyl"])
      assert.strictEqual((yield* storedUser("rtl-name", "s-3"))!.givenName, name)
    }).pipe(Effect.provide(captureLogsLayer)))

  // ------------------------------------------------------------------------------ e-mail fields

  it.effect("an e-mail field holding a comma list (a@…, b@…) → stored empty (cleared_value names email and why, not the addresses); the user applies", () =>
    Effect.gen(function*() {
      const outcome = yield* csvCase("email-list", (dir) => editUser(dir, "s-2", { email: "qzx1@qzxlist.example, qzx2@qzxlist.example" }))
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 5)
      const cleared = only(outcome.findings, "cleared_value")
      assertNames(findingText(cleared), ["users.csv", "line 5", "s-2", `"email"`, "list of addresses"], "the finding")
      assertNoEcho(outcome, ["qzx1", "qzx2", "qzxlist.example"])
      assert.isNull((yield* storedUser("email-list", "s-2"))!.email)
      assert.notInclude(yield* storeText("email-list"), "qzxlist.example")
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("an e-mail field with a display name (\"Qzx Vyl\" <qzx@…>) → stored empty (cleared_value)", () =>
    Effect.gen(function*() {
      const outcome = yield* csvCase("email-display", (dir) => editUser(dir, "s-2", { email: `"Qzx Vyl" <qzx@display.example>` }))
      succeeded(outcome.exit)
      assertNames(findingText(only(outcome.findings, "cleared_value")), ["users.csv", "line 5", "s-2", `"email"`], "the finding")
      assertNoEcho(outcome, ["Qzx", "display.example"])
      assert.isNull((yield* storedUser("email-display", "s-2"))!.email)
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("an e-mail field with CR/LF and a Bcc header (header injection attempt) → stored empty, never stripped into an address", () =>
    Effect.gen(function*() {
      const outcome = yield* csvCase("email-crlf", (dir) => editUser(dir, "s-1", { email: "qzx@crlf.example\r\nBcc: everyone@evil.example" }))
      succeeded(outcome.exit)
      assertNames(findingText(only(outcome.findings, "cleared_value")), ["users.csv", "line 4", "s-1", `"email"`, "line breaks"], "the finding")
      assertNoEcho(outcome, ["crlf.example", "evil.example", "Bcc"])
      assert.isNull((yield* storedUser("email-crlf", "s-1"))!.email)
      assert.notInclude(yield* storeText("email-crlf"), "evil.example")
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("an e-mail address of 300 characters → stored empty (over 254)", () =>
    Effect.gen(function*() {
      const long = `${"q".repeat(285)}@long.example`
      const outcome = yield* csvCase("email-300", (dir) => editUser(dir, "t-1", { email: long }))
      succeeded(outcome.exit)
      assertNames(findingText(only(outcome.findings, "cleared_value")), ["users.csv", "line 2", "t-1", `"email"`, "254"], "the finding")
      assertNoEcho(outcome, ["qqqqqqqqqq", "long.example"])
      assert.isNull((yield* storedUser("email-300", "t-1"))!.email)
    }).pipe(Effect.provide(captureLogsLayer)))

  // ------------------------------------------------------------------------------ sizes

  it.effect("a given name of 10⁶ characters → stored empty (cleared_value: longer than 256); memory stays bounded", () =>
    Effect.gen(function*() {
      const huge = "Q".repeat(1_000_000)
      const { exit, grewMiB } = yield* withPeakMemory(csvCase("huge-name", (dir) => editUser(dir, "s-3", { givenName: huge })))
      assertBoundedMemory(grewMiB)
      assert.strictEqual(exit._tag, "Success")
      const outcome = (exit as { readonly value: Effect.Effect.Success<ReturnType<typeof hostileSync>> }).value
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 5)
      assertNames(findingText(only(outcome.findings, "cleared_value")), ["users.csv", "line 6", "s-3", `"givenName"`, "longer than 256"], "the finding")
      assertNoEcho(outcome, ["QQQQQQQQQQQQQQQQ"])
      assert.isNull((yield* storedUser("huge-name", "s-3"))!.givenName)
    }).pipe(Effect.provide(captureLogsLayer)))

  it.effect("a sourcedId of 10⁴ characters → the user is held out (invalid_record naming sourceId, the ID not echoed); the others apply", () =>
    Effect.gen(function*() {
      const longId = `s-${"9".repeat(10_000)}`
      const outcome = yield* csvCase("long-id", (dir) => editUser(dir, "s-3", { sourcedId: longId }))
      const summary = succeeded(outcome.exit)
      assert.strictEqual(summary.counts.users.created, 4)
      const held = only(outcome.findings, "invalid_record")
      assert.isNull(held.sourceId)
      assertNames(findingText(held), ["users.csv", "line 6", `"sourceId"`, "256"], "the finding")
      assertNoEcho(outcome, ["9".repeat(50)])
      assert.deepStrictEqual(yield* sourceIdsOf("long-id", "users"), ["s-1", "s-2", "t-1", "t-2"])
    }).pipe(Effect.provide(captureLogsLayer)))

  // ------------------------------------------------------------------------------ database errors

  it.effect("a Postgres error quoting a provider value (a CHECK violation whose detail holds the row) → the run fails with nothing applied; its error names SQLSTATE 23514 and the constraint, never the value", () =>
    Effect.gen(function*() {
      // Adding a constraint takes the table's owner (the tests connect as rosterd's app role).
      yield* asOwner(`ALTER TABLE users ADD CONSTRAINT hostile_values_check CHECK (given_name IS DISTINCT FROM 'Qzx-Canary-Vyl')`)
      const outcome = yield* assertNothingApplied(
        csvCase("db-error", (dir) => editUser(dir, "s-2", { givenName: "Qzx-Canary-Vyl", email: "qzx-canary@db.example" }))
      ).pipe(
        Effect.flatMap((exit) => exit),
        Effect.ensuring(asOwner(`ALTER TABLE users DROP CONSTRAINT hostile_values_check`))
      )
      assert.strictEqual(outcome.exit._tag, "Failure")
      const run = outcome.record.run!
      assert.strictEqual(run.status, "failed")
      assert.strictEqual(run.errorReason, "Database")
      assertNames(run.error ?? "", ["23514", "check violation", "hostile_values_check", "users"], "the run's error")
      assertNoEcho(outcome, ["Qzx", "Canary", "db.example", "Failing row"])
      assert.deepStrictEqual(yield* sourceIdsOf("db-error", "users"), [])
    }).pipe(Effect.provide(captureLogsLayer)))

  // ------------------------------------------------------------------------------ terminal output

  it.effect("a source ID with a right-to-left override printed by rosterd report → escaped as \\u202e on the terminal, the exact ID in --json", () =>
    Effect.gen(function*() {
      const rtlId = "s-\u202e7qzx"
      const outcome = yield* csvCase("rtl-cli", (dir) => {
        writeCsv(dir, "users", [...readRows(dir, "users"), { sourcedId: rtlId, enabledUser: "true", orgSourcedIds: "org-s1", role: "student", grades: "07" }])
      })
      succeeded(outcome.exit)
      assert.deepStrictEqual(only(outcome.findings, "missing_email").sourceId, rtlId)
      const { url } = yield* TestDatabaseUrl
      const work = tempDir("rosterd-hostile-cli-")
      const env = { DATABASE_URL: url, ROSTERD_CONFIG: writeConfig(work.dir, "rosterd:\n  logLevel: warning\n") }
      const [text, json] = yield* Effect.promise(() =>
        Promise.all([rosterd(["report", "rtl-cli"], env), rosterd(["report", "rtl-cli", "--json"], env)])
      ).pipe(Effect.ensuring(Effect.sync(() => work.remove())))
      assert.strictEqual(text.code, 0, text.stderr)
      assert.include(text.stdout, "s-\\u202e7qzx")
      assert.notInclude(text.stdout, "\u202e")
      assert.strictEqual(json.code, 0, json.stderr)
      assert.notInclude(json.stdout, "\u202e")
      assert.include(JSON.stringify(JSON.parse(json.stdout)), rtlId, "--json gives the exact ID")
    }).pipe(Effect.provide(captureLogsLayer)))
})
