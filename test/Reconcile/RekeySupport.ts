import { SqlClient } from "@effect/sql"
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { HEADERS } from "../../bench/OneRosterGenerator.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import type { RunSummary } from "../../src/Reconcile/SyncRun.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import * as FakeOneRoster from "../support/FakeOneRoster/index.ts"
import { readRows, writeCsv } from "../support/Fixtures.ts"

/**
 * Re-keyed sources in tests (src/Reconcile/Rekey.ts, src/Districts/Rekey.ts): the ways a
 * district's source re-keys a CSV folder (new IDs and every reference to them), districts
 * read from such a folder as CSV or through the fake OneRoster REST server, and the views of
 * the store the tests compare.
 */

export const USERS_WITH_METADATA = [...HEADERS.users, "metadata.ic.legacysourceId"]
export const CLASSES_WITH_METADATA = [...HEADERS.classes, "metadata.ic.legacysourceId"]

type Rows = Array<Record<string, string>>
const list = (value: string | undefined) => (value ?? "").split(",").map((v) => v.trim()).filter((v) => v !== "")

/** Maps a comma-separated list of IDs. */
const mapList = (value: string | undefined, f: (id: string) => string) => list(value).map(f).join(",")

/**
 * Re-keys the users of a folder: each user's new ID is `to(old)`; enrollments and
 * demographics follow, and each enrollment gets a new ID too (`enrollment(old)`).
 * `legacy`: the old ID kept in `metadata.ic.legacysourceId` (Infinite Campus 1.1 → 1.2).
 */
export const rekeyUsers = (dir: string, to: (old: string) => string, options: { readonly legacy: boolean }) => {
  const header = options.legacy ? USERS_WITH_METADATA : headerOf(dir, "users")
  writeCsv(
    dir,
    "users",
    readRows(dir, "users").map((u) => ({ ...u, sourcedId: to(u["sourcedId"]!), ...(options.legacy ? { "metadata.ic.legacysourceId": u["sourcedId"]! } : {}) })),
    header
  )
  writeCsv(dir, "enrollments", readRows(dir, "enrollments").map((e) => ({ ...e, sourcedId: `${e["sourcedId"]}-v2`, userSourcedId: to(e["userSourcedId"]!) })))
  writeCsv(dir, "demographics", readRows(dir, "demographics").map((d) => ({ ...d, sourcedId: to(d["sourcedId"]!) })))
}

/** Re-keys the classes of a folder (enrollments follow, with new IDs of their own); `legacy` as for users. */
export const rekeyClasses = (dir: string, to: (old: string) => string, options: { readonly legacy: boolean }) => {
  const header = options.legacy ? CLASSES_WITH_METADATA : HEADERS.classes
  writeCsv(
    dir,
    "classes",
    readRows(dir, "classes").map((c) => ({ ...c, sourcedId: to(c["sourcedId"]!), ...(options.legacy ? { "metadata.ic.legacysourceId": c["sourcedId"]! } : {}) })),
    header
  )
  writeCsv(dir, "enrollments", readRows(dir, "enrollments").map((e) => ({ ...e, sourcedId: `${e["sourcedId"]}-c2`, classSourcedId: to(e["classSourcedId"]!) })))
}

/**
 * An SIS migration of everything but the people: schools, terms, courses and classes get new
 * IDs (`to`), and every reference to them follows (parents, a course's school and school
 * year, a class's school, course and terms, users' orgs, enrollments' class and school).
 */
