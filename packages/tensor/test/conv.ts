import t, { type Test } from 'tap'
import {
  ArgumentError,
  avgPool1d,
  avgPool2d,
  conv1d,
  conv2d,
  DTypeError,
  memory,
  mul,
  scope,
  ShapeError,
  sum,
  tensor,
  valueAndGrad,
  ValueError,
  type DType,
  type Tensor,
} from '@heed/tensor'
import { assertClose, checkGrad, prng, randomArray, sizeOf, suiteBackends } from './helpers/numeric.js'

// ---- plain-JS references (2-D; a 1-D case is H = 1) -----------------------------------------------------------

type Pad = 'valid' | 'same' | number

/** Output size and leading pad of one spatial dim, from the definitions in the op docs. */
function dim(size: number, k: number, stride: number, dil: number, padding: Pad): { out: number; pad: number } {
  const span = dil * (k - 1) + 1
  if (padding === 'same') {
    const out = Math.ceil(size / stride)
    return { out, pad: Math.floor(Math.max(0, (out - 1) * stride + span - size) / 2) }
  }
  const p = padding === 'valid' ? 0 : padding
  return { out: Math.floor((size + 2 * p - span) / stride) + 1, pad: p }
}

interface Spec {
  B: number
  C: number
  H: number
  W: number
  O: number
  Ig: number
  KH: number
  KW: number
  stride: [number, number]
  dil: [number, number]
  padding: [Pad, Pad]
}

/** Grouped cross-correlation; `round` after every multiply and add (identity: float64; fround: naive float32). */
function refConv(x: readonly number[], w: readonly number[], s: Spec, round: (v: number) => number = v => v): { v: number[]; OH: number; OW: number } {
  const h = dim(s.H, s.KH, s.stride[0], s.dil[0], s.padding[0])
  const wd = dim(s.W, s.KW, s.stride[1], s.dil[1], s.padding[1])
  const groups = s.C / s.Ig
  const Og = s.O / groups
  const out: number[] = []
  for (let b = 0; b < s.B; b++)
    for (let o = 0; o < s.O; o++)
      for (let oh = 0; oh < h.out; oh++)
        for (let ow = 0; ow < wd.out; ow++) {
          let acc = 0
          for (let ci = 0; ci < s.Ig; ci++)
            for (let kh = 0; kh < s.KH; kh++)
              for (let kw = 0; kw < s.KW; kw++) {
                const ih = oh * s.stride[0] - h.pad + kh * s.dil[0]
                const iw = ow * s.stride[1] - wd.pad + kw * s.dil[1]
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue
                const c = Math.floor(o / Og) * s.Ig + ci
                acc = round(acc + round(w[((o * s.Ig + ci) * s.KH + kh) * s.KW + kw]! * x[((b * s.C + c) * s.H + ih) * s.W + iw]!))
              }
          out.push(acc)
        }
  return { v: out, OH: h.out, OW: wd.out }
}

/** Average pooling that leaves padding out of each window's count. */
function refPool(x: readonly number[], B: number, C: number, H: number, W: number, k: [number, number], st: [number, number], padding: [Pad, Pad]) {
  const h = dim(H, k[0], st[0], 1, padding[0])
  const wd = dim(W, k[1], st[1], 1, padding[1])
  const out: number[] = []
  for (let bc = 0; bc < B * C; bc++)
    for (let oh = 0; oh < h.out; oh++)
      for (let ow = 0; ow < wd.out; ow++) {
        let s = 0
        let n = 0
        for (let i = oh * st[0] - h.pad; i < oh * st[0] - h.pad + k[0]; i++)
          for (let j = ow * st[1] - wd.pad; j < ow * st[1] - wd.pad + k[1]; j++)
            if (i >= 0 && i < H && j >= 0 && j < W) {
              s += x[(bc * H + i) * W + j]!
              n++
            }
        out.push(s / n)
      }
  return { v: out, OH: h.out, OW: wd.out }
}

const maxAbsErr = (x: ArrayLike<number>, y: ArrayLike<number>): number => {
  let e = 0
  for (let i = 0; i < x.length; i++) e = Math.max(e, Math.abs(x[i]! - y[i]!))
  return e
}

/** float32 policy: error vs float64 at most twice the naive float32 loop's, plus a small absolute slack. */
function assertF32(t: Test, actual: ArrayLike<number>, ref64: readonly number[], ref32: readonly number[], msg: string): void {
  const scale = Math.max(1, ...ref64.map(Math.abs))
  const bound = 2 * maxAbsErr(ref32, ref64) + 1e-7 * scale
  const err = maxAbsErr(actual, ref64)
  t.ok(err <= bound, `${msg}: float32 error ${err.toExponential(2)} within ${bound.toExponential(2)}`)
}

