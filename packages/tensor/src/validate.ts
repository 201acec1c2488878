import { ValueError } from './errors.js'

/**
 * Argument checks shared by every heed package. Each returns its value, typed, or throws a `ValueError` that names
 * the op, the argument, what was expected and what came:
 *
 * ```ts
 * const size = positiveInt('chunkTokens', 'size', opts.size) // chunkTokens: size: expected a positive integer, got 0
 * ```
 */

// A missing option reads "got undefined" rather than leaving the message without what came.
const fail = (op: string, arg: string, expected: string, v: unknown): never => {
  throw new ValueError({ op, arg, expected, actual: v === undefined ? 'undefined' : v })
}

/** An integer ≥ 1. */
export function positiveInt(op: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(op, arg, 'a positive integer', v)
  return v as number
}

/** An integer ≥ 0. */
export function nonNegativeInt(op: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail(op, arg, 'a non-negative integer', v)
  return v as number
}

/** An integer ≥ `min`. */
export function intAtLeast(op: string, arg: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(op, arg, `an integer ≥ ${min}`, v)
  return v as number
}

/** A number other than NaN and ±∞. */
export function finiteNumber(op: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(op, arg, 'a finite number', v)
  return v as number
}

/** A finite number > 0. */
export function positiveNumber(op: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(op, arg, 'a finite number > 0', v)
  return v as number
}

/** A finite number ≥ 0. */
export function nonNegativeNumber(op: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(op, arg, 'a finite number ≥ 0', v)
  return v as number
}

/** A number in `[lo, hi]`, or in `[lo, hi)` with `upper: 'open'`. */
export function inRange(op: string, arg: string, v: unknown, lo: number, hi: number, opts: { readonly upper?: 'closed' | 'open' } = {}): number {
  const open = opts.upper === 'open'
  if (typeof v !== 'number' || !(v >= lo && (open ? v < hi : v <= hi))) fail(op, arg, `a number in [${lo}, ${hi}${open ? ')' : ']'}`, v)
  return v as number
}
