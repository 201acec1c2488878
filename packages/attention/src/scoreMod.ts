import { ArgumentError, ValueError, knownOptions, kindOf } from '@heed/tensor'
import { headCount } from './mask.js'

/**
 * Score modifiers: pre-softmax, elementwise functions `apply(s, b, h, pq, pk)` of a scaled score and its
 * absolute positions. Like masks they are data, so the CPU evaluates them directly, WebGPU compiles them to WGSL,
 * and the backward pass knows their derivative with respect to the score.
 */
export type ScoreModNode =
  | { readonly kind: 'alibi'; readonly slopes: Float64Array }
  | { readonly kind: 'softcap'; readonly cap: number }
  | { readonly kind: 'relativeBias'; readonly table: Float64Array; readonly heads: number; readonly maxDistance: number }
  | { readonly kind: 'compose'; readonly mods: readonly ScoreMod[] }
  | {
      readonly kind: 'custom'
      readonly fn: (s: number, b: number, h: number, pq: number, pk: number) => number
      readonly grad: ((s: number, b: number, h: number, pq: number, pk: number) => number) | undefined
    }

const SCORE_MOD_KINDS: Record<ScoreModNode['kind'], true> = { alibi: true, softcap: true, relativeBias: true, compose: true, custom: true }

export class ScoreMod {
  /** @internal use the factories in `scoreMod`. */
  constructor(readonly node: ScoreModNode) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(SCORE_MOD_KINDS, (node as { kind?: unknown }).kind as string))
      throw new ArgumentError({ op: 'ScoreMod', arg: 'node', expected: `a score-mod node (${Object.keys(SCORE_MOD_KINDS).join(', ')}); build them with the \`scoreMod\` factories`, actual: kindOf(node) })
  }

  apply(s: number, b: number, h: number, pq: number, pk: number): number {
    const n = this.node
    switch (n.kind) {
      case 'alibi':
        return s - n.slopes[h % n.slopes.length]! * (pq - pk)
      case 'softcap':
        return n.cap * Math.tanh(s / n.cap)
      case 'relativeBias': {
        const d = Math.max(-n.maxDistance, Math.min(n.maxDistance, pk - pq))
        return s + n.table[(h % n.heads) * (2 * n.maxDistance + 1) + d + n.maxDistance]!
      }
      case 'compose': {
        let x = s
        for (const m of n.mods) x = m.apply(x, b, h, pq, pk)
        return x
      }
      case 'custom':
        return n.fn(s, b, h, pq, pk)
    }
  }

  /** d apply / d s, for the backward pass. Custom mods without `grad` use a central difference. */
  derivative(s: number, b: number, h: number, pq: number, pk: number): number {
    const n = this.node
    switch (n.kind) {
      case 'alibi':
      case 'relativeBias':
        return 1
      case 'softcap': {
        const t = Math.tanh(s / n.cap)
        return 1 - t * t
      }
      case 'compose': {
        let x = s
        let d = 1
        for (const m of n.mods) {
          d *= m.derivative(x, b, h, pq, pk)
          x = m.apply(x, b, h, pq, pk)
        }
        return d
      }
      case 'custom': {
        if (n.grad) return n.grad(s, b, h, pq, pk)
        const e = 1e-6 * Math.max(1, Math.abs(s))
        return (n.fn(s + e, b, h, pq, pk) - n.fn(s - e, b, h, pq, pk)) / (2 * e)
      }
    }
  }

  /** The same modifier seen by a call whose head 0 is head `by` of the caller (see Mask.shiftHeads). */
  shiftHeads(by: number): ScoreMod {
    if (by === 0) return this
    const n = this.node
    switch (n.kind) {
      case 'alibi': {
        const L = n.slopes.length
        return new ScoreMod({ kind: 'alibi', slopes: Float64Array.from({ length: L }, (_, h) => n.slopes[(h + by) % L]!) })
      }
      case 'relativeBias': {
        const w = 2 * n.maxDistance + 1
        const table = new Float64Array(n.table.length)
        for (let h = 0; h < n.heads; h++) table.set(n.table.subarray(((h + by) % n.heads) * w, ((h + by) % n.heads + 1) * w), h * w)
        return new ScoreMod({ kind: 'relativeBias', table, heads: n.heads, maxDistance: n.maxDistance })
      }
      case 'compose':
        return new ScoreMod({ kind: 'compose', mods: n.mods.map(m => m.shiftHeads(by)) })
      case 'custom': {
        const { fn, grad } = n
        return new ScoreMod({
          kind: 'custom',
          fn: (s, b, h, pq, pk) => fn(s, b, h + by, pq, pk),
          grad: grad && ((s, b, h, pq, pk) => grad(s, b, h + by, pq, pk)),
        })
      }
      default:
        return this
    }
  }

  get compilable(): boolean {
    const n = this.node
    return n.kind === 'custom' ? false : n.kind === 'compose' ? n.mods.every(m => m.compilable) : true
  }

  /** Structural key for WGSL caching: tables and slopes travel as data, not in the key. */
  get key(): string {
    const n = this.node
    switch (n.kind) {
      case 'alibi':
        return 'alibi'
      case 'softcap':
        return 'softcap'
      case 'relativeBias':
        return 'relativeBias'
      case 'compose':
        return `compose(${n.mods.map(m => m.key).join(',')})`
      case 'custom':
        return 'custom'
    }
  }
}

