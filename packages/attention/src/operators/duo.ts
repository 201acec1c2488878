import { abs, add, ArgumentError, bytesPerElement, clamp, gather, isTensor, mean, mul, reshape, scope, ShapeError, square, sub, sum, tensor, ValueError, type DType, type Tensor, positiveInt } from '@heed/tensor'
import { headPolicy, type HeadPolicy } from '../kvCache.js'
import { mask as masks } from '../mask.js'
import { checkQkv, scaledDotProductAttention, type AttentionResult, type SdpaOptions } from '../sdpa.js'
import { operatorOptions, SDPA_OPTIONS, tensorArg } from './strict.js'

/** DuoAttention's official defaults (mit-han-lab/duo-attention configs). */
export const DUO_DEFAULTS = Object.freeze({ sink: 128, recent: 256, lambda: 0.05, lr: 0.02, threshold: 0.5 })

export interface DuoAttentionOptions extends SdpaOptions {
  /**
   * Gate α per kv head ([Hkv] tensor, trainable, or numbers in [0, 1]); the g query heads of a kv head share it.
   * 1 = retrieval head (full attention), 0 = streaming head (sinks + recent window).
   */
  readonly alpha: Tensor | readonly number[]
  /** Attention-sink tokens a streaming head keeps (default 128). */
  readonly sink?: number
  /** Recent tokens a streaming head keeps, the query's own included (default 256). */
  readonly recent?: number
}

export interface DuoAttentionResult {
  /** α·full + (1 − α)·streaming, [B, H, Tq, Dv]. */
  readonly out: Tensor
  readonly full: AttentionResult
  readonly streaming: AttentionResult
}

const OP = 'duoAttention'

function window(op: string, sink: number, recent: number): void {
  if (!Number.isInteger(sink) || sink < 0) throw new ValueError({ op, arg: 'sink', expected: 'a non-negative integer', actual: sink })
  positiveInt(op, 'recent', recent)
}

/** α as a [1, H, 1, 1] tensor (each kv head's gate repeated over its g query heads). */
function gatesPerQueryHead(op: string, alpha: Tensor | readonly number[], q: Tensor, kvHeads: number): Tensor {
  const H = q.shape[1]!
  let a: Tensor
  if (isTensor(alpha)) {
    if (alpha.rank !== 1 || alpha.shape[0] !== kvHeads) throw new ShapeError({ op, arg: 'alpha', expected: `[${kvHeads}] (one gate per kv head)`, actual: alpha.shape })
    a = alpha
  } else {
    if (!Array.isArray(alpha) || alpha.length !== kvHeads) throw new ValueError({ op, arg: 'alpha', expected: `${kvHeads} gates (one per kv head)`, actual: Array.isArray(alpha) ? alpha.length : typeof alpha })
    alpha.forEach((x, i) => {
      if (typeof x !== 'number' || !(x >= 0 && x <= 1)) throw new ValueError({ op, arg: `alpha[${i}]`, expected: 'a number in [0, 1]', actual: x })
    })
    a = tensor([...alpha], [kvHeads], q.dtype, { backend: q.backend })
  }
  const g = H / kvHeads
  const idx = tensor(Int32Array.from({ length: H }, (_, h) => Math.floor(h / g)), [H], 'int32', { backend: q.backend })
  return reshape(gather(a, idx), [1, H, 1, 1])
}

/**
 * DuoAttention's training-time operator: per kv head, `α·FullCausal + (1 − α)·Streaming` where the
 * streaming head sees `causal ∧ (pk < sink ∨ pq − pk < recent)`. Differentiable in α (and q, k, v), so the gates
 * train by distillation (`duoGateLoss`). Causal unless `causal: false` is passed (then only the caller's mask
 * applies to the full branch; the streaming branch stays causal, as its mask is). The caller's mask applies to both.
 */
export function duoAttention(q: Tensor, k: Tensor, v: Tensor, opts: DuoAttentionOptions): DuoAttentionResult {
  return duo(OP, q, k, v, opts)
}

