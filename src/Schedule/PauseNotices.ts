import { SqlClient } from "@effect/sql"
import { Cause, Clock, Config, DateTime, Effect, Option } from "effect"
import type { District } from "../Domain/District.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import { localDateAt, startOfLocalDay } from "./Calendar.ts"
import { toDayNumber, toLocalDate } from "../Domain/LocalDates.ts"
import { type NoticeKind, pauseNoticeMail } from "./PauseNoticeMail.ts"
import { pauseChainAt, type PauseSpan } from "./PauseSpans.ts"
import { Pauses } from "./Pauses.ts"

/**
 * Pause notices: a district's roster contacts (`rules.notices.contacts`) hear of each pause
 * that applies to it (calendar windows and ad-hoc pauses, src/Schedule/Pauses.ts) twice:
 *
 * - **ahead**: due from local midnight `rules.notices.daysAhead` days (default 7) before the
 *   pause's first day, in the district's zone, until the pause is over. So a pause announced
 *   late, or a district added while one is under way, is still told.
 * - **ended**: due from the pause's end until three days later (no news of ancient pauses
 *   after a long downtime). Not while another pause carries on without a gap: the last one
 *   of such a chain says that syncing has resumed.
 *
 * **Exactly once per pause per district and address**, even with several replicas calling
 * `sendDue` at once: each outbox row's idempotency key is
 * `pause-notice:<district>:<pause key>:<ahead|ended>:<sha256 of the lower-cased address>`,
 * inserted with `ON CONFLICT DO NOTHING` (the key is UNIQUE), one statement per district.
 * A contact added later still gets a notice that is due; a pause cancelled before its
 * notice was due gets none. An ad-hoc pause cancelled (resumed before it began) after its
 * "ahead" notice went out gets a **cancelled** notice, to the addresses that were told,
 * within three days of the cancellation. Delivery is the outbox's (src/Mail/Outbox.ts),
 * kind `pause-notice`.
 *
 * Logs carry district ids and counts only, never addresses.
 */

const DAY_MS = 86_400_000
/** How long after a pause's end its "ended" notice may still go out. */
const ENDED_NOTICE_MS = 3 * DAY_MS
/** How far ahead pauses are read, so a notice can say when a chain of pauses ends. */
const LOOK_AHEAD_DAYS = 400

export interface DueNotice {
  readonly kind: NoticeKind
  readonly pause: PauseSpan
  /** When syncing starts again: the end of the pause's chain. */
  readonly resumesAt: Date
  /** The pause had begun. */
  readonly underWay: boolean
}

/** The notices due at `now` for a district's pauses (`spans` from `Pauses.windowsFor` around now). */
export const dueNotices = (spans: ReadonlyArray<PauseSpan>, now: number, daysAhead: number, zone: string): Array<DueNotice> =>
  spans.flatMap((pause): Array<DueNotice> => {
    const start = pause.startsAt.getTime()
    const end = pause.endsAt.getTime()
    const announceAt = DateTime.toEpochMillis(startOfLocalDay(toLocalDate(toDayNumber(pause.from) - daysAhead), zone))
    if (announceAt <= now && now < end) {
      const resumesAt = Option.match(pauseChainAt(spans, start), { onNone: () => end, onSome: (chain) => chain.endsAt })
      return [{ kind: "ahead", pause, resumesAt: new Date(resumesAt), underWay: start <= now }]
    }
    if (end <= now && now < end + ENDED_NOTICE_MS && Option.isNone(pauseChainAt(spans, end))) {
      return [{ kind: "ended", pause, resumesAt: pause.endsAt, underWay: false }]
    }
    return []
  })

/** The outbox idempotency key's prefix; the address's hash completes it (in SQL). */
export const noticeKeyPrefix = (districtId: string, pause: PauseSpan, kind: NoticeKind) => `pause-notice:${districtId}:${pause.key}:${kind}:`

/** One address once, whatever its case (the key hashes it lower-cased). */
const distinctAddresses = (contacts: ReadonlyArray<string>) => {
  const seen = new Set<string>()
  return contacts.map((c) => c.trim()).filter((c) => {
    const key = c.toLowerCase()
    if (c === "" || seen.has(key)) return false
    seen.add(key)
    return true
  })
}

