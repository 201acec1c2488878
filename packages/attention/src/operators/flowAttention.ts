import { add, clamp, cumsum, div, exp, matmul, mul, reshape, scope, ShapeError, sigmoid, softmax, sum, tensor, ValueError, zeros, type Tensor, positiveInt } from '@heed/tensor'
import { checkQkv } from '../sdpa.js'
import { lightning, repeatKvHeads } from './lightningAttention.js'
import { flag, operatorOptions } from './strict.js'

/**
 * Flow-Attention (Wu et al., "Flowformer: Linearizing Transformers with Conservation Flows", ICML 2022): linear
 * attention normalised by flow conservation. With φ = sigmoid, queries are sinks and keys sources; the incoming flow
 * of each sink and the outgoing flow of each source normalise the aggregation, a sigmoid of the conserved incoming
 * flow allocates (gates) each sink's output and a softmax over the conserved outgoing flow makes sources compete.
 */

export interface FlowAttentionOptions {
  /** Causal form (Flowformer's `Flow_Attention_Causal`: prefix sums, position-normalised flows). Default false. */
  readonly causal?: boolean
  /** The ε of every flow (default 1e−6, the official value). */
  readonly eps?: number
  /** Bounds on the conserved outgoing flow before the competition softmax (default [−1, 1], "for stability"); false: none. */
  readonly clamp?: readonly [number, number] | false
  /** Causal only: running sums carried from an earlier call (default: the empty state). */
  readonly state?: FlowState
  /** Rows per tile of the causal aggregation (default 64). */
  readonly blockSize?: number
}

/**
 * The causal form's running state: every prefix sum the flows use, the running competition normaliser and the
 * linear-attention state of the aggregation, after `pos` tokens.
 */
export interface FlowState {
  /** Σ φ(k) [B, H, 1, D] */
  readonly sumK: Tensor
  /** Σ φ(q) [B, H, 1, D] */
  readonly sumQ: Tensor
  /** Σ φ(k_j)·ν_j/O_j [B, H, 1, D] */
  readonly sumKOut: Tensor
  /** Σ φ(q_i)·ν_i/I_i [B, H, 1, D] */
  readonly sumQIn: Tensor
  /** Σ exp(Ô_j) [B, H, 1, 1] */
  readonly sumExp: Tensor
  /** Σ φ(k_j)ᵀ(c_j v_j) [B, H, D, Dv] */
  readonly S: Tensor
  readonly pos: number
}

/** The per-token flows (each [B, H, T]), for inspection and for the conservation tests. */
export interface FlowStats {
  /** I_i (causal: the raw prefix incoming flow) */
  readonly incoming: Tensor
  /** O_j (causal: the raw prefix outgoing flow) */
  readonly outgoing: Tensor
  /** Î_i */
  readonly conservedIncoming: Tensor
  /** Ô_j after the clamp */
  readonly conservedOutgoing: Tensor
  /** a_i = sigmoid(Î_i·n/m) (causal: sigmoid(Î_i)) */
  readonly allocation: Tensor
  /** c_j (sums to m non-causally) */
  readonly competition: Tensor
}

export interface FlowResult {
  /** [B, H, Tq, Dv] */
  readonly out: Tensor
  /** Causal only: the state after the last token. */
  readonly state?: FlowState
}

const OP = 'flowAttention'

interface Resolved {
  readonly causal: boolean
  readonly eps: number
  readonly lo: number
  readonly hi: number
  readonly blockSize: number
}

function resolve(op: string, opts: FlowAttentionOptions): Resolved {
  operatorOptions(op, opts, ['causal', 'eps', 'clamp', 'state', 'blockSize'])
  flag(op, 'causal', opts.causal)
  const eps = opts.eps ?? 1e-6
  if (!(Number.isFinite(eps) && eps >= 0)) throw new ValueError({ op, arg: 'eps', expected: 'a finite number ≥ 0', actual: eps })
  const c = opts.clamp ?? [-1, 1]
  if (c !== false && !(Array.isArray(c) && c.length === 2 && c[0]! <= c[1]!))
    throw new ValueError({ op, arg: 'clamp', expected: '[lo, hi] with lo ≤ hi, or false', actual: c })
  const blockSize = opts.blockSize ?? 64
  positiveInt(op, 'blockSize', blockSize)
  if (!opts.causal && opts.state !== undefined) throw new ValueError({ op, arg: 'state', expected: 'no state in the non-causal form', actual: 'a state' })
  return { causal: opts.causal === true, eps, lo: c === false ? -Infinity : c[0]!, hi: c === false ? Infinity : c[1]!, blockSize }
}

