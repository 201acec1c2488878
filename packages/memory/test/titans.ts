import t, { type Test } from 'tap'
import { from, Subject, toArray, lastValueFrom } from 'rxjs'
import { ShapeError, ValueError, DTypeError, add, sum, square, scope, dispose, memory, tensor, valueAndGrad, type Tensor } from '@heed/tensor'
import {
  associativeLoss,
  disposeTitansState,
  initMemoryWeights,
  initNeuralMemory,
  initTitansLayer,
  titansLayer,
  linearMemoryGradient,
  memoryForward,
  neuralMemory,
  neuralMemoryInputs,
  titansFlush,
  titansRead,
  titansState,
  titansStep,
  type NeuralMemoryParams,
  type TitansState,
} from '@heed/memory'
import { neuralMemoryStream } from '@heed/memory/stream'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const base = memory().tensors

/** A subtest that must leave no tensors behind. */
const leakTest = (name: string, body: (t: Test) => Promise<void>) =>
  t.test(name, async tt => {
    const before = memory().tensors
    await body(tt)
    tt.equal(memory().tensors, before, 'no tensors leaked')
  })
const rand = prng(11)
const f64 = (v: readonly number[], shape: readonly number[]): Tensor => tensor([...v], shape, 'float64')
const host = (x: Tensor): number[] => Array.from(x.dataSync())

/** n orthonormal rows of length d (Gram–Schmidt on random vectors). */
function orthonormal(n: number, d: number): number[][] {
  const rows: number[][] = []
  while (rows.length < n) {
    let v = randomArray(rand, d)
    for (const r of rows) {
      const p = r.reduce((s, x, i) => s + x * v[i]!, 0)
      v = v.map((x, i) => x - p * r[i]!)
    }
    const norm = Math.hypot(...v)
    rows.push(v.map(x => x / norm))
  }
  return rows
}

/** Float64 linear-memory reference: gradients at chunk-start weights, the recurrences token by token. */
function linearReference(W0: number[], dk: number, dv: number, K: number[][], V: number[][], Q: number[][], theta: number[], eta: number[], alpha: number[], b: number) {
  let W = [...W0]
  let S = new Array<number>(dk * dv).fill(0)
  const out: number[] = []
  for (let c = 0; c < K.length; c += b) {
    const Wc = [...W]
    const end = Math.min(c + b, K.length)
    for (let t = c; t < end; t++) for (let j = 0; j < dv; j++) out.push(Q[t]!.reduce((s, q, i) => s + q * Wc[i * dv + j]!, 0))
    if (end - c < b) break
    for (let t = c; t < end; t++) {
      const k = K[t]!
      const r = Array.from({ length: dv }, (_, j) => k.reduce((s, x, i) => s + x * Wc[i * dv + j]!, 0) - V[t]![j]!)
      S = S.map((s, idx) => eta[t]! * s - theta[t]! * 2 * k[Math.floor(idx / dv)]! * r[idx % dv]!)
      W = W.map((w, idx) => (1 - alpha[t]!) * w + S[idx]!)
    }
  }
  return { W, S, out }
}

