import t from 'tap'
import { firstValueFrom, toArray } from 'rxjs'
import { add as addT, dispose, matmul as matmulT, memory, relu, scope, sigmoid, tensor, valueAndGrad, ArgumentError, ShapeError, ValueError, type Tensor } from '@heed/tensor'
import {
  accuracy, bceWithLogits, demographicParityDifference, distractionAttention, dpPenalty, initDistractionAttention, softDemographicParity, tabularData,
  distractionLogits, distractionModel, distractionTrainer, initDistraction, makeEncoder, trainAdversarialDebiasing, trainDistraction, trainLagrangian, trainMlp, trainProtectedAttributeEncoder,
  type DistractionAttentionParams, type DistractionParams,
} from '@heed/fairness'
import { distractionBatches, distractionTraining } from '@heed/fairness/stream'
import { assertClose, checkGrad, prng } from '../../tensor/test/helpers/numeric.js'

t.test('dpPenalty matches the fairtorch vectors and is right beyond two groups', async t => {
  const base = memory().tensors
  const v = async (logits: number[], g: number[], o: object) => {
    const s = tensor(logits, [logits.length], 'float64')
    const p = dpPenalty(s, g, { input: 'logits', ...o })
    const x = (await p.data())[0]!
    p.dispose()
    s.dispose()
    return x
  }
  assertClose(t, [await v([0, 2, -1, 1], [0, 0, 1, 1], { variant: 'fairtorch' }), await v([0, 2, -1, 1], [0, 0, 1, 1], { variant: 'fairtorch', reduce: 'mean' })], [0.0181258, 0.0045315], { atol: 1e-7 })
  assertClose(t, [await v([0, 2, -1, 1], [0, 0, 1, 1], {})], [0.0181258], { atol: 1e-7, msg: 'two groups: fixed = as implemented' })
  assertClose(t, [await v([0, 2, -1, 1, 3, -2], [0, 0, 1, 1, 2, 2], { variant: 'fairtorch' }), await v([0, 2, -1, 1, 3, -2], [0, 0, 1, 1, 2, 2], {})], [0.039654, 0.020471], { atol: 1e-6 })
  await checkGrad(t, p => dpPenalty(p, [0, 1, 2, 1, 0], { eta: 3 }), [{ v: [0.2, 0.7, 0.4, 0.9, 0.1], shape: [5] }])
  const two = tensor([0.1, 0.2])
  t.throws(() => dpPenalty(two, [0]), ShapeError)
  t.throws(() => dpPenalty(two, [0, -1]), ValueError)
  t.throws(() => dpPenalty(two, [0, 1], { eta: Number.NaN }), ValueError)
  t.throws(() => dpPenalty(two, [0, 1], { etta: 2 } as never), { name: 'ArgumentError', op: 'dpPenalty', message: /did you mean eta\?/ }, 'a misspelt option is not ignored')
  t.throws(() => dpPenalty(two, [0, 1], null as never), { name: 'ArgumentError', op: 'dpPenalty', arg: 'opts' })
  const gone = tensor([0.1, 0.2], [2])
  gone.dispose()
  t.throws(() => dpPenalty(gone, [0, 1]), { name: 'DisposedError', op: 'dpPenalty' })
  two.dispose()
  t.equal(memory().tensors, base)
})

