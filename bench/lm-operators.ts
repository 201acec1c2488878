/**
 * `npm run bench -- lm-operators` (issue 16): the seed operators inside a real character-level LM on the KJV
 * corpus — what each costs in modelling quality, side by side, on one corpus, recipe and budget.
 *
 * Two kinds of runs (bench/lm-operators-specs.ts lists them):
 * 1. Trained with the operator, from scratch: the same architecture (dModel 64, 2 layers, 4 heads, context 64),
 *    recipe (AdamW, lr 3e-3, warm-up + cosine, batch 8, clip 1), token budget and seeds as the dense baseline; the
 *    operator in every layer (or the paper's hybrid). Validation bits/char from trainLM's windows of the training
 *    context (8 192 characters of Romans–Revelation), mean ± half the spread over the seeds.
 * 2. Applied without retraining to the shipped dense model (packages/attention/models/kjv-char.safetensors: dModel
 *    128, 6 layers, context 256, 1.19 M parameters, its DuoAttention gates from lmDuoGates in kjv-char.duo.json):
 *    cache policies (StreamingLLM, window, DuoAttention) through `perplexity` over one 16×-context stream (4 096
 *    characters), and the operators (ACT, HiP, LongHeads, Recycled, Task-KV) over one forward of the same 16×-context
 *    stream, so every applied row has the same position buckets; plus the observers. (The operators used to read an
 *    8×-context forward, with no reason recorded; nothing in them stops there. At 16× on the 2-core machine, load 1–10:
 *    ACT 59 s, HiP 188 s, Recycled 89 s, Task-KV 30 s, LongHeads 866 s — a time cost, not a limit — and 4.5 GB peak
 *    RSS for the four in one process. Task-KV picks its middle keys once from the forward's last rows, as a prefill
 *    would, so its early buckets depend on the forward's length.) DuoAttention's 25 / 50 / 75 % rows deploy the one
 *    optimisation shipped in kjv-char.duo.json the way DuoAttention deploys its own (mit-han-lab/duo-attention,
 *    `sparsify_attention_heads`: one gate pattern per model, λ 0.05, thresholded at the target's quantile over all
 *    heads of all layers), not one optimisation per sparsity.
 *
 * Per run: bits/char by position bucket ([0, T), [T, 2T), [2T, 4T), …) on a long validation text read in one
 * forward pass (trained runs: 2 windows of 16·T; their operators are causal so one pass is a stream), training
 * tokens/s, prefill tokens/s (one forward of T tokens, no tape), decode tokens/s (one-token calls through the KV
 * cache where the operator has an incremental form, else recomputing the prefix per token), and KV or state bytes
 * at 1×, 4× and 16× the training context (what heed's decode path holds, and the operator's own state).
 *
 * Resumable: each run's result is a JSON file under <out>/lm-operators/runs (quick mode: lm-operators-quick), and a
 * run found there is not redone (`--fresh` redoes them). `--only=id,id` runs those (ids in the specs and below),
 * `--quick` a tiny config for the tests, `--seeds=N` (default 1; a cached run with fewer seeds trains only the missing
 * ones), `--steps=N` (default 150). Progress on stderr.
 * Writes lm-operators.{json,md} and three SVGs (Pareto bpc vs KV bytes, bpc vs position, training curves).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { lastValueFrom, tap, toArray } from 'rxjs'
import { dispose, keep, logSoftmax, mean, noGrad, oneHot, reshape, scope, slice, sum, tensor, where, type Tensor } from '@heed/tensor'
import {
  charTokenizer,
  colSetMass,
  duoDeploy,
  headPolicy,
  hipAttention,
  KJV_ALPHABET,
  kjvSplit,
  loadKjv,
  loadKjvModel,
  loadLM,
  longHeadsAttention,
  operators,
  perplexity,
  retrievalScoreFromArgmax,
  rowArgmax,
  saveLM,
  scaledDotProductAttention,
  taskKvHeads,
  transformerLM,
  type AttentionFn,
  type AttentionFnOptions,
  type LMPolicies,
  type TransformerLM,
  type TransformerLMParams,
} from '@heed/attention'
import { lmRecipe, trainLM, type TrainLMEvent } from '@heed/attention/stream'
import { chart, PALETTE } from '../examples/lib/plot.js'
import { NOT_APPLICABLE, TRAINED, denseBytes, type LMShape, type TrainedRun } from './lm-operators-specs.js'
import { machineInfo, machineLine, type MachineInfo } from './machine.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const flag = (args: readonly string[], name: string): string | undefined => args.find(a => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const log = (s: string): void => void process.stderr.write(`[lm-operators] ${s}\n`)

export interface Bucket {
  readonly from: number
  readonly to: number
  readonly bitsPerChar: number
}

export interface RunResult {
  readonly id: string
  readonly kind: 'trained' | 'applied' | 'observer'
  readonly label: string
  readonly paper: string
  readonly note: string
  /** Validation bits/char: trained runs over the training-context windows (mean of the seeds); applied runs over their stream. */
  readonly bitsPerChar: number
  /** Half the spread (max − min) / 2 over the seeds; 0 with one seed. */
  readonly spread: number
  readonly seeds: readonly { readonly seed: number; readonly bitsPerChar: number; readonly curve: readonly (readonly [number, number])[]; readonly evals: readonly (readonly [number, number])[]; readonly trainTokensPerSecond: number }[]
  readonly trainTokensPerSecond?: number
  readonly prefillTokensPerSecond?: number
  readonly decodeTokensPerSecond?: number
  readonly decode: 'cache' | 'recompute' | 'none'
  /** Cached decode equal to the full recomputation (checked on the first tokens), where the operator is exact. */
  readonly decodeMatches?: boolean
  readonly bytes: { readonly at: readonly number[]; readonly held: readonly number[]; readonly state: readonly number[] }
  readonly buckets: readonly Bucket[]
  readonly seconds: number
  readonly extra?: Readonly<Record<string, unknown>>
  readonly error?: string
}

export interface LmOperatorsJson {
  readonly bench: 'lm-operators'
  readonly quick: boolean
  readonly trained: { readonly config: LMShape & { readonly vocab: number }; readonly recipe: ReturnType<typeof lmRecipe>; readonly seeds: number; readonly evalTokens: number; readonly longTokens: number }
  readonly applied: { readonly model: string; readonly config: LMShape; readonly streamTokens: number; readonly forwardTokens: number }
  readonly runs: readonly RunResult[]
  readonly notApplicable: typeof NOT_APPLICABLE
  readonly machine: MachineInfo
}

// ---- measurement helpers -----------------------------------------------------------------------------------------