const stored = (v: number[], dtype: DType): number[] => (dtype === 'float64' ? v : v.map(Math.fround))

// ---- cases ------------------------------------------------------------------------------------------------------

// [B, C, T, O, Ig, K, stride, padding, dilation]: depthwise, depthwise with a channel multiplier, full, grouped;
// padding 'same' with even and odd kernels and strides; dilation.
const CASES_1D: [number, number, number, number, number, number, number, Pad, number][] = [
  [2, 3, 11, 3, 1, 3, 1, 'valid', 1],
  [1, 4, 9, 4, 1, 4, 1, 'same', 1],
  [2, 2, 13, 4, 1, 3, 2, 'same', 2],
  [1, 3, 10, 5, 3, 3, 1, 2, 1],
  [2, 4, 12, 6, 2, 2, 3, 1, 2],
  [1, 1, 1, 1, 1, 1, 1, 'valid', 1],
  [1, 2, 7, 2, 1, 7, 1, 'same', 1],
]

// [B, C, H, W, O, Ig, KH, KW, stride, padding, dilation]
const CASES_2D: [number, number, number, number, number, number, number, number, [number, number], [Pad, Pad], [number, number]][] = [
  [2, 3, 6, 7, 3, 1, 3, 3, [1, 1], ['valid', 'valid'], [1, 1]],
  [1, 2, 7, 5, 2, 1, 2, 3, [2, 1], ['same', 'same'], [1, 1]],
  [1, 3, 8, 8, 6, 1, 3, 3, [2, 2], [1, 1], [2, 1]],
  [2, 2, 5, 6, 3, 2, 3, 2, [1, 2], [2, 0], [1, 1]],
  [1, 4, 6, 6, 4, 2, 1, 3, [1, 1], ['same', 'same'], [1, 2]],
]

