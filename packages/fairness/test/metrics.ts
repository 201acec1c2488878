import t from 'tap'
import { ShapeError, ValueError, ArgumentError } from '@heed/tensor'
import {
  accuracy, averageAbsOddsDifference, averageOddsDifference, demographicParityDifference, demographicParityRatio, disparateImpact,
  equalizedOddsDifference, equalizedOddsRatio, equalOpportunityDifference, equalOpportunityRatio, falseNegativeRate, falsePositiveRate,
  metricFrame, paretoFront, selectionRate, softDemographicParity, statisticalParityDifference, theilIndex, trueNegativeRate, truePositiveRate,
  truePositiveRateDifference, reweighing, tabularData,
} from '@heed/fairness'
import { assertClose, prng } from '../../tensor/test/helpers/numeric.js'

// fairlearn user guide, "Perform a fairness assessment": its example labels, predictions and groups.
const yT = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]
const yP = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0]
const sf = ['b', 'b', 'a', 'b', 'b', 'c', 'c', 'c', 'a', 'a', 'c', 'a', 'b', 'c', 'c', 'b', 'c', 'c']

t.test('metricFrame reproduces fairlearn\'s documented example', async t => {
  const mf = metricFrame({ metrics: { tpr: truePositiveRate, fpr: falsePositiveRate, sel: selectionRate }, yTrue: yT, yPred: yP, sensitiveFeatures: sf })
  t.same(mf.groups, ['a', 'b', 'c'])
  const by = (g: string) => mf.byGroup.get(g)!
  assertClose(t, [by('a').tpr, by('a').fpr, by('a').sel], [0.5, 1, 0.75])
  assertClose(t, [by('b').tpr, by('b').fpr, by('b').sel], [0.6, 0, 0.5])
  assertClose(t, [by('c').tpr, by('c').fpr, by('c').sel], [0.4, 2 / 3, 0.5])
  assertClose(t, [mf.overall.tpr, mf.overall.fpr, mf.overall.sel], [0.5, 2 / 3, 10 / 18])
  t.same([...mf.counts.values()], [4, 6, 8])
  const d = mf.difference()
  assertClose(t, [d.tpr, d.fpr, d.sel], [0.2, 1, 0.25])
  assertClose(t, [mf.difference({ method: 'to_overall' }).sel], [0.194444], { atol: 1e-6 })
  const r = mf.ratio()
  assertClose(t, [r.sel, r.tpr, r.fpr], [2 / 3, 2 / 3, 0])
  assertClose(t, [mf.groupMin().tpr, mf.groupMax().tpr], [0.4, 0.6])
  const single = metricFrame({ metrics: selectionRate, yTrue: yT, yPred: yP, sensitiveFeatures: sf })
  assertClose(t, [single.overall, single.difference()], [10 / 18, 0.25])
  t.throws(() => mf.difference({ method: 'bogus' as never }), ValueError)
  const opts = { sensitiveFeatures: sf }
  assertClose(t, [demographicParityDifference(yT, yP, opts), demographicParityRatio(yT, yP, opts)], [0.25, 2 / 3])
  assertClose(t, [equalizedOddsDifference(yT, yP, opts), equalizedOddsDifference(yT, yP, { ...opts, agg: 'mean' }), equalizedOddsRatio(yT, yP, opts)], [1, 0.6, 0])
  assertClose(t, [equalOpportunityDifference(yT, yP, opts), equalOpportunityRatio(yT, yP, opts)], [0.2, 2 / 3])
})

t.test('AIF360-style signed metrics on the binary example', async t => {
  const y = [1, 1, 0, 0, 1, 0, 1, 0, 1, 1]
  const p = [1, 1, 1, 0, 0, 0, 1, 0, 0, 1]
  const a = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
  const o = { sensitiveFeatures: a, privileged: 1 }
  assertClose(t, [statisticalParityDifference(y, p, o), disparateImpact(y, p, o), truePositiveRateDifference(y, p, o)], [-0.2, 2 / 3, 0])
  assertClose(t, [averageOddsDifference(y, p, o), averageAbsOddsDifference(y, p, o)], [-0.25, 0.25])
  assertClose(t, [equalizedOddsDifference(y, p, { sensitiveFeatures: a }), demographicParityDifference(y, p, { sensitiveFeatures: a })], [0.5, 0.2])
  t.throws(() => statisticalParityDifference(y, p, { sensitiveFeatures: a, privileged: 7 }), ValueError)
})

t.test('soft ΔDP and the Theil index', async t => {
  assertClose(t, [softDemographicParity([0.4, 0.6, 0.7, 0.7], [0, 0, 1, 1])], [0.2])
  t.equal(theilIndex([1, 0, 1], [1, 0, 1]), 0)
  // b = [1, 2, 0, 1]: μ = 1, T = mean(b ln b) = 2 ln 2 / 4
  assertClose(t, [theilIndex([1, 0, 1, 0], [1, 1, 0, 0])], [Math.log(2) / 2])
})