export const rekeyEverythingButUsers = (dir: string, to: (old: string) => string) => {
  writeCsv(dir, "orgs", readRows(dir, "orgs").map((o) => ({ ...o, sourcedId: to(o["sourcedId"]!), parentSourcedId: mapList(o["parentSourcedId"], to) })))
  writeCsv(
    dir,
    "academicSessions",
    readRows(dir, "academicSessions").map((t) => ({ ...t, sourcedId: to(t["sourcedId"]!), parentSourcedId: mapList(t["parentSourcedId"], to) }))
  )
  writeCsv(
    dir,
    "courses",
    readRows(dir, "courses").map((c) => ({
      ...c,
      sourcedId: to(c["sourcedId"]!),
      schoolYearSourcedId: mapList(c["schoolYearSourcedId"], to),
      orgSourcedId: mapList(c["orgSourcedId"], to)
    }))
  )
  writeCsv(
    dir,
    "classes",
    readRows(dir, "classes").map((c) => ({
      ...c,
      sourcedId: to(c["sourcedId"]!),
      courseSourcedId: mapList(c["courseSourcedId"], to),
      schoolSourcedId: mapList(c["schoolSourcedId"], to),
      termSourcedIds: mapList(c["termSourcedIds"], to)
    }))
  )
  writeCsv(dir, "users", readRows(dir, "users").map((u) => ({ ...u, orgSourcedIds: mapList(u["orgSourcedIds"], to) })), headerOf(dir, "users"))
  writeCsv(
    dir,
    "enrollments",
    readRows(dir, "enrollments").map((e) => ({ ...e, classSourcedId: to(e["classSourcedId"]!), schoolSourcedId: mapList(e["schoolSourcedId"], to) }))
  )
}

/** The header a CSV file of the folder has now. */
export const headerOf = (dir: string, file: keyof typeof HEADERS) =>
  Fs.readFileSync(NodePath.join(dir, `${file}.csv`), "utf8").split("\n", 1)[0]!.split(",")

/** Copies a folder (a district's CSV set) to `to`. */
export const copyFolder = (from: string, to: string) => {
  Fs.mkdirSync(to, { recursive: true })
  for (const name of Fs.readdirSync(from)) Fs.copyFileSync(NodePath.join(from, name), NodePath.join(to, name))
}

// ---------------------------------------------------------------- districts

const OAUTH = { key: "rekey-key", secret: "rekey-secret" }

export const addCsvDistrict = (id: string, path: string, rules: Readonly<Record<string, unknown>> = {}) =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({ id: id as DistrictId, name: id, provider: "oneroster-csv", timezone: "America/Chicago", settings: { path }, rules }))

/** A OneRoster REST district; `syncRest` serves it from a folder. */
export const addRestDistrict = (id: string, root: string, rules: Readonly<Record<string, unknown>> = {}) =>
  Effect.gen(function*() {
    const keyFile = NodePath.join(root, `${id}.key`)
    const secretFile = NodePath.join(root, `${id}.secret`)
    Fs.writeFileSync(keyFile, OAUTH.key)
    Fs.writeFileSync(secretFile, OAUTH.secret)
    return yield* Effect.flatMap(RosterStore, (store) =>
      store.addDistrict({
        id: id as DistrictId,
        name: id,
        provider: "oneroster-rest",
        timezone: "America/Chicago",
        settings: { baseUrl: "http://127.0.0.1:9", auth: "oauth1", keyFile, secretFile, pageSize: 1000 },
        rules
      }))
  })

/** A full sync of a CSV district. */
export const syncCsv = (id: string) => Effect.flatMap(Sync, (s) => s.run(id, { request: "full", trigger: "test" }))

/** A full sync of a REST district, the fake serving `dir` as it is now. */
export const syncRest = (id: string, dir: string) =>
  Effect.scoped(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const fake = yield* Effect.acquireRelease(
      Effect.promise(async () => FakeOneRoster.start(await FakeOneRoster.fromOneRosterCsv(dir), { oauth: OAUTH })),
      (fake) => Effect.promise(() => fake.close())
    )
    yield* sql`UPDATE districts SET settings = settings || ${JSON.stringify({ baseUrl: fake.baseUrl })}::jsonb WHERE id = ${id}`
    return yield* Effect.flatMap(Sync, (s) => s.run(id, { request: "full", trigger: "test" }))
  }))

// ---------------------------------------------------------------- views of the store

/** Surrogate keys, the district and times: what differs between two districts holding the same roster. */
const NOT_COMPARED = [
  "id", "district_id", "created_at", "updated_at", "deactivated_at", "started_at", "ended_at", "class_id", "user_id", "account_id",
  "first_seen_at", "owner_account_id"
]

/**
 * A district's roster as a clean sync leaves it: its active schools, terms, courses,
 * classes and users and its open enrollments (every column but surrogate keys, the district
 * and times), and its users' current identities — each a sorted list of rows.
 */
