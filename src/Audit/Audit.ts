import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import * as Os from "node:os"

/**
 * The audit log: every operator action (approve, reject, district add/remove/rules, review
 * decisions, account imports…) as who, what, when (UTC), why. Written in the transaction
 * of the action itself where there is one, so an action and its audit row stand or fall
 * together. Subjects are ids (run, district, review, account), never personal values.
 */

export interface AuditEntry {
  readonly actor: string
  readonly action: string
  readonly districtId?: string | null
  readonly subject?: string | null
  readonly reason?: string | null
  readonly details?: Readonly<Record<string, unknown>>
}

export interface AuditRecord {
  readonly id: number
  readonly at: Date
  readonly actor: string
  readonly action: string
  readonly districtId: string | null
  readonly subject: string | null
  readonly reason: string | null
  readonly details: Readonly<Record<string, unknown>>
}

/** Who runs this command, when no `--by` is given: the operating-system user. */
export const defaultActor = () => {
  try {
    return Os.userInfo().username
  } catch {
    return process.env["USER"] ?? "unknown"
  }
}

export class Audit extends Effect.Service<Audit>()("rosterd/Audit", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const record = Effect.fn("Audit.record")(function*(entry: AuditEntry) {
      yield* sql`INSERT INTO audit_log (actor, action, district_id, subject, reason, details)
                 VALUES (${entry.actor}, ${entry.action}, ${entry.districtId ?? null}, ${entry.subject ?? null},
                         ${entry.reason ?? null}, ${JSON.stringify(entry.details ?? {})}::jsonb)`
    })

    const list = Effect.fn("Audit.list")(function*(options: { readonly districtId?: string; readonly limit?: number }) {
      return yield* sql<AuditRecord>`
        SELECT id, at, actor, action, district_id, subject, reason, details FROM audit_log
        WHERE ${options.districtId === undefined ? sql`true` : sql`district_id = ${options.districtId}`}
        ORDER BY id DESC LIMIT ${options.limit ?? 50}`
    })

    return {
      record: (entry: AuditEntry) => record(entry).pipe(Effect.orDie),
      list: (options: { readonly districtId?: string; readonly limit?: number } = {}) => list(options).pipe(Effect.orDie)
    } as const
  })
}) {}
