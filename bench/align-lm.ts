/**
 * `npm run bench -- align-lm` (issue 17): DPO and its family fine-tune the shipped KJV character model
 * (packages/attention/models/kjv-char.safetensors) on preference pairs made from the corpus, as a TRL user would:
 * `kjvPreferencePairs` → `preferenceDataset` (the frozen shipped model's log-probs, once) → `preferenceBatches` →
 * `trainStep` (the shared training-step operator) → `collectMetrics`, with TRL's metrics.
 *
 * Data: training pairs from the training books (Genesis–Malachi), held-out pairs from the validation books
 * (Romans–Revelation), half continuation pairs (true continuation vs the same words shuffled) and half style pairs
 * (a continuation window containing the target word "God" vs one without it; see `kjvPreferencePairs`).
 *
 * Every method gets the same budget: the same pairs in the same order, the same steps, batch, Adam learning rate
 * and clipping (global norm 1, TRL's default), starting from the shipped model. Hyper-parameters are the methods'
 * usual ones (TRL defaults where they exist): DPO, hinge, robust (ε 0.1), KTO, ORPO β 0.1; IPO β 0.5 (τ = 1/(2β) = 1
 * nat per character, since heed's IPO is length-normalised); SimPO β 2, γ 1 (the SimPO paper's range); Flex-DPO
 * β⁺ 0.1, β⁻ 0.08 (the 3D-properties paper's best pair); DPO + SFT: sigmoid + 1·NLL(chosen) (RPO's α 1).
 *
 * Reported per run, on the held-out pairs: reward accuracy (DPO's implicit reward, log π − log π_ref, strictly
 * higher on chosen; the same definition for every method so that the rows compare) for each task, the mean reward
 * margin in nats, the mean summed log-prob of chosen and rejected completions against the reference (likelihood
 * displacement), the KL(π ‖ π_ref) per character of the next-character distributions along the held-out chosen
 * continuations, validation bits per character on plain held-out text (the first `bpcTokens` characters of
 * Romans–Revelation) and the rate at which sampled continuations of held-out style prompts contain the target word
 * (temperature 0.8, one seed per prompt), with samples.
 *
 * Each run's result is cached in `<out>/align-lm/<method>.json` with the settings it ran under, so an interrupted
 * bench resumes with the runs it has not finished; `--fresh` ignores the cache, `--methods=dpo,ipo` picks runs,
 * `--steps=N`, `--lr=X` and `--seed=N` (which pairs are drawn) change the run, `--quick` runs a tiny random model
 * for the tests. Writes align-lm.json, align-lm.md and align-lm-*.svg under --out (default bench/out). Timings are
 * reported, never asserted.
 *
 * Measured (2026-12-07, `npm run bench -- align-lm`, 2× AMD EPYC shared with other jobs, 22 minutes for the nine runs;
 * bench/out/align-lm.md): DPO ranks 81 % / 84 % of held-out continuation / style pairs right while the held-out chosen
 * log-prob falls by 3.7 nats (rejected by 6.6) and validation rises from 2.437 to 2.666 bits/char; Flex-DPO's chosen
 * drop is −1.6 nats (2.557 bits/char), DPO + SFT's −0.1 (2.483 bits/char); "God" appears in 25 % of DPO's samples from
 * held-out prompts, 0 % of the reference's.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { from, lastValueFrom, last, toArray } from 'rxjs'
import { adam, dispose, exp, keep, logSoftmax, mul, noGrad, scope, slice, sub, sum, type Tensor } from '@heed/tensor'
import { charTokenizer, KJV_ALPHABET, kjvSplit, loadKjv, loadKjvModel, transformerLM, validationLoss, type TransformerLM, type TransformerLMParams } from '@heed/attention'
import { generateText } from '@heed/attention/stream'
import {
  collatePreferences,
  cpoLoss,
  dpoLoss,
  flexDpoLoss,
  kjvPreferencePairs,
  ktoLoss,
  lmKtoBatch,
  lmPreferenceLogps,
  logpsFromTokens,
  orpoLoss,
  preferenceDataset,
  tokenLogps,
  type LanguageModel,
  type LmPreferenceBatch,
  type PreferenceExample,
  type PreferenceLogps,
  type TextPreferencePair,
} from '@heed/align'
import { collectMetrics, preferenceBatches, trainStep, type TrainLoss } from '@heed/align/stream'
import { chart, PALETTE } from '../examples/lib/plot.js'
import { machineInfo, machineLine, type MachineInfo } from './machine.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

export interface AlignLmSettings {
  readonly preset: 'full' | 'quick'
  readonly steps: number
  readonly batch: number
  readonly trainPairs: number
  readonly heldOutPairs: number
  readonly promptLength: number
  readonly completionLength: number
  readonly lr: number
  readonly clipNorm: number
  readonly evalEvery: number
  readonly bpcTokens: number
  readonly samples: number
  readonly sampleTokens: number
  readonly targetWord: string
  readonly seed: number
}

export const FULL: AlignLmSettings = {
  preset: 'full',
  steps: 60,
  batch: 8,
  trainPairs: 480,
  heldOutPairs: 64,
  promptLength: 32,
  completionLength: 24,
  lr: 5e-5,
  clipNorm: 1,
  evalEvery: 15,
  bpcTokens: 8192,
  samples: 16,
  sampleTokens: 24,
  targetWord: 'God',
  seed: 0,
}

/** `--quick`: a tiny random model (what test/bench-align-lm.ts runs). */
export const QUICK: AlignLmSettings = {
  preset: 'quick',
  steps: 2,
  batch: 2,
  trainPairs: 4,
  heldOutPairs: 4,
  promptLength: 8,
  completionLength: 6,
  lr: 1e-2,
  clipNorm: 1,
  evalEvery: 1,
  bpcTokens: 128,
  samples: 2,
  sampleTokens: 6,
  targetWord: 'God',
  seed: 0,
}

