import t from 'tap'
import { add, memory, mul, scope, sum, tensor, type Tensor } from '@heed/tensor'
import { activeHeads, mohAttention, mohBalanceLoss, mohGates } from '@heed/attention'
import { conformance, referenceAttention, type ConformanceRun, type HostTensor, type ReferenceOptions } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'

const rand = prng(25)
type Shape4 = [number, number, number, number]
const host = (shape: Shape4, lo = -1, hi = 1) => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1), lo, hi), shape })

const softmaxRow = (z: number[]) => {
  const m = Math.max(...z)
  const e = z.map(x => Math.exp(x - m))
  const s = e.reduce((a, b) => a + b, 0)
  return e.map(x => x / s)
}
const dot = (x: number[], W: number[], cols: number, c: number) => x.reduce((a, xi, i) => a + xi * W[i * cols + c]!, 0)

/** MoH gates from the formulas, per token: [gates (H), routed probs, selected]. */
function gatesReference(x: number[], dModel: number, W: { Wr: number[]; Ws?: number[]; W0?: number[] }, hs: number, hr: number, k: number) {
  const tokens = x.length / dModel
  const out: { gates: number[]; probs: number[]; sel: number[] }[] = []
  for (let t = 0; t < tokens; t++) {
    const xt = x.slice(t * dModel, (t + 1) * dModel)
    const p = softmaxRow(Array.from({ length: hr }, (_, c) => dot(xt, W.Wr, hr, c)))
    const order = p.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k)
    const z = order.reduce((a, [v]) => a + v, 0)
    const routed = new Array<number>(hr).fill(0)
    const sel = new Array<number>(hr).fill(0)
    for (const [v, i] of order) {
      routed[i] = (v / z) * k
      sel[i] = 1
    }
    let shared = hs > 1 && W.Ws ? softmaxRow(Array.from({ length: hs }, (_, c) => dot(xt, W.Ws!, hs, c))).map(v => v * hs) : new Array<number>(hs).fill(1)
    let r = routed
    if (W.W0) {
      const w = softmaxRow([dot(xt, W.W0, 2, 0), dot(xt, W.W0, 2, 1)]).map(v => 2 * v)
      shared = shared.map(s => s * w[0]!)
      r = routed.map(s => s * w[1]!)
    }
    out.push({ gates: [...shared, ...r], probs: p, sel })
  }
  return out
}

t.test('gates follow MoH: top-k renormalised ×k, shared softmax ×h_s, two-way mix; routed sum = k·w1', async t => {
  const [B, T, dModel, hs, hr, k] = [2, 5, 6, 2, 4, 2]
  const x = randomArray(rand, B * T * dModel)
  const W = { Wr: randomArray(rand, dModel * hr, -2, 2), Ws: randomArray(rand, dModel * hs), W0: randomArray(rand, dModel * 2) }
  const ref = gatesReference(x, dModel, W, hs, hr, k)
  const before = memory().tensors
  const tx = tensor(x, [B, T, dModel], 'float64')
  const router = { Wr: tensor(W.Wr, [dModel, hr], 'float64'), Ws: tensor(W.Ws, [dModel, hs], 'float64'), W0: tensor(W.W0, [dModel, 2], 'float64') }
  const r = mohGates(tx, router, { shared: hs, routed: hr, topK: k })
  const H = hs + hr
  const want = new Array<number>(B * H * T)
  ref.forEach((tok, n) => tok.gates.forEach((g, h) => (want[(Math.floor(n / T) * H + h) * T + (n % T)] = g)))
  assertClose(t, await r.gates.data(), want, { atol: 1e-12, rtol: 1e-12, msg: 'gates' })
  assertClose(t, await r.selected.data(), ref.flatMap(x => x.sel), { atol: 0, rtol: 0, msg: 'selection' })
  const g = await r.gates.data()
  let worst = 0
  ref.forEach((tok, n) => {
    const w1 = softmaxRow([dot(x.slice(n * dModel, (n + 1) * dModel), W.W0, 2, 0), dot(x.slice(n * dModel, (n + 1) * dModel), W.W0, 2, 1)])[1]! * 2
    let s = 0
    for (let h = hs; h < H; h++) s += g[(Math.floor(n / T) * H + h) * T + (n % T)]!
    worst = Math.max(worst, Math.abs(s - k * w1))
    void tok
  })
  t.ok(worst < 1e-12, 'Σ routed gates = k·w1 per token', { worst })
  const P = Array.from({ length: hr }, (_, i) => ref.reduce((a, tok) => a + tok.probs[i]!, 0) / ref.length)
  const f = Array.from({ length: hr }, (_, i) => ref.reduce((a, tok) => a + tok.sel[i]!, 0) / ref.length)
  t.ok(Math.abs((await r.balanceLoss.data())[0]! - hr * hr * P.reduce((a, p, i) => a + p * f[i]!, 0) / hr) < 1e-12, 'balance loss = h_r²·mean(P·f)')
  for (const x of [tx, router.Wr, router.Ws, router.W0, r.gates, r.probs, r.selected, r.balanceLoss]) x.dispose()
  t.equal(memory().tensors, before, 'no leaks')
})

