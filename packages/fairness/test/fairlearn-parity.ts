/**
 * fairlearn's metric unit tests (test/unit/metrics: test_base_metrics.py, test_selection_rate.py,
 * test_fairness_metrics.py, data_for_test.py), ported with their expected values; where fairlearn compares against
 * scikit-learn, the expectation is computed here from the confusion counts in plain JS. Plus fairlearn's conventions
 * heed follows: an empty denominator gives 0 (scikit-learn's normalised confusion matrix), labels from {0, 1} or
 * {−1, 1}, and the equalized-odds aggregation of the [TPR, FPR] pair.
 */
import t from 'tap'
import { ValueError } from '@heed/tensor'
import {
  demographicParityDifference,
  demographicParityRatio,
  equalizedOddsDifference,
  equalizedOddsRatio,
  equalOpportunityDifference,
  equalOpportunityRatio,
  falseNegativeRate,
  falsePositiveRate,
  metricFrame,
  selectionRate,
  theilIndex,
  trueNegativeRate,
  truePositiveRate,
} from '@heed/fairness'

/** Weighted confusion counts of binary labels, the scikit-learn reference. */
function counts(yTrue: number[], yPred: number[], pos = 1, w: number[] = yTrue.map(() => 1)) {
  let tp = 0, fp = 0, tn = 0, fn = 0
  yTrue.forEach((y, i) => {
    const p = yPred[i] === pos
    if (y === pos) p ? (tp += w[i]!) : (fn += w[i]!)
    else p ? (fp += w[i]!) : (tn += w[i]!)
  })
  return { tp, fp, tn, fn }
}

t.test('TestTPR', async t => {
  t.equal(truePositiveRate([0, 0, 0, 0, 1], [0, 0, 0, 0, 1]), 1, 'all correct')
  t.equal(truePositiveRate([0, 0, 0, 0, 1], [0, 0, 0, 0, 1], { posLabel: 0 }), 1, 'all correct, pos 0')
  t.equal(truePositiveRate([0, 0, 0, 0, 1], [1, 1, 1, 1, 0]), 0, 'none correct')
  t.equal(truePositiveRate([0, 0, 0, 0, 1], [1, 1, 1, 1, 0], { posLabel: 0 }), 0, 'none correct, pos 0')
  t.equal(truePositiveRate([0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0, 0]), 0.25, 'some correct')
  t.equal(truePositiveRate([0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 0, 0, 0], { posLabel: 0 }), 0.75, 'some correct, pos 0')
  const yt = [0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1]
  const yp = [1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 1]
  const w = [1, 2, 4, 5, 1, 2, 2, 3, 1, 2, 1, 3, 1, 5, 4, 2]
  for (const pos of [1, 0])
    for (const sw of [undefined, w]) {
      const c = counts(yt, yp, pos, sw)
      t.equal(truePositiveRate(yt, yp, { posLabel: pos, ...(sw ? { sampleWeight: sw } : {}) }), c.tp / (c.tp + c.fn), `against sklearn recall, pos ${pos}${sw ? ', weighted' : ''}`)
    }
})

t.test('TestTNR', async t => {
  t.equal(trueNegativeRate([0, 0, 0, 0, 1], [0, 0, 0, 0, 1]), 1)
  t.equal(trueNegativeRate([0, 0, 0, 0, 1], [0, 0, 0, 0, 1], { posLabel: 0 }), 1)
  t.equal(trueNegativeRate([0, 0, 0, 0, 1], [1, 1, 1, 1, 0]), 0)
  t.equal(trueNegativeRate([0, 0, 0, 0, 1], [1, 1, 1, 1, 0], { posLabel: 0 }), 0)
  t.equal(trueNegativeRate([-1, -1, -1, -1, 1], [-1, -1, -1, 1, 1]), 0.75, 'labels in {−1, 1}, default positive 1')
  t.equal(trueNegativeRate([-1, -1, -1, -1, 1], [-1, -1, -1, 1, 1], { posLabel: -1 }), 1, 'positive −1')
  t.equal(trueNegativeRate([0, 0, 0, 0, 1], [0, 0, 1, 0, 0]), 0.75, 'with a false negative')
  const yt = [0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0]
  const yp = [0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 1, 0, 1]
  const w = [1, 2, 3, 5, 3, 2, 5, 3, 5, 1, 5, 3, 5, 2, 3, 2, 5, 2, 3, 1, 5, 3, 2, 1, 1, 5, 2, 3, 5, 1]
  for (const pos of [1, 0])
    for (const sw of [undefined, w]) {
      const c = counts(yt, yp, pos, sw)
      t.equal(trueNegativeRate(yt, yp, { posLabel: pos, ...(sw ? { sampleWeight: sw } : {}) }), c.tn / (c.tn + c.fp), `against sklearn, pos ${pos}${sw ? ', weighted' : ''}`)
    }
})

