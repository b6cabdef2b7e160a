import { createHash } from "node:crypto"
import { escapeHtml } from "../../Mail/Templates.ts"

/**
 * The status page's HTML building blocks. Every string that reaches a page passes through
 * `text` (or `attr`): source IDs, district names, pause reasons and run errors come from
 * providers and operators, and a page must show them, never obey them.
 */

/** Markup that is already safe: only `html` and the helpers below make it. */
export interface Html {
  readonly _html: string
}

const raw = (markup: string): Html => ({ _html: markup })

/**
 * A string as page text: HTML-escaped (`& < > " '`), and the characters that would reorder
 * or hide what the operator reads shown as `\uXXXX` — bidirectional overrides and isolates,
 * the marks, line and paragraph separators, C0 and C1 controls — so a source ID written
 * right to left cannot make another look like it.
 */
export const text = (value: string | number): Html => raw(escapeHtml(visible(String(value))).replace(/'/g, "&#39;"))


const visible = (value: string) =>
  value.replace(
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffe\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`
  )

type Part = Html | string | number | null | undefined | false | ReadonlyArray<Html>

const render = (part: Part): string =>
  part === null || part === undefined || part === false
    ? ""
    : typeof part === "string" || typeof part === "number"
    ? text(part)._html
    : Array.isArray(part)
    ? (part as ReadonlyArray<Html>).map((p) => p._html).join("")
    : (part as Html)._html

/** A template whose literal parts are markup and whose values are escaped unless already `Html`. */
export const html = (strings: TemplateStringsArray, ...values: ReadonlyArray<Part>): Html =>
  raw(strings.reduce((out, literal, i) => out + literal + (i < values.length ? render(values[i]) : ""), ""))

export const join = (parts: ReadonlyArray<Html>, separator: Html = raw("")): Html => raw(parts.map((p) => p._html).join(separator._html))

/**
 * The page's only style sheet, inline and allowed by its hash in the Content-Security-Policy
 * (`style-src 'sha256-…'`): no second request (which a bearer token would not accompany),
 * and no other inline style can run.
 */
const STYLE = `
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6472; --line: #d8dde4; --bad: #b3261e; --bad-bg: #fdecea;
  --warn: #8a5a00; --warn-bg: #fff4d6; --ok: #1e6b3a; --info-bg: #e8f0fe; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); background: #f6f7f9; }
header { background: #1d2430; color: #fff; padding: 10px 24px; display: flex; gap: 16px; align-items: baseline; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header .meta { color: #b9c1cc; font-size: 12px; margin-left: auto; }
main { padding: 16px 24px 40px; }
h1 { font-size: 20px; margin: 4px 0 12px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
#districts td { white-space: nowrap; }
#districts td .error { white-space: normal; max-width: 42ch; font-size: 12.5px; }
#districts td .name { max-width: 24ch; overflow: hidden; text-overflow: ellipsis; }
th { background: #eef1f5; font-weight: 600; white-space: nowrap; }
th a { color: inherit; text-decoration: none; }
th a.sorted { text-decoration: underline; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failing td:first-child { border-left: 4px solid var(--bad); }
tr.stale td:first-child, tr.held td:first-child { border-left: 4px solid #d99a00; }
tr.paused td:first-child, tr.deferred td:first-child { border-left: 4px solid #6b8fd6; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px; font-weight: 600; margin-right: 4px; white-space: nowrap; }
.badge.failing, .badge.failed, .badge.interrupted { background: var(--bad-bg); color: var(--bad); }
.badge.stale, .badge.held { background: var(--warn-bg); color: var(--warn); }
.badge.paused, .badge.deferred, .badge.running { background: var(--info-bg); color: #1a4fa0; }
.badge.succeeded, .badge.ok { background: #e6f4ea; color: var(--ok); }
.badge.dry-run { background: #eee; color: var(--muted); }
.badge.review { background: #f3e8fd; color: #6a1b9a; }
.muted { color: var(--muted); }
.filters { margin: 0 0 12px; display: flex; gap: 6px; flex-wrap: wrap; }
.filters a { padding: 3px 10px; border: 1px solid var(--line); border-radius: 14px; background: #fff; color: var(--ink); text-decoration: none; }
.filters a.current { background: var(--ink); color: #fff; border-color: var(--ink); }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid var(--line); padding: 10px 14px; min-width: 180px; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 16px; font-weight: 600; }
.error { color: var(--bad); }
code, .id { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; overflow-wrap: anywhere; }
svg { background: #fff; border: 1px solid var(--line); max-width: 100%; height: auto; }
.calendar { display: grid; grid-template-columns: repeat(7, 1fr); gap: 2px; max-width: 560px; }
.calendar .day { background: #fff; border: 1px solid var(--line); padding: 2px 4px; font-size: 11px; min-height: 34px; }
.calendar .day.paused { background: var(--info-bg); border-color: #9db7e8; }
.calendar .day.blank { background: transparent; border-color: transparent; }
.legend span { margin-right: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
.legend i.created { background: #2e7d32; } .legend i.updated { background: #1565c0; } .legend i.deactivated { background: #c62828; } .legend i.duration { background: #6d4c41; }
`

export const STYLE_HASH = `sha256-${createHash("sha256").update(STYLE).digest("base64")}`

/**
 * The headers of every status page: no script at all, only the hashed style sheet, images
 * only from the page itself (the charts are inline SVG), never framed, no referrer leaving
 * with a district's URL, nothing cached.
 */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    `default-src 'none'; style-src '${STYLE_HASH}'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store"
}

export const page = (title: string, generatedAt: Date, body: Html): string =>
  `<!doctype html>\n${
    html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><style>${raw(STYLE)}</style></head>
<body><header><a href="/">rosterd</a><span>status</span><span class="meta">generated ${generatedAt.toISOString().replace(/\.\d{3}Z$/, "Z")}</span></header>
<main>${body}</main></body></html>`._html
  }\n`
