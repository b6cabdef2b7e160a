import { Chunk, Effect, Stream } from "effect"
import type { Scope } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { ProviderError } from "../Domain/Errors.ts"

/**
 * A disk spool for records that a provider meets while listing something else (Clever
 * gives enrollments inside sections and birth dates inside users): written while the first
 * listing streams, read back as the later feed. One listing, one pass, and memory stays
 * flat however large the district. The file lives in a private temp folder of the
 * snapshot's scope and is removed with it.
 */
export interface Spool<A> {
  readonly append: (items: ReadonlyArray<A>) => Effect.Effect<void, ProviderError>
  /** The spooled items, in order. Read it only once the writing listing has finished. */
  readonly items: Stream.Stream<A, ProviderError>
}

export const makeSpool = <A>(name: string): Effect.Effect<Spool<A>, ProviderError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "rosterd-spool-")),
        catch: (cause) => new ProviderError({ reason: "Unreachable", message: `cannot create a temporary spool: ${String(cause)}` })
      }),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const file = NodePath.join(dir, `${name}.ndjson`)
    Fs.writeFileSync(file, "")
    return {
      append: (items) =>
        items.length === 0 ? Effect.void : Effect.try({
          try: () => Fs.appendFileSync(file, items.map((item) => JSON.stringify(item)).join("\n") + "\n"),
          catch: (cause) => new ProviderError({ reason: "Unreachable", message: `cannot write the ${name} spool: ${String(cause)}` })
        }),
      items: Stream.fromAsyncIterable(
        lineBatches(file),
        (cause) => new ProviderError({ reason: "Unreachable", message: `cannot read the ${name} spool: ${String(cause)}` })
      ).pipe(Stream.mapConcatChunk((lines) => Chunk.unsafeFromArray(lines.map((line) => JSON.parse(line) as A))))
    }
  })

/** The file's lines, a megabyte at a time. */
async function* lineBatches(file: string): AsyncGenerator<Array<string>> {
  let rest = ""
  for await (const chunk of Fs.createReadStream(file, { encoding: "utf8", highWaterMark: 1 << 20 })) {
    const lines = (rest + (chunk as string)).split("\n")
    rest = lines.pop()!
    if (lines.length > 0) yield lines
  }
  if (rest.length > 0) yield [rest]
}
