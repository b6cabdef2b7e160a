import { Effect } from "effect"
import { type ParsedMail, simpleParser } from "mailparser"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as NodePath from "node:path"
import { SMTPServer } from "smtp-server"

/**
 * A real SMTP server (the `smtp-server` package) on loopback for the mail tests: AUTH
 * required (PLAIN/LOGIN, one user), optional STARTTLS with a given certificate, recipients
 * refused by pattern; every accepted message is kept raw and parsed with `mailparser`.
 */

export interface ReceivedMail {
  readonly mailFrom: string | null
  readonly rcptTo: ReadonlyArray<string>
  /** The user the session authenticated as. */
  readonly user: string | null
  /** Whether the session was over TLS (STARTTLS or implicit). */
  readonly secure: boolean
  readonly raw: string
  readonly parsed: ParsedMail
}

export interface SmtpTestServerOptions {
  /** A fixed port (to bring a server "back" where a mailer expects it); default: a free one. */
  readonly port?: number
  readonly user: string
  readonly password: string
  /** STARTTLS with this key and certificate; without it STARTTLS is not offered. */
  readonly tls?: { readonly key: string; readonly cert: string }
  /** RCPT TO addresses matching this are refused with 550 (quoting the address, as real servers do). */
  readonly refuse?: RegExp
}

export interface SmtpTestServer {
  readonly port: number
  readonly received: Array<ReceivedMail>
  /** Every AUTH attempt: the user name and whether it succeeded. */
  readonly logins: Array<{ readonly user: string; readonly ok: boolean }>
  readonly close: () => Promise<void>
}

const smtpError = (code: number, text: string) => Object.assign(new Error(text), { responseCode: code })

export const startSmtpServer = (options: SmtpTestServerOptions): Promise<SmtpTestServer> =>
  new Promise((resolve, reject) => {
    const received: Array<ReceivedMail> = []
    const logins: Array<{ user: string; ok: boolean }> = []
    const server = new SMTPServer({
      logger: false,
      secure: false,
      ...(options.tls === undefined ? { disabledCommands: ["STARTTLS"] } : { key: options.tls.key, cert: options.tls.cert }),
      // Loopback only, in tests: AUTH is allowed without TLS where STARTTLS is not under test.
      allowInsecureAuth: true,
      authMethods: ["PLAIN", "LOGIN"],
      onAuth(auth, _session, callback) {
        const ok = auth.username === options.user && auth.password === options.password
        logins.push({ user: auth.username ?? "", ok })
        if (ok) callback(null, { user: auth.username })
        else callback(smtpError(535, "Authentication credentials invalid"))
      },
      onRcptTo(address, _session, callback) {
        if (options.refuse?.test(address.address)) callback(smtpError(550, `<${address.address}>: Recipient address rejected: no such user`))
        else callback()
      },
      onData(stream, session, callback) {
        const chunks: Array<Buffer> = []
        stream.on("data", (chunk: Buffer) => chunks.push(chunk))
        stream.on("end", () => {
          const raw = Buffer.concat(chunks).toString("utf8")
          simpleParser(raw).then(
            (parsed) => {
              received.push({
                mailFrom: session.envelope.mailFrom === false ? null : session.envelope.mailFrom.address,
                rcptTo: session.envelope.rcptTo.map((r) => r.address),
                user: typeof session.user === "string" ? session.user : null,
                secure: session.secure,
                raw,
                parsed
              })
              callback()
            },
            (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)))
          )
        })
      }
    })
    server.once("error", reject)
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      const { port } = server.server.address() as Net.AddressInfo
      resolve({ port, received, logins, close: () => new Promise<void>((done) => server.close(() => done())) })
    })
  })

/** The server as a scoped resource: closed when the scope ends. */
export const smtpServer = (options: SmtpTestServerOptions) =>
  Effect.acquireRelease(Effect.promise(() => startSmtpServer(options)), (server) => Effect.promise(() => server.close()))

/** A port nothing listens on (yet). */
export { freePort } from "../support/Cli.ts"

/** Whether `openssl` is there to make a test certificate. */
export const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

/** A self-signed certificate for 127.0.0.1 / localhost, valid one day, made with `openssl`; the certificate is its own CA. */
export const selfSignedCertificate = (dir: string) => {
  const key = NodePath.join(dir, "smtp-key.pem")
  const cert = NodePath.join(dir, "smtp-cert.pem")
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"
  ], { stdio: "ignore" })
  return { key: Fs.readFileSync(key, "utf8"), cert: Fs.readFileSync(cert, "utf8"), certFile: cert }
}
