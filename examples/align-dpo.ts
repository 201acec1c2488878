/**
 * DPO end to end on a tiny token-level language model, with Flex-DPO for comparison.
 *
 * Task: after a one-token prompt s, the preferred continuation counts up (s+1, s+2, … mod V); the dispreferred
 * one repeats s. The reference is an SFT model trained mostly on a third behaviour (steps of two), so both
 * responses are off-policy for it — the setting in which the 3D-properties paper observes the drastic drop of
 * the rejected likelihood. The policy starts as the reference; DPO then trains it against the frozen
 * reference through a preference stream: examples → preferenceBatches → trainStep → showProgress → metrics.
 *
 *   node --conditions=@heed/source --import tsx examples/align-dpo.ts [--steps 150] [--svg PATH]
 *   (or `npm run example -- align-dpo`); writes out/align-dpo/align-dpo.svg and metrics.json.
 */
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { from, lastValueFrom, last } from 'rxjs'
import { adam, sgd, dispose, gather, keep, matmul, memory, noGrad, random, scope, sum, tanh, add, tensor, valueAndGrad, mean, neg, type Tensor } from '@heed/tensor'
import { dpoLoss, flexDpoLoss, tokenLogps } from '@heed/align'
import { collectMetrics, preferenceBatches, showProgress, trainStep, type MetricsHistory } from '@heed/align/stream'
import { outDir, writeOutput } from './lib/out.js'

const V = 8 // vocabulary
const T = 5 // response tokens
const D = 16 // embedding width
const H = 32 // hidden width

type Params = { emb: Tensor; w1: Tensor; b1: Tensor; w2: Tensor }
interface Pair {
  readonly prompt: number
  readonly chosen: number[]
  readonly rejected: number[]
}

const counting = (s: number): number[] => Array.from({ length: T }, (_, i) => (s + i + 1) % V)
const repeating = (s: number): number[] => Array.from({ length: T }, () => s)
const stepTwo = (s: number): number[] => Array.from({ length: T }, (_, i) => (s + 2 * (i + 1)) % V)

function initParams(seed: number): Params {
  const r = random.rng(seed)
  return {
    emb: random.normal([V, D], { rng: r, std: 0.5 }),
    w1: random.normal([D, H], { rng: r, std: 1 / Math.sqrt(D) }),
    b1: tensor(new Array(H).fill(0), [H]),
    w2: random.normal([H, V], { rng: r, std: 1 / Math.sqrt(H) }),
  }
}

/** Summed log-probs `[N]` of responses `[N, T]` after prompts `[N]` (teacher forcing). */
function sequenceLogps(p: Params, prompts: number[], responses: number[][]): Tensor {
  return scope(() => {
    const inputs = tensor(prompts.flatMap((s, n) => [s, ...responses[n]!.slice(0, T - 1)]), [prompts.length, T], 'int32')
    const labels = tensor(responses.flat(), [prompts.length, T], 'int32')
    const h = tanh(add(matmul(gather(p.emb, inputs), p.w1), p.b1))
    return sum(tokenLogps(matmul(h, p.w2), labels), { axis: -1 })
  })
}

/** The reference: a few SFT steps on a mixture dominated by the step-of-two behaviour. */
function trainReference(steps: number, seed: number): Params {
  let params = initParams(seed)
  const opt = adam({ lr: 0.05 })
  let state = opt.init(params)
  const prompts = Array.from({ length: V }, (_, s) => s)
  const mix = [...prompts.map(stepTwo), ...prompts.map(stepTwo), ...prompts.map(stepTwo), ...prompts.map(counting), ...prompts.map(repeating)]
  const mixPrompts = [...prompts, ...prompts, ...prompts, ...prompts, ...prompts]
  const vg = valueAndGrad((p: Params) => neg(mean(sequenceLogps(p, mixPrompts, mix))))
  for (let i = 0; i < steps; i++) {
    const [loss, grads] = vg(params)
    ;[params, state] = opt.step(grads, state, params)
    dispose([loss, grads])
  }
  dispose(state)
  return params
}

export interface RunOptions {
  readonly steps?: number
  readonly batchSize?: number
  readonly referenceSteps?: number
  readonly lr?: number
  readonly betaRejected?: number
  /** Plain SGD lets β⁻ scale the rejected gradient directly (Adam normalises gradient scale away). Default sgd. */
  readonly optimizer?: 'sgd' | 'adam'
  readonly quiet?: boolean
}

export interface RunResult {
  readonly dpo: MetricsHistory
  readonly flex: MetricsHistory
}

