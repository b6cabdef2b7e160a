import { Schema } from "effect"

/**
 * What a run counts (`sync_runs.counts`, the status contract, the metrics, the CLI): here,
 * below every layer that reads or writes it.
 */

/** What a run did to one entity type. */
export const EntityCounts = Schema.Struct({
  created: Schema.Number,
  updated: Schema.Number,
  deactivated: Schema.Number,
  unchanged: Schema.Number
})
export type EntityCounts = typeof EntityCounts.Type

/** Per entity type, as in the status contract (`schools` are the OneRoster orgs). */
export const RunCounts = Schema.Struct({
  schools: EntityCounts,
  terms: EntityCounts,
  courses: EntityCounts,
  classes: EntityCounts,
  users: EntityCounts,
  enrollments: EntityCounts
})
export type RunCounts = typeof RunCounts.Type

/** The kinds a run counts (`sync_runs.counts`; `schools` are the orgs). */
export type CountKind = keyof RunCounts

export const zeroCounts: EntityCounts = { created: 0, updated: 0, deactivated: 0, unchanged: 0 }

export const emptyRunCounts: RunCounts = {
  schools: zeroCounts,
  terms: zeroCounts,
  courses: zeroCounts,
  classes: zeroCounts,
  users: zeroCounts,
  enrollments: zeroCounts
}

export const totalChanges = (counts: RunCounts) =>
  Object.values(counts).reduce((sum, c) => sum + c.created + c.updated + c.deactivated, 0)
