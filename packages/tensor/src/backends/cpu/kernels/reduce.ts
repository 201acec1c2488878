import { allocArray, isInt, type AnyTypedArray, type DType } from '../../../dtype.js'
import { reducedShape, stridesOf, type Shape } from '../../../shape.js'
import type { CpuKernelTable, CpuTensor } from '../types.js'
import { reduceAxes } from '../util.js'
import { wasmRowSoftmax, type RowOp } from '../wasm/softmax.js'
import { float32RowSoftmax } from '../float32RowSoftmax.js'
import { float32Sum } from '../float32Sum.js'

/** attrs of every reduction kernel: axes (sorted, normalised), keepDims. */
interface ReduceAttrs {
  axes: number[]
  keepDims: boolean
}

/**
 * Flat offsets that split `shape` into slices along `axes`: `bases[o]` starts the o-th slice (kept axes,
 * row-major) and `offs[k]` is the k-th element inside every slice (reduced axes, row-major). Reductions,
 * softmax and cumsum all walk the same layout, so one helper serves them.
 */
function slices(shape: Shape, axes: readonly number[]): { bases: Int32Array; offs: Int32Array } {
  const st = stridesOf(shape)
  const keep = shape.map((_, i) => i).filter(i => !axes.includes(i))
  const walk = (dims: readonly number[]): Int32Array => {
    const n = dims.reduce((p, i) => p * shape[i]!, 1)
    const out = new Int32Array(n)
    const ctr = new Array<number>(dims.length).fill(0)
    for (let k = 0; k < n; k++) {
      let off = 0
      for (let j = 0; j < dims.length; j++) off += ctr[j]! * st[dims[j]!]!
      out[k] = off
      for (let j = dims.length - 1; j >= 0; j--) {
        if (++ctr[j]! < shape[dims[j]!]!) break
        ctr[j] = 0
      }
    }
    return out
  }
  return { bases: walk(keep), offs: walk(axes) }
}

type SliceFn = (v: AnyTypedArray, base: number, offs: Int32Array) => number

/** One number per slice: the shape of every reduction kernel below. */
function reduceWith(x: CpuTensor, attrs: unknown, dtype: DType, f: SliceFn): CpuTensor {
  const { axes, keepDims } = attrs as ReduceAttrs
  const { bases, offs } = slices(x.shape, axes)
  const values = allocArray(dtype, bases.length)
  for (let o = 0; o < bases.length; o++) values[o] = f(x.values, bases[o]!, offs)
  return { values, shape: reducedShape(x.shape, axes, keepDims), dtype }
}

/** Same-shape output, computed slice by slice (softmax, cumsum). `f` writes `out` at base + offs[k]. */
function mapSlices(x: CpuTensor, axes: readonly number[], f: (v: AnyTypedArray, out: AnyTypedArray, base: number, offs: Int32Array) => void): CpuTensor {
  const { bases, offs } = slices(x.shape, axes)
  const out = allocArray(x.dtype, x.values.length)
  for (let o = 0; o < bases.length; o++) f(x.values, out, bases[o]!, offs)
  return { values: out, shape: x.shape, dtype: x.dtype }
}

// NaN propagates through max/min (numpy semantics); `better` says whether e beats the current best.
const extreme =
  (better: (e: number, m: number) => boolean): SliceFn =>
  (v, b, offs) => {
    if (offs.length === 0) return NaN
    let m = v[b + offs[0]!]!
    for (let k = 1; k < offs.length && m === m; k++) {
      const e = v[b + offs[k]!]!
      if (e !== e || better(e, m)) m = e
    }
    return m
  }

// The first NaN wins (it is what max returns), otherwise the first of tied extremes.
const argExtreme =
  (better: (e: number, m: number) => boolean): SliceFn =>
  (v, b, offs) => {
    if (offs.length === 0) return 0
    let m = v[b + offs[0]!]!
    let best = 0
    for (let k = 1; k < offs.length && m === m; k++) {
      const e = v[b + offs[k]!]!
      if (e !== e || better(e, m)) {
        m = e
        best = k
      }
    }
    return best
  }

