import { SqlClient } from "@effect/sql"
import { Data, Effect, Schema } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { DistrictBusy, DistrictNotFound } from "../Domain/Errors.ts"
import { isUsableId } from "../Domain/Values.ts"
import { readOperatorCsv } from "../Csv/OperatorFile.ts"
import { Entities, type KeyedKind } from "../Reconcile/Entities.ts"
import { cachedColumns } from "../Reconcile/Staging.ts"
import { EntityKinds } from "../Domain/Roster.ts"
import { digestTable } from "../Store/DigestTables.ts"
import { HoldDecided, HoldNotFound } from "../Reconcile/Holds.ts"
import { LEASE_NAMESPACE } from "../Reconcile/Lease.ts"

/**
 * `rosterd district rekey` (README "Re-keyed sources"): the district's records keep their
 * rows — and with them accounts, links, enrollment history, teacher-made class memberships —
 * while their source IDs are rewritten in place to the ones the source now uses.
 *
 * - `--run <run>` applies the mapping a run held as a suspected re-key proposed
 *   (src/Reconcile/Rekey.ts); the hold becomes `rekeyed`.
 * - `--map <csv>` applies an operator's: columns `kind` (`schools`, `terms`, `courses`,
 *   `classes`, `users`, `enrollments`; `orgs` and `academicSessions` are read as schools and
 *   terms), `old_source_id`, `new_source_id`, and optionally `district`.
 *
 * **Refused, nothing changed**, when the mapping is not one-to-one (an old or a new ID twice
 * in a kind, an ID mapped onto itself), names an ID the district's records of that kind do
 * not have (one of another kind: "crosses kinds"), maps onto an ID a record of that kind
 * already has (active or not: a returning record would collide), names another district,
 * or — `--run` — when the store changed since the proposal (a record no longer carries its
 * old ID). One transaction, under the district's lease (a sync's session lock excludes it),
 * as the sync's writer (`rosterd.writer`: the lock triggers let it through), audited; a dry
 * run does everything and rolls back, so its counts are exactly what a real one would do.
 *
 * **What is rewritten** (`REWRITES`): every column that holds a source ID of a roster record
 * — a record's own ID and every reference to it (a class's school, course and terms, a
 * course's school and school year, a user's schools, a school's and a term's parent, an
 * enrollment's class, person and school (ended periods too: they are copies of the record's
 * identity), an in-product admin's schools, a user's `source_id` identity). History is not:
 * findings, change lists and held changes say what a run saw, under the IDs it had then
 * (`HISTORY_COLUMNS`). Each record rewritten is kept in `rekey_records` (old and new ID).
 *
 * The held run's other changes are not replayed: the next run reads the source again and
 * applies them (it now finds the records under their new IDs), so the store ends as a
 * clean sync of the new IDs would leave it.
 */

/** The kinds a mapping names; keyed kinds are the live tables', `enrollments` an open enrollment's own ID. */
export type RekeyKind = KeyedKind | "enrollments"

const KIND_NAMES: Readonly<Record<string, RekeyKind>> = {
  schools: "orgs",
  orgs: "orgs",
  terms: "terms",
  academicSessions: "terms",
  courses: "courses",
  classes: "classes",
  users: "users",
  enrollments: "enrollments"
}

export const kindLabel = (kind: RekeyKind) => (kind === "enrollments" ? "enrollments" : Entities[kind].label)
const tableOf = (kind: RekeyKind) => (kind === "enrollments" ? "enrollments" : Entities[kind].table!)
const ORDER: ReadonlyArray<RekeyKind> = ["orgs", "terms", "courses", "classes", "users", "enrollments"]

/** A column holding source IDs of `kind`, rewritten by a re-key. */
export interface Rewrite {
  readonly table: string
  readonly column: string
  readonly kind: RekeyKind
  /** The record's own ID (matched by row id); otherwise a reference (matched by value). */
  readonly own?: boolean
  readonly array?: boolean
}

