import t from 'tap'
import { either as E } from 'fp-ts'
import { memory, ParseError } from '@heed/tensor'
import { adultBenchmark, encodeAdult, loadAdult, parseAdult } from '@heed/fairness'

t.test('the bundled Adult copy loads with the documented facts', async t => {
  const r = await loadAdult()
  if (E.isLeft(r)) throw r.left
  const { train, test } = r.right
  t.equal(train.n, 30162)
  t.equal(test.n, 15060)
  t.same(train.groupNames, ['Female', 'Male'])
  t.equal(Array.from(train.y).reduce((a, b) => a + b, 0), 7508)
  const raw = await loadAdult({ missing: 'category' })
  if (E.isLeft(raw)) throw raw.left
  t.equal(raw.right.train.n, 32561)
  t.equal(raw.right.test.n, 16281)
  let male = 0, malePos = 0
  for (let i = 0; i < raw.right.train.n; i++) if (raw.right.train.groups[i] === 1) (male++, (malePos += raw.right.train.y[i]!))
  t.equal(male, 21790)
  t.equal((malePos / male).toFixed(4), '0.3057')
})

t.test('parse errors come back as Left(ParseError)', async t => {
  const bad = parseAdult('39, State-gov, 77516, Bachelors\n')
  t.ok(E.isLeft(bad) && bad.left instanceof ParseError)
  const label = parseAdult('39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, maybe\n')
  t.ok(E.isLeft(label) && /income/.test(label.left.message))
  const ok = parseAdult('|1x3 Cross validator\n25, ?, 226802, 11th, 7, Never-married, ?, Own-child, Black, Male, 0, 0, 40, United-States, >50K.\n')
  t.ok(E.isRight(ok) && ok.right[0]!.income === 1 && ok.right[0]!.workclass === null)
  if (E.isRight(ok)) t.equal(encodeAdult(ok.right, ok.right, { missing: 'category' }).test.y[0], 1)
  const missing = await loadAdult({ dir: '/nonexistent' })
  t.ok(E.isLeft(missing))
})

t.test('the benchmark runs end to end in a reduced setting', async t => {
  const base = memory().tensors
  const r = await adultBenchmark({ maxTrainRows: 500, maxTestRows: 500, epochs: 1, warmupEpochs: 1, baselineEpochs: 1, encoderEpochs: 1, etas: [100], writtenEtas: [100], layerEtas: [100], layerLrs: [1e-3], lagrangianEtas: [10], progress: false })
  t.same(r.rows.map(x => x.method), ['MLP (unconstrained)', 'Reweighing + MLP', 'Adversarial debiasing (α = 0.3)', 'Lagrangian (BCE + η·DP)', 'Distraction (attention)', 'Distraction (attention, BCE-only classifier step)', 'Distraction (layers, lr 0.001)'])
  for (const x of r.rows) t.ok(x.accuracy >= 0 && x.accuracy <= 1 && x.dpGap >= 0 && x.softDp >= 0 && x.val !== undefined, x.method)
  t.equal(r.distractionEpochs.length, 4, 'one epoch each: Lagrangian, Distraction as implemented, as written, layers')
  t.equal(r.selectedOn, 'validation')
  t.ok(r.front.length >= 3, 'a front per swept method')
  t.equal(memory().tensors, base, 'no tensor leaks')
})

t.test('adultBenchmark checks its options before loading or training anything', async t => {
  // each rejects before loadAdult: were the check after it, this test would train the whole benchmark
  for (const bad of [null, [1], 'quick', 3]) await t.rejects(adultBenchmark(bad as never), { name: 'ArgumentError', op: 'adultBenchmark', arg: 'opts' }, `opts ${JSON.stringify(bad)}`)
  await t.rejects(adultBenchmark({ epoch: 1 } as never), { name: 'ArgumentError', op: 'adultBenchmark', message: /did you mean epochs\?/ })
  await t.rejects(adultBenchmark({ seed: 1, maxTrainRow: 10 } as never), { name: 'ArgumentError', arg: 'maxTrainRow' })
})

t.test('bad-input sweep (#19): loadAdult and encodeAdult check their options and rows before reading or encoding', async t => {
  // each rejects before a file is read: a bad option is the caller's bug, not a Left for the data
  for (const bad of [null, [1], 'x', 3]) await t.rejects(loadAdult(bad as never), { name: 'ArgumentError', op: 'loadAdult', arg: 'opts' }, `opts ${JSON.stringify(bad)}`)
  await t.rejects(loadAdult({ sensitve: 'race' } as never), { name: 'ArgumentError', op: 'loadAdult', message: /did you mean sensitive\?/ })
  await t.rejects(loadAdult({ missing: 'keep' } as never), { name: 'ValueError', op: 'loadAdult', arg: 'missing' })
  await t.rejects(loadAdult({ dir: 3 } as never), { name: 'ArgumentError', op: 'loadAdult', arg: 'dir' })
  const ok = parseAdult('25, ?, 226802, 11th, 7, Never-married, ?, Own-child, Black, Male, 0, 0, 40, United-States, >50K.\n')
  if (!E.isRight(ok)) return t.fail('parses')
  for (const bad of [undefined, null, 'x', [[1, 2], [3]]]) t.throws(() => encodeAdult(bad as never, ok.right), { name: 'ArgumentError', op: 'encodeAdult', arg: /^train/ }, `train ${JSON.stringify(bad)}`)
  t.throws(() => encodeAdult(ok.right, 'x' as never), { name: 'ArgumentError', op: 'encodeAdult', arg: 'test' })
  t.throws(() => encodeAdult([], ok.right), { name: 'ValueError', op: 'encodeAdult', arg: 'train' })
  t.throws(() => encodeAdult(ok.right, ok.right, { zzkey: 1 } as never), { name: 'ArgumentError', op: 'encodeAdult', arg: 'zzkey' })
  t.throws(() => encodeAdult(ok.right, ok.right, { sensitive: 'age' } as never), { name: 'ValueError', op: 'encodeAdult', arg: 'sensitive' })
  t.throws(() => encodeAdult(ok.right, ok.right, { dropFnlwgt: 'no' } as never), { name: 'ArgumentError', op: 'encodeAdult', arg: 'dropFnlwgt' })
  t.equal(encodeAdult(ok.right, ok.right, { missing: 'category' }).train.n, 1, 'a valid call still works')
})
