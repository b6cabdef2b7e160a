/**
 * A delivery worker that dies between sending and recording (SmtpMailer.test.ts runs it as a
 * child process). It claims due outbox rows like the daemon and sends them through the real
 * SMTP mailer; once the server has accepted a message it prints `sent <messageId>` and
 * hangs, so the test can SIGKILL it before the row is marked sent.
 *
 *   node --import tsx test/Mail/crash-worker.ts '<settings as JSON>'
 *
 * Settings: `databaseUrl` plus `rosterd.x.y` config keys.
 */
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { Mailer } from "../../src/Mail/Mailer.ts"
import { Outbox } from "../../src/Mail/Outbox.ts"
import { SmtpMailerLive } from "../../src/Mail/SmtpMailer.ts"
import { pgClientLayer } from "../../src/Store/Sql.ts"

const { databaseUrl, ...settings } = JSON.parse(process.argv[2] ?? "{}") as Record<string, string>

const SendThenHang = Layer.effect(
  Mailer,
  Effect.map(Mailer, (smtp) =>
    Mailer.of({
      send: (message) =>
        smtp.send(message).pipe(
          Effect.zipRight(Effect.sync(() => process.stdout.write(`sent ${message.messageId}\n`))),
          Effect.zipRight(Effect.never)
        )
    }))
).pipe(Layer.provide(SmtpMailerLive))

const WorkerLive = Outbox.Default.pipe(
  Layer.provide(SendThenHang),
  Layer.provide(pgClientLayer({ url: Redacted.make(databaseUrl!) })),
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(settings)))))
)

Effect.runFork(
  Effect.flatMap(Outbox, (outbox) => outbox.deliverDue()).pipe(
    Effect.provide(WorkerLive),
    Effect.tapErrorCause((cause) => Effect.sync(() => process.stderr.write(`worker failed: ${String(cause)}\n`)))
  )
)
