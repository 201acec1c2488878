import {
  ArgumentError,
  ValueError,
  add,
  broadcastTo,
  div,
  exp,
  logSigmoid,
  maximum,
  mean,
  minimum,
  mul,
  neg,
  relu,
  scope,
  sigmoid,
  sort,
  square,
  stopGradient,
  sub,
  sum,
  type Tensor,
} from '@heed/tensor'
import { metricMean, positive, requireFloat, requireLike, requireNumber, requireOptions, smoothedLogistic, strictlyGreaterFraction } from './internal.js'
import { resolvePreferenceLogps, type PreferenceLogps, type ResolvedSide } from './preferenceLogps.js'

/** TRL `DPOConfig.loss_type` values (HEAD names; `aot_unpaired` was `aot_pair` up to TRL 0.28). */
export const DPO_LOSS_TYPES = [
  'sigmoid',
  'hinge',
  'ipo',
  'exo_pair',
  'nca_pair',
  'robust',
  'bco_pair',
  'sppo_hard',
  'aot',
  'aot_unpaired',
  'apo_zero',
  'apo_down',
  'discopop',
  'sft',
  'sigmoid_norm',
] as const
export type DpoLossType = (typeof DPO_LOSS_TYPES)[number]

/** f-DPO divergences (TRL `f_divergence_type`); the scores replace the log-ratios inside the logistic-family losses. */
export type FDivergence = 'reverse_kl' | 'forward_kl' | 'js_divergence' | 'alpha_divergence'

export interface DpoLossOptions {
  /** One loss or several summed with `lossWeights` (TRL's MPO: `['sigmoid', 'bco_pair', 'sft']`). Default `sigmoid`. */
  readonly lossType?: DpoLossType | readonly DpoLossType[]
  /** One weight per loss type, default all 1. */
  readonly lossWeights?: readonly number[]
  /** β, the inverse temperature of the implicit reward. Default 0.1. */
  readonly beta?: number
  /**
   * Flex-DPO (3D-properties paper): a separate β for the rejected log-ratio, `u = β·c − β⁻·r`. Below `beta`
   * it damps the gradient on the rejected response. Default `beta`.
   */
  readonly betaRejected?: number
  /**
   * ε: cDPO label smoothing for `sigmoid`, `aot`, `aot_unpaired`; flip rate for `robust` (< 0.5); EXO's ε for
   * `exo_pair` (must be in (0, 1), 1e-3 recommended). Default 0.
   */
  readonly labelSmoothing?: number
  /** DiscoPOP's τ. Default 0.05. */
  readonly discopopTau?: number
  /** Default `reverse_kl` (plain DPO). */
  readonly fDivergence?: FDivergence
  /** α of `alpha_divergence`. Default 0.5. */
  readonly fAlpha?: number
  /** `bco_pair`'s reward shift δ (TRL ≤ 0.28 used a running mean of the rewards; TRL HEAD uses 0). Default 0. */
  readonly bcoDelta?: number
  /** `[B]` per-pair weights, not differentiated (WPO's `w_chosen·w_rejected`, or any importance weights). */
  readonly pairWeights?: Tensor
}

/** TRL's logged metrics, as detached scalar tensors (read them with `readMetrics`). */
export interface DpoMetrics {
  readonly 'rewards/chosen': Tensor
  readonly 'rewards/rejected': Tensor
  readonly 'rewards/accuracies': Tensor
  readonly 'rewards/margins': Tensor
  readonly 'logps/chosen': Tensor
  readonly 'logps/rejected': Tensor
}

export interface DpoLossOutput {
  /** Scalar training loss: Σ_k weight_k · mean(per-pair loss_k). */
  readonly loss: Tensor
  /** `[B]` per-pair losses (weighted sum over the loss types). */
  readonly losses: Tensor
  /** `[B]` detached implicit rewards `β·(logπ(y_w) − logπ_ref(y_w))`. */
  readonly chosenRewards: Tensor
  /** `[B]` detached implicit rewards `β⁻·(logπ(y_l) − logπ_ref(y_l))`. */
  readonly rejectedRewards: Tensor
  readonly metrics: DpoMetrics
}

