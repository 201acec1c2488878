import { add, ArgumentError, broadcastTo, concat, matmul, mul, nonNegativeInt, reshape, scope, ShapeError, slice, tensor, ValueError, zeros, type Tensor, positiveInt } from '@heed/tensor'
import { alibiSlopes } from '../scoreMod.js'
import { checkQkv } from '../sdpa.js'
import { flag, objectArg, operatorOptions, tensorArg } from './strict.js'

/**
 * Lightning Attention 1/2 (TransNormerLLM; Qin et al., "Lightning Attention-2: A Free Lunch for Handling Unlimited
 * Sequence Lengths in Large Language Models", 2024, and "Various Lengths, Constant Speed: Efficient Language
 * Modeling with Lightning Attention", ICML 2024): causal linear attention with a per-head scalar decay λ_h,
 *
 *   o_t = s · Σ_{s' ≤ t} λ^{t−s'} (q_t · k_{s'}) v_{s'}
 *
 * with no softmax and no denominator. Three forms give the same numbers: `naive` materialises `((QKᵀ) ⊙ M) V`,
 * `chunk` tiles the sequence into blocks (masked products inside a block, a carried `D × Dv` state between blocks)
 * and `step` runs the recurrence `S ← λS + kᵀv, o = qS` token by token.
 */

/**
 * The carried linear-attention state: `S = Σ_{s < pos} λ^{pos−1−s} k_sᵀ v_s` per query head, i.e. the
 * recurrent state after the last absorbed token, and `pos` the number of tokens absorbed. It is also an element of
 * the state monoid: `(pos, S)` with identity `(0, 0)`, see {@link combineLinearStates}.
 */
export interface LinearState {
  /** [B, H, D, Dv] */
  readonly S: Tensor
  readonly pos: number
}

/** 'tnl': OpenNLPLab's TransNormerLLM slopes; 'fla': flash-linear-attention's `g_gamma`. They differ numerically. */
export type LightningPreset = 'tnl' | 'fla'

/**
 * A decay specification:
 * - a preset name or `{ preset, layer, layers }` (the per-layer schedule of that library);
 * - one λ ∈ (0, 1] for every head, or one per query head.
 */
export type LightningDecay = LightningPreset | { readonly preset: LightningPreset; readonly layer?: number; readonly layers?: number } | number | readonly number[]

export interface LightningOptions {
  /** Required: the two published presets are not interchangeable, so none is picked silently. */
  readonly decay: LightningDecay
  /**
   * Factor on q·k. Default: 1 for 'tnl' and explicit decays (the official op has no scale), 1/√D for 'fla' (what
   * flash-linear-attention applies).
   */
  readonly scale?: number
  /** Rows per tile of the chunked form (default 64, the official BLOCK). */
  readonly blockSize?: number
}

export interface LightningAttentionOptions extends LightningOptions {
  /**
   * Default true. The non-causal form is `s·Q(KᵀV)` with no decay: the paper defines no bidirectional decay, so
   * `decay` only matters when causal.
   */
  readonly causal?: boolean
  /** Causal only: the state carried in from earlier calls (default: the empty state). */
  readonly state?: LightningStateInput
  /** Which of the three equal forms computes it (default 'chunk'). */
  readonly form?: 'chunk' | 'recurrent' | 'naive'
}

/** A state, or `undefined` for the empty one. */
export type LightningStateInput = LinearState | undefined

export interface LightningResult {
  /** [B, H, Tq, Dv] */
  readonly out: Tensor
  /** Causal only: the state after the last key (`pos` counts keys absorbed over all calls). */
  readonly state?: LinearState
}