leakTest('memoryForward, associativeLoss and the linear closed-form gradient against float64 references', async t => {
  const [W1, W2] = [randomArray(rand, 3 * 4), randomArray(rand, 4 * 2)]
  const x = randomArray(rand, 5 * 3)
  const ins = [f64(W1, [3, 4]), f64(W2, [4, 2]), f64(x, [5, 3])]
  const y = memoryForward([ins[0]!, ins[1]!], ins[2]!, 'tanh')
  const ref: number[] = []
  for (let n = 0; n < 5; n++) {
    const h = Array.from({ length: 4 }, (_, j) => Math.tanh([0, 1, 2].reduce((s, i) => s + x[n * 3 + i]! * W1[i * 4 + j]!, 0)))
    for (let j = 0; j < 2; j++) ref.push(h.reduce((s, hv, i) => s + hv * W2[i * 2 + j]!, 0))
  }
  assertClose(t, host(y), ref, { atol: 1e-12, msg: 'two-layer forward' })

  const W = f64(randomArray(rand, 4 * 3), [4, 3])
  const K = f64(randomArray(rand, 6 * 4), [6, 4])
  const V = f64(randomArray(rand, 6 * 3), [6, 3])
  const c = f64(randomArray(rand, 6, 0, 1), [6])
  const [lv, g] = valueAndGrad((w: Tensor) => associativeLoss([w], K, V, 'silu', c))(W)
  lv.dispose()
  const closed = linearMemoryGradient(W, K, V, c)
  assertClose(t, host(g), host(closed), { atol: 1e-12, msg: 'autodiff gradient = 2Kᵀdiag(c)(KW − V)' })
  await checkGrad(t, (a, b, k, v) => associativeLoss([a!, b!], k!, v!, 'silu'), [
    { v: randomArray(rand, 3 * 4), shape: [3, 4] },
    { v: randomArray(rand, 4 * 2), shape: [4, 2] },
    { v: randomArray(rand, 5 * 3), shape: [5, 3] },
    { v: randomArray(rand, 5 * 2), shape: [5, 2] },
  ], { msg: 'associative loss of a 2-layer memory' })
  dispose([ins, y, W, K, V, c, g, closed])
})

leakTest('chunked = the float64 chunk-start loop; chunk size 1 = the sequential rule', async t => {
  const dk = 5, dv = 3, T = 13
  const K = Array.from({ length: T }, () => randomArray(rand, dk))
  const V = Array.from({ length: T }, () => randomArray(rand, dv))
  const Q = Array.from({ length: T }, () => randomArray(rand, dk))
  const theta = randomArray(rand, T, 0.05, 0.3), eta = randomArray(rand, T, 0.1, 0.9), alpha = randomArray(rand, T, 0, 0.1)
  const W0 = randomArray(rand, dk * dv)
  const input = () => ({
    keys: f64(K.flat(), [T, dk]),
    values: f64(V.flat(), [T, dv]),
    queries: f64(Q.flat(), [T, dk]),
    gates: { theta: f64(theta, [T]), eta: f64(eta, [T]), alpha: f64(alpha, [T]) },
  })
  for (const b of [1, 4, 16]) {
    const ref = linearReference(W0, dk, dv, K, V, Q, theta, eta, alpha, b)
    const w0 = f64(W0, [dk, dv])
    const s0 = titansState([w0])
    const inp = input()
    const { state, out } = titansStep(s0, inp, { chunkSize: b })
    assertClose(t, host(state.weights[0]!), ref.W, { atol: 1e-12, msg: `b=${b}: weights` })
    assertClose(t, host(state.momentum[0]!), ref.S, { atol: 1e-12, msg: `b=${b}: momentum` })
    assertClose(t, host(out), ref.out, { atol: 1e-12, msg: `b=${b}: reads use chunk-start weights` })
    t.equal(state.pending?.keys.shape[0] ?? 0, T % b, `b=${b}: ${T % b} tokens pending`)
    dispose([w0, out, inp])
    disposeTitansState(s0)
    disposeTitansState(state)
  }
  // A deep memory: the sequential autodiff rule against chunk size 1.
  const W = initMemoryWeights({ keyDim: dk, valueDim: dv, depth: 2, hidden: 6, dtype: 'float64', seed: 3 })
  const sSeq = titansState(W)
  const inp1 = input()
  const sChunk = titansStep(sSeq, inp1, { mode: 'sequential', activation: 'gelu' })
  const inp2 = input()
  const sOne = titansStep(sSeq, inp2, { chunkSize: 1, activation: 'gelu' })
  sChunk.state.weights.forEach((w, i) => assertClose(t, host(w), host(sOne.state.weights[i]!), { atol: 1e-12, msg: `MLP layer ${i}: b=1 = sequential` }))
  assertClose(t, host(sChunk.out), host(sOne.out), { atol: 1e-12, msg: 'MLP reads: b=1 = sequential' })
  const sFour = titansStep(sSeq, inp2, { chunkSize: 4, activation: 'gelu' })
  const diff = Math.max(...host(sFour.state.weights[1]!).map((x, i) => Math.abs(x - host(sChunk.state.weights[1]!)[i]!)))
  t.ok(diff > 1e-6, `b=4 is a different algorithm from sequential (max diff ${diff.toExponential(2)})`)
  dispose([W, sChunk.out, sOne.out, sFour.out, inp1, inp2])
  for (const s of [sSeq, sChunk.state, sOne.state, sFour.state]) disposeTitansState(s)
})

