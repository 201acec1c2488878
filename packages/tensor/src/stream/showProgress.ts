import { Observable, type MonoTypeOperatorFunction } from 'rxjs'
import { ArgumentError, ValueError } from '../errors.js'
import { knownOptions } from '../validate.js'
import { progressBar, type ProgressOptions } from '../progressBar.js'
import type { StepResult } from './trainStep.js'

export interface ShowProgressOptions extends ProgressOptions {
  /** Metrics shown after the loss when present (default `rewards/accuracies`, `rewards/margins`). */
  readonly show?: readonly string[]
}

const OPTIONS: Record<keyof ShowProgressOptions, true> = { total: true, label: true, stream: true, width: true, logIntervalMs: true, now: true, show: true }

function checkStep(op: string, r: unknown): asserts r is StepResult {
  const s = r as StepResult | null
  if (s === null || typeof s !== 'object' || typeof s.loss !== 'number' || s.metrics === null || typeof s.metrics !== 'object')
    throw new ArgumentError({ op, arg: 'step', expected: 'a StepResult { step, loss, metrics }', actual: s === null ? 'null' : typeof s })
}

function checkShow(op: string, show: unknown): asserts show is readonly string[] {
  if (!Array.isArray(show) || !show.every(k => typeof k === 'string'))
    throw new ArgumentError({ op, arg: 'show', expected: 'an array of metric names', actual: Array.isArray(show) ? 'an array with a non-string' : typeof show })
}

/** The text a step contributes after the bar: the loss, then the chosen metrics that the step carries. */
export function stepInfo(r: StepResult, show: readonly string[]): string {
  checkStep('stepInfo', r)
  checkShow('stepInfo', show)
  return formatStep(r, show)
}

/** `stepInfo` without its checks, for showProgress, which checked `show` once and checks each step itself. */
function formatStep(r: StepResult, show: readonly string[]): string {
  const extra = show.filter(k => r.metrics[k] !== undefined).map(k => `${k.replace('rewards/', '')} ${r.metrics[k]!.toFixed(3)}`)
  return [`loss ${r.loss.toFixed(4)}`, ...extra].join(' ')
}

/**
 * Pass training steps through unchanged while `progressBar` reports them (redrawn on a terminal, whole lines in
 * a log). The bar belongs to the subscription: each subscriber (and each `retry`) gets its own, and it is
 * finished on complete, error or unsubscribe.
 */
export function showProgress(opts: ShowProgressOptions): MonoTypeOperatorFunction<StepResult> {
  const op = 'showProgress'
  // Validate once, at construction, as the other operators do, in this operator's name.
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new ArgumentError({ op, arg: 'opts', expected: 'an options object { total, label?, show?, … }', actual: opts === null ? 'null' : Array.isArray(opts) ? 'an array' : typeof opts })
  knownOptions(op, opts, Object.keys(OPTIONS))
  const show = opts.show ?? ['rewards/accuracies', 'rewards/margins']
  checkShow(op, show)
  try {
    progressBar({ ...opts, stream: false })
  } catch (e) {
    throw e instanceof ValueError && e.op === 'progressBar' ? new ValueError({ op, arg: e.arg ?? 'opts', expected: e.expected, actual: e.actual }) : e
  }
  return source =>
    new Observable<StepResult>(subscriber => {
      const bar = progressBar(opts)
      let seen = 0
      const sub = source.subscribe({
        next: r => {
          if (subscriber.closed) return
          try {
            checkStep(op, r)
            seen++
            bar.tick(1, formatStep(r, show))
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
