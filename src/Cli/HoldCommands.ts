import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import type { Tripped } from "../Reconcile/Gate.ts"
import type { HoldSummary } from "../Reconcile/Holds.ts"
import { Holds } from "../Reconcile/Holds.ts"
import type { RekeySummary } from "../Reconcile/Rekey.ts"
import { describeFigures, rekeySummary } from "../Reconcile/Rekey.ts"
import { byOption, jsonOption } from "./Options.ts"
import { json, table, when } from "./Output.ts"

/**
 * `rosterd holds …`: the change sets the safety gate held back (src/Reconcile/Holds.ts), and
 * an operator's decision on them. Output carries run ids, source IDs, rules, field names
 * and counts — never personal values. Approve and reject are audited by the Holds service.
 */

const runArg = Args.integer({ name: "run" }).pipe(Args.withDescription("the id of the run that held the changes (see `rosterd holds list`)"))
const deciderOption = byOption("who decides (recorded with the hold and in the audit log)")
const reasonOption = Options.text("reason").pipe(Options.withDescription("why (recorded with the hold and in the audit log)"), Options.optional)

/** Change rows listed by `holds show` as text; --json lists them all. */
const SHOWN_CHANGES = 200

/** `users (student) deactivate_percent 180 of 200 (limit 10%)`: one tripped threshold. */
export const describeTripped = (t: Tripped) => {
  // A suspected re-key: `count` of the `of` active records paired one-to-one with new IDs; suspect from `limit`% gone.
  if (t.rule === "rekey_suspected") return `${t.kind} rekey_suspected: ${t.count} of ${t.of} active re-keyed one-to-one (limit ${t.limit}% gone)`
  const limit = t.rule === "deactivate_percent" || t.rule === "update_percent" || t.rule === "class_cut" ? `${t.limit}%` : String(t.limit)
  return `${t.kind}${t.group === t.kind ? "" : ` (${t.group})`} ${t.rule} ${t.count} of ${t.of} (limit ${limit})`
}

/** A suspected re-key's figures per kind and its proposed pairs per match kind: counts only. */
export const describeRekey = (rekey: RekeySummary, district: string) =>
  [
    `suspected re-key of ${district} (nothing of the run was applied):`,
    ...rekey.kinds.filter((k) => k.disappeared + k.appeared > 0).map((k) =>
      `  ${describeFigures(k, rekey.proposed.filter((m) => m.kind === k.label))}${k.suspected ? " — suspected" : ""}`
    ),
    ...rekey.proposed.filter((m) => m.kind === "enrollments").map((m) => `  enrollments ${m.n} paired by class and person (${m.matchedOn})`)
  ].join("\n")

/** `users deactivate 180, enrollments deactivate 540`. */
const describeCounts = (counts: HoldSummary["counts"]) =>
  counts.length === 0 ? "-" : counts.map((c) => `${c.kind} ${c.action} ${c.n}`).join(", ")

const list = Command.make(
  "list",
  {
    district: Options.text("district").pipe(Options.withDescription("only this district"), Options.optional),
    all: Options.boolean("all").pipe(Options.withDescription("every hold, decided or closed too (default: pending ones)")),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const holds = yield* Effect.flatMap(Holds, (h) =>
        h.list({ ...Option.match(args.district, { onNone: () => ({}), onSome: (districtId) => ({ districtId }) }), all: args.all }))
      if (args.json) return yield* json(holds)
      if (holds.length === 0) return yield* Console.log(args.all ? "no holds" : "no pending holds")
      yield* Console.log(table(
        ["run", "district", "state", "created", "tripped", "held"],
        holds.map((h) => [h.runId, h.districtId, h.state, when(h.createdAt), h.tripped.map(describeTripped).join("; "), describeCounts(h.counts)])
      ))
      if (!args.all) yield* Console.log("review one: rosterd holds show <run>")
    })
).pipe(Command.withDescription("held change sets waiting for an operator (--all: every state)"))