leakTest('chained streaming calls equal one parallel pass, for any partition', async t => {
  const d = 6, T = 24
  const X = randomArray(rand, T * d)
  const params = initNeuralMemory({ dim: d, depth: 2, hidden: 8, dtype: 'float64', seed: 5 })
  const x = f64(X, [T, d])
  const one = neuralMemory(params, x, undefined, { chunkSize: 4 })
  for (const parts of [[5, 7, 3, 9], [1, 1, 22], [4, 4, 4, 12]]) {
    let state: TitansState | undefined
    const outs: number[] = []
    let at = 0
    for (const n of parts) {
      const xi = f64(X.slice(at * d, (at + n) * d), [n, d])
      const r = neuralMemory(params, xi, state, { chunkSize: 4 })
      if (state) disposeTitansState(state)
      state = r.state
      outs.push(...host(r.out))
      dispose([xi, r.out])
      at += n
    }
    assertClose(t, outs, host(one.out), { atol: 1e-10, msg: `partition ${parts}: reads` })
    state!.weights.forEach((w, i) => assertClose(t, host(w), host(one.state.weights[i]!), { atol: 1e-10, msg: `partition ${parts}: weights ${i}` }))
    t.equal(state!.position, T)
    disposeTitansState(state!)
  }
  // Flushing commits the remainder as a short chunk.
  const y = f64(X.slice(0, 10 * d), [10, d])
  const r = neuralMemory(params, y, undefined, { chunkSize: 4 })
  t.equal(r.state.pending?.keys.shape[0], 2)
  const flushed = titansFlush(r.state)
  t.equal(flushed.pending, null)
  t.notSame(host(flushed.weights[0]!), host(r.state.weights[0]!), 'the flushed tokens were written')
  dispose([x, one.out, y, r.out, params as unknown as object])
  for (const s of [one.state, r.state, flushed]) disposeTitansState(s)
})

leakTest('exact one-pass recall of orthonormal keys (η=0, α=0, θ=½)', async t => {
  const d = 16
  const keys = orthonormal(d, d)
  const values = Array.from({ length: d }, () => randomArray(rand, d))
  for (const opts of [{ mode: 'sequential' as const }, { chunkSize: 8 }]) {
    const w = initMemoryWeights({ keyDim: d, depth: 1, init: 'zeros', dtype: 'float64' })
    const s = titansState(w)
    const K = f64(keys.flat(), [d, d])
    const Vt = f64(values.flat(), [d, d])
    const { state, out } = titansStep(s, { keys: K, values: Vt, gates: { theta: 0.5, eta: 0, alpha: 0 } }, opts)
    const rec = titansRead(state, K)
    assertClose(t, host(rec), values.flat(), { atol: 1e-12, msg: `${JSON.stringify(opts)}: M(k_i) = v_i` })
    dispose([w, K, Vt, rec, out])
    disposeTitansState(s)
    disposeTitansState(state)
  }
})

