import { Observable, type OperatorFunction } from 'rxjs'
import { ArgumentError, ValueError, dispose } from '@heed/tensor'
import { treeTensorsOf } from './treeTensorsOf.js'

export interface PreferenceBatchesOptions<T, B> {
  /** Examples per batch. */
  readonly size: number
  /** Build a batch from `size` examples (the last batch may be shorter unless `dropLast`). */
  readonly collate: (examples: readonly T[]) => B
  /** Drop a final short batch instead of emitting it. Default false. */
  readonly dropLast?: boolean
}

/**
 * Group a stream of preference examples into batches. The operator owns the tensors inside the examples it
 * receives: after `collate` they are disposed unless the batch reuses them, and whatever is still buffered
 * when the subscription ends (error, unsubscribe, or `dropLast`) is disposed in teardown.
 */
export function preferenceBatches<T, B>(opts: PreferenceBatchesOptions<T, B>): OperatorFunction<T, B> {
  const op = 'preferenceBatches'
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: 'an options object', actual: String(opts) })
  const { size, collate } = opts
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1) throw new ValueError({ op, arg: 'size', expected: 'a positive integer', actual: String(size) })
  if (typeof collate !== 'function') throw new ArgumentError({ op, arg: 'collate', expected: 'a function', actual: typeof collate })
  const dropLast = opts.dropLast ?? false
  return source =>
    new Observable<B>(subscriber => {
      let buffer: T[] = []
      const flush = (): boolean => {
        const items = buffer
        buffer = []
        let batch: B
        try {
          batch = collate(items)
        } catch (err) {
          dispose(items)
          subscriber.error(err)
          return false
        }
        const reused = treeTensorsOf(batch)
        for (const t of treeTensorsOf(items)) if (!reused.has(t)) t.dispose()
        subscriber.next(batch)
        return true
      }
      const sub = source.subscribe({
        next: x => {
          buffer.push(x)
          if (buffer.length === size) flush()
        },
        error: err => subscriber.error(err),
        complete: () => {
          if (buffer.length > 0 && !dropLast && !flush()) return
          subscriber.complete()
        },
      })
      return () => {
        sub.unsubscribe()
        dispose(buffer)
        buffer = []
      }
    })
}
