import t from 'tap'
import { adam, dispose as disposeTree, matmul, mul, mean, memory, reshape, scope, ShapeError, square, sub, sum, tensor, valueAndGrad, ValueError, type Tensor } from '@heed/tensor'
import { headPolicy, mask, multiHeadAttention, rope, transformerBlock, type MhaParams, type RopeOptions } from '@heed/attention'
import { referenceAttention } from '@heed/attention/testing'
import { assertClose, checkGrad, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const rand = prng(5)

/** x·W for row-major host matrices: x [R, n], W [n, m]. */
const mm = (x: ArrayLike<number>, w: ArrayLike<number>, R: number, n: number, m: number): number[] => {
  const out = new Array(R * m).fill(0)
  for (let r = 0; r < R; r++) for (let j = 0; j < m; j++) for (let i = 0; i < n; i++) out[r * m + j] += x[r * n + i]! * w[i * m + j]!
  return out
}

/** Host RoPE on one head vector (the textbook formula, independent of the library's tensor code). */
function ropeVec(x: number[], p: number, style: 'half' | 'interleaved', base = 10000): number[] {
  const D = x.length
  const h = D / 2
  const out = x.slice()
  for (let i = 0; i < h; i++) {
    const a = p * base ** (-(2 * i) / D)
    const [j1, j2] = style === 'half' ? [i, i + h] : [2 * i, 2 * i + 1]
    out[j1] = x[j1]! * Math.cos(a) - x[j2]! * Math.sin(a)
    out[j2] = x[j2]! * Math.cos(a) + x[j1]! * Math.sin(a)
  }
  return out
}

interface Dims {
  B: number
  T: number
  dModel: number
  H: number
  Hkv: number
  hd: number
}

/** The layer in plain float64 JS: projections, RoPE, referenceAttention, output projection. */
function referenceLayer(x: number[], W: Record<keyof MhaParams, number[]>, d: Dims, start: number, style: 'half' | 'interleaved' | undefined, m = mask.causal): number[] {
  const { B, T, dModel, H, Hkv, hd } = d
  const heads = (y: number[], n: number, rot: boolean): number[] => {
    const out = new Array(B * n * T * hd).fill(0)
    for (let b = 0; b < B; b++)
      for (let h = 0; h < n; h++)
        for (let i = 0; i < T; i++) {
          let vec = Array.from({ length: hd }, (_, c) => y[(b * T + i) * n * hd + h * hd + c]!)
          if (rot && style) vec = ropeVec(vec, start + i, style)
          vec.forEach((val, c) => (out[((b * n + h) * T + i) * hd + c] = val))
        }
    return out
  }
  const q = heads(mm(x, W.Wq, B * T, dModel, H * hd), H, true)
  const k = heads(mm(x, W.Wk, B * T, dModel, Hkv * hd), Hkv, true)
  const v = heads(mm(x, W.Wv, B * T, dModel, Hkv * hd), Hkv, false)
  const { out } = referenceAttention({ values: q, shape: [B, H, T, hd] }, { values: k, shape: [B, Hkv, T, hd] }, { values: v, shape: [B, Hkv, T, hd] }, { queryOffset: start, keyOffset: start, mask: m })
  const merged = new Array(B * T * H * hd).fill(0)
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < T; i++) for (let c = 0; c < hd; c++) merged[(b * T + i) * H * hd + h * hd + c] = out[((b * H + h) * T + i) * hd + c]!
  return mm(merged, W.Wo, B * T, H * hd, dModel)
}

const hostParams = async (p: MhaParams) => ({ Wq: Array.from(await p.Wq.data()), Wk: Array.from(await p.Wk.data()), Wv: Array.from(await p.Wv.data()), Wo: Array.from(await p.Wo.data()) })

t.test('forward matches a float64 reference (MHA and GQA, RoPE half / interleaved / none, offsets)', async t => {
  const variants: { name: string; d: Dims; rope: 'half' | 'interleaved' | undefined; start: number }[] = [
    { name: 'MHA, no RoPE', d: { B: 2, T: 7, dModel: 8, H: 2, Hkv: 2, hd: 4 }, rope: undefined, start: 0 },
    { name: 'GQA 4:2, RoPE half, offset 100', d: { B: 1, T: 9, dModel: 12, H: 4, Hkv: 2, hd: 6 }, rope: 'half', start: 100 },
    { name: 'GQA 4:1, RoPE interleaved, headDim ≠ dModel/heads', d: { B: 2, T: 5, dModel: 6, H: 4, Hkv: 1, hd: 4 }, rope: 'interleaved', start: 3 },
  ]
  for (const c of variants) {
    const base = memory().tensors
    const layer = multiHeadAttention({ dModel: c.d.dModel, heads: c.d.H, kvHeads: c.d.Hkv, headDim: c.d.hd, ...(c.rope ? { rope: { style: c.rope } } : {}) })
    const params = layer.init({ seed: 3, dtype: 'float64' })
    const xv = randomArray(rand, c.d.B * c.d.T * c.d.dModel)
    const x = tensor(xv, [c.d.B, c.d.T, c.d.dModel], 'float64')
    const y = layer.forward(params, x, { positions: c.start })
    t.same(y.shape, [c.d.B, c.d.T, c.d.dModel])
    assertClose(t, y.dataSync(), referenceLayer(xv, await hostParams(params), c.d, c.start, c.rope), { atol: 1e-12, rtol: 1e-10, msg: c.name })
    if (c.d.B === 1) {
      const x2 = reshape(x, [c.d.T, c.d.dModel])
      const y2 = layer.forward(params, x2, { positions: c.start })
      t.same(y2.shape, [c.d.T, c.d.dModel], '[T, dModel] in, [T, dModel] out')
      assertClose(t, y2.dataSync(), y.dataSync(), { atol: 0, rtol: 0, msg: `${c.name}: unbatched` })
      x2.dispose()
      y2.dispose()
    }
    for (const w of [x, y, params.Wq, params.Wk, params.Wv, params.Wo]) w.dispose()
    t.equal(memory().tensors, base, `${c.name}: no leak`)
  }
})

