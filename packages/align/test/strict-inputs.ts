/** Out-of-range inputs to the preference losses: typed errors naming op and argument, never a silent NaN or a flipped objective. */
import t from 'tap'
import { ValueError, dispose, ones, tensor, type Tensor } from '@heed/tensor'
import { dpoLoss, orpoLoss } from '@heed/align'

const f64 = (v: number[]) => tensor(v, [v.length], 'float64')
const batch = () => ({ chosenLogps: f64([-1, -2]), rejectedLogps: f64([-1.5, -2.5]), refChosenLogps: f64([-1.1, -2.1]), refRejectedLogps: f64([-1.4, -2.4]) })

t.test('dpoLoss: labelSmoothing beyond 0.5 flips the preference, so it is an error', async t => {
  t.throws(() => dpoLoss(batch(), { labelSmoothing: 0.7 }), { name: 'ValueError', op: 'dpoLoss', arg: 'labelSmoothing', message: /\[0, 0\.5\]/ })
  t.throws(() => dpoLoss(batch(), { labelSmoothing: 0.7, lossType: 'aot' }), ValueError)
  t.throws(() => dpoLoss(batch(), { labelSmoothing: -0.1 }), ValueError)
  t.ok(Number.isFinite(dpoLoss(batch(), { labelSmoothing: 0.5 }).loss.dataSync()[0]!), '0.5 is the bound, allowed')
  t.ok(Number.isFinite(dpoLoss(batch(), { labelSmoothing: 0.7, lossType: 'exo_pair' }).loss.dataSync()[0]!), "exo_pair's ε in (0, 1) is its own")
})

t.test('orpoLoss: a positive log-probability is an error, not NaN', async t => {
  const lengths = { chosenLengths: ones([2], { dtype: 'float64' }), rejectedLengths: ones([2], { dtype: 'float64' }) }
  t.throws(() => orpoLoss({ chosenLogps: f64([0.5, -1]), rejectedLogps: f64([-1, -2]), ...lengths }), { name: 'ValueError', op: 'orpoLoss', arg: 'chosenLogps[0]' })
  t.throws(() => orpoLoss({ chosenLogps: f64([-0.5, -1]), rejectedLogps: f64([-1, 3]), ...lengths }), { name: 'ValueError', arg: 'rejectedLogps[1]' })
  t.ok(Number.isFinite(orpoLoss({ chosenLogps: f64([-0.5, -1]), rejectedLogps: f64([-1, -2]), ...lengths }).loss.dataSync()[0]!))
})

t.test('the losses reject unknown and misspelt option keys, naming op and key', async t => {
  const { anchorLoss, cpoLoss, flexDpoLoss, ktoLoss, logpsFromTokens } = await import('@heed/align')
  const calls: [string, (o: object) => unknown, string, string][] = [
    ['dpoLoss', o => dpoLoss(batch(), o), 'betta', 'beta'],
    ['dpoLoss', o => dpoLoss(batch(), o), 'label_smoothing', 'labelSmoothing'],
    ['cpoLoss', o => cpoLoss(batch(), o), 'simpo_gamma', 'simpoGamma'],
    ['orpoLoss', o => orpoLoss(batch(), o), 'lambda', 'beta'],
    ['ktoLoss', o => ktoLoss({} as never, o), 'desirable_weight', 'desirableWeight'],
    ['anchorLoss', o => anchorLoss(f64([1, 2]), o), 'delt', 'delta'],
    ['flexDpoLoss', o => flexDpoLoss(batch(), o), 'betachosen', 'betaChosen'],
    ['logpsFromTokens', o => logpsFromTokens(tensor([-1, -2], [1, 2], 'float64'), ones([1, 2], { dtype: 'float64' }), o), 'reduction', 'reduce'],
  ]
  for (const [op, call, key, near] of calls) {
    let err: { name?: string; op?: string; arg?: string; message?: string } | undefined
    try {
      call({ [key]: 1 })
    } catch (e) {
      err = e as typeof err
    }
    t.match(err, { name: 'ArgumentError', op, arg: key }, `${op}: ${key} is an unknown option`)
    if (near !== 'beta') t.match(err?.message, new RegExp(`did you mean ${near}\\?`), `${op}: suggests ${near}`)
  }
})