t.test('distractionAttention: the 6-parameter module, its shape and gradients', async t => {
  const base = memory().tensors
  const p = initDistractionAttention({ seed: 1 })
  t.equal([p.wk, p.bk, p.wv, p.bv, p.wo, p.bo].reduce((a, x) => a + x.size, 0), 6)
  const h = tensor(Float32Array.from({ length: 2 * 32 }, (_, i) => Math.sin(i)), [2, 32], 'float32')
  const e = tensor(Float32Array.from({ length: 2 * 32 }, (_, i) => Math.cos(i)), [2, 32], 'float32')
  const out = distractionAttention(p, h, e)
  t.same(out.shape, [2, 32])
  // Reference for one output token in plain JS: softmax_i(e_j · k_i) · v, then the output projection.
  const [wk, bk, wv, bv, wo, bo] = [p.wk, p.bk, p.wv, p.bv, p.wo, p.bo].map(x => x.dataSync()[0]!) as [number, number, number, number, number, number]
  const hv = h.dataSync(), ev = e.dataSync()
  const ref = (b: number, j: number) => {
    const s = Array.from({ length: 32 }, (_, i) => ev[b * 32 + j]! * (wk * hv[b * 32 + i]! + bk))
    const m = Math.max(...s)
    const z = s.reduce((a, x) => a + Math.exp(x - m), 0)
    return wo * s.reduce((a, x, i) => a + (Math.exp(x - m) / z) * (wv * hv[b * 32 + i]! + bv), 0) + bo
  }
  assertClose(t, [out.dataSync()[0]!, out.dataSync()[37]!], [ref(0, 0), ref(1, 5)], { atol: 1e-5 })
  const wrong = tensor(new Float32Array(3 * 32), [3, 32], 'float32')
  t.throws(() => distractionAttention(p, h, wrong), ShapeError)
  for (const x of [wrong, out, h, e, p.wk, p.bk, p.wv, p.bv, p.wo, p.bo]) x.dispose()
  // Gradients through queries, keys and values (multi-head, 2-d tokens) against central differences.
  const rand = prng(3)
  const r = (n: number) => Array.from({ length: n }, () => rand() * 2 - 1)
  const H = 2, d = 2
  const weights = tensor(r(2 * 4), [2, 4], 'float64')
  const zk = tensor(new Float64Array(H * d), [H * d], 'float64')
  const zo = tensor(new Float64Array(d), [d], 'float64')
  await checkGrad(t, (hid: Tensor, emb: Tensor, wk2: Tensor, wv2: Tensor, wo2: Tensor) => {
    const params: DistractionAttentionParams = { wk: wk2, wv: wv2, wo: wo2, bk: zk, bv: zk, bo: zo }
    return scope(() => sumAll(mulT(distractionAttention(params, hid, emb, { tokenDim: d, heads: H }), weights)))
  }, [{ v: r(2 * 6), shape: [2, 6] }, { v: r(2 * 4), shape: [2, 4] }, { v: r(d * H * d), shape: [d, H * d] }, { v: r(d * H * d), shape: [d, H * d] }, { v: r(H * d * d), shape: [H * d, d] }], { atol: 1e-6 })
  for (const x of [weights, zk, zo]) x.dispose()
  t.equal(memory().tensors, base)
})

function sumAll(x: Tensor): Tensor {
  return tensorSum(x)
}
import { sum as tensorSum, mul as mulT } from '@heed/tensor'

// A synthetic biased dataset: the label depends on a skill feature and, strongly, on the group; a proxy feature
// leaks the group to the encoder.
function biased(n: number, seed: number) {
  const rand = prng(seed)
  const x: number[] = [], y: number[] = [], g: number[] = []
  for (let i = 0; i < n; i++) {
    const s = rand() < 0.5 ? 1 : 0
    const skill = rand() * 2 - 1
    const proxy = s + 0.3 * (rand() * 2 - 1)
    y.push(skill + 1.2 * s - 0.6 + 0.2 * (rand() * 2 - 1) > 0 ? 1 : 0)
    g.push(s)
    x.push(skill, proxy, rand() * 2 - 1, s)
  }
  return tabularData({ x, d: 4, y, groups: g, sensitiveColumns: [3] })
}

t.test('tiny training on a biased dataset: η shrinks the hard DP gap, accuracy stays reasonable', async t => {
  const base = memory().tensors
  const train = biased(1200, 1)
  const test = biased(800, 2)
  const encoder = trainProtectedAttributeEncoder(train, { hidden: [16, 8], epochs: 4, batchSize: 64, lr: 1e-2 })
  t.ok(encoder.accuracy(test) > 0.9, 'the proxy leaks the group')
  // SGD so that η scales the module's step; biases in the classifier step so the penalty cannot win by
  // saturating every score (see DistractionConfig.moduleBiases).
  const run = (eta: number) => {
    const m = trainDistraction(train, {
      encoder, eta, hidden: [16, 8], epochs: 6, warmupEpochs: 4, batchSize: 64, lrModule: 1e-3, lrClassifier: 3e-3, dropout: 0,
      moduleOptimizer: 'sgd', moduleBiases: 'accuracy', classifierPenalty: false,
    })
    const p = m.predictProba(test)
    m.dispose()
    const yp = Array.from(p, v => (v > 0.5 ? 1 : 0))
    return { acc: accuracy(test.y, yp), dp: demographicParityDifference(test.y, yp, { sensitiveFeatures: test.groups }), soft: softDemographicParity(p, test.groups) }
  }
  const free = run(0)
  const fair = run(200)
  t.comment(`η=0: ${JSON.stringify(free)}; η=200: ${JSON.stringify(fair)}`)
  t.ok(free.acc > 0.9, 'unconstrained model learns the task')
  t.ok(fair.dp < free.dp - 0.03, 'the penalty shrinks the hard DP gap')
  t.ok(fair.soft < free.soft, 'and the soft one')
  t.ok(fair.acc > 0.85, 'accuracy stays reasonable')
  encoder.dispose()
  t.equal(memory().tensors, base, 'no tensor leaks')
})

