import { positiveInt } from '../validate.js'
import { isFloat, type DType } from '../dtype.js'
import { ArgumentError, DTypeError, ShapeError, ValueError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import type { Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

/** `'valid'`: no padding. `'same'`: output length ceil(input / stride), the odd pixel of padding at the end (TF's rule). */
export type Padding = 'valid' | 'same' | number

export interface Conv1dOptions {
  /** Step between output positions (default 1). */
  readonly stride?: number
  /** 'valid' (default), 'same', or zeros on each side. */
  readonly padding?: Padding
  /** Spacing between kernel taps (default 1). */
  readonly dilation?: number
  /**
   * Channel groups. Implied by the weight shape (C / w.shape[1]), so it need not be given: w [C, 1, K] is a
   * depthwise conv, w [O, C, K] a full one. When given it must agree.
   */
  readonly groups?: number
}

export interface Conv2dOptions {
  /** Step between output positions, one number for both axes or [rows, cols] (default 1). */
  readonly stride?: number | readonly [number, number]
  /** 'valid' (default), 'same', zeros on each side, or [rows, cols] of zeros. */
  readonly padding?: Padding | readonly [number, number]
  /** Spacing between kernel taps, one number or [rows, cols] (default 1). */
  readonly dilation?: number | readonly [number, number]
  /** As in Conv1dOptions: implied by the weight shape. */
  readonly groups?: number
}

export interface PoolOptions<P> {
  /** Step between windows (default: the kernel size, non-overlapping windows). */
  readonly stride?: P
  /** 'valid' (default), 'same', or zeros on each side; padded cells are not counted in the average. */
  readonly padding?: Padding | P
}

// ---- raw ops (validated inputs; differentiable, their rules are in src/gradients/conv.ts) ---------------------

interface Geo {
  readonly stride: readonly [number, number]
  readonly dilation: readonly [number, number]
  readonly pad: readonly [number, number]
  readonly groups: number
}

const convRaw = (x: Tensor, w: Tensor, geo: Geo, yShape: Shape): Tensor => runOp1('conv', Kernel.Conv, [x, w], { ...geo, shape: yShape }, true)

interface PoolGeo {
  readonly kernel: readonly [number, number]
  readonly stride: readonly [number, number]
  readonly pad: readonly [number, number]
}

const poolRaw = (x: Tensor, geo: PoolGeo, yShape: Shape): Tensor => runOp1('avgPool', Kernel.AvgPool, [x], { ...geo, shape: yShape }, true)

// ---- validation --------------------------------------------------------------------------------------------

const posInt = (op: string, arg: string, v: unknown): number => positiveInt(op, arg, v)

/** A number or a [rows, cols] pair → a pair; a 1-D op has rows fixed at `one`. */
function pairOf(op: string, arg: string, v: unknown, dflt: number, twoD: boolean): [number, number] {
  if (v === undefined) return [twoD ? dflt : 1, dflt]
  if (twoD && Array.isArray(v)) {
    if (v.length !== 2) throw new ValueError({ op, arg, expected: 'a number or [rows, cols]', actual: v })
    return [posInt(op, arg, v[0]), posInt(op, arg, v[1])]
  }
  const n = posInt(op, arg, v)
  return [twoD ? n : 1, n]
}

/** Per spatial dim: output size and leading pad, from the padding option. */
function spatial(op: string, padding: unknown, size: number, k: number, stride: number, dil: number, ofWhat: string): { out: number; pad: number } {
  const span = dil * (k - 1) + 1
  let out: number
  let pad: number
  if (padding === 'same') {
    out = Math.ceil(size / stride)
    pad = Math.floor(Math.max(0, (out - 1) * stride + span - size) / 2)
  } else {
    const p = padding === 'valid' ? 0 : (padding as number)
    out = Math.floor((size + 2 * p - span) / stride) + 1
    pad = p
  }
  if (out < 1 || size === 0)
    throw new ShapeError({ op, arg: 'x' }, `${ofWhat} of size ${size} is too small for a window of ${span}${pad ? ` with padding ${pad}` : ''}`)
  return { out, pad }
}

function padsOf(op: string, v: unknown, twoD: boolean): [Padding, Padding] {
  const ok = (p: unknown): p is Padding => p === 'valid' || p === 'same' || (typeof p === 'number' && Number.isInteger(p) && p >= 0)
  const words = twoD ? "'valid', 'same', a non-negative integer or [rows, cols]" : "'valid', 'same' or a non-negative integer"
  if (v === undefined) return ['valid', 'valid']
  if (twoD && Array.isArray(v) && v.length === 2 && v.every(p => typeof p === 'number' && ok(p))) return [v[0] as number, v[1] as number]
  if (!ok(v)) throw new ValueError({ op, arg: 'opts.padding', expected: words, actual: Array.isArray(v) ? v : String(v) })
  return [twoD ? v : 0, v]
}

function checkOptions(op: string, opts: object, allowed: readonly string[]): void {
  for (const key of Object.keys(opts))
    if (!allowed.includes(key)) throw new ArgumentError({ op, arg: 'opts', expected: `options ${allowed.join(', ')}`, actual: key }, 'unknown option')
}

function checkFloatInput(op: string, x: Tensor, rank: number, layout: string): void {
  if (!isFloat(x.dtype)) throw new DTypeError({ op, arg: 'x', expected: 'a float dtype', actual: x.dtype })
  if (x.rank !== rank) throw new ShapeError({ op, arg: 'x', expected: `rank ${rank} ${layout}`, actual: x.shape })
}

function convImpl(op: string, twoD: boolean, x: Tensor, w: Tensor, opts: Conv1dOptions | Conv2dOptions): Tensor {
  checkOptions(op, opts, ['stride', 'padding', 'dilation', 'groups'])
  const rank = twoD ? 4 : 3
  checkFloatInput(op, x, rank, twoD ? '[batch, channels, height, width]' : '[batch, channels, time]')
  if (w.dtype !== x.dtype) throw new DTypeError({ op, arg: 'w', expected: `${x.dtype} like x`, actual: w.dtype }, 'dtypes differ (cast one explicitly)')
  if (w.rank !== rank)
    throw new ShapeError({ op, arg: 'w', expected: `rank ${rank} ${twoD ? '[out, in / groups, kh, kw]' : '[out, in / groups, k]'}`, actual: w.shape })
  const C = x.shape[1]!
  const O = w.shape[0]!
  const Ig = w.shape[1]!
  if (Ig < 1 || C % Ig !== 0)
    throw new ShapeError({ op, arg: 'w' }, `w [${w.shape.join(',')}] takes ${Ig} channel(s) per group, which does not divide the ${C} channels of x [${x.shape.join(',')}]`)
  const groups = C / Ig
  if (opts.groups !== undefined && posInt(op, 'opts.groups', opts.groups) !== groups)
    throw new ShapeError({ op, arg: 'opts.groups', expected: `${groups} (x has ${C} channels, w takes ${Ig} per group)`, actual: opts.groups })
  if (O % groups !== 0) throw new ShapeError({ op, arg: 'w', expected: `an output-channel count divisible by the ${groups} groups`, actual: w.shape })
  const stride = pairOf(op, 'opts.stride', opts.stride, 1, twoD)
  const dilation = pairOf(op, 'opts.dilation', opts.dilation, 1, twoD)
  const [padH, padW] = padsOf(op, opts.padding, twoD)
  const kh = twoD ? w.shape[2]! : 1
  const kw = w.shape[rank - 1]!
  if (kh < 1 || kw < 1) throw new ShapeError({ op, arg: 'w', expected: 'a kernel of size >= 1', actual: w.shape })
  const h = twoD ? spatial(op, padH, x.shape[2]!, kh, stride[0], dilation[0], 'height') : { out: 1, pad: 0 }
  const wd = spatial(op, padW, x.shape[rank - 1]!, kw, stride[1], dilation[1], twoD ? 'width' : 'time')
  const yShape = twoD ? [x.shape[0]!, O, h.out, wd.out] : [x.shape[0]!, O, wd.out]
  return convRaw(x, w, { stride, dilation, pad: [h.pad, wd.pad], groups }, yShape)
}

function poolImpl(op: string, twoD: boolean, x: Tensor, kernelSize: unknown, opts: PoolOptions<unknown>): Tensor {
  checkOptions(op, opts, ['stride', 'padding'])
  const rank = twoD ? 4 : 3
  checkFloatInput(op, x, rank, twoD ? '[batch, channels, height, width]' : '[batch, channels, time]')
  const kernel = pairOf(op, 'kernelSize', kernelSize, 1, twoD)
  const stride = opts.stride === undefined ? kernel : pairOf(op, 'opts.stride', opts.stride, 1, twoD)
  const [padH, padW] = padsOf(op, opts.padding, twoD)
  const h = twoD ? spatial(op, padH, x.shape[2]!, kernel[0], stride[0], 1, 'height') : { out: 1, pad: 0 }
  const wd = spatial(op, padW, x.shape[rank - 1]!, kernel[1], stride[1], 1, twoD ? 'width' : 'time')
  // A pad as wide as the window would make windows of padding alone, whose average is undefined.
  if (h.pad >= kernel[0] || wd.pad >= kernel[1])
    throw new ValueError({ op, arg: 'opts.padding', expected: `less than the kernel size [${twoD ? kernel.join(',') : kernel[1]}]`, actual: opts.padding })
  const yShape = twoD ? [x.shape[0]!, x.shape[1]!, h.out, wd.out] : [x.shape[0]!, x.shape[1]!, wd.out]
  return poolRaw(x, { kernel, stride, pad: [h.pad, wd.pad] }, yShape)
}

// ---- public ops ----------------------------------------------------------------------------------------------
// Float dtypes only; checked at run time (as the elementwise ops do) so code holding a plain `Tensor` needs no cast.

/**
 * 1-D convolution (cross-correlation, as in PyTorch) of x [B, C, T] with w [O, C / groups, K] → [B, O, T'].
 * The usual case in heed is depthwise, w [C, 1, K] (groups = C, implied by the shape); w [O, C, K] is a full conv.
 */
export const conv1d: <D extends DType>(x: Tensor<D>, w: Tensor<D>, opts?: Conv1dOptions) => Tensor<D> = guard('conv1d', {
  'Tensor, Tensor': (x: Tensor, w: Tensor) => convImpl('conv1d', false, x, w, {}),
  'Tensor, Tensor, Object': (x: Tensor, w: Tensor, o: Conv1dOptions) => convImpl('conv1d', false, x, w, o),
})

/** 2-D convolution of x [B, C, H, W] with w [O, C / groups, KH, KW]; w [C, 1, KH, KW] is depthwise. See conv1d. */
export const conv2d: <D extends DType>(x: Tensor<D>, w: Tensor<D>, opts?: Conv2dOptions) => Tensor<D> = guard('conv2d', {
  'Tensor, Tensor': (x: Tensor, w: Tensor) => convImpl('conv2d', true, x, w, {}),
  'Tensor, Tensor, Object': (x: Tensor, w: Tensor, o: Conv2dOptions) => convImpl('conv2d', true, x, w, o),
})

/**
 * Average over windows of `kernelSize` along the time axis of x [B, C, T]. Padding cells are left out of each
 * average (PyTorch's count_include_pad=false), so edge windows are the mean of the real values they cover.
 */
export const avgPool1d: <D extends DType>(x: Tensor<D>, kernelSize: number, opts?: PoolOptions<number>) => Tensor<D> = guard('avgPool1d', {
  'Tensor, number': (x: Tensor, k: number) => poolImpl('avgPool1d', false, x, k, {}),
  'Tensor, number, Object': (x: Tensor, k: number, o: PoolOptions<number>) => poolImpl('avgPool1d', false, x, k, o),
})

/** 2-D average pooling of x [B, C, H, W]; `kernelSize` is a number or [rows, cols]. Padding is not counted (see avgPool1d). */
export const avgPool2d: <D extends DType>(
  x: Tensor<D>,
  kernelSize: number | readonly [number, number],
  opts?: PoolOptions<number | readonly [number, number]>,
) => Tensor<D> = guard('avgPool2d', {
  'Tensor, number | Array': (x: Tensor, k: number) => poolImpl('avgPool2d', true, x, k, {}),
  'Tensor, number | Array, Object': (x: Tensor, k: number, o: PoolOptions<unknown>) => poolImpl('avgPool2d', true, x, k, o),
})
