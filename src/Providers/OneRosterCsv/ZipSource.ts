import { Effect, type Scope } from "effect"
import type { Readable } from "node:stream"
import yauzl from "yauzl"
import { ProviderError } from "../../Domain/Errors.ts"
import type { ZipBudget } from "./ByteGuard.ts"
import type { CsvLimits } from "./CsvLimits.ts"
import { RATIO_FLOOR_BYTES, showBytes } from "./CsvLimits.ts"

/**
 * A zip's entries, judged from its central directory **before anything is inflated**:
 *
 * - more than `zip.maxEntries` entries (the count in the end record, before the directory
 *   is read), declared sizes past `maxFileBytes` per entry or `zip.maxTotalBytes` in all,
 *   or a compression ratio past `zip.maxRatio` (a zip bomb): `TooLarge`;
 * - an entry whose path leaves the zip (`..`, an absolute path, a drive letter), a link or
 *   other special entry (Unix mode bits), or a name listed twice: `Unsafe`;
 * - an encrypted entry, a compression method other than stored or deflate, a zip inside
 *   the zip: `Unsupported`.
 *
 * Declared sizes can lie, so while an entry inflates the real bytes are counted too
 * (yauzl stops an entry at its declared size; the `ByteGuard` counts against the caps and
 * the ratio): nothing is inflated past a cap. Entry names come from the zip, so a message
 * quotes one only when it is short and plain (`entry 3` otherwise).
 */

export interface ZipEntries {
  readonly has: (file: string) => boolean
  readonly open: (
    file: string,
    maxBytes: number,
    maxBytesSetting?: string
  ) => Effect.Effect<{ readonly stream: Readable; readonly zip: { readonly compressedSize: number; readonly budget: ZipBudget } }, ProviderError>
}

/** A name safe to print: short, printable ASCII without quotes or backslashes. */
const shown = (name: string, index: number) => (/^[\x20-\x7e]{1,120}$/.test(name) && !/["\\]/.test(name) ? `"${name}"` : `entry ${index}`)

const S_IFMT = 0o170000
const S_IFREG = 0o100000
const S_IFDIR = 0o040000
const S_IFLNK = 0o120000
/** "Version made by" upper byte: 3 = Unix, whose external attributes carry a mode in their upper half. */
const MADE_BY_UNIX = 3

interface Checked {
  readonly name: string
  readonly entry: yauzl.Entry
}

export const openZipEntries = (
  path: string,
  real: string,
  limits: CsvLimits
): Effect.Effect<ZipEntries, ProviderError, Scope.Scope> =>
  Effect.gen(function*() {
    const description = `zip ${path}`
    const refuse = (reason: ProviderError["reason"], message: string) => new ProviderError({ reason, message: `${description}: ${message}` })
    const zip = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          yauzl.openPromise(real, {
            lazyEntries: true,
            autoClose: false,
            // Names are decoded and judged here (yauzl's own check would quote the name in its error).
            decodeStrings: false,
            validateEntrySizes: true
          }),
        catch: (cause) =>
          new ProviderError({ reason: "Malformed", message: `${path} is neither a folder nor a readable zip: ${zipErrorText(cause)}` })
      }),
      (zip) => Effect.sync(() => zip.close())
    )
    if (zip.entryCount > limits.zip.maxEntries) {
      return yield* refuse("TooLarge", `${zip.entryCount} entries, more than ${limits.zip.maxEntries} (rosterd.csv.zip.maxEntries)`)
    }
    const entries = yield* Effect.async<Map<string, Checked>, ProviderError>((resume) => {
      const found = new Map<string, Checked>()
      let index = 0
      let declared = 0
      let done = false
      const stop = (error: ProviderError) => {
        if (done) return
        done = true
        resume(Effect.fail(error))
      }
      zip.on("entry", (entry: yauzl.Entry) => {
        if (done) return
        index += 1
        const problem = judge(entry, index, limits, found)
        if (typeof problem !== "string") return stop(refuse(problem.reason, problem.message))
        declared += entry.uncompressedSize
        if (declared > limits.zip.maxTotalBytes) {
          return stop(refuse("TooLarge", `its entries declare more than ${showBytes(limits.zip.maxTotalBytes)} in all (rosterd.csv.zip.maxTotalBytes)`))
        }
        if (!problem.endsWith("/")) found.set(problem, { name: problem, entry })
        zip.readEntry()
      })
      zip.once("end", () => {
        if (done) return
        done = true
        resume(Effect.succeed(found))
      })
      zip.once("error", (cause: unknown) => stop(refuse("Malformed", `the zip is damaged: ${zipErrorText(cause)}`)))
      zip.readEntry()
    })
    // Files at the root, or all inside one top-level folder.
    const prefix = entries.has("manifest.csv")
      ? ""
      : (() => {
        const manifests = [...entries.keys()].filter((name) => /^[^/]+\/manifest\.csv$/.test(name))
        return manifests.length === 1 ? manifests[0]!.slice(0, -"manifest.csv".length) : ""
      })()
    const budget: ZipBudget = { inflated: 0, maxTotalBytes: limits.zip.maxTotalBytes, maxRatio: limits.zip.maxRatio, zipDescription: description }
    return {
      has: (file) => entries.has(prefix + file),
      open: (file, maxBytes, maxBytesSetting) => {
        const checked = entries.get(prefix + file)
        if (checked === undefined) return Effect.fail(new ProviderError({ reason: "MissingFile", message: "not in the zip", file }))
        const { entry } = checked
        if (entry.uncompressedSize > maxBytes) {
          return Effect.fail(
            new ProviderError({
              reason: "TooLarge",
              message: `the zip entry declares ${showBytes(entry.uncompressedSize)}, more than ${showBytes(maxBytes)} (${maxBytesSetting ?? "rosterd.csv.maxFileBytes"})`,
              file
            })
          )
        }
        return Effect.tryPromise({
          try: () => zip.openReadStreamPromise(entry),
          catch: (cause) => new ProviderError({ reason: "Malformed", message: `cannot unzip: ${zipErrorText(cause)}`, file })
        }).pipe(Effect.map((stream) => ({ stream, zip: { compressedSize: entry.compressedSize, budget } })))
      }
    } satisfies ZipEntries
  })

