import { adam, dispose, intAtLeast, logSoftmax, mean, mul, neg, noGrad, oneHot, rng as makeRng, scope, sum, tensor, trainer, ArgumentError, ShapeError, ValueError, type Tensor } from '@heed/tensor'
import { denseLayers, kindOf, options, tabular, trainerOptions } from './validate.js'
import { positiveInt, positiveNumber, shuffledBatches } from './batching.js'
import { denseForward, initDense, type DenseLayer } from './dense.js'
import type { Progress } from '@heed/tensor'
import { takeRows, type TabularData } from './tabularData.js'

/**
 * The frozen protected-attribute classifier of the Distraction design: an MLP that predicts the sensitive group
 * from the features *without* the sensitive columns. Its last hidden layer (after ReLU) is the embedding that
 * serves as the attention query.
 */
export interface ProtectedAttributeEncoder {
  /** Hidden layers then the output layer (`numGroups` logits). */
  readonly layers: readonly DenseLayer[]
  readonly numGroups: number
  /** Feature columns removed before the encoder sees a row. */
  readonly dropColumns: readonly number[]
  /** Width of the embedding. */
  readonly embeddingDim: number
  /** Embedding of every row of `data`, `[n, embeddingDim]` row-major (no gradient: the encoder is frozen). */
  embed(data: TabularData): Float32Array
  /** Embedding of already column-dropped rows `[B, d′]` as a tensor (no gradient). */
  embedTensor(x: Tensor): Tensor
  /** Fraction of rows whose group it predicts right (how much the features leak the attribute). */
  accuracy(data: TabularData): number
  dispose(): void
}

export interface EncoderOptions {
  /** Hidden widths (default [64, 32], the paper's 13→64→32→1 for Adult). */
  readonly hidden?: readonly number[]
  /** Adam learning rate (default 1e-3). */
  readonly lr?: number
  /** Rows per batch (default 128). */
  readonly batchSize?: number
  /** Default 100 (paper); a few epochs already give a usable embedding. */
  readonly epochs?: number
  /** Seed of initialisation and batch order (default 0). */
  readonly seed?: number
  /** Progress reporting (see `Progress`; default none). */
  readonly progress?: Progress
}

export const ENCODER_DEFAULTS = { hidden: [64, 32], lr: 1e-3, batchSize: 128, epochs: 100, seed: 0 } as const

const OP = 'trainProtectedAttributeEncoder'
const KEYS: Record<keyof EncoderOptions, true> = { hidden: true, lr: true, batchSize: true, epochs: true, seed: true, progress: true }

