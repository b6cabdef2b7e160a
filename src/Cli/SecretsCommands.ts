import { Command, Options } from "@effect/cli"
import { Console, Effect, Layer } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { Secrets } from "../Secrets/Secrets.ts"
import { audited } from "./AuditCommand.ts"
import { actorOption, jsonOption } from "./Options.ts"
import { json, table } from "./Output.ts"

/**
 * `rosterd secrets`: the key the stored credentials are encrypted with. Rotation is: make a
 * new key, configure it as the current one with the old one under `previousKeyFiles`, run
 * `rotate-key`, then drop the old key. `status` shows where each credential stands.
 */

const rotateKey = Command.make("rotate-key", { by: actorOption }, (args) =>
  Effect.gen(function*() {
    const secrets = yield* Secrets
    const result = yield* audited(secrets.rotate(), (r) => ({
      actor: args.by,
      action: "secrets.rotate-key",
      subject: `key ${r.keyId}`,
      details: { keyId: r.keyId, reencrypted: r.reencrypted, fromKeys: r.fromKeys, links: r.links, linksFailed: r.linksFailed }
    }))
    const from = Object.entries(result.fromKeys).map(([keyId, count]) => `${count} from key ${keyId}`).join(", ")
    yield* Console.log(
      `re-encrypted ${result.reencrypted} credential${result.reencrypted === 1 ? "" : "s"} under key ${result.keyId}` +
        (from === "" ? "" : ` (${from})`) +
        "; keys other than this one are no longer needed by stored credentials"
    )
    // Activation and invitation links waiting in the outbox are sealed with the same key.
    yield* Console.log(
      `re-sealed ${result.links} pending mail link${result.links === 1 ? "" : "s"}` +
        (result.linksFailed === 0 ? "" : `; ${result.linksFailed} did not open (their rows were altered): those messages failed, send them again`)
    )
  })).pipe(Command.withDescription("re-encrypt every stored credential, and re-seal every pending mail link, under the current key, in one transaction (audited)"))

const status = Command.make("status", { json: jsonOption }, (args) =>
  Effect.gen(function*() {
    const view = yield* Effect.flatMap(Secrets, (secrets) => secrets.status())
    if (args.json) return yield* json(view)
    yield* Console.log(`current key: ${view.keyId ?? "none"}${view.source === null ? "" : ` (${view.source})`}`)
    if (view.previousKeyIds.length > 0) yield* Console.log(`previous keys: ${view.previousKeyIds.join(", ")}`)
    if (view.problem !== null) yield* Console.log(`problem: ${view.problem}`)
    const links = view.linksByKey.map((k) => `${k.count} under key ${k.keyId}${k.configured ? "" : " (NOT CONFIGURED: cannot be sent)"}`)
    if (links.length > 0) yield* Console.log(`pending mail links: ${links.join(", ")}`)
    if (view.byKey.length === 0) return yield* Console.log("no stored credentials")
    yield* Console.log(table(
      ["key", "credentials", "state"],
      view.byKey.map((k) => [k.keyId, k.count, k.keyId === view.keyId ? "current" : k.configured ? "previous: run rotate-key" : "NOT CONFIGURED: cannot be read"])
    ))
  })).pipe(Command.withDescription("the credentials key in use and how many stored credentials each key holds"))

export const secretsCommand = Command.make("secrets").pipe(
  Command.withDescription("the encryption key of stored provider credentials"),
  Command.withSubcommands([rotateKey, status]),
  Command.provide(Layer.mergeAll(Secrets.Default, Audit.Default))
)