// Independent reference: every metric from per-group counts, on random predictions with several groups.
t.test('random predictions with several groups against an independent computation', async t => {
  const rand = prng(8)
  for (const G of [2, 3, 5]) {
    const n = 400
    const y = Array.from({ length: n }, () => (rand() < 0.4 ? 1 : 0))
    const p = Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0))
    const g = Array.from({ length: n }, () => Math.floor(rand() * G))
    const probs = Array.from({ length: n }, () => rand())
    const w = Array.from({ length: n }, () => 0.5 + rand())
    const stats = Array.from({ length: G }, (_, k) => {
      let tp = 0, fp = 0, tn = 0, fn = 0, ps = 0, c = 0, sw = 0, swSel = 0
      for (let i = 0; i < n; i++) {
        if (g[i] !== k) continue
        c++
        ps += probs[i]!
        sw += w[i]!
        if (p[i]) swSel += w[i]!
        if (y[i]) p[i] ? tp++ : fn++
        else p[i] ? fp++ : tn++
      }
      return { sel: (tp + fp) / c, tpr: tp / (tp + fn), fpr: fp / (fp + tn), soft: ps / c, wsel: swSel / sw }
    })
    const col = (k: 'sel' | 'tpr' | 'fpr' | 'soft' | 'wsel') => stats.map(s => s[k])
    const diff = (v: number[]) => Math.max(...v) - Math.min(...v)
    const ratio = (v: number[]) => Math.min(...v) / Math.max(...v)
    const o = { sensitiveFeatures: g }
    assertClose(t, [demographicParityDifference(y, p, o), demographicParityRatio(y, p, o)], [diff(col('sel')), ratio(col('sel'))], { msg: `DP, ${G} groups` })
    assertClose(t, [demographicParityDifference(y, p, { ...o, sampleWeight: w })], [diff(col('wsel'))], { msg: `weighted DP, ${G} groups` })
    assertClose(t, [equalizedOddsDifference(y, p, o), equalizedOddsRatio(y, p, o)], [Math.max(diff(col('tpr')), diff(col('fpr'))), Math.min(ratio(col('tpr')), ratio(col('fpr')))], { msg: `EO, ${G} groups` })
    assertClose(t, [equalizedOddsDifference(y, p, { ...o, agg: 'mean' })], [(diff(col('tpr')) + diff(col('fpr'))) / 2])
    assertClose(t, [equalOpportunityDifference(y, p, o)], [diff(col('tpr'))])
    assertClose(t, [softDemographicParity(probs, g)], [diff(col('soft'))], { msg: `soft DP, ${G} groups` })
    const overall = p.reduce((a: number, b) => a + b, 0) / n
    assertClose(t, [demographicParityDifference(y, p, { ...o, method: 'to_overall' })], [Math.max(...col('sel').map(s => Math.abs(s - overall)))])
    // Signed AIF360 metrics with group 0 privileged: unprivileged = every other group pooled.
    const side = (priv: boolean) => {
      let tp = 0, fp = 0, tn = 0, fn = 0
      for (let i = 0; i < n; i++) if ((g[i] === 0) === priv) y[i] ? (p[i] ? tp++ : fn++) : p[i] ? fp++ : tn++
      return { sel: (tp + fp) / (tp + fp + tn + fn), tpr: tp / (tp + fn), fpr: fp / (fp + tn) }
    }
    const u = side(false), pr = side(true)
    const po = { sensitiveFeatures: g, privileged: 0 }
    assertClose(t, [statisticalParityDifference(y, p, po), disparateImpact(y, p, po), averageOddsDifference(y, p, po), truePositiveRateDifference(y, p, po)],
      [u.sel - pr.sel, u.sel / pr.sel, (u.fpr - pr.fpr + u.tpr - pr.tpr) / 2, u.tpr - pr.tpr], { msg: `AIF360 signed, ${G} groups` })
    const b = y.map((yi, i) => p[i]! - yi + 1)
    const mu = b.reduce((a, c) => a + c, 0) / n
    assertClose(t, [theilIndex(y, p)], [b.reduce((a, bi) => a + (bi > 0 ? (bi / mu) * Math.log(bi / mu) : 0), 0) / n])
    assertClose(t, [accuracy(y, p), trueNegativeRate(y, p), falseNegativeRate(y, p)], [
      y.filter((yi, i) => yi === p[i]).length / n,
      y.filter((yi, i) => yi === 0 && p[i] === 0).length / y.filter(yi => yi === 0).length,
      y.filter((yi, i) => yi === 1 && p[i] === 0).length / y.filter(yi => yi === 1).length,
    ])
  }
})

