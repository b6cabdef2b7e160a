import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { DistrictLease } from "../../src/Reconcile/Lease.ts"
import { TestDatabase } from "../support/Database.ts"

/** District leases and the cluster's run slots, on a real Postgres: taken at once or refused, let go with their scope. */
const TestLayer = DistrictLease.Default.pipe(Layer.provideMerge(TestDatabase))

layer(TestLayer, { timeout: "60 seconds", excludeTestServices: true })("leases", (it) => {
  it.effect("a district's lease is held by one holder at a time", () =>
    Effect.gen(function*() {
      const leases = yield* DistrictLease
      const scope = yield* Scope.make()
      yield* Scope.extend(leases.hold("a"), scope)
      const busy = yield* Effect.flip(Effect.scoped(leases.hold("a")))
      assert.strictEqual(busy._tag, "DistrictBusy")
      yield* Effect.scoped(leases.hold("b")) // another district is free
      yield* Scope.close(scope, Exit.void)
      yield* Effect.scoped(leases.hold("a"))
    }))

  it.effect("run slots: at most `limit` held across holders; a slot is free again when its holder's scope ends", () =>
    Effect.gen(function*() {
      const leases = yield* DistrictLease
      const first = yield* Scope.make()
      const second = yield* Scope.make()
      const take = (district: string, scope: Scope.CloseableScope) =>
        Scope.extend(Effect.flatMap(leases.hold(district), (lease) => leases.holdRunSlot(lease, 2)), scope)
      assert.isTrue(yield* take("x", first))
      assert.isTrue(yield* take("y", second))
      const third = yield* Scope.make()
      assert.isFalse(yield* take("z", third))
      yield* Scope.close(third, Exit.void)
      yield* Scope.close(first, Exit.void)
      const fourth = yield* Scope.make()
      assert.isTrue(yield* take("z", fourth))
      // A larger limit has room at once.
      assert.isTrue(yield* Effect.scoped(Effect.flatMap(leases.hold("w"), (lease) => leases.holdRunSlot(lease, 3))))
      yield* Scope.close(second, Exit.void)
      yield* Scope.close(fourth, Exit.void)
    }))
})
