import { BackendError, concat, gather, scope, slice, tensor, ValueError, type Tensor, positiveInt } from '@heed/tensor'
import { rope, type RopeOptions } from '../rope.js'
import { checkQkv, scaledDotProductAttention, type AttentionResult } from '../sdpa.js'
import { operatorOptions } from './strict.js'

/**
 * LongHeads (Lu et al., "LongHeads: Multi-Head Attention is Secretly a Long Context Processor", 2024): each head of
 * a model pretrained on `L` tokens reads a longer context through `L/w` chunks of `w` tokens chosen per query,
 * re-positioned contiguously so every RoPE position stays inside the pretrained window [0, L).
 * - Chunk key: RoPE at local positions, non-causal attention inside chunk g, c̄_g = mean of its outputs, and
 *   k̂_g = softmax(c̄_g·K_gᵀ/√D)·K_g (un-rotated keys).
 * - Query i beyond the first L tokens scores visible chunks by q_i·k̂_g, always keeps chunk 0 and the two local
 *   chunks (its own and the previous), fills up to L/w chunks by score, and sorts them by position. Slot s gets
 *   positions s·w…s·w+w−1; the query sits at (n−1)·w + (i mod w) in its own chunk's slot, so it attends to at most
 *   L keys, causally within its own chunk.
 * - The first L queries use plain causal attention at their own positions.
 * Selection is discrete and runs on the host (q, k must be CPU tensors); attention is differentiable in q, k, v.
 */
export interface LongHeadsOptions {
  /** Chunk size w (default 256). */
  readonly chunkSize?: number
  /** Pretrained window L, a multiple of w (default 4096); L/w chunks per query. */
  readonly attnLength?: number
  /** RoPE applied inside (default base 10000, 'half'); `false` for a model without positions. */
  readonly rope?: RopeOptions | false
  /** Default 1/√D. */
  readonly scale?: number
}

export interface LongHeadsResult extends AttentionResult {
  /** Per (b, h, query ≥ L): the selected chunk ids, ascending. Empty for the first L queries. */
  readonly chunks: readonly (readonly (readonly (readonly number[])[])[])[]
}

const OP = 'longHeadsAttention'

const dotAt = (a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number, D: number): number => {
  let s = 0
  for (let d = 0; d < D; d++) s += a[i + d]! * b[j + d]!
  return s
}

/** Rotate a host row in place by RoPE at `pos` (same layout and frequencies as `rope`). */
function rotate(x: number[], pos: number, o: RopeOptions): number[] {
  const D = x.length
  const h = D / 2
  const base = o.base ?? 10000
  const out = x.slice()
  for (let i = 0; i < h; i++) {
    const a = pos * base ** (-(2 * i) / D)
    const [c, s] = [Math.cos(a), Math.sin(a)]
    const [i1, i2] = o.style === 'interleaved' ? [2 * i, 2 * i + 1] : [i, i + h]
    out[i1] = x[i1]! * c - x[i2]! * s
    out[i2] = x[i2]! * c + x[i1]! * s
  }
  return out
}