leakTest('forgetting decays an old association as (1 − α)^n', async t => {
  const d = 32, n = 29
  const keys = orthonormal(n + 1, d)
  const values = Array.from({ length: n + 1 }, () => randomArray(rand, d))
  const v0 = Math.hypot(...values[0]!)
  for (const [alpha, expected] of [[0, 1], [0.02, 0.557], [0.1, 0.047]] as const) {
    for (const opts of [{ mode: 'sequential' as const }, { chunkSize: 6 }]) {
      const w = initMemoryWeights({ keyDim: d, depth: 1, init: 'zeros', dtype: 'float64' })
      const s = titansState(w)
      // The first pair is written with no decay; the n orthogonal writes after it each decay it once.
      const alphas = [0, ...new Array<number>(n).fill(alpha)]
      const inp = { keys: f64(keys.flat(), [n + 1, d]), values: f64(values.flat(), [n + 1, d]), gates: { theta: 0.5, eta: 0, alpha: f64(alphas, [n + 1]) } }
      const { state, out } = titansStep(s, inp, opts)
      const flushed = titansFlush(state, {})
      const k0 = f64(keys[0]!, [1, d])
      const r = titansRead(flushed, k0)
      const ratio = Math.hypot(...host(r)) / v0
      t.ok(Math.abs(ratio - (1 - alpha) ** n) < 1e-12, `α=${alpha} ${JSON.stringify(opts)}: ‖M k₀‖/‖v₀‖ = ${ratio.toFixed(4)} = (1−α)^${n} (≈${expected})`)
      t.ok(Math.abs(ratio - expected) < 1e-3)
      dispose([w, k0, r, out, inp])
      for (const x of [s, state, flushed]) disposeTitansState(x)
    }
  }
})

leakTest('momentum carries a surprise forward and decays as Π η', async t => {
  const d = 4
  const w = initMemoryWeights({ keyDim: d, depth: 1, init: 'zeros', dtype: 'float64' })
  const s = titansState(w)
  // One surprising token, then tokens with a zero key: their gradient is 0, only momentum moves the memory.
  const K = [1, 0, 0, 0, ...new Array<number>(4 * d).fill(0)]
  const V = randomArray(rand, 5 * d)
  const weights: number[][] = []
  let cur = s
  for (let i = 0; i < 5; i++) {
    const inp = { keys: f64(K.slice(i * d, (i + 1) * d), [1, d]), values: f64(V.slice(i * d, (i + 1) * d), [1, d]), gates: { theta: 0.5, eta: 0.5, alpha: 0 } }
    const r = titansStep(cur, inp, { mode: 'sequential' })
    dispose(inp)
    if (cur !== s) disposeTitansState(cur)
    cur = r.state
    r.out.dispose()
    weights.push(host(cur.weights[0]!))
  }
  const steps = weights.slice(1).map((w, i) => Math.hypot(...w.map((x, j) => x - weights[i]![j]!)))
  const first = Math.hypot(...weights[0]!)
  steps.forEach((st, i) => t.ok(Math.abs(st / first - 0.5 ** (i + 1)) < 1e-12, `step ${i + 1} after the surprise moves M by η^${i + 1} of the first`))
  disposeTitansState(cur)
  disposeTitansState(s)
  w[0]!.dispose()
})

leakTest('surprise: contradicting values have larger gradients; repetition lowers the loss monotonically', async t => {
  const d = 8
  const W = initMemoryWeights({ keyDim: d, depth: 2, dtype: 'float64', seed: 9 })
  const k = f64(randomArray(rand, d), [1, d])
  const v = f64(randomArray(rand, d), [1, d])
  let s = titansState(W)
  const losses: number[] = []
  for (let i = 0; i < 6; i++) {
    const l = associativeLoss(s.weights, k, v)
    losses.push(host(l)[0]!)
    l.dispose()
    const r = titansStep(s, { keys: k, values: v, gates: { theta: 0.1, eta: 0, alpha: 0 } }, { mode: 'sequential' })
    r.out.dispose()
    disposeTitansState(s)
    s = r.state
  }
  t.ok(losses.every((l, i) => i === 0 || l < losses[i - 1]!), `loss falls with repetition: ${losses.map(l => l.toFixed(3)).join(' > ')}`)
  const gnorm = (val: Tensor) => {
    const [l, g] = valueAndGrad((w: Tensor[]) => associativeLoss(w, k, val))([...s.weights])
    const n = Math.hypot(...g.flatMap(x => host(x)))
    dispose([l, g])
    return n
  }
  const other = f64(randomArray(rand, d, -3, 3), [1, d])
  t.ok(gnorm(other) > gnorm(v), 'a contradicting value is more surprising than the repeated one')
  dispose([W, k, v, other])
  disposeTitansState(s)
})