export interface LightningOp {
  /** Block-tiled causal form. */
  chunk(q: Tensor, k: Tensor, v: Tensor, opts?: { readonly state?: LightningStateInput }): { o: Tensor; state: LinearState }
  /** Recurrent form, one token at a time (any T; T = 1 is decoding). */
  step(q: Tensor, k: Tensor, v: Tensor, state?: LightningStateInput): { o: Tensor; state: LinearState }
  /** The materialised reference `s·((QKᵀ) ⊙ M) V` (+ the carried state's contribution), O(T²) memory. */
  naive(q: Tensor, k: Tensor, v: Tensor, opts?: { readonly state?: LightningStateInput }): { o: Tensor; state: LinearState }
  /** sdpa-shaped entry point (`(q, k, v, opts) → { out }`), so layers can call it like `scaledDotProductAttention`. */
  attend(q: Tensor, k: Tensor, v: Tensor, opts?: Omit<LightningAttentionOptions, keyof LightningOptions>): LightningResult
  /** State monoid product (see {@link combineLinearStates}) under this op's decays. */
  combine(a: LinearState, b: LinearState): LinearState
  /** λ per head for `heads` query heads. */
  decays(heads: number): Float64Array
}

const OP = 'lightningAttention'
const LIGHTNING_OPTIONS = ['decay', 'scale', 'blockSize']
const ATTENTION_OPTIONS = [...LIGHTNING_OPTIONS, 'causal', 'state', 'form']

/**
 * Per-head decays λ_h of a preset.
 * - 'tnl': `λ_h = exp(−slope_h · f)`, slopes the ALiBi geometric sequence (`2^{−8(h+1)/H}`, interleaved for H not a
 *   power of two) and `f = 1 − layer/(layers−1) + 1e−5` when a layer schedule is given (so the last layer is almost
 *   decay-free), else 1.
 * - 'fla': `λ_h = exp(−(8/H)(1 − layer/layers) · h)`: head 0 has no decay.
 */
export function lightningDecay(preset: LightningPreset, heads: number, schedule: { readonly layer?: number; readonly layers?: number } = {}): Float64Array {
  const op = 'lightningDecay'
  positiveInt(op, 'heads', heads)
  const { layer, layers } = schedule
  if ((layer === undefined) !== (layers === undefined)) throw new ValueError({ op, arg: 'layer', expected: 'layer and layers given together', actual: { layer, layers } })
  if (layer !== undefined && layers !== undefined && !(Number.isInteger(layer) && Number.isInteger(layers) && layers >= 1 && layer >= 0 && layer < layers))
    throw new ValueError({ op, arg: 'layer', expected: `an integer in [0, layers) with layers ≥ 1`, actual: { layer, layers } })
  if (preset === 'tnl') {
    // TNL divides by layers − 1; with one layer there is no schedule to follow, so the factor is 1.
    const f = layer !== undefined && layers !== undefined && layers > 1 ? 1 - layer / (layers - 1) + 1e-5 : 1
    return alibiSlopes(heads).map(s => Math.exp(-s * f))
  }
  if (preset === 'fla') {
    const f = layer !== undefined && layers !== undefined ? 1 - layer / layers : 1
    return Float64Array.from({ length: heads }, (_, h) => Math.exp(-(8 / heads) * f * h))
  }
  throw new ValueError({ op, arg: 'preset', expected: "'tnl' or 'fla'", actual: preset })
}