/** Per-position bits/char of one forward pass over `ids` (no cache: the operators are causal), in buckets. */
async function positionBuckets(lm: TransformerLM, params: TransformerLMParams, windows: readonly Int32Array[], T: number): Promise<Bucket[]> {
  const N = windows[0]!.length - 1
  const edges = [0]
  for (let e = T; e < N; e *= 2) edges.push(e)
  const sums = new Float64Array(edges.length)
  const counts = new Float64Array(edges.length)
  const V = lm.config.vocab
  for (const ids of windows) {
    const nll = noGrad(() =>
      scope(() => {
        const x = tensor(ids.subarray(0, N), [1, N], 'int32')
        const y = tensor(ids.subarray(1, N + 1), [N], 'int32')
        const lp = logSoftmax(reshape(lm.forward(params, x), [N, V]), { axis: -1 })
        return keep(sum(where(oneHot(y, V, { dtype: 'bool' }), lp, 0), { axis: -1 }))
      }),
    )
    const v = await nll.data()
    nll.dispose()
    let b = 0
    for (let p = 0; p < N; p++) {
      while (b + 1 < edges.length && p >= edges[b + 1]!) b++
      sums[b] = sums[b]! - v[p]!
      counts[b] = counts[b]! + 1
    }
  }
  return edges.map((from, k) => ({ from, to: k + 1 < edges.length ? edges[k + 1]! : N, bitsPerChar: sums[k]! / counts[k]! / Math.LN2 }))
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** Prefill: one forward of T tokens without a tape, median of 3 (after a warm-up). */
function prefillSpeed(lm: TransformerLM, params: TransformerLMParams, ids: Int32Array, T: number): number {
  const once = (): number => {
    const t0 = performance.now()
    noGrad(() => scope(() => void lm.forward(params, tensor(ids.subarray(0, T), [1, T], 'int32')).dataSync()))
    return (performance.now() - t0) / 1000
  }
  once()
  return T / median([once(), once(), once()])
}

/**
 * Decode speed: a T/2 prompt, then `n` one-token calls through the caches (policies as given), checking the first
 * `check` steps' logits against the full recomputation; or, without an incremental form, `n` recomputations of
 * the growing prefix.
 */
function decodeSpeed(lm: TransformerLM, params: TransformerLMParams, ids: Int32Array, mode: 'cache' | 'recompute', policies: LMPolicies | undefined, n: number, check: number): { tokensPerSecond: number; matches?: boolean } {
  const T = lm.config.context
  const P = Math.max(1, Math.floor(T / 2))
  const V = lm.config.vocab
  const last = (x: ArrayLike<number>): number[] => Array.from({ length: V }, (_, j) => x[x.length - V + j]!)
  const full = (m: number): number[] => last(noGrad(() => scope(() => lm.forward(params, tensor(ids.subarray(0, m), [1, m], 'int32')).dataSync())))
  if (mode === 'recompute') {
    const t0 = performance.now()
    for (let i = 0; i < n; i++) full(P + i + 1)
    return { tokensPerSecond: n / ((performance.now() - t0) / 1000) }
  }
  const caches = lm.cache({ batch: 1, capacity: P + n + 1, ...(policies ? { policies } : {}) })
  try {
    noGrad(() => scope(() => void lm.forward(params, tensor(ids.subarray(0, P), [1, P], 'int32'), { caches }).dataSync()))
    let worst = 0
    const t0 = performance.now()
    let timed = 0
    for (let i = 0; i < n; i++) {
      const t1 = performance.now()
      const got = last(noGrad(() => scope(() => lm.forward(params, tensor(ids.subarray(P + i, P + i + 1), [1, 1], 'int32'), { caches }).dataSync())))
      timed += performance.now() - t1
      if (i < check) {
        const want = full(P + i + 1)
        for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(got[j]! - want[j]!))
      }
    }
    void t0
    return { tokensPerSecond: n / (timed / 1000), matches: worst < 1e-3 }
  } finally {
    for (const c of caches) c.dispose()
  }
}

const spreadOf = (xs: readonly number[]): number => (xs.length > 1 ? (Math.max(...xs) - Math.min(...xs)) / 2 : 0)

// ---- the sweep ---------------------------------------------------------------------------------------------------

export async function run(args: readonly string[]): Promise<void> {
  const before = loadavg()
  const quick = args.includes('--quick')
  const fresh = args.includes('--fresh')
  const only = flag(args, 'only')?.split(',').filter(Boolean)
  const outDir = flag(args, 'out') ?? join(root, 'bench', 'out')
  const cacheDir = join(outDir, quick ? 'lm-operators-quick' : 'lm-operators', 'runs')
  mkdirSync(cacheDir, { recursive: true })
  const seeds = Number(flag(args, 'seeds') ?? 1)
  const steps = Number(flag(args, 'steps') ?? (quick ? 3 : 150))

  const split = kjvSplit(await loadKjv())
  const tok = charTokenizer(KJV_ALPHABET)
  const train = tok.encode(split.trainText)
  const validation = tok.encode(split.validationText)
  const shape: LMShape = quick ? { dModel: 16, layers: 2, heads: 4, kvHeads: 4, context: 16 } : { dModel: 64, layers: 2, heads: 4, kvHeads: 4, context: 64 }
  const T = shape.context
  const recipe = lmRecipe(quick ? { steps, batch: 2, lr: 1e-2, warmup: 1 } : { steps, batch: 8, lr: 3e-3, warmup: Math.max(1, Math.round(steps / 20)) })
  const evalTokens = quick ? 256 : 8192
  const longN = 16 * T
  const longWindows = (quick ? [0] : [0, 1]).map(w => validation.subarray(evalTokens + w * (longN + 1), evalTokens + (w + 1) * (longN + 1)))
  const at = [T, 4 * T, 16 * T]
  const wanted = (id: string): boolean => only === undefined || only.includes(id)
  const cached = (id: string): RunResult | undefined => {
    const f = join(cacheDir, `${id}.json`)
    return !fresh && existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as RunResult) : undefined
  }
  const save = (r: RunResult): RunResult => (writeFileSync(join(cacheDir, `${r.id}.json`), JSON.stringify(r, null, 1)), r)
  const results: RunResult[] = []
  const t00 = performance.now()

  // ---- 1. trained runs
  for (const spec of TRAINED) {
    if (!wanted(spec.id)) continue
    const hit = cached(spec.id)
    if (hit && (hit.error !== undefined || hit.seeds.length >= seeds)) {
      log(`${spec.id}: cached (${hit.bitsPerChar.toFixed(4)} bpc)`)
      results.push(hit)
      continue
    }
    // A cached run with fewer seeds than asked for gains the missing ones (speeds and buckets stay seed 0's).
    if (hit) log(`${spec.id}: cached with ${hit.seeds.length} seed(s); training seeds ${hit.seeds.length}…${seeds - 1}`)
    const t0 = performance.now()
    try {
      results.push(save(await trainedRun(spec, shape, recipe, seeds, train, validation, evalTokens, longWindows, at, tok.vocab, cacheDir, hit)))
      log(`${spec.id}: ${results.at(-1)!.bitsPerChar.toFixed(4)} bpc in ${((performance.now() - t0) / 1000).toFixed(0)} s (sweep ${((performance.now() - t00) / 60000).toFixed(1)} min)`)
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err)
      log(`${spec.id}: FAILED — ${msg}`)
      results.push(save(failed(spec.id, 'trained', spec.label, spec.paper, msg, at)))
    }
  }

  // ---- 2. applied to the shipped dense model (quick: to the quick dense run)
  const applied = await appliedRuns({ quick, wanted, cached, save, validation, results, vocab: tok.vocab, cacheDir })

  const json: LmOperatorsJson = {
    bench: 'lm-operators',
    quick,
    trained: { config: { ...shape, vocab: tok.size }, recipe, seeds, evalTokens, longTokens: longN },
    applied: applied.info,
    runs: results,
    notApplicable: NOT_APPLICABLE,
    machine: machineInfo(before),
  }
  // Merge with runs cached earlier but not in this invocation (an --only run keeps the full table).
  if (only !== undefined) {
    const ids = new Set(results.map(r => r.id))
    for (const f of listRuns(cacheDir)) if (!ids.has(f.id)) (json.runs as RunResult[]).push(f)
    ;(json.runs as RunResult[]).sort((a, b) => order(a.id) - order(b.id))
    // The header states the seeds the trained rows hold, not this invocation's --seeds (an --only run defaults to 1).
    ;(json.trained as { seeds: number }).seeds = Math.max(seeds, ...json.runs.filter(r => r.kind === 'trained' && !r.error).map(r => r.seeds.length))
  }
  const base = quick ? 'lm-operators-quick' : 'lm-operators'
  writeFileSync(join(outDir, `${base}.json`), JSON.stringify(json, null, 1))
  const md = markdown(json)
  writeFileSync(join(outDir, `${base}.md`), md)
  for (const [name, svg] of Object.entries(plots(json))) writeFileSync(join(outDir, `${base}-${name}.svg`), svg)
  console.log(md)
}

