import { add, ArgumentError, concat, mul, reshape, ShapeError, slice, stack, sub, tensor, ValueError, type Tensor } from '@heed/tensor'
import { operatorOptions, tensorArg } from './operators/strict.js'

/**
 * Rotary position embedding (RoFormer). Pair `i` of a head vector is rotated by `p·base^(−2i/D)` at absolute
 * position `p`, so `⟨rope(q, pq), rope(k, pk)⟩` depends on positions only through `pq − pk`.
 * - `half` (default; GPT-NeoX / Llama in Hugging Face): pair `i` is `(x[i], x[i + D/2])`.
 * - `interleaved` (the original paper, GPT-J, Meta's Llama code): pair `i` is `(x[2i], x[2i + 1])`.
 * The two are the same rotation on differently laid out features; weights trained with one need the other's
 * permutation to be loaded with the other.
 */
export interface RopeOptions {
  /** Default 10000. */
  readonly base?: number
  /** Default 'half'. */
  readonly style?: 'half' | 'interleaved'
}

/**
 * cos and sin tables `[T, D/2]` for positions, computed in float64 on the host (angles reach 10⁴ rad and more;
 * float32 angles would lose the low bits before the trig).
 */
function tables(positions: Int32Array, half: number, base: number, like: Tensor): [Tensor, Tensor] {
  const T = positions.length
  const c = new Float64Array(T * half)
  const s = new Float64Array(T * half)
  for (let t = 0; t < T; t++)
    for (let i = 0; i < half; i++) {
      const a = positions[t]! * base ** (-(2 * i) / (2 * half))
      c[t * half + i] = Math.cos(a)
      s[t * half + i] = Math.sin(a)
    }
  const o = { backend: like.backend }
  return [tensor(c, [T, half], like.dtype, o), tensor(s, [T, half], like.dtype, o)]
}

/** Rotate `x [B, H, T, D]` (D even) at absolute `positions` (one per row of T). Differentiable in `x`. */
const ROPE_OPTIONS: Record<keyof RopeOptions, true> = { base: true, style: true }

export function rope(x: Tensor, positions: Int32Array, opts: RopeOptions = {}): Tensor {
  const op = 'rope'
  tensorArg(op, 'x', x, 'a Tensor [B, H, T, D]')
  if (positions === null || typeof positions !== 'object' || !Number.isSafeInteger((positions as { length?: unknown }).length))
    throw new ArgumentError({ op, arg: 'positions', expected: 'an Int32Array of positions (one per row)', actual: positions === null ? 'null' : typeof positions })
  operatorOptions(op, opts, Object.keys(ROPE_OPTIONS))
  if (x.rank !== 4) throw new ShapeError({ op, arg: 'x', expected: 'rank 4 [B, H, T, D]', actual: x.shape })
  const [B, H, T, D] = x.shape as [number, number, number, number]
  if (D % 2 !== 0) throw new ValueError({ op, arg: 'x', expected: 'an even head dim', actual: D })
  if (positions.length !== T) throw new ShapeError({ op, arg: 'positions', expected: `${T} positions (one per row)`, actual: positions.length })
  const base = opts.base ?? 10000
  if (!(Number.isFinite(base) && base > 1)) throw new ValueError({ op, arg: 'base', expected: 'a finite number > 1', actual: base })
  const style = opts.style ?? 'half'
  if (style !== 'half' && style !== 'interleaved') throw new ValueError({ op, arg: 'style', expected: "'half' or 'interleaved'", actual: style })
  const h = D / 2
  const [cos, sin] = tables(positions, h, base, x)
  let x1: Tensor
  let x2: Tensor
  if (style === 'half') {
    x1 = slice(x, [null, null, null, [0, h]])
    x2 = slice(x, [null, null, null, [h, D]])
  } else {
    const pairs = reshape(x, [B, H, T, h, 2])
    x1 = slice(pairs, [null, null, null, null, 0])
    x2 = slice(pairs, [null, null, null, null, 1])
  }
  const r1 = sub(mul(x1, cos), mul(x2, sin))
  const r2 = add(mul(x2, cos), mul(x1, sin))
  return style === 'half' ? concat([r1, r2], 3) : reshape(stack([r1, r2], 4), [B, H, T, D])
}