t.test('TestFNR', async t => {
  t.equal(falseNegativeRate([0, 0, 0, 0, 1], [0, 0, 0, 0, 1]), 0, 'all correct')
  t.equal(falseNegativeRate([0, 0, 0, 0, 1], [1, 1, 1, 1, 0]), 1, 'none correct')
  t.equal(falseNegativeRate([0, 0, 0, 0, 1], [0, 0, 0, 1, 1]), 0, 'with a false positive')
  t.equal(falseNegativeRate([1, 1, 1, 1, 0, 0], [0, 0, 1, 0, 0, 1]), 0.75)
  t.equal(falseNegativeRate([1, 1, 1, 1, 0, 0], [0, 0, 1, 0, 0, 1], { posLabel: 1 }), 0.75)
  t.equal(falseNegativeRate([1, 1, 1, 1, 0, 0], [0, 0, 1, 0, 0, 1], { posLabel: 0 }), 0.5)
  const yt = [0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 0]
  const yp = [1, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 1]
  const w = [1, 2, 3, 1, 5, 2, 3, 1, 2, 5, 3, 2, 5, 2, 1, 3]
  for (const pos of [1, 0])
    for (const sw of [undefined, w]) {
      const c = counts(yt, yp, pos, sw)
      t.ok(Math.abs(falseNegativeRate(yt, yp, { posLabel: pos, ...(sw ? { sampleWeight: sw } : {}) }) - (1 - c.tp / (c.tp + c.fn))) < 1e-12, `≈ 1 − sklearn recall, pos ${pos}${sw ? ', weighted' : ''}`)
    }
})

t.test('TestFPR', async t => {
  t.equal(falsePositiveRate([0, 0, 0, 0, 1], [0, 0, 0, 0, 1]), 0)
  t.equal(falsePositiveRate([0, 0, 0, 0, 1], [1, 1, 1, 1, 0]), 1)
  const yt = [-1, -1, -1, -1, 1, 1, 1]
  const yp = [-1, 1, 1, -1, -1, 1, -1]
  t.equal(falsePositiveRate(yt, yp), 0.5, 'labels in {−1, 1}')
  t.equal(falsePositiveRate(yt, yp, { posLabel: 1 }), 0.5)
  t.ok(Math.abs(falsePositiveRate(yt, yp, { posLabel: -1 }) - 0.6666667) < 1e-6, 'positive −1')
  const yt2 = [0, 1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0]
  const yp2 = [0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0]
  for (const pos of [1, 0]) {
    const c = counts(yt2, yp2, pos)
    t.equal(falsePositiveRate(yt2, yp2, { posLabel: pos }), c.fp / (c.fp + c.tn), `against sklearn, pos ${pos}`)
  }
})

t.test('selection rate (test_selection_rate.py)', async t => {
  for (const [yt, yp, e] of [[[1], [1], 1], [[0], [1], 1], [[1], [0], 0], [[0], [0], 0]] as const) t.equal(selectionRate([...yt], [...yp]), e, `single element ${yt} ${yp}`)
  t.equal(selectionRate([0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1]), 0.625, 'unweighted')
  t.equal(selectionRate([0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0, 0], { sampleWeight: [1, 2, 3, 4, 1, 2, 1, 2] }), 0.3125, 'weighted')
  t.throws(() => selectionRate([], []), ValueError, 'empty input')
})

t.test('labels: {0, 1} or {−1, 1} without posLabel, otherwise a clear error (_get_labels_for_confusion_matrix)', async t => {
  t.equal(truePositiveRate([-1, 1, 1], [1, 1, -1]), 0.5, '{−1, 1}')
  t.throws(() => truePositiveRate([0, 1, 2], [0, 1, 1]), ValueError, 'three values')
  t.throws(() => truePositiveRate([0, 2], [0, 2]), ValueError, '{0, 2} without posLabel')
  t.throws(() => truePositiveRate([-1, 0], [-1, 0]), ValueError, '{−1, 0} without posLabel')
  t.throws(() => truePositiveRate([-1, 1, 0], [1, 1, 1]), ValueError, 'both 0 and −1 as negatives')
  t.throws(() => truePositiveRate([0, 1, 1], [-1, 1, 1]), ValueError, '0 in yTrue, −1 in yPred: three unique values together')
  t.equal(truePositiveRate([0, 2, 2], [2, 2, 0], { posLabel: 2 }), 0.5, '{0, 2} with posLabel 2')
  t.equal(truePositiveRate([0, 2, 2], [2, 2, 0], { posLabel: 0 }), 0, '{0, 2} with posLabel 0')
})

