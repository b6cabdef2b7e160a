import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { cliFixture } from "../support/CliFixture.ts"
import { writeSmallDistrict } from "../support/Fixtures.ts"

/**
 * `rosterd calendar`: the default pause windows, a calendars.yaml beside the config file
 * replacing them, and a district's overrides (`rules.calendar`), in local dates.
 */
describe("rosterd calendar", () => {
  const cli = cliFixture()
  const { rosterd, work } = cli

  beforeAll(() => writeSmallDistrict(NodePath.join(work.dir, "small")))

  it("lists the default windows, and a district's own with its overrides", async () => {
    const defaults = await rosterd(["calendar", "--year", "2027", "--json"])
    expect(defaults.code).toBe(0)
    expect(JSON.parse(defaults.stdout).windows.map((w: { name: string; from: string; to: string }) => [w.name, w.from, w.to])).toEqual([
      ["thanksgiving", "2027-11-24", "2027-11-28"],
      ["winter", "2027-12-18", "2028-01-02"]
    ])

    const rules = NodePath.join(work.dir, "rules.yaml")
    Fs.writeFileSync(rules, 'calendar:\n  disable: [thanksgiving]\n  add:\n    - { name: spring-break, from: "2027-03-15", to: "2027-03-19" }\n')
    const added = await rosterd(["district", "add", "small", "--provider", "oneroster-csv", "--path", NodePath.join(work.dir, "small"),
      "--timezone", "America/Chicago", "--rules-file", rules])
    expect(added.code).toBe(0)
    const mine = await rosterd(["calendar", "small", "--year", "2027"])
    expect(mine.code).toBe(0)
    expect(mine.stdout).toContain("pause windows of small (local dates, America/Chicago)")
    expect(mine.stdout).toMatch(/spring-break\s+2027-03-15\s+2027-03-19/)
    expect(mine.stdout).not.toContain("thanksgiving")

    // A bad override is refused when the rules are written, naming the window.
    Fs.writeFileSync(rules, 'calendar:\n  add:\n    - { name: x, from: "2027-03-15", to: { month: 3, day: 2 } }\n')
    const bad = await rosterd(["district", "rules", "small", "--file", rules])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('window "x"')
  })

  it("a calendars.yaml beside the config file replaces the defaults", async () => {
    Fs.writeFileSync(NodePath.join(work.dir, "calendars.yaml"), 'windows:\n  - { name: only-this, from: "2027-06-01", to: "2027-06-05" }\n')
    const result = await rosterd(["calendar", "--year", "2027", "--json"])
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout).windows.map((w: { name: string }) => w.name)).toEqual(["only-this"])
  })
})
