/**
 * Hand-rolled SVG charts: a line/scatter chart with axes, ticks and a legend. Enough for the tour, the examples
 * and the results page without a plotting dependency, and the output inlines into HTML or Markdown as is.
 */
export interface Series {
  readonly name: string
  readonly points: readonly (readonly [number, number])[]
  /** Draw a polyline through the points (default true), else markers only. */
  readonly line?: boolean
  readonly markers?: boolean
  readonly dashed?: boolean
  readonly color?: string
  /** Write the series name next to its points (default: on for marker-only series of one point). */
  readonly label?: boolean
}

export interface ChartOptions {
  readonly title: string
  readonly xLabel: string
  readonly yLabel: string
  readonly series: readonly Series[]
  readonly width?: number
  readonly height?: number
  readonly logX?: boolean
  readonly logY?: boolean
  /** Force the y range (e.g. to start at 0). */
  readonly yMin?: number
  readonly yMax?: number
  readonly xMin?: number
  readonly xMax?: number
}

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf']

/**
 * One colour per run name for the whole process: the first chart that draws a name picks the next palette colour,
 * and every later chart (the tour's, a bench's) draws that name in the same colour, so a run reads the same
 * across plots.
 */
const assigned = new Map<string, string>()
export function colorOf(name: string): string {
  let c = assigned.get(name)
  if (c === undefined) assigned.set(name, (c = PALETTE[assigned.size % PALETTE.length]!))
  return c
}

/**
 * Vertical positions for labels wanted at `ys` (pixels, any order) so that no two closer than `gap` overlap
 * when their x ranges overlap: greedy, top to bottom, each pushed below the last one it collides with.
 */