t.test('classifierPenalty: the classifier step descends BCE + η·DP (the authors\' accumulated gradient) or BCE alone', async t => {
  const base = memory().tensors
  const config = { hidden: [6, 4], dropout: 0, lrModule: 1e-30, lrClassifier: 1e-3, eta: 1e4, seed: 3 }
  const rand = prng(11)
  const B = 12
  const x = tensor(Float32Array.from({ length: B * 5 }, () => rand() * 2 - 1), [B, 5], 'float32')
  const embedding = tensor(Float32Array.from({ length: B * 4 }, () => rand()), [B, 4], 'float32')
  const y = tensor(Float32Array.from({ length: B }, (_, i) => i % 3 === 0 ? 1 : 0), [B], 'float32')
  const groups = Array.from({ length: B }, (_, i) => (i % 3 === 0 ? 1 : 0))
  const batch = { x, embedding, y, groups }
  const flat = (p: DistractionParams) => [...p.body, p.head].flatMap(l => [...l.w.dataSync(), ...l.b.dataSync()])
  // Reference gradients of the classifier's parameters, in float32 as the trainer computes them.
  const p0 = initDistraction(5, 4, config)
  const start = flat(p0)
  const lossGrad = (withPenalty: boolean) => {
    const f = (acc: { body: DistractionParams['body']; head: DistractionParams['head'] }) => scope(() => {
      const z = distractionLogits({ ...p0, ...acc }, x, embedding, { config })
      const ce = bceWithLogits(z, y)
      return withPenalty ? addT(ce, dpPenalty(sigmoid(z), groups, { eta: config.eta })) : ce
    })
    const [l, g] = valueAndGrad(f)({ body: p0.body, head: p0.head })
    const out = [...g.body, g.head].flatMap(l => [...l.w.dataSync(), ...l.b.dataSync()])
    dispose([l, g])
    return out
  }
  const gBce = lossGrad(false)
  const gBoth = lossGrad(true)
  const differ = gBce.filter((v, i) => Math.sign(v) !== Math.sign(gBoth[i]!) && Math.abs(gBoth[i]!) > 1e-4).length
  t.ok(differ > 0, `the penalty flips the sign of ${differ} classifier gradients at this point (else the test could not tell)`)
  // Adam's first step moves each parameter by lr·g/(|g| + ε) ≈ lr·sign(g).
  const moved = (withPenalty: boolean) => {
    const tr = distractionTrainer(initDistraction(5, 4, config), { ...config, classifierPenalty: withPenalty })
    tr.step(batch)
    const after = flat(tr.params())
    tr.dispose()
    return after.map((v, i) => (v - start[i]!) / config.lrClassifier)
  }
  for (const [withPenalty, g] of [[true, gBoth], [false, gBce]] as const) {
    const d = moved(withPenalty)
    const bad = d.map((v, i) => ({ v, g: g[i]! })).filter(({ v, g }) => Math.abs(g) > 1e-4 && Math.abs(v + Math.sign(g)) > 0.02)
    t.equal(bad.length, 0, `classifierPenalty ${withPenalty}: every classifier parameter steps along −sign of ${withPenalty ? 'BCE + η·DP' : 'BCE'}'s gradient`)
  }
  dispose([x, embedding, y, p0])
  t.equal(memory().tensors, base, 'no tensor leaks')
})

