import t, { type Test } from 'tap'
import { add, BackendError, greater, memory, mul, scope, setBackend, sum, tensor, valueAndGrad, where, type DType, type Tensor } from '@heed/tensor'
import { mask, scaledDotProductAttention, scoreMod, type SdpaOptions } from '@heed/attention'
import { referenceAttention } from '@heed/attention/testing'
import { prng, randomArray } from '../../tensor/test/helpers/numeric.js'
import { requireWebgpu, webgpuUnavailable } from '../../tensor/test/helpers/backends.js'

/**
 * WebGPU parity of scaledDotProductAttention against the float64 reference, with attention.md §6.1's tolerance:
 * the kernel's max error may be twice that of a float32 CPU run (inputs and outputs rounded to f32, float64
 * arithmetic) plus a small floor, or else its relative RMSE must be below 1e-3.
 */

const rand = prng(11)
type Shape4 = [number, number, number, number]
const host = (shape: Shape4, lo = -1, hi = 1) => ({ values: randomArray(rand, shape.reduce((a, b) => a * b, 1), lo, hi), shape })

interface Case {
  name: string
  q: Shape4
  k: Shape4
  v: Shape4
  opts: SdpaOptions
  /** input range (default ±1) */
  range?: number
  grad?: boolean
}

const segIds = Array.from({ length: 40 }, (_, i) => (i < 7 ? 0 : i < 25 ? 1 : 2))
const cases: Case[] = [
  { name: 'non-causal B2', q: [2, 2, 17, 8], k: [2, 2, 17, 8], v: [2, 2, 17, 8], opts: {}, grad: true },
  { name: 'causal T=63', q: [1, 2, 63, 16], k: [1, 2, 63, 16], v: [1, 2, 63, 16], opts: { causal: true } },
  { name: 'GQA 4:2 causal', q: [1, 4, 33, 8], k: [1, 2, 33, 8], v: [1, 2, 33, 6], opts: { causal: true }, grad: true },
  { name: 'GQA 8:1 causal', q: [1, 8, 20, 8], k: [1, 1, 20, 8], v: [1, 1, 20, 8], opts: { causal: true }, grad: true },
  { name: 'decode Tq=1 Tk=37', q: [1, 4, 1, 16], k: [1, 2, 37, 16], v: [1, 2, 37, 16], opts: { causal: true } },
  { name: 'chunk with queryOffset', q: [1, 2, 5, 8], k: [1, 2, 20, 8], v: [1, 2, 20, 8], opts: { causal: true, queryOffset: 9 }, grad: true },
  { name: 'T=1', q: [1, 1, 1, 4], k: [1, 1, 1, 4], v: [1, 1, 1, 4], opts: { causal: true } },
  { name: 'T=65 D=5', q: [1, 2, 65, 5], k: [1, 2, 65, 5], v: [1, 2, 65, 5], opts: { causal: true } },
  { name: 'T=130 D=48', q: [1, 1, 130, 48], k: [1, 1, 130, 48], v: [1, 1, 130, 48], opts: { causal: true } },
  { name: 'T=64 D=64', q: [1, 2, 64, 64], k: [1, 2, 64, 64], v: [1, 2, 64, 64], opts: {} },
  { name: 'causal window', q: [1, 2, 70, 8], k: [1, 2, 70, 8], v: [1, 2, 70, 8], opts: { causal: true, mask: mask.window(7) } },
  { name: 'sinks or window', q: [1, 1, 40, 8], k: [1, 1, 40, 8], v: [1, 1, 40, 8], opts: { mask: mask.or(mask.sinks(3), mask.window(5)) } },
  { name: 'streaming', q: [1, 2, 50, 8], k: [1, 2, 50, 8], v: [1, 2, 50, 8], opts: { mask: mask.streaming(2, 6) }, grad: true },
  { name: 'chunk', q: [1, 1, 45, 8], k: [1, 1, 45, 8], v: [1, 1, 45, 8], opts: { mask: mask.chunk(16) } },
  { name: 'segments', q: [1, 2, 40, 8], k: [1, 2, 40, 8], v: [1, 2, 40, 8], opts: { causal: true, mask: mask.segments(segIds) }, grad: true },
  { name: 'perHead', q: [1, 2, 40, 8], k: [1, 2, 40, 8], v: [1, 2, 40, 8], opts: { mask: mask.perHead(2, h => (h === 0 ? mask.causal : mask.chunk(8))) } },
  { name: 'not/or', q: [1, 1, 36, 8], k: [1, 1, 36, 8], v: [1, 1, 36, 8], opts: { mask: mask.not(mask.or(mask.chunk(5), mask.sinks(2))) } },
  { name: 'ALiBi', q: [1, 4, 40, 8], k: [1, 4, 40, 8], v: [1, 4, 40, 8], opts: { causal: true, scoreMod: scoreMod.alibi(4) }, grad: true },
  { name: 'softcap', q: [1, 2, 33, 8], k: [1, 2, 33, 8], v: [1, 2, 33, 8], opts: { causal: true, scoreMod: scoreMod.softcap(2) }, range: 3 },
  {
    name: 'relative bias + softcap',
    q: [1, 2, 36, 8],
    k: [1, 2, 36, 8],
    v: [1, 2, 36, 8],
    opts: { scoreMod: scoreMod.compose(scoreMod.relativeBias(randomArray(rand, 2 * 9), { heads: 2, maxDistance: 4 }), scoreMod.softcap(1.5)) },
    grad: true,
  },
  {
    name: 'custom closure mask',
    q: [2, 2, 35, 8],
    k: [2, 2, 35, 8],
    v: [2, 2, 35, 8],
    opts: { mask: mask.custom((b, h, pq, pk) => (pq + 2 * pk + b + h) % 3 !== 0 && pk <= pq + 4) },
    grad: true,
  },
  {
    name: 'fully masked rows (custom)',
    q: [1, 1, 37, 4],
    k: [1, 1, 37, 4],
    v: [1, 1, 37, 4],
    opts: { mask: mask.custom((_b, _h, pq, pk) => pq % 5 !== 1 && pk <= pq) },
    grad: true,
  },
  // queries at 0..39, keys at 20..59: causal leaves rows 0..19 with no key at all, a whole skipped tile
  { name: 'fully masked rows (keyOffset)', q: [1, 2, 40, 8], k: [1, 2, 40, 8], v: [1, 2, 40, 8], opts: { causal: true, queryOffset: 0, keyOffset: 20 }, grad: true },
  // scores up to about ±50 exercise the max-shift of the online softmax
  { name: 'large magnitude', q: [1, 2, 40, 16], k: [1, 2, 40, 16], v: [1, 2, 40, 16], opts: { causal: true }, range: 5 },
]

