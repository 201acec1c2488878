import t from 'tap'
import { matmul, memory, mul, scope, sum, tensor, ShapeError, ValueError, type Tensor } from '@heed/tensor'
import { agentAttention, agentDwc, agentMaps, type AgentAttentionOptions } from '@heed/attention'
import { conformance, referenceAttention, type HostArray, type ReferenceOptions } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'
import { eachBackend } from '../../tensor/test/helpers/backends.js'

const rand = prng(35)
type Shape4 = [number, number, number, number]
interface Host {
  values: number[]
  shape: Shape4
}
const host = (shape: Shape4, amp = 1): Host => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1), -amp, amp), shape })
const row = (x: Host, b: number, h: number, i: number): number[] => {
  const [, H, T, D] = x.shape
  return x.values.slice(((b * H + h) * T + i) * D, ((b * H + h) * T + i + 1) * D)
}
const softmaxRow = (s: number[]): number[] => {
  const m = Math.max(...s)
  const e = s.map(x => Math.exp(x - m))
  const z = e.reduce((a, b) => a + b, 0)
  return e.map(x => x / z)
}

/** AdaptiveAvgPool bins written from PyTorch's documented rule: [⌊i·L/n⌋, ⌈(i+1)·L/n⌉). */
const bins = (L: number, n: number): [number, number][] => Array.from({ length: n }, (_, i) => [Math.floor((i * L) / n), Math.ceil(((i + 1) * L) / n)])

interface RefOpts {
  numAgents?: number
  grid?: [number, number]
  scale?: number
  agents?: Host
  dwc?: { w: number[]; bias: number[]; k: number }
}

/** float64 golden path: pooled agents, both softmaxes and the product materialised per (b, h), then DWC(V) by loops. */
function reference(q: Host, k: Host, v: Host, o: RefOpts = {}): Float64Array {
  const [B, H, Tq, D] = q.shape
  const [, Hkv, Tk, Dv] = v.shape
  const n = o.agents ? o.agents.shape[2] : (o.numAgents ?? 49)
  const s = o.scale ?? 1 / Math.sqrt(D)
  const out = new Float64Array(B * H * Tq * Dv)
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv))
      const Q = Array.from({ length: Tq }, (_, i) => row(q, b, h, i))
      let A: number[][]
      if (o.agents) A = Array.from({ length: n }, (_, a) => row(o.agents!, o.agents!.shape[0] === 1 ? 0 : b, o.agents!.shape[1] === 1 ? 0 : h, a))
      else if (o.grid) {
        const [gh, gw] = o.grid
        const side = Math.sqrt(n)
        A = []
        for (const [r0, r1] of bins(gh, side))
          for (const [c0, c1] of bins(gw, side)) {
            const acc = new Array<number>(D).fill(0)
            for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) Q[r * gw + c]!.forEach((x, d) => (acc[d]! += x / ((r1 - r0) * (c1 - c0))))
            A.push(acc)
          }
      } else A = bins(Tq, n).map(([s0, s1]) => Array.from({ length: D }, (_, d) => Q.slice(s0, s1).reduce((acc, r) => acc + r[d]!, 0) / (s1 - s0)))
      const K = Array.from({ length: Tk }, (_, j) => row(k, b, hk, j))
      const V = Array.from({ length: Tk }, (_, j) => row(v, b, hk, j))
      const dot = (x: number[], y: number[]) => x.reduce((acc, xi, d) => acc + xi * y[d]!, 0)
      const VA = A.map(a => {
        const p = softmaxRow(K.map(kj => s * dot(a, kj)))
        return Array.from({ length: Dv }, (_, d) => p.reduce((acc, pj, j) => acc + pj * V[j]![d]!, 0))
      })
      for (let i = 0; i < Tq; i++) {
        const p = softmaxRow(A.map(a => s * dot(Q[i]!, a)))
        for (let d = 0; d < Dv; d++) out[((b * H + h) * Tq + i) * Dv + d] = p.reduce((acc, pa, a) => acc + pa * VA[a]![d]!, 0)
      }
      if (o.dwc) {
        // Depthwise conv with zero padding over the token line (or the grid), channel h·Dv + d.
        const { w, bias, k: ks } = o.dwc
        const r = (ks - 1) / 2
        for (let d = 0; d < Dv; d++) {
          const ch = h * Dv + d
          for (let i = 0; i < Tq; i++) {
            let acc = bias[ch]!
            if (o.grid) {
              const [gh, gw] = o.grid
              const [y, x] = [Math.floor(i / gw), i % gw]
              for (let dy = -r; dy <= r; dy++)
                for (let dx = -r; dx <= r; dx++) {
                  const [yy, xx] = [y + dy, x + dx]
                  if (yy >= 0 && yy < gh && xx >= 0 && xx < gw) acc += w[ch * ks * ks + (dy + r) * ks + (dx + r)]! * V[yy * gw + xx]![d]!
                }
            } else for (let dj = -r; dj <= r; dj++) if (i + dj >= 0 && i + dj < Tk) acc += w[ch * ks + dj + r]! * V[i + dj]![d]!
            out[((b * H + h) * Tq + i) * Dv + d]! += acc
          }
        }
      }
    }
  return out
}

