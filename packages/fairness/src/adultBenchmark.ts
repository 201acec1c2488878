import { either as E } from 'fp-ts'
import { accuracy } from './accuracy.js'
import type { Classifier } from './classifier.js'
import { demographicParityDifference } from './demographicParity.js'
import { equalizedOddsDifference } from './equalizedOdds.js'
import { loadAdult } from './loadAdult.js'
import { paretoFront } from './paretoFront.js'
import { ArgumentError, knownOptions, progressBar } from '@heed/tensor'
import { trainProtectedAttributeEncoder } from './protectedAttributeEncoder.js'
import { reweighing } from './reweighing.js'
import { softDemographicParity } from './softDemographicParity.js'
import { takeRows, type TabularData } from './tabularData.js'
import { trainAdversarialDebiasing } from './trainAdversarialDebiasing.js'
import { trainDistraction } from './trainDistraction.js'
import { trainLagrangian, trainMlp } from './trainMlp.js'
import { shuffledBatches } from './batching.js'
import type { DistractionConfig } from './distraction.js'
import { rng as makeRng } from '@heed/tensor'

/** The Adult (sex) figures the Distraction paper reports (test split, soft ΔDP), from the authors' figure. */
export const PAPER_ADULT = [
  { method: 'Distraction (paper)', accuracy: 0.8309, softDp: 0.0 },
  { method: 'Distraction (paper)', accuracy: 0.8361, softDp: 0.01 },
  { method: 'Unfair MLP (paper)', accuracy: 0.8485, softDp: 0.1882 },
] as const

/** Accuracy and gaps of one model on one split. */
export interface SplitScores {
  readonly accuracy: number
  /** Demographic-parity difference of the thresholded (0.5) predictions. */
  readonly dpGap: number
  /** The paper's soft ΔDP on probabilities. */
  readonly softDp: number
}

/** One evaluated model on the test split (and, for swept methods, on the validation split). */
export interface BenchmarkRow extends SplitScores {
  readonly method: string
  readonly eta?: number
  /** 1-based epoch at which it was evaluated (the last one for the final model). */
  readonly epoch: number
  readonly eoGap: number
  /** The same model on the validation split carved from the training data (what fronts and picks select on). */
  readonly val?: SplitScores
}

export interface AdultBenchmarkOptions {
  /**
   * η of the paper's Distraction as the authors' code trains it: the attention module steps on η·DP, the
   * classifier on BCE + η·DP (`classifierPenalty`). Default [10, 30].
   */
  readonly etas?: readonly number[]
  /** η of the same module with the algorithm as written: classifier step on BCE alone. Default [1000]. */
  readonly writtenEtas?: readonly number[]
  /** η of the fairness-layers module. */
  readonly layerEtas?: readonly number[]
  /** η of the Lagrangian baseline. */
  readonly lagrangianEtas?: readonly number[]
  /** Training epochs of every Distraction and fairness-layer run (default 8). */
  readonly epochs?: number
  /** Epochs of the classifier alone before the penalty starts (default 2). */
  readonly warmupEpochs?: number
  /** Epochs of the protected-attribute encoder (default 2). */
  readonly encoderEpochs?: number
  /** Epochs of the MLP and Lagrangian baselines (default 4). */
  readonly baselineEpochs?: number
  /** Rows per batch (default 256). */
  readonly batchSize?: number
  /** Learning rate of the attention module (default 1e-5 as in the authors' code, Adam). */
  readonly lrModule?: number
  /**
   * Adam learning rates of the fairness layers (classifier step on BCE alone), each run at every η of
   * `layerEtas`; default none (they collapse, see the README). Adam divides out the
   * gradient's scale, and the layers' step sees only the penalty, so for this module the rate, not η, sets how
   * hard it pushes.
   */
  readonly layerLrs?: readonly number[]
  /** Training rows held out for selection (default 5000; 0 selects on the test split, as the paper did). */
  readonly valRows?: number
  /** Use only the first rows of each split (for quick checks). */
  readonly maxTrainRows?: number
  /** Use only the first test rows (for quick checks). */
  readonly maxTestRows?: number
  /** Print progress to stderr (default false). */
  readonly progress?: boolean
  /** Seed of initialisation and batch order (default 0). */
  readonly seed?: number
}

export interface AdultBenchmarkResult {
  /** Final model of every method (and η). */
  readonly rows: readonly BenchmarkRow[]
  /** Every per-epoch evaluation of the swept methods (Distraction modules and the Lagrangian). */
  readonly distractionEpochs: readonly BenchmarkRow[]
  /**
   * Per swept method, the Pareto front over its (η, epoch) points of validation accuracy against validation
   * soft ΔDP (the paper's metric), reported with their test scores.
   */
  readonly front: readonly BenchmarkRow[]
  /**
   * Per swept method and gap (soft, hard): the point of best validation accuracy whose validation gap is ≤ 0.02,
   * if any, with its test scores.
   */
  readonly picks: readonly (BenchmarkRow & { readonly pickedOn: 'soft' | 'hard' })[]
  /** Where fronts and picks were selected. */
  readonly selectedOn: 'validation' | 'test'
  readonly seconds: number
}