t.test("module 'layers': shape, identity start, and only θ_fair sees the penalty", async t => {
  const base = memory().tensors
  const config = { module: 'layers' as const, hidden: [8, 6], fairnessLayers: 2, dropout: 0 }
  const p = initDistraction(5, 4, config)
  t.equal(p.attention, undefined)
  t.same(p.fairness!.map(l => l.w.shape), [[6, 6], [6, 6]])
  const x = tensor(Float32Array.from({ length: 3 * 5 }, (_, i) => Math.sin(i)), [3, 5], 'float32')
  const z = distractionLogits(p, x, undefined, { config })
  t.same(z.shape, [3])
  // With identity fairness layers the model is exactly the MLP body → head.
  const plain = scope(() => {
    let h: Tensor = x
    for (const l of p.body) h = relu(addT(matmulT(h, l.w), l.b))
    return addT(matmulT(h, p.head.w), p.head.b)
  })
  assertClose(t, Array.from(z.dataSync()), Array.from(plain.dataSync()), { atol: 1e-6, msg: 'identity start is a no-op' })
  t.throws(() => distractionLogits(p, x, undefined, { config: { ...config, module: 'attention' } }), ArgumentError)
  t.throws(() => initDistraction(5, 4, { ...config, fairnessPosition: 3 }), ArgumentError)
  t.throws(() => initDistraction(5, 4, { ...config, module: 'mlp' as 'layers' }), ValueError)
  dispose([z, plain])
  // One alternating step: the fairness step moves only the fairness layers; the classifier step only the rest.
  const snap = (q: DistractionParams) => ({ fair: q.fairness!.flatMap(l => [...l.w.dataSync(), ...l.b.dataSync()]), acc: [...q.body, q.head].flatMap(l => [...l.w.dataSync(), ...l.b.dataSync()]) })
  const y = tensor([1, 0, 1], [3], 'float32')
  const batch = { x, embedding: tensor(new Float32Array(12), [3, 4], 'float32'), y, groups: [0, 1, 1] }
  const before = snap(p)
  const onlyFair = distractionTrainer(p, { ...config, eta: 100, lrClassifier: 1e-30, moduleBiases: 'fairness', lrModule: 1e-2 })
  onlyFair.step(batch)
  const mid = snap(onlyFair.params())
  t.ok(mid.fair.some((v, i) => Math.abs(v - before.fair[i]!) > 1e-4), 'the penalty moves θ_fair')
  assertClose(t, mid.acc, before.acc, { atol: 1e-12, msg: 'θ_acc untouched by the penalty (its own step has lr ≈ 0)' })
  const q = onlyFair.release()
  const onlyAcc = distractionTrainer(q, { ...config, eta: 0, lrModule: 1e-2, moduleBiases: 'fairness' })
  onlyAcc.step(batch)
  const after = snap(onlyAcc.params())
  assertClose(t, after.fair, mid.fair, { atol: 1e-12, msg: 'η = 0: the fairness step changes nothing, the BCE never reaches θ_fair' })
  t.ok(after.acc.some((v, i) => Math.abs(v - mid.acc[i]!) > 1e-5), 'BCE moves θ_acc')
  onlyAcc.dispose()
  dispose([x, y, batch.embedding])
  t.equal(memory().tensors, base, 'no tensor leaks')
})

t.test("module 'layers' on the biased dataset: the penalty shrinks the gap; the Lagrangian baseline too", async t => {
  const base = memory().tensors
  const train = biased(1200, 1)
  const test = biased(800, 2)
  const encoder = trainProtectedAttributeEncoder(train, { hidden: [8, 4], epochs: 1, batchSize: 64 })
  const score = (m: { predictProba(d: typeof test): Float32Array; dispose(): void }) => {
    const p = m.predictProba(test)
    m.dispose()
    const yp = Array.from(p, v => (v > 0.5 ? 1 : 0))
    return { acc: accuracy(test.y, yp), soft: softDemographicParity(p, test.groups) }
  }
  const run = (eta: number) =>
    score(trainDistraction(train, { encoder, module: 'layers', eta, hidden: [16, 8], epochs: 4, warmupEpochs: 4, batchSize: 64, lrModule: 3e-3, lrClassifier: 3e-3, dropout: 0, moduleBiases: 'accuracy', classifierPenalty: false }))
  const free = run(0)
  const fair = run(100)
  const lag = score(trainLagrangian(train, { eta: 30, hidden: [16, 8], epochs: 8, batchSize: 64, lr: 3e-3, dropout: 0 }))
  t.comment(`layers η=0: ${JSON.stringify(free)}; η=100: ${JSON.stringify(fair)}; Lagrangian η=30: ${JSON.stringify(lag)}`)
  t.ok(free.acc > 0.9, 'unconstrained model learns the task')
  t.ok(fair.soft < free.soft - 0.05, 'the fairness layers shrink the soft DP gap')
  t.ok(lag.soft < free.soft - 0.05, 'so does the Lagrangian')
  encoder.dispose()
  t.equal(memory().tensors, base, 'no tensor leaks')
})