function resolveDecay(decay: LightningDecay, heads: number): Float64Array {
  if (decay === undefined) throw new ValueError({ op: OP, arg: 'decay', expected: "'tnl', 'fla', { preset, layer, layers }, a λ or one λ per head", actual: undefined })
  let lam: Float64Array
  if (typeof decay === 'string') lam = lightningDecay(decay, heads)
  else if (typeof decay === 'number') lam = new Float64Array(heads).fill(decay)
  else if (Array.isArray(decay)) {
    if (decay.length !== heads) throw new ValueError({ op: OP, arg: 'decay', expected: `${heads} decays (one per query head)`, actual: decay.length })
    lam = Float64Array.from(decay as readonly number[])
  } else if (typeof decay === 'object' && decay !== null && 'preset' in decay) {
    operatorOptions(`${OP}: decay`, decay, ['preset', 'layer', 'layers'])
    const sched = { ...(decay.layer !== undefined ? { layer: decay.layer } : {}), ...(decay.layers !== undefined ? { layers: decay.layers } : {}) }
    lam = lightningDecay(decay.preset, heads, sched)
  } else throw new ValueError({ op: OP, arg: 'decay', expected: "'tnl', 'fla', { preset, layer, layers }, a λ or one λ per head", actual: typeof decay })
  for (const l of lam) if (!(l > 0 && l <= 1)) throw new ValueError({ op: OP, arg: 'decay', expected: 'every λ in (0, 1]', actual: Array.from(lam) })
  return lam
}

const presetOf = (decay: LightningDecay): LightningPreset | undefined =>
  typeof decay === 'string' ? decay : typeof decay === 'object' && decay !== null && 'preset' in decay ? decay.preset : undefined

function resolveScale(opts: LightningOptions, D: number): number {
  const scale = opts.scale ?? (presetOf(opts.decay) === 'fla' ? 1 / Math.sqrt(D) : 1)
  if (!Number.isFinite(scale)) throw new ValueError({ op: OP, arg: 'scale', expected: 'a finite number', actual: scale })
  return scale
}

/** k/v with Hkv heads repeated to H query heads (grouped-query attention). */
export function repeatKvHeads(x: Tensor, H: number): Tensor {
  const [B, Hkv, T, D] = x.shape as [number, number, number, number]
  if (Hkv === H) return x
  const g = H / Hkv
  return reshape(broadcastTo(reshape(x, [B, Hkv, 1, T, D]), [B, Hkv, g, T, D]), [B, H, T, D])
}

/** A [1, H, rows, cols] constant from f(h, r, c), on x's backend in x's dtype. */
function constant(like: Tensor, H: number, rows: number, cols: number, f: (h: number, r: number, c: number) => number): Tensor {
  const vals = new Float64Array(H * rows * cols)
  for (let h = 0, i = 0; h < H; h++) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++, i++) vals[i] = f(h, r, c)
  return tensor(vals, [1, H, rows, cols], like.dtype, { backend: like.backend })
}

/** λ^n without 0^0 surprises: λ = 1 stays exactly 1. */
const pow = (l: number, n: number): number => (l === 1 ? 1 : l ** n)

function checkState(state: LightningStateInput, B: number, H: number, D: number, Dv: number, dtype: string): void {
  if (state === undefined) return
  if (typeof state !== 'object' || state === null || !('S' in state)) throw new ValueError({ op: OP, arg: 'state', expected: '{ S, pos }', actual: typeof state })
  const s = state.S.shape
  if (s.length !== 4 || s[0] !== B || s[1] !== H || s[2] !== D || s[3] !== Dv) throw new ShapeError({ op: OP, arg: 'state.S', expected: [B, H, D, Dv], actual: s })
  if (state.S.dtype !== dtype) throw new ValueError({ op: OP, arg: 'state.S', expected: `${dtype} like q`, actual: state.S.dtype })
  if (!Number.isInteger(state.pos) || state.pos < 0) throw new ValueError({ op: OP, arg: 'state.pos', expected: 'a non-negative integer', actual: state.pos })
}

interface Prepared {
  readonly q: Tensor
  readonly k: Tensor
  readonly v: Tensor
  readonly lam: Float64Array
  readonly S0: Tensor | undefined
  readonly pos0: number
  readonly dims: readonly [number, number, number, number, number, number]
}

