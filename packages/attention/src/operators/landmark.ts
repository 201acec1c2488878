import { add, concat, div, exp, expandDims, fullLike, gather, greater, logicalAnd, matmul, max, mul, oneHot, permute, scope, slice, stopGradient, sub, sum, tensor, topk, ValueError, knownOptions, where, zerosLike, type Tensor, positiveInt } from '@heed/tensor'
import { mask as masks, type Mask } from '../mask.js'
import { checkQkv, scaledDotProductAttention, type SdpaOptions } from '../sdpa.js'

export interface LandmarkOptions extends Omit<SdpaOptions, 'causal' | 'scoreMod'> {
  /**
   * Ordinary tokens per block, ℓ. The sequence already carries a landmark token after each block, so position p is
   * a landmark iff `p mod (ℓ + 1) = ℓ` (the paper's PG-19 run uses ℓ = 50).
   */
  readonly blockSize: number
  /**
   * Inference: each query row (and head) keeps only the `topK` previous blocks whose landmarks score highest and
   * attends within them plus its own block; `topK ≥ #blocks` is the training-time operator. Default: all blocks.
   */
  readonly topK?: number
}

export interface LandmarkResult {
  /** [B, H, Tq, Dv] */
  readonly out: Tensor
  /** Share of each row's attention that goes to its own block: [B, H, Tq]. The rest is spread over other blocks. */
  readonly localMass: Tensor
}

const OP = 'landmarkAttention'

/** Whether absolute position `p` holds a landmark token for blocks of `blockSize` ordinary tokens. */
export const isLandmark = (p: number, blockSize: number): boolean => p % (blockSize + 1) === blockSize

/**
 * Landmark Attention's grouped softmax (Mohtashami & Jaggi 2023, "Landmark Attention"), causal. For query i in block c_i: the "current group" is the
 * ordinary tokens of its own block it can see plus the landmarks of every completed earlier block; a softmax over
 * it gives each earlier block c its landmark's share, which that block's tokens then split by a softmax among
 * themselves. Landmarks get weight 0; rows sum to 1; with one block it is causal softmax.
 *
 * Computed without the T×T matrix, as a mass-transfer merge of (o, lse) states: the own block is one sdpa state, every earlier
 * block another (its normalised output), and the masses are the current-group softmax of
 * `[lse_own, s·q·k_landmark_c …]`. Differentiable; O(T·#blocks) extra memory. Keys are never re-positioned here
 * (the paper's "stingy" position mapping belongs with RoPE, before this op).
 */
