/**
 * The streaming form of `titansLayer` (Behrouz et al. 2024, "Titans: Learning to Memorize at Test Time"): rows go in
 * a chunk at a time (one token, when decoding) and come out equal to the full layer's rows over the whole stream, to
 * rounding. What a token needs from the past is bounded:
 *
 * - the neural memory's weights, momentum and the pending (read, not yet written) part of its current chunk:
 *   `titansStep` already gives the same state for any partition of a stream, because its chunk boundaries are
 *   absolute, so the memory commits a chunk exactly when the full form would;
 * - MAG / MAL: the attention keys and values of the last window − 1 rows (the sliding window, beside the
 *   persistent tokens, which are input independent and recomputed);
 * - MAC: the memory as committed when the current segment began (its reads h all come from there) and the
 *   segment's h and x keys and values so far; a completed segment leaves nothing behind but the memory it wrote.
 *
 * So decoding a token costs the same however long the stream has run.
 */
import { mask as masks, scaledDotProductAttention, type Mask } from '@heed/attention'
import { concat, matmul, mul, permute, reshape, scope, ShapeError, sigmoid, slice, ValueError, positiveInt, type Tensor } from '@heed/tensor'
import { memoryForward, neuralMemory, neuralMemoryInputs, neuralMemoryState, type TitansState } from './titans.js'
import type { TitansLayerOptions, TitansLayerParams, TitansVariant } from './titansLayer.js'
import { checkLayerInputs, layerOptions } from './titansOptions.js'

export interface TitansLayerStreamState {
  /** The memory being written: committed weights, momentum, pending chunk. */
  readonly memory: TitansState
  /** MAC: the committed weights at the current segment's start (what its reads h use). */
  readonly segmentWeights?: readonly Tensor[]
  /** `[1, heads, t, Dh]`: MAG/MAL the window's last rows; MAC the current segment's rows. */
  readonly keys?: Tensor
  readonly values?: Tensor
  /** MAC: `[1, heads, t, Dh]` the current segment's memory reads h, as keys and values. */
  readonly hKeys?: Tensor
  readonly hValues?: Tensor
  /** Rows absorbed so far. */
  readonly position: number
}

export interface TitansLayerStepResult {
  /** `[n, d]`: the chunk's rows of the layer's output. */
  readonly out: Tensor
  readonly state: TitansLayerStreamState
}

/** `[n, d]` → `[1, heads, n, Dh]` */
const split = (x: Tensor, heads: number): Tensor => permute(reshape(x, [1, x.shape[0]!, heads, x.shape[1]! / heads]), [0, 2, 1, 3])

/** The layer's attention from query rows `q` over already projected keys and values, then its output map. */
function attendProjected(p: TitansLayerParams, q: Tensor, k: Tensor, v: Tensor, heads: number, m: Mask): Tensor {
  const { out } = scaledDotProductAttention(split(matmul(q, p.wq), heads), k, v, { mask: m, queryOffset: 0, keyOffset: 0 })
  return matmul(reshape(permute(out, [0, 2, 1, 3]), [q.shape[0]!, q.shape[1]!]), p.wo)
}

const join = (old: Tensor | undefined, x: Tensor): Tensor => (old ? concat([old, x], 2) : x)
const lastRows = (x: Tensor, n: number): Tensor | undefined => {
  const t = x.shape[2]!
  return n <= 0 ? undefined : t <= n ? x : slice(x, [null, null, [t - n, t]])
}

/**
 * Continue `titansLayer(params, ·, variant)` over the next rows `x: [n, d]` of a stream (`state` undefined at its
 * first row, where the memory starts from `params.memory.init`, as the full form's).
 */
