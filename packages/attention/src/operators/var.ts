import { add, div, exp, greater, max, mul, reshape, scope, ShapeError, stack, stopGradient, sub, sum, tensor, ValueError, where, type Tensor } from '@heed/tensor'
import { mask as masks, type Mask } from '../mask.js'
import { checkQkv, scaledDotProductAttention, type SdpaOptions } from '../sdpa.js'
import { operatorOptions, SDPA_OPTIONS } from './strict.js'

/**
 * VAR's settings as reported by a third-party reproduction (`benmagnifico/VisAttnSink` notes) of Kang et al. 2025
 * (arXiv 2503.03321); unverified against the paper.
 */
export const VAR_DEFAULTS = Object.freeze({ p: 0.6, tau: 20, rho: 0.5, imageFloor: 0.2 })

export interface VarOptions extends SdpaOptions {
  /** Key positions of the image tokens. */
  readonly visual: readonly number[]
  /** Key positions of the visual sink tokens (a subset of `visual`; see `visualSinks`). */
  readonly sinks: readonly number[]
  /** Share of the sink mass moved to the other image tokens (default 0.6). */
  readonly p?: number
  /** Query heads to redistribute in, or 'auto' (default): the image-centric heads, per batch entry. */
  readonly heads?: readonly number[] | 'auto'
  /** 'auto': least share of a head's image attention on non-sink image tokens (default 0.5). */
  readonly rho?: number
  /** 'auto': least total image attention of a head (default 0.2). */
  readonly imageFloor?: number
  /** Query positions to redistribute (default: those that are not image tokens, i.e. the text rows). */
  readonly rows?: readonly number[]
}

export interface VarResult {
  /** [B, H, Tq, Dv] */
  readonly out: Tensor
  /** Attention mass of each row on the visual sinks, the other image tokens, and the rest, before: [B, H, Tq, 3]. */
  readonly masses: Tensor
  /** [b][h]: whether the head redistributed. */
  readonly heads: readonly (readonly boolean[])[]
}

const OP = 'varAttention'

function positions(arg: string, xs: unknown): number[] {
  if (!Array.isArray(xs)) throw new ValueError({ op: OP, arg, expected: 'an array of key positions', actual: typeof xs })
  xs.forEach((p, i) => {
    if (!Number.isInteger(p) || (p as number) < 0) throw new ValueError({ op: OP, arg: `${arg}[${i}]`, expected: 'a non-negative integer position', actual: p })
  })
  return [...new Set(xs as number[])]
}

/**
 * Visual sink tokens (VAR step 1): image positions whose RMS-normalised hidden state has a massive activation,
 * `max_{d ∈ dims} |RMSNorm(h_j)_d| > τ` (no learned gain: the test is on the normalised direction). `hidden`
 * `[T, dModel]` on the host; `dims` the model's massive-activation channels (e.g. {1415, 2533} for LLaMA-2-7B).
 */
export function visualSinks(hidden: ArrayLike<number>, dModel: number, opts: { readonly visual: readonly number[]; readonly dims: readonly number[]; readonly tau?: number; readonly eps?: number }): number[] {
  const op = 'visualSinks'
  operatorOptions(op, opts, ['visual', 'dims', 'tau', 'eps'], '{ visual, dims, … }')
  if (!Number.isInteger(dModel) || dModel < 1 || hidden.length % dModel !== 0) throw new ShapeError({ op, arg: 'hidden', expected: `[T, ${dModel}] values`, actual: hidden.length })
  const T = hidden.length / dModel
  const tau = opts.tau ?? VAR_DEFAULTS.tau
  const eps = opts.eps ?? 1e-6
  for (const d of opts.dims) if (!Number.isInteger(d) || d < 0 || d >= dModel) throw new ValueError({ op, arg: 'dims', expected: `channels in [0, ${dModel})`, actual: d })
  return positions('visual', opts.visual)
    .filter(j => {
      if (j >= T) throw new ValueError({ op, arg: 'visual', expected: `positions in [0, ${T})`, actual: j })
      let ms = 0
      for (let d = 0; d < dModel; d++) ms += Number(hidden[j * dModel + d]) ** 2
      const rms = Math.sqrt(ms / dModel + eps)
      return opts.dims.some(d => Math.abs(Number(hidden[j * dModel + d])) / rms > tau)
    })
    .sort((a, b) => a - b)
}

/**
 * VAR, visual attention redistribution as a mass-transfer merge of (o, lse) states: attention states over the visual
 * sinks V_s, the other image tokens V_n and the rest, with masses m = softmax(lse_s, lse_n, lse_r); in the chosen
 * heads and rows `m'_s = (1 − p)·m_s`, `m'_n = m_n + p·m_s`, `m'_r = m_r`, and `o = Σ m'·o`. That is the dense
 * rule `P'_ij = (1 − p)P_ij` on sinks and `P_ij + p·m_s·P_ij / Σ_{V_n} P` on other image tokens, without the T×T
 * matrix. Rows still sum to 1; text columns are unchanged; p = 0 is the identity; rows with no non-sink image token
 * in view are left alone. 'auto' heads: those whose rows put on average ≥ imageFloor on the image and ≥ rho of that
 * on non-sinks (read on the host; pass explicit heads on WebGPU). Differentiable in q, k, v for fixed heads.
 */
