import { Effect, type Scope } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import type { Readable } from "node:stream"
import { ProviderError } from "../../Domain/Errors.ts"
import { ByteGuard } from "./ByteGuard.ts"
import type { CsvLimits } from "./CsvLimits.ts"
import { showBytes } from "./CsvLimits.ts"
import { CsvFiles } from "./Files.ts"
import { awaitSettled, type Look, lookAtFolder, lookAtZip, unchangedSince } from "./Settle.ts"
import { openZipEntries, zipErrorText } from "./ZipSource.ts"

/**
 * A OneRoster CSV set on disk: a folder, or a zip with the files at its root (or inside
 * one top-level folder, as some SIS exports do). Files are opened as streams, one at a
 * time, so nothing is ever read into memory whole; every byte passes a `ByteGuard` (sizes,
 * line lengths, UTF-8) before csv-parse sees it.
 *
 * **The path in the district's settings is the operator's**: it (or a folder on the way to
 * it) may be a symbolic link — a mount, or a link switched to publish a complete set in one
 * step — and is resolved once, when the run opens the set. **Inside the set nothing is
 * followed**: only the set's own file names are read, each opened with `O_NOFOLLOW` and
 * checked to be a regular file (not a link, a directory, a FIFO or a device), so a link
 * dropped into the folder cannot make rosterd read `/etc/passwd` or another district's drop.
 */
export interface CsvSource {
  /** For messages: "folder /data/district-x" or "zip /data/x.zip". */
  readonly description: string
  readonly has: (file: string) => boolean
  readonly open: (file: string, options?: OpenOptions) => Effect.Effect<Readable, ProviderError>
  /**
   * Fails with `NotReady` when a file of the set changed since the set was opened: a writer
   * started meanwhile, and what was read may be half old, half new.
   */
  readonly unchanged: Effect.Effect<void, ProviderError>
}

export interface OpenOptions {
  /** Instead of `maxFileBytes` (the manifest's own cap). */
  readonly maxBytes?: number
  readonly maxBytesSetting?: string
  readonly maxLineBytes?: number
  readonly maxLineSetting?: string
}

/** Every name a set is read by: nothing else in a folder is ever opened or looked at. */
export const SET_FILES: ReadonlyArray<string> = ["manifest.csv", ...Object.values(CsvFiles).map((f) => f.spec.file), "roles.csv", "userProfiles.csv"]

const unreachable = (message: string, file?: string) =>
  new ProviderError({ reason: "Unreachable", message, ...(file === undefined ? {} : { file }) })

/** The code of a file-system error (`ENOENT`, `ELOOP`, …): messages are built from it, not from the error's text. */
export const errnoCode = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && typeof (cause as { code?: unknown }).code === "string"
    ? (cause as { code: string }).code
    : "unknown"

/** What a non-regular file is, for messages. */
export const fileKind = (stat: Fs.Stats | Fs.Dirent): string =>
  stat.isDirectory()
    ? "a directory"
    : stat.isSymbolicLink()
    ? "a symbolic link"
    : stat.isFIFO()
    ? "a FIFO (named pipe)"
    : stat.isSocket()
    ? "a socket"
    : stat.isBlockDevice() || stat.isCharacterDevice()
    ? "a device"
    : "not a regular file"

export interface OpenSetOptions {
  /** Wait for a set still being written to settle (a run does; `doctor` only looks). */
  readonly settle: boolean
}

export const openCsvSource = (
  path: string,
  limits: CsvLimits,
  options: OpenSetOptions = { settle: true }
): Effect.Effect<CsvSource, ProviderError, Scope.Scope> =>
  Effect.gen(function*() {
    // Resolved once: a link switched to a new set later in the run does not mix two sets.
    const real = yield* Effect.tryPromise({
      try: () => Fs.promises.realpath(path),
      catch: (cause) =>
        unreachable(
          errnoCode(cause) === "ENOENT"
            ? `the CSV set ${path} does not exist`
            : `the CSV set ${path} cannot be read (${errnoCode(cause)})`
        )
    })
    const stat = yield* Effect.tryPromise({
      try: () => Fs.promises.stat(real),
      catch: (cause) => unreachable(`the CSV set ${path} cannot be read (${errnoCode(cause)})`)
    })
    if (stat.isDirectory()) return yield* openFolder(path, real, limits, options)
    if (!stat.isFile()) {
      return yield* new ProviderError({ reason: "Unsafe", message: `the CSV set ${path} is ${fileKind(stat)}: give a folder or a zip file` })
    }
    return yield* openZip(path, real, limits, options)
  })

const openFolder = (path: string, real: string, limits: CsvLimits, options: OpenSetOptions) =>
  Effect.gen(function*() {
    const description = `folder ${path}`
    const look = options.settle
      ? yield* awaitSettled(description, () => lookAtFolder(real, SET_FILES), limits)
      : yield* lookAtFolder(real, SET_FILES)
    return {
      description,
      has: (file) => look.files.has(file),
      open: (file, open) => openInFolder(real, file, limits, open),
      unchanged: unchangedSince(look, () => lookAtFolder(real, SET_FILES), limits)
    } satisfies CsvSource
  })

