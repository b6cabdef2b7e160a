import { Command, Options } from "@effect/cli"
import { SqlClient, SqlError } from "@effect/sql"
import { Console, Effect, Option } from "effect"
import type { AuditEntry } from "../Audit/Audit.ts"
import { Audit } from "../Audit/Audit.ts"
import { jsonFlag } from "./Options.ts"
import { json, table, when } from "./Output.ts"

/**
 * `rosterd audit`: the audit log of operator actions (src/Audit/Audit.ts), and `audited`,
 * which the commands whose action has no transaction of its own use to write the action and
 * its audit row in one.
 */

/**
 * Runs `action` and records its audit row in the same transaction: both stand or fall
 * together. The entry is made from the action's result (ids and counts, never personal values).
 */
export const audited = <A, E, R>(action: Effect.Effect<A, E, R>, entry: (result: A) => AuditEntry) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit
    return yield* sql.withTransaction(Effect.tap(action, (result) => audit.record(entry(result)))).pipe(
      Effect.catchIf((error): error is SqlError.SqlError => error instanceof SqlError.SqlError, Effect.die)
    )
  })

export const auditCommand = Command.make(
  "audit",
  {
    district: Options.text("district").pipe(Options.withDescription("only this district's entries"), Options.optional),
    limit: Options.integer("limit").pipe(Options.withDefault(50), Options.withDescription("how many entries, newest first")),
    json: jsonFlag("print JSON (with each entry's details)")
  },
  (args) =>
    Effect.gen(function*() {
      if (args.limit < 1) return yield* Effect.fail(new Error("--limit must be at least 1"))
      const entries = yield* Effect.flatMap(Audit, (audit) =>
        audit.list({ ...Option.match(args.district, { onNone: () => ({}), onSome: (districtId) => ({ districtId }) }), limit: args.limit }))
      const view = entries.map((e) => ({ ...e, id: Number(e.id), at: new Date(e.at).toISOString() }))
      if (args.json) return yield* json(view)
      if (view.length === 0) return yield* Console.log("the audit log is empty" + (Option.isSome(args.district) ? ` for district ${args.district.value}` : ""))
      yield* Console.log(table(
        ["at (UTC)", "actor", "action", "district", "subject", "reason"],
        view.map((e) => [when(e.at), e.actor, e.action, e.districtId ?? "-", e.subject ?? "-", e.reason ?? ""])
      ))
    })
).pipe(
  Command.withDescription("the audit log of operator actions (who, what, when, why), newest first"),
  Command.provide(Audit.Default)
)