export function varAttention(q: Tensor, k: Tensor, v: Tensor, opts: VarOptions): VarResult {
  checkQkv(OP, q, k, v)
  operatorOptions(OP, opts, [...SDPA_OPTIONS, 'visual', 'sinks', 'p', 'heads', 'rho', 'imageFloor', 'rows'], '{ visual, sinks, … }')
  const { visual: vis, sinks: snk, p = VAR_DEFAULTS.p, heads = 'auto', rho = VAR_DEFAULTS.rho, imageFloor = VAR_DEFAULTS.imageFloor, rows, ...sdpa } = opts
  const visual = new Set(positions('visual', vis))
  const sinks = new Set(positions('sinks', snk))
  for (const s of sinks) if (!visual.has(s)) throw new ValueError({ op: OP, arg: 'sinks', expected: 'positions among `visual`', actual: s })
  if (!(p >= 0 && p <= 1)) throw new ValueError({ op: OP, arg: 'p', expected: 'a number in [0, 1]', actual: p })
  for (const [arg, x] of [['rho', rho], ['imageFloor', imageFloor]] as const) if (!(x >= 0 && x <= 1)) throw new ValueError({ op: OP, arg, expected: 'a number in [0, 1]', actual: x })
  const [B, H, Tq] = q.shape as [number, number, number, number]
  const Tk = k.shape[2]!
  const qOff = sdpa.queryOffset ?? Math.max(0, Tk - Tq)
  const kOff = sdpa.keyOffset ?? 0
  const rowSet = rows === undefined ? undefined : new Set(positions('rows', rows))
  const rowOn = Float64Array.from({ length: Tq }, (_, i) => (rowSet ? rowSet.has(qOff + i) : !visual.has(qOff + i)) ? 1 : 0)
  let fixedHeads: boolean[] | undefined
  if (heads !== 'auto') {
    const hs = positions('heads', heads)
    for (const h of hs) if (h >= H) throw new ValueError({ op: OP, arg: 'heads', expected: `query heads in [0, ${H})`, actual: h })
    fixedHeads = Array.from({ length: H }, (_, h) => hs.includes(h))
  } else if (q.backend !== 'cpu') throw new ValueError({ op: OP, arg: 'heads', expected: `explicit heads on the ${q.backend} backend ('auto' reads masses on the host)`, actual: 'auto' })

  // Key-membership masks as segment ids, so they compile to WGSL.
  const qIds = new Int32Array(qOff + Tq).fill(1)
  const part = (f: (p: number) => boolean): Mask => masks.segments(qIds, Int32Array.from({ length: kOff + Tk }, (_, pk) => (f(pk) ? 1 : 0)))
  const parts = [part(x => sinks.has(x)), part(x => visual.has(x) && !sinks.has(x)), part(x => !visual.has(x))]

  const { out, masses, on } = scope(() => {
    const states = parts.map(m => scaledDotProductAttention(q, k, v, { ...sdpa, mask: sdpa.mask ? masks.and(m, sdpa.mask) : m }))
    const lse = stack(states.map(s => s.lse), 3)
    // Softmax over the three lse; the shift is a constant of the math, and rows that saw nothing shift by 0.
    const mx = stopGradient(max(lse, { axis: 3, keepDims: true }))
    const seen = greater(mx, -Infinity)
    const w = exp(sub(lse, where(seen, mx, 0)))
    const m = div(w, where(seen, sum(w, { axis: 3, keepDims: true }), 1))
    const masses = m
    const split = (i: number): Tensor => reshape(sum(mul(m, tensor([0, 1, 2].map(j => (j === i ? 1 : 0)), [1, 1, 1, 3], q.dtype, { backend: q.backend })), { axis: 3 }), [B, H, Tq, 1])
    const [ms, mn, mr] = [split(0), split(1), split(2)]
    let headOn: boolean[][]
    if (fixedHeads) headOn = Array.from({ length: B }, () => fixedHeads!)
    else {
      const host = m.dataSync()
      headOn = Array.from({ length: B }, (_, b) =>
        Array.from({ length: H }, (_, h) => {
          let img = 0
          let non = 0
          let n = 0
          for (let i = 0; i < Tq; i++) {
            if (!rowOn[i]) continue
            const at = ((b * H + h) * Tq + i) * 3
            const [s, nn] = [Number(host[at]), Number(host[at + 1])]
            n++
            img += s + nn
            non += s + nn > 0 ? nn / (s + nn) : 0
          }
          return n > 0 && img / n >= imageFloor && non / n >= rho
        }),
      )
    }
    const gate = tensor(
      Array.from({ length: B * H * Tq }, (_, r) => (headOn[Math.floor(r / (H * Tq))]![Math.floor(r / Tq) % H]! && rowOn[r % Tq] ? p : 0)),
      [B, H, Tq, 1],
      q.dtype,
      { backend: q.backend },
    )
    // No non-sink image token in view: nowhere to move the mass, so the row stays as it is.
    const move = mul(where(greater(reshape(states[1]!.lse, [B, H, Tq, 1]), -Infinity), gate, 0), ms)
    const out = add(add(mul(states[0]!.out, sub(ms, move)), mul(states[1]!.out, add(mn, move))), mul(states[2]!.out, mr))
    return { out, masses, on: headOn }
  })
  return { out, masses, heads: on }
}
