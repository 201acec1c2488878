import { ArgumentError, ValueError, add, inRange, knownOptions, positiveInt, mul, noGrad, random, scope, sub, div, type Rng, type Tensor } from '@heed/tensor'
import { optionKeys, requireFloat, requireLike, requireNumber, requireObject, requireOptions } from './internal.js'
import { squaredErrorAs } from './diffusionDpoLoss.js'
import type { DiffusionErrors } from './diffusionDpoLoss.js'

/** An ε-prediction network: `(x_t [B, ...], t) → ε̂ [B, ...]`. */
export type EpsModel = (xt: Tensor, t: number) => Tensor

/** A noised latent and the noise target the network must predict. */
export interface Noised {
  readonly xt: Tensor
  readonly eps: Tensor
}

/**
 * Where `x_t` and the target `ε` come from for a preference pair at timestep `t`. The pluggable part that
 * distinguishes Diffusion-DPO (`gaussianNoise`) from InPO (`ddimInversionNoise`). The source owns nothing it
 * returns: the caller disposes `xt` and `eps`.
 */
export type NoiseSource = (pair: { readonly chosen: Tensor; readonly rejected: Tensor }, t: number) => { readonly chosen: Noised; readonly rejected: Noised }

function alphaBarAt(op: string, alphasCumprod: readonly number[], t: number): number {
  if (!Number.isInteger(t) || t < 0 || t >= alphasCumprod.length)
    throw new ValueError({ op, arg: 't', expected: `an integer timestep in [0, ${alphasCumprod.length})`, actual: t })
  const a = alphasCumprod[t]!
  if (!(a > 0 && a <= 1)) throw new ValueError({ op, arg: `alphasCumprod[${t}]`, expected: 'a number in (0, 1]', actual: a })
  return a
}

/** `x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε`. */
const forwardNoise = (x0: Tensor, eps: Tensor, ab: number): Tensor => add(mul(x0, Math.sqrt(ab)), mul(eps, Math.sqrt(1 - ab)))

function checkSchedule(op: string, v: unknown): readonly number[] {
  if (!Array.isArray(v) || v.length === 0 || v.some(x => typeof x !== 'number'))
    throw new ArgumentError({ op, arg: 'alphasCumprod', expected: 'a non-empty array of numbers (ᾱ_t per timestep)', actual: Array.isArray(v) ? 'an array with non-numbers' : typeof v })
  return v as number[]
}

/** A source's pair: two float latents of one shape (a source is a public function too, called by user code). */
function checkPair(op: string, pair: unknown): void {
  const p = requireObject(op, 'pair', pair)
  const chosen = requireFloat(op, 'pair.chosen', p['chosen'])
  requireLike(op, 'pair.rejected', p['rejected'], chosen, 'pair.chosen')
}

/** A seed or a generator, each optional and not both: the two would otherwise race for which one wins. */
function noiseSource(op: string, o: Record<string, unknown>): { rng?: Rng; seed?: number } {
  const rng = o['rng']
  const seed = o['seed']
  if (rng !== undefined && (rng === null || typeof (rng as Rng).next !== 'function'))
    throw new ArgumentError({ op, arg: 'rng', expected: 'a random generator (random.rng)', actual: rng === null ? 'null' : typeof rng })
  if (seed !== undefined) requireNumber(op, 'seed', seed, Number.isInteger, 'an integer seed')
  return { ...(rng !== undefined ? { rng: rng as Rng } : {}), ...(seed !== undefined ? { seed: seed as number } : {}) }
}

export interface GaussianNoiseOptions {
  /** The noise schedule ᾱ_t, one entry per timestep. */
  readonly alphasCumprod: readonly number[]
  /** Random generator of the noise (wins over `seed`). */
  readonly rng?: Rng
  /** Seed of a fresh generator, advanced by one per call (default: the global generator). */
  readonly seed?: number
}

const GAUSSIAN_OPTIONS = optionKeys<GaussianNoiseOptions>({ alphasCumprod: true, rng: true, seed: true })

/**
 * Diffusion-DPO's noise: one Gaussian ε per pair, shared by the preferred and the dispreferred image (the
 * paper's estimator compares the two errors under the same noise).
 */
