import { ArgumentError, ShapeError, ValueError, positiveInt } from '@heed/tensor'
import { arrayLike, kindOf, options } from './validate.js'

/** A binary-label tabular dataset with one sensitive attribute, held on the host (row-major float32 features). */
export interface TabularData {
  /** `[n, d]` features, row-major. */
  readonly x: Float32Array
  readonly n: number
  readonly d: number
  /** Labels 0/1. */
  readonly y: Uint8Array
  /** Group id of each row, 0 … numGroups − 1. */
  readonly groups: Int32Array
  readonly numGroups: number
  readonly featureNames: readonly string[]
  /** Name of each group id. */
  readonly groupNames: readonly string[]
  /** Feature columns that encode the sensitive attribute (dropped from the protected-attribute encoder's input). */
  readonly sensitiveColumns: readonly number[]
}

/** What `tabularData` builds a TabularData from. */
export interface TabularDataOptions {
  /** `n · d` feature values, row-major (row i is `x[i·d … i·d + d)`); stored as float32. */
  readonly x: ArrayLike<number>
  /** Features per row. */
  readonly d: number
  /** `n` binary labels, 0 or 1. */
  readonly y: ArrayLike<number>
  /** `n` group ids of the sensitive attribute, integers from 0. */
  readonly groups: ArrayLike<number>
  /** A name per feature column (default `x0`, `x1`, …). */
  readonly featureNames?: readonly string[]
  /** A name per group id (default the ids as strings). */
  readonly groupNames?: readonly string[]
  /** Feature columns that encode the sensitive attribute (default none). */
  readonly sensitiveColumns?: readonly number[]
}

const KEYS: Record<keyof TabularDataOptions, true> = { x: true, d: true, y: true, groups: true, featureNames: true, groupNames: true, sensitiveColumns: true }
const OPTIONS = Object.keys(KEYS)

/** Build a TabularData from plain arrays, checking lengths, labels and group ids. */
export function tabularData(opts: TabularDataOptions): TabularData {
  const op = 'tabularData'
  if (opts === undefined) throw new ArgumentError({ op, arg: 'opts', expected: '{ x, d, y, groups }', actual: 'undefined' })
  options(op, opts, OPTIONS)
  for (const k of ['x', 'y', 'groups'] as const) arrayLike(op, k, opts[k])
  for (const k of ['featureNames', 'groupNames', 'sensitiveColumns'] as const)
    if (opts[k] !== undefined && !Array.isArray(opts[k])) throw new ArgumentError({ op, arg: k, expected: 'an array', actual: kindOf(opts[k]) })
  const n = opts.y.length
  positiveInt(op, 'd', opts.d)
  if (opts.x.length !== n * opts.d) throw new ShapeError({ op, arg: 'x', expected: `${n}·${opts.d} = ${n * opts.d} values`, actual: opts.x.length })
  if (opts.groups.length !== n) throw new ShapeError({ op, arg: 'groups', expected: `length ${n}`, actual: opts.groups.length })
  const y = new Uint8Array(n)
  const groups = new Int32Array(n)
  let G = 0
  for (let i = 0; i < n; i++) {
    const v = opts.y[i]!
    if (v !== 0 && v !== 1) throw new ValueError({ op, arg: `y[${i}]`, expected: 'a binary label 0 or 1', actual: v })
    y[i] = v
    const g = opts.groups[i]!
    if (!Number.isInteger(g) || g < 0) throw new ValueError({ op, arg: `groups[${i}]`, expected: 'an integer group id ≥ 0', actual: g })
    groups[i] = g
    G = Math.max(G, g + 1)
  }
  const x = Float32Array.from(opts.x)
  for (let i = 0; i < x.length; i++)
    if (!Number.isFinite(x[i]!)) throw new ValueError({ op, arg: `x[${i}]`, expected: 'a finite number', actual: x[i] })
  return {
    x, n, d: opts.d, y, groups, numGroups: G,
    featureNames: opts.featureNames ?? Array.from({ length: opts.d }, (_, j) => `x${j}`),
    groupNames: opts.groupNames ?? Array.from({ length: G }, (_, g) => String(g)),
    sensitiveColumns: opts.sensitiveColumns ?? [],
  }
}

/** @internal rows `idx` of `[n, d]` features (optionally dropping columns) as a new row-major array. */
export function takeRows(x: Float32Array, d: number, idx: ArrayLike<number>, drop: readonly number[] = []): { values: Float32Array; d: number } {
  if (drop.length === 0) {
    const out = new Float32Array(idx.length * d)
    for (let r = 0; r < idx.length; r++) out.set(x.subarray(idx[r]! * d, idx[r]! * d + d), r * d)
    return { values: out, d }
  }
  const dropped = new Set(drop)
  const keep = Array.from({ length: d }, (_, j) => j).filter(j => !dropped.has(j))
  const out = new Float32Array(idx.length * keep.length)
  for (let r = 0; r < idx.length; r++) {
    const base = idx[r]! * d
    for (let j = 0; j < keep.length; j++) out[r * keep.length + j] = x[base + keep[j]!]!
  }
  return { values: out, d: keep.length }
}