/** The entry's checked name (directories end with `/`), or why it is refused. */
const judge = (
  entry: yauzl.Entry,
  index: number,
  limits: CsvLimits,
  found: ReadonlyMap<string, Checked>
): string | { readonly reason: ProviderError["reason"]; readonly message: string } => {
  // Backslashes as separators, as yauzl does (old Windows tools write them).
  const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, true).replace(/\\/g, "/")
  const label = shown(name, index)
  if (name.length === 0 || /[\x00-\x1f\x7f]/.test(name)) {
    return { reason: "Unsafe", message: `entry ${index} has an empty name or control characters in its name: refused` }
  }
  if (name.startsWith("/") || /^[a-zA-Z]:/.test(name) || name.split("/").includes("..")) {
    return { reason: "Unsafe", message: `entry ${label} has a path outside the zip (an absolute path or ".."): refused` }
  }
  const isDirectory = name.endsWith("/")
  if (entry.versionMadeBy >> 8 === MADE_BY_UNIX) {
    const type = (entry.externalFileAttributes >>> 16) & S_IFMT
    if (type === S_IFLNK) return { reason: "Unsafe", message: `entry ${label} is a symbolic link: refused` }
    if (type !== 0 && type !== S_IFREG && type !== S_IFDIR) return { reason: "Unsafe", message: `entry ${label} is not a regular file: refused` }
  }
  if (found.has(name)) return { reason: "Unsafe", message: `entry ${label} is listed twice: which one is the set's cannot be told` }
  if (isDirectory) return name
  if (/\.zip$/i.test(name)) return { reason: "Unsupported", message: `entry ${label} is a zip inside the zip: rosterd reads one level (unzip it into the set)` }
  if (entry.isEncrypted()) return { reason: "Unsupported", message: `entry ${label} is encrypted: rosterd reads unencrypted zips (protect the drop folder instead)` }
  if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
    return { reason: "Unsupported", message: `entry ${label} uses compression method ${entry.compressionMethod}; rosterd reads stored and deflated entries` }
  }
  if (entry.uncompressedSize > limits.maxFileBytes) {
    return {
      reason: "TooLarge",
      message: `entry ${label} declares ${showBytes(entry.uncompressedSize)}, more than ${showBytes(limits.maxFileBytes)} (rosterd.csv.maxFileBytes)`
    }
  }
  if (entry.uncompressedSize > RATIO_FLOOR_BYTES && entry.uncompressedSize / Math.max(entry.compressedSize, 1) > limits.zip.maxRatio) {
    const ratio = Math.round(entry.uncompressedSize / Math.max(entry.compressedSize, 1))
    return {
      reason: "TooLarge",
      message: `entry ${label} declares a compression ratio of ${ratio}:1, more than ${limits.zip.maxRatio}:1 (rosterd.csv.zip.maxRatio): a zip bomb, or a damaged zip`
    }
  }
  return name
}

/**
 * yauzl's messages, without entry names (its own name checks are off): the size checks say
 * "too many bytes in the stream" when an entry inflates past its declared size.
 */
export const zipErrorText = (cause: unknown): string => {
  const text = cause instanceof Error ? cause.message : String(cause)
  if (/too many bytes in the stream|not enough bytes in the stream/.test(text)) {
    return "an entry does not inflate to the size it declares (a damaged or hostile zip)"
  }
  return text.replace(/[^\x20-\x7e]/g, "?").slice(0, 200)
}