export const REWRITES: ReadonlyArray<Rewrite> = [
  { table: "schools", column: "source_id", kind: "orgs", own: true },
  { table: "schools", column: "parent_source_id", kind: "orgs" },
  { table: "terms", column: "source_id", kind: "terms", own: true },
  { table: "terms", column: "parent_source_id", kind: "terms" },
  { table: "courses", column: "source_id", kind: "courses", own: true },
  { table: "courses", column: "school_year_source_id", kind: "terms" },
  { table: "courses", column: "org_source_id", kind: "orgs" },
  { table: "classes", column: "source_id", kind: "classes", own: true },
  { table: "classes", column: "school_source_id", kind: "orgs" },
  { table: "classes", column: "course_source_id", kind: "courses" },
  { table: "classes", column: "term_source_ids", kind: "terms", array: true },
  { table: "users", column: "source_id", kind: "users", own: true },
  { table: "users", column: "org_source_ids", kind: "orgs", array: true },
  // OneRoster 1.2's primary org (migrations/0016). (`org_roles` pairs a role with an org: the next sync writes them anew.)
  { table: "users", column: "primary_org_source_id", kind: "orgs" },
  // Guardians' students (src/Reconcile/Contacts.ts).
  { table: "contact_links", column: "student_source_id", kind: "users" },
  { table: "enrollments", column: "source_id", kind: "enrollments", own: true },
  { table: "enrollments", column: "class_source_id", kind: "classes" },
  { table: "enrollments", column: "user_source_id", kind: "users" },
  { table: "enrollments", column: "school_source_id", kind: "orgs" },
  // In-product admins' schools (written outside the sync writer: the admins' lock refuses the sync).
  { table: "admins", column: "school_source_ids", kind: "orgs", array: true },
  // A user's own source ID as a login identity (migrations/0011).
  { table: "user_identities", column: "value", kind: "users" }
]

/** Columns that hold source IDs and are deliberately not rewritten: what a run saw, under the IDs it had then. */
export const HISTORY_COLUMNS: Readonly<Record<string, string>> = {
  "findings.source_id": "a run's findings",
  "held_changes.source_id": "what a hold held (approval works by row id)",
  "run_changes.source_ids": "a run's change list",
  "rekey_proposals.old_source_id": "a proposal",
  "rekey_proposals.new_source_id": "a proposal",
  "rekey_records.old_source_id": "what a re-key rewrote",
  "rekey_records.new_source_id": "what a re-key rewrote",
  // The digest store keeps what the source sent, under the IDs it sent: a re-keyed source
  // sends its records under new IDs, which are new digests, decoded and stored anew.
  ...Object.fromEntries(EntityKinds.flatMap((kind) =>
    cachedColumns(kind).filter((column) => column.includes("source_id")).map((column) =>
      [`${digestTable(kind)}.${column}`, "the digest store: what the source sent, as it sent it"] as const
    )
  ))
}

export interface MappingRow {
  readonly kind: RekeyKind
  readonly oldSourceId: string
  readonly newSourceId: string
  /** The `district` column, when the file has one. */
  readonly district: string | null
  readonly line: number
}

export type RekeySource =
  | { readonly run: number }
  | { readonly file: string; readonly rows: ReadonlyArray<MappingRow> }

export interface RekeyOutcome {
  readonly districtId: string
  readonly runId: number | null
  readonly source: "proposal" | "operator"
  readonly dryRun: boolean
  /** The `rekeys` row (null for a dry run). */
  readonly rekeyId: number | null
  /** Records re-keyed per kind. */
  readonly records: ReadonlyArray<{ readonly kind: string; readonly n: number }>
  /** Rows changed per table and column. */
  readonly rewritten: ReadonlyArray<{ readonly table: string; readonly column: string; readonly n: number }>
}

export class RekeyMapInvalid extends Schema.TaggedError<RekeyMapInvalid>()("RekeyMapInvalid", {
  file: Schema.String,
  line: Schema.optional(Schema.Number),
  problem: Schema.String
}) {
  override get message() {
    return `${this.file}${this.line === undefined ? "" : ` line ${this.line}`}: ${this.problem}; nothing was changed`
  }
}

export class RekeyRefused extends Schema.TaggedError<RekeyRefused>()("RekeyRefused", {
  district: Schema.String,
  reason: Schema.Literal("not_one_to_one", "unknown_ids", "crosses_kinds", "crosses_districts", "in_use", "changed_since", "empty", "not_a_rekey"),
  problem: Schema.String,
  count: Schema.Number,
  examples: Schema.Array(Schema.String)
}) {
  override get message() {
    const more = this.count > this.examples.length ? ` (+${this.count - this.examples.length} more)` : ""
    return `re-key of ${this.district} refused, nothing was changed: ${this.problem}` +
      (this.examples.length === 0 ? "" : `: ${this.examples.join(", ")}${more}`)
  }
}

