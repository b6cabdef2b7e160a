import { SqlClient } from "@effect/sql"
import { Duration, Effect, Option } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import { Audit } from "../Audit/Audit.ts"
import { backoffSeconds, OutboxConfig } from "../Mail/Outbox.ts"
import type { NotifyEvent, Occurrence, Summary } from "./Events.ts"
import { mailOf, payloadOf } from "./Events.ts"
import { notifySettings, type WebhookSettings } from "./Settings.ts"
import { post, shownUrl, signatureOf } from "./Webhook.ts"

/**
 * Operator notifications (README "Notifications and webhooks").
 *
 * **Once per occurrence.** `emit` writes the event into `notifications`, unique per event
 * and occurrence (`run:<id>`, `hold:<run>:<decision>`, `stale:<district>:<episode>`…); only
 * the writer that inserted it fans it out, in the same transaction: one outbox row per
 * e-mail contact (kind `notification`, idempotency key `notification-<id>-<n>`, delivered by
 * the outbox worker with its retries) and one `webhook_deliveries` row per hook that wants
 * the event. Two replicas seeing the same event write it once.
 *
 * **Where events come from.** `scan` (every `pollSeconds`, one replica at a time under a
 * transaction lock, over the last two days) finds held runs, decided holds and account
 * reviews opened by a run in the store, whoever made them (daemon or CLI); the scheduler
 * calls `runFailed` when a district's retries are spent and `freshness` with each district's
 * stale flag (the transition is announced: stale, then recovered); discovery emits
 * `district.connected` / `district.disconnected`. Events older than the first scan of this
 * database (`notify_state.since`) are not announced.
 *
 * **Webhooks.** Claimed like the outbox (due rows, `FOR UPDATE SKIP LOCKED`, the attempt
 * counted and a lease set in one statement), posted with the signature of Webhook.ts; a 2xx
 * is delivered, anything else is retried with the outbox's backoff (`rosterd.mail.retryBaseSeconds`,
 * `retryMaxSeconds`, `maxAttempts`), a 410 Gone disables the hook (an audit row
 * `webhook.disabled`; its pending deliveries are dropped). The body is rebuilt at each
 * attempt from the notification, so no body and no secret is stored beside the URL.
 */

export interface Delivery {
  readonly id: number
  readonly channel: "webhook" | "email"
  readonly event: NotifyEvent
  readonly districtId: string | null
  readonly runId: number | null
  /** A hook's URL without its query, or an address's domain. */
  readonly target: string
  readonly state: string
  readonly attempts: number
  readonly lastStatus: number | null
  readonly lastError: string | null
  readonly createdAt: Date
  readonly sentAt: Date | null
}

interface ClaimedDelivery {
  readonly id: number
  readonly url: string
  readonly attempts: number
  readonly event: NotifyEvent
  readonly districtId: string | null
  readonly runId: number | null
  readonly summary: Summary
  readonly at: Date
}

export interface WebhookCounts {
  readonly sent: number
  readonly retried: number
  readonly failed: number
  readonly disabled: number
}

/** The daemon's look-back: a scan is cheap however long the history is. */
const SCAN_WINDOW = "2 days"