/** ALiBi slopes for `heads` heads (Press et al.): a geometric sequence, interleaved when heads is not a power of 2. */
export function alibiSlopes(heads: number): Float64Array {
  return alibiSlopesOf('alibiSlopes', heads)
}

/** `alibiSlopes` with the caller's op in its error (`scoreMod.alibi(heads)`). */
function alibiSlopesOf(op: string, heads: number): Float64Array {
  headCount(op, heads)
  const pow2 = (n: number): number[] => {
    const start = 2 ** (-(2 ** -(Math.log2(n) - 3)))
    return Array.from({ length: n }, (_, i) => start ** (i + 1))
  }
  if (Number.isInteger(Math.log2(heads))) return Float64Array.from(pow2(heads))
  const closest = 2 ** Math.floor(Math.log2(heads))
  const extra = pow2(2 * closest).filter((_, i) => i % 2 === 0).slice(0, heads - closest)
  return Float64Array.from([...pow2(closest), ...extra])
}

const finitePositive = (op: string, arg: string, v: number): number => {
  if (!(Number.isFinite(v) && v > 0)) throw new ValueError({ op, arg, expected: 'a finite positive number', actual: v })
  return v
}

const RELATIVE_BIAS_KEYS: Record<'heads' | 'maxDistance', true> = { heads: true, maxDistance: true }

export const scoreMod = {
  /** ALiBi: `s − m_h·(pq − pk)`, with the standard slopes for `heads` heads or explicit slopes. */
  alibi: (slopesOrHeads: number | ArrayLike<number>): ScoreMod => {
    if (typeof slopesOrHeads !== 'number' && (slopesOrHeads === null || typeof slopesOrHeads !== 'object' || !Number.isSafeInteger((slopesOrHeads as { length?: unknown }).length)))
      throw new ArgumentError({ op: 'scoreMod.alibi', arg: 'slopesOrHeads', expected: 'a head count or an array of slopes', actual: kindOf(slopesOrHeads) })
    const slopes = typeof slopesOrHeads === 'number' ? alibiSlopesOf('scoreMod.alibi', slopesOrHeads) : Float64Array.from(slopesOrHeads)
    if (slopes.length === 0 || slopes.some(s => !Number.isFinite(s)))
      throw new ValueError({ op: 'scoreMod.alibi', arg: 'slopes', expected: 'finite slopes, one per head', actual: Array.from(slopes) })
    return new ScoreMod({ kind: 'alibi', slopes })
  },
  /** Soft-capping (Gemma 2): `cap·tanh(s/cap)`. */
  softcap: (cap: number): ScoreMod => new ScoreMod({ kind: 'softcap', cap: finitePositive('scoreMod.softcap', 'cap', cap) }),
  /**
   * A relative-position bias table `[heads, 2·maxDistance + 1]` (row-major): `s + table[h, clamp(pk − pq) + maxDistance]`.
   */
  relativeBias: (table: ArrayLike<number>, opts: { readonly heads: number; readonly maxDistance: number }): ScoreMod => {
    if (table === null || typeof table !== 'object' || !Number.isSafeInteger((table as { length?: unknown }).length))
      throw new ArgumentError({ op: 'scoreMod.relativeBias', arg: 'table', expected: 'an array of bias values', actual: kindOf(table) })
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
      throw new ArgumentError({ op: 'scoreMod.relativeBias', arg: 'opts', expected: '{ heads, maxDistance }', actual: kindOf(opts) })
    knownOptions('scoreMod.relativeBias', opts, Object.keys(RELATIVE_BIAS_KEYS))
    const { heads, maxDistance } = opts
    headCount('scoreMod.relativeBias', heads)
    if (!Number.isInteger(maxDistance) || maxDistance < 0)
      throw new ValueError({ op: 'scoreMod.relativeBias', arg: 'maxDistance', expected: 'a non-negative integer', actual: maxDistance })
    if (table.length !== heads * (2 * maxDistance + 1))
      throw new ValueError({ op: 'scoreMod.relativeBias', arg: 'table', expected: `${heads * (2 * maxDistance + 1)} values (heads × (2·maxDistance+1))`, actual: table.length })
    return new ScoreMod({ kind: 'relativeBias', table: Float64Array.from(table), heads, maxDistance })
  },
  /** Apply mods left to right. */
  compose: (...mods: ScoreMod[]): ScoreMod => {
    mods.forEach((m, i) => {
      if (!(m instanceof ScoreMod)) throw new ArgumentError({ op: 'scoreMod.compose', arg: `mod ${i}`, expected: 'a ScoreMod', actual: typeof m })
    })
    return new ScoreMod({ kind: 'compose', mods })
  },
  /** Any function of the score and positions (CPU only; WebGPU rejects it with a clear error). */
  custom: (
    fn: (s: number, b: number, h: number, pq: number, pk: number) => number,
    grad?: (s: number, b: number, h: number, pq: number, pk: number) => number,
  ): ScoreMod => {
    if (typeof fn !== 'function') throw new ArgumentError({ op: 'scoreMod.custom', arg: 'fn', expected: 'a function', actual: typeof fn })
    return new ScoreMod({ kind: 'custom', fn, grad })
  },
}