t.test('bad input is a clear, typed error', async t => {
  const o = { sensitiveFeatures: [0, 1, 0] }
  t.throws(() => demographicParityDifference([0, 1, 0], [0, 1], o), ShapeError, 'mismatched lengths')
  t.throws(() => demographicParityDifference([0, 1], [0, 1], o), ShapeError)
  t.throws(() => equalizedOddsDifference([0, 1, 0], [0, 1, 1], { sensitiveFeatures: [1, 1, 1] }), ValueError, 'a single group')
  t.throws(() => softDemographicParity([0.1, 0.2], ['a', 'a']), /at least 2 distinct groups/)
  t.throws(() => truePositiveRate([0, 2, 1], [0, 1, 1]), ValueError, 'non-binary labels')
  t.throws(() => selectionRate([0, 1], [0, 0.5]), /binary label/)
  t.throws(() => softDemographicParity([0.1, Number.NaN], [0, 1]), ValueError, 'NaN scores')
  t.throws(() => softDemographicParity([0.1, 1.5], [0, 1]), /probability/)
  t.throws(() => demographicParityDifference([], [], { sensitiveFeatures: [] }), ValueError, 'empty')
  t.throws(() => metricFrame({ metrics: {}, yTrue: [0], yPred: [0], sensitiveFeatures: [0] }), ArgumentError)
  t.throws(() => demographicParityDifference('01' as never, [0, 1], o), ArgumentError)
  t.throws(() => equalizedOddsDifference([0, 1, 0], [0, 1, 1], { ...o, agg: 'max' as never }), ValueError)
  t.equal(truePositiveRate([0, 0], [0, 1]), 0, 'an empty denominator is 0, as in fairlearn')
  t.ok(Number.isNaN(truePositiveRate([0, 0], [0, 1], { zeroDivision: NaN })), 'or NaN on request')
  t.equal(selectionRate([0, 1, 9], [2, 2, 0], { posLabel: 2 }), 2 / 3, 'custom positive label')
})

t.test('paretoFront keeps the non-dominated points', async t => {
  const f = paretoFront([{ accuracy: 0.8, gap: 0.1 }, { accuracy: 0.85, gap: 0.2 }, { accuracy: 0.79, gap: 0.15 }, { accuracy: 0.7, gap: 0 }])
  t.same(f.map(p => p.accuracy), [0.7, 0.8, 0.85])
})

t.test('bad-input sweep (#19): missing vectors, points and data are typed errors naming the metric', async t => {
  for (const [name, f] of [['accuracy', accuracy], ['falseNegativeRate', falseNegativeRate], ['falsePositiveRate', falsePositiveRate], ['trueNegativeRate', trueNegativeRate], ['truePositiveRate', truePositiveRate], ['selectionRate', selectionRate], ['theilIndex', theilIndex]] as const) {
    t.throws(() => (f as (...a: unknown[]) => number)(), { name: 'ArgumentError', op: name, arg: 'yTrue' }, `${name}()`)
    t.throws(() => (f as (...a: unknown[]) => number)([0, 1]), { name: 'ArgumentError', op: name, arg: 'yPred' }, `${name}(yTrue)`)
  }
  t.throws(() => selectionRate([[1, 2], [3]] as never, undefined as never), { name: 'ArgumentError', op: 'selectionRate', arg: 'yPred' })
  t.throws(() => softDemographicParity(undefined as never, undefined as never), { name: 'ArgumentError', op: 'softDemographicParity', arg: 'probs' })
  t.throws(() => softDemographicParity([0.5], undefined as never), { name: 'ArgumentError', op: 'softDemographicParity', arg: 'sensitiveFeatures' })
  for (const bad of [undefined, 'x', { accuracy: 1 }])
    t.throws(() => paretoFront(bad as never), { name: 'ArgumentError', op: 'paretoFront' }, `points ${JSON.stringify(bad)}`)
  t.throws(() => paretoFront([[1, 2], [3]] as never), { name: 'ArgumentError', op: 'paretoFront', arg: 'points[0]' })
  t.same(paretoFront([{ accuracy: NaN, gap: 0 }, { accuracy: 0.8, gap: 0.1 }]).length, 1, 'a NaN point (a failed run) is still left off, not an error')
  for (const bad of [undefined, null, 'x', [[1, 2], [3]], { n: 2, y: [0, 1], groups: [0], numGroups: 1 }])
    t.throws(() => reweighing(bad as never), { name: /ArgumentError|ShapeError/, op: 'reweighing' }, `data ${JSON.stringify(bad)}`)
  t.throws(() => reweighing({ n: 2, y: [0, 2], groups: [0, 0], numGroups: 1 } as never), { name: 'ValueError', op: 'reweighing', arg: 'data.y[1]' })
  t.same(Array.from(reweighing({ n: 2, y: Uint8Array.of(0, 1), groups: Int32Array.of(0, 0), numGroups: 1 })), [1, 1])
  t.throws(() => tabularData(undefined as never), { name: 'ArgumentError', op: 'tabularData', arg: 'opts' })
  t.throws(() => tabularData({ x: 'x', d: 1, y: [0], groups: [0] } as never), { name: 'ArgumentError', op: 'tabularData', arg: 'x' })
  t.throws(() => tabularData({ x: [1], d: 1, y: [0], groups: [0], zzkey: 1 } as never), { name: 'ArgumentError', op: 'tabularData', arg: 'zzkey' })
  t.throws(() => tabularData({ x: [1], d: 1, y: [0], groups: [0], featureNames: 'f' } as never), { name: 'ArgumentError', op: 'tabularData', arg: 'featureNames' })
  t.equal(tabularData({ x: [1], d: 1, y: [0], groups: [0] }).n, 1, 'a valid call still works')
})
