import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Layer, Option } from "effect"
import { SyncLive } from "../Accounts/SyncAccounts.ts"
import type { RunSummary } from "../Reconcile/SyncRun.ts"
import { Sync, SyncProgress } from "../Reconcile/SyncRun.ts"
import { totalChanges } from "../Domain/RunCounts.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { CHANGE_IDS_LISTED, type ChangeGroup, changesRetentionDays, type RunRecord, Runs } from "../Store/Runs.ts"
import { describeTripped } from "./HoldCommands.ts"
import { SyncDeferred } from "./Exit.ts"
import { byOption, districtArg, jsonOption } from "./Options.ts"
import { RunUndo } from "../Districts/Undo.ts"
import { Stdio } from "./Stdio.ts"
import { countsTable, json, localTime, table, terminalProgress, when } from "./Output.ts"
import { Freshness } from "../Schedule/Freshness.ts"


/** A change list's groups expanded into records (`sync --dry-run --json`). */
const changeRecords = (groups: ReadonlyArray<ChangeGroup>) =>
  groups.flatMap((g) =>
    g.sourceIds.map((sourceId) => ({ kind: g.kind, action: g.action, sourceId, reason: g.reason, fields: g.fields, held: g.held }))
  )

/** What the safety gate held (or, in a dry run, would hold): the tripped thresholds and the held counts. */
const heldLines = (held: NonNullable<RunSummary["held"]>) => [
  ...held.tripped.map((t) => `tripped: ${describeTripped(t)}`),
  table(
    ["held", "updates", "deactivations"],
    Object.entries(held.counts).map(([kind, counts]) => [kind, counts?.updated ?? 0, counts?.deactivated ?? 0])
  )
]

export const syncCommand = Command.make(
  "sync",
  {
    district: districtArg,
    full: Options.boolean("full").pipe(Options.withDescription("a full sync: anything not in the source is deactivated; every record is compared, even when nothing changed since the last run")),
    delta: Options.boolean("delta").pipe(Options.withDescription("apply changes only; nothing is deactivated for being absent")),
    dryRun: Options.boolean("dry-run").pipe(
      Options.withDescription("do everything but commit: print what would change and what the safety gate would hold (--json: every record)")
    ),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      if (args.full && args.delta) return yield* Effect.fail(new Error("--full and --delta exclude each other"))
      const sync = yield* Sync
      const progress = yield* terminalProgress
      const summary = yield* sync.run(args.district, {
        request: args.full ? "full" : args.delta ? "delta" : "auto",
        trigger: "cli",
        dryRun: args.dryRun
      }).pipe(
        Effect.provideService(SyncProgress, progress),
        Effect.ensuring(Effect.flatMap(Stdio, (stdio) => Effect.sync(() => stdio.errorIsTerminal() && stdio.writeError("\r\x1b[2K"))))
      )
      // A deferred run (the source is not ready: a CSV set still being written) applied
      // nothing and is no failure, but ends as `SyncDeferred` after its output: exit 75
      // (EX_TEMPFAIL, "try again later", src/Cli/Exit.ts), so a script can tell.
      const deferred = summary.status === "deferred" ? new SyncDeferred({ runId: summary.runId }) : undefined
      if (args.json) {
        const { changes, ...rest } = summary
        // A group past CHANGE_IDS_LISTED lists that many; how many records are left out is said.
        const notListed = (changes ?? []).reduce((n, g) => n + g.total - g.sourceIds.length, 0)
        yield* json(changes === undefined ? rest : { ...rest, changes: changeRecords(changes), ...(notListed > 0 ? { changesNotListed: notListed } : {}) })
        return deferred === undefined ? undefined : yield* deferred
      }
      if (deferred !== undefined) {
        yield* Console.log(`${summary.district}: run ${summary.runId} deferred — nothing was applied; the source is not ready`)
        for (const note of summary.notes) yield* Console.log(`note: ${note}`)
        yield* Console.log(`try again in ${Math.ceil((summary.retryAfterMs ?? 0) / 1000)} s (the daemon does so by itself)`)
        return yield* deferred
      }
      yield* Console.log(
        `${summary.district}: run ${summary.runId} ${summary.status} (${summary.mode}) in ${(summary.durationMs / 1000).toFixed(1)} s — ${summary.source}`
      )
      if (args.dryRun) yield* Console.log("dry run: nothing was applied; the counts are what the sync would do")
      // The note naming the hold is left out: the section below says the same in full (and a
      // dry run's hold was rolled back with the rest).
      for (const note of summary.notes) {
        if (!(summary.held !== null && (note.startsWith("held for an operator") || note.startsWith("would be held for an operator")))) yield* Console.log(`note: ${note}`)
      }
      yield* Console.log(countsTable(summary.counts))
      if (summary.held !== null) {
        yield* Console.log(args.dryRun ? "the safety gate would hold (not in the counts above):" : "held for an operator (not applied, not in the counts above):")
        for (const line of heldLines(summary.held)) yield* Console.log(line)
        if (!args.dryRun) yield* Console.log(`review: rosterd holds show ${summary.runId}`)
      } else if (args.dryRun) {
        yield* Console.log("the safety gate would hold nothing")
      }
      if (args.dryRun && summary.changes !== undefined) {
        const records = summary.changes.reduce((n, g) => n + g.total, 0)
        const large = summary.changes.some((g) => g.total > g.sourceIds.length)
        yield* Console.log(
          `${records} records would change: rosterd sync ${summary.district} --dry-run --json lists them` +
            (large ? ` (${CHANGE_IDS_LISTED.toLocaleString("en-US")} a group at most)` : "")
        )
      }
      yield* Console.log(
        summary.findings === 0
          ? "no findings"
          : args.dryRun
          ? `${summary.findings} findings (a dry run records none: a real sync lists them in rosterd runs ${summary.district} --run <id>)`
          : `${summary.findings} findings: rosterd runs ${summary.district} --run ${summary.runId}`
      )
    })
).pipe(
  Command.withDescription("sync one district now (without a flag: what the schedule would do; --dry-run: apply nothing)"),
  Command.provide(SyncLive)
)