// exp(80) is ~5.5e34: finite in float32, and beyond it the loss terms are already saturated (TRL clamps at 80).
const EXP_CAP = 80
const cappedExp = (x: Tensor): Tensor => exp(minimum(x, EXP_CAP))

function score(c: Tensor, f: FDivergence, alpha: number): Tensor {
  switch (f) {
    case 'reverse_kl':
      return c
    case 'forward_kl':
      return neg(cappedExp(neg(c)))
    case 'js_divergence':
      return logSigmoid(c)
    case 'alpha_divergence':
      return Math.abs(alpha - 1) < 1e-6 ? c : div(cappedExp(mul(c, alpha - 1)), alpha - 1)
  }
}

interface Ctx {
  readonly op: string
  readonly chosen: ResolvedSide
  readonly rejected: ResolvedSide
  readonly beta: number
  readonly betaR: number
  readonly eps: number
  readonly tau: number
  readonly f: FDivergence
  readonly fAlpha: number
  readonly bcoDelta: number
}

function needLengths(ctx: Ctx, lossType: string): [Tensor, Tensor] {
  const { chosen, rejected, op } = ctx
  if (chosen.lengths === undefined || rejected.lengths === undefined)
    throw new ArgumentError({
      op,
      arg: chosen.lengths === undefined ? 'chosenLengths' : 'rejectedLengths',
      expected: `completion lengths for the length-normalised '${lossType}' loss (or token-level inputs with masks)`,
      actual: 'undefined',
    })
  return [maximum(chosen.lengths, 1), maximum(rejected.lengths, 1)]
}

function sameBeta(ctx: Ctx, lossType: string): void {
  if (ctx.betaR !== ctx.beta)
    throw new ValueError({ op: ctx.op, arg: 'betaRejected', expected: `betaRejected equal to beta for '${lossType}' (Flex-DPO applies to losses of β·c and β·r)`, actual: ctx.betaR })
}

