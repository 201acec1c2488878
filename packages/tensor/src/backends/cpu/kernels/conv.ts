import type { Attrs } from '../../../backend.js'
import { allocArray, type DType } from '../../../dtype.js'
import { sizeOf, type Shape } from '../../../shape.js'
import type { CpuKernelTable, CpuTensor } from '../types.js'

/**
 * Grouped convolution and average pooling over NCH(W) layouts. Rank-3 tensors ([B, C, T], weights [O, I, K]) are
 * the 2-D case with H = 1, so one set of loops serves conv1d and conv2d. All accumulation is in float64; the
 * result is rounded once to the output dtype.
 *
 * Common attrs (plain arrays, as the WebGPU backend needs them): stride [sh, sw], dilation [dh, dw], pad [top, left]
 * (bottom/right padding is implied by the output size), groups, and `shape`: the shape of the kernel's output
 * (y for Conv, x for ConvBackpropInput, w for ConvBackpropFilter).
 */

interface Geometry {
  readonly B: number
  readonly C: number
  readonly H: number
  readonly W: number
  readonly O: number
  readonly Ig: number
  readonly KH: number
  readonly KW: number
  readonly OH: number
  readonly OW: number
  readonly sh: number
  readonly sw: number
  readonly dh: number
  readonly dw: number
  readonly pt: number
  readonly pl: number
  readonly groups: number
}

/** [B, C, T] → [B, C, 1, T]; a 4-D shape unchanged. */
const as4 = (s: Shape): [number, number, number, number] => (s.length === 3 ? [s[0]!, s[1]!, 1, s[2]!] : [s[0]!, s[1]!, s[2]!, s[3]!])

const pair = (attrs: Attrs, key: string): [number, number] => {
  const v = attrs[key] as readonly number[]
  return [v[0]!, v[1]!]
}

function geometry(xShape: Shape, wShape: Shape, yShape: Shape, attrs: Attrs): Geometry {
  const [B, C, H, W] = as4(xShape)
  const [O, Ig, KH, KW] = as4(wShape)
  const [, , OH, OW] = as4(yShape)
  const [sh, sw] = pair(attrs, 'stride')
  const [dh, dw] = pair(attrs, 'dilation')
  const [pt, pl] = pair(attrs, 'pad')
  return { B, C, H, W, O, Ig, KH, KW, OH, OW, sh, sw, dh, dw, pt, pl, groups: attrs['groups'] as number }
}

/**
 * Walk every (x row, y row, weight tap) triple that the convolution connects, handing `row` the flat offsets and
 * the range of output columns whose input column is in bounds. The column range is computed up front so the
 * innermost loops (in the three kernels) carry no bounds tests.
 * row(xOff, yOff, wIdx, lo, hi): for ow in [lo, hi), x[xOff + ow*sw] meets y[yOff + ow] through w[wIdx].
 */
function walk(g: Geometry, row: (xOff: number, yOff: number, wIdx: number, lo: number, hi: number) => void): void {
  const { B, C, H, W, O, Ig, KH, KW, OH, OW, sh, sw, dh, dw, pt, pl } = g
  const Og = O / g.groups
  const lo = new Int32Array(KW)
  const hi = new Int32Array(KW)
  for (let kw = 0; kw < KW; kw++) {
    const shift = kw * dw - pl // input column = ow*sw + shift
    lo[kw] = Math.max(0, Math.ceil(-shift / sw))
    hi[kw] = Math.min(OW, Math.floor((W - 1 - shift) / sw) + 1)
  }
  for (let b = 0; b < B; b++)
    for (let o = 0; o < O; o++) {
      const grp = Math.floor(o / Og)
      const yBase = (b * O + o) * OH * OW
      for (let ci = 0; ci < Ig; ci++) {
        const xBase = (b * C + grp * Ig + ci) * H * W
        const wBase = (o * Ig + ci) * KH * KW
        for (let kh = 0; kh < KH; kh++)
          for (let oh = 0; oh < OH; oh++) {
            const ih = oh * sh - pt + kh * dh
            if (ih < 0 || ih >= H) continue
            for (let kw = 0; kw < KW; kw++)
              if (lo[kw]! < hi[kw]!) row(xBase + ih * W + kw * dw - pl, yBase + oh * OW, wBase + kh * KW + kw, lo[kw]!, hi[kw]!)
          }
      }
    }
}

const finish = (acc: Float64Array, shape: Shape, dtype: DType): CpuTensor => {
  const out = allocArray(dtype, acc.length)
  out.set(acc)
  return { values: out, shape, dtype }
}

/** y = conv(x, w). inputs [x, w]; attrs: common, shape = y's shape. */
function conv([x, w]: readonly CpuTensor[], attrs: Attrs): CpuTensor {
  const shape = attrs['shape'] as Shape
  const g = geometry(x!.shape, w!.shape, shape, attrs)
  const acc = new Float64Array(sizeOf(shape))
  const xv = x!.values
  const wv = w!.values
  const sw = g.sw
  walk(g, (xOff, yOff, wIdx, lo, hi) => {
    const k = wv[wIdx]!
    for (let ow = lo; ow < hi; ow++) acc[yOff + ow]! += k * xv[xOff + ow * sw]!
  })
  return finish(acc, shape, x!.dtype)
}