/** Ends a dry run's transaction with a rollback, carrying what it would have done. */
class RekeyDryRun extends Data.TaggedError("RekeyDryRun")<{ readonly outcome: RekeyOutcome }> {}

const EXAMPLES = 10

// ---------------------------------------------------------------- the operator's file

/**
 * Reads an operator's mapping file. Source IDs are not personal values, so a bad row is
 * named by its line; a value is checked like a provider's identifier (non-empty, at most
 * 256 characters, no control characters).
 */
export const readMappingFile = (file: string) =>
  Effect.suspend(() => {
    const rows: Array<MappingRow> = []
    return readOperatorCsv(file, (refusal) => new RekeyMapInvalid({ file, ...refusal }), (names, headerLine, refuse) => {
      const at = { kind: names.indexOf("kind"), old: names.indexOf("old_source_id"), new: names.indexOf("new_source_id"), district: names.indexOf("district") }
      if (at.kind < 0 || at.old < 0 || at.new < 0) refuse("the header must name the columns kind, old_source_id, new_source_id (and optionally district)", headerLine)
      return (record, line) => {
        const cell = (index: number) => (index < 0 ? "" : (record[index] ?? "").trim())
        const kind = KIND_NAMES[cell(at.kind)]
        if (kind === undefined) refuse(`kind must be one of schools, terms, courses, classes, users, enrollments`, line)
        const oldSourceId = cell(at.old)
        const newSourceId = cell(at.new)
        if (!isUsableId(oldSourceId)) refuse("old_source_id is empty, longer than 256 characters or has control characters", line)
        if (!isUsableId(newSourceId)) refuse("new_source_id is empty, longer than 256 characters or has control characters", line)
        rows.push({ kind: kind!, oldSourceId, newSourceId, district: cell(at.district) === "" ? null : cell(at.district), line })
      }
    }).pipe(Effect.as(rows as ReadonlyArray<MappingRow>))
  })

// ---------------------------------------------------------------- the service

const MAP = "pg_temp.rekey_map"

