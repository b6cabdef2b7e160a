/**
 * Where a sync's time goes, for the benchmark's report:
 *
 * - `recordingTracer` wraps Effect's tracer and records every span the sync opens (its
 *   own `Staging.stageFeed`, `Findings.checkStaged`, `Apply.*` spans and @effect/sql's
 *   `sql.execute` spans, which carry the statement text), with wall time and this
 *   process's CPU time while it was open;
 * - `breakdown` folds them into a few readable steps;
 * - `serverCpu` reads the CPU time of a local Postgres server (the postmaster, its reaped
 *   children and its live children, from /proc), so a phase can show how much of its wall
 *   time the server was busy.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as NodePath from "node:path"
import { Option, Tracer } from "effect"

export interface SpanRecord {
  readonly name: string
  readonly attributes: ReadonlyMap<string, unknown>
  readonly parent: Tracer.AnySpan | undefined
  readonly start: number
  readonly wallMs: number
  readonly cpuMs: number
}

const cpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

export const recordingTracer = (base: Tracer.Tracer, spans: Map<Tracer.AnySpan, SpanRecord>): Tracer.Tracer =>
  Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = base.span(name, parent, context, links, startTime, kind, options)
      const started = performance.now()
      const cpuStart = cpuMs()
      const end = span.end.bind(span)
      ;(span as { end: Tracer.Span["end"] }).end = (endTime, exit) => {
        spans.set(span, {
          name,
          attributes: span.attributes,
          parent: Option.getOrUndefined(parent),
          start: started,
          wallMs: performance.now() - started,
          cpuMs: cpuMs() - cpuStart
        })
        end(endTime, exit)
      }
      return span
    },
    context: (f, fiber) => base.context(f, fiber)
  })

export interface Step {
  readonly label: string
  readonly wallMs: number
  readonly cpuMs: number
  readonly count: number
}

/** Spans of the district rules and data-quality checks: each is one step of its own. */
const RULES = new Set([
  "Quality.checkQuality",
  "Scope.markOutOfScope",
  "Scope.expireEndedTerms",
  "Scope.skipOutOfScopeEnrollments",
  "Teachers.rankTeachers",
  "Teachers.reportClassesWithoutTeacher",
  "People.enrolledUsers",
  "People.recomputeAges",
  "People.reportPeople",
  "Identities.applyIdentities",
  "Rekey.detectRekey",
  "Linking.updateAddresses",
  "Linking.people",
  "Linking.identities",
  "Linking.samePerson",
  "Linking.reuse",
  "Linking.decide",
  "Linking.linkAccounts",
  "Linking.refreshStudentActivation",
  "Activation.issue",
  "Unchanged.liveKey",
  "Unchanged.carryFindings",
  "Unchanged.planBirthdays"
])
const OWNERS = new Set(["Staging.stageFeed", "Staging.stageDigested", "Findings.checkStaged", "Apply.applyKeyed", "Apply.applyEnrollments", "ChangeList.recordChanges", "Holds.closePendingHold", ...RULES])
const TABLE_OF: Record<string, string> = {
  orgs: "schools",
  terms: "terms",
  courses: "courses",
  classes: "classes",
  users: "users",
  demographics: "demographics",
  enrollments: "enrollments"
}

/** The label prefix of a part of a step shown on its own (not added to the total again). */
export const PART = "  of which: "