t.test('balance loss is minimal (= k) under uniform routing', async t => {
  const [N, hr, k] = [8, 4, 2]
  const before = memory().tensors
  // Uniform probabilities and tokens rotating over head pairs: P_i = 1/4, f_i = 1/2.
  const sel = Array.from({ length: N * hr }, (_, n) => ((Math.floor(n / hr) + (n % hr)) % 2 === 0 ? 1 : 0))
  const u = scope(() => mohBalanceLoss(tensor(new Array<number>(N * hr).fill(1 / hr), [N, hr], 'float64'), tensor(sel, [N, hr], 'float64')))
  t.ok(Math.abs(u.dataSync()[0]! - k) < 1e-12, 'uniform: k')
  u.dispose()
  // Fractions that follow the probabilities (f = k·P): h_r·k·Σ P² ≥ k, equality only at uniform.
  for (let trial = 0; trial < 5; trial++) {
    const row = softmaxRow(randomArray(rand, hr, -2, 2))
    const probs = tensor(Array.from({ length: N }, () => row).flat(), [N, hr], 'float64')
    const frac = tensor(Array.from({ length: N }, () => row.map(p => k * p)).flat(), [N, hr], 'float64')
    const l = mohBalanceLoss(probs, frac)
    t.ok(l.dataSync()[0]! > k, `skewed routing ${trial}: loss above k`)
    for (const x of [probs, frac, l]) x.dispose()
  }
  t.equal(memory().tensors, before, 'no leaks')
})

t.test('mohAttention: gates 1 ⇒ MHA; skipped heads = zero-gated heads; GQA', async t => {
  const [B, H, Hkv, T] = [2, 4, 2, 6]
  const [q, k, v] = [host([B, H, T, 4]), host([B, Hkv, T, 4]), host([B, Hkv, T, 3])]
  const ref = referenceAttention(q, k, v, { queryOffset: 0 })
  const before = memory().tensors
  const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float64'))
  const ones = tensor(new Array<number>(B * H * T).fill(1), [B, H, T], 'float64')
  const o1 = mohAttention(tq!, tk!, tv!, ones).out
  assertClose(t, await o1.data(), ref.out, { atol: 1e-12, rtol: 1e-12, msg: 'gates ≡ 1 ⇒ multi-head attention' })
  // Heads 1 and 2 gated to zero for every token: skipping them changes nothing.
  const gv = randomArray(rand, B * H * T).map((x, n) => (Math.floor(n / T) % H === 1 || Math.floor(n / T) % H === 2 ? 0 : x))
  const gates = tensor(gv, [B, H, T], 'float64')
  const act = await activeHeads(gates)
  t.same(act, [0, 3], 'active heads')
  const dense = mohAttention(tq!, tk!, tv!, gates).out
  const skipped = mohAttention(tq!, tk!, tv!, gates, { active: act }).out
  const d = await dense.data()
  t.same(Array.from(await skipped.data()), Array.from(d), 'skipping zero-gated heads = computing and multiplying by 0 (exact)')
  assertClose(t, d, ref.out.map((x, n) => x * gv[Math.floor(n / 3)]!), { atol: 1e-12, rtol: 1e-12, msg: 'out = g_h · head_h' })
  const none = mohAttention(tq!, tk!, tv!, gates, { active: [] }).out
  t.ok((await none.data()).every(x => x === 0), 'no active head: zeros')
  const bad = tensor([1, 1], [1, 2, 1])
  // on live tensors: a disposed one is a DisposedError before the gates are looked at
  t.throws(() => mohAttention(tq!, tk!, tv!, bad), { name: 'ShapeError' })
  for (const x of [tq, tk, tv, ones, o1, gates, dense, skipped, none]) x!.dispose()
  t.equal(memory().tensors, before + 1, 'no leaks (only `bad` is live)')
  t.throws(() => mohAttention(tq!, tk!, tv!, bad), { name: 'DisposedError', op: 'mohAttention' })
  t.throws(() => mohGates(tensor([1], [1, 1, 1]), { Wr: bad }, { shared: 0, routed: 1, topK: 2 }), /topK/)
  bad.dispose()
})

