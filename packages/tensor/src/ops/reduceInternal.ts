import { isFloat } from '../dtype.js'
import { ArgumentError, AxisError, DTypeError, ValueError } from '../errors.js'
import { normAxes, reducedShape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { knownOptions } from '../validate.js'

/**
 * @internal validation helpers shared by the reduction and softmax ops (and their gradient rules). Kept out of reduce.ts so
 * that `export *` from the ops index does not publish them.
 */

export interface ReduceOptions {
  /** Axis or axes to reduce (negative counts from the end); all axes when omitted. */
  readonly axis?: number | readonly number[]
  /** Keep reduced axes as size-1 dims. */
  readonly keepDims?: boolean
}

// ---- validation shared with softmax.ts ----------------------------------------------------------------------

/** @internal which dtypes an op takes: floats only, any numeric, or bool as well. */
export type Domain = 'float' | 'numeric' | 'any'

/** @internal */
export function checkDType(op: string, x: Tensor, domain: Domain): void {
  if (domain === 'float' && !isFloat(x.dtype)) throw new DTypeError({ op, arg: 'x', expected: 'a float dtype (cast first)', actual: x.dtype })
  if (domain === 'numeric' && x.dtype === 'bool') throw new DTypeError({ op, arg: 'x', expected: 'a numeric dtype (cast bool first)', actual: x.dtype })
}

/** @internal an optional boolean option; anything else is the wrong kind of argument. */
export function boolOption(op: string, name: string, v: unknown): boolean {
  if (v !== undefined && typeof v !== 'boolean') throw new ArgumentError({ op, arg: name, expected: 'a boolean', actual: typeof v })
  return v === true
}

/**
 * @internal normalised, sorted, distinct axes (all when `axis` is undefined). A rank-0 tensor accepts 0 and -1
 * as numpy does, but they name no real dim, so it reduces over nothing.
 */
export function axesOf(op: string, axis: unknown, rank: number, allowList = true): number[] {
  if (axis !== undefined && typeof axis !== 'number' && !(allowList && Array.isArray(axis)))
    throw new ArgumentError({ op, arg: 'axis', expected: allowList ? 'a number or an array of numbers' : 'a number', actual: typeof axis })
  if (rank > 0) return normAxes(op, axis as number | readonly number[] | undefined, rank)
  // shape.ts's normAxis rejects -1 at rank 0, so the numpy rule (0 and -1 only, once) is checked here.
  const list: readonly unknown[] = axis === undefined ? [] : typeof axis === 'number' ? [axis] : (axis as readonly unknown[])
  for (const a of list)
    if (a !== 0 && a !== -1) throw new AxisError({ op, arg: 'axis', expected: Number.isInteger(a) ? 'an axis in [-1, 0] for a rank-0 tensor' : 'an integer', actual: a })
  if (list.length > 1) throw new AxisError({ op, arg: 'axis', expected: 'distinct axes', actual: list })
  return []
}

/** Element count of one reduced slice and number of slices. */
export const counts = (x: Tensor, axes: readonly number[]): { n: number; slices: number } => {
  const n = axes.reduce((p, a) => p * x.shape[a]!, 1)
  return { n, slices: reducedShape(x.shape, axes, false).reduce((p, d) => p * d, 1) }
}

// numpy allows an empty reduction only when no output is asked for: an empty axis with other dims non-empty
// has no identity to return for max/min/argmax/mean.
export function assertNonEmpty(op: string, x: Tensor, axes: readonly number[]): void {
  const { n, slices } = counts(x, axes)
  if (n === 0 && slices > 0)
    throw new ValueError({ op, arg: 'x', expected: 'a non-empty reduction (it has no identity)', actual: `shape [${x.shape.join(',')}] over axes [${axes.join(',')}]` })
}

interface Parsed {
  axes: number[]
  keepDims: boolean
}

const REDUCE_OPTIONS = ['axis', 'keepDims'] as const

/** @internal validate `x` and the common reduce options (`extra`: the op's own option names beyond axis and keepDims). */
export function parseReduce(op: string, x: Tensor, opts: ReduceOptions, domain: Domain, extra: readonly string[] = []): Parsed {
  knownOptions(op, opts, [...REDUCE_OPTIONS, ...extra])
  checkDType(op, x, domain)
  return { axes: axesOf(op, opts.axis, x.rank), keepDims: boolOption(op, 'keepDims', opts.keepDims) }
}

