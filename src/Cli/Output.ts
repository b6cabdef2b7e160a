import { Console, Effect } from "effect"
import type { EntityKind } from "../Domain/Roster.ts"
import type { RunCounts } from "../Reconcile/Counts.ts"
import { SyncProgress } from "../Reconcile/SyncRun.ts"

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
export const terminalProgress = Effect.sync(() => {
  if (!process.stderr.isTTY) return SyncProgress.defaultValue()
  let lastDraw = 0
  const draw = (text: string, force = false) => {
    const now = Date.now()
    if (!force && now - lastDraw < 200) return
    lastDraw = now
    process.stderr.write(`\r\x1b[2K${text}`)
  }
  return {
    staging: (kind: EntityKind, rows: number) => Effect.sync(() => draw(`reading ${kind}: ${rows.toLocaleString("en-US")} records`)),
    phase: (phase: "fetch" | "check" | "apply" | "done") =>
      Effect.sync(() => {
        if (phase === "fetch") draw("reading the roster…", true)
        else if (phase === "apply") draw("comparing and applying…", true)
        else if (phase === "done") process.stderr.write("\r\x1b[2K")
      })
  }
})