const gt = (e: number, m: number): boolean => e > m
const lt = (e: number, m: number): boolean => e < m

const meanOf = (v: AnyTypedArray, b: number, offs: Int32Array): number => {
  let s = 0
  for (let k = 0; k < offs.length; k++) s += v[b + offs[k]!]!
  return s / offs.length
}

// Two passes in float64: a mean first keeps large offsets (|x| ~ 1e4 with a tiny spread) from cancelling.
const varianceOf = (correction: number): SliceFn => (v, b, offs) => {
  const mu = meanOf(v, b, offs)
  let ss = 0
  for (let k = 0; k < offs.length; k++) {
    const d = v[b + offs[k]!]! - mu
    ss += d * d
  }
  return ss / (offs.length - correction)
}

/** max-shifted log Σ exp in float64; an empty or all -Infinity slice gives -Infinity, not NaN. */
const logSumExpOf: SliceFn = (v, b, offs) => {
  const m = extreme(gt)(v, b, offs)
  if (offs.length === 0 || m === -Infinity) return -Infinity
  if (m !== m || m === Infinity) return m
  let s = 0
  for (let k = 0; k < offs.length; k++) s += Math.exp(v[b + offs[k]!]! - m)
  return m + Math.log(s)
}

const maxOf = extreme(gt)

function softmaxSlice(v: AnyTypedArray, out: AnyTypedArray, b: number, offs: Int32Array): void {
  const m = maxOf(v, b, offs)
  let s = 0
  for (let k = 0; k < offs.length; k++) s += Math.exp(v[b + offs[k]!]! - m)
  for (let k = 0; k < offs.length; k++) out[b + offs[k]!] = Math.exp(v[b + offs[k]!]! - m) / s
}

function logSoftmaxSlice(v: AnyTypedArray, out: AnyTypedArray, b: number, offs: Int32Array): void {
  const m = maxOf(v, b, offs)
  let s = 0
  for (let k = 0; k < offs.length; k++) s += Math.exp(v[b + offs[k]!]! - m)
  const ls = Math.log(s)
  for (let k = 0; k < offs.length; k++) out[b + offs[k]!] = v[b + offs[k]!]! - m - ls
}

/**
 * float32 softmax-family ops over trailing axes (each slice one contiguous row) through the WebAssembly kernel,
 * which computes in float64 lanes like the loops above; undefined where it does not apply. Rows with a non-finite
 * max come back to the loops above, which own those semantics.
 */
function rowWise(x: CpuTensor, axes: readonly number[], op: RowOp, keepDims = false): CpuTensor | undefined {
  const r = x.shape.length
  if (x.dtype !== 'float32' || axes.length === 0 || axes.some((a, i) => a !== r - axes.length + i)) return undefined
  const cols = x.shape.slice(r - axes.length).reduce((p, d) => p * d, 1)
  const rows = cols === 0 ? 0 : x.values.length / cols
  // empty rows or an empty batch: the general loops own those shapes
  if (rows === 0) return undefined
  const offs = Int32Array.from({ length: cols }, (_, k) => k)
  const v = x.values
  const values =
    wasmRowSoftmax(v as Float32Array, rows, cols, op, (row, out) => {
      if (op === 'logSumExp') out[row] = logSumExpOf(v, row * cols, offs)
      else (op === 'softmax' ? softmaxSlice : logSoftmaxSlice)(v, out, row * cols, offs)
    }) ?? float32RowSoftmax(v as Float32Array, rows, cols, op)
  return { values, shape: op === 'logSumExp' ? reducedShape(x.shape, axes, keepDims) : x.shape, dtype: x.dtype }
}

