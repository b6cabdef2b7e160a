import type { Console as ConsoleService } from "effect"
import { Console, Effect } from "effect"
import type { EntityKind } from "../Domain/Roster.ts"
import type { RunCounts } from "../Domain/RunCounts.ts"
import { SyncProgress } from "../Reconcile/SyncRun.ts"
import { Stdio } from "./Stdio.ts"

/**
 * Text for a terminal, with the characters that could steer it escaped: C0 controls but the
 * line feed (`\x1b` is shown as the four characters `\x1b`), and as `\uXXXX`: DEL, C1
 * controls, the line and paragraph separators, bidirectional overrides and isolates (they
 * reorder what the operator reads), U+FFFE/U+FFFF and lone surrogates.
 *
 * Source IDs, file and manifest names, URLs and notes come from providers; a roster could
 * otherwise rewrite the operator's screen. The `\uXXXX` form is also valid inside JSON
 * strings (where JSON.stringify leaves those characters as they are), so the same
 * escaping serves `--json` output and the daemon's JSON log lines.
 */
export const terminalText = (text: string): string => {
  let out: string | undefined
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x20 && c < 0x7f) continue
    let escaped: string | undefined
    if (c < 0x20) escaped = c === 0x0a ? undefined : `\\x${c.toString(16).padStart(2, "0")}`
    else if (
      c <= 0x9f || c === 0x061c || c === 0x200e || c === 0x200f || c === 0x2028 || c === 0x2029 ||
      (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c === 0xfffe || c === 0xffff
    ) escaped = `\\u${c.toString(16).padStart(4, "0")}`
    else if (c >= 0xd800 && c <= 0xdfff) {
      const next = text.charCodeAt(i + 1)
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++
        continue
      }
      escaped = `\\u${c.toString(16)}`
    }
    if (escaped === undefined) continue
    out = (out ?? "") + text.slice(start, i) + escaped
    start = i + 1
  }
  return out === undefined ? text : out + text.slice(start)
}

const terminalArgs = (args: ReadonlyArray<unknown>) => args.map((arg) => (typeof arg === "string" ? terminalText(arg) : arg))

/** `base` with every string argument passed through `terminalText`. */
const terminalUnsafe = (base: ConsoleService.UnsafeConsole): ConsoleService.UnsafeConsole => ({
  assert: (condition, ...args) => base.assert(condition, ...terminalArgs(args)),
  clear: () => base.clear(),
  count: (label) => base.count(label),
  countReset: (label) => base.countReset(label),
  debug: (...args) => base.debug(...terminalArgs(args)),
  dir: (item, options) => base.dir(item, options),
  dirxml: (...args) => base.dirxml(...terminalArgs(args)),
  error: (...args) => base.error(...terminalArgs(args)),
  group: (...args) => base.group(...terminalArgs(args)),
  groupCollapsed: (...args) => base.groupCollapsed(...terminalArgs(args)),
  groupEnd: () => base.groupEnd(),
  info: (...args) => base.info(...terminalArgs(args)),
  log: (...args) => base.log(...terminalArgs(args)),
  table: (data, properties) => base.table(data, properties),
  time: (label) => base.time(label),
  timeEnd: (label) => base.timeEnd(label),
  timeLog: (label, ...args) => base.timeLog(label, ...terminalArgs(args)),
  trace: (...args) => base.trace(...terminalArgs(args)),
  warn: (...args) => base.warn(...terminalArgs(args))
})

