/**
 * Leak checks that count only what the code under test made: `trackTensors()` records the tensors made inside the
 * block, so another test's forgotten tensor (collected by the garbage-collection safety net at any moment) cannot
 * move the count, and a tensor the block forgot cannot be collected before the check sees it.
 */
import { trackTensors, type Tensor } from '@heed/tensor'

/** What a leaked tensor is in a failure report: id, dtype, shape and backend. */
export const describeTensors = (ts: readonly Tensor[]): string[] => ts.map(x => `#${x.id} ${x.dtype}[${x.shape.join(',')}]@${x.backend}`)

/** The subset of tap's `Test` used here. */
interface Asserts {
  same(found: unknown, wanted: unknown, message: string): unknown
}

/**
 * Run `fn` (sync or async) and assert that every tensor it made is disposed when it returns; returns its result.
 * Tensors it returns count too: read and dispose them inside.
 */
export async function noLeaks<T>(t: Asserts, msg: string, fn: () => T | Promise<T>): Promise<T> {
  const made = trackTensors()
  try {
    return await fn()
  } finally {
    t.same(describeTensors(made.stop()), [], msg)
  }
}

/** Run `fn` and return its result with the tensors it made and left undisposed (for callers that assert later). */
export async function liveAfter<T>(fn: () => T | Promise<T>): Promise<{ result: T; leaked: Tensor[] }> {
  const made = trackTensors()
  let result: T
  try {
    result = await fn()
  } catch (err) {
    made.stop()
    throw err
  }
  return { result, leaked: made.stop() }
}