/** Validate, expand GQA heads, fold the scale into q. Call inside a scope. */
function prepare(q: Tensor, k: Tensor, v: Tensor, opts: LightningOptions, state: LightningStateInput, selfOnly: boolean): Prepared {
  checkQkv(OP, q, k, v)
  const [B, H, Tq, D] = q.shape as [number, number, number, number]
  const Tk = k.shape[2]!
  const Dv = v.shape[3]!
  if (selfOnly && Tq !== Tk) throw new ShapeError({ op: OP, arg: 'k', expected: `${Tq} keys (one per query; fold earlier keys into state)`, actual: k.shape })
  const lam = resolveDecay(opts.decay, H)
  const scale = resolveScale(opts, D)
  checkState(state, B, H, D, Dv, q.dtype)
  return {
    q: scale === 1 ? q : mul(q, scale),
    k: repeatKvHeads(k, H),
    v: repeatKvHeads(v, H),
    lam,
    S0: state?.S,
    pos0: state?.pos ?? 0,
    dims: [B, H, Tq, Tk, D, Dv],
  }
}

const blockOf = (opts: LightningOptions): number => {
  const b = opts.blockSize ?? 64
  positiveInt(OP, 'blockSize', b)
  return b
}

/** S' = λ^n S + Σ_c λ^{n−1−c} k_cᵀ v_c for the n rows of k, v: absorbing a block into the state. */
function absorb(S: Tensor | undefined, k: Tensor, v: Tensor, lam: Float64Array): Tensor {
  const [, H, n] = k.shape as [number, number, number]
  const kd = mul(k, constant(k, H, n, 1, (h, c) => pow(lam[h]!, n - 1 - c)))
  const kv = matmul(kd, v, { transposeA: true })
  return S === undefined ? kv : add(mul(S, constant(k, H, 1, 1, h => pow(lam[h]!, n))), kv)
}

/** Causal tiled form over self-aligned q/k/v (Tq = Tk), from state S0. */
function chunked(p: Prepared, block: number): { o: Tensor; S: Tensor | undefined } {
  const [, H, T] = p.dims
  const outs: Tensor[] = []
  let S = p.S0
  const diagCache = new Map<number, Tensor>()
  for (let t0 = 0; t0 < T; t0 += block) {
    const n = Math.min(block, T - t0)
    const rows = (x: Tensor): Tensor => (n === T ? x : slice(x, [null, null, [t0, t0 + n]]))
    const [qi, ki, vi] = [rows(p.q), rows(p.k), rows(p.v)]
    let diag = diagCache.get(n)
    if (!diag) {
      diag = constant(p.q, H, n, n, (h, a, c) => (a >= c ? pow(p.lam[h]!, a - c) : 0))
      diagCache.set(n, diag)
    }
    let oi = matmul(mul(matmul(qi, ki, { transposeB: true }), diag), vi)
    // Row a of the block sits a + 1 steps after the state's last token.
    if (S !== undefined) oi = add(oi, mul(matmul(qi, S), constant(p.q, H, n, 1, (h, a) => pow(p.lam[h]!, a + 1))))
    outs.push(oi)
    S = absorb(S, ki, vi, p.lam)
  }
  return { o: outs.length === 1 ? outs[0]! : concat(outs, 2), S }
}

function recurrent(p: Prepared): { o: Tensor; S: Tensor | undefined } {
  const [, H, T] = p.dims
  const decay = constant(p.q, H, 1, 1, h => p.lam[h]!)
  const outs: Tensor[] = []
  let S = p.S0
  for (let t = 0; t < T; t++) {
    const row = (x: Tensor): Tensor => (T === 1 ? x : slice(x, [null, null, [t, t + 1]]))
    const kv = matmul(row(p.k), row(p.v), { transposeA: true })
    S = S === undefined ? kv : add(mul(S, decay), kv)
    outs.push(matmul(row(p.q), S))
  }
  return { o: outs.length === 1 ? outs[0]! : concat(outs, 2), S }
}

