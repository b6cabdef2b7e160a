import type { HoldSummary } from "../../Reconcile/Holds.ts"
import type { DistrictStatus } from "../../Store/Runs.ts"
import { totalChanges } from "../../Domain/RunCounts.ts"
import { toDayNumber, toLocalDate } from "../../Domain/LocalDates.ts"
import { changesChart, chartRuns, durationChart } from "./Charts.ts"
import type { DistrictPage, Overview, OverviewRow } from "./Data.ts"
import { CALENDAR_DAYS, HISTORY_RUNS } from "./Data.ts"
import { type Html, html, join, page } from "./Html.ts"

/**
 * The two status pages as HTML, from what Data.ts read: pure functions, so a test can
 * render hostile strings without a server. Filtering and sorting are query parameters
 * (`?state=failing&sort=last-run&dir=desc`): plain links, no script.
 */

// ---------------------------------------------------------------- states, filter, sort

export const STATES = ["failing", "stale", "held", "deferred", "paused", "review", "ok"] as const
export type State = typeof STATES[number]

/** Every state a district is in now; `ok` when none calls for attention. */
export const statesOf = (row: OverviewRow): ReadonlyArray<State> => {
  const s = row.status
  const states: Array<State> = []
  if (s.failing) states.push("failing")
  if (s.stale) states.push("stale")
  if (s.pendingHold !== null) states.push("held")
  if (s.deferred !== null) states.push("deferred")
  if (s.paused !== null) states.push("paused")
  if (row.openReviews > 0) states.push("review")
  if (!s.failing && !s.stale && s.pendingHold === null && s.deferred === null) states.push("ok")
  return states
}

export const SORTS = ["district", "provider", "last-run", "duration", "changes", "next-run", "state"] as const
export type Sort = typeof SORTS[number]

export interface OverviewQuery {
  readonly state: State | null
  readonly sort: Sort
  readonly dir: "asc" | "desc"
}

/** The query string as the page understands it; anything else falls back to the defaults. */
export const parseOverviewQuery = (params: URLSearchParams): OverviewQuery => {
  const state = params.get("state")
  const sort = params.get("sort")
  return {
    state: (STATES as ReadonlyArray<string>).includes(state ?? "") ? state as State : null,
    sort: (SORTS as ReadonlyArray<string>).includes(sort ?? "") ? sort as Sort : "district",
    dir: params.get("dir") === "desc" ? "desc" : "asc"
  }
}

const durationSeconds = (s: DistrictStatus) =>
  s.lastRun === null || s.lastRun.finishedAt === null ? null : (Date.parse(s.lastRun.finishedAt) - Date.parse(s.lastRun.startedAt)) / 1000

/** Worst first: the order an operator works through them in. */
const severity = (row: OverviewRow) => {
  const states = statesOf(row)
  return states.includes("failing") ? 0 : states.includes("stale") ? 1 : states.includes("held") ? 2 : states.includes("deferred") ? 3 : states.includes("review") ? 4 : states.includes("paused") ? 5 : 6
}

const sortKey = (sort: Sort, row: OverviewRow): string | number | null => {
  const s = row.status
  switch (sort) {
    case "district": return s.district
    case "provider": return s.provider
    case "last-run": return s.lastRun?.finishedAt ?? s.lastRun?.startedAt ?? null
    case "duration": return durationSeconds(s)
    case "changes": return s.lastRun === null ? null : totalChanges(s.lastRun.counts)
    case "next-run": return s.nextRun?.at ?? null
    case "state": return severity(row)
  }
}

export const selectRows = (rows: ReadonlyArray<OverviewRow>, query: OverviewQuery): ReadonlyArray<OverviewRow> => {
  const shown = query.state === null ? rows : rows.filter((row) => statesOf(row).includes(query.state!))
  const sign = query.dir === "asc" ? 1 : -1
  return shown.slice().sort((a, b) => {
    const ka = sortKey(query.sort, a)
    const kb = sortKey(query.sort, b)
    // Rows without a value (never run, no next run) go last whichever the direction.
    if (ka === null || kb === null) return ka === kb ? a.status.district.localeCompare(b.status.district) : ka === null ? 1 : -1
    const order = ka < kb ? -1 : ka > kb ? 1 : 0
    return order === 0 ? a.status.district.localeCompare(b.status.district) : sign * order
  })
}

