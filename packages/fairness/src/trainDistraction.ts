import { ArgumentError, ShapeError, dispose, tensor } from '@heed/tensor'
import { encoderArg, options, tabular, trainerOptions } from './validate.js'
import { shuffledBatches } from './batching.js'
import { rng as makeRng } from '@heed/tensor'
import { CONFIG_OPTIONS, distractionConfig, distractionModel, distractionTrainer, initDistraction, type DistractionBatch, type DistractionConfig, type DistractionModel } from './distraction.js'
import type { Progress } from '@heed/tensor'
import type { ProtectedAttributeEncoder } from './protectedAttributeEncoder.js'
import { takeRows, type TabularData } from './tabularData.js'

export interface TrainDistractionOptions extends Partial<DistractionConfig> {
  /** The frozen protected-attribute encoder (see trainProtectedAttributeEncoder). */
  readonly encoder: ProtectedAttributeEncoder
  /** Called after each epoch with the model as it stands (valid only during the call). */
  readonly onEpoch?: (epoch: number, model: DistractionModel) => void
  /** Ticked once per batch. */
  readonly progress?: Progress
}

/** @internal the host rows of a batch as tensors. */
export function batchTensors(data: TabularData, emb: Float32Array, E: number, rows: ArrayLike<number>): DistractionBatch {
  const { values, d } = takeRows(data.x, data.d, rows)
  const e = new Float32Array(rows.length * E)
  for (let r = 0; r < rows.length; r++) e.set(emb.subarray(rows[r]! * E, rows[r]! * E + E), r * E)
  return {
    x: tensor(values, [rows.length, d], 'float32'),
    embedding: tensor(e, [rows.length, E], 'float32'),
    y: tensor(Float32Array.from(rows, i => data.y[i]!), [rows.length], 'float32'),
    groups: Int32Array.from(rows, i => data.groups[i]!),
  }
}

/**
 * Train a Distraction classifier on `data` with the alternating schedule (module step on η·DP penalty, then
 * classifier step on cross-entropy, per mini-batch). The encoder is used frozen; its embeddings are computed
 * once. Returns the model (the caller disposes it).
 */
export function trainDistraction(data: TabularData, opts: TrainDistractionOptions): DistractionModel {
  const op = 'trainDistraction'
  if (opts === undefined) throw new ArgumentError({ op, arg: 'opts', expected: '{ encoder, … }', actual: 'undefined' })
  options(op, opts, [...CONFIG_OPTIONS, 'encoder', 'onEpoch', 'progress'])
  const { encoder, onEpoch, progress, ...partial } = opts
  // everything checked before the first step: the data, the encoder (its width too), the config, the callbacks
  tabular(op, data)
  encoderArg(op, encoder)
  trainerOptions(op, { onEpoch, progress })
  const c = distractionConfig(partial, op)
  if (c.module === 'attention' && encoder.embeddingDim % c.tokenDim !== 0)
    throw new ShapeError({ op, arg: 'encoder.embeddingDim', expected: `a multiple of tokenDim ${c.tokenDim}`, actual: encoder.embeddingDim })
  const drop = (encoder as { dropColumns?: unknown }).dropColumns
  const dIn = data.d - (Array.isArray(drop) ? drop.length : 0)
  const first = (encoder as { layers?: readonly { w?: { shape?: readonly number[] } }[] }).layers?.[0]?.w?.shape?.[0]
  if (first !== undefined && first !== dIn)
    throw new ShapeError({ op, arg: 'encoder', expected: `an encoder over ${dIn} columns (data.d minus the encoder's dropColumns)`, actual: `one over ${first}` })
  const emb = encoder.embed(data)
  const E = encoder.embeddingDim
  const steps = Math.ceil(data.n / c.batchSize)
  const trainer = distractionTrainer(initDistraction(data.d, E, c), c, steps)
  const rng = makeRng(c.seed + 2)
  try {
    for (let epoch = 0; epoch < c.warmupEpochs + c.epochs; epoch++) {
      const warm = epoch < c.warmupEpochs
      let fair = 0
      let bce = 0
      for (const rows of shuffledBatches(data.n, c.batchSize, rng)) {
        const b = batchTensors(data, emb, E, rows)
        const r = warm ? trainer.warmupStep(b) : trainer.step(b)
        dispose([b.x, b.embedding, b.y])
        fair += r.fairnessLoss / steps
        bce += r.accuracyLoss / steps
        progress?.tick(1, `${warm ? 'warm-up ' : ''}epoch ${epoch + 1} bce ${bce.toFixed(3)} dp ${fair.toExponential(2)}`)
      }
      onEpoch?.(epoch, distractionModel(trainer.params(), encoder, c))
    }
  } catch (err) {
    trainer.dispose()
    throw err
  }
  return distractionModel(trainer.release(), encoder, c)
}
