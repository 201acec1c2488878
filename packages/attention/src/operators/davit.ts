import { ArgumentError, checkAllocation, isTensor, positiveInt, matmul, mul, scope, ShapeError, softmax, transpose, ValueError, type Tensor } from '@heed/tensor'
import { mask as masks } from '../mask.js'
import { checkQkv, scaledDotProductAttention, type AttentionResult } from '../sdpa.js'
import { operatorOptions } from './strict.js'

/**
 * DaViT (Ding et al., "DaViT: Dual Attention Vision Transformers", ECCV 2022): dual attention over a token grid.
 * - Spatial window attention: tokens of a `[rows, cols]` grid attend inside non-overlapping `window` tiles.
 * - Channel-group attention: per group (= head) g, a `C_g × C_g` attention over channels whose scores sum over
 *   all tokens, so its cost is linear in the number of tokens:
 *     A_g = softmax_row(s·K_gᵀ V_g),   Y_g = Q_g A_gᵀ.
 *   This is `dingmyu/davit`'s `ChannelAttention` (the paper writes softmax(Q_gᵀK_g)V_gᵀ; same operator, roles
 *   renamed), named here by the code's roles.
 */

/** A token grid `[rows, cols]`; token `p` sits at row `⌊p/cols⌋`, column `p mod cols` (row-major flattening). */
export type Grid = readonly [number, number]

export interface WindowAttentionOptions {
  /** The token grid; `rows·cols` must equal the sequence length. */
  readonly grid: Grid
  /** Window side, or `[rows, cols]`. Edge windows are cut short when the grid is not a multiple (DaViT pads instead). Default 7 (DaViT). */
  readonly window?: number | Grid
  /** Default 1/√D. */
  readonly scale?: number
}

/** @internal validate a grid against a sequence length. */
export function checkGrid(op: string, grid: unknown, T: number): Grid {
  if (!Array.isArray(grid) || grid.length !== 2) throw new ValueError({ op, arg: 'grid', expected: '[rows, cols]', actual: grid })
  const g: Grid = [positiveInt(op, 'grid[0]', grid[0]), positiveInt(op, 'grid[1]', grid[1])]
  if (g[0] * g[1] !== T) throw new ShapeError({ op, arg: 'grid', expected: `rows·cols = ${T} (the sequence length)`, actual: g })
  return g
}

/** @internal a window side or pair as a pair. */
export function windowPair(op: string, window: number | Grid): Grid {
  if (typeof window === 'number') return [positiveInt(op, 'window', window), window]
  if (!Array.isArray(window) || window.length !== 2) throw new ValueError({ op, arg: 'window', expected: 'a positive integer or [rows, cols]', actual: window })
  return [positiveInt(op, 'window[0]', window[0]), positiveInt(op, 'window[1]', window[1])]
}

/**
 * The window id of every token of a grid (row-major windows). Two tokens share a window iff their ids are equal,
 * so window attention is `mask.segments(ids)`: a data mask, which compiles to WGSL and classifies tiles.
 */
export function windowIds(grid: Grid, window: number | Grid): Int32Array {
  const [R, C] = checkGrid('windowIds', grid, Array.isArray(grid) ? Number(grid[0]) * Number(grid[1]) : NaN)
  const [wr, wc] = windowPair('windowIds', window)
  checkAllocation('windowIds', 'grid', R * C, 'int32')
  const perRow = Math.ceil(C / wc)
  return Int32Array.from({ length: R * C }, (_, p) => Math.floor(Math.floor(p / C) / wr) * perRow + Math.floor((p % C) / wc))
}

/**
 * Non-overlapping 2D window self-attention on `[B, H, rows·cols, D]` tokens (Swin/DaViT `WindowAttention`,
 * LITv2 Hi-Fi), as dense attention under a window mask: O(N·w²·D) work since fully masked tiles are skipped.
 * Differentiable; CPU and WebGPU.
 */
export function windowAttention(q: Tensor, k: Tensor, v: Tensor, opts: WindowAttentionOptions): AttentionResult {
  const op = 'windowAttention'
  checkQkv(op, q, k, v)
  // no causal key: windows over an image grid have no order to be causal in, so `causal` is an unknown option
  operatorOptions(op, opts, ['grid', 'window', 'scale'], '{ grid, … }')
  if (q.shape[2] !== k.shape[2]) throw new ShapeError({ op, arg: 'k', expected: `${q.shape[2]} tokens like q (self-attention on one grid)`, actual: k.shape })
  const grid = checkGrid(op, opts.grid, q.shape[2]!)
  const ids = windowIds(grid, opts.window ?? 7)
  return scaledDotProductAttention(q, k, v, { mask: masks.segments(ids), queryOffset: 0, ...(opts.scale !== undefined ? { scale: opts.scale } : {}) })
}