t.test('RoPE: scores depend only on pq − pk; norms are kept; the tensor op matches the host formula', async t => {
  for (const style of ['half', 'interleaved'] as const) {
    const D = 8
    const qv = randomArray(rand, D)
    const kv = randomArray(rand, D)
    const score = (pq: number, pk: number): number =>
      scope(() => {
        const rq = rope(tensor(qv, [1, 1, 1, D], 'float64'), Int32Array.of(pq), { style })
        const rk = rope(tensor(kv, [1, 1, 1, D], 'float64'), Int32Array.of(pk), { style })
        return matmul(reshape(rq, [1, D]), reshape(rk, [1, D]), { transposeB: true }).dataSync()[0]!
      })
    for (const [pq, pk] of [[5, 2], [17, 0], [4000, 3000], [9, 9]] as const) {
      const s0 = score(pq, pk)
      for (const shift of [1, 37, 5000]) t.ok(Math.abs(score(pq + shift, pk + shift) - s0) < 1e-9, `${style}: (${pq}, ${pk}) shifted by ${shift}`)
    }
    const opts: RopeOptions = { style }
    const x = tensor(qv, [1, 1, 1, D], 'float64')
    const rx = rope(x, Int32Array.of(1234), opts)
    const got = rx.dataSync()
    assertClose(t, got, ropeVec(qv, 1234, style), { atol: 1e-12, rtol: 1e-12, msg: `${style}: formula` })
    const norm = (a: ArrayLike<number>) => Math.hypot(...Array.from(a))
    t.ok(Math.abs(norm(got) - norm(qv)) < 1e-12, `${style}: rotation keeps the norm`)
    x.dispose()
    rx.dispose()
  }
  t.throws(() => scope(() => rope(tensor(new Float64Array(3), [1, 1, 1, 3]), Int32Array.of(0))), /even head dim/)
})

t.test('gradients through RoPE and the layer match finite differences', async t => {
  const D = 4
  const w = randomArray(rand, 2 * 3 * D)
  await checkGrad(t, (x: Tensor) => scope(() => sum(mul3(rope(x, Int32Array.of(3, 4, 9), { style: 'half' }), w, [1, 2, 3, D]))), [{ v: randomArray(rand, 2 * 3 * D), shape: [1, 2, 3, D] }], { msg: 'rope half' })
  await checkGrad(t, (x: Tensor) => scope(() => sum(mul3(rope(x, Int32Array.of(3, 4, 9), { style: 'interleaved' }), w, [1, 2, 3, D]))), [{ v: randomArray(rand, 2 * 3 * D), shape: [1, 2, 3, D] }], { msg: 'rope interleaved' })
  const layer = multiHeadAttention({ dModel: 4, heads: 2, kvHeads: 1, rope: true })
  const shapes = { Wq: [4, 4], Wk: [4, 2], Wv: [4, 2], Wo: [4, 4] } as const
  const xv = randomArray(rand, 5 * 4)
  await checkGrad(
    t,
    (Wq: Tensor, Wk: Tensor, Wv: Tensor, Wo: Tensor) => scope(() => sum(square(layer.forward({ Wq, Wk, Wv, Wo }, tensor(xv, [5, 4], 'float64'), { positions: 2 })))),
    Object.values(shapes).map(s => ({ v: randomArray(rand, s[0] * s[1]), shape: s })),
    { msg: 'layer params', atol: 1e-6, rtol: 1e-5 },
  )
})

const mul3 = (x: Tensor, w: number[], shape: readonly number[]): Tensor => mul(x, tensor(w, shape, 'float64'))