function pairsStream(steps: number, batchSize: number, seed: number): Pair[] {
  const r = random.rng(seed)
  return Array.from({ length: steps * batchSize }, () => {
    const s = r.int(0, V)
    return { prompt: s, chosen: counting(s), rejected: repeating(s) }
  })
}

async function train(reference: Params, kind: 'dpo' | 'flex', o: Required<RunOptions>): Promise<MetricsHistory> {
  const loss = (p: Params, batch: readonly Pair[]) => {
    const prompts = batch.map(b => b.prompt)
    const chosenLogps = sequenceLogps(p, prompts, batch.map(b => b.chosen))
    const rejectedLogps = sequenceLogps(p, prompts, batch.map(b => b.rejected))
    const [refChosenLogps, refRejectedLogps] = noGrad(() => [sequenceLogps(reference, prompts, batch.map(b => b.chosen)), sequenceLogps(reference, prompts, batch.map(b => b.rejected))])
    const b = { chosenLogps, rejectedLogps, refChosenLogps: refChosenLogps!, refRejectedLogps: refRejectedLogps! }
    return kind === 'dpo' ? dpoLoss(b, { beta: 0.1 }) : flexDpoLoss(b, { betaChosen: 0.1, betaRejected: o.betaRejected })
  }
  const history = from(pairsStream(o.steps, o.batchSize, 7)).pipe(
    preferenceBatches({ size: o.batchSize, collate: (xs: readonly Pair[]) => xs }),
    trainStep({ params: reference, optimizer: o.optimizer === 'adam' ? adam({ lr: o.lr }) : sgd({ lr: o.lr, momentum: 0.9 }), loss }),
    showProgress({ total: o.steps, ...(o.quiet ? { stream: false as const } : {}) }),
    collectMetrics(),
    last(),
  )
  return lastValueFrom(history)
}

export async function run(opts: RunOptions = {}): Promise<RunResult> {
  const o: Required<RunOptions> = {
    steps: opts.steps ?? 150,
    batchSize: opts.batchSize ?? 16,
    referenceSteps: opts.referenceSteps ?? 60,
    lr: opts.lr ?? 0.2,
    betaRejected: opts.betaRejected ?? 0.05,
    optimizer: opts.optimizer ?? 'sgd',
    quiet: opts.quiet ?? false,
  }
  const reference = keep(trainReference(o.referenceSteps, 1))
  try {
    const dpo = await train(reference, 'dpo', o)
    const flex = await train(reference, 'flex', o)
    return { dpo, flex }
  } finally {
    dispose(reference)
  }
}

// ---- plotting: an ASCII chart for the terminal and a minimal SVG line chart ----

export function asciiChart(series: Readonly<Record<string, readonly number[]>>, opts: { width?: number; height?: number; title?: string } = {}): string {
  const width = opts.width ?? 64
  const height = opts.height ?? 14
  const names = Object.keys(series)
  const marks = ['*', 'o', '+', 'x', '#', '@']
  const all = names.flatMap(n => series[n]!)
  const lo = Math.min(...all)
  const hi = Math.max(...all)
  const span = hi - lo || 1
  const grid = Array.from({ length: height }, () => new Array<string>(width).fill(' '))
  names.forEach((n, k) => {
    const ys = series[n]!
    for (let x = 0; x < width; x++) {
      const i = Math.round((x / (width - 1)) * (ys.length - 1))
      const row = height - 1 - Math.round(((ys[i]! - lo) / span) * (height - 1))
      grid[row]![x] = marks[k % marks.length]!
    }
  })
  const label = (v: number) => v.toFixed(2).padStart(8)
  const lines = grid.map((r, i) => `${i === 0 ? label(hi) : i === height - 1 ? label(lo) : ' '.repeat(8)} |${r.join('')}`)
  const legend = names.map((n, k) => `${marks[k % marks.length]} ${n}`).join('   ')
  return [opts.title ?? '', ...lines, `${' '.repeat(9)}+${'-'.repeat(width)}`, `${' '.repeat(10)}step →   ${legend}`].join('\n')
}

