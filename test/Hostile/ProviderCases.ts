import { assert } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Option } from "effect"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Https from "node:https"
import type { AddressInfo } from "node:net"
import * as NodePath from "node:path"
import { Readable } from "node:stream"
import type { DistrictId } from "../../src/Domain/District.ts"
import type { SyncRequest } from "../../src/Providers/RosterProvider.ts"
import { Sync } from "../../src/Reconcile/SyncRun.ts"
import { RosterStore } from "../../src/Store/RosterStore.ts"
import { type FakeOneRoster, fromOneRosterCsv, start as startOneRoster } from "../support/FakeOneRoster/index.ts"
import { generated, tempDir } from "../support/Fixtures.ts"
import {
  assertBoundedMemory,
  assertNames,
  assertNoLeak,
  assertNothingApplied,
  CapturedLogs,
  captureLogsLayer,
  lastRunId,
  runRecordText,
  withPeakMemory
} from "../support/Hostile.ts"

/**
 * What the provider-side hostile files (HttpBehaviour, CleverJson, OneRosterJson) share:
 * one run of a district against a misbehaving fake server, measured and checked the way
 * test/support/Hostile.ts describes — bounded memory, nothing applied, an error (or a
 * finding) that names what and where without echoing the value, no secret or personal value
 * in the logs, the run record or the findings.
 */

export interface Outcome {
  readonly exit: Exit.Exit<unknown, unknown>
  /** The failure, when the run failed. */
  readonly error: { readonly _tag: string; readonly reason?: string; readonly message: string } | undefined
  readonly record: Effect.Effect.Success<ReturnType<typeof runRecordText>>
  readonly logs: string
  readonly grewMiB: number
}

/** Runs one sync of `district` with `arrange` in force (faults injected), undone by `undo` whatever happens. */
export const hostileRun = (district: string, request: SyncRequest, arrange: () => void, undo: () => void) =>
  Effect.gen(function*() {
    const captured = yield* CapturedLogs
    captured.lines.length = 0
    const sync = yield* Sync
    const measured = yield* withPeakMemory(
      assertNothingApplied(Effect.suspend(() => {
        arrange()
        return sync.run(district, { request, trigger: "hostile" })
      }).pipe(Effect.ensuring(Effect.sync(undo))))
    )
    // The nothing-applied assertion itself failing is the test failing.
    const exit = yield* measured.exit
    const runId = yield* lastRunId(district)
    const record = yield* runRecordText(runId!)
    const failure = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
    if (Exit.isFailure(exit) && failure === undefined) assert.fail(`the run died instead of failing: ${Cause.pretty(exit.cause)}`)
    return { exit, error: failure as Outcome["error"], record, logs: captured.text(), grewMiB: measured.grewMiB } satisfies Outcome
  }).pipe(Effect.provide(captureLogsLayer))

/** The run failed with `reason` (a ProviderError's reason, or another error's tag), recorded `failed`, naming `names`. */
export const assertRejected = (
  outcome: Outcome,
  expected: { readonly reason: string; readonly names: ReadonlyArray<string | RegExp>; readonly leaks: ReadonlyArray<string>; readonly memoryMiB?: number }
) => {
  assert.isTrue(Exit.isFailure(outcome.exit), "the run should have failed")
  const error = outcome.error!
  assert.strictEqual(error.reason ?? error._tag, expected.reason, `failed with ${error._tag} ${error.reason ?? ""}: ${error.message}`)
  assertNames(error.message, expected.names, "the error")
  assert.strictEqual(outcome.record.run?.status, "failed")
  assert.strictEqual(outcome.record.run?.errorReason, expected.reason)
  assertNames(outcome.record.run?.error ?? "", expected.names, "the run record")
  assertNoLeak(`${error.message}\n${outcome.record.text}\n${outcome.logs}`, expected.leaks, "the error, run record or logs")
  assertBoundedMemory(outcome.grewMiB, expected.memoryMiB)
}

