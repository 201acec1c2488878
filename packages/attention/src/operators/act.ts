import { add, greater, less, mul, reshape, scope, sigmoid, sub, sum, tensor, ValueError, where, type Tensor } from '@heed/tensor'
import { mask as masks, type Mask } from '../mask.js'
import { attentionProbs } from '../observe.js'
import { checkQkv, scaledDotProductAttention, type SdpaOptions } from '../sdpa.js'
import { operatorOptions, SDPA_OPTIONS } from './strict.js'

/** ACT's defaults (GATECH-EIC/ACT scripts): sink mass kept β = 0.4, column-score threshold τ = 0.1. */
export const ACT_DEFAULTS = Object.freeze({ beta: 0.4, tau: 0.1, epsilon: 1e-6 })

export interface ActOptions extends SdpaOptions {
  /** Fraction of a row's sink mass that stays on the sinks (default 0.4); the rest goes to the other keys. */
  readonly beta?: number
  /** Column-score threshold of the automatic sink set (default 0.1). */
  readonly tau?: number
  /**
   * The sink set S: absolute key positions (the same for every batch entry and head), or `'auto'` (default): per
   * batch entry and head, S = {j : c_j > τ} with `c_j = Σ_i P_ij / #rows that can see j`, less one element (see
   * `exclude`). The automatic set reads the whole prefill, so it is not prefix-consistent; a given set is.
   */
  readonly sinks?: readonly number[] | 'auto'
  /**
   * Which qualifying column `'auto'` keeps uncalibrated: `'first'` (default, the reference code's `indices[1:]`:
   * the first one over τ, usually BOS) or `'bos'` (position 0 only, whether or not it qualifies).
   */
  readonly exclude?: 'first' | 'bos'
  /** Query heads to calibrate (default all); ACT picks them offline per layer. Other heads pass through. */
  readonly heads?: readonly number[]
  /** Rows whose non-sink mass 1 − m_i is below ε stay unchanged (the reference divides 0/0 there). Default 1e-6. */
  readonly epsilon?: number
}

export interface ActResult {
  /** [B, H, Tq, Dv] */
  readonly out: Tensor
  /** m_i, the attention mass each row puts on S before calibration: [B, H, Tq]. */
  readonly sinkMass: Tensor
  /** The sink set used, per batch entry then per query head (key positions, ascending). */
  readonly sinks: readonly (readonly (readonly number[])[])[]
}

const OP = 'actAttention'

/** 0/1 key-membership masks for a set shared by all heads, as segment ids so they compile to WGSL. */
function sharedSetMasks(set: ReadonlySet<number>, qEnd: number, kEnd: number): [Mask, Mask] {
  const q = new Int32Array(qEnd).fill(1)
  const inS = new Int32Array(kEnd)
  const outS = new Int32Array(kEnd)
  for (let p = 0; p < kEnd; p++) (set.has(p) ? inS : outS)[p] = 1
  return [masks.segments(q, inS), masks.segments(q, outS)]
}

/**
 * ACT, attention calibration: in rows that put mass m_i on the sink set S, keep β·m_i there and give the
 * rest of it to the other keys in proportion to their weights. Computed as a weighted merge of two attention
 * states, no T×T matrix: `o_i = β·m_i·o_S + (1 − β·m_i)·o_R`, with `m_i = σ(lse_S − lse_R)`. Rows still sum to 1,
 * zeros stay zeros; β = 1 or S = ∅ is the identity. Rows with (almost) all mass on S are left as they are.
 * Inference-time: the sink set is discrete (chosen on the host), the output differentiable in q, k, v for fixed S.
 */
