import { add, greater, logSigmoid, mean, mul, neg, scope, stopGradient, sub, square, type Tensor } from '@heed/tensor'
import { fraction, optionKeys, positive, requireFloat, requireLike, requireObject, requireOptions, requireRank } from './internal.js'

/**
 * Noise-prediction errors of a preference pair of images. Each is `[B]` per-sample MSEs, or `[B, ...]`
 * elementwise squared errors averaged over every axis but the first inside.
 */
export interface DiffusionErrors {
  /** ‖ε_θ(x_t^w, t) − ε^w‖² of the policy on the preferred image. */
  readonly modelErrChosen: Tensor
  readonly modelErrRejected: Tensor
  /** The same with the frozen reference network (no gradient needed). */
  readonly refErrChosen: Tensor
  readonly refErrRejected: Tensor
}

export interface DiffusionDpoLossOptions {
  /** β_dpo. Default 5000 (Diffusion-DPO's SD1.5/SDXL launchers; InPO uses 2000 on SD1.5). */
  readonly beta?: number
}

export interface DiffusionDpoLossOutput {
  readonly loss: Tensor
  /** `[B]` per-pair losses. */
  readonly losses: Tensor
  /** `[B]` the logistic's argument `−½β((m_w − m_l) − (r_w − r_l))`, detached. */
  readonly inside: Tensor
  readonly metrics: {
    readonly implicit_acc: Tensor
    readonly model_mse: Tensor
    readonly ref_mse: Tensor
  }
}

const OPTIONS = optionKeys<DiffusionDpoLossOptions>({ beta: true })

function perSample(op: string, arg: string, v: unknown): Tensor {
  const t = requireFloat(op, arg, v)
  if (t.rank < 1) requireRank(op, arg, t, [1])
  return t.rank === 1 ? t : mean(t, { axis: Array.from({ length: t.rank - 1 }, (_, i) => i + 1) })
}

/**
 * Diffusion-DPO (Wallace et al., "Diffusion Model Alignment Using Direct Preference Optimization") and InPO
 * (DDIM-InPO, CVPR 2025) on noise-prediction errors: `L = −logσ(−½β((m_w − m_l) − (r_w − r_l)))`. The two
 * methods differ only in where `x_t` and `ε` come from (fresh Gaussian noise shared by the pair, or DDIM
 * inversion of each latent); see `noisePredictionErrors` and its `NoiseSource`s.
 */
export function diffusionDpoLoss(errors: DiffusionErrors, opts: DiffusionDpoLossOptions = {}): DiffusionDpoLossOutput {
  const op = 'diffusionDpoLoss'
  const e = requireObject(op, 'errors', errors)
  const o = requireOptions(op, opts, OPTIONS)
  const beta = positive(op, 'beta', o['beta'] ?? 5000)
  const first = requireFloat(op, 'modelErrChosen', e['modelErrChosen'])
  for (const k of ['modelErrRejected', 'refErrChosen', 'refErrRejected']) requireLike(op, k, e[k], first, 'modelErrChosen')
  return scope(() => {
    const mw = perSample(op, 'modelErrChosen', e['modelErrChosen'])
    const ml = perSample(op, 'modelErrRejected', e['modelErrRejected'])
    const rw = stopGradient(perSample(op, 'refErrChosen', e['refErrChosen']))
    const rl = stopGradient(perSample(op, 'refErrRejected', e['refErrRejected']))
    const inside = mul(sub(sub(mw, ml), sub(rw, rl)), -0.5 * beta)
    const losses = neg(logSigmoid(inside))
    const detached = stopGradient(inside)
    return {
      loss: mean(losses),
      losses,
      inside: detached,
      metrics: {
        implicit_acc: stopGradient(fraction(greater(detached, 0), detached)),
        // Diffusion-DPO logs the pair-averaged MSE: ½(mean m_w + mean m_l).
        model_mse: stopGradient(mul(add(mean(mw), mean(ml)), 0.5)),
        ref_mse: stopGradient(mul(add(mean(rw), mean(rl)), 0.5)),
      },
    }
  })
}

/** Elementwise squared error, the `[B, ...]` form `diffusionDpoLoss` accepts. */
export function squaredError(pred: Tensor, target: Tensor): Tensor {
  const op = 'squaredError'
  // one to one, never broadcast: a model output of another shape than its noise target is a bug, not a mean
  const p = requireFloat(op, 'pred', pred)
  const t = requireLike(op, 'target', target, p, 'pred')
  return scope(() => square(sub(p, t)))
}

/**
 * @internal `squaredError` in the name of `op` (noisePredictionErrors, whose `pred` is a model's output and whose
 * target is the noise). One to one, never broadcast: a model output of another shape than its noise target is a
 * bug, not a mean; the prediction is the one named at fault.
 */
export function squaredErrorAs(op: string, predArg: string, pred: Tensor, targetArg: string, target: Tensor): Tensor {
  const t = requireFloat(op, targetArg, target)
  const p = requireLike(op, predArg, pred, t, targetArg)
  return scope(() => square(sub(p, t)))
}