type Kind = 'paired' | 'kto'
interface Method {
  readonly key: string
  readonly name: string
  readonly kind: Kind
  /** The paired runs' loss; KTO's is built from the unpaired view of the batch (`lmKtoBatch`). */
  readonly loss?: (b: PreferenceLogps) => TrainLoss
}

export const METHODS: readonly Method[] = [
  { key: 'dpo', name: 'DPO (sigmoid, β 0.1)', kind: 'paired', loss: b => dpoLoss(b, { beta: 0.1 }) },
  { key: 'ipo', name: 'IPO (β 0.5)', kind: 'paired', loss: b => dpoLoss(b, { lossType: 'ipo', beta: 0.5 }) },
  { key: 'hinge', name: 'hinge (β 0.1)', kind: 'paired', loss: b => dpoLoss(b, { lossType: 'hinge', beta: 0.1 }) },
  { key: 'robust', name: 'robust DPO (β 0.1, ε 0.1)', kind: 'paired', loss: b => dpoLoss(b, { lossType: 'robust', beta: 0.1, labelSmoothing: 0.1 }) },
  { key: 'simpo', name: 'SimPO (β 2, γ 1)', kind: 'paired', loss: b => cpoLoss(b, { lossType: 'simpo', beta: 2, simpoGamma: 1, cpoAlpha: 0 }) },
  { key: 'orpo', name: 'ORPO (λ 0.1)', kind: 'paired', loss: b => orpoLoss(b, { beta: 0.1 }) },
  { key: 'kto', name: 'KTO (β 0.1, unpaired)', kind: 'kto' },
  { key: 'flex', name: 'Flex-DPO (β⁺ 0.1, β⁻ 0.08)', kind: 'paired', loss: b => flexDpoLoss(b, { betaChosen: 0.1, betaRejected: 0.08 }) },
  { key: 'dpo-sft', name: 'DPO + SFT (λ 1)', kind: 'paired', loss: b => dpoLoss(b, { lossType: ['sigmoid', 'sft'], lossWeights: [1, 1], beta: 0.1 }) },
]

