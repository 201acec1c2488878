/**
 * Shared validation and numerics for the loss functions. Not exported from the package: every public function
 * validates its own arguments through these so that errors read the same everywhere.
 */
import {
  ArgumentError,
  DTypeError,
  ShapeError,
  ValueError,
  cast,
  isFloat,
  isTensor,
  knownOptions,
  logSigmoid,
  mean,
  mul,
  neg,
  greater,
  stopGradient,
  sub,
  add,
  requireTensor as requireLiveTensor,
  type Tensor,
  kindOf,
} from '@heed/tensor'

/** O(1): a disposed tensor is named here, in the public function's name, not by the first op that reads it. */
export function requireTensor(op: string, arg: string, v: unknown): Tensor {
  return requireLiveTensor(op, arg, v as Tensor)
}

export function requireFloat(op: string, arg: string, v: unknown): Tensor {
  const t = requireTensor(op, arg, v)
  if (!isFloat(t.dtype)) throw new DTypeError({ op, arg, expected: 'a float dtype', actual: t.dtype })
  return t
}

export const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i])

/** `t` must have exactly `like`'s shape and dtype: losses pair entries one to one and never broadcast silently. */
export function requireLike(op: string, arg: string, v: unknown, like: Tensor, likeName: string): Tensor {
  const t = requireFloat(op, arg, v)
  if (t.dtype !== like.dtype) throw new DTypeError({ op, arg, expected: `${like.dtype} like ${likeName}`, actual: t.dtype }, 'dtypes differ (cast one explicitly)')
  if (!sameShape(t.shape, like.shape)) throw new ShapeError({ op, arg, expected: like.shape, actual: t.shape }, `shape differs from ${likeName}`)
  return t
}

export function requireRank(op: string, arg: string, t: Tensor, ranks: readonly number[]): void {
  if (!ranks.includes(t.rank))
    throw new ShapeError({ op, arg, expected: ranks.length === 1 ? `rank ${ranks[0]}` : `rank ${ranks.join(' or ')}`, actual: t.shape })
}

export function requireNumber(
  op: string,
  arg: string,
  v: unknown,
  check: (x: number) => boolean = Number.isFinite,
  expected = 'a finite number',
): number {
  if (typeof v !== 'number' || Number.isNaN(v) || !check(v)) throw new ValueError({ op, arg, expected, actual: v === undefined ? 'undefined' : (v as number) })
  return v
}

export { positiveNumber as positive, nonNegativeNumber as nonNegative } from '@heed/tensor'

/** An options object; with `allowed`, also one holding only those keys (a misspelt `beta` is not silently ignored). */
export function requireOptions(op: string, v: unknown, allowed?: readonly string[]): Record<string, unknown> {
  if (v === undefined) return {}
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ArgumentError({ op, arg: 'opts', expected: 'an options object', actual: kindOf(v) })
  if (allowed) knownOptions(op, v, allowed)
  return v as Record<string, unknown>
}

/**
 * The option names of an `…Options` interface, written as an object with every key of `T`: the compiler rejects a
 * key `T` lacks (excess property) and a key of `T` left out (missing property), so the allowed list cannot drift
 * from the documented options.
 */
export const optionKeys = <T>(keys: { readonly [K in keyof Required<T>]: true }): readonly string[] => Object.keys(keys)

/** An optional boolean option: `'yes'` or `1` would otherwise read as truthy and pick a mode silently. */
export function requireFlag(op: string, arg: string, v: unknown): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean') throw new ArgumentError({ op, arg, expected: 'a boolean', actual: kindOf(v) })
  return v
}

/** An optional function option (a callback), checked where it is passed rather than where it is first called. */
export function requireFunction(op: string, arg: string, v: unknown, expected = 'a function'): void {
  if (v !== undefined && typeof v !== 'function') throw new ArgumentError({ op, arg, expected, actual: kindOf(v) })
}

export function requireObject(op: string, arg: string, v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || isTensor(v))
    throw new ArgumentError({ op, arg, expected: 'an object of tensors', actual: v === null ? 'null' : isTensor(v) ? 'a Tensor' : typeof v })
  return v as Record<string, unknown>
}

/** `−(1−ε)·logσ(x) − ε·logσ(−x)`: the label-smoothed logistic loss shared by cDPO, AOT, CPO and SimPO. */
export function smoothedLogistic(x: Tensor, eps: number): Tensor {
  const main = neg(logSigmoid(x))
  if (eps === 0) return main
  return add(mul(main, 1 - eps), mul(neg(logSigmoid(neg(x))), eps))
}

/** Mean of a bool tensor as a fraction, in `like`'s float dtype. */
export const fraction = (b: Tensor, like: Tensor): Tensor => mean(cast(b, like.dtype))

/** Detached mean, for logged metrics that must not reach the gradient. */
export const metricMean = (x: Tensor): Tensor => stopGradient(mean(x))

export const strictlyGreaterFraction = (a: Tensor, b: Tensor): Tensor => stopGradient(fraction(greater(a, b), a))

export const diff = sub