/** The reference knows only masks: fold `causal` into one. */
const refOpts = (o: SdpaOptions) => ({ ...o, mask: mask.and(...(o.causal ? [mask.causal] : []), ...(o.mask ? [o.mask] : [])) })

const maxErr = (a: ArrayLike<number>, e: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < e.length; i++) if (Number.isFinite(e[i]!)) m = Math.max(m, Math.abs(a[i]! - e[i]!))
  return m
}
const relRmse = (a: ArrayLike<number>, e: ArrayLike<number>): number => {
  let num = 0
  let den = 0
  for (let i = 0; i < e.length; i++)
    if (Number.isFinite(e[i]!)) {
      num += (a[i]! - e[i]!) ** 2
      den += e[i]! ** 2
    }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den)
}

/** §6.1: within 2× the float32 CPU error plus a floor, or relative RMSE < rmse; −∞ and NaN must match exactly. */
function assertParity(t: Test, gpu: ArrayLike<number>, cpu32: ArrayLike<number>, golden: ArrayLike<number>, msg: string, rmse = 1e-3, atol = 2e-6): void {
  for (let i = 0; i < golden.length; i++)
    if (!Number.isFinite(golden[i]!) || !Number.isFinite(gpu[i]!))
      if (gpu[i] !== golden[i]) return void t.fail(`${msg}: element ${i} is ${gpu[i]}, expected ${golden[i]}`)
  const e = maxErr(gpu, golden)
  const e32 = maxErr(cpu32, golden)
  const r = relRmse(gpu, golden)
  t.ok(e <= 2 * e32 + atol || r < rmse, `${msg}: max err ${e.toExponential(2)} (f32 CPU ${e32.toExponential(2)}), rel RMSE ${r.toExponential(2)}`)
}

