import { ValueError } from '@heed/tensor'
import { disparityFrame, type DisparityOptions } from './disparity.js'
import { falsePositiveRate } from './falsePositiveRate.js'
import { truePositiveRate } from './truePositiveRate.js'
import type { Labels } from './validate.js'

export interface EqualizedOddsOptions extends DisparityOptions {
  /** Combine the TPR and FPR disparities by their worst case (default) or their mean (fairlearn's `agg`). */
  readonly agg?: 'worst_case' | 'mean'
}

function combine(op: string, agg: unknown, a: number, b: number, worst: (a: number, b: number) => number): number {
  if (agg === undefined || agg === 'worst_case') return worst(a, b)
  if (agg === 'mean') return (a + b) / 2
  throw new ValueError({ op, arg: 'agg', expected: "'worst_case' or 'mean'", actual: String(agg) })
}

/** max(TPR difference, FPR difference) between groups, or their mean (fairlearn `equalized_odds_difference`). */
export function equalizedOddsDifference(yTrue: Labels, yPred: Labels, opts: EqualizedOddsOptions): number {
  const op = 'equalizedOddsDifference'
  const { frame, how } = disparityFrame(op, yTrue, yPred, opts, { tpr: truePositiveRate, fpr: falsePositiveRate })
  const d = frame.difference(how)
  return combine(op, opts.agg, d.tpr, d.fpr, Math.max)
}

/** min(TPR ratio, FPR ratio) between groups, or their mean (fairlearn `equalized_odds_ratio`). */
export function equalizedOddsRatio(yTrue: Labels, yPred: Labels, opts: EqualizedOddsOptions): number {
  const op = 'equalizedOddsRatio'
  const { frame, how } = disparityFrame(op, yTrue, yPred, opts, { tpr: truePositiveRate, fpr: falsePositiveRate })
  const r = frame.ratio(how)
  return combine(op, opts.agg, r.tpr, r.fpr, Math.min)
}
