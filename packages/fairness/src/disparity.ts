import { ArgumentError, knownOptions } from '@heed/tensor'
import { zeroDivision } from './confusion.js'
import { metricFrame, type AggregationMethod, type Metric } from './metricFrame.js'
import { groupIndex, sameLength, type Groups, type Labels } from './validate.js'

/** Options of the fairlearn-style disparity metrics (unsigned, over any number of groups). */
export interface DisparityOptions {
  /** One group label per row; at least two distinct groups. */
  readonly sensitiveFeatures: Groups
  /** `between_groups` (default) or `to_overall`. */
  readonly method?: AggregationMethod
  /** Per-row weights (default 1 each); a group whose weights are all 0 is an error. */
  readonly sampleWeight?: Labels
  /** The positive label (default 1). */
  readonly posLabel?: number
  /** A group's rate with an empty denominator (no positives for a TPR): 0 (default, fairlearn), 1 or NaN (then skipped). */
  readonly zeroDivision?: number
}

/** @internal check options and groups, then frame the given metrics. */
export function disparityFrame<M extends Record<string, Metric>>(op: string, yTrue: Labels, yPred: Labels, opts: DisparityOptions, metrics: M) {
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: '{ sensitiveFeatures, … }', actual: String(opts) })
  knownOptions(op, opts, ['sensitiveFeatures', 'method', 'sampleWeight', 'posLabel', 'zeroDivision', ...(op.startsWith('equalizedOdds') ? ['agg'] : [])])
  sameLength(op, [['yTrue', yTrue], ['yPred', yPred], ['sensitiveFeatures', opts.sensitiveFeatures], ['sampleWeight', opts.sampleWeight]])
  groupIndex(op, 'sensitiveFeatures', opts.sensitiveFeatures, 2)
  const extra = {
    ...(opts.posLabel === undefined ? {} : { posLabel: opts.posLabel }),
    ...(opts.zeroDivision === undefined ? {} : { zeroDivision: zeroDivision(op, opts.zeroDivision) }),
  }
  const bound = Object.fromEntries(Object.entries(metrics).map(([k, m]) => [k, ((t, p, o) => m(t, p, { ...o, ...extra } as never)) as Metric])) as unknown as M
  const frame = metricFrame({ metrics: bound, yTrue, yPred, sensitiveFeatures: opts.sensitiveFeatures, ...(opts.sampleWeight ? { sampleWeight: opts.sampleWeight } : {}) })
  const how = opts.method === undefined ? {} : { method: opts.method }
  return { frame, how }
}