t.test('the RxJS pipeline trains over a batch stream and hands the parameters over', async t => {
  const base = memory().tensors
  const data = biased(256, 4)
  const encoder = trainProtectedAttributeEncoder(data, { hidden: [8, 4], epochs: 1, batchSize: 64 })
  const events = await firstValueFrom(
    distractionBatches(data, encoder, { batchSize: 64, epochs: 2 }).pipe(
      distractionTraining({ inputDim: 4, embeddingDim: 4, hidden: [8, 4], eta: 10, warmupEpochs: 1, stepsPerEpoch: 4 }),
      toArray(),
    ),
  )
  t.equal(events.length, 9)
  t.same(events.slice(0, 8).map(e => e.type === 'step' && e.warmup), [true, true, true, true, false, false, false, false])
  const last = events[8]!
  t.equal(last.type, 'done')
  if (last.type === 'done') dispose(last.params)
  t.throws(() => distractionTraining({ eta: -1, inputDim: 4, embeddingDim: 4 }), ValueError)
  encoder.dispose()
  t.equal(memory().tensors, base)
})

t.test('bad-input sweep (#19): the Distraction functions check their arguments in their own name', async t => {
  const base = memory().tensors
  const d = tensor([1, 2], [2])
  d.dispose()
  const z = tensor([0.5, -1], [2])
  const y = tensor([1, 0], [2])
  t.throws(() => bceWithLogits(undefined as never, y), { name: 'ArgumentError', op: 'bceWithLogits', arg: 'z' })
  t.throws(() => bceWithLogits(d, y), { name: 'DisposedError', op: 'bceWithLogits' })
  t.throws(() => bceWithLogits(z, y, { zzkey: 1 } as never), { name: 'ArgumentError', op: 'bceWithLogits', arg: 'w' })
  const one = tensor([1], [1])
  t.throws(() => bceWithLogits(z, one), { name: 'ShapeError', op: 'bceWithLogits', arg: 'y' })
  t.throws(() => initDistraction(undefined as never, 4), { name: 'ValueError', op: 'initDistraction', arg: 'inputDim' })
  t.throws(() => initDistraction(2 ** 40, 4), { name: 'ValueError', op: 'initDistraction', arg: 'inputDim' }, 'a huge size fails before allocating')
  t.throws(() => initDistraction(5, 4, { hiden: [8] } as never), { name: 'ArgumentError', op: 'initDistraction', message: /did you mean hidden\?/ })
  t.throws(() => initDistractionAttention(null as never), { name: 'ArgumentError', op: 'initDistractionAttention', arg: 'opts' })
  t.throws(() => initDistractionAttention({ zzkey: 1 } as never), { name: 'ArgumentError', op: 'initDistractionAttention', arg: 'zzkey' })
  t.throws(() => initDistractionAttention({ tokenDim: 2 ** 40 }), { name: 'ValueError', op: 'initDistractionAttention' })
  t.throws(() => initDistractionAttention({ rng: 3 } as never), { name: 'ArgumentError', op: 'initDistractionAttention', arg: 'rng' })
  const p = initDistraction(5, 4, { hidden: [8, 4] })
  t.throws(() => distractionAttention(p.attention!, z, z, { zzkey: 1 } as never), { name: 'ArgumentError', op: 'distractionAttention', arg: 'zzkey' })
  for (const bad of [undefined, null, 'x', [[1, 2], [3]], d]) {
    t.throws(() => distractionLogits(bad as never, z, z), { name: 'ArgumentError', op: 'distractionLogits', arg: 'params' }, `distractionLogits params ${String(bad)}`)
    t.throws(() => distractionTrainer(bad as never), { name: 'ArgumentError', op: 'distractionTrainer', arg: 'params' })
    t.throws(() => distractionModel(bad as never, undefined as never), { name: 'ArgumentError', op: 'distractionModel', arg: 'params' })
  }
  const x = tensor(new Float32Array(10), [2, 5])
  t.throws(() => distractionLogits(p, d, undefined), { name: 'DisposedError', op: 'distractionLogits' })
  t.throws(() => distractionLogits(p, x, undefined, { zzkey: 1 } as never), { name: 'ArgumentError', op: 'distractionLogits', arg: 'zzkey' })
  t.throws(() => distractionTrainer(p, { epoch: 1 } as never), { name: 'ArgumentError', op: 'distractionTrainer', message: /did you mean epochs\?/ })
  t.throws(() => distractionTrainer(p, {}, 0), { name: 'ValueError', op: 'distractionTrainer', arg: 'stepsPerEpoch' })
  t.throws(() => distractionModel(p, { embed: 1 } as never), { name: 'ArgumentError', op: 'distractionModel', arg: 'encoder' })
  const emb = tensor(new Float32Array(8), [2, 4])
  const l = distractionLogits(p, x, emb, { config: { hidden: [8, 4] } })
  t.same(l.shape, [2], 'a valid call still works')
  t.throws(() => makeEncoder(undefined as never, 2, []), { name: 'ArgumentError', op: 'makeEncoder', arg: 'layers' })
  t.throws(() => makeEncoder([{ w: x, b: y }], 2, []), { name: 'ArgumentError', op: 'makeEncoder', arg: 'layers' }, 'one layer: no embedding')
  const enc = () => makeEncoder([{ w: tensor(new Float32Array(6), [3, 2]), b: tensor([0, 0], [2]) }, { w: tensor(new Float32Array(4), [2, 2]), b: tensor([0, 0], [2]) }], 2, [3])
  const e = enc()
  t.throws(() => makeEncoder(e.layers, 3, [3]), { name: 'ShapeError', op: 'makeEncoder' }, 'output width is not numGroups')
  t.throws(() => makeEncoder(e.layers, 2, 'x' as never), { name: 'ArgumentError', op: 'makeEncoder', arg: 'dropColumns' })
  t.throws(() => distractionModel(p, e, { zzkey: 1 } as never), { name: 'ArgumentError', op: 'distractionModel', arg: 'zzkey' })
  e.dispose()
  dispose([z, y, one, x, emb, l, p])
  t.equal(memory().tensors, base, 'the failed calls left no tensor behind')
})

