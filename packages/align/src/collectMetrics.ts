import { scan, type OperatorFunction } from 'rxjs'
import { ArgumentError } from '@heed/tensor'
import type { StepResult } from './trainStep.js'

/** Every metric's values in step order, plus `loss`. */
export interface MetricsHistory {
  readonly steps: readonly number[]
  readonly series: Readonly<Record<string, readonly number[]>>
}

/** Accumulate steps into per-metric series (emits the history so far after each step; take `last()` for the end). */
export function collectMetrics(): OperatorFunction<StepResult, MetricsHistory> {
  return scan<StepResult, MetricsHistory>(
    (acc, r) => {
      // scan reports a throw here on the error channel
      if (r === null || typeof r !== 'object' || typeof r.loss !== 'number')
        throw new ArgumentError({ op: 'collectMetrics', arg: 'step', expected: 'a StepResult { step, loss, metrics }', actual: r === null ? 'null' : typeof r })
      const series: Record<string, number[]> = { ...(acc.series as Record<string, number[]>) }
      for (const [k, v] of Object.entries({ loss: r.loss, ...r.metrics })) series[k] = [...(series[k] ?? []), v]
      return { steps: [...acc.steps, r.step], series }
    },
    { steps: [], series: {} },
  )
}
