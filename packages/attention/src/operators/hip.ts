import { ArgumentError, BackendError, ValueError, type Tensor, positiveInt } from '@heed/tensor'
import { mask as masks } from '../mask.js'
import { checkQkv, scaledDotProductAttention, type AttentionResult } from '../sdpa.js'
import { flag, objectArg, operatorOptions } from './strict.js'

/**
 * HiP, hierarchically pruned attention (Lee et al., "HiP Attention: Sparse Sub-Quadratic Attention with Hierarchical
 * Attention Pruning", 2024), pinned as "hip-v1": the paper's tree search. Per query block of `b_q` queries (scored
 * through every `b_sq`-th one), the visible key blocks (`b_k` tokens each) are cut into `k` chunks; each round
 * splits every chunk into two halves, scores a half by its centre token (max over the block's strided queries of
 * q·k_rep) and keeps the best `k` halves, until every kept range is one key block. The `k` blocks found are a
 * block-sparse mask for exact attention. Mask search costs O(T·k·log(T/k)·D / b_q), attention O(T·k·b_k·D).
 *
 * The search reads q and k on the host (the choice is discrete and data-dependent), so `hipAttention` needs
 * host-resident tensors unless a `selection` is passed: on WebGPU, compute it with `hipSelect` on host copies (or
 * the previous step's), then attend on the device.
 */
export interface HipOptions {
  /** Key tokens kept per query block, `mask_k` (default 512); `⌈maskK / b_k⌉` blocks are selected. */
  readonly maskK?: number
  /** Queries per block `b_q` (default 32). */
  readonly blockSizeQ?: number
  /** Query stride inside a block when scoring, `b_sq` (default 2). */
  readonly queryStride?: number
  /** Tokens per key block `b_k` (default 2). */
  readonly blockSizeK?: number
  /** Keys after the query block's last position are never selected (default false). */
  readonly causal?: boolean
  /** Absolute position of query row 0 (default Tk − Tq: bottom-right, as in decode). */
  readonly queryOffset?: number
}

/** Selected key-block ids, ascending, `[B, H, nQueryBlocks, ≤ kBlocks]` (ragged when fewer blocks are visible). */
export interface HipSelection {
  readonly blocks: readonly (readonly number[])[][][]
  readonly blockSizeQ: number
  readonly blockSizeK: number
  readonly queryOffset: number
}

interface Resolved {
  readonly kBlocks: number
  readonly bq: number
  readonly bsq: number
  readonly bk: number
  readonly causal: boolean
}

const HIP_OPTIONS = ['maskK', 'blockSizeQ', 'queryStride', 'blockSizeK', 'causal', 'queryOffset']

function resolve(op: string, opts: HipOptions): Resolved {
  flag(op, 'causal', opts.causal)
  const int = (arg: string, v: number) => positiveInt(op, arg, v)
  const bk = int('blockSizeK', opts.blockSizeK ?? 2)
  return { kBlocks: Math.ceil(int('maskK', opts.maskK ?? 512) / bk), bq: int('blockSizeQ', opts.blockSizeQ ?? 32), bsq: int('queryStride', opts.queryStride ?? 2), bk, causal: opts.causal ?? false }
}

function hostValues(op: string, arg: string, x: Tensor): ArrayLike<number> {
  try {
    return x.dataSync()
  } catch {
    throw new BackendError({ op, arg, expected: 'a host-resident tensor (cpu), or opts.selection', actual: x.backend }, 'compute the selection with hipSelect on host copies')
  }
}

/**
 * The hip-v1 search over host arrays: for every (b, h, query block) the `k` key blocks it keeps. Differentiates
 * nothing (selection is discrete); q `[B, H, Tq, D]`, k `[B, Hkv, Tk, D]`.
 */
export function hipSelect(q: Tensor, k: Tensor, opts: HipOptions = {}): HipSelection {
  const op = 'hipSelect'
  checkQkv(op, q, k, k)
  operatorOptions(op, opts, HIP_OPTIONS)
  return select(op, q, k, opts)
}

