import { either as E } from 'fp-ts'
import { allocArray, castValue, isDType, type AnyTypedArray, type DType } from '../dtype.js'
import { ArgumentError, DTypeError, HeedError, ParseError, ShapeError, ValueError } from '../errors.js'
import { fromValues } from '../engine.js'
import { sizeOf, type Shape } from '../shape.js'
import type { Tensor } from '../Tensor.js'
import type { DTypeOf, ShapeOf } from '../types/shapeTypes.js'
import { knownOptions } from '../validate.js'

/** Host data a tensor can be made from: a number, nested arrays of numbers/booleans, or a typed array. */
export type TensorData = number | boolean | AnyTypedArray | readonly NestedData[]
type NestedData = number | boolean | readonly NestedData[]

export interface CreationOptions {
  /** Backend to allocate on (default: the current backend). */
  readonly backend?: string
}

const dtypeOfData = (data: TensorData): DType =>
  data instanceof Float64Array
    ? 'float64'
    : data instanceof Int32Array
      ? 'int32'
      : data instanceof Uint32Array
        ? 'uint32'
        : data instanceof Uint8Array
          ? 'bool'
          : firstLeaf(data) === 'boolean'
            ? 'bool'
            : 'float32'

function firstLeaf(d: unknown): string {
  while (Array.isArray(d)) {
    if (d.length === 0) return 'number'
    d = d[0]
  }
  return typeof d
}

/** Infer the shape of nested arrays, rejecting ragged nesting and non-numeric leaves. */
function inferShape(op: string, data: unknown, path = 'data'): number[] {
  if (typeof data === 'number' || typeof data === 'boolean') return []
  if (ArrayBuffer.isView(data)) return [(data as AnyTypedArray).length]
  if (!Array.isArray(data)) throw new ArgumentError({ op, arg: path, expected: 'a number, boolean, array or typed array', actual: typeof data })
  if (data.length === 0) return [0]
  const inner = inferShape(op, data[0], `${path}[0]`)
  for (let i = 1; i < data.length; i++) {
    const s = inferShape(op, data[i], `${path}[${i}]`)
    if (s.length !== inner.length || s.some((d, j) => d !== inner[j]))
      throw new ShapeError({ op, arg: `${path}[${i}]`, expected: inner, actual: s }, 'ragged nested array')
  }
  return [data.length, ...inner]
}

function flatten(data: TensorData, out: number[]): void {
  if (typeof data === 'number') out.push(data)
  else if (typeof data === 'boolean') out.push(data ? 1 : 0)
  else if (ArrayBuffer.isView(data)) for (const v of data as AnyTypedArray) out.push(v)
  else for (const d of data) flatten(d as TensorData, out)
}

/** Build host values of `dtype`; used by every creation function. */
export function toHost(op: string, data: TensorData, shape: Shape | undefined, dtype: DType | undefined): { values: AnyTypedArray; shape: number[]; dtype: DType } {
  const dt = dtype ?? dtypeOfData(data)
  if (!isDType(dt)) throw new DTypeError({ op, arg: 'dtype', expected: 'float32, float16, float64, int32, uint32 or bool', actual: String(dt) })
  const inferred = inferShape(op, data)
  const flat: number[] = []
  flatten(data, flat)
  for (let i = 0; i < flat.length; i++)
    if (typeof flat[i] !== 'number') throw new ArgumentError({ op, arg: 'data', expected: 'numbers', actual: typeof flat[i] })
  let sh: number[]
  if (shape === undefined) sh = inferred
  else {
    if (!Array.isArray(shape) || !shape.every(d => Number.isInteger(d) && d >= 0))
      throw new ShapeError({ op, arg: 'shape', expected: 'an array of non-negative integers', actual: JSON.stringify(shape) })
    sh = [...shape]
    if (sizeOf(sh) !== flat.length && !(flat.length === 1 && inferred.length === 0))
      throw new ShapeError({ op, arg: 'shape', expected: `a shape with ${flat.length} elements`, actual: sh })
  }
  const n = sizeOf(sh)
  const values = allocArray(dt, n, op)
  if (dt === 'int32' || dt === 'uint32') for (let i = 0; i < flat.length; i++) intInRange(op, dt, flat[i]!, i)
  if (flat.length === 1 && n !== 1) values.fill(castScalar(dt, flat[0]!))
  else for (let i = 0; i < n; i++) values[i] = castScalar(dt, flat[i]!)
  return { values, shape: sh, dtype: dt }
}

/**
 * An integer dtype holds the value's integer part when it fits: out of range (3e9 as int32, −1 as uint32), NaN or
 * ±∞ is a ValueError rather than a silent wrap (PyTorch: "value cannot be converted to type int32 without overflow").
 */
