import { allocArray, castValue, checkAllocation, isDType, type DType } from '../dtype.js'
import { DTypeError, ValueError } from '../errors.js'
import { fromValues } from '../engine.js'
import { assertShape, sizeOf, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import type { CreationOptions } from './tensor.js'
import { knownOptions, requireTensor } from '../validate.js'

export interface FillOptions<D extends DType> extends CreationOptions {
  /** Element type (default float32). */
  readonly dtype?: D
}

/** Longest typed array V8 allocates; beyond it a creation call would die with a RangeError. */
const MAX_ELEMENTS = 2 ** 32 - 1

function checkDType(op: string, d: unknown): DType {
  const dt = d ?? 'float32'
  if (!isDType(dt)) throw new DTypeError({ op, arg: 'dtype', expected: 'float32, float16, float64, int32, uint32 or bool', actual: String(dt) })
  return dt
}

/** A tensor of `shape` filled with `value`. */
export function full<const S extends Shape, D extends DType = 'float32'>(shape: S, value: number, opts: FillOptions<D> = {}): Tensor<D, S> {
  return fill('full', shape, value, opts)
}

/** `full` under the name of the public function called (`zeros`, `ones`, the `…Like` creators). */
function fill<const S extends Shape, D extends DType>(op: string, shape: S, value: number, opts: FillOptions<D>): Tensor<D, S> {
  assertShape(op, 'shape', shape)
  if (opts === null || typeof opts !== 'object') throw new ValueError({ op, arg: 'opts', expected: '{ dtype, backend }', actual: String(opts) })
  knownOptions(op, opts, FILL_OPTIONS)
  if (typeof value !== 'number') throw new ValueError({ op, arg: 'value', expected: 'a number', actual: typeof value })
  const dt = checkDType(op, opts.dtype)
  checkAllocation(op, 'shape', sizeOf(shape), dt)
  const v = allocArray(dt, sizeOf(shape), op)
  v.fill(castValue(dt, value))
  return fromValues(v, shape, dt, opts.backend) as Tensor<D, S>
}
const FILL_KEYS: Record<keyof FillOptions<DType>, true> = { dtype: true, backend: true }
const FILL_OPTIONS = Object.keys(FILL_KEYS)

export const zeros = <const S extends Shape, D extends DType = 'float32'>(shape: S, opts: FillOptions<D> = {}): Tensor<D, S> => fill('zeros', shape, 0, opts)
export const ones = <const S extends Shape, D extends DType = 'float32'>(shape: S, opts: FillOptions<D> = {}): Tensor<D, S> => fill('ones', shape, 1, opts)

/** Same shape, dtype and backend as `t`, filled with `value`; `t` must be live (it is the caller's argument). */
const like = <D extends DType, S extends Shape>(op: string, t: Tensor<D, S>, value: number): Tensor<D, S> => {
  requireTensor(op, 't', t)
  return fill(op, t.shape, value, { dtype: t.dtype, backend: t.backend })
}
export const fullLike = <D extends DType, S extends Shape>(t: Tensor<D, S>, value: number): Tensor<D, S> => like('fullLike', t, value)
export const zerosLike = <D extends DType, S extends Shape>(t: Tensor<D, S>): Tensor<D, S> => like('zerosLike', t, 0)
export const onesLike = <D extends DType, S extends Shape>(t: Tensor<D, S>): Tensor<D, S> => like('onesLike', t, 1)

/**
 * @internal zeros or ones shaped like `t`, which may be disposed: only its shape, dtype and backend are read. The
 * gradient code asks for zeros shaped like outputs that have already been released.
 */
export const zerosShapedLike = <D extends DType, S extends Shape>(op: string, t: Tensor<D, S>): Tensor<D, S> => fill(op, t.shape, 0, { dtype: t.dtype, backend: t.backend })
export const onesShapedLike = <D extends DType, S extends Shape>(op: string, t: Tensor<D, S>): Tensor<D, S> => fill(op, t.shape, 1, { dtype: t.dtype, backend: t.backend })

/** `[start, stop)` in steps of `step` (numpy semantics); `arange(n)` is `0..n-1`. */
export function arange<D extends DType = 'float32'>(start: number, stop?: number, step = 1, opts: FillOptions<D> = {}): Tensor<D, readonly [number]> {
  const [a, b] = stop === undefined ? [0, start] : [start, stop]
  for (const [name, v] of [['start', a], ['stop', b], ['step', step]] as const)
    if (!Number.isFinite(v)) throw new ValueError({ op: 'arange', arg: name, expected: 'a finite number', actual: v })
  if (step === 0) throw new ValueError({ op: 'arange', arg: 'step', expected: 'a non-zero number', actual: step })
  const n = Math.max(0, Math.ceil((b - a) / step))
  if (n > MAX_ELEMENTS) throw new ValueError({ op: 'arange', arg: 'stop', expected: `at most ${MAX_ELEMENTS} elements`, actual: n })
  const dt = checkDType('arange', opts.dtype)
  const v = allocArray(dt, n)
  for (let i = 0; i < n; i++) v[i] = castValue(dt, a + i * step)
  return fromValues(v, [n], dt, opts.backend) as Tensor<D, readonly [number]>
}

/** `num` evenly spaced values from `start` to `stop` inclusive. */
export function linspace<const N extends number, D extends DType = 'float32'>(start: number, stop: number, num: N, opts: FillOptions<D> = {}): Tensor<D, readonly [N]> {
  for (const [name, v] of [['start', start], ['stop', stop]] as const)
    if (!Number.isFinite(v)) throw new ValueError({ op: 'linspace', arg: name, expected: 'a finite number', actual: v })
  if (!Number.isInteger(num) || num < 0) throw new ValueError({ op: 'linspace', arg: 'num', expected: 'a non-negative integer', actual: num })
  const dt = checkDType('linspace', opts.dtype)
  const v = allocArray(dt, num)
  for (let i = 0; i < num; i++) v[i] = castValue(dt, num === 1 ? start : start + ((stop - start) * i) / (num - 1))
  // start + (stop - start) can miss stop by an ulp (0.1 + (0.3 - 0.1) = 0.30000000000000004); numpy pins it.
  if (num > 1) v[num - 1] = castValue(dt, stop)
  return fromValues(v, [num], dt, opts.backend) as Tensor<D, readonly [N]>
}

/** Identity matrix `[n, m]` (m defaults to n), with ones on the `k`-th diagonal. */
export function eye<const N extends number, const M extends number = N, D extends DType = 'float32'>(
  n: N,
  m?: M,
  opts: FillOptions<D> & { readonly k?: number } = {},
): Tensor<D, readonly [N, M]> {
  const cols = m ?? n
  for (const [name, v] of [['n', n], ['m', cols]] as const)
    if (!Number.isInteger(v) || v < 0) throw new ValueError({ op: 'eye', arg: name, expected: 'a non-negative integer', actual: v })
  const k = opts.k ?? 0
  if (!Number.isInteger(k)) throw new ValueError({ op: 'eye', arg: 'k', expected: 'an integer diagonal offset', actual: k })
  const dt = checkDType('eye', opts.dtype)
  const v = allocArray(dt, n * cols)
  for (let i = 0; i < n; i++) {
    const j = i + k
    if (j >= 0 && j < cols) v[i * cols + j] = 1
  }
  return fromValues(v, [n, cols], dt, opts.backend) as Tensor<D, readonly [N, M]>
}
