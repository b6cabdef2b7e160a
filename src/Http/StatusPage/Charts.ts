import type { RunRecord } from "../../Store/Runs.ts"
import { type Html, html, join } from "./Html.ts"

/**
 * The district page's run history as inline SVG: no script, no style attribute (the CSP
 * allows neither) — colours are presentation attributes, and each bar carries a `<title>`
 * the browser shows on hover. Runs read oldest to newest, left to right.
 */

const WIDTH = 720
const HEIGHT = 180
const LEFT = 56
const RIGHT = 12
const TOP = 12
const BOTTOM = 28

const COLOURS = { created: "#2e7d32", updated: "#1565c0", deactivated: "#c62828", duration: "#6d4c41" } as const

export interface ChartRun {
  readonly id: number
  readonly status: string
  readonly seconds: number | null
  readonly created: number
  readonly updated: number
  readonly deactivated: number
}

export const chartRuns = (history: ReadonlyArray<RunRecord>): ReadonlyArray<ChartRun> =>
  history
    .filter((r) => r.status !== "dry-run")
    .slice()
    .reverse()
    .map((r) => {
      const counts = r.counts === null ? [] : Object.values(r.counts)
      const sum = (field: "created" | "updated" | "deactivated") => counts.reduce((n, c) => n + c[field], 0)
      return {
        id: r.id,
        status: r.status,
        seconds: r.finishedAt === null ? null : Math.max(0, (r.finishedAt.getTime() - r.startedAt.getTime()) / 1000),
        created: sum("created"),
        updated: sum("updated"),
        deactivated: sum("deactivated")
      }
    })

const fmt = (n: number) => (n >= 100 || Number.isInteger(n) ? String(Math.round(n)) : n.toFixed(1))

const frame = (label: string, ticks: ReadonlyArray<{ readonly y: number; readonly label: string }>, runs: ReadonlyArray<ChartRun>, slot: number, body: Html) =>
  html`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${label}">
<title>${label}</title>
${
    join(ticks.map((t) =>
      html`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${t.y}" y2="${t.y}" stroke="#e3e7ec"/><text x="${LEFT - 6}" y="${t.y + 4}" text-anchor="end" font-size="10" fill="#5b6472">${t.label}</text>`
    ))
  }
<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${HEIGHT - BOTTOM}" y2="${HEIGHT - BOTTOM}" stroke="#8a929e"/>
${body}
${
    join(runs.map((r, i) =>
      i % Math.max(1, Math.ceil(runs.length / 10)) === 0 || i === runs.length - 1
        ? html`<text x="${LEFT + slot * i + slot / 2}" y="${HEIGHT - BOTTOM + 14}" text-anchor="middle" font-size="10" fill="#5b6472">#${r.id}</text>`
        : html``
    ))
  }
<text x="${LEFT}" y="${HEIGHT - 2}" font-size="10" fill="#5b6472">run</text>
</svg>`

const plotHeight = HEIGHT - TOP - BOTTOM

/** Seconds per run, one bar each; a run still going (or cut off) has none. */
export const durationChart = (runs: ReadonlyArray<ChartRun>): Html => {
  const slot = (WIDTH - LEFT - RIGHT) / Math.max(runs.length, 1)
  const max = Math.max(1, ...runs.map((r) => r.seconds ?? 0))
  const y = (s: number) => TOP + plotHeight - (s / max) * plotHeight
  const ticks = [0, max / 2, max].map((s) => ({ y: y(s), label: `${fmt(s)} s` }))
  const bars = join(runs.flatMap((r, i) =>
    r.seconds === null ? [] : [
      html`<rect class="bar duration" data-run="${r.id}" x="${LEFT + slot * i + slot * 0.15}" y="${y(r.seconds)}" width="${slot * 0.7}" height="${
        Math.max(1, TOP + plotHeight - y(r.seconds))
      }" fill="${r.status === "failed" || r.status === "interrupted" ? "#c62828" : COLOURS.duration}"><title>run ${r.id} (${r.status}): ${fmt(r.seconds)} s</title></rect>`
    ]
  ))
  return frame("Duration per run, in seconds", ticks, runs, slot, bars)
}

/**
 * Created, updated and deactivated records per run (all kinds together), side by side. The
 * scale is logarithmic: a first sync creates thousands, a nightly one changes a handful, and
 * both must stay readable.
 */
export const changesChart = (runs: ReadonlyArray<ChartRun>): Html => {
  const slot = (WIDTH - LEFT - RIGHT) / Math.max(runs.length, 1)
  const max = Math.max(10, ...runs.flatMap((r) => [r.created, r.updated, r.deactivated]))
  const top = Math.log10(max + 1)
  const y = (n: number) => TOP + plotHeight - (Math.log10(n + 1) / top) * plotHeight
  const ticks = [0, 10, 100, 1_000, 10_000, 100_000, 1_000_000].filter((n) => n <= max).map((n) => ({ y: y(n), label: n.toLocaleString("en-US") }))
  const width = (slot * 0.8) / 3
  const bars = join(runs.flatMap((r, i) =>
    (["created", "updated", "deactivated"] as const).map((field, j) =>
      html`<rect class="bar ${field}" data-run="${r.id}" data-count="${r[field]}" x="${LEFT + slot * i + slot * 0.1 + width * j}" y="${y(r[field])}" width="${width}" height="${
        TOP + plotHeight - y(r[field])
      }" fill="${COLOURS[field]}"><title>run ${r.id}: ${r[field]} ${field}</title></rect>`
    )
  ))
  return frame("Created, updated and deactivated records per run (log scale)", ticks, runs, slot, bars)
}
