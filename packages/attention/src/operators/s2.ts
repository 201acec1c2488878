import { ValueError, type Tensor } from '@heed/tensor'
import { headCount, mask as masks, type Mask } from '../mask.js'
import { checkQkv, scaledDotProductAttention, type AttentionResult, type SdpaOptions } from '../sdpa.js'
import { flag, operatorOptions, SDPA_OPTIONS } from './strict.js'

/**
 * How strided shards are dealt out to heads.
 * - `head`: one shard per query head, phase `(h·step + offset) mod stride` with `step = max(1, ⌊stride/H⌋)`
 *   (dkernel's MHA pattern). The union over all heads covers the context iff the phases hit every residue.
 * - `kv`: one shard per kv head, shared by its query heads (every query head of a group reads the same blocks, so
 *   a kv cache keeps only those), with `step` computed from the kv-head count. dkernel takes `step` from the
 *   query-head count here, which leaves residues uncovered (H = 32, Hkv = 8, stride = 16 reaches only 0–7).
 * - `group`: the query heads of each kv group split the `stride` residues between them (head r of a group reads
 *   the residues ≡ r mod min(g, stride)), so every kv group on its own covers its whole context, for any g. The
 *   price is density: a head reads ⌈stride/g⌉ of every `stride` blocks instead of one. Meaningless for g = 1 (every
 *   head would be dense): use `head` there.
 */
export type S2Layout = 'head' | 'kv' | 'group'

export interface S2Options {
  /** Tokens per block (dkernel default 64). */
  readonly blockSize?: number
  /** Key blocks every query block sees densely, its own included (default 4). */
  readonly localBlocks?: number
  /** Vertical stride: a head's strided part reads one key block in `stride` (default 4). */
  readonly stride?: number
  /** Phase shift added to every head's shard (dkernel `head_sliding_offset`, default 0). */
  readonly offset?: number
  /** The last `denseHeads` query heads attend densely (default 0). */
  readonly denseHeads?: number
  /** Default `group` under grouped-query attention (Hkv < H), `head` otherwise. */
  readonly layout?: S2Layout
  /** Every head uses head 0's shard (dkernel `homo_head`); the union is then one shard, so gaps are expected. */
  readonly homoHead?: boolean
  /** Accept a layout whose shards leave residues uncovered instead of throwing. */
  readonly allowGaps?: boolean
}

export interface S2Shards {
  /** Per query head, the residues r = kb mod stride its strided part reads; `undefined` for a dense head. */
  readonly residues: readonly (readonly number[] | undefined)[]
  /** Residues no head reads (empty when the union of shards is the full context). */
  readonly gaps: readonly number[]
  /** Per kv head, the residues any of its query heads reads (the blocks a kv cache must keep beyond the local ones). */
  readonly kvResidues: readonly (readonly number[] | undefined)[]
}

const OP = 's2Attention'
const S2_OPTIONS = ['blockSize', 'localBlocks', 'stride', 'offset', 'denseHeads', 'layout', 'homoHead', 'allowGaps']

function checkS2(op: string, o: S2Options, allowed: readonly string[] = S2_OPTIONS): void {
  operatorOptions(op, o, allowed)
  for (const arg of ['homoHead', 'allowGaps', ...(allowed.includes('causal') ? ['causal'] : [])]) flag(op, arg, (o as Record<string, unknown>)[arg])
}

const int = (op: string, arg: string, v: number, min: number): number => {
  if (!Number.isInteger(v) || v < min) throw new ValueError({ op, arg, expected: `an integer ≥ ${min}`, actual: v })
  return v
}

interface Resolved {
  readonly blockSize: number
  readonly localBlocks: number
  readonly stride: number
  readonly offset: number
  readonly denseHeads: number
  readonly layout: S2Layout
  readonly homoHead: boolean
  readonly allowGaps: boolean
}

function resolve(op: string, heads: number, kvHeads: number, o: S2Options): Resolved {
  const r: Resolved = {
    blockSize: int(op, 'blockSize', o.blockSize ?? 64, 1),
    localBlocks: int(op, 'localBlocks', o.localBlocks ?? 4, 0),
    stride: int(op, 'stride', o.stride ?? 4, 1),
    offset: int(op, 'offset', o.offset ?? 0, 0),
    denseHeads: int(op, 'denseHeads', o.denseHeads ?? 0, 0),
    layout: o.layout ?? (kvHeads < heads ? 'group' : 'head'),
    homoHead: o.homoHead ?? false,
    allowGaps: o.allowGaps ?? false,
  }
  if (!['head', 'kv', 'group'].includes(r.layout)) throw new ValueError({ op, arg: 'layout', expected: "'head', 'kv' or 'group'", actual: r.layout })
  if (r.denseHeads > heads) throw new ValueError({ op, arg: 'denseHeads', expected: `at most the ${heads} heads`, actual: r.denseHeads })
  return r
}

/**
 * The strided shard of every query head. Block `kb` is in head h's strided part iff `kb mod stride` is one of its
 * residues; dkernel's `(kb + φ) mod stride == 0` is residue `−φ mod stride`.
 */
export function s2Shards(heads: number, kvHeads: number, opts: S2Options = {}): S2Shards {
  checkS2('s2Shards', opts)
  return shardsOf('s2Shards', heads, kvHeads, opts)
}