export interface TaskEval {
  readonly pairs: number
  /** Fraction of pairs with log π(y_w) − log π_ref(y_w) > log π(y_l) − log π_ref(y_l). */
  readonly rewardAccuracy: number
  /** Mean of that difference, nats. */
  readonly margin: number
  /** Mean summed log-probs of the completions under the policy, nats. */
  readonly logpChosen: number
  readonly logpRejected: number
}

export interface HeldOutEval {
  readonly step: number
  readonly continuation: TaskEval
  readonly style: TaskEval
  readonly all: TaskEval
  /** KL(π ‖ π_ref) per character along the held-out chosen continuations, nats. */
  readonly kl: number
}

export interface RunResult {
  readonly key: string
  readonly name: string
  readonly settings: AlignLmSettings
  readonly seconds: number
  /** Training-batch series from `collectMetrics` (loss and TRL's metrics), one entry per step. */
  readonly train: Readonly<Record<string, readonly number[]>>
  readonly evals: readonly HeldOutEval[]
  readonly bitsPerChar: number
  readonly styleRate: number
  readonly samples: readonly { readonly prompt: string; readonly text: string }[]
}

export interface AlignLmJson {
  readonly bench: 'align-lm'
  readonly date: string
  readonly settings: AlignLmSettings
  readonly model: { readonly source: string; readonly parameters: number; readonly config: TransformerLM['config'] }
  readonly reference: { readonly evals: HeldOutEval; readonly bitsPerChar: number; readonly styleRate: number; readonly samples: RunResult['samples'] }
  readonly runs: readonly RunResult[]
  readonly machine: MachineInfo
}

const flag = (args: readonly string[], name: string): string | undefined => args.find(a => a.startsWith(`--${name}=`))?.slice(name.length + 3)

interface Context {
  readonly policy: TransformerLM
  readonly reference: LanguageModel
  readonly tokenizer: ReturnType<typeof charTokenizer>
  readonly train: readonly PreferenceExample[]
  readonly heldOut: readonly PreferenceExample[]
  readonly heldOutTasks: readonly string[]
  readonly heldOutBatches: readonly LmPreferenceBatch[]
  /** The reference's log-softmax `[2B, T, V]` of each held-out batch (kept for the whole bench). */
  readonly refLogSoftmax: readonly Tensor[]
  readonly stylePrompts: readonly string[]
  readonly valTokens: Int32Array
  readonly s: AlignLmSettings
}

/** Held-out metrics of `params`, synchronously (CPU): it runs inside trainStep's `inspect`. */
function heldOutEval(ctx: Context, params: TransformerLMParams, step: number): HeldOutEval {
  const rows: { task: string; c: number; r: number; cRef: number; rRef: number }[] = []
  let klSum = 0
  let klCount = 0
  ctx.heldOutBatches.forEach((batch, k) => {
    const B = batch.pairs
    const [seq, ref, kl] = noGrad(() =>
      scope(() => {
        const mask = batch.sequences.mask
        const logits = ctx.policy.forward(params, batch.sequences.input)
        const lp = logSoftmax(logits, { axis: -1 })
        const perToken = tokenLogps(logits, batch.sequences.labels)
        const seq = logpsFromTokens(perToken, mask)
        const ref = logpsFromTokens(batch.refLogps, mask)
        // KL along the chosen rows only: the held-out text, not its corruptions.
        const klTok = sum(mul(exp(lp), sub(lp, ctx.refLogSoftmax[k]!)), { axis: -1 })
        const chosenMask = slice(mask, [[0, B]])
        const kl = logpsFromTokens(slice(klTok, [[0, B]]), chosenMask)
        return [keep(seq), keep(ref), keep(kl)]
      }),
    )
    const sv = seq!.dataSync()
    const rv = ref!.dataSync()
    const kv = kl!.dataSync()
    dispose([seq, ref, kl])
    for (let i = 0; i < B; i++) {
      const ex = batch.examples[i]!
      rows.push({ task: ex.task ?? 'continuation', c: sv[i]!, r: sv[B + i]!, cRef: rv[i]!, rRef: rv[B + i]! })
      klSum += kv[i]!
      klCount += ex.chosen.length
    }
  })
  const summary = (task: string | undefined): TaskEval => {
    const xs = rows.filter(x => task === undefined || x.task === task)
    const n = Math.max(xs.length, 1)
    const h = xs.map(x => x.c - x.cRef - (x.r - x.rRef))
    return {
      pairs: xs.length,
      rewardAccuracy: h.filter(v => v > 0).length / n,
      margin: h.reduce((a, b) => a + b, 0) / n,
      logpChosen: xs.reduce((a, x) => a + x.c, 0) / n,
      logpRejected: xs.reduce((a, x) => a + x.r, 0) / n,
    }
  }
  return { step, continuation: summary('continuation'), style: summary('style'), all: summary(undefined), kl: klSum / Math.max(klCount, 1) }
}

