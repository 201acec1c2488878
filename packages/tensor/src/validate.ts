import { ArgumentError, DisposedError, ValueError, kindOf } from './errors.js'
import { isTensor, type Tensor } from './Tensor.js'

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

/** The `op` and `arg` a check reports in: strings, or the check itself would pass a wrong call through. */
function callerName(check: string, op: unknown, arg: unknown): void {
  if (typeof op !== 'string' || typeof arg !== 'string')
    throw new ArgumentError({ op: check, arg: typeof op !== 'string' ? 'op' : 'arg', expected: 'the name of the calling op and of its argument', actual: kindOf(typeof op !== 'string' ? op : arg) })
}

/**
 * A function argument (`grad(f)`, `scope(fn)`): without the check a missing one fails later as "f is not a
 * function", from inside heed and without the op's name.
 */
export function requireFunction<F extends (...args: never[]) => unknown>(op: string, arg: string, v: F): F {
  callerName('requireFunction', op, arg)
  if (typeof v !== 'function') throw new ArgumentError({ op, arg, expected: 'a function', actual: kindOf(v) })
  return v
}

/**
 * A live tensor argument: a plain array, null or a disposed tensor is named here, in `op`'s name, not deep inside
 * a kernel. `expected` words the error (default "a Tensor"). For the argument checks of functions built on heed.
 */
export function requireTensor<T extends Tensor>(op: string, arg: string, v: T, expected = 'a Tensor'): T {
  callerName('requireTensor', op, arg)
  if (!isTensor(v)) throw new ArgumentError({ op, arg, expected, actual: kindOf(v) }, Array.isArray(v) ? 'wrap plain arrays with tensor(...)' : undefined)
  if (v.isDisposed) throw new DisposedError({ op, arg, actual: `tensor #${v.id} [${v.shape.join(',')}]` }, 'tensor was disposed')
  return v
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

/** Edit distance of two short strings (option names), case-insensitive. */
function distance(a: string, b: string): number {
  a = a.toLowerCase()
  b = b.toLowerCase()
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return prev[b.length]!
}

/** The allowed name closest to `key` (a misspelling, another library's spelling), if one is close enough. */
export function closestName(key: string, allowed: readonly string[]): string | undefined {
  if (typeof key !== 'string') throw new ArgumentError({ op: 'closestName', arg: 'key', expected: 'a string', actual: kindOf(key) })
  if (!Array.isArray(allowed)) throw new ArgumentError({ op: 'closestName', arg: 'allowed', expected: 'an array of names', actual: kindOf(allowed) })
  let best: string | undefined
  let bestD = Infinity
  for (const name of allowed) {
    const d = distance(key, name)
    if (d < bestD) [best, bestD] = [name, d]
  }
  // a plural or singular, a case change, a couple of letters: close enough to suggest
  return best !== undefined && (bestD <= Math.max(2, Math.floor(best.length / 3)) || best.toLowerCase().startsWith(key.toLowerCase().slice(0, 4))) ? best : undefined
}

/**
 * Reject option keys an op does not know (a misspelt `keepdim`, `axes` for `axis`, an option of another op): an
 * `ArgumentError` naming the op and the key and suggesting the closest valid name. Keys whose value is `undefined`
 * are ignored (spreading `{ ...opts, x: undefined }` stays legal). Returns `opts`.
 *
 * ```ts
 * knownOptions('sum', { axis: 0, keepdim: true }, ['axis', 'keepDims'])
 * // ArgumentError: sum: keepdim: unknown option (did you mean keepDims?), expected one of axis, keepDims
 * ```
 */
export function knownOptions<T>(op: string, opts: T, allowed: readonly string[]): T {
  // O(1): the checker's own arguments, in its own name (a missing list would otherwise pass every key silently)
  if (typeof op !== 'string') throw new ArgumentError({ op: 'knownOptions', arg: 'op', expected: 'the name of the calling op (a string)', actual: kindOf(op) })
  if (!Array.isArray(allowed)) throw new ArgumentError({ op: 'knownOptions', arg: 'allowed', expected: 'an array of option names', actual: kindOf(allowed) })
  if (opts === null || typeof opts !== 'object') return opts
  for (const key of Object.keys(opts)) {
    if (allowed.includes(key) || (opts as Record<string, unknown>)[key] === undefined) continue
    const near = closestName(key, allowed)
    throw new ArgumentError(
      { op, arg: key, expected: allowed.length ? `one of ${allowed.join(', ')}` : 'no options', actual: key },
      `unknown option${near ? ` (did you mean ${near}?)` : ''}`,
    )
  }
  return opts
}