/** `s2Shards` after the option check, its errors in the name of the public function called. */
function shardsOf(op: string, heads: number, kvHeads: number, opts: S2Options): S2Shards {
  int(op, 'heads', heads, 1)
  headCount(op, heads)
  int(op, 'kvHeads', kvHeads, 1)
  if (heads % kvHeads !== 0) throw new ValueError({ op, arg: 'kvHeads', expected: `a divisor of heads (${heads})`, actual: kvHeads })
  const o = resolve(op, heads, kvHeads, opts)
  const { stride } = o
  const g = heads / kvHeads
  const phaseRes = (phi: number): number => (((-phi) % stride) + stride) % stride
  const residuesOf = (h: number): number[] | undefined => {
    if (h >= heads - o.denseHeads) return undefined
    const hh = o.homoHead ? 0 : h
    switch (o.layout) {
      case 'head':
        return [phaseRes(hh * Math.max(1, Math.floor(stride / heads)) + o.offset)]
      case 'kv':
        return [phaseRes(Math.floor(hh / g) * Math.max(1, Math.floor(stride / kvHeads)) + o.offset)]
      case 'group': {
        const m = Math.min(g, stride)
        const r = (hh % g) % m
        const out: number[] = []
        for (let rho = 0; rho < stride; rho++) if (rho % m === r) out.push(phaseRes(rho + o.offset))
        return out.sort((a, b) => a - b)
      }
    }
  }
  const residues = Array.from({ length: heads }, (_, h) => residuesOf(h))
  const seen = new Set<number>()
  let dense = false
  for (const r of residues) {
    if (!r) dense = true
    else for (const x of r) seen.add(x)
  }
  const gaps = dense ? [] : Array.from({ length: stride }, (_, i) => i).filter(i => !seen.has(i))
  const kvResidues = Array.from({ length: kvHeads }, (_, j) => {
    const rs = residues.slice(j * g, (j + 1) * g)
    if (rs.some(r => r === undefined)) return undefined
    return [...new Set(rs.flatMap(r => r!))].sort((a, b) => a - b)
  })
  if (gaps.length > 0 && !o.allowGaps && !o.homoHead)
    throw new ValueError(
      { op, arg: 'stride', expected: `shards whose union covers every residue mod ${stride} (more heads than the stride; layout 'group' under GQA; or allowGaps)`, actual: `layout '${o.layout}' with ${heads} heads / ${kvHeads} kv heads leaves residues [${gaps.join(',')}] unread` },
    )
  return { residues, gaps, kvResidues }
}

/**
 * The S2-Attention mask (Lin et al., "S2-Attention: Hardware-Aware Context Sharding Among Attention Heads", 2024),
 * per query head: key block `kb` is visible from query block `qb` iff `|qb − kb| < localBlocks` or `kb` is in the
 * head's strided shard. Combine with `causal` (the usual use; `s2Attention` does) for
 * `(qb ≥ kb) ∧ (local ∨ strided) ∧ pk ≤ pq`. It is a `mask.perHead` of closures, so on WebGPU it travels as a
 * precomputed bit table (see `mask.custom`).
 */
export function s2Mask(heads: number, kvHeads: number, opts: S2Options = {}): Mask {
  checkS2('s2Mask', opts)
  return maskOf('s2Mask', heads, kvHeads, opts)
}

/** `s2Mask` after the option check, its errors in the name of the public function called. */
function maskOf(op: string, heads: number, kvHeads: number, opts: S2Options): Mask {
  const { residues } = shardsOf(op, heads, kvHeads, opts)
  const o = resolve(op, heads, kvHeads, opts)
  const { blockSize: b, localBlocks: L, stride } = o
  return masks.perHead(heads, h => {
    const r = residues[h]
    if (!r) return masks.all
    const hit = new Uint8Array(stride)
    for (const x of r) hit[x] = 1
    return masks.custom((_b, _h, pq, pk) => {
      const qb = Math.floor(pq / b)
      const kb = Math.floor(pk / b)
      return Math.abs(qb - kb) < L || hit[((kb % stride) + stride) % stride] === 1
    })
  })
}

export type S2AttentionOptions = S2Options & SdpaOptions

/**
 * S2-Attention: each head attends causally to its local blocks plus a strided shard of the distant ones, the shards
 * chosen so that together the heads read the whole context. Exactly `scaledDotProductAttention` with `s2Mask`
 * (and the caller's mask), causal unless `causal: false`; returns `{ out, lse }`, so it merges, decodes
 * (`Tq = 1` at `queryOffset`) and differentiates like sdpa. Use it inside `multiHeadAttention` by passing
 * `mask: s2Mask(heads, kvHeads, opts)` to `forward` (cached decode included).
 */
export function s2Attention(q: Tensor, k: Tensor, v: Tensor, opts: S2AttentionOptions = {}): AttentionResult {
  checkQkv(OP, q, k, v)
  // blockSize is S2's block of positions (its shards are cut in it), not sdpa's key tile
  checkS2(OP, opts, [...new Set([...S2_OPTIONS, ...SDPA_OPTIONS])])
  const { blockSize, localBlocks, stride, offset, denseHeads, layout, homoHead, allowGaps, ...sdpa } = opts
  const s2 = { blockSize, localBlocks, stride, offset, denseHeads, layout, homoHead, allowGaps }
  const clean = Object.fromEntries(Object.entries(s2).filter(([, x]) => x !== undefined)) as S2Options
  const m = maskOf(OP, q.shape[1]!, k.shape[1]!, clean)
  return scaledDotProductAttention(q, k, v, { ...sdpa, causal: sdpa.causal ?? true, mask: sdpa.mask ? masks.and(m, sdpa.mask) : m })
}