export const statusCommand = Command.make(
  "status",
  { district: districtArg.pipe(Args.optional), json: jsonOption },
  (args) =>
    Effect.gen(function*() {
      const status = yield* Effect.flatMap(Freshness, (freshness) => freshness.status(Option.getOrUndefined(args.district)))
      if (args.json) return yield* json(status)
      if (status.length === 0) return yield* Console.log("no districts")
      yield* Console.log(table(
        ["district", "provider", "last run", "mode", "finished", "users", "enrollments", "findings", "last success", "next run (district time)"],
        status.map((s) => [
          s.district,
          s.provider,
          s.lastRun === null ? "never" : `${s.lastRun.id} ${s.lastRun.status}`,
          s.lastRun?.mode ?? "-",
          when(s.lastRun?.finishedAt ?? null),
          s.lastRun === null ? "-" : `+${s.lastRun.counts.users.created} ~${s.lastRun.counts.users.updated} -${s.lastRun.counts.users.deactivated}`,
          s.lastRun === null ? "-" : `+${s.lastRun.counts.enrollments.created} ~${s.lastRun.counts.enrollments.updated} -${s.lastRun.counts.enrollments.deactivated}`,
          s.lastRun?.findings ?? "-",
          when(s.lastSuccessAt),
          s.nextRun === null
            ? "at the daemon's next poll"
            : `${localTime(s.nextRun.at, s.timezone)} ${s.nextRun.request} (${s.nextRun.trigger}${s.nextRun.retries > 0 ? `, retry ${s.nextRun.retries}` : ""})`
        ])
      ))
      for (const s of status) {
        if (s.paused !== null) {
          yield* Console.log(`${s.district}: paused (${s.paused.name}${s.paused.reason === null ? "" : `: ${s.paused.reason}`}) until ${localTime(s.paused.until, s.timezone)}; the catch-up sync runs then`)
        }
        if (s.lastRun?.error) yield* Console.log(`${s.district}: last run ${s.lastRun.status}: ${s.lastRun.error}`)
        if (s.deferred !== null) yield* Console.log(`${s.district}: run ${s.deferred.runId} deferred ${when(s.deferred.at)}: ${s.deferred.note}`)
        if (s.stale) yield* Console.log(`${s.district}: stale: no successful sync for over 24 hours outside its pauses (rosterd.sync.staleAfter)`)
        if (s.pendingHold !== null) {
          yield* Console.log(`${s.district}: changes of run ${s.pendingHold.runId} held since ${when(s.pendingHold.since)}: rosterd holds show ${s.pendingHold.runId}`)
        }
      }
    })
).pipe(
  Command.withDescription("how every district (or one) stands"),
  Command.provide(Freshness.Default)
)


