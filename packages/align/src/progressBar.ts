import { Observable, type MonoTypeOperatorFunction } from 'rxjs'
import { ArgumentError, ValueError } from '@heed/tensor'
import type { StepResult } from './trainStep.js'

export interface ProgressBarOptions {
  /** Steps expected in total (for the bar and the ETA). */
  readonly total: number
  /** Where the line goes; default stderr when running under Node, else nowhere. */
  readonly write?: (text: string) => void
  /** Bar width in characters, default 24. */
  readonly width?: number
  /** Metrics shown after the loss, default `rewards/accuracies` and `rewards/margins` when present. */
  readonly show?: readonly string[]
  /** Redraw at most every this many ms (the last step always draws). Default 100. */
  readonly intervalMs?: number
}

const defaultWrite = (): ((s: string) => void) => {
  const proc = (globalThis as { process?: { stderr?: { write?: (s: string) => unknown } } }).process
  const w = proc?.stderr?.write
  return typeof w === 'function' ? s => void w.call(proc!.stderr, s) : () => {}
}

/** Render one progress line (no carriage return). */
export function progressLine(r: StepResult, total: number, width: number, show: readonly string[], elapsedMs: number): string {
  const frac = Math.min(1, r.step / total)
  const filled = Math.round(frac * width)
  const eta = r.step > 0 ? ((elapsedMs / r.step) * (total - r.step)) / 1000 : 0
  const extra = show.filter(k => r.metrics[k] !== undefined).map(k => `${k.replace('rewards/', '')} ${r.metrics[k]!.toFixed(3)}`)
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${r.step}/${total} loss ${r.loss.toFixed(4)}${extra.length > 0 ? ' ' + extra.join(' ') : ''} eta ${eta.toFixed(1)}s`
}

/**
 * Pass training steps through unchanged while drawing a one-line progress bar (`\r`-redrawn) on stderr.
 * No dependency: a terminal line is all a training loop needs, and it stays silent in the browser.
 */
export function progressBar(opts: ProgressBarOptions): MonoTypeOperatorFunction<StepResult> {
  const op = 'progressBar'
  if (opts === null || typeof opts !== 'object') throw new ArgumentError({ op, arg: 'opts', expected: 'an options object', actual: String(opts) })
  if (!Number.isInteger(opts.total) || opts.total < 1) throw new ValueError({ op, arg: 'total', expected: 'a positive integer', actual: String(opts.total) })
  const width = opts.width ?? 24
  if (!Number.isInteger(width) || width < 1) throw new ValueError({ op, arg: 'width', expected: 'a positive integer', actual: String(width) })
  const show = opts.show ?? ['rewards/accuracies', 'rewards/margins']
  const interval = opts.intervalMs ?? 100
  return source =>
    new Observable<StepResult>(subscriber => {
      const write = opts.write ?? defaultWrite()
      const start = Date.now()
      let last = -Infinity
      let drawn = false
      const sub = source.subscribe({
        next: r => {
          const now = Date.now()
          if (now - last >= interval || r.step >= opts.total) {
            last = now
            drawn = true
            write(`\r${progressLine(r, opts.total, width, show, now - start)}`)
          }
          subscriber.next(r)
        },
        error: err => {
          if (drawn) write('\n')
          subscriber.error(err)
        },
        complete: () => {
          if (drawn) write('\n')
          subscriber.complete()
        },
      })
      return () => sub.unsubscribe()
    })
}