// ---------------------------------------------------------------- formatting

const utc = (iso: string | Date) => (typeof iso === "string" ? iso : iso.toISOString()).replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC")

const ago = (now: Date, iso: string) => {
  const seconds = Math.round((now.getTime() - Date.parse(iso)) / 1000)
  const future = seconds < 0
  const s = Math.abs(seconds)
  const span = s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : s < 172_800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86_400)} d`
  return future ? `in ${span}` : `${span} ago`
}

/** An instant in the district's own zone: `2026-12-04 01:23 CST`. */
export const local = (iso: string, zone: string) => {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
    timeZoneName: "short"
  }).formatToParts(new Date(iso))
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? ""
  return `${part("year")}-${part("month")}-${part("day")} ${part("hour")}:${part("minute")} ${part("timeZoneName")}`
}

const seconds = (s: number | null) => (s === null ? "" : s < 10 ? `${s.toFixed(1)} s` : s < 600 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`)

const badge = (label: string, title?: string) => html`<span class="badge ${label}" data-state="${label}"${title === undefined ? "" : html` title="${title}"`}>${label}</span>`

const holdCounts = (hold: HoldSummary) =>
  join(hold.counts.map((c) => html`<span class="hold-count" data-kind="${c.kind}" data-action="${c.action}">${c.n} ${c.kind} ${c.action}</span>`), html`, `)

// ---------------------------------------------------------------- the districts table

const queryLink = (query: OverviewQuery, change: Partial<OverviewQuery>) => {
  const next = { ...query, ...change }
  const params = new URLSearchParams()
  if (next.state !== null) params.set("state", next.state)
  if (next.sort !== "district") params.set("sort", next.sort)
  if (next.dir !== "asc") params.set("dir", next.dir)
  const text = params.toString()
  return text === "" ? "/" : `/?${text}`
}

const sortHeader = (query: OverviewQuery, sort: Sort, label: string, numeric = false) => {
  const current = query.sort === sort
  const dir = current && query.dir === "asc" ? "desc" : "asc"
  const arrow = current ? (query.dir === "asc" ? " ▲" : " ▼") : ""
  return html`<th${numeric ? html` class="num"` : ""} data-sort="${sort}"${current ? html` aria-sort="${query.dir === "asc" ? "ascending" : "descending"}"` : ""}><a href="${(queryLink(query, { sort, dir }))}"${
    current ? html` class="sorted"` : ""
  }>${label}${arrow}</a></th>`
}

const overviewRow = (now: Date, row: OverviewRow) => {
  const s = row.status
  const states = statesOf(row)
  const run = s.lastRun
  return html`<tr data-district="${s.district}" data-states="${states.join(" ")}" class="${states.join(" ")}">
<td><a class="district" href="/districts/${(encodeURIComponent(s.district))}"><span class="id">${s.district}</span></a><div class="muted name" title="${s.name}">${s.name}</div></td>
<td data-col="provider">${s.provider}</td>
<td data-col="state">${join(states.map((state) => badge(state)), html` `)}</td>
<td data-col="last-run">${
    run === null
      ? html`<span class="muted">never</span>`
      : html`${badge(run.status)} <span title="${run.finishedAt ?? run.startedAt}">${utc(run.finishedAt ?? run.startedAt)}</span> <span class="muted">${run.mode} · ${
        ago(now, run.finishedAt ?? run.startedAt)
      }</span>${run.error === null ? "" : html`<div class="error">${run.error}</div>`}`
  }</td>
<td class="num" data-col="duration">${seconds(durationSeconds(s))}</td>
<td class="num" data-col="changes">${run === null ? "" : totalChanges(run.counts)}</td>
<td data-col="next-run">${
    s.nextRun === null
      ? html`<span class="muted">not scheduled</span>`
      : html`${local(s.nextRun.at, s.timezone)}<div class="muted">${s.nextRun.request} · ${s.nextRun.trigger}${
        s.nextRun.retries > 0 ? ` · retry ${s.nextRun.retries}` : ""
      }</div>`
  }</td>
<td data-col="paused-until">${s.paused === null ? "" : html`${local(s.paused.until, s.timezone)}<div class="muted">${s.paused.name}</div>`}${
    s.deferred === null ? "" : html`<div>deferred (run ${s.deferred.runId})</div>`
  }</td>
<td data-col="hold">${
    row.hold === null ? "" : html`<a href="/districts/${(encodeURIComponent(s.district))}#hold">run ${row.hold.runId}</a><div>${holdCounts(row.hold)}</div>`
  }</td>
<td class="num" data-col="reviews">${row.openReviews === 0 ? "" : row.openReviews}</td>
</tr>`
}

