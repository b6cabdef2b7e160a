import { Config, ConfigError, Effect, Either, Layer, Option } from "effect"
import * as Fs from "node:fs"
import nodemailer from "nodemailer"
import { readSecret } from "../Secrets/SecretRef.ts"
import { fromAddress, headerMessageId, MailError, Mailer, type MailMessage, scrubError, SpoolMailerLive } from "./Mailer.ts"

/**
 * The SMTP mailer: each message over its own connection through nodemailer's SMTP transport
 * (a daemon sends a few activation e-mails per sync, not a stream; a connection per message
 * also means a rotated password is picked up at the next send).
 *
 * Config (`rosterd.mail.smtp.*`, environment `ROSTERD_MAIL_SMTP_*`):
 * - `host` — the relay; setting it is what selects SMTP (see `MailerLive`);
 * - `port` (587); `secure` (false): implicit TLS from the first byte (port 465). Without it,
 *   STARTTLS is used, and `requireTls` refuses to send over a server that does not offer it
 *   (or whose STARTTLS fails): default **true** unless the host is loopback (`localhost`,
 *   127.0.0.0/8, `::1`), where a relay on the same machine may speak plain SMTP. An explicit
 *   `false` sends in clear when the server offers no TLS (messages carry live links);
 *   `rosterd doctor` warns about it for a host that is not loopback. Certificates are
 *   verified; `caFile` adds a private CA;
 * - `user` and the password from `passwordFile` or `passwordEnv` (read at each send, never
 *   stored, never logged); no user, no AUTH;
 * - `connectionTimeoutSeconds` (10), `greetingTimeoutSeconds` (10), `socketTimeoutSeconds`
 *   (30) — below the outbox's `sendTimeoutSeconds`, so a stuck server fails the attempt.
 *
 * The `Message-ID` is the outbox's stable `<outbox-<id>@rosterd>`, as in the spool. A failure
 * is a `MailError` whose message names the SMTP stage and code with the server's reply, with
 * the recipient, every e-mail address, the user and the password taken out.
 */

const smtp = <A>(config: Config.Config<A>) => config.pipe(Config.nested("smtp"), Config.nested("mail"), Config.nested("rosterd"))

