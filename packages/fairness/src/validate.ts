import { ArgumentError, ShapeError, ValueError, isTensor, knownOptions, positiveInt, requireTensor, type Tensor } from '@heed/tensor'

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

/** @internal how a bad argument reads in an error: null, an array, a Tensor or its typeof. */
export const kindOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : isTensor(v) ? 'a Tensor' : typeof v)

/** @internal `opts` (`undefined` reads as `{}`) must be a plain options object with only `allowed` keys. */
export function options<T>(op: string, opts: T | undefined, allowed: readonly string[], arg = 'opts'): T {
  if (opts === undefined) return {} as T
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts) || isTensor(opts)) throw new ArgumentError({ op, arg, expected: 'an options object', actual: kindOf(opts) })
  return knownOptions(op, opts, allowed)
}

/** @internal a live tensor argument: a plain array, null or a disposed tensor is named in the caller's op. */
export function liveTensor(op: string, arg: string, v: unknown): Tensor {
  return requireTensor(op, arg, v as Tensor)
}

/** @internal a dense layer `{ w, b }` of live tensors. */
export function denseLayer(op: string, arg: string, l: unknown): void {
  if (l === null || typeof l !== 'object' || isTensor(l) || Array.isArray(l)) throw new ArgumentError({ op, arg, expected: 'a dense layer { w, b }', actual: kindOf(l) })
  liveTensor(op, `${arg}.w`, (l as { w?: unknown }).w)
  liveTensor(op, `${arg}.b`, (l as { b?: unknown }).b)
}

/** @internal a non-empty array of dense layers. */
export function denseLayers(op: string, arg: string, ls: unknown, min = 1): void {
  if (!Array.isArray(ls) || ls.length < min) throw new ArgumentError({ op, arg, expected: `an array of at least ${min} dense layers { w, b }`, actual: Array.isArray(ls) ? `${ls.length} layers` : kindOf(ls) })
  ls.forEach((l, i) => denseLayer(op, `${arg}[${i}]`, l))
}

// The fields of a TabularData these checks read, spelt out: importing the type from tabularData.ts would close an
// import cycle (tabularData.ts uses these helpers).
type TabularFields = Partial<Record<'x' | 'n' | 'd' | 'y' | 'groups' | 'numGroups' | 'sensitiveColumns', unknown>>

const isData = (op: string, arg: string, data: unknown): void => {
  if (data === null || typeof data !== 'object' || Array.isArray(data) || isTensor(data))
    throw new ArgumentError({ op, arg, expected: 'a TabularData (tabularData, encodeAdult)', actual: kindOf(data) })
}
const vector = (op: string, arg: string, v: unknown): ArrayLike<number> => {
  if (!ArrayBuffer.isView(v) && !Array.isArray(v)) throw new ArgumentError({ op, arg, expected: 'an array or typed array (a TabularData from tabularData)', actual: kindOf(v) })
  return v as unknown as ArrayLike<number>
}

/**
 * @internal the rows of a TabularData that reweighing reads: at least one row, labels 0/1 and group ids below
 * numGroups, lengths consistent. One pass over the rows.
 */
export function tabularLabels(op: string, data: unknown, arg = 'data'): void {
  isData(op, arg, data)
  const t = data as TabularFields
  const y = vector(op, `${arg}.y`, t.y)
  const g = vector(op, `${arg}.groups`, t.groups)
  const n = positiveInt(op, `${arg}.n`, t.n)
  const G = positiveInt(op, `${arg}.numGroups`, t.numGroups)
  for (const [k, v] of [['y', y], ['groups', g]] as const) if (v.length !== n) throw new ShapeError({ op, arg: `${arg}.${k}`, expected: `length n = ${n}`, actual: v.length })
  for (let i = 0; i < n; i++) {
    if (y[i] !== 0 && y[i] !== 1) throw new ValueError({ op, arg: `${arg}.y[${i}]`, expected: 'a binary label 0 or 1', actual: y[i] })
    if (!(Number.isInteger(g[i]) && g[i]! >= 0 && g[i]! < G)) throw new ValueError({ op, arg: `${arg}.groups[${i}]`, expected: `a group id in [0, ${G})`, actual: g[i] })
  }
}

/** @internal a whole TabularData (tabularData, encodeAdult), checked before anything is trained on it. */
export function tabular(op: string, data: unknown, arg = 'data'): void {
  tabularLabels(op, data, arg)
  const t = data as TabularFields
  const x = vector(op, `${arg}.x`, t.x)
  const d = positiveInt(op, `${arg}.d`, t.d)
  if (x.length !== (t.n as number) * d) throw new ShapeError({ op, arg: `${arg}.x`, expected: `n·d = ${(t.n as number) * d} values`, actual: x.length })
  if (!Array.isArray(t.sensitiveColumns)) throw new ArgumentError({ op, arg: `${arg}.sensitiveColumns`, expected: 'an array of column indices', actual: kindOf(t.sensitiveColumns) })
}

/** @internal a protected-attribute encoder (trainProtectedAttributeEncoder, makeEncoder). */
export function encoderArg(op: string, enc: unknown, arg = 'encoder'): void {
  const e = enc as { embed?: unknown; embeddingDim?: unknown } | null
  if (e === null || typeof e !== 'object' || Array.isArray(e) || isTensor(e) || typeof e.embed !== 'function')
    throw new ArgumentError({ op, arg, expected: 'a ProtectedAttributeEncoder (trainProtectedAttributeEncoder, makeEncoder)', actual: kindOf(enc) })
  positiveInt(op, `${arg}.embeddingDim`, e.embeddingDim)
}

/** @internal the options every trainer shares: a dropout rate, an integer seed, callbacks that are functions. */
export function trainerOptions(op: string, opts: { readonly dropout?: unknown; readonly seed?: unknown; readonly onEpoch?: unknown; readonly progress?: unknown }): void {
  if (opts.dropout !== undefined && !(typeof opts.dropout === 'number' && opts.dropout >= 0 && opts.dropout < 1)) throw new ValueError({ op, arg: 'dropout', expected: 'a rate in [0, 1)', actual: typeof opts.dropout === 'number' ? opts.dropout : kindOf(opts.dropout) })
  if (opts.seed !== undefined && !Number.isInteger(opts.seed)) throw new ValueError({ op, arg: 'seed', expected: 'an integer seed', actual: typeof opts.seed === 'number' ? opts.seed : kindOf(opts.seed) })
  if (opts.onEpoch !== undefined && typeof opts.onEpoch !== 'function') throw new ArgumentError({ op, arg: 'onEpoch', expected: 'a function', actual: kindOf(opts.onEpoch) })
  const p = opts.progress as { tick?: unknown } | undefined
  if (p !== undefined && (p === null || typeof p.tick !== 'function')) throw new ArgumentError({ op, arg: 'progress', expected: 'a Progress (progressBar)', actual: kindOf(p) })
}
