import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import type { EntityKind } from "../Domain/Roster.ts"
import type { CountKind, RunCounts } from "../Domain/RunCounts.ts"
import type { FeedMode } from "../Providers/RosterProvider.ts"
import type { ApplyContext } from "./Apply.ts"
import { planTable } from "./Apply.ts"
import { keepBeforeValues } from "./ChangeList.ts"
import type { DigestScan } from "./DigestStaging.ts"
import { underThirteen } from "./Rules/People.ts"

/**
 * Unchanged since applied: a run that reads exactly what the district's last applied run
 * read, into the stored roster that run left, skips the comparison.
 *
 * Comparing complete feeds with the stored roster is idempotent once it deactivates
 * nothing: the roster such a run leaves is what the next comparison of the same records
 * produces, so that comparison would find nothing to do and report what this one reported
 * — findings, district rules, gate and diff alike. (A run that deactivates is not: an
 * enrollment still listed whose user it removed is deactivated by it and reported dangling
 * by the next, for one. After such a run the next one compares, deactivates nothing, and
 * leaves the mark.) It costs a pass of Postgres over every staged row all the same
 * (restore, findings, quality, identities, the diff: 90 % of a no-op resync). What would
 * make it find something is known:
 *
 * - **the source changed**: every feed is scanned (each record's line and digest, nothing
 *   parsed, DigestStaging.ts) and its scan fingerprinted; with the digests' versions
 *   (mapping, staging code, the district's rules), the feeds' modes and files, they make
 *   the run's `source key`;
 * - **the stored roster changed** since that run committed — an undo, a released hold, a
 *   re-key, a merge, an erase, an operator's or the platform's write, a failed write half
 *   seen by nobody: the `live key` fingerprints the district's roster tables (per table the
 *   row count and a sum of a hash of each row's transaction id and position), so any write,
 *   by anyone, through any path, changes it. Nothing has to remember to invalidate it;
 * - **the date moved** over a term's first or last day, when the district rosters current
 *   terms only (`scope.currentTermsOnly`): a class's scope depends on the day.
 *
 * The district's last applied run — committed, not held, nothing deactivated, every feed
 * complete and offered as digests — leaves a mark (`roster_applied`, migrations/0020) in
 * its transaction: its source key, its live key taken last thing before the commit, its
 * day, its last comparison finding, what the next comparison would count, and when the
 * comparison it stands for ran. A run whose source key matches is a candidate (decided
 * while staging: its staging tables stay empty); its transaction confirms the live key and
 * the terms, then carries the comparison's findings forward and runs only what depends on
 * the day and on the people: ages (with a change list entry for each birthday, as a
 * comparison would make), accounts, the people's findings, a pending hold's closing. When
 * the transaction cannot confirm it, the run stages and compares in full there and then.
 *
 * A run asked to be full (`rosterd sync --full`) always compares; no mark is used longer
 * than `rosterd.sync.compareEvery` after its comparison; `rosterd.sync.digests: false` (or a
 * run's `digests: false`) turns all of this off with the digests.
 */

/**
 * The stored roster of a district, as far as a comparison reads it: the district-synced
 * rows of the roster tables (only rosterd's own writers change those, under the district's
 * lease: the lock triggers refuse everyone else, migrations/0002 and 0008), and what only
 * the sync writes. Teacher-made classes and their students are the platform's, written at
 * any moment, and no comparison reads them.
 */
const SYNCED = `t.roster_source NOT IN ('manual', 'in-product')`
const LIVE_TABLES: ReadonlyArray<readonly [string, string]> = [
  ...(["schools", "terms", "courses", "classes", "users", "enrollments"] as const).map((table) => [table, SYNCED] as const),
  ["user_identities", "true"],
  ["contact_links", "true"],
  ["district_masking", "true"]
]

/** One feed of a candidate run, as its source key sees it. */
export interface ScannedFeed {
  readonly kind: EntityKind
  readonly mode: FeedMode
  readonly file: string
  readonly version: string
  readonly scan: DigestScan
}

/**
 * Bump with any change to what a comparison decides, writes or reports that the digests'
 * versions do not cover (a new finding, a rule's logic, the diff): marks made under another
 * revision are not used. A forgotten bump costs at most `rosterd.sync.compareEvery` (a week
 * by default): no mark whose comparison is older is used.
 */