/** LongHeads attention on causal self-attention q, k `[B, H, T, D]`, v `[B, H, T, Dv]`. */
export function longHeadsAttention(q: Tensor, k: Tensor, v: Tensor, opts: LongHeadsOptions = {}): LongHeadsResult {
  checkQkv(OP, q, k, v)
  operatorOptions(OP, opts, ['chunkSize', 'attnLength', 'rope', 'scale'])
  if (opts.rope !== undefined && opts.rope !== false) operatorOptions(`${OP}: rope`, opts.rope, ['base', 'style'], 'RoPE options { base, style } or false')
  const [B, H, T, D] = q.shape as [number, number, number, number]
  const Hkv = k.shape[1]!
  if (k.shape[2] !== T) throw new ValueError({ op: OP, arg: 'k', expected: `${T} keys (causal self-attention)`, actual: k.shape })
  const w = opts.chunkSize ?? 256
  const L = opts.attnLength ?? 4096
  positiveInt(OP, 'chunkSize', w)
  if (!Number.isInteger(L) || L < 2 * w || L % w !== 0) throw new ValueError({ op: OP, arg: 'attnLength', expected: `a multiple of chunkSize ${w}, at least 2 chunks`, actual: L })
  const ro = opts.rope === false ? undefined : (opts.rope ?? {})
  const sc = opts.scale !== undefined ? { scale: opts.scale } : {}
  const pos = (n: number, at: (i: number) => number) => Int32Array.from({ length: n }, (_, i) => at(i))
  const rot = (x: Tensor, p: Int32Array) => (ro ? rope(x, p, ro) : x)
  const chunks: number[][][][] = Array.from({ length: B }, () => Array.from({ length: H }, () => []))
  const prefix = Math.min(T, L)
  // Chunk values c̄_g are compared with keys, so beyond L the value dim must match the key dim.
  if (T > L && v.shape[3] !== D) throw new ValueError({ op: OP, arg: 'v', expected: `head dim ${D} like q when T > attnLength`, actual: v.shape })
  const made = scope(() => {
    const all = pos(T, i => i)
    const base = scaledDotProductAttention(rot(slice(q, [null, null, [0, prefix]]), all.slice(0, prefix)), rot(slice(k, [null, null, [0, prefix]]), all.slice(0, prefix)), slice(v, [null, null, [0, prefix]]), { causal: true, ...sc })
    if (T <= L) return { out: base.out, lse: base.lse }
    let qv: ArrayLike<number>
    let kv: ArrayLike<number>
    let vv: ArrayLike<number>
    try {
      qv = q.dataSync()
      kv = k.dataSync()
      vv = v.dataSync()
    } catch {
      throw new BackendError({ op: OP, arg: 'q', expected: 'host-resident (cpu) q and k for chunk selection', actual: q.backend })
    }
    const nSel = L / w
    const nChunks = Math.ceil(T / w)
    const row = (x: ArrayLike<number>, hh: number, HH: number, b: number, t: number) => Array.from({ length: D }, (_, d) => x[((b * HH + hh) * T + t) * D + d]!)
    const rowsOut: Tensor[][] = []
    const lseOut: Tensor[][] = []
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++) {
        const hk = Math.floor(h / (H / Hkv))
        // Chunk keys of complete chunks (only those can be non-local for a query).
        const kHat: number[][] = []
        for (let g = 0; g < nChunks; g++) {
          const members = Array.from({ length: Math.min(w, T - g * w) }, (_, t) => g * w + t)
          const kr = members.map(j => row(kv, hk, Hkv, b, j))
          const rq = members.map((j, t) => (ro ? rotate(row(qv, h, H, b, j), t, ro) : row(qv, h, H, b, j)))
          const rk = kr.map((x, t) => (ro ? rotate(x, t, ro) : x))
          // c̄_g: mean over the chunk of its non-causal self-attention outputs.
          const vr = members.map(j => row(vv, hk, Hkv, b, j))
          const cbar = new Array<number>(D).fill(0)
          for (const qi of rq) {
            const s = rk.map(kj => dotAt(qi, 0, kj, 0, D) / Math.sqrt(D))
            const m = Math.max(...s)
            const e = s.map(x => Math.exp(x - m))
            const z = e.reduce((a, c) => a + c, 0)
            e.forEach((x, j) => vr[j]!.forEach((y, d) => (cbar[d]! += (x / z) * y / rq.length)))
          }
          const s = kr.map(kj => dotAt(cbar, 0, kj, 0, D) / Math.sqrt(D))
          const m = Math.max(...s)
          const e = s.map(x => Math.exp(x - m))
          const z = e.reduce((a, c) => a + c, 0)
          kHat.push(Array.from({ length: D }, (_, d) => e.reduce((acc, x, j) => acc + (x / z) * kr[j]![d]!, 0)))
        }
        const outs: Tensor[] = []
        const lses: Tensor[] = []
        const qh = slice(q, [[b, b + 1], [h, h + 1]])
        const kh = slice(k, [[b, b + 1], [hk, hk + 1]])
        const vh = slice(v, [[b, b + 1], [hk, hk + 1]])
        for (let i = L; i < T; i++) {
          const own = Math.floor(i / w)
          const qi = row(qv, h, H, b, i)
          const forced = new Set([0, own, own - 1].filter(g => g >= 0))
          const rest = Array.from({ length: own }, (_, g) => g)
            .filter(g => !forced.has(g))
            .sort((a, z) => dotAt(qi, 0, kHat[z]!, 0, D) - dotAt(qi, 0, kHat[a]!, 0, D) || a - z)
          const sel = [...forced, ...rest.slice(0, nSel - forced.size)].sort((a, z) => a - z)
          chunks[b]![h]!.push(sel)
          const idx = sel.flatMap(g => Array.from({ length: g === own ? i - g * w + 1 : w }, (_, t) => g * w + t))
          const kp = pos(idx.length, x => sel.indexOf(Math.floor(idx[x]! / w)) * w + (idx[x]! % w))
          const it = tensor(Int32Array.from(idx), [idx.length], 'int32', { backend: q.backend })
          const r = scaledDotProductAttention(rot(slice(qh, [null, null, [i, i + 1]]), pos(1, () => (sel.length - 1) * w + (i % w))), rot(gather(kh, it, 2), kp), gather(vh, it, 2), sc)
          outs.push(r.out)
          lses.push(r.lse)
        }
        rowsOut.push(outs)
        lseOut.push(lses)
      }
    const tail = (xs: Tensor[][]) => concat(Array.from({ length: B }, (_, b) => concat(Array.from({ length: H }, (_, h) => concat(xs[b * H + h]!, 2)), 1)), 0)
    return { out: concat([base.out, tail(rowsOut)], 2), lse: concat([base.lse, tail(lseOut)], 2) }
  })
  return { ...made, chunks }
}
