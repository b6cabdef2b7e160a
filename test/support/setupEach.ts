import { it } from "@effect/vitest"

/**
 * Runs before every test file. The suite shares its workers' module cache between files
 * (`isolate: false` in vitest.config.ts: loading Effect and rosterd once per worker instead of
 * once per file takes ~90 s off `npm test`). @effect/vitest's `layer(...)` assigns its
 * layered `effect`/`scoped`/… onto vitest's own `it` object (Object.assign in its
 * internal.ts), so once a file used `layer`, a later file's top-level `it.effect` would run
 * in that file's layer — without the TestClock. The methods as first loaded are kept and put
 * back before each file.
 */
const METHODS = ["effect", "scoped", "live", "scopedLive", "flakyTest", "layer", "prop"] as const
type Methods = Partial<Record<(typeof METHODS)[number], unknown>>
const store = globalThis as { __rosterdEffectVitestMethods?: Methods }
store.__rosterdEffectVitestMethods ??= Object.fromEntries(METHODS.map((name) => [name, it[name]]))
Object.assign(it, store.__rosterdEffectVitestMethods)
