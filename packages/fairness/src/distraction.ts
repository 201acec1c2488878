import { adam, sgd, add, checkAllocation, isTensor, eye, knownOptions, zeros, div, dispose, sum, matmul, mean, mul, reshape, rng as makeRng, scope, sigmoid, softplus, sub, tensor, valueAndGrad, ArgumentError, ShapeError, ValueError, type Rng, type Tensor } from '@heed/tensor'
import { denseLayer, denseLayers, encoderArg, kindOf, liveTensor, options } from './validate.js'
import { decayed, positiveInt, positiveNumber } from './batching.js'
import { probaInChunks, type Classifier } from './classifier.js'
import { denseForward, initDense, type DenseLayer } from './dense.js'
import { distractionAttention, initDistractionAttention, type DistractionAttentionParams } from './distractionAttention.js'
import { dpPenalty } from './dpPenalty.js'
import type { ProtectedAttributeEncoder } from './protectedAttributeEncoder.js'
import type { TabularData } from './tabularData.js'

/** Hyper-parameters of the Distraction classifier and its alternating training. */
export interface DistractionConfig {
  /**
   * The θ_fair part. `attention` is the paper's Distraction module (query = the frozen encoder's embedding).
   * `layers` is the later "fairness layers" generalisation (the v3 ablation and FairBiNN): a block of square
   * Linear+ReLU layers inside the classifier, moved only by the penalty. The 6-parameter attention can only change
   * a scale and a sharpness, which the classifier step undoes; a width×width block can rotate away the directions
   * that carry the group, so the classifier has something it cannot simply undo. The encoder is unused there.
   */
  readonly module: 'attention' | 'layers'
  /** Number of fairness layers (module `layers`). */
  readonly fairnessLayers: number
  /** How many body layers come before the fairness block (module `layers`; default after the last one). */
  readonly fairnessPosition?: number
  /**
   * Start of the fairness layers. `identity` (zero bias): on ReLU activations the block is then exactly a no-op,
   * so at η = 0 the model is the plain MLP and any change is the penalty's doing. `xavier`: Glorot-uniform as
   * every other layer (the authors' `nn.Linear` block is randomly initialised).
   */
  readonly fairnessInit: 'identity' | 'xavier'
  /** Hidden widths of the classifier body; the last one is the number of attention tokens × tokenDim. */
  readonly hidden: readonly number[]
  readonly dropout: number
  readonly tokenDim: number
  readonly heads: number
  /** η: weight of the demographic-parity penalty in the module step. */
  readonly eta: number
  /** Learning rate of the Distraction module (fairness step). */
  readonly lrModule: number
  /**
   * Optimizer of the module step. `adam` is the authors' code; Adam divides the step by the gradient's own scale,
   * so η hardly matters there. `sgd` makes the step lr·η·∇DP, so η sets how hard the module pushes.
   */
  readonly moduleOptimizer: 'adam' | 'sgd'
  /**
   * Which step trains the module's biases. `fairness` (the authors' code) lets the penalty move them; but the key
   * bias cancels in the softmax and the value and output biases shift every logit alike, so the only way they
   * lower the penalty is by pushing all scores into the sigmoid's flat tail, which ends in a constant classifier.
   * `accuracy` hands them to the classifier step and leaves the penalty the weights (attention sharpness and scale).
   */
  readonly moduleBiases: 'fairness' | 'accuracy'
  /**
   * Whether the classifier step's gradient also carries η·∇penalty. `true` is what the authors' code does, though
   * not what their Algorithm 1 says: each batch clears gradients once, the module step's backward fills every
   * parameter's gradient (the `require_grad` misspelling freezes nothing), and the classifier step adds the
   * cross-entropy gradient to it — so the classifier descends BCE + η·DP and only the module sees the penalty
   * alone. `false` is the algorithm as written: cross-entropy only, where the classifier undoes whatever the
   * module does (see the package README).
   */
  readonly classifierPenalty: boolean
  /** Adam learning rate of the classifier (accuracy step). */
  readonly lrClassifier: number
  readonly batchSize: number
  readonly epochs: number
  /** ExponentialLR: both rates × gamma every `decayEvery` epochs. */
  readonly decayGamma: number
  readonly decayEvery: number
  /**
   * Epochs of plain cross-entropy training of every parameter (module included) before the alternating phase.
   * 0 in the paper; a short warm-up lets a few alternating epochs (and an η sweep sharing one warm-up) suffice.
   */
  readonly warmupEpochs: number
  /** How the penalty reduces over groups (see dpPenalty). */
  readonly penaltyReduce: 'sum' | 'mean'
  readonly seed: number
}

