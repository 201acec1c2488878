import { Observable, Subject } from 'rxjs'
import { adamw, ArgumentError, dispose, inRange, keep, knownOptions, mul, noGrad, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber, scope, ValueError, warmupCosine, type OptState, type Tensor, kindOf } from '@heed/tensor'
import { trainStep, type StepResult } from '@heed/tensor/stream'
import { lmBatch, type LMBatch } from './lmBatches.js'
import { loadLM, saveLM, type LoadedLM } from './lmCheckpoint.js'
import { lmLoss, type TransformerLM, type TransformerLMParams } from './transformerLM.js'
import { validationLoss } from './validationLoss.js'

/** The recipe of a training run: everything that decides its numbers (saved in its checkpoints). */
export interface LMRecipe {
  /** Optimizer steps in total (the cosine schedule ends here). */
  readonly steps: number
  /** Sequences per batch (each `lm.config.context` tokens). */
  readonly batch: number
  /** Peak learning rate (default 3e-3). */
  readonly lr?: number
  /** Linear warm-up steps (default 5 % of `steps`). */
  readonly warmup?: number
  /** Final learning rate (default lr / 10). */
  readonly minLr?: number
  /** AdamW's decoupled weight decay on every parameter (default 0.01, PyTorch's AdamW default). */
  readonly weightDecay?: number
  readonly beta1?: number
  /** Default 0.95 (GPT-3's value, steadier than 0.999 on short runs). */
  readonly beta2?: number
  /** Global gradient-norm clip (default 1). */
  readonly clipNorm?: number
  /** Seed of the initial parameters and of the data order (default 0). */
  readonly seed?: number
}

export interface TrainLMOptions extends LMRecipe {
  /** The model to train (`transformerLM(…)`); its parameters come from `init` or a checkpoint. */
  readonly lm: TransformerLM
  /** The training text as token ids. */
  readonly train: Int32Array
  /** Held-out text for periodic validation. */
  readonly validation?: Int32Array
  /** Validate every this many steps and at the end (default steps / 10; 0: never). */
  readonly evalEvery?: number
  /** Validation tokens read each time (default 32 768). */
  readonly evalTokens?: number
  /** Emit a checkpoint every this many steps and at the end (default 0: only at the end). */
  readonly checkpointEvery?: number
  /** The tokenizer's characters (stored in checkpoints). */
  readonly vocab: readonly string[]
  /** Checkpoint storage dtype of the parameters (default float32). */
  readonly checkpointDtype?: 'float32' | 'float16'
  /** Start from these parameters instead of `lm.init({ seed })` (copied; the caller keeps them). */
  readonly params?: TransformerLMParams
  /** Continue a run from one of its training checkpoints: parameters, optimizer state and data position. */
  readonly resume?: Uint8Array
}

export type TrainLMEvent =
  | { readonly kind: 'step'; readonly step: number; readonly loss: number; readonly lr: number; readonly gradNorm: number; readonly tokensPerSecond: number; readonly seconds: number }
  | { readonly kind: 'eval'; readonly step: number; readonly nats: number; readonly bitsPerChar: number; readonly tokens: number }
  /** A training checkpoint (safetensors bytes with optimizer state): write it where you like; `resume` takes it. */
  | { readonly kind: 'checkpoint'; readonly step: number; readonly bytes: Uint8Array }

const RECIPE: Record<keyof LMRecipe, true> = { steps: true, batch: true, lr: true, warmup: true, minLr: true, weightDecay: true, beta1: true, beta2: true, clipNorm: true, seed: true }
const RECIPE_KEYS = Object.keys(RECIPE) as readonly (keyof LMRecipe)[]
const TRAIN_LM: Record<keyof TrainLMOptions, true> = {
  ...RECIPE,
  lm: true,
  train: true,
  validation: true,
  evalEvery: true,
  evalTokens: true,
  checkpointEvery: true,
  vocab: true,
  checkpointDtype: true,
  params: true,
  resume: true,
}

/** The recipe with its defaults filled in. */
export function lmRecipe(r: LMRecipe): Required<LMRecipe> {
  return recipeOf('lmRecipe', r, RECIPE_KEYS)
}