/** `duoAttention`, its argument errors in the name of `op` (the public function called: `duoGateLoss` runs it too). */
function duo(op: string, q: Tensor, k: Tensor, v: Tensor, opts: DuoAttentionOptions): DuoAttentionResult {
  checkQkv(op, q, k, v)
  operatorOptions(op, opts, [...SDPA_OPTIONS, 'alpha', 'sink', 'recent'], '{ alpha, … }')
  if (opts.alpha === undefined) throw new ValueError({ op, arg: 'opts.alpha', expected: 'one gate per kv head', actual: undefined })
  const { alpha, sink = DUO_DEFAULTS.sink, recent = DUO_DEFAULTS.recent, ...sdpa } = opts
  window(op, sink, recent)
  return scope(() => {
    const a = gatesPerQueryHead(op, alpha, q, k.shape[1]!)
    const causal = sdpa.causal ?? true
    const full = scaledDotProductAttention(q, k, v, { ...sdpa, causal })
    const stream = masks.streaming(sink, recent)
    const streaming = scaledDotProductAttention(q, k, v, { ...sdpa, causal, mask: sdpa.mask ? masks.and(stream, sdpa.mask) : stream })
    // α·f + (1 − α)·s rather than s + α(f − s): α ∈ {0, 1} then returns a branch exactly, not up to rounding.
    const out = add(mul(a, full.out), mul(sub(1, a), streaming.out))
    return { out, full, streaming }
  })
}

export interface DuoGateLossOptions extends Omit<DuoAttentionOptions, 'alpha'> {
  /** L1 weight λ (default 0.05). */
  readonly lambda?: number
  /** Query rows the distillation term averages over (default all): the passkey answer positions. */
  readonly rows?: readonly number[]
}

/**
 * The gate-training objective: `mean_{b, labelled rows} Σ_{h,d} (o_full − o_mixed)² + λ·‖α‖₁`. The target is the
 * same operator at α ≡ 1 (the frozen base model), taken out of the gradient. Returns the scalar loss.
 */
export function duoGateLoss(q: Tensor, k: Tensor, v: Tensor, alpha: Tensor, opts: DuoGateLossOptions = {}): Tensor {
  const op = 'duoGateLoss'
  checkQkv(op, q, k, v)
  // alpha is the loss's own argument, so it is not an option here
  operatorOptions(op, opts, [...SDPA_OPTIONS, 'sink', 'recent', 'lambda', 'rows'])
  const lambda = opts.lambda ?? DUO_DEFAULTS.lambda
  if (!Number.isFinite(lambda) || lambda < 0) throw new ValueError({ op, arg: 'lambda', expected: 'a non-negative number', actual: lambda })
  const { lambda: _l, rows, ...rest } = opts
  return scope(() => {
    const r = duo(op, q, k, v, { ...rest, alpha })
    // The distillation target: o_full − o_mixed = (1 − α)(o_full − o_streaming).
    let diff = sub(r.full.out, r.out)
    if (rows !== undefined) {
      const Tq = q.shape[2]!
      rows.forEach((i, n) => {
        if (!Number.isInteger(i) || i < 0 || i >= Tq) throw new ValueError({ op, arg: `rows[${n}]`, expected: `a query row in [0, ${Tq})`, actual: i })
      })
      diff = gather(diff, tensor(Int32Array.from(rows), [rows.length], 'int32', { backend: q.backend }), 2)
    }
    const distill = mean(sum(square(diff), { axis: [1, 3] }))
    return add(distill, mul(sum(abs(alpha)), lambda))
  })
}

/** Project gates back onto [0, 1] after an optimizer step (DuoAttention clamps every step). */
export const clampGates = (alpha: Tensor): Tensor => clamp(tensorArg('clampGates', 'alpha', alpha, 'a Tensor of gates'), 0, 1)

export interface DuoDeployOptions {
  /** Gates ≥ threshold become retrieval heads (default 0.5). */
  readonly threshold?: number
  /** Alternatively: the fraction of kv heads made streaming (the lowest gates), overriding `threshold`. */
  readonly sparsity?: number
  /** Initial (sink) tokens a streaming head keeps (default 128, DuoAttention's setting). */
  readonly sink?: number
  /** Most recent tokens a streaming head keeps (default 256). */
  readonly recent?: number
}

export interface DuoDeployment {
  /** Per kv head: keeps its full KV. */
  readonly retrieval: readonly boolean[]
  /** Per kv head, for `kvCache({ policies })` / `layer.cache({ policies })`: full, or streaming(sink, recent). */
  readonly policies: readonly HeadPolicy[]
  /** The binarised gates (1 retrieval, 0 streaming): `duoAttention` with these equals the deployed cache. */
  readonly alpha: readonly number[]
  readonly sink: number
  readonly recent: number
}