/** dx from dy and w (the adjoint of Conv in x). inputs [dy, w]; attrs: common, shape = x's shape. */
function convBackpropInput([dy, w]: readonly CpuTensor[], attrs: Attrs): CpuTensor {
  const shape = attrs['shape'] as Shape
  const g = geometry(shape, w!.shape, dy!.shape, attrs)
  const acc = new Float64Array(sizeOf(shape))
  const dv = dy!.values
  const wv = w!.values
  const sw = g.sw
  walk(g, (xOff, yOff, wIdx, lo, hi) => {
    const k = wv[wIdx]!
    for (let ow = lo; ow < hi; ow++) acc[xOff + ow * sw]! += k * dv[yOff + ow]!
  })
  return finish(acc, shape, dy!.dtype)
}

/** dw from x and dy (the adjoint of Conv in w). inputs [x, dy]; attrs: common, shape = w's shape. */
function convBackpropFilter([x, dy]: readonly CpuTensor[], attrs: Attrs): CpuTensor {
  const shape = attrs['shape'] as Shape
  const g = geometry(x!.shape, shape, dy!.shape, attrs)
  const acc = new Float64Array(sizeOf(shape))
  const xv = x!.values
  const dv = dy!.values
  const sw = g.sw
  walk(g, (xOff, yOff, wIdx, lo, hi) => {
    let s = 0
    for (let ow = lo; ow < hi; ow++) s += xv[xOff + ow * sw]! * dv[yOff + ow]!
    acc[wIdx]! += s
  })
  return finish(acc, shape, x!.dtype)
}

/**
 * Average-pool windows: calls `cell(xBase, yIdx, h0, h1, w0, w1, count)` per output element with its in-bounds
 * window [h0, h1) × [w0, w1) and the number of elements in it (padding is not counted: count_include_pad=false).
 * attrs: kernel [kh, kw], stride [sh, sw], pad [top, left].
 */
function poolWalk(
  xShape: Shape,
  yShape: Shape,
  attrs: Attrs,
  cell: (xBase: number, W: number, yIdx: number, h0: number, h1: number, w0: number, w1: number, count: number) => void,
): void {
  const [B, C, H, W] = as4(xShape)
  const [, , OH, OW] = as4(yShape)
  const [kh, kw] = pair(attrs, 'kernel')
  const [sh, sw] = pair(attrs, 'stride')
  const [pt, pl] = pair(attrs, 'pad')
  let y = 0
  for (let bc = 0; bc < B * C; bc++) {
    const xBase = bc * H * W
    for (let oh = 0; oh < OH; oh++) {
      const h0 = Math.max(0, oh * sh - pt)
      const h1 = Math.min(H, oh * sh - pt + kh)
      for (let ow = 0; ow < OW; ow++, y++) {
        const w0 = Math.max(0, ow * sw - pl)
        const w1 = Math.min(W, ow * sw - pl + kw)
        cell(xBase, W, y, h0, h1, w0, w1, Math.max(0, (h1 - h0) * (w1 - w0)))
      }
    }
  }
}

/** inputs [x]; attrs: kernel, stride, pad, shape = y's shape. */
function avgPool([x]: readonly CpuTensor[], attrs: Attrs): CpuTensor {
  const shape = attrs['shape'] as Shape
  const acc = new Float64Array(sizeOf(shape))
  const xv = x!.values
  poolWalk(x!.shape, shape, attrs, (xBase, W, y, h0, h1, w0, w1, count) => {
    let s = 0
    for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) s += xv[xBase + h * W + w]!
    acc[y] = count > 0 ? s / count : 0
  })
  return finish(acc, shape, x!.dtype)
}

/** dx from dy (the adjoint of AvgPool). inputs [dy]; attrs: kernel, stride, pad, shape = x's shape. */
function avgPoolBackprop([dy]: readonly CpuTensor[], attrs: Attrs): CpuTensor {
  const shape = attrs['shape'] as Shape
  const acc = new Float64Array(sizeOf(shape))
  const dv = dy!.values
  poolWalk(shape, dy!.shape, attrs, (xBase, W, y, h0, h1, w0, w1, count) => {
    if (count === 0) return
    const share = dv[y]! / count
    for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) acc[xBase + h * W + w]! += share
  })
  return finish(acc, shape, dy!.dtype)
}

export const convKernels = {
  Conv: conv,
  ConvBackpropInput: convBackpropInput,
  ConvBackpropFilter: convBackpropFilter,
  AvgPool: avgPool,
  AvgPoolBackprop: avgPoolBackprop,
} satisfies Partial<CpuKernelTable>
