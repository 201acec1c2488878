/**
 * One redrawn status line on stderr, so stdout stays a clean table that tests and pipes can read. On a terminal
 * the line is rewritten in place; elsewhere (CI logs, tests) every update would be a new line, so the stage
 * starts, a line at every quarter of a stage (or every 10 s) and the final line are written there.
 */
export interface Progress {
  /** Start a stage of `total` steps (0: no bar, just the label). */
  stage(label: string, total?: number): void
  /** Advance the current stage by `n` steps, with an optional note. */
  tick(n?: number, note?: string): void
  /** End the line. */
  done(note?: string): void
}

export function progress(opts: { readonly write?: (s: string) => void; readonly tty?: boolean; readonly width?: number } = {}): Progress {
  const write = opts.write ?? ((s: string) => void process.stderr.write(s))
  const tty = opts.tty ?? process.stderr.isTTY === true
  const width = opts.width ?? 24
  const t0 = performance.now()
  let label = ''
  let total = 0
  let count = 0
  let last = 0
  const elapsed = (): string => `${((performance.now() - t0) / 1000).toFixed(0)} s`
  const line = (note = ''): string => {
    const bar = total > 0 ? ` [${'#'.repeat(Math.round((width * Math.min(count, total)) / total)).padEnd(width, '.')}] ${count}/${total}` : ''
    return `${elapsed().padStart(5)}  ${label}${bar}${note ? `  ${note}` : ''}`
  }
  return {
    stage(l, t = 0) {
      label = l
      total = t
      count = 0
      write(tty ? `\r\x1b[K${line()}` : `${line()}\n`)
    },
    tick(n = 1, note) {
      count += n
      const now = performance.now()
      // Redraws are cheap but not free; ten a second is smooth enough.
      if (tty && (now - last > 100 || count >= total)) {
        last = now
        write(`\r\x1b[K${line(note)}`)
      } else if (!tty && total > 0) {
        // A log gets a whole line at every quarter of a stage (or every 10 s), so it shows progress as it happens.
        const quarter = Math.floor((4 * count) / total)
        if (quarter !== Math.floor((4 * (count - n)) / total) || now - last > 10_000) {
          last = now
          write(`${line(note)}\n`)
        }
      }
    },
    done(note) {
      write(tty ? `\r\x1b[K${line(note)}\n` : `${elapsed().padStart(5)}  done${note ? `  ${note}` : ''}\n`)
    },
  }
}
