import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { CapturedLogs, captureLogsLayer, withPeakMemory } from "../support/Hostile.ts"

it.effect("the harness captures debug log lines and measures memory", () =>
  Effect.gen(function*() {
    const { exit, grewMiB } = yield* withPeakMemory(Effect.logDebug("hello").pipe(Effect.annotateLogs({ x: "canary-1" })))
    assert.strictEqual(exit._tag, "Success")
    assert.isAtLeast(grewMiB, 0)
    const logs = yield* CapturedLogs
    assert.include(logs.text(), "canary-1")
  }).pipe(Effect.provide(captureLogsLayer)))