t.test('gradients flow through the gates to the router, and through attention', async t => {
  const [B, T, dModel, hs, hr, k, D] = [1, 4, 3, 2, 3, 2, 2]
  const H = hs + hr
  const x = randomArray(rand, B * T * dModel)
  const [q, kk, v] = [host([B, H, T, D]), host([B, H, T, D]), host([B, H, T, D])]
  const w = randomArray(rand, B * H * T * D)
  const f = (Wr: Tensor, Ws: Tensor, W0: Tensor, tq: Tensor, tk: Tensor, tv: Tensor) =>
    scope(() => {
      const g = mohGates(tensor(x, [B, T, dModel], 'float64'), { Wr, Ws, W0 }, { shared: hs, routed: hr, topK: k })
      return add(sum(mul(mohAttention(tq, tk, tv, g.gates, { causal: true }).out, tensor(w, [B, H, T, D], 'float64'))), g.balanceLoss)
    })
  await checkGrad(t, f as (...xs: Tensor[]) => Tensor, [
    { v: randomArray(rand, dModel * hr, -2, 2), shape: [dModel, hr] },
    { v: randomArray(rand, dModel * hs), shape: [dModel, hs] },
    { v: randomArray(rand, dModel * 2), shape: [dModel, 2] },
    ...[q, kk, v].map(z => ({ v: [...z.values], shape: z.shape })),
  ], { msg: 'moh' })
})

t.test('backend parity (float32)', async t => {
  await eachBackend(t, 'mohAttention', async (t, backend) => {
    const [q, k, v] = [host([1, 4, 7, 4]), host([1, 2, 7, 4]), host([1, 2, 7, 4])]
    const gv = randomArray(rand, 4 * 7, 0, 2)
    const ref = referenceAttention(q, k, v, { queryOffset: 0 }).out.map((x, n) => x * gv[Math.floor(n / 4)]!)
    const base = memory().tensors
    const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, 'float32', { backend }))
    const gates = tensor(gv, [1, 4, 7], 'float32', { backend })
    const out = mohAttention(tq!, tk!, tv!, gates, { active: [0, 1, 2, 3] }).out
    assertClose(t, await out.data(), ref, { atol: 2e-6, rtol: 2e-5, msg: `${backend} out` })
    for (const x of [tq, tk, tv, gates, out]) x!.dispose()
    t.equal(memory().tensors, base, 'no leaks')
  })
})

t.test('conformance', async t => {
  const perHead = [1, 0, 0.5, 2]
  const gateOf = (H: number, q: Tensor) => tensor(Array.from({ length: H }, (_, h) => perHead[h % 4]!), [1, H, 1], q.dtype, { backend: q.backend })
  // Head 1 is gated off: the run skips it, which must not show.
  const run: ConformanceRun = (q, k, v, o) => scope(() => mohAttention(q, k, v, gateOf(q.shape[1]!, q), { ...o, active: [0, 2, 3] }))
  const reference = (q: HostTensor, k: HostTensor, v: HostTensor, o: ReferenceOptions) => {
    const [, H, Tq] = q.shape
    const Dv = v.shape[3]
    return { out: referenceAttention(q, k, v, o).out.map((x, n) => x * perHead[Math.floor(n / (Tq * Dv)) % H % 4]!) }
  }
  const report = await conformance(t, {
    name: 'mohAttention',
    run,
    reference,
    patterns: ['NS', 'CS', 'NC', 'CC'],
    incremental: true,
    // Gated outputs are not normalised softmax states, so no lse: C5/C6 do not apply.
    contracts: ['C1', 'C2', 'C3', 'C7', 'C8'],
  })
  t.same(report.ran, ['C1', 'C2', 'C3', 'C7', 'C8'])
  const deg = await conformance(t, {
    name: 'mohAttention (all heads on)',
    run,
    patterns: ['NS', 'CS', 'NC', 'CC'],
    incremental: true,
    contracts: ['C4'],
    degenerate: [{ name: 'gates ≡ 1', run: (q, k, v, o) => scope(() => mohAttention(q, k, v, tensor(new Array<number>(q.shape[1]!).fill(1), [1, q.shape[1]!, 1], q.dtype, { backend: q.backend }), o)) }],
  })
  t.same(deg.ran, ['C4'])
})