const ORDER = [...TRAINED.map(s => s.id), 'applied-full', 'applied-streaming', 'applied-window', 'applied-duo-25', 'applied-duo-50', 'applied-duo-75', 'applied-act', 'applied-hip', 'applied-longheads', 'applied-recycled', 'applied-taskkv', 'observers']
const order = (id: string): number => (ORDER.indexOf(id) < 0 ? 999 : ORDER.indexOf(id))

function listRuns(dir: string): RunResult[] {
  return ORDER.map(id => join(dir, `${id}.json`))
    .filter(f => existsSync(f))
    .map(f => JSON.parse(readFileSync(f, 'utf8')) as RunResult)
}

function failed(id: string, kind: RunResult['kind'], label: string, paper: string, error: string, at: readonly number[]): RunResult {
  return { id, kind, label, paper, note: '', bitsPerChar: NaN, spread: 0, seeds: [], decode: 'none', bytes: { at, held: [], state: [] }, buckets: [], seconds: 0, error }
}

async function trainedRun(spec: TrainedRun, shape: LMShape, recipe: ReturnType<typeof lmRecipe>, seeds: number, train: Int32Array, validation: Int32Array, evalTokens: number, longWindows: readonly Int32Array[], at: readonly number[], vocab: readonly string[], cacheDir: string, prev?: RunResult): Promise<RunResult> {
  const t0 = performance.now()
  const lm = transformerLM({ vocab: vocab.length, ...shape, ...(spec.attention ? { attention: spec.attention(shape) } : {}) })
  const T = shape.context
  const per: RunResult['seeds'][number][] = [...(prev?.seeds ?? [])]
  let params: TransformerLMParams | undefined
  for (let s = per.length; s < seeds; s++) {
    let last = performance.now()
    const events = await lastValueFrom(
      trainLM({ lm, train, validation, vocab, ...recipe, seed: s, evalEvery: Math.max(1, Math.floor(recipe.steps / 5)), evalTokens, checkpointEvery: 0 }).pipe(
        tap(e => {
          if (e.kind === 'eval') log(`${spec.id} seed ${s} step ${e.step}: validation ${e.bitsPerChar.toFixed(4)} bpc`)
          else if (e.kind === 'step' && performance.now() - last > 20_000) {
            last = performance.now()
            log(`${spec.id} seed ${s} step ${e.step}/${recipe.steps}: loss ${e.loss.toFixed(3)}, ${Math.round(e.tokensPerSecond)} tok/s`)
          }
        }),
        toArray(),
      ),
    )
    const stepEv = events.filter((e): e is Extract<TrainLMEvent, { kind: 'step' }> => e.kind === 'step')
    const evals = events.filter((e): e is Extract<TrainLMEvent, { kind: 'eval' }> => e.kind === 'eval')
    const plain = stepEv.slice(1).filter(e => !evals.some(v => v.step === e.step))
    const timed = plain.length > 0 ? plain : stepEv
    const tps = (timed.length * recipe.batch * T) / timed.reduce((a, e) => a + e.seconds, 0)
    per.push({ seed: s, bitsPerChar: evals.at(-1)!.bitsPerChar, curve: stepEv.map(e => [e.step, e.loss / Math.LN2] as const), evals: evals.map(e => [e.step, e.bitsPerChar] as const), trainTokensPerSecond: tps })
    const ckpt = events.filter((e): e is Extract<TrainLMEvent, { kind: 'checkpoint' }> => e.kind === 'checkpoint').at(-1)!
    if (s === 0) {
      // Seed 0's parameters serve the speed, decode and long-context figures (and, for dense, the quick applied runs).
      // The operators' own parameters come back too: loadLM builds its skeleton with the same operators.
      const loaded = loadLM(ckpt.bytes, { expect: lm.config, ...(spec.attention ? { attention: spec.attention(shape) } : {}) })
      dispose(loaded.training?.state)
      params = loaded.params
      if (spec.id === 'dense') writeFileSync(join(cacheDir, 'dense.safetensors'), await saveLM(lm, params, { vocab }))
    }
  }
  const bpcs = per.map(p => p.bitsPerChar)
  const merged = { bitsPerChar: bpcs.reduce((a, x) => a + x, 0) / bpcs.length, spread: spreadOf(bpcs), seeds: per, trainTokensPerSecond: per.reduce((a, p) => a + p.trainTokensPerSecond, 0) / per.length }
  if (prev) return { ...prev, ...merged, seconds: prev.seconds + (performance.now() - t0) / 1000 }
  try {
    log(`${spec.id}: speeds and long-context buckets`)
    const prefill = prefillSpeed(lm, params!, validation, T)
    const dec = decodeSpeed(lm, params!, validation, spec.decode, spec.policies?.(shape), spec.decode === 'cache' ? 32 : 8, spec.exact ? 4 : 0)
    const buckets = await positionBuckets(lm, params!, longWindows, T)
    const b = at.map(n => spec.bytes(shape, n))
    return {
      id: spec.id,
      kind: 'trained',
      label: spec.label,
      paper: spec.paper,
      note: spec.note,
      ...merged,
      prefillTokensPerSecond: prefill,
      decodeTokensPerSecond: dec.tokensPerSecond,
      decode: spec.decode,
      ...(dec.matches !== undefined && spec.exact ? { decodeMatches: dec.matches } : {}),
      bytes: { at, held: b.map(x => x.held), state: b.map(x => x.state) },
      buckets,
      seconds: (performance.now() - t0) / 1000,
    }
  } finally {
    dispose(params)
  }
}

