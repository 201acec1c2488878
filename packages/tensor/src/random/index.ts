import { allocArray, castValue, type FloatDType } from '../dtype.js'
import { ArgumentError, DTypeError, ValueError } from '../errors.js'
import { finiteNumber } from '../validate.js'
import { fromValues } from '../engine.js'
import { assertShape, sizeOf, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import { rng, type Rng } from './rng.js'

export { rng, type Rng } from './rng.js'

/**
 * Where samples come from: `seed` (a fresh generator for this call), `rng` (advance a generator you hold), or
 * neither (the module's default generator). Values are drawn on the host in float64 and then rounded to the
 * dtype, so the same seed gives the same tensor on every backend.
 */
export interface RandomSource {
  readonly seed?: number
  readonly rng?: Rng
  /** Backend to allocate on (default: the current backend). */
  readonly backend?: string
}

export interface UniformOptions<D extends FloatDType> extends RandomSource {
  /** Inclusive lower bound (default 0). */
  readonly low?: number
  /** Exclusive upper bound (default 1). */
  readonly high?: number
  /** float32 (default), float16 or float64. */
  readonly dtype?: D
}
export interface NormalOptions<D extends FloatDType> extends RandomSource {
  /** Mean (default 0). */
  readonly mean?: number
  /** Standard deviation (default 1). */
  readonly std?: number
  /** float32 (default), float16 or float64. */
  readonly dtype?: D
}
export interface BernoulliOptions extends RandomSource {
  /** Probability of a 1 (default 0.5). */
  readonly p?: number
}
export interface RandintOptions<D extends 'int32' | 'uint32'> extends RandomSource {
  /** Inclusive lower bound (default 0). */
  readonly low?: number
  /** Exclusive upper bound (required). */
  readonly high: number
  /** int32 (default) or uint32; both bounds must fit it. */
  readonly dtype?: D
}

// The default generator is created on first use (nothing runs at import) from a fixed seed, so a program that
// never seeds is still reproducible run to run, as in PyTorch. `random.seed(n)` replaces it.
const DEFAULT_SEED = 0
let defaultRng: Rng | undefined

function source(op: string, opts: RandomSource): Rng {
  if (opts.seed !== undefined && opts.rng !== undefined)
    throw new ArgumentError({ op, arg: 'seed', expected: 'either seed or rng', actual: 'both' })
  if (opts.rng !== undefined) {
    const g = opts.rng as Partial<Rng>
    if (typeof g !== 'object' || typeof g.nextUint32 !== 'function')
      throw new ArgumentError({ op, arg: 'rng', expected: 'a generator from rng(seed)', actual: typeof g })
    return opts.rng
  }
  if (opts.seed !== undefined) {
    if (!Number.isSafeInteger(opts.seed)) throw new ValueError({ op, arg: 'seed', expected: 'a safe integer', actual: opts.seed })
    return rng(opts.seed)
  }
  return (defaultRng ??= rng(DEFAULT_SEED))
}

const FLOATS: readonly FloatDType[] = ['float32', 'float16', 'float64']

function floatDType(op: string, d: unknown): FloatDType {
  const dt = d ?? 'float32'
  if (!(FLOATS as readonly unknown[]).includes(dt))
    throw new DTypeError({ op, arg: 'dtype', expected: 'float32, float16 or float64', actual: String(dt) })
  return dt as FloatDType
}

function checkShape(op: string, shape: unknown): Shape {
  assertShape(op, 'shape', shape)
  return shape
}

/** Uniform samples in [low, high) (default [0, 1)), float32 unless `dtype` says otherwise. */
export function uniform<const S extends Shape, D extends FloatDType = 'float32'>(shape: S, opts: UniformOptions<D> = {}): Tensor<D, S> {
  const op = 'random.uniform'
  checkShape(op, shape)
  const low = finiteNumber(op, 'low', opts.low ?? 0)
  const high = finiteNumber(op, 'high', opts.high ?? 1)
  if (!(low < high)) throw new ValueError({ op, arg: 'high', expected: `a number greater than low (${low})`, actual: high })
  const dt = floatDType(op, opts.dtype)
  const g = source(op, opts)
  const n = sizeOf(shape)
  const v = allocArray(dt, n)
  for (let i = 0; i < n; i++) {
    // Rounding to float32/float16 can land exactly on `high`; redraw so the interval stays half-open.
    let x: number
    do x = castValue(dt, low + (high - low) * g.next())
    while (x >= high)
    v[i] = x
  }
  return fromValues(v, shape, dt, opts.backend) as Tensor<D, S>
}

/** Normal samples with `mean` (default 0) and standard deviation `std` (default 1, must be ≥ 0). */
export function normal<const S extends Shape, D extends FloatDType = 'float32'>(shape: S, opts: NormalOptions<D> = {}): Tensor<D, S> {
  const op = 'random.normal'
  checkShape(op, shape)
  const mean = finiteNumber(op, 'mean', opts.mean ?? 0)
  const std = finiteNumber(op, 'std', opts.std ?? 1)
  if (std < 0) throw new ValueError({ op, arg: 'std', expected: 'a non-negative number', actual: std })
  const dt = floatDType(op, opts.dtype)
  const g = source(op, opts)
  const n = sizeOf(shape)
  const v = allocArray(dt, n)
  for (let i = 0; i < n; i++) v[i] = mean + std * g.normal()
  return fromValues(v, shape, dt, opts.backend) as Tensor<D, S>
}

/** A bool tensor whose entries are true with probability `p` (default 0.5). */
export function bernoulli<const S extends Shape>(shape: S, opts: BernoulliOptions = {}): Tensor<'bool', S> {
  const op = 'random.bernoulli'
  checkShape(op, shape)
  const p = finiteNumber(op, 'p', opts.p ?? 0.5)
  if (p < 0 || p > 1) throw new ValueError({ op, arg: 'p', expected: 'a probability in [0, 1]', actual: p })
  const g = source(op, opts)
  const n = sizeOf(shape)
  const v = allocArray('bool', n)
  for (let i = 0; i < n; i++) v[i] = g.next() < p ? 1 : 0
  return fromValues(v, shape, 'bool', opts.backend) as Tensor<'bool', S>
}

/** Uniform integers in [low, high) (low defaults to 0), int32 by default; both bounds must fit the dtype. */
export function randint<const S extends Shape, D extends 'int32' | 'uint32' = 'int32'>(shape: S, opts: RandintOptions<D>): Tensor<D, S> {
  const op = 'random.randint'
  checkShape(op, shape)
  if (typeof opts !== 'object' || opts === null) throw new ArgumentError({ op, arg: 'opts', expected: 'an options object with high', actual: String(opts) })
  const dt = opts.dtype ?? 'int32'
  if (dt !== 'int32' && dt !== 'uint32') throw new DTypeError({ op, arg: 'dtype', expected: 'int32 or uint32', actual: String(dt) })
  const [min, max] = dt === 'int32' ? [-2147483648, 2147483648] : [0, 4294967296]
  const low = opts.low ?? 0
  const high = opts.high
  for (const [name, x] of [['low', low], ['high', high]] as const)
    if (!Number.isInteger(x) || x < min || x > max)
      throw new ValueError({ op, arg: name, expected: `an integer in [${min}, ${max}] (${dt} bounds)`, actual: x })
  if (!(low < high)) throw new ValueError({ op, arg: 'high', expected: `an integer greater than low (${low})`, actual: high })
  const g = source(op, opts)
  const n = sizeOf(shape)
  const v = allocArray(dt, n)
  for (let i = 0; i < n; i++) v[i] = g.int(low, high)
  return fromValues(v, shape, dt, opts.backend) as Tensor<D, S>
}

/** Reset the default generator (used when neither `seed` nor `rng` is given). */
export function seed(n: number): void {
  if (!Number.isSafeInteger(n)) throw new ValueError({ op: 'random.seed', arg: 'n', expected: 'a safe integer', actual: n })
  defaultRng = rng(n)
}

/** Seeded sampling: `random.normal([2, 3], { seed: 1 })`, `random.seed(7)`, `random.rng(7).split()`. */
export const random = { uniform, normal, bernoulli, randint, seed, rng } as const
