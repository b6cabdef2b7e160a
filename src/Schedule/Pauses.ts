import { SqlClient } from "@effect/sql"
import { Array as Arr, Clock, Effect, Option, Order, Schema } from "effect"
import type { District } from "../Domain/District.ts"
import { RosterStore } from "../Store/RosterStore.ts"
import type { Calendar } from "../Domain/CalendarRules.ts"
import type { LocalDate } from "../Domain/LocalDates.ts"
import { localDateAt, startOfLocalDay } from "./Calendar.ts"
import { DistrictCalendars } from "./DistrictCalendars.ts"
import type { ActivePause, AdHocPause, PauseSpan } from "./PauseSpans.ts"
import { addDays, adHocPauseSpan, adHocSpan, calendarSpans, dayAfter, instant, isCancelled, pauseChainAt, SpanOrder } from "./PauseSpans.ts"

/**
 * Every pause of a district, in one place: the holiday windows of its calendar
 * (src/Schedule/Calendar.ts) and the **ad-hoc pauses** of `rosterd pause` (the `pauses`
 * table, migrations/0005_schedule.ts), its own and those for every district (`--all`).
 *
 * An ad-hoc pause is whole local days, `from` … `until` inclusive, read in each district's
 * own zone (so a pause `--all` begins at each district's local midnight). `rosterd resume`
 * ends it early (`ended_at`): it is then over at that instant, and one ended before it
 * began (a cancelled pause) is not a pause at all. Rows are kept as history.
 *
 * Pauses that overlap or follow one another without a gap form a **chain**; syncing starts
 * again only when the whole chain is over (`activeAt(...).endsAt`).
 *
 * An invalid calendar (a broken calendars.yaml) is logged and skipped: the district's
 * ad-hoc pauses still apply, as an operator who paused a district expects.
 *
 * "Now" is the Effect `Clock`, so `TestClock` drives it in tests.
 */

export interface NewPause {
  /** `undefined`: every district. */
  readonly district?: string | undefined
  readonly from: LocalDate
  readonly until: LocalDate
  readonly reason?: string | undefined
  readonly by: string
}

export interface ResumeResult {
  /** What was ended; `started: false` means it was only scheduled, so it is cancelled. */
  readonly ended: ReadonlyArray<AdHocPause & { readonly started: boolean }>
  /** One district: the pause still in effect now (an `--all` pause or a calendar window). */
  readonly stillPaused: Option.Option<ActivePause>
  /** One district: `--all` pauses scheduled later; they still apply (`rosterd resume --all` ends them). */
  readonly laterForAll: ReadonlyArray<PauseSpan>
}

export class InvalidPause extends Schema.TaggedError<InvalidPause>()("InvalidPause", { message: Schema.String }) {}

interface PauseRow {
  readonly id: number
  readonly districtId: string | null
  readonly fromDate: string
  readonly untilDate: string
  readonly reason: string | null
  readonly createdBy: string
  readonly createdAt: Date
  readonly endedAt: Date | null
  readonly endedBy: string | null
}

const earliest = (dates: ReadonlyArray<LocalDate>) => dates.reduce((a, b) => (b < a ? b : a))
const latest = (dates: ReadonlyArray<LocalDate>) => dates.reduce((a, b) => (b > a ? b : a))

const toAdHoc = (row: PauseRow): AdHocPause => ({
  id: row.id,
  districtId: row.districtId,
  from: row.fromDate as LocalDate,
  until: row.untilDate as LocalDate,
  reason: row.reason,
  createdBy: row.createdBy,
  createdAt: row.createdAt,
  endedAt: row.endedAt,
  endedBy: row.endedBy
})

const COLUMNS = "id, district_id, from_date, until_date, reason, created_by, created_at, ended_at, ended_by"

