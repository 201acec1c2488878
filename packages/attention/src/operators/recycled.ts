import { positiveInt, scope, tensor, take, ValueError, type Tensor } from '@heed/tensor'
import { mask as masks, type Mask } from '../mask.js'
import { attentionProbs } from '../observe.js'
import { checkQkv, scaledDotProductAttention, type AttentionResult, type SdpaOptions } from '../sdpa.js'
import { flag, operatorOptions, SDPA_OPTIONS } from './strict.js'

export interface RecycledOptions extends Omit<SdpaOptions, 'causal'> {
  /** S: a full step every `stride` decode steps (1 = always full). No paper value is hard-coded: the paper leaves it to the deployment. */
  readonly stride: number
  /** K: tokens the small cache keeps, chosen by the attention of the last full step. */
  readonly keep: number
  /**
   * θ: also take a full step when the cosine similarity between the step's query (all heads, one vector per batch
   * entry) and the query of the last full step falls below θ (the paper's query-similarity scheduling).
   */
  readonly threshold?: number
  /** How the query heads sharing a kv head vote for tokens (default 'sum'; the paper's choice is unverified). */
  readonly aggregate?: 'sum' | 'max'
  /** Always causal: the operator is a decode schedule. `false` is rejected. */
  readonly causal?: true
  /**
   * The schedule and small caches, from `await recycledPlan(q, k, v, opts)`. Required on backends whose data the
   * host cannot read synchronously (WebGPU); computed on the spot otherwise.
   */
  readonly plan?: RecycledPlan
}

/** Which rows are full steps and what the small cache holds at each row (the discrete part of the operator). */
export interface RecycledPlan {
  /** [b][row]: whether the row was a full step. */
  readonly full: readonly (readonly boolean[])[]
  /**
   * [b][kvHead][row]: the small cache's key positions (ascending) in force at that row: rebuilt at every full step,
   * then read by the recycle steps after it together with the keys that arrived since.
   */
  readonly small: readonly (readonly (readonly Int32Array[])[])[]
}

export interface RecycledResult extends AttentionResult, RecycledPlan {}

const OP = 'recycledAttention'

/** Per batch entry, which query rows are full steps: row 0, every `stride`-th after the last one, or low similarity. */
function schedule(q: Float64Array | Float32Array | Uint16Array | ArrayLike<number>, B: number, H: number, Tq: number, D: number, stride: number, threshold: number | undefined): boolean[][] {
  return Array.from({ length: B }, (_, b) => {
    const row = (i: number): number[] => {
      const out: number[] = []
      for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) out.push(Number(q[((b * H + h) * Tq + i) * D + d]))
      return out
    }
    const full: boolean[] = []
    let last = -1
    let ref: number[] = []
    for (let i = 0; i < Tq; i++) {
      let f = last < 0 || i - last >= stride
      if (!f && threshold !== undefined) {
        const cur = row(i)
        let dot = 0
        let na = 0
        let nb = 0
        for (let d = 0; d < cur.length; d++) {
          dot += cur[d]! * ref[d]!
          na += cur[d]! ** 2
          nb += ref[d]! ** 2
        }
        const cos = na === 0 || nb === 0 ? 1 : dot / Math.sqrt(na * nb)
        f = cos < threshold
      }
      if (f) {
        last = i
        if (threshold !== undefined) ref = row(i)
      }
      full.push(f)
    }
    return full
  })
}

interface Resolved {
  readonly stride: number
  readonly keep: number
  readonly threshold: number | undefined
  readonly aggregate: 'sum' | 'max'
  readonly sdpa: Omit<SdpaOptions, 'causal'>
  readonly dims: readonly [B: number, H: number, Hkv: number, Tq: number, Tk: number, D: number]
  readonly qOff: number
  readonly kOff: number
  readonly visible: (b: number, h: number, pq: number, pk: number) => boolean
}

