/** A one-line progress indicator on stderr. */
export interface Progress {
  /** Advance by `n` (default 1); `info` replaces the text after the bar. */
  tick(n?: number, info?: string): void
  /** Finish the line. */
  done(info?: string): void
}

export interface ProgressOptions {
  readonly total: number
  readonly label?: string
  /** Where to write (default process.stderr). Anything with `write(string)` and optionally `isTTY`. */
  readonly stream?: { write(s: string): unknown; readonly isTTY?: boolean }
  /** Bar width in characters (default 24). */
  readonly width?: number
}

/**
 * A tiny dependency-free progress bar: redrawn in place (`\r`) on a terminal; on a pipe or log file only every
 * 25% and at the end, so CI logs stay short.
 */
export function progressBar(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? (globalThis as { process?: { stderr?: ProgressOptions['stream'] } }).process?.stderr
  const total = Math.max(1, opts.total)
  const width = opts.width ?? 24
  const label = opts.label ?? ''
  const tty = stream?.isTTY === true
  const t0 = Date.now()
  let n = 0
  let lastQuarter = -1
  let text = ''
  const line = (): string => {
    const f = Math.min(1, n / total)
    const full = Math.round(f * width)
    const secs = ((Date.now() - t0) / 1000).toFixed(1)
    return `${label} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${n}/${total} ${secs}s ${text}`.trimEnd()
  }
  return {
    tick(k = 1, info) {
      n += k
      if (info !== undefined) text = info
      if (!stream) return
      if (tty) stream.write(`\r\x1b[2K${line()}`)
      else {
        const q = Math.floor((4 * n) / total)
        if (q !== lastQuarter && q < 4) (lastQuarter = q), stream.write(line() + '\n')
      }
    },
    done(info) {
      if (info !== undefined) text = info
      n = Math.max(n, total)
      stream?.write(tty ? `\r\x1b[2K${line()}\n` : line() + '\n')
    },
  }
}