function intInRange(op: string, dt: 'int32' | 'uint32', x: number, i: number): void {
  const v = Math.trunc(x)
  const [lo, hi] = dt === 'int32' ? [-(2 ** 31), 2 ** 31 - 1] : [0, 2 ** 32 - 1]
  if (!(v >= lo && v <= hi)) throw new ValueError({ op, arg: `data[${i}]`, expected: `a value in [${lo}, ${hi}] for ${dt}`, actual: x }, `value does not fit ${dt} without overflow`)
}

// castValue rounds float16 once from float64; storing into its Float32Array host buffer would round twice.
const castScalar = castValue

/**
 * Make a tensor from host data. The shape is inferred from nesting (and is a literal type for literal arrays);
 * pass `shape` to reshape flat data or to broadcast one scalar. dtype defaults from the data (typed arrays keep
 * theirs, booleans are `bool`, otherwise `float32`).
 *
 * @example tensor([[1, 2], [3, 4]])              // Tensor<'float32', readonly [2, 2]>
 * @example tensor(new Float64Array(6), [2, 3])   // Tensor<'float64', readonly [2, 3]>
 */
export function tensor<const T extends TensorData>(data: T): Tensor<DTypeOf<T>, ShapeOf<T>>
export function tensor<const T extends TensorData, const S extends Shape>(data: T, shape: S): Tensor<DTypeOf<T>, S>
export function tensor<const T extends TensorData, const S extends Shape, D extends DType>(data: T, shape: S | undefined, dtype: D, opts?: CreationOptions): Tensor<D, S>
export function tensor(data: TensorData, shape?: Shape, dtype?: DType, opts: CreationOptions = {}): Tensor {
  return make('tensor', data, shape, dtype, opts)
}

/** `tensor` in the name of the public function called (`tensor`, `tensor.parse`); its options are checked first. */
function make(op: string, data: TensorData, shape: Shape | undefined, dtype: DType | undefined, opts: CreationOptions): Tensor {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new ArgumentError({ op, arg: 'opts', expected: '{ backend }', actual: opts === null ? 'null' : Array.isArray(opts) ? 'an array' : typeof opts })
  knownOptions(op, opts, CREATION_OPTIONS)
  if (opts.backend !== undefined && typeof opts.backend !== 'string')
    throw new ArgumentError({ op, arg: 'backend', expected: 'a backend name', actual: opts.backend === null ? 'null' : typeof opts.backend })
  const h = toHost(op, data, shape, dtype)
  return fromValues(h.values, h.shape, h.dtype, opts.backend)
}

/** A rank-0 tensor. */
export function scalar<D extends DType = 'float32'>(value: number | boolean, dtype?: D, opts: CreationOptions = {}): Tensor<D, readonly []> {
  const op = 'scalar'
  if (typeof value !== 'number' && typeof value !== 'boolean')
    throw new ArgumentError({ op, arg: 'value', expected: 'a number or boolean', actual: value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value }, Array.isArray(value) ? 'use tensor(...) for arrays' : undefined)
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: '{ backend }', actual: String(opts) })
  knownOptions(op, opts, CREATION_OPTIONS)
  const h = toHost(op, value, [], dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32'))
  return fromValues(h.values, h.shape, h.dtype, opts.backend) as Tensor<D, readonly []>
}
const CREATION_KEYS: Record<keyof CreationOptions, true> = { backend: true }
const CREATION_OPTIONS = Object.keys(CREATION_KEYS)

/**
 * Parse untrusted data into a tensor without throwing: `Left(ParseError)` for ragged arrays, non-numeric
 * leaves, unknown dtypes or a shape that does not fit the data.
 */
export function parse(data: unknown, shape?: unknown, dtype?: unknown, opts: CreationOptions = {}): E.Either<ParseError, Tensor> {
  try {
    return E.right(make('tensor.parse', data as TensorData, shape as Shape | undefined, dtype as DType, opts))
  } catch (err) {
    if (err instanceof HeedError) {
      // the check that failed has named tensor.parse, the argument, what it expected and what came: keep its
      // message as it is (wrapping it again repeated the op, the argument and the expected/actual pair)
      const left = new ParseError({ op: 'tensor.parse', arg: err.arg ?? 'data', expected: err.expected, actual: err.actual })
      left.message = err.message
      return E.left(left)
    }
    // Untrusted data can also be cyclic or absurdly deep (stack overflow) or too large to allocate: still a Left.
    if (err instanceof RangeError)
      return E.left(new ParseError({ op: 'tensor.parse', arg: 'data', expected: 'finitely nested data of allocatable size' }, err.message))
    throw err
  }
}
tensor.parse = parse
