import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { Mailer, SpoolMailerLive } from "../../src/Mail/Mailer.ts"
import { tempDir } from "../support/Fixtures.ts"

describe("the spool mailer (the embedded default)", () => {
  it.effect("writes each message as an RFC 5322 .eml file named by its message id", () => {
    const dir = tempDir()
    const config = ConfigProvider.fromMap(new Map([["rosterd.dataDir", dir.dir], ["rosterd.mail.from", "Roster <noreply@example.org>"]]))
    return Effect.gen(function*() {
      const mailer = yield* Mailer
      yield* mailer.send({ messageId: "activation-42", to: "teacher@example.org", subject: "Confirm your official account", text: "Hello" })
      const file = NodePath.join(dir.dir, "mail-spool", "activation-42.eml")
      const eml = Fs.readFileSync(file, "utf8")
      assert.match(eml, /^From: Roster <noreply@example.org>$/m)
      assert.match(eml, /^To: teacher@example.org$/m)
      assert.match(eml, /^Subject: Confirm your official account$/m)
      assert.match(eml, /^Message-ID: <activation-42@rosterd>$/m)
      assert.include(eml, "Hello")
      assert.strictEqual(Fs.statSync(file).mode & 0o777, 0o600)
      // The same message again (a retry) replaces the file: one message per id.
      yield* mailer.send({ messageId: "activation-42", to: "teacher@example.org", subject: "Confirm your official account", text: "Hello" })
      assert.deepStrictEqual(Fs.readdirSync(NodePath.join(dir.dir, "mail-spool")), ["activation-42.eml"])
    }).pipe(
      Effect.provide(SpoolMailerLive.pipe(Layer.provide(Layer.setConfigProvider(config)))),
      Effect.ensuring(Effect.sync(() => dir.remove()))
    )
  })
})
