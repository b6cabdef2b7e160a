import parsePrometheusTextFormat, { type MetricFamily, type Sample } from "parse-prometheus-text-format"

/** A scrape parsed with an independent Prometheus text-format parser. */
export interface Scrape {
  readonly families: ReadonlyArray<MetricFamily>
  /** The family of this name, or undefined. */
  readonly family: (name: string) => MetricFamily | undefined
  /** The sample of `name` whose labels are exactly `labels` (histograms: without `le`). */
  readonly sample: (name: string, labels?: Readonly<Record<string, string>>) => Sample | undefined
  /** A counter's or gauge's value; undefined when the series is absent. */
  readonly value: (name: string, labels?: Readonly<Record<string, string>>) => number | undefined
  /** A histogram series: cumulative bucket counts by `le`, count and sum; undefined when absent. */
  readonly histogram: (name: string, labels?: Readonly<Record<string, string>>) => undefined | {
    readonly buckets: Readonly<Record<string, number>>
    readonly count: number
    readonly sum: number
  }
}

const sameLabels = (a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>>) => {
  const left = Object.entries(a ?? {})
  return left.length === Object.keys(b).length && left.every(([k, v]) => b[k] === v)
}

export const parseScrape = (text: string): Scrape => {
  const families = parsePrometheusTextFormat(text)
  const family = (name: string) => families.find((f) => f.name === name)
  const sample = (name: string, labels: Readonly<Record<string, string>> = {}) =>
    family(name)?.metrics.find((m) => sameLabels(m.labels, labels))
  const value = (name: string, labels: Readonly<Record<string, string>> = {}) => {
    const found = sample(name, labels)?.value
    return found === undefined ? undefined : Number(found)
  }
  /**
   * The parser folds a histogram's series into one when they carry labels besides `le`
   * (yunyu/parse-prometheus-text-format#13): read its `_bucket`, `_sum` and `_count`
   * lines as untyped series instead, with the same parser.
   */
  const histogram = (name: string, labels: Readonly<Record<string, string>> = {}) => {
    if (family(name)?.type !== "HISTOGRAM") return undefined
    const untyped = parsePrometheusTextFormat(text.replace(`# TYPE ${name} histogram`, `# TYPE ${name} untyped`))
    // prom-client interleaves `_sum` and `_count` per series: each run of lines is a family of its own here.
    const series = (suffix: string) => untyped.filter((f) => f.name === `${name}${suffix}`).flatMap((f) => f.metrics)
    const count = series("_count").find((m) => sameLabels(m.labels, labels))?.value
    const sum = series("_sum").find((m) => sameLabels(m.labels, labels))?.value
    if (count === undefined || sum === undefined) return undefined
    const buckets: Record<string, number> = {}
    for (const m of series("_bucket")) {
      const { le, ...rest } = m.labels ?? {}
      if (le !== undefined && m.value !== undefined && sameLabels(rest, labels)) buckets[le] = Number(m.value)
    }
    return { buckets, count: Number(count), sum: Number(sum) }
  }
  return { families, family, sample, value, histogram }
}
