import { checkAllocation, finiteNumber, knownOptions, positiveInt, add, ArgumentError, conv1d, conv2d, matmul, mul, permute, random, reshape, scope, ShapeError, softmax, tensor, ValueError, type FloatDType, type Tensor } from '@heed/tensor'
import { checkQkv } from '../sdpa.js'
import { repeatKvHeads } from './lightningAttention.js'
import { operatorOptions, tensorArg } from './strict.js'

/**
 * Agent Attention (Han et al., "Agent Attention: On the Integration of Softmax and Linear Attention", ECCV 2024): n
 * agent tokens, pooled from the queries, first aggregate the values (agent → key softmax attention) and then
 * broadcast them back (query → agent softmax attention); a depthwise convolution over V restores the diversity the
 * low-rank product loses:
 *
 *   V_A = softmax(s·A Kᵀ + B1) V,   O = softmax(s·Q Aᵀ + B2) V_A + DWC(V)
 *
 * i.e. generalised linear attention `φ_q(Q) φ_k(K)ᵀ V` at O(N·n·d).
 */

/** Depthwise convolution parameters over V's channels (H·Dv of them, head-major). */
export interface AgentDwc {
  /** [H·Dv, 1, k] over the token sequence, or [H·Dv, 1, k, k] over the `grid`. */
  readonly weight: Tensor
  /** [H·Dv] */
  readonly bias?: Tensor
}

export interface AgentAttentionOptions {
  /** Explicit agents [B or 1, H or 1, n, D]; otherwise they are pooled from q. */
  readonly agents?: Tensor
  /** Agents pooled from q (default 49, the paper's 7×7 for DeiT). With `grid`, n must be a perfect square. */
  readonly numAgents?: number
  /**
   * The queries as an `[h, w]` image grid (h·w = Tq): agents are adaptive-average-pooled in 2D to √n × √n, as in
   * the paper, and DWC is 2D. Without it the sequence is pooled in 1D into n bins and DWC is 1D.
   */
  readonly grid?: readonly [number, number]
  /** Query → agent logit scale (default 1/√D, the official head_dim^−0.5). */
  readonly scale?: number
  /** Agent → key logit scale (default `scale`). Large values make the agent aggregation a hard selection. */
  readonly agentScale?: number
  /** B1, added to the agent → key logits; broadcasts to [B, H, n, Tk]. */
  readonly agentBias?: Tensor
  /** B2, added to the query → agent logits; broadcasts to [B, H, Tq, n]. */
  readonly queryBias?: Tensor
  /** The DWC(V) term (self-attention only: it adds V's rows to the output's). Off when absent. */
  readonly dwc?: AgentDwc
}

export interface AgentResult {
  /** [B, H, Tq, Dv] */
  readonly out: Tensor
}

export interface AgentMaps {
  /** softmax(s·Q Aᵀ + B2): [B, H, Tq, n], rows sum to 1 */
  readonly queryAgent: Tensor
  /** softmax(s'·A Kᵀ + B1): [B, H, n, Tk], rows sum to 1 */
  readonly agentKey: Tensor
  /** [B or 1, H or 1, n, D] */
  readonly agents: Tensor
}

const OP = 'agentAttention'

/** Rows of the adaptive average pool of `len` cells into `bins`: bin i covers [⌊i·len/bins⌋, ⌈(i+1)·len/bins⌉). */
function poolRows(len: number, bins: number): Float64Array {
  const P = new Float64Array(bins * len)
  for (let i = 0; i < bins; i++) {
    const [s, e] = [Math.floor((i * len) / bins), Math.ceil(((i + 1) * len) / bins)]
    for (let j = s; j < e; j++) P[i * len + j] = 1 / (e - s)
  }
  return P
}

/** The pooling as a [n, T] matrix, so agents are one matmul on any backend (and differentiable for free). */
function poolMatrix(T: number, n: number, grid: readonly [number, number] | undefined): Float64Array {
  if (!grid) return poolRows(T, n)
  const [h, w] = grid
  const side = Math.round(Math.sqrt(n))
  const [Ph, Pw] = [poolRows(h, side), poolRows(w, side)]
  const P = new Float64Array(n * T)
  for (let a = 0; a < side; a++) for (let b = 0; b < side; b++) for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) P[(a * side + b) * T + r * w + c] = Ph[a * h + r]! * Pw[b * w + c]!
  return P
}

