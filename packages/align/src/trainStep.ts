import { Observable, type OperatorFunction } from 'rxjs'
import { ArgumentError, add, dispose, isTensor, keep, scope, valueAndGrad, type Optimizer, type OptState, type Tensor } from '@heed/tensor'
import { treeTensorsOf } from './treeTensorsOf.js'

/** What a training loss returns: the scalar to minimise and scalar metric tensors to log. */
export interface TrainLoss {
  readonly loss: Tensor
  /** Scalar metric tensors by name (`DpoMetrics` and the like); non-tensor entries are ignored. */
  readonly metrics?: object
}

/** One emission per optimizer step: host numbers, safe to keep. */
export interface StepResult {
  /** 1 on the first step. */
  readonly step: number
  readonly loss: number
  readonly metrics: Readonly<Record<string, number>>
}

export interface TrainStepOptions<P, B> {
  /** Initial parameters (a pytree of float tensors). Copied per subscription; the caller keeps the originals. */
  readonly params: P
  readonly optimizer: Optimizer
  /** The loss of a batch under the current parameters; runs under the gradient tape. */
  readonly loss: (params: P, batch: B) => TrainLoss
  /** Receives the final parameters on completion; ownership passes to it (otherwise they are disposed). */
  readonly onComplete?: (params: P) => void
  /** Called after every step with the current parameters (borrowed: valid only during the call), e.g. to evaluate. */
  readonly inspect?: (params: P, step: number) => void
  /** Dispose every tensor of a batch once its step is done (the operator owns its input). Default true. */
  readonly disposeBatch?: boolean
}

const copyTree = <P>(tree: P): P => scope(() => mapTree(tree, t => add(t, 0)) as P)
function mapTree(tree: unknown, f: (t: Tensor) => Tensor): unknown {
  if (isTensor(tree)) return f(tree)
  if (Array.isArray(tree)) return tree.map(x => mapTree(x, f))
  if (tree !== null && typeof tree === 'object' && Object.getPrototypeOf(tree) === Object.prototype)
    return Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, mapTree(v, f)]))
  return tree
}

/**
 * Batches → loss → `valueAndGrad` → optimizer step, as an operator. Per subscription it holds a copy of the
 * parameters and the optimizer state, emits a `StepResult` (loss and metrics read back as numbers; the cpu
 * backend or another host-resident one) for every batch, and frees parameters, state and any batch in flight
 * on teardown. A failing loss or step goes to the error channel.
 */
export function trainStep<P, B>(opts: TrainStepOptions<P, B>): OperatorFunction<B, StepResult> {
  const op = 'trainStep'
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: 'an options object', actual: String(opts) })
  if (typeof opts.loss !== 'function') throw new ArgumentError({ op, arg: 'loss', expected: 'a function (params, batch) => { loss, metrics }', actual: typeof opts.loss })
  const optimizer = opts.optimizer
  if (optimizer === null || typeof optimizer !== 'object' || typeof optimizer.step !== 'function')
    throw new ArgumentError({ op, arg: 'optimizer', expected: 'an Optimizer (sgd, adam, adamw)', actual: typeof optimizer })
  if (treeTensorsOf(opts.params).size === 0) throw new ArgumentError({ op, arg: 'params', expected: 'a pytree with at least one tensor', actual: 'none' })
  const disposeBatch = opts.disposeBatch ?? true
  return source =>
    new Observable<StepResult>(subscriber => {
      let params: P | undefined = copyTree(opts.params)
      let state: OptState<P> | undefined = optimizer.init(params)
      let step = 0
      let metricTensors: Record<string, Tensor> = {}
      const vg = valueAndGrad((p: P, batch: B) => {
        const out = opts.loss(p, batch)
        // Metrics are computed under the tape but must outlive valueAndGrad's scope; keep() hands them to us.
        metricTensors = keep(Object.fromEntries(Object.entries(out.metrics ?? {}).filter(([, v]) => isTensor(v))) as Record<string, Tensor>)
        return out.loss
      })
      const sub = source.subscribe({
        next: batch => {
          let result: StepResult
          try {
            const [value, grads] = vg(params!, batch)
            try {
              ;[params, state] = optimizer.step(grads, state!, params!)
              step++
              const metrics: Record<string, number> = {}
              for (const [k, v] of Object.entries(metricTensors)) metrics[k] = v.dataSync()[0]!
              result = { step, loss: value.dataSync()[0]!, metrics }
              opts.inspect?.(params, step)
            } finally {
              dispose([value, grads, metricTensors])
              metricTensors = {}
            }
          } catch (err) {
            subscriber.error(err)
            return
          } finally {
            if (disposeBatch) dispose(batch)
          }
          subscriber.next(result)
        },
        error: err => subscriber.error(err),
        complete: () => {
          if (opts.onComplete !== undefined && params !== undefined) {
            const p = params
            params = undefined
            try {
              opts.onComplete(p)
            } catch (err) {
              subscriber.error(err)
              return
            }
          }
          subscriber.complete()
        },
      })
      return () => {
        sub.unsubscribe()
        dispose([params, state, metricTensors])
        params = undefined
        state = undefined
      }
    })
}
