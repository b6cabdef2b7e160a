import { spawn } from "node:child_process"
import { createHmac, randomBytes } from "node:crypto"
import * as NodePath from "node:path"
import { createInterface } from "node:readline"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import {
  type Class, type Demographics, type Enrollment, type FakeOneRoster, fromOneRosterCsv, type OneRosterDistrict, type Org, start, type User
} from "../support/FakeOneRoster/index.ts"
import { generated, smallDistrictTerm, tempDir, writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * Smoke tests of the fake OneRoster 1.1 REST server with plain fetch (no rosterd code):
 * the conversion of a OneRoster CSV set, paging, filters, both kinds of auth, changes,
 * faults, the rate limit and the CLI.
 *
 * Requests are signed by a tiny OAuth 1.0a client written here on node:crypto, following
 * providers.md §2.2 — deliberately independent of the server's verifier (oauth-sign) and
 * of rosterd's signer.
 */

const KEY = "district-client-id"
const SECRET = "s3cr3t!'()*&+"
const TOKEN = "proxy-bearer-token"
const API = "/ims/oneroster/v1p1"

// ---- the test-local OAuth 1.0a client (HMAC-SHA256, two-legged) ----

/** RFC 3986: everything but `A-Z a-z 0-9 - . _ ~` as %XX; encodeURIComponent leaves `!'()*`. */
const enc = (value: string) => encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

interface SignOptions {
  readonly key?: string
  readonly secret?: string
  readonly nonce?: string
  readonly timestamp?: number
  readonly method?: "HMAC-SHA256" | "HMAC-SHA1"
  readonly tamper?: (signature: string) => string
}

const oauthHeader = (url: URL, options: SignOptions = {}): string => {
  const oauth: Array<[string, string]> = [
    ["oauth_consumer_key", options.key ?? KEY],
    ["oauth_nonce", options.nonce ?? randomBytes(16).toString("hex")],
    ["oauth_signature_method", options.method ?? "HMAC-SHA256"],
    ["oauth_timestamp", String(options.timestamp ?? Math.floor(Date.now() / 1000))]
  ]
  // The query as the server decodes it: %XX decoded, `+` read as a space.
  const pairs = [...url.searchParams, ...oauth].map(([k, v]) => [enc(k), enc(v)] as const)
  pairs.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
  const baseUri = `${url.protocol}//${url.host.toLowerCase()}${url.pathname}`
  const base = ["GET", enc(baseUri), enc(pairs.map(([k, v]) => `${k}=${v}`).join("&"))].join("&")
  const hmac = options.method === "HMAC-SHA1" ? "sha1" : "sha256"
  const signature = createHmac(hmac, `${enc(options.secret ?? SECRET)}&`).update(base).digest("base64")
  const signed = [...oauth, ["oauth_signature", options.tamper?.(signature) ?? signature]]
  return "OAuth " + signed.map(([k, v]) => `${k}="${enc(v!)}"`).join(",")
}

// ---- helpers ----

const folder = tempDir("fake-oneroster-")
let district: OneRosterDistrict
let fake: FakeOneRoster

const urlOf = (server: FakeOneRoster, pathAndQuery: string) => new URL(pathAndQuery.startsWith("http") ? pathAndQuery : server.baseUrl + pathAndQuery)
const signed = (pathAndQuery: string, options: SignOptions = {}, server = fake) => {
  const url = urlOf(server, pathAndQuery)
  return fetch(url, { headers: { Authorization: oauthHeader(url, options) } })
}
const bearer = (pathAndQuery: string, token = TOKEN, server = fake) => fetch(urlOf(server, pathAndQuery), { headers: { Authorization: `Bearer ${token}` } })
const json = async <A>(response: Response | Promise<Response>, status = 200): Promise<A> => {
  const r = await response
  expect(r.status).toBe(status)
  return (await r.json()) as A
}
/** `{rel: url}` from an RFC 5988 Link header. */
const links = (response: Response): Record<string, string> =>
  Object.fromEntries([...(response.headers.get("link") ?? "").matchAll(/<([^>]+)>;\s*rel="([^"]+)"/g)].map((m) => [m[2]!, m[1]!]))
const codeMinor = (body: { imsx_CodeMinor: { imsx_codeMinorField: Array<{ imsx_codeMinorFieldValue: string }> } }) =>
  body.imsx_CodeMinor.imsx_codeMinorField[0]!.imsx_codeMinorFieldValue
const ids = (records: ReadonlyArray<{ readonly sourcedId: string }>) => records.map((r) => r.sourcedId)

interface StatusInfo {
  imsx_codeMajor: string
  imsx_severity: string
  imsx_description: string
  imsx_CodeMinor: { imsx_codeMinorField: Array<{ imsx_codeMinorFieldName: string; imsx_codeMinorFieldValue: string }> }
}

beforeAll(async () => {
  writeSmallDistrict(folder.dir)
  district = await fromOneRosterCsv(folder.dir)
  fake = await start(district, { oauth: { key: KEY, secret: SECRET }, bearer: TOKEN })
})
afterAll(async () => {
  await fake.close()
  folder.remove()
})
afterEach(() => fake.faults.clear())

describe("conversion of a OneRoster CSV set", () => {
  it("gives orgs with parent/children GUIDRefs, sessions, courses and classes", () => {
    expect(district.counts()).toEqual({ orgs: 2, academicSessions: 1, courses: 1, classes: 2, users: 5, enrollments: 5, demographics: 3 })
    const ref = (table: string, sourcedId: string, type: string) => ({ href: `${API}/${table}/${sourcedId}`, sourcedId, type })
    expect(district.orgs.get("org-d")).toMatchObject({ status: "active", name: "Small District", type: "district", identifier: "", children: [ref("orgs", "org-s1", "org")] })
    expect(district.orgs.get("org-s1")!.parent).toEqual(ref("orgs", "org-d", "org"))
    expect(district.academicSessions.get("term-1")).toMatchObject({ type: "schoolYear", ...smallDistrictTerm() })
    expect(district.courses.get("crs-1")).toMatchObject({ title: "Math 7", schoolYear: ref("academicSessions", "term-1", "academicSession"), org: ref("orgs", "org-s1", "org") })
    expect(district.classes.get("cls-1")).toMatchObject({
      title: "Math 7 - P1", classType: "scheduled", course: ref("courses", "crs-1", "course"), school: ref("orgs", "org-s1", "org"),
      terms: [ref("academicSessions", "term-1", "academicSession")]
    })
    // Blank dateLastModified → the import time, ISO with milliseconds.
    expect(district.classes.get("cls-1")!.dateLastModified).toBe("2024-01-01T00:00:00.000Z")
  })

  it("gives enrollments with the primary flag, users with orgs and grades, demographics with birthDate", () => {
    const enrollment = (id: string) => district.enrollments.get(id)!
    expect(enrollment("e-1")).toMatchObject<Partial<Enrollment>>({ role: "teacher", primary: true })
    expect(enrollment("e-1").user).toEqual({ href: `${API}/users/t-1`, sourcedId: "t-1", type: "user" })
    expect([enrollment("e-1").class.sourcedId, enrollment("e-1").school.sourcedId]).toEqual(["cls-1", "org-s1"])
    expect(enrollment("e-3")).toMatchObject({ role: "student", primary: false })
    expect(district.enrollments.all().filter((e) => e.primary).map((e) => e.sourcedId)).toEqual(["e-1", "e-2"])
    expect(district.users.get("s-1")).toMatchObject<Partial<User>>({
      status: "active", role: "student", enabledUser: true, givenName: "Sam", familyName: "A", grades: ["07"], email: "sam@small.example", userIds: [], agents: []
    })
    expect(ids(district.users.get("s-1")!.orgs)).toEqual(["org-s1"])
    expect(district.demographics.all().map((d) => [d.sourcedId, d.birthDate])).toEqual([["s-1", "2014-03-01"], ["s-2", "2013-11-20"], ["s-3", "2014-07-09"]])
    expect(district.demographics.get("s-1")).not.toHaveProperty("white")
    // References to the same record are one shared object.
    expect(district.enrollments.get("e-3")!.class).toBe(district.ref("classes", "cls-1"))
  })

  it("converts a generated district: every org, class, user, enrollment and demographics row", async () => {
    const dir = tempDir("fake-oneroster-gen-")
    try {
      const counts = generated(dir.dir, 300)
      const big = await fromOneRosterCsv(dir.dir)
      expect(big.counts()).toEqual({
        orgs: counts.schools + 1, academicSessions: counts.terms, courses: counts.courses, classes: counts.classes,
        users: counts.users, enrollments: counts.enrollments, demographics: counts.demographics
      })
      expect(big.orgs.get("org-district")!.children.length).toBe(counts.schools)
      expect(big.users.all().map((u) => u.sourcedId)).toEqual(big.users.all().map((u) => u.sourcedId).sort())
      expect(big.users.all().filter((u) => u.role === "student").length).toBe(counts.students)
      expect(big.enrollments.all().every((e) => e.dateLastModified === "2026-08-15T00:00:00.000Z")).toBe(true)
      const teacherRows = big.enrollments.all().filter((e) => e.role === "teacher")
      expect(teacherRows.filter((e) => e.primary).length).toBe(counts.classes)
    } finally {
      dir.remove()
    }
  })
})

describe("lists and singles", () => {
  it("pages users with limit=2: every user once, X-Total-Count, Link next/prev/first/last (each request signed)", async () => {
    const seen: Array<string> = []
    let next: string | undefined = `${API}/users?limit=2`
    let pages = 0
    while (next !== undefined) {
      const response = await signed(next)
      expect(response.headers.get("x-total-count")).toBe("5")
      const rels = links(response)
      if (pages === 0) {
        expect(rels["next"]).toBe(`${fake.baseUrl}${API}/users?limit=2&offset=2`)
        expect(rels["last"]).toBe(`${fake.baseUrl}${API}/users?limit=2&offset=4`)
        expect(rels["first"]).toBe(`${fake.baseUrl}${API}/users?limit=2&offset=0`)
        expect(rels["prev"]).toBeUndefined()
      } else expect(rels["prev"]).toBeDefined()
      seen.push(...ids((await json<{ users: Array<User> }>(response)).users))
      next = rels["next"]
      pages++
    }
    expect(pages).toBe(3)
    expect(seen).toEqual(["s-1", "s-2", "s-3", "t-1", "t-2"])
  })

  it("uses the 1.1 wrapper keys, absolute hrefs, the subset endpoints and 404 for a single of another kind", async () => {
    const org = await json<{ org: Org }>(bearer(`${API}/schools/org-s1`))
    expect(org.org.parent!.href).toBe(`${fake.baseUrl}${API}/orgs/org-d`)
    expect(ids((await json<{ orgs: Array<Org> }>(bearer(`${API}/schools`))).orgs)).toEqual(["org-s1"])
    expect(ids((await json<{ orgs: Array<Org> }>(bearer(`${API}/orgs`))).orgs)).toEqual(["org-d", "org-s1"])
    expect(ids((await json<{ users: Array<User> }>(bearer(`${API}/teachers`))).users)).toEqual(["t-1", "t-2"])
    expect(ids((await json<{ users: Array<User> }>(bearer(`${API}/students`))).users)).toEqual(["s-1", "s-2", "s-3"])
    expect((await json<{ academicSessions: Array<unknown> }>(bearer(`${API}/academicSessions`))).academicSessions.length).toBe(1)
    expect((await json<{ academicSessions: Array<unknown> }>(bearer(`${API}/terms`))).academicSessions).toEqual([]) // a schoolYear is not a term
    expect((await json<{ class: Class }>(bearer(`${API}/classes/cls-2`))).class.title).toBe("Math 7 - P2")
    expect((await json<{ enrollment: Enrollment }>(bearer(`${API}/enrollments/e-2`))).enrollment.primary).toBe(true)
    expect((await json<{ demographics: Demographics }>(bearer(`${API}/demographics/s-2`))).demographics.birthDate).toBe("2013-11-20")
    const user = (await json<{ user: User }>(bearer(`${API}/users/s-1`))).user
    expect(user.orgs).toEqual([{ href: `${fake.baseUrl}${API}/orgs/org-s1`, sourcedId: "org-s1", type: "org" }])
    expect(user.enabledUser).toBe(true)
    const wrongKind = await json<StatusInfo>(bearer(`${API}/students/t-1`), 404)
    expect([wrongKind.imsx_codeMajor, codeMinor(wrongKind)]).toEqual(["failure", "unknownobject"])
    expect((await bearer(`${API}/users/nobody`)).status).toBe(404)
    expect((await bearer(`${API}/schools/org-s1/classes`)).status).toBe(501)
  })

  it("caps limit silently, takes fields and sort, rejects bad ones with imsx_StatusInfo", async () => {
    const capped = await start(district, { bearer: TOKEN, maxLimit: 3, defaultLimit: 2 })
    try {
      const big = await bearer(`${API}/users?limit=50`, TOKEN, capped)
      expect((await json<{ users: Array<User> }>(big)).users.length).toBe(3)
      expect(links(big)["next"]).toBe(`${capped.baseUrl}${API}/users?limit=3&offset=3`)
      expect((await json<{ users: Array<User> }>(bearer(`${API}/users`, TOKEN, capped))).users.length).toBe(2)
    } finally {
      await capped.close()
    }
    const projected = await json<{ users: Array<User> }>(bearer(`${API}/users?fields=sourcedId,status&limit=1`))
    expect(projected.users).toEqual([{ sourcedId: "s-1", status: "active" }])
    const sorted = await json<{ users: Array<User> }>(bearer(`${API}/users?sort=givenName&orderBy=desc`))
    expect(sorted.users.map((u) => u.givenName)).toEqual(["Theo", "Tess", "Sol", "Sia", "Sam"])
    expect(codeMinor(await json<StatusInfo>(bearer(`${API}/users?fields=sourcedId,shoeSize`), 400))).toBe("invalid_selection_field")
    expect(codeMinor(await json<StatusInfo>(bearer(`${API}/users?sort=shoeSize`), 400))).toBe("invalid_sort_field")
    expect((await bearer(`${API}/users?limit=0`)).status).toBe(400)
    expect((await bearer(`${API}/users?offset=-1`)).status).toBe(400)
    const beyond = await bearer(`${API}/users?offset=10`)
    expect([(await json<{ users: Array<User> }>(beyond)).users, beyond.headers.get("x-total-count")]).toEqual([[], "5"])
  })

  it("can send booleans as strings, like some 1.1 servers", async () => {
    const stringy = await start(district, { bearer: TOKEN, booleansAsStrings: true })
    try {
      expect((await json<{ user: Record<string, unknown> }>(bearer(`${API}/users/s-1`, TOKEN, stringy))).user["enabledUser"]).toBe("true")
      const enrollments = (await json<{ enrollments: Array<Record<string, unknown>> }>(bearer(`${API}/enrollments`, TOKEN, stringy))).enrollments
      expect(enrollments.map((e) => e["primary"])).toEqual(["true", "true", "false", "false", "false"])
      expect(district.users.get("s-1")!.enabledUser).toBe(true)
    } finally {
      await stringy.close()
    }
  })
})

describe("auth", () => {
  const users = `${API}/users?limit=1`
  const failure = async (response: Promise<Response>) => {
    const body = await json<StatusInfo>(response, 401)
    expect(codeMinor(body)).toBe("unauthorisedrequest")
    return body.imsx_description
  }

  it("accepts a signed request and a bearer token; logs neither secrets nor signatures", async () => {
    expect((await signed(users)).status).toBe(200)
    expect((await bearer(users)).status).toBe(200)
    expect(fake.requests.slice(-2).map((r) => r.scheme)).toEqual(["oauth", "bearer"])
    const log = JSON.stringify(fake.requests)
    for (const secret of [SECRET, TOKEN, "oauth_signature", enc(SECRET)]) expect(log).not.toContain(secret)
  })

  it("rejects a tampered signature, a wrong secret, an unknown key and HMAC-SHA1, naming the check", async () => {
    const flip = (s: string) => (s[0] === "A" ? "B" : "A") + s.slice(1)
    expect(await failure(signed(users, { tamper: flip }))).toMatch(/signature/)
    expect(await failure(signed(users, { secret: "not-the-secret" }))).toMatch(/signature/)
    expect(await failure(signed(users, { key: "someone-else" }))).toMatch(/unknown oauth_consumer_key/)
    expect(await failure(signed(users, { method: "HMAC-SHA1" }))).toMatch(/only HMAC-SHA256/)
    // A signature over different query parameters than the ones sent.
    const url = urlOf(fake, `${API}/users?limit=1`)
    const header = oauthHeader(urlOf(fake, `${API}/users?limit=2`))
    expect(await failure(fetch(url, { headers: { Authorization: header } }))).toMatch(/signature/)
    expect(fake.requests.at(-1)!.authFailure).toBe("signature")
  })

  it("checks the timestamp window (10 min past, 5 min future) and rejects a reused nonce", async () => {
    const now = Math.floor(Date.now() / 1000)
    expect(await failure(signed(users, { timestamp: now - 11 * 60 }))).toMatch(/timestamp .* in the past/)
    expect(await failure(signed(users, { timestamp: now + 6 * 60 }))).toMatch(/timestamp .* in the future/)
    expect((await signed(users, { timestamp: now - 9 * 60 })).status).toBe(200)
    expect((await signed(users, { timestamp: now + 4 * 60 })).status).toBe(200)
    const nonce = randomBytes(8).toString("hex")
    expect((await signed(users, { nonce })).status).toBe(200)
    expect(await failure(signed(users, { nonce }))).toMatch(/nonce already used/)
    // A forged request does not burn a nonce.
    const fresh = randomBytes(8).toString("hex")
    await failure(signed(users, { nonce: fresh, secret: "wrong" }))
    expect((await signed(users, { nonce: fresh })).status).toBe(200)
  })

  it("rejects a missing header, a wrong bearer token and a scheme the server does not take", async () => {
    expect(await failure(fetch(urlOf(fake, users)))).toMatch(/missing/)
    expect(await failure(bearer(users, "nope"))).toMatch(/invalid bearer token/)
    expect(await failure(fetch(urlOf(fake, users), { headers: { Authorization: "Basic eDp5" } }))).toMatch(/scheme/)
    const oauthOnly = await start(district, { oauth: { key: KEY, secret: SECRET } })
    const bearerOnly = await start(district, { bearer: TOKEN })
    try {
      expect(await failure(bearer(users, TOKEN, oauthOnly))).toMatch(/bearer tokens are not accepted/)
      expect((await signed(users, {}, oauthOnly)).status).toBe(200)
      expect(await failure(signed(users, {}, bearerOnly))).toMatch(/only a bearer token/)
    } finally {
      await Promise.all([oauthOnly.close(), bearerOnly.close()])
    }
  })
})

describe("changes and delta filters", () => {
  const changes = tempDir("fake-oneroster-changes-")
  let d: OneRosterDistrict
  let server: FakeOneRoster
  const T0 = "2026-09-01T00:00:00Z"
  /** `filter=…` percent-encoded by hand per RFC 3986, quotes and `>` included. */
  const filtered = (path: string, filter: string) => `${API}/${path}?filter=${enc(filter)}`

  beforeAll(async () => {
    writeSmallDistrict(changes.dir)
    d = await fromOneRosterCsv(changes.dir)
    server = await start(d, { oauth: { key: KEY, secret: SECRET } })
    d.clock.set(Date.parse(T0))
    d.update("users", "s-2", { givenName: "Sia-Renamed" })
    d.create("users", {
      sourcedId: "s-4", username: "s4", userIds: [], enabledUser: true, givenName: "Sky", familyName: "D", middleName: "", role: "student",
      identifier: "", email: "sky@small.example", sms: "", phone: "", agents: [], orgs: [d.ref("orgs", "org-s1")], grades: ["07"]
    })
    d.clock.advance(60_000)
    d.markToBeDeleted("enrollments", "e-5")
    d.hardDelete("users", "s-3")
  })
  afterAll(async () => {
    await server.close()
    changes.remove()
  })

  it("finds only the records changed after a time, with a signed, percent-encoded filter", async () => {
    const url = filtered("users", "dateLastModified>'2026-08-31T00:00:00Z'")
    expect(url).toContain("filter=dateLastModified%3E%272026-08-31T00%3A00%3A00Z%27")
    const body = await json<{ users: Array<User> }>(signed(url, {}, server))
    expect(ids(body.users)).toEqual(["s-2", "s-4"])
    expect(body.users[0]!.dateLastModified).toBe("2026-09-01T00:00:00.000Z")
    expect(ids((await json<{ users: Array<User> }>(signed(filtered("users", `dateLastModified>'${T0}'`), {}, server))).users)).toEqual([])
    expect(ids((await json<{ users: Array<User> }>(signed(filtered("users", `dateLastModified>='${T0}'`), {}, server))).users)).toEqual(["s-2", "s-4"])
    const enrollments = await json<{ enrollments: Array<Enrollment> }>(signed(filtered("enrollments", `dateLastModified>'${T0}'`), {}, server))
    expect(enrollments.enrollments.map((e) => [e.sourcedId, e.status])).toEqual([["e-5", "tobedeleted"]])
  })

  it("combines two predicates with AND (spaces sent as `+`, as URLSearchParams writes them) and filters role and status", async () => {
    const query = new URLSearchParams({ filter: "status='active' AND role='teacher'" })
    expect(query.toString()).toContain("+AND+")
    expect(ids((await json<{ users: Array<User> }>(signed(`${API}/users?${query.toString()}`, {}, server))).users)).toEqual(["t-1", "t-2"])
    expect(ids((await json<{ users: Array<User> }>(signed(filtered("users", "role='student'"), {}, server))).users)).toEqual(["s-1", "s-2", "s-4"])
    const soft = await json<{ enrollments: Array<Enrollment> }>(signed(filtered("enrollments", "status='tobedeleted'"), {}, server))
    expect(ids(soft.enrollments)).toEqual(["e-5"])
    const either = await json<{ users: Array<User> }>(signed(filtered("users", "givenName~'renamed' OR sourcedId='t-1'"), {}, server))
    expect(ids(either.users)).toEqual(["s-2", "t-1"])
    expect(ids((await json<{ enrollments: Array<Enrollment> }>(signed(filtered("enrollments", "class.sourcedId='cls-2'"), {}, server))).enrollments)).toEqual(["e-2", "e-5"])
  })

  it("answers a bad filter with 400 invalid_filter_field", async () => {
    for (const filter of ["shoeSize='9'", "status", "status='active' AND", "dateLastModified>'yesterday'", "a='1' AND b='2' AND c='3'"]) {
      const body = await json<StatusInfo>(signed(filtered("users", filter), {}, server), 400)
      expect(codeMinor(body)).toBe("invalid_filter_field")
    }
  })

  it("lists tobedeleted records with their status; a hard-deleted record just vanishes", async () => {
    const all = await json<{ enrollments: Array<Enrollment> }>(signed(`${API}/enrollments`, {}, server))
    expect(all.enrollments.find((e) => e.sourcedId === "e-5")!.status).toBe("tobedeleted")
    expect(all.enrollments.length).toBe(5)
    const users = await signed(`${API}/users`, {}, server)
    expect(users.headers.get("x-total-count")).toBe("5")
    expect(ids((await json<{ users: Array<User> }>(users)).users)).toEqual(["s-1", "s-2", "s-4", "t-1", "t-2"])
    expect((await signed(`${API}/users/s-3`, {}, server)).status).toBe(404)
    expect(d.enrollments.get("e-5")!.dateLastModified).toBe("2026-09-01T00:01:00.000Z")
  })

  it("keeps org children in step with parents", () => {
    d.create("orgs", { sourcedId: "org-s2", name: "Second School", type: "school", identifier: "S2", parent: d.ref("orgs", "org-d") })
    expect(ids(d.orgs.get("org-d")!.children)).toEqual(["org-s1", "org-s2"])
    d.update("orgs", "org-s2", { parent: undefined })
    expect(ids(d.orgs.get("org-d")!.children)).toEqual(["org-s1"])
    expect(d.orgs.get("org-s2")).not.toHaveProperty("parent")
  })
})

describe("faults", () => {
  const users = `${API}/users`

  it("status: an imsx_StatusInfo error the given number of times", async () => {
    const handle = fake.faults.inject({ kind: "status", status: 503, match: users, times: 2 })
    const body = await json<StatusInfo>(bearer(users), 503)
    expect([body.imsx_codeMajor, codeMinor(body)]).toEqual(["failure", "server_busy"])
    expect((await bearer(users)).status).toBe(503)
    expect((await bearer(users)).status).toBe(200)
    expect(handle.fired).toBe(2)
  })

  it("rateLimit: 429 with Retry-After", async () => {
    fake.faults.inject({ kind: "rateLimit", retryAfterSeconds: 7 })
    const limited = await bearer(users)
    expect([limited.status, limited.headers.get("retry-after")]).toEqual([429, "7"])
    fake.faults.inject({ kind: "rateLimit" })
    expect((await bearer(users)).headers.get("retry-after")).toBe("1")
  })

  it("notJson: a 200 with HTML", async () => {
    fake.faults.inject({ kind: "notJson" })
    const response = await bearer(users)
    expect([response.status, response.headers.get("content-type")]).toEqual([200, "text/html; charset=utf-8"])
    await expect(response.json()).rejects.toThrow()
  })

  it("dropConnection and truncate: a dead or cut body", async () => {
    fake.faults.inject({ kind: "dropConnection", match: users })
    await expect(bearer(users).then((response) => response.text())).rejects.toThrow()
    fake.faults.inject({ kind: "truncate", match: users })
    const cut = await bearer(users)
    const text = await cut.text()
    expect([cut.status, text.startsWith('{"users":[')]).toEqual([200, true])
    expect(() => JSON.parse(text)).toThrow()
  })

  it("noLinks: no Link header (and, with dropTotal, no X-Total-Count)", async () => {
    fake.faults.inject({ kind: "noLinks", match: users })
    const bare = await bearer(`${users}?limit=2`)
    expect([bare.headers.get("link"), bare.headers.get("x-total-count")]).toEqual([null, "5"])
    fake.faults.inject({ kind: "noLinks", dropTotal: true })
    const blind = await bearer(`${users}?limit=2`)
    expect([blind.headers.get("link"), blind.headers.get("x-total-count")]).toEqual([null, null])
    expect((await json<{ users: Array<User> }>(blind)).users.length).toBe(2)
  })

  it("endEarly: an empty or short page before X-Total-Count, or a wrong X-Total-Count", async () => {
    fake.faults.inject({ kind: "endEarly", match: users })
    const empty = await bearer(`${users}?limit=2`)
    expect([(await json<{ users: Array<User> }>(empty)).users, empty.headers.get("x-total-count"), links(empty)["next"]]).toEqual([[], "5", undefined])
    fake.faults.inject({ kind: "endEarly", mode: "short" })
    const short = await bearer(`${users}?limit=4`)
    expect([(await json<{ users: Array<User> }>(short)).users.length, short.headers.get("x-total-count"), links(short)["next"]]).toEqual([2, "5", undefined])
    fake.faults.inject({ kind: "endEarly", mode: "wrongCount" })
    const wrong = await bearer(`${users}?limit=2`)
    expect([(await json<{ users: Array<User> }>(wrong)).users.length, wrong.headers.get("x-total-count"), links(wrong)["next"]]).toEqual([2, "2", undefined])
    fake.faults.inject({ kind: "endEarly", mode: "wrongCount", count: 50 })
    expect((await bearer(`${users}?limit=2`)).headers.get("x-total-count")).toBe("50")
    expect(links(await bearer(`${users}?limit=2`))["next"]).toBeDefined()
  })

  it("delay: holds the answer (client timeouts fire)", async () => {
    fake.faults.inject({ kind: "delay", ms: 150, times: 2 })
    const before = Date.now()
    expect((await bearer(users)).status).toBe(200)
    expect(Date.now() - before).toBeGreaterThanOrEqual(140)
    await expect(fetch(urlOf(fake, users), { headers: { Authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(30) })).rejects.toThrow()
    for (let i = 0; i < 100 && fake.requests.at(-1)?.status !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(fake.requests.at(-1)).toMatchObject({ fault: "delay", status: 0 })
  })

  it("ignoreOffset: every page is the first, under the total and links of the page asked for", async () => {
    const first = await json<{ users: Array<User> }>(bearer(`${users}?limit=2&offset=0`))
    fake.faults.inject({ kind: "ignoreOffset", match: users })
    const asked = await bearer(`${users}?limit=2&offset=2`)
    expect((await json<{ users: Array<User> }>(asked)).users.map((u) => u.sourcedId)).toEqual(first.users.map((u) => u.sourcedId))
    expect([asked.headers.get("x-total-count"), links(asked)["next"]?.includes("offset=4")]).toEqual(["5", true])
  })

  it("neverEmpty: past the end, made-up records under new sourcedIds, without a total or links", async () => {
    fake.faults.inject({ kind: "neverEmpty", match: users, times: 2 })
    const last = await bearer(`${users}?limit=2&offset=4`)
    const page = await json<{ users: Array<User> }>(last)
    expect(page.users.length).toBe(2)
    expect(page.users[1]!.sourcedId).toBe("made-up-5")
    expect([last.headers.get("x-total-count"), last.headers.get("link")]).toEqual([null, null])
    expect((await json<{ users: Array<User> }>(bearer(`${users}?limit=2&offset=1000`))).users.map((u) => u.sourcedId)).toEqual(["made-up-1000", "made-up-1001"])
  })
})

describe("rate limit", () => {
  it("counts requests per consumer key or token and answers 429 with Retry-After once over", async () => {
    const now = Date.now()
    const limited = await start(district, { oauth: { key: KEY, secret: SECRET }, bearer: TOKEN, rateLimit: { limit: 2, windowMs: 60_000, now: () => now } })
    try {
      expect((await signed(`${API}/orgs`, {}, limited)).status).toBe(200)
      expect((await signed(`${API}/orgs`, {}, limited)).status).toBe(200)
      const over = await signed(`${API}/orgs`, {}, limited)
      expect(over.status).toBe(429)
      expect(codeMinor((await over.json()) as StatusInfo)).toBe("server_busy")
      expect(Number(over.headers.get("retry-after"))).toBe((Math.floor(now / 60_000) + 1) * 60 - Math.floor(now / 1000))
      expect((await bearer(`${API}/orgs`, TOKEN, limited)).status).toBe(200)
    } finally {
      await limited.close()
    }
  })
})

describe("cli", () => {
  it("serves a CSV set in its own process with OAuth, and stops on SIGTERM", async () => {
    const cli = NodePath.resolve(import.meta.dirname, "../support/FakeOneRoster/cli.ts")
    const child = spawn(process.execPath, ["--import", "tsx", cli, "--csv", folder.dir, "--key", KEY, "--secret", SECRET, "--max-limit", "2"], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once("line", resolve)
        child.once("exit", () => reject(new Error("cli exited early")))
      })
      const { baseUrl, port, counts } = JSON.parse(line) as { baseUrl: string; port: number; counts: Record<string, number> }
      expect(baseUrl).toBe(`http://127.0.0.1:${port}`)
      expect(counts).toMatchObject({ users: 5, enrollments: 5, orgs: 2 })
      const url = new URL(`${baseUrl}${API}/users?limit=10`)
      const response = await fetch(url, { headers: { Authorization: oauthHeader(url) } })
      expect(response.headers.get("x-total-count")).toBe("5")
      expect(((await response.json()) as { users: Array<User> }).users.length).toBe(2)
      expect((await fetch(url, { headers: { Authorization: oauthHeader(url, { secret: "wrong" }) } })).status).toBe(401)
    } finally {
      child.kill("SIGTERM")
    }
    expect(await exited).toBe(0)
  })
})