const tensors = (xs: Host[], dtype: 'float32' | 'float64' = 'float64'): Tensor[] => xs.map(x => tensor(x.values, x.shape, dtype))
const tol = (dtype: 'float32' | 'float64') => (dtype === 'float64' ? { atol: 1e-12, rtol: 1e-12 } : { atol: 2e-6, rtol: 2e-5 })

t.test('forward = float64 reference: 1D and 2D pooling, n > T, cross, GQA, explicit agents, DWC 1D/2D', async t => {
  const base = memory().tensors
  const cases: { name: string; q: Shape4; k: Shape4; v: Shape4; o: RefOpts; dwc?: 1 | 2 }[] = [
    { name: '1D pool n=3 of 10', q: [2, 2, 10, 4], k: [2, 2, 10, 4], v: [2, 2, 10, 3], o: { numAgents: 3 } },
    { name: 'default n=49 > T (overlapping bins)', q: [1, 2, 12, 4], k: [1, 2, 12, 4], v: [1, 2, 12, 3], o: {} },
    { name: '2D pool 5×7 grid → 2×2 agents', q: [1, 2, 35, 4], k: [1, 2, 35, 4], v: [1, 2, 35, 2], o: { numAgents: 4, grid: [5, 7] } },
    { name: 'cross Tq≠Tk GQA', q: [1, 4, 6, 3], k: [1, 2, 9, 3], v: [1, 2, 9, 2], o: { numAgents: 2, scale: 0.9 } },
    { name: 'explicit agents', q: [1, 2, 7, 3], k: [1, 2, 7, 3], v: [1, 2, 7, 3], o: { agents: host([1, 1, 4, 3]) } },
    { name: 'DWC 1D k=3', q: [1, 2, 8, 3], k: [1, 2, 8, 3], v: [1, 2, 8, 2], o: { numAgents: 3 }, dwc: 1 },
    { name: 'DWC 2D 3×3 on a 4×4 grid', q: [2, 2, 16, 3], k: [2, 2, 16, 3], v: [2, 2, 16, 2], o: { numAgents: 4, grid: [4, 4] }, dwc: 2 },
  ]
  for (const c of cases) {
    const [q, k, v] = [host(c.q, 2), host(c.k, 2), host(c.v)]
    const C = c.q[1] * c.v[3]
    const dwcHost = c.dwc ? { w: randomArray(rand, C * (c.dwc === 2 ? 9 : 3)), bias: randomArray(rand, C), k: 3 } : undefined
    const want = reference(q, k, v, { ...c.o, ...(dwcHost ? { dwc: dwcHost } : {}) })
    for (const dtype of ['float64', 'float32'] as const) {
      const [tq, tk, tv] = tensors([q, k, v], dtype)
      const extra: Tensor[] = []
      const mk = (x: Tensor): Tensor => (extra.push(x), x)
      const opts: AgentAttentionOptions = {
        ...(c.o.numAgents !== undefined ? { numAgents: c.o.numAgents } : {}),
        ...(c.o.grid ? { grid: c.o.grid } : {}),
        ...(c.o.scale !== undefined ? { scale: c.o.scale } : {}),
        ...(c.o.agents ? { agents: mk(tensor(c.o.agents.values, c.o.agents.shape, dtype)) } : {}),
        ...(dwcHost ? { dwc: { weight: mk(tensor(dwcHost.w, c.dwc === 2 ? [C, 1, 3, 3] : [C, 1, 3], dtype)), bias: mk(tensor(dwcHost.bias, [C], dtype)) } } : {}),
      }
      const { out } = agentAttention(tq!, tk!, tv!, opts)
      assertClose(t, await out.data(), want, { ...tol(dtype), msg: `${c.name} ${dtype}` })
      for (const x of [tq, tk, tv, out, ...extra]) x!.dispose()
    }
  }
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('invariants: row-stochastic maps ⇒ constant V ↦ constant O; n = 1 ⇒ identical rows; associativity', async t => {
  const base = memory().tensors
  const [B, H, T, D, Dv] = [2, 2, 9, 4, 3]
  const [q, k] = tensors([host([B, H, T, D], 3), host([B, H, T, D], 3)])
  const c = tensor(new Float64Array(B * H * T * Dv).fill(-0.625), [B, H, T, Dv], 'float64')
  const constOut = agentAttention(q!, k!, c, { numAgents: 4 }).out
  assertClose(t, await constOut.data(), new Array(B * H * T * Dv).fill(-0.625), { atol: 1e-15, rtol: 1e-15, msg: 'const V ⇒ const O' })
  const m = agentMaps(q!, k!, { numAgents: 4 })
  for (const [name, x, cols] of [['queryAgent', m.queryAgent, 4], ['agentKey', m.agentKey, T]] as const) {
    const vals = await x.data()
    let worst = 0
    for (let r = 0; r < vals.length / cols; r++) worst = Math.max(worst, Math.abs(Array.from(vals.slice(r * cols, (r + 1) * cols)).reduce((a, b) => a + b, 0) - 1))
    t.ok(worst < 1e-14, `${name} rows sum to 1`, { worst })
  }
  const [v] = tensors([host([B, H, T, Dv])])
  const oneT = agentAttention(q!, k!, v!, { numAgents: 1 }).out
  const one = await oneT.data()
  let spread = 0
  for (let bh = 0; bh < B * H; bh++) for (let i = 1; i < T; i++) for (let d = 0; d < Dv; d++) spread = Math.max(spread, Math.abs(one[(bh * T + i) * Dv + d]! - one[bh * T * Dv + d]!))
  t.ok(spread === 0, 'n = 1 ⇒ every row of O is the single agent value', { spread })
  // (φ_q φ_kᵀ) V materialises the Tq×Tk matrix; the operator associates the other way.
  const left = scope(() => matmul(matmul(m.queryAgent, m.agentKey), v!))
  const right = agentAttention(q!, k!, v!, { numAgents: 4 }).out
  assertClose(t, await right.data(), await left.data(), { atol: 1e-14, rtol: 1e-13, msg: '(φ_q φ_kᵀ)V = φ_q(φ_kᵀ V)' })
  for (const x of [q, k, c, v, constOut, oneT, m.queryAgent, m.agentKey, m.agents, left, right]) x!.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('token permutation with fixed agents permutes the output (equivariance)', async t => {
  const base = memory().tensors
  const [H, T, D, Dv] = [2, 8, 3, 2]
  const [q, k, v, A] = [host([1, H, T, D]), host([1, H, T, D]), host([1, H, T, Dv]), host([1, H, 3, D])]
  const perm = [3, 0, 7, 5, 1, 6, 2, 4]
  const permute = (x: Host): Host => ({ values: Array.from({ length: H }, (_, h) => perm.flatMap(i => row(x, 0, h, i))).flat(), shape: x.shape })
  const [tq, tk, tv, ta, pq, pk, pv] = tensors([q, k, v, A, permute(q), permute(k), permute(v)])
  const o = agentAttention(tq!, tk!, tv!, { agents: ta! }).out
  const po = agentAttention(pq!, pk!, pv!, { agents: ta! }).out
  const oh: Host = { values: Array.from(await o.data()), shape: [1, H, T, Dv] }
  assertClose(t, await po.data(), permute(oh).values, { atol: 1e-14, rtol: 1e-13, msg: 'O(PQ, PK, PV) = P·O(Q, K, V)' })
  for (const x of [tq, tk, tv, ta, pq, pk, pv, o, po]) x!.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('A = K with orthonormal keys and agent→key logits ×τ converges to softmax attention as τ grows (a limit, not an identity)', async t => {
  const base = memory().tensors
  const [T, D, Dv] = [4, 6, 3]
  // Orthonormal rows: Gram–Schmidt on random vectors.
  const K: number[][] = []
  while (K.length < T) {
    let x = randomArray(rand, D)
    for (const e of K) {
      const p = x.reduce((s, xi, d) => s + xi * e[d]!, 0)
      x = x.map((xi, d) => xi - p * e[d]!)
    }
    const nrm = Math.sqrt(x.reduce((s, xi) => s + xi * xi, 0))
    K.push(x.map(xi => xi / nrm))
  }
  const kh: Host = { values: K.flat(), shape: [1, 1, T, D] }
  const [q, v] = [host([1, 1, 5, D]), host([1, 1, T, Dv])]
  const soft = referenceAttention(q, kh, v).out
  const [tq, tk, tv] = tensors([q, kh, v])
  const errs: number[] = []
  for (const tau of [1, 10, 100]) {
    // Logit gap between a key and the others is s·τ·(1 − 0) = τ/√D: at τ = 100 the aggregation is the identity.
    const r = agentAttention(tq!, tk!, tv!, { agents: tk!, agentScale: tau / Math.sqrt(D) }).out
    const out = await r.data()
    r.dispose()
    errs.push(Math.max(...Array.from(out, (x, i) => Math.abs(x - soft[i]!))))
  }
  t.ok(errs[0]! > 1e-2, `τ = 1 is far from softmax attention (${errs[0]!.toExponential(2)})`)
  t.ok(errs[1]! < errs[0]! && errs[2]! < errs[1]!, `error decreases with τ: ${errs.map(e => e.toExponential(2)).join(' > ')}`)
  t.ok(errs[2]! < 1e-9, 'τ = 100: equal to softmax attention to 1e-9')
  for (const x of [tq, tk, tv]) x!.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('gradients match finite differences (pooled agents, biases, 2D DWC)', async t => {
  const [q, k, v] = [host([1, 2, 4, 3]), host([1, 1, 4, 3]), host([1, 1, 4, 2])]
  const w = randomArray(rand, 2 * 4 * 2)
  const dw = { v: randomArray(rand, 4 * 9), shape: [4, 1, 3, 3] }
  const b1 = { v: randomArray(rand, 4 * 4, -0.1, 0.1), shape: [1, 1, 4, 4] }
  await checkGrad(
    t,
    (tq: Tensor, tk: Tensor, tv: Tensor, tw: Tensor, tb1: Tensor) =>
      scope(() => {
        const out = agentAttention(tq, tk, tv, { numAgents: 4, grid: [2, 2], agentBias: tb1, dwc: { weight: tw } }).out
        return sum(mul(out, tensor(w, out.shape, 'float64')))
      }),
    [...[q, k, v].map(x => ({ v: x.values, shape: x.shape })), dw, b1],
    { msg: 'agent attention', atol: 1e-7, rtol: 1e-6 },
  )
})

t.test('validation names the op, the argument and what came', async t => {
  const q = tensor(new Float64Array(2 * 6 * 4), [1, 2, 6, 4])
  const k = tensor(new Float64Array(2 * 5 * 4), [1, 2, 5, 4])
  const params = agentDwc({ heads: 2, valueDim: 4, dtype: 'float64' })
  t.same(params.weight.shape, [8, 1, 3])
  t.throws(() => agentAttention(q, q, q, { numAgents: 0 }), /agentAttention: numAgents/)
  t.throws(() => agentAttention(q, q, q, { grid: [2, 2] }), ShapeError)
  t.throws(() => agentAttention(q, q, q, { grid: [2, 3], numAgents: 3 }), /perfect square/)
  t.throws(() => agentAttention(q, k, k, { dwc: params }), /Tq = Tk/)
  t.throws(() => agentAttention(q, q, q, { dwc: { weight: q } }), /dwc\.weight/)
  const badAgents = tensor(new Float64Array(2 * 3 * 3), [1, 2, 3, 3])
  t.throws(() => agentAttention(q, q, q, { agents: badAgents }), /agents: expected \[B or 1, 2 or 1, n, 4\]/)
  badAgents.dispose()
  t.throws(() => agentAttention(q, q, q, { scale: Infinity }), ValueError)
  t.throws(() => agentDwc({ heads: 2, valueDim: 4, kernel: 2 }), /odd/)
  for (const x of [q, k, params.weight, params.bias]) x.dispose()
})

await eachBackend(t, 'backend parity (float32) with the float64 reference', async (t, backend) => {
  const base = memory().tensors
  const [q, k, v] = [host([1, 2, 16, 8], 2), host([1, 2, 16, 8], 2), host([1, 2, 16, 4])]
  const C = 2 * 4
  const dwcHost = { w: randomArray(rand, C * 9), bias: randomArray(rand, C), k: 3 }
  const want = reference(q, k, v, { numAgents: 4, grid: [4, 4], dwc: dwcHost })
  const f32 = (x: number[], s: number[]) => tensor(x, s, 'float32', { backend })
  const [tq, tk, tv] = [q, k, v].map(x => f32(x.values, x.shape))
  const [w, b] = [f32(dwcHost.w, [C, 1, 3, 3]), f32(dwcHost.bias, [C])]
  const { out } = agentAttention(tq!, tk!, tv!, { numAgents: 4, grid: [4, 4], dwc: { weight: w, bias: b } })
  assertClose(t, await out.data(), want, { atol: 1e-5, rtol: 1e-4, msg: `2D agents + DWC on ${backend}` })
  for (const x of [tq, tk, tv, w, b, out]) x!.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('agentAttention meets the conformance contracts that apply to it', async t => {
  const golden = (q: HostArray, k: HostArray, v: HostArray, o: ReferenceOptions) => {
    const h = (x: HostArray): Host => ({ values: Array.from(x.values), shape: [...x.shape] as Shape4 })
    return { out: reference(h(q), h(k), h(v), { numAgents: 3, ...(o.scale !== undefined ? { scale: o.scale } : {}) }) }
  }
  const report = await conformance(t, {
    name: 'agentAttention',
    run: (q, k, v, o) => agentAttention(q, k, v, { numAgents: 3, ...(o.scale !== undefined ? { scale: o.scale } : {}) }),
    reference: golden,
    // Agents pool over every token: no causal form exists (it would need agents pooled per prefix).
    patterns: ['NS', 'NC'],
    incremental: false,
    supports: { mask: false, offsets: false },
  })
  t.same(report.ran, ['C1', 'C6', 'C7'], 'contracts that ran')
})
