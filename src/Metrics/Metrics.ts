import { Context, Effect } from "effect"
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client"
import type { RunCounts } from "../Domain/RunCounts.ts"

/**
 * The process's Prometheus series (`GET /metrics`, src/Http/Server.ts), on a registry of its
 * own (prom-client's default registry is a global shared with any other library).
 *
 * Counters and the histogram are incremented where things happen — a run finishing
 * (Reconcile/SyncRun.ts), each provider request and retry (Providers/Http.ts), a lease
 * taken and let go (Reconcile/Lease.ts) — always through `Effect.sync`. The gauges that
 * come from the database (holds, outbox, freshness) are set at scrape time
 * (src/Http/MetricsScrape.ts). State is per process: each daemon replica counts its own.
 *
 * **Labels carry only district ids, statuses, kinds and provider ids**: never names,
 * e-mail addresses, tokens or URLs (a URL's query may carry a cursor or credentials).
 */

/** Seconds: a small district syncs in under a second, 100k students in about a minute. */
const RUN_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]

const CHANGE_KINDS = ["schools", "terms", "courses", "classes", "users", "enrollments"] as const
const CHANGE_ACTIONS = ["created", "updated", "deactivated"] as const

/** What the scrape reads from the database for one district (src/Http/MetricsScrape.ts). */
export interface DistrictGauges {
  readonly district: string
  /** Null: never synced successfully (no sample is written). */
  readonly secondsSinceSuccess: number | null
  readonly stale: boolean
  readonly failing: boolean
  readonly paused: boolean
  readonly pendingHolds: number
}