leakTest('an MLP memory recalls stored pairs better than unseen keys; recall falls with load', async t => {
  const d = 16
  const cos = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0) / (Math.hypot(...a) * Math.hypot(...b))
  const recallAt = (N: number) => {
    const keys = Array.from({ length: N }, () => { const v = randomArray(rand, d); const n = Math.hypot(...v); return v.map(x => x / n) })
    const values = Array.from({ length: N }, () => randomArray(rand, d))
    const w = initMemoryWeights({ keyDim: d, depth: 1, init: 'zeros', dtype: 'float64' })
    const s = titansState(w)
    const K = f64(keys.flat(), [N, d])
    const Vt = f64(values.flat(), [N, d])
    const r = titansStep(s, { keys: K, values: Vt, gates: { theta: 0.5, eta: 0, alpha: 0 } }, { mode: 'sequential' })
    const recT = titansRead(r.state, K)
    const rec = host(recT)
    const score = values.reduce((acc, v, i) => acc + cos(rec.slice(i * d, (i + 1) * d), v), 0) / N
    dispose([w, K, Vt, r.out, recT])
    disposeTitansState(s)
    disposeTitansState(r.state)
    return score
  }
  const curve = [4, 8, 16, 32].map(recallAt)
  t.ok(curve.every((c, i) => i === 0 || c <= curve[i - 1]! + 0.02), `recall cosine vs load N/d = ¼…2: ${curve.map(c => c.toFixed(2)).join(', ')}`)
  t.ok(curve[0]! > 0.85 && curve[3]! < 0.7)

  // A deep memory: N ≪ parameters, a few passes; stored pairs end far below unseen ones.
  const N = 8
  const unit = () => { const v = randomArray(rand, d); const n = Math.hypot(...v); return v.map(x => x / n) }
  const K = f64(Array.from({ length: N }, unit).flat(), [N, d])
  const V = f64(randomArray(rand, N * d), [N, d])
  const Kf = f64(Array.from({ length: N }, unit).flat(), [N, d])
  const Vf = f64(randomArray(rand, N * d), [N, d])
  const W = initMemoryWeights({ keyDim: d, depth: 2, hidden: 64, dtype: 'float64', seed: 4 })
  let s = titansState(W)
  for (let pass = 0; pass < 8; pass++) {
    const r = titansStep(s, { keys: K, values: V, gates: { theta: 0.1, eta: 0, alpha: 0 } }, { mode: 'sequential' })
    r.out.dispose()
    disposeTitansState(s)
    s = r.state
  }
  const lossOf = (k: Tensor, v: Tensor) => { const l = associativeLoss(s.weights, k, v); const x = host(l)[0]!; l.dispose(); return x }
  const stored = lossOf(K, V), unseen = lossOf(Kf, Vf)
  t.ok(stored < 0.2 * unseen, `MLP memory: loss on stored pairs ${stored.toFixed(3)} ≪ on unseen ${unseen.toFixed(3)}`)
  dispose([K, V, Kf, Vf, W])
  disposeTitansState(s)
})

leakTest('gradients reach every trainable parameter through the test-time updates', async t => {
  const d = 3
  const mk = (wk: Tensor, wv: Tensor, wq: Tensor, wGate: Tensor, bGate: Tensor, m1: Tensor, m2: Tensor): NeuralMemoryParams => ({ wk, wv, wq, wGate, bGate, init: [m1, m2] })
  const x = randomArray(rand, 5 * d)
  await checkGrad(
    t,
    (...p) => {
      const params = mk(...(p as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]))
      const xs = f64(x, [5, d])
      const r = neuralMemory(params, xs, undefined, { chunkSize: 2, maxLr: 0.5, activation: 'tanh' })
      const loss = associativeLoss(r.state.weights, xs, xs, 'tanh')
      const o = sum(r.out)
      const res = add(loss, o)
      dispose([xs, r.out, loss, o])
      disposeTitansState(r.state)
      return res
    },
    [
      { v: randomArray(rand, d * d), shape: [d, d] },
      { v: randomArray(rand, d * d), shape: [d, d] },
      { v: randomArray(rand, d * d), shape: [d, d] },
      { v: randomArray(rand, d * 3), shape: [d, 3] },
      { v: randomArray(rand, 3), shape: [3] },
      { v: randomArray(rand, d * 4), shape: [d, 4] },
      { v: randomArray(rand, 4 * d), shape: [4, d] },
    ],
    { msg: 'outer loss through a 2-chunk neural memory', atol: 1e-5, rtol: 1e-4 },
  )
})

