import { Observable, type MonoTypeOperatorFunction } from 'rxjs'
import { ArgumentError } from '../errors.js'
import { progressBar, type ProgressOptions } from '../progressBar.js'
import type { StepResult } from './trainStep.js'

export interface ShowProgressOptions extends ProgressOptions {
  /** Metrics shown after the loss when present (default `rewards/accuracies`, `rewards/margins`). */
  readonly show?: readonly string[]
}

/** The text a step contributes after the bar: the loss, then the chosen metrics that the step carries. */
export function stepInfo(r: StepResult, show: readonly string[]): string {
  const extra = show.filter(k => r.metrics[k] !== undefined).map(k => `${k.replace('rewards/', '')} ${r.metrics[k]!.toFixed(3)}`)
  return [`loss ${r.loss.toFixed(4)}`, ...extra].join(' ')
}

/**
 * Pass training steps through unchanged while `progressBar` reports them (redrawn on a terminal, whole lines in
 * a log). The bar belongs to the subscription: each subscriber (and each `retry`) gets its own, and it is
 * finished on complete, error or unsubscribe.
 */
export function showProgress(opts: ShowProgressOptions): MonoTypeOperatorFunction<StepResult> {
  const show = opts.show ?? ['rewards/accuracies', 'rewards/margins']
  // Validate once, at construction, as the other operators do.
  progressBar({ ...opts, stream: false })
  return source =>
    new Observable<StepResult>(subscriber => {
      const bar = progressBar(opts)
      let seen = 0
      const sub = source.subscribe({
        next: r => {
          if (subscriber.closed) return
          try {
            if (r === null || typeof r !== 'object' || typeof r.loss !== 'number' || r.metrics === null || typeof r.metrics !== 'object')
              throw new ArgumentError({ op: 'showProgress', arg: 'step', expected: 'a StepResult { step, loss, metrics }', actual: r === null ? 'null' : typeof r })
            seen++
            bar.tick(1, stepInfo(r, show))
          } catch (err) {
            subscriber.error(err)
            return
          }
          subscriber.next(r)
        },
        error: err => {
          if (seen > 0) bar.done()
          subscriber.error(err)
        },
        complete: () => {
          bar.done()
          subscriber.complete()
        },
      })
      return () => {
        sub.unsubscribe()
        if (seen > 0) bar.done()
      }
    })
}
