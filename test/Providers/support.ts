import { Chunk, Effect, Stream } from "effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { tempDir } from "../support/Fixtures.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { District } from "../../src/Domain/District.ts"
import type { EntityKind, EntityRecord } from "../../src/Domain/Roster.ts"
import { oneRosterCsvSnapshot } from "../../src/Providers/OneRosterCsv/OneRosterCsvProvider.ts"
import type { FeedItem, FeedMode, SyncRequest } from "../../src/Providers/RosterProvider.ts"

/**
 * Provider-level helpers: read a OneRoster CSV set (folder or zip) through the real
 * provider, with no database, and collect every feed's items.
 */

/** The shared reference samples (../shared/reference/data/oneroster-csv-samples). */
export const SAMPLES = NodePath.resolve(
  NodePath.dirname(fileURLToPath(import.meta.url)),
  "../../../shared/reference/data/oneroster-csv-samples"
)

export const sample = (name: "v1p1-full" | "v1p1-minimal" | "v1p2-small") => NodePath.join(SAMPLES, name)

export const csvDistrict = (path: string) =>
  new District({
    id: "provider-test" as DistrictId,
    name: "Provider test",
    provider: "oneroster-csv",
    timezone: "UTC",
    settings: { path },
    origin: "cli"
  })

export interface ReadFeed<K extends EntityKind> {
  readonly mode: FeedMode
  readonly name: string
  readonly items: ReadonlyArray<FeedItem<EntityRecord[K]>>
}

export interface ReadSnapshot {
  readonly mode: "full" | "delta"
  readonly description: string
  readonly feeds: { readonly [K in EntityKind]: ReadFeed<K> | null }
}

/** Opens the set at `path` and drains every feed, in order, inside one scope. */
export const readSet = (path: string, request: SyncRequest = "auto") =>
  Effect.scoped(Effect.gen(function*() {
    const snapshot = yield* oneRosterCsvSnapshot(csvDistrict(path), request)
    const feeds: Record<string, ReadFeed<EntityKind> | null> = {}
    for (const [kind, feed] of Object.entries(snapshot.feeds)) {
      if (feed === null) {
        feeds[kind] = null
        continue
      }
      const items = yield* Stream.runCollect(feed.items as Stream.Stream<FeedItem<any>, any>)
      feeds[kind] = { mode: feed.mode, name: feed.name, items: Chunk.toArray(items) }
    }
    return { mode: snapshot.mode, description: snapshot.description, feeds } as unknown as ReadSnapshot
  }))

/** The decoded records of a feed (asserting there is no `Invalid` item), by source ID. */
export const validRecords = <K extends EntityKind>(feed: ReadFeed<K> | null): Array<EntityRecord[K]> => {
  if (feed === null) throw new Error("the feed is absent")
  return feed.items.map((item) => {
    if (item._tag !== "Valid") throw new Error(`${item.origin.file} line ${item.origin.line} is invalid: ${item.problem}`)
    return item.record
  })
}

export const bySourceId = <A extends { readonly sourceId: string }>(records: ReadonlyArray<A>, sourceId: string): A => {
  const found = records.find((record) => record.sourceId === sourceId)
  if (found === undefined) throw new Error(`no record ${sourceId}`)
  return found
}

/** The `zip` command line tool, when installed (no zip writer is among the dependencies). */
export const zipTool: string | null = (() => {
  try {
    return execFileSync("which", ["zip"], { encoding: "utf8" }).trim() || null
  } catch {
    return null
  }
})()

/** Zips `entries` (paths relative to `cwd`, recursively) into `out`, with no extra file attributes. */
export const zipInto = (out: string, cwd: string, entries: ReadonlyArray<string>) => {
  if (zipTool === null) throw new Error("the zip tool is not installed")
  execFileSync(zipTool, ["-q", "-r", "-X", out, ...entries], { cwd })
}

export const copyDir = (from: string, to: string) => Fs.cpSync(from, to, { recursive: true })

/** Runs `use` with a fresh temporary folder, removed afterwards whatever happens. */
export const withTempDir = <A, E, R>(use: (dir: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => tempDir()),
    (tmp) => use(tmp.dir),
    (tmp) => Effect.sync(() => tmp.remove())
  )