export interface ChannelAttentionOptions {
  /** Default `Dk^{-1/2}` (DaViT's `head_dim ** -0.5`, applied to K). */
  readonly scale?: number
}

/** k and v as checkQkv checks them, each blamed by its own name (k stands in for the q that sets the head dims). */
function checkKv(op: string, k: Tensor, v: Tensor): void {
  for (const [arg, t] of [['k', k], ['v', v]] as const) {
    if (!isTensor(t)) throw new ArgumentError({ op, arg, expected: 'a Tensor [B, G, P, D]', actual: t === null ? 'null' : typeof t })
    if (t.rank !== 4) throw new ShapeError({ op, arg, expected: 'rank 4 [B, G, P, D]', actual: t.shape })
  }
  checkQkv(op, k, k, v)
}

function checkChannel(op: string, q: Tensor, k: Tensor, v: Tensor): void {
  checkKv(op, k, v)
  if (!isTensor(q)) throw new ArgumentError({ op, arg: 'q', expected: 'a Tensor [B, G, Tq, Dv]', actual: q === null ? 'null' : typeof q })
  if (q.rank !== 4) throw new ShapeError({ op, arg: 'q', expected: 'rank 4 [B, G, Tq, Dv]', actual: q.shape })
  if (q.dtype !== k.dtype) throw new ValueError({ op, arg: 'q', expected: `${k.dtype} like k`, actual: q.dtype })
  const [B, G, , Dq] = q.shape as [number, number, number, number]
  if (B !== k.shape[0] || G !== k.shape[1]) throw new ShapeError({ op, arg: 'q', expected: `[${k.shape[0]}, ${k.shape[1]}, Tq, ${v.shape[3]}] (one group per head of k)`, actual: q.shape })
  if (Dq !== v.shape[3]) throw new ShapeError({ op, arg: 'q', expected: `${v.shape[3]} channels per group (A_gᵀ maps v-channels to k-channels)`, actual: Dq })
}

/**
 * `A_g = softmax_row(s·K_gᵀ V_g)`, `[B, G, Dk, Dv]`: each row sums to 1 and, since the scores sum over tokens,
 * A is invariant to any permutation of the tokens.
 */
export function channelAttentionWeights(k: Tensor, v: Tensor, opts: ChannelAttentionOptions = {}): Tensor {
  const op = 'channelAttentionWeights'
  checkKv(op, k, v)
  operatorOptions(op, opts, ['scale'])
  return weights(op, k, v, opts)
}

function weights(op: string, k: Tensor, v: Tensor, opts: ChannelAttentionOptions): Tensor {
  const s = opts.scale ?? 1 / Math.sqrt(k.shape[3]!)
  if (!Number.isFinite(s)) throw new ValueError({ op, arg: 'scale', expected: 'a finite number', actual: s })
  return scope(() => softmax(matmul(transpose(mul(k, s), [0, 1, 3, 2]), v), { axis: -1 }))
}

/**
 * DaViT channel-group attention. k `[B, G, P, Dk]`, v `[B, G, P, Dv]` build `A_g [Dk, Dv]`; q `[B, G, Tq, Dv]`
 * is mapped row by row, `Y_g = Q_g A_gᵀ`, giving `[B, G, Tq, Dk]`. In DaViT all three come from one token set
 * and Dk = Dv = C/G. Cost O(P·Dk·Dv) per group: linear in tokens, quadratic in group width. Differentiable.
 * Equivariant to token permutations: permuting the rows of q (with k, v permuted any way) permutes the output rows.
 */
export function channelAttention(q: Tensor, k: Tensor, v: Tensor, opts: ChannelAttentionOptions = {}): { readonly out: Tensor } {
  const op = 'channelAttention'
  checkChannel(op, q, k, v)
  operatorOptions(op, opts, ['scale'])
  return { out: scope(() => matmul(q, transpose(weights(op, k, v, opts), [0, 1, 3, 2]))) }
}