function resolve(q: Tensor, k: Tensor, v: Tensor, opts: RecycledOptions, op: string = OP): Resolved {
  checkQkv(op, q, k, v)
  operatorOptions(op, opts, [...SDPA_OPTIONS, 'stride', 'keep', 'threshold', 'aggregate', ...(op === OP ? ['plan'] : [])], '{ stride, keep, … }')
  flag(op, 'causal', opts.causal)
  const { stride, keep, threshold, aggregate = 'sum', causal, plan: _p, ...sdpa } = opts
  positiveInt(op, 'stride', stride)
  positiveInt(op, 'keep', keep)
  if ((causal as unknown) === false) throw new ValueError({ op, arg: 'causal', expected: 'true (a decode schedule is causal)', actual: false })
  if (threshold !== undefined && !Number.isFinite(threshold)) throw new ValueError({ op, arg: 'threshold', expected: 'a finite cosine similarity', actual: threshold })
  if (aggregate !== 'sum' && aggregate !== 'max') throw new ValueError({ op, arg: 'aggregate', expected: "'sum' or 'max'", actual: aggregate })
  const [B, H, Tq, D] = q.shape as [number, number, number, number]
  const [, Hkv, Tk] = k.shape as [number, number, number]
  const user = sdpa.mask
  return {
    stride,
    keep,
    threshold,
    aggregate,
    sdpa,
    dims: [B, H, Hkv, Tq, Tk, D],
    qOff: sdpa.queryOffset ?? Math.max(0, Tk - Tq),
    kOff: sdpa.keyOffset ?? 0,
    visible: (b, h, pq, pk) => pk <= pq && (!user || user.test(b, h, pq, pk)),
  }
}

const fullRowsOf = (full: readonly (readonly boolean[])[]): number[] => [...new Set(full.flatMap(r => r.flatMap((f, i) => (f ? [i] : []))))].sort((a, b) => a - b)

/**
 * Attention of the full-step rows over every visible key: an sdpa over just those rows for their lse, then the
 * exact probabilities from it, [B, H, F, Tk]. Gathered row r sits at absolute position qOff + fullRows[r].
 */
function fullStepProbs(q: Tensor, k: Tensor, v: Tensor, r: Resolved, fullRows: readonly number[]): Tensor {
  return scope(() => {
    const Tq = r.dims[3]
    const idx = tensor(Int32Array.from(fullRows), [fullRows.length], 'int32', { backend: q.backend })
    const qf = fullRows.length === Tq ? q : take(q, idx, 2)
    const m: Mask = masks.custom((b, h, i, pk) => r.visible(b, h, r.qOff + fullRows[i]!, pk))
    const o = { ...(r.sdpa.scale !== undefined ? { scale: r.sdpa.scale } : {}), queryOffset: 0, keyOffset: r.kOff, mask: m }
    const { lse } = scaledDotProductAttention(qf, k, v, o)
    return attentionProbs(qf, k, lse, o)
  })
}

/** Top-`keep` keys per kv head at every full step (ties to the earlier position), carried over the recycle steps. */
function smallCaches(r: Resolved, full: readonly (readonly boolean[])[], fullRows: readonly number[], P: ArrayLike<number>): Int32Array[][][] {
  const [B, H, Hkv, Tq, Tk] = r.dims
  const g = H / Hkv
  const F = fullRows.length
  const rowOf = new Map(fullRows.map((x, i) => [x, i]))
  return Array.from({ length: B }, (_, b) => {
    const perHead: Int32Array[][] = Array.from({ length: Hkv }, () => [])
    let current: Int32Array[] = Array.from({ length: Hkv }, () => new Int32Array(0))
    for (let i = 0; i < Tq; i++) {
      if (full[b]![i]) {
        const f = rowOf.get(i)!
        const pq = r.qOff + i
        current = Array.from({ length: Hkv }, (_, kh) => {
          const score = new Float64Array(Tk)
          const seen = new Uint8Array(Tk)
          for (let h = kh * g; h < (kh + 1) * g; h++)
            for (let j = 0; j < Tk; j++) {
              if (!r.visible(b, h, pq, r.kOff + j)) continue
              const p = Number(P[((b * H + h) * F + f) * Tk + j])
              score[j] = seen[j] ? (r.aggregate === 'sum' ? score[j]! + p : Math.max(score[j]!, p)) : p
              seen[j] = 1
            }
          const cand: number[] = []
          for (let j = 0; j < Tk; j++) if (seen[j]) cand.push(j)
          cand.sort((x, y) => score[y]! - score[x]! || x - y)
          return Int32Array.from(cand.slice(0, r.keep).map(j => r.kOff + j)).sort()
        })
      }
      for (let kh = 0; kh < Hkv; kh++) perHead[kh]!.push(current[kh]!)
    }
    return perHead
  })
}

