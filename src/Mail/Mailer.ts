import { Config, Context, Effect, Layer, Schema } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import nodemailer from "nodemailer"

/**
 * The mail port: deliver one message. Implementations: the spool (the embedded default,
 * below: `.eml` files an operator can open) and SMTP (SmtpMailer.ts, which also holds
 * `MailerLive`, the choice between the two). Messages reach the port through the outbox,
 * never directly from a sync.
 */
export interface MailMessage {
  /** Stable across retries, so a resent message collapses with the first in mail clients. */
  readonly messageId: string
  readonly to: string
  readonly subject: string
  readonly text: string
  readonly html?: string
}

export class MailError extends Schema.TaggedError<MailError>()("MailError", {
  messageId: Schema.String,
  message: Schema.String
}) {}

export class Mailer extends Context.Tag("rosterd/Mailer")<Mailer, {
  readonly send: (message: MailMessage) => Effect.Effect<void, MailError>
}>() {}

/** The `Message-ID` header of a message: `<outbox-12@rosterd>`, the same on every attempt. */
export const headerMessageId = (message: MailMessage) => `<${message.messageId}@rosterd>`

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/**
 * An error text fit for logs and `last_error`: no recipient, no e-mail address at all, none
 * of the given secrets (an SMTP password, a user name), one line, bounded.
 */
export const scrubError = (text: string, recipient: string, secrets: ReadonlyArray<string> = []): string => {
  let clean = text
  for (const secret of secrets) {
    if (secret.length >= 3) clean = clean.split(secret).join("<redacted>")
  }
  const trimmed = recipient.trim()
  if (trimmed !== "") clean = clean.replace(new RegExp(escapeRegExp(trimmed), "gi"), "<recipient>")
  clean = clean
    .replace(/[^\s<>()[\]@,;:"']+@[^\s<>()[\]@,;:"']+/g, "<address>")
    .replace(/[\r\n\t]+/g, " ")
  return clean.length > 500 ? `${clean.slice(0, 499)}…` : clean
}

/** `From:` of every message. */
export const fromAddress = Config.string("from").pipe(Config.nested("mail"), Config.nested("rosterd"), Config.withDefault("rosterd <noreply@rosterd.invalid>"))

/** `rosterd.mail.spoolDir`, default `<rosterd.dataDir>/mail-spool`, absolute. */
export const spoolDirConfig = Effect.gen(function*() {
  const dataDir = yield* Config.string("dataDir").pipe(Config.nested("rosterd"), Config.withDefault("./.rosterd"))
  return NodePath.resolve(
    yield* Config.string("spoolDir").pipe(Config.nested("mail"), Config.nested("rosterd"), Config.withDefault(NodePath.join(dataDir, "mail-spool")))
  )
})

/** The spool file of a message: `<spool>/outbox-12.eml`. */
export const spoolFileOf = (spoolDir: string, messageId: string) =>
  NodePath.join(spoolDir, `${messageId.replace(/[^A-Za-z0-9._-]/g, "_")}.eml`)

/**
 * Removes the spool's messages (and leftover `.tmp` files) last written before `before`
 * (epoch ms): the spool holds rendered links, so it has a retention like the outbox. Several
 * processes may prune one spool at once: a file already gone is not an error.
 */
export const pruneSpool = (spoolDir: string, before: number) =>
  Effect.sync(() => {
    let removed = 0
    const names = Fs.existsSync(spoolDir) ? Fs.readdirSync(spoolDir) : []
    for (const name of names) {
      if (!name.endsWith(".eml") && !name.endsWith(".eml.tmp")) continue
      const file = NodePath.join(spoolDir, name)
      try {
        const stat = Fs.lstatSync(file)
        if (!stat.isFile() || stat.mtimeMs >= before) continue
        Fs.unlinkSync(file)
        removed++
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
      }
    }
    return removed
  })

/** Removes the spool files of these outbox messages (`district erase`); returns how many there were. */
export const removeSpooled = (spoolDir: string, outboxIds: ReadonlyArray<number | string>) =>
  Effect.sync(() => {
    let removed = 0
    for (const id of outboxIds) {
      try {
        Fs.unlinkSync(spoolFileOf(spoolDir, `outbox-${id}`))
        removed++
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
      }
    }
    return removed
  })

/**
 * The embedded default: each message becomes `<spool>/<messageId>.eml` (RFC 5322, built by
 * nodemailer's stream transport), written atomically. Logs that it did, by message id only
 * (recipients are personal data). An activation or invitation file holds its live link: that
 * is the delivery. The spool is pruned after `rosterd.mail.retentionDays` (Retention.ts).
 */
export const SpoolMailerLive = Layer.effect(
  Mailer,
  Effect.gen(function*() {
    const spoolDir = yield* spoolDirConfig
    const from = yield* fromAddress
    const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" })
    return Mailer.of({
      send: (message) =>
        Effect.tryPromise({
          try: async () => {
            const info = await transport.sendMail({
              from,
              to: message.to,
              subject: message.subject,
              text: message.text,
              ...(message.html === undefined ? {} : { html: message.html }),
              messageId: headerMessageId(message)
            })
            Fs.mkdirSync(spoolDir, { recursive: true, mode: 0o700 })
            const file = spoolFileOf(spoolDir, message.messageId)
            Fs.writeFileSync(`${file}.tmp`, info.message as Buffer, { mode: 0o600 })
            Fs.renameSync(`${file}.tmp`, file)
          },
          catch: (cause) => new MailError({ messageId: message.messageId, message: `cannot write to the mail spool: ${String(cause)}` })
        }).pipe(
          Effect.tap(() => Effect.logInfo("mail spooled").pipe(Effect.annotateLogs({ messageId: message.messageId }))),
          Effect.withSpan("Mailer.send")
        )
    })
  })
)