for (const backend of suiteBackends())
  t.test(`conv and pooling on ${backend}`, async t => {
    const base = memory().tensors
    const rand = prng(3)
    const mk = (v: readonly number[], shape: readonly number[], dtype: DType): Tensor => tensor([...v], shape, dtype, { backend })

    await t.test('known values', async t => {
      const x = mk([1, 2, 3, 4, 5], [1, 1, 5], 'float64')
      const w = mk([1, 0, -1], [1, 1, 3], 'float64')
      const ys = [conv1d(x, w), conv1d(x, w, { padding: 'same' }), avgPool1d(x, 2), avgPool1d(x, 2, { padding: 1 }), avgPool1d(x, 3, { stride: 1 })]
      t.same(Array.from(await ys[0]!.data()), [-2, -2, -2])
      t.same(Array.from(await ys[1]!.data()), [-2, -2, -2, -2, 4])
      t.same(Array.from(await ys[2]!.data()), [1.5, 3.5])
      t.same(Array.from(await ys[3]!.data()), [1, 2.5, 4.5], 'padding is not counted in the average')
      t.same(Array.from(await ys[4]!.data()), [2, 3, 4])
      for (const y of [x, w, ...ys]) y.dispose()
    })

    for (const dtype of ['float64', 'float32', 'float16'] as const)
      await t.test(`conv1d ${dtype}`, async t => {
        for (const [B, C, T, O, Ig, K, stride, padding, dilation] of CASES_1D) {
          const s: Spec = { B, C, H: 1, W: T, O, Ig, KH: 1, KW: K, stride: [1, stride], dil: [1, dilation], padding: [0, padding] }
          const xv = stored(randomArray(rand, B * C * T), dtype)
          const wv = stored(randomArray(rand, O * Ig * K), dtype)
          const x = mk(xv, [B, C, T], dtype)
          const w = mk(wv, [O, Ig, K], dtype)
          const y = conv1d(x, w, { stride, padding, dilation })
          const ref = refConv(xv, wv, s)
          const msg = `x [${B},${C},${T}] w [${O},${Ig},${K}] stride ${stride} padding ${padding} dilation ${dilation}`
          t.same(y.shape, [B, O, ref.OW], msg)
          const got = await y.data()
          if (dtype === 'float64') assertClose(t, got, ref.v, { atol: 1e-13, rtol: 1e-12, msg })
          else if (dtype === 'float32') assertF32(t, got, ref.v, refConv(xv, wv, s, Math.fround).v, msg)
          else assertClose(t, got, ref.v, { atol: 2e-3, rtol: 2 ** -10, msg })
          for (const z of [x, w, y]) z.dispose()
        }
      })

    for (const dtype of ['float64', 'float32'] as const)
      await t.test(`conv2d ${dtype}`, async t => {
        for (const [B, C, H, W, O, Ig, KH, KW, stride, padding, dil] of CASES_2D) {
          const s: Spec = { B, C, H, W, O, Ig, KH, KW, stride, dil, padding }
          const xv = stored(randomArray(rand, B * C * H * W), dtype)
          const wv = stored(randomArray(rand, O * Ig * KH * KW), dtype)
          const x = mk(xv, [B, C, H, W], dtype)
          const w = mk(wv, [O, Ig, KH, KW], dtype)
          const pad = padding[0] === padding[1] ? padding[0] : (padding as [number, number])
          const y = conv2d(x, w, { stride, padding: pad, dilation: dil, groups: C / Ig })
          const ref = refConv(xv, wv, s)
          const msg = `x [${B},${C},${H},${W}] w [${O},${Ig},${KH},${KW}] stride ${stride} padding ${padding} dilation ${dil}`
          t.same(y.shape, [B, O, ref.OH, ref.OW], msg)
          const got = await y.data()
          if (dtype === 'float64') assertClose(t, got, ref.v, { atol: 1e-13, rtol: 1e-12, msg })
          else assertF32(t, got, ref.v, refConv(xv, wv, s, Math.fround).v, msg)
          for (const z of [x, w, y]) z.dispose()
        }
      })

    await t.test('conv float32 with adversarial magnitudes', async t => {
      // six decades of mixed-sign values: cancellation inside each window
      const s: Spec = { B: 1, C: 8, H: 1, W: 40, O: 8, Ig: 1, KH: 1, KW: 9, stride: [1, 1], dil: [1, 1], padding: [0, 'same'] }
      const xv = randomArray(rand, 8 * 40).map((v, i) => Math.fround(v * 10 ** ((i % 7) - 3)))
      const wv = stored(randomArray(rand, 8 * 9), 'float32')
      const x = mk(xv, [1, 8, 40], 'float32')
      const w = mk(wv, [8, 1, 9], 'float32')
      const y = conv1d(x, w, { padding: 'same' })
      assertF32(t, await y.data(), refConv(xv, wv, s).v, refConv(xv, wv, s, Math.fround).v, 'depthwise, 1e-3..1e3')
      for (const z of [x, w, y]) z.dispose()
    })

    await t.test('avgPool', async t => {
      const pools1: [number, number, number, number, number | undefined, Pad][] = [
        [2, 3, 10, 3, undefined, 'valid'],
        [1, 2, 9, 2, 1, 'same'],
        [1, 2, 11, 4, 3, 2],
        [2, 1, 7, 3, 2, 'same'],
      ]
      for (const [B, C, T, k, stride, padding] of pools1)
        for (const dtype of ['float64', 'float32'] as const) {
          const xv = stored(randomArray(rand, B * C * T), dtype)
          const x = mk(xv, [B, C, T], dtype)
          const y = avgPool1d(x, k, stride === undefined ? { padding } : { stride, padding })
          const ref = refPool(xv, B, C, 1, T, [1, k], [1, stride ?? k], [0, padding])
          const msg = `avgPool1d [${B},${C},${T}] k ${k} stride ${stride} padding ${padding} ${dtype}`
          t.same(y.shape, [B, C, ref.OW], msg)
          assertClose(t, await y.data(), ref.v, dtype === 'float64' ? { atol: 1e-14, rtol: 1e-13, msg } : { atol: 1e-7, rtol: 2 ** -23, msg })
          for (const z of [x, y]) z.dispose()
        }
      const pools2: [number, number, number, number, [number, number], [number, number] | undefined, [Pad, Pad]][] = [
        [2, 2, 6, 6, [2, 2], undefined, ['valid', 'valid']],
        [1, 3, 7, 5, [3, 2], [2, 1], ['same', 'same']],
        [1, 1, 5, 8, [3, 3], [1, 2], [1, 1]],
        [1, 2, 6, 7, [2, 3], [2, 2], [1, 0]],
      ]
      for (const [B, C, H, W, k, stride, padding] of pools2) {
        const xv = randomArray(rand, B * C * H * W)
        const x = mk(xv, [B, C, H, W], 'float64')
        const pad = padding[0] === padding[1] ? padding[0] : (padding as [number, number])
        const y = avgPool2d(x, k[0] === k[1] ? k[0] : k, stride === undefined ? { padding: pad } : { stride, padding: pad })
        const ref = refPool(xv, B, C, H, W, k, stride ?? k, padding)
        const msg = `avgPool2d [${B},${C},${H},${W}] k ${k} stride ${stride} padding ${padding}`
        t.same(y.shape, [B, C, ref.OH, ref.OW], msg)
        assertClose(t, await y.data(), ref.v, { atol: 1e-14, rtol: 1e-13, msg })
        for (const z of [x, y]) z.dispose()
      }
    })

    t.equal(memory().tensors, base, 'memory back to baseline')
  })