/**
 * The paper's settings (authors' code, Adult): classifier d→64→32 with ReLU and dropout 0.2, 1-d tokens, one
 * head, module lr 1e-5, classifier lr 1e-3, batch 100, 50 epochs, ExponentialLR γ = 0.9 every 20 epochs; η is
 * swept (1 … 5500).
 */
export const DISTRACTION_DEFAULTS: DistractionConfig = {
  module: 'attention', fairnessLayers: 2, fairnessInit: 'identity',
  hidden: [64, 32], dropout: 0.2, tokenDim: 1, heads: 1, eta: 1, lrModule: 1e-5, moduleOptimizer: 'adam', moduleBiases: 'fairness', classifierPenalty: true, lrClassifier: 1e-3,
  batchSize: 100, epochs: 50, warmupEpochs: 0, decayGamma: 0.9, decayEvery: 20, penaltyReduce: 'sum', seed: 0,
}

/**
 * Parameters of a Distraction classifier: body and output layer (θ_acc), and θ_fair: the attention module
 * (module `attention`) or the fairness layers (module `layers`); exactly one of the two is present.
 */
export interface DistractionParams {
  readonly body: readonly DenseLayer[]
  readonly attention?: DistractionAttentionParams
  readonly fairness?: readonly DenseLayer[]
  readonly head: DenseLayer
}

const CONFIG_KEYS: Record<keyof DistractionConfig, true> = {
  module: true, fairnessLayers: true, fairnessPosition: true, fairnessInit: true, hidden: true, dropout: true, tokenDim: true, heads: true, eta: true, lrModule: true,
  moduleOptimizer: true, moduleBiases: true, classifierPenalty: true, lrClassifier: true, batchSize: true, epochs: true, decayGamma: true, decayEvery: true,
  warmupEpochs: true, penaltyReduce: true, seed: true,
}
/** @internal every key of DistractionConfig. */
export const CONFIG_OPTIONS = Object.keys(CONFIG_KEYS)

/** @internal validated config from a partial one, in the name of the function the user called. */
export function distractionConfig(partial: Partial<DistractionConfig> = {}, OP = 'distraction'): DistractionConfig {
  if (partial === null || typeof partial !== 'object' || Array.isArray(partial) || isTensor(partial)) throw new ArgumentError({ op: OP, arg: 'config', expected: 'an options object', actual: kindOf(partial) })
  knownOptions(OP, partial, CONFIG_OPTIONS)
  // an undefined value reads as the default (as knownOptions lets it pass), not as a value to check
  const given = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) as Partial<DistractionConfig>
  const c = { ...DISTRACTION_DEFAULTS, ...given }
  if (!Array.isArray(c.hidden)) throw new ArgumentError({ op: OP, arg: 'hidden', expected: 'an array of hidden widths', actual: kindOf(c.hidden) })
  if (c.hidden.length === 0) throw new ShapeError({ op: OP, arg: 'hidden', expected: 'at least one hidden layer', actual: '[]' })
  c.hidden.forEach((h, i) => positiveInt(OP, `hidden[${i}]`, h))
  for (const k of ['tokenDim', 'heads', 'batchSize', 'epochs', 'decayEvery'] as const) positiveInt(OP, k, c[k])
  if (!Number.isInteger(c.warmupEpochs) || c.warmupEpochs < 0) throw new ArgumentError({ op: OP, arg: 'warmupEpochs', expected: 'an integer ≥ 0', actual: c.warmupEpochs })
  for (const k of ['lrModule', 'lrClassifier', 'decayGamma'] as const) positiveNumber(OP, k, c[k])
  positiveNumber(OP, 'eta', c.eta, true)
  if (typeof c.classifierPenalty !== 'boolean') throw new ArgumentError({ op: OP, arg: 'classifierPenalty', expected: 'a boolean', actual: kindOf(c.classifierPenalty) })
  if (c.penaltyReduce !== 'sum' && c.penaltyReduce !== 'mean') throw new ValueError({ op: OP, arg: 'penaltyReduce', expected: "'sum' or 'mean'", actual: String(c.penaltyReduce) })
  if (!Number.isInteger(c.seed)) throw new ValueError({ op: OP, arg: 'seed', expected: 'an integer seed', actual: typeof c.seed === 'number' ? c.seed : kindOf(c.seed) })
  if (c.moduleOptimizer !== 'adam' && c.moduleOptimizer !== 'sgd') throw new ValueError({ op: OP, arg: 'moduleOptimizer', expected: "'adam' or 'sgd'", actual: String(c.moduleOptimizer) })
  if (c.module !== 'attention' && c.module !== 'layers') throw new ValueError({ op: OP, arg: 'module', expected: "'attention' or 'layers'", actual: String(c.module) })
  if (c.fairnessInit !== 'identity' && c.fairnessInit !== 'xavier') throw new ValueError({ op: OP, arg: 'fairnessInit', expected: "'identity' or 'xavier'", actual: String(c.fairnessInit) })
  positiveInt(OP, 'fairnessLayers', c.fairnessLayers)
  const pos = c.fairnessPosition ?? c.hidden.length
  if (!Number.isInteger(pos) || pos < 1 || pos > c.hidden.length)
    throw new ArgumentError({ op: OP, arg: 'fairnessPosition', expected: `an integer in [1, ${c.hidden.length}] (a hidden layer's output)`, actual: String(c.fairnessPosition) })
  if (c.moduleBiases !== 'fairness' && c.moduleBiases !== 'accuracy') throw new ValueError({ op: OP, arg: 'moduleBiases', expected: "'fairness' or 'accuracy'", actual: String(c.moduleBiases) })
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new ArgumentError({ op: OP, arg: 'dropout', expected: 'a rate in [0, 1)', actual: c.dropout })
  if (c.module === 'attention' && c.hidden[c.hidden.length - 1]! % c.tokenDim !== 0)
    throw new ShapeError({ op: OP, arg: 'hidden', expected: `a last width divisible by tokenDim ${c.tokenDim}`, actual: c.hidden[c.hidden.length - 1] })
  return c
}