const seconds = (name: string, fallback: number) =>
  smtp(Config.number(name).pipe(
    Config.validate({ message: `${name} must be a positive number`, validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  ))

const optionalText = (name: string) =>
  smtp(Config.option(Config.string(name))).pipe(Config.map(Option.filter((text) => text.trim() !== "")))

/** A host name or address that never leaves the machine: where plain SMTP is tolerated by default. */
export const isLoopbackHost = (host: string) => {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1")
  return h === "localhost" || h.endsWith(".localhost") || /^127(\.\d{1,3}){3}$/.test(h) || h === "::1" || h === "0:0:0:0:0:0:0:1"
}

/**
 * `rosterd doctor`'s warning, if any: TLS turned off (`requireTls: false`, no `secure`) for a
 * relay that is not on this machine, so links could cross the network in clear.
 */
export const smtpTlsWarning = (config: SmtpConfig): string | undefined =>
  config.secure || config.requireTls || isLoopbackHost(config.host)
    ? undefined
    : `rosterd.mail.smtp.requireTls is false for ${config.host}: if it offers no STARTTLS, messages (with their live links) go in clear; remove the setting (TLS is required by default) or use secure: true`

/** The configured relay host, if any: what `MailerLive` decides on. */
export const smtpHost = optionalText("host")

export const SmtpConfig = Config.all({
  host: smtp(Config.nonEmptyString("host")),
  port: smtp(Config.port("port")).pipe(Config.withDefault(587)),
  secure: smtp(Config.boolean("secure")).pipe(Config.withDefault(false)),
  requireTlsSetting: smtp(Config.option(Config.boolean("requireTls"))),
  user: optionalText("user"),
  passwordFile: optionalText("passwordFile"),
  passwordEnv: optionalText("passwordEnv"),
  caFile: optionalText("caFile"),
  connectionTimeoutSeconds: seconds("connectionTimeoutSeconds", 10),
  greetingTimeoutSeconds: seconds("greetingTimeoutSeconds", 10),
  socketTimeoutSeconds: seconds("socketTimeoutSeconds", 30)
}).pipe(
  Config.mapOrFail((config) => {
    const hasPassword = Option.isSome(config.passwordFile) || Option.isSome(config.passwordEnv)
    if (Option.isSome(config.passwordFile) && Option.isSome(config.passwordEnv)) {
      return Either.left(ConfigError.InvalidData(["rosterd", "mail", "smtp"], "set passwordFile or passwordEnv, not both"))
    }
    if (Option.isSome(config.user) !== hasPassword) {
      return Either.left(ConfigError.InvalidData(["rosterd", "mail", "smtp"], "user and a password (passwordFile or passwordEnv) go together"))
    }
    const { requireTlsSetting, ...rest } = config
    return Either.right({ ...rest, requireTls: Option.getOrElse(requireTlsSetting, () => !isLoopbackHost(config.host)) })
  })
)
export type SmtpConfig = Config.Config.Success<typeof SmtpConfig>

/** What a nodemailer error carries (all optional: anything can be thrown). */
interface SmtpFailure {
  readonly code?: unknown
  readonly command?: unknown
  readonly response?: unknown
  readonly message?: unknown
}

/** One line for `last_error`: `SMTP EENVELOPE (RCPT TO): 550 <recipient>: no such user`. */
export const describeSmtpError = (cause: unknown, message: MailMessage, secrets: ReadonlyArray<string>) => {
  const failure = (typeof cause === "object" && cause !== null ? cause : {}) as SmtpFailure
  const code = typeof failure.code === "string" ? failure.code : "error"
  // The SMTP verb only (`RCPT TO`, `AUTH PLAIN`, `CONN`): never its arguments.
  const verb = typeof failure.command === "string" ? /^[A-Z]+(?: [A-Z]+)?/.exec(failure.command)?.[0] : undefined
  const stage = verb === undefined ? "" : ` (${verb})`
  const text = typeof failure.message === "string" ? failure.message : String(cause)
  return scrubError(`SMTP ${code}${stage}: ${text}`, message.to, secrets)
}

/**
 * What the SMTP mailer needs at each send: the settings, the password (read now, so a
 * rotated one is picked up without a restart) and the CA. Also used by `rosterd doctor`.
 */
const smtpSession = (config: SmtpConfig, messageId: string) =>
  Effect.gen(function*() {
    const pass: Option.Option<string> = Option.isNone(config.user)
      ? Option.none()
      : yield* readSecret("mail", {
        file: Option.getOrUndefined(config.passwordFile),
        env: Option.getOrUndefined(config.passwordEnv)
      }, "SMTP password").pipe(
        Effect.map(Option.some),
        Effect.mapError((error) => new MailError({ messageId, message: error.message }))
      )
    const caPem = yield* Option.match(config.caFile, {
      onNone: () => Effect.succeed(undefined),
      onSome: (file) =>
        Effect.try({
          try: () => Fs.readFileSync(file, "utf8"),
          catch: () => new MailError({ messageId, message: `cannot read the SMTP CA file ${file}` })
        })
    })
    const transport = nodemailer.createTransport({
      host: config.host,
      port: config.port,
      secure: config.secure,
      requireTLS: config.requireTls,
      ...(Option.isSome(config.user) && Option.isSome(pass) ? { auth: { user: config.user.value, pass: pass.value } } : {}),
      tls: { minVersion: "TLSv1.2", ...(caPem === undefined ? {} : { ca: [caPem] }) },
      connectionTimeout: config.connectionTimeoutSeconds * 1000,
      greetingTimeout: config.greetingTimeoutSeconds * 1000,
      socketTimeout: config.socketTimeoutSeconds * 1000,
      // Never: nodemailer's own logging would print envelopes and, at debug, the AUTH exchange.
      logger: false,
      debug: false,
      // Bodies are our own text; nothing in them may make nodemailer read files or URLs.
      disableFileAccess: true,
      disableUrlAccess: true
    })
    const secrets: ReadonlyArray<string> = [...Option.toArray(pass), ...Option.toArray(config.user)]
    return { transport, secrets }
  })

const tlsModeOf = (config: SmtpConfig) => (config.secure ? "implicit" : config.requireTls ? "starttls-required" : "starttls-when-offered")

export const SmtpMailerLive = Layer.effect(
  Mailer,
  Effect.gen(function*() {
    const config = yield* SmtpConfig
    const from = yield* fromAddress

    yield* Effect.logInfo("mail goes out over SMTP").pipe(
      Effect.annotateLogs({ smtpHost: config.host, smtpPort: config.port, tls: tlsModeOf(config), auth: Option.isSome(config.user) })
    )

    const send = (message: MailMessage) =>
      Effect.gen(function*() {
        const { secrets, transport } = yield* smtpSession(config, message.messageId)
        yield* Effect.tryPromise({
          try: (signal) =>
            transport.sendMail({
              from,
              to: message.to,
              subject: message.subject,
              text: message.text,
              ...(message.html === undefined ? {} : { html: message.html }),
              messageId: headerMessageId(message),
              // nodemailer 10 closes the SMTP connection when the send is interrupted (the outbox's
              // send timeout, shutdown). Spread: @types/nodemailer does not declare `signal` yet.
              ...{ signal }
            }),
          catch: (cause) => new MailError({ messageId: message.messageId, message: describeSmtpError(cause, message, secrets) })
        }).pipe(Effect.ensuring(Effect.sync(() => transport.close())))
        yield* Effect.logInfo("mail sent over SMTP")
      }).pipe(
        Effect.annotateLogs({ messageId: message.messageId }),
        Effect.withSpan("Mailer.send", { attributes: { transport: "smtp", messageId: message.messageId } })
      )

    return Mailer.of({ send })
  })
)

/**
 * Connects to the relay, negotiates TLS and authenticates, sending nothing (nodemailer's
 * `verify`): `rosterd doctor`'s check. The error is scrubbed like a send's.
 */
export const verifySmtp = Effect.gen(function*() {
  const config = yield* SmtpConfig
  const { secrets, transport } = yield* smtpSession(config, "doctor")
  yield* Effect.tryPromise({
    try: () => transport.verify(),
    catch: (cause) => new MailError({ messageId: "doctor", message: describeSmtpError(cause, { messageId: "doctor", to: "", subject: "", text: "" }, secrets) })
  }).pipe(Effect.ensuring(Effect.sync(() => transport.close())))
  return `${config.host}:${config.port}, TLS ${tlsModeOf(config)}, ${Option.isSome(config.user) ? "authenticated" : "no authentication"}`
})

/**
 * The mailer the daemon uses: SMTP when `rosterd.mail.smtp.host` is set (and not empty),
 * else the spool of `.eml` files (the embedded default).
 */
export const MailerLive = Layer.unwrapEffect(
  Effect.map(smtpHost, (host) => (Option.isSome(host) ? SmtpMailerLive : SpoolMailerLive))
)