// ---- gradients --------------------------------------------------------------------------------------------------

const weighted = (shapeOf: readonly number[], rand: () => number) => {
  const wv = randomArray(rand, sizeOf(shapeOf))
  return (y: () => Tensor): Tensor => scope(() => sum(mul(y(), tensor([...wv], shapeOf, 'float64'))))
}

t.test('conv gradients (finite differences, float64)', async t => {
  const rand = prng(17)
  for (const [B, C, T, O, Ig, K, stride, padding, dilation] of CASES_1D.slice(0, 5)) {
    const s: Spec = { B, C, H: 1, W: T, O, Ig, KH: 1, KW: K, stride: [1, stride], dil: [1, dilation], padding: [0, padding] }
    const x = { v: randomArray(rand, B * C * T), shape: [B, C, T] }
    const w = { v: randomArray(rand, O * Ig * K), shape: [O, Ig, K] }
    const loss = weighted([B, O, refConv(x.v, w.v, s).OW], rand)
    await checkGrad(t, (a, b) => loss(() => conv1d(a!, b!, { stride, padding, dilation })), [x, w], {
      msg: `conv1d x [${x.shape}] w [${w.shape}] stride ${stride} padding ${padding} dilation ${dilation}`,
    })
  }
  for (const [B, C, H, W, O, Ig, KH, KW, stride, padding, dil] of CASES_2D.slice(0, 4)) {
    const s: Spec = { B, C, H, W, O, Ig, KH, KW, stride, dil, padding }
    const x = { v: randomArray(rand, B * C * H * W), shape: [B, C, H, W] }
    const w = { v: randomArray(rand, O * Ig * KH * KW), shape: [O, Ig, KH, KW] }
    const ref = refConv(x.v, w.v, s)
    const loss = weighted([B, O, ref.OH, ref.OW], rand)
    const pad = padding[0] === padding[1] ? padding[0] : (padding as [number, number])
    await checkGrad(t, (a, b) => loss(() => conv2d(a!, b!, { stride, padding: pad, dilation: dil })), [x, w], {
      msg: `conv2d x [${x.shape}] w [${w.shape}] stride ${stride} padding ${padding} dilation ${dil}`,
    })
  }
})

t.test('avgPool gradients (finite differences, float64)', async t => {
  const rand = prng(19)
  const x1 = { v: randomArray(rand, 2 * 2 * 9), shape: [2, 2, 9] }
  for (const [k, stride, padding] of [[3, 2, 'same'], [2, undefined, 'valid'], [4, 3, 2]] as const) {
    const loss = weighted([2, 2, refPool(x1.v, 2, 2, 1, 9, [1, k], [1, stride ?? k], [0, padding]).OW], rand)
    await checkGrad(t, a => loss(() => avgPool1d(a!, k, stride === undefined ? { padding } : { stride, padding })), [x1], {
      msg: `avgPool1d k ${k} stride ${stride} padding ${padding}`,
    })
  }
  const x2 = { v: randomArray(rand, 1 * 2 * 5 * 6), shape: [1, 2, 5, 6] }
  const ref = refPool(x2.v, 1, 2, 5, 6, [3, 2], [2, 1], ['same', 'same'])
  const loss = weighted([1, 2, ref.OH, ref.OW], rand)
  await checkGrad(t, a => loss(() => avgPool2d(a!, [3, 2], { stride: [2, 1], padding: 'same' })), [x2], { msg: 'avgPool2d' })
})

