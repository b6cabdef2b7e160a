import { SqlClient } from "@effect/sql"
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Logger, TestClock } from "effect"
import { createHash } from "node:crypto"
import { ConfigFile } from "../../src/Config/ConfigFile.ts"
import type { DistrictId } from "../../src/Domain/District.ts"
import type { LocalDate } from "../../src/Domain/LocalDates.ts"
import { PauseNotices } from "../../src/Schedule/PauseNotices.ts"
import { Pauses } from "../../src/Schedule/Pauses.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { TestDatabase } from "../support/Database.ts"

/**
 * Pause notices into the real outbox: when the "ahead" notice is due (daysAhead local days
 * before, in the district's zone), that each notice is queued once per pause, district and
 * address (again, and by two replicas at once), the "ended" notice, no notices without contacts, a
 * district added mid-pause, and a chain of pauses. Thanksgiving 2026 is November 25–29.
 */

const TestLayer = Layer.mergeAll(PauseNotices.Default, Pauses.Default, RosterStore.Default).pipe(
  Layer.provide(ConfigFile.fromDocument({})),
  Layer.provideMerge(TestDatabase)
)

const CONTACTS = ["Roster.Lead@Chi.example", "it@chi.example"]
const at = (iso: string) => TestClock.setTime(Date.parse(iso))
const d = (s: string) => s as LocalDate
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex")

const reset = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.all([sql`DELETE FROM outbox`, sql`DELETE FROM pauses`, sql`UPDATE districts SET removed_at = now() WHERE removed_at IS NULL`], { discard: true }))

const district = (id: string, contacts: ReadonlyArray<string>, timezone = "America/Chicago") =>
  Effect.flatMap(RosterStore, (store) =>
    store.addDistrict({
      id: id as DistrictId,
      name: `${id.toUpperCase()} Public Schools`,
      provider: "oneroster-csv",
      timezone,
      settings: { path: "/nowhere" },
      rules: { notices: { contacts, daysAhead: 7 } }
    }))

const sendDue = Effect.flatMap(PauseNotices, (notices) => notices.sendDue())

interface OutboxRow {
  readonly districtId: string
  readonly idempotencyKey: string
  readonly kind: string
  readonly recipient: string
  readonly subject: string
  readonly bodyText: string
  readonly bodyHtml: string | null
}

const outbox = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<OutboxRow>`SELECT district_id, idempotency_key, kind, recipient, subject, body_text, body_html FROM outbox ORDER BY idempotency_key`)

/** The notice kinds in the outbox, one per pause (the addresses collapsed). */
const noticesSent = Effect.map(outbox, (rows) => [...new Set(rows.map((r) => r.idempotencyKey.split(":").slice(1, -1).join(":")))])

const realSleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/**
 * Two replicas queueing the same notices at once, forced to overlap: the first inserts in
 * a transaction it keeps open until the second is blocked on the outbox's unique key; then
 * it commits, and the second must settle the conflict (queue nothing) rather than fail.
 */
const racingReplicas = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const inserted = yield* Deferred.make<number>()
  const commit = yield* Deferred.make<void>()
  const first = yield* sql.withTransaction(
    sendDue.pipe(Effect.tap((n) => Deferred.succeed(inserted, n)), Effect.zipLeft(Deferred.await(commit)))
  ).pipe(Effect.fork)
  yield* Deferred.await(inserted)
  const errors: Array<string> = []
  const second = yield* sendDue.pipe(
    Effect.provide(Logger.replace(Logger.defaultLogger, Logger.map(Logger.logfmtLogger, (l) => void errors.push(l)))),
    Effect.fork
  )
  const blocked = Effect.map(
    sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    (rows) => rows[0]!.n > 0
  )
  for (let tries = 0; !(yield* blocked); tries++) {
    if (tries > 200) return yield* Effect.dieMessage("the second replica never waited for the first")
    yield* realSleep(25)
  }
  yield* Deferred.succeed(commit, undefined)
  const result = [yield* Fiber.join(first), yield* Fiber.join(second)] as const
  assert.isFalse(errors.some((l) => l.includes("could not queue")), errors.join("\n"))
  return result
})

