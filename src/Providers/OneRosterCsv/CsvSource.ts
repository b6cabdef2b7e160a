import { Effect } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { Readable } from "node:stream"
import yauzl from "yauzl"
import { ProviderError } from "../../Domain/Errors.ts"

/**
 * A OneRoster CSV set on disk: a folder, or a zip with the files at its root (or inside
 * one top-level folder, as some SIS exports do). Files are opened as streams, one at a
 * time, so nothing is ever read into memory whole.
 */
export interface CsvSource {
  /** For messages: "folder /data/district-x" or "zip /data/x.zip". */
  readonly description: string
  readonly has: (file: string) => boolean
  readonly open: (file: string) => Effect.Effect<Readable, ProviderError>
}

const unreachable = (message: string, file?: string) =>
  new ProviderError({ reason: "Unreachable", message, ...(file === undefined ? {} : { file }) })

const errorText = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

export const openCsvSource = (path: string): Effect.Effect<CsvSource, ProviderError, import("effect").Scope.Scope> =>
  Effect.gen(function*() {
    const stat = yield* Effect.tryPromise({
      try: () => Fs.promises.stat(path),
      catch: () => unreachable(`the CSV set ${path} does not exist or cannot be read`)
    })
    return stat.isDirectory() ? yield* openFolder(path) : yield* openZip(path)
  })

const openFolder = (path: string) =>
  Effect.tryPromise({
    try: () => Fs.promises.readdir(path),
    catch: (cause) => unreachable(`cannot list the CSV folder ${path}: ${errorText(cause)}`)
  }).pipe(
    Effect.map((entries): CsvSource => {
      const files = new Set(entries)
      return {
        description: `folder ${path}`,
        has: (file) => files.has(file),
        open: (file) =>
          Effect.try({
            try: () => Fs.createReadStream(NodePath.join(path, file), { highWaterMark: 1 << 20 }),
            catch: (cause) => unreachable(`cannot open: ${errorText(cause)}`, file)
          })
      }
    })
  )

const openZip = (path: string) =>
  Effect.gen(function*() {
    const zip = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => yauzl.openPromise(path, { lazyEntries: true, autoClose: false, decodeStrings: true }),
        catch: (cause) =>
          new ProviderError({ reason: "Malformed", message: `${path} is neither a folder nor a readable zip: ${errorText(cause)}` })
      }),
      (zip) => Effect.sync(() => zip.close())
    )
    const entries = yield* Effect.async<Map<string, yauzl.Entry>, ProviderError>((resume) => {
      const found = new Map<string, yauzl.Entry>()
      zip.on("entry", (entry: yauzl.Entry) => {
        if (!entry.fileName.endsWith("/")) found.set(entry.fileName, entry)
        zip.readEntry()
      })
      zip.once("end", () => resume(Effect.succeed(found)))
      zip.once("error", (cause: unknown) =>
        resume(Effect.fail(new ProviderError({ reason: "Malformed", message: `the zip ${path} is damaged: ${errorText(cause)}` })))
      )
      zip.readEntry()
    })
    // Files at the root, or all inside one top-level folder.
    const prefix = entries.has("manifest.csv")
      ? ""
      : (() => {
        const manifests = [...entries.keys()].filter((name) => /^[^/]+\/manifest\.csv$/.test(name))
        return manifests.length === 1 ? manifests[0]!.slice(0, -"manifest.csv".length) : ""
      })()
    return {
      description: `zip ${path}`,
      has: (file) => entries.has(prefix + file),
      open: (file) => {
        const entry = entries.get(prefix + file)
        return entry === undefined
          ? Effect.fail(new ProviderError({ reason: "MissingFile", message: "not in the zip", file }))
          : Effect.tryPromise({
            try: () => zip.openReadStreamPromise(entry),
            catch: (cause) => new ProviderError({ reason: "Malformed", message: `cannot unzip: ${errorText(cause)}`, file })
          })
      }
    } satisfies CsvSource
  })
