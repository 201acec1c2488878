import type { DType } from '../../dtype.js'
import { DTypeError } from '../../errors.js'

/** WGSL element type a dtype is stored as. bool is a u32 per element (WGSL storage has no bytes). */
export type StorageType = 'f32' | 'f16' | 'i32' | 'u32'
/** WGSL type arithmetic happens in: f16 storage is widened to f32, bool to u32. */
export type ComputeType = 'f32' | 'i32' | 'u32'

export function storageType(dtype: DType, f16: boolean, op = 'webgpu'): StorageType {
  switch (dtype) {
    case 'float32':
      return 'f32'
    case 'float16':
      return f16 ? 'f16' : 'f32'
    case 'int32':
      return 'i32'
    case 'uint32':
    case 'bool':
      return 'u32'
    default:
      throw new DTypeError({ op, arg: 'dtype', expected: 'float32, float16, int32, uint32 or bool on webgpu (float64 is CPU-only)', actual: dtype })
  }
}

export const computeType = (dtype: DType): ComputeType =>
  dtype === 'float32' || dtype === 'float16' || dtype === 'float64' ? 'f32' : dtype === 'int32' ? 'i32' : 'u32'

export const storageBytes = (t: StorageType): number => (t === 'f16' ? 2 : 4)
