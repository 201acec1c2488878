import { ArgumentError, ShapeError, ValueError } from '@heed/tensor'

/** A label or prediction vector: plain numbers or a typed array. */
export type Labels = ArrayLike<number>
/** A group label per row: numbers or strings (any number of distinct groups). */
export type Group = string | number
export type Groups = ArrayLike<Group>

/** @internal */
export function arrayLike(op: string, arg: string, v: unknown): asserts v is ArrayLike<unknown> {
  const ok = Array.isArray(v) || ArrayBuffer.isView(v)
  if (!ok) throw new ArgumentError({ op, arg, expected: 'an array or typed array', actual: v === null ? 'null' : typeof v })
}

/** @internal every vector has the length of the first; returns it. Empty input is rejected. */
export function sameLength(op: string, vectors: readonly (readonly [string, unknown])[]): number {
  let n = -1
  let first = ''
  for (const [arg, v] of vectors) {
    if (v === undefined) continue
    arrayLike(op, arg, v)
    if (n < 0) {
      n = v.length
      first = arg
      if (n === 0) throw new ValueError({ op, arg, expected: 'at least one row', actual: 'an empty array' })
    } else if (v.length !== n) throw new ShapeError({ op, arg, expected: `length ${n} (the length of ${first})`, actual: `length ${v.length}` })
  }
  return n
}

/** @internal finite numbers only (NaN scores are a bug upstream, never a value to average). */
export function finite(op: string, arg: string, v: ArrayLike<unknown>): void {
  for (let i = 0; i < v.length; i++) {
    const x = v[i]
    if (typeof x !== 'number' || !Number.isFinite(x))
      throw new ValueError({ op, arg: `${arg}[${i}]`, expected: 'a finite number', actual: typeof x === 'number' ? x : typeof x })
  }
}

/**
 * @internal labels that must be binary: each equal to `pos` or to one other value. With the default positive label
 * 1 the other value is 0 or −1 (fairlearn: labels from {0, 1} or {−1, 1}); with another `pos` it is any one value.
 */
export function binary(op: string, arg: string, v: Labels, pos: number): Uint8Array {
  finite(op, arg, v)
  const out = new Uint8Array(v.length)
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!
    if (x === pos) out[i] = 1
    else if (pos === 1 && x !== 0 && x !== -1)
      throw new ValueError({ op, arg: `${arg}[${i}]`, expected: 'a binary label: 0 or 1, or −1 or 1 (or name the positive label with posLabel)', actual: x })
  }
  // the negative class is whatever single other value appears
  const others = new Set<number>()
  for (let i = 0; i < v.length; i++) if (v[i] !== pos) others.add(v[i]!)
  if (others.size > 1) throw new ValueError({ op, arg, expected: `binary labels (${pos} and one other value)`, actual: `values ${[...others, pos].join(', ')}` })
  return out
}

/** @internal probabilities in [0, 1]. */
export function probabilities(op: string, arg: string, v: Labels): void {
  finite(op, arg, v)
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!
    if (x < 0 || x > 1) throw new ValueError({ op, arg: `${arg}[${i}]`, expected: 'a probability in [0, 1]', actual: x })
  }
}

/** @internal sample weights: finite, ≥ 0, not all zero. */
export function weights(op: string, v: Labels | undefined, n: number): Float64Array {
  const w = new Float64Array(n)
  if (v === undefined) return w.fill(1)
  finite(op, 'sampleWeight', v)
  let total = 0
  for (let i = 0; i < n; i++) {
    if (v[i]! < 0) throw new ValueError({ op, arg: `sampleWeight[${i}]`, expected: 'a weight ≥ 0', actual: v[i] })
    w[i] = v[i]!
    total += w[i]!
  }
  // every rate would be 0/0: there is nothing to measure
  if (!(total > 0)) throw new ValueError({ op, arg: 'sampleWeight', expected: 'weights that are not all zero', actual: 'all zero' }, 'every rate would be 0/0')
  return w
}

/** @internal the distinct groups in first-seen order, sorted for stable output, and each row's group index. */
export function groupIndex(op: string, arg: string, g: Groups, minGroups = 1): { groups: Group[]; index: Int32Array } {
  const seen = new Map<Group, number>()
  for (let i = 0; i < g.length; i++) {
    const x = g[i]
    if (typeof x === 'number' ? Number.isNaN(x) : typeof x !== 'string')
      throw new ValueError({ op, arg: `${arg}[${i}]`, expected: 'a group label (string or number)', actual: typeof x === 'number' ? x : typeof x })
    if (!seen.has(x!)) seen.set(x!, seen.size)
  }
  const groups = [...seen.keys()].sort((a, b) => (typeof a === typeof b ? (a < b ? -1 : a > b ? 1 : 0) : typeof a === 'number' ? -1 : 1))
  if (groups.length < minGroups)
    throw new ValueError({ op, arg, expected: `at least ${minGroups} distinct groups`, actual: `${groups.length} (${groups.join(', ')})` }, 'a fairness comparison needs several groups')
  const pos = new Map(groups.map((x, i) => [x, i]))
  const index = new Int32Array(g.length)
  for (let i = 0; i < g.length; i++) index[i] = pos.get(g[i]!)!
  return { groups, index }
}
