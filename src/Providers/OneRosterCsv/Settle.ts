import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { ProviderError } from "../../Domain/Errors.ts"
import type { CsvLimits } from "./CsvLimits.ts"

/**
 * A set still being written is not read (issue 14): an SIS export lands file by file, over
 * SFTP or a copy that takes minutes, and a run that read it half-way would apply a roster
 * with people missing. A set is **settled** when
 *
 * 1. no file of it (nor the folder itself, whose time moves when a file is added, removed or
 *    renamed) was modified within `rosterd.csv.settleSeconds` — by this host's clock — and
 * 2. two looks `rosterd.csv.settleRecheckMillis` apart see the same files with the same
 *    sizes, times and inodes (a writer on a machine whose clock is behind), and
 * 3. once read, it still is what the second look saw (`unchangedSince`, checked at the end
 *    of every file): a writer that starts during the run cannot leave it half old, half new.
 *
 * Otherwise the run fails with `NotReady` and a `retryAfterMillis`: the reconcile records
 * it `deferred` (not failed, nothing applied), and the daemon tries again then.
 */

export interface Seen {
  readonly size: number
  readonly mtimeMs: number
  readonly ino: number
}

export interface Look {
  /** The set's files present (by name), as `lstat` saw them. */
  readonly files: ReadonlyMap<string, Seen>
  /** The folder itself, or the zip file. */
  readonly self: Seen & { readonly name: string }
}

const seen = (stat: Fs.Stats): Seen => ({ size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino })

const cannotLook = (what: string, cause: unknown) =>
  new ProviderError({
    reason: "Unreachable",
    message: `cannot look at ${what} (${(cause as { code?: string } | undefined)?.code ?? "unknown"})`
  })

/**
 * The folder and those of `names` present in it. Only the set's own names are looked at,
 * one `lstat` each (a link is seen as the link): whatever else the folder holds costs
 * nothing.
 */
export const lookAtFolder = (folder: string, names: ReadonlyArray<string>): Effect.Effect<Look, ProviderError> =>
  Effect.tryPromise({
    try: async () => {
      const files = new Map<string, Seen>()
      for (const name of names) {
        try {
          files.set(name, seen(await Fs.promises.lstat(NodePath.join(folder, name))))
        } catch (cause) {
          if ((cause as { code?: string }).code !== "ENOENT") throw cause // not there
        }
      }
      return { files, self: { name: "the folder", ...seen(await Fs.promises.stat(folder)) } } satisfies Look
    },
    catch: (cause) => cannotLook(folder, cause)
  })

export const lookAtZip = (zip: string): Effect.Effect<Look, ProviderError> =>
  Effect.tryPromise({
    try: async () => ({ files: new Map<string, Seen>(), self: { name: NodePath.basename(zip), ...seen(await Fs.promises.stat(zip)) } }),
    catch: (cause) => cannotLook(zip, cause)
  })

/**
 * The system's clock, not Effect's: file times are the system's, and tests move Effect's
 * clock. (A real timer for the same reason.)
 */
const wallClock = Effect.sync(() => Date.now())
const realSleep = (millis: number) =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

const seconds = (millis: number) => `${Math.max(0, Math.round(millis / 1000))} s`

/** The message names the file itself (no `file` field: the note reads as one sentence). */
const notReady = (description: string, message: string, retryAfterMillis: number) =>
  new ProviderError({
    reason: "NotReady",
    message: `the ${description} is still being written: ${message}; nothing was read, the run is deferred and tried again in ${seconds(retryAfterMillis)}`,
    retryAfterMillis
  })

/** The first difference between two looks, named by file (or `undefined`: the same). */
const difference = (before: Look, after: Look): { readonly name: string; readonly what: string } | undefined => {
  for (const [name, was] of before.files) {
    const now = after.files.get(name)
    if (now === undefined) return { name, what: "was removed" }
    const changed = changeOf(was, now)
    if (changed !== undefined) return { name, what: changed }
  }
  for (const name of after.files.keys()) if (!before.files.has(name)) return { name, what: "appeared" }
  const self = changeOf(before.self, after.self)
  return self === undefined ? undefined : { name: before.self.name, what: self }
}

const changeOf = (was: Seen, now: Seen): string | undefined =>
  was.ino !== now.ino
    ? "was replaced"
    : was.size !== now.size
    ? `changed size (${was.size} → ${now.size} bytes)`
    : was.mtimeMs !== now.mtimeMs
    ? "was modified"
    : undefined

/** Looks twice (unless `settleSeconds` is 0): fails `NotReady` unless the set is settled, else returns the look the read is held to. */
export const awaitSettled = (
  description: string,
  look: () => Effect.Effect<Look, ProviderError>,
  limits: CsvLimits
): Effect.Effect<Look, ProviderError> =>
  Effect.gen(function*() {
    const first = yield* look()
    if (limits.settleSeconds === 0) return first
    const settle = limits.settleSeconds * 1000
    const now = yield* wallClock
    // The most recently modified of the set's files and the folder; a time ahead of this
    // host's clock counts as recent too (clocks disagree: wait for it like for a write).
    let newest: { readonly name: string; readonly age: number } | undefined
    for (const [name, file] of [...first.files, [first.self.name, first.self] as const]) {
      const age = now - file.mtimeMs
      if (Math.abs(age) < settle && (newest === undefined || age < newest.age)) newest = { name, age }
    }
    if (newest !== undefined) {
      const when = newest.age >= 0 ? `${seconds(newest.age)} ago` : `${seconds(-newest.age)} ahead of this host's clock`
      return yield* notReady(
        description,
        `${newest.name} was modified ${when} (rosterd.csv.settleSeconds: ${limits.settleSeconds})`,
        Math.max(settle - newest.age, limits.settleRecheckMillis, 1000)
      )
    }
    if (limits.settleRecheckMillis === 0) return first
    yield* realSleep(limits.settleRecheckMillis)
    const second = yield* look()
    const changed = difference(first, second)
    if (changed !== undefined) {
      return yield* notReady(
        description,
        `${changed.name} ${changed.what} between two looks ${limits.settleRecheckMillis} ms apart`,
        settle
      )
    }
    return second
  })

/** Fails `NotReady` when the set is no longer what `before` saw (checked once a file is read). */
export const unchangedSince = (
  before: Look,
  look: () => Effect.Effect<Look, ProviderError>,
  limits: CsvLimits
): Effect.Effect<void, ProviderError> =>
  Effect.gen(function*() {
    const after = yield* look()
    const changed = difference(before, after)
    if (changed === undefined) return
    return yield* new ProviderError({
      reason: "NotReady",
      message: `the set changed while it was read: ${changed.name} ${changed.what}; nothing was applied, the run is deferred and tried again in ${
        seconds(Math.max(limits.settleSeconds * 1000, 1000))
      }`,
      retryAfterMillis: Math.max(limits.settleSeconds * 1000, 1000)
    })
  })