export const overviewPage = (overview: Overview, query: OverviewQuery): string => {
  const counts = new Map<State, number>(STATES.map((s) => [s, 0]))
  for (const row of overview.rows) for (const state of statesOf(row)) counts.set(state, counts.get(state)! + 1)
  const rows = selectRows(overview.rows, query)
  const filters = join([
    html`<a href="${(queryLink(query, { state: null }))}" data-filter="all"${query.state === null ? html` class="current"` : ""}>all ${overview.rows.length}</a>`,
    ...STATES.map((state) =>
      html`<a href="${(queryLink(query, { state }))}" data-filter="${state}"${query.state === state ? html` class="current"` : ""}>${state} ${counts.get(state)!}</a>`
    )
  ])
  const body = html`<h1>Districts</h1>
<nav class="filters" aria-label="filter by state">${filters}</nav>
<table id="districts"><thead><tr>
${sortHeader(query, "district", "District")}${sortHeader(query, "provider", "Provider")}${sortHeader(query, "state", "State")}${sortHeader(query, "last-run", "Last run")}${
    sortHeader(query, "duration", "Duration", true)
  }${sortHeader(query, "changes", "Changes", true)}${sortHeader(query, "next-run", "Next run (district time)")}<th>Paused until</th><th>Pending hold</th><th class="num">Open reviews</th>
</tr></thead><tbody>
${rows.length === 0 ? html`<tr><td colspan="10" class="muted">no district ${query.state === null ? "" : html`is ${query.state}`}</td></tr>` : join(rows.map((row) => overviewRow(overview.now, row)))}
</tbody></table>`
  return page("rosterd: districts", overview.now, body)
}

// ---------------------------------------------------------------- a district

const card = (label: string, value: Html | string, id: string) => html`<div class="card" data-card="${id}"><div class="label">${label}</div><div class="value">${value}</div></div>`

const trippedRule = (rule: string, limit: number) =>
  rule === "deactivate_percent" || rule === "update_percent" || rule === "class_cut" || rule === "rekey_suspected" ? `${limit}%` : String(limit)

const holdSection = (hold: HoldSummary | null, d: DistrictPage) => {
  if (hold === null) return html`<h2 id="hold">Pending hold</h2><p class="muted" data-empty="hold">none</p>`
  const rekey = d.report.rekey
  return html`<h2 id="hold">Pending hold: run ${hold.runId}</h2>
<p>held since ${utc(hold.createdAt)} · decide with <code>rosterd holds show ${hold.runId}</code>, then <code>approve</code> or <code>reject</code></p>
<table id="tripped"><thead><tr><th>kind</th><th>group</th><th>what tripped</th><th class="num">count</th><th class="num">of active</th><th class="num">limit</th></tr></thead><tbody>
${
    join(hold.tripped.map((t) =>
      html`<tr data-rule="${t.rule}"><td>${t.kind}</td><td>${t.group}</td><td>${t.rule === "rekey_suspected" ? "suspected re-key" : t.rule}</td><td class="num">${t.count}</td><td class="num">${t.of}</td><td class="num">${
        trippedRule(t.rule, t.limit)
      }</td></tr>`
    ))
  }
</tbody></table>
<h2>Held changes</h2>
<table id="held"><thead><tr><th>kind</th><th>action</th><th class="num">records</th></tr></thead><tbody>
${join(hold.counts.map((c) => html`<tr data-kind="${c.kind}" data-action="${c.action}"><td>${c.kind}</td><td>${c.action}</td><td class="num">${c.n}</td></tr>`))}
</tbody></table>
${
    rekey === undefined || rekey.runId !== hold.runId ? "" : html`<h2>Suspected re-key</h2>
<table id="rekey"><thead><tr><th>kind</th><th class="num">active</th><th class="num">disappeared</th><th class="num">appeared</th><th class="num">matched</th><th>suspected</th></tr></thead><tbody>
${
      join(rekey.kinds.map((k) =>
        html`<tr data-kind="${k.label}"><td>${k.label}</td><td class="num">${k.active}</td><td class="num">${k.disappeared}</td><td class="num">${k.appeared}</td><td class="num">${k.matched}</td><td>${
          k.suspected ? "yes" : ""
        }</td></tr>`
      ))
    }
</tbody></table>
<p class="muted">${join(rekey.proposed.map((m) => html`${m.n} ${m.kind} paired by ${m.matchedOn}`), html` · `)}</p>`
  }`
}