/** hipSelect after its checks: hipAttention and the decoder pass their wider options straight on. */
function select(op: string, q: Tensor, k: Tensor, opts: HipOptions): HipSelection {
  const r = resolve(op, opts)
  const [B, H, Tq, D] = q.shape as [number, number, number, number]
  const [, Hkv, Tk] = k.shape as [number, number, number, number]
  const qOff = opts.queryOffset ?? Math.max(0, Tk - Tq)
  const qv = hostValues(op, 'q', q)
  const kv = hostValues(op, 'k', k)
  const nQb = Math.ceil(Tq / r.bq)
  const blocks: number[][][][] = []
  for (let b = 0; b < B; b++) {
    const perHead: number[][][] = []
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / (H / Hkv))
      const perBlock: number[][] = []
      for (let qb = 0; qb < nQb; qb++) {
        const q0 = qb * r.bq
        const q1 = Math.min(Tq, q0 + r.bq)
        const visible = r.causal ? Math.max(0, Math.min(Tk, qOff + q1)) : Tk
        const n = Math.ceil(visible / r.bk)
        if (n <= r.kBlocks) {
          perBlock.push(Array.from({ length: n }, (_, i) => i))
          continue
        }
        const score = (lo: number, hi: number): number => {
          // Representative: the centre token of the range (clipped to the visible keys).
          const rep = Math.floor((lo * r.bk + Math.min(hi * r.bk, visible) - 1) / 2)
          let best = -Infinity
          for (let i = q0; i < q1; i += r.bsq) {
            let s = 0
            for (let d = 0; d < D; d++) s += qv[((b * H + h) * Tq + i) * D + d]! * kv[((b * Hkv + hk) * Tk + rep) * D + d]!
            best = Math.max(best, s)
          }
          return best
        }
        // k near-equal contiguous chunks of the n blocks.
        let ranges: [number, number][] = Array.from({ length: r.kBlocks }, (_, c) => [Math.floor((c * n) / r.kBlocks), Math.floor(((c + 1) * n) / r.kBlocks)])
        while (ranges.some(([lo, hi]) => hi - lo > 1)) {
          const cand: [number, number, number][] = []
          for (const [lo, hi] of ranges) {
            if (hi - lo === 1) cand.push([lo, hi, score(lo, hi)])
            else {
              const mid = lo + Math.ceil((hi - lo) / 2)
              cand.push([lo, mid, score(lo, mid)], [mid, hi, score(mid, hi)])
            }
          }
          // Best k by score; ties go to the earlier range.
          ranges = cand
            .sort((a, z) => z[2] - a[2] || a[0] - z[0])
            .slice(0, r.kBlocks)
            .map(([lo, hi]) => [lo, hi] as [number, number])
        }
        perBlock.push(ranges.map(([lo]) => lo).sort((a, z) => a - z))
      }
      perHead.push(perBlock)
    }
    blocks.push(perHead)
  }
  return { blocks, blockSizeQ: r.bq, blockSizeK: r.bk, queryOffset: qOff }
}

export interface HipAttentionOptions extends HipOptions {
  /** Default 1/√D (HiP's kernels take pre-scaled q; here the scale is explicit). */
  readonly scale?: number
  /** Reuse a mask (decode with a refresh interval > 1); default: a fresh `hipSelect`. */
  readonly selection?: HipSelection
}

/** The block mask of a selection over absolute positions. */
export function hipMask(sel: HipSelection, causal = false) {
  const op = 'hipMask'
  objectArg(op, 'sel', sel, 'a HipSelection (from hipSelect)')
  const nested = (v: unknown, depth: number): boolean => Array.isArray(v) && (depth === 0 || v.every(x => nested(x, depth - 1)))
  if (!nested(sel.blocks, 3)) throw new ArgumentError({ op, arg: 'sel.blocks', expected: 'the [B][H][query block] key-block lists of a HipSelection', actual: Array.isArray(sel.blocks) ? 'a malformed array' : typeof sel.blocks })
  positiveInt(op, 'sel.blockSizeQ', sel.blockSizeQ)
  positiveInt(op, 'sel.blockSizeK', sel.blockSizeK)
  if (!Number.isInteger(sel.queryOffset)) throw new ValueError({ op, arg: 'sel.queryOffset', expected: 'an integer', actual: sel.queryOffset })
  flag(op, 'causal', causal)
  const sets = sel.blocks.map(bb => bb.map(hh => hh.map(blocks => new Set(blocks))))
  return masks.custom((b, h, pq, pk) => {
    if (causal && pk > pq) return false
    const qb = Math.floor((pq - sel.queryOffset) / sel.blockSizeQ)
    return sets[b]?.[h]?.[qb]?.has(Math.floor(pk / sel.blockSizeK)) ?? false
  })
}