const dot = (a: Tensor, b: Tensor): Tensor => sum(mul(a, b), { axis: -1, keepDims: true })
const rowSum = (x: Tensor): Tensor => sum(x, { axis: 2, keepDims: true })

interface Flows {
  readonly out: Tensor
  readonly stats: FlowStats
  readonly state?: FlowState
}

function nonCausal(q: Tensor, k: Tensor, v: Tensor, r: Resolved): Flows {
  const [n, m] = [q.shape[2]!, k.shape[2]!]
  const e = r.eps
  const Qt = sigmoid(q)
  const Kt = sigmoid(k)
  const I = dot(add(Qt, e), add(rowSum(Kt), e))
  const O = dot(add(Kt, e), add(rowSum(Qt), e))
  const Ihat = dot(add(Qt, e), add(rowSum(div(Kt, O)), e))
  const Ohat = clamp(dot(add(Kt, e), add(rowSum(div(Qt, I)), e)), r.lo, r.hi)
  const a = sigmoid(mul(Ihat, n / m))
  const c = mul(softmax(Ohat, { axis: 2 }), m)
  const out = mul(a, matmul(div(Qt, I), matmul(Kt, mul(c, v), { transposeA: true })))
  return { out, stats: { incoming: I, outgoing: O, conservedIncoming: Ihat, conservedOutgoing: Ohat, allocation: a, competition: c } }
}

function checkState(s: FlowState, B: number, H: number, D: number, Dv: number, dtype: string): void {
  const want: [keyof FlowState, number[]][] = [
    ['sumK', [B, H, 1, D]],
    ['sumQ', [B, H, 1, D]],
    ['sumKOut', [B, H, 1, D]],
    ['sumQIn', [B, H, 1, D]],
    ['sumExp', [B, H, 1, 1]],
    ['S', [B, H, D, Dv]],
  ]
  for (const [name, shape] of want) {
    const x = s[name] as Tensor | undefined
    if (x?.shape === undefined || x.shape.length !== 4 || x.shape.some((d, i) => d !== shape[i])) throw new ShapeError({ op: OP, arg: `state.${name}`, expected: shape, actual: x?.shape })
    if (x.dtype !== dtype) throw new ValueError({ op: OP, arg: `state.${name}`, expected: `${dtype} like q`, actual: x.dtype })
  }
  if (!Number.isInteger(s.pos) || s.pos < 0) throw new ValueError({ op: OP, arg: 'state.pos', expected: 'a non-negative integer', actual: s.pos })
}

