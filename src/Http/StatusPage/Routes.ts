import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Effect } from "effect"
import { StatusPageData } from "./Data.ts"
import { PAGE_HEADERS } from "./Html.ts"
import { districtPage, notFoundPage, overviewPage, parseOverviewQuery } from "./Pages.ts"

/**
 * `GET /` (the districts) and `GET /districts/<id>` (one district): read-only HTML with the
 * page headers of Html.ts. A failure shows one line, never a stack trace.
 */

const htmlResponse = (body: string, status = 200) =>
  HttpServerResponse.text(body, { status, contentType: "text/html; charset=utf-8", headers: PAGE_HEADERS })

const unavailable = (cause: unknown) =>
  Effect.logError("status page failed", cause).pipe(
    Effect.zipRight(HttpServerResponse.text("status unavailable: the database did not answer\n", { status: 503, headers: PAGE_HEADERS }))
  )

const overview = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const query = parseOverviewQuery(new URL(request.url, "http://rosterd.invalid").searchParams)
  const data = yield* Effect.flatMap(StatusPageData, (pages) => pages.overview())
  return yield* htmlResponse(overviewPage(data, query))
}).pipe(Effect.timeout("10 seconds"), Effect.catchAllCause(unavailable))

const district = Effect.gen(function*() {
  const { params } = yield* HttpRouter.RouteContext
  const id = params["id"] ?? ""
  return yield* Effect.flatMap(StatusPageData, (pages) => pages.district(id)).pipe(
    Effect.flatMap((data) => htmlResponse(districtPage(data))),
    Effect.catchTag("DistrictNotFound", () =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => htmlResponse(notFoundPage(new Date(now), `No district ${id}.`), 404)))
  )
}).pipe(Effect.timeout("10 seconds"), Effect.catchAllCause(unavailable))

export const StatusPageRoutes = HttpRouter.empty.pipe(
  HttpRouter.get("/", overview),
  HttpRouter.get("/districts/:id", district)
)
