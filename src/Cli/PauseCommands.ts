import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Layer, Option, Schema } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { LocalDate } from "../Domain/LocalDates.ts"
import type { ActivePause, AdHocPause } from "../Schedule/PauseSpans.ts"
import { InvalidPause, Pauses } from "../Schedule/Pauses.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { audited } from "./AuditCommand.ts"
import { actorOption, jsonOption } from "./Options.ts"
import { json, table, when } from "./Output.ts"

/**
 * `rosterd pause`, `rosterd resume`, `rosterd pauses`: ad-hoc sync pauses
 * (src/Schedule/Pauses.ts), for one district or, with `--all`, for every district. Pause
 * and resume are audited (actions `pause`, `resume`).
 */

/** What pause, resume and pauses use: the pauses, the districts, the audit log. */
const PausesLive = Layer.mergeAll(Pauses.Default, RosterStore.Default, Audit.Default)

const districtArg = Args.text({ name: "district" }).pipe(Args.withDescription("the district (or --all)"), Args.optional)
const allOption = Options.boolean("all").pipe(Options.withDescription("every district (instead of one)"))

const parseDate = (flag: string, text: string) =>
  Schema.decodeUnknown(LocalDate)(text.trim()).pipe(
    Effect.mapError(() => new InvalidPause({ message: `--${flag}: expected a date YYYY-MM-DD, got ${JSON.stringify(text)}` }))
  )

/** Exactly one of `<district>` and `--all`; `undefined` is every district. */
const target = (district: Option.Option<string>, all: boolean) =>
  Option.isSome(district) === all
    ? Effect.fail(new InvalidPause({ message: all ? "give a district or --all, not both" : "give a district, or --all for every district" }))
    : Effect.succeed(Option.getOrUndefined(district))

const span = (from: string, until: string) => (from === until ? from : `${from} – ${until}`)

const describe = (p: AdHocPause) =>
  `pause-${p.id} (${p.districtId ?? "every district"}, ${span(p.from, p.until)}${p.reason === null ? "" : `: ${p.reason}`})`

const stillPausedLine = (district: string, pause: ActivePause) => {
  const what = pause.source === "calendar" ? `the calendar window ${pause.name}` : `${pause.name} (for every district; \`rosterd resume --all\` ends it)`
  return `still paused by ${what} until ${pause.lastDay}; a manual \`rosterd sync ${district}\` runs at any time`
}

export const pauseCommand = Command.make(
  "pause",
  {
    district: districtArg,
    all: allOption,
    from: Options.text("from").pipe(
      Options.withDescription("first paused day, YYYY-MM-DD, in the district's zone (default: today there; with --all, the earliest today across the districts' zones)"),
      Options.optional
    ),
    until: Options.text("until").pipe(Options.withDescription("last paused day, YYYY-MM-DD, inclusive")),
    reason: Options.text("reason").pipe(Options.withDescription("why (shown by `rosterd calendar` and in the notices to the district's contacts)"), Options.optional),
    by: actorOption
  },
  (args) =>
    Effect.gen(function*() {
      const districtId = yield* target(args.district, args.all)
      const pauses = yield* Pauses
      const district = districtId === undefined ? undefined : yield* Effect.flatMap(RosterStore, (store) => store.getDistrict(districtId))
      const until = yield* parseDate("until", args.until)
      const from = Option.isSome(args.from) ? yield* parseDate("from", args.from.value) : yield* pauses.today(districtId)
      const reason = Option.getOrUndefined(args.reason)
      const id = yield* audited(pauses.add({ district: districtId, from, until, reason, by: args.by }), (id) => ({
        actor: args.by,
        action: "pause",
        districtId: districtId ?? null,
        subject: `pause ${id}`,
        reason: reason ?? null,
        details: { from, until, allDistricts: districtId === undefined }
      }))
      yield* Console.log(
        district === undefined
          ? `pause-${id}: every district is paused from ${from} through ${until} (local dates, in each district's own zone)`
          : `pause-${id}: ${district.id} is paused from ${from} through ${until} (local dates, ${district.timezone})`
      )
      yield* Console.log(
        `no sync starts during it; a catch-up full sync runs when it ends. End it early: rosterd resume ${districtId ?? "--all"}`
      )
    })
).pipe(
  Command.withDescription("pause syncing of a district (or --all) for whole local days, --from … --until inclusive"),
  Command.provide(PausesLive)
)

export const resumeCommand = Command.make("resume", { district: districtArg, all: allOption, by: actorOption }, (args) =>
  Effect.gen(function*() {
    const districtId = yield* target(args.district, args.all)
    const pauses = yield* Pauses
    const result = yield* audited(pauses.resume({ district: districtId, by: args.by }), (r) => ({
      actor: args.by,
      action: "resume",
      districtId: districtId ?? null,
      subject: districtId === undefined ? "every district" : `district ${districtId}`,
      details: { ended: r.ended.map((p) => p.id), allDistricts: districtId === undefined }
    }))
    if (result.ended.length === 0) {
      yield* Console.log(`no ad-hoc pause ${districtId === undefined ? "" : `of ${districtId} `}was in effect or scheduled: nothing ended`)
    }
    for (const p of result.ended) yield* Console.log(p.started ? `ended ${describe(p)}` : `cancelled ${describe(p)}: it had not begun`)
    if (districtId === undefined) return
    yield* Option.match(result.stillPaused, {
      onNone: () => Console.log(result.ended.some((p) => p.started) ? "syncing resumes: a catch-up full sync runs at the daemon's next poll" : `${districtId} is not paused now`),
      onSome: (pause) => Console.log(stillPausedLine(districtId, pause))
    })
    for (const later of result.laterForAll) {
      yield* Console.log(`${later.name} for every district (${span(later.from, later.to)}) still applies later; \`rosterd resume --all\` ends it`)
    }
  })).pipe(
  Command.withDescription("end the ad-hoc pauses of a district (or --all: every ad-hoc pause) now, and cancel scheduled ones"),
  Command.provide(PausesLive)
)

export const pausesCommand = Command.make(
  "pauses",
  {
    district: Args.text({ name: "district" }).pipe(Args.withDescription("only this district's pauses (and those for every district)"), Args.optional),
    allHistory: Options.boolean("all-history").pipe(Options.withDescription("ended and past pauses too (default: those in effect or scheduled)")),
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const list = yield* Effect.flatMap(Pauses, (p) => p.list({ district: Option.getOrUndefined(args.district), includeEnded: args.allHistory }))
      if (args.json) return yield* json(list)
      if (list.length === 0) return yield* Console.log(args.allHistory ? "no ad-hoc pauses" : "no ad-hoc pause in effect or scheduled")
      yield* Console.log(table(
        ["pause", "district", "from", "until", "reason", "by", "ended"],
        list.map((p) => [
          `pause-${p.id}`,
          p.districtId ?? "(all)",
          p.from,
          p.until,
          p.reason ?? "",
          p.createdBy,
          p.endedAt === null ? "-" : `${when(p.endedAt)} by ${p.endedBy ?? "?"}`
        ])
      ))
    })
).pipe(
  Command.withDescription("ad-hoc pauses in effect or scheduled (--all-history: every one), local dates in each district's zone"),
  Command.provide(PausesLive)
)