/** Fresh parameters for inputs of width `inputDim` and an encoder embedding of width `embeddingDim`. */
export function initDistraction(inputDim: number, embeddingDim: number, config: Partial<DistractionConfig> = {}): DistractionParams {
  const OP = 'initDistraction'
  positiveInt(OP, 'inputDim', inputDim)
  positiveInt(OP, 'embeddingDim', embeddingDim)
  const c = distractionConfig(config, OP)
  // sizes no tensor can hold fail here, before any layer is made
  for (let i = 0; i < c.hidden.length; i++) checkAllocation(OP, i === 0 ? 'inputDim' : `hidden[${i}]`, (i === 0 ? inputDim : c.hidden[i - 1]!) * c.hidden[i]!, 'float32')
  checkAllocation(OP, 'embeddingDim', embeddingDim, 'float32')
  if (c.module === 'layers') checkAllocation(OP, 'hidden', c.hidden[fairnessPosition(c) - 1]! ** 2, 'float32')
  if (embeddingDim % c.tokenDim !== 0) throw new ShapeError({ op: OP, arg: 'embeddingDim', expected: `a multiple of tokenDim ${c.tokenDim}`, actual: embeddingDim })
  const rng = makeRng(c.seed)
  const body = initDense([inputDim, ...c.hidden], rng)
  if (c.module === 'layers') {
    const width = c.hidden[fairnessPosition(c) - 1]!
    const fairness = c.fairnessInit === 'xavier' ? initDense(Array.from({ length: c.fairnessLayers + 1 }, () => width), rng) : Array.from({ length: c.fairnessLayers }, () => ({ w: eye(width, width, { dtype: 'float32' }), b: zeros([width], { dtype: 'float32' }) }))
    const [head] = initDense([c.hidden[c.hidden.length - 1]!, 1], rng)
    return { body, fairness, head: head! }
  }
  const attention = initDistractionAttention({ tokenDim: c.tokenDim, heads: c.heads, rng })
  // The attention emits one output token per query token, so the output layer's width follows the embedding.
  const [head] = initDense([embeddingDim, 1], rng)
  return { body, attention, head: head! }
}

const fairnessPosition = (c: DistractionConfig): number => c.fairnessPosition ?? c.hidden.length

/**
 * Logits `[B]` of the Distraction classifier. Module `attention`: body → attention (query = `embedding`) → output
 * layer. Module `layers`: body up to `fairnessPosition` → fairness layers → rest of the body → output layer
 * (`embedding` is not read).
 */