/** Source IDs shown per group by `runs --changes` as text; --json lists them all (up to `CHANGE_IDS_LISTED` a group). */
const SHOWN_IDS = 5

/** `runs <district> --run <id> --changes`: the run's change list from `run_changes`. */
const printChanges = (run: RunRecord, asJson: boolean) =>
  Effect.gen(function*() {
    const groups = yield* Effect.flatMap(Runs, (runs) => runs.changes(run.id, asJson ? CHANGE_IDS_LISTED : SHOWN_IDS))
    const days = yield* changesRetentionDays
    // `count` is the group's size; `sourceIds` lists CHANGE_IDS_LISTED of them at most.
    const view = groups.map(({ total, ...g }) => ({ ...g, count: total }))
    if (asJson) return yield* json({ runId: run.id, district: run.districtId, status: run.status, retentionDays: days, changes: view })
    yield* Console.log(`changes of run ${run.id} of ${run.districtId}: ${run.status} (${run.mode}), ${when(run.startedAt)}`)
    if (view.length === 0) {
      return yield* Console.log(
        run.status === "dry-run"
          ? "no change list: a dry run keeps none (rosterd sync <district> --dry-run --json prints it)"
          : `no change list (pruned after ${days} days, or the run applied nothing)`
      )
    }
    yield* Console.log(table(
      ["kind", "action", "reason", "fields", "held", "count", "source ids"],
      view.map((g) => [
        g.kind,
        g.action,
        g.reason ?? "",
        g.fields.join(","),
        g.held ? "held" : "",
        g.count,
        g.sourceIds.slice(0, SHOWN_IDS).join(" ") + (g.count > SHOWN_IDS ? ` (+${g.count - SHOWN_IDS} more)` : "")
      ])
    ))
    if (view.some((g) => g.count > SHOWN_IDS)) yield* Console.log(`every source ID: --json (${CHANGE_IDS_LISTED.toLocaleString("en-US")} a group at most)`)
  })

/** `runs undo <run>`: what a run applied, turned back (src/Districts/Undo.ts). */
const undoCommand = Command.make(
  "undo",
  {
    run: Args.integer({ name: "run" }).pipe(Args.withDescription("the run to undo (see rosterd runs <district>)")),
    by: byOption("who undoes it (recorded in the audit log)"),
    reason: Options.text("reason").pipe(Options.withDescription("why (recorded in the audit log)"), Options.optional),
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("show what the undo would do, and change nothing")),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const undo = yield* RunUndo
      const outcome = yield* undo.undo(args.run, { by: args.by, reason: Option.getOrNull(args.reason), dryRun: args.dryRun })
      if (args.json) return yield* json(outcome)
      yield* Console.log(`${outcome.dryRun ? "would undo" : "undone"}: run ${outcome.runId} of ${outcome.districtId}`)
      yield* Console.log(table(
        ["kind", "created → deactivated", "deactivated → active", "updated → restored", "changed since: skipped"],
        outcome.counts.map((c) => [c.kind, c.deactivated, c.reactivated, c.restored, c.stale])
      ))
      if (outcome.enrollmentsEnded > 0) yield* Console.log(`${outcome.enrollmentsEnded} open enrollments ended with the people and classes deactivated`)
      if (outcome.stale.length > 0) {
        yield* Console.log(`skipped, changed since the run (kind source-id): ${outcome.stale.slice(0, 20).map((s) => `${s.kind} ${s.sourceId}`).join(", ")}${outcome.stale.length > 20 ? ` (+${outcome.stale.length - 20} more: --json)` : ""}`)
      }
      if (!outcome.dryRun) yield* Console.log("accounts and links are not undone; pause the district until its source is fixed, or the next sync applies it again")
    })
).pipe(
  Command.withDescription("undo a run: deactivate what it created, reactivate what it deactivated, restore what it updated (records changed since are skipped)"),
  Command.provide(RunUndo.Default)
)

