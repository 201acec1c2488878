import { ArgumentError, concat, div, expandDims, gather, isTensor, knownOptions, matmul, mean, mul, oneHot, permute, scope, ShapeError, softmax, slice, stopGradient, sum, tensor, topk, ValueError, zeros, type Tensor } from '@heed/tensor'
import { checkQkv, scaledDotProductAttention, type SdpaOptions } from '../sdpa.js'
import { flag, operatorOptions, SDPA_OPTIONS, tensorArg } from './strict.js'

/** Router weights, x·W layout. */
export interface MohRouter {
  /** [dModel, routed]: routed-head logits. */
  readonly Wr: Tensor
  /** [dModel, shared]: shared-head gate logits (used when `shared > 1` and `sharedGating`). */
  readonly Ws?: Tensor
  /** [dModel, 2]: the shared/routed two-way mix (omit for no mix: both weights 1). */
  readonly W0?: Tensor
}

export interface MohGateOptions {
  /** Always-on heads h_s; they come first in head order. */
  readonly shared: number
  /** Routed heads h_r, after the shared ones. */
  readonly routed: number
  /** Routed heads each token activates (the paper's `routed_head`). */
  readonly topK: number
  /** Gate shared heads with `softmax(x·Ws)·h_s` (default true; with h_s ≤ 1 the gate is 1, as in MoH). */
  readonly sharedGating?: boolean
}

export interface MohGates {
  /** [B, H, T]: shared heads then routed heads; 0 on routed heads a token did not pick. */
  readonly gates: Tensor
  /** [B, T, h_r]: the router's softmax before top-k. */
  readonly probs: Tensor
  /** [B, T, h_r]: 1 where the token routes to the head. */
  readonly selected: Tensor
  /** Load-balancing loss `h_r²·mean_i(P_i·f_i)` (see `mohBalanceLoss`). */
  readonly balanceLoss: Tensor
}

const OP = 'mohGates'

const int = (op: string, arg: string, v: number, min: number): number => {
  if (!Number.isInteger(v) || v < min) throw new ValueError({ op, arg, expected: `an integer ≥ ${min}`, actual: v })
  return v
}

function weight(op: string, arg: string, w: unknown, rows: number, cols: number): Tensor {
  if (!isTensor(w) || w.rank !== 2 || w.shape[0] !== rows || w.shape[1] !== cols) throw new ShapeError({ op, arg, expected: [rows, cols], actual: isTensor(w) ? w.shape : typeof w })
  return w
}

/**
 * MoH's per-token head gates (Jin et al. 2024, "MoH: Multi-Head Attention as Mixture-of-Head Attention"; SkyworkAI/MoH): routed gates `softmax(x·Wr)`, top-k kept, renormalised
 * over the kept heads and scaled by k; shared gates `softmax(x·Ws)·h_s` (1 when h_s ≤ 1); then
 * `[w0, w1] = 2·softmax(x·W0)` scales shared and routed gates. Routed gates of a token sum to `k·w1`.
 * Differentiable in x and the router (through the kept values; the choice of heads is discrete).
 */
export function mohGates(x: Tensor, router: MohRouter, opts: MohGateOptions): MohGates {
  if (!isTensor(x) || x.rank !== 3) throw new ShapeError({ op: OP, arg: 'x', expected: '[B, T, dModel]', actual: isTensor(x) ? x.shape : typeof x })
  if (router === null || typeof router !== 'object') throw new ArgumentError({ op: OP, arg: 'router', expected: '{ Wr, Ws?, W0? }', actual: router === null ? 'null' : typeof router })
  knownOptions(`${OP}: router`, router, ['Wr', 'Ws', 'W0'])
  operatorOptions(OP, opts, ['shared', 'routed', 'topK', 'sharedGating'], '{ shared, routed, topK }')
  flag(OP, 'sharedGating', opts.sharedGating)
  const hs = int(OP, 'shared', opts.shared, 0)
  const hr = int(OP, 'routed', opts.routed, 0)
  const k = int(OP, 'topK', opts.topK, 0)
  if (k > hr) throw new ValueError({ op: OP, arg: 'topK', expected: `at most the ${hr} routed heads`, actual: k })
  if (hs + hr === 0) throw new ValueError({ op: OP, arg: 'shared', expected: 'at least one head', actual: 0 })
  const [B, T, dModel] = x.shape as [number, number, number]
  const gateShared = (opts.sharedGating ?? true) && hs > 1
  const Wr = hr > 0 ? weight(OP, 'router.Wr', router.Wr, dModel, hr) : undefined
  const Ws = gateShared ? weight(OP, 'router.Ws', router.Ws, dModel, hs) : undefined
  const W0 = router.W0 !== undefined ? weight(OP, 'router.W0', router.W0, dModel, 2) : undefined
  return scope(() => {
    const like = { dtype: x.dtype, backend: x.backend }
    let shared = Ws ? mul(softmax(matmul(x, Ws)), hs) : tensor(new Float64Array(B * T * hs).fill(1), [B, T, hs], x.dtype, { backend: x.backend })
    let routed: Tensor
    let probs: Tensor
    let selected: Tensor
    if (Wr && k > 0) {
      probs = softmax(matmul(x, Wr))
      const top = topk(probs, k)
      const kept = mul(div(top.values, sum(top.values, { axis: -1, keepDims: true })), k)
      const onehot = oneHot(top.indices, hr, { dtype: x.dtype }) // [B, T, k, hr]
      routed = sum(mul(onehot, expandDims(kept, -1)), { axis: 2 })
      selected = sum(onehot, { axis: 2 })
    } else {
      probs = Wr ? softmax(matmul(x, Wr)) : zeros([B, T, 0], like)
      routed = zeros([B, T, hr], like)
      selected = zeros([B, T, hr], like)
    }
    if (W0) {
      const w = mul(softmax(matmul(x, W0)), 2)
      shared = mul(shared, slice(w, [null, null, [0, 1]]))
      routed = mul(routed, slice(w, [null, null, [1, 2]]))
    }
    const gates = permute(hs === 0 ? routed : hr === 0 ? shared : concat([shared, routed], -1), [0, 2, 1])
    const balanceLoss = hr > 0 ? mohBalanceLoss(probs, selected) : zeros([], like)
    return { gates, probs, selected, balanceLoss }
  })
}

