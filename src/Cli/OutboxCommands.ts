import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Layer, Option } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { MailerLive } from "../Mail/SmtpMailer.ts"
import { Outbox, type OutboxEntry, OutboxState } from "../Mail/Outbox.ts"
import { audited } from "./AuditCommand.ts"
import { actorOption, jsonFlag } from "./Options.ts"
import { json, table, when } from "./Output.ts"

/**
 * `rosterd outbox …`: the mail queue (src/Mail/Outbox.ts) as operators see it. Ids, kinds,
 * districts, states, attempts, times and errors — never a recipient (JSON: its domain), a
 * subject or a body. `retry` puts a failed message back in the queue and is audited.
 */

/** Text output cuts long errors; --json has them whole. */
const ERROR_WIDTH = 80

const short = (text: string | null) => (text === null ? "" : text.length > ERROR_WIDTH ? `${text.slice(0, ERROR_WIDTH - 1)}…` : text)

const view = (entry: OutboxEntry) => ({
  id: entry.id,
  kind: entry.kind,
  district: entry.districtId,
  state: entry.state,
  attempts: entry.attempts,
  nextAttemptAt: entry.state === "pending" ? new Date(entry.nextAttemptAt).toISOString() : null,
  sentAt: entry.sentAt === null ? null : new Date(entry.sentAt).toISOString(),
  createdAt: new Date(entry.createdAt).toISOString(),
  lastError: entry.lastError,
  recipientDomain: entry.recipientDomain
})

const list = Command.make(
  "list",
  {
    state: Options.choice("state", OutboxState.literals).pipe(Options.withDescription("only messages in this state"), Options.optional),
    limit: Options.integer("limit").pipe(Options.withDefault(50), Options.withDescription("how many messages, newest first")),
    json: jsonFlag("print JSON (with whole errors and the recipient's domain)")
  },
  (args) =>
    Effect.gen(function*() {
      if (args.limit < 1) return yield* Effect.fail(new Error("--limit must be at least 1"))
      const entries = yield* Effect.flatMap(Outbox, (outbox) =>
        outbox.list({ ...Option.match(args.state, { onNone: () => ({}), onSome: (state) => ({ state }) }), limit: args.limit }))
      const rows = entries.map(view)
      if (args.json) return yield* json(rows)
      if (rows.length === 0) return yield* Console.log(Option.isSome(args.state) ? `no ${args.state.value} messages` : "the outbox is empty")
      yield* Console.log(table(
        ["id", "kind", "district", "state", "attempts", "next attempt (UTC)", "sent (UTC)", "last error"],
        rows.map((r) => [r.id, r.kind, r.district ?? "-", r.state, r.attempts, when(r.nextAttemptAt), when(r.sentAt), short(r.lastError)])
      ))
      if (rows.some((r) => r.state === "failed")) yield* Console.log("send a failed one again: rosterd outbox retry <id>")
    })
).pipe(Command.withDescription("the mail queue, newest first: kind, district, state, attempts, next attempt, sent, last error (no recipients or contents)"))

const retry = Command.make(
  "retry",
  {
    id: Args.integer({ name: "id" }).pipe(Args.withDescription("the message (see rosterd outbox list)")),
    by: actorOption
  },
  (args) =>
    Effect.gen(function*() {
      const outbox = yield* Outbox
      const retried = yield* audited(outbox.retry(args.id), (r) => ({
        actor: args.by,
        action: "outbox.retry",
        districtId: r.districtId,
        subject: `outbox ${r.id}`,
        details: { kind: r.kind, previousState: r.previousState, previousAttempts: r.previousAttempts }
      }))
      yield* Console.log(
        `outbox message ${retried.id} (${retried.kind}) is pending again and due now (was ${retried.previousState} after ${retried.previousAttempts} attempt${retried.previousAttempts === 1 ? "" : "s"}); the daemon sends it at its next poll`
      )
    })
).pipe(Command.withDescription("send a failed (or pending) message again: pending, due now, attempts from zero; a sent message is refused"))

export const outboxCommand = Command.make("outbox").pipe(
  Command.withDescription("the mail queue: list messages, send a failed one again"),
  Command.withSubcommands([list, retry]),
  // The mailer is built, never used: list and retry only read and requeue rows.
  Command.provide(Layer.mergeAll(Outbox.Default.pipe(Layer.provide(MailerLive)), Audit.Default))
)
