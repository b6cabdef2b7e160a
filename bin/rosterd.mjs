#!/usr/bin/env node
// `rosterd` / `npx rosterd` / `npm start`: runs rosterd from its bundle (bin/bundle.mjs),
// building it first when a source is newer. Where it cannot be built (a read-only install
// without `npm run build`), tsx compiles the sources as they load: slower to start, the same
// program.
import { buildBundle, BUNDLE, bundleFresh } from "./bundle.mjs"

let entry = BUNDLE
if (!bundleFresh()) {
  try {
    await buildBundle()
  } catch {
    const { register } = await import("tsx/esm/api")
    register()
    entry = new URL("../src/main.ts", import.meta.url).href
  }
}
await import(entry)