export class Notify extends Effect.Service<Notify>()("rosterd/Notify", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* Audit
    const settings = yield* notifySettings
    const retry = yield* OutboxConfig
    const timeoutMs = Math.round(settings.timeoutSeconds * 1000)
    const hooksFor = (event: NotifyEvent) => settings.webhooks.filter((hook) => hook.events.length === 0 || hook.events.includes(event))

    /** Writes the event once and fans it out; the id when this call wrote it, none when it was already there. */
    const emit = Effect.fn("Notify.emit")(function*(o: Occurrence) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const [row] = yield* sql<{ readonly id: number; readonly at: Date }>`
          INSERT INTO notifications (event, occurrence, district_id, run_id, summary)
          VALUES (${o.event}, ${o.occurrence}, ${o.districtId ?? null}, ${o.runId ?? null}, ${JSON.stringify(o.summary ?? {})}::jsonb)
          ON CONFLICT (event, occurrence) DO NOTHING
          RETURNING id, at`
        if (row === undefined) return Option.none<number>()
        const id = Number(row.id)
        const payload = payloadOf({ event: o.event, districtId: o.districtId ?? null, runId: o.runId ?? null, at: row.at, summary: o.summary ?? {} })
        const mail = mailOf(payload)
        for (const [index, recipient] of settings.email.entries()) {
          yield* sql`
            INSERT INTO outbox (district_id, idempotency_key, kind, recipient, subject, body_text)
            VALUES ((SELECT id FROM districts WHERE id = ${o.districtId ?? null}), ${`notification-${id}-${index}`}, 'notification',
                    ${recipient}, ${mail.subject}, ${mail.text})
            ON CONFLICT (idempotency_key) DO NOTHING`
        }
        const hooks = hooksFor(o.event).map((hook) => hook.url)
        if (hooks.length > 0) {
          yield* sql`
            INSERT INTO webhook_deliveries (notification_id, url)
            SELECT ${id}, u FROM unnest(${hooks}::text[]) u WHERE u NOT IN (SELECT url FROM webhooks_disabled)
            ON CONFLICT DO NOTHING`
        }
        yield* Effect.logInfo("notification").pipe(Effect.annotateLogs({ event: o.event, notification: id, district: o.districtId ?? null }))
        return Option.some(id)
      }))
    }, Effect.orDie)

    /** A district's retries are spent: its last failed run is announced. */
    const runFailed = Effect.fn("Notify.runFailed")(function*(districtId: string, attempts: number) {
      const [run] = yield* sql<{ readonly id: number; readonly errorReason: string | null }>`
        SELECT id, error_reason FROM sync_runs WHERE district_id = ${districtId} AND status IN ('failed', 'interrupted')
        ORDER BY id DESC LIMIT 1`
      if (run === undefined) return Option.none<number>()
      return yield* emit({
        event: "run.failed",
        occurrence: `run:${run.id}`,
        districtId,
        runId: Number(run.id),
        summary: { reason: run.errorReason, attempts }
      })
    }, Effect.orDie)

    /** A district's stale flag at this look: a change is announced (stale, or recovered), once per episode. */
    const freshness = Effect.fn("Notify.freshness")(function*(districtId: string, stale: boolean) {
      const [first] = yield* sql<{ readonly episode: number }>`
        INSERT INTO notify_district_state (district_id, stale, episode) VALUES (${districtId}, ${stale}, ${stale ? 1 : 0})
        ON CONFLICT (district_id) DO NOTHING RETURNING episode`
      const changed = first !== undefined
        ? (stale ? [first] : [])
        : yield* sql<{ readonly episode: number }>`
            UPDATE notify_district_state SET stale = ${stale}, changed_at = now(),
                   episode = CASE WHEN ${stale} THEN episode + 1 ELSE episode END
            WHERE district_id = ${districtId} AND stale <> ${stale} RETURNING episode`
      const [episode] = changed
      if (episode === undefined) return Option.none<number>()
      return yield* emit({
        event: stale ? "district.stale" : "district.recovered",
        occurrence: `${stale ? "stale" : "recovered"}:${districtId}:${episode.episode}`,
        districtId,
        summary: { episode: episode.episode }
      })
    }, Effect.orDie)

    /** Held runs, decided holds and opened reviews of the last two days not announced yet. Returns how many it announced. */
    const scan = Effect.fn("Notify.scan")(function*() {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const [lock] = yield* sql<{ readonly ok: boolean }>`SELECT pg_try_advisory_xact_lock(hashtext('rosterd.notify.scan')) AS ok`
        if (lock?.ok !== true) return 0 // another replica is scanning
        yield* sql`INSERT INTO notify_state DEFAULT VALUES ON CONFLICT DO NOTHING`
        const from = sql`greatest((SELECT since FROM notify_state), now() - ${SCAN_WINDOW}::interval)`
        const found: Array<Occurrence> = []
        const held = yield* sql<{ readonly id: number; readonly districtId: string; readonly rules: ReadonlyArray<string>; readonly kinds: ReadonlyArray<string> }>`
          SELECT r.id, r.district_id,
                 ARRAY(SELECT DISTINCT t->>'rule' FROM jsonb_array_elements(h.tripped) t ORDER BY 1) AS rules,
                 ARRAY(SELECT DISTINCT t->>'kind' FROM jsonb_array_elements(h.tripped) t ORDER BY 1) AS kinds
          FROM sync_runs r JOIN holds h ON h.run_id = r.id
          WHERE r.status = 'held' AND r.finished_at >= ${from}
            AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event = 'run.held' AND n.occurrence = 'run:' || r.id)`
        for (const r of held) {
          found.push({ event: "run.held", occurrence: `run:${r.id}`, districtId: r.districtId, runId: Number(r.id), summary: { rules: r.rules, kinds: r.kinds } })
        }
        const decided = yield* sql<{ readonly runId: number; readonly districtId: string; readonly state: string }>`
          SELECT run_id, district_id, state FROM holds
          WHERE state IN ('approved', 'rejected') AND decided_at >= ${from}
            AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event = 'hold.decided' AND n.occurrence = 'hold:' || run_id || ':' || state)`
        for (const h of decided) {
          found.push({ event: "hold.decided", occurrence: `hold:${h.runId}:${h.state}`, districtId: h.districtId, runId: Number(h.runId), summary: { decision: h.state } })
        }
        // Reviews a run opened, grouped by that run (the last run of the district started before them).
        const reviews = yield* sql<{ readonly districtId: string; readonly runId: number | null; readonly n: number; readonly reasons: ReadonlyArray<string> }>`
          SELECT a.district_id, r.id AS run_id, count(*)::int AS n, array_agg(DISTINCT a.reason ORDER BY a.reason) AS reasons
          FROM account_reviews a
          LEFT JOIN LATERAL (SELECT id FROM sync_runs r WHERE r.district_id = a.district_id AND r.started_at <= a.created_at
                             ORDER BY r.started_at DESC LIMIT 1) r ON true
          WHERE a.created_at >= ${from}
          GROUP BY 1, 2`
        for (const g of reviews) {
          found.push({
            event: "review.opened",
            occurrence: `reviews:${g.districtId}:${g.runId ?? "none"}`,
            districtId: g.districtId,
            runId: g.runId === null ? null : Number(g.runId),
            summary: { reviews: g.n, reasons: g.reasons }
          })
        }
        let announced = 0
        for (const o of found) if (Option.isSome(yield* emit(o))) announced++
        return announced
      }))
    }, Effect.orDie)

    // ---------------------------------------------------------------- webhooks

    const claim = (limit: number) => {
      const leaseSeconds = limit * settings.timeoutSeconds + 60
      return sql.withTransaction(sql<ClaimedDelivery>`
        WITH due AS (
          SELECT id FROM webhook_deliveries
          WHERE state = 'pending' AND next_attempt_at <= now()
          ORDER BY next_attempt_at, id LIMIT ${limit}
          FOR UPDATE SKIP LOCKED),
        claimed AS (
          UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => ${leaseSeconds}::float8)
          FROM due WHERE d.id = due.id
          RETURNING d.id, d.url, d.attempts, d.notification_id)
        SELECT c.id, c.url, c.attempts, n.event, n.district_id, n.run_id, n.summary, n.at
        FROM claimed c JOIN notifications n ON n.id = c.notification_id ORDER BY c.id`)
    }

    const readSecretFile = (hook: WebhookSettings) =>
      Effect.try({
        try: () => Fs.readFileSync(hook.secretFile, "utf8").trim(),
        catch: () => `cannot read the secret file ${hook.secretFile}`
      }).pipe(Effect.filterOrFail((secret) => secret.length > 0, () => `the secret file ${hook.secretFile} is empty`))

    const disable = (row: ClaimedDelivery, status: number) =>
      sql.withTransaction(Effect.gen(function*() {
        yield* sql`UPDATE webhook_deliveries SET state = 'disabled', last_status = ${status}, last_error = 'the receiver answered 410 Gone: hook disabled'
                   WHERE id = ${row.id}`
        const [added] = yield* sql`INSERT INTO webhooks_disabled (url, status) VALUES (${row.url}, ${status}) ON CONFLICT DO NOTHING RETURNING url`
        yield* sql`UPDATE webhook_deliveries SET state = 'disabled', last_error = 'the hook is disabled' WHERE url = ${row.url} AND state = 'pending'`
        if (added !== undefined) {
          yield* audit.record({ actor: "rosterd", action: "webhook.disabled", subject: shownUrl(row.url), reason: "the receiver answered 410 Gone", details: { status } })
        }
      }))

    /** One claimed delivery: posted, and its outcome recorded. */
    const deliverOne = (row: ClaimedDelivery) =>
      Effect.gen(function*() {
        const hook = settings.webhooks.find((h) => h.url === row.url)
        const fail = (error: string, status: number | null, final: boolean) =>
          Effect.as(
            final
              ? sql`UPDATE webhook_deliveries SET state = 'failed', last_status = ${status}, last_error = ${error} WHERE id = ${row.id}`
              : sql`UPDATE webhook_deliveries SET last_status = ${status}, last_error = ${error},
                      next_attempt_at = now() + make_interval(secs => ${backoffSeconds(row.attempts, retry.retryBaseSeconds, retry.retryMaxSeconds)}::float8)
                    WHERE id = ${row.id}`,
            final ? "failed" as const : "retried" as const
          )
        if (hook === undefined) return yield* fail("the hook is no longer configured", null, true)
        const final = row.attempts >= retry.maxAttempts
        const secret = yield* Effect.either(readSecretFile(hook))
        if (secret._tag === "Left") return yield* fail(secret.left, null, final)
        const body = JSON.stringify(payloadOf({ event: row.event, districtId: row.districtId, runId: row.runId, at: row.at, summary: row.summary }))
        const timestamp = String(Math.floor(Date.now() / 1000))
        const outcome = yield* Effect.promise(() =>
          post(row.url, {
            "content-type": "application/json",
            "user-agent": "rosterd",
            "x-rosterd-event": row.event,
            "x-rosterd-delivery": String(row.id),
            "x-rosterd-timestamp": timestamp,
            "x-rosterd-signature": signatureOf(secret.right, timestamp, body)
          }, body, timeoutMs)
        )
        if (outcome.error === undefined) {
          yield* sql`UPDATE webhook_deliveries SET state = 'sent', sent_at = now(), last_status = ${outcome.status} WHERE id = ${row.id}`
          return "sent" as const
        }
        if (outcome.status === 410) {
          yield* disable(row, 410)
          yield* Effect.logWarning("webhook disabled: the receiver answered 410 Gone").pipe(Effect.annotateLogs({ hook: shownUrl(row.url) }))
          return "disabled" as const
        }
        yield* Effect.logWarning("webhook delivery failed").pipe(Effect.annotateLogs({ hook: shownUrl(row.url), status: outcome.status, attempt: row.attempts }))
        return yield* fail(outcome.error, outcome.status, final)
      }).pipe(Effect.annotateLogs({ delivery: row.id, event: row.event }))

    /** Claims due webhook deliveries and posts them one by one. */
    const deliverDue = Effect.fn("Notify.deliverDue")(function*(limit = 20) {
      const counts = { sent: 0, retried: 0, failed: 0, disabled: 0 }
      for (const row of yield* claim(limit)) counts[yield* deliverOne(row)]++
      return counts as WebhookCounts
    }, Effect.orDie)

    /** The daemon's loop: scan, deliver, every `pollSeconds`. Never fails. */
    const run = Effect.gen(function*() {
      while (true) {
        yield* Effect.all([scan(), deliverDue()], { discard: true }).pipe(
          Effect.catchAllCause((cause) => Effect.logError("notifications failed, will try again", cause))
        )
        yield* Effect.sleep(Duration.seconds(settings.pollSeconds))
      }
    }) as Effect.Effect<never>

    /** Deliveries, newest first: channel, event, district, run, target (no query, no address), state. */
    const list = Effect.fn("Notify.list")(function*(limit = 50) {
      const rows = yield* sql<Omit<Delivery, "target"> & { readonly url: string | null; readonly recipientDomain: string | null }>`
        SELECT * FROM (
          SELECT d.id, 'webhook' AS channel, n.event, n.district_id, n.run_id, d.url, NULL AS recipient_domain, d.state, d.attempts,
                 d.last_status, d.last_error, d.created_at, d.sent_at
          FROM webhook_deliveries d JOIN notifications n ON n.id = d.notification_id
          UNION ALL
          SELECT o.id, 'email', n.event, n.district_id, n.run_id, NULL, lower(split_part(btrim(o.recipient), '@', 2)), o.state, o.attempts,
                 NULL, o.last_error, o.created_at, o.sent_at
          FROM outbox o JOIN notifications n ON o.idempotency_key LIKE 'notification-' || n.id || '-%'
          WHERE o.kind = 'notification') x
        ORDER BY created_at DESC, id DESC LIMIT ${limit}`
      return rows.map(({ url, recipientDomain, ...row }) => ({
        ...row,
        runId: row.runId === null ? null : Number(row.runId),
        target: url !== null ? shownUrl(url) : `@${recipientDomain ?? ""}`
      }) as Delivery)
    }, Effect.orDie)

    /** `notify test`: the event (default notify.test) with no district, a summary saying so, delivered to the hooks now. */
    const test = Effect.fn("Notify.test")(function*(event: NotifyEvent = "notify.test") {
      const id = yield* emit({ event, occurrence: `test:${Crypto.randomUUID()}`, summary: { test: true } })
      const counts = yield* deliverDue(100)
      return { notification: Option.getOrElse(id, () => 0), emails: settings.email.length, webhooks: hooksFor(event).length, counts }
    })

    return { emit, runFailed, freshness, scan, deliverDue, run, list, test, settings } as const
  }),
  dependencies: [Audit.Default]
}) {}
