import { DTypeError, ValueError } from './errors.js'
/**
 * Element types. `float64` is the CPU's reference precision; `float16` is stored as f16-rounded values and
 * computed in f32 on the CPU (Node 20 has no Float16Array), and as real f16 storage on WebGPU where the adapter
 * has `shader-f16`.
 */
export type DType = 'float32' | 'float16' | 'float64' | 'int32' | 'uint32' | 'bool'

export type FloatDType = 'float32' | 'float16' | 'float64'
export type IntDType = 'int32' | 'uint32'

/** The typed array `data()` resolves to for each dtype. float16 widens to Float32Array holding f16 values. */
export interface TypedArrayMap {
  float32: Float32Array
  float16: Float32Array
  float64: Float64Array
  int32: Int32Array
  uint32: Uint32Array
  bool: Uint8Array
}
export type TypedArrayFor<D extends DType> = TypedArrayMap[D]
export type AnyTypedArray = TypedArrayMap[DType]

export const DTYPES: readonly DType[] = ['float32', 'float16', 'float64', 'int32', 'uint32', 'bool']

export const isDType = (u: unknown): u is DType => typeof u === 'string' && (DTYPES as readonly string[]).includes(u)
export const isFloat = (d: DType): d is FloatDType => d === 'float32' || d === 'float16' || d === 'float64'
export const isInt = (d: DType): d is IntDType => d === 'int32' || d === 'uint32'

/** Bytes per element as stored by a backend (f16 is 2 bytes on the wire and on WebGPU). */
export const bytesPerElement = (d: DType): number =>
  d === 'float64' ? 8 : d === 'float16' ? 2 : d === 'bool' ? 1 : d === 'float32' || d === 'int32' || d === 'uint32' ? 4 : notADType(d)

function notADType(d: unknown): never {
  throw new DTypeError({ op: 'bytesPerElement', arg: 'dtype', expected: DTYPES.join(', '), actual: typeof d === 'string' ? d : d === null ? 'null' : typeof d })
}

/**
 * Most bytes one host tensor may hold: the largest ArrayBuffer Node's JavaScript engine makes (4 GiB). A larger
 * request is a `ValueError` naming the op, never the engine's "Invalid typed array length" or a crash.
 */
export const MAX_TENSOR_BYTES = 2 ** 32

/** Host bytes per element (float16 lives in a Float32Array on the host). */
const hostBytes = (d: DType): number => (d === 'float64' ? 8 : d === 'bool' ? 1 : 4)

/**
 * Throw a `ValueError` naming `op` and `arg` when `size` elements of `dtype` cannot be allocated (beyond
 * MAX_TENSOR_BYTES, or not a size at all). Sizes that come from the user go through it before anything is allocated.
 */
export function checkAllocation(op: string, arg: string, size: number, dtype: DType): void {
  if (!Number.isSafeInteger(size) || size < 0)
    throw new ValueError({ op, arg, expected: 'a size that is a non-negative safe integer', actual: size }, 'cannot allocate')
  if (size * hostBytes(dtype) > MAX_TENSOR_BYTES)
    throw new ValueError(
      { op, arg, expected: `at most ${Math.floor(MAX_TENSOR_BYTES / hostBytes(dtype))} ${dtype} elements (4 GiB per tensor)`, actual: `${size} elements (${fmtBytes(size * hostBytes(dtype))})` },
      'tensor too large to allocate',
    )
}

const fmtBytes = (b: number): string => (b >= 2 ** 40 ? `${(b / 2 ** 40).toPrecision(3)} TiB` : b >= 2 ** 30 ? `${(b / 2 ** 30).toPrecision(3)} GiB` : `${b} bytes`)

/** Allocate a host array for `dtype` (float16 lives in a Float32Array on the host); `op` names the caller in the size error. */
export function allocArray<D extends DType>(dtype: D, size: number, op = 'allocate'): TypedArrayFor<D> {
  checkAllocation(op, 'size', size, dtype)
  switch (dtype) {
    case 'float32':
    case 'float16':
      return new Float32Array(size) as TypedArrayFor<D>
    case 'float64':
      return new Float64Array(size) as TypedArrayFor<D>
    case 'int32':
      return new Int32Array(size) as TypedArrayFor<D>
    case 'uint32':
      return new Uint32Array(size) as TypedArrayFor<D>
    default:
      return new Uint8Array(size) as TypedArrayFor<D>
  }
}

/**
 * Type promotion for binary ops between two tensors: jax-like lattice without implicit int→float for ints
 * of the same kind. bool < uint32/int32 < float16 < float32 < float64.
 */
export function promoteTypes(a: DType, b: DType): DType {
  if (a === b) return a
  const rank: Record<DType, number> = { bool: 0, uint32: 1, int32: 2, float16: 3, float32: 4, float64: 5 }
  return rank[a] >= rank[b] ? a : b
}

/** Round a number to what `dtype` can hold (used by host-side writes and the CPU backend). */
export function castValue(dtype: DType, x: number): number {
  switch (dtype) {
    case 'float32':
      return Math.fround(x)
    case 'float16':
      return f16Round(x)
    case 'int32':
      return x | 0
    case 'uint32':
      return x >>> 0
    case 'bool':
      return x !== 0 && !Number.isNaN(x) ? 1 : 0
    default:
      return x
  }
}

// f16 <-> f32 bit conversion (round to nearest even), used for f16 storage and safetensors. Rounding is done
// once, from the float64 value: going through a float32 first double-rounds (1 + 2^-11 + 2^-40 would become the
// tie 1 + 2^-11 and then round down to 1 instead of up).
const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** 2^floor(log2(a)) for finite a > 0, exact (Math.log2 can be off by one ulp at powers of two). */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a))
  if (2 ** e > a) e--
  else if (2 ** (e + 1) <= a) e++
  return e
}

/** Round to the nearest float16 value, ties to even; overflow gives ±Infinity, NaN stays NaN, -0 stays -0. */
export function f16Round(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x
  const a = Math.abs(x)
  // 65520 is the midpoint between 65504 (odd mantissa) and 2^16: ties to even carry it to Infinity.
  if (a >= 65520) return x > 0 ? Infinity : -Infinity
  // Below 2^-14 the spacing stays 2^-24 (subnormals).
  const quantum = 2 ** (Math.max(exponentOf(a), -14) - 10)
  const v = a / quantum // exact: dividing by a power of two, v < 2^11
  const f = Math.floor(v)
  const d = v - f
  const n = d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f
  const r = n * quantum
  return x < 0 ? -r : r
}

export function f32ToF16Bits(x: number): number {
  f32[0] = x
  const sign = (u32[0]! >>> 16) & 0x8000
  if (Number.isNaN(x)) return sign | 0x7e00
  const r = Math.abs(f16Round(x))
  if (r === Infinity) return sign | 0x7c00
  if (r === 0) return sign
  if (r < 2 ** -14) return sign | (r / 2 ** -24)
  const e = exponentOf(r)
  return sign | ((e + 15) << 10) | ((r / 2 ** e - 1) * 1024)
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant ? NaN : sign * Infinity
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}