export const COMPARISON_REVISION = "comparison/1"

/** The source key of a run whose every provided feed was scanned (the kinds in staging order). */
export const sourceKey = (rosterSource: string, feeds: ReadonlyArray<ScannedFeed>): string => {
  const hash = createHash("sha256").update(`${COMPARISON_REVISION}\n${rosterSource}\n`)
  for (const feed of feeds) {
    hash.update(JSON.stringify([feed.kind, feed.mode, feed.file, feed.version, feed.scan.scanned, feed.scan.fingerprint]) + "\n")
  }
  return hash.digest("hex")
}

/** A district's mark: what its last applied run read, and the stored roster it left. */
export interface AppliedMark {
  readonly runId: number
  readonly sourceKey: string
  readonly liveKey: string
  readonly today: string
  readonly findingsUpto: number
  /** Per kind, the records a comparison of the same feeds would count unchanged. */
  readonly unchanged: Readonly<Record<CountKind, number>>
  /** When the comparison ran whose findings the mark carries (epoch milliseconds). */
  readonly comparedAt: number
}

export const readMark = (districtId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<AppliedMark>`
      SELECT run_id::int AS "runId", source_key AS "sourceKey", live_key AS "liveKey", to_char(today, 'YYYY-MM-DD') AS today,
             findings_upto::float8 AS "findingsUpto", unchanged,
             (extract(epoch FROM compared_at) * 1000)::float8 AS "comparedAt"
      FROM roster_applied WHERE district_id = ${districtId}`
    return row ?? null
  })

/**
 * The district's stored roster, fingerprinted: per table, its rows' count and the sum of a
 * hash of each row's transaction id and position. A write changes a row's transaction id
 * (an update writes a new row version); an insert or a delete changes the count. VACUUM FULL
 * or CLUSTER move rows, and only make the next run compare in full.
 */
export const liveKey = (districtId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const parts = LIVE_TABLES.map(([table, rows]) =>
      `(SELECT count(*) || '.' || coalesce(sum(hashtextextended(t.xmin::text || t.ctid::text, 0)), 0)
        FROM ${table} t WHERE t.district_id = $1 AND ${rows})`
    )
    const [row] = yield* sql.unsafe<{ readonly key: string }>(`SELECT concat_ws('|', ${parts.join(", ")}) AS key`, [districtId])
    return createHash("sha256").update(row?.key ?? "").digest("hex")
  }).pipe(Effect.withSpan("Unchanged.liveKey"))

/**
 * Whether this transaction has written any row of the tables the live key reads (its own
 * statistics, `pg_stat_xact_user_tables`): when it has not, the live key it confirmed at its
 * start is still the live key (no one else writes synced rows under the district's lease).
 */
const wroteLiveTables = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql.unsafe<{ readonly n: number }>(
    `SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::float8 AS n
     FROM pg_stat_xact_user_tables WHERE schemaname = current_schema() AND relname = ANY ($1)`,
    [LIVE_TABLES.map(([table]) => table)]
  )
  return (row?.n ?? 1) > 0
})

/**
 * Whether a candidate run may skip the comparison: the stored roster is still the one the
 * mark's run left, and (for a district that rosters current terms only) no term began or
 * ended between the mark's day and today. Inside the run's transaction, under its lease.
 */
export const confirmUnchanged = (context: ApplyContext, mark: AppliedMark, currentTermsOnly: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if ((yield* liveKey(context.districtId)) !== mark.liveKey) return false
    if (!currentTermsOnly || mark.today === context.today) return true
    const [row] = yield* sql.unsafe<{ readonly moved: boolean }>(
      `SELECT EXISTS (
         SELECT 1 FROM terms WHERE district_id = $1
           AND ((start_date > least($2::date, $3::date) AND start_date <= greatest($2::date, $3::date))
             OR (end_date >= least($2::date, $3::date) AND end_date < greatest($2::date, $3::date)))) AS moved`,
      [context.districtId, mark.today, context.today]
    )
    return !(row?.moved ?? true)
  }).pipe(Effect.withSpan("Unchanged.confirm"))