/**
 * MoH / Switch load balancing: `h_r²·mean_i(P_i·f_i)` with P_i the mean router probability of head i over tokens and
 * f_i the fraction of tokens routed to it (no gradient through f). Uniform routing (P_i = 1/h_r, f_i = k/h_r) gives
 * k, its minimum over routings whose fractions follow the probabilities (f = k·P: the loss is h_r·k·Σ P_i² ≥ k).
 * `probs`, `selected`: [..., h_r].
 */
export function mohBalanceLoss(probs: Tensor, selected: Tensor): Tensor {
  const op = 'mohBalanceLoss'
  tensorArg(op, 'probs', probs)
  tensorArg(op, 'selected', selected)
  if (probs.rank < 1 || selected.shape.length !== probs.shape.length || selected.shape.some((d, i) => d !== probs.shape[i]))
    throw new ShapeError({ op, arg: 'selected', expected: probs.shape, actual: selected.shape })
  const hr = probs.shape[probs.rank - 1]!
  return scope(() => {
    const axes = Array.from({ length: probs.rank - 1 }, (_, i) => i)
    const P = mean(probs, { axis: axes })
    const f = stopGradient(mean(selected, { axis: axes }))
    return mul(mean(mul(P, f)), hr * hr)
  })
}

export interface MohAttentionOptions extends SdpaOptions {
  /**
   * Query heads to compute (default all). Heads left out are treated as zero-gated and cost nothing; pass the heads
   * whose gates are non-zero somewhere (`activeHeads`) to skip the rest.
   */
  readonly active?: readonly number[]
}

/**
 * Gated multi-head attention: head h's output scaled by its gate, `g_h · softmax(q_h k_hᵀ) v_h`, as [B, H, Tq, Dv]
 * ready for the output projection (`O = W_O · concat_h(...)`). `gates` broadcasts to [B, H, Tq] (per token from
 * `mohGates`, or [1, H, 1] per head). All gates 1 is multi-head attention.
 */
export function mohAttention(q: Tensor, k: Tensor, v: Tensor, gates: Tensor, opts: MohAttentionOptions = {}): { out: Tensor } {
  const op = 'mohAttention'
  checkQkv(op, q, k, v)
  const [B, H, Tq] = q.shape as [number, number, number, number]
  const Hkv = k.shape[1]!
  if (!isTensor(gates) || gates.rank !== 3 || ![B, H, Tq].every((d, i) => gates.shape[i] === d || gates.shape[i] === 1))
    throw new ShapeError({ op, arg: 'gates', expected: `broadcastable to [${B}, ${H}, ${Tq}]`, actual: isTensor(gates) ? gates.shape : typeof gates })
  operatorOptions(op, opts, [...SDPA_OPTIONS, 'active'])
  const { active, ...sdpa } = opts
  const on = active === undefined ? undefined : [...new Set(active)].sort((a, b) => a - b)
  on?.forEach(h => {
    if (!Number.isInteger(h) || h < 0 || h >= H) throw new ValueError({ op, arg: 'active', expected: `query heads in [0, ${H})`, actual: h })
  })
  return scope(() => {
    const gate4 = expandDims(gates, -1)
    if (on === undefined || on.length === H) return { out: mul(scaledDotProductAttention(q, k, v, sdpa).out, gate4) }
    const Dv = v.shape[3]!
    const like = { dtype: q.dtype, backend: q.backend }
    if (on.length === 0) return { out: mul(zeros([B, H, Tq, Dv], like), gate4) }
    // Only the active query heads, each paired with its own kv head (so the sub-problem is plain MHA).
    const g = H / Hkv
    const idx = (xs: number[]) => tensor(Int32Array.from(xs), [xs.length], 'int32', { backend: q.backend })
    const sub = scaledDotProductAttention(gather(q, idx(on), 1), gather(k, idx(on.map(h => Math.floor(h / g))), 1), gather(v, idx(on.map(h => Math.floor(h / g))), 1), sdpa).out
    const parts: Tensor[] = []
    for (let h = 0, n = 0; h < H; h++) parts.push(on[n] === h ? slice(sub, [null, [n, ++n]]) : zeros([B, 1, Tq, Dv], like))
    return { out: mul(concat(parts, 1), gate4) }
  })
}

/** Heads with a non-zero gate anywhere in `gates` [B, H, T] (reads the gates back from the device). */
export async function activeHeads(gates: Tensor): Promise<number[]> {
  tensorArg('activeHeads', 'gates', gates, 'a Tensor [B, H, T] of gates')
  if (gates.rank !== 3) throw new ShapeError({ op: 'activeHeads', arg: 'gates', expected: '[B, H, T]', actual: gates.shape })
  const [B, H, T] = gates.shape as [number, number, number]
  const g = await gates.data()
  const out: number[] = []
  for (let h = 0; h < H; h++) {
    let any = false
    for (let b = 0; b < B && !any; b++) for (let t = 0; t < T && !any; t++) any = g[(b * H + h) * T + t] !== 0
    if (any) out.push(h)
  }
  return out
}
