import { ArgumentError, scope, ShapeError, tensor, take, ValueError, type Tensor } from '@heed/tensor'
import { mask as masks } from '../mask.js'
import { attentionProbs } from '../observe.js'
import { checkQkv, scaledDotProductAttention, type AttentionResult, type SdpaOptions } from '../sdpa.js'
import { flag, operatorOptions, SDPA_OPTIONS } from './strict.js'

/**
 * Budgets of the non-heterogeneous heads. The paper's values are not public (no code was released): sinks as in
 * StreamingLLM, the rest our choice.
 */
export const TASKKV_DEFAULTS = Object.freeze({ sink: 4, recent: 128, middle: 128, window: 32 })

export type TaskKvDistance = 'cosine' | 'euclidean' | ((head: Float64Array, center: Float64Array) => number)
/** 'gap': split at the largest gap of the sorted distances; a number: distance threshold; a fraction of heads; or your rule. */
export type TaskKvSeparator = 'gap' | { readonly threshold: number } | { readonly fraction: number } | ((distances: readonly number[]) => readonly boolean[])

export interface TaskKvHeads {
  /** Mean head vector (the layer's "semantic center"). */
  readonly center: Float64Array
  readonly distances: readonly number[]
  /** Heads far from the center: they keep the full KV. */
  readonly heterogeneous: readonly boolean[]
}

/**
 * Task-KV's head split (Task-KV, arXiv 2501.15113): each head is represented by its mean output vector
 * (`outputs [B, H, T, Dv]`, or host vectors [H][Dv]), the center is their mean, and heads whose distance to it
 * the separator calls large are heterogeneous. Distance and separator are pluggable (the paper's exact rules are
 * unverified); defaults: cosine distance, largest-gap split.
 */
export function taskKvHeads(outputs: ArrayLike<number> | readonly ArrayLike<number>[], shape: readonly number[], opts: { readonly distance?: TaskKvDistance; readonly separator?: TaskKvSeparator } = {}): TaskKvHeads {
  const op = 'taskKvHeads'
  const isList = (x: unknown): x is ArrayLike<number> => x !== null && typeof x === 'object' && Number.isSafeInteger((x as { length?: unknown }).length)
  if (!isList(outputs) || (Array.isArray(outputs) && outputs.some(x => typeof x === 'object' && !isList(x))))
    throw new ArgumentError({ op, arg: 'outputs', expected: 'the per-head outputs: an array of numbers or of arrays', actual: outputs === null ? 'null' : typeof outputs })
  if (!Array.isArray(shape) || shape.some(d => !Number.isInteger(d) || d < 0))
    throw new ArgumentError({ op, arg: 'shape', expected: '[B, H, T, Dv] or [H, Dv] of non-negative integers', actual: Array.isArray(shape) ? `[${shape.join(',')}]` : shape === null ? 'null' : typeof shape })
  operatorOptions(op, opts, ['distance', 'separator'])
  const flat = Array.isArray(outputs) && typeof outputs[0] === 'object' ? (outputs as readonly ArrayLike<number>[]).flatMap(x => Array.from(x)) : Array.from(outputs as ArrayLike<number>)
  const [B, H, T, Dv] = shape.length === 4 ? (shape as [number, number, number, number]) : [1, shape[0]!, 1, shape[1]!]
  if (shape.length !== 2 && shape.length !== 4) throw new ShapeError({ op, arg: 'shape', expected: '[B, H, T, Dv] or [H, Dv]', actual: shape })
  if (flat.length !== B * H * T * Dv || H < 2) throw new ShapeError({ op, arg: 'outputs', expected: `${B * H * T * Dv} values for at least 2 heads`, actual: flat.length })
  const heads = Array.from({ length: H }, (_, h) => {
    const m = new Float64Array(Dv)
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let d = 0; d < Dv; d++) m[d]! += flat[((b * H + h) * T + t) * Dv + d]! / (B * T)
    return m
  })
  const center = new Float64Array(Dv)
  for (const m of heads) for (let d = 0; d < Dv; d++) center[d]! += m[d]! / H
  operatorOptions(op, opts, ['distance', 'separator'])
  const dist = opts.distance ?? 'cosine'
  const f =
    typeof dist === 'function'
      ? dist
      : dist === 'euclidean'
        ? (a: Float64Array, c: Float64Array) => Math.sqrt(a.reduce((s, x, d) => s + (x - c[d]!) ** 2, 0))
        : dist === 'cosine'
          ? (a: Float64Array, c: Float64Array) => {
              const n = Math.sqrt(a.reduce((s, x) => s + x * x, 0) * c.reduce((s, x) => s + x * x, 0))
              return n === 0 ? 0 : 1 - a.reduce((s, x, d) => s + x * c[d]!, 0) / n
            }
          : undefined
  if (!f) throw new ValueError({ op, arg: 'distance', expected: "'cosine', 'euclidean' or a function", actual: dist })
  const distances = heads.map(m => f(m, center))
  const sep = opts.separator ?? 'gap'
  let heterogeneous: boolean[]
  if (typeof sep === 'function') {
    heterogeneous = Array.from(sep(distances))
    if (heterogeneous.length !== H) throw new ValueError({ op, arg: 'separator', expected: `${H} booleans`, actual: heterogeneous.length })
  } else if (sep === 'gap') {
    const sorted = [...distances].sort((a, b) => a - b)
    let cut = Infinity
    let best = -1
    for (let i = 1; i < H; i++) if (sorted[i]! - sorted[i - 1]! > best) [best, cut] = [sorted[i]! - sorted[i - 1]!, sorted[i]!]
    heterogeneous = distances.map(d => best > 0 && d >= cut)
  } else if (typeof sep === 'object' && 'threshold' in sep) heterogeneous = distances.map(d => d > sep.threshold)
  else if (typeof sep === 'object' && 'fraction' in sep && sep.fraction >= 0 && sep.fraction <= 1) {
    const n = Math.round(sep.fraction * H)
    const order = distances.map((d, h) => [d, h] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1])
    const top = new Set(order.slice(0, n).map(([, h]) => h))
    heterogeneous = distances.map((_, h) => top.has(h))
  } else throw new ValueError({ op, arg: 'separator', expected: "'gap', { threshold }, { fraction in [0, 1] } or a function", actual: sep })
  return { center, distances, heterogeneous }
}

