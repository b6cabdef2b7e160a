import { spawn } from "node:child_process"
import * as NodePath from "node:path"
import { createInterface } from "node:readline"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type CleverDistrict, type CleverEvent, type FakeClever, fromOneRosterCsv, type Section, start, type User } from "../support/FakeClever/index.ts"
import { currentSchoolYear } from "../../bench/OneRosterGenerator.ts"
import { generated, smallDistrictTerm, tempDir, writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * Smoke tests of the fake Clever API with plain fetch (no rosterd code): the conversion of
 * a OneRoster CSV set, paging and envelopes, errors, events, faults and the rate limit.
 */

const TOKEN = "district-token"
const auth = { Authorization: `Bearer ${TOKEN}` }

interface Envelope<A> {
  readonly data: ReadonlyArray<{ readonly data: A }>
  readonly links: ReadonlyArray<{ readonly rel: string; readonly uri: string }>
}

const link = (body: Envelope<unknown>, rel: string) => body.links.find((l) => l.rel === rel)?.uri

const folder = tempDir("fake-clever-")
let district: CleverDistrict
let fake: FakeClever

const get = (uri: string, headers: Record<string, string> = auth) => fetch(fake.baseUrl + uri, { headers })
const getJson = async <A>(uri: string) => {
  const response = await get(uri)
  expect(response.status).toBe(200)
  return (await response.json()) as Envelope<A>
}

beforeAll(async () => {
  writeSmallDistrict(folder.dir)
  district = await fromOneRosterCsv(folder.dir)
  fake = await start(district, { token: TOKEN, forbiddenToken: "revoked-token" })
})
afterAll(async () => {
  await fake.close()
  folder.remove()
})
afterEach(() => fake.faults.clear())

describe("conversion of a OneRoster CSV set", () => {
  it("gives one district, its school, term, course, sections and users", () => {
    expect(district.districts.length).toBe(1)
    expect(district.district.name).toBe("Small District")
    expect(district.schools.all().map((s) => s.name)).toEqual(["Small School"])
    expect(district.schools.first()!.district).toBe(district.district.id)
    const term = smallDistrictTerm()
    expect(district.terms.all().map((t) => [t.name, t.start_date, t.end_date])).toEqual([[term.title, term.startDate, term.endDate]])
    expect(district.courses.all().map((c) => c.name)).toEqual(["Math 7"])
    expect(district.sections.length).toBe(2)
    expect(district.users.length).toBe(5)
  })

  it("maps teachers and students of each class, ids relating both ways", () => {
    const id = (sourcedId: string) => district.ids.require("users", sourcedId)
    const section = (sourcedId: string) => district.sections.get(district.ids.require("classes", sourcedId))!
    expect(section("cls-1")).toMatchObject<Partial<Section>>({
      teacher: id("t-1"),
      teachers: [id("t-1")],
      students: [id("s-1"), id("s-2")],
      name: "Math 7 - P1",
      sis_id: "cls-1",
      school: district.ids.require("orgs", "org-s1"),
      course: district.ids.require("courses", "crs-1"),
      term_id: district.ids.require("academicSessions", "term-1")
    })
    expect(section("cls-2")).toMatchObject({ teacher: id("t-2"), teachers: [id("t-2")], students: [id("s-3")] })
    expect(district.ids.source(id("s-1"))).toEqual({ file: "users", sourcedId: "s-1" })
    for (const record of [...district.users.all(), ...district.sections.all()]) expect(record.id).toMatch(/^[0-9a-f]{24}$/)
  })

  it("converts a generated district: every user, class and enrollment, co-teachers and staff", async () => {
    const dir = tempDir("fake-clever-gen-")
    try {
      const counts = generated(dir.dir, 300)
      const big = await fromOneRosterCsv(dir.dir)
      expect([big.schools.length, big.courses.length, big.sections.length, big.users.length]).toEqual([counts.schools, counts.courses, counts.classes, counts.users])
      // Generated classes are all on the school year (see bench/OneRosterGenerator.ts).
      const year = currentSchoolYear()
      expect(big.terms.all().map((t) => t.name)).toContain(`${year - 1}-${year} School Year`)
      expect(new Set(big.sections.all().map((s) => big.terms.get(s.term_id!)?.name))).toEqual(new Set([`${year - 1}-${year} School Year`]))
      const memberships = big.sections.all().reduce((n, s) => n + s.students.length + s.teachers.length, 0)
      expect(memberships).toBe(counts.enrollments)
      const coTaught = big.sections.all().filter((s) => s.teachers.length === 2)
      expect(coTaught.length).toBeGreaterThan(0)
      for (const s of coTaught) expect(s.teacher).toBe(s.teachers[0])
      const byRole = (role: "student" | "teacher" | "staff") => big.users.all().filter((u) => u.roles[role] !== undefined).length
      expect([byRole("student"), byRole("staff")]).toEqual([counts.students, counts.schools])
      expect(big.users.all().map((u) => u.id)).toEqual(big.users.all().map((u) => u.id).sort())
      expect(big.users.all().every((u) => u.roles.student === undefined || /^\d{1,2}\/\d{1,2}\/\d{4}$/.test(u.roles.student.dob ?? ""))).toBe(true)
    } finally {
      dir.remove()
    }
  })

  it("writes student dob as M/D/YYYY and grades in Clever's form", () => {
    const sam = district.users.get(district.ids.require("users", "s-1"))!
    expect(sam.roles.student).toMatchObject({ dob: "3/1/2014", grade: "7", sis_id: "s-1", school: district.ids.require("orgs", "org-s1") })
    expect(sam.name).toEqual({ first: "Sam", last: "A" })
    expect(district.users.get(district.ids.require("users", "t-1"))!.roles).toEqual({
      teacher: expect.objectContaining({ sis_id: "t-1", schools: [district.ids.require("orgs", "org-s1")] })
    })
  })
})

describe("lists", () => {
  it("pages through users with limit=2: every user once, in id order, no next on the last page", async () => {
    const seen: Array<string> = []
    let uri: string | undefined = "/v3.0/users?limit=2"
    let pages = 0
    let last: Envelope<User> | undefined
    while (uri !== undefined) {
      last = await getJson<User>(uri)
      if (pages > 0) expect(link(last, "prev")).toBeDefined()
      seen.push(...last.data.map((item) => item.data.id))
      uri = link(last, "next")
      if (uri !== undefined) expect(uri).toMatch(/^\/v3\.0\/users\?limit=2&starting_after=[0-9a-f]{24}$/)
      pages++
    }
    expect(pages).toBe(3)
    expect(last!.data.length).toBe(1)
    expect(seen).toEqual([...seen].sort())
    expect(seen).toEqual(district.users.all().map((u) => u.id))
  })

  it("has Clever's envelope: data of {data: record}, links with self", async () => {
    const body = await getJson<User>("/v3.0/users?role=student")
    expect(body.data.length).toBe(3)
    for (const item of body.data) expect(Object.keys(item)).toEqual(["data"])
    expect(body.links).toEqual([{ rel: "self", uri: "/v3.0/users?role=student" }])
    const first = await getJson<User>("/v3.0/users?role=teacher&limit=1")
    expect(link(first, "next")).toBe(`/v3.0/users?limit=1&role=teacher&starting_after=${first.data[0]!.data.id}`)
    const one = (await (await get(`/v3.0/sections/${district.sections.first()!.id}`)).json()) as { data: Section; links: unknown }
    expect(one.data).toEqual(district.sections.first())
    expect(one.links).toEqual([{ rel: "self", uri: `/v3.0/sections/${district.sections.first()!.id}` }])
    expect((await getJson("/v3.0/districts")).data).toEqual([{ data: district.district }])
  })

  it("answers 401, 403, 413, 404 and 400 with {message}", async () => {
    const missing = await get("/v3.0/users", {})
    expect([missing.status, await missing.json()]).toEqual([401, { message: "Invalid token" }])
    expect((await get("/v3.0/users", { Authorization: "Bearer nope" })).status).toBe(401)
    expect((await get("/v3.0/users", { Authorization: "Bearer revoked-token" })).status).toBe(403)
    const tooBig = await get("/v3.0/users?limit=10001")
    expect(tooBig.status).toBe(413)
    expect(await tooBig.json()).toHaveProperty("message")
    expect((await get("/v3.0/users?limit=10000")).status).toBe(200)
    const gone = await get("/v3.0/users/0123456789abcdef01234567")
    expect([gone.status, Object.keys(await gone.json())]).toEqual([404, ["message"]])
    expect((await get("/v3.0/users?limit=0")).status).toBe(400)
    expect((await get("/v3.0/users?role=principal")).status).toBe(400)
    expect((await get(`/v3.0/schools/${district.schools.first()!.id}/users`)).status).toBe(501)
  })

  it("never logs the token", () => {
    expect(fake.requests.length).toBeGreaterThan(0)
    expect(JSON.stringify(fake.requests)).not.toContain(TOKEN)
    expect(fake.requests.some((r) => r.auth) && fake.requests.some((r) => !r.auth)).toBe(true)
  })
})

describe("events", () => {
  it("bootstraps with ending_before=last&limit=1, then lists updates with previous_attributes", async () => {
    const empty = await getJson<CleverEvent>("/v3.0/events?ending_before=last&limit=1")
    expect(empty.data).toEqual([])
    const sam = district.ids.require("users", "s-1")
    district.updateUser(sam, { roles: { student: { grade: "8" } } })
    const created = district.createUser({ name: { first: "New", last: "Kid" }, roles: { student: { grade: "7" } } })
    expect(created.id > district.users.all().filter((u) => u.id !== created.id).at(-1)!.id).toBe(true)

    const newest = await getJson<CleverEvent>("/v3.0/events?ending_before=last&limit=1")
    expect(newest.data.map((e) => e.data.type)).toEqual(["users.created"])
    const all = await getJson<CleverEvent>("/v3.0/events")
    const [updated, added] = all.data.map((item) => item.data)
    expect(updated).toMatchObject({ type: "users.updated", data: { object: { id: sam, roles: { student: { grade: "8", dob: "3/1/2014" } } } } })
    expect(updated!.data.previous_attributes).toEqual({ roles: { student: expect.objectContaining({ grade: "7" }) } })
    expect(updated!.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(updated!.id < added!.id).toBe(true)

    const after = await getJson<CleverEvent>(`/v3.0/events?starting_after=${updated!.id}`)
    expect(after.data.map((e) => e.data.id)).toEqual([added!.id])
    const typed = await getJson<CleverEvent>("/v3.0/events?record_type=sections")
    expect(typed.data).toEqual([])
  })

  it("answers 404 for an unknown cursor and for one older than the window", async () => {
    expect((await get("/v3.0/events?starting_after=0123456789abcdef01234567")).status).toBe(404)
    const cursor = district.latestEventId()!
    expect((await get(`/v3.0/events?starting_after=${cursor}`)).status).toBe(200)
    district.clock.advance(31 * 24 * 3600 * 1000)
    try {
      const aged = await get(`/v3.0/events?starting_after=${cursor}`)
      expect(aged.status).toBe(404)
      expect(await aged.json()).toHaveProperty("message")
      expect((await getJson("/v3.0/events?ending_before=last&limit=1")).data).toEqual([])
    } finally {
      district.clock.unfreeze()
    }
  })

  it("can put previous_attributes beside data, and logs deletes with the last snapshot", async () => {
    const other = await fromOneRosterCsv(folder.dir, { previousAttributes: "beside" })
    const section = other.sections.first()!
    const { previous_attributes } = other.updateSection(section.id, { students: [], name: "Renamed" })
    expect(previous_attributes).toEqual({ students: section.students, name: section.name })
    other.deleteSection(section.id)
    const [updated, deleted] = other.events.all()
    expect(updated).toMatchObject({ type: "sections.updated", previous_attributes: { name: section.name } })
    expect(updated!.data).not.toHaveProperty("previous_attributes")
    expect(deleted).toMatchObject({ type: "sections.deleted", data: { object: { id: section.id, name: "Renamed" } } })
    expect(other.sections.get(section.id)).toBeUndefined()
  })
})

describe("faults", () => {
  const users = "/v3.0/users"

  it("status: answers 500/502/503 the given number of times", async () => {
    const handle = fake.faults.inject({ kind: "status", status: 503, match: users, times: 2 })
    expect((await get(users)).status).toBe(503)
    expect((await get(users)).status).toBe(503)
    expect((await get(users)).status).toBe(200)
    expect(handle.fired).toBe(2)
    fake.faults.inject({ kind: "status", status: 502, match: users, after: 1 })
    expect((await get(users)).status).toBe(200)
    expect((await get(users)).status).toBe(502)
  })

  it("rateLimit: a 429 with Retry-After or X-RateLimit-Reset", async () => {
    fake.faults.inject({ kind: "rateLimit", retryAfterSeconds: 2 })
    const first = await get(users)
    expect([first.status, first.headers.get("retry-after"), first.headers.get("x-ratelimit-reset")]).toEqual([429, "2", null])
    fake.faults.inject({ kind: "rateLimit", resetInSeconds: 5 })
    const second = await get(users)
    expect(second.status).toBe(429)
    expect(Number(second.headers.get("x-ratelimit-reset")) - Date.now() / 1000).toBeGreaterThan(3)
    expect(second.headers.get("x-ratelimit-remaining")).toBe("0")
  })

  it("dropConnection: the response dies mid-body", async () => {
    fake.faults.inject({ kind: "dropConnection", match: users })
    await expect(get(users).then((response) => response.text())).rejects.toThrow()
    expect((await get(users)).status).toBe(200)
  })

  it("truncate: a 200 whose body is not valid JSON", async () => {
    fake.faults.inject({ kind: "truncate", match: (request) => request.path === users })
    const response = await get(users)
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(text.startsWith('{"data":[')).toBe(true)
    expect(() => JSON.parse(text)).toThrow()
  })

  it("notJson: a 200 with HTML", async () => {
    fake.faults.inject({ kind: "notJson" })
    const response = await get(users)
    expect([response.status, response.headers.get("content-type")]).toEqual([200, "text/html; charset=utf-8"])
    await expect(response.json()).rejects.toThrow()
  })

  it("noLinks and endEarly: pages without links / without next", async () => {
    fake.faults.inject({ kind: "noLinks", match: /^\/v3\.0\/users\?limit=2$/ })
    const bare = (await getJson<User>(`${users}?limit=2`)) as Partial<Envelope<User>>
    expect(bare.data!.length).toBe(2)
    expect(bare).not.toHaveProperty("links")
    fake.faults.inject({ kind: "endEarly", match: users })
    const early = await getJson<User>(`${users}?limit=2`)
    expect(early.data.length).toBe(2)
    expect(early.links.map((l) => l.rel)).toEqual(["self"])
    expect(link(await getJson<User>(`${users}?limit=2`), "next")).toBeDefined()
  })

  it("delay: holds the answer (client timeouts fire)", async () => {
    fake.faults.inject({ kind: "delay", ms: 150, times: 2 })
    const before = Date.now()
    expect((await get(users)).status).toBe(200)
    expect(Date.now() - before).toBeGreaterThanOrEqual(140)
    await expect(fetch(fake.baseUrl + users, { headers: auth, signal: AbortSignal.timeout(30) })).rejects.toThrow()
    // The server notices the hang-up when the delay ends.
    for (let i = 0; i < 100 && fake.requests.at(-1)?.status !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(fake.requests.at(-1)).toMatchObject({ fault: "delay", status: 0 })
  })
})

describe("hostile faults", () => {
  const users = "/v3.0/users"

  it("next: to the page itself, back to the first page, the same cursor under another URL, or any URI", async () => {
    fake.faults.inject({ kind: "next", to: "self", match: users })
    expect(link(await getJson(`${users}?limit=2`), "next")).toBe(`${users}?limit=2`)
    const second = link(await getJson(`${users}?limit=2`), "next")!
    fake.faults.inject({ kind: "next", to: "first", match: users })
    expect(link(await getJson(second), "next")).toBe(`${users}?limit=2`)
    fake.faults.inject({ kind: "next", to: "sameCursor", match: users })
    const same = new URL(link(await getJson(second), "next")!, "http://x")
    expect(same.searchParams.get("starting_after")).toBe(new URL(second, "http://x").searchParams.get("starting_after"))
    expect(`${same.pathname}${same.search}`).not.toBe(second)
    fake.faults.inject({ kind: "next", to: "http://elsewhere.invalid{real}", match: users })
    expect(link(await getJson(`${users}?limit=2`), "next")).toBe(`http://elsewhere.invalid${second}`)
  })

  it("repeatPage: the first page's records under the links the request should get", async () => {
    const first = await getJson<User>(`${users}?limit=2`)
    const next = link(first, "next")!
    fake.faults.inject({ kind: "repeatPage", match: users })
    const again = await getJson<User>(next)
    expect(again.data.map((d) => d.data.id)).toEqual(first.data.map((d) => d.data.id))
    expect(link(again, "next")).not.toBe(next)
  })

  it("rewrite, body, redirect and headers: what a hostile front answers", async () => {
    fake.faults.inject({ kind: "rewrite", match: users, rewrite: (page, request) => ({ ...page, data: [], path: request.path }) })
    expect(await (await get(users)).json()).toMatchObject({ data: [], path: users })
    fake.faults.inject({ kind: "rewrite", match: users, rewrite: () => `{"__proto__":{"x":1}}` })
    expect(await (await get(users)).text()).toBe(`{"__proto__":{"x":1}}`)
    fake.faults.inject({ kind: "body", body: "\u0000binary", contentType: "image/png" })
    const body = await get(users)
    expect([body.status, body.headers.get("content-type"), await body.text()]).toEqual([200, "image/png", "\u0000binary"])
    fake.faults.inject({ kind: "redirect", location: "http://elsewhere.invalid/x" })
    const moved = await fetch(fake.baseUrl + users, { headers: auth, redirect: "manual" })
    expect([moved.status, moved.headers.get("location")]).toEqual([302, "http://elsewhere.invalid/x"])
    fake.faults.inject({ kind: "headers", headers: { "X-Total-Count": "1000000000000" } })
    expect((await get(users)).headers.get("x-total-count")).toBe("1000000000000")
  })

  it("hugeBody, endlessBody and drip: bodies streamed with backpressure, never built whole", async () => {
    fake.faults.inject({ kind: "hugeBody", bytes: 300_000 })
    const huge = await get(users)
    expect(huge.headers.get("content-length")).toBe("300000")
    const text = await huge.text()
    expect(text.length).toBe(300_000)
    expect(JSON.parse(text)).toEqual({ data: [], links: [] })
    fake.faults.inject({ kind: "hugeBody", bytes: 1000, declareLength: false })
    expect((await get(users)).headers.get("content-length")).toBeNull()

    fake.faults.inject({ kind: "endlessBody" })
    const endless = await get(users)
    const reader = endless.body!.getReader()
    let read = 0
    while (read < 2_000_000) read += (await reader.read()).value!.length
    await reader.cancel()
    expect(read).toBeGreaterThanOrEqual(2_000_000)

    fake.faults.inject({ kind: "drip", chunkBytes: 64, intervalMs: 1, match: users })
    const dripped = await getJson<User>(`${users}?limit=2`)
    expect(dripped.data.length).toBe(2)
  })
})

describe("rate limit", () => {
  it("counts requests per token and answers 429 with X-RateLimit-Reset once over", async () => {
    // A fixed clock: a minute boundary between two calls must not reset the count.
    const now = Date.now()
    const limited = await start(district, { token: [TOKEN, "other"], rateLimit: { limit: 2, windowMs: 60_000, now: () => now } })
    try {
      const call = (token: string) => fetch(`${limited.baseUrl}/v3.0/districts`, { headers: { Authorization: `Bearer ${token}` } })
      const first = await call(TOKEN)
      expect([first.status, first.headers.get("x-ratelimit-limit"), first.headers.get("x-ratelimit-remaining")]).toEqual([200, "2", "1"])
      expect((await call(TOKEN)).status).toBe(200)
      const over = await call(TOKEN)
      expect(over.status).toBe(429)
      expect(over.headers.get("x-ratelimit-remaining")).toBe("0")
      const reset = Number(over.headers.get("x-ratelimit-reset"))
      expect(reset).toBe((Math.floor(now / 60_000) + 1) * 60)
      expect((await call("other")).status).toBe(200)
    } finally {
      await limited.close()
    }
  })
})

describe("cli", () => {
  it("serves a CSV set in its own process and stops on SIGTERM", async () => {
    const cli = NodePath.resolve(import.meta.dirname, "../support/FakeClever/cli.ts")
    const child = spawn(process.execPath, ["--import", "tsx", cli, "--csv", folder.dir, "--token", TOKEN, "--rate-limit", "50"], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once("line", resolve)
        child.once("exit", () => reject(new Error("cli exited early")))
      })
      const { baseUrl, port } = JSON.parse(line) as { baseUrl: string; port: number }
      expect(baseUrl).toBe(`http://127.0.0.1:${port}`)
      const response = await fetch(`${baseUrl}/v3.0/users?limit=10`, { headers: auth })
      expect(response.headers.get("x-ratelimit-limit")).toBe("50")
      expect(((await response.json()) as Envelope<User>).data.length).toBe(5)
    } finally {
      child.kill("SIGTERM")
    }
    expect(await exited).toBe(0)
  })
})