function causalFlows(q: Tensor, k: Tensor, v: Tensor, r: Resolved, state: FlowState | undefined): Flows {
  const [B, H, T, D] = q.shape as [number, number, number, number]
  const Dv = v.shape[3]!
  if (k.shape[2] !== T) throw new ShapeError({ op: OP, arg: 'k', expected: `${T} keys (causal Flow-Attention is self-attention)`, actual: k.shape })
  if (state) checkState(state, B, H, D, Dv, q.dtype)
  const e = r.eps
  const pos0 = state?.pos ?? 0
  const zero = (shape: number[]): Tensor => zeros(shape, { dtype: q.dtype, backend: q.backend })
  const s0 = state ?? { sumK: zero([B, H, 1, D]), sumQ: zero([B, H, 1, D]), sumKOut: zero([B, H, 1, D]), sumQIn: zero([B, H, 1, D]), sumExp: zero([B, H, 1, 1]), S: undefined }
  // ν_t = absolute position + 1: the number of tokens in the prefix, which approximates conservation.
  const nu = tensor(Float64Array.from({ length: T }, (_, t) => pos0 + t + 1), [1, 1, T, 1], q.dtype, { backend: q.backend })
  const prefix = (x: Tensor, carried: Tensor): Tensor => add(cumsum(x, { axis: 2 }), carried)
  const Qt = sigmoid(q)
  const Kt = sigmoid(k)
  const Iraw = dot(add(Qt, e), add(prefix(Kt, s0.sumK), e))
  const Oraw = dot(add(Kt, e), add(prefix(Qt, s0.sumQ), e))
  const kOut = mul(Kt, div(nu, Oraw))
  const qIn = mul(Qt, div(nu, Iraw))
  const Ihat = div(dot(add(Qt, e), add(prefix(kOut, s0.sumKOut), e)), nu)
  const Ohat = clamp(div(dot(add(Kt, e), add(prefix(qIn, s0.sumQIn), e)), nu), r.lo, r.hi)
  const a = sigmoid(Ihat)
  const ex = exp(Ohat)
  // Each source competes with the sources before it only, so c_j is final once j is seen (hence streamable).
  const c = mul(div(ex, prefix(ex, s0.sumExp)), nu)
  const agg = lightning({ decay: 1, scale: 1, blockSize: r.blockSize }).chunk(div(Qt, Iraw), Kt, mul(c, v), { state: s0.S === undefined ? undefined : { S: s0.S, pos: pos0 } })
  const out = mul(a, agg.o)
  const next: FlowState = {
    sumK: add(s0.sumK, rowSum(Kt)),
    sumQ: add(s0.sumQ, rowSum(Qt)),
    sumKOut: add(s0.sumKOut, rowSum(kOut)),
    sumQIn: add(s0.sumQIn, rowSum(qIn)),
    sumExp: add(s0.sumExp, rowSum(ex)),
    S: agg.state.S,
    pos: pos0 + T,
  }
  return { out, stats: { incoming: Iraw, outgoing: Oraw, conservedIncoming: Ihat, conservedOutgoing: Ohat, allocation: a, competition: c }, state: next }
}

function flows(op: string, q: Tensor, k: Tensor, v: Tensor, opts: FlowAttentionOptions): Flows {
  checkQkv(op, q, k, v)
  const r = resolve(op, opts)
  const H = q.shape[1]!
  const [kk, vv] = [repeatKvHeads(k, H), repeatKvHeads(v, H)]
  return r.causal ? causalFlows(q, kk, vv, r, opts.state) : nonCausal(q, kk, vv, r)
}

const squeezeLast = (x: Tensor): Tensor => reshape(x, x.shape.slice(0, 3))

/**
 * Flow-Attention: q `[B, H, n, D]`, k `[B, Hkv, m, D]`, v `[B, Hkv, m, Dv]` → `{ out [B, H, n, Dv], state? }`. The
 * output projection of the Flowformer block is the caller's. Non-causal (default): `n ≠ m` allowed, O((n+m)·D·Dv).
 * Causal: `n = m`, prefix-sum flows, tiled causal aggregation; `state` continues an earlier call exactly.
 */
export function flowAttention(q: Tensor, k: Tensor, v: Tensor, opts: FlowAttentionOptions = {}): FlowResult {
  return scope(() => {
    const f = flows(OP, q, k, v, opts)
    return f.state ? { out: f.out, state: f.state } : { out: f.out }
  })
}

/** The flows of {@link flowAttention} under the same options, each `[B, H, T]`. */
export function flowStats(q: Tensor, k: Tensor, v: Tensor, opts: FlowAttentionOptions = {}): FlowStats {
  return scope(() => {
    const s = flows('flowStats', q, k, v, opts).stats
    return {
      incoming: squeezeLast(s.incoming),
      outgoing: squeezeLast(s.outgoing),
      conservedIncoming: squeezeLast(s.conservedIncoming),
      conservedOutgoing: squeezeLast(s.conservedOutgoing),
      allocation: squeezeLast(s.allocation),
      competition: squeezeLast(s.competition),
    }
  })
}