/**
 * Opens one file of a folder: a plain name of the set, not followed if it is a link
 * (`O_NOFOLLOW`), not waited on if it is a FIFO (`O_NONBLOCK`), and read only if the
 * descriptor is a regular file within the size cap.
 */
const openInFolder = (root: string, file: string, limits: CsvLimits, options: OpenOptions = {}) =>
  Effect.gen(function*() {
    if (!SET_FILES.includes(file)) {
      return yield* new ProviderError({ reason: "Unsafe", message: "not a file of a OneRoster set: not read", file })
    }
    const flags = Fs.constants.O_RDONLY | Fs.constants.O_NOFOLLOW | Fs.constants.O_NONBLOCK
    const handle = yield* Effect.tryPromise({
      try: () => Fs.promises.open(NodePath.join(root, file), flags),
      catch: (cause) => {
        const code = errnoCode(cause)
        return code === "ELOOP"
          ? new ProviderError({
            reason: "Unsafe",
            message: "a symbolic link: rosterd reads only regular files inside the set (a link could point anywhere)",
            file
          })
          : code === "ENOENT"
          ? new ProviderError({ reason: "MissingFile", message: "the file disappeared while the set was read", file })
          : unreachable(`cannot open (${code})`, file)
      }
    })
    const stat = yield* Effect.tryPromise({
      try: () => handle.stat(),
      catch: (cause) => unreachable(`cannot read (${errnoCode(cause)})`, file)
    }).pipe(Effect.tapError(() => Effect.promise(() => handle.close())))
    const maxBytes = options.maxBytes ?? limits.maxFileBytes
    const refusal = !stat.isFile()
      ? new ProviderError({ reason: "Unsafe", message: `${fileKind(stat)}, not a regular file: not read`, file })
      : stat.size > maxBytes
      ? new ProviderError({
        reason: "TooLarge",
        message: `the file is ${showBytes(stat.size)}, larger than ${showBytes(maxBytes)} (${options.maxBytesSetting ?? "rosterd.csv.maxFileBytes"})`,
        file
      })
      : undefined
    if (refusal !== undefined) {
      yield* Effect.promise(() => handle.close())
      return yield* refusal
    }
    // 256 KB reads: each becomes one batch of records (RecordFilter.ts), and the fewer rows
    // alive at once, the less the young generation copies and promotes. Per 837,000
    // enrollments decoded, 1 MB reads (batches of 10,000 rows) spent 1.3–1.4 s in the
    // collector, 256 KB ones 1.0–1.1 s; 64 KB ones no less, and a resync's read of the
    // few changed records paid for their four times as many batches (about 0.1 s).
    const input = handle.createReadStream({ highWaterMark: 1 << 18, autoClose: true })
    return guarded(input, file, limits, options)
  })

/** `input` through a `ByteGuard`; an error of either ends both. */
export const guarded = (
  input: Readable,
  file: string,
  limits: CsvLimits,
  options: OpenOptions,
  zip?: ConstructorParameters<typeof ByteGuard>[0]["zip"]
): Readable => {
  const guard = new ByteGuard({
    file,
    maxBytes: options.maxBytes ?? limits.maxFileBytes,
    maxBytesSetting: options.maxBytesSetting ?? "rosterd.csv.maxFileBytes",
    maxLineBytes: options.maxLineBytes ?? limits.maxRecordBytes,
    ...(options.maxLineSetting === undefined ? {} : { maxLineSetting: options.maxLineSetting }),
    ...(zip === undefined ? {} : { zip })
  })
  // A read error carries no cell; still, only its code (or yauzl's sanitised text) is kept.
  input.on("error", (cause) =>
    guard.destroy(
      cause instanceof ProviderError
        ? cause
        : zip === undefined
        ? unreachable(`read error (${errnoCode(cause)})`, file)
        : new ProviderError({ reason: "Malformed", message: `cannot unzip: ${zipErrorText(cause)}`, file })
    ))
  guard.on("close", () => input.destroy())
  return input.pipe(guard)
}

const openZip = (path: string, real: string, limits: CsvLimits, options: OpenSetOptions) =>
  Effect.gen(function*() {
    const description = `zip ${path}`
    const look: Look = options.settle
      ? yield* awaitSettled(description, () => lookAtZip(real), limits)
      : yield* lookAtZip(real)
    const zip = yield* openZipEntries(path, real, limits)
    return {
      description,
      has: zip.has,
      open: (file, open = {}) => Effect.map(zip.open(file, open.maxBytes ?? limits.maxFileBytes, open.maxBytesSetting), (input) =>
        guarded(input.stream, file, limits, open, input.zip)),
      unchanged: unchangedSince(look, () => lookAtZip(real), limits)
    } satisfies CsvSource
  })
