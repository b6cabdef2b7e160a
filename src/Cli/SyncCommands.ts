import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { Sync, SyncProgress } from "../Reconcile/SyncRun.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { countsTable, json, table, terminalProgress, when } from "./Output.ts"

const districtArg = Args.text({ name: "district" }).pipe(Args.withDescription("the district id"))
const jsonOption = Options.boolean("json").pipe(Options.withDescription("print JSON"))

export const syncCommand = Command.make(
  "sync",
  {
    district: districtArg,
    full: Options.boolean("full").pipe(Options.withDescription("a full sync: anything not in the source is deactivated")),
    delta: Options.boolean("delta").pipe(Options.withDescription("apply changes only; nothing is deactivated for being absent")),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      if (args.full && args.delta) return yield* Effect.fail(new Error("--full and --delta exclude each other"))
      const sync = yield* Sync
      const progress = yield* terminalProgress
      const summary = yield* sync.run(args.district, {
        request: args.full ? "full" : args.delta ? "delta" : "auto",
        trigger: "cli"
      }).pipe(
        Effect.provideService(SyncProgress, progress),
        Effect.ensuring(Effect.sync(() => process.stderr.isTTY && process.stderr.write("\r\x1b[2K")))
      )
      if (args.json) return yield* json(summary)
      yield* Console.log(
        `${summary.district}: run ${summary.runId} ${summary.status} (${summary.mode}) in ${(summary.durationMs / 1000).toFixed(1)} s — ${summary.source}`
      )
      for (const note of summary.notes) yield* Console.log(`note: ${note}`)
      yield* Console.log(countsTable(summary.counts))
      yield* Console.log(
        summary.findings === 0 ? "no findings" : `${summary.findings} findings: rosterd runs ${summary.district} --run ${summary.runId}`
      )
    })
).pipe(Command.withDescription("sync one district now (without a flag: what the schedule would do)"))

export const statusCommand = Command.make(
  "status",
  { district: districtArg.pipe(Args.optional), json: jsonOption },
  (args) =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      const status = yield* store.status(Option.getOrUndefined(args.district))
      if (args.json) return yield* json(status)
      if (status.length === 0) return yield* Console.log("no districts")
      yield* Console.log(table(
        ["district", "provider", "last run", "mode", "finished", "users", "enrollments", "findings", "last success", "next run"],
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
          when(s.nextRunAt)
        ])
      ))
      for (const s of status) {
        if (s.lastRun?.error) yield* Console.log(`${s.district}: last run ${s.lastRun.status}: ${s.lastRun.error}`)
      }
    })
).pipe(Command.withDescription("how every district (or one) stands"))

export const runsCommand = Command.make(
  "runs",
  {
    district: districtArg,
    run: Options.integer("run").pipe(Options.withDescription("show one run with its findings"), Options.optional),
    limit: Options.integer("limit").pipe(Options.withDefault(20), Options.withDescription("how many runs to list")),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const store = yield* RosterStore
      const district = yield* store.getDistrict(args.district)
      if (Option.isSome(args.run)) {
        const run = yield* store.getRun(args.run.value)
        if (Option.isNone(run) || run.value.districtId !== district.id) {
          return yield* Effect.fail(new Error(`no run ${args.run.value} for district ${district.id}`))
        }
        const findings = yield* store.findings(run.value.id)
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
      const runs = yield* store.runs(district.id, args.limit)
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
          r.counts === null ? "-" : Object.values(r.counts).reduce((n, c) => n + c.created + c.updated + c.deactivated, 0),
          r.findings,
          r.error ?? ""
        ])
      ))
    })
).pipe(Command.withDescription("a district's run history, or one run with its findings (--run)"))