export const reduceKernels = {
  /** Sum, accumulated in float64 whatever the storage dtype (the reference path). attrs: ReduceAttrs, dtype. */
  Sum: ([x], attrs) => {
    const { axes, keepDims } = attrs as unknown as ReduceAttrs
    const dtype = (attrs['dtype'] as DType | undefined) ?? x!.dtype
    const fast = dtype === 'float32' ? float32Sum(x!, axes) : undefined
    if (fast) return { values: fast, shape: reducedShape(x!.shape, axes, keepDims), dtype }
    const values = reduceAxes(
      x!,
      axes,
      dtype,
      () => 0,
      (acc, v) => acc + v,
      acc => acc,
    )
    return { values, shape: reducedShape(x!.shape, axes, keepDims), dtype }
  },
  /** Mean in float64 (a float16 sum may overflow where the mean does not). attrs: ReduceAttrs. */
  Mean: ([x], attrs) => reduceWith(x!, attrs, x!.dtype, meanOf),
  /** attrs: ReduceAttrs. NaN propagates. */
  Max: ([x], attrs) => reduceWith(x!, attrs, x!.dtype, extreme(gt)),
  Min: ([x], attrs) => reduceWith(x!, attrs, x!.dtype, extreme(lt)),
  /** Product; integer dtypes multiply with wrap-around (exact modulo 2^32, as numpy's int32). attrs: ReduceAttrs. */
  Prod: ([x], attrs) =>
    reduceWith(x!, attrs, x!.dtype, (v, b, offs) => {
      let p = 1
      if (isInt(x!.dtype)) for (let k = 0; k < offs.length; k++) p = Math.imul(p, v[b + offs[k]!]!)
      else for (let k = 0; k < offs.length; k++) p *= v[b + offs[k]!]!
      return p
    }),
  /** int32 position of the first maximum within the reduced axes read row-major. attrs: ReduceAttrs. */
  ArgMax: ([x], attrs) => reduceWith(x!, attrs, 'int32', argExtreme(gt)),
  ArgMin: ([x], attrs) => reduceWith(x!, attrs, 'int32', argExtreme(lt)),
  /** Σ(x - mean)² / (n - correction), two-pass in float64. attrs: ReduceAttrs, correction. */
  Variance: ([x], attrs) => reduceWith(x!, attrs, x!.dtype, varianceOf(attrs['correction'] as number)),
  /** sqrt of Variance, fused so a float16 std does not pass through an overflowing variance. */
  Std: ([x], attrs) => {
    const vf = varianceOf(attrs['correction'] as number)
    return reduceWith(x!, attrs, x!.dtype, (v, b, offs) => Math.sqrt(vf(v, b, offs)))
  },
  /** attrs: ReduceAttrs. */
  LogSumExp: ([x], attrs) => rowWise(x!, (attrs as unknown as ReduceAttrs).axes, 'logSumExp', (attrs as unknown as ReduceAttrs).keepDims) ?? reduceWith(x!, attrs, x!.dtype, logSumExpOf),
  /** Softmax over `axes` (sorted, normalised), max-shifted, in float64. attrs: { axes }. */
  Softmax: ([x], attrs) => rowWise(x!, attrs['axes'] as number[], 'softmax') ?? mapSlices(x!, attrs['axes'] as number[], softmaxSlice),
  /** x - logSumExp(x) computed as (x - max) - log Σ exp(x - max), so large logits lose nothing. attrs: { axes }. */
  LogSoftmax: ([x], attrs) => rowWise(x!, attrs['axes'] as number[], 'logSoftmax') ?? mapSlices(x!, attrs['axes'] as number[], logSoftmaxSlice),
  /**
   * Running sum along `axes` (zero or one axis), in float64. `reverse` sums from the end; `exclusive` leaves
   * out the element itself. attrs: { axes, reverse, exclusive }.
   */
  Cumsum: ([x], attrs) => {
    const reverse = attrs['reverse'] === true
    const exclusive = attrs['exclusive'] === true
    return mapSlices(x!, attrs['axes'] as number[], (v, out, b, offs) => {
      const n = offs.length
      let s = 0
      for (let i = 0; i < n; i++) {
        const at = b + offs[reverse ? n - 1 - i : i]!
        const e = v[at]!
        if (exclusive) {
          out[at] = s
          s += e
        } else {
          s += e
          out[at] = s
        }
      }
    })
  },
} satisfies Partial<CpuKernelTable>
