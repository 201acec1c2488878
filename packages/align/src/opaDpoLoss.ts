import { ArgumentError, add, mul, scope, stopGradient, type Tensor } from '@heed/tensor'
import { anchorLoss } from './anchorLoss.js'
import { dpoLoss, type DpoMetrics } from './dpoLoss.js'
import { nonNegative, optionKeys, positive, requireNumber, requireObject, requireOptions } from './internal.js'
import { resolveSideOf, type PreferenceLogps } from './preferenceLogps.js'

/**
 * OPA-DPO's four preference pairs. Token-level inputs carry their per-token weights in
 * `chosenTokenWeights`/`rejectedTokenWeights` (see `severityWeights`, `imageRelationWeights`).
 */
export interface OpaDpoPairs {
  /** Pair 1, language: ground-truth answer ≻ the model's original generation (weights 1). */
  readonly standard: PreferenceLogps
  /** Pair 2, language: the expert-revised answer ≻ the original generation (severity weights). */
  readonly revised: PreferenceLogps
  /** Pair 3, image focus: ground truth given the image ≻ the same text given the masked image (`maskImage`). */
  readonly standardImage?: PreferenceLogps
  /** Pair 4, image focus: revised answer given the image ≻ given the masked image (image-relation weights). */
  readonly revisedImage?: PreferenceLogps
}

export interface OpaDpoLossOptions {
  /** Default 0.1. */
  readonly beta?: number
  /** `standard_pair_coef`, default 1. */
  readonly standardCoef?: number
  /** `AI_pair_coef`, default 1. */
  readonly revisedCoef?: number
  /** `CoPO_coef`, weight of the image-masked pairs, default 0.2. */
  readonly imageCoef?: number
  /** `Anchor_coef`, default 1 (0 disables the anchor). */
  readonly anchorCoef?: number
  /** `Anchor_value` δ, default 0. */
  readonly anchorValue?: number
  /** ε of the sigmoid (cDPO). Default 0. */
  readonly labelSmoothing?: number
}

const OPTIONS = optionKeys<OpaDpoLossOptions>({ beta: true, standardCoef: true, revisedCoef: true, imageCoef: true, anchorCoef: true, anchorValue: true, labelSmoothing: true })

export interface OpaDpoLossOutput {
  readonly loss: Tensor
  /** Each term before its coefficient (scalar tensors, detached). */
  readonly terms: { readonly standard: Tensor; readonly revised: Tensor; readonly standardImage?: Tensor; readonly revisedImage?: Tensor; readonly anchor?: Tensor }
  /** Metrics of the standard pair. */
  readonly metrics: DpoMetrics
}

/**
 * OPA-DPO ("Mitigating Hallucinations in LVLMs via DPO: On-Policy Data Hold the Key", CVPR 2025), as its released
 * code composes it: `L = c_std·L1 + c_AI·L2 + c_img·(c_std·L3 + c_AI·L4) + c_anc·L_anc` with weighted sigmoid-DPO
 * terms and `L_anc = mean[−logσ(r1−δ) − logσ(δ−r2) − logσ(r3−δ) − logσ(δ−r4)]` on the chosen rewards
 * `r_i = β·(chosen log-ratio of pair i)`. The released code applies DPO position-wise over tokens; here each
 * pair is sequence-level (weighted token log-ratios summed), as the paper's equations read.
 */
export function opaDpoLoss(pairs: OpaDpoPairs, opts: OpaDpoLossOptions = {}): OpaDpoLossOutput {
  const op = 'opaDpoLoss'
  const p = requireObject(op, 'pairs', pairs)
  const o = requireOptions(op, opts, OPTIONS)
  const beta = positive(op, 'beta', o['beta'] ?? 0.1)
  const cStd = nonNegative(op, 'standardCoef', o['standardCoef'] ?? 1)
  const cAi = nonNegative(op, 'revisedCoef', o['revisedCoef'] ?? 1)
  const cImg = nonNegative(op, 'imageCoef', o['imageCoef'] ?? 0.2)
  const cAnc = nonNegative(op, 'anchorCoef', o['anchorCoef'] ?? 1)
  const delta = requireNumber(op, 'anchorValue', o['anchorValue'] ?? 0)
  const eps = requireNumber(op, 'labelSmoothing', o['labelSmoothing'] ?? 0, x => x >= 0 && x <= 1, 'a number in [0, 1]')
  for (const k of ['standard', 'revised'] as const) if (p[k] === undefined) throw new ArgumentError({ op, arg: `pairs.${k}`, expected: 'a PreferenceLogps batch', actual: 'undefined' })
  if ((p['standardImage'] === undefined) !== (p['revisedImage'] === undefined))
    throw new ArgumentError({ op, arg: p['standardImage'] === undefined ? 'pairs.standardImage' : 'pairs.revisedImage', expected: 'both image-masked pairs or neither', actual: 'only one' })
  return scope(() => {
    const run = (b: PreferenceLogps) => dpoLoss(b, { beta, labelSmoothing: eps })
    const l1 = run(pairs.standard)
    const l2 = run(pairs.revised)
    let loss = add(mul(l1.loss, cStd), mul(l2.loss, cAi))
    const terms: { standard: Tensor; revised: Tensor; standardImage?: Tensor; revisedImage?: Tensor; anchor?: Tensor } = {
      standard: stopGradient(l1.loss),
      revised: stopGradient(l2.loss),
    }
    // Anchor rewards must carry gradient, so they are recomputed from the losses' inputs rather than taken from
    // the (detached) reward outputs.
    const rewardOf = (b: PreferenceLogps): Tensor => chosenReward(b, beta)
    let anchor: Tensor | undefined
    if (cAnc > 0) anchor = add(anchorLoss(rewardOf(pairs.standard), { delta }), anchorLoss(rewardOf(pairs.revised), { delta, direction: 'below' }))
    if (pairs.standardImage !== undefined && pairs.revisedImage !== undefined) {
      const l3 = run(pairs.standardImage)
      const l4 = run(pairs.revisedImage)
      loss = add(loss, mul(add(mul(l3.loss, cStd), mul(l4.loss, cAi)), cImg))
      terms.standardImage = stopGradient(l3.loss)
      terms.revisedImage = stopGradient(l4.loss)
      if (anchor !== undefined)
        anchor = add(anchor, add(anchorLoss(rewardOf(pairs.standardImage), { delta }), anchorLoss(rewardOf(pairs.revisedImage), { delta, direction: 'below' })))
    }
    if (anchor !== undefined) {
      loss = add(loss, mul(anchor, cAnc))
      terms.anchor = stopGradient(anchor)
    }
    return { loss, terms, metrics: l1.metrics }
  })
}

/** `[B]` β·(chosen log-ratio) with gradient, token weights applied. */
const chosenReward = (b: PreferenceLogps, beta: number): Tensor => scope(() => mul(resolveSideOf('opaDpoLoss', b, 'chosen').logratios, beta))

/** OPA-DPO's severity mapping from the expert's sentence score (4 = correct … 1 = worst) to a token weight. */
export const SEVERITY_WEIGHTS: Readonly<Record<1 | 2 | 3 | 4, number>> = { 1: 2.5, 2: 2.0, 3: 1.5, 4: 1.0 }

/** OPA-DPO's image-relation mapping from the expert's error type to a token weight. */
export const IMAGE_RELATION_WEIGHTS: Readonly<Record<'image_recognition_error' | 'correct' | 'language_comprehension_error', number>> = {
  image_recognition_error: 3.0,
  correct: 1.0,
  language_comprehension_error: 1.0,
}