function agentsOf(q: Tensor, opts: AgentAttentionOptions, op: string): Tensor {
  const [, H, Tq, D] = q.shape as [number, number, number, number]
  if (opts.agents !== undefined) {
    const a = opts.agents
    if (typeof a !== 'object' || a === null || !('shape' in a)) throw new ArgumentError({ op, arg: 'agents', expected: 'a Tensor', actual: typeof a })
    if (a.rank !== 4 || a.shape[3] !== D || (a.shape[1] !== 1 && a.shape[1] !== H) || (a.shape[0] !== 1 && a.shape[0] !== q.shape[0]))
      throw new ShapeError({ op, arg: 'agents', expected: `[B or 1, ${H} or 1, n, ${D}]`, actual: a.shape })
    if (a.dtype !== q.dtype) throw new ValueError({ op, arg: 'agents', expected: `${q.dtype} like q`, actual: a.dtype })
    return a
  }
  const n = positiveInt(op, 'numAgents', opts.numAgents ?? 49)
  const grid = opts.grid
  if (grid) {
    if (!Array.isArray(grid) || grid.length !== 2 || grid.some(x => !Number.isInteger(x) || x < 1) || grid[0]! * grid[1]! !== Tq)
      throw new ShapeError({ op, arg: 'grid', expected: `[h, w] with h·w = Tq = ${Tq}`, actual: grid })
    if (!Number.isInteger(Math.sqrt(n))) throw new ValueError({ op, arg: 'numAgents', expected: 'a perfect square with a grid (√n × √n agents)', actual: n })
  }
  const P = tensor(poolMatrix(Tq, n, grid), [1, 1, n, Tq], q.dtype, { backend: q.backend })
  return matmul(P, q)
}

function maps(q: Tensor, k: Tensor, opts: AgentAttentionOptions, op: string = OP): AgentMaps {
  const D = q.shape[3]!
  const scale = finiteNumber(op, 'scale', opts.scale ?? 1 / Math.sqrt(D))
  const agentScale = finiteNumber(op, 'agentScale', opts.agentScale ?? scale)
  const A = agentsOf(q, opts, op)
  const bias = (x: Tensor, b: Tensor | undefined, arg: string): Tensor => {
    if (b === undefined) return x
    if (typeof b !== 'object' || b === null || !('shape' in b)) throw new ArgumentError({ op, arg, expected: 'a Tensor', actual: typeof b })
    try {
      return add(x, b)
    } catch (err) {
      throw new ShapeError({ op, arg, expected: `a tensor broadcasting to [${x.shape.join(',')}]`, actual: b.shape }, err instanceof Error ? err.message : undefined)
    }
  }
  const queryAgent = softmax(bias(mul(matmul(q, A, { transposeB: true }), scale), opts.queryBias, 'queryBias'), { axis: -1 })
  const agentKey = softmax(bias(mul(matmul(A, k, { transposeB: true }), agentScale), opts.agentBias, 'agentBias'), { axis: -1 })
  return { queryAgent, agentKey, agents: A }
}

function depthwise(v: Tensor, dwc: AgentDwc, grid: readonly [number, number] | undefined): Tensor {
  const [B, H, T, Dv] = v.shape as [number, number, number, number]
  const C = H * Dv
  const w = dwc.weight
  const rank = grid ? 4 : 3
  if (typeof w !== 'object' || w === null || !('shape' in w)) throw new ArgumentError({ op: OP, arg: 'dwc.weight', expected: 'a Tensor', actual: typeof w })
  const k = w.shape[2]!
  if (w.rank !== rank || w.shape[0] !== C || w.shape[1] !== 1 || (grid && w.shape[3] !== k) || k % 2 !== 1)
    throw new ShapeError({ op: OP, arg: 'dwc.weight', expected: grid ? `[${C}, 1, k, k] with odd k (2D over the grid)` : `[${C}, 1, k] with odd k`, actual: w.shape })
  if (dwc.bias !== undefined && (dwc.bias.rank !== 1 || dwc.bias.shape[0] !== C)) throw new ShapeError({ op: OP, arg: 'dwc.bias', expected: [C], actual: dwc.bias.shape })
  // Channels are head-major (h·Dv + d), the layout of the paper's [B, N, H·Dv] value tensor.
  const x = reshape(permute(v, [0, 1, 3, 2]), grid ? [B, C, grid[0], grid[1]] : [B, C, T])
  let y = grid ? conv2d(x, w, { padding: (k - 1) / 2 }) : conv1d(x, w, { padding: (k - 1) / 2 })
  if (dwc.bias) y = add(y, reshape(dwc.bias, grid ? [1, C, 1, 1] : [1, C, 1]))
  return permute(reshape(y, [B, H, Dv, T]), [0, 1, 3, 2])
}