async function styleSamples(ctx: Context, params: TransformerLMParams): Promise<{ rate: number; samples: RunResult['samples'] }> {
  const samples: { prompt: string; text: string }[] = []
  for (const [i, prompt] of ctx.stylePrompts.entries()) {
    const chars = await lastValueFrom(generateText(ctx.policy, params, ctx.tokenizer, prompt, { maxTokens: ctx.s.sampleTokens, temperature: 0.8, seed: i }).pipe(toArray()))
    samples.push({ prompt, text: chars.join('') })
  }
  return { rate: samples.filter(x => x.text.includes(ctx.s.targetWord)).length / Math.max(samples.length, 1), samples }
}

async function runMethod(ctx: Context, m: Method): Promise<RunResult> {
  const t0 = performance.now()
  const evals: HeldOutEval[] = [heldOutEval(ctx, ctx.reference.params, 0)]
  let final: TransformerLMParams | undefined
  const lossFn = (p: TransformerLMParams, batch: LmPreferenceBatch): TrainLoss => {
    if (m.kind === 'kto') return ktoLoss(lmKtoBatch(ctx.policy, p, batch, ctx.reference), { beta: 0.1 })
    return m.loss!(lmPreferenceLogps(ctx.policy, p, batch))
  }
  const history = await lastValueFrom(
    from(ctx.train.slice(0, ctx.s.steps * ctx.s.batch)).pipe(
      preferenceBatches({ size: ctx.s.batch, collate: (xs: readonly PreferenceExample[]) => collatePreferences(xs), dropLast: true }),
      trainStep({
        params: ctx.reference.params,
        optimizer: adam({ lr: ctx.s.lr }),
        clipNorm: ctx.s.clipNorm,
        loss: lossFn,
        inspect: (p, step) => {
          if (step % ctx.s.evalEvery === 0 || step === ctx.s.steps) evals.push(heldOutEval(ctx, p, step))
          if (step % 10 === 0) process.stderr.write(`  ${m.key} step ${step}/${ctx.s.steps} ${((performance.now() - t0) / 1000).toFixed(0)} s\n`)
        },
        onComplete: p => void (final = p),
      }),
      collectMetrics(),
      last(),
    ),
  )
  try {
    const bpc = await validationLoss(ctx.policy, final!, ctx.valTokens, { maxTokens: ctx.s.bpcTokens })
    const style = await styleSamples(ctx, final!)
    return { key: m.key, name: m.name, settings: ctx.s, seconds: (performance.now() - t0) / 1000, train: history.series, evals, bitsPerChar: bpc.bitsPerChar, styleRate: style.rate, samples: style.samples }
  } finally {
    dispose(final)
  }
}

const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a')
const pct = (x: number): string => `${(100 * x).toFixed(0)} %`