export function actAttention(q: Tensor, k: Tensor, v: Tensor, opts: ActOptions = {}): ActResult {
  checkQkv(OP, q, k, v)
  operatorOptions(OP, opts, [...SDPA_OPTIONS, 'beta', 'tau', 'sinks', 'exclude', 'heads', 'epsilon'])
  const { beta = ACT_DEFAULTS.beta, tau = ACT_DEFAULTS.tau, sinks = 'auto', exclude = 'first', heads, epsilon = ACT_DEFAULTS.epsilon, ...sdpa } = opts
  if (!Number.isFinite(beta) || beta < 0 || beta > 1) throw new ValueError({ op: OP, arg: 'beta', expected: 'a number in [0, 1]', actual: beta })
  if (!Number.isFinite(tau)) throw new ValueError({ op: OP, arg: 'tau', expected: 'a finite number', actual: tau })
  if (!(epsilon >= 0)) throw new ValueError({ op: OP, arg: 'epsilon', expected: 'a non-negative number', actual: epsilon })
  if (exclude !== 'first' && exclude !== 'bos') throw new ValueError({ op: OP, arg: 'exclude', expected: "'first' or 'bos'", actual: exclude })
  const [B, H, Tq] = q.shape as [number, number, number, number]
  const Tk = k.shape[2]!
  const qOff = sdpa.queryOffset ?? Math.max(0, Tk - Tq)
  const kOff = sdpa.keyOffset ?? 0
  const calibrated = new Set(heads ?? Array.from({ length: H }, (_, h) => h))
  for (const h of calibrated) if (!Number.isInteger(h) || h < 0 || h >= H) throw new ValueError({ op: OP, arg: 'heads', expected: `query heads in [0, ${H})`, actual: h })

  let perHead: number[][][]
  let shared: ReadonlySet<number> | undefined
  if (sinks === 'auto') perHead = autoSinks(q, k, v, B, H, calibrated, qOff, kOff, tau, exclude, sdpa)
  else {
    if (!Array.isArray(sinks)) throw new ValueError({ op: OP, arg: 'sinks', expected: "key positions or 'auto'", actual: typeof sinks })
    sinks.forEach((p, i) => {
      if (!Number.isInteger(p) || p < 0) throw new ValueError({ op: OP, arg: `sinks[${i}]`, expected: 'a non-negative integer key position', actual: p })
    })
    const sorted = [...new Set(sinks)].sort((a, b) => a - b)
    shared = new Set(sorted)
    perHead = Array.from({ length: B }, () => Array.from({ length: H }, (_, h) => (calibrated.has(h) ? sorted : [])))
  }

  return scope(() => {
    const cal = sdpa.mask
    const both = (m: Mask): Mask => (cal ? masks.and(m, cal) : m)
    let inS: Mask
    let outS: Mask
    if (shared && calibrated.size === H) [inS, outS] = sharedSetMasks(shared, qOff + Tq, kOff + Tk)
    else {
      const member = perHead.map(row => row.map(s => new Set(s)))
      inS = masks.custom((b, h, _pq, pk) => member[b]![h]!.has(pk))
      outS = masks.not(inS)
    }
    const s = scaledDotProductAttention(q, k, v, { ...sdpa, mask: both(inS) })
    const r = scaledDotProductAttention(q, k, v, { ...sdpa, mask: both(outS) })
    const sSeen = greater(s.lse, -Infinity)
    const rSeen = greater(r.lse, -Infinity)
    // m = e^{lse_S} / (e^{lse_S} + e^{lse_R}), with the empty parts (−∞) resolved before the subtraction.
    const m = where(sSeen, where(rSeen, sigmoid(sub(where(sSeen, s.lse, 0), where(rSeen, r.lse, 0))), 1), 0)
    const betaH = tensor(Array.from({ length: H }, (_, h) => (calibrated.has(h) ? beta : 1)), [1, H, 1], q.dtype, { backend: q.backend })
    const rowBeta = where(less(sub(1, m), epsilon), 1, betaH)
    const wS = mul(rowBeta, m)
    const out = add(mul(s.out, reshape(wS, [B, H, Tq, 1])), mul(r.out, reshape(sub(1, wS), [B, H, Tq, 1])))
    return { out, sinkMass: m, sinks: perHead }
  })
}

/** Per batch entry and calibrated head: {j : c_j > τ} less the excluded column. */
function autoSinks(q: Tensor, k: Tensor, v: Tensor, B: number, H: number, calibrated: ReadonlySet<number>, qOff: number, kOff: number, tau: number, exclude: 'first' | 'bos', sdpa: SdpaOptions): number[][][] {
  const Tq = q.shape[2]!
  const Tk = k.shape[2]!
  const obs = { ...sdpa, queryOffset: qOff, keyOffset: kOff }
  const { blockSize: _bs, ...observe } = obs
  const colSums = scope(() => {
    const { lse } = scaledDotProductAttention(q, k, v, obs)
    // Row chunks keep memory at O(chunk·Tk): Σ_i P_ij accumulates chunk by chunk.
    let acc: Tensor | undefined
    const chunk = 64
    for (let s = 0; s < Tq; s += chunk) {
      const rows = Array.from({ length: Math.min(chunk, Tq - s) }, (_, i) => s + i)
      const part = sum(attentionProbs(q, k, lse, { ...observe, rows }), { axis: 2 })
      acc = acc ? add(acc, part) : part
    }
    return acc!
  })
  const sums = colSums.dataSync()
  colSums.dispose()
  // Rows that can see key j: all of them, less those a causal or user mask hides it from.
  const seen = new Float64Array(B * H * Tk)
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let j = 0; j < Tk; j++) {
        const pk = kOff + j
        let n: number
        if (!sdpa.mask) n = sdpa.causal ? Math.max(0, Math.min(Tq, qOff + Tq - pk)) : Tq
        else {
          n = 0
          for (let i = 0; i < Tq; i++) if ((!sdpa.causal || pk <= qOff + i) && sdpa.mask.test(b, h, qOff + i, pk)) n++
        }
        seen[(b * H + h) * Tk + j] = n
      }
  return Array.from({ length: B }, (_, b) =>
    Array.from({ length: H }, (_, h) => {
      if (!calibrated.has(h)) return []
      const picked: number[] = []
      for (let j = 0; j < Tk; j++) {
        const n = seen[(b * H + h) * Tk + j]!
        if (n > 0 && sums[(b * H + h) * Tk + j]! / n > tau) picked.push(kOff + j)
      }
      return exclude === 'first' ? picked.slice(1) : picked.filter(p => p !== 0)
    }),
  )
}
