/** Out-of-range inputs to the memories: typed errors naming op and argument, never a NaN bias or a silent misreading. */
import t from 'tap'
import { DTypeError, ValueError, tensor } from '@heed/tensor'
import { SparseyMac, hcamMemory, hcamRead, hcamWrite, disposeHcam, initMemoryWeights, initNeuralMemory, titansState, titansStep, disposeTitansState } from '@heed/memory'

t.test('Titans: gates outside [0, 1] and gate inits that are not probabilities', async t => {
  for (const theta of [1.5, 0, 1, -0.2, NaN]) t.throws(() => initNeuralMemory({ dim: 4, gateInit: { theta } }), { name: 'ValueError', op: 'initNeuralMemory', arg: 'gateInit.theta' }, `theta ${theta}`)
  t.throws(() => initNeuralMemory({ dim: 4, gateInit: { alpha: 2 } }), { name: 'ValueError', arg: 'gateInit.alpha' })
  t.throws(() => initNeuralMemory({ dim: 4, keydim: 2 } as never), { name: 'ArgumentError', message: /did you mean keyDim\?/ })
  t.throws(() => initNeuralMemory({ dim: 4, gateInit: { beta: 0.5 } } as never), { name: 'ArgumentError', arg: 'beta' })
  const w = initMemoryWeights({ keyDim: 2, valueDim: 2, depth: 1, dtype: 'float64' })
  const s = titansState(w)
  const kv = tensor([1, 0, 0, 1], [2, 2], 'float64')
  for (const [name, gates] of [
    ['eta 1.5 (tensor)', { theta: 0.1, eta: tensor([0.5, 1.5], [2], 'float64'), alpha: 0 }],
    ['alpha −0.1 (tensor)', { theta: 0.1, eta: 0.5, alpha: tensor([0, -0.1], [2], 'float64') }],
    ['theta −1 (tensor)', { theta: tensor([0.1, -1], [2], 'float64'), eta: 0.5, alpha: 0 }],
    ['eta 2 (number)', { theta: 0.1, eta: 2, alpha: 0 }],
  ] as const)
    t.throws(() => titansStep(s, { keys: kv, values: kv, gates: gates as never }), ValueError, name)
  disposeTitansState(s)
  kv.dispose()
})

t.test('SparseyMac.learn: a dense input with bytes other than 0/1 is an error', async t => {
  const mac = new SparseyMac({ inputSize: 8, Q: 2, K: 2 } as never)
  t.throws(() => mac.learn(Uint8Array.from([0, 1, 0, 2, 0, 0, 0, 0])), { name: 'ValueError', arg: 'input[3]' })
  t.throws(() => mac.learn(Uint8Array.from([255, 0, 0, 0, 0, 0, 0, 0])), ValueError)
})

t.test('hcamRead: queries that are not float are blamed, not the keys', async t => {
  let mem = hcamMemory({ chunkSize: 2 })
  const x = tensor([1, 0, 0, 1, 1, 1, 0, 0], [4, 2], 'float64')
  mem = hcamWrite(mem, x)
  const qi = tensor([1, 0], [1, 2], 'int32')
  t.throws(() => hcamRead(mem, qi, { topK: 1 }), { name: 'DTypeError', op: 'hcamRead', arg: 'queries' })
  const empty = hcamMemory({ chunkSize: 2 })
  t.throws(() => hcamRead(empty, qi, { topK: 1 }), DTypeError, 'also on an empty memory')
  t.throws(() => hcamRead(mem, null as never, { topK: 1 }), { name: 'ShapeError', op: 'hcamRead', arg: 'queries' })
  const qf = tensor([1, 0], [1, 2], 'float64')
  t.throws(() => hcamRead(mem, qf, { topk: 1 } as never), { name: 'ArgumentError', op: 'hcamRead', message: /did you mean topK\?/ })
  const r = hcamRead(empty, qf, { topK: 1 })
  t.same(Array.from(r.indices.dataSync()), [-1], 'an empty memory reads as nothing (documented)')
  for (const u of [qf, r.out, r.indices, r.weights]) u.dispose()
  disposeHcam(mem)
  for (const u of [x, qi]) u.dispose()
})