function markdown(j: AlignLmJson): string {
  const r0 = j.reference.evals
  const s = j.settings
  const head = ['run', 'held-out reward acc. (continuation / style)', 'margin (nats)', 'Δ log p chosen', 'Δ log p rejected', 'KL/char (nats)', 'val. bits/char', `"${s.targetWord}" in samples`, 'time']
  const row = (r: RunResult): string[] => {
    const e = r.evals.at(-1)!
    return [
      r.name,
      `${pct(e.continuation.rewardAccuracy)} / ${pct(e.style.rewardAccuracy)}`,
      fmt(e.all.margin),
      fmt(e.all.logpChosen - r0.all.logpChosen),
      fmt(e.all.logpRejected - r0.all.logpRejected),
      fmt(e.kl, 4),
      fmt(r.bitsPerChar, 4),
      pct(r.styleRate),
      `${r.seconds.toFixed(0)} s`,
    ]
  }
  const table = (h: readonly string[], body: readonly (readonly string[])[]): string => [`| ${h.join(' | ')} |`, `|${h.map(() => '---').join('|')}|`, ...body.map(x => `| ${x.join(' | ')} |`)].join('\n')
  const sample = (runs: readonly { name: string; samples: RunResult['samples'] }[]): string =>
    runs.map(r => `${r.name}:\n${r.samples.slice(0, 3).map(x => `    ${JSON.stringify(x.prompt)} → ${JSON.stringify(x.text)}`).join('\n')}`).join('\n\n')
  return `# DPO and its family on the shipped KJV model

\`npm run bench -- align-lm${s.preset === 'quick' ? ' --quick' : ''}\`, ${j.date.slice(0, 16).replace('T', ' ')} UTC, ${machineLine(j.machine)}.
Model: ${j.model.source} (${j.model.parameters.toLocaleString('en')} parameters). Budget, the same for every run: ${s.steps} Adam steps
(lr ${s.lr}, global-norm clipping ${s.clipNorm}) of ${s.batch} pairs from ${s.trainPairs} training pairs (Genesis–Malachi), prompts of
${s.promptLength} characters, completions of ${s.completionLength}; half continuation pairs, half style pairs (target word "${s.targetWord}").
Held out: ${r0.all.pairs} pairs from Romans–Revelation (${r0.continuation.pairs} continuation, ${r0.style.pairs} style).

Reference (the shipped model, before fine-tuning): held-out reward accuracy is 0 by definition (π = π_ref); log p chosen
${fmt(r0.all.logpChosen)}, rejected ${fmt(r0.all.logpRejected)} nats per completion (continuation: ${fmt(r0.continuation.logpChosen)} vs ${fmt(r0.continuation.logpRejected)};
style: ${fmt(r0.style.logpChosen)} vs ${fmt(r0.style.logpRejected)}); validation ${fmt(j.reference.bitsPerChar, 4)} bits/char on the first ${s.bpcTokens} characters of
Romans–Revelation; "${s.targetWord}" in ${pct(j.reference.styleRate)} of ${s.samples} sampled continuations of held-out prompts.

${table(head, j.runs.map(row))}

Reward accuracy and margin use DPO's implicit reward log π − log π_ref for every run (strictly higher on chosen), so
the rows compare; Δ log p is the change of the mean summed log-prob of held-out completions from the reference (negative:
the likelihood fell); KL is KL(π ‖ π_ref) per character along the held-out chosen continuations.

![held-out log-probs of chosen and rejected completions](./align-lm-logps.svg)
![held-out reward accuracy](./align-lm-accuracy.svg)
![KL to the reference against validation bits per character](./align-lm-tradeoff.svg)

Samples (temperature 0.8) from held-out prompts, before and after:

\`\`\`text
${sample([{ name: 'reference', samples: j.reference.samples }, ...j.runs])}
\`\`\`
`
}

