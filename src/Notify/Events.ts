import { Schema } from "effect"

/**
 * What rosterd tells its operators about (README "Notifications and webhooks"). Each event
 * is announced once per occurrence — a run, a hold's decision, a stale episode, a district
 * connecting — however many replicas see it (`notifications`, unique per event and occurrence).
 */
export const NOTIFY_EVENTS = [
  "run.failed",
  "run.held",
  "district.stale",
  "district.recovered",
  "review.opened",
  "hold.decided",
  "district.connected",
  "district.disconnected",
  "notify.test"
] as const
export const NotifyEvent = Schema.Literal(...NOTIFY_EVENTS)
export type NotifyEvent = typeof NotifyEvent.Type

/** One line per event, for mail subjects and `notify list`. */
export const EVENT_TEXT: Readonly<Record<NotifyEvent, string>> = {
  "run.failed": "a sync failed after its retries",
  "run.held": "a sync was held for an operator",
  "district.stale": "a district has had no successful sync within rosterd.sync.staleAfter",
  "district.recovered": "a stale district synced again",
  "review.opened": "account reviews were opened",
  "hold.decided": "a hold was approved or rejected",
  "district.connected": "a district authorised the app (not registered yet)",
  "district.disconnected": "a district withdrew the app's access",
  "notify.test": "a test notification (rosterd notify test)"
}

/**
 * A summary: ids, counts, rule names and reason codes only — never a name, address,
 * birth date or token. Values are scalars or lists of scalars.
 */
export type Summary = Readonly<Record<string, string | number | boolean | null | ReadonlyArray<string | number>>>

/** An event to announce: `occurrence` makes it unique (a run id, a hold decision, an episode). */
export interface Occurrence {
  readonly event: NotifyEvent
  readonly occurrence: string
  readonly districtId?: string | null
  readonly runId?: number | null
  readonly summary?: Summary
}

/** The webhook body (and the facts of an e-mail): `{event, district, run, at, summary}`. */
export interface Payload {
  readonly event: NotifyEvent
  readonly district: string | null
  readonly run: number | null
  readonly at: string
  readonly summary: Summary
}

export const payloadOf = (n: { readonly event: NotifyEvent; readonly districtId: string | null; readonly runId: number | null; readonly at: Date; readonly summary: Summary }): Payload => ({
  event: n.event,
  district: n.districtId,
  run: n.runId === null ? null : Number(n.runId),
  at: n.at.toISOString(),
  summary: n.summary
})

/** The e-mail of a notification: subject and plain text, from the payload alone. */
export const mailOf = (payload: Payload) => {
  const subject = `[rosterd] ${payload.event}${payload.district === null ? "" : ` ${payload.district}`}`
  const lines = [
    `${EVENT_TEXT[payload.event]}.`,
    "",
    `event:    ${payload.event}`,
    `district: ${payload.district ?? "-"}`,
    `run:      ${payload.run ?? "-"}`,
    `at:       ${payload.at}`,
    ...Object.entries(payload.summary).map(([key, value]) => `${key}: ${Array.isArray(value) ? value.join(", ") : String(value)}`)
  ]
  return { subject, text: lines.join("\n") + "\n" }
}