/** `lmRecipe` in the name of `op`, over an options object that may carry `allowed` keys besides the recipe's. */
function recipeOf(op: string, r: LMRecipe, allowed: readonly string[]): Required<LMRecipe> {
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new ArgumentError({ op, arg: 'opts', expected: 'an options object { steps, batch, … }', actual: kindOf(r) })
  knownOptions(op, r, allowed)
  const steps = positiveInt(op, 'steps', r.steps)
  const batch = positiveInt(op, 'batch', r.batch)
  const lr = r.lr === undefined ? 3e-3 : positiveNumber(op, 'lr', r.lr)
  if (!Number.isFinite(lr)) throw new ValueError({ op, arg: 'lr', expected: 'a finite learning rate', actual: lr })
  const opt = (k: 'warmup' | 'minLr' | 'weightDecay' | 'clipNorm', check: (v: unknown) => number, fallback: number): number => (r[k] === undefined ? fallback : check(r[k]))
  const beta = (k: 'beta1' | 'beta2', fallback: number): number => (r[k] === undefined ? fallback : inRange(op, k, r[k], 0, 1, { upper: 'open' }))
  const seed = r.seed ?? 0
  if (!Number.isSafeInteger(seed)) throw new ValueError({ op, arg: 'seed', expected: 'an integer seed', actual: seed })
  return {
    steps,
    batch,
    lr,
    warmup: opt('warmup', v => nonNegativeInt(op, 'warmup', v), Math.max(1, Math.round(0.05 * steps))),
    minLr: opt('minLr', v => nonNegativeNumber(op, 'minLr', v), lr / 10),
    weightDecay: opt('weightDecay', v => nonNegativeNumber(op, 'weightDecay', v), 0.01),
    beta1: beta('beta1', 0.9),
    beta2: beta('beta2', 0.95),
    clipNorm: opt('clipNorm', v => positiveNumber(op, 'clipNorm', v), 1),
    seed,
  }
}

/**
 * Train a `transformerLM` on a token array as a pipeline: a stream of batches (`lmBatch`, a counter-based data
 * order) → the shared `trainStep` operator (AdamW, warm-up + cosine schedule, global-norm clipping) → events:
 * one `step` per update, an `eval` on the validation text every `evalEvery` steps and at the end, a `checkpoint`
 * every `checkpointEvery` steps and at the end. Progress is the caller's: pipe the events through a `tap` (the
 * `scripts/train-lm.ts` CLI draws `progressBar` on stderr).
 *
 * The driver pushes the next batch only after the previous step's events (and any checkpoint serialisation)
 * are done, so memory stays flat and unsubscribing stops between steps, freeing everything. Deterministic given
 * the recipe: a run resumed from its checkpoint at step s emits exactly the losses of the uninterrupted run.
 */
