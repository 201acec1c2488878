import type { DType } from '../dtype.js'
import { ShapeError, ValueError } from '../errors.js'
import { runOp1 } from '../op.js'
import { Kernel } from '../kernelContract.js'
import type { Tensor } from '../Tensor.js'
import { guard } from '../typed.js'

/**
 * One entry of a slice spec, per axis from the first:
 * - `number`: a single index (negative counts from the end); the axis is dropped, as `x[i]` in numpy;
 * - `null` (or a missing trailing entry): the whole axis;
 * - `[start, stop, step]`: numpy's `start:stop:step`; any part may be omitted or `null`, bounds are clamped,
 *   negative bounds count from the end, `step` is a non-zero integer and may be negative.
 */
export type SliceEntry = number | null | readonly [start?: number | null, stop?: number | null, step?: number | null]

interface Plan {
  begin: number[]
  step: number[]
  size: number[]
  shape: number[]
}

const isInt = (u: unknown): u is number => Number.isInteger(u)

function planSpec(x: Tensor, spec: readonly SliceEntry[]): Plan {
  if (spec.length > x.rank)
    throw new ShapeError({ op: 'slice', arg: 'spec', expected: `at most ${x.rank} entries for shape [${x.shape.join(',')}]`, actual: spec.length })
  const p: Plan = { begin: [], step: [], size: [], shape: [] }
  x.shape.forEach((n, d) => {
    const e = spec[d] ?? null
    if (typeof e === 'number') {
      if (!isInt(e) || e < -n || e >= n) throw new ValueError({ op: 'slice', arg: `spec[${d}]`, expected: `an integer index in [${-n}, ${n})`, actual: e })
      p.begin.push(e < 0 ? e + n : e)
      p.step.push(1)
      p.size.push(1)
      return
    }
    if (e !== null && !Array.isArray(e))
      throw new ValueError({ op: 'slice', arg: `spec[${d}]`, expected: 'a number, null or [start, stop, step]', actual: JSON.stringify(e) })
    const [start, stop, step] = (e ?? []) as readonly (number | null | undefined)[]
    const s = step ?? 1
    if (!isInt(s) || s === 0) throw new ValueError({ op: 'slice', arg: `spec[${d}] step`, expected: 'a non-zero integer', actual: s })
    for (const [name, v] of [['start', start], ['stop', stop]] as const)
      if (v !== null && v !== undefined && !isInt(v)) throw new ValueError({ op: 'slice', arg: `spec[${d}] ${name}`, expected: 'an integer or null', actual: v })
    // Python's slice.indices: clamp into [lo, hi] so any bounds are legal; the count may come out 0.
    const [lo, hi] = s > 0 ? [0, n] : [-1, n - 1]
    const clamp = (v: number | null | undefined, dflt: number): number =>
      v === null || v === undefined ? dflt : v < 0 ? Math.max(v + n, lo) : Math.min(v, hi)
    const b = clamp(start, s > 0 ? lo : hi)
    const e2 = clamp(stop, s > 0 ? hi : lo)
    const count = Math.max(0, Math.ceil((e2 - b) / s))
    p.begin.push(b)
    p.step.push(s)
    p.size.push(count)
    p.shape.push(count)
  })
  return p
}

function planBeginSize(x: Tensor, begin: readonly number[], size: readonly number[]): Plan {
  for (const [name, a] of [['begin', begin], ['size', size]] as const)
    if (a.length !== x.rank)
      throw new ShapeError({ op: 'slice', arg: name, expected: `${x.rank} entries for shape [${x.shape.join(',')}]`, actual: a })
  const p: Plan = { begin: [], step: [], size: [], shape: [] }
  x.shape.forEach((n, d) => {
    const b0 = begin[d]!
    if (!isInt(b0) || b0 < -n || b0 > n) throw new ValueError({ op: 'slice', arg: `begin[${d}]`, expected: `an integer in [${-n}, ${n}]`, actual: b0 })
    const b = b0 < 0 ? b0 + n : b0
    const s0 = size[d]!
    if (!isInt(s0) || s0 < -1 || b + s0 > n)
      throw new ValueError({ op: 'slice', arg: `size[${d}]`, expected: `-1 or an integer in [0, ${n - b}]`, actual: s0 })
    const s = s0 === -1 ? n - b : s0
    p.begin.push(b)
    p.step.push(1)
    p.size.push(s)
    p.shape.push(s)
  })
  return p
}

function sliceWith(x: Tensor, p: Plan): Tensor {
  return runOp1('slice', Kernel.Slice, [x], { ...p }, true)
}

/**
 * Slice `x`, in one of two forms:
 * - `slice(x, spec)`: numpy-like, one {@link SliceEntry} per leading axis, e.g. `slice(x, [null, [1, -1], 0])`
 *   is `x[:, 1:-1, 0]`; bounds clamp, integer entries must be in range and drop their axis;
 * - `slice(x, begin, size)`: a contiguous block, `begin[d]` in [-n, n] (negative from the end), `size[d]` the
 *   count or -1 for "to the end"; both list every axis and must fit.
 * Always a copy; the gradient scatters back into zeros.
 */
export const slice: {
  <D extends DType>(x: Tensor<D>, spec: readonly SliceEntry[]): Tensor<D>
  <D extends DType>(x: Tensor<D>, begin: readonly number[], size: readonly number[]): Tensor<D>
} = guard('slice', {
  'Tensor, Array': (x: Tensor, spec: SliceEntry[]) => sliceWith(x, planSpec(x, spec)),
  'Tensor, Array, Array': (x: Tensor, begin: number[], size: number[]) => sliceWith(x, planBeginSize(x, begin, size)),
})
