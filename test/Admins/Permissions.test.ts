import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import type { ActingAdmin, Actor, AdminAction, Geography, Scope } from "../../src/Admins/Permissions.ts"
import { authorize, covers } from "../../src/Admins/Permissions.ts"

/**
 * Who may manage administrators, as a pure function: examples for each rule, and properties
 * over random geographies — above all, an admin can never grant (or touch) beyond its own scope.
 */

/** Partnership p1 (regions north: d1, d2; south: d3), partnership p2 (d4, no region), d5 alone. */
const geography: Geography = new Map([
  ["d1", { partnershipId: "p1", regionId: "north" }],
  ["d2", { partnershipId: "p1", regionId: "north" }],
  ["d3", { partnershipId: "p1", regionId: "south" }],
  ["d4", { partnershipId: "p2", regionId: null }]
])

const admin = (scope: Scope, overrides: Partial<ActingAdmin> = {}): Actor => ({
  kind: "admin",
  admin: { id: 7, state: "active", permission: "manage", canManageAdmins: true, scope, ...overrides }
})
const schools = (districtId: string, ...list: Array<string>): Scope => ({ kind: "schools", districtId, schools: list })
const district = (districtId: string): Scope => ({ kind: "district", districtId })
const region = (regionId: string, partnershipId = "p1"): Scope => ({ kind: "region", partnershipId, regionId })
const partnership = (partnershipId: string): Scope => ({ kind: "partnership", partnershipId })