leakTest('the stream operator stores chunks, answers recalls, keeps state per subscription and frees it', async t => {
  const d = 8
  const params = initNeuralMemory({ dim: d, depth: 2, dtype: 'float64', seed: 2 })
  const X = randomArray(rand, 12 * d)
  const Qv = randomArray(rand, 2 * d)
  const before = memory().tensors
  // the operator borrows its chunks and recalls (stream ownership rule): the test made them and frees them
  const made: unknown[] = []
  const mk = <T>(x: T): T => (made.push(x), x)
  const chunk = (a: number, b: number) => mk({ tokens: f64(X.slice(a * d, b * d), [b - a, d]), positions: a })
  const run = () => lastValueFrom(from([chunk(0, 5), chunk(5, 12), mk({ query: f64(Qv, [2, d]) })]).pipe(neuralMemoryStream(params, { chunkSize: 4 }), toArray()))
  const [a, b] = [await run(), await run()]
  t.equal(a.length, 1, 'only the recall emits')
  assertClose(t, host(a[0]!), host(b[0]!), { atol: 0, msg: 'each subscription starts from M₀' })
  const xAll = f64(X, [12, d])
  const direct = neuralMemory(params, xAll, undefined, { chunkSize: 4 })
  const q = f64(Qv, [2, d])
  const inputs = neuralMemoryInputs(params, q)
  const ref = titansRead(direct.state, inputs.queries!)
  assertClose(t, host(a[0]!), host(ref), { atol: 1e-12, msg: 'recall = the plain function on the whole sequence' })
  dispose([a, b, direct.out, q, inputs, ref, xAll])
  disposeTitansState(direct.state)
  // Unsubscribing mid-stream frees the subscription's state.
  const subject = new Subject<{ tokens: Tensor; positions: number }>()
  const sub = subject.pipe(neuralMemoryStream(params, { emitReads: true })).subscribe(o => o.dispose())
  subject.next(chunk(0, 6))
  sub.unsubscribe()
  dispose(made)
  t.equal(memory().tensors, before, 'nothing left after unsubscribe')
  t.throws(() => neuralMemoryStream(null as unknown as NeuralMemoryParams), { name: 'ArgumentError' })
  dispose(params as unknown as object)
})

leakTest('validation names op, argument, expected and actual', async t => {
  const w = initMemoryWeights({ keyDim: 4, depth: 1, dtype: 'float64' })
  const s = titansState(w)
  const k = f64(randomArray(rand, 8), [2, 4])
  const bad3 = f64([1, 2, 3], [1, 3])
  const f32 = tensor([[1, 2, 3, 4]], [1, 4], 'float32')
  t.throws(() => titansStep(s, { keys: bad3, values: k, gates: { theta: 0.1, eta: 0, alpha: 0 } }), ShapeError)
  t.throws(() => titansStep(s, { keys: k, values: k, gates: { theta: 0.1, eta: 1.5, alpha: 0 } }), ValueError)
  t.throws(() => titansStep(s, { keys: k, values: k, gates: { theta: -1, eta: 0, alpha: 0 } }), ValueError)
  t.throws(() => titansStep(s, { keys: k, values: k, gates: { theta: 0.1, eta: 0, alpha: 0 } }, { chunkSize: 0 }), ValueError)
  t.throws(() => titansStep(s, { keys: f32, values: k, gates: { theta: 0.1, eta: 0, alpha: 0 } }), DTypeError)
  t.throws(() => memoryForward([], k), { name: 'ArgumentError' })
  dispose([w, k, bad3, f32])
  disposeTitansState(s)
})

