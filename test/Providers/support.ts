import { defaultRules } from "../../src/Domain/DistrictRules.ts"
import { Chunk, Effect, Stream } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import yazl from "yazl"
import { tempDir } from "../support/Fixtures.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import { District } from "../../src/Domain/District.ts"
import type { EntityKind, EntityRecord } from "../../src/Domain/Roster.ts"
import type { CsvLimits } from "../../src/Providers/OneRosterCsv/CsvLimits.ts"
import { defaultCsvLimits } from "../../src/Providers/OneRosterCsv/CsvLimits.ts"
import { oneRosterCsvSnapshot } from "../../src/Providers/OneRosterCsv/OneRosterCsvProvider.ts"
import type { FeedItem, FeedMode, SyncRequest } from "../../src/Providers/RosterProvider.ts"

/**
 * Provider-level helpers: read a OneRoster CSV set (folder or zip) through the real
 * provider, with no database, and collect every feed's items.
 */

/** The public OneRoster sample sets (test/fixtures/oneroster-csv-samples, see its NOTICE.md). */
export const SAMPLES = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "../fixtures/oneroster-csv-samples")

export const sample = (name: "v1p1-full" | "v1p1-minimal" | "v1p2-small") => NodePath.join(SAMPLES, name)

export const csvDistrict = (path: string) =>
  new District({
    id: "provider-test" as DistrictId,
    name: "Provider test",
    provider: "oneroster-csv",
    timezone: "UTC",
    rules: defaultRules,
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

/** The default limits, without waiting for a set to settle: fixtures are written moments before they are read. */
export const testCsvLimits: CsvLimits = { ...defaultCsvLimits, settleSeconds: 0 }

/** Opens the set at `path` and drains every feed, in order, inside one scope. */
export const readSet = (path: string, request: SyncRequest = "auto", limits: CsvLimits = testCsvLimits) =>
  Effect.scoped(Effect.gen(function*() {
    const snapshot = yield* oneRosterCsvSnapshot(csvDistrict(path), request, limits)
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

/** Zips `entries` (paths relative to `cwd`; folders recursively) into `out`, with fixed timestamps. */
export const zipInto = (out: string, cwd: string, entries: ReadonlyArray<string>): Promise<void> => {
  const zip = new yazl.ZipFile()
  const add = (relative: string) => {
    const full = NodePath.join(cwd, relative)
    if (Fs.statSync(full).isDirectory()) {
      zip.addEmptyDirectory(relative, { mtime: new Date(0) })
      for (const child of Fs.readdirSync(full)) add(NodePath.join(relative, child))
    } else {
      zip.addFile(full, relative, { mtime: new Date(0) })
    }
  }
  for (const entry of entries) add(entry)
  zip.end()
  return new Promise((resolve, reject) => {
    zip.outputStream.pipe(Fs.createWriteStream(out)).on("close", () => resolve()).on("error", reject)
  })
}

export const copyDir = (from: string, to: string) => Fs.cpSync(from, to, { recursive: true })

/** Runs `use` with a fresh temporary folder, removed afterwards whatever happens. */
export const withTempDir = <A, E, R>(use: (dir: string) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => tempDir()),
    (tmp) => use(tmp.dir),
    (tmp) => Effect.sync(() => tmp.remove())
  )
