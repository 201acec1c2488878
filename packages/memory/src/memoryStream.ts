/**
 * RxJS operators for the Titans and HCAM memories: token chunks are stored as they stream, recall requests are
 * answered from what has been stored so far. Ownership follows `@heed/tensor/stream`: the operator takes the
 * tensors it receives and hands over the tensors it emits. The memory state belongs to one subscription and is
 * disposed when it ends (complete, error or unsubscribe).
 */
import { Observable, type OperatorFunction } from 'rxjs'
import { ArgumentError, dispose, isTensor, keep, scope, type Tensor } from '@heed/tensor'
import { disposeChunk, type TokenChunk } from '@heed/tensor/stream'
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
          const isQuery = isRecall(item)
          const release = () => (isQuery ? item.query.dispose() : typeof item === 'object' && item !== null && 'tokens' in item ? disposeChunk(item) : undefined)
          if (subscriber.closed) {
            release()
            return
          }
          let out: Tensor | null
          try {
            if (!isQuery && !(typeof item === 'object' && item !== null && 'tokens' in item && isTensor(item.tokens)))
              throw new ArgumentError({ op, arg: 'value', expected: 'a TokenChunk or a { query } recall', actual: typeof item })
            state ??= keep(scope(init))
            if (isQuery) out = keep(scope(() => recall(state!, item.query)))
            else {
              const res = keep(scope(() => store(state!, item)))
              free(state)
              state = res.state
              out = res.out
            }
          } catch (err) {
            release()
            subscriber.error(err)
            return
          }
          release()
          if (out) subscriber.next(out)
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