t.test('bad-input sweep (#19): every trainer rejects bad data and options before its first step', async t => {
  const data = biased(40, 5)
  let ticks = 0
  const spy = { onEpoch: () => ticks++, progress: { tick: () => ticks++ } } as never as { onEpoch: () => void }
  const enc = makeEncoder([{ w: tensor(new Float32Array(6), [3, 2]), b: tensor([0, 0], [2]) }, { w: tensor(new Float32Array(4), [2, 2]), b: tensor([0, 0], [2]) }], 2, [3])
  const trainers: readonly [string, (data: unknown, opts: Record<string, unknown>) => unknown, Record<string, unknown>][] = [
    ['trainMlp', trainMlp as never, {}],
    ['trainLagrangian', trainLagrangian as never, { eta: 1 }],
    ['trainAdversarialDebiasing', trainAdversarialDebiasing as never, {}],
    ['trainProtectedAttributeEncoder', trainProtectedAttributeEncoder as never, {}],
    ['trainDistraction', trainDistraction as never, { encoder: enc }],
  ]
  const started = Date.now()
  for (const [op, train, base] of trainers) {
    // the encoder trainer takes no onEpoch
    const ok = { ...base, epochs: 1, ...spy, ...(op === 'trainProtectedAttributeEncoder' ? { onEpoch: undefined } : {}) }
    for (const bad of [undefined, null, 'x', [[1, 2], [3]], { ...data, y: data.y.subarray(1) }])
      t.throws(() => train(bad, ok), { name: /Error$/, op }, `${op}: data ${Array.isArray(bad) ? 'array' : typeof bad}`)
    t.throws(() => train(data, { ...ok, epoch: 1 }), { name: 'ArgumentError', op, message: /did you mean epochs\?/ }, `${op}: misspelt key`)
    t.throws(() => train(data, { ...ok, zzkey: 1 }), { name: 'ArgumentError', op, arg: 'zzkey' }, `${op}: unknown key`)
    t.throws(() => train(data, { ...ok, onEpoch: 'x' }), { name: 'ArgumentError', op, arg: 'onEpoch' }, `${op}: onEpoch`)
    t.throws(() => train(data, { ...ok, progress: 'x' }), { name: 'ArgumentError', op, arg: 'progress' }, `${op}: progress`)
    if (op !== 'trainDistraction') t.throws(() => train(data, { ...ok, hidden: 'x' }), { name: /Error$/, op, arg: 'hidden' }, `${op}: hidden`)
  }
  t.throws(() => trainLagrangian(data, undefined as never), { name: 'ArgumentError', op: 'trainLagrangian', arg: 'opts' })
  t.throws(() => trainLagrangian(data, { eta: 1, dpEta: 2 } as never), { name: 'ArgumentError', op: 'trainLagrangian', arg: 'dpEta' }, 'dpEta is set from eta')
  t.throws(() => trainMlp(data, { sampleWeight: 'x' as never }), { name: 'ArgumentError', op: 'trainMlp', arg: 'sampleWeight' })
  t.throws(() => trainMlp(data, { dropout: 1 }), { name: 'ValueError', op: 'trainMlp', arg: 'dropout' })
  t.throws(() => trainDistraction(data, undefined as never), { name: 'ArgumentError', op: 'trainDistraction', arg: 'opts' })
  t.throws(() => trainDistraction(data, { encoder: 'x' as never }), { name: 'ArgumentError', op: 'trainDistraction', arg: 'encoder' })
  t.throws(() => trainDistraction({ ...data, d: 5, x: new Float32Array(200), sensitiveColumns: [4] }, { encoder: enc }), { name: 'ShapeError', op: 'trainDistraction', arg: 'encoder' })
  t.equal(ticks, 0, 'no trainer took a step')
  t.ok(Date.now() - started < 1000, 'every check is quick')
  enc.dispose()
})

