/**
 * RxJS operators for the Titans and HCAM memories: token chunks are stored as they stream, recall requests are
 * answered from what has been stored so far. Ownership follows `@heed/tensor/stream`: the operator borrows the
 * chunks and recalls it receives (never disposes them) and frees each tensor it emits once the operators
 * downstream are done with it (an emission that reaches only your code is yours). The memory state belongs to one
 * subscription and is disposed when it ends (complete, error or unsubscribe).
 */
import { Observable, type OperatorFunction } from 'rxjs'
import { ArgumentError, dispose, keep, scope, type Tensor } from '@heed/tensor'
import { borrow, checkChunk, describeItem, lend, type TokenChunk } from '@heed/tensor/stream'
import { isRecall, type Recall } from './recall.js'


/** @internal the shared operator: `store` and `recall` return tensors the operator owns; `free` releases a state. */
export function memoryOperator<S>(
  op: string,
  init: () => S,
  store: (s: S, chunk: TokenChunk) => { state: S; out: Tensor | null },
  recall: (s: S, query: Tensor) => Tensor,
  free: (s: S) => void,
): OperatorFunction<TokenChunk | Recall, Tensor> {
  return source =>
    new Observable<Tensor>(subscriber => {
      let state: S | undefined
      const sub = source.subscribe({
        next: item => {
          if (subscriber.closed) return
          let out: Tensor | null
          try {
            const isQuery = isRecall(item)
            if (isQuery) item.query.assertLive(op)
            else if (typeof item === 'object' && item !== null && 'tokens' in item) checkChunk(op, item)
            else throw new ArgumentError({ op, arg: 'value', expected: 'a TokenChunk or a { query } recall', actual: describeItem(item) })
            borrow(item)
            state ??= keep(scope(init))
            if (isQuery) out = keep(scope(() => recall(state!, item.query)))
            else {
              const res = keep(scope(() => store(state!, item)))
              free(state)
              state = res.state
              out = res.out
            }
          } catch (err) {
            subscriber.error(err)
            return
          }
          if (out) lend(subscriber, out)
        },
        error: err => subscriber.error(err),
        complete: () => subscriber.complete(),
      })
      return () => {
        sub.unsubscribe()
        if (state !== undefined) free(state)
        state = undefined
      }
    })
}

/** @internal dispose helper for states that are plain trees of tensors. */
export const disposeTree = (s: unknown): void => dispose(s)