export function distractionLogits(params: DistractionParams, x: Tensor, embedding: Tensor | undefined, opts: { readonly config?: Partial<DistractionConfig>; readonly rng?: Rng } = {}): Tensor {
  const OP = 'distractionLogits'
  opts = options(OP, opts, ['config', 'rng'])
  const c = distractionConfig(opts.config, OP)
  checkParams(OP, params)
  liveTensor(OP, 'x', x)
  if (embedding !== undefined) liveTensor(OP, 'embedding', embedding)
  return logitsOf(OP, params, x, embedding, c, opts.rng)
}

/**
 * @internal parameters from initDistraction: a body, a head and exactly one of attention and fairness, every
 * tensor live.
 */
export function checkParams(op: string, params: DistractionParams): void {
  if (params === null || typeof params !== 'object' || Array.isArray(params) || isTensor(params))
    throw new ArgumentError({ op, arg: 'params', expected: 'DistractionParams (initDistraction)', actual: kindOf(params) })
  denseLayers(op, 'params.body', params.body)
  denseLayer(op, 'params.head', params.head)
  if ((params.attention === undefined) === (params.fairness === undefined))
    throw new ArgumentError({ op, arg: 'params', expected: 'exactly one of attention and fairness (initDistraction)', actual: params.attention === undefined ? 'neither' : 'both' })
  if (params.fairness !== undefined) denseLayers(op, 'params.fairness', params.fairness)
  else {
    const a = params.attention as unknown as Record<string, unknown> | null
    if (a === null || typeof a !== 'object') throw new ArgumentError({ op, arg: 'params.attention', expected: 'DistractionAttentionParams', actual: kindOf(a) })
    for (const k of ['wk', 'bk', 'wv', 'bv', 'wo', 'bo']) liveTensor(op, `params.attention.${k}`, a[k])
  }
}

/** `distractionLogits` after its checks (the trainers' hot path). */
function logitsOf(OP: string, params: DistractionParams, x: Tensor, embedding: Tensor | undefined, c: DistractionConfig, rng: Rng | undefined): Tensor {
  const drop = { dropout: c.dropout, rng }
  return scope(() => {
    let h: Tensor
    if (c.module === 'layers') {
      if (params.fairness === undefined) throw new ArgumentError({ op: OP, arg: 'params', expected: "fairness layers (module 'layers')", actual: 'none' })
      const k = fairnessPosition(c)
      // No dropout inside the block: it would make the penalty chase the dropout mask's noise.
      h = denseForward(params.body.slice(k), denseForward(params.fairness, denseForward(params.body.slice(0, k), x, drop)), drop)
    } else {
      if (params.attention === undefined) throw new ArgumentError({ op: OP, arg: 'params', expected: "attention parameters (module 'attention')", actual: 'none' })
      if (embedding === undefined) throw new ArgumentError({ op: OP, arg: 'embedding', expected: "the encoder embedding (module 'attention')", actual: 'undefined' })
      h = distractionAttention(params.attention, denseForward(params.body, x, drop), embedding, { tokenDim: c.tokenDim, heads: c.heads })
    }
    return reshape(add(matmul(h, params.head.w), params.head.b), [x.shape[0]!])
  })
}

/** Binary cross-entropy from logits, `mean(softplus(z) − y·z)`, optionally weighted (`Σ w·ℓ / Σ w`). */
export function bceWithLogits(z: Tensor, y: Tensor, w?: Tensor): Tensor {
  const op = 'bceWithLogits'
  for (const [arg, v] of [['z', z], ['y', y], ['w', w]] as const) {
    if (v === undefined && arg === 'w') continue
    liveTensor(op, arg, v)
    if (arg !== 'z' && (v!.rank !== z.rank || v!.shape.some((s, i) => s !== z.shape[i])))
      throw new ShapeError({ op, arg, expected: `the shape of z [${z.shape.join(', ')}]`, actual: v!.shape })
  }
  return scope(() => {
    const l = sub(softplus(z), mul(y, z))
    if (w === undefined) return mean(l)
    return div(sum(mul(l, w)), sum(w))
  })
}