// ---- applied (inference-time) methods ------------------------------------------------------------------------------

interface AppliedCtx {
  readonly quick: boolean
  readonly wanted: (id: string) => boolean
  readonly cached: (id: string) => RunResult | undefined
  readonly save: (r: RunResult) => RunResult
  readonly validation: Int32Array
  readonly results: RunResult[]
  readonly vocab: readonly string[]
  readonly cacheDir: string
}

function named(name: string, fn: (q: Tensor, k: Tensor, v: Tensor, o: AttentionFnOptions) => { out: Tensor; lse?: Tensor }): AttentionFn {
  Object.defineProperty(fn, 'name', { value: name })
  return fn
}

async function appliedRuns(c: AppliedCtx): Promise<{ info: LmOperatorsJson['applied'] }> {
  const ids = ['applied-full', 'applied-streaming', 'applied-window', 'applied-duo-25', 'applied-duo-50', 'applied-duo-75', 'applied-act', 'applied-hip', 'applied-longheads', 'applied-recycled', 'applied-taskkv', 'observers']
  let lm: TransformerLM
  let params: TransformerLMParams
  let duo: { gates: readonly (readonly number[])[]; sink: number; recent: number } | undefined
  let modelName: string
  if (c.quick) {
    const f = join(c.cacheDir, 'dense.safetensors')
    if (!existsSync(f)) {
      log('applied runs: no quick dense run to apply them to (run dense first)')
      return { info: { model: 'none', config: { dModel: 0, layers: 0, heads: 0, kvHeads: 0, context: 0 }, streamTokens: 0, forwardTokens: 0 } }
    }
    const l = loadLM(new Uint8Array(readFileSync(f)))
    lm = l.lm
    params = l.params
    modelName = 'the quick dense run'
  } else {
    const m = await loadKjvModel()
    lm = m.lm
    params = m.params
    duo = m.duo
    modelName = 'packages/attention/models/kjv-char.safetensors (shipped)'
  }
  const cfg = lm.config
  const shape: LMShape = { dModel: cfg.dModel, layers: cfg.layers, heads: cfg.heads, kvHeads: cfg.kvHeads, context: cfg.context }
  const T = cfg.context
  const streamN = 16 * T
  const fwdN = streamN
  const stream = c.validation.subarray(0, streamN + 1)
  const fwdIds = c.validation.subarray(0, fwdN + 1)
  const at = [T, 4 * T, 16 * T]
  const hd = cfg.dModel / cfg.heads
  const perHeadBytes = (n: number) => 2 * hd * n * 4
  const sink = 4
  const recent = T / 2 - sink
  const stream2 = (s: number, w: number) => Array.from({ length: cfg.kvHeads }, () => headPolicy.streaming(s, w))
  const info = { model: modelName, config: shape, streamTokens: streamN, forwardTokens: fwdN }
  try {
    for (const id of ids) {
      if (!c.wanted(id)) continue
      const hit = c.cached(id)
      if (hit) {
        log(`${id}: cached`)
        c.results.push(hit)
        continue
      }
      const t0 = performance.now()
      try {
        const r = await appliedOne(id)
        if (r) {
          c.results.push(c.save({ ...r, seconds: (performance.now() - t0) / 1000 }))
          log(`${id}: ${Number.isFinite(r.bitsPerChar) ? r.bitsPerChar.toFixed(4) + ' bpc' : 'done'} in ${((performance.now() - t0) / 1000).toFixed(0)} s`)
        }
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err)
        log(`${id}: FAILED — ${msg}`)
        c.results.push(c.save(failed(id, 'applied', id, '', msg, at)))
      }
    }
  } finally {
    dispose(params)
  }
  return { info }

  async function policyRun(id: string, label: string, paper: string, note: string, policies: LMPolicies | undefined, bytesAt: (n: number) => number): Promise<RunResult> {
    log(`${id}: perplexity over ${streamN} characters`)
    const r = await perplexity(lm, params, stream, { ...(policies ? { policies } : {}), chunk: 64, buckets: bucketEdges(streamN) })
    const prefill = prefillSpeed(lm, params, c.validation, T)
    const dec = decodeSpeed(lm, params, c.validation, 'cache', policies, 32, 0)
    return {
      id,
      kind: 'applied',
      label,
      paper,
      note,
      bitsPerChar: r.bitsPerChar,
      spread: 0,
      seeds: [],
      prefillTokensPerSecond: prefill,
      decodeTokensPerSecond: dec.tokensPerSecond,
      decode: 'cache',
      bytes: { at, held: at.map(bytesAt), state: at.map(bytesAt) },
      buckets: r.buckets.map(b => ({ from: b.from, to: b.to, bitsPerChar: b.bitsPerChar })),
      seconds: 0,
      extra: { kvBytesFinal: r.kvBytes.final },
    }
  }

  function bucketEdges(N: number): number[] {
    const e = [0]
    for (let x = T; x < N; x *= 2) e.push(x)
    return e
  }

  async function operatorRun(id: string, label: string, paper: string, note: string, attention: (layer: number) => AttentionFn, opts: { rope?: false; bytesAt?: (n: number) => number } = {}): Promise<RunResult> {
    log(`${id}: one forward over ${fwdN} characters`)
    const swapped = transformerLM({ ...cfg, ...(opts.rope === false ? { rope: false } : {}), attention })
    const buckets = await positionBuckets(swapped, params, [fwdIds], T)
    let tot = 0
    let cnt = 0
    for (const b of buckets) {
      tot += b.bitsPerChar * (b.to - b.from)
      cnt += b.to - b.from
    }
    const prefill = prefillSpeed(swapped, params, c.validation, T)
    const bytesAt = opts.bytesAt ?? ((n: number) => denseBytes(shape, n))
    return {
      id,
      kind: 'applied',
      label,
      paper,
      note,
      bitsPerChar: tot / cnt,
      spread: 0,
      seeds: [],
      prefillTokensPerSecond: prefill,
      decode: 'none',
      bytes: { at, held: at.map(bytesAt), state: at.map(bytesAt) },
      buckets,
      seconds: 0,
    }
  }

  async function appliedOne(id: string): Promise<RunResult | undefined> {
    const full = (n: number) => denseBytes(shape, n)
    switch (id) {
      case 'applied-full':
        return policyRun(id, 'dense, full KV cache', 'baseline', `every token kept`, undefined, full)
      case 'applied-streaming':
        return policyRun(id, `StreamingLLM: ${sink} sinks + ${recent} recent`, 'Xiao et al. 2024 (StreamingLLM)', 'constant cache', stream2(sink, recent), n => denseBytes(shape, Math.min(n, sink + recent)))
      case 'applied-window':
        return policyRun(id, `window of ${sink + recent}, no sinks`, 'Xiao et al. 2024 (window baseline)', 'the first tokens leave the window', stream2(0, sink + recent), n => denseBytes(shape, Math.min(n, sink + recent)))
      case 'applied-duo-25':
      case 'applied-duo-50':
      case 'applied-duo-75': {
        const sparsity = Number(id.slice(-2)) / 100
        const gates = duo?.gates ?? Array.from({ length: cfg.layers }, (_, l) => Array.from({ length: cfg.kvHeads }, (_, h) => ((l * 7 + h * 3) % 10) / 10))
        const ds = duo?.sink ?? sink
        const dr = duo?.recent ?? recent
        // DuoAttention's deployment (mit-han-lab/duo-attention, duo_attn/utils.py `sparsify_attention_heads`): one
        // optimisation's gates, thresholded at the target's quantile over every head of every layer together (not
        // per layer), so a layer whose heads all need long context keeps them all.
        const flat = duoDeploy(gates.flat(), { sparsity, sink: ds, recent: dr })
        const per = gates.map((g, l) => {
          const o = gates.slice(0, l).reduce((a, x) => a + x.length, 0)
          return { retrieval: flat.retrieval.slice(o, o + g.length), policies: flat.policies.slice(o, o + g.length) }
        })
        const perLayer = per.map(d => d.retrieval.filter(x => !x).length).join('/')
        const streaming = per.reduce((a, d) => a + d.retrieval.filter(x => !x).length, 0)
        const bytesAt = (n: number) => per.reduce((a, d) => a + d.retrieval.reduce((s, r) => s + perHeadBytes(r ? n : Math.min(n, ds + dr)), 0), 0)
        const r = await policyRun(id, `DuoAttention ${sparsity * 100} % streaming heads`, 'Xiao et al. 2025 (DuoAttention)', `${streaming}/${cfg.layers * cfg.kvHeads} streaming heads (${ds} sinks + ${dr} recent; per layer ${perLayer}): the lowest gates of one lmDuoGates optimisation, thresholded at the ${sparsity * 100} % quantile over all heads as DuoAttention deploys; gates ${duo ? 'from kjv-char.duo.json' : 'PLACEHOLDER (quick mode: not optimised)'}`, (l: number) => per[l]!.policies, bytesAt)
        return { ...r, extra: { ...r.extra, saving16x: full(16 * T) / bytesAt(16 * T), streamingPerLayer: per.map(d => d.retrieval.filter(x => !x).length) } }
      }
      case 'applied-act':
        return operatorRun(id, 'ACT sink calibration (sink = position 0)', 'Yu et al. 2024 (ACT)', 'β 0.4 in every head of every layer (ACT picks heads offline; here all)', () => operators.act({ sinks: [0] }))
      case 'applied-hip': {
        const maskK = Math.max(8, T / 2)
        return operatorRun(id, `HiP (mask_k ${maskK})`, 'Lee et al. 2024 (HiP Attention)', `top-${maskK} keys per query block in blocks of 2, block 32 queries`, () =>
          named('hip', (q, k, v, o) => {
            const r = hipAttention(q, k, v, { causal: true, maskK, blockSizeQ: Math.min(32, T), queryOffset: o.queryOffset ?? 0, ...(o.scale !== undefined ? { scale: o.scale } : {}) })
            return { out: r.out, lse: r.lse }
          }),
        )
      }
      case 'applied-longheads': {
        const w = Math.max(4, T / 4)
        return operatorRun(
          id,
          `LongHeads (chunk ${w}, window ${T})`,
          'Lu et al. 2024 (LongHeads)',
          'each head picks chunks to fill the pretrained window; RoPE applied inside at chunk-local positions',
          () => named('longheads', (q, k, v, o) => ({ out: longHeadsAttention(q, k, v, { chunkSize: w, attnLength: T, ...(o.scale !== undefined ? { scale: o.scale } : {}) }).out })),
          { rope: false },
        )
      }
      case 'applied-recycled':
        return operatorRun(id, 'Recycled (stride 4, keep T/4)', 'Xu et al. 2024 (Recycled Attention)', 'a full step every 4 rows; between them the top keys of the last full step', () => operators.recycled({ stride: 4, keep: Math.max(4, T / 4) }))
      case 'applied-taskkv': {
        // Task-KV's head split from each head's mean output on one training-context window.
        const outs: Float64Array[][] = Array.from({ length: cfg.layers }, () => [])
        const rec = transformerLM({ ...cfg, attention: l => named('record', (q, k, v, o) => {
          const { headOffset: _h, input: _i, params: _p, ...sd } = o
          const r = scaledDotProductAttention(q, k, v, sd)
          const m = mean(r.out, { axis: 2 }).dataSync() // [B, H, Dv]
          for (let h = 0; h < cfg.heads; h++) outs[l]!.push(Float64Array.from(m.subarray(h * hd, (h + 1) * hd)))
          return r
        }) })
        noGrad(() => scope(() => void rec.forward(params, tensor(c.validation.subarray(0, T), [1, T], 'int32')).dataSync()))
        const flags = outs.map(o => taskKvHeads(o, [cfg.heads, hd]).heterogeneous)
        const budget = sink + Math.max(4, T / 4) + Math.max(4, T / 4)
        const het = flags.reduce((a, f) => a + f.filter(Boolean).length, 0)
        const bytesAt = (n: number) => flags.reduce((a, f) => a + f.reduce((s, x) => s + perHeadBytes(x ? n : Math.min(n, budget)), 0), 0)
        return operatorRun(id, `Task-KV (${het}/${cfg.layers * cfg.kvHeads} heterogeneous heads)`, 'He et al. 2025 (Task-KV)', `heads split by their mean output's distance to the centre; the others keep ${sink} sinks + ${Math.max(4, T / 4)} recent + ${Math.max(4, T / 4)} middle`, l =>
          operators.taskKv({ heterogeneous: flags[l]!, sink, recent: Math.max(4, T / 4), middle: Math.max(4, T / 4), window: Math.max(4, T / 8) }), { bytesAt })
      }
      case 'observers':
        return observers()
    }
    return undefined
  }

  /** Sink mass per layer and head (attention on position 0, rows ≥ 16) and retrieval-head scores on a copy task. */
  async function observers(): Promise<RunResult> {
    const sinkMass: number[][] = Array.from({ length: cfg.layers }, () => [])
    const retrieval: number[][] = Array.from({ length: cfg.layers }, () => new Array<number>(cfg.heads).fill(0))
    // Sink mass over a training-context window.
    const obs = transformerLM({ ...cfg, attention: l => named('observe-sinks', (q, k, v, o) => {
      const { headOffset: _h, input: _i, params: _p, ...sd } = o
      const r = scaledDotProductAttention(q, k, v, sd)
      const m = colSetMass(q, k, r.lse, [[0]], sd).dataSync() // [1, H, T, 1]
      const Tq = q.shape[2]!
      for (let h = 0; h < cfg.heads; h++) {
        let s = 0
        for (let i = 16; i < Tq; i++) s += m[h * Tq + i]!
        sinkMass[l]!.push(s / Math.max(1, Tq - 16))
      }
      return r
    }) })
    noGrad(() => scope(() => void obs.forward(params, tensor(c.validation.subarray(0, T), [1, T], 'int32')).dataSync()))
    // Retrieval heads (Wu et al. 2024): S ‖ S, and a head scores when the second copy's argmax key is the token it copies.
    const L = Math.floor(T / 2)
    const segments = c.quick ? 1 : 4
    for (let s = 0; s < segments; s++) {
      const S = c.validation.subarray(1000 + s * 997, 1000 + s * 997 + L)
      const ids = Int32Array.from([...S, ...S])
      const argmaxes: Int32Array[] = []
      const ret = transformerLM({ ...cfg, attention: l => named('observe-retrieval', (q, k, v, o) => {
        const { headOffset: _h, input: _i, params: _p, ...sd } = o
        argmaxes[l] = Int32Array.from(rowArgmax(slice(q, [null, null, [L, 2 * L]]), k, { ...sd, queryOffset: L }).dataSync())
        return scaledDotProductAttention(q, k, v, sd)
      }) })
      const logits = noGrad(() => scope(() => ret.forward(params, tensor(ids, [1, 2 * L], 'int32')).dataSync()))
      const V = cfg.vocab
      const generated = Array.from({ length: L }, (_, i) => {
        let best = 0
        const row = (L + i) * V
        for (let j = 1; j < V; j++) if (logits[row + j]! > logits[row + best]!) best = j
        return best
      })
      for (let l = 0; l < cfg.layers; l++) {
        const sc = retrievalScoreFromArgmax(argmaxes[l]!, [1, cfg.heads, L], { tokens: ids, needle: [0, L], generated })
        for (let h = 0; h < cfg.heads; h++) retrieval[l]![h]! += sc[h]! / segments
      }
    }
    const fmt = (m: number[][]) => m.map(r => r.map(x => +x.toFixed(3)))
    return {
      id: 'observers',
      kind: 'observer',
      label: 'observers: sink mass and retrieval-head scores per head',
      paper: 'Xiao et al. 2024 (sinks); Wu et al. 2024 (retrieval heads)',
      note: `sink mass: mean attention on position 0 over rows 16…${T - 1} of one window; retrieval: copy score on ${segments} repeated ${L}-character segments`,
      bitsPerChar: NaN,
      spread: 0,
      seeds: [],
      decode: 'none',
      bytes: { at, held: [], state: [] },
      buckets: [],
      seconds: 0,
      extra: { sinkMass: fmt(sinkMass), retrieval: fmt(retrieval) },
    }
  }
}