function naiveForm(p: Prepared): { o: Tensor; S: Tensor | undefined } {
  const [, H, T] = p.dims
  const M = constant(p.q, H, T, T, (h, t, s) => (t >= s ? pow(p.lam[h]!, t - s) : 0))
  let o = matmul(mul(matmul(p.q, p.k, { transposeB: true }), M), p.v)
  if (p.S0 !== undefined) o = add(o, mul(matmul(p.q, p.S0), constant(p.q, H, T, 1, (h, t) => pow(p.lam[h]!, t + 1))))
  // The final state, materialised the same way: row T−1 of the decay matrix weights each key.
  return { o, S: absorb(p.S0, p.k, p.v, p.lam) }
}

const finish = (p: Prepared, r: { o: Tensor; S: Tensor | undefined }): { o: Tensor; state: LinearState } => {
  const [B, H, , Tk, D, Dv] = p.dims
  return { o: r.o, state: { S: r.S ?? zeros([B, H, D, Dv], { dtype: p.q.dtype, backend: p.q.backend }), pos: p.pos0 + Tk } }
}

type Form = 'chunk' | 'recurrent' | 'naive'

function causalForm(q: Tensor, k: Tensor, v: Tensor, opts: LightningOptions, state: LightningStateInput, form: Form): { o: Tensor; state: LinearState } {
  return scope(() => {
    const [Tq, Tk] = [q.shape[2]!, k.shape[2]!]
    // Keys without a query (Tq < Tk, bottom-right aligned as in decode) only feed the state.
    if (Tk > Tq && q.rank === 4) {
      checkQkv(OP, q, k, v)
      const lead = Tk - Tq
      const [B, H, , D] = q.shape as [number, number, number, number]
      checkState(state, B, H, D, v.shape[3]!, q.dtype)
      const cut = (x: Tensor, a: number, b: number): Tensor => slice(x, [null, null, [a, b]])
      const lam = resolveDecay(opts.decay, H)
      const S = absorb(state?.S, repeatKvHeads(cut(k, 0, lead), H), repeatKvHeads(cut(v, 0, lead), H), lam)
      return causalForm(q, cut(k, lead, Tk), cut(v, lead, Tk), opts, { S, pos: (state?.pos ?? 0) + lead }, form)
    }
    const p = prepare(q, k, v, opts, state, true)
    const r = form === 'chunk' ? chunked(p, blockOf(opts)) : form === 'recurrent' ? recurrent(p) : naiveForm(p)
    return finish(p, r)
  })
}

/**
 * Lightning attention as one call, sdpa-shaped: q `[B, H, Tq, D]`, k `[B, Hkv, Tk, D]`, v `[B, Hkv, Tk, Dv]`
 * (Hkv dividing H) → `{ out [B, H, Tq, Dv], state }`.
 *
 * - Causal (default): `o_t = s·Σ_{s' ≤ t} λ_h^{t−s'} (q_t·k_{s'}) v_{s'}`, block-tiled by default. Tq ≤ Tk aligns the
 *   last query with the last key; the extra leading keys only enter the state. `state` continues an earlier call.
 * - Non-causal: `s·Q(KᵀV)`, no decay, any Tq/Tk.
 */
export function lightningAttention(q: Tensor, k: Tensor, v: Tensor, opts: LightningAttentionOptions): LightningResult {
  checkQkv(OP, q, k, v)
  operatorOptions(OP, opts, ATTENTION_OPTIONS, '{ decay, … } (decay is required)')
  flag(OP, 'causal', opts.causal)
  const form = opts.form ?? 'chunk'
  if (form !== 'chunk' && form !== 'recurrent' && form !== 'naive') throw new ValueError({ op: OP, arg: 'form', expected: "'chunk', 'recurrent' or 'naive'", actual: form })
  if (opts.causal === false) {
    if (opts.state !== undefined) throw new ValueError({ op: OP, arg: 'state', expected: 'no state in the non-causal form', actual: 'a state' })
    return scope(() => {
      const p = prepare(q, k, v, opts, undefined, false)
      return { out: matmul(p.q, matmul(p.k, p.v, { transposeA: true })) }
    })
  }
  if (k.rank === 4 && q.rank === 4 && k.shape[2]! < q.shape[2]!)
    throw new ShapeError({ op: OP, arg: 'k', expected: `at least Tq = ${q.shape[2]} keys when causal (bottom-right aligned)`, actual: k.shape })
  const r = causalForm(q, k, v, opts, opts.state, form)
  return { out: r.o, state: r.state }
}