export function gaussianNoise(opts: GaussianNoiseOptions): NoiseSource {
  const op = 'gaussianNoise'
  if (opts === undefined) throw new ArgumentError({ op, arg: 'opts', expected: '{ alphasCumprod, rng?, seed? }', actual: 'undefined' })
  const o = requireOptions(op, opts, GAUSSIAN_OPTIONS)
  noiseSource(op, o)
  const schedule = checkSchedule(op, o['alphasCumprod'])
  let calls = 0
  return (pair, t) => {
    checkPair(op, pair)
    const ab = alphaBarAt(op, schedule, t)
    // A fixed seed advances per call: the same noise every step would make training see one ε forever.
    const src = o['rng'] !== undefined ? { rng: o['rng'] as Rng } : o['seed'] !== undefined ? { seed: (o['seed'] as number) + calls++ } : {}
    const eps = random.normal(pair.chosen.shape, { ...src, dtype: pair.chosen.dtype as 'float32' })
    const epsL = add(eps, 0)
    return scope(() => ({ chosen: { xt: forwardNoise(pair.chosen, eps, ab), eps }, rejected: { xt: forwardNoise(pair.rejected, epsL, ab), eps: epsL } }))
  }
}

export interface DdimInversionOptions {
  /** The network that drives the inversion (InPO uses the current policy, without gradient). */
  readonly model: EpsModel
  /** The noise schedule ᾱ_t, one entry per timestep (the same schedule the model was trained on). */
  readonly alphasCumprod: readonly number[]
  /** Inversion steps over [0, t]. Default 10 (InPO's `DDIMInverseScheduler`). */
  readonly steps?: number
  /** Scale of the fresh noise added after each inversion step. Default 0.1 (InPO's `inversion_eta`). */
  readonly eta?: number
  /** Random generator of the fresh noise (wins over `seed`). */
  readonly rng?: Rng
  /** Seed of a fresh generator per call (default 0). */
  readonly seed?: number
}

const DDIM_OPTIONS = optionKeys<DdimInversionOptions>({ model: true, alphasCumprod: true, steps: true, eta: true, rng: true, seed: true })

/**
 * InPO's noise: DDIM inversion of each latent from 0 up to `t` with `model` (no gradient), adding
 * `eta·σ·N(0, I)` after each step (σ = the forward process's std between the two timesteps), then the noise
 * target reparametrised from the reached latent, `ε = (x_t − √ᾱ_t·x_0)/√(1−ᾱ_t)`. Each image gets its own noise.
 */
export function ddimInversionNoise(opts: DdimInversionOptions): NoiseSource {
  const op = 'ddimInversionNoise'
  if (opts === undefined) throw new ArgumentError({ op, arg: 'opts', expected: '{ model, alphasCumprod, … }', actual: 'undefined' })
  const o = requireOptions(op, opts, DDIM_OPTIONS)
  noiseSource(op, o)
  if (typeof o['model'] !== 'function') throw new ArgumentError({ op, arg: 'model', expected: 'a function (xt, t) => eps', actual: typeof o['model'] })
  const model = o['model'] as EpsModel
  const schedule = checkSchedule(op, o['alphasCumprod'])
  const steps = requireNumber(op, 'steps', o['steps'] ?? 10, x => Number.isInteger(x) && x >= 1, 'a positive integer')
  const eta = requireNumber(op, 'eta', o['eta'] ?? 0.1, x => x >= 0, 'a number ≥ 0')
  const gen: Rng | undefined = o['rng'] as Rng | undefined
  const seed = o['seed'] as number | undefined
  let calls = 0
  const invert = (x0: Tensor, t: number): Noised =>
    noGrad(() =>
      scope(() => {
        const abT = alphaBarAt(op, schedule, t)
        // Evenly spaced timesteps strictly between 0 and t, then t itself: the last step lands exactly on t.
        const grid = Array.from({ length: steps }, (_, i) => Math.round(((i + 1) * t) / steps)).filter((s, i, a) => s > 0 && (i === 0 || s !== a[i - 1]))
        let x = x0
        let prevAb = 1
        let prevT = 0
        for (const s of grid) {
          const ab = alphaBarAt(op, schedule, s)
          const epsHat = model(x, prevT)
          const x0Hat = div(sub(x, mul(epsHat, Math.sqrt(1 - prevAb))), Math.sqrt(prevAb))
          x = add(mul(x0Hat, Math.sqrt(ab)), mul(epsHat, Math.sqrt(1 - ab)))
          const sigma = Math.sqrt(Math.max(0, 1 - ab / prevAb))
          if (eta > 0 && sigma > 0) {
            const src = gen !== undefined ? { rng: gen } : { seed: (seed ?? 0) + calls++ }
            x = add(x, mul(random.normal(x0.shape, { ...src, dtype: x0.dtype as 'float32' }), eta * sigma))
          }
          prevAb = ab
          prevT = s
        }
        if (grid.length === 0) x = add(x0, 0)
        const eps = abT >= 1 ? mul(x, 0) : div(sub(x, mul(x0, Math.sqrt(abT))), Math.sqrt(1 - abT))
        return { xt: x, eps }
      }),
    )
  return (pair, t) => {
    checkPair(op, pair)
    return { chosen: invert(pair.chosen, t), rejected: invert(pair.rejected, t) }
  }
}

