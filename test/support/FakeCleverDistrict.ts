import { Context, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { type FakeClever, type FakeCleverOptions, fromOneRosterCsv, start } from "./FakeClever/index.ts"
import { generated, tempDir } from "./Fixtures.ts"

/** The fake Clever API serving a generated district, with the token in a file for the district's settings. */
export class FakeCleverDistrict extends Context.Tag("test/FakeCleverDistrict")<
  FakeCleverDistrict,
  FakeClever & { readonly tokenFile: string; readonly districtId: string }
>() {}

/** For the test file's layer: started before its tests, closed (and its files removed) after. */
export const fakeCleverDistrictLayer = (options: FakeCleverOptions & { readonly token: string; readonly students: number }) =>
  Layer.scoped(
    FakeCleverDistrict,
    Effect.acquireRelease(
      Effect.promise(async () => {
        const dir = tempDir("fake-clever-")
        generated(dir.dir, options.students)
        const district = await fromOneRosterCsv(dir.dir)
        const { students: _, ...startOptions } = options
        const fake = await start(district, { rateLimit: false, ...startOptions })
        const tokenFile = NodePath.join(dir.dir, "token")
        Fs.writeFileSync(tokenFile, `${options.token}\n`)
        return Object.assign(fake, { tokenFile, districtId: district.districts.first()!.id, remove: dir.remove })
      }),
      (fake) => Effect.promise(async () => {
        await fake.close()
        fake.remove()
      })
    )
  )