const findingsSection = (d: DistrictPage) => {
  const report = d.report
  const heading = report.run === null ? html`<h2 id="findings">Findings</h2>` : html`<h2 id="findings">Findings of run ${report.run.id}</h2>`
  if (report.findings.length === 0) return html`${heading}<p class="muted" data-empty="findings">none</p>`
  return html`${heading}
<table id="findings-table"><thead><tr><th>rule</th><th>severity</th><th>records</th><th class="num">count</th><th>first source IDs</th></tr></thead><tbody>
${
    join(report.findings.map((g) =>
      html`<tr data-code="${g.code}"><td><code>${g.code}</code></td><td>${g.severity}</td><td>${g.entity ?? ""}</td><td class="num">${g.count}</td><td class="id">${
        g.sourceIds.slice(0, 10).join(", ")
      }${g.sourceIds.length > 10 ? ` … (${g.sourceIds.length - 10} more)` : ""}</td></tr>`
    ))
  }
</tbody></table>
<p class="muted">all of them: <code>rosterd report ${report.district}</code></p>`
}

const calendarSection = (d: DistrictPage) => {
  const first = toDayNumber(d.calendar.from)
  const spans = d.calendar.spans
  const pausedOn = (date: string) => spans.filter((s) => s.from <= date && date <= s.to && (s.endedAt === undefined || s.endedAt.getTime() > Date.parse(`${date}T00:00:00Z`)))
  // Weeks start on Monday; day numbers count from 1970-01-01, a Thursday.
  const weekday = (((first + 3) % 7) + 7) % 7
  const cells: Array<Html> = Array.from({ length: weekday }, () => html`<div class="day blank"></div>`)
  for (let i = 0; i < CALENDAR_DAYS; i++) {
    const date = toLocalDate(first + i)
    const on = pausedOn(date)
    cells.push(
      html`<div class="day${on.length > 0 ? " paused" : ""}" data-date="${date}"${on.length > 0 ? html` data-paused="${on.map((s) => s.name).join(", ")}" title="${on.map((s) => s.name).join(", ")}"` : ""}>${
        date.slice(5)
      }</div>`
    )
  }
  const list = spans.length === 0
    ? html`<p class="muted" data-empty="pauses">no pause in the next ${CALENDAR_DAYS} days</p>`
    : html`<table id="pauses"><thead><tr><th>pause</th><th>from</th><th>to (last day)</th><th>source</th><th>reason</th></tr></thead><tbody>
${
      join(spans.map((s) =>
        html`<tr data-pause="${s.key}"><td>${s.name}</td><td>${s.from}</td><td>${s.to}</td><td>${s.source}${s.allDistricts ? " (all districts)" : ""}${
          s.endedAt === undefined ? "" : html` · ended ${utc(s.endedAt)}`
        }</td><td>${s.reason ?? ""}</td></tr>`
      ))
    }</tbody></table>`
  return html`<h2 id="calendar">Pauses, ${d.calendar.from} to ${d.calendar.to} (${d.status.timezone})</h2>
<div class="calendar" aria-label="pause calendar">${join(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].map((n) => html`<div class="day blank muted">${n}</div>`))}${join(cells)}</div>
${list}`
}

