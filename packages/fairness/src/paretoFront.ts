import { ArgumentError } from '@heed/tensor'
import { kindOf } from './validate.js'

/** One (accuracy, gap) result. */
export interface TradeoffPoint {
  readonly accuracy: number
  /** A disparity to minimise (e.g. the DP gap). */
  readonly gap: number
}

/** The non-dominated points (no other point has accuracy ≥ and gap ≤ with one strict), sorted by gap. */
export function paretoFront<P extends TradeoffPoint>(points: readonly P[]): P[] {
  const op = 'paretoFront'
  if (!Array.isArray(points)) throw new ArgumentError({ op, arg: 'points', expected: 'an array of { accuracy, gap } points', actual: kindOf(points) })
  // a NaN score (a failed run) is left off the front; a value that is no point at all is an error
  points.forEach((p: unknown, i) => {
    const q = p as Partial<Record<keyof TradeoffPoint, unknown>> | null
    if (q === null || typeof q !== 'object' || typeof q.accuracy !== 'number' || typeof q.gap !== 'number')
      throw new ArgumentError({ op, arg: `points[${i}]`, expected: 'a { accuracy, gap } point of numbers', actual: kindOf(p) })
  })
  const sorted = [...points].filter(p => Number.isFinite(p.accuracy) && Number.isFinite(p.gap)).sort((a, b) => a.gap - b.gap || b.accuracy - a.accuracy)
  const front: P[] = []
  let best = -Infinity
  for (const p of sorted) if (p.accuracy > best) (front.push(p), (best = p.accuracy))
  return front
}
