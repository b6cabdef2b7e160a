import { Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { NOTIFY_EVENTS } from "../Notify/Events.ts"
import { Notify } from "../Notify/Notify.ts"
import { jsonFlag } from "./Options.ts"
import { json, table, when } from "./Output.ts"

/**
 * `rosterd notify …`: operator notifications (src/Notify). `test` announces a test event to
 * every contact and hook and calls the hooks at once; `list` shows deliveries — channel,
 * event, district, run, the hook's URL without its query or the address's domain, state,
 * attempts, last status and error: never a body, a secret or an address.
 */

const short = (text: string | null) => (text === null ? "" : text.length > 60 ? `${text.slice(0, 59)}…` : text)

const testCommand = Command.make(
  "test",
  {
    event: Options.choice("event", NOTIFY_EVENTS).pipe(
      Options.withDescription("the event to send (default notify.test); its summary says it is a test"),
      Options.optional
    )
  },
  (args) =>
    Effect.gen(function*() {
      const notify = yield* Notify
      const result = yield* notify.test(Option.getOrElse(args.event, () => "notify.test" as const))
      if (result.emails + result.webhooks === 0) {
        return yield* Console.log("nobody is notified: set rosterd.notify.email or rosterd.notify.webhooks in the config file")
      }
      const c = result.counts
      yield* Console.log(
        `notification ${result.notification}: ${result.emails} e-mail${result.emails === 1 ? "" : "s"} queued (the daemon's outbox sends them); ` +
          `webhooks: ${c.sent} delivered, ${c.retried} to retry, ${c.failed} failed, ${c.disabled} disabled (rosterd notify list)`
      )
    })
).pipe(Command.withDescription("send a test notification to every contact and webhook (hooks are called now)"))

const listCommand = Command.make(
  "list",
  {
    limit: Options.integer("limit").pipe(Options.withDefault(50), Options.withDescription("how many deliveries, newest first")),
    json: jsonFlag("print JSON")
  },
  (args) =>
    Effect.gen(function*() {
      if (args.limit < 1) return yield* Effect.fail(new Error("--limit must be at least 1"))
      const rows = (yield* Effect.flatMap(Notify, (notify) => notify.list(args.limit))).map((d) => ({
        ...d,
        createdAt: new Date(d.createdAt).toISOString(),
        sentAt: d.sentAt === null ? null : new Date(d.sentAt).toISOString()
      }))
      if (args.json) return yield* json(rows)
      if (rows.length === 0) return yield* Console.log("no notifications delivered yet")
      yield* Console.log(table(
        ["id", "channel", "event", "district", "run", "target", "state", "attempts", "status", "sent (UTC)", "last error"],
        rows.map((r) => [r.id, r.channel, r.event, r.districtId ?? "-", r.runId ?? "-", r.target, r.state, r.attempts, r.lastStatus ?? "-", when(r.sentAt), short(r.lastError)])
      ))
    })
).pipe(Command.withDescription("notification deliveries, newest first: channel, event, district, run, target, state (no bodies, secrets or addresses)"))

export const notifyCommand = Command.make("notify").pipe(
  Command.withDescription("operator notifications and webhooks: send a test, list deliveries"),
  Command.withSubcommands([testCommand, listCommand]),
  Command.provide(Notify.Default)
)