/** The run applied (nothing changed), with findings naming `names` (a record held out, not the run failed). */
export const assertHeldOut = (
  outcome: Outcome,
  expected: { readonly codes: ReadonlyArray<string>; readonly names: ReadonlyArray<string | RegExp>; readonly leaks: ReadonlyArray<string> }
) => {
  assert.isTrue(Exit.isSuccess(outcome.exit), `the run should have applied: ${outcome.error?.message ?? ""}`)
  assert.include(["succeeded", "held"], outcome.record.run?.status)
  const codes = new Set(outcome.record.findings.map((f) => f.code))
  for (const code of expected.codes) assert.isTrue(codes.has(code), `no ${code} finding (got ${[...codes].join(", ")})`)
  const findings = outcome.record.findings.map((f) => `${f.code} ${f.file ?? ""} line ${f.line ?? ""} ${f.sourceId ?? ""}: ${f.detail}`).join("\n")
  assertNames(findings, expected.names, "the findings")
  assertNoLeak(`${outcome.record.text}\n${outcome.logs}`, expected.leaks, "the run record, findings or logs")
  assertBoundedMemory(outcome.grewMiB)
}

/** Adds a district and brings it to a first good full sync: the state every case must leave as it is. */
export const addAndSync = (id: string, provider: "clever" | "oneroster-rest", settings: Record<string, unknown>) =>
  Effect.gen(function*() {
    const store = yield* RosterStore
    yield* store.addDistrict({ id: id as DistrictId, name: id, provider, timezone: "UTC", settings })
    const summary = yield* Effect.flatMap(Sync, (sync) => sync.run(id, { request: "full", trigger: "test" }))
    assert.strictEqual(summary.status, "succeeded")
  })

/** A server on another origin that only records who knocked, and whether they brought credentials. */
export interface Catcher {
  readonly url: string
  readonly requests: Array<{ readonly path: string; readonly authorization: boolean }>
  close(): Promise<void>
}

export const startCatcher = async (): Promise<Catcher> => {
  const requests: Catcher["requests"] = []
  const server = Http.createServer((req, res) => {
    requests.push({ path: req.url ?? "", authorization: req.headers.authorization !== undefined })
    res.writeHead(200, { "Content-Type": "application/json" })
    res.end(`{"data":[],"links":[]}`)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
  }
}

/**
 * A `fetch` that trusts `ca` for https (Node's own does not take a CA per call): plain
 * `node:https` underneath, the body streamed. Plain http goes to the global fetch.
 */
export const fetchTrusting = (ca: string): typeof globalThis.fetch => (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input))
  if (url.protocol !== "https:") return globalThis.fetch(input, init)
  return new Promise<Response>((resolve, reject) => {
    const request = Https.request(url, { method: init?.method ?? "GET", headers: Object.fromEntries(new Headers(init?.headers)), ca }, (res) => {
      const headers = new Headers()
      for (const [name, value] of Object.entries(res.headers)) {
        if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value)
      }
      const status = res.statusCode ?? 500
      const body = status === 204 || status === 304 ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>)
      resolve(new Response(body, { status, headers }))
    })
    init?.signal?.addEventListener("abort", () => request.destroy(new Error("aborted")))
    request.on("error", reject)
    request.end()
  })
}

/** The fake OneRoster server over a generated district, with OAuth credentials in files. */
export interface ServedOneRoster extends FakeOneRoster {
  readonly files: { readonly key: string; readonly secret: string }
  readonly key: string
  readonly secret: string
}
export class HostileOneRoster extends Context.Tag("test/HostileOneRoster")<HostileOneRoster, ServedOneRoster>() {}

export const hostileOneRosterLayer = (students: number) =>
  Layer.scoped(
    HostileOneRoster,
    Effect.acquireRelease(
      Effect.promise(async () => {
        const dir = tempDir("hostile-oneroster-")
        const csv = NodePath.join(dir.dir, "csv")
        generated(csv, students)
        const key = "hostile-consumer-key"
        const secret = "hostile-consumer-secret-0123456789"
        const fake = await startOneRoster(await fromOneRosterCsv(csv), { oauth: { key, secret }, maxLimit: 1000 })
        const write = (name: string, value: string) => {
          const file = NodePath.join(dir.dir, name)
          Fs.writeFileSync(file, value)
          return file
        }
        return Object.assign(fake, { files: { key: write("key", key), secret: write("secret", secret) }, key, secret, remove: dir.remove })
      }),
      (fake) =>
        Effect.promise(async () => {
          await fake.close()
          fake.remove()
        })
    )
  )

/** Personal values of the OneRoster district's users: never to be printed. */
export const oneRosterPersonal = (fake: FakeOneRoster): Array<string> =>
  fake.district.table("users").all().slice(0, 40).flatMap((raw) => {
    const user = raw as unknown as { readonly givenName?: string; readonly familyName?: string; readonly email?: string }
    return [user.email ?? "", `${user.givenName ?? ""} ${user.familyName ?? ""}`.trim()]
  }).filter((value) => value.length >= 6)