export class Rekey extends Effect.Service<Rekey>()("rosterd/Rekey", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit

    const refuse = (district: string, reason: RekeyRefused["reason"], problem: string, rows: ReadonlyArray<{ readonly example: string; readonly total: number }>) =>
      new RekeyRefused({ district, reason, problem, count: rows[0]?.total ?? 0, examples: rows.map((r) => r.example) })

    /** Up to EXAMPLES rows of `select` (which yields `example`), with the total. */
    const examples = (select: string, params: ReadonlyArray<unknown> = []) =>
      sql.unsafe<{ readonly example: string; readonly total: number }>(
        `SELECT example, count(*) OVER ()::int AS total FROM (${select}) x ORDER BY example LIMIT ${EXAMPLES}`,
        [...params]
      )

    const what = (alias = "m") =>
      `CASE ${alias}.kind WHEN 'orgs' THEN 'schools' WHEN 'terms' THEN 'terms' WHEN 'courses' THEN 'courses'
                          WHEN 'classes' THEN 'classes' WHEN 'users' THEN 'users' ELSE 'enrollments' END`

    /** The mapping into `pg_temp.rekey_map`, each row resolved to its live record where there is one. */
    const load = (districtId: string, source: RekeySource) =>
      Effect.gen(function*() {
        yield* sql.unsafe(`DROP TABLE IF EXISTS ${MAP};
          CREATE TEMP TABLE rekey_map (kind text NOT NULL, old_source_id text NOT NULL, new_source_id text NOT NULL,
            matched_on text NOT NULL, line integer, live_id bigint) ON COMMIT DROP`)
        if ("run" in source) {
          const [hold] = yield* sql<{ readonly districtId: string; readonly state: string; readonly closedByRun: number | null }>`
            SELECT district_id, state, closed_by_run FROM holds WHERE run_id = ${source.run} FOR UPDATE`
          if (hold === undefined) return yield* new HoldNotFound({ runId: source.run })
          if (hold.districtId !== districtId) {
            return yield* new RekeyRefused({
              district: districtId,
              reason: "crosses_districts",
              problem: `run ${source.run} is district ${hold.districtId}'s`,
              count: 0,
              examples: []
            })
          }
          if (hold.state !== "pending") {
            return yield* new HoldDecided({ runId: source.run, state: hold.state, closedByRun: hold.closedByRun === null ? null : Number(hold.closedByRun) })
          }
          const [proposed] = yield* sql<{ readonly n: number }>`
            SELECT count(*)::int AS n FROM rekey_suspicions WHERE run_id = ${source.run}`
          if ((proposed?.n ?? 0) === 0) {
            return yield* new RekeyRefused({
              district: districtId,
              reason: "not_a_rekey",
              problem: `the hold of run ${source.run} is the safety gate's, not a suspected re-key (use rosterd holds approve|reject, or --map)`,
              count: 0,
              examples: []
            })
          }
          yield* sql.unsafe(
            `INSERT INTO ${MAP} (kind, old_source_id, new_source_id, matched_on, live_id)
             SELECT kind, old_source_id, new_source_id, matched_on, live_id FROM rekey_proposals WHERE run_id = $1`,
            [source.run]
          )
          return
        }
        // An operator's file: one statement for all its rows.
        const foreign = source.rows.filter((r) => r.district !== null && r.district !== districtId)
        if (foreign.length > 0) {
          return yield* new RekeyRefused({
            district: districtId,
            reason: "crosses_districts",
            problem: "the file names other districts",
            count: foreign.length,
            examples: foreign.slice(0, EXAMPLES).map((r) => `line ${r.line}: ${r.district}`)
          })
        }
        yield* sql.unsafe(
          `INSERT INTO ${MAP} (kind, old_source_id, new_source_id, matched_on, line)
           SELECT k, o, n, 'operator', l FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS x(k, o, n, l)`,
          [source.rows.map((r) => r.kind), source.rows.map((r) => r.oldSourceId), source.rows.map((r) => r.newSourceId), source.rows.map((r) => r.line)]
        )
        for (const kind of ORDER) {
          if (kind === "enrollments") {
            // An open enrollment's own ID; one that names several open enrollments stays unresolved (refused below).
            yield* sql.unsafe(
              `UPDATE ${MAP} m SET live_id = e.id
               FROM (SELECT source_id, min(id) AS id FROM enrollments WHERE district_id = $1 AND ended_at IS NULL GROUP BY source_id HAVING count(*) = 1) e
               WHERE m.kind = 'enrollments' AND e.source_id = m.old_source_id`,
              [districtId]
            )
          } else {
            yield* sql.unsafe(
              `UPDATE ${MAP} m SET live_id = t.id FROM ${tableOf(kind)} t
               WHERE m.kind = '${kind}' AND t.district_id = $1 AND t.source_id = m.old_source_id`,
              [districtId]
            )
          }
        }
      })

    /** The refusals, in order; the first that applies is raised. */
    const validate = (districtId: string, source: RekeySource) =>
      Effect.gen(function*() {
        const line = "CASE WHEN m.line IS NULL THEN '' ELSE 'line ' || m.line || ': ' END"
        const [count] = yield* sql.unsafe<{ readonly n: number }>(`SELECT count(*)::int AS n FROM ${MAP}`)
        if ((count?.n ?? 0) === 0) return yield* refuse(districtId, "empty", "the mapping is empty", [])
        // One-to-one, per kind.
        const twice = yield* examples(
          `SELECT ${what()} || ' ' || m.old_source_id || ' (old, ' || count(*) || ' times)' AS example FROM ${MAP} m GROUP BY m.kind, m.old_source_id HAVING count(*) > 1
           UNION ALL
           SELECT ${what()} || ' ' || m.new_source_id || ' (new, ' || count(*) || ' times)' FROM ${MAP} m GROUP BY m.kind, m.new_source_id HAVING count(*) > 1
           UNION ALL
           SELECT ${line} || ${what()} || ' ' || m.old_source_id || ' (mapped onto itself)' FROM ${MAP} m WHERE m.old_source_id = m.new_source_id`
        )
        if (twice.length > 0) return yield* refuse(districtId, "not_one_to_one", "the mapping is not one-to-one", twice)
        // Every old ID a record of its kind in this district (of another kind: crosses kinds).
        const elsewhere = ORDER.map((kind) =>
          kind === "enrollments"
            ? `WHEN EXISTS (SELECT 1 FROM enrollments t WHERE t.district_id = $1 AND t.source_id = m.old_source_id AND t.ended_at IS NULL) THEN 'enrollments'`
            : `WHEN EXISTS (SELECT 1 FROM ${tableOf(kind)} t WHERE t.district_id = $1 AND t.source_id = m.old_source_id) THEN '${kindLabel(kind)}'`
        ).join(" ")
        const unknown = yield* sql.unsafe<{ readonly example: string; readonly other: string | null }>(
          `SELECT ${line} || ${what()} || ' ' || m.old_source_id AS example, CASE ${elsewhere} END AS other
           FROM ${MAP} m WHERE m.live_id IS NULL ORDER BY 1`,
          [districtId]
        )
        if (unknown.length > 0) {
          const crossing = unknown.filter((u) => u.other !== null)
          const rows = (crossing.length > 0 ? crossing : unknown).map((u) => ({
            example: u.other === null ? u.example : `${u.example} (one of its ${u.other})`,
            total: crossing.length > 0 ? crossing.length : unknown.length
          }))
          return yield* crossing.length > 0
            ? refuse(districtId, "crosses_kinds", "the mapping names IDs of another kind", rows.slice(0, EXAMPLES))
            : refuse(
              districtId,
              "unknown_ids",
              "the district has no record of that kind with these IDs (an enrollment ID must name one open enrollment)",
              rows.slice(0, EXAMPLES)
            )
        }
        if ("run" in source) {
          // The records still carry the IDs the proposal saw.
          const changed = yield* examples(
            ORDER.map((kind) =>
              `SELECT ${what()} || ' ' || m.old_source_id AS example FROM ${MAP} m LEFT JOIN ${tableOf(kind)} t ON t.id = m.live_id
               WHERE m.kind = '${kind}' AND (t.id IS NULL OR t.source_id IS DISTINCT FROM m.old_source_id${kind === "enrollments" ? " OR t.ended_at IS NOT NULL" : ""})`
            ).join(" UNION ALL ")
          )
          if (changed.length > 0) {
            return yield* refuse(
              districtId,
              "changed_since",
              `the records changed since run ${source.run} proposed this (run a full sync: it proposes again)`,
              changed
            )
          }
        }
        // No new ID already taken by a record of its kind (active or not: a returning record would collide).
        const taken = yield* examples(
          ORDER.map((kind) =>
            `SELECT ${line} || ${what()} || ' ' || m.new_source_id AS example FROM ${MAP} m
             WHERE m.kind = '${kind}' AND EXISTS (SELECT 1 FROM ${tableOf(kind)} t WHERE t.district_id = $1 AND t.source_id = m.new_source_id${
              kind === "enrollments" ? " AND t.ended_at IS NULL" : ""
            })`
          ).join(" UNION ALL "),
          [districtId]
        )
        if (taken.length > 0) return yield* refuse(districtId, "in_use", "the new IDs are already in use by other records", taken)
      })

    const rewrite = (districtId: string, r: Rewrite) =>
      Effect.gen(function*() {
        const set = r.array
          ? `${r.column} = ARRAY(SELECT coalesce(m.new_source_id, x.v) FROM unnest(t.${r.column}) WITH ORDINALITY AS x(v, i)
                                 LEFT JOIN ${MAP} m ON m.kind = '${r.kind}' AND m.old_source_id = x.v ORDER BY x.i)`
          : `${r.column} = m.new_source_id`
        const touched = r.table === "user_identities" ? "" : ", updated_at = now()"
        const statement = r.table === "user_identities"
          ? `UPDATE user_identities t SET value = m.new_source_id FROM ${MAP} m
             WHERE m.kind = 'users' AND t.district_id = $1 AND t.user_id = m.live_id AND t.kind = 'source_id' AND t.value = m.old_source_id`
          : r.own
          ? `UPDATE ${r.table} t SET ${set}${touched} FROM ${MAP} m WHERE m.kind = '${r.kind}' AND t.district_id = $1 AND t.id = m.live_id`
          : r.array
          ? `UPDATE ${r.table} t SET ${set}${touched}
             WHERE t.district_id = $1 AND t.${r.column} && ARRAY(SELECT old_source_id FROM ${MAP} WHERE kind = '${r.kind}')`
          : `UPDATE ${r.table} t SET ${set}${touched} FROM ${MAP} m WHERE m.kind = '${r.kind}' AND t.district_id = $1 AND t.${r.column} = m.old_source_id`
        const [row] = yield* sql.unsafe<{ readonly n: number }>(`WITH changed AS (${statement} RETURNING 1) SELECT count(*)::int AS n FROM changed`, [districtId])
        return { table: r.table, column: r.column, n: row?.n ?? 0 }
      })

    const run = Effect.fn("Rekey.rekey")(function*(
      districtId: string,
      source: RekeySource,
      options: { readonly by: string; readonly reason?: string | null; readonly dryRun?: boolean }
    ) {
      const dryRun = options.dryRun ?? false
      return yield* sql.withTransaction(Effect.gen(function*() {
        const [district] = yield* sql<{ readonly id: string }>`SELECT id FROM districts WHERE id = ${districtId}`
        if (district === undefined) return yield* new DistrictNotFound({ district: districtId })
        // The district's lease for the transaction: no sync (its session lock) meanwhile.
        const [lease] = yield* sql<{ readonly ok: boolean }>`SELECT pg_try_advisory_xact_lock(${LEASE_NAMESPACE}, hashtext(${districtId})) AS ok`
        if (!lease?.ok) return yield* new DistrictBusy({ district: districtId })
        yield* load(districtId, source)
        // A temp table has no statistics until analysed: without them the planner takes the
        // mapping for a few rows and checks each against the district's tables one by one.
        yield* sql.unsafe(`ANALYZE ${MAP}`)
        yield* validate(districtId, source)
        const kinds = yield* sql.unsafe<{ readonly kind: RekeyKind; readonly n: number }>(`SELECT kind, count(*)::int AS n FROM ${MAP} GROUP BY kind`)
        const used = new Set(kinds.map((k) => k.kind))
        const rewritten: Array<{ readonly table: string; readonly column: string; readonly n: number }> = []
        // In-product admins first, outside the sync writer (their lock refuses the sync).
        for (const r of REWRITES.filter((r) => r.table === "admins" && used.has(r.kind))) rewritten.push(yield* rewrite(districtId, r))
        yield* sql.unsafe(`SELECT set_config('rosterd.writer', 'sync', true)`)
        for (const r of REWRITES.filter((r) => r.table !== "admins" && used.has(r.kind))) rewritten.push(yield* rewrite(districtId, r))
        const records = ORDER.flatMap((kind) => kinds.filter((k) => k.kind === kind).map((k) => ({ kind: kindLabel(kind), n: k.n })))
        const runId = "run" in source ? source.run : null
        const counts = { records, rewritten }
        const [rekey] = yield* sql<{ readonly id: number }>`
          INSERT INTO rekeys (district_id, run_id, source, applied_by, reason, counts)
          VALUES (${districtId}, ${runId}, ${runId === null ? "operator" : "proposal"}, ${options.by}, ${options.reason ?? null},
                  ${JSON.stringify(counts)}::jsonb)
          RETURNING id`
        yield* sql.unsafe(
          `INSERT INTO rekey_records (rekey_id, kind, live_id, old_source_id, new_source_id)
           SELECT $1, kind, live_id, old_source_id, new_source_id FROM ${MAP}`,
          [rekey!.id]
        )
        if (runId !== null) {
          yield* sql`UPDATE holds SET state = 'rekeyed', decided_by = ${options.by}, decided_at = now(), reason = ${options.reason ?? null},
                       outcome = ${JSON.stringify({ rekey: Number(rekey!.id), ...counts })}::jsonb
                     WHERE run_id = ${runId}`
        }
        yield* audit.record({
          actor: options.by,
          action: "district.rekey",
          districtId,
          subject: runId === null ? `district ${districtId}` : `run ${runId}`,
          reason: options.reason ?? null,
          details: { source: runId === null ? "operator" : "proposal", rekey: Number(rekey!.id), ...counts }
        })
        const outcome: RekeyOutcome = {
          districtId,
          runId,
          source: runId === null ? "operator" : "proposal",
          dryRun,
          rekeyId: dryRun ? null : Number(rekey!.id),
          records,
          rewritten
        }
        if (dryRun) return yield* new RekeyDryRun({ outcome })
        return outcome
      })).pipe(Effect.catchTag("RekeyDryRun", (dry) => Effect.succeed(dry.outcome)))
    })

    return {
      /** Applies a proposed or an operator's mapping (see above); `dryRun`: the same, rolled back. */
      rekey: (districtId: string, source: RekeySource, options: { readonly by: string; readonly reason?: string | null; readonly dryRun?: boolean }) =>
        run(districtId, source, options).pipe(Effect.catchTag("SqlError", Effect.die))
    } as const
  }),
  dependencies: [Audit.Default]
}) {}
