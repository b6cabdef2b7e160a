import type { LocalDate } from "../Domain/LocalDates.ts"
import type { PauseSpan } from "./PauseSpans.ts"

/**
 * The pause notices to a district's roster contacts (src/Schedule/PauseNotices.ts): plain
 * text, written for the person who keeps the district's roster, not for us. They say which
 * pause, its local dates and zone, that nothing from the roster is applied meanwhile, that
 * changes made meanwhile are applied by a full catch-up sync right after, and, once it is
 * over, that syncing has resumed. No personal data beyond the district's own name.
 */

/** `cancelled`: an ad-hoc pause already announced was called off before it began. */
export type NoticeKind = "ahead" | "ended" | "cancelled"

export interface NoticeInput {
  readonly kind: NoticeKind
  readonly platform: string
  readonly districtName: string
  readonly zone: string
  readonly pause: PauseSpan
  /** When syncing starts again: the end of the pause, or of the pauses following it without a gap. */
  readonly resumesAt: Date
  /** The pause had begun when the notice was written (announced late, or a district added meanwhile). */
  readonly underWay: boolean
}

export interface NoticeMail {
  readonly subject: string
  readonly text: string
}

/** `Wednesday, November 25, 2026`: a local date read as itself, never shifted by a zone. */
const longDate = (date: LocalDate) =>
  new Intl.DateTimeFormat("en-US", { weekday: "long", year: "numeric", month: "long", day: "numeric", timeZone: "UTC" })
    .format(new Date(`${date}T12:00:00Z`))

/** `Monday, November 30, 2026 at 12:00 AM` in the district's zone. */
const localTime = (at: Date, zone: string) =>
  new Intl.DateTimeFormat("en-US", {
    weekday: "long",
    year: "numeric",
    month: "long",
    day: "numeric",
    hour: "numeric",
    minute: "2-digit",
    timeZone: zone
  }).format(at).replace(/, (\d{1,2}:\d{2})/, " at $1")

/** `the holiday pause "thanksgiving" (Thanksgiving break)` / `pause-12 (data migration)`. */
const which = (pause: PauseSpan) => {
  const name = pause.source === "calendar" ? `the holiday pause "${pause.name}"` : `the scheduled pause ${pause.name}`
  return pause.reason === undefined ? name : `${name} (${pause.reason})`
}

const dates = (pause: PauseSpan) =>
  pause.from === pause.to ? `on ${longDate(pause.from)}` : `from ${longDate(pause.from)} through ${longDate(pause.to)}`

export const pauseNoticeMail = (input: NoticeInput): NoticeMail => {
  const { districtName, pause, platform, zone } = input
  const span = pause.from === pause.to ? pause.from : `${pause.from} – ${pause.to}`
  const chained = input.resumesAt.getTime() > pause.endsAt.getTime()
  if (input.kind === "ahead") {
    return {
      subject: `Roster sync paused for ${districtName}: ${span}${pause.reason === undefined ? "" : ` (${pause.reason})`}`,
      text: [
        `Hello,`,
        ``,
        `Roster syncing for ${districtName} ${input.underWay ? "is paused" : "will pause"} for ${which(pause)}:`,
        `${dates(pause)} (local dates, time zone ${zone}).`,
        ``,
        `During the pause ${platform} applies no changes from your district's roster: no new or removed`,
        `students, teachers or classes, no enrollment changes.`,
        ``,
        `You can keep working in your student information system as usual. Changes made during the pause`,
        `are applied right after it ends, by a full catch-up sync starting ${localTime(input.resumesAt, zone)}`,
        `(${zone}).${chained ? " Another pause follows this one directly, so syncing resumes only then." : ""}`,
        ``,
        `You receive this message as a roster contact of ${districtName}.`
      ].join("\n")
    }
  }
  const what = which(pause)
  if (input.kind === "cancelled") {
    return {
      subject: `Roster sync pause cancelled for ${districtName}: ${span}`,
      text: [
        `Hello,`,
        ``,
        `${what[0]!.toUpperCase()}${what.slice(1)}, announced for ${dates(pause)} (local dates, time zone ${zone}),`,
        `has been cancelled: it will not take place.`,
        ``,
        `Roster syncing for ${districtName} goes on as usual: ${platform} keeps following your roster on its`,
        `usual schedule, through those dates too.`,
        ``,
        `You receive this message as a roster contact of ${districtName}.`
      ].join("\n")
    }
  }
  const early = pause.endedAt !== undefined
  return {
    subject: `Roster sync resumed for ${districtName}`,
    text: [
      `Hello,`,
      ``,
      `${what[0]!.toUpperCase()}${what.slice(1)}, ${dates(pause)} (local dates, time zone ${zone}),`,
      `${early ? `was ended early, ${localTime(pause.endsAt, zone)}` : "is over"}.`,
      ``,
      `Syncing has resumed: a full catch-up sync applies the changes made in your roster during the pause,`,
      `and ${platform} then follows your roster on its usual schedule again.`,
      ``,
      `You receive this message as a roster contact of ${districtName}.`
    ].join("\n")
  }
}