export function titansLayerStep(params: TitansLayerParams, x: Tensor, variant: TitansVariant, state: TitansLayerStreamState | undefined, opts: TitansLayerOptions = {}): TitansLayerStepResult {
  const op = 'titansLayerStep'
  const d = checkLayerInputs(op, params, x, 'n')
  const mem = layerOptions(op, opts)
  const heads = opts.heads ?? 1
  if (!Number.isInteger(heads) || heads < 1 || d % heads !== 0) throw new ValueError({ op, arg: 'heads', expected: `a divisor of d=${d}`, actual: heads })
  if (variant !== 'MAC' && variant !== 'MAG' && variant !== 'MAL') throw new ValueError({ op, arg: 'variant', expected: "'MAC', 'MAG' or 'MAL'", actual: variant })
  const P = params.persistent
  const np = P.shape[0]!
  const n = x.shape[0]!
  const activation = opts.activation ?? 'silu'
  return scope(() => {
    const s: TitansLayerStreamState = state ?? { memory: neuralMemoryState(params.memory), position: 0 }
    const kP = split(matmul(P, params.wk), heads)
    const vP = split(matmul(P, params.wv), heads)
    if (variant === 'MAC') {
      const seg = positiveInt(op, 'segment', opts.segment ?? 64)
      let cur = s
      const outs: Tensor[] = []
      for (let a = 0; a < n; ) {
        const a0 = cur.position % seg
        const b = Math.min(n, a + seg - a0)
        const rows = a === 0 && b === n ? x : slice(x, [[a, b]])
        const segW = a0 === 0 ? cur.memory.weights : cur.segmentWeights!
        const h = memoryForward(segW, neuralMemoryInputs(params.memory, rows, mem).queries!, activation)
        const hK = join(cur.hKeys, split(matmul(h, params.wk), heads))
        const hV = join(cur.hValues, split(matmul(h, params.wv), heads))
        const xK = join(cur.keys, split(matmul(rows, params.wk), heads))
        const xV = join(cur.values, split(matmul(rows, params.wv), heads))
        const c = a0 + b - a
        // titansLayer's MAC mask over [P ‖ h ‖ S], with the segment cut at the rows seen so far (c) and the
        // queries at in-segment index a0 + i.
        const m = masks.custom((_b, _h, pq, pk) => pk < np || (pk < np + c ? pk - np <= pq + a0 : pk - np - c <= pq + a0))
        const y = attendProjected(params, rows, concat([kP, hK, xK], 2), concat([vP, hV, xV], 2), heads, m)
        const r = neuralMemory(params.memory, y, cur.memory, mem)
        outs.push(mul(y, sigmoid(r.out)))
        cur = c === seg
          ? { memory: r.state, position: cur.position + b - a }
          : { memory: r.state, segmentWeights: segW, keys: xK, values: xV, hKeys: hK, hValues: hV, position: cur.position + b - a }
        a = b
      }
      return { out: outs.length === 1 ? outs[0]! : concat(outs), state: cur }
    }
    const window = positiveInt(op, 'window', opts.window ?? 64)
    const r = neuralMemory(params.memory, x, s.memory, mem)
    // MAG attends over the inputs, MAL over the memory's reads of them; both beside the persistent rows, whose MAL
    // form is the read of P from the initial memory M₀ (the full form reads P from the state it starts from).
    const rows = variant === 'MAG' ? x : r.out
    const persistent = variant === 'MAG' ? { k: kP, v: vP } : (() => {
      const yP = memoryForward(params.memory.init, neuralMemoryInputs(params.memory, P, mem).queries!, activation)
      return { k: split(matmul(yP, params.wk), heads), v: split(matmul(yP, params.wv), heads) }
    })()
    const k = join(s.keys, split(matmul(rows, params.wk), heads))
    const v = join(s.values, split(matmul(rows, params.wv), heads))
    const held = k.shape[2]! - n
    const p0 = s.position
    // masks.streaming(np, window) of the full form, in this call's key order [P ‖ held rows ‖ chunk].
    const m = masks.custom((_b, _h, pq, pk) => {
      if (pk < np) return true
      const tk = p0 - held + pk - np
      const tq = p0 + pq
      return tk <= tq && tq - tk < window
    })
    const y = attendProjected(params, rows, concat([persistent.k, k], 2), concat([persistent.v, v], 2), heads, m)
    const out = variant === 'MAG' ? mul(y, sigmoid(r.out)) : y
    const kw = lastRows(k, window - 1)
    const vw = lastRows(v, window - 1)
    return { out, state: { memory: r.state, ...(kw && vw ? { keys: kw, values: vw } : {}), position: p0 + n } }
  })
}
