import t from 'tap'
import { adam, concat, dispose, memory, mul, scope, slice, sum, tensor, valueAndGrad, type Tensor } from '@heed/tensor'
import { cachedAttention, clampGates, duoAttention, duoDeploy, duoGateLoss, duoKvBytes, kvCache, mask, multiHeadAttention } from '@heed/attention'
import { conformance, referenceAttention, type ConformanceRun, type HostTensor } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'

const rand = prng(61)
type Shape4 = [number, number, number, number]
const host = (shape: Shape4, lo = -1, hi = 1) => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1), lo, hi), shape })

/** Streaming predicate written from the paper: causal ∧ (pk < sink ∨ pq − pk < recent). */
const streamingRule = (sink: number, recent: number) => mask.custom((_b, _h, pq, pk) => pk <= pq && (pk < sink || pq - pk < recent))

/** float64 golden DuoAttention: α_{⌊h/g⌋}·causal + (1 − α)·streaming, per output element. */
function duoReference(q: HostTensor, k: HostTensor, v: HostTensor, alpha: readonly number[], sink: number, recent: number, extra: Parameters<typeof referenceAttention>[3] = {}): Float64Array {
  const causal = mask.and(mask.custom((_b, _h, pq, pk) => pk <= pq), ...(extra.mask ? [extra.mask] : []))
  const full = referenceAttention(q, k, v, { ...extra, mask: causal })
  const stream = referenceAttention(q, k, v, { ...extra, mask: mask.and(causal, streamingRule(sink, recent)) })
  const [, H, Tq] = q.shape
  const g = H / k.shape[1]
  const Dv = v.shape[3]
  return full.out.map((f, i) => {
    const h = Math.floor(i / (Tq * Dv)) % H
    const a = alpha[Math.floor(h / g)]!
    return a * f + (1 - a) * stream.out[i]!
  })
}

t.test('duoAttention = α·full + (1 − α)·streaming (float64 reference), GQA, offsets', async t => {
  for (const [H, Hkv] of [[4, 4], [4, 2]] as const) {
    const alpha = Array.from({ length: Hkv }, (_, i) => [0.2, 0.9, 0, 1][i]!)
    const [q, k, v] = [host([2, H, 6, 4]), host([2, Hkv, 13, 4]), host([2, Hkv, 13, 3])]
    const base = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
    const r = duoAttention(tq!, tk!, tv!, { alpha, sink: 2, recent: 3 })
    assertClose(t, await r.out.data(), duoReference(q, k, v, alpha, 2, 3), { atol: 1e-12, rtol: 1e-12, msg: `H=${H} Hkv=${Hkv}` })
    const r2 = duoAttention(tq!, tk!, tv!, { alpha, sink: 1, recent: 2, queryOffset: 3 })
    assertClose(t, await r2.out.data(), duoReference(q, k, v, alpha, 1, 2, { queryOffset: 3 }), { atol: 1e-12, rtol: 1e-12, msg: `H=${H} Hkv=${Hkv} queryOffset` })
    for (const x of [tq, tk, tv, r.out, r.full.out, r.full.lse, r.streaming.out, r.streaming.lse, r2.out, r2.full.out, r2.full.lse, r2.streaming.out, r2.streaming.lse]) x!.dispose()
    t.equal(memory().tensors, base, 'no leaks')
  }
})

t.test('invariants: α ≡ 1 ⇒ base; sink + recent ≥ T ⇒ full; GQA heads share α', async t => {
  const [q, k, v] = [host([1, 4, 9, 4]), host([1, 2, 9, 4]), host([1, 2, 9, 4])]
  const base = referenceAttention(q, k, v, { mask: mask.custom((_b, _h, pq, pk) => pk <= pq) }).out
  const before = memory().tensors
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
  const ones = scope(() => duoAttention(tq!, tk!, tv!, { alpha: [1, 1], sink: 1, recent: 1 }).out)
  assertClose(t, await ones.data(), base, { atol: 1e-12, rtol: 1e-12, msg: 'α ≡ 1 ⇒ causal attention' })
  const wide = scope(() => duoAttention(tq!, tk!, tv!, { alpha: [0, 0.3], sink: 4, recent: 5 }).out)
  assertClose(t, await wide.data(), base, { atol: 1e-12, rtol: 1e-12, msg: 'sink + recent ≥ T ⇒ full, whatever α' })
  // The 2 query heads of kv head 1 move together: one gate value per kv head.
  const a = tensor([0.5, 0.25], [2], 'float64')
  const [val, g] = valueAndGrad((x: Tensor) => scope(() => sum(duoAttention(tq!, tk!, tv!, { alpha: x, sink: 1, recent: 2 }).out)))(a)
  t.equal((g as Tensor).shape[0], 2, 'gradient per kv head')
  // on live tensors: a disposed one is a DisposedError before the gates are looked at
  t.throws(() => duoAttention(tq!, tk!, tv!, { alpha: [1, 1, 1], sink: 1, recent: 2 }), /one per kv head/)
  for (const x of [tq, tk, tv, ones, wide, a, val, g as Tensor]) x!.dispose()
  t.equal(memory().tensors, before, 'no leaks')
  t.throws(() => duoAttention(tq!, tk!, tv!, { alpha: [1, 1], sink: 1, recent: 2 }), { name: 'DisposedError', op: 'duoAttention' })
})

