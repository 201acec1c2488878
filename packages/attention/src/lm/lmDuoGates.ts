import { abs, add, adam, clamp, dispose, gather, keep, mean, mul, noGrad, scope, square, sub, sum, tensor, valueAndGrad, ValueError, type Tensor } from '@heed/tensor'
import type { AttentionFn } from '../multiHeadAttention.js'
import { DUO_DEFAULTS, duoAttention } from '../operators/duo.js'
import { sdpaOf } from '../operators/namedOperator.js'
import { rmsNorm } from '../transformerBlock.js'
import { lmBatch } from './lmBatches.js'
import { transformerLM, type TransformerLM, type TransformerLMParams } from './transformerLM.js'
import { operatorOptions } from '../operators/strict.js'
import { lmArg, paramsArg, tokenIds } from './check.js'

export interface LmDuoGatesOptions {
  /** Attention-sink tokens a streaming head keeps (default 4: a character model's sinks are few). */
  readonly sink?: number
  /** Recent tokens a streaming head keeps (default 64). */
  readonly recent?: number
  /** Window length of the distillation batches (default 4 × (sink + recent), so streaming heads lose context). */
  readonly context?: number
  /** Windows per step (default 2). */
  readonly batch?: number
  /** Optimizer steps (default 40). */
  readonly steps?: number
  /** L1 weight on the gates (default DuoAttention's 0.05). */
  readonly lambda?: number
  /** Adam learning rate of the gates (default DuoAttention's 0.02). */
  readonly lr?: number
  /** Data-order seed (default 0). */
  readonly seed?: number
  /** Called after each step with the loss. */
  readonly onStep?: (step: number, loss: number) => void
}

export interface LmDuoGates {
  /** Trained gates, `[layer][kvHead]`, in [0, 1]: high = a retrieval head (keeps its full KV). */
  readonly gates: readonly (readonly number[])[]
  readonly sink: number
  readonly recent: number
  /** Distillation loss per step. */
  readonly losses: readonly number[]
}

/**
 * DuoAttention's retrieval-head identification (Xiao et al. 2024, "DuoAttention: Efficient Long-Context LLM
 * Inference with Retrieval and Streaming Heads", §3.1) on a trained `transformerLM`: every kv head of every layer
 * mixes full and streaming (sink + recent) attention with a gate α ∈ [0, 1], the model's weights stay frozen, and
 * the gates descend `mean ‖h_full − h_mixed‖² + λ·Σ|α|` — the distance between the final hidden states of the
 * full model and of the gated one, over the positions beyond the streaming window — with Adam, clamped to [0, 1]
 * after every step. Heads whose gates stay high are the ones the model needs long context for; `duoDeploy` turns
 * the gates into per-head cache policies.
 */
const LM_DUO_GATES_OPTIONS: Record<keyof LmDuoGatesOptions, true> = { sink: true, recent: true, context: true, batch: true, steps: true, lambda: true, lr: true, seed: true, onStep: true }

export function lmDuoGates(lm: TransformerLM, params: TransformerLMParams, tokens: Int32Array, opts: LmDuoGatesOptions = {}): LmDuoGates {
  const op = 'lmDuoGates'
  lmArg(op, lm)
  paramsArg(op, params)
  tokenIds(op, 'tokens', tokens)
  operatorOptions(op, opts, Object.keys(LM_DUO_GATES_OPTIONS))
  const sink = opts.sink ?? 4
  const recent = opts.recent ?? 64
  const T = opts.context ?? 4 * (sink + recent)
  const B = opts.batch ?? 2
  const steps = opts.steps ?? 40
  const lambda = opts.lambda ?? DUO_DEFAULTS.lambda
  if (!(Number.isInteger(steps) && steps >= 1)) throw new ValueError({ op, arg: 'steps', expected: 'a positive integer', actual: steps })
  if (!(T > sink + recent)) throw new ValueError({ op, arg: 'context', expected: `more than sink + recent = ${sink + recent} tokens`, actual: T })
  const { layers, kvHeads } = lm.config
  // Closed-over tensors are constants to valueAndGrad: the model's weights stay frozen, only the gates move.
  const frozen = params
  // The same model with each layer's attention gated by its own α (weights shared with `lm`).
  const gated = (alphas: readonly Tensor[]): TransformerLM => {
    const { rope, ...config } = lm.config
    return transformerLM({
      ...config,
      rope,
      attention: l => {
        const fn: AttentionFn = (q, k, v, o) => ({ out: duoAttention(q, k, v, { ...sdpaOf(o), alpha: alphas[l]!, sink, recent }).out })
        return fn
      },
    })
  }
  const rows = Array.from({ length: T - (sink + recent) }, (_, i) => sink + recent + i)
  const rowIdx = tensor(Int32Array.from(rows), [rows.length], 'int32')
  let alphas: Tensor[] = Array.from({ length: layers }, () => tensor(new Array(kvHeads).fill(1), [kvHeads], 'float32'))
  const optimizer = adam({ lr: opts.lr ?? DUO_DEFAULTS.lr })
  let state = optimizer.init(alphas)
  const losses: number[] = []
  try {
    for (let s = 0; s < steps; s++) {
      const batch = lmBatch(tokens, { batch: B, context: T, seed: opts.seed ?? 0 }, s)
      try {
        const target = noGrad(() => keep(scope(() => embedThrough(lm, frozen, batch.x))))
        try {
          const [value, grads] = valueAndGrad((a: Tensor[]) => {
            const h = embedThrough(gated(a), frozen, batch.x)
            const d = sub(h, target)
            const sq = sum(square(d), { axis: -1 })
            // positions beyond the streaming window only: before it, both branches see the same keys
            const picked = mean(gatherRows(sq, rowIdx))
            return add(picked, mul(a.reduce((acc: Tensor | undefined, x) => (acc === undefined ? sum(abs(x)) : add(acc, sum(abs(x)))), undefined)!, lambda))
          })(alphas)
          losses.push(value.dataSync()[0]!)
          const [next, nextState] = optimizer.step(grads, state, alphas)
          dispose([value, grads])
          state = nextState
          alphas = noGrad(() => next.map(a => {
            const c = clamp(a, 0, 1)
            a.dispose()
            return c
          }))
          opts.onStep?.(s + 1, losses[losses.length - 1]!)
        } finally {
          dispose(target)
        }
      } finally {
        dispose(batch)
      }
    }
    return { gates: alphas.map(a => [...a.dataSync()]), sink, recent, losses }
  } finally {
    dispose([alphas, state, rowIdx])
  }
}

/** The final hidden states (after the last RMSNorm), [B, T, dModel]: the LM's forward without its head. */
function embedThrough(m: TransformerLM, p: TransformerLMParams, ids: Tensor): Tensor {
  return scope(() => {
    const { blocks } = m
    let h = gatherEmbed(p.embed, ids)
    for (let l = 0; l < blocks.length; l++) h = blocks[l]!.forward(p.blocks[l]!, h, { positions: 0 })
    return rmsNorm(h, p.normF, m.config.eps)
  })
}

const gatherEmbed = (embed: Tensor, ids: Tensor): Tensor => gather(embed, ids, 0)
/** sq [B, T] → [B, rows]. */
const gatherRows = (sq: Tensor, rows: Tensor): Tensor => gather(sq, rows, 1)