t.test('bad-input sweep (#19): a hidden width no tensor can hold fails in the trainer, before anything is made', async t => {
  const base = memory().tensors
  const data = biased(20, 7)
  for (const [op, train] of [['trainMlp', trainMlp], ['trainAdversarialDebiasing', trainAdversarialDebiasing], ['trainProtectedAttributeEncoder', trainProtectedAttributeEncoder]] as const)
    t.throws(() => (train as (d: unknown, o: unknown) => unknown)(data, { hidden: [8, 2 ** 40], epochs: 1 }), { name: 'ValueError', op }, op)
  t.throws(() => initDistraction(4, 4, { module: 'layers', hidden: [2 ** 26, 4], fairnessPosition: 1 }), { name: 'ValueError', op: 'initDistraction' })
  t.equal(memory().tensors, base, 'no layer was left allocated')
})

t.test('distractionBatches and distractionTraining check their arguments at the call, in their own name', async t => {
  const data = biased(32, 4)
  const encoder = trainProtectedAttributeEncoder(data, { hidden: [4], epochs: 1, batchSize: 16 })
  t.throws(() => distractionBatches(data, null as never, { batchSize: 8, epochs: 1 }), { name: 'ArgumentError', op: 'distractionBatches', arg: 'encoder' })
  t.throws(() => distractionBatches(null as never, encoder, { batchSize: 8, epochs: 1 }), { op: 'distractionBatches', message: /^distractionBatches/ })
  t.throws(() => distractionBatches(data, encoder, { batchSize: 0, epochs: 1 }), { op: 'distractionBatches', arg: 'batchSize', message: /^distractionBatches/ })
  t.throws(() => distractionBatches(data, encoder, { batchSize: 8, epochs: 1, batch: 3 } as never), { name: 'ArgumentError', op: 'distractionBatches', message: /batch/ })
  t.throws(() => distractionTraining(null as never), { name: 'ArgumentError', op: 'distractionTraining', arg: 'opts' })
  t.throws(() => distractionTraining({ embeddingDim: 4 }), { op: 'distractionTraining', arg: 'inputDim', message: /^distractionTraining/ })
  t.throws(() => distractionTraining({ inputDim: 4, embeddingDim: 4, stepsPerEpoch: 0 }), { op: 'distractionTraining', arg: 'stepsPerEpoch', message: /^distractionTraining/ })
  encoder.dispose()

})
