import { ArgumentError, avgPool2d, concat, knownOptions, permute, reshape, scope, ShapeError, slice, ValueError, type Tensor } from '@heed/tensor'
import { checkQkv, scaledDotProductAttention, type AttentionResult } from '../sdpa.js'
import { checkGrid, windowAttention, windowPair, type Grid } from './davit.js'
import { headCount } from '../mask.js'
import { operatorOptions } from './strict.js'

/**
 * HiLo attention (LITv2; Pan et al., "Fast Vision Transformers with HiLo Attention", NeurIPS 2022) on
 * `[B, H, rows·cols, D]` token grids. The heads split into two groups whose outputs are concatenated, Hi-Fi first:
 * - Hi-Fi heads (`H − ⌊H·α⌋`): self-attention inside non-overlapping `s × s` windows (high frequencies).
 * - Lo-Fi heads (`⌊H·α⌋`): every query attends to keys and values average-pooled over `s × s` windows
 *   (low frequencies), `N/s²` of them.
 * `s = 1` makes every head Lo-Fi with nothing pooled: plain multi-head attention (as in `ziplab/LITv2:hilo.py`).
 *
 * LITv2 pools the block input x before its K/V projection; pooling is linear and the projection affine, so pooling
 * the projected k and v (what this function receives) gives the same keys and values.
 */
export interface HiloOptions {
  /** The token grid `[rows, cols]`; both must be multiples of the window (LITv2's `forward` requires it). */
  readonly grid: Grid
  /** Window / pool side `s` (default 2, LITv2 stage 3; `s = 1` is MSA). A `[rows, cols]` pair is accepted for non-square grids. */
  readonly window?: number | Grid
  /** Fraction α of heads that are Lo-Fi (default 0.5, the module default; LITv2 models use 0.9). */
  readonly alpha?: number
  /** Default 1/√D for both groups. */
  readonly scale?: number
}

export interface HiloResult extends AttentionResult {
  /** Heads [0, hiFiHeads) are Hi-Fi, the rest Lo-Fi. */
  readonly hiFiHeads: number
}

const OP = 'hiloAttention'

/** How many of `heads` are Hi-Fi: LITv2 gives every head to Lo-Fi when the window is 1. */
export function hiloSplit(heads: number, opts: { readonly window?: number | Grid; readonly alpha?: number } = {}): { hiFi: number; loFi: number } {
  const op = 'hiloSplit'
  headCount(op, heads)
  operatorOptions(op, opts, ['window', 'alpha'])
  const alpha = opts.alpha ?? 0.5
  if (!(typeof alpha === 'number' && alpha >= 0 && alpha <= 1)) throw new ValueError({ op, arg: 'alpha', expected: 'a number in [0, 1]', actual: alpha })
  const [wr, wc] = windowPair(op, opts.window ?? 2)
  const loFi = wr === 1 && wc === 1 ? heads : Math.floor(heads * alpha)
  return { hiFi: heads - loFi, loFi }
}

/** Average-pool `[B, h, rows·cols, D]` tokens over `[wr, wc]` windows → `[B, h, rows·cols/(wr·wc), D]`. */
function poolTokens(x: Tensor, grid: Grid, [wr, wc]: Grid): Tensor {
  const [B, h, N, D] = x.shape as [number, number, number, number]
  const pooled = avgPool2d(reshape(permute(x, [0, 1, 3, 2]), [B, h * D, grid[0], grid[1]]), [wr, wc])
  return permute(reshape(pooled, [B, h, D, N / (wr * wc)]), [0, 1, 3, 2])
}

/**
 * HiLo attention. q, k, v `[B, H, rows·cols, D]` (same heads, one grid); returns out `[B, H, N, Dv]` with heads
 * ordered `[Hi-Fi | Lo-Fi]` and the per-row lse of each head's own softmax. Cost: Hi-Fi O(N·s²·D), Lo-Fi
 * O(N²/s²·D). Differentiable; CPU and WebGPU.
 */
export function hiloAttention(q: Tensor, k: Tensor, v: Tensor, opts: HiloOptions): HiloResult {
  checkQkv(OP, q, k, v)
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op: OP, arg: 'opts', expected: '{ grid, … }', actual: String(opts) })
  const o = opts as unknown as Record<string, unknown>
  if (o['causal'] !== undefined && o['causal'] !== false)
    throw new ValueError({ op: OP, arg: 'causal', expected: 'false or absent (HiLo attends over an image grid, non-causally)', actual: String(o['causal']) })
  knownOptions(OP, opts, ['grid', 'window', 'alpha', 'scale', 'causal'])
  const [, H, N] = q.shape as [number, number, number, number]
  if (k.shape[1] !== H) throw new ShapeError({ op: OP, arg: 'k', expected: `${H} heads like q (heads split into Hi-Fi and Lo-Fi)`, actual: k.shape })
  if (k.shape[2] !== N) throw new ShapeError({ op: OP, arg: 'k', expected: `${N} tokens like q (one grid)`, actual: k.shape })
  const grid = checkGrid(OP, opts.grid, N)
  const win = windowPair(OP, opts.window ?? 2)
  if (grid[0] % win[0] !== 0 || grid[1] % win[1] !== 0) throw new ShapeError({ op: OP, arg: 'grid', expected: `multiples of the window [${win.join(', ')}]`, actual: grid })
  const { hiFi } = hiloSplit(H, { ...(opts.window !== undefined ? { window: opts.window } : {}), ...(opts.alpha !== undefined ? { alpha: opts.alpha } : {}) })
  const sc = opts.scale !== undefined ? { scale: opts.scale } : {}
  const heads = (x: Tensor, a: number, b: number): Tensor => slice(x, [null, [a, b]])
  const made = scope(() => {
    const parts: AttentionResult[] = []
    if (hiFi > 0) parts.push(windowAttention(heads(q, 0, hiFi), heads(k, 0, hiFi), heads(v, 0, hiFi), { grid, window: win, ...sc }))
    if (hiFi < H) {
      const kp = poolTokens(heads(k, hiFi, H), grid, win)
      const vp = poolTokens(heads(v, hiFi, H), grid, win)
      parts.push(scaledDotProductAttention(heads(q, hiFi, H), kp, vp, { queryOffset: 0, ...sc }))
    }
    return parts.length === 1 ? { out: parts[0]!.out, lse: parts[0]!.lse } : { out: concat(parts.map(p => p.out), 1), lse: concat(parts.map(p => p.lse), 1) }
  })
  return { ...made, hiFiHeads: hiFi }
}