/** Train the protected-attribute encoder on `data` (target: its groups; input: features minus `sensitiveColumns`). */
export function trainProtectedAttributeEncoder(data: TabularData, opts: EncoderOptions = {}): ProtectedAttributeEncoder {
  opts = options(OP, opts, Object.keys(KEYS))
  tabular(OP, data)
  trainerOptions(OP, opts)
  const hidden = opts.hidden ?? ENCODER_DEFAULTS.hidden
  if (!Array.isArray(hidden)) throw new ArgumentError({ op: OP, arg: 'hidden', expected: 'a non-empty array of hidden widths', actual: kindOf(hidden) })
  if (hidden.length === 0) throw new ValueError({ op: OP, arg: 'hidden', expected: 'at least one hidden layer (the embedding)', actual: '[]' })
  hidden.forEach((h, i) => positiveInt(OP, `hidden[${i}]`, h))
  const lr = positiveNumber(OP, 'lr', opts.lr ?? ENCODER_DEFAULTS.lr)
  const batchSize = positiveInt(OP, 'batchSize', opts.batchSize ?? ENCODER_DEFAULTS.batchSize)
  const epochs = positiveInt(OP, 'epochs', opts.epochs ?? ENCODER_DEFAULTS.epochs)
  if (data.numGroups < 2) throw new ValueError({ op: OP, arg: 'data.groups', expected: 'at least 2 groups', actual: data.numGroups })
  const rng = makeRng(opts.seed ?? ENCODER_DEFAULTS.seed)
  const drop = data.sensitiveColumns
  const dIn = data.d - drop.length
  const G = data.numGroups
  const layers: DenseLayer[] = initDense([dIn, ...hidden, G], rng, OP)
  type Batch = { readonly x: Tensor; readonly target: Tensor }
  // The trainer copies the initial layers (bit for bit) and owns its copies; the originals are freed here.
  const tr = trainer({
    params: layers,
    optimizer: adam({ lr }),
    loss: (ls: DenseLayer[], b: Batch): Tensor =>
      neg(mean(sum(mul(b.target, logSoftmax(denseForward(ls, b.x, { linearLast: true }), { axis: -1 })), { axis: -1 }))),
  })
  dispose(layers)
  try {
    for (let e = 0; e < epochs; e++) {
      for (const rows of shuffledBatches(data.n, batchSize, rng)) {
        const { values, d } = takeRows(data.x, data.d, rows, drop)
        const batch: Batch = scope(() => ({
          x: tensor(values, [rows.length, d], 'float32'),
          target: oneHot(tensor(Int32Array.from(rows, i => data.groups[i]!), [rows.length], 'int32'), G),
        }))
        try {
          dispose(tr.step(batch))
        } finally {
          dispose(batch)
        }
        opts.progress?.tick()
      }
    }
    return makeEncoder(tr.release(), G, drop)
  } finally {
    tr.dispose()
  }
}

/** Wrap trained layers as an encoder (e.g. weights loaded from elsewhere). */
export function makeEncoder(layers: readonly DenseLayer[], numGroups: number, dropColumns: readonly number[]): ProtectedAttributeEncoder {
  const op = 'makeEncoder'
  // hidden layers (the last one's output is the embedding) then the output layer
  denseLayers(op, 'layers', layers, 2)
  const G = intAtLeast(op, 'numGroups', numGroups, 2)
  const out = layers[layers.length - 1]!.w
  if (out.rank !== 2 || out.shape[1] !== G) throw new ShapeError({ op, arg: `layers[${layers.length - 1}].w`, expected: `[h, numGroups = ${G}] (the output layer)`, actual: out.shape })
  if (!Array.isArray(dropColumns) || !dropColumns.every(c => Number.isInteger(c) && c >= 0))
    throw new ArgumentError({ op, arg: 'dropColumns', expected: 'an array of column indices (integers ≥ 0)', actual: kindOf(dropColumns) })
  const body = layers.slice(0, -1)
  const embeddingDim = body[body.length - 1]!.w.shape[1]!
  const embedTensor = (x: Tensor): Tensor => noGrad(() => denseForward(body, x))
  const chunks = (data: TabularData, f: (x: Tensor) => Tensor, width: number): Float32Array => {
    const out = new Float32Array(data.n * width)
    for (let s = 0; s < data.n; s += 4096) {
      const rows = Int32Array.from({ length: Math.min(4096, data.n - s) }, (_, i) => s + i)
      const { values, d } = takeRows(data.x, data.d, rows, dropColumns)
      const t = scope(() => f(tensor(values, [rows.length, d], 'float32')))
      out.set(t.dataSync() as Float32Array, s * width)
      t.dispose()
    }
    return out
  }
  return {
    layers, numGroups, dropColumns, embeddingDim,
    embed: data => chunks(data, embedTensor, embeddingDim),
    embedTensor,
    accuracy: data => {
      const z = chunks(data, x => noGrad(() => denseForward(layers, x, { linearLast: true })), numGroups)
      let ok = 0
      for (let i = 0; i < data.n; i++) {
        let best = 0
        for (let g = 1; g < numGroups; g++) if (z[i * numGroups + g]! > z[i * numGroups + best]!) best = g
        if (best === data.groups[i]) ok++
      }
      return ok / data.n
    },
    dispose: () => dispose(layers),
  }
}

