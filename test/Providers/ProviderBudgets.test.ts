import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { ProviderBudgets } from "../../src/Providers/Http.ts"

describe("provider request budgets", () => {
  it.scoped("one budget per credential, shared by every run that uses it, spacing requests to the limit", () =>
    Effect.gen(function*() {
      const budgets = yield* ProviderBudgets
      const a = yield* budgets.forCredential("clever", "token-a", 2)
      const again = yield* budgets.forCredential("clever", "token-a", 2)
      const b = yield* budgets.forCredential("clever", "token-b", 2)
      assert.strictEqual(again, a)
      assert.notStrictEqual(b, a)

      // 2 a minute: the first two go at once, the next ones wait their turn.
      const done: Array<number> = []
      const request = (n: number) => a(Effect.sync(() => done.push(n)))
      const fiber = yield* Effect.forkScoped(Effect.all([request(1), request(2), request(3), request(4)], { concurrency: "unbounded" }))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(done.length, 2)
      yield* TestClock.adjust("31 seconds")
      assert.strictEqual(done.length, 3)
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(done.length, 4)
      yield* Fiber.join(fiber)
      // Another credential is not held back by the first one's queue.
      const other = yield* b(Effect.succeed("at once"))
      assert.strictEqual(other, "at once")
    }).pipe(Effect.provide(ProviderBudgets.Default)))
})