layer(TestLayer, { timeout: "60 seconds" })("PauseNotices", (it) => {
  it.effect("the ahead notice is due daysAhead days before, in the district's zone, once per address, even from two replicas at once", () =>
    Effect.gen(function*() {
      yield* reset
      yield* district("chi", CONTACTS)
      yield* at("2026-11-17T12:00:00Z") // 8 days before
      assert.strictEqual(yield* sendDue, 0)
      yield* at("2026-11-18T05:59:00Z") // November 18 in UTC, still the 17th in Chicago
      assert.strictEqual(yield* sendDue, 0)
      yield* at("2026-11-18T06:00:00Z") // local midnight, 7 days before
      const lines: Array<string> = []
      const queued = yield* sendDue.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.map(Logger.logfmtLogger, (l) => void lines.push(l)))))
      assert.strictEqual(queued, 2)

      const rows = yield* outbox
      const key = (address: string) => `pause-notice:chi:calendar:thanksgiving:2026-11-25:ahead:${sha256(address.toLowerCase())}`
      assert.deepStrictEqual(rows.map((r) => [r.idempotencyKey, r.recipient, r.kind, r.districtId]).sort(), [
        [key(CONTACTS[0]!), CONTACTS[0], "pause-notice", "chi"],
        [key(CONTACTS[1]!), CONTACTS[1], "pause-notice", "chi"]
      ].sort())
      const mail = rows[0]!
      assert.strictEqual(mail.subject, "Roster sync paused for CHI Public Schools: 2026-11-25 – 2026-11-29 (Thanksgiving break)")
      assert.include(mail.bodyText, "will pause for the holiday pause \"thanksgiving\" (Thanksgiving break)")
      assert.include(mail.bodyText, "from Wednesday, November 25, 2026 through Sunday, November 29, 2026 (local dates, time zone America/Chicago)")
      assert.include(mail.bodyText, "applies no changes")
      assert.include(mail.bodyText, "full catch-up sync starting Monday, November 30, 2026 at 12:00 AM")
      assert.isNull(mail.bodyHtml)
      // Logs name the district and a count, never an address.
      assert.isTrue(lines.some((l) => l.includes("pause notices queued") && l.includes("district=chi") && l.includes("notices=2")))
      assert.isFalse(lines.some((l) => l.includes("@")))

      // Not again: later, nor from two replicas at once.
      yield* at("2026-11-20T12:00:00Z")
      assert.strictEqual(yield* sendDue, 0)
      const pauses = yield* Pauses
      yield* pauses.add({ district: "chi", from: d("2026-11-23"), until: d("2026-11-23"), reason: "SIS upgrade", by: "test" })
      const [a, b] = yield* racingReplicas
      assert.deepStrictEqual([a, b, yield* Effect.map(outbox, (rows) => rows.length)], [2, 0, 4])
      assert.strictEqual(yield* sendDue, 0)
    }))

  it.effect("the ended notice goes out once after the end, not days later; none without contacts", () =>
    Effect.gen(function*() {
      yield* reset
      yield* district("chi", CONTACTS)
      yield* district("quiet", [])
      yield* at("2026-11-30T06:00:00Z") // Thanksgiving is over in Chicago
      assert.strictEqual(yield* sendDue, 2)
      assert.deepStrictEqual(yield* noticesSent, ["chi:calendar:thanksgiving:2026-11-25:ended"])
      const mail = (yield* outbox)[0]!
      assert.strictEqual(mail.subject, "Roster sync resumed for CHI Public Schools")
      assert.include(mail.bodyText, "The holiday pause \"thanksgiving\" (Thanksgiving break), from Wednesday, November 25, 2026")
      assert.include(mail.bodyText, "is over.")
      assert.include(mail.bodyText, "Syncing has resumed")
      yield* at("2026-12-01T12:00:00Z")
      assert.strictEqual(yield* sendDue, 0)

      // A district with contacts added four days after the end hears nothing of it.
      yield* district("late", ["ops@late.example"])
      yield* at("2026-12-04T07:00:00Z")
      assert.strictEqual(yield* sendDue, 0)
      assert.deepStrictEqual((yield* outbox).map((r) => r.districtId), ["chi", "chi"])
    }))

  it.effect("a district added mid-pause gets the ahead notice; in a chain only the last pause says syncing resumed", () =>
    Effect.gen(function*() {
      yield* reset
      const pauses = yield* Pauses
      yield* at("2026-11-01T12:00:00Z")
      const sis = yield* pauses.add({ from: d("2026-11-20"), until: d("2026-11-24"), reason: "SIS migration", by: "test" })
      yield* at("2026-11-21T12:00:00Z")
      yield* district("chi", ["lead@chi.example"])
      assert.strictEqual(yield* sendDue, 2) // the pause under way, and Thanksgiving (due from Nov 18)
      const [ahead] = (yield* outbox).filter((r) => r.idempotencyKey.includes(`:pause:${sis}:ahead:`))
      assert.strictEqual(ahead!.subject, "Roster sync paused for CHI Public Schools: 2026-11-20 – 2026-11-24 (SIS migration)")
      assert.include(ahead!.bodyText, "is paused for the scheduled pause pause-")
      // The chain goes on into Thanksgiving: syncing resumes only after it.
      assert.include(ahead!.bodyText, "starting Monday, November 30, 2026 at 12:00 AM")
      assert.include(ahead!.bodyText, "Another pause follows this one directly")

      yield* at("2026-11-25T06:30:00Z") // the ad-hoc pause is over, Thanksgiving has begun: no "ended" yet
      assert.strictEqual(yield* sendDue, 0)
      yield* at("2026-11-30T06:30:00Z")
      assert.strictEqual(yield* sendDue, 1)
      assert.deepStrictEqual(yield* noticesSent, [
        "chi:calendar:thanksgiving:2026-11-25:ahead",
        "chi:calendar:thanksgiving:2026-11-25:ended",
        `chi:pause:${sis}:ahead`
      ])
    }))

  it.effect("a pause resumed early is told as ended then; one cancelled before its notice was due is never told", () =>
    Effect.gen(function*() {
      yield* reset
      const pauses = yield* Pauses
      yield* at("2026-03-01T12:00:00Z")
      yield* district("chi", ["lead@chi.example"])
      const soon = yield* pauses.add({ district: "chi", from: d("2026-03-03"), until: d("2026-03-06"), by: "test" })
      const later = yield* pauses.add({ district: "chi", from: d("2026-04-20"), until: d("2026-04-21"), by: "test" })
      assert.strictEqual(yield* sendDue, 1)
      yield* at("2026-03-04T15:00:00Z")
      yield* pauses.resume({ district: "chi", by: "ops" }) // ends `soon`, cancels `later`
      assert.strictEqual(yield* sendDue, 1)
      const ended = (yield* outbox).find((r) => r.idempotencyKey.includes(`:pause:${soon}:ended:`))!
      assert.include(ended.bodyText, "was ended early, Wednesday, March 4, 2026 at 9:00 AM.")
      yield* at("2026-04-15T12:00:00Z")
      assert.strictEqual(yield* sendDue, 0)
      assert.isFalse((yield* outbox).some((r) => r.idempotencyKey.includes(`:pause:${later}:`)))
    }))

  it.effect("a pause cancelled after its ahead notice: a cancelled notice once, to those told; none for one never announced", () =>
    Effect.gen(function*() {
      yield* reset
      yield* at("2026-03-02T18:00:00Z")
      const pauses = yield* Pauses
      yield* district("can", ["lead@can.example"])
      const announced = yield* pauses.add({ district: "can", from: d("2026-03-06"), until: d("2026-03-06"), reason: "SIS upgrade", by: "test" })
      const farOff = yield* pauses.add({ district: "can", from: d("2026-05-04"), until: d("2026-05-05"), by: "test" })
      assert.strictEqual(yield* sendDue, 1) // the ahead notice of the first only
      // A contact added afterwards was never told: it hears of no cancellation either.
      yield* Effect.flatMap(RosterStore, (store) => store.setRules("can", { notices: { contacts: ["lead@can.example", "new@can.example"], daysAhead: 7 } }))
      yield* at("2026-03-03T18:00:00Z")
      yield* pauses.resume({ district: "can", by: "test" }) // cancels both before they begin
      assert.strictEqual(yield* sendDue, 1)
      assert.strictEqual(yield* sendDue, 0)
      const rows = yield* outbox
      const cancelled = rows.filter((r) => r.idempotencyKey.includes(":cancelled:"))
      assert.deepStrictEqual(cancelled.map((r) => [r.idempotencyKey.split(":").slice(2, 4).join(":"), r.recipient]), [[`pause:${announced}`, "lead@can.example"]])
      assert.strictEqual(cancelled[0]!.subject, "Roster sync pause cancelled for CAN Public Schools: 2026-03-06")
      assert.match(cancelled[0]!.bodyText, /has been cancelled: it will not take place/)
      assert.isFalse(rows.some((r) => r.idempotencyKey.includes(`:pause:${farOff}:`)))
      // Days later, nothing more.
      yield* at("2026-03-08T18:00:00Z")
      assert.strictEqual(yield* sendDue, 0)
    }))
})