/** The mark's run's comparison findings, as this run's: the same records, the same lines. */
export const carryFindings = (context: ApplyContext, mark: AppliedMark) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(
      `INSERT INTO findings (run_id, district_id, severity, code, entity, source_id, file, line, detail, unlisted)
       SELECT $1, district_id, severity, code, entity, source_id, file, line, detail, unlisted
       FROM findings WHERE run_id = $2 AND district_id = $3 AND id <= $4 ORDER BY id`,
      [context.runId, mark.runId, context.districtId, mark.findingsUpto]
    )
  }).pipe(Effect.withSpan("Unchanged.carryFindings"))

/**
 * The users whose `under_13` today changes (a birthday), as the users' plan: the change list
 * names them and keeps their before-values for undo, as a comparison would have. The age
 * pass that follows (Rules/People.ts `recomputeAges`) writes and counts them. Users whose
 * record the mark's run held (an error finding names them) are left to the age pass, as a
 * comparison leaves them. Returns how many were planned (the comparison's updates).
 */
export const planBirthdays = (context: ApplyContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const value = underThirteen("roles", "birth_date", "$2::date")
    const [row] = yield* sql.unsafe<{ readonly n: number }>(
      `WITH planned AS (
         INSERT INTO ${planTable("users")} (action, reason, live_id, source_id, fields, under_13)
         SELECT 'update', 'missing_from_source', id, source_id, ARRAY['under_13'], ${value}
         FROM users t WHERE district_id = $1 AND active AND ${SYNCED} AND under_13 IS DISTINCT FROM ${value}
           AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.run_id = $3 AND f.entity = 'users' AND f.severity = 'error'
                           AND f.source_id = t.source_id)
         RETURNING 1)
       SELECT count(*)::int AS n FROM planned`,
      [context.districtId, context.today, context.runId]
    )
    yield* keepBeforeValues("users", context)
    return row?.n ?? 0
  }).pipe(Effect.withSpan("Unchanged.planBirthdays"))

/** The last finding of the run so far: the end of its comparison's findings. */
export const lastFinding = (runId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly id: string | null }>`SELECT max(id)::text AS id FROM findings WHERE run_id = ${runId}`
    return row?.id === null || row?.id === undefined ? 0 : Number(row.id)
  })

/**
 * What a comparison of the same feeds would count unchanged, from a comparison's counts:
 * everything it created, updated or found unchanged (not what it deactivated).
 */
export const unchangedNext = (compared: RunCounts): Record<CountKind, number> => {
  const next = {} as Record<CountKind, number>
  for (const [kind, c] of Object.entries(compared) as Array<[CountKind, RunCounts[CountKind]]>) next[kind] = c.created + c.updated + c.unchanged
  return next
}

/** Leaves the district's mark for the next run (last thing in the run's transaction). */
export const writeMark = (
  context: ApplyContext,
  source: string,
  findingsUpto: number,
  unchanged: Readonly<Record<CountKind, number>>,
  /** When the comparison ran whose findings these are (this run's, or the mark's it carried), epoch ms. */
  comparedAt: number,
  /** The live key the run confirmed at its start, if it did (a run that skipped its comparison). */
  confirmed: string | null
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const live = confirmed !== null && !(yield* wroteLiveTables) ? confirmed : yield* liveKey(context.districtId)
    const compared = new Date(comparedAt).toISOString()
    yield* sql`
      INSERT INTO roster_applied (district_id, run_id, source_key, live_key, today, findings_upto, unchanged, compared_at)
      VALUES (${context.districtId}, ${context.runId}, ${source}, ${live}, ${context.today}::date, ${findingsUpto},
              ${JSON.stringify(unchanged)}::jsonb, ${compared}::timestamptz)
      ON CONFLICT (district_id) DO UPDATE SET run_id = excluded.run_id, source_key = excluded.source_key,
        live_key = excluded.live_key, today = excluded.today, findings_upto = excluded.findings_upto,
        unchanged = excluded.unchanged, compared_at = excluded.compared_at, written_at = now()`
  }).pipe(Effect.withSpan("Unchanged.writeMark"))

/** No mark: the district's next run compares in full (a run that held, or could not be marked). */
export const dropMark = (districtId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DELETE FROM roster_applied WHERE district_id = ${districtId}`
  })