t.test('validation', async t => {
  const [q, k, v] = [host([1, 2, 3, 2]), host([1, 2, 3, 2]), host([1, 2, 3, 2])].map(x => tensor(x.values, x.shape))
  t.throws(() => duoAttention(q!, k!, v!, { alpha: [1, 2], sink: 1, recent: 2 }), { name: 'ValueError' })
  t.throws(() => duoAttention(q!, k!, v!, { alpha: [1, 1], sink: -1, recent: 2 }), /sink/)
  t.throws(() => duoAttention(q!, k!, v!, { alpha: [1, 1], sink: 1, recent: 0 }), /recent/)
  t.throws(() => duoDeploy([0.5], { sparsity: 2 }), /sparsity/)
  t.throws(() => duoKvBytes(duoDeploy([1]), { headDim: 2, seqLen: -1 }), /seqLen/)
  const a = tensor([1, 1, 1], [3])
  t.throws(() => duoAttention(q!, k!, v!, { alpha: a }), { name: 'ShapeError' })
  for (const x of [q, k, v, a]) x!.dispose()
})

t.test('gradients of the gate loss (in α, q, k, v) match finite differences; the mixture is linear in α', async t => {
  const [q, k, v] = [host([1, 2, 7, 3]), host([1, 2, 7, 3]), host([1, 2, 7, 2])]
  const inputs = [{ v: [0.3, 0.7], shape: [2] }, ...[q, k, v].map(x => ({ v: [...x.values], shape: x.shape }))]
  await checkGrad(t, (a, tq, tk, tv) => duoGateLoss(tq!, tk!, tv!, a!, { sink: 1, recent: 2, rows: [5, 6], lambda: 0.05 }), inputs, { msg: 'duoGateLoss' })
  const w = randomArray(rand, 2 * 7 * 2)
  await checkGrad(t, (a, tq, tk, tv) => scope(() => sum(mul(duoAttention(tq!, tk!, tv!, { alpha: a!, sink: 1, recent: 3 }).out, tensor(w, [1, 2, 7, 2], 'float64')))), inputs, { msg: 'duoAttention' })
})

/**
 * Synthetic passkey retrieval: heads 0 and 2 copy a passkey planted mid-context (beyond sinks and window) into the
 * answer rows; heads 1 and 3 read only the recent tokens. Training the gates alone with the L1 penalty must keep
 * the retrieval heads (α → 1) and release the local ones (α → 0).
 */
function passkeyTask(): { q: Tensor; k: Tensor; v: Tensor; rows: number[]; retrieval: boolean[] } {
  const r = prng(2024)
  const [B, H, T, D] = [4, 4, 32, 8]
  const noise = (n: number, a: number) => Array.from({ length: n }, () => a * (2 * r() - 1))
  const q = noise(B * H * T * D, 0.3)
  const k = noise(B * H * T * D, 0.3)
  const v = noise(B * H * T * D, 1)
  const at = (b: number, h: number, i: number, d: number) => ((b * H + h) * T + i) * D + d
  const rows = [T - 2, T - 1]
  for (let b = 0; b < B; b++) {
    const key = 8 + 3 * b // the passkey's position: past the 2 sinks, far outside the 4-token window
    for (let h = 0; h < H; h++) {
      const retrieval = h % 2 === 0
      const dir = h // a per-head direction
      for (const i of rows) q[at(b, h, i, dir)] = 6
      const targets = retrieval ? [key, key + 1] : [T - 4, T - 3, T - 2, T - 1]
      for (const j of targets) k[at(b, h, j, dir)] = 3
    }
  }
  const mk = (x: number[]) => tensor(x, [B, H, T, D], 'float64')
  return { q: mk(q), k: mk(k), v: mk(v), rows, retrieval: [true, false, true, false] }
}