/** The gap bound of the target (≥ 0.82 accuracy at a DP gap ≤ 0.02). */
export const TARGET_GAP = 0.02

const head = (d: TabularData, n: number | undefined): TabularData =>
  n === undefined || n >= d.n ? d : { ...d, n, x: d.x.subarray(0, n * d.d), y: d.y.subarray(0, n), groups: d.groups.subarray(0, n) }

/** @internal the given rows of `d` as a dataset of their own. */
export function subset(d: TabularData, rows: ArrayLike<number>): TabularData {
  const { values } = takeRows(d.x, d.d, rows)
  return { ...d, n: rows.length, x: values, y: Uint8Array.from(rows, i => d.y[i]!), groups: Int32Array.from(rows, i => d.groups[i]!) }
}

/** @internal */
export function scores(m: Classifier, data: TabularData): SplitScores & { readonly eoGap: number } {
  const p = m.predictProba(data)
  const yp = Array.from(p, v => (v > 0.5 ? 1 : 0))
  const sf = { sensitiveFeatures: data.groups }
  return { accuracy: accuracy(data.y, yp), dpGap: demographicParityDifference(data.y, yp, sf), softDp: softDemographicParity(p, data.groups), eoGap: equalizedOddsDifference(data.y, yp, sf) }
}

/** @internal */
export function evaluate(method: string, m: Classifier, test: TabularData, epoch: number, eta?: number, val?: TabularData): BenchmarkRow {
  const t = scores(m, test)
  const v = val === undefined ? undefined : scores(m, val)
  return { method, ...(eta === undefined ? {} : { eta }), epoch, ...t, ...(v === undefined ? {} : { val: { accuracy: v.accuracy, dpGap: v.dpGap, softDp: v.softDp } }) }
}

/** Every key of AdultBenchmarkOptions: the record makes the compiler catch a key added to the interface and not here. */
const BENCHMARK_KEYS: Record<keyof AdultBenchmarkOptions, true> = { etas: true, writtenEtas: true, layerEtas: true, lagrangianEtas: true, epochs: true, warmupEpochs: true, encoderEpochs: true, baselineEpochs: true, batchSize: true, lrModule: true, layerLrs: true, valRows: true, maxTrainRows: true, maxTestRows: true, progress: true, seed: true }
const BENCHMARK_OPTIONS = Object.keys(BENCHMARK_KEYS)

