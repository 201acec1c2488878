import { ValueError } from '@heed/tensor'
import { disparityFrame, type DisparityOptions } from './disparity.js'
import { falsePositiveRate } from './falsePositiveRate.js'
import { truePositiveRate } from './truePositiveRate.js'
import type { Labels } from './validate.js'

export interface EqualizedOddsOptions extends DisparityOptions {
  /** Combine the TPR and FPR disparities by their worst case (default) or their mean (fairlearn's `agg`). */
  readonly agg?: 'worst_case' | 'mean'
}

/**
 * fairlearn's aggregation of the [TPR, FPR] pair: `worst_case` is Python's `max` (`min` for ratios) over the pair
 * in that order, so a NaN TPR part gives NaN and a NaN FPR part gives the TPR part; `mean` is pandas' mean, which
 * skips a NaN part (NaN when both are). NaN parts only arise with `zeroDivision: NaN`.
 */
function combine(op: string, agg: unknown, tpr: number, fpr: number, worst: 'max' | 'min'): number {
  if (agg === undefined || agg === 'worst_case') return (worst === 'max' ? fpr > tpr : fpr < tpr) ? fpr : tpr
  if (agg === 'mean') {
    const parts = [tpr, fpr].filter(x => !Number.isNaN(x))
    return parts.length ? parts.reduce((x, y) => x + y, 0) / parts.length : Number.NaN
  }
  throw new ValueError({ op, arg: 'agg', expected: "'worst_case' or 'mean'", actual: String(agg) })
}

/** max(TPR difference, FPR difference) between groups, or their mean (fairlearn `equalized_odds_difference`). */
export function equalizedOddsDifference(yTrue: Labels, yPred: Labels, opts: EqualizedOddsOptions): number {
  const op = 'equalizedOddsDifference'
  const { frame, how } = disparityFrame(op, yTrue, yPred, opts, { tpr: truePositiveRate, fpr: falsePositiveRate })
  const d = frame.difference(how)
  return combine(op, opts.agg, d.tpr, d.fpr, 'max')
}

/** min(TPR ratio, FPR ratio) between groups, or their mean (fairlearn `equalized_odds_ratio`). */
export function equalizedOddsRatio(yTrue: Labels, yPred: Labels, opts: EqualizedOddsOptions): number {
  const op = 'equalizedOddsRatio'
  const { frame, how } = disparityFrame(op, yTrue, yPred, opts, { tpr: truePositiveRate, fpr: falsePositiveRate })
  const r = frame.ratio(how)
  return combine(op, opts.agg, r.tpr, r.fpr, 'min')
}