export const runsCommand = Command.make(
  "runs",
  {
    // Optional only so that `runs undo <run>` parses (a parent's argument comes before its subcommand).
    district: districtArg.pipe(Args.optional),
    run: Options.integer("run").pipe(Options.withDescription("show one run with its findings"), Options.optional),
    changes: Options.boolean("changes").pipe(
      Options.withDescription("with --run: the run's record-level change list (source IDs and changed field names)")
    ),
    limit: Options.integer("limit").pipe(Options.withDefault(20), Options.withDescription("how many runs to list")),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      const history = yield* Runs
      if (Option.isNone(args.district)) return yield* Effect.fail(new Error("which district? rosterd runs <district> (or rosterd runs undo <run>)"))
      const district = yield* store.getDistrict(args.district.value)
      if (Option.isSome(args.run)) {
        const run = yield* history.get(args.run.value)
        if (Option.isNone(run) || run.value.districtId !== district.id) {
          return yield* Effect.fail(new Error(`no run ${args.run.value} for district ${district.id}`))
        }
        if (args.changes) return yield* printChanges(run.value, args.json)
        const findings = yield* history.findings(run.value.id)
        if (args.json) return yield* json({ ...run.value, findings })
        const r = run.value
        yield* Console.log(`run ${r.id} of ${r.districtId}: ${r.status} (${r.mode}, ${r.trigger}) ${when(r.startedAt)} → ${when(r.finishedAt)}`)
        if (r.sourceDescription) yield* Console.log(`source: ${r.sourceDescription}`)
        if (r.notes) yield* Console.log(`notes: ${r.notes}`)
        if (r.error) yield* Console.log(`error (${r.errorReason}): ${r.error}`)
        if (r.counts) yield* Console.log(countsTable(r.counts))
        if (findings.length === 0) return yield* Console.log("no findings")
        yield* Console.log(table(
          ["severity", "code", "entity", "source id", "where", "detail"],
          findings.map((f) => [f.severity, f.code, f.entity ?? "", f.sourceId ?? "", f.file === null ? "" : `${f.file}${f.line === null ? "" : `:${f.line}`}`, f.detail])
        ))
        if (findings.length < r.findings) yield* Console.log(`(${r.findings - findings.length} more; --json for all shown here)`)
        return
      }
      if (args.changes) return yield* Effect.fail(new Error("--changes needs --run <id>"))
      const runs = yield* history.list(district.id, args.limit)
      if (args.json) return yield* json(runs)
      if (runs.length === 0) return yield* Console.log(`no runs yet for ${district.id}`)
      yield* Console.log(table(
        ["run", "status", "mode", "trigger", "started", "seconds", "changes", "findings", "error"],
        runs.map((r) => [
          r.id,
          r.status,
          r.mode,
          r.trigger,
          when(r.startedAt),
          r.finishedAt === null ? "-" : ((r.finishedAt.getTime() - r.startedAt.getTime()) / 1000).toFixed(1),
          r.counts === null ? "-" : totalChanges(r.counts),
          r.findings,
          r.error ?? (r.status === "deferred" ? r.notes ?? "" : "")
        ])
      ))
    })
).pipe(
  Command.withDescription("a district's run history, one run with its findings (--run), or its change list (--run --changes)"),
  Command.provide(Layer.mergeAll(RosterStore.Default, Runs.Default)),
  Command.withSubcommands([undoCommand])
)
