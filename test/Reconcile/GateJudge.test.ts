import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { GateRules } from "../../src/Domain/DistrictRules.ts"
import { type GroupFigures, judge } from "../../src/Reconcile/Gate.ts"

/**
 * The safety gate's verdict on one group's figures (src/Reconcile/Gate.ts `judge`), without
 * a database: which rule trips for the deactivations and for the updates, with the default
 * rules (maxDeactivations 500, maxDeactivatePercent 10, maxUpdatePercent 75, minRecords 10,
 * holdEmptying) unless a row says otherwise.
 */

const rules = (overrides: Partial<GateRules> = {}): GateRules => ({ ...Schema.decodeSync(GateRules)({}), ...overrides })

const figures = (active: number, deactivations: number, updates = 0, additions = 0): GroupFigures => ({
  grp: "student",
  active,
  deactivations,
  updates,
  additions
})

type Expected = { readonly rule: string; readonly count: number; readonly of: number; readonly limit: number } | null

const CASES: ReadonlyArray<{
  readonly name: string
  readonly figures: GroupFigures
  readonly rules?: Partial<GateRules>
  readonly deactivations: Expected
  readonly updates: Expected
}> = [
  { name: "nothing changes", figures: figures(100, 0), deactivations: null, updates: null },
  { name: "10 % of the active records is not more than 10 %", figures: figures(100, 10), deactivations: null, updates: null },
  { name: "11 % is", figures: figures(100, 11), deactivations: { rule: "deactivate_percent", count: 11, of: 100, limit: 10 }, updates: null },
  { name: "a share over the limit under minRecords changes is no mass change", figures: figures(30, 9), deactivations: null, updates: null },
  { name: "from minRecords up the percentage applies", figures: figures(30, 10), deactivations: { rule: "deactivate_percent", count: 10, of: 30, limit: 10 }, updates: null },
  { name: "more than maxDeactivations at any share", figures: figures(100_000, 501), deactivations: { rule: "deactivate_count", count: 501, of: 100_000, limit: 500 }, updates: null },
  { name: "exactly maxDeactivations is allowed", figures: figures(100_000, 500), deactivations: null, updates: null },
  { name: "the count rule wins over the percentage", figures: figures(600, 600), deactivations: { rule: "deactivate_count", count: 600, of: 600, limit: 500 }, updates: null },
  { name: "a small type brought to zero is emptied", figures: figures(3, 3), deactivations: { rule: "emptied", count: 3, of: 3, limit: 0 }, updates: null },
  { name: "emptied counts what the run adds: replaced, not emptied", figures: figures(3, 3, 0, 1), deactivations: null, updates: null },
  { name: "the percentage wins over emptied", figures: figures(12, 12), deactivations: { rule: "deactivate_percent", count: 12, of: 12, limit: 10 }, updates: null },
  { name: "holdEmptying off lets a small type empty", figures: figures(3, 3), rules: { holdEmptying: false }, deactivations: null, updates: null },
  { name: "a type with no active records cannot be emptied", figures: figures(0, 2), deactivations: null, updates: null },
  { name: "updates over 75 % from minRecords up", figures: figures(100, 0, 76), deactivations: null, updates: { rule: "update_percent", count: 76, of: 100, limit: 75 } },
  { name: "75 % of updates is allowed", figures: figures(100, 0, 75), deactivations: null, updates: null },
  { name: "updates under minRecords are never held", figures: figures(4, 0, 4), deactivations: null, updates: null },
  {
    name: "deactivations and updates are judged apart",
    figures: figures(100, 20, 80),
    deactivations: { rule: "deactivate_percent", count: 20, of: 100, limit: 10 },
    updates: { rule: "update_percent", count: 80, of: 100, limit: 75 }
  },
  {
    name: "the district's own thresholds",
    figures: figures(1000, 40, 0),
    rules: { maxDeactivations: 30, maxDeactivatePercent: 50 },
    deactivations: { rule: "deactivate_count", count: 40, of: 1000, limit: 30 },
    updates: null
  },
  { name: "a lower minRecords makes a small share count", figures: figures(20, 3), rules: { minRecords: 2 }, deactivations: { rule: "deactivate_percent", count: 3, of: 20, limit: 10 }, updates: null }
]

describe("Gate.judge", () => {
  for (const c of CASES) {
    it(c.name, () => {
      const verdict = judge(c.figures, rules(c.rules), "users")
      const expected = (e: Expected) => (e === null ? undefined : { kind: "users", group: "student", ...e })
      assert.deepStrictEqual(verdict.deactivations, expected(c.deactivations))
      assert.deepStrictEqual(verdict.updates, expected(c.updates))
    })
  }
})
