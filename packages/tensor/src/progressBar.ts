import { ValueError } from './errors.js'

/** A one-line progress indicator. */
export interface Progress {
  /** Advance by `n` (default 1); `info` replaces the text after the bar. */
  tick(n?: number, info?: string): void
  /** Finish the line (idempotent). */
  done(info?: string): void
}

/** Anything with `write(string)`; `isTTY` says whether lines may be redrawn in place. */
export interface ProgressStream {
  write(s: string): unknown
  readonly isTTY?: boolean
}

export interface ProgressOptions {
  /** Units of work expected in total (steps, batches, examples). */
  readonly total: number
  /** Text before the bar. */
  readonly label?: string
  /**
   * Where to write. Default: stderr under Node, nowhere elsewhere (a browser page shows its own progress).
   * `false` for silence.
   */
  readonly stream?: ProgressStream | false
  /** Bar width in characters (default 24). */
  readonly width?: number
  /**
   * On a stream that is not a terminal (a log file, a CI pipe), a line is written at most this often, and at
   * every tenth of the total, and at the end. Default 10 000 ms. On a terminal the line is redrawn at most every
   * 100 ms.
   */
  readonly logIntervalMs?: number
  /** Clock in ms (tests inject one). Default `Date.now`. */
  readonly now?: () => number
}

const defaultStream = (): ProgressStream | undefined => (globalThis as { process?: { stderr?: ProgressStream } }).process?.stderr

const clock = (s: number): string => {
  if (!Number.isFinite(s)) return '?'
  const m = Math.floor(s / 60)
  return m > 0 ? `${m}m${String(Math.round(s - 60 * m)).padStart(2, '0')}s` : `${s.toFixed(1)}s`
}

/**
 * The one progress facility of heed's training loops (the LM trainer, `@heed/align`, `@heed/fairness`): on a
 * terminal one line redrawn in place (`\r`); on anything else — a log file, a pipe, CI — whole lines, so a log
 * shows progress as it happens instead of a bar frozen at its first frame. Each line carries the count, the
 * elapsed time and an estimate of the time left.
 */
export function progressBar(opts: ProgressOptions): Progress {
  const op = 'progressBar'
  if (opts === null || typeof opts !== 'object') throw new ValueError({ op, arg: 'opts', expected: 'an options object', actual: String(opts) })
  if (!(Number.isInteger(opts.total) && opts.total >= 1)) throw new ValueError({ op, arg: 'total', expected: 'a positive integer', actual: opts.total })
  const width = opts.width ?? 24
  if (!(Number.isInteger(width) && width >= 1)) throw new ValueError({ op, arg: 'width', expected: 'a positive integer', actual: width })
  const logInterval = opts.logIntervalMs ?? 10_000
  if (!(logInterval >= 0)) throw new ValueError({ op, arg: 'logIntervalMs', expected: 'a non-negative number', actual: logInterval })
  const stream = opts.stream === false ? undefined : (opts.stream ?? defaultStream())
  const now = opts.now ?? Date.now
  const total = opts.total
  const label = opts.label === undefined || opts.label === '' ? '' : `${opts.label} `
  const tty = stream?.isTTY === true
  const t0 = now()
  let n = 0
  let text = ''
  let lastWrite = -Infinity
  let lastTenth = -1
  let finished = false
  let lastLine = ''

  const line = (): string => {
    const f = Math.min(1, n / total)
    const full = Math.round(f * width)
    const secs = (now() - t0) / 1000
    const eta = n > 0 && n < total ? ` eta ${clock((secs / n) * (total - n))}` : ''
    return `${label}[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${n}/${total} ${clock(secs)}${eta} ${text}`.trimEnd()
  }
  return {
    tick(k = 1, info) {
      if (finished) return
      n += k
      if (info !== undefined) text = info
      if (stream === undefined) return
      const t = now()
      if (tty) {
        if (t - lastWrite >= 100 || n >= total) (lastWrite = t), stream.write(`\r\x1b[2K${line()}`)
        return
      }
      const tenth = Math.floor((10 * n) / total)
      if (t - lastWrite >= logInterval || tenth !== lastTenth) {
        lastWrite = t
        lastTenth = tenth
        stream.write((lastLine = line()) + '\n')
      }
    },
    done(info) {
      if (finished) return
      finished = true
      if (info !== undefined) text = info
      if (stream === undefined) return
      if (tty) stream.write(`\r\x1b[2K${line()}\n`)
      else if (line() !== lastLine) stream.write(line() + '\n')
    },
  }
}