/** The Console service over an unsafe (synchronous) console: each method is its call, suspended. */
export const consoleOf = (unsafe: ConsoleService.UnsafeConsole): ConsoleService.Console => ({
  [Console.TypeId]: Console.TypeId,
  assert: (condition, ...args) => Effect.sync(() => unsafe.assert(condition, ...args)),
  clear: Effect.sync(() => unsafe.clear()),
  count: (label) => Effect.sync(() => unsafe.count(label)),
  countReset: (label) => Effect.sync(() => unsafe.countReset(label)),
  debug: (...args) => Effect.sync(() => unsafe.debug(...args)),
  dir: (item, options) => Effect.sync(() => unsafe.dir(item, options)),
  dirxml: (...args) => Effect.sync(() => unsafe.dirxml(...args)),
  error: (...args) => Effect.sync(() => unsafe.error(...args)),
  group: (options) => Effect.sync(() => (options?.collapsed ? unsafe.groupCollapsed(options.label) : unsafe.group(options?.label))),
  groupEnd: Effect.sync(() => unsafe.groupEnd()),
  info: (...args) => Effect.sync(() => unsafe.info(...args)),
  log: (...args) => Effect.sync(() => unsafe.log(...args)),
  table: (data, properties) => Effect.sync(() => unsafe.table(data, properties)),
  time: (label) => Effect.sync(() => unsafe.time(label)),
  timeEnd: (label) => Effect.sync(() => unsafe.timeEnd(label)),
  timeLog: (label, ...args) => Effect.sync(() => unsafe.timeLog(label, ...args)),
  trace: (...args) => Effect.sync(() => unsafe.trace(...args)),
  warn: (...args) => Effect.sync(() => unsafe.warn(...args)),
  unsafe
})

/**
 * The Console every command runs with (src/Cli/Cli.ts): `base` (the process's console, or
 * a test's) with what commands print and what they log (loggers write through the
 * Console) passed through `terminalText`. The CLI framework's own help and usage output
 * is outside it, and keeps its styling.
 */
export const terminalConsole = (base: ConsoleService.Console): ConsoleService.Console => consoleOf(terminalUnsafe(base.unsafe))

/** Plain-text tables: left-aligned first column, right-aligned numbers. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string | number>>): string => {
  const cells = [header, ...rows.map((row) => row.map(String))]
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? "").length)))
  return cells
    .map((row) => row.map((cell, i) => (i === 0 || Number.isNaN(Number(cell)) ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ").trimEnd())
    .join("\n")
}

export const countsTable = (counts: RunCounts) =>
  table(
    ["", "created", "updated", "deactivated", "unchanged"],
    (Object.keys(counts) as Array<keyof RunCounts>).map((kind) => [
      kind,
      counts[kind].created,
      counts[kind].updated,
      counts[kind].deactivated,
      counts[kind].unchanged
    ])
  )

export const json = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

/** A time as the district's people read it: `2026-11-24 01:37 CST`. */
export const localTime = (date: Date | string | null, zone: string) => {
  if (date === null) return "-"
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23", timeZoneName: "short"
    }).formatToParts(new Date(date)).map((p) => [p.type, p.value])
  )
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${parts.timeZoneName}`
}

export const when = (date: Date | string | null) => (date === null ? "-" : new Date(date).toISOString().replace(/\.\d+Z$/, "Z"))

/**
 * Progress of a long sync on a terminal (stderr, one updating line); nothing when stderr
 * is not a terminal, so scripts and logs stay clean.
 */
export const terminalProgress = Effect.map(Stdio, (stdio) => {
  if (!stdio.errorIsTerminal()) return SyncProgress.defaultValue()
  const write = stdio.writeError
  let lastDraw = 0
  const draw = (text: string, force = false) => {
    const now = Date.now()
    if (!force && now - lastDraw < 200) return
    lastDraw = now
    write(`\r\x1b[2K${text}`)
  }
  return {
    staging: (kind: EntityKind, rows: number) => Effect.sync(() => draw(`reading ${kind}: ${rows.toLocaleString("en-US")} records`)),
    phase: (phase: "fetch" | "check" | "apply" | "done") =>
      Effect.sync(() => {
        if (phase === "fetch") draw("reading the roster…", true)
        else if (phase === "apply") draw("comparing and applying…", true)
        else if (phase === "done") write("\r\x1b[2K")
      })
  }
})