/** Folds the spans of one sync run into steps, in the order they first ran. */
export const breakdown = (spans: Map<Tracer.AnySpan, SpanRecord>): { steps: Array<Step>; totalMs: number } => {
  const records = [...spans.values()].sort((a, b) => a.start - b.start)
  const run = records.find((r) => r.name === "Sync.run")
  const owner = (record: SpanRecord): SpanRecord | undefined => {
    let parent = record.parent
    while (parent !== undefined) {
      const found = spans.get(parent)
      if (found !== undefined && OWNERS.has(found.name)) return found
      parent = parent._tag === "Span" ? Option.getOrUndefined(parent.parent) : undefined
    }
    return undefined
  }
  const steps = new Map<string, { wallMs: number; cpuMs: number; count: number }>()
  const add = (label: string, record: SpanRecord) => {
    const step = steps.get(label) ?? { wallMs: 0, cpuMs: 0, count: 0 }
    step.wallMs += record.wallMs
    step.cpuMs += record.cpuMs
    step.count++
    steps.set(label, step)
  }
  for (const record of records) {
    const kind = TABLE_OF[String(record.attributes.get("kind"))] ?? String(record.attributes.get("kind"))
    if (record.name === "Staging.stageFeed") add(`stage ${kind} (parse, decode, COPY to temp table)`, record)
    else if (record.name === "Staging.stageDigested") add(`stage ${kind} (digest; decode and COPY what changed)`, record)
    else if (record.name === "Digests.scan") {
      // Scanned before staging (every feed first, to see whether the run may skip its comparison), or within it.
      const within = owner(record)?.name === "Staging.stageDigested"
      add(`${within ? PART : ""}scan ${kind}: each record's line and digest, COPYed (nothing parsed)`, record)
    }
    else if (record.name === "Digests.lookUp") add(`${PART}look up ${kind} digests in the store (what to decode)`, record)
    else if (record.name === "Digests.restore") add(`${PART}restore unchanged ${kind} from the store`, record)
    else if (record.name === "Digests.write") add(`${PART}write ${kind} digests`, record)
    else if (record.name === "Findings.checkStaged") add("checks (findings)", record)
    else if (record.name === "sql.execute") {
      const text = String(record.attributes.get("db.query.text") ?? "").trim()
      const parent = owner(record)
      if (parent === undefined) {
        if (/^ANALYZE pg_temp\./.test(text)) add("analyze staged tables", record)
        else if (/^ANALYZE /.test(text)) add("analyze live tables (after a large change)", record)
        else add("other statements (lease, run record, DDL)", record)
        continue
      }
      if (parent.name === "Staging.stageDigested" || parent.name === "Staging.stageFeed" || parent.name === "Findings.checkStaged") continue
      if (parent.name === "ChangeList.recordChanges" || parent.name === "Holds.closePendingHold") {
        add(parent.name === "ChangeList.recordChanges" ? "change list (run_changes)" : "pending hold check", record)
        continue
      }
      if (RULES.has(parent.name)) {
        add(`rule: ${parent.name}`, record)
        continue
      }
      const table = parent.name === "Apply.applyEnrollments" ? "enrollments" : TABLE_OF[String(parent.attributes.get("kind"))]
      const what = /^WITH held AS/.test(text) ? "diff (plan)" : /^WITH created AS/.test(text) ? "write" : "findings"
      add(`${table ?? "?"} ${what}`, record)
    }
  }
  return {
    steps: [...steps.entries()].map(([label, step]) => ({ label, ...step })),
    totalMs: run?.wallMs ?? 0
  }
}

/** A run's `n` slowest SQL statements, each as its first words (whitespace folded). */
export const slowestStatements = (spans: Map<Tracer.AnySpan, SpanRecord>, n: number): Array<{ wallMs: number; text: string }> =>
  [...spans.values()]
    .filter((r) => r.name === "sql.execute")
    .sort((a, b) => b.wallMs - a.wallMs)
    .slice(0, n)
    .map((r) => ({ wallMs: r.wallMs, text: String(r.attributes.get("db.query.text") ?? "").replace(/\s+/g, " ").trim().slice(0, 150) }))

const clockTicks = (() => {
  let ticks: number | undefined
  return () => {
    if (ticks === undefined) {
      try {
        ticks = Number.parseInt(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }), 10) || 100
      } catch {
        ticks = 100 // the usual value
      }
    }
    return ticks
  }
})()

/**
 * CPU seconds the whole machine has been busy (all processes, all cores, from /proc/stat),
 * or undefined when it cannot be read: what is left after this process and the server is
 * other work on the machine, which inflates the timings.
 */
export const machineCpuReader = (): (() => number) | undefined => {
  const read = () => {
    const fields = Fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields
    return (user + nice + system + irq + softirq + steal) / clockTicks()
  }
  try {
    read()
    return read
  } catch {
    return undefined
  }
}

/** CPU seconds of a local Postgres server, or undefined when it cannot be read. */
export const serverCpuReader = (dataDirectory: string): (() => number) | undefined => {
  let pid: number
  try {
    pid = Number.parseInt(Fs.readFileSync(NodePath.join(dataDirectory, "postmaster.pid"), "utf8").split("\n")[0]!, 10)
    Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  const ticks = clockTicks()
  /** Fields after "(comm)": [0] state, [1] ppid, ..., [11] utime, [12] stime, [13] cutime, [14] cstime. */
  const stat = (p: number | string): Array<string> | undefined => {
    try {
      const text = Fs.readFileSync(`/proc/${p}/stat`, "utf8")
      return text.slice(text.lastIndexOf(")") + 2).split(" ")
    } catch {
      return undefined
    }
  }
  return () => {
    const own = stat(pid)
    if (own === undefined) return Number.NaN
    let total = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])
    for (const entry of Fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue
      const child = stat(entry)
      if (child !== undefined && Number(child[1]) === pid) total += Number(child[11]) + Number(child[12])
    }
    return total / ticks
  }
}