const failureTag = (cause: Cause.Cause<unknown>) =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => (Cause.isInterruptedOnly(cause) ? "Interrupted" : "Defect"),
    onSome: (error) => (error as { readonly _tag?: string })._tag ?? "Error"
  })

export class PauseNotices extends Effect.Service<PauseNotices>()("rosterd/PauseNotices", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* RosterStore
    const pauses = yield* Pauses
    const platform = yield* Config.string("platformName").pipe(Config.nested("accounts"), Config.nested("rosterd"), Config.withDefault("rosterd"))

    /** Queues the district's due notices, one row per address: one INSERT … SELECT FROM unnest. */
    const queueFor = (district: District, now: number) =>
      Effect.gen(function*() {
        const { contacts, daysAhead } = district.rules.notices
        const addresses = distinctAddresses(contacts)
        if (addresses.length === 0) return 0
        const today = toDayNumber(localDateAt(new Date(now), district.timezone))
        const spans = yield* pauses.windowsFor(district, toLocalDate(today - 4), toLocalDate(today + daysAhead + LOOK_AHEAD_DAYS))
        const due = dueNotices(spans, now, daysAhead, district.timezone)
        const cancelled = yield* pauses.cancelledSince(district, new Date(now - ENDED_NOTICE_MS))
        if (due.length === 0 && cancelled.length === 0) return 0
        const mails = [
          ...due.map((notice) => ({
            prefix: noticeKeyPrefix(district.id, notice.pause, notice.kind),
            requires: null,
            ...pauseNoticeMail({ ...notice, platform, districtName: district.name, zone: district.timezone })
          })),
          // Only to an address that was told the pause was coming.
          ...cancelled.map((pause) => ({
            prefix: noticeKeyPrefix(district.id, pause, "cancelled"),
            requires: noticeKeyPrefix(district.id, pause, "ahead"),
            ...pauseNoticeMail({ kind: "cancelled", pause, resumesAt: pause.endsAt, underWay: false, platform, districtName: district.name, zone: district.timezone })
          }))
        ]
        // NOT EXISTS skips the notices already queued (the usual case: a notice stays due for
        // days and this runs every minute) without spending outbox ids; ON CONFLICT settles
        // the race between replicas.
        const rows = yield* sql<{ readonly id: number }>`
          INSERT INTO outbox (district_id, idempotency_key, kind, recipient, subject, body_text)
          SELECT ${district.id}, k.key, 'pause-notice', k.address, k.subject, k.body
          FROM (
            SELECT n.prefix || h.hash AS key, n.requires || h.hash AS required, c.address, n.subject, n.body
            FROM unnest(${mails.map((m) => m.prefix)}::text[], ${mails.map((m) => m.requires)}::text[],
                        ${mails.map((m) => m.subject)}::text[], ${mails.map((m) => m.text)}::text[])
                   AS n(prefix, requires, subject, body)
            CROSS JOIN unnest(${addresses}::text[]) AS c(address)
            CROSS JOIN LATERAL (SELECT encode(sha256(convert_to(lower(c.address), 'UTF8')), 'hex') AS hash) h
          ) k
          WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.idempotency_key = k.key)
            AND (k.required IS NULL OR EXISTS (SELECT 1 FROM outbox o WHERE o.idempotency_key = k.required))
          ON CONFLICT (idempotency_key) DO NOTHING
          RETURNING id`.pipe(Effect.orDie)
        if (rows.length > 0) yield* Effect.logInfo("pause notices queued").pipe(Effect.annotateLogs({ district: district.id, notices: rows.length }))
        return rows.length
      })

    /**
     * Queues every notice due now, for every district with contacts; returns how many rows
     * were queued (0 when another replica queued them first). A district that fails is
     * logged and skipped; the others go on.
     */
    const sendDue = Effect.fn("PauseNotices.sendDue")(function*() {
      const now = yield* Clock.currentTimeMillis
      let queued = 0
      for (const district of yield* store.listDistricts()) {
        queued += yield* queueFor(district, now).pipe(
          Effect.catchAllCause((cause) =>
            Effect.as(
              Effect.logError("could not queue pause notices").pipe(Effect.annotateLogs({ district: district.id, error: failureTag(cause) })),
              0
            )
          )
        )
      }
      yield* Effect.annotateCurrentSpan({ queued })
      return queued
    })

    return { sendDue } as const
  }),
  dependencies: [Pauses.Default, RosterStore.Default]
}) {}
