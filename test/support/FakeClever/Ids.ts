/**
 * Clever ids are 24-hex-char MongoDB ObjectIDs whose first 8 hex digits are the creation
 * time in seconds, so listings sorted by id are (roughly) in creation order and records
 * created during a paged walk land after it. The fake keeps that property:
 *
 * - records imported from a OneRoster CSV set get `hex8(importedAt) + 16 hex of
 *   sha1("<file>:<sourcedId>")` — deterministic, and spread evenly (the CSV order is not
 *   the id order, as in a real district);
 * - records and events created later get ids from {@link ObjectIdGenerator}, whose time
 *   prefix is never below `importedAt + 1 s`, so they always sort after every import.
 */
import { createHash } from "node:crypto"

/** The OneRoster CSV file a Clever record was made from. */
export type SourceFile = "orgs" | "academicSessions" | "courses" | "classes" | "users"

export interface SourceRef {
  readonly file: SourceFile
  readonly sourcedId: string
}

/** Default import time of converted districts: fixed, so ids do not depend on the day the test runs. */
export const DEFAULT_IMPORTED_AT = Date.parse("2024-01-01T00:00:00.000Z")

const hex8 = (seconds: number) => (seconds >>> 0).toString(16).padStart(8, "0")

/** The id a CSV record gets (pure: tests may compute it without the map). */
export const cleverIdFor = (file: SourceFile, sourcedId: string, importedAt = DEFAULT_IMPORTED_AT): string =>
  hex8(Math.floor(importedAt / 1000)) + createHash("sha1").update(`${file}:${sourcedId}`).digest("hex").slice(0, 16)

/** Both directions between CSV sourcedIds and Clever ids, for tests relating the two. */
export class IdMap {
  private readonly forward = new Map<string, string>()
  private readonly backward = new Map<string, SourceRef>()

  constructor(readonly importedAt = DEFAULT_IMPORTED_AT) {}

  /** Assigns (or returns the already assigned) Clever id of a CSV record. */
  add(file: SourceFile, sourcedId: string): string {
    const key = `${file}:${sourcedId}`
    const known = this.forward.get(key)
    if (known !== undefined) return known
    const id = cleverIdFor(file, sourcedId, this.importedAt)
    const clash = this.backward.get(id)
    // 64 hash bits make this practically impossible; fail loudly rather than merge two records.
    if (clash !== undefined) throw new Error(`Clever id collision: ${key} and ${clash.file}:${clash.sourcedId}`)
    this.forward.set(key, id)
    this.backward.set(id, { file, sourcedId })
    return id
  }

  cleverId(file: SourceFile, sourcedId: string): string | undefined {
    return this.forward.get(`${file}:${sourcedId}`)
  }

  /** Like {@link cleverId}, throwing when the record was not converted (handy in tests). */
  require(file: SourceFile, sourcedId: string): string {
    const id = this.cleverId(file, sourcedId)
    if (id === undefined) throw new Error(`no Clever id for ${file}:${sourcedId}`)
    return id
  }

  source(cleverId: string): SourceRef | undefined {
    return this.backward.get(cleverId)
  }

  get size(): number {
    return this.forward.size
  }
}

/** Ascending ObjectID-like ids for records and events created after the import. */
export class ObjectIdGenerator {
  private seconds: number
  private counter = 0

  constructor(importedAt = DEFAULT_IMPORTED_AT) {
    this.seconds = Math.floor(importedAt / 1000) + 1
  }

  /** A new id, greater than every id handed out before and every imported id. */
  next(nowMs: number): string {
    // A clock set backwards must not make ids go down: the time prefix only ever grows.
    this.seconds = Math.max(this.seconds, Math.floor(nowMs / 1000))
    this.counter++
    return hex8(this.seconds) + this.counter.toString(16).padStart(16, "0")
  }
}
