/** Out-of-range inputs to the memories: typed errors naming op and argument, never a NaN bias or a silent misreading. */
import t from 'tap'
import { DTypeError, ValueError, tensor } from '@heed/tensor'
import {
  SparseyHierarchy, SparseyMac, activeIndices, codeCells, codeOverlap, resolveSparseyConfig, sparseyMac, hcamMemory, hcamRead, hcamWrite, disposeHcam, sinusoidalPositions, memoryOperators,
  associativeLoss, memoryForward, initMemoryWeights, initNeuralMemory, linearMemoryGradient, neuralMemory, neuralMemoryInputs, neuralMemoryState, titansFlush, titansRead, titansState, titansStep, disposeTitansState,
} from '@heed/memory'

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

t.test('bad-input sweep (#19): Sparsey helpers name themselves and check their arguments', async t => {
  t.throws(() => resolveSparseyConfig(undefined as never), { name: 'ArgumentError', op: 'resolveSparseyConfig', arg: 'config' })
  t.throws(() => new SparseyMac(null as never), { name: 'ArgumentError', op: 'SparseyMac' })
  t.throws(() => sparseyMac({ inputSize: 4, zzkey: 1 } as never), { name: 'ArgumentError', op: 'sparseyMac', arg: 'zzkey' })
  t.throws(() => activeIndices([1, 2], undefined as never), { name: 'ValueError', op: 'activeIndices', arg: 'size' })
  t.throws(() => activeIndices('x' as never, 4), { name: 'ArgumentError', op: 'activeIndices', arg: 'input' })
  t.same(Array.from(activeIndices([3, 1], 4)), [1, 3], 'a valid call still works')
  t.throws(() => codeOverlap(undefined as never, undefined as never), { name: 'ArgumentError', op: 'codeOverlap', arg: 'a' })
  t.throws(() => codeOverlap(Int32Array.of(1), [1] as never), { name: 'ArgumentError', op: 'codeOverlap', arg: 'b' })
  t.equal(codeOverlap(Int32Array.of(1, 2), Int32Array.of(1, 0)), 1)
  t.throws(() => codeCells([0, 1] as never, 2), { name: 'ArgumentError', op: 'codeCells', arg: 'code' })
  t.throws(() => codeCells(Int32Array.of(0, 1), undefined as never), { name: 'ValueError', op: 'codeCells', arg: 'K' })
  t.throws(() => codeCells(Int32Array.of(0, 2), 2), { name: 'ValueError', op: 'codeCells', arg: 'code[1]' })
  t.same(Array.from(codeCells(Int32Array.of(0, 1), 2)), [0, 3])
  t.throws(() => new SparseyHierarchy({ inputSize: 4, levels: [{ receptiveFields: [[0, 1]], Q: 0 }] }), { name: 'ValueError', op: 'SparseyHierarchy: levels[0]', arg: 'Q' })
})

t.test('bad-input sweep (#19): Titans states, params and reads are checked in the function called', async t => {
  const w = initMemoryWeights({ keyDim: 2, valueDim: 2, depth: 1, dtype: 'float64' })
  const d = tensor([1, 0, 0, 1], [2, 2], 'float64')
  d.dispose()
  for (const bad of [undefined, null, 'x', [[1, 2], [3]], d]) {
    t.throws(() => disposeTitansState(bad as never), { name: 'ArgumentError', op: 'disposeTitansState', arg: 'state' })
    t.throws(() => titansFlush(bad as never), { name: 'ArgumentError', op: 'titansFlush', arg: 'state' })
    t.throws(() => titansRead(bad as never, d), { name: 'ArgumentError', op: 'titansRead', arg: 'state' })
    t.throws(() => neuralMemoryState(bad as never), { name: 'ArgumentError', op: 'neuralMemoryState', arg: 'params' })
    t.throws(() => neuralMemoryInputs(bad as never, d), { name: 'ArgumentError', op: 'neuralMemoryInputs', arg: 'params' })
    t.throws(() => neuralMemory(bad as never, d), { name: 'ArgumentError', op: 'neuralMemory', arg: 'params' })
  }
  const s = titansState(w)
  t.throws(() => titansRead(s, d), { name: 'DisposedError', op: 'titansRead' }, 'disposed queries')
  t.throws(() => titansRead(s, [[1, 0]] as never), { name: 'ArgumentError', op: 'titansRead', arg: 'queries' })
  t.throws(() => linearMemoryGradient(d, w[0]!, w[0]!), { name: 'DisposedError', op: 'linearMemoryGradient' })
  const k = tensor([1, 0, 0, 1, 1, 1], [3, 2], 'float64')
  t.throws(() => linearMemoryGradient(w[0]!, k, tensor([1, 0], [1, 2], 'float64')), { name: 'ShapeError', op: 'linearMemoryGradient', arg: 'values' })
  const params = initNeuralMemory({ dim: 2, dtype: 'float64' })
  t.throws(() => neuralMemory(params, k, { weights: 1 } as never), { name: 'ArgumentError', op: 'neuralMemory', arg: 'state' })
  t.throws(() => neuralMemoryInputs(params, d), { name: 'DisposedError', op: 'neuralMemoryInputs' })
  const r = neuralMemory(params, k)
  t.same(r.out.shape, [3, 2], 'a valid call still works')
  disposeTitansState(r.state)
  disposeTitansState(neuralMemoryState(params))
  disposeTitansState(titansFlush(s))
  for (const u of [r.out, k, ...w, params.wk, params.wv, params.wq, params.wGate, params.bGate, ...params.init]) u.dispose()
  disposeTitansState(s)
})

