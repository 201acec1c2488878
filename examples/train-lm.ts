/**
 * Train a character-level transformer LM on the King James Bible (training books Genesis–Acts), as a pipeline:
 * batches → trainStep → events, with validation on Romans–Revelation, periodic checkpoints and exact resume.
 *
 *   npm run example -- train-lm                          # the shipped model's recipe (see PRESETS.shipped)
 *   npm run example -- train-lm --preset tiny --steps 20 # a quick one
 *   npm run example -- train-lm --out out/my-run         # where checkpoint, log and curve go
 *   npm run example -- train-lm --backend webgpu         # on the WebGPU backend (Dawn in Node)
 *
 * Outputs, in --out (default out/train-lm): `checkpoint.safetensors` (the latest training checkpoint: rerun the
 * same command and the run resumes from it exactly), `model.safetensors` (the final parameters, float16),
 * `log.json` (recipe, config, every event but the checkpoints' bytes), `loss.svg` (training and validation
 * loss against step). Progress goes to stderr: redrawn on a terminal, whole lines in a log.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { tap, lastValueFrom, defaultIfEmpty } from 'rxjs'
import { getBackend, progressBar, setBackend } from '@heed/tensor'
import { charTokenizer, KJV_ALPHABET, kjvSplit, loadKjv, transformerLM, type TransformerLMConfig } from '@heed/attention'
import { checkpointStep, trainLM, type LMRecipe, type TrainLMEvent } from '@heed/attention/stream'
import { chart } from './lib/plot.js'

export interface Preset {
  readonly config: Omit<TransformerLMConfig, 'vocab'>
  readonly recipe: LMRecipe
  readonly evalEvery: number
  readonly evalTokens: number
  readonly checkpointEvery: number
}

/** The recipes. `shipped` made packages/attention/models/kjv-char.safetensors. */
export const PRESETS: Record<string, Preset> = {
  shipped: {
    config: { dModel: 128, layers: 6, heads: 4, context: 256 },
    recipe: { steps: 500, batch: 8, lr: 3e-3, warmup: 25, seed: 0 },
    evalEvery: 100,
    evalTokens: 32_768,
    checkpointEvery: 25,
  },
  tiny: {
    config: { dModel: 32, layers: 2, heads: 2, context: 32 },
    recipe: { steps: 40, batch: 4, lr: 1e-2, warmup: 4, seed: 0 },
    evalEvery: 20,
    evalTokens: 2048,
    checkpointEvery: 10,
  },
}

export interface RunOptions {
  readonly preset: Preset
  readonly out: string
  /** Override the preset's step count (the schedule follows). */
  readonly steps?: number
  /** Stop after this many steps of this invocation (the run stays resumable); default: run to the end. */
  readonly stopAfter?: number
  readonly quiet?: boolean
  /** The backend to train on (default: the current one, the CPU unless set). */
  readonly backend?: string
}

export interface RunResult {
  readonly events: readonly Exclude<TrainLMEvent, { kind: 'checkpoint' }>[]
  readonly resumedFrom: number
}