function plots(j: AlignLmJson, dir: string): void {
  const color = (i: number): string => PALETTE[i % PALETTE.length]!
  const lines = (pick: (e: HeldOutEval) => number, dashed = false) =>
    j.runs.map((r, i) => ({ name: r.name, color: color(i), dashed, points: r.evals.map(e => [e.step, pick(e)] as const) }))
  writeFileSync(
    join(dir, 'align-lm-logps.svg'),
    chart({
      title: 'Held-out log-probs: chosen (solid), rejected (dashed)',
      xLabel: 'optimizer step',
      yLabel: 'mean summed log-prob per completion (nats)',
      width: 720,
      height: 420,
      series: [...lines(e => e.all.logpChosen), ...lines(e => e.all.logpRejected, true).map(x => ({ ...x, name: `${x.name} (rej.)` }))],
    }),
  )
  writeFileSync(
    join(dir, 'align-lm-accuracy.svg'),
    chart({ title: 'Held-out reward accuracy (both tasks)', xLabel: 'optimizer step', yLabel: 'fraction of pairs ranked right', yMin: 0, yMax: 1, width: 720, series: lines(e => e.all.rewardAccuracy) }),
  )
  writeFileSync(
    join(dir, 'align-lm-tradeoff.svg'),
    chart({
      title: 'What alignment costs the language model',
      xLabel: 'KL(π ‖ π_ref) per character on held-out text (nats)',
      yLabel: 'validation bits per character',
      width: 720,
      series: [{ name: 'reference', color: '#000000', line: false, points: [[0, j.reference.bitsPerChar]] }, ...j.runs.map((r, i) => ({ name: r.name, color: color(i), line: false, points: [[r.evals.at(-1)!.kl, r.bitsPerChar] as const] }))],
    }),
  )
}