t.test('bad-input sweep (#19): HCAM memories, positions and the LM operators check their arguments', async t => {
  for (const bad of [undefined, null, 'x', [[1, 2], [3]], tensor([1], [1])]) {
    t.throws(() => disposeHcam(bad as never), { name: 'ArgumentError', op: 'disposeHcam', arg: 'mem' })
    t.throws(() => hcamRead(bad as never, tensor([1, 0], [1, 2]), { topK: 1 }), { name: 'ArgumentError', op: 'hcamRead', arg: 'mem' })
  }
  t.throws(() => sinusoidalPositions(undefined as never, 4), { name: 'ValueError', op: 'sinusoidalPositions', arg: 'C' })
  t.throws(() => sinusoidalPositions(2, 4, 'int32' as never), { name: 'ValueError', op: 'sinusoidalPositions', arg: 'dtype' })
  t.throws(() => sinusoidalPositions(2 ** 40, 4), { name: 'ValueError', op: 'sinusoidalPositions' }, 'a huge size fails before allocating')
  const pos = sinusoidalPositions(2, 4)
  t.same(pos.shape, [2, 4])
  pos.dispose()
  t.throws(() => memoryOperators.titans(undefined as never), { name: 'ArgumentError', op: 'memoryOperators.titans', arg: 'variant' })
  const hcam = memoryOperators.hcam()
  t.throws(() => hcam(null as never, undefined as never, undefined as never, undefined as never), { name: 'ArgumentError', op: 'memoryOperators.hcam', arg: 'q' })
  const q = tensor(new Float32Array(8), [1, 1, 2, 4])
  t.throws(() => hcam(q, q, q, undefined as never), { name: 'ArgumentError', op: 'memoryOperators.hcam', arg: 'opts' })
  const mac = memoryOperators.titans('MAC')
  t.throws(() => mac(q, [1] as never, q, {}), { name: 'ArgumentError', op: 'memoryOperators.titans(MAC)', arg: 'k' })
  q.dispose()
})

t.test('bad-input sweep (#19): mac methods name the class; an unknown activation or familiarity option is an error', async t => {
  const mac = new SparseyMac({ inputSize: 4, Q: 2, K: 2 })
  t.throws(() => mac.familiarity([0], { contxt: null } as never), { name: 'ArgumentError', op: 'SparseyMac.familiarity', message: /did you mean context\?/ })
  t.throws(() => mac.familiarity([0], { context: Int32Array.of(0) }), { name: 'ShapeError', op: 'SparseyMac.familiarity', arg: 'context' })
  t.throws(() => mac.step([9]), { name: 'ValueError', op: 'SparseyMac.step', arg: 'input' })
  t.type(mac.familiarity([0, 1]), 'number', 'a valid call still works')
  const w = initMemoryWeights({ keyDim: 2, valueDim: 2, depth: 1, dtype: 'float64' })
  const k = tensor([1, 0, 0, 1], [2, 2], 'float64')
  t.throws(() => memoryForward(w, k, 'softmax' as never), { name: 'ValueError', op: 'memoryForward', arg: 'activation' }, 'no longer read as relu')
  t.throws(() => associativeLoss(w, k, k, 'sigmoid' as never), { name: 'ValueError', op: 'associativeLoss', arg: 'activation' })
  t.throws(() => associativeLoss(w, k, k, 'silu', [1, 1] as never), { name: 'ShapeError', op: 'associativeLoss', arg: 'coeffs' })
  const r = memoryForward(w, k, 'tanh')
  t.same(r.shape, [2, 2])
  for (const u of [r, k, ...w]) u.dispose()
})