t.test('gate training on synthetic passkeys separates retrieval from streaming heads', async t => {
  const before = memory().tensors
  const { q, k, v, rows, retrieval } = passkeyTask()
  const opts = { sink: 2, recent: 4, rows, lambda: 0.05 }
  let alpha: Tensor = tensor([1, 1, 1, 1], [4], 'float64')
  const opt = adam({ lr: 0.02 })
  let state = opt.init(alpha)
  const lossOf = valueAndGrad((a: Tensor) => duoGateLoss(q, k, v, a, opts))
  let first = NaN
  let last = NaN
  for (let step = 0; step < 120; step++) {
    const [loss, g] = lossOf(alpha)
    last = loss.dataSync()[0]!
    if (step === 0) first = last
    const [next, nextState] = opt.step(g as Tensor, state, alpha)
    loss.dispose()
    ;(g as Tensor).dispose()
    state = nextState
    alpha = scope(() => clampGates(next))
    next.dispose()
  }
  const a = Array.from(await alpha.data())
  t.ok(a[0]! > 0.9 && a[2]! > 0.9, 'retrieval heads keep α near 1', { alpha: a })
  t.ok(a[1]! < 0.05 && a[3]! < 0.05, 'local heads go to α ≈ 0', { alpha: a })
  t.ok(last < first, 'loss decreased', { first, last })
  const dep = duoDeploy(a, { sink: 2, recent: 4 })
  t.same(dep.retrieval, retrieval, 'threshold 0.5 recovers the planted retrieval heads')
  t.same(duoDeploy(a, { sparsity: 0.5, sink: 2, recent: 4 }).retrieval, retrieval, 'sparsity 50% picks the same heads')
  // KV memory at the official window (128 + 256) over a 32k context, Llama-2-7B head dim 128, fp16.
  const official = duoKvBytes(duoDeploy(a), { headDim: 128, seqLen: 32768, dtype: 'float16' })
  t.equal(official.full, 4 * 32768 * 256 * 2)
  t.equal(official.deployed, (2 * 32768 + 2 * 384) * 256 * 2)
  t.ok(Math.abs(official.ratio - 32768 * 4 / (2 * 32768 + 2 * 384)) < 1e-12, `KV memory saving ${official.ratio.toFixed(3)}× (half the heads streaming)`)
  t.comment(`DuoAttention KV bytes at T=32768, D=128, fp16, 4 kv heads (2 retrieval): full ${official.full}, deployed ${official.deployed}, ${official.ratio.toFixed(3)}× smaller`)
  dispose([q, k, v, alpha, state])
  t.equal(memory().tensors, before, 'no leaks')
})

t.test('deployed compacted cache: decode = streaming-mask attention at every step, constant cache size', async t => {
  for (const [H, Hkv, chunks] of [[4, 4, [1]], [4, 2, [3, 1, 2]]] as const) {
    const T = 23
    const [sink, recent] = [2, 3]
    const [q, k, v] = [host([1, H, T, 4]), host([1, Hkv, T, 4]), host([1, Hkv, T, 4])]
    const dep = duoDeploy(Array.from({ length: Hkv }, (_, i) => (i % 2 === 0 ? 0.1 : 0.8)), { sink, recent })
    const want = duoReference(q, k, v, dep.alpha, sink, recent)
    const before = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
    const cache = kvCache({ batch: 1, kvHeads: Hkv, headDim: 4, capacity: T, dtype: 'float64', policies: dep.policies, chunk: 3 })
    const bytes = cache.bytes()
    let pos = 0
    let ok = true
    let bounded = true
    for (let c = 0; pos < T; c++) {
      const n = Math.min(chunks[c % chunks.length]!, T - pos)
      const step = scope(() => {
        const piece = (x: Tensor) => slice(x, [null, null, [pos, pos + n]])
        cache.append(piece(tk!), piece(tv!), pos)
        return cachedAttention(piece(tq!), cache, { queryOffset: pos }).out
      })
      cache.compact()
      const got = await step.data()
      step.dispose()
      const Dv = 4
      for (let h = 0; h < H; h++)
        for (let i = 0; i < n; i++)
          for (let d = 0; d < Dv; d++) if (Math.abs(got[(h * n + i) * Dv + d]! - want[(h * T + pos + i) * Dv + d]!) > 1e-12) ok = false
      pos += n
      for (let j = 0; j < Hkv; j++) if (!dep.retrieval[j] && cache.retained(j) > sink + recent) bounded = false
      if (cache.bytes() !== bytes) bounded = false
    }
    t.ok(ok, `H=${H} Hkv=${Hkv}: every decode step equals duoAttention with the binarised gates`)
    t.ok(bounded, 'streaming heads retain ≤ sink + recent tokens; cache bytes constant')
    t.ok(dep.retrieval.every((r, j) => !r || cache.retained(j) === T), 'retrieval heads keep everything')
    cache.dispose()
    for (const x of [tq, tk, tv]) x!.dispose()
    t.equal(memory().tensors, before, 'no leaks')
  }
})

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 'duoAttention', async (t, backend) => {
    const [q, k, v] = [host([1, 4, 10, 4]), host([1, 2, 10, 4]), host([1, 2, 10, 4])]
    const alpha = [0.25, 0.75]
    const want = duoReference(q, k, v, alpha, 2, 3)
    const base = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float32', { backend }))
    const out = scope(() => duoAttention(tq!, tk!, tv!, { alpha, sink: 2, recent: 3 }).out)
    assertClose(t, await out.data(), want, { atol: 2e-6, rtol: 2e-5, msg: `${backend} out` })
    for (const x of [tq, tk, tv, out]) x!.dispose()
    t.equal(memory().tensors, base, 'no leaks')
  })
})