export function svgChart(panels: readonly { title: string; series: Readonly<Record<string, readonly number[]>> }[]): string {
  const w = 420
  const h = 260
  const pad = 40
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b']
  const parts: string[] = []
  panels.forEach((p, k) => {
    const ox = k * w
    const names = Object.keys(p.series)
    const all = names.flatMap(n => p.series[n]!)
    const lo = Math.min(...all)
    const hi = Math.max(...all)
    const span = hi - lo || 1
    const sx = (i: number, n: number) => ox + pad + (i / Math.max(n - 1, 1)) * (w - 2 * pad)
    const sy = (v: number) => h - pad - ((v - lo) / span) * (h - 2 * pad)
    parts.push(`<text x="${ox + w / 2}" y="20" text-anchor="middle" font-size="14">${p.title}</text>`)
    parts.push(`<line x1="${ox + pad}" y1="${h - pad}" x2="${ox + w - pad}" y2="${h - pad}" stroke="#888"/><line x1="${ox + pad}" y1="${pad}" x2="${ox + pad}" y2="${h - pad}" stroke="#888"/>`)
    parts.push(`<text x="${ox + pad - 4}" y="${pad + 4}" text-anchor="end" font-size="10">${hi.toFixed(1)}</text><text x="${ox + pad - 4}" y="${h - pad}" text-anchor="end" font-size="10">${lo.toFixed(1)}</text>`)
    names.forEach((n, j) => {
      const ys = p.series[n]!
      const pts = ys.map((v, i) => `${sx(i, ys.length).toFixed(1)},${sy(v).toFixed(1)}`).join(' ')
      parts.push(`<polyline fill="none" stroke="${colors[j % colors.length]}" stroke-width="1.5" points="${pts}"/>`)
      parts.push(`<text x="${ox + pad + 8}" y="${pad + 14 * (j + 1)}" font-size="11" fill="${colors[j % colors.length]}">${n}</text>`)
    })
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w * panels.length}" height="${h}" font-family="sans-serif">${parts.join('')}</svg>\n`
}

export function report(r: RunResult): string {
  const f = (h: MetricsHistory, k: string) => h.series[k]!
  const first = (xs: readonly number[]) => xs[0]!
  const final = (xs: readonly number[]) => xs[xs.length - 1]!
  const line = (name: string, h: MetricsHistory) =>
    `${name}: loss ${first(f(h, 'loss')).toFixed(4)} → ${final(f(h, 'loss')).toFixed(4)}, accuracy ${first(f(h, 'rewards/accuracies')).toFixed(2)} → ${final(f(h, 'rewards/accuracies')).toFixed(2)}, ` +
    `logp(chosen) ${first(f(h, 'logps/chosen')).toFixed(2)} → ${final(f(h, 'logps/chosen')).toFixed(2)}, logp(rejected) ${first(f(h, 'logps/rejected')).toFixed(2)} → ${final(f(h, 'logps/rejected')).toFixed(2)}`
  return [
    line('DPO      (β=0.1)', r.dpo),
    line('Flex-DPO (β⁺=0.1, β⁻=0.05)', r.flex),
    asciiChart({ 'DPO loss': f(r.dpo, 'loss'), 'Flex loss': f(r.flex, 'loss') }, { title: 'loss (ln 2 at step 1)' }),
    asciiChart(
      { 'DPO chosen': f(r.dpo, 'logps/chosen'), 'DPO rejected': f(r.dpo, 'logps/rejected'), 'Flex chosen': f(r.flex, 'logps/chosen'), 'Flex rejected': f(r.flex, 'logps/rejected') },
      { title: 'sequence log-probs: the rejected likelihood drops drastically under DPO' },
    ),
  ].join('\n\n')
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const arg = (name: string): string | undefined => {
    const i = args.indexOf(name)
    return i >= 0 ? args[i + 1] : undefined
  }
  const steps = Number(arg('--steps') ?? 150)
  const dir = outDir('align-dpo')
  const svg = arg('--svg') ?? join(dir, 'align-dpo.svg')
  const t0 = Date.now()
  const r = await run({ steps })
  console.log(report(r))
  const shownSvg = writeOutput(
    svg,
    svgChart([
      { title: 'loss', series: { DPO: r.dpo.series['loss']!, 'Flex-DPO': r.flex.series['loss']! } },
      { title: 'reward accuracy', series: { DPO: r.dpo.series['rewards/accuracies']!, 'Flex-DPO': r.flex.series['rewards/accuracies']! } },
      {
        title: 'log-probs of chosen / rejected',
        series: {
          'DPO chosen': r.dpo.series['logps/chosen']!,
          'DPO rejected': r.dpo.series['logps/rejected']!,
          'Flex chosen': r.flex.series['logps/chosen']!,
          'Flex rejected': r.flex.series['logps/rejected']!,
        },
      },
    ]),
  )
  const metrics = writeOutput(join(dir, 'metrics.json'), JSON.stringify({ steps, dpo: r.dpo.series, flex: r.flex.series }))
  console.log(`\nwrote ${shownSvg} and ${metrics}; ${((Date.now() - t0) / 1000).toFixed(1)} s; live tensors ${memory().tensors}`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