export const rosterView = (district: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const drop = `ARRAY[${NOT_COMPARED.map((c) => `'${c}'`).join(", ")}]`
    const out: Record<string, ReadonlyArray<string>> = {}
    for (const [table, where] of [
      ["schools", "active"],
      ["terms", "active"],
      ["courses", "active"],
      ["classes", "active"],
      ["users", "active"],
      ["enrollments", "ended_at IS NULL"]
    ] as const) {
      const rows = yield* sql.unsafe<{ readonly row: string }>(
        `SELECT (to_jsonb(t) - ${drop})::text AS row FROM ${table} t WHERE t.district_id = $1 AND ${where} ORDER BY 1`,
        [district]
      )
      out[table] = rows.map((r) => r.row)
    }
    const identities = yield* sql<{ readonly row: string }>`
      SELECT jsonb_build_array(u.source_id, i.provider, i.kind, i.type, i.value)::text AS row
      FROM user_identities i JOIN users u ON u.id = i.user_id
      WHERE i.district_id = ${district} AND i.ended_at IS NULL ORDER BY 1`
    out["user_identities"] = identities.map((r) => r.row)
    return out
  })

/** Asserts two districts hold the same roster (`rosterView`), table by table, with a readable first difference. */
export const assertSameRoster = (actual: Record<string, ReadonlyArray<string>>, expected: Record<string, ReadonlyArray<string>>, label: string) => {
  for (const table of Object.keys(expected)) {
    const a = actual[table] ?? []
    const e = expected[table] ?? []
    const missing = e.filter((row) => !a.includes(row))
    const extra = a.filter((row) => !e.includes(row))
    assert.deepStrictEqual({ table, count: a.length, missing: missing.slice(0, 3), extra: extra.slice(0, 3) }, { table, count: e.length, missing: [], extra: [] }, label)
  }
}

/**
 * What must survive a re-key unchanged: rows (by surrogate id) of users, classes, accounts,
 * links and enrollments (every period, open or ended), teacher-made memberships.
 */
export const survivors = (district: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const one = (text: string) => sql.unsafe<{ readonly v: string }>(text, [district]).pipe(Effect.map((rows) => rows.map((r) => r.v)))
    return {
      users: yield* one(`SELECT id || ':' || active AS v FROM users WHERE district_id = $1 ORDER BY id`),
      classes: yield* one(`SELECT id || ':' || active AS v FROM classes WHERE district_id = $1 ORDER BY id`),
      links: yield* one(`SELECT l.user_id || '>' || l.account_id || ':' || l.activation || ':' || l.method AS v
                         FROM account_links l JOIN users u ON u.id = l.user_id WHERE u.district_id = $1 ORDER BY 1`),
      accounts: yield* one(`SELECT a.id || ':' || a.state AS v FROM accounts a
                            WHERE a.district_id = $1 OR a.id IN (SELECT l.account_id FROM account_links l JOIN users u ON u.id = l.user_id
                                                                 WHERE u.district_id = $1) ORDER BY a.id`),
      enrollments: yield* one(`SELECT id || ':' || class_id || ':' || user_id || ':' || (ended_at IS NULL) AS v
                               FROM enrollments WHERE district_id = $1 ORDER BY id`),
      teacherMade: yield* one(`SELECT e.id || ':' || e.class_id || ':' || e.user_id || ':' || (e.ended_at IS NULL) AS v
                               FROM enrollments e JOIN users u ON u.id = e.user_id
                               WHERE e.district_id IS NULL AND u.district_id = $1 ORDER BY e.id`)
    }
  })

/** Rows of the district deactivated (or ended) after `since`. */
export const deactivatedSince = (district: string, since: Date) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly n: number }>`
      SELECT ((SELECT count(*) FROM users WHERE district_id = ${district} AND deactivated_at > ${since})
            + (SELECT count(*) FROM classes WHERE district_id = ${district} AND deactivated_at > ${since})
            + (SELECT count(*) FROM schools WHERE district_id = ${district} AND deactivated_at > ${since})
            + (SELECT count(*) FROM terms WHERE district_id = ${district} AND deactivated_at > ${since})
            + (SELECT count(*) FROM courses WHERE district_id = ${district} AND deactivated_at > ${since})
            + (SELECT count(*) FROM enrollments WHERE district_id = ${district} AND ended_at > ${since}))::int AS n`
    return row!.n
  })

export const heldRekey = (run: RunSummary) => run.held?.tripped.filter((t) => t.rule === "rekey_suspected").map((t) => t.kind) ?? []

export type { Rows }