/** One training batch for the Distraction steps. Tensors are owned by whoever created them. */
export interface DistractionBatch {
  /** `[B, d]` classifier input (all features). */
  readonly x: Tensor
  /** `[B, E]` frozen encoder embedding of the same rows. */
  readonly embedding: Tensor
  /** `[B]` float labels 0/1. */
  readonly y: Tensor
  /** Group id per row. */
  readonly groups: ArrayLike<number>
}

/** Losses of one alternating step. */
export interface DistractionStepResult {
  /** η-weighted demographic-parity penalty before the module update. */
  readonly fairnessLoss: number
  /** Cross-entropy before the classifier update. */
  readonly accuracyLoss: number
}

/** Mutable training state: parameters and both optimizers' states. */
export interface DistractionTrainer {
  readonly config: DistractionConfig
  params(): DistractionParams
  /** The alternating step: module ← Adam(η·DP penalty), then classifier ← Adam(BCE) on recomputed logits. */
  step(batch: DistractionBatch): DistractionStepResult
  /** A warm-up step: Adam on cross-entropy over every parameter, the module included. */
  warmupStep(batch: DistractionBatch): DistractionStepResult
  /** Hand the parameters over (the trainer frees only its optimizer state). */
  release(): DistractionParams
  dispose(): void
}

/** Leafwise sum of two gradient trees of the same structure. */
function addTrees<T>(a: T, b: T): T {
  if (isTensor(a)) return add(a, b as Tensor) as T
  if (Array.isArray(a)) return a.map((x, i) => addTrees(x, (b as unknown[])[i])) as T
  return Object.fromEntries(Object.entries(a as object).map(([k, v]) => [k, addTrees(v, (b as Record<string, unknown>)[k])])) as T
}

/** Some of θ_fair's tensors by name (the trainer splits them between its two steps). */
type ModulePart = { [name: string]: Tensor }

/** θ_fair as named tensors: the attention's own names, or `w0, b0, w1, …` for the fairness layers. */
function moduleTensors(p: DistractionParams): ModulePart {
  if (p.fairness !== undefined) return Object.fromEntries(p.fairness.flatMap((l, i) => [[`w${i}`, l.w], [`b${i}`, l.b]]))
  if (p.attention !== undefined) return { ...p.attention }
  throw new ArgumentError({ op: 'distractionTrainer', arg: 'params', expected: 'attention parameters or fairness layers', actual: 'neither' })
}

/**
 * A trainer over `params` (taken over: the trainer replaces and frees them as it steps). `stepsPerEpoch` sets
 * the learning-rate decay period.
 */
