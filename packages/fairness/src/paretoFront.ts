/** One (accuracy, gap) result. */
export interface TradeoffPoint {
  readonly accuracy: number
  /** A disparity to minimise (e.g. the DP gap). */
  readonly gap: number
}

/** The non-dominated points (no other point has accuracy ≥ and gap ≤ with one strict), sorted by gap. */
export function paretoFront<P extends TradeoffPoint>(points: readonly P[]): P[] {
  const sorted = [...points].filter(p => Number.isFinite(p.accuracy) && Number.isFinite(p.gap)).sort((a, b) => a.gap - b.gap || b.accuracy - a.accuracy)
  const front: P[] = []
  let best = -Infinity
  for (const p of sorted) if (p.accuracy > best) (front.push(p), (best = p.accuracy))
  return front
}
