import { SqlClient } from "@effect/sql"
import { Clock, Config, Duration, Effect, Schedule } from "effect"
import { changesRetentionDays } from "../Store/Runs.ts"
import { pruneSpool, spoolDirConfig } from "./Mailer.ts"

/**
 * Retention of what the daemon keeps only for a while: messages and the values of decided
 * holds. The daemon prunes at start and then every hour (`run`); every replica does, safely:
 * each step is one set-based statement (or file removals that tolerate a file already gone),
 * so two replicas pruning at once delete each row once and wait for nothing.
 *
 * - **Outbox**: sent, cancelled and failed messages are deleted `rosterd.mail.retentionDays`
 *   (default 30) after they left `pending` (`finished_at`). Pending messages are never
 *   pruned. Their recipients and bodies go with them; a failed message's sealed link too.
 * - **Spool**: `.eml` files (which hold the rendered link: they *are* the delivery) are
 *   removed the same number of days after they were written. Each host prunes its own spool.
 * - **Held changes**: a hold keeps the new row of each held update (`held_changes.new_values`:
 *   names, addresses, birth dates), for an approval to apply. Once the hold is decided
 *   (approved, rejected, superseded or dropped) those values are cleared
 *   `rosterd.changes.retentionDays` (default 90) after the decision; what the hold was (kinds,
 *   source IDs, changed field names, counts, who decided) stays for `rosterd holds show`.
 */

export const RetentionConfig = Config.all({
  mailDays: Config.integer("retentionDays").pipe(
    Config.validate({ message: "retentionDays must be a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(30),
    Config.nested("mail"),
    Config.nested("rosterd")
  ),
  changesDays: changesRetentionDays
})

/** How often the daemon prunes. Pruning is cheap and idempotent; an hour keeps the lag small. */
export const PRUNE_EVERY = Duration.hours(1)

export interface PruneCounts {
  /** Outbox rows deleted. */
  readonly messages: number
  /** Spool files removed. */
  readonly spoolFiles: number
  /** `held_changes` rows whose values were cleared. */
  readonly heldValues: number
}

export class Retention extends Effect.Service<Retention>()("rosterd/Retention", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* RetentionConfig
    const spoolDir = yield* spoolDirConfig

    /** One pass over the outbox, the spool and the decided holds. SQL failures are defects. */
    const prune = Effect.fn("Retention.prune")(function*() {
      const [messages] = yield* sql<{ readonly n: number }>`
        WITH gone AS (
          DELETE FROM outbox
          WHERE state <> 'pending' AND finished_at < now() - make_interval(days => ${config.mailDays})
          RETURNING 1)
        SELECT count(*)::int AS n FROM gone`
      const [held] = yield* sql<{ readonly n: number }>`
        WITH cleared AS (
          UPDATE held_changes h SET new_values = NULL
          FROM holds d
          WHERE d.run_id = h.run_id AND d.state <> 'pending' AND h.new_values IS NOT NULL
            AND coalesce(d.decided_at, d.created_at) < now() - make_interval(days => ${config.changesDays})
          RETURNING 1)
        SELECT count(*)::int AS n FROM cleared`
      const now = yield* Clock.currentTimeMillis
      const spoolFiles = yield* pruneSpool(spoolDir, now - config.mailDays * 24 * 3600 * 1000)
      const counts: PruneCounts = { messages: messages?.n ?? 0, spoolFiles, heldValues: held?.n ?? 0 }
      yield* Effect.annotateCurrentSpan({ ...counts })
      if (counts.messages + counts.spoolFiles + counts.heldValues > 0) {
        yield* Effect.logInfo("retention pruned").pipe(Effect.annotateLogs({ ...counts }))
      }
      return counts
    }, Effect.orDie)

    /** Prunes now and then every `PRUNE_EVERY`, forever; a failed pass is logged and the next one comes. */
    const run: Effect.Effect<never> = prune().pipe(
      Effect.catchAllCause((cause) => Effect.logError("retention pass failed, will try again", cause)),
      Effect.repeat(Schedule.spaced(PRUNE_EVERY)),
      Effect.andThen(Effect.never)
    )

    return { prune, run, config } as const
  })
}) {}