/** Train every method on the Adult train split (sensitive attribute: sex) and evaluate on the test split. */
export async function adultBenchmark(opts: AdultBenchmarkOptions = {}): Promise<AdultBenchmarkResult> {
  // checked before loading and training: a typo would otherwise cost minutes of the wrong benchmark
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new ArgumentError({ op: 'adultBenchmark', arg: 'opts', expected: 'an options object', actual: opts === null ? 'null' : Array.isArray(opts) ? 'an array' : typeof opts })
  knownOptions('adultBenchmark', opts, BENCHMARK_OPTIONS)
  const t0 = Date.now()
  const loaded = await loadAdult()
  if (E.isLeft(loaded)) throw loaded.left
  const seed = opts.seed ?? 0
  const full = head(loaded.right.train, opts.maxTrainRows)
  const test = head(loaded.right.test, opts.maxTestRows)
  const valRows = Math.min(opts.valRows ?? 5000, Math.floor(full.n / 5))
  // A seeded permutation, not the file's tail, so the held-out rows follow the training distribution.
  const [perm] = shuffledBatches(full.n, full.n, makeRng(seed + 99))
  const train = valRows > 0 ? subset(full, perm!.subarray(valRows)) : full
  const val = valRows > 0 ? subset(full, perm!.subarray(0, valRows)) : test
  const batchSize = opts.batchSize ?? 256
  const epochs = opts.epochs ?? 8
  const warmupEpochs = opts.warmupEpochs ?? 2
  const baselineEpochs = opts.baselineEpochs ?? 4
  const etas = opts.etas ?? [10, 30]
  const writtenEtas = opts.writtenEtas ?? [1000]
  const layerEtas = opts.layerEtas ?? [100]
  const layerLrs = opts.layerLrs ?? []
  const lagrangianEtas = opts.lagrangianEtas ?? [10, 30, 100]
  const steps = Math.ceil(train.n / batchSize)
  const bar = (label: string, total: number) => (opts.progress === false ? undefined : progressBar({ label: label.padEnd(24), total }))
  const rows: BenchmarkRow[] = []
  const finish = (label: string, m: Classifier, epoch: number, eta?: number): void => {
    rows.push(evaluate(label, m, test, epoch, eta, val))
    m.dispose()
  }

  let pb = bar('MLP (unconstrained)', baselineEpochs * steps)
  finish('MLP (unconstrained)', trainMlp(train, { epochs: baselineEpochs, batchSize, seed, ...(pb ? { progress: pb } : {}) }), baselineEpochs)
  pb?.done()
  pb = bar('Reweighing', baselineEpochs * steps)
  finish('Reweighing + MLP', trainMlp(train, { epochs: baselineEpochs, batchSize, seed, sampleWeight: reweighing(train), ...(pb ? { progress: pb } : {}) }), baselineEpochs)
  pb?.done()
  pb = bar('Adversarial debiasing', baselineEpochs * steps)
  finish('Adversarial debiasing (α = 0.3)', trainAdversarialDebiasing(train, { epochs: baselineEpochs, batchSize, seed, alpha: 0.3, adversaryLr: 1e-2, ...(pb ? { progress: pb } : {}) }), baselineEpochs)
  pb?.done()

  const distractionEpochs: BenchmarkRow[] = []
  for (const eta of lagrangianEtas) {
    pb = bar(`Lagrangian η=${eta}`, baselineEpochs * steps)
    const m = trainLagrangian(train, {
      eta, epochs: baselineEpochs, batchSize, seed, ...(pb ? { progress: pb } : {}),
      onEpoch: (e, model) => distractionEpochs.push(evaluate('Lagrangian (BCE + η·DP)', model, test, e + 1, eta, val)),
    })
    pb?.done()
    finish('Lagrangian (BCE + η·DP)', m, baselineEpochs, eta)
  }

  const encEpochs = opts.encoderEpochs ?? 2
  pb = bar('Protected-attr encoder', encEpochs * steps)
  const encoder = trainProtectedAttributeEncoder(train, { epochs: encEpochs, batchSize, seed, ...(pb ? { progress: pb } : {}) })
  pb?.done(`group accuracy ${encoder.accuracy(test).toFixed(3)}`)
  const runs: { label: string; eta: number; config: Partial<DistractionConfig> }[] = [
    ...etas.map(eta => ({ label: 'Distraction (attention)', eta, config: { module: 'attention' as const, lrModule: opts.lrModule ?? 1e-5, moduleOptimizer: 'adam' as const, classifierPenalty: true } })),
    // SGD so that η sets the module's push; with a BCE-only classifier step nothing else would see η.
    ...writtenEtas.map(eta => ({ label: 'Distraction (attention, BCE-only classifier step)', eta, config: { module: 'attention' as const, lrModule: 1e-4, moduleOptimizer: 'sgd' as const, classifierPenalty: false } })),
    ...layerLrs.flatMap(lr => layerEtas.map(eta => ({ label: `Distraction (layers, lr ${lr})`, eta, config: { module: 'layers' as const, lrModule: lr, moduleOptimizer: 'adam' as const, classifierPenalty: false } }))),
  ]
  try {
    for (const run of runs) {
      pb = bar(`${run.label.replace('Distraction ', '')} η=${run.eta}`, (warmupEpochs + epochs) * steps)
      const m = trainDistraction(train, {
        encoder, eta: run.eta, epochs, warmupEpochs, batchSize, seed, moduleBiases: 'accuracy', decayEvery: 1, decayGamma: 0.9, ...run.config,
        ...(pb ? { progress: pb } : {}),
        onEpoch: (e, model) => {
          if (e >= warmupEpochs) distractionEpochs.push(evaluate(run.label, model, test, e + 1 - warmupEpochs, run.eta, val))
        },
      })
      pb?.done()
      finish(run.label, m, epochs, run.eta)
    }
  } finally {
    encoder.dispose()
  }
  const methods = [...new Set(distractionEpochs.map(r => r.method))]
  const on = (r: BenchmarkRow): SplitScores => r.val ?? r
  const front = methods.flatMap(m => paretoFront(distractionEpochs.filter(r => r.method === m).map(r => ({ row: r, accuracy: on(r).accuracy, gap: on(r).softDp }))).map(p => p.row))
  const picks = methods.flatMap(m =>
    (['soft', 'hard'] as const).flatMap(kind => {
      const ok = distractionEpochs.filter(r => r.method === m && (kind === 'soft' ? on(r).softDp : on(r).dpGap) <= TARGET_GAP)
      const best = ok.sort((a, b) => on(b).accuracy - on(a).accuracy)[0]
      return best === undefined ? [] : [{ ...best, pickedOn: kind }]
    }),
  )
  return { rows, distractionEpochs, front, picks, selectedOn: valRows > 0 ? 'validation' : 'test', seconds: (Date.now() - t0) / 1000 }
}