// data_for_test.py
const yT = [
  1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0,
  0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1,
]
const yP = [
  0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1,
  1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
]
const sW = [
  1, 2, 3, 1, 2, 1, 2, 3, 1, 1, 1, 2, 3, 3, 1, 2, 1, 1, 1, 2, 3, 2, 2, 1, 2, 1, 3, 1, 3, 1, 4, 1, 2, 1, 3, 2, 3, 3, 4, 1, 4, 1, 3, 1, 1, 1, 2, 3, 3, 1, 2, 1, 1, 1,
  2, 3, 1, 1, 2, 3, 2, 1, 2, 2, 3, 2, 3, 2, 3, 4, 1,
]
const arrayGen = (groups: string[], run: number, n: number) => Array.from({ length: n }, (_, x) => groups[Math.floor(x / run) % groups.length]!)
const g1 = arrayGen(['aa', 'ba'], 2, yT.length)

t.test('test_fairness_metrics.py: each disparity equals its MetricFrame aggregate', async t => {
  for (const method of ['between_groups', 'to_overall'] as const)
    for (const sw of [undefined, sW]) {
      const w = sw ? { sampleWeight: sw } : {}
      const what = `${method}${sw ? ', weighted' : ''}`
      const sel = metricFrame({ metrics: selectionRate, yTrue: yT, yPred: yP, sensitiveFeatures: g1, ...w })
      t.equal(demographicParityDifference(yT, yP, { sensitiveFeatures: g1, method, ...w }), sel.difference({ method }), `demographic parity difference ${what}`)
      t.equal(demographicParityRatio(yT, yP, { sensitiveFeatures: g1, method, ...w }), sel.ratio({ method }), `demographic parity ratio ${what}`)
      const tpr = metricFrame({ metrics: truePositiveRate, yTrue: yT, yPred: yP, sensitiveFeatures: g1, ...w })
      t.equal(equalOpportunityDifference(yT, yP, { sensitiveFeatures: g1, method, ...w }), tpr.difference({ method }), `equal opportunity difference ${what}`)
      t.equal(equalOpportunityRatio(yT, yP, { sensitiveFeatures: g1, method, ...w }), tpr.ratio({ method }), `equal opportunity ratio ${what}`)
      const eo = metricFrame({ metrics: { tpr: truePositiveRate, fpr: falsePositiveRate }, yTrue: yT, yPred: yP, sensitiveFeatures: g1, ...w })
      const d = eo.difference({ method })
      const r = eo.ratio({ method })
      t.equal(equalizedOddsDifference(yT, yP, { sensitiveFeatures: g1, method, ...w }), Math.max(d.tpr, d.fpr), `equalized odds difference worst case ${what}`)
      t.equal(equalizedOddsDifference(yT, yP, { sensitiveFeatures: g1, method, agg: 'mean', ...w }), (d.tpr + d.fpr) / 2, `equalized odds difference mean ${what}`)
      t.equal(equalizedOddsRatio(yT, yP, { sensitiveFeatures: g1, method, ...w }), Math.min(r.tpr, r.fpr), `equalized odds ratio worst case ${what}`)
      t.equal(equalizedOddsRatio(yT, yP, { sensitiveFeatures: g1, method, agg: 'mean', ...w }), (r.tpr + r.fpr) / 2, `equalized odds ratio mean ${what}`)
    }
  // the group rates against the plain-JS confusion counts
  for (const g of ['aa', 'ba']) {
    const rows = g1.flatMap((x, i) => (x === g ? [i] : []))
    const c = counts(rows.map(i => yT[i]!), rows.map(i => yP[i]!))
    const tpr = metricFrame({ metrics: truePositiveRate, yTrue: yT, yPred: yP, sensitiveFeatures: g1 })
    t.equal(tpr.byGroup.get(g), c.tp / (c.tp + c.fn), `TPR of group ${g}`)
  }
  for (const fn of [equalizedOddsDifference, equalizedOddsRatio]) t.throws(() => fn(yT, yP, { sensitiveFeatures: g1, agg: 'max' as never }), ValueError, 'invalid agg')
})