function perPairLoss(lossType: DpoLossType, ctx: Ctx): Tensor {
  const { chosen, rejected, beta, betaR, eps } = ctx
  const c = chosen.logratios
  const r = rejected.logratios
  const bc = mul(c, beta)
  const br = mul(r, betaR)
  // u = β·s(c) − β⁻·s(r): the logistic family's argument, with f-DPO's scores s when asked for.
  const u = (): Tensor => (ctx.f === 'reverse_kl' ? sub(bc, br) : sub(mul(score(c, ctx.f, ctx.fAlpha), beta), mul(score(r, ctx.f, ctx.fAlpha), betaR)))
  // conservative DPO's ε is the probability that a label is flipped: beyond 0.5 the preference itself flips (TRL: [0, 0.5])
  const flipBound = (): void => {
    if (!(eps <= 0.5))
      throw new ValueError({ op: ctx.op, arg: 'labelSmoothing', expected: `ε in [0, 0.5] for '${lossType}' (the chance a preference label is flipped; beyond 0.5 the preference reverses)`, actual: eps })
  }
  switch (lossType) {
    case 'sigmoid':
      flipBound()
      return smoothedLogistic(u(), eps)
    case 'hinge':
      return relu(sub(1, u()))
    case 'ipo': {
      sameBeta(ctx, lossType)
      const [nc, nr] = needLengths(ctx, lossType)
      return square(sub(sub(div(c, nc), div(r, nr)), 1 / (2 * beta)))
    }
    case 'exo_pair': {
      if (!(eps > 0 && eps < 1))
        throw new ValueError({ op: ctx.op, arg: 'labelSmoothing', expected: "ε in (0, 1) for 'exo_pair' (1e-3 recommended)", actual: eps })
      const z = u()
      const qw = sigmoid(z)
      const ql = sigmoid(neg(z))
      return add(mul(qw, sub(logSigmoid(z), Math.log1p(-eps))), mul(ql, sub(logSigmoid(neg(z)), Math.log(eps))))
    }
    case 'nca_pair':
      return sub(sub(neg(logSigmoid(bc)), mul(logSigmoid(neg(bc)), 0.5)), mul(logSigmoid(neg(br)), 0.5))
    case 'robust': {
      if (!(eps >= 0 && eps < 0.5)) throw new ValueError({ op: ctx.op, arg: 'labelSmoothing', expected: "ε in [0, 0.5) for 'robust'", actual: eps })
      const z = u()
      return div(add(mul(logSigmoid(z), -(1 - eps)), mul(logSigmoid(neg(z)), eps)), 1 - 2 * eps)
    }
    case 'bco_pair':
      return sub(neg(logSigmoid(sub(bc, ctx.bcoDelta))), logSigmoid(neg(sub(br, ctx.bcoDelta))))
    case 'sppo_hard': {
      sameBeta(ctx, lossType)
      const a = 1 / (2 * beta)
      return add(square(sub(c, a)), square(add(r, a)))
    }
    case 'aot':
    case 'aot_unpaired': {
      sameBeta(ctx, lossType)
      // AOT compares the batch's sorted distributions, so the pairing inside the batch is deliberately dropped:
      // `aot` sorts policy and reference log-prob gaps, `aot_unpaired` sorts chosen and rejected log-ratios.
      const delta =
        lossType === 'aot'
          ? sub(sort(sub(chosen.logps, rejected.logps)), sort(sub(sub(chosen.logps, c), sub(rejected.logps, r))))
          : sub(sort(c), sort(r))
      flipBound()
      return smoothedLogistic(mul(delta, beta), eps)
    }
    case 'apo_zero':
      return add(sub(1, sigmoid(bc)), sigmoid(br))
    case 'apo_down':
      return add(sigmoid(bc), sub(1, sigmoid(sub(bc, br))))
    case 'discopop': {
      const z = u()
      const m = sigmoid(div(z, ctx.tau))
      // e^{−z}·m is inf·0 for z ≪ 0 without the cap; capped, it is a finite number times an underflowed 0.
      return add(mul(neg(logSigmoid(z)), sub(1, m)), mul(cappedExp(neg(z)), m))
    }
    case 'sft': {
      const [nc] = needLengths(ctx, lossType)
      const nll = div(neg(sum(chosen.logps)), maximum(sum(nc), 1))
      return broadcastTo(nll, chosen.logps.shape)
    }
    case 'sigmoid_norm': {
      const [nc, nr] = needLengths(ctx, lossType)
      return neg(logSigmoid(sub(mul(div(c, nc), beta), mul(div(r, nr), betaR))))
    }
  }
}

const DPO_OPTIONS = ['lossType', 'lossWeights', 'beta', 'betaRejected', 'labelSmoothing', 'discopopTau', 'fDivergence', 'fAlpha', 'bcoDelta', 'pairWeights']

/**
 * DPO and TRL's `DPOTrainer` loss family on a batch of preference pairs. Every formula is written in
 * log-sigmoid/softplus form, so margins of ±1e4 give finite losses and gradients. See the package README for
 * each formula and its source; defaults are TRL's (`beta` 0.1, `labelSmoothing` 0, `discopopTau` 0.05).
 */
export function dpoLoss(batch: PreferenceLogps, opts: DpoLossOptions = {}): DpoLossOutput {
  return dpoLossAs('dpoLoss', batch, opts)
}