/**
 * Turn trained gates into a deployment: retrieval heads keep the full KV, streaming heads keep the first `sink`
 * and the last `recent` tokens (the KV cache's streaming policy compacts them after every call, keys kept at their
 * original positions). Feed `policies` to `kvCache` or `multiHeadAttention(...).cache`, then decode as usual.
 */
export function duoDeploy(alpha: ArrayLike<number>, opts: DuoDeployOptions = {}): DuoDeployment {
  const op = 'duoDeploy'
  if (alpha === null || typeof alpha !== 'object' || !Number.isSafeInteger((alpha as { length?: unknown }).length))
    throw new ArgumentError({ op, arg: 'alpha', expected: 'the learned gates, an array of numbers (one per kv head)', actual: alpha === null ? 'null' : typeof alpha })
  operatorOptions(op, opts, ['threshold', 'sparsity', 'sink', 'recent'])
  const sink = opts.sink ?? DUO_DEFAULTS.sink
  const recent = opts.recent ?? DUO_DEFAULTS.recent
  window(op, sink, recent)
  const a = Array.from(alpha)
  if (a.length === 0 || a.some(x => !Number.isFinite(x))) throw new ValueError({ op, arg: 'alpha', expected: 'a non-empty list of finite gates', actual: a })
  let retrieval: boolean[]
  if (opts.sparsity !== undefined) {
    const s = opts.sparsity
    if (!(s >= 0 && s <= 1)) throw new ValueError({ op, arg: 'sparsity', expected: 'a fraction in [0, 1]', actual: s })
    const nStream = Math.round(s * a.length)
    // Lowest gates stream; ties go to the lower head index so the choice is deterministic.
    const order = a.map((x, h) => [x, h] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1])
    const streaming = new Set(order.slice(0, nStream).map(([, h]) => h))
    retrieval = a.map((_, h) => !streaming.has(h))
  } else {
    const th = opts.threshold ?? DUO_DEFAULTS.threshold
    if (!Number.isFinite(th)) throw new ValueError({ op, arg: 'threshold', expected: 'a finite number', actual: th })
    retrieval = a.map(x => x >= th)
  }
  return { retrieval, policies: retrieval.map(r => (r ? headPolicy.full() : headPolicy.streaming(sink, recent))), alpha: retrieval.map(r => (r ? 1 : 0)), sink, recent }
}

export interface DuoKvBytesOptions {
  /** Sequences (default 1). */
  readonly batch?: number
  /** Key head dimension. */
  readonly headDim: number
  /** Value head dimension (default `headDim`). */
  readonly valueDim?: number
  /** Tokens in context. */
  readonly seqLen: number
  /** Storage dtype of the cache (default float32). */
  readonly dtype?: DType
}

/**
 * KV memory of a deployment against keeping the full KV for every head, counted per retained token:
 * retrieval heads hold `seqLen` tokens, streaming heads `min(seqLen, sink + recent)`. (A `KvCache` preallocates:
 * its `bytes()` counts `capacity` slots per full head and `sink + recent − 1 + chunk` per streaming head.)
 */
export function duoKvBytes(deployment: DuoDeployment, opts: DuoKvBytesOptions): { full: number; deployed: number; ratio: number } {
  const op = 'duoKvBytes'
  operatorOptions(op, opts, ['batch', 'headDim', 'valueDim', 'seqLen', 'dtype'], '{ headDim, seqLen, … }')
  const B = opts.batch ?? 1
  const D = opts.headDim
  const Dv = opts.valueDim ?? D
  const T = opts.seqLen
  for (const [arg, x] of [['batch', B], ['headDim', D], ['valueDim', Dv], ['seqLen', T]] as const)
    if (!Number.isInteger(x) || x < 0) throw new ValueError({ op, arg, expected: 'a non-negative integer', actual: x })
  const perToken = B * (D + Dv) * bytesPerElement(opts.dtype ?? 'float32')
  const kept = deployment.retrieval.reduce((n, r) => n + (r ? T : Math.min(T, deployment.sink + deployment.recent)), 0)
  const full = deployment.retrieval.length * T * perToken
  const deployed = kept * perToken
  return { full, deployed, ratio: deployed === 0 ? 1 : full / deployed }
}