export async function run(args: readonly string[]): Promise<void> {
  const quick = args.includes('--quick')
  const base = quick ? QUICK : FULL
  const steps = flag(args, 'steps')
  const lr = flag(args, 'lr')
  const seed = flag(args, 'seed')
  const s: AlignLmSettings = { ...base, ...(steps !== undefined ? { steps: Number(steps), trainPairs: Math.max(base.trainPairs, Number(steps) * base.batch) } : {}), ...(lr !== undefined ? { lr: Number(lr) } : {}), ...(seed !== undefined ? { seed: Number(seed) } : {}) }
  const outDir = resolve(flag(args, 'out') ?? join(root, 'bench', 'out'))
  const cacheDir = join(outDir, 'align-lm')
  mkdirSync(cacheDir, { recursive: true })
  const fresh = args.includes('--fresh')
  const only = flag(args, 'methods')?.split(',')
  const methods = only === undefined ? METHODS : METHODS.filter(m => only.includes(m.key))
  const t0 = performance.now()
  const load0 = loadavg()

  const split = kjvSplit(await loadKjv())
  let reference: LanguageModel
  let source: string
  if (quick) {
    const lm = transformerLM({ vocab: KJV_ALPHABET.length, dModel: 16, layers: 1, heads: 2, context: 32 })
    reference = { lm, params: lm.init({ seed: 0 }) }
    source = 'a random tiny model (dModel 16, 1 layer; --quick)'
  } else {
    const m = await loadKjvModel()
    reference = { lm: m.lm, params: m.params }
    source = 'packages/attention/models/kjv-char.safetensors'
  }
  const tokenizer = charTokenizer(KJV_ALPHABET)
  const pairOpts = { promptLength: s.promptLength, completionLength: s.completionLength, targetWord: s.targetWord }
  const trainPairs = kjvPreferencePairs(split.train, { count: s.trainPairs, seed: s.seed, ...pairOpts })
  const heldOutPairs: TextPreferencePair[] = kjvPreferencePairs(split.validation, { count: s.heldOutPairs, seed: s.seed + 1, ...pairOpts })
  const train = await preferenceDataset(trainPairs, { reference, tokenizer })
  const heldOut = await preferenceDataset(heldOutPairs, { reference, tokenizer })
  const chunk = 16
  const heldOutBatches: LmPreferenceBatch[] = []
  const refLogSoftmax: Tensor[] = []
  for (let i = 0; i < heldOut.length; i += chunk) {
    const b = collatePreferences(heldOut.slice(i, i + chunk))
    heldOutBatches.push(b)
    refLogSoftmax.push(noGrad(() => scope(() => keep(logSoftmax(reference.lm.forward(reference.params, b.sequences.input), { axis: -1 })))))
  }
  const ctx: Context = {
    policy: reference.lm,
    reference,
    tokenizer,
    train,
    heldOut,
    heldOutTasks: heldOutPairs.map(p => p.task),
    heldOutBatches,
    refLogSoftmax,
    stylePrompts: heldOutPairs.filter(p => p.task === 'style').slice(0, s.samples).map(p => p.prompt),
    valTokens: tokenizer.encode(split.validationText.slice(0, s.bpcTokens + 1)),
    s,
  }
  process.stderr.write(`align-lm: ${train.length} training pairs, ${heldOut.length} held out, ${((performance.now() - t0) / 1000).toFixed(0)} s to prepare\n`)

  try {
    const refFile = join(cacheDir, 'reference.json')
    const cached = <T extends { settings: AlignLmSettings }>(file: string): T | undefined => {
      if (fresh || !existsSync(file)) return undefined
      const v = JSON.parse(readFileSync(file, 'utf8')) as T
      return JSON.stringify(v.settings) === JSON.stringify(s) ? v : undefined
    }
    let ref = cached<AlignLmJson['reference'] & { settings: AlignLmSettings }>(refFile)
    if (ref === undefined) {
      const bpc = await validationLoss(reference.lm, reference.params, ctx.valTokens, { maxTokens: s.bpcTokens })
      const style = await styleSamples(ctx, reference.params)
      ref = { settings: s, evals: heldOutEval(ctx, reference.params, 0), bitsPerChar: bpc.bitsPerChar, styleRate: style.rate, samples: style.samples }
      writeFileSync(refFile, JSON.stringify(ref, null, 1))
    }
    const runs: RunResult[] = []
    for (const m of methods) {
      const file = join(cacheDir, `${m.key}.json`)
      let r = cached<RunResult>(file)
      if (r !== undefined) process.stderr.write(`align-lm: ${m.key} from ${file}\n`)
      else {
        process.stderr.write(`align-lm: ${m.name}\n`)
        r = await runMethod(ctx, m)
        writeFileSync(file, JSON.stringify(r, null, 1))
      }
      runs.push(r)
      const e = r.evals.at(-1)!
      console.log(`${m.name.padEnd(28)} acc ${pct(e.continuation.rewardAccuracy)} / ${pct(e.style.rewardAccuracy)}  margin ${fmt(e.all.margin)}  chosen ${fmt(e.all.logpChosen)}  rejected ${fmt(e.all.logpRejected)}  KL ${fmt(e.kl, 4)}  bpc ${fmt(r.bitsPerChar, 4)}  style ${pct(r.styleRate)}  ${r.seconds.toFixed(0)} s`)
    }
    const { settings: _s, ...refOut } = ref
    const json: AlignLmJson = {
      bench: 'align-lm',
      date: new Date().toISOString(),
      settings: s,
      model: { source, parameters: reference.lm.parameterCount, config: reference.lm.config },
      reference: refOut,
      runs,
      machine: machineInfo(load0),
    }
    writeFileSync(join(outDir, 'align-lm.json'), JSON.stringify(json, null, 1))
    writeFileSync(join(outDir, 'align-lm.md'), markdown(json))
    plots(json, outDir)
    console.log(`wrote ${join(outDir, 'align-lm.json')}, align-lm.md and align-lm-*.svg (${((performance.now() - t0) / 1000).toFixed(0)} s)`)
  } finally {
    dispose([reference.params, heldOutBatches, refLogSoftmax])
  }
}