const historySection = (d: DistrictPage) => {
  const runs = chartRuns(d.history)
  if (runs.length === 0) return html`<h2 id="history">Run history</h2><p class="muted" data-empty="history">no run yet</p>`
  return html`<h2 id="history">Run history (last ${HISTORY_RUNS} runs)</h2>
<p class="legend"><span><i class="duration"></i>duration</span></p>
<div id="duration-chart">${durationChart(runs)}</div>
<p class="legend"><span><i class="created"></i>created</span><span><i class="updated"></i>updated</span><span><i class="deactivated"></i>deactivated</span></p>
<div id="changes-chart">${changesChart(runs)}</div>
<table id="runs"><thead><tr><th>run</th><th>status</th><th>mode</th><th>trigger</th><th>started</th><th class="num">duration</th><th class="num">created</th><th class="num">updated</th><th class="num">deactivated</th><th class="num">findings</th><th>error</th></tr></thead><tbody>
${
    join(d.history.map((r) => {
      const c = runs.find((x) => x.id === r.id)
      return html`<tr data-run="${r.id}"><td>${r.id}</td><td>${badge(r.status)}</td><td>${r.mode}</td><td>${r.trigger}</td><td>${utc(r.startedAt)}</td><td class="num">${
        seconds(r.finishedAt === null ? null : (r.finishedAt.getTime() - r.startedAt.getTime()) / 1000)
      }</td><td class="num">${c?.created ?? ""}</td><td class="num">${c?.updated ?? ""}</td><td class="num">${c?.deactivated ?? ""}</td><td class="num">${r.findings}</td><td class="error">${r.error ?? ""}</td></tr>`
    }))
  }
</tbody></table>`
}

export const districtPage = (d: DistrictPage): string => {
  const s = d.status
  const states = statesOf({ status: s, hold: d.hold, openReviews: d.report.reviewQueue.open })
  const run = s.lastRun
  const body = html`<p><a href="/">← all districts</a></p>
<h1><span class="id">${s.district}</span> · ${s.name}</h1>
<p data-states="${states.join(" ")}">${join(states.map((state) => badge(state)), html` `)}</p>
<div class="cards">
${card("provider", s.provider, "provider")}
${card("time zone", s.timezone, "timezone")}
${card("last run", run === null ? "never" : html`${badge(run.status)} ${utc(run.finishedAt ?? run.startedAt)}`, "last-run")}
${card("last success", s.lastSuccessAt === null ? "never" : utc(s.lastSuccessAt), "last-success")}
${card("next run (district time)", s.nextRun === null ? "not scheduled" : html`${local(s.nextRun.at, s.timezone)} <span class="muted">${s.nextRun.request}</span>`, "next-run")}
${card("paused until", s.paused === null ? "not paused" : html`${local(s.paused.until, s.timezone)} <span class="muted">${s.paused.name}</span>`, "paused")}
${card("open reviews", String(d.report.reviewQueue.open), "reviews")}
</div>
<h2 id="provider">Provider</h2>
<p><span data-provider="${s.provider}">${s.provider}</span>${
    s.deferred === null ? "" : html` · newest run ${s.deferred.runId} deferred: <span class="muted">${s.deferred.note}</span>`
  }</p>
${
    d.lastError === null
      ? html`<p class="muted" data-empty="last-error">no failed run among the last ${HISTORY_RUNS}</p>`
      : html`<p>last error (run ${d.lastError.runId}, ${utc(d.lastError.at)}): <span class="error" id="last-error">${d.lastError.error}</span></p>`
  }
${historySection(d)}
${findingsSection(d)}
${holdSection(d.hold, d)}
${calendarSection(d)}`
  return page(`rosterd: ${s.district}`, d.now, body)
}

export const notFoundPage = (now: Date, what: string) => page("rosterd: not found", now, html`<h1>Not found</h1><p>${what}</p><p><a href="/">all districts</a></p>`)
