import { broadcastTo, concat, expandDims, max, mean, positiveInt, reshape, scope, slice, ValueError, type Tensor } from '@heed/tensor'
import { attnState } from '../attnState.js'
import { checkQkv, scaledDotProductAttention } from '../sdpa.js'

/**
 * What causal Combiner-Fixed (Ren et al. 2021, "Combiner: Full Attention Transformer with Sparse Computation
 * Cost") needs from the past to attend the next token: the rows of the segment being read (a query still sees
 * its own segment key by key) and one summary per completed segment. A completed segment is only ever seen
 * through its summary, so its rows are dropped once the summary is made: the state grows by 2 vectors per head per
 * segment instead of 2·L, and a token costs O(L + T/L).
 */
export interface CombinerState {
  /** [B, H, t, D] queries of the current segment so far: its span value pools them once the segment completes. */
  readonly q?: Tensor
  /** [B, Hkv, t, D] and [B, Hkv, t, Dv]: the current segment's keys and values. */
  readonly k?: Tensor
  readonly v?: Tensor
  /** [B, H, n, D] and [B, H, n, Dv]: summary key and span value of each completed segment. */
  readonly kBar?: Tensor
  readonly vBar?: Tensor
  /** Tokens absorbed (the next chunk's first position). */
  readonly position: number
}

export interface CombinerStepOptions {
  /** Tokens per segment L: fixed, so segment boundaries do not move as the stream grows. */
  readonly segmentLength: number
  /** How a segment is summarised into one key/value: `'max'` (default, the paper's max-pooling) or `'mean'`. */
  /** Span summary of keys and queries, as `combinerAttention`'s: 'max' (default) or 'mean'. */
  readonly pool?: 'max' | 'mean'
  /** Default 1/√D. */
  readonly scale?: number
  /** The chunk's first position; must be the state's (default: it is). */
  readonly queryOffset?: number
}

const OP = 'combinerStep'

/** `[B, Hkv, t, D]` → `[B, H, t, D]`, query head h reading kv head ⌊h/g⌋ (as `combinerAttention`'s summaries). */
function repeatHeads(x: Tensor, H: number): Tensor {
  const [B, Hkv, n, D] = x.shape as [number, number, number, number]
  if (Hkv === H) return x
  return reshape(broadcastTo(expandDims(x, 2), [B, Hkv, H / Hkv, n, D]), [B, H, n, D])
}

/**
 * Causal Combiner-Fixed over one chunk of a stream (q `[B, H, Tq, D]`, k/v the chunk's own keys and values),
 * continuing from `state`: the outputs equal `combinerAttention(…, { causal: true })` over the whole stream at the
 * chunk's rows, to rounding. A summary is made when its segment completes, from the same pooled query, pooled key
 * and span attention as the full form, so the two agree segment by segment.
 */
export function combinerStep(q: Tensor, k: Tensor, v: Tensor, state: CombinerState | undefined, opts: CombinerStepOptions): { out: Tensor; lse: Tensor; state: CombinerState } {
  checkQkv(OP, q, k, v)
  const L = opts.segmentLength
  positiveInt(OP, 'segmentLength', L)
  const pool = opts.pool ?? 'max'
  if (pool !== 'max' && pool !== 'mean') throw new ValueError({ op: OP, arg: 'pool', expected: "'max' or 'mean'", actual: pool })
  const T = q.shape[2]!
  const H = q.shape[1]!
  if (k.shape[2] !== T) throw new ValueError({ op: OP, arg: 'k', expected: `${T} keys (the chunk's own, like q)`, actual: k.shape[2] })
  const scale = opts.scale ?? 1 / Math.sqrt(q.shape[3]!)
  const start = state?.position ?? 0
  if (opts.queryOffset !== undefined && opts.queryOffset !== start)
    throw new ValueError({ op: OP, arg: 'queryOffset', expected: `the state's next position (${start})`, actual: opts.queryOffset })
  return scope(() => {
    let s: CombinerState = state ?? { position: 0 }
    const outs: Tensor[] = []
    const lses: Tensor[] = []
    for (let a = 0; a < T; ) {
      const p = s.position
      const segStart = Math.floor(p / L) * L
      // Cut the chunk where a segment ends: past that point the rows are read through the new summary.
      const b = Math.min(T, a + segStart + L - p)
      const piece = (x: Tensor): Tensor => (a === 0 && b === T ? x : slice(x, [null, null, [a, b]]))
      const qc = piece(q)
      // A handle of its own, never the caller's tensor: the state outlives the chunk's inputs.
      const grow = (old: Tensor | undefined, x: Tensor): Tensor => (old ? concat([old, piece(x)], 2) : reshape(piece(x), [...x.shape.slice(0, 2), b - a, x.shape[3]!]))
      const [qs, ks, vs] = [grow(s.q, q), grow(s.k, k), grow(s.v, v)]
      const local = scaledDotProductAttention(qc, ks, vs, { scale, causal: true, queryOffset: p, keyOffset: segStart })
      let r = { o: local.out, lse: local.lse }
      if (s.kBar && s.vBar) {
        const summary = scaledDotProductAttention(qc, s.kBar, s.vBar, { scale })
        r = attnState.merge(r, { o: summary.out, lse: summary.lse })
      }
      outs.push(r.o)
      lses.push(r.lse)
      const next = p + b - a
      if (next === segStart + L) {
        const pooled = (x: Tensor): Tensor => (pool === 'max' ? max(x, { axis: 2, keepDims: true }) : mean(x, { axis: 2, keepDims: true }))
        const qBar = pooled(qs)
        const kBar = repeatHeads(pooled(ks), H)
        // The span value: the pooled query over its own, now complete, segment (no causal mask, as in the full form).
        const vBar = scaledDotProductAttention(qBar, ks, vs, { scale }).out
        s = {
          kBar: s.kBar ? concat([s.kBar, kBar], 2) : kBar,
          vBar: s.vBar ? concat([s.vBar, vBar], 2) : vBar,
          position: next,
        }
      } else s = { q: qs, k: ks, v: vs, ...(s.kBar ? { kBar: s.kBar, vBar: s.vBar } : {}), position: next }
      a = b
    }
    const out = outs.length === 1 ? outs[0]! : concat(outs, 2)
    const lse = lses.length === 1 ? lses[0]! : concat(lses, 2)
    return { out, lse, state: s }
  })
}