t.test('conformance', async t => {
  const gates = (Hkv: number) => Array.from({ length: Hkv }, (_, i) => [0.3, 0.8, 0.55, 0][i % 4]!)
  const run: ConformanceRun = (q, k, v, o) => ({ out: duoAttention(q, k, v, { ...o, alpha: gates(k.shape[1]!), sink: 1, recent: 3 }).out })
  const report = await conformance(t, {
    name: 'duoAttention',
    run,
    reference: (q, k, v, o) => ({ out: duoReference(q, k, v, gates(k.shape[1]), 1, 3, o) }),
    patterns: ['CS', 'CC'],
    incremental: true,
    // No lse (a mixture of two softmax states is not one); sinks and windows sit on absolute positions, which
    // C7's deletion and C8's packing renumber.
    contracts: ['C1', 'C2', 'C3'],
  })
  t.same(report.ran, ['C1', 'C2', 'C3'])
  const big = 1 << 20
  const deg = await conformance(t, {
    name: 'duoAttention (degenerate)',
    run,
    patterns: ['CS', 'CC'],
    incremental: true,
    contracts: ['C4'],
    degenerate: [
      { name: 'α ≡ 1', run: (q, k, v, o) => ({ out: duoAttention(q, k, v, { ...o, alpha: Array<number>(k.shape[1]!).fill(1), sink: 1, recent: 1 }).out }) },
      { name: 'sink + recent ≥ T', run: (q, k, v, o) => ({ out: duoAttention(q, k, v, { ...o, alpha: gates(k.shape[1]!), sink: 0, recent: big }).out }) },
    ],
  })
  t.same(deg.ran, ['C4'])
})

t.test('inside multiHeadAttention: a deployed cache decodes like the binarised duo mixture', async t => {
  const layer = multiHeadAttention({ dModel: 8, heads: 4, kvHeads: 2 })
  const params = layer.init({ seed: 5, dtype: 'float64' })
  const T = 15
  const [sink, recent] = [2, 3]
  const dep = duoDeploy([0.9, 0.1], { sink, recent })
  const x = tensor(randomArray(rand, T * 8), [1, T, 8], 'float64')
  const before = memory().tensors
  // Query heads 0–1 read kv head 0 (retrieval), 2–3 kv head 1 (streaming).
  const whole = layer.forward(params, x, { mask: mask.perHead(4, h => (h < 2 ? mask.all : mask.streaming(sink, recent))) })
  const cache = layer.cache({ batch: 1, capacity: T, dtype: 'float64', policies: dep.policies, chunk: 2 })
  const steps: Tensor[] = []
  for (let i = 0; i < T; i++) steps.push(scope(() => layer.forward(params, slice(x, [null, [i, i + 1]]), { cache })))
  const stepped = concat(steps, 1)
  assertClose(t, await stepped.data(), await whole.data(), { atol: 1e-12, rtol: 1e-12, msg: 'deployed decode = masked one-shot' })
  t.ok(cache.retained(1) <= sink + recent, 'streaming kv head stays bounded')
  for (const s of [...steps, stepped, whole]) s.dispose()
  cache.dispose()
  t.equal(memory().tensors, before, 'no leaks')
  dispose([params, x])
})
