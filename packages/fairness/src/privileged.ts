import { ArgumentError, knownOptions, ValueError } from '@heed/tensor'
import { confusion, type Confusion } from './confusion.js'
import { groupIndex, sameLength, weights, type Group, type Groups, type Labels } from './validate.js'

/** Options of the AIF360-style signed metrics: results are unprivileged − privileged (or their ratio). */
export interface PrivilegedOptions {
  /** One group label per row. */
  readonly sensitiveFeatures: Groups
  /** The privileged group(s); every other group is unprivileged (AIF360's `privileged_groups`). */
  readonly privileged: Group | readonly Group[]
  /** Restrict the unprivileged side to these groups (default: every group not privileged). */
  readonly unprivileged?: Group | readonly Group[]
  /** Per-row weights (default 1 each). */
  readonly sampleWeight?: Labels
  /** The positive label (default 1). */
  readonly posLabel?: number
}

/** @internal confusion counts of the unprivileged and privileged rows. */
export function privilegedSplit(op: string, yTrue: Labels, yPred: Labels, opts: PrivilegedOptions): { u: Confusion; p: Confusion } {
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: '{ sensitiveFeatures, privileged }', actual: String(opts) })
  knownOptions(op, opts, ['sensitiveFeatures', 'privileged', 'unprivileged', 'sampleWeight', 'posLabel'])
  const n = sameLength(op, [['yTrue', yTrue], ['yPred', yPred], ['sensitiveFeatures', opts.sensitiveFeatures], ['sampleWeight', opts.sampleWeight]])
  const { groups } = groupIndex(op, 'sensitiveFeatures', opts.sensitiveFeatures, 2)
  const list = (v: Group | readonly Group[] | undefined): readonly Group[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v as Group])
  const priv = new Set(list(opts.privileged))
  if (opts.privileged === undefined || priv.size === 0) throw new ArgumentError({ op, arg: 'privileged', expected: 'the privileged group label(s)', actual: 'none' })
  for (const g of priv) if (!groups.includes(g)) throw new ValueError({ op, arg: 'privileged', expected: `one of ${groups.join(', ')}`, actual: String(g) })
  const unl = list(opts.unprivileged)
  const unpriv = new Set(unl ?? groups.filter(g => !priv.has(g)))
  for (const g of unpriv) {
    if (!groups.includes(g)) throw new ValueError({ op, arg: 'unprivileged', expected: `one of ${groups.join(', ')}`, actual: String(g) })
    if (priv.has(g)) throw new ValueError({ op, arg: 'unprivileged', expected: 'groups that are not privileged', actual: String(g) })
  }
  if (unpriv.size === 0) throw new ValueError({ op, arg: 'privileged', expected: 'at least one unprivileged group left', actual: 'every group privileged' })
  const w = weights(op, opts.sampleWeight, n)
  const side = (set: Set<Group>): Confusion => {
    const t: number[] = [], p: number[] = [], sw: number[] = []
    for (let i = 0; i < n; i++) if (set.has(opts.sensitiveFeatures[i]!)) (t.push(yTrue[i]!), p.push(yPred[i]!), sw.push(w[i]!))
    return confusion(op, t, p, { sampleWeight: sw, ...(opts.posLabel === undefined ? {} : { posLabel: opts.posLabel }) })
  }
  return { u: side(unpriv), p: side(priv) }
}

export const selection = (c: Confusion): number => (c.tp + c.fp) / (c.tp + c.fp + c.tn + c.fn)
export const tprOf = (c: Confusion): number => (c.tp + c.fn > 0 ? c.tp / (c.tp + c.fn) : Number.NaN)
export const fprOf = (c: Confusion): number => (c.fp + c.tn > 0 ? c.fp / (c.fp + c.tn) : Number.NaN)