// ---- report --------------------------------------------------------------------------------------------------------

const kib = (b: number): string => (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`)
const f = (x: number | undefined, d = 0): string => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d))

export function markdown(j: LmOperatorsJson): string {
  const c = j.trained.config
  const r = j.trained.recipe
  const dense = j.runs.find(x => x.id === 'dense')
  const full = j.runs.find(x => x.id === 'applied-full')
  const cmd = `npm run bench -- lm-operators${j.quick ? ' --quick' : ''}`
  const lines: string[] = [
    `# The seed operators inside a KJV character LM (\`${cmd}\`)`,
    '',
    `**Trained runs**: dModel ${c.dModel}, ${c.layers} layers, ${c.heads} heads, context ${c.context}, vocabulary ${c.vocab}; ${r.steps} AdamW steps of ${r.batch}×${c.context} characters ` +
      `(${(r.steps * r.batch * c.context).toLocaleString('en')} training tokens), lr ${r.lr} (warm-up ${r.warmup}, cosine to ${+r.minLr.toPrecision(3)}), weight decay ${r.weightDecay}, clip ${r.clipNorm}; ` +
      `${j.trained.seeds} seed${j.trained.seeds > 1 ? 's (± is half the spread)' : ' (no spread: one seed in the laptop budget)'}. Validation: ${j.trained.evalTokens.toLocaleString('en')} characters of Romans–Revelation in windows of the training context. ` +
      `Position buckets: one forward over ${j.trained.longTokens.toLocaleString('en')} characters (16× context).`,
    '',
    '| run | paper | validation bits/char | Δ dense | train tok/s | prefill tok/s | decode tok/s (path) | held / state bytes at 1×, 4×, 16× context | bits/char by position | note |',
    '|---|---|---:|---:|---:|---:|---:|---|---|---|',
  ]
  const bucketsCell = (b: readonly Bucket[]) => b.map(x => `${x.from}–${x.to}: ${x.bitsPerChar.toFixed(2)}`).join('<br>')
  const bytesCell = (x: RunResult) =>
    x.bytes.held.length === 0 ? '—' : x.bytes.held.map((h, i) => (h === x.bytes.state[i] ? kib(h) : `${kib(h)} / ${kib(x.bytes.state[i]!)}`)).join(', ')
  for (const x of j.runs.filter(x => x.kind === 'trained')) {
    const delta = dense && x.id !== 'dense' && Number.isFinite(x.bitsPerChar) ? `${x.bitsPerChar - dense.bitsPerChar >= 0 ? '+' : ''}${(x.bitsPerChar - dense.bitsPerChar).toFixed(3)}` : '—'
    const path = x.decode === 'cache' ? `cache${x.decodeMatches === true ? ', = recompute' : x.decodeMatches === false ? ', ≠ recompute' : ''}` : x.decode
    lines.push(
      `| <a id="lm-${x.id}"></a>${x.label} | ${x.paper} | ${x.error ? `failed: ${x.error.slice(0, 120)}` : `${x.bitsPerChar.toFixed(4)}${x.spread > 0 ? ` ± ${x.spread.toFixed(4)}` : ''}`} | ${delta} | ${f(x.trainTokensPerSecond)} | ${f(x.prefillTokensPerSecond)} | ${f(x.decodeTokensPerSecond, 1)} (${path}) | ${bytesCell(x)} | ${bucketsCell(x.buckets)} | ${x.note} |`,
    )
  }
  for (const n of j.notApplicable) lines.push(`| <a id="lm-${n.id}"></a>${n.label} | | not run | | | | | | | ${n.why} |`)
  const a = j.applied
  lines.push(
    '',
    `**Applied without retraining** to ${a.model} (dModel ${a.config.dModel}, ${a.config.layers} layers, ${a.config.heads} heads, context ${a.config.context}). Cache policies: \`perplexity\` over one stream of ${a.streamTokens.toLocaleString('en')} validation characters (16× context, 64-token chunks); operators: one forward over ${a.forwardTokens.toLocaleString('en')} characters (${a.forwardTokens / a.config.context}× context).`,
    '',
    `| run | paper | bits/char, positions 0–${a.forwardTokens} | Δ full cache (in the first ${a.config.context}) | prefill tok/s | decode tok/s | KV bytes at 1×, 4×, 16× context | bits/char by position | note |`,
    '|---|---|---:|---:|---:|---:|---|---|---|',
  )
  for (const x of j.runs.filter(x => x.kind === 'applied')) {
    // One figure over the positions every applied run covers (the forward's length), and the delta there.
    const common = meanUpTo(x, a.forwardTokens)
    const delta = full && x.id !== 'applied-full' && Number.isFinite(common) ? signed(common - meanUpTo(full, a.forwardTokens)) : '—'
    const inCtx = full && x.id !== 'applied-full' && x.buckets[0] ? signed(x.buckets[0].bitsPerChar - full.buckets[0]!.bitsPerChar) : '—'
    lines.push(`| <a id="lm-${x.id}"></a>${x.label} | ${x.paper} | ${x.error ? `failed: ${x.error.slice(0, 120)}` : common.toFixed(4)} | ${delta} (${inCtx}) | ${f(x.prefillTokensPerSecond)} | ${f(x.decodeTokensPerSecond, 1)} | ${bytesCell(x)} | ${bucketsCell(x.buckets)} | ${x.note} |`)
  }
  lines.push(
    `| <a id="lm-pine"></a>PINE | Wang et al. 2024 | not run | | | | | | PINE makes a prompt's documents position-invariant (bidirectional between documents, re-ordered by importance); a character stream has no documents to permute. |`,
    `| <a id="lm-var"></a>VAR | Kang et al. 2025 | not run | | | | | | VAR redistributes attention from visual sink tokens to image tokens of a multimodal model; a character LM has no image tokens. |`,
  )
  const obs = j.runs.find(x => x.id === 'observers')
  if (obs?.extra) {
    const sm = obs.extra['sinkMass'] as number[][]
    const rs = obs.extra['retrieval'] as number[][]
    lines.push('', `<a id="lm-observers"></a>**Observers** (${obs.note}):`, '', '| layer | sink mass per head | retrieval score per head |', '|---:|---|---|')
    sm.forEach((row, l) => lines.push(`| ${l} | ${row.join(', ')} | ${rs[l]!.join(', ')} |`))
  }
  lines.push('', claims(j), '', `Machine: ${machineLine(j.machine)}. Timings are one run each on a shared machine: read them as rough.`, '')
  return lines.join('\n')
}

