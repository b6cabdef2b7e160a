import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Exit } from "effect"
import {
  checkAdvance,
  collectionCaps,
  defaultProviderLimits,
  makeCollectionGuard,
  pageKey,
  parseByteSize,
  parseCountHeader,
  ProviderLimitsConfig
} from "../../src/Providers/Limits.ts"

/**
 * The pure parts of the providers' bounds (src/Providers/Limits.ts): count headers read
 * strictly, caps from the last full count, the guard that counts a listing, and the check
 * that a next link moves on. The same code against misbehaving servers is test/Hostile.
 */

describe("count headers", () => {
  it("read a plain non-negative integer; absent is null", () => {
    assert.strictEqual(parseCountHeader("0"), 0)
    assert.strictEqual(parseCountHeader(" 1234 "), 1234)
    assert.strictEqual(parseCountHeader(undefined), null)
  })

  it("refuse what Number() would read as a number or as something else", () => {
    for (const value of ["", "1e3", "-1", "0x10", "12abc", "1.5", "Infinity", "5, 5", "99999999999999999", "１２"]) {
      assert.strictEqual(parseCountHeader(value), "invalid", value)
    }
  })
})

describe("caps", () => {
  it("records: 10 × the last full count + 10,000, at most maxRecords; pages from the page size", () => {
    const caps = collectionCaps(defaultProviderLimits, 1_000, 100)
    assert.strictEqual(caps.records, 20_000)
    assert.strictEqual(caps.pages, 210)
    assert.match(caps.recordsBasis, /10 × the 1,000 of the last full sync \+ 10,000; rosterd\.providers\.recordsGrowth/)
    assert.strictEqual(collectionCaps(defaultProviderLimits, 10_000_000, 1000).records, 50_000_000)
  })

  it("a first sync (no count yet) is capped by maxRecords, and says so", () => {
    const caps = collectionCaps(defaultProviderLimits, undefined, 1000)
    assert.strictEqual(caps.records, defaultProviderLimits.maxRecords)
    assert.match(caps.recordsBasis, /rosterd\.providers\.maxRecords, the cap while there is no earlier full sync/)
  })

  it("are read from rosterd.providers.*, sizes with units", () =>
    Effect.gen(function*() {
      const limits = yield* ProviderLimitsConfig.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
          ["rosterd.providers.maxResponseBytes", "8 MiB"],
          ["rosterd.providers.maxCollectionBytes", "2GiB"],
          ["rosterd.providers.recordsGrowth", "3"],
          ["rosterd.providers.recordsMargin", "50"]
        ])))
      )
      assert.deepStrictEqual(limits, { ...defaultProviderLimits, maxResponseBytes: 8 * 1024 ** 2, maxCollectionBytes: 2 * 1024 ** 3, recordsGrowth: 3, recordsMargin: 50 })
      assert.strictEqual(parseByteSize("67108864"), 64 * 1024 ** 2)
      assert.strictEqual(parseByteSize("500 MB"), 500_000_000)
      assert.strictEqual(parseByteSize("lots"), undefined)
      const bad = yield* Effect.exit(ProviderLimitsConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["rosterd.providers.maxResponseBytes", "a lot"]])))))
      assert.isTrue(Exit.isFailure(bad))
    }).pipe(Effect.runPromise))
})

describe("the collection guard", () => {
  const caps = { records: 25, pages: 4, bytes: 1000, recordsBasis: "the basis", pagesBasis: "the page basis" }

  it("counts pages, records and bytes, and fails past a cap naming the listing and the basis", () =>
    Effect.gen(function*() {
      const guard = makeCollectionGuard("Clever", "GET /v3.0/users", caps)
      yield* guard.page("p1", ["a", "b"], 100)
      assert.strictEqual(guard.records(), 2)
      const error = yield* Effect.flip(guard.page("p2", Array.from({ length: 24 }, (_, i) => `x${i}`), 100))
      assert.strictEqual(error.reason, "TooLarge")
      assert.match(error.message, /^Clever: GET \/v3\.0\/users lists more than 25 records \(the basis\)/)
      const bytes = yield* Effect.flip(makeCollectionGuard("Clever", "GET /v3.0/users", caps).page("p1", ["a"], 1001))
      assert.match(bytes.message, /sent more than 1000 bytes \(rosterd\.providers\.maxCollectionBytes\)/)
      const pages = makeCollectionGuard("Clever", "GET /v3.0/users", caps)
      for (let i = 0; i < 4; i++) yield* pages.page(`p${i}`, [], 1)
      assert.match((yield* Effect.flip(pages.page("p5", [], 1))).message, /goes on past 4 pages \(the page basis\)/)
    }).pipe(Effect.runPromise))

  it("fails on a page holding the same records as the one before it (not on pages without ids)", () =>
    Effect.gen(function*() {
      const guard = makeCollectionGuard("the OneRoster server", "GET /users", caps)
      yield* guard.page("offset 0", [undefined, undefined], 1)
      yield* guard.page("offset 2", [undefined, undefined], 1)
      yield* guard.page("offset 4", ["a", "b"], 1)
      const error = yield* Effect.flip(guard.page("offset 6", ["a", "b"], 1))
      assert.strictEqual(error.reason, "Malformed")
      assert.match(error.message, /offset 6 holds the same 2 records as the page before it \(offset 4\)/)
    }).pipe(Effect.runPromise))
})

describe("next links", () => {
  const base = "https://api.clever.com"
  const at = (path: string) => new URL(path, base)

  it("must move on: not the same page, not the same cursor, not an offset going back, not a page read before", () => {
    const from = at("/v3.0/users?limit=10&starting_after=b")
    const seen = new Set([pageKey(at("/v3.0/users?limit=10")), pageKey(from)])
    const why = (next: string) => {
      const result = checkAdvance("Clever", from, at(next), seen)
      return Either.isLeft(result) ? result.left.message : "ok"
    }
    assert.strictEqual(why("/v3.0/users?limit=10&starting_after=c"), "ok")
    assert.match(why("/v3.0/users?limit=10&starting_after=b"), /points to the same page/)
    assert.match(why("/v3.0/users?starting_after=b&limit=10&x=1"), /keeps the same starting_after/)
    assert.match(why("/v3.0/users?limit=10"), /points back to a page already read/)
    const offset = at("/users?offset=20")
    assert.isTrue(Either.isLeft(checkAdvance("X", offset, at("/users?offset=10"), new Set())))
    assert.isTrue(Either.isRight(checkAdvance("X", offset, at("/users?offset=30"), new Set())))
    // The link itself is never put into the message: only the page that carried it.
    assert.notInclude(why("/v3.0/users?limit=10&starting_after=b&evil=1"), "evil")
  })
})