/**
 * The state monoid: `(n₁, S₁) ∘ (n₂, S₂) = (n₁ + n₂, λ^{n₂} S₁ + S₂)`. With `a` the state after a prefix and
 * `b` the state of the next segment computed from the empty state, the result is the state after both. Identity:
 * the empty state `(0, 0)`.
 */
export function combineLinearStates(a: LinearState, b: LinearState, decays: ArrayLike<number>): LinearState {
  const op = 'combineLinearStates'
  for (const [arg, st] of [['a', a], ['b', b]] as const) {
    objectArg(op, arg, st, 'a linear state { S, pos }')
    tensorArg(op, `${arg}.S`, st.S, 'a Tensor [B, H, D, Dv]')
    nonNegativeInt(op, `${arg}.pos`, st.pos)
  }
  if (decays === null || typeof decays !== 'object' || !Number.isSafeInteger((decays as { length?: unknown }).length))
    throw new ArgumentError({ op, arg: 'decays', expected: 'an array of per-head decays', actual: decays === null ? 'null' : typeof decays })
  if (a.S.rank !== 4 || a.S.shape.some((d, i) => d !== b.S.shape[i])) throw new ShapeError({ op, arg: 'b.S', expected: a.S.shape, actual: b.S.shape })
  const H = a.S.shape[1]!
  if (decays.length !== H) throw new ValueError({ op, arg: 'decays', expected: `${H} decays`, actual: decays.length })
  return scope(() => ({ S: add(mul(a.S, constant(a.S, H, 1, 1, h => pow(decays[h]!, b.pos))), b.S), pos: a.pos + b.pos }))
}

/** A Lightning operator with its decay, scale and block size bound: chunked, recurrent and naive forms. */
export function lightning(opts: LightningOptions): LightningOp {
  operatorOptions('lightning', opts, LIGHTNING_OPTIONS, '{ decay, blockSize?, scale? }')
  resolveDecay(opts.decay, presetOf(opts.decay) !== undefined || typeof opts.decay === 'number' ? 1 : (opts.decay as readonly number[]).length)
  blockOf(opts)
  const st = (op: string, o?: { readonly state?: LightningStateInput }): LightningStateInput => (o === undefined ? undefined : operatorOptions(op, o, ['state']).state)
  return {
    chunk: (q, k, v, o) => (checkQkv('lightning.chunk', q, k, v), causalForm(q, k, v, opts, st('lightning.chunk', o), 'chunk')),
    step: (q, k, v, state) => (checkQkv('lightning.step', q, k, v), causalForm(q, k, v, opts, state, 'recurrent')),
    naive: (q, k, v, o) => (checkQkv('lightning.naive', q, k, v), causalForm(q, k, v, opts, st('lightning.naive', o), 'naive')),
    // the bound options are fixed: only the per-call ones may come here
    attend: (q, k, v, o = {}) => lightningAttention(q, k, v, { ...opts, ...operatorOptions('lightning.attend', o, ['causal', 'state', 'form']) }),
    combine: (a, b) => {
      objectArg('lightning.combine', 'a', a, 'a linear state { S, pos }')
      tensorArg('lightning.combine', 'a.S', a.S, 'a Tensor [B, H, D, Dv]')
      return combineLinearStates(a, b, resolveDecay(opts.decay, a.S.shape[1]!))
    },
    decays: heads => resolveDecay(opts.decay, heads),
  }
}