const signed = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`

/** Mean bits/char over the buckets that end by `n` (positions 0…n − 1). */
function meanUpTo(x: RunResult, n: number): number {
  let t = 0
  let c = 0
  for (const b of x.buckets)
    if (b.to <= n) {
      t += b.bitsPerChar * (b.to - b.from)
      c += b.to - b.from
    }
  return c > 0 ? t / c : NaN
}

/** Δ bits/char over the buckets both runs have (the stream and the forward cover different lengths). */
function deltaAtSamePositions(x: RunResult, base: RunResult): string {
  let d = 0
  let n = 0
  for (const b of x.buckets) {
    const o = base.buckets.find(y => y.from === b.from && y.to === b.to)
    if (o) {
      d += (b.bitsPerChar - o.bitsPerChar) * (b.to - b.from)
      n += b.to - b.from
    }
  }
  return n > 0 ? `${d / n >= 0 ? '+' : ''}${(d / n).toFixed(3)}` : '—'
}

/** One paper's claim beside what this bench measured: rendered as a bullet here and as a row of the results page. */
export interface Claim {
  /** The paper and its claim, e.g. "MoH — quality at or above dense with a fraction of the heads active". */
  readonly claim: string
  /** The paper's own figure, as the paper states it. */
  readonly paperFigure: string
  /** heed's figures (one sentence or a few). */
  readonly heed: string
  /** **Supports** / **Contradicts** / **Cannot test**, with the reason. */
  readonly verdict: string
}

/** The papers' claims beside heed's figures, computed from the sweep's runs (missing runs give "cannot test"). */
export function claimList(j: LmOperatorsJson): readonly Claim[] {
  const g = (id: string) => j.runs.find(x => x.id === id && !x.error)
  const dense = g('dense')
  const bpc = (id: string) => g(id)?.bitsPerChar
  const last = (id: string) => g(id)?.buckets.at(-1)?.bitsPerChar
  const first = (id: string) => g(id)?.buckets[0]?.bitsPerChar
  const rise = (id: string) => (last(id) !== undefined && first(id) !== undefined ? last(id)! - first(id)! : undefined)
  const d = (id: string) => (dense && bpc(id) !== undefined ? bpc(id)! - dense.bitsPerChar : undefined)
  const s = (x: number | undefined, p = 3) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(p))
  const verdict = (ok: boolean | undefined, yes: string, no: string) => (ok === undefined ? '**Cannot test** (run missing).' : ok ? yes : no)
  const obs = g('observers')?.extra as { sinkMass?: number[][]; retrieval?: number[][] } | undefined
  const maxSink = obs?.sinkMass ? Math.max(...obs.sinkMass.flat()) : undefined
  const meanSink = obs?.sinkMass ? obs.sinkMass.flat().reduce((a, x) => a + x, 0) / obs.sinkMass.flat().length : undefined
  const win = last('applied-window')
  const str = last('applied-streaming')
  const fullLast = last('applied-full')
  const duo50 = g('applied-duo-50')
  const duo75 = g('applied-duo-75')
  const act = g('applied-act')
  const full = g('applied-full')
  const inContext = (x: RunResult) => x.buckets[0]!.bitsPerChar - full!.buckets[0]!.bitsPerChar
  return [
    {
      claim: 'StreamingLLM — window attention without sinks degrades once the first tokens leave the window; a few sinks restore it',
      paperFigure: 'window perplexity explodes past the cache size; 4 sinks + recent stay stable to 4 M tokens',
      heed:
        `At 16× context: window ${s(win)}, sinks + recent ${s(str)}, full cache ${s(fullLast)} bits/char. Sink mass on position 0 per head: mean ${s(meanSink)}, max ${s(maxSink)} (StreamingLLM reports most heads > 0.5 past the first layers of 7B models).` +
        (act && full ? ` ACT's calibration changes bits/char by ${s(inContext(act))} in context and ${deltaAtSamePositions(act, full)} over its forward (ACT reports accuracy gains on 7B models; with sink mass this small there is little for it to move).` : ''),
      verdict: verdict(
        win !== undefined && str !== undefined ? str < win - 0.02 : undefined,
        '**Supports**: the sinks recover what the window loses.',
        win !== undefined && str !== undefined && Math.abs(str - win) <= 0.02 ? '**Does not reproduce at this scale**: sinks and window read the same — a short-context char model puts little mass on the first token, so dropping it costs little.' : '**Contradicts**: the window alone does better.',
      ),
    },
    {
      claim: 'DuoAttention — KV memory saving at minimal quality loss',
      paperFigure: 'up to 2.55× less KV for MHA, 1.67× for GQA',
      heed:
        duo50 && duo75 && full
          ? `50 % streaming heads: ${s((duo50.extra?.['saving16x'] as number) ?? NaN, 2)}× less KV at 16× context; within the training context (positions 0–${full.buckets[0]!.to}) it costs ${s(inContext(duo50))} bits/char (75 %: ${s((duo75.extra?.['saving16x'] as number) ?? NaN, 2)}×, ${s(inContext(duo75))}). Past the training context every bounded policy beats the full cache (${s(last('applied-full'))} bits/char at 8–16×, against ${s(last('applied-duo-25'))} / ${s(last('applied-duo-50'))} / ${s(last('applied-duo-75'))} for Duo 25 / 50 / 75 %): the full cache feeds RoPE distances the model never saw, so there the "saving" is also a gain, and the more heads a target leaves full the more of them read those distances (the gates are distilled towards the full model's own outputs, so they cannot learn to avoid that).`
          : 'runs missing',
      verdict: duo50 && duo75 && full ? verdict(inContext(duo50) < 0.05, '**Supports** (inside the context the loss is small).', '**Contradicts at this scale** (the loss is not minimal).') : '**Cannot test** (runs missing).',
    },
    {
      claim: 'Lightning / TransNormer and Flowformer — linear attention matches softmax, at constant cost per token',
      paperFigure: 'Flowformer: WikiText-103 perplexity 30.8 vs 33.0 for softmax; TransNormerLLM: on par with softmax LLMs',
      heed:
        `Δ bits/char vs dense: Lightning ${s(d('lightning'))}, hybrid ${s(d('lightning-hybrid'))}, Flow ${s(d('flow'))}; the hybrid ${d('lightning-hybrid') !== undefined && d('lightning') !== undefined && d('lightning-hybrid')! < d('lightning')! ? 'does better than all-Lightning, as TransNormerLLM reports' : 'does not beat all-Lightning here'}. ` +
        'Constant cost per token: Lightning and Flow stream a fixed-size state through the cache (held bytes flat from 1× to 16× context).',
      verdict: `Lightning: ${verdict(d('lightning') !== undefined ? d('lightning')! < 0.05 : undefined, '**supports**', '**contradicts at this budget**')}; Flow: ${verdict(d('flow') !== undefined ? d('flow')! < 0.05 : undefined, '**supports**', '**contradicts at this budget** (it trails softmax; Flowformer trains ~10⁴× more tokens)')}.`,
    },
    {
      claim: 'Titans — better long-context modelling than attention-only baselines',
      paperFigure: 'lower perplexity than Transformer++ at 170–760 M parameters; needle-in-a-haystack beyond 2 M tokens',
      heed: `Bits/char at the last position bucket (8–16× context): dense ${s(last('dense'))}, window ${s(last('window'))}, MAC ${s(last('titans-mac'))}, MAG ${s(last('titans-mag'))}, MAL ${s(last('titans-mal'))}; rise from the first bucket (in context) to the last: dense ${s(rise('dense'))}, window ${s(rise('window'))}, MAC ${s(rise('titans-mac'))}, MAG ${s(rise('titans-mag'))}, MAL ${s(rise('titans-mal'))}.`,
      verdict: verdict(
        last('titans-mag') !== undefined && last('dense') !== undefined ? Math.min(last('titans-mac') ?? 99, last('titans-mag') ?? 99, last('titans-mal') ?? 99) < Math.min(last('dense')!, last('window') ?? 99) : undefined,
        '**Supports**: a Titans variant beats both attention baselines past the training context.',
        '**Cannot confirm at this scale**: Titans degrades less than dense attention past the training context, but the sliding window is better still, and in context Titans trails (the paper trains 170–760 M parameters on 15–30 B tokens; here the memory has 77 k tokens to learn to memorise).',
      ),
    },
    {
      claim: 'MoH — quality at or above dense with a fraction of the heads active',
      paperFigure: 'MoH-LLaMA3-8B: +2.4 % average accuracy over 14 benchmarks with 75 % of the heads',
      heed: `MoH (75 % of heads per token) Δ ${s(d('moh'))} bits/char against dense.`,
      verdict: verdict(d('moh') !== undefined ? d('moh')! <= 0.02 : undefined, '**Supports** (within 0.02 bits/char of dense).', '**Contradicts at this scale** (it trails dense; MoH also fine-tunes from a dense model and adds a balance loss, neither done here).'),
    },
  ]
}

