import type { AnyTypedArray } from '../../dtype.js'

/**
 * Recycled Float32Arrays for the CPU backend's float32 kernels. A training loop allocates and frees the same
 * activation-sized arrays every step; a fresh large typed array costs a zeroing calloc, page faults on new pages
 * and GC pressure from its external memory (~25–60 µs for 256 KiB against ~1 µs for a reused one).
 *
 * An array is reused only when nothing else can still see its memory: the backend counts, per ArrayBuffer, the
 * storages whose values live in it (a kernel may return a view of an input's buffer as a new output), and an array
 * comes back here only when the last of them is freed and the array spans its whole buffer. Handed-out arrays are
 * dirty: only kernels that write every element take from the pool.
 */

/** Smaller arrays live on V8's heap, where allocation is already cheap. */
const MIN_LENGTH = 4096
/** Arrays kept per length, and bytes kept in all: bounds what a pool holds beyond what tensors use. */
const PER_LENGTH = 8
const MAX_BYTES = 64 << 20

const spare = new Map<number, Float32Array[]>()
let held = 0
const owners = new WeakMap<ArrayBufferLike, number>()

/** A Float32Array of `n` elements with unspecified contents; the caller must write every element. */
export function takeFloat32(n: number): Float32Array {
  if (n >= MIN_LENGTH) {
    const a = spare.get(n)?.pop()
    if (a) {
      held -= a.byteLength
      return a
    }
  }
  return new Float32Array(n)
}

/**
 * V8 keeps typed arrays of at most 64 bytes inside the JS heap and moves one out (a new backing store) the first
 * time its `.buffer` is read, so counting their buffers would cost more than the small kernels themselves. They are
 * never pooled; the one case this misses, a kernel returning a ≤ 64-byte view at offset 0 of a pooled input's
 * memory, is outside the CpuKernel contract (types.ts).
 */
const untracked = (values: AnyTypedArray): boolean => values.byteLength <= 64 && values.byteOffset === 0

/** The backend now keeps `values` as a storage's memory. */
export function adoptValues(values: AnyTypedArray): void {
  if (untracked(values)) return
  owners.set(values.buffer, (owners.get(values.buffer) ?? 0) + 1)
}

/** A storage holding `values` was freed: reuse the array once no storage sees its buffer. */
export function releaseValues(values: AnyTypedArray): void {
  if (untracked(values)) return
  const n = (owners.get(values.buffer) ?? 1) - 1
  if (n > 0) {
    owners.set(values.buffer, n)
    return
  }
  owners.delete(values.buffer)
  if (!(values instanceof Float32Array) || values.length < MIN_LENGTH || values.byteOffset !== 0 || values.byteLength !== values.buffer.byteLength) return
  if (held + values.byteLength > MAX_BYTES) return
  let list = spare.get(values.length)
  if (!list) spare.set(values.length, (list = []))
  if (list.length >= PER_LENGTH) return
  list.push(values)
  held += values.byteLength
}
