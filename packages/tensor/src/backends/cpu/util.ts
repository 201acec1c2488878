import { allocArray, f16Round, type AnyTypedArray, type DType } from '../../dtype.js'
import { broadcastStrides, sizeOf, stridesOf, type Shape } from '../../shape.js'
import type { CpuTensor } from './types.js'

/** Flat input offsets for every output element of a broadcast read. */
export function broadcastOffsets(inShape: Shape, outShape: Shape): Int32Array | undefined {
  const n = sizeOf(outShape)
  if (sizeOf(inShape) === n) return undefined // same size ⇒ same layout (shapes already validated)
  const st = broadcastStrides(inShape, outShape)
  const idx = new Int32Array(n)
  const rank = outShape.length
  const ctr = new Array<number>(rank).fill(0)
  let off = 0
  for (let i = 0; i < n; i++) {
    idx[i] = off
    for (let d = rank - 1; d >= 0; d--) {
      ctr[d]!++
      off += st[d]!
      if (ctr[d]! < outShape[d]!) break
      off -= st[d]! * outShape[d]!
      ctr[d] = 0
    }
  }
  return idx
}

/**
 * float16 lives in a Float32Array on the host: storing a float64 result there rounds it to f32 first, and the
 * later f16 rounding of that is a double rounding (wrong at near-ties). Rounding to f16 straight from the
 * float64 result avoids it.
 */
const forDType = <F extends (...a: number[]) => number>(outDtype: DType, f: F): F =>
  outDtype === 'float16' ? (((...a: number[]) => f16Round(f(...a))) as F) : f

/** out[i] = f(a[i]) */
export function mapUnary(x: CpuTensor, outDtype: DType, fn: (v: number) => number): CpuTensor {
  const n = x.values.length
  const out = allocArray(outDtype, n)
  const xv = x.values
  const f = forDType(outDtype, fn)
  for (let i = 0; i < n; i++) out[i] = f(xv[i]!)
  return { values: out, shape: x.shape, dtype: outDtype }
}

/** out[i] = f(a[ia(i)], b[ib(i)]) over the broadcast shape. */
export function mapBinary(a: CpuTensor, b: CpuTensor, outShape: Shape, outDtype: DType, fn: (x: number, y: number) => number): CpuTensor {
  const f = forDType(outDtype, fn)
  const n = sizeOf(outShape)
  const out = allocArray(outDtype, n)
  const av = a.values
  const bv = b.values
  const ia = broadcastOffsets(a.shape, outShape)
  const ib = broadcastOffsets(b.shape, outShape)
  if (!ia && !ib) for (let i = 0; i < n; i++) out[i] = f(av[i]!, bv[i]!)
  else if (!ia) for (let i = 0; i < n; i++) out[i] = f(av[i]!, bv[ib![i]!]!)
  else if (!ib) for (let i = 0; i < n; i++) out[i] = f(av[ia[i]!]!, bv[i]!)
  else for (let i = 0; i < n; i++) out[i] = f(av[ia[i]!]!, bv[ib[i]!]!)
  return { values: out, shape: outShape, dtype: outDtype }
}

/** out[i] = f(a, b, c) over the broadcast shape of three inputs (where, clamp). */
export function mapTernary(
  a: CpuTensor,
  b: CpuTensor,
  c: CpuTensor,
  outShape: Shape,
  outDtype: DType,
  fn: (x: number, y: number, z: number) => number,
): CpuTensor {
  const f = forDType(outDtype, fn)
  const n = sizeOf(outShape)
  const out = allocArray(outDtype, n)
  const ia = broadcastOffsets(a.shape, outShape)
  const ib = broadcastOffsets(b.shape, outShape)
  const ic = broadcastOffsets(c.shape, outShape)
  for (let i = 0; i < n; i++)
    out[i] = f(a.values[ia ? ia[i]! : i]!, b.values[ib ? ib[i]! : i]!, c.values[ic ? ic[i]! : i]!)
  return { values: out, shape: outShape, dtype: outDtype }
}

/**
 * Reduce over sorted `axes`: calls `init()` for each output slot, `step(acc, v, k)` for each element in order
 * (k = position along the reduced axes, row-major), `finish(acc, count)` at the end.
 * The input is viewed as [outer..., reduced...] by permuting axes, keeping memory reads simple and exact.
 */
export function reduceAxes<A>(
  x: CpuTensor,
  axes: readonly number[],
  outDtype: DType,
  init: () => A,
  step: (acc: A, v: number, k: number) => A,
  finish: (acc: A, count: number) => number,
): AnyTypedArray {
  const shape = x.shape
  const rank = shape.length
  const keep = Array.from({ length: rank }, (_, i) => i).filter(i => !axes.includes(i))
  const st = stridesOf(shape)
  const outSize = keep.reduce((p, i) => p * shape[i]!, 1)
  const redSize = axes.reduce((p, i) => p * shape[i]!, 1)
  const out = allocArray(outDtype, outSize)
  const redOffsets = new Int32Array(redSize)
  {
    const ctr = new Array<number>(axes.length).fill(0)
    for (let k = 0; k < redSize; k++) {
      let off = 0
      for (let j = 0; j < axes.length; j++) off += ctr[j]! * st[axes[j]!]!
      redOffsets[k] = off
      for (let j = axes.length - 1; j >= 0; j--) {
        if (++ctr[j]! < shape[axes[j]!]!) break
        ctr[j] = 0
      }
    }
  }
  const ctr = new Array<number>(keep.length).fill(0)
  const xv = x.values
  for (let o = 0; o < outSize; o++) {
    let base = 0
    for (let j = 0; j < keep.length; j++) base += ctr[j]! * st[keep[j]!]!
    let acc = init()
    for (let k = 0; k < redSize; k++) acc = step(acc, xv[base + redOffsets[k]!]!, k)
    out[o] = finish(acc, redSize)
    for (let j = keep.length - 1; j >= 0; j--) {
      if (++ctr[j]! < shape[keep[j]!]!) break
      ctr[j] = 0
    }
  }
  return out
}