export interface TaskKvOptions extends SdpaOptions {
  /** Per kv head: keeps the full KV (heterogeneous) or the sink + recent + middle budget. */
  readonly heterogeneous: readonly boolean[]
  /** Initial tokens a compact head keeps. */
  readonly sink?: number
  /** Most recent tokens a compact head keeps. */
  readonly recent?: number
  /** Middle activations kept per compact head: the keys between sinks and the recent window with the most attention. */
  readonly middle?: number
  /** Query rows (the last ones) whose attention picks the middle activations (SnapKV-style observation window). */
  readonly window?: number
  /** The picked middle positions [b][kvHead], from `await taskKvPlan(…)`; needed off the host (WebGPU). */
  readonly plan?: TaskKvPlan
}

export interface TaskKvPlan {
  /** [b][kvHead]: middle-activation key positions kept (ascending; empty for heterogeneous heads). */
  readonly middle: readonly (readonly number[])[][]
}

export interface TaskKvResult extends AttentionResult, TaskKvPlan {
  /** [b][kvHead]: every key position the head retains after the last row (what a compacted cache holds). */
  readonly kept: readonly (readonly number[])[][]
}

const OP = 'taskKvAttention'

interface Resolved {
  readonly het: readonly boolean[]
  readonly sink: number
  readonly recent: number
  readonly middle: number
  readonly window: number
  readonly sdpa: SdpaOptions
  readonly qOff: number
  readonly kOff: number
  readonly last: number
}

function resolve(q: Tensor, k: Tensor, v: Tensor, opts: TaskKvOptions, op = OP): Resolved {
  checkQkv(op, q, k, v)
  operatorOptions(op, opts, [...SDPA_OPTIONS, 'heterogeneous', 'sink', 'recent', 'middle', 'window', ...(op === OP ? ['plan'] : [])], '{ heterogeneous, … }')
  flag(op, 'causal', opts.causal)
  const { heterogeneous, sink = TASKKV_DEFAULTS.sink, recent = TASKKV_DEFAULTS.recent, middle = TASKKV_DEFAULTS.middle, window = TASKKV_DEFAULTS.window, plan: _p, ...sdpa } = opts
  const Hkv = k.shape[1]!
  if (!Array.isArray(heterogeneous) || heterogeneous.length !== Hkv) throw new ValueError({ op, arg: 'heterogeneous', expected: `${Hkv} booleans (one per kv head)`, actual: Array.isArray(heterogeneous) ? heterogeneous.length : typeof heterogeneous })
  for (const [arg, x, min] of [['sink', sink, 0], ['recent', recent, 1], ['middle', middle, 0], ['window', window, 1]] as const)
    if (!Number.isInteger(x) || x < min) throw new ValueError({ op, arg, expected: `an integer ≥ ${min}`, actual: x })
  if (sdpa.causal === false) throw new ValueError({ op, arg: 'causal', expected: 'true (a KV budget is a decode-time policy)', actual: false })
  const Tq = q.shape[2]!
  const Tk = k.shape[2]!
  const qOff = sdpa.queryOffset ?? Math.max(0, Tk - Tq)
  return { het: heterogeneous, sink, recent, middle, window, sdpa: { ...sdpa, causal: true }, qOff, kOff: sdpa.keyOffset ?? 0, last: qOff + Tq - 1 }
}

/** Middle keys of the last query: after the sinks, before its recent window. */
const isMiddle = (r: Resolved, pk: number): boolean => pk >= r.sink && r.last - pk >= r.recent && pk <= r.last