export function distractionTrainer(params: DistractionParams, config: Partial<DistractionConfig> = {}, stepsPerEpoch = 1): DistractionTrainer {
  const op = 'distractionTrainer'
  checkParams(op, params)
  const c = distractionConfig(config, op)
  positiveInt(op, 'stepsPerEpoch', stepsPerEpoch)
  const rng = makeRng(c.seed + 1)
  const moduleLr = decayed(c.lrModule, c.decayGamma, c.decayEvery, stepsPerEpoch)
  const optModule = c.moduleOptimizer === 'sgd' ? sgd({ lr: moduleLr }) : adam({ lr: moduleLr })
  const optAcc = adam({ lr: decayed(c.lrClassifier, c.decayGamma, c.decayEvery, stepsPerEpoch) })
  const nLayers = params.fairness?.length ?? 0
  const isFair = (k: string): boolean => (c.moduleBiases === 'fairness' ? true : k.startsWith('w'))
  const split = (m: ModulePart): [ModulePart, ModulePart] => {
    const fair: Record<string, Tensor> = {}, rest: Record<string, Tensor> = {}
    for (const [k, v] of Object.entries(m)) (isFair(k) ? fair : rest)[k] = v
    return [fair, rest]
  }
  const moduleOf = (m: ModulePart): Pick<DistractionParams, 'attention' | 'fairness'> =>
    params.fairness !== undefined
      ? { fairness: Array.from({ length: nLayers }, (_, i) => ({ w: m[`w${i}`]!, b: m[`b${i}`]! })) }
      : { attention: m as unknown as DistractionAttentionParams }
  let [attention, restInit] = split(moduleTensors(params))
  let acc = { body: [...params.body], head: params.head, rest: restInit }
  const full = (f: ModulePart, a: typeof acc): DistractionParams => ({ body: a.body, head: a.head, ...moduleOf({ ...f, ...a.rest }) })
  let sModule = optModule.init(attention)
  let sAcc = optAcc.init(acc)
  const penalty = (att: ModulePart, a: typeof acc, b: DistractionBatch): Tensor =>
    dpPenalty(sigmoid(logitsOf('distractionTrainer', full(att, a), b.x, b.embedding, c, rng)), b.groups, { eta: c.eta, reduce: c.penaltyReduce })
  const fairGrad = valueAndGrad((att: ModulePart, b: DistractionBatch) => penalty(att, acc, b))
  // The authors' accumulated gradient: the penalty's gradient for both parameter sets at the pre-step point.
  const bothGrad = valueAndGrad((p: { fair: ModulePart; acc: typeof acc }, b: DistractionBatch) => penalty(p.fair, p.acc, b))
  const accGrad = valueAndGrad((a: typeof acc, b: DistractionBatch) => bceWithLogits(logitsOf('distractionTrainer', full(attention, a), b.x, b.embedding, c, rng), b.y))
  const optWarm = adam({ lr: c.lrClassifier })
  type Everything = { fair: ModulePart; acc: typeof acc }
  let sWarm: ReturnType<typeof optWarm.init<Everything>> | undefined
  const warmGrad = valueAndGrad((p: Everything, b: DistractionBatch) => bceWithLogits(logitsOf('distractionTrainer', full(p.fair, p.acc), b.x, b.embedding, c, rng), b.y))
  let released = false
  const live = (): void => {
    if (released) throw new ArgumentError({ op: 'distractionTrainer', arg: 'trainer', expected: 'a trainer whose parameters were not released', actual: 'released' })
  }
  return {
    config: c,
    params: () => full(attention, acc),
    step(b) {
      live()
      let lf: Tensor, gf: ModulePart, gPenAcc: typeof acc | undefined
      if (c.classifierPenalty && c.eta > 0) {
        const [l, g] = bothGrad({ fair: attention, acc }, b)
        ;[lf, gf, gPenAcc] = [l, g.fair, g.acc]
      } else [lf, gf] = fairGrad(attention, b)
      ;[attention, sModule] = optModule.step(gf, sModule, attention)
      const [la, ga] = accGrad(acc, b)
      const g = gPenAcc === undefined ? ga : addTrees(ga, gPenAcc)
      ;[acc, sAcc] = optAcc.step(g, sAcc, acc)
      const out = { fairnessLoss: lf.dataSync()[0]!, accuracyLoss: la.dataSync()[0]! }
      dispose([lf, gf, la, ga, gPenAcc, g === ga ? undefined : g])
      return out
    },
    warmupStep(b) {
      live()
      const now: Everything = { fair: attention, acc }
      sWarm ??= optWarm.init(now)
      const [l, g] = warmGrad(now, b)
      let p: Everything
      ;[p, sWarm] = optWarm.step(g, sWarm, now)
      attention = p.fair
      acc = p.acc
      const out = { fairnessLoss: Number.NaN, accuracyLoss: l.dataSync()[0]! }
      dispose([l, g])
      return out
    },
    release() {
      live()
      released = true
      dispose([sModule.slots, sAcc.slots, sWarm?.slots])
      return full(attention, acc)
    },
    dispose() {
      if (released) return
      released = true
      dispose([sModule.slots, sAcc.slots, sWarm?.slots, acc, attention])
    },
  }
}

/** A trained Distraction classifier with its frozen encoder. */
export interface DistractionModel extends Classifier {
  readonly params: DistractionParams
  readonly encoder: ProtectedAttributeEncoder
  readonly config: DistractionConfig
}

/** Wrap parameters and their encoder as a Classifier (evaluation: no dropout, embeddings from the encoder). */
export function distractionModel(params: DistractionParams, encoder: ProtectedAttributeEncoder, config: Partial<DistractionConfig> = {}): DistractionModel {
  const op = 'distractionModel'
  checkParams(op, params)
  encoderArg(op, encoder)
  const c = distractionConfig(config, op)
  return {
    params, encoder, config: c,
    predictProba(data: TabularData) {
      const emb = encoder.embed(data)
      const E = encoder.embeddingDim
      return probaInChunks(data, (x, rows) =>
        logitsOf('distractionModel', params, x, tensor(emb.subarray(rows[0]! * E, (rows[rows.length - 1]! + 1) * E), [rows.length, E], 'float32'), c, undefined),
      )
    },
    // The encoder is shared between models of a sweep, so it is disposed by its owner.
    dispose: () => dispose(params),
  }
}