/**
 * HiP attention: exact softmax attention over the selected key blocks of each query block. When `k·b_k ≥ T` every
 * block is kept and this is dense attention. Differentiable in q, k, v through the attention (the mask is fixed).
 */
export function hipAttention(q: Tensor, k: Tensor, v: Tensor, opts: HipAttentionOptions = {}): AttentionResult & { readonly selection: HipSelection } {
  const op = 'hipAttention'
  checkQkv(op, q, k, v)
  operatorOptions(op, opts, [...HIP_OPTIONS, 'scale', 'selection'])
  const selection = opts.selection ?? select(op, q, k, opts)
  const res = scaledDotProductAttention(q, k, v, {
    mask: hipMask(selection, opts.causal ?? false),
    queryOffset: selection.queryOffset,
    ...(opts.scale !== undefined ? { scale: opts.scale } : {}),
  })
  return { ...res, selection }
}

/**
 * Decode with HiP's mask refresh (`HIP_REFRESH_INTERVAL`, default 8): step `t` recomputes the selection when
 * `t mod refresh = 0`, otherwise reuses the last one, extended by every key block that appeared since (a stale mask
 * never hides the newest tokens). `refresh = 1` is a fresh search every step.
 */
export function hipDecoder(opts: HipOptions & { readonly refresh?: number; readonly scale?: number } = {}) {
  operatorOptions('hipDecoder', opts, [...HIP_OPTIONS, 'refresh', 'scale'])
  // each step is causal at the cache's end: a non-causal decoder or a fixed query position would be overridden silently
  if (flag('hipDecoder', 'causal', opts.causal) === false) throw new ValueError({ op: 'hipDecoder', arg: 'causal', expected: 'true or absent (decoding is causal)', actual: false })
  if (opts.queryOffset !== undefined) throw new ValueError({ op: 'hipDecoder', arg: 'queryOffset', expected: 'absent (each step sits at the end of its keys)', actual: opts.queryOffset })
  const { refresh = 8, ...hip } = opts
  positiveInt('hipDecoder', 'refresh', refresh)
  let step = 0
  let last: { sel: HipSelection; keys: number } | undefined
  return {
    /** One query row `[B, H, 1, D]` against the whole cache `k, v [B, Hkv, Tk, ·]`. */
    step(q: Tensor, k: Tensor, v: Tensor): AttentionResult & { readonly selection: HipSelection; readonly fresh: boolean } {
      checkQkv('hipDecoder.step', q, k, v)
      const Tk = k.shape[2]!
      const fresh = last === undefined || step % refresh === 0
      let sel: HipSelection
      if (fresh) sel = select('hipDecoder', q, k, { ...opts, causal: true, queryOffset: Tk - 1 })
      else {
        const prev = last!
        const bk = prev.sel.blockSizeK
        const grown = (bs: readonly number[]) => [...new Set([...bs, ...Array.from({ length: Math.ceil(Tk / bk) }, (_, i) => i).filter(i => (i + 1) * bk > prev.keys)])].sort((a, z) => a - z)
        sel = { ...prev.sel, queryOffset: Tk - 1, blocks: prev.sel.blocks.map(bb => bb.map(hh => hh.map(grown))) }
      }
      step++
      last = { sel, keys: Tk }
      const res = hipAttention(q, k, v, { ...hip, causal: true, selection: sel, queryOffset: Tk - 1 })
      return { ...res, fresh }
    },
  }
}