t.test('with a cache: chunked prefill then decode equals one-shot, full and streaming kv heads mixed', async t => {
  const base = memory().tensors
  const d: Dims = { B: 1, T: 41, dModel: 8, H: 4, Hkv: 2, hd: 4 }
  const layer = multiHeadAttention({ dModel: 8, heads: 4, kvHeads: 2, rope: true })
  const params = layer.init({ seed: 9, dtype: 'float64' })
  const xv = randomArray(rand, d.T * d.dModel)
  const x = tensor(xv, [1, d.T, 8], 'float64')
  const oneShot = layer.forward(params, x, { mask: mask.perHead(4, h => (h < 2 ? mask.all : mask.streaming(2, 5))) })
  const cache = layer.cache({ batch: 1, capacity: 64, dtype: 'float64', policies: [headPolicy.full(), headPolicy.streaming(2, 5)], chunk: 4 })
  const outs: number[] = []
  // a 13-token prefill (split into chunks of 4 for the streaming heads), then single tokens
  for (let s = 0; s < d.T; ) {
    const e = s === 0 ? 13 : s + 1
    scope(() => {
      const y = layer.forward(params, sliceRows(xv, s, e, 8), { cache, positions: s })
      outs.push(...y.dataSync())
    })
    t.ok(cache.retained(1) <= 2 + 5 - 1, 'streaming head stays at sink + recent − 1 between calls')
    s = e
  }
  assertClose(t, outs, oneShot.dataSync(), { atol: 1e-12, rtol: 1e-10, msg: 'stream = one-shot' })
  t.equal(cache.retained(0), d.T, 'the full head keeps everything')
  cache.dispose()
  for (const w of [x, oneShot, params.Wq, params.Wk, params.Wv, params.Wo]) w.dispose()
  t.equal(memory().tensors, base, 'no leak')
})

const sliceRows = (xv: number[], s: number, e: number, n: number): Tensor => tensor(xv.slice(s * n, e * n), [1, e - s, n], 'float64')

t.test('a tiny transformer block trains with adam: the loss drops', async t => {
  const base = memory().tensors
  const block = transformerBlock({ dModel: 8, heads: 2, kvHeads: 1, rope: true, hidden: 16 })
  let params = block.init({ seed: 1 })
  // toy task: each position predicts the running mean of the inputs so far (causal averaging)
  const B = 4
  const T = 8
  const xs = randomArray(rand, B * T * 8)
  const ys = new Array(B * T * 8).fill(0)
  for (let b = 0; b < B; b++)
    for (let i = 0; i < T; i++)
      for (let c = 0; c < 8; c++) {
        let acc = 0
        for (let j = 0; j <= i; j++) acc += xs[(b * T + j) * 8 + c]!
        ys[(b * T + i) * 8 + c] = acc / (i + 1)
      }
  const x = tensor(xs, [B, T, 8], 'float32')
  const y = tensor(ys, [B, T, 8], 'float32')
  const loss = valueAndGrad((p: typeof params) => mean(square(sub(block.forward(p, x), y))))
  const opt = adam({ lr: 0.01 })
  let state = opt.init(params)
  const losses: number[] = []
  for (let step = 0; step < 40; step++) {
    const [l, grads] = loss(params)
    losses.push(l.dataSync()[0]!)
    ;[params, state] = opt.step(grads, state, params)
    l.dispose()
    disposeTree(grads)
  }
  t.ok(losses[losses.length - 1]! < 0.5 * losses[0]!, `loss ${losses[0]!.toFixed(4)} → ${losses[losses.length - 1]!.toFixed(4)}`)
  disposeTree(params)
  disposeTree(state)
  x.dispose()
  y.dispose()
  t.equal(memory().tensors, base, 'no leak over training')
})

t.test('validation names the op, the argument and the shapes', async t => {
  t.throws(() => multiHeadAttention({ dModel: 8, heads: 3, kvHeads: 2 }), /kvHeads: expected a divisor of heads \(3\)/)
  t.throws(() => multiHeadAttention({ dModel: 8, heads: 3 }), /headDim/)
  t.throws(() => multiHeadAttention({ dModel: 8, heads: 2, headDim: 3, rope: true }), /even head dim/)
  const layer = multiHeadAttention({ dModel: 8, heads: 2 })
  const p = layer.init()
  const bad = tensor(new Float32Array(2 * 3 * 7), [2, 3, 7])
  t.throws(() => layer.forward(p, bad), ShapeError)
  const x = tensor(new Float32Array(2 * 3 * 8), [2, 3, 8])
  t.throws(() => layer.forward(p, x, { positions: [0, 1, 3] }), ValueError)
  const cache = layer.cache({ batch: 1, capacity: 4 })
  t.throws(() => layer.forward(p, x, { cache }), /a cache of batch 2/)
  t.throws(() => layer.forward({ ...p, Wo: bad }, x), /params\.Wo/)
  const small = layer.cache({ batch: 2, capacity: 2 })
  t.throws(() => layer.forward(p, x, { cache: small }), /cache overflow/)
  t.equal(small.length, 0, 'a rejected chunk leaves the cache as it was')
  for (const w of [bad, x, p.Wq, p.Wk, p.Wv, p.Wo]) w.dispose()
  cache.dispose()
  small.dispose()
})