export interface NoisePredictionErrorsInput {
  /** The trained ε-network (gradients flow through it). */
  readonly model: EpsModel
  /** The frozen reference ε-network (run without gradient). */
  readonly reference: EpsModel
  /** `[B, ...]` clean latents of the preferred and dispreferred images. */
  readonly chosen: Tensor
  readonly rejected: Tensor
  /** Timestep shared by the batch. */
  readonly t: number
  readonly noise: NoiseSource
}

const INPUT_KEYS = optionKeys<NoisePredictionErrorsInput>({ model: true, reference: true, chosen: true, rejected: true, t: true, noise: true })

/**
 * The four elementwise squared errors `diffusionDpoLoss` takes, for one timestep: noise both latents with
 * `noise`, run policy and reference on them. The noise source runs outside any gradient (its latents are data).
 */
export function noisePredictionErrors(input: NoisePredictionErrorsInput): DiffusionErrors {
  const op = 'noisePredictionErrors'
  const i = requireObject(op, 'input', input)
  knownOptions(op, i, INPUT_KEYS)
  for (const k of ['model', 'reference', 'noise'] as const)
    if (typeof i[k] !== 'function') throw new ArgumentError({ op, arg: k, expected: 'a function', actual: typeof i[k] })
  const chosen = requireFloat(op, 'chosen', i['chosen'])
  requireLike(op, 'rejected', i['rejected'], chosen, 'chosen')
  const t = i['t'] as number
  return scope(() => {
    const n = noGrad(() => (i['noise'] as NoiseSource)({ chosen, rejected: i['rejected'] as Tensor }, t))
    const model = i['model'] as EpsModel
    const reference = i['reference'] as EpsModel
    return {
      modelErrChosen: squaredErrorAs(op, 'model(chosen)', model(n.chosen.xt, t), 'noise(chosen).eps', n.chosen.eps),
      modelErrRejected: squaredErrorAs(op, 'model(rejected)', model(n.rejected.xt, t), 'noise(rejected).eps', n.rejected.eps),
      refErrChosen: noGrad(() => squaredErrorAs(op, 'reference(chosen)', reference(n.chosen.xt, t), 'noise(chosen).eps', n.chosen.eps)),
      refErrRejected: noGrad(() => squaredErrorAs(op, 'reference(rejected)', reference(n.rejected.xt, t), 'noise(rejected).eps', n.rejected.eps)),
    }
  })
}

const MAX_STEPS = 1_000_000

/** A linear-β DDPM schedule's ᾱ_t (β from `betaStart` to `betaEnd` over `steps`), Stable Diffusion's defaults. */
export function alphasCumprod(steps = 1000, betaStart = 0.00085, betaEnd = 0.012): number[] {
  const op = 'alphasCumprod'
  // A schedule is a plain array: cap its length well below what would exhaust the heap (diffusion uses ≤ 10⁴).
  if (positiveInt(op, 'steps', steps) > MAX_STEPS) throw new ValueError({ op, arg: 'steps', expected: `at most ${MAX_STEPS} steps`, actual: steps })
  inRange(op, 'betaStart', betaStart, 0, 1, { upper: 'open' })
  inRange(op, 'betaEnd', betaEnd, 0, 1, { upper: 'open' })
  const out: number[] = []
  let a = 1
  for (let i = 0; i < steps; i++) {
    // SD's "scaled_linear": linear in √β.
    const b = (Math.sqrt(betaStart) + ((Math.sqrt(betaEnd) - Math.sqrt(betaStart)) * i) / Math.max(steps - 1, 1)) ** 2
    a *= 1 - b
    out.push(a)
  }
  return out
}