describe("admin permissions", () => {
  it("an operator may do anything", () => {
    for (const action of ["invite", "edit", "resend", "remove"] as const) {
      expect(authorize({ kind: "operator", name: "ops" }, action, [partnership("p1"), district("d5")], geography)).toEqual({ allowed: true })
    }
  })

  it("an admin needs to be confirmed, Manage and can-manage-admins", () => {
    const target = [schools("d1", "s1")]
    const refused = (actor: Actor) => {
      const decision = authorize(actor, "invite", target, geography)
      return decision.allowed ? "allowed" : decision.reason
    }
    expect(refused(admin(district("d1"), { permission: "view", canManageAdmins: false }))).toMatch(/^admin 7 may not invite administrators for school s1 of district d1: view permission sees dashboards only$/)
    expect(refused(admin(district("d1"), { canManageAdmins: false }))).toContain("it cannot manage administrators")
    expect(refused(admin(district("d1"), { state: "invited" }))).toContain("it has not confirmed its invitation")
    expect(refused(admin(district("d1"), { state: "removed" }))).toContain("it was removed")
    expect(refused(admin(district("d1")))).toBe("allowed")
  })

  it("school scopes: a subset of its own schools, in its own district", () => {
    const actor = admin(schools("d1", "s1", "s2"))
    expect(authorize(actor, "invite", [schools("d1", "s1")], geography).allowed).toBe(true)
    expect(authorize(actor, "invite", [schools("d1", "s1", "s2")], geography).allowed).toBe(true)
    const beyond = authorize(actor, "invite", [schools("d1", "s1", "s3")], geography)
    expect(beyond).toEqual({
      allowed: false,
      reason: "admin 7 may not invite administrators for schools s1, s3 of district d1: its scope (schools s1, s2 of district d1) does not cover schools s1, s3 of district d1"
    })
    // "All schools" also covers schools added later: a list never covers it.
    expect(authorize(actor, "invite", [district("d1")], geography).allowed).toBe(false)
    expect(authorize(actor, "invite", [schools("d2", "s1")], geography).allowed).toBe(false)
    // Editing touches both the current and the new scope.
    expect(authorize(actor, "edit", [schools("d1", "s1"), schools("d1", "s3")], geography).allowed).toBe(false)
    expect(authorize(actor, "remove", [schools("d1", "s3")], geography).allowed).toBe(false)
  })

  it("district, region and partnership scopes cover what their districts hold", () => {
    expect(authorize(admin(district("d1")), "invite", [schools("d1", "x")], geography).allowed).toBe(true)
    expect(authorize(admin(district("d1")), "invite", [region("north")], geography).allowed).toBe(false)
    const north = admin(region("north"))
    expect(authorize(north, "invite", [district("d2"), schools("d1", "s9")], geography).allowed).toBe(true)
    expect(authorize(north, "invite", [region("north")], geography).allowed).toBe(true)
    expect(authorize(north, "invite", [district("d3")], geography).allowed).toBe(false)
    expect(authorize(north, "invite", [region("south")], geography).allowed).toBe(false)
    expect(authorize(north, "invite", [partnership("p1")], geography).allowed).toBe(false)
    const p1 = admin(partnership("p1"))
    expect(authorize(p1, "invite", [partnership("p1"), region("south"), district("d3"), schools("d1", "s1")], geography).allowed).toBe(true)
    expect(authorize(p1, "invite", [district("d4")], geography).allowed).toBe(false)
    expect(authorize(p1, "invite", [district("d5")], geography).allowed).toBe(false)
    expect(authorize(p1, "invite", [partnership("p2")], geography).allowed).toBe(false)
  })

  // ------------------------------------------------------------ properties

  const DISTRICTS = ["d1", "d2", "d3", "d4", "d5", "d6"]
  const SCHOOLS = ["s1", "s2", "s3", "s4"]
  const PARTNERSHIPS = ["p1", "p2"]
  const REGIONS = ["r1", "r2"]

  const geographies: fc.Arbitrary<Geography> = fc.array(
    fc.option(fc.tuple(fc.constantFrom(...PARTNERSHIPS), fc.option(fc.constantFrom(...REGIONS), { nil: null })), { nil: null }),
    { minLength: DISTRICTS.length, maxLength: DISTRICTS.length }
  ).map((places) =>
    new Map(places.flatMap((place, i) => (place === null ? [] : [[DISTRICTS[i]!, { partnershipId: place[0], regionId: place[1] }] as const])))
  )

  const scopes: fc.Arbitrary<Scope> = fc.oneof(
    fc.constantFrom(...PARTNERSHIPS).map((partnershipId): Scope => ({ kind: "partnership", partnershipId })),
    fc.tuple(fc.constantFrom(...PARTNERSHIPS), fc.constantFrom(...REGIONS)).map(([partnershipId, regionId]): Scope => ({ kind: "region", partnershipId, regionId })),
    fc.constantFrom(...DISTRICTS).map((districtId): Scope => ({ kind: "district", districtId })),
    fc.tuple(fc.constantFrom(...DISTRICTS), fc.subarray(SCHOOLS, { minLength: 1 })).map(([districtId, list]): Scope => ({ kind: "schools", districtId, schools: list }))
  )

  /** Everything a scope reaches: `district/school`, and `district/*` for "every school, now and later". */
  const reach = (scope: Scope, geo: Geography): Set<string> => {
    const all = (d: string) => [`${d}/*`, ...SCHOOLS.map((s) => `${d}/${s}`)]
    switch (scope.kind) {
      case "partnership":
        return new Set(DISTRICTS.filter((d) => geo.get(d)?.partnershipId === scope.partnershipId).flatMap(all))
      case "region":
        return new Set(DISTRICTS.filter((d) => geo.get(d)?.partnershipId === scope.partnershipId && geo.get(d)?.regionId === scope.regionId).flatMap(all))
      case "district":
        return new Set(all(scope.districtId))
      case "schools":
        return new Set(scope.schools.map((s) => `${scope.districtId}/${s}`))
    }
  }

  const actions = fc.constantFrom<AdminAction>("invite", "edit", "resend", "remove")

  it("property: whatever an admin is allowed to grant or touch lies within its own reach", () => {
    fc.assert(
      fc.property(geographies, scopes, fc.array(scopes, { minLength: 1, maxLength: 2 }), actions, (geo, own, targets, action) => {
        if (!authorize(admin(own), action, targets, geo).allowed) return
        const mine = reach(own, geo)
        for (const target of targets) for (const item of reach(target, geo)) expect(mine.has(item)).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })

  it("property: an admin may always act on exactly its own scope, and never without manage + can-manage-admins", () => {
    fc.assert(
      fc.property(geographies, scopes, actions, fc.boolean(), (geo, own, action, view) => {
        expect(authorize(admin(own), action, [own], geo).allowed).toBe(true)
        const weaker = view ? admin(own, { permission: "view", canManageAdmins: false }) : admin(own, { canManageAdmins: false })
        expect(authorize(weaker, action, [own], geo).allowed).toBe(false)
      })
    )
  })

  it("property: covering is transitive", () => {
    fc.assert(
      fc.property(geographies, scopes, scopes, scopes, (geo, a, b, c) => {
        if (covers(a, b, geo) && covers(b, c, geo)) expect(covers(a, c, geo)).toBe(true)
      }),
      { numRuns: 2000 }
    )
  })
})
