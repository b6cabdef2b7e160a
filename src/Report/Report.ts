import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { RekeySummary } from "../Reconcile/Rekey.ts"
import { pendingRekey } from "../Reconcile/Rekey.ts"
import { RosterStore } from "../Store/RosterStore.ts"

/**
 * `rosterd report <district>`: what the district should fix, from the findings of its last
 * run that reached the apply step, grouped by code — the district rules first — plus the
 * account review queue and the personal fields the district masks. Findings carry source IDs, files and lines, never names or
 * addresses, and nothing here joins users.
 */

/** The district rules' codes, in the order a district reads them; other codes follow alphabetically. */
export const RULE_CODES: ReadonlyArray<string> = [
  "missing_email",
  "missing_birth_date",
  "student_without_class",
  "co_teacher_limit",
  "no_primary_teacher",
  "several_primary_teachers",
  "duplicate_period",
  "excluded_section",
  "account_review",
  "masked_pii",
  "accounts_wait_masked",
  "masked_email",
  "teacher_without_address",
  "same_person",
  "shared_login_identity",
  "admin_district_office_only"
]

export const byReportOrder = (a: string, b: string) => {
  const ia = RULE_CODES.indexOf(a)
  const ib = RULE_CODES.indexOf(b)
  if (ia !== -1 || ib !== -1) return (ia === -1 ? Infinity : ia) - (ib === -1 ? Infinity : ib)
  return a < b ? -1 : a > b ? 1 : 0
}

export interface ReportGroup {
  readonly code: string
  readonly severity: string
  /** The kinds of record concerned, comma-separated when several; null when none. */
  readonly entity: string | null
  /** Listed findings with a source ID, plus those past the per-code cap that are only counted. */
  readonly count: number
  readonly sourceIds: ReadonlyArray<string>
  readonly sampleDetail: string
}

export interface DistrictReport {
  readonly district: string
  readonly run: {
    readonly id: number
    readonly status: string
    readonly mode: string
    readonly startedAt: string
    readonly finishedAt: string | null
  } | null
  readonly findings: ReadonlyArray<ReportGroup>
  readonly reviewQueue: { readonly open: number; readonly ids: ReadonlyArray<number> }
  /** A pending hold of the district that suspects a re-key: counts per kind and match kind (src/Reconcile/Rekey.ts). */
  readonly rekey?: RekeySummary
  /**
   * Personal fields the district masks now (as its last complete users feed showed), with
   * that feed's counts, and how many of its active teachers and students have no account
   * meanwhile (src/Reconcile/Quality.ts, src/Accounts/Linking.ts). Empty when none is.
   */
  readonly masking: ReadonlyArray<MaskedFieldReport>
  readonly withoutAccount: number
}

export interface MaskedFieldReport {
  readonly field: string
  readonly since: string
  readonly total: number
  readonly blank: number
  readonly hashed: number
  readonly placeholder: number
  /** Users sharing the one most common value. */
  readonly shared: number
}

export class Report extends Effect.Service<Report>()("rosterd/Report", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* RosterStore

    const make = Effect.fn("Report.make")(function*(districtId: string) {
      const district = yield* store.getDistrict(districtId)
      type RunRow = { readonly id: number; readonly status: string; readonly mode: string; readonly startedAt: Date; readonly finishedAt: Date | null }
      // The last run that reached the apply step; without one, the latest run that has findings.
      const [run] = yield* sql<RunRow>`
        (SELECT id, status, mode, started_at, finished_at, 0 AS preference FROM sync_runs
         WHERE district_id = ${district.id} AND status IN ('succeeded', 'held') ORDER BY id DESC LIMIT 1)
        UNION ALL
        (SELECT id, status, mode, started_at, finished_at, 1 FROM sync_runs r
         WHERE district_id = ${district.id} AND EXISTS (SELECT 1 FROM findings f WHERE f.run_id = r.id) ORDER BY id DESC LIMIT 1)
        ORDER BY preference LIMIT 1`
      const groups = run === undefined ? [] : yield* sql<{
        readonly code: string
        readonly severity: string
        readonly entities: ReadonlyArray<string> | null
        readonly count: number
        readonly sourceIds: ReadonlyArray<string> | null
        readonly sampleDetail: string
      }>`
        SELECT code,
               (array_agg(severity ORDER BY CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END))[1] AS severity,
               array_agg(DISTINCT entity ORDER BY entity) FILTER (WHERE entity IS NOT NULL) AS entities,
               (count(source_id) + coalesce(sum(unlisted), 0))::int AS count,
               array_agg(source_id ORDER BY id) FILTER (WHERE source_id IS NOT NULL) AS source_ids,
               (array_agg(detail ORDER BY source_id IS NULL, id))[1] AS sample_detail
        FROM findings WHERE run_id = ${run.id}
        GROUP BY code`
      const reviews = yield* sql<{ readonly id: number }>`
        SELECT id FROM account_reviews WHERE district_id = ${district.id} AND state = 'open' ORDER BY id`
      const masking = yield* sql<{
        readonly field: string
        readonly since: Date
        readonly total: number
        readonly blank: number
        readonly hashed: number
        readonly placeholder: number
        readonly shared: number
      }>`
        SELECT field, since, total, blank, hashed, placeholder, shared FROM district_masking WHERE district_id = ${district.id} ORDER BY field`
      const [without] = masking.length === 0 ? [{ n: 0 }] : yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM users u
        WHERE u.district_id = ${district.id} AND u.active AND u.roles && ARRAY['teacher', 'student']
          AND NOT EXISTS (SELECT 1 FROM account_links l WHERE l.user_id = u.id)`
      const rekey = yield* pendingRekey(district.id)
      const report: DistrictReport = {
        ...(rekey === undefined ? {} : { rekey }),
        district: district.id,
        run: run === undefined ? null : {
          id: run.id,
          status: run.status,
          mode: run.mode,
          startedAt: run.startedAt.toISOString(),
          finishedAt: run.finishedAt === null ? null : run.finishedAt.toISOString()
        },
        findings: groups
          .map((g): ReportGroup => ({
            code: g.code,
            severity: g.severity,
            entity: g.entities === null || g.entities.length === 0 ? null : g.entities.join(","),
            count: g.count,
            sourceIds: g.sourceIds ?? [],
            sampleDetail: g.sampleDetail
          }))
          .sort((a, b) => byReportOrder(a.code, b.code)),
        reviewQueue: { open: reviews.length, ids: reviews.map((r) => r.id) },
        masking: masking.map((m) => ({ ...m, since: m.since.toISOString() })),
        withoutAccount: without?.n ?? 0
      }
      return report
    })

    return { make: (districtId: string) => make(districtId).pipe(Effect.catchTag("SqlError", Effect.die)) } as const
  }),
  dependencies: [RosterStore.Default]
}) {}
