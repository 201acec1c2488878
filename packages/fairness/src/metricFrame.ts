import { ArgumentError, knownOptions, ValueError } from '@heed/tensor'
import { groupIndex, sameLength, weights, type Group, type Groups, type Labels } from './validate.js'

/** A base metric: `(yTrue, yPred, { sampleWeight }) → number`, like `selectionRate` or `truePositiveRate`. */
export type Metric = (yTrue: Labels, yPred: Labels, opts: { readonly sampleWeight?: Labels }) => number

/** How `difference` and `ratio` aggregate over groups (fairlearn's `method`). */
export type AggregationMethod = 'between_groups' | 'to_overall'

export interface MetricFrameOptions<M> {
  /** One metric, or named metrics (then every result is a record with the same keys). */
  readonly metrics: M
  /** True labels, one per row. */
  readonly yTrue: Labels
  /** Predicted labels (or scores, for metrics that take them), one per row. */
  readonly yPred: Labels
  /** One group label per row; any number of groups. */
  readonly sensitiveFeatures: Groups
  /** Per-row weights (default 1 each). */
  readonly sampleWeight?: Labels
}

/**
 * A metric computed overall and on each group (fairlearn's `MetricFrame`). Values that are undefined for a
 * group (NaN, e.g. a TPR where the group has no positives) are skipped by the aggregations, as pandas does.
 */
export interface MetricFrame<V> {
  readonly overall: V
  /** Groups in sorted order (numbers before strings). */
  readonly groups: readonly Group[]
  readonly byGroup: ReadonlyMap<Group, V>
  /** Number of rows in each group. */
  readonly counts: ReadonlyMap<Group, number>
  groupMin(): V
  groupMax(): V
  /** `between_groups` (default): max − min over groups; `to_overall`: max |group − overall|. Never negative. */
  difference(opts?: { readonly method?: AggregationMethod }): V
  /** `between_groups` (default): min / max over groups; `to_overall`: min over groups of min(g/overall, overall/g). At most 1. */
  ratio(opts?: { readonly method?: AggregationMethod }): V
}

type Values<M> = M extends Metric ? number : { readonly [K in keyof M]: number }

const OP = 'metricFrame'

const defined = (xs: readonly number[]): number[] => xs.filter(x => !Number.isNaN(x))
const minOf = (xs: readonly number[]): number => (defined(xs).length ? Math.min(...defined(xs)) : Number.NaN)
const maxOf = (xs: readonly number[]): number => (defined(xs).length ? Math.max(...defined(xs)) : Number.NaN)

function method(m: unknown): AggregationMethod {
  if (m === undefined) return 'between_groups'
  if (m !== 'between_groups' && m !== 'to_overall') throw new ValueError({ op: OP, arg: 'method', expected: "'between_groups' or 'to_overall'", actual: String(m) })
  return m
}

/** Evaluate `metrics` overall and per group of `sensitiveFeatures`. A single group is allowed here (a frame can
 * describe one group); the disparity metrics built on it require two. */
export function metricFrame<M extends Metric | { readonly [name: string]: Metric }>(opts: MetricFrameOptions<M>): MetricFrame<Values<M>> {
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op: OP, arg: 'opts', expected: 'an options object', actual: String(opts) })
  knownOptions(OP, opts, ['metrics', 'yTrue', 'yPred', 'sensitiveFeatures', 'sampleWeight'])
  const { metrics, yTrue, yPred, sensitiveFeatures, sampleWeight } = opts
  const single = typeof metrics === 'function'
  const named: Record<string, Metric> = single ? { value: metrics as Metric } : { ...(metrics as Record<string, Metric>) }
  const names = Object.keys(named)
  if (names.length === 0 || names.some(k => typeof named[k] !== 'function'))
    throw new ArgumentError({ op: OP, arg: 'metrics', expected: 'a metric function or a record of metric functions', actual: names.length === 0 ? 'none' : 'a non-function entry' })
  const n = sameLength(OP, [['yTrue', yTrue], ['yPred', yPred], ['sensitiveFeatures', sensitiveFeatures], ['sampleWeight', sampleWeight]])
  const w = weights(OP, sampleWeight, n)
  const { groups, index } = groupIndex(OP, 'sensitiveFeatures', sensitiveFeatures)
  const evalRows = (rows: number[] | null): number[] => {
    const pick = (v: Labels): number[] => (rows === null ? Array.from(v) : rows.map(i => v[i]!))
    const t = pick(yTrue)
    const p = pick(yPred)
    const sw = rows === null ? Array.from(w) : rows.map(i => w[i]!)
    return names.map(k => named[k]!(t, p, { sampleWeight: sw }))
  }
  const overall = evalRows(null)
  const rowsOf: number[][] = groups.map(() => [])
  for (let i = 0; i < n; i++) rowsOf[index[i]!]!.push(i)
  rowsOf.forEach((r, gi) => {
    if (!r.some(i => w[i]! > 0))
      throw new ValueError({ op: OP, arg: 'sampleWeight', expected: 'a positive total weight in every group', actual: `total weight 0 in group ${JSON.stringify(groups[gi])}` }, 'every rate of that group would be 0/0')
  })
  const per = rowsOf.map(r => evalRows(r))
  const col = (j: number): number[] => per.map(r => r[j]!)
  const wrap = (v: readonly number[]): Values<M> => (single ? v[0]! : Object.fromEntries(names.map((k, j) => [k, v[j]!]))) as Values<M>
  const agg = (f: (j: number) => number): Values<M> => wrap(names.map((_, j) => f(j)))
  return {
    overall: wrap(overall),
    groups,
    byGroup: new Map(groups.map((g, i) => [g, wrap(per[i]!)])),
    counts: new Map(groups.map((g, i) => [g, rowsOf[i]!.length])),
    groupMin: () => agg(j => minOf(col(j))),
    groupMax: () => agg(j => maxOf(col(j))),
    difference: (o = {}) =>
      method(o.method) === 'between_groups' ? agg(j => maxOf(col(j)) - minOf(col(j))) : agg(j => maxOf(col(j).map(x => Math.abs(x - overall[j]!)))),
    ratio: (o = {}) =>
      method(o.method) === 'between_groups'
        ? agg(j => minOf(col(j)) / maxOf(col(j)))
        : agg(j => minOf(col(j).map(x => Math.min(x / overall[j]!, overall[j]! / x)))),
  }
}