t.test('bad calls found by the bad-input sweep name the function called', async t => {
  const { anchorLoss, collatePreferences, cpoLoss, flexDpoLoss, greedyPerplexity, log1mexp, preferenceMetrics, readMetrics, readMetricsSync, requireSameArchitecture, squaredError } =
    await import('@heed/align')
  const gone = f64([1, 2])
  gone.dispose()
  t.throws(() => anchorLoss(gone), { name: 'DisposedError', op: 'anchorLoss', arg: 'rewards' }, 'a disposed tensor is named at the call, with its argument')
  t.throws(() => greedyPerplexity(gone), { name: 'DisposedError', op: 'greedyPerplexity' })
  t.throws(() => log1mexp(gone), { name: 'DisposedError', op: 'log1mexp' })
  t.throws(() => log1mexp([1, 2] as never), { name: 'ArgumentError', op: 'log1mexp', arg: 'x' })
  t.throws(() => cpoLoss(undefined as never), { name: 'ArgumentError', op: 'cpoLoss', arg: 'batch' })
  t.throws(() => orpoLoss(null as never), { name: 'ArgumentError', op: 'orpoLoss', arg: 'batch' })
  t.throws(() => flexDpoLoss(undefined as never), { name: 'ArgumentError', op: 'flexDpoLoss', arg: 'batch' }, 'flexDpoLoss, not dpoLoss')
  t.throws(() => flexDpoLoss({ chosenLogps: f64([-1]) } as never), { name: 'ArgumentError', op: 'flexDpoLoss' })
  const x = f64([1, 2])
  t.throws(() => squaredError(x, f64([1, 2, 3])), { name: 'ShapeError', op: 'squaredError', arg: 'target' }, 'no silent broadcasting')
  t.throws(() => squaredError('x' as never, x), { name: 'ArgumentError', op: 'squaredError', arg: 'pred' })
  t.same([...squaredError(x, f64([0, 4])).dataSync()], [1, 4])
  t.throws(() => preferenceMetrics(undefined as never, x, x, x), { name: 'ArgumentError', op: 'preferenceMetrics', arg: 'chosenRewards' })
  t.throws(() => preferenceMetrics(x, gone, x, x), { name: 'DisposedError', op: 'preferenceMetrics' })
  for (const bad of [undefined, 'x', [x], x]) t.throws(() => readMetricsSync(bad as never), { name: 'ArgumentError', op: 'readMetricsSync', arg: 'metrics' })
  t.throws(() => readMetricsSync({ loss: 1 }), { name: 'ArgumentError', op: 'readMetricsSync', arg: 'metrics.loss' }, 'a number is not silently dropped')
  t.throws(() => readMetricsSync({ loss: x }), { name: 'ShapeError', op: 'readMetricsSync', arg: 'metrics.loss' }, 'a [2] tensor is not read as its first entry')
  await t.rejects(readMetrics(null as never), { name: 'ArgumentError', op: 'readMetrics', arg: 'metrics' })
  t.same(readMetricsSync({ a: f64([3]), b: undefined }), { a: 3 })
  t.throws(() => requireSameArchitecture(undefined as never, {} as never, {} as never), { name: 'ArgumentError', op: 'requireSameArchitecture', arg: 'op' })
  t.throws(() => requireSameArchitecture('f', {} as never, {} as never), { name: 'ArgumentError', op: 'requireSameArchitecture', arg: 'policy' })
  t.throws(() => collatePreferences([[1, 2], [3]] as never), { name: 'ArgumentError', op: 'collatePreferences', arg: 'examples[0]' })
  t.throws(() => collatePreferences([{ prompt: 'ab' }] as never), { name: 'ArgumentError', op: 'collatePreferences', arg: 'examples[0].prompt' })
  x.dispose()
})

t.test('noisePredictionErrors and preferenceDataset name themselves for what they hand on', async t => {
  const { noisePredictionErrors, preferenceDataset } = await import('@heed/align')
  const { zeros } = await import('@heed/tensor')
  const x = f64([1, 2])
  const noise = (p: { chosen: Tensor; rejected: Tensor }) => ({ chosen: { xt: p.chosen, eps: f64([0, 0]) }, rejected: { xt: p.rejected, eps: f64([0, 0]) } })
  const wrong = () => zeros([3], { dtype: 'float64' })
  t.throws(() => noisePredictionErrors({ model: wrong, reference: wrong, chosen: x, rejected: x, t: 1, noise } as never), {
    name: 'ShapeError',
    op: 'noisePredictionErrors',
    arg: 'model(chosen)',
  }, "a model output of another shape than its noise is the model's, in noisePredictionErrors' name")
  const ok = noisePredictionErrors({ model: (v: Tensor) => v, reference: (v: Tensor) => v, chosen: x, rejected: x, t: 1, noise } as never)
  t.same([...ok.modelErrChosen.dataSync()], [1, 4])
  dispose(ok)
  const reference = { lm: { forward() {}, config: { vocab: 3 } }, params: {} }
  for (const policy of [5, {}]) await t.rejects(preferenceDataset([], { reference, policy, tokenizer: {} } as never), { name: 'ValueError', op: 'preferenceDataset', arg: 'policy' }, `policy ${JSON.stringify(policy)}`)
  await t.rejects(preferenceDataset([], { reference: { ...reference, lm: { forward() {} } }, tokenizer: {} } as never), { name: 'ValueError', op: 'preferenceDataset', arg: 'reference.lm' })
  x.dispose()
})