function windowProbs(q: Tensor, k: Tensor, v: Tensor, r: Resolved): { P: Tensor; rows: number } {
  return scope(() => {
    const Tq = q.shape[2]!
    const n = Math.min(r.window, Tq)
    const idx = tensor(Int32Array.from({ length: n }, (_, i) => Tq - n + i), [n], 'int32', { backend: q.backend })
    const qw = n === Tq ? q : take(q, idx, 2)
    const o = { ...r.sdpa, queryOffset: r.qOff + Tq - n, keyOffset: r.kOff }
    const { blockSize: _b, ...obs } = o
    const { lse } = scaledDotProductAttention(qw, k, v, o)
    return { P: attentionProbs(qw, k, lse, obs), rows: n }
  })
}

function pick(r: Resolved, P: ArrayLike<number>, rows: number, B: number, H: number, Hkv: number, Tk: number): number[][][] {
  const g = H / Hkv
  return Array.from({ length: B }, (_, b) =>
    Array.from({ length: Hkv }, (_, kh) => {
      if (r.het[kh]) return []
      const score = new Map<number, number>()
      for (let h = kh * g; h < (kh + 1) * g; h++)
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < Tk; j++) {
            const pk = r.kOff + j
            if (isMiddle(r, pk)) score.set(pk, (score.get(pk) ?? 0) + Number(P[((b * H + h) * rows + i) * Tk + j]))
          }
      return [...score.entries()]
        .sort((a, c) => c[1] - a[1] || a[0] - c[0])
        .slice(0, r.middle)
        .map(([p]) => p)
        .sort((a, c) => a - c)
    }),
  )
}

/** The middle activations Task-KV keeps, on any backend (window probabilities read back with `await data()`). */
export async function taskKvPlan(q: Tensor, k: Tensor, v: Tensor, opts: Omit<TaskKvOptions, 'plan'>): Promise<TaskKvPlan> {
  const r = resolve(q, k, v, opts, 'taskKvPlan')
  const { P, rows } = windowProbs(q, k, v, r)
  try {
    return { middle: pick(r, await P.data(), rows, q.shape[0]!, q.shape[1]!, k.shape[1]!, k.shape[2]!) }
  } finally {
    P.dispose()
  }
}

/**
 * Task-KV attention as a per-kv-head budget policy: heterogeneous heads attend causally over everything;
 * the others over the first `sink` keys, the `recent` keys before each query (its own included) and `middle`
 * middle activations, picked once per (batch entry, kv head) by the attention of the last `window` query rows
 * (summed over the query heads of the kv head) among the keys between the sinks and the last query's window.
 * Softmax over each head's retained set (returns lse). With `sink + recent ≥ Tk`, or every head heterogeneous, it
 * is the base model. `kept` lists what a compacted decode cache holds after the last row.
 */
export function taskKvAttention(q: Tensor, k: Tensor, v: Tensor, opts: TaskKvOptions): TaskKvResult {
  const r = resolve(q, k, v, opts)
  const [B, H] = q.shape as [number, number]
  const [, Hkv, Tk] = k.shape as [number, number, number]
  const g = H / Hkv
  let plan = opts.plan
  if (plan === undefined) {
    if (r.het.every(x => x) || r.middle === 0) plan = { middle: Array.from({ length: B }, () => Array.from({ length: Hkv }, () => [])) }
    else {
      if (q.backend !== 'cpu') throw new ValueError({ op: OP, arg: 'plan', expected: `a plan from \`await taskKvPlan(q, k, v, opts)\` on the ${q.backend} backend`, actual: undefined })
      const { P, rows } = windowProbs(q, k, v, r)
      plan = { middle: pick(r, P.dataSync(), rows, B, H, Hkv, Tk) }
      P.dispose()
    }
  }
  const shaped = (x: unknown, n: number): x is readonly unknown[] => Array.isArray(x) && x.length === n
  if (!(shaped(plan.middle, B) && plan.middle.every(x => shaped(x, Hkv))))
    throw new ValueError({ op: OP, arg: 'plan', expected: `middle positions for B=${B} and ${Hkv} kv heads`, actual: typeof plan })
  const middle = plan.middle.map(row => row.map(s => new Set<number>(s)))
  const retained = (b: number, kh: number, pq: number, pk: number): boolean => r.het[kh]! || pk < r.sink || pq - pk < r.recent || middle[b]![kh]!.has(pk)
  const budget = masks.custom((b, h, pq, pk) => retained(b, Math.floor(h / g), pq, pk))
  const res = scaledDotProductAttention(q, k, v, { ...r.sdpa, mask: r.sdpa.mask ? masks.and(budget, r.sdpa.mask) : budget })
  const kept = Array.from({ length: B }, (_, b) =>
    Array.from({ length: Hkv }, (_, kh) => Array.from({ length: Tk }, (_, j) => r.kOff + j).filter(pk => pk <= r.last && retained(b, kh, r.last, pk))),
  )
  return { out: res.out, lse: res.lse, middle: plan.middle, kept }
}