export function trainLM(opts: TrainLMOptions): Observable<TrainLMEvent> {
  const op = 'trainLM'
  const recipe = recipeOf(op, opts, Object.keys(TRAIN_LM))
  const { lm } = opts
  if (lm === null || typeof lm !== 'object' || typeof (lm as { init?: unknown }).init !== 'function' || typeof (lm as { config?: { context?: unknown } }).config?.context !== 'number')
    throw new ArgumentError({ op, arg: 'lm', expected: 'a model from transformerLM(…)', actual: kindOf(lm) })
  if (!Array.isArray(opts.vocab) || !opts.vocab.every(c => typeof c === 'string'))
    throw new ArgumentError({ op, arg: 'vocab', expected: "the tokenizer's characters, an array of strings", actual: kindOf(opts.vocab) })
  const T = lm.config.context
  if (!(opts.train instanceof Int32Array) || opts.train.length < T + 2) throw new ValueError({ op, arg: 'train', expected: `an Int32Array of more than ${T + 1} tokens`, actual: opts.train?.length })
  const evalEvery = opts.evalEvery ?? Math.max(1, Math.floor(recipe.steps / 10))
  const ckptEvery = opts.checkpointEvery ?? 0
  let resumed: LoadedLM | undefined
  if (opts.resume !== undefined) {
    resumed = loadLM(opts.resume, { expect: lm.config })
    if (resumed.training === undefined) {
      dispose(resumed.params)
      throw new ValueError({ op, arg: 'resume', expected: 'a training checkpoint (with optimizer state)', actual: 'a parameters-only checkpoint' })
    }
    const saved = resumed.training.meta['recipe'] as Record<string, unknown> | undefined
    for (const k of RECIPE_KEYS)
      if (saved?.[k] !== recipe[k]) {
        dispose([resumed.params, resumed.training.state])
        throw new ValueError({ op, arg: `resume: recipe.${k}`, expected: String(recipe[k]), actual: String(saved?.[k]) }, 'the checkpoint comes from another recipe; an exact resume needs the same one')
      }
  }
  const schedule = warmupCosine({ lr: recipe.lr, warmup: recipe.warmup, total: recipe.steps, minLr: recipe.minLr })
  const optimizer = adamw({ lr: schedule, beta1: recipe.beta1, beta2: recipe.beta2, weightDecay: recipe.weightDecay })
  const batchOpts = { batch: recipe.batch, context: T, seed: recipe.seed }

  return new Observable<TrainLMEvent>(subscriber => {
    let stopped = false
    const initial = resumed?.params ?? opts.params ?? lm.init({ seed: recipe.seed })
    const ownsInitial = opts.params === undefined || resumed !== undefined
    const startState = resumed?.training?.state
    const first = startState?.count ?? 0
    const batches = new Subject<LMBatch>()
    // Snapshots taken in `inspect` (the optimizer frees p and state on the next step), used by the driver for
    // work that must wait for the host: a validation pass, a checkpoint's bytes.
    let evalSnap: { step: number; p: TransformerLMParams } | undefined
    let ckptSnap: { step: number; p: TransformerLMParams; s: OptState<TransformerLMParams> } | undefined
    const steps = batches.pipe(
      trainStep<TransformerLMParams, LMBatch>({
        params: initial,
        optimizer,
        ...(startState ? { state: startState } : {}),
        loss: (p, b) => ({ loss: lmLoss(lm.forward(p, b.x), b.y) }),
        clipNorm: recipe.clipNorm,
        inspect: (p, step, state) => {
          const last = step === recipe.steps
          if (opts.validation !== undefined && evalEvery > 0 && (step % evalEvery === 0 || last)) evalSnap = { step, p: keep(noGrad(() => scope(() => copy(p)))) }
          if ((ckptEvery > 0 && step % ckptEvery === 0) || last)
            ckptSnap = { step, ...keep(noGrad(() => scope(() => ({ p: copy(p), s: { count: state.count, slots: copy(state.slots) } })))) }
        },
      }),
    )
    // Each batch's step result, resolved by the subscription below (synchronously on the CPU, later on WebGPU).
    let resolveStep: ((r: StepResult) => void) | undefined
    let failed = false
    const sub = steps.subscribe({
      next: r => resolveStep?.(r),
      error: err => {
        failed = true
        resolveStep = undefined
        subscriber.error(err)
      },
    })
    // trainStep copied the initial parameters and state; ours are no longer needed.
    if (ownsInitial) dispose(initial)
    dispose(startState)
    const drive = async (): Promise<void> => {
      for (let i = first; i < recipe.steps && !stopped && !failed; i++) {
        const t0 = performance.now()
        const result = new Promise<StepResult>(res => (resolveStep = res))
        // trainStep borrows the batch (stream ownership rule): its maker, this driver, frees it after the step.
        const batch = lmBatch(opts.train, batchOpts, i)
        try {
          batches.next(batch)
        } finally {
          dispose(batch)
        }
        if (failed || stopped) return
        const r = await result
        if (failed || stopped) return
        const seconds = (performance.now() - t0) / 1000
        subscriber.next({ kind: 'step', step: r.step, loss: r.loss, lr: schedule(r.step), gradNorm: r.gradNorm ?? NaN, tokensPerSecond: (recipe.batch * T) / seconds, seconds })
        if (evalSnap !== undefined) {
          const e = evalSnap
          evalSnap = undefined
          try {
            const v = await validationLoss(lm, e.p, opts.validation!, { maxTokens: opts.evalTokens ?? 32_768 })
            if (stopped) return
            subscriber.next({ kind: 'eval', step: e.step, ...v })
          } finally {
            dispose(e.p)
          }
        }
        if (ckptSnap !== undefined) {
          const c = ckptSnap
          ckptSnap = undefined
          try {
            const meta = { recipe, step: c.step, dataPosition: c.step, seed: recipe.seed }
            const bytes = await saveLM(lm, c.p, { vocab: opts.vocab, ...(opts.checkpointDtype ? { dtype: opts.checkpointDtype } : {}), training: { state: c.s, meta } })
            if (stopped) return
            subscriber.next({ kind: 'checkpoint', step: c.step, bytes })
          } finally {
            dispose([c.p, c.s])
          }
        }
        // Let timers, I/O and device callbacks run between steps (and an unsubscribe arrive).
        await new Promise<void>(res => setTimeout(res, 0))
      }
      if (!stopped && !failed) {
        batches.complete()
        subscriber.complete()
      }
    }
    drive().catch(err => subscriber.error(err))
    return () => {
      stopped = true
      sub.unsubscribe()
      dispose([evalSnap?.p, ckptSnap?.p, ckptSnap?.s])
      evalSnap = undefined
      ckptSnap = undefined
    }
  })
}

function copy<T>(tree: T): T {
  const walk = (t: unknown): unknown => {
    if (t !== null && typeof t === 'object' && 'dtype' in t && 'shape' in t) return mul(t as Tensor, 1)
    if (Array.isArray(t)) return t.map(walk)
    if (t !== null && typeof t === 'object') return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, walk(v)]))
    return t
  }
  return walk(tree) as T
}

/** What a resumed run needs to know about a checkpoint before training: its step and recipe. */
export function checkpointStep(bytes: Uint8Array): number {
  if (!(bytes instanceof Uint8Array))
    throw new ArgumentError({ op: 'checkpointStep', arg: 'bytes', expected: 'the bytes of a checkpoint, a Uint8Array (from trainLM or saveLM)', actual: kindOf(bytes) })
  const c = loadLM(bytes)
  try {
    return c.training?.state.count ?? 0
  } finally {
    dispose([c.params, c.training?.state])
  }
}
