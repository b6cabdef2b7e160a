import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Stream } from "effect"
import type pg from "pg"
import type { ProviderError } from "../Domain/Errors.ts"
import type { EntityKind, EntityRecord } from "../Domain/Roster.ts"
import { EntityKinds } from "../Domain/Roster.ts"
import type { FeedItem } from "../Providers/RosterProvider.ts"
import { guardOf, usableIdentity } from "../Domain/Values.ts"
import { copyIn, copyValue } from "../Store/Copy.ts"
import { Entities, stagedColumns, stageTable } from "./Entities.ts"
import type { RepeatedKeys } from "./RepeatedKeys.ts"

/**
 * Staging: each feed of a snapshot is COPYed into a temporary table of the run's session.
 *
 * Temp tables are private to the session, unlogged, and vanish with it: a run that dies
 * half-way leaves nothing behind, and staging never touches the live tables. Every row
 * keeps its file line; a row that failed to decode is staged too (`invalid`), with the
 * identity that could be read, so the diff knows the record is still there.
 *
 * Every record passes the value guard (src/Domain/Values.ts) on its way in, whichever
 * provider it came from: no single value (a NUL, year 0000, a megabyte of name) can fail
 * the COPY and with it the district's every run. A record the guard holds out is staged
 * as `invalid`; fields it cleared or cleaned are noted in `cleared` / `stripped` (field
 * names only) for the findings.
 */

/** DDL for all staging tables (dropped first: the pooled session may have run a sync before). */
export const stagingDdl = (): string =>
  EntityKinds.map((kind) => {
    const table = stageTable(kind)
    const columns = stagedColumns(kind).map((column) => `${column.name} ${column.type}`)
    // Set by the checks on rows that repeat another (identical content, or the same
    // enrollment pair): the diff reads the kept row only.
    columns.push("shadowed boolean NOT NULL DEFAULT false")
    // Set by the district rules (out of scope, over the co-teacher limit): the record is
    // treated as removed from the source, with this as the reason (see Rules/).
    columns.push("excluded text")
    // The digest of the source record, when it was read undecoded (Digests.ts); null for
    // a row restored from the store, and for every row when digests are off.
    columns.push("digest bytea")
    return `DROP TABLE IF EXISTS pg_temp.${table};
CREATE TEMP TABLE ${table} (
  line integer NOT NULL,
  invalid boolean NOT NULL,
  problem text,
  cleared text,
  stripped text,
  status text,
  source_id text,
  ${columns.join(",\n  ")}
);
DROP TABLE IF EXISTS pg_temp.${seenTable(kind)};
CREATE TEMP TABLE ${seenTable(kind)} (line integer NOT NULL, digest bytea NOT NULL);`
  }).join("\n")

export const dropStagingDdl = (): string =>
  EntityKinds.map((kind) =>
    `DROP TABLE IF EXISTS pg_temp.${stageTable(kind)};
DROP TABLE IF EXISTS pg_temp.${seenTable(kind)};`
  ).join("\n")

/**
 * A staging row's columns but its line: what the digest store keeps under a record's
 * digest, in the kind's table (src/Store/DigestTables.ts), column for column.
 */
const CACHED_FIXED = ["invalid", "problem", "cleared", "stripped", "status", "source_id"] as const
export const seenTable = (kind: EntityKind) => `seen_${kind}`
export const cachedColumns = (kind: EntityKind) => [...CACHED_FIXED, ...stagedColumns(kind).map((c) => c.name)]

/**
 * A feed item as its staging row in COPY text (through the value guard). `keys`, when
 * given, is told each row's line and keys as staged (RepeatedKeys.ts).
 */
export const encoder = <K extends EntityKind>(kind: K, keys?: RepeatedKeys) => {
  const spec = Entities[kind]
  const columns = stagedColumns(kind)
  const isEnrollment = kind === "enrollments"
  const guard = guardOf(kind)
  // An unreadable row, or one the guard held out: its identity only (usable identifiers
  // only). For enrollments the identity is the (class, user) pair.
  const invalid = (line: number, problem: string, identity: ReturnType<typeof usableIdentity>) => {
    keys?.add(line, identity.sourceId, identity.classSourceId, identity.userSourceId)
    let text = `${line}\tt\t${copyValue(problem)}\t\\N\t\\N\t\\N\t${copyValue(identity.sourceId)}`
    for (const column of columns) {
      const value = isEnrollment && column.name === "class_source_id"
        ? identity.classSourceId
        : isEnrollment && column.name === "user_source_id"
        ? identity.userSourceId
        : null
      text += `\t${copyValue(value)}`
    }
    return text
  }
  return (item: FeedItem<EntityRecord[K]>): string => {
    if (item._tag === "Invalid") return invalid(item.origin.line, item.problem, usableIdentity(item))
    const checked = guard(item.record)
    if (checked._tag === "Held") return invalid(item.origin.line, checked.problem, checked)
    const record = checked.record
    const sourceId = spec.sourceId(record)
    if (keys !== undefined) {
      if (isEnrollment) {
        const { classSourceId, userSourceId } = record as EntityRecord["enrollments"]
        keys.add(item.origin.line, sourceId, classSourceId, userSourceId)
      } else keys.add(item.origin.line, sourceId)
    }
    const cells = new Array<string>(7 + columns.length)
    cells[0] = String(item.origin.line)
    cells[1] = "f"
    cells[2] = "\\N"
    cells[3] = copyValue(checked.cleared)
    cells[4] = copyValue(checked.stripped)
    cells[5] = record.status
    cells[6] = copyValue(sourceId)
    for (let i = 0; i < columns.length; i++) cells[7 + i] = copyValue(columns[i]!.get(record))
    return cells.join("\t")
  }
}

/**
 * COPYs one feed into its staging table; returns the number of rows staged. `keys` is
 * told each row's keys (RepeatedKeys.ts).
 */
export const stageFeed = <K extends EntityKind>(
  client: pg.PoolClient,
  kind: K,
  items: Stream.Stream<FeedItem<EntityRecord[K]>, ProviderError>,
  keys?: RepeatedKeys
): Effect.Effect<number, ProviderError | SqlError> => {
  const columns = ["line", "invalid", "problem", "cleared", "stripped", "status", "source_id", ...stagedColumns(kind).map((c) => c.name)]
  return copyIn(
    client,
    `COPY pg_temp.${stageTable(kind)} (${columns.join(", ")}) FROM STDIN`,
    items,
    encoder(kind, keys)
  ).pipe(Effect.withSpan("Staging.stageFeed", { attributes: { kind } }))
}
