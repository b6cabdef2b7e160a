import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { SyncRequest } from "../Providers/RosterProvider.ts"
import type { Slot, SlotTrigger } from "./SyncSchedule.ts"

/**
 * The districts' schedule as stored (`districts.next_run_*`, migration 0005): shared by
 * every replica, so a district's next slot survives restarts and is seen by all.
 */
export interface StoredSlot {
  readonly district: string
  /** Null: never scheduled — due at once. */
  readonly at: Date | null
  readonly request: SyncRequest
  readonly trigger: SlotTrigger
  /** Retries already made for this slot. */
  readonly attempt: number
}

/** Two reads of a district's slot are the same slot (nobody ran it in between). */
export const sameSlot = (a: StoredSlot, b: StoredSlot): boolean =>
  (a.at?.getTime() ?? null) === (b.at?.getTime() ?? null) && a.request === b.request && a.trigger === b.trigger &&
  a.attempt === b.attempt

export class Slots extends Effect.Service<Slots>()("rosterd/Slots", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const columns = sql`id AS district, next_run_at AS at, next_run_request AS request, next_run_trigger AS trigger,
                        retry_attempt AS attempt`

    /** Districts whose slot has come, oldest first (never-scheduled ones first of all). */
    const due = (now: Date) =>
      sql<StoredSlot>`SELECT ${columns} FROM districts
                      WHERE removed_at IS NULL AND (next_run_at IS NULL OR next_run_at <= ${now})
                      ORDER BY next_run_at NULLS FIRST, id`.pipe(Effect.orDie)

    /** Districts waiting for a pause to end (their slot is a catch-up in the future). */
    const waitingForCatchUp = (now: Date) =>
      sql<StoredSlot>`SELECT ${columns} FROM districts
                      WHERE removed_at IS NULL AND next_run_trigger = 'catch-up' AND next_run_at > ${now}`.pipe(Effect.orDie)

    /** The earliest slot still to come: the scheduler wakes for it rather than at its next poll. */
    const nextAt = (now: Date) =>
      sql<{ readonly at: Date | null }>`SELECT min(next_run_at) AS at FROM districts
                                        WHERE removed_at IS NULL AND next_run_at > ${now}`.pipe(
        Effect.map((rows) => rows[0]?.at ?? null),
        Effect.orDie
      )

    const get = (district: string) =>
      sql<StoredSlot>`SELECT ${columns} FROM districts WHERE id = ${district}`.pipe(
        Effect.map((rows) => rows[0]),
        Effect.orDie
      )

    const set = (district: string, slot: Slot, attempt: number) =>
      sql`UPDATE districts SET next_run_at = ${slot.at}, next_run_request = ${slot.request},
                               next_run_trigger = ${slot.trigger}, retry_attempt = ${attempt}
          WHERE id = ${district}`.pipe(Effect.asVoid, Effect.orDie)

    /** Start of the district's last successful full sync (the full-sync cadence counts from it). */
    const lastFullAt = (district: string) =>
      sql<{ readonly at: Date | null }>`SELECT max(started_at) AS at FROM sync_runs
                                        WHERE district_id = ${district} AND mode = 'full' AND status IN ('succeeded', 'held')`.pipe(
        Effect.map((rows) => rows[0]?.at ?? null),
        Effect.orDie
      )

    return { due, waitingForCatchUp, nextAt, get, set, lastFullAt } as const
  })
}) {}
