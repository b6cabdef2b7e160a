import { HttpMiddleware, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { Config, Effect, Layer } from "effect"
import { createServer } from "node:http"
import { latestMigration } from "../../migrations/index.ts"
import { HttpAuth } from "./Auth.ts"
import { scrape } from "./MetricsScrape.ts"
import { StatusPageData } from "./StatusPage/Data.ts"
import { StatusPageRoutes } from "./StatusPage/Routes.ts"
import { Metrics } from "../Metrics/Metrics.ts"
import { Freshness } from "../Schedule/Freshness.ts"

/**
 * The daemon's HTTP face for monitoring:
 * - `GET /healthz` — the process is alive (no dependencies; for liveness probes);
 * - `GET /readyz` — the database answers and carries the newest migration;
 * - `GET /status` — the status contract (README "Status"), the same JSON as `rosterd status --json`;
 * - `GET /metrics` — Prometheus text format (src/Metrics); 503 with one line when the database fails;
 * - `GET /`, `GET /districts/<id>` — the status page for people (src/Http/StatusPage).
 * Responses carry source IDs and counts only: no personal data, no versions, no stack traces.
 */

const noStore = { headers: { "cache-control": "no-store" } }

const readiness = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly latest: number | null }>`SELECT max(migration_id) AS latest FROM rosterd_migrations`
  return (rows[0]?.latest ?? 0) >= latestMigration
})

/** Probes: open even when `rosterd.http.auth` is set. */
const ProbeRoutes = HttpRouter.empty.pipe(
  HttpRouter.get("/healthz", HttpServerResponse.json({ status: "ok" }, noStore)),
  HttpRouter.get(
    "/readyz",
    readiness.pipe(
      Effect.timeout("2 seconds"),
      Effect.flatMap((ready) =>
        ready
          ? HttpServerResponse.json({ status: "ready" }, noStore)
          : HttpServerResponse.json({ status: "not ready", reason: "database not migrated" }, { ...noStore, status: 503 })
      ),
      Effect.catchAll(() => HttpServerResponse.json({ status: "not ready", reason: "database unreachable" }, { ...noStore, status: 503 }))
    )
  )
)

/** What monitoring reads: behind `rosterd.http.auth` when it is set. */
const MonitoringRoutes = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/status",
    Effect.flatMap(Freshness, (freshness) => freshness.status()).pipe(
      Effect.flatMap((status) => HttpServerResponse.json(status, noStore)),
      Effect.catchAllCause((cause) =>
        Effect.logError("status failed", cause).pipe(
          Effect.zipRight(HttpServerResponse.json({ error: "status unavailable" }, { ...noStore, status: 503 }))
        )
      )
    )
  ),
  HttpRouter.get(
    "/metrics",
    scrape().pipe(
      Effect.timeout("5 seconds"),
      Effect.flatMap(({ contentType, text }) => HttpServerResponse.text(text, { ...noStore, contentType })),
      Effect.catchAllCause((cause) =>
        Effect.logWarning("metrics failed", cause).pipe(
          Effect.zipRight(HttpServerResponse.text("metrics unavailable: the database did not answer\n", { ...noStore, status: 503 }))
        )
      )
    )
  )
)

/** The JSON endpoints, open (what the endpoint tests serve). */
export const HttpRoutes = HttpRouter.concat(ProbeRoutes, MonitoringRoutes)

/**
 * Everything the daemon serves: the probes, and behind `rosterd.http.auth` (when set) the
 * JSON endpoints and the status page (src/Http/StatusPage: `GET /`, `GET /districts/<id>`).
 */
export const AllRoutes = Effect.map(HttpAuth, (auth) =>
  HttpRouter.concat(ProbeRoutes, HttpRouter.concat(MonitoringRoutes, StatusPageRoutes).pipe(HttpRouter.use(auth.middleware))))

const isLoopback = (host: string) => host === "localhost" || host === "::1" || host.startsWith("127.")

/** The server on `rosterd.http.host`:`rosterd.http.port` (`ROSTERD_HTTP_HOST` / `ROSTERD_HTTP_PORT`), with the status service its routes read. */
export const HttpLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const host = yield* Config.string("host").pipe(Config.nested("http"), Config.nested("rosterd"), Config.withDefault("127.0.0.1"))
    const port = yield* Config.port("port").pipe(Config.nested("http"), Config.nested("rosterd"), Config.withDefault(8080))
    // Process metrics (CPU, memory, event loop) from the start, not from the first scrape.
    yield* Effect.flatMap(Metrics, (metrics) => metrics.collectProcessMetrics)
    const auth = yield* HttpAuth
    if (!auth.required && !isLoopback(host)) {
      yield* Effect.logWarning("the HTTP endpoints and the status page are served beyond loopback without rosterd.http.auth").pipe(Effect.annotateLogs({ host }))
    }
    return HttpServer.serve(yield* AllRoutes, HttpMiddleware.withLoggerDisabled).pipe(
      HttpServer.withLogAddress,
      Layer.provide(NodeHttpServer.layer(() => createServer({ requestTimeout: 10_000 }), { port, host }))
    )
  })
).pipe(Layer.provide(Layer.mergeAll(Freshness.Default, StatusPageData.Default, HttpAuth.Default)))