/** @internal `dpoLoss` in the name of the public function called (`flexDpoLoss` builds on it). */
export function dpoLossAs(op: string, batch: PreferenceLogps, opts: DpoLossOptions): DpoLossOutput {
  const o = requireOptions(op, opts, DPO_OPTIONS)
  const types: readonly unknown[] = o['lossType'] === undefined ? ['sigmoid'] : Array.isArray(o['lossType']) ? (o['lossType'] as unknown[]) : [o['lossType']]
  if (types.length === 0) throw new ValueError({ op, arg: 'lossType', expected: 'at least one loss type', actual: '[]' })
  for (const t of types)
    if (!(DPO_LOSS_TYPES as readonly unknown[]).includes(t)) throw new ValueError({ op, arg: 'lossType', expected: `one of ${DPO_LOSS_TYPES.join(', ')}`, actual: String(t) })
  const weightsOpt = o['lossWeights']
  if (weightsOpt !== undefined && (!Array.isArray(weightsOpt) || weightsOpt.length !== types.length))
    throw new ValueError({ op, arg: 'lossWeights', expected: `an array of ${types.length} numbers (one per loss type)`, actual: Array.isArray(weightsOpt) ? `${weightsOpt.length} numbers` : String(weightsOpt) })
  const lossWeights = types.map((_, i) => (weightsOpt === undefined ? 1 : requireNumber(op, `lossWeights[${i}]`, (weightsOpt as unknown[])[i])))
  const beta = positive(op, 'beta', o['beta'] ?? 0.1)
  const betaR = positive(op, 'betaRejected', o['betaRejected'] ?? beta)
  const eps = requireNumber(op, 'labelSmoothing', o['labelSmoothing'] ?? 0, x => x >= 0 && x <= 1, 'a number in [0, 1]')
  const tau = positive(op, 'discopopTau', o['discopopTau'] ?? 0.05)
  const f = (o['fDivergence'] ?? 'reverse_kl') as FDivergence
  if (!['reverse_kl', 'forward_kl', 'js_divergence', 'alpha_divergence'].includes(f))
    throw new ValueError({ op, arg: 'fDivergence', expected: 'reverse_kl, forward_kl, js_divergence or alpha_divergence', actual: String(f) })
  const fAlpha = requireNumber(op, 'fAlpha', o['fAlpha'] ?? 0.5)
  const bcoDelta = requireNumber(op, 'bcoDelta', o['bcoDelta'] ?? 0)
  return scope(() => {
    const { chosen, rejected } = resolvePreferenceLogps(op, batch)
    const pairWeights = o['pairWeights'] === undefined ? undefined : stopGradient(requireLike(op, 'pairWeights', o['pairWeights'], chosen.logps, 'the batch'))
    const ctx: Ctx = { op, chosen, rejected, beta, betaR, eps, tau, f, fAlpha, bcoDelta }
    let losses: Tensor | undefined
    types.forEach((t, i) => {
      const l = mul(perPairLoss(t as DpoLossType, ctx), lossWeights[i]!)
      losses = losses === undefined ? l : add(losses, l)
    })
    const weighted = pairWeights === undefined ? losses! : mul(losses!, pairWeights)
    const chosenRewards = stopGradient(mul(chosen.logratios, beta))
    const rejectedRewards = stopGradient(mul(rejected.logratios, betaR))
    return {
      loss: mean(weighted),
      losses: weighted,
      chosenRewards,
      rejectedRewards,
      metrics: preferenceMetrics(chosenRewards, rejectedRewards, chosen.logps, rejected.logps),
    }
  })
}

/** TRL's reward metrics from per-pair rewards and summed log-probs (all detached). */
export function preferenceMetrics(chosenRewards: Tensor, rejectedRewards: Tensor, chosenLogps: Tensor, rejectedLogps: Tensor): DpoMetrics {
  const op = 'preferenceMetrics'
  // O(1) each: rewards pair one to one (the accuracy compares them entry by entry); log-probs are only averaged
  const cr = requireFloat(op, 'chosenRewards', chosenRewards)
  requireLike(op, 'rejectedRewards', rejectedRewards, cr, 'chosenRewards')
  requireFloat(op, 'chosenLogps', chosenLogps)
  requireFloat(op, 'rejectedLogps', rejectedLogps)
  return scope(() => ({
    'rewards/chosen': metricMean(chosenRewards),
    'rewards/rejected': metricMean(rejectedRewards),
    'rewards/accuracies': strictlyGreaterFraction(chosenRewards, rejectedRewards),
    'rewards/margins': metricMean(sub(chosenRewards, rejectedRewards)),
    'logps/chosen': metricMean(chosenLogps),
    'logps/rejected': metricMean(rejectedLogps),
  }))
}