const show = Command.make("show", { run: runArg, json: jsonOption }, (args) =>
  Effect.gen(function*() {
    const { changes, hold } = yield* Effect.flatMap(Holds, (h) => h.show(args.run))
    const rekey = yield* rekeySummary(hold.runId).pipe(Effect.orDie)
    if (args.json) return yield* json({ hold, changes, ...(rekey === undefined ? {} : { rekey }) })
    yield* Console.log(`hold of run ${hold.runId} (district ${hold.districtId}): ${hold.state}, created ${when(hold.createdAt)}`)
    for (const t of hold.tripped) yield* Console.log(`tripped: ${describeTripped(t)}`)
    yield* Console.log(`held: ${describeCounts(hold.counts)}`)
    if (rekey !== undefined) yield* Console.log(describeRekey(rekey, hold.districtId))
    if (hold.state === "pending" && rekey !== undefined) {
      yield* Console.log(
        `decide: same records under new IDs: rosterd district rekey ${hold.districtId} --run ${hold.runId} --by <name> [--dry-run] | ` +
          `they really left: rosterd holds approve ${hold.runId} --by <name> | rosterd holds reject ${hold.runId} --by <name>`
      )
    } else if (hold.state === "pending") {
      yield* Console.log(`decide: rosterd holds approve ${hold.runId} --by <name> [--reason <text>] | rosterd holds reject ${hold.runId} --by <name> [--reason <text>]`)
    } else if (hold.decidedBy !== null) {
      yield* Console.log(`${hold.state} by ${hold.decidedBy} at ${when(hold.decidedAt)}${hold.reason === null ? "" : `: ${hold.reason}`}`)
    } else if (hold.closedByRun !== null) {
      yield* Console.log(`${hold.state} by run ${hold.closedByRun} at ${when(hold.decidedAt)}`)
    }
    if (hold.outcome !== null) yield* Console.log(`outcome: ${JSON.stringify(hold.outcome)}`)
    if (changes.length === 0) return yield* Console.log("no held records")
    yield* Console.log(table(
      ["kind", "action", "source id", "reason", "rule", "fields"],
      changes.slice(0, SHOWN_CHANGES).map((c) => [c.kind, c.action, c.sourceId, c.reason ?? "", c.rule, c.fields.join(",")])
    ))
    if (changes.length > SHOWN_CHANGES) yield* Console.log(`${changes.length - SHOWN_CHANGES} more: use --json`)
  })).pipe(Command.withDescription("a hold: what tripped, and each held record (source ID, reason, rule, changed field names)"))

const approve = Command.make("approve", { run: runArg, by: deciderOption, reason: reasonOption }, (args) =>
  Effect.gen(function*() {
    const outcome = yield* Effect.flatMap(Holds, (h) => h.approve(args.run, args.by, Option.getOrNull(args.reason)))
    const applied = Object.entries(outcome.applied)
    yield* Console.log(
      `approved the hold of run ${outcome.runId} (district ${outcome.districtId}): applied ` +
        (applied.length === 0 ? "nothing" : applied.map(([kind, n]) => `${kind} ${n}`).join(", "))
    )
    if (outcome.stale > 0) yield* Console.log(`skipped as stale: ${outcome.stale} (changed since the hold; the next sync judges them again)`)
    if (outcome.enrollmentsEnded > 0) yield* Console.log(`enrollments ended with their class or user: ${outcome.enrollmentsEnded}`)
  })).pipe(Command.withDescription("apply a pending hold's changes (records changed since the hold are skipped as stale)"))

const reject = Command.make("reject", { run: runArg, by: deciderOption, reason: reasonOption }, (args) =>
  Effect.gen(function*() {
    const outcome = yield* Effect.flatMap(Holds, (h) => h.reject(args.run, args.by, Option.getOrNull(args.reason)))
    yield* Console.log(
      `rejected the hold of run ${outcome.runId} (district ${outcome.districtId}): nothing was applied; ` +
        `the next full sync proposes these changes again if the source still says so`
    )
  })).pipe(Command.withDescription("apply none of a pending hold's changes (fix the source instead)"))

export const holdsCommand = Command.make("holds").pipe(
  Command.withDescription("change sets the safety gate held for an operator: list, show, approve, reject"),
  Command.withSubcommands([list, show, approve, reject]),
  Command.provide(Holds.Default)
)