t.test('an empty denominator is 0 as in fairlearn; NaN on request', async t => {
  // group b has no positives: fairlearn's TPR of b is 0 (normalised confusion matrix), so the difference is 0.5
  const yTrue = [1, 0, 1, 0, 0]
  const yPred = [1, 0, 0, 1, 0]
  const sensitiveFeatures = ['a', 'a', 'a', 'b', 'b']
  t.equal(equalOpportunityDifference(yTrue, yPred, { sensitiveFeatures }), 0.5, 'equal opportunity difference 0.5')
  t.equal(equalOpportunityRatio(yTrue, yPred, { sensitiveFeatures }), 0, 'equal opportunity ratio 0')
  t.equal(truePositiveRate([0, 0], [0, 1]), 0, 'TPR without positives is 0')
  t.equal(falsePositiveRate([1, 1], [0, 1]), 0, 'FPR without negatives is 0')
  t.equal(trueNegativeRate([1, 1], [0, 1]), 0, 'TNR without negatives is 0')
  t.equal(falseNegativeRate([0, 0], [0, 1]), 0, 'FNR without positives is 0')
  t.ok(Number.isNaN(truePositiveRate([0, 0], [0, 1], { zeroDivision: NaN })), 'zeroDivision: NaN')
  t.equal(truePositiveRate([0, 0], [0, 1], { zeroDivision: 1 }), 1, 'zeroDivision: 1')
  t.throws(() => truePositiveRate([0, 0], [0, 1], { zeroDivision: 2 }), ValueError, 'zeroDivision 2')
  // heed's NaN convention: the group without positives is skipped by the aggregation, leaving one group: 0
  t.equal(equalOpportunityDifference(yTrue, yPred, { sensitiveFeatures, zeroDivision: NaN }), 0, 'NaN convention skips the group')
  // equalized odds: b's TPR part is NaN with zeroDivision NaN; a's FPR is 0 and b's is 0.5
  t.equal(equalizedOddsDifference(yTrue, yPred, { sensitiveFeatures }), 0.5, 'worst case, fairlearn convention')
  t.equal(equalizedOddsDifference(yTrue, yPred, { sensitiveFeatures, agg: 'mean' }), 0.5, 'mean, fairlearn convention')
  // every group NaN in the TPR part: fairlearn's Python max over [tpr, fpr] keeps the NaN, pandas' mean skips it
  const allNeg = { sensitiveFeatures: ['a', 'a', 'b', 'b'], zeroDivision: NaN }
  t.ok(Number.isNaN(equalizedOddsDifference([0, 0, 0, 0], [1, 0, 0, 0], allNeg)), 'worst case with a NaN TPR part is NaN (Python max)')
  t.equal(equalizedOddsDifference([0, 0, 0, 0], [1, 0, 0, 0], { ...allNeg, agg: 'mean' }), 0.5, 'mean skips the NaN part')
  t.equal(equalizedOddsDifference([1, 1, 1, 1], [1, 0, 1, 1], { sensitiveFeatures: ['a', 'a', 'b', 'b'], zeroDivision: NaN }), 0.5, 'a NaN FPR part gives the TPR part (Python max)')
})

t.test('weights: a group whose weights are all 0, or all weights 0, is a clear error', async t => {
  const o = { sensitiveFeatures: ['a', 'a', 'b', 'b'] }
  t.throws(() => demographicParityDifference([0, 1, 0, 1], [0, 1, 1, 1], { ...o, sampleWeight: [1, 1, 0, 0] }), { name: 'ValueError', message: /group "b"/ }, 'zero-weight group')
  t.throws(() => metricFrame({ metrics: selectionRate, yTrue: [0, 1], yPred: [1, 1], sensitiveFeatures: ['a', 'b'], sampleWeight: [0, 2] }), ValueError, 'metricFrame')
  for (const f of [selectionRate, truePositiveRate, falsePositiveRate])
    t.throws(() => f([0, 1], [1, 1], { sampleWeight: [0, 0] }), { name: 'ValueError', message: /all zero/ }, `${f.name} with all-zero weights`)
})

t.test('theilIndex of an all-zero benefit is 0 (everyone gets the same), not NaN', async t => {
  t.equal(theilIndex([1, 1, 1], [0, 0, 0]), 0)
  t.equal(theilIndex([-1, 1], [-1, 1]), 0, 'labels in {−1, 1}')
})

t.test('misspelt options are ArgumentErrors with a suggestion, not silently ignored', async t => {
  const o = { sensitiveFeatures: ['a', 'a', 'b', 'b'] }
  t.throws(() => equalizedOddsDifference([0, 1, 0, 1], [0, 1, 1, 1], { ...o, aggregation: 'mean' } as never), { name: 'ArgumentError', arg: 'aggregation' })
  t.throws(() => demographicParityDifference([0, 1, 0, 1], [0, 1, 1, 1], { ...o, pos_label: 0 } as never), { name: 'ArgumentError', message: /did you mean posLabel\?/ })
  t.throws(() => truePositiveRate([0, 1], [1, 1], { sample_weight: [1, 2] } as never), { name: 'ArgumentError', message: /did you mean sampleWeight\?/ })
  t.throws(() => metricFrame({ metrics: selectionRate, yTrue: [0, 1], yPred: [1, 1], sensitiveFeature: ['a', 'b'] } as never), { name: 'ArgumentError', arg: 'sensitiveFeature' })
  t.throws(() => theilIndex([0, 1], [1, 1], { poslabel: 1 } as never), { name: 'ArgumentError', message: /did you mean posLabel\?/ })
})
