import { Effect, ParseResult, Schema } from "effect"
import { ConfigFile } from "../Config/ConfigFile.ts"
import { NotifyEvent } from "./Events.ts"
import { refuseUrl } from "./Webhook.ts"

/**
 * `rosterd.notify` in the config file: who hears of events. Read from the file itself (a
 * list of hooks is data, like `districts:`, and does not flatten into settings):
 *
 *     rosterd:
 *       notify:
 *         email: [roster-team@example.org]
 *         webhooks:
 *           - url: https://hooks.example.org/rosterd
 *             secretFile: /etc/rosterd/webhook-secret
 *             events: [run.failed, run.held]      # none: every event
 *         pollSeconds: 60                         # how often events are looked for and hooks called
 *         timeoutSeconds: 10                      # one webhook call
 *
 * The secret is read from its file at each call and never stored or logged. A hook with a
 * URL that is not https (except loopback) is refused when the daemon starts.
 */

const Address = Schema.Trim.pipe(Schema.pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: () => "must be an e-mail address" }))

const HookUrl = Schema.Trim.pipe(Schema.filter((url) => refuseUrl(url) ?? true))

export const WebhookSettings = Schema.Struct({
  url: HookUrl,
  secretFile: Schema.NonEmptyTrimmedString,
  events: Schema.optionalWith(Schema.Array(NotifyEvent), { default: () => [] })
})
export type WebhookSettings = typeof WebhookSettings.Type

export const NotifySettingsSchema = Schema.Struct({
  email: Schema.optionalWith(Schema.Array(Address), { default: () => [] }),
  webhooks: Schema.optionalWith(Schema.Array(WebhookSettings), { default: () => [] }),
  pollSeconds: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 60 }),
  timeoutSeconds: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 10 })
})
export type NotifySettings = typeof NotifySettingsSchema.Type

export class NotifyConfigError extends Schema.TaggedError<NotifyConfigError>()("NotifyConfigError", { message: Schema.String }) {}

/** `rosterd.notify` of the config file (none: nobody is notified), checked. */
export const notifySettings = Effect.gen(function*() {
  const file = yield* ConfigFile
  const rosterd = file.document["rosterd"]
  const raw = typeof rosterd === "object" && rosterd !== null ? (rosterd as Record<string, unknown>)["notify"] : undefined
  return yield* Schema.decodeUnknown(NotifySettingsSchema)(raw ?? {}, { onExcessProperty: "error" }).pipe(
    // Each problem by its key (webhooks.0.url): the message, never the value (an address, a URL's token).
    Effect.mapError((error) =>
      new NotifyConfigError({
        message: `rosterd.notify in ${file.path}: ${
          ParseResult.ArrayFormatter.formatErrorSync(error).slice(0, 3).map((issue) => `${issue.path.join(".") || "(the section)"}: ${issue.message}`).join("; ")
        }`
      }))
  )
})
