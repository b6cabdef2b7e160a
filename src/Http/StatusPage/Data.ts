import { SqlClient } from "@effect/sql"
import { Clock, Effect } from "effect"
import type { HoldSummary } from "../../Reconcile/Holds.ts"
import { Holds } from "../../Reconcile/Holds.ts"
import { type DistrictReport, Report } from "../../Report/Report.ts"
import { localDateAt } from "../../Schedule/Calendar.ts"
import { Freshness } from "../../Schedule/Freshness.ts"
import type { LocalDate } from "../../Domain/LocalDates.ts"
import { addDays } from "../../Schedule/PauseSpans.ts"
import type { PauseSpan } from "../../Schedule/PauseSpans.ts"
import { Pauses } from "../../Schedule/Pauses.ts"
import { RosterStore } from "../../Store/RosterStore.ts"
import { type DistrictStatus, type RunRecord, Runs } from "../../Store/Runs.ts"

/**
 * What the status page shows, read through the services that compute it for the CLI and
 * `/status` (Freshness, Runs, Holds, Report, Pauses): one read per page section, never one
 * per district row, so the overview of hundreds of districts costs the same few queries.
 * Nothing here reads a personal field: source IDs, codes and counts only.
 */

/** How many runs the district page charts. */
export const HISTORY_RUNS = 30
/** How far ahead the district page shows its pause calendar. */
export const CALENDAR_DAYS = 60

export interface OverviewRow {
  readonly status: DistrictStatus
  /** The pending hold's held changes per kind and action; null without a pending hold. */
  readonly hold: HoldSummary | null
  readonly openReviews: number
}

export interface Overview {
  readonly now: Date
  readonly rows: ReadonlyArray<OverviewRow>
}

export interface DistrictPage {
  readonly now: Date
  readonly status: DistrictStatus
  /** Newest first, at most HISTORY_RUNS, dry runs included (they are marked). */
  readonly history: ReadonlyArray<RunRecord>
  readonly report: DistrictReport
  readonly hold: HoldSummary | null
  /** Pauses (calendar windows and ad-hoc ones) overlapping today .. today + CALENDAR_DAYS, local dates. */
  readonly calendar: { readonly from: LocalDate; readonly to: LocalDate; readonly spans: ReadonlyArray<PauseSpan> }
  /** The newest failed or interrupted run among the history, with its one-line reason. */
  readonly lastError: { readonly runId: number; readonly at: Date; readonly error: string } | null
}

export class StatusPageData extends Effect.Service<StatusPageData>()("rosterd/StatusPageData", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const freshness = yield* Freshness
    const holds = yield* Holds
    const runs = yield* Runs
    const reports = yield* Report
    const pauses = yield* Pauses
    const store = yield* RosterStore

    const openReviews = (districtId?: string) =>
      sql<{ readonly districtId: string; readonly n: number }>`
        SELECT district_id, count(*)::int AS n FROM account_reviews
        WHERE state = 'open' ${districtId === undefined ? sql`` : sql`AND district_id = ${districtId}`}
        GROUP BY district_id`.pipe(Effect.map((rows) => new Map(rows.map((r) => [r.districtId, r.n]))), Effect.orDie)

    const overview = Effect.fn("StatusPageData.overview")(function*() {
      const now = new Date(yield* Clock.currentTimeMillis)
      const [statuses, pending, reviews] = yield* Effect.all([freshness.status(), Effect.orDie(holds.list({})), openReviews()])
      const holdOf = new Map(pending.map((h) => [h.districtId, h]))
      const rows = statuses.map((status): OverviewRow => ({
        status,
        hold: holdOf.get(status.district) ?? null,
        openReviews: reviews.get(status.district) ?? 0
      }))
      return { now, rows } satisfies Overview
    })

    const district = Effect.fn("StatusPageData.district")(function*(districtId: string) {
      const now = new Date(yield* Clock.currentTimeMillis)
      const [status] = yield* freshness.status(districtId)
      const record = yield* store.getDistrict(districtId)
      const from = localDateAt(now, record.timezone)
      const to = addDays(from, CALENDAR_DAYS - 1)
      const [history, report, pending, spans] = yield* Effect.all([
        runs.list(districtId, HISTORY_RUNS),
        reports.make(districtId),
        Effect.orDie(holds.list({ districtId })),
        pauses.windowsFor(record, from, to)
      ])
      const failed = history.find((r) => (r.status === "failed" || r.status === "interrupted") && r.error !== null)
      return {
        now,
        status: status!,
        history,
        report,
        hold: pending[0] ?? null,
        calendar: { from, to, spans },
        lastError: failed === undefined ? null : { runId: failed.id, at: failed.finishedAt ?? failed.startedAt, error: failed.error! }
      } satisfies DistrictPage
    })

    return { overview, district } as const
  }),
  dependencies: [Freshness.Default, Holds.Default, Runs.Default, Report.Default, Pauses.Default, RosterStore.Default]
}) {}