leakTest('MAC, MAG and MAL wirings: causal, persistent tokens seen from every row, MAC chains by segment', async t => {
  const d = 8, T = 12
  const params = initTitansLayer({ dim: d, depth: 2, hidden: 8, persistentTokens: 2, dtype: 'float64', seed: 3 })
  const X = randomArray(rand, T * d)
  const opts = { heads: 2, segment: 4, window: 3, chunkSize: 2 }
  for (const variant of ['MAC', 'MAG', 'MAL'] as const) {
    const x = f64(X, [T, d])
    const a = titansLayer(params, x, variant, undefined, opts)
    t.same(a.out.shape, [T, d], `${variant}: [T, d] out`)
    t.ok(host(a.out).every(Number.isFinite))
    // Perturb row 7: rows 0..6 must not move.
    const X2 = [...X]
    for (let j = 0; j < d; j++) X2[7 * d + j] = X2[7 * d + j]! + 1
    const x2 = f64(X2, [T, d])
    const b = titansLayer(params, x2, variant, undefined, opts)
    assertClose(t, host(b.out).slice(0, 7 * d), host(a.out).slice(0, 7 * d), { atol: 1e-12, msg: `${variant}: rows before a change are unchanged` })
    t.ok(Math.max(...host(b.out).slice(7 * d).map((v, i) => Math.abs(v - host(a.out)[7 * d + i]!))) > 1e-6, `${variant}: rows from the change on move`)
    // Other persistent tokens: every row moves, row 0 included (it sees P whatever the window).
    const P2 = f64(randomArray(rand, 2 * d), [2, d])
    const c = titansLayer({ ...params, persistent: P2 }, x, variant, undefined, opts)
    const moved = Array.from({ length: T }, (_, r) => Math.max(...host(c.out).slice(r * d, (r + 1) * d).map((v, i) => Math.abs(v - host(a.out)[r * d + i]!))))
    t.ok(variant === 'MAG' || variant === 'MAL' ? moved.every(m => m > 1e-9) : moved[0]! > 1e-9, `${variant}: persistent tokens reach ${variant === 'MAC' ? 'row 0' : 'every row'}`)
    dispose([x, x2, P2, a.out, b.out, c.out])
    for (const r of [a, b, c]) disposeTitansState(r.state)
  }
  // MAC over whole segments chains exactly.
  const x = f64(X, [T, d])
  const one = titansLayer(params, x, 'MAC', undefined, opts)
  const x1 = f64(X.slice(0, 8 * d), [8, d]), x2 = f64(X.slice(8 * d), [4, d])
  const r1 = titansLayer(params, x1, 'MAC', undefined, opts)
  const r2 = titansLayer(params, x2, 'MAC', r1.state, opts)
  assertClose(t, [...host(r1.out), ...host(r2.out)], host(one.out), { atol: 1e-12, msg: 'MAC: two calls = one pass' })
  t.throws(() => titansLayer(params, x, 'MAG', undefined, { heads: 3 }), ValueError)
  t.throws(() => titansLayer(params, x1, 'XYZ' as 'MAC'), ValueError)
  dispose([x, x1, x2, one.out, r1.out, r2.out, params as unknown as object])
  for (const s of [one.state, r1.state, r2.state]) disposeTitansState(s)
})

leakTest('a MAG layer is trainable end to end (persistent tokens, attention and memory maps)', async t => {
  const d = 4, T = 4
  const params = initTitansLayer({ dim: d, depth: 1, persistentTokens: 2, dtype: 'float64', seed: 8 })
  const X = randomArray(rand, T * d)
  await checkGrad(
    t,
    (P, wq, mk) => {
      const x = f64(X, [T, d])
      const r = titansLayer({ ...params, persistent: P!, wq: wq!, memory: { ...params.memory, wk: mk! } }, x, 'MAG', undefined, { heads: 2, window: 2, chunkSize: 2, activation: 'tanh' })
      const s = scope(() => sum(square(r.out)))
      dispose([x, r.out])
      disposeTitansState(r.state)
      return s
    },
    [{ v: randomArray(rand, 2 * d), shape: [2, d] }, { v: randomArray(rand, d * d), shape: [d, d] }, { v: randomArray(rand, d * d), shape: [d, d] }],
    { msg: 'MAG', atol: 1e-5, rtol: 1e-4 },
  )
  dispose(params as unknown as object)
})

t.test('memory is back to its baseline', async t => {
  t.equal(memory().tensors, base)
})