export function placeLabels(items: readonly { readonly x: number; readonly y: number; readonly width: number }[], gap = 12): number[] {
  const order = items.map((_, i) => i).sort((a, b) => items[a]!.y - items[b]!.y)
  const out = items.map(it => it.y)
  const placed: number[] = []
  for (const i of order) {
    let y = items[i]!.y
    for (let moved = true; moved; ) {
      moved = false
      for (const j of placed)
        if (Math.abs(out[j]! - y) < gap && items[j]!.x < items[i]!.x + items[i]!.width && items[i]!.x < items[j]!.x + items[j]!.width && out[j]! + gap > y) {
          // Only a move down counts: (a + gap) − a can round below gap, and re-setting the same y looped forever.
          y = out[j]! + gap
          moved = true
        }
    }
    out[i] = y
    placed.push(i)
  }
  return out
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** Compact tick labels: 1.2k, 3 M, 0.004, 1e-7. */
export function fmtTick(v: number): string {
  const a = Math.abs(v)
  if (a === 0) return '0'
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`
  if (Number.isInteger(v)) return String(v)
  if (a >= 0.01) return String(+v.toPrecision(3))
  return v.toExponential(0)
}

function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    // Powers of ten when the range spans a few decades, else 1-2-5 steps so a short range still gets ticks.
    const decades = Math.log10(hi / lo)
    const mantissas = decades > 3 ? [1] : decades > 1 ? [1, 2, 5] : [1, 1.5, 2, 3, 5, 7]
    const out: number[] = []
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
      for (const m of mantissas) if (m * 10 ** e >= lo * 0.999 && m * 10 ** e <= hi * 1.001) out.push(m * 10 ** e)
    return out.length >= 2 ? out : [lo, hi]
  }
  const span = hi - lo || 1
  const step0 = 10 ** Math.floor(Math.log10(span / 5))
  const step = [1, 2, 5, 10].map(m => m * step0).find(s => span / s <= 6) ?? step0 * 10
  const out: number[] = []
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t)
  return out
}

export function chart(o: ChartOptions): string {
  const W = o.width ?? 560
  // The legend goes under the plot, two entries a row, so it never hides a point.
  const legendRows = Math.ceil(o.series.length / 2)
  const H = (o.height ?? 320) + legendRows * 15 + 6
  const L = 64, R = 16, T = 30, B = 44 + legendRows * 15 + 6
  const pts = o.series.flatMap(s => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logX || x > 0) && (!o.logY || y > 0))
  const xs = pts.map(p => p[0])
  const ys = pts.map(p => p[1])
  let x0 = o.xMin ?? Math.min(...xs), x1 = o.xMax ?? Math.max(...xs)
  let y0 = o.yMin ?? Math.min(...ys), y1 = o.yMax ?? Math.max(...ys)
  if (!(x1 > x0)) [x0, x1] = o.logX ? [x0 / 2, x0 * 2] : [x0 - 1, x0 + 1]
  if (!(y1 > y0)) [y0, y1] = o.logY ? [y0 / 2, y0 * 2] : [y0 - 1, y0 + 1]
  // Padding, so that no point sits on an axis or the frame.
  if (o.yMin === undefined && o.yMax === undefined) {
    if (o.logY) [y0, y1] = [y0 / 1.15, y1 * 1.15]
    else [y0, y1] = [y0 - (y1 - y0) * 0.05, y1 + (y1 - y0) * 0.05]
  }
  if (o.xMin === undefined && o.xMax === undefined) {
    if (o.logX) [x0, x1] = [x0 / 1.25, x1 * 1.25]
    else [x0, x1] = [x0 - (x1 - x0) * 0.04, x1 + (x1 - x0) * 0.04]
  }
  const fx = (x: number) => (o.logX ? Math.log10(x) : x)
  const fy = (y: number) => (o.logY ? Math.log10(y) : y)
  const sx = (x: number) => L + ((W - L - R) * (fx(x) - fx(x0))) / (fx(x1) - fx(x0))
  const sy = (y: number) => H - B - ((H - T - B) * (fy(y) - fy(y0))) / (fy(y1) - fy(y0))
  const parts: string[] = [
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${esc(o.title)}</text>`,
  ]
  for (const t of ticks(x0, x1, o.logX ?? false)) {
    const x = sx(t).toFixed(1)
    parts.push(`<line x1="${x}" y1="${T}" x2="${x}" y2="${H - B}" stroke="#eee"/><text x="${x}" y="${H - B + 14}" text-anchor="middle">${fmtTick(t)}</text>`)
  }
  for (const t of ticks(y0, y1, o.logY ?? false)) {
    const y = sy(t).toFixed(1)
    parts.push(`<line x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" stroke="#eee"/><text x="${L - 5}" y="${(+y + 4).toFixed(1)}" text-anchor="end">${fmtTick(t)}</text>`)
  }
  parts.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>`)
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - B + 30}" text-anchor="middle">${esc(o.xLabel)}</text>`)
  parts.push(`<text x="14" y="${(T + H - B) / 2}" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle">${esc(o.yLabel)}</text>`)
  const labels: { x: number; y: number; width: number; text: string; color: string }[] = []
  o.series.forEach(s => {
    const c = s.color ?? colorOf(s.name)
    const ok = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logX || x > 0) && (!o.logY || y > 0))
    const xy = ok.map(([x, y]) => [sx(x).toFixed(1), sy(y).toFixed(1)] as const)
    if (s.line !== false && xy.length > 1)
      parts.push(`<polyline fill="none" stroke="${c}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 4"' : ''} points="${xy.map(p => p.join(',')).join(' ')}"/>`)
    if (s.markers ?? (s.line === false || xy.length <= 12))
      for (const [k, [x, y]] of xy.entries()) parts.push(`<circle cx="${x}" cy="${y}" r="3.5" fill="${c}"><title>${esc(s.name)}: ${fmtTick(ok[k]![0])}, ${fmtTick(ok[k]![1])}</title></circle>`)
    if ((s.label ?? (s.line === false && xy.length === 1)) && xy.length > 0) {
      const [x, y] = xy.at(-1)!
      labels.push({ x: +x + 6, y: +y + 4, width: 6 * s.name.length, text: s.name, color: c })
    }
  })
  // Point labels: moved apart vertically where they would overlap, and kept inside the plot on the right.
  const labelYs = placeLabels(labels)
  labels.forEach((l, i) => {
    const right = l.x + l.width > W - R
    parts.push(`<text x="${(right ? l.x - 12 : l.x).toFixed(1)}" y="${labelYs[i]!.toFixed(1)}" fill="${l.color}"${right ? ' text-anchor="end"' : ''}>${esc(l.text)}</text>`)
  })
  o.series.forEach((s, i) => {
    const c = s.color ?? colorOf(s.name)
    const x = i % 2 === 0 ? L : L + (W - L - R) / 2
    const y = H - B + 46 + Math.floor(i / 2) * 15
    parts.push(`<rect x="${x}" y="${y - 8}" width="9" height="9" fill="${c}"/><text x="${x + 13}" y="${y}">${esc(s.name)}</text>`)
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">${parts.join('')}</svg>\n`
}

/** Horizontal bars, one per row, for comparisons across named things (libraries, methods). */
export function bars(o: { readonly title: string; readonly unit: string; readonly rows: readonly { readonly label: string; readonly value: number; readonly color?: string; readonly note?: string }[]; readonly width?: number }): string {
  const W = o.width ?? 560
  const rowH = 20
  const L = 12 + 6.4 * Math.max(...o.rows.map(r => r.label.length))
  const R = 90
  const T = 30
  const H = T + rowH * o.rows.length + 12
  const max = Math.max(...o.rows.map(r => (Number.isFinite(r.value) ? r.value : 0))) || 1
  const parts = [`<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${esc(o.title)}</text>`]
  o.rows.forEach((r, i) => {
    const y = T + i * rowH
    const w = Number.isFinite(r.value) ? ((W - L - R) * r.value) / max : 0
    parts.push(`<text x="${L - 6}" y="${y + 13}" text-anchor="end">${esc(r.label)}</text>`)
    parts.push(`<rect x="${L}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${r.color ?? PALETTE[0]}"/>`)
    parts.push(`<text x="${(L + w + 4).toFixed(1)}" y="${y + 13}">${Number.isFinite(r.value) ? `${fmtTick(r.value)} ${esc(o.unit)}` : 'n/a'}${r.note ? ` ${esc(r.note)}` : ''}</text>`)
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">${parts.join('')}</svg>\n`
}
