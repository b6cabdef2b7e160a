import { Effect, Schema } from "effect"
import type { District } from "../../Domain/District.ts"
import { CsvSettings } from "../../Domain/District.ts"
import { InvalidDistrict, ModeNotAvailable, ProviderError } from "../../Domain/Errors.ts"
import { EntityKinds } from "../../Domain/Roster.ts"
import type { Feed, Feeds, RosterSnapshot, SyncRequest } from "../RosterProvider.ts"
import { csvDigests, csvFeedItems } from "./CsvFeed.ts"
import type { CsvLimits } from "./CsvLimits.ts"
import { defaultCsvLimits } from "./CsvLimits.ts"
import { openCsvSource } from "./CsvSource.ts"
import { CSV_MAPPING_VERSION, CsvFiles } from "./Files.ts"
import { PROFILES_FILE, readUserRoles, ROLES_FILE, usersFile12 } from "./Files12.ts"
import { readManifest } from "./Manifest.ts"

/**
 * The OneRoster 1.1 CSV provider: a folder or zip, described by its `manifest.csv`.
 *
 * A *bulk* set (every file `bulk` or `absent`) is a full snapshot and must contain the
 * core files (orgs, academicSessions, classes, users, enrollments); courses and
 * demographics are optional, and a kind whose file is absent is left untouched.
 * A *delta* set (any file `delta`) carries changes only; absent files mean no changes.
 *
 * Every read is bounded by `rosterd.csv.*` (CsvLimits.ts), and a set still being written is
 * not read: the snapshot fails `NotReady` and the run is deferred (Settle.ts).
 */
/** `rosterd doctor`: the folder or zip opens and its manifest reads (without waiting for a set being written). */
export const oneRosterCsvProbe = (district: District, limits: CsvLimits = defaultCsvLimits) =>
  Effect.scoped(Effect.gen(function*() {
    const settings = yield* Schema.decodeUnknown(CsvSettings)(district.settings).pipe(
      Effect.mapError(() => new InvalidDistrict({ district: district.id, message: "a oneroster-csv district needs a `path` setting" }))
    )
    const source = yield* openCsvSource(settings.path, limits, { settle: false })
    const manifest = yield* readManifest(source, limits)
    const delta = Array.from(manifest.fileModes.values()).some((mode) => mode === "delta")
    return `${source.description}: a ${delta ? "delta" : "bulk"} set`
  }))

export const oneRosterCsvSnapshot = (district: District, request: SyncRequest, limits: CsvLimits = defaultCsvLimits) =>
  Effect.gen(function*() {
    const settings = yield* Schema.decodeUnknown(CsvSettings)(district.settings).pipe(
      Effect.mapError(() =>
        new InvalidDistrict({ district: district.id, message: "a oneroster-csv district needs a `path` setting" })
      )
    )
    const source = yield* openCsvSource(settings.path, limits)
    const manifest = yield* readManifest(source, limits)
    const modeOf = (key: string) => manifest.fileModes.get(key) ?? "absent"
    const isDeltaSet = EntityKinds.some((kind) => modeOf(CsvFiles[kind].manifestKey) === "delta")
    const v12 = manifest.oneRosterVersion === "1.2"
    // 1.2's files in a set that says 1.0 or 1.1: it mixes versions, and is refused.
    for (const [file, key] of [[ROLES_FILE, "file.roles"], [PROFILES_FILE, "file.userProfiles"]] as const) {
      if (!v12 && (source.has(file) || modeOf(key) !== "absent")) {
        return yield* new ProviderError({
          reason: "Unsupported",
          message: `${file} is a OneRoster 1.2 file, but the manifest says oneroster.version ${manifest.oneRosterVersion}: a set that mixes OneRoster versions is refused`,
          file
        })
      }
    }
    // 1.2: users' roles and profiles come from roles.csv and userProfiles.csv (Files12.ts), read first.
    const rolesMode = modeOf("file.roles")
    if (v12 && modeOf(CsvFiles.users.manifestKey) !== "absent" && (rolesMode === "absent" || !source.has(ROLES_FILE))) {
      return yield* new ProviderError({
        reason: "MissingFile",
        message: `a OneRoster 1.2 set with users.csv needs roles.csv (file.roles ${rolesMode === "absent" ? "is absent" : "is listed but the file is not there"}): users' roles and orgs are there`,
        file: ROLES_FILE
      })
    }
    const users12 = v12 && modeOf(CsvFiles.users.manifestKey) !== "absent"
      ? usersFile12(yield* readUserRoles(source, limits, modeOf("file.userProfiles") !== "absent" && source.has(PROFILES_FILE)))
      : null

    if (isDeltaSet && request === "full") {
      return yield* new ModeNotAvailable({
        district: district.id,
        message: `${source.description} is a delta export; a full sync needs a bulk set`
      })
    }

    const feed = <K extends keyof Feeds>(kind: K) =>
      Effect.gen(function*() {
        const { manifestKey, required } = CsvFiles[kind]
        const spec = kind === "users" && users12 !== null ? users12 : CsvFiles[kind].spec
        const mode = modeOf(manifestKey)
        if (mode === "absent") {
          if (required && !isDeltaSet) {
            return yield* new ProviderError({
              reason: "MissingFile",
              message: `${manifestKey} is ${manifest.fileModes.has(manifestKey) ? "marked absent" : "not in the manifest"}, ` +
                `but a bulk set must contain ${spec.file}`,
              file: "manifest.csv"
            })
          }
          return null
        }
        if (!source.has(spec.file)) {
          return yield* new ProviderError({
            reason: "MissingFile",
            message: `the manifest lists ${manifestKey} as ${mode}, but the file is not in ${source.description}`,
            file: spec.file
          })
        }
        return {
          mode: request === "delta" ? "delta" : mode,
          name: spec.file,
          items: csvFeedItems(source, spec as never, limits),
          // A 1.2 user is its row of users.csv and rows of two other files: its cells alone do not digest it.
          ...(spec === users12 ? {} : { digests: csvDigests(source, spec as never, limits, CSV_MAPPING_VERSION) })
        } as unknown as Feed<any>
      })

    const feeds = {
      orgs: yield* feed("orgs"),
      terms: yield* feed("terms"),
      courses: yield* feed("courses"),
      classes: yield* feed("classes"),
      users: yield* feed("users"),
      demographics: yield* feed("demographics"),
      enrollments: yield* feed("enrollments")
    } satisfies Feeds

    return {
      mode: isDeltaSet || request === "delta" ? "delta" : "full",
      description: `OneRoster ${manifest.oneRosterVersion} CSV ${isDeltaSet ? "delta" : "bulk"} set (${source.description})`,
      feeds
    } satisfies RosterSnapshot
  })
