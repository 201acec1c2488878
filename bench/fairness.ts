/**
 * `npm run bench -- fairness [--quick]`: the UCI Adult benchmark of @heed/fairness. Trains the unconstrained MLP,
 * reweighing, adversarial debiasing and Distraction (η sweep), prints accuracy against the DP gap beside the
 * paper's figures and writes the trade-off plot to bench/out/fairness.svg (the numbers to fairness.json).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { adultBenchmark, PAPER_ADULT, type AdultBenchmarkResult, type BenchmarkRow } from '@heed/fairness'

const f4 = (x: number): string => x.toFixed(4)

export function table(r: AdultBenchmarkResult): string {
  const line = (m: string, eta: string, ep: string, acc: string, dp: string, soft: string, eo: string) =>
    `| ${m.padEnd(31)} | ${eta.padStart(6)} | ${ep.padStart(5)} | ${acc.padStart(8)} | ${dp.padStart(7)} | ${soft.padStart(7)} | ${eo.padStart(7)} |`
  const out = [line('method (test split)', 'η', 'epoch', 'accuracy', 'DP gap', 'soft DP', 'EO gap'), line('-'.repeat(31), '-----:', '----:', '-------:', '------:', '------:', '------:')]
  const row = (x: BenchmarkRow, label = x.method) => out.push(line(label, x.eta === undefined ? '' : String(x.eta), String(x.epoch), f4(x.accuracy), f4(x.dpGap), f4(x.softDp), f4(x.eoGap)))
  for (const x of r.rows) row(x)
  for (const x of r.front) row(x, `front: ${x.method}`)
  for (const x of r.picks) row(x, `pick (${x.pickedOn} ≤ 0.02): ${x.method}`)
  for (const p of PAPER_ADULT) out.push(line(p.method, '', '', f4(p.accuracy), '', f4(p.softDp), ''))
  return out.join('\n')
}

/** A hand-rolled scatter plot: accuracy (y) against the DP gap (x), ours and the paper's. */
export function svg(r: AdultBenchmarkResult): string {
  const W = 640, H = 420, L = 60, R = 180, T = 30, B = 50
  const pts = [
    ...r.rows.filter(x => !x.method.startsWith('Distraction') && !x.method.startsWith('Lagrangian')).map(x => ({ x: x.dpGap, y: x.accuracy, label: x.method, color: '#1f77b4', shape: 'square' })),
    ...r.distractionEpochs.map(x => ({ x: x.dpGap, y: x.accuracy, label: 'Distraction (η, epoch)', color: '#d62728', shape: 'circle' })),
    ...PAPER_ADULT.map(p => ({ x: p.softDp, y: p.accuracy, label: `${p.method}, soft ΔDP`, color: '#7f7f7f', shape: 'diamond' })),
  ]
  const xmax = Math.max(0.05, ...pts.map(p => p.x)) * 1.05
  const ys = pts.map(p => p.y)
  const ymin = Math.min(...ys) - 0.005, ymax = Math.max(...ys) + 0.005
  const sx = (x: number) => L + ((W - L - R) * x) / xmax
  const sy = (y: number) => T + ((H - T - B) * (ymax - y)) / (ymax - ymin)
  const front = r.front.map(p => `${sx(p.dpGap).toFixed(1)},${sy(p.accuracy).toFixed(1)}`).join(' ')
  const mark = (p: (typeof pts)[number]) => {
    const x = sx(p.x), y = sy(p.y)
    if (p.shape === 'square') return `<rect x="${x - 4}" y="${y - 4}" width="8" height="8" fill="${p.color}"><title>${p.label}</title></rect>`
    if (p.shape === 'diamond') return `<path d="M${x},${y - 5}L${x + 5},${y}L${x},${y + 5}L${x - 5},${y}Z" fill="${p.color}"><title>${p.label}</title></path>`
    return `<circle cx="${x}" cy="${y}" r="3.5" fill="${p.color}" fill-opacity="0.7"><title>${p.label}</title></circle>`
  }
  const ticks = (n: number, lo: number, hi: number) => Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n)
  const legend = [['#1f77b4', 'baselines (ours)'], ['#d62728', 'Distraction (ours)'], ['#7f7f7f', 'paper (soft ΔDP)']]
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${L}" y="18" font-size="13">UCI Adult (sex): test accuracy vs demographic-parity gap</text>
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>
${ticks(5, 0, xmax).map(t => `<text x="${sx(t)}" y="${H - B + 15}" text-anchor="middle">${t.toFixed(3)}</text>`).join('')}
${ticks(5, ymin, ymax).map(t => `<text x="${L - 5}" y="${sy(t) + 4}" text-anchor="end">${t.toFixed(3)}</text>`).join('')}
<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">DP gap (|P(ŷ=1|Female) − P(ŷ=1|Male)|)</text>
<text x="14" y="${(T + H - B) / 2}" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle">accuracy</text>
${front ? `<polyline points="${front}" fill="none" stroke="#d62728" stroke-dasharray="4 3"/>` : ''}
${pts.map(mark).join('\n')}
${legend.map(([c, t], i) => `<rect x="${W - R + 15}" y="${T + 20 * i}" width="10" height="10" fill="${c}"/><text x="${W - R + 30}" y="${T + 9 + 20 * i}">${t}</text>`).join('')}
</svg>
`
}

export async function run(args: readonly string[]): Promise<void> {
  const quick = args.includes('--quick')
  const r = await adultBenchmark(quick ? { maxTrainRows: 4000, maxTestRows: 4000, epochs: 1, warmupEpochs: 1, baselineEpochs: 1, encoderEpochs: 1, etas: [10], writtenEtas: [1000], layerEtas: [100], layerLrs: [3e-3], lagrangianEtas: [30] } : {})
  console.log(`\nUCI Adult, sensitive attribute sex, test split (${r.seconds.toFixed(0)} s)\n`)
  console.log(table(r))
  console.log(`\nfronts (validation accuracy vs validation soft ΔDP over (η, epoch)) and picks (best validation accuracy at a validation gap ≤ 0.02) selected on the ${r.selectedOn} split; test scores shown`)
  mkdirSync(new URL('./out/', import.meta.url), { recursive: true })
  writeFileSync(new URL('./out/fairness.svg', import.meta.url), svg(r))
  // The numbers too, so scripts/results.ts can put them on the results page without rerunning four minutes of training.
  writeFileSync(new URL('./out/fairness.json', import.meta.url), JSON.stringify({ date: new Date().toISOString(), quick, ...r, paper: PAPER_ADULT }, null, 2))
  console.log('\nplot: bench/out/fairness.svg, numbers: bench/out/fairness.json')
}