export function landmarkAttention(q: Tensor, k: Tensor, v: Tensor, opts: LandmarkOptions): LandmarkResult {
  checkQkv(OP, q, k, v)
  if (opts === null || typeof opts !== 'object') throw new ValueError({ op: OP, arg: 'opts', expected: '{ blockSize, … }', actual: String(opts) })
  const o = opts as unknown as Record<string, unknown>
  if (o['causal'] !== undefined && o['causal'] !== true)
    throw new ValueError({ op: OP, arg: 'causal', expected: 'true or absent (landmark attention is causal by construction)', actual: String(o['causal']) })
  knownOptions(OP, opts, ['blockSize', 'topK', 'mask', 'scale', 'queryOffset', 'keyOffset', 'causal', 'scoreMod'])
  const { blockSize: l, topK, mask: user, causal: _c, ...sdpa } = opts as LandmarkOptions & { causal?: boolean }
  positiveInt(OP, 'blockSize', l)
  if (topK !== undefined && (!Number.isInteger(topK) || topK < 0)) throw new ValueError({ op: OP, arg: 'topK', expected: 'a non-negative integer', actual: topK })
  if ('scoreMod' in opts && (opts as { scoreMod?: unknown }).scoreMod !== undefined) throw new ValueError({ op: OP, arg: 'scoreMod', expected: 'none (landmark scores are plain dot products)', actual: 'a ScoreMod' })
  const [B, H, Tq, D] = q.shape as [number, number, number, number]
  const [, Hkv, Tk] = k.shape as [number, number, number, number]
  const period = l + 1
  const scale = sdpa.scale ?? 1 / Math.sqrt(D)
  const qOff = sdpa.queryOffset ?? Math.max(0, Tk - Tq)
  const kOff = sdpa.keyOffset ?? 0
  const base = { ...sdpa, queryOffset: qOff, keyOffset: kOff }
  const userAllows = (b: number, h: number, pq: number, pk: number): boolean => !user || user.test(b, h, pq, pk)

  // Landmark keys present, with the ordinary tokens of their block that are present too.
  const blocks: { slot: number; pos: number; from: number; to: number }[] = []
  for (let j = 0; j < Tk; j++) {
    const p = kOff + j
    if (isLandmark(p, l)) blocks.push({ slot: j, pos: p, from: Math.max(0, j - l), to: j })
  }
  const nL = blocks.length

  return scope(() => {
    const ordinary = ordinaryKeys(qOff + Tq, kOff + Tk, l)
    const ownMask = masks.and(masks.causal, masks.chunk(period), ordinary, ...(user ? [user] : []))
    const own = scaledDotProductAttention(q, k, v, { ...base, mask: ownMask })
    if (nL === 0) return { out: own.out, localMass: where(greater(own.lse, -Infinity), fullLike(own.lse, 1), zerosLike(own.lse)) }

    // A landmark joins row i's current group iff its block ended before i's block began (and the mask allows it).
    const visible = new Int32Array(B * H * Tq * nL)
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < Tq; i++) {
          const pq = qOff + i
          blocks.forEach((blk, c) => {
            if (Math.floor(blk.pos / period) < Math.floor(pq / period) && userAllows(b, h, pq, blk.pos)) visible[((b * H + h) * Tq + i) * nL + c] = 1
          })
        }
    const g = H / Hkv
    const headIdx = tensor(Int32Array.from({ length: H }, (_, h) => Math.floor(h / g)), [H], 'int32', { backend: q.backend })
    const kL = gather(gather(k, tensor(Int32Array.from(blocks.map(x => x.slot)), [nL], 'int32', { backend: q.backend }), 2), headIdx, 1)
    const scores = mul(matmul(q, permute(kL, [0, 1, 3, 2])), scale)
    let allowed: Tensor = greater(tensor(visible, [B, H, Tq, nL], 'int32', { backend: q.backend }), 0)
    if (topK !== undefined && topK < nL) {
      // Rank only what the row may see; ties keep the earlier block (topk's order).
      const ranked = where(allowed, stopGradient(scores), -Infinity)
      const chosen = sum(oneHot(topk(ranked, topK).indices, nL, { dtype: 'int32' }), { axis: 3 })
      allowed = logicalAnd(allowed, greater(chosen, 0))
    }
    const sL = where(allowed, scores, -Infinity)
    // Current-group softmax over [lse_own, landmark scores], shift-safe when a row sees nothing at all.
    const group = concat([expandDims(own.lse, -1), sL], -1)
    const m = stopGradient(max(group, { axis: -1, keepDims: true }))
    const seen = greater(m, -Infinity)
    const w = exp(sub(group, where(seen, m, 0)))
    const weights = div(w, where(seen, sum(w, { axis: -1, keepDims: true }), 1))
    const localMass = sum(slice(weights, [null, null, null, [0, 1]]), { axis: -1 })
    let out = mul(own.out, expandDims(localMass, -1))
    // Blocks no row retrieves need no pass; which ones those are is only known on the host.
    const used = topK !== undefined && topK < nL && q.backend === 'cpu' ? sum(where(allowed, fullLike(scores, 1), zerosLike(scores)), { axis: [0, 1, 2] }).dataSync() : undefined
    blocks.forEach((blk, c) => {
      if (blk.to <= blk.from || (used && used[c] === 0)) return
      const kc = slice(k, [null, null, [blk.from, blk.to]])
      const vc = slice(v, [null, null, [blk.from, blk.to]])
      const inner = scaledDotProductAttention(q, kc, vc, { ...base, keyOffset: kOff + blk.from, ...(user ? { mask: user } : {}) })
      const wc = slice(weights, [null, null, null, [c + 1, c + 2]])
      out = add(out, mul(inner.out, wc))
    })
    return { out, localMass }
  })
}

/** Keys that are ordinary tokens, as segment ids (compiles to WGSL): query ids all 1, key ids 1 off landmarks. */
function ordinaryKeys(qEnd: number, kEnd: number, l: number): Mask {
  const qi = new Int32Array(qEnd).fill(1)
  const ki = Int32Array.from({ length: kEnd }, (_, p) => (isLandmark(p, l) ? 0 : 1))
  return masks.segments(qi, ki)
}
