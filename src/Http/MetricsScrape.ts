import { SqlClient } from "@effect/sql"
import { Clock, Effect } from "effect"
import { Freshness } from "../Schedule/Freshness.ts"
import { Metrics } from "../Metrics/Metrics.ts"

/**
 * One scrape of `GET /metrics`: the gauges that live in the database are read now — the
 * districts' freshness and pending holds from the status contract (`Freshness.status`, so a
 * paused district is not stale), the outbox in one aggregate query — and then every series
 * is rendered. Scrapes take turns: each replaces the database gauges as a whole before
 * rendering them.
 */

const turn = Effect.unsafeMakeSemaphore(1)

export const scrape = Effect.fn("Metrics.scrape")(function*() {
  const metrics = yield* Metrics
  const freshness = yield* Freshness
  const sql = yield* SqlClient.SqlClient
  return yield* turn.withPermits(1)(Effect.gen(function*() {
    yield* metrics.collectProcessMetrics
    const [statuses, [outbox]] = yield* Effect.all([
      freshness.status(),
      sql<{ readonly pending: number; readonly failed: number }>`
        SELECT count(*) FILTER (WHERE state = 'pending')::int AS pending,
               count(*) FILTER (WHERE state = 'failed')::int AS failed
        FROM outbox WHERE state IN ('pending', 'failed')`
    ], { concurrency: 2 })
    const now = yield* Clock.currentTimeMillis
    yield* metrics.setDatabaseGauges(
      statuses.map((s) => ({
        district: s.district,
        secondsSinceSuccess: s.lastSuccessAt === null ? null : Math.max(0, (now - Date.parse(s.lastSuccessAt)) / 1000),
        stale: s.stale,
        failing: s.failing,
        paused: s.paused !== null,
        pendingHolds: s.pendingHold === null ? 0 : 1
      })),
      { pending: outbox?.pending ?? 0, failed: outbox?.failed ?? 0 }
    )
    return yield* metrics.render
  }))
})