async function withWebgpu(t: Test, name: string, body: (t: Test) => Promise<void>): Promise<void> {
  const reason = await webgpuUnavailable()
  if (reason !== undefined) {
    if (requireWebgpu()) t.fail(`${name}: HEED_REQUIRE_WEBGPU is set but WebGPU is unavailable: ${reason}`)
    else t.test(name, { skip: `no WebGPU adapter (${reason})` }, () => {})
    return
  }
  await t.test(name, async tt => {
    try {
      await body(tt)
    } finally {
      await setBackend('cpu')
    }
  })
}

/** Run sdpa on `backend` with inputs of `dtype`; host copies of out and lse. */
async function run(backend: string, dtype: DType, c: Case, q: { values: number[] }, k: { values: number[] }, v: { values: number[] }) {
  await setBackend(backend)
  const base = memory().tensors
  const [tq, tk, tv] = [tensor(q.values, c.q, dtype), tensor(k.values, c.k, dtype), tensor(v.values, c.v, dtype)]
  const { out, lse } = scaledDotProductAttention(tq, tk, tv, c.opts)
  const res = { out: await out.data(), lse: await lse.data() }
  for (const x of [tq, tk, tv, out, lse]) x.dispose()
  const leaked = memory().tensors - base
  await setBackend('cpu')
  return { ...res, leaked }
}

await withWebgpu(t, 'webgpu forward matches the float64 reference (out and lse)', async t => {
  for (const c of cases) {
    const r = c.range ?? 1
    const [q, k, v] = [host(c.q, -r, r), host(c.k, -r, r), host(c.v)]
    const golden = referenceAttention(q, k, v, refOpts(c.opts))
    const cpu = await run('cpu', 'float32', c, q, k, v)
    const gpu = await run('webgpu', 'float32', c, q, k, v)
    assertParity(t, gpu.out, cpu.out, golden.out, `${c.name} out`)
    assertParity(t, gpu.lse, cpu.lse, golden.lse, `${c.name} lse`)
    t.notOk(Array.from(gpu.out).some(Number.isNaN), `${c.name}: no NaN`)
    t.equal(gpu.leaked, 0, `${c.name}: no leaked tensors`)
  }
})

await withWebgpu(t, 'webgpu fully masked rows give out 0 and lse −∞', async t => {
  const c = cases.find(x => x.name === 'fully masked rows (keyOffset)')!
  const [q, k, v] = [host(c.q), host(c.k), host(c.v)]
  const gpu = await run('webgpu', 'float32', c, q, k, v)
  const Dv = c.v[3]
  for (const h of [0, 1])
    for (const i of [0, 7, 19]) {
      const row = h * c.q[2] + i
      t.equal(gpu.lse[row], -Infinity, `lse −∞ at head ${h} row ${i}`)
      t.same(Array.from(gpu.out.slice(row * Dv, (row + 1) * Dv)), new Array(Dv).fill(0), `out 0 at head ${h} row ${i}`)
    }
  t.ok(Number.isFinite(gpu.lse[20]!), 'row 20 sees key 20')
})

/** Loss: a weighted sum of out and of the finite entries of lse (masked rows have no lse gradient). */
const lossOf = (c: Case, wOut: number[], wLse: number[], dtype: DType) => (tq: Tensor, tk: Tensor, tv: Tensor) =>
  scope(() => {
    const { out, lse } = scaledDotProductAttention(tq, tk, tv, c.opts)
    const finiteLse = where(greater(lse, -Infinity), lse, 0)
    return add(sum(mul(out, tensor(wOut, out.shape, dtype))), sum(mul(finiteLse, tensor(wLse, lse.shape, dtype))))
  })