function claims(j: LmOperatorsJson): string {
  return [
    "**The papers' claims beside heed's figures** (a 0.1–1 M-parameter character model, a few minutes of CPU training: large effects show, small ones drown in seed noise).",
    '',
    ...claimList(j).map(c => `- **${c.claim}** (paper: ${c.paperFigure}). ${c.heed} ${c.verdict}`),
  ].join('\n')
}

function colours(n: number): string[] {
  return Array.from({ length: n }, (_, i) => (i < PALETTE.length ? PALETTE[i]! : `hsl(${Math.round((i * 360) / (n - PALETTE.length + 1) + 15) % 360}, 65%, 40%)`))
}

export function plots(j: LmOperatorsJson): Record<string, string> {
  const trained = j.runs.filter(x => x.kind === 'trained' && !x.error)
  const applied = j.runs.filter(x => x.kind === 'applied' && !x.error)
  const col = colours(trained.length + applied.length)
  const colour = new Map([...trained, ...applied].map((x, i) => [x.id, col[i]!]))
  const pareto = chart({
    title: 'Bits per character vs KV/state bytes held at 16× context (trained runs: validation; applied: their stream)',
    xLabel: 'bytes held at 16× the training context (log)',
    yLabel: 'bits per character',
    logX: true,
    series: [...trained, ...applied].map(x => ({ name: x.label, points: [[x.bytes.held[2] ?? x.bytes.held.at(-1) ?? 1, x.bitsPerChar] as const], line: false, markers: true, color: colour.get(x.id)! })),
  })
  const position = chart({
    title: 'Bits per character by position (bucket midpoints); dashed: applied to the shipped model',
    xLabel: 'position in the stream (characters, log)',
    yLabel: 'bits per character',
    logX: true,
    series: [...trained, ...applied].map(x => ({ name: x.label, points: x.buckets.map(b => [Math.max(1, (b.from + b.to) / 2), b.bitsPerChar] as const), color: colour.get(x.id)!, dashed: x.kind === 'applied' })),
  })
  const curves = chart({
    title: 'Training curves (training loss, bits per character, seed 0)',
    xLabel: 'step',
    yLabel: 'training loss (bits per character)',
    series: trained.map(x => ({ name: x.label, points: smooth(x.seeds[0]?.curve ?? []), color: colour.get(x.id)! })),
  })
  return { pareto, position, training: curves }
}

/** A running mean over 5 steps, so the curves stay readable side by side. */
function smooth(c: readonly (readonly [number, number])[]): [number, number][] {
  return c.map((p, i) => {
    const w = c.slice(Math.max(0, i - 4), i + 1)
    return [p[0], w.reduce((a, q) => a + q[1], 0) / w.length]
  })
}