t.test('second-order gradients go through the backprop kernels', async t => {
  // The gradient of a gradient runs the VJPs of ConvBackpropInput, ConvBackpropFilter and AvgPoolBackprop.
  const rand = prng(23)
  const x = { v: randomArray(rand, 1 * 2 * 7), shape: [1, 2, 7] }
  const w = { v: randomArray(rand, 2 * 1 * 3), shape: [2, 1, 3] }
  const inner = valueAndGrad((a: Tensor, b: Tensor) => scope(() => {
    const y = conv1d(a, b, { padding: 'same', stride: 2 })
    return sum(mul(y, y))
  }), { argnums: [0, 1] })
  await checkGrad(
    t,
    (a, b) =>
      scope(() => {
        const [v, [ga, gb]] = inner(a!, b!)
        v.dispose()
        return sum(mul(sum(mul(ga, ga)), sum(mul(gb, gb))))
      }),
    [x, w],
    { msg: 'conv1d grad of grad', atol: 1e-5, rtol: 1e-4 },
  )
  const innerPool = valueAndGrad((a: Tensor) => scope(() => {
    const y = avgPool1d(a, 3, { stride: 2, padding: 1 })
    return sum(mul(y, y))
  }))
  await checkGrad(
    t,
    a =>
      scope(() => {
        const [v, g] = innerPool(a!)
        v.dispose()
        return sum(mul(g, g))
      }),
    [x],
    { msg: 'avgPool1d grad of grad', atol: 1e-5, rtol: 1e-4 },
  )
})

t.test('conv and pooling validation', async t => {
  const base = memory().tensors
  const x = tensor(new Float32Array(2 * 3 * 8), [2, 3, 8])
  const x4 = tensor(new Float32Array(1 * 3 * 5 * 5), [1, 3, 5, 5])
  const w = tensor(new Float32Array(3 * 3), [3, 1, 3])
  const w4 = tensor(new Float32Array(3 * 9), [3, 1, 3, 3])
  const wBad = tensor(new Float32Array(2 * 2 * 3), [2, 2, 3])
  const wOdd = tensor(new Float32Array(4 * 3), [4, 1, 3])
  const w64 = tensor(new Float64Array(9), [3, 1, 3])
  const xi = tensor(new Int32Array(2 * 3 * 8), [2, 3, 8])
  const c1 = conv1d as unknown as (...args: unknown[]) => Tensor
  const c2 = conv2d as unknown as (...args: unknown[]) => Tensor
  const p1 = avgPool1d as unknown as (...args: unknown[]) => Tensor
  const p2 = avgPool2d as unknown as (...args: unknown[]) => Tensor

  t.throws(() => c1(x4, w), ShapeError, 'rank 4 input to conv1d')
  t.throws(() => c2(x, w4), ShapeError, 'rank 3 input to conv2d')
  t.throws(() => c1(x, w4), ShapeError, 'rank 4 weight to conv1d')
  t.throws(() => c1(xi, w), DTypeError, 'int input')
  t.throws(() => c1(x, w64), DTypeError, 'dtypes differ')
  t.throws(() => c1(x, wBad), { name: 'ShapeError', message: /does not divide the 3 channels/ })
  t.throws(() => c1(x, w, { groups: 1 }), ShapeError, 'groups disagree with the weight')
  t.throws(() => c1(x, wOdd), ShapeError, '4 output channels over 3 groups')
  t.throws(() => c1(x, w, { dilation: 5 }), ShapeError, 'dilated window wider than the input')
  t.throws(() => c1(x, w, { stride: 0 }), ValueError)
  t.throws(() => c1(x, w, { stride: 1.5 }), ValueError)
  t.throws(() => c1(x, w, { padding: 'full' }), ValueError)
  t.throws(() => c1(x, w, { padding: -1 }), ValueError)
  t.throws(() => c2(x4, w4, { stride: [1, 2, 3] }), ValueError)
  t.throws(() => c1(x, w, { strides: 2 }), ArgumentError, 'unknown option')
  t.throws(() => c1(x, 3), ArgumentError)
  t.throws(() => p1(x, 0), ValueError)
  t.throws(() => p1(x, 2, { padding: 2 }), ValueError, 'padding as wide as the window')
  t.throws(() => p1(x, 9), ShapeError, 'window larger than the input')
  t.throws(() => p1(xi, 2), DTypeError)
  t.throws(() => p2(x, 2), ShapeError)
  t.throws(() => p2(x4, [2, 2], { pad: 1 }), ArgumentError)
  t.throws(() => p1(x), ArgumentError)
  for (const z of [x, x4, w, w4, wBad, wOdd, w64, xi]) z.dispose()
  t.equal(memory().tensors, base)
})