async function grads(backend: string, dtype: DType, c: Case, xs: { values: number[] }[], wOut: number[], wLse: number[]) {
  await setBackend(backend)
  const base = memory().tensors
  const ts = [tensor(xs[0]!.values, c.q, dtype), tensor(xs[1]!.values, c.k, dtype), tensor(xs[2]!.values, c.v, dtype)] as const
  const [value, g] = valueAndGrad(lossOf(c, wOut, wLse, dtype), { argnums: [0, 1, 2] })(...ts)
  const out = await Promise.all((g as Tensor[]).map(x => x.data()))
  for (const x of [value, ...(g as Tensor[]), ...ts]) x.dispose()
  const leaked = memory().tensors - base
  await setBackend('cpu')
  return { grads: out, leaked }
}

await withWebgpu(t, 'webgpu gradients (through out and lse) match float64 CPU gradients', async t => {
  for (const c of cases.filter(x => x.grad)) {
    const xs = [host(c.q), host(c.k), host(c.v)]
    const golden = referenceAttention(xs[0]!, xs[1]!, xs[2]!, refOpts(c.opts))
    const wOut = randomArray(rand, golden.out.length)
    const wLse = Array.from(golden.lse, l => (Number.isFinite(l) ? rand() - 0.5 : 0))
    const ref = await grads('cpu', 'float64', c, xs, wOut, wLse)
    const cpu32 = await grads('cpu', 'float32', c, xs, wOut, wLse)
    const gpu = await grads('webgpu', 'float32', c, xs, wOut, wLse)
    ;['dq', 'dk', 'dv'].forEach((n, i) => assertParity(t, gpu.grads[i]!, cpu32.grads[i]!, ref.grads[i]!, `${c.name} ${n}`))
    t.equal(gpu.leaked, 0, `${c.name}: no leaked tensors`)
  }
})

await withWebgpu(t, 'webgpu float16 storage (f32 math) smoke test', async t => {
  const c: Case = { name: 'f16', q: [1, 4, 40, 16], k: [1, 2, 40, 16], v: [1, 2, 40, 16], opts: { causal: true, mask: mask.window(9) } }
  const [q, k, v] = [host(c.q), host(c.k), host(c.v)]
  const golden = referenceAttention(q, k, v, refOpts(c.opts))
  const gpu = await run('webgpu', 'float16', c, q, k, v)
  t.ok(relRmse(gpu.out, golden.out) < 5e-3, `out rel RMSE ${relRmse(gpu.out, golden.out).toExponential(2)} < 5e-3 (f16 storage)`)
  t.ok(relRmse(gpu.lse, golden.lse) < 5e-3, `lse rel RMSE ${relRmse(gpu.lse, golden.lse).toExponential(2)} < 5e-3`)
  const masked: Case = { ...cases.find(x => x.name === 'fully masked rows (keyOffset)')!, name: 'f16 masked' }
  const m = await run('webgpu', 'float16', masked, host(masked.q), host(masked.k), host(masked.v))
  t.equal(m.lse[0], -Infinity, 'f16 lse of a fully masked row is −∞')
  t.notOk(Array.from(m.out).some(Number.isNaN), 'f16: no NaN')
})

await withWebgpu(t, 'webgpu rejects a custom score mod with a clear error', async t => {
  await setBackend('webgpu')
  const base = memory().tensors
  const x = tensor(randomArray(rand, 2 * 4 * 4), [1, 2, 4, 4], 'float32')
  t.throws(() => scaledDotProductAttention(x, x, x, { scoreMod: scoreMod.custom(s => s * s) }), BackendError)
  t.throws(() => scaledDotProductAttention(x, x, x, { scoreMod: scoreMod.compose(scoreMod.softcap(1), scoreMod.custom(s => s)) }), /run on the CPU only.*toBackend/)
  x.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})
