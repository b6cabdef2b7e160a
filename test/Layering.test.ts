import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import ts from "typescript"

/**
 * Imports run one way (README "Layout"): a file of `src/` imports its own folder and the
 * folders of *lower* layers only — never a higher layer, never a folder beside it in its own
 * layer — and no two files, and no two top-level folders, import each other in a cycle.
 * A new top-level folder fails this test until it is given a layer here (and in the README).
 */

/** The layers, lowest first: a folder of `src/` (or `main.ts`), and what the layer is for. */
const LAYERS: ReadonlyArray<{ readonly folders: ReadonlyArray<string>; readonly what: string }> = [
  { folders: ["Domain"], what: "the vocabulary: districts and their rules, roster records, roles, run counts, values, errors" },
  { folders: ["Config"], what: "settings: the config file and the environment" },
  { folders: ["Store", "Secrets", "Audit", "Metrics", "Csv"], what: "infrastructure: the database (and migrations/), sealed secrets, the audit log, the metric series, CSV syntax" },
  { folders: ["Providers", "Mail"], what: "the roster sources; mail delivery and the outbox" },
  { folders: ["Reconcile", "Notify"], what: "the sync pipeline and its rules; operator notifications and webhooks" },
  { folders: ["Accounts"], what: "accounts, linking and activation (the sync's accounts step, through a port)" },
  { folders: ["Admins", "Classes", "Districts", "Report"], what: "features over accounts and runs" },
  { folders: ["Schedule"], what: "the daemon: slots, pauses, freshness" },
  { folders: ["Doctor"], what: "the health check" },
  { folders: ["Http"], what: "the HTTP face" },
  { folders: ["Cli"], what: "the commands" },
  { folders: ["main.ts"], what: "the process" }
]

/** Outside `src/`, the migrations are the store's. */
const OUTSIDE: Readonly<Record<string, string>> = { migrations: "Store" }

const ROOT = NodePath.resolve(import.meta.dirname, "..")
const SRC = NodePath.join(ROOT, "src")

/** Each file (relative to `src/`, `/`-separated) and the files it imports (the same way; `../migrations/…` outside). */
type Graph = ReadonlyMap<string, ReadonlyArray<string>>

const sourceFiles = (dir: string): Array<string> =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = NodePath.join(dir, entry.name)
    return entry.isDirectory() ? sourceFiles(path) : entry.name.endsWith(".ts") ? [path] : []
  })

/** The import graph of `src/`: every relative import, type-only and dynamic ones included (TypeScript's own scanner). */
const readGraph = (): Graph =>
  new Map(sourceFiles(SRC).map((file) => {
    const imported = ts.preProcessFile(Fs.readFileSync(file, "utf8"), true, true).importedFiles
      .map((ref) => ref.fileName)
      .filter((name) => name.startsWith("."))
      .map((name) => NodePath.relative(SRC, NodePath.resolve(NodePath.dirname(file), name)).split(NodePath.sep).join("/"))
    return [NodePath.relative(SRC, file).split(NodePath.sep).join("/"), [...new Set(imported)]]
  }))

/** The top-level folder of a file (`main.ts` for itself; a folder outside `src/` as `OUTSIDE` places it). */
const folderOf = (file: string) => {
  const [head, next] = file.split("/")
  return head === ".." ? OUTSIDE[next!] ?? `../${next}` : head!
}

const layerIndex = new Map(LAYERS.flatMap((layer, index) => layer.folders.map((folder) => [folder, index] as const)))
const layerOf = (folder: string) => layerIndex.get(folder)

/** Strongly connected components of more than one node (or a node importing itself): the cycles. */
const cycles = (edges: ReadonlyMap<string, ReadonlyArray<string>>): Array<Array<string>> => {
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const found: Array<Array<string>> = []
  const visit = (node: string) => {
    index.set(node, counter)
    low.set(node, counter++)
    stack.push(node)
    onStack.add(node)
    for (const next of edges.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next)
        low.set(node, Math.min(low.get(node)!, low.get(next)!))
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!))
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: Array<string> = []
      let member: string
      do {
        member = stack.pop()!
        onStack.delete(member)
        component.push(member)
      } while (member !== node)
      if (component.length > 1 || (edges.get(node) ?? []).includes(node)) found.push(component.sort())
    }
  }
  for (const node of edges.keys()) if (!index.has(node)) visit(node)
  return found
}