export const makeMetrics = () => {
  const registry = new Registry()
  const registers = [registry]

  // A run finished: one per run, by its final status (succeeded, held, failed, interrupted, dry-run).
  const syncRuns = new Counter({
    name: "rosterd_sync_runs_total",
    help: "Sync runs finished by this process, by district and final status",
    labelNames: ["district", "status"] as const,
    registers
  })
  // How long runs took, from the run record's start to its end (lease wait not included).
  const runDuration = new Histogram({
    name: "rosterd_sync_run_duration_seconds",
    help: "Duration of finished sync runs, by district and mode (full or delta)",
    labelNames: ["district", "mode"] as const,
    buckets: RUN_BUCKETS,
    registers
  })
  // Roster records a run applied (succeeded and held runs; never dry runs).
  const recordsChanged = new Counter({
    name: "rosterd_records_changed_total",
    help: "Roster records changed by applied sync runs, by district, kind and action",
    labelNames: ["district", "kind", "action"] as const,
    registers
  })
  // Scrape time: 1 while the district has a held change set waiting for an operator.
  const holdsPending = new Gauge({
    name: "rosterd_holds_pending",
    help: "Held change sets waiting for an operator, by district",
    labelNames: ["district"] as const,
    registers
  })
  // Scrape time: outbox rows waiting to be sent, and those that gave up.
  const outboxMessages = new Gauge({
    name: "rosterd_outbox_messages",
    help: "Outbox messages by state (pending: waiting or retrying; failed: out of attempts)",
    labelNames: ["state"] as const,
    registers
  })
  // Each provider HTTP attempt, by outcome: the status code, or timeout / connection / broken.
  const providerRequests = new Counter({
    name: "rosterd_provider_requests_total",
    help: "Provider HTTP requests (each attempt), by provider and HTTP status code or timeout/connection/broken",
    labelNames: ["provider", "status"] as const,
    registers
  })
  // Each retry a provider request made, by what was retried.
  const providerRetries = new Counter({
    name: "rosterd_provider_retries_total",
    help: "Provider HTTP retries, by provider and reason (the HTTP status code, timeout, connection, broken, invalid_body)",
    labelNames: ["provider", "reason"] as const,
    registers
  })
  // Scrape time, from the status contract (Schedule/Freshness.ts).
  const districtGauge = (name: string, help: string) => new Gauge({ name, help, labelNames: ["district"] as const, registers })
  const secondsSinceSuccess = districtGauge("rosterd_district_seconds_since_success", "Seconds since the district's last successful (or held) sync; absent when it never had one")
  const stale = districtGauge("rosterd_district_stale", "1 when the district is stale (not paused, no successful sync within rosterd.sync.staleAfter), else 0")
  const failing = districtGauge("rosterd_district_failing", "1 when the district's last run failed or was interrupted, else 0")
  const paused = districtGauge("rosterd_district_paused", "1 while the district is in a pause (calendar window or ad-hoc), else 0")
  // Leases (Reconcile/Lease.ts `DistrictLease.hold`) this process holds right now.
  const leasesHeld = new Gauge({
    name: "rosterd_leases_held",
    help: "District leases (session advisory locks) this process holds right now",
    registers
  })

  let processMetrics = false

  return {
    registry,

    /** Adds prom-client's process metrics (`process_*`, `nodejs_*`) once. */
    collectProcessMetrics: Effect.sync(() => {
      if (processMetrics) return
      processMetrics = true
      collectDefaultMetrics({ register: registry })
      // The endpoints name no software versions (README "HTTP endpoints, hardened").
      registry.removeSingleMetric("nodejs_version_info")
    }),

    /** A run finished; `counts` only for a run whose changes were applied. */
    runFinished: (run: {
      readonly district: string
      readonly status: string
      readonly mode: "full" | "delta"
      readonly durationMs: number
      readonly applied: RunCounts | null
    }) =>
      Effect.sync(() => {
        syncRuns.inc({ district: run.district, status: run.status })
        runDuration.observe({ district: run.district, mode: run.mode }, run.durationMs / 1000)
        if (run.applied === null) return
        for (const kind of CHANGE_KINDS) {
          for (const action of CHANGE_ACTIONS) {
            recordsChanged.inc({ district: run.district, kind, action }, run.applied[kind][action])
          }
        }
      }),

    providerRequest: (provider: string, status: string) => Effect.sync(() => providerRequests.inc({ provider, status })),
    providerRetry: (provider: string, reason: string) => Effect.sync(() => providerRetries.inc({ provider, reason })),

    leaseTaken: Effect.sync(() => leasesHeld.inc()),
    leaseReleased: Effect.sync(() => leasesHeld.dec()),

    /** The database's gauges, replaced as a whole: a removed district's series disappear. */
    setDatabaseGauges: (districts: ReadonlyArray<DistrictGauges>, outbox: { readonly pending: number; readonly failed: number }) =>
      Effect.sync(() => {
        for (const gauge of [holdsPending, secondsSinceSuccess, stale, failing, paused]) gauge.reset()
        for (const d of districts) {
          const district = d.district
          holdsPending.set({ district }, d.pendingHolds)
          if (d.secondsSinceSuccess !== null) secondsSinceSuccess.set({ district }, d.secondsSinceSuccess)
          stale.set({ district }, d.stale ? 1 : 0)
          failing.set({ district }, d.failing ? 1 : 0)
          paused.set({ district }, d.paused ? 1 : 0)
        }
        outboxMessages.set({ state: "pending" }, outbox.pending)
        outboxMessages.set({ state: "failed" }, outbox.failed)
      }),

    /** The text format of every series, and its content type (`text/plain; version=0.0.4`). */
    render: Effect.promise(() => registry.metrics()).pipe(Effect.map((text) => ({ text, contentType: registry.contentType })))
  } as const
}

export type MetricsSeries = ReturnType<typeof makeMetrics>

/**
 * The process's series. A reference with a default (one registry per process), so the
 * code that counts needs no layer; a test may provide a fresh `makeMetrics()` of its own.
 */
export class Metrics extends Context.Reference<Metrics>()("rosterd/Metrics", {
  defaultValue: (): MetricsSeries => makeMetrics()
}) {}