/** One training run (resuming from `out/checkpoint.safetensors` when it exists). */
export async function runTraining(o: RunOptions): Promise<RunResult> {
  mkdirSync(o.out, { recursive: true })
  if (o.backend !== undefined) await setBackend(o.backend)
  const split = kjvSplit(await loadKjv())
  const tok = charTokenizer(KJV_ALPHABET)
  const train = tok.encode(split.trainText)
  const validation = tok.encode(split.validationText)
  const recipe = { ...o.preset.recipe, ...(o.steps !== undefined ? { steps: o.steps } : {}) }
  const lm = transformerLM({ ...o.preset.config, vocab: tok.size })
  const ckptPath = join(o.out, 'checkpoint.safetensors')
  const logPath = join(o.out, 'log.json')
  const resume = existsSync(ckptPath) ? new Uint8Array(readFileSync(ckptPath)) : undefined
  const resumedFrom = resume ? checkpointStep(resume) : 0
  const previous: RunResult['events'] = resume && existsSync(logPath) ? (JSON.parse(readFileSync(logPath, 'utf8')).events as RunResult['events']).filter(e => e.step <= resumedFrom) : []
  const events = [...previous]
  const todo = recipe.steps - resumedFrom
  const bar = progressBar({ total: Math.max(1, Math.min(todo, o.stopAfter ?? todo)), label: `train-lm ${lm.parameterCount.toLocaleString('en')} params`, ...(o.quiet ? { stream: false as const } : {}) })
  if (!o.quiet) process.stderr.write(`train-lm on ${getBackend()}: ${resume ? `resuming at step ${resumedFrom}` : 'from scratch'}, ${recipe.steps} steps of ${recipe.batch}×${lm.config.context} tokens, ${train.length.toLocaleString('en')} training / ${validation.length.toLocaleString('en')} validation characters\n`)
  const writeLog = (): void => {
    writeFileSync(logPath, JSON.stringify({ config: lm.config, recipe, parameters: lm.parameterCount, vocab: tok.vocab.join(''), events }, null, 1))
    writeFileSync(join(o.out, 'loss.svg'), lossCurve(events))
  }
  let done = 0
  let lastEval = ''
  const stop = o.stopAfter ?? Infinity
  await lastValueFrom(
    trainLM({ lm, train, validation, vocab: tok.vocab, ...recipe, evalEvery: o.preset.evalEvery, evalTokens: o.preset.evalTokens, checkpointEvery: o.preset.checkpointEvery, ...(resume ? { resume } : {}) }).pipe(
      tap(e => {
        if (e.kind === 'checkpoint') {
          // Write then rename: a run killed mid-write leaves the previous checkpoint intact.
          writeFileSync(ckptPath + '.tmp', e.bytes)
          renameSync(ckptPath + '.tmp', ckptPath)
          writeLog()
          if (done >= stop) throw new StopAfter()
          return
        }
        events.push(e)
        if (e.kind === 'eval') lastEval = ` val ${e.bitsPerChar.toFixed(3)} bpc`
        else bar.tick(1, `loss ${e.loss.toFixed(3)} (${(e.loss / Math.LN2).toFixed(3)} bpc)${lastEval} ${Math.round(e.tokensPerSecond)} tok/s`), done++
      }),
      defaultIfEmpty(undefined),
    ),
  ).catch(err => {
    if (!(err instanceof StopAfter)) throw err
  })
  bar.done()
  writeLog()
  const final = events.filter(e => e.kind === 'step').at(-1)
  if (final !== undefined && final.step === recipe.steps) {
    // The shipped form: parameters only, float16.
    const { loadLM, saveLM } = await import('@heed/attention')
    const c = loadLM(new Uint8Array(readFileSync(ckptPath)))
    writeFileSync(join(o.out, 'model.safetensors'), await saveLM(c.lm, c.params, { vocab: c.vocab, dtype: 'float16' }))
    const { dispose } = await import('@heed/tensor')
    dispose([c.params, c.training?.state])
  }
  return { events, resumedFrom }
}

class StopAfter extends Error {}

/** Training loss (per step) and validation loss (per evaluation) in bits per character against the step. */
export function lossCurve(events: RunResult['events']): string {
  const steps = events.filter(e => e.kind === 'step')
  const evals = events.filter(e => e.kind === 'eval')
  return chart({
    title: 'KJV character LM: loss',
    xLabel: 'optimizer step',
    yLabel: 'bits per character',
    series: [
      { name: 'training batch', points: steps.map(e => [e.step, e.loss / Math.LN2] as const), line: true },
      { name: 'validation (Romans–Revelation)', points: evals.map(e => [e.step, e.bitsPerChar] as const), line: true, markers: true },
    ],
  })
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`)
    return i >= 0 ? process.argv[i + 1] : undefined
  }
  const name = arg('preset') ?? 'shipped'
  const preset = PRESETS[name]
  if (preset === undefined) throw new Error(`train-lm: --preset must be one of ${Object.keys(PRESETS).join(', ')}, got ${name}`)
  const out = resolve(arg('out') ?? join('out', 'train-lm'))
  const steps = arg('steps')
  const stopAfter = arg('stop-after')
  const backend = arg('backend')
  const r = await runTraining({ preset, out, ...(steps ? { steps: Number(steps) } : {}), ...(stopAfter ? { stopAfter: Number(stopAfter) } : {}), ...(backend ? { backend } : {}) })
  const ev = r.events.filter(e => e.kind === 'eval').at(-1)
  console.log(`train-lm: ${out}: ${r.events.filter(e => e.kind === 'step').length} steps${ev ? `, validation ${ev.bitsPerChar.toFixed(4)} bits per character at step ${ev.step}` : ''}`)
}