function validate(q: Tensor, k: Tensor, v: Tensor, opts: AgentAttentionOptions, op: string = OP): void {
  if (typeof opts !== 'object' || opts === null) throw new ArgumentError({ op, arg: 'opts', expected: 'an options object', actual: opts })
  // modes agent attention does not have are errors, not silently ignored options
  const o = opts as Record<string, unknown>
  if (o['causal'] !== undefined && o['causal'] !== false)
    throw new ValueError({ op, arg: 'causal', expected: 'false or absent (agent attention is non-causal only: its agents pool over every token)', actual: String(o['causal']) })
  if (o['mask'] !== undefined) throw new ValueError({ op, arg: 'mask', expected: 'no mask (agent attention has no per-pair scores to mask)', actual: 'a mask' })
  knownOptions(op, opts, ['agents', 'numAgents', 'grid', 'scale', 'agentScale', 'agentBias', 'queryBias', 'dwc', 'causal'])
  checkQkv(op, q, k, v)
}

/**
 * Agent attention: q `[B, H, Tq, D]`, k `[B, Hkv, Tk, D]`, v `[B, Hkv, Tk, Dv]` → `{ out [B, H, Tq, Dv] }`. Non-causal
 * only (agents pool over every token). Self or cross; `dwc` needs Tq = Tk.
 */
export function agentAttention(q: Tensor, k: Tensor, v: Tensor, opts: AgentAttentionOptions = {}): AgentResult {
  validate(q, k, v, opts)
  return scope(() => {
    const H = q.shape[1]!
    const [kk, vv] = [repeatKvHeads(k, H), repeatKvHeads(v, H)]
    const m = maps(q, kk, opts)
    // Associate right: the n×Dv agent values first, never the Tq×Tk product.
    let out = matmul(m.queryAgent, matmul(m.agentKey, vv))
    if (opts.dwc !== undefined) {
      if (q.shape[2] !== k.shape[2]) throw new ShapeError({ op: OP, arg: 'dwc', expected: 'self-attention (Tq = Tk) for DWC(V)', actual: `Tq ${q.shape[2]}, Tk ${k.shape[2]}` })
      out = add(out, depthwise(vv, opts.dwc, opts.grid))
    }
    return { out }
  })
}

/** The two row-stochastic factors and the agents of {@link agentAttention} under the same options. */
export function agentMaps(q: Tensor, k: Tensor, opts: AgentAttentionOptions = {}): AgentMaps {
  const op = 'agentMaps'
  for (const [arg, t] of [['q', q], ['k', k]] as const) tensorArg(op, arg, t, 'a Tensor [B, H, T, D]')
  validate(q, k, k, opts, op)
  return scope(() => maps(q, repeatKvHeads(k, q.shape[1]!), opts, op))
}

/**
 * Fresh DWC parameters for `heads · valueDim` channels: kernel 3 by default (the paper's 3×3), weights
 * N(0, 1/k^rank) like a fan-in scaled init, zero bias.
 */
export function agentDwc(opts: { readonly heads: number; readonly valueDim: number; readonly kernel?: number; readonly grid?: boolean; readonly seed?: number; readonly dtype?: FloatDType; readonly backend?: string }): Required<AgentDwc> {
  const op = 'agentDwc'
  operatorOptions(op, opts, ['heads', 'valueDim', 'kernel', 'grid', 'seed', 'dtype', 'backend'], '{ heads, valueDim, kernel?, grid?, seed?, dtype?, backend? }')
  const C = positiveInt(op, 'heads', opts.heads) * positiveInt(op, 'valueDim', opts.valueDim)
  const k = positiveInt(op, 'kernel', opts.kernel ?? 3)
  if (k % 2 !== 1) throw new ValueError({ op: 'agentDwc', arg: 'kernel', expected: 'an odd kernel (centred, same-size output)', actual: k })
  const shape = opts.grid ? [C, 1, k, k] : [C, 1, k]
  const dtype = opts.dtype ?? 'float32'
  checkAllocation(op, 'heads', C * k * (opts.grid ? k : 1), dtype)
  const where = opts.backend !== undefined ? { backend: opts.backend } : {}
  return {
    weight: random.normal(shape, { seed: opts.seed ?? 0, std: 1 / Math.sqrt(opts.grid ? k * k : k), dtype, ...where }),
    bias: tensor(new Float64Array(C), [C], dtype, where),
  }
}