export class Pauses extends Effect.Service<Pauses>()("rosterd/Pauses", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* RosterStore
    const calendars = yield* DistrictCalendars

    const calendarOf = (district: District) =>
      calendars.of(district).pipe(
        Effect.map(Option.some),
        Effect.catchAll((error) =>
          Effect.as(
            Effect.logWarning("the district's calendar is invalid: only its ad-hoc pauses apply").pipe(
              Effect.annotateLogs({ district: district.id, error: error.message })
            ),
            Option.none<Calendar>()
          )
        )
      )

    /** Ad-hoc pauses of these districts and for every district, not over before `notBefore` (local date). */
    const rowsFor = (districtIds: ReadonlyArray<string>, notBefore: LocalDate, notAfter?: LocalDate) =>
      sql<PauseRow>`SELECT ${sql.unsafe(COLUMNS)} FROM pauses
        WHERE (district_id IS NULL OR district_id = ANY (${districtIds}::text[])) AND until_date >= ${notBefore}::date
          AND ${notAfter === undefined ? sql`true` : sql`from_date <= ${notAfter}::date`}
        ORDER BY id`.pipe(Effect.map(Arr.map(toAdHoc)), Effect.orDie)

    const adHocSpans = (district: District, pauses: ReadonlyArray<AdHocPause>) =>
      pauses.filter((p) => p.districtId === null || p.districtId === district.id).flatMap((p) => Option.toArray(adHocSpan(p, district.timezone)))

    /** Local date now: in the district's zone, or the earliest across every district's zone (UTC when there is none). */
    const todayFor = (districts: ReadonlyArray<District>, now: number) =>
      districts.length === 0 ? localDateAt(new Date(now), "UTC") : earliest(districts.map((d) => localDateAt(new Date(now), d.timezone)))

    const windowsFor = Effect.fn("Pauses.windowsFor")(function*(district: District, from: LocalDate, to: LocalDate) {
      if (from > to) return []
      const zone = district.timezone
      const calendar = yield* calendarOf(district)
      const rows = yield* rowsFor([district.id], from, to)
      const rangeStart = instant(startOfLocalDay(from, zone)).getTime()
      const rangeEnd = dayAfter(to, zone).getTime()
      const spans = [
        ...Option.match(calendar, { onNone: () => [], onSome: (c) => calendarSpans(c, zone, from, to) }),
        ...adHocSpans(district, rows).filter((s) => s.startsAt.getTime() < rangeEnd && s.endsAt.getTime() > rangeStart)
      ]
      return Arr.sort(spans, SpanOrder)
    })

    /** The chain in effect at `at`, from ad-hoc rows already read; the calendar is evaluated far enough ahead. */
    const activeFrom = (district: District, calendar: Option.Option<Calendar>, rows: ReadonlyArray<AdHocPause>, at: Date): Option.Option<ActivePause> => {
      const zone = district.timezone
      const today = localDateAt(at, zone)
      const adHoc = adHocSpans(district, rows)
      // A chain rarely reaches past the first horizon; when it does, look four times further (up to ~40 years).
      for (let horizon = 62;; horizon *= 4) {
        const until = addDays(today, horizon)
        const spans = [...adHoc, ...Option.match(calendar, { onNone: () => [], onSome: (c) => calendarSpans(c, zone, today, until) })]
        const chain = pauseChainAt(spans, at.getTime())
        if (Option.isNone(chain)) return Option.none()
        if (chain.value.endsAt >= instant(startOfLocalDay(until, zone)).getTime() && horizon < 15_000) continue
        const { current, endsAt } = chain.value
        return Option.some({
          key: current.key,
          name: current.name,
          ...(current.reason === undefined ? {} : { reason: current.reason }),
          source: current.source,
          ...(current.id === undefined ? {} : { id: current.id }),
          endsAt: new Date(endsAt),
          lastDay: localDateAt(new Date(endsAt - 1), zone)
        })
      }
    }

    const activeAt = Effect.fn("Pauses.activeAt")(function*(district: District, at: Date) {
      const calendar = yield* calendarOf(district)
      const rows = yield* rowsFor([district.id], localDateAt(at, district.timezone))
      return activeFrom(district, calendar, rows, at)
    })

    /** `activeAt` for many districts with one query (the daemon's poll). */
    const activeAtEach = Effect.fn("Pauses.activeAtEach")(function*(districts: ReadonlyArray<District>, at: Date) {
      const rows = yield* rowsFor(districts.map((d) => d.id), todayFor(districts, at.getTime()))
      const out = new Map<string, Option.Option<ActivePause>>()
      for (const district of districts) out.set(district.id, activeFrom(district, yield* calendarOf(district), rows, at))
      return out as ReadonlyMap<string, Option.Option<ActivePause>>
    })

    const todayOf = (district: District | undefined) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        district === undefined ? Effect.map(store.listDistricts(), (all) => todayFor(all, now)) : Effect.succeed(todayFor([district], now)))

    /** Today's local date in the district's zone; without one, the earliest today across the districts' zones. */
    const today = Effect.fn("Pauses.today")(function*(districtId?: string) {
      return yield* todayOf(districtId === undefined ? undefined : yield* store.getDistrict(districtId))
    })

    const add = Effect.fn("Pauses.add")(function*(input: NewPause) {
      const district = input.district === undefined ? undefined : yield* store.getDistrict(input.district)
      const now = yield* Clock.currentTimeMillis
      const today = todayFor(district === undefined ? yield* store.listDistricts() : [district], now)
      // Checked first: with --from left to its default (today), a past --until is the mistake.
      if (input.until < today) {
        const where = district === undefined ? "the earliest of the districts' zones" : district.timezone
        return yield* new InvalidPause({ message: `the pause's last day ${input.until} is in the past (today is ${today} in ${where})` })
      }
      if (input.from > input.until) {
        return yield* new InvalidPause({ message: `the pause's first day ${input.from} is after its last day ${input.until}` })
      }
      const reason = input.reason?.trim() || null
      const [row] = yield* sql<{ readonly id: number }>`
        INSERT INTO pauses (district_id, from_date, until_date, reason, created_by)
        VALUES (${district?.id ?? null}, ${input.from}::date, ${input.until}::date, ${reason}, ${input.by})
        RETURNING id`
      yield* Effect.logInfo("pause added").pipe(Effect.annotateLogs({ district: district?.id ?? "all", pauseId: row!.id }))
      return row!.id
    }, Effect.catchTag("SqlError", Effect.die))

    const resume = Effect.fn("Pauses.resume")(function*(input: { readonly district?: string | undefined; readonly by: string }) {
      const nowMs = yield* Clock.currentTimeMillis
      const now = new Date(nowMs)
      if (input.district !== undefined) {
        const district = yield* store.getDistrict(input.district)
        const today = localDateAt(now, district.timezone)
        // until_date >= today: in effect now, or scheduled later (which is cancelled).
        const rows = yield* sql<PauseRow>`
          UPDATE pauses SET ended_at = ${now}, ended_by = ${input.by}
          WHERE district_id = ${district.id} AND ended_at IS NULL AND until_date >= ${today}::date
          RETURNING ${sql.unsafe(COLUMNS)}`
        const ended = Arr.sort(rows.map(toAdHoc), Order.mapInput(Order.number, (p: AdHocPause) => p.id))
        const stillPaused = yield* activeAt(district, now)
        const laterForAll = (yield* windowsFor(district, today, addDays(today, 400)))
          .filter((s) => s.allDistricts === true && s.startsAt.getTime() > nowMs)
        yield* Effect.logInfo("pauses resumed").pipe(Effect.annotateLogs({ district: district.id, ended: ended.length }))
        const result: ResumeResult = { ended: ended.map((p) => ({ ...p, started: p.from <= today })), stillPaused, laterForAll }
        return result
      }
      const districts = yield* store.listDistricts()
      const todays = districts.map((d) => localDateAt(now, d.timezone))
      const fallback = todayFor(districts, nowMs)
      // Each district's own pauses by its own today; pauses for every district (or of a
      // removed district) by the earliest today, so one still under way anywhere is ended.
      const rows = yield* sql<PauseRow>`
        UPDATE pauses p SET ended_at = ${now}, ended_by = ${input.by}
        WHERE p.ended_at IS NULL AND p.until_date >= coalesce(
          (SELECT t.today FROM unnest(${districts.map((d) => d.id)}::text[], ${todays}::date[]) AS t(id, today) WHERE t.id = p.district_id),
          ${fallback}::date)
        RETURNING ${sql.unsafe(COLUMNS)}`
      const latestToday = todays.length === 0 ? fallback : latest(todays)
      const ended = Arr.sort(rows.map(toAdHoc), Order.mapInput(Order.number, (p: AdHocPause) => p.id)).map((p) => {
        const own = districts.findIndex((d) => d.id === p.districtId)
        return { ...p, started: p.from <= (own >= 0 ? todays[own]! : latestToday) }
      })
      yield* Effect.logInfo("pauses resumed").pipe(Effect.annotateLogs({ district: "all", ended: ended.length }))
      const result: ResumeResult = { ended, stillPaused: Option.none(), laterForAll: [] }
      return result
    }, Effect.catchTag("SqlError", Effect.die))

    /**
     * Ad-hoc pauses, by first day. With a district: its own and those for every district.
     * Without `includeEnded`: only those not ended and not over (by today's local date).
     */
    const list = Effect.fn("Pauses.list")(function*(options: { readonly district?: string | undefined; readonly includeEnded?: boolean } = {}) {
      const district = options.district === undefined ? undefined : yield* store.getDistrict(options.district)
      const current = options.includeEnded !== true
      const today = current ? yield* todayOf(district) : undefined
      const rows = yield* sql<PauseRow>`SELECT ${sql.unsafe(COLUMNS)} FROM pauses
        WHERE ${district === undefined ? sql`true` : sql`(district_id IS NULL OR district_id = ${district.id})`}
          AND ${today === undefined ? sql`true` : sql`ended_at IS NULL AND until_date >= ${today}::date`}
        ORDER BY from_date, id`
      return rows.map(toAdHoc)
    }, Effect.catchTag("SqlError", Effect.die))

    /**
     * The district's ad-hoc pauses (its own and `--all` ones) cancelled since `since`: ended
     * before they began. As spans, so a notice can name them.
     */
    const cancelledSince = Effect.fn("Pauses.cancelledSince")(function*(district: District, since: Date) {
      const rows = yield* sql<PauseRow>`SELECT ${sql.unsafe(COLUMNS)} FROM pauses
        WHERE (district_id IS NULL OR district_id = ${district.id}) AND ended_at >= ${since}`.pipe(Effect.orDie)
      return rows.map((row) => adHocPauseSpan(toAdHoc(row), district.timezone)).filter(isCancelled)
    })

    return { windowsFor, activeAt, activeAtEach, cancelledSince, today, add, resume, list } as const
  }),
  dependencies: [RosterStore.Default, DistrictCalendars.Default]
}) {}
