import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { isLoopbackHost, SmtpConfig, smtpTlsWarning } from "../../src/Mail/SmtpMailer.ts"

/**
 * `rosterd.mail.smtp.requireTls`: true unless the relay is on this machine (loopback), so a
 * message with a live link never crosses a network in clear because a relay (or someone in
 * the middle) offered no STARTTLS; an explicit `false` turns it off, and `rosterd doctor`
 * warns about that for a relay elsewhere.
 */

const configFor = (settings: Record<string, string>) =>
  SmtpConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(settings)))))

describe("SMTP TLS", () => {
  it("loopback hosts: localhost, 127.0.0.0/8, ::1 (bracketed or not); nothing else", () => {
    for (const host of ["localhost", "LOCALHOST", "relay.localhost", "127.0.0.1", "127.8.9.10", "::1", "[::1]"]) assert.isTrue(isLoopbackHost(host), host)
    for (const host of ["smtp.example.org", "10.0.0.5", "128.0.0.1", "localhost.example.org", "127.0.0.1.example.org", "::2"]) assert.isFalse(isLoopbackHost(host), host)
  })

  it.effect("requireTls defaults to true for a relay elsewhere, false on loopback; an explicit setting wins either way", () =>
    Effect.gen(function*() {
      const required = (settings: Record<string, string>) => Effect.map(configFor(settings), (c) => c.requireTls)
      assert.isTrue(yield* required({ "rosterd.mail.smtp.host": "smtp.example.org" }))
      assert.isFalse(yield* required({ "rosterd.mail.smtp.host": "127.0.0.1" }))
      assert.isFalse(yield* required({ "rosterd.mail.smtp.host": "smtp.example.org", "rosterd.mail.smtp.requireTls": "false" }))
      assert.isTrue(yield* required({ "rosterd.mail.smtp.host": "localhost", "rosterd.mail.smtp.requireTls": "true" }))
    }))

  it.effect("doctor warns when TLS is turned off for a relay elsewhere, and only then", () =>
    Effect.gen(function*() {
      const warning = (settings: Record<string, string>) => Effect.map(configFor(settings), smtpTlsWarning)
      const off = yield* warning({ "rosterd.mail.smtp.host": "smtp.example.org", "rosterd.mail.smtp.requireTls": "false" })
      assert.include(off, "rosterd.mail.smtp.requireTls is false for smtp.example.org")
      assert.isUndefined(yield* warning({ "rosterd.mail.smtp.host": "smtp.example.org" }))
      assert.isUndefined(yield* warning({ "rosterd.mail.smtp.host": "smtp.example.org", "rosterd.mail.smtp.requireTls": "false", "rosterd.mail.smtp.secure": "true" }))
      assert.isUndefined(yield* warning({ "rosterd.mail.smtp.host": "127.0.0.1", "rosterd.mail.smtp.requireTls": "false" }))
    }))
})
