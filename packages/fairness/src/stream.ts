/**
 * `@heed/fairness/stream`: Distraction training as an RxJS pipeline over a batch stream. A separate entry point so
 * the main package never imports rxjs (an optional peer dependency).
 *
 * Ownership follows `@heed/tensor/stream`: the operator borrows every batch it receives (never disposes it); on
 * complete it emits the trained parameters, whose ownership passes downstream. Whatever it still holds when the
 * subscription ends early (error, unsubscribe) is disposed in its teardown. `distractionBatches` lends its
 * batches: it frees each one once the operators downstream are done with it (yours when it reaches only your code).
 */
import { Observable, type OperatorFunction } from 'rxjs'
import { ArgumentError, isTensor, nonNegativeInt, positiveInt, rng as makeRng } from '@heed/tensor'
import { encoderArg, kindOf, options, tabular } from './validate.js'
import { borrow, describeItem, lend } from '@heed/tensor/stream'
import { shuffledBatches } from './batching.js'
import { distractionConfig, distractionTrainer, initDistraction, type DistractionBatch, type DistractionConfig, type DistractionParams, type DistractionStepResult } from './distraction.js'
import type { ProtectedAttributeEncoder } from './protectedAttributeEncoder.js'
import type { TabularData } from './tabularData.js'
import { batchTensors } from './trainDistraction.js'

/** What the training operator emits: one `step` per batch, then `done` with the trained parameters. */
export type DistractionEvent =
  | ({ readonly type: 'step'; readonly step: number; readonly warmup: boolean } & DistractionStepResult)
  | { readonly type: 'done'; readonly steps: number; readonly params: DistractionParams }

export interface DistractionTrainingOptions extends Partial<DistractionConfig> {
  /** Input width and embedding width, used to initialise parameters (ignored when `params` is given). */
  readonly inputDim?: number
  /** Width of the protected-attribute embedding (ignored when `params` is given). */
  readonly embeddingDim?: number
  /** Start from these parameters (copied per subscription is not possible for tensors: they are taken over by
   * the first subscription). */
  readonly params?: DistractionParams
  /** Batches per epoch, for the learning-rate decay period and the warm-up length (default 1). */
  readonly stepsPerEpoch?: number
}

/**
 * The alternating Distraction training as an operator over batches: the first `warmupEpochs·stepsPerEpoch`
 * batches take a warm-up step (cross-entropy on every parameter), the rest a module step (η·DP penalty) then a
 * classifier step (cross-entropy). Cold: every subscription trains its own fresh parameters.
 */
export function distractionTraining(opts: DistractionTrainingOptions): OperatorFunction<DistractionBatch, DistractionEvent> {
  const op = 'distractionTraining'
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts) || isTensor(opts))
    throw new ArgumentError({ op, arg: 'opts', expected: 'an options object { inputDim, embeddingDim, … } or { params, … }', actual: kindOf(opts) })
  const { inputDim, embeddingDim, params, stepsPerEpoch = 1, ...partial } = opts
  const c = distractionConfig(partial, op)
  positiveInt(op, 'stepsPerEpoch', stepsPerEpoch)
  let given = params
  // Checked here, in this operator's name, rather than at the first subscription inside initDistraction.
  if (given === undefined) {
    positiveInt(op, 'inputDim', inputDim)
    positiveInt(op, 'embeddingDim', embeddingDim)
  }
  return source =>
    new Observable<DistractionEvent>(subscriber => {
      const start = given ?? initDistraction(inputDim!, embeddingDim!, c)
      given = undefined
      const trainer = distractionTrainer(start, c, stepsPerEpoch)
      let step = 0
      let done = false
      const sub = source.subscribe({
        next: b => {
          if (subscriber.closed) return
          let r: DistractionStepResult
          const warmup = step < c.warmupEpochs * stepsPerEpoch
          try {
            if (b === null || typeof b !== 'object' || !isTensor(b.x) || !isTensor(b.embedding) || !isTensor(b.y))
              throw new ArgumentError({ op: 'distractionTraining', arg: 'batch', expected: 'a DistractionBatch { x, embedding, y } of tensors', actual: describeItem(b) })
            borrow(b)
            r = warmup ? trainer.warmupStep(b) : trainer.step(b)
          } catch (err) {
            subscriber.error(err)
            return
          }
          subscriber.next({ type: 'step', step: ++step, warmup, ...r })
        },
        error: err => subscriber.error(err),
        complete: () => {
          done = true
          subscriber.next({ type: 'done', steps: step, params: trainer.release() })
          subscriber.complete()
        },
      })
      return () => {
        sub.unsubscribe()
        if (!done) trainer.dispose()
      }
    })
}

/** Shuffled mini-batches of `data` for `epochs` epochs, with the frozen encoder's embeddings (cold: each
 * subscription draws the same sequence from `seed`). Each batch is lent: freed once the operators downstream
 * are done with it, yours when it reaches only your code. */
export function distractionBatches(data: TabularData, encoder: ProtectedAttributeEncoder, opts: { readonly batchSize: number; readonly epochs: number; readonly seed?: number }): Observable<DistractionBatch> {
  const op = 'distractionBatches'
  // Checked at the call, not at subscription: a bad argument is the caller's mistake, seen where it was made.
  tabular(op, data)
  encoderArg(op, encoder)
  options(op, opts, ['batchSize', 'epochs', 'seed'])
  if (opts === undefined || opts === null) throw new ArgumentError({ op, arg: 'opts', expected: '{ batchSize, epochs, seed? }', actual: kindOf(opts) })
  positiveInt(op, 'batchSize', opts.batchSize)
  nonNegativeInt(op, 'epochs', opts.epochs)
  if (opts.seed !== undefined && !Number.isInteger(opts.seed)) throw new ArgumentError({ op, arg: 'seed', expected: 'an integer seed', actual: kindOf(opts.seed) })
  return new Observable<DistractionBatch>(subscriber => {
    const emb = encoder.embed(data)
    const rng = makeRng(opts.seed ?? 0)
    for (let e = 0; e < opts.epochs && !subscriber.closed; e++)
      for (const rows of shuffledBatches(data.n, opts.batchSize, rng)) {
        if (subscriber.closed) return
        lend(subscriber, batchTensors(data, emb, encoder.embeddingDim, rows))
      }
    subscriber.complete()
  })
}