/**
 * The discrete half of Recycled Attention (the schedule and the small caches), on any backend: it reads the
 * full-step probabilities back with `await data()`. Pass the result as `plan` to `recycledAttention`.
 */
export async function recycledPlan(q: Tensor, k: Tensor, v: Tensor, opts: Omit<RecycledOptions, 'plan'>): Promise<RecycledPlan> {
  const r = resolve(q, k, v, opts, 'recycledPlan')
  const [B, H, , Tq, , D] = r.dims
  const full = schedule(r.threshold === undefined ? [] : await q.data(), B, H, Tq, D, r.stride, r.threshold)
  const rows = fullRowsOf(full)
  const probs = fullStepProbs(q, k, v, r, rows)
  try {
    return { full, small: smallCaches(r, full, rows, await probs.data()) }
  } finally {
    probs.dispose()
  }
}

function planSync(q: Tensor, k: Tensor, v: Tensor, r: Resolved): RecycledPlan {
  if (q.backend !== 'cpu')
    throw new ValueError({ op: OP, arg: 'plan', expected: `a plan from \`await recycledPlan(q, k, v, opts)\` on the ${q.backend} backend (the schedule is read on the host)`, actual: undefined })
  const [B, H, , Tq, , D] = r.dims
  const full = schedule(r.threshold === undefined ? [] : q.dataSync(), B, H, Tq, D, r.stride, r.threshold)
  const rows = fullRowsOf(full)
  const probs = fullStepProbs(q, k, v, r, rows)
  try {
    return { full, small: smallCaches(r, full, rows, probs.dataSync()) }
  } finally {
    probs.dispose()
  }
}

function checkPlan(plan: RecycledPlan, r: Resolved): void {
  const [B, , Hkv, Tq] = r.dims
  const ok = Array.isArray(plan?.full) && plan.full.length === B && plan.full.every(x => x.length === Tq) && plan.small?.length === B && plan.small.every(x => x.length === Hkv && x.every(y => y.length === Tq))
  if (!ok) throw new ValueError({ op: OP, arg: 'plan', expected: `a plan for B=${B}, ${Hkv} kv heads and ${Tq} query rows (from recycledPlan with the same inputs)`, actual: typeof plan })
}

/**
 * Recycled Attention (Xu et al. 2024, arXiv 2411.05787), as an exact simulation of its decode schedule over
 * the query rows (each row one decode step at absolute position `queryOffset + i`, causal):
 * - a **full step** attends over every visible key and rebuilds the small cache from the `keep` keys with the most
 *   attention (summed, or maxed, over the query heads of each kv head; ties to the earlier position);
 * - a **recycle step** attends over the small cache plus the keys that arrived after the last full step.
 *
 * Output and lse are those of softmax over each row's key set (one masked sdpa call), so they merge and observe
 * like sdpa. Differentiable in q, k, v for the chosen sets; the choice itself (host top-K) is discrete.
 * `stride = 1` or `keep ≥ Tk` is full causal attention.
 */
export function recycledAttention(q: Tensor, k: Tensor, v: Tensor, opts: RecycledOptions): RecycledResult {
  const r = resolve(q, k, v, opts)
  const [, H, Hkv, Tq] = r.dims
  const g = H / Hkv
  const plan = opts.plan ?? planSync(q, k, v, r)
  checkPlan(plan, r)
  const { full, small } = plan
  const lastFull = full.map(rows => {
    let last = -1
    return Int32Array.from(rows, (f, i) => (f ? (last = r.qOff + i) : last))
  })
  const members = small.map(perHead => perHead.map(rows => rows.map(x => new Set(x))))
  const rowMask = masks.custom((b, h, pq, pk) => {
    const i = pq - r.qOff
    if (!r.visible(b, h, pq, pk)) return false
    if (i < 0 || i >= Tq || full[b]![i]) return true
    return pk > lastFull[b]![i]! || members[b]![Math.floor(h / g)]![i]!.has(pk)
  })
  const { mask: _m, ...rest } = r.sdpa
  const res = scaledDotProductAttention(q, k, v, { ...rest, queryOffset: r.qOff, keyOffset: r.kOff, mask: rowMask })
  return { out: res.out, lse: res.lse, full, small }
}