/** Everything wrong with a graph, one line each: unplaced folders, imports against the layers, cycles. */
const violations = (graph: Graph): Array<string> => {
  const problems: Array<string> = []
  const folders = new Map<string, Set<string>>()
  for (const [file, imports] of graph) {
    const from = folderOf(file)
    const fromLayer = layerOf(from)
    if (fromLayer === undefined) {
      problems.push(`${file}: its folder ${from} has no layer (test/Layering.test.ts LAYERS, README "Layout")`)
      continue
    }
    for (const target of imports) {
      const to = folderOf(target)
      if (to === from) continue
      if (!folders.has(from)) folders.set(from, new Set())
      folders.get(from)!.add(to)
      const toLayer = layerOf(to)
      if (toLayer === undefined) problems.push(`${file} imports ${target}: its folder ${to} has no layer`)
      else if (toLayer > fromLayer) problems.push(`${file} imports ${target}: ${to} is a higher layer than ${from}`)
      else if (toLayer === fromLayer) problems.push(`${file} imports ${target}: ${to} is beside ${from} in its layer`)
    }
  }
  for (const cycle of cycles(graph)) problems.push(`files import each other in a cycle: ${cycle.join(", ")}`)
  const folderEdges = new Map([...folders].map(([from, to]) => [from, [...to]] as const))
  for (const cycle of cycles(folderEdges)) problems.push(`folders import each other in a cycle: ${cycle.join(", ")}`)
  return problems
}

describe("layering", () => {
  it("src/ imports only downward, with no cycle between files or folders", () => {
    const graph = readGraph()
    assert.isAbove(graph.size, 100)
    assert.deepStrictEqual(violations(graph), [])
  })

  it("every folder of src/ has a layer, and the README's Layout shows the same layers", () => {
    const folders = Fs.readdirSync(SRC, { withFileTypes: true }).map((entry) => entry.name).sort()
    assert.deepStrictEqual(folders.filter((folder) => layerOf(folder) === undefined), [])
    const readme = Fs.readFileSync(NodePath.join(ROOT, "README.md"), "utf8")
    const layout = readme.slice(readme.indexOf("\n## Layout"))
    const rows = [...layout.matchAll(/^\| (\d+) \| ([^|]+) \|/gm)].map((m) => [...m[2]!.matchAll(/`([^`]+?)\/?`/g)].map((f) => f[1]!))
    assert.deepStrictEqual(rows, LAYERS.map((layer) => [...layer.folders]))
  })

  it("the check fails on an import of a higher layer, one beside in the layer, a file cycle and a folder cycle", () => {
    const bad: Graph = new Map([
      ["Domain/District.ts", ["Schedule/SyncSchedule.ts"]],
      ["Schedule/SyncSchedule.ts", ["Domain/District.ts"]],
      ["Providers/Http.ts", ["Mail/Mailer.ts"]],
      ["Mail/Mailer.ts", []],
      ["Reconcile/A.ts", ["Reconcile/B.ts"]],
      ["Reconcile/B.ts", ["Reconcile/A.ts"]],
      ["Nowhere/X.ts", []]
    ])
    const found = violations(bad)
    assert.include(found, "Domain/District.ts imports Schedule/SyncSchedule.ts: Schedule is a higher layer than Domain")
    assert.include(found, "Providers/Http.ts imports Mail/Mailer.ts: Mail is beside Providers in its layer")
    assert.include(found, "files import each other in a cycle: Reconcile/A.ts, Reconcile/B.ts")
    assert.include(found, "files import each other in a cycle: Domain/District.ts, Schedule/SyncSchedule.ts")
    assert.include(found, "folders import each other in a cycle: Domain, Schedule")
    assert.include(found, `Nowhere/X.ts: its folder Nowhere has no layer (test/Layering.test.ts LAYERS, README "Layout")`)
    // The real tree, with one backward import added, fails too.
    const real = new Map(readGraph())
    real.set("Domain/District.ts", [...real.get("Domain/District.ts")!, "Reconcile/SyncRun.ts"])
    assert.include(violations(real), "Domain/District.ts imports Reconcile/SyncRun.ts: Reconcile is a higher layer than Domain")
  })
})
