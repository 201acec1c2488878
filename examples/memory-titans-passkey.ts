// Passkey recall at long range: Titans neural memory against sliding-window attention, then an HCAM needle.
// Run: node --conditions=@heed/source --import tsx examples/memory-titans-passkey.ts [length] [trials]
//      (or `npm run example -- memory-titans-passkey`); writes out/memory-titans-passkey/passkey.svg.
//
// The haystack is a repeating filler text (24 words, each always followed by the same next word). Somewhere in the
// first 80% of it sits "PASS d" with a random digit d. Every position t writes the association
// token_t → token_{t+1}; at the end the query is PASS and the answer is the digit whose embedding is nearest to
// what comes back. Both models see the same keys and values; only the memory differs.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { add, dispose, matmul, memory, mul, random, reshape, rsqrt, scope, sum, square, tensor, type Tensor } from '@heed/tensor'
import { mask, scaledDotProductAttention } from '@heed/attention'
import { disposeHcam, disposeTitansState, hcamMemory, hcamRead, hcamWrite, initMemoryWeights, memoryForward, titansState, titansStep } from '@heed/memory'
import { outDir, writeOutput } from './lib/out.js'
import { bars } from './lib/plot.js'
import { progress } from './lib/progress.js'

const D = 128
const WINDOW = 512
const FILLER = 24
const PASS = FILLER
const DIGIT0 = FILLER + 1
const V = FILLER + 11

export type PasskeyModel = 'window' | 'full' | 'titans-linear' | 'titans-mlp' | 'titans-forget'

export const PASSKEY_MODELS: Readonly<Record<PasskeyModel, string>> = {
  window: `attention, window ${WINDOW}`,
  full: 'attention, full (KV cache of every token)',
  'titans-linear': 'Titans, linear memory (d×d state)',
  'titans-mlp': 'Titans, 2-layer MLP memory',
  'titans-forget': 'Titans, linear, forgetting α=0.01',
}

export interface PasskeyOptions {
  readonly length?: number
  readonly trials?: number
  readonly models?: readonly PasskeyModel[]
  readonly seed?: number
  /** Called after every (trial, model) run, for progress. */
  readonly onRun?: () => void
}

export interface PasskeyRow {
  readonly model: PasskeyModel
  readonly name: string
  readonly correct: number
  readonly trials: number
  readonly msPerSequence: number
  /** Floats the model keeps to answer: the window's or the full cache's keys and values, or the memory weights. */
  readonly stateFloats: number
}

export interface PasskeyResult {
  readonly length: number
  readonly trials: number
  readonly rows: readonly PasskeyRow[]
}

export function runPasskey(opts: PasskeyOptions = {}): PasskeyResult {
  const L = opts.length ?? 4096
  const TRIALS = opts.trials ?? 5
  const models = opts.models ?? (Object.keys(PASSKEY_MODELS) as PasskeyModel[])
  const g = random.rng(opts.seed ?? 2026)

  // Random unit embeddings: nearly, not exactly, orthogonal, so every write disturbs every other association a bit.
  const emb = scope(() => {
    const e = random.normal([V, D], { rng: g })
    return mul(e, rsqrt(sum(square(e), { axis: 1, keepDims: true })))
  })
  const embHost = emb.dataSync()
  const row = (i: number) => Array.from(embHost.subarray(i * D, (i + 1) * D))
  const nearestDigit = (y: ArrayLike<number>): number => {
    let best = 0
    let bestScore = -Infinity
    for (let d = 0; d < 10; d++) {
      const r = row(DIGIT0 + d)
      const s = r.reduce((acc, x, i) => acc + x * y[i]!, 0) / Math.hypot(...r)
      if (s > bestScore) [best, bestScore] = [d, s]
    }
    return best
  }
  const haystack = (digit: number, depth: number): number[] => {
    const toks: number[] = []
    let w = g.int(0, FILLER)
    while (toks.length < L) {
      if (toks.length === depth) toks.push(PASS, DIGIT0 + digit)
      else toks.push(w++ % FILLER)
    }
    toks.length = L
    toks[L - 1] = PASS // the query token
    return toks
  }
  const rowsOf = (ids: number[]): Tensor => scope(() => matmul(tensor(ids.map(i => Array.from({ length: V }, (_, j) => (j === i ? 1 : 0))), [ids.length, V]), emb))

  const scores = new Map<PasskeyModel, { correct: number; ms: number }>(models.map(m => [m, { correct: 0, ms: 0 }]))
  const record = (m: PasskeyModel, ok: boolean, ms: number) => {
    const s = scores.get(m)!
    s.correct += ok ? 1 : 0
    s.ms += ms
    opts.onRun?.()
  }

  for (let trial = 0; trial < TRIALS; trial++) {
    const digit = g.int(0, 10)
    const depth = g.int(Math.floor(0.02 * L), Math.floor(0.8 * L))
    const toks = haystack(digit, depth)
    const keys = rowsOf(toks.slice(0, L - 1)) // the last token is the query: nothing follows it
    const values = rowsOf(toks.slice(1))
    const query = rowsOf([PASS])
    for (const m of models) {
      const t0 = performance.now()
      let answer: ArrayLike<number>
      if (m === 'window' || m === 'full') {
        answer = scope(() => {
          const r = (x: Tensor, n: number) => reshape(x, [1, 1, n, D])
          // A sharp scale: at the default 1/√D one exact match among thousands of near-orthogonal keys barely stands out.
          const o = { causal: true, scale: 16, queryOffset: L - 1, ...(m === 'window' ? { mask: mask.window(WINDOW) } : {}) }
          return scaledDotProductAttention(r(query, 1), r(keys, L - 1), r(values, L - 1), o).out.dataSync()
        })
      } else {
        const depthM = m === 'titans-mlp' ? 2 : 1
        const alpha = m === 'titans-forget' ? 0.01 : 0
        const w = initMemoryWeights({ keyDim: D, depth: depthM, hidden: 2 * D, init: depthM === 1 ? 'zeros' : 'normal', seed: trial })
        const s0 = titansState(w)
        const res = titansStep(s0, { keys, values, queries: keys, gates: { theta: depthM === 1 ? 0.2 : 0.05, eta: 0.6, alpha } }, { chunkSize: 16, activation: 'tanh' })
        answer = scope(() => memoryForward(res.state.weights, query, 'tanh').dataSync())
        dispose([w, res.out])
        disposeTitansState(s0)
        disposeTitansState(res.state)
      }
      record(m, nearestDigit(answer) === digit, performance.now() - t0)
    }
    dispose([keys, values, query])
  }
  dispose(emb)
  const stateFloats = (m: PasskeyModel): number =>
    m === 'window' ? 2 * WINDOW * D : m === 'full' ? 2 * (L - 1) * D : m === 'titans-mlp' ? 2 * D * 2 * D + 2 * D : D * D
  return {
    length: L,
    trials: TRIALS,
    rows: models.map(m => ({ model: m, name: PASSKEY_MODELS[m], correct: scores.get(m)!.correct, trials: TRIALS, msPerSequence: scores.get(m)!.ms / TRIALS, stateFloats: stateFloats(m) })),
  }
}

// HCAM: 256 chunks of 16 rows; one chunk holds a needle pattern. Top-4 chunk attention finds it; a window over
// the most recent rows cannot reach it. "Influence" is how much the output moves when the needle is removed.
export function runHcamNeedle(log: (s: string) => void = console.log): void {
  const g = random.rng(7)
  const M = 256, C = 16
  const needleAt = 57
  const needle = random.normal([1, D], { rng: g })
  const noise = random.normal([M * C, D], { rng: g })
  const planted = scope(() => {
    const plant = tensor(Array.from({ length: M * C }, (_, i) => (Math.floor(i / C) === needleAt ? 1 : 0)), [M * C, 1])
    return add(noise, mul(plant, mul(needle, 3)))
  })
  const hcam = (rows: Tensor) => {
    const mem = hcamWrite(hcamMemory({ chunkSize: C }), rows)
    const r = hcamRead(mem, needle, { topK: 4, heads: 4 })
    disposeHcam(mem)
    return r
  }
  const windowed = (rows: Tensor) =>
    scope(() => {
      const r4 = (x: Tensor, n: number) => reshape(x, [1, 1, n, D])
      return scaledDotProductAttention(r4(needle, 1), r4(rows, M * C), r4(rows, M * C), { causal: true, mask: mask.window(WINDOW), queryOffset: M * C - 1 }).out
    })
  const influence = (a: Tensor, b: Tensor) => {
    const x = a.dataSync(), y = b.dataSync()
    let num = 0, den = 0
    for (let i = 0; i < x.length; i++) [num, den] = [num + (x[i]! - y[i]!) ** 2, den + x[i]! ** 2]
    return Math.sqrt(num / den)
  }
  const t0 = performance.now()
  const withNeedle = hcam(planted)
  const ms = performance.now() - t0
  const without = hcam(noise)
  const [w1, w0] = [windowed(planted), windowed(noise)]
  log(`HCAM needle: ${M} chunks × ${C} rows, needle in chunk ${needleAt}, query = the needle pattern`)
  log(`  HCAM top-4 chunks ${JSON.stringify(Array.from(withNeedle.indices.dataSync()))}, weight on chunk ${needleAt}: ${withNeedle.weights.dataSync()[0]!.toFixed(3)}; needle influence on the output ${influence(withNeedle.out, without.out).toFixed(3)}  (${ms.toFixed(0)} ms)`)
  log(`  window-${WINDOW} attention: needle influence on the output ${influence(w1, w0).toFixed(3)}`)
  log(`  cost per query: ${withNeedle.cost.selection + withNeedle.cost.chunks} multiply-adds vs ${withNeedle.cost.fullAttention} for full attention over all ${M * C} rows`)
  dispose([needle, noise, planted, withNeedle, without, w1, w0])
}

export function passkeySvg(r: PasskeyResult): string {
  return bars({
    title: `Passkey recall at ${r.length} tokens (${r.trials} trials, chance 10 %)`,
    unit: '%',
    rows: r.rows.map(x => ({ label: x.name, value: (100 * x.correct) / x.trials, note: `(${(x.msPerSequence / 1000).toFixed(1)} s/seq)` })),
  })
}

async function main(): Promise<void> {
  const L = Number(process.argv[2] ?? 4096)
  const trials = Number(process.argv[3] ?? 5)
  const baseline = memory().tensors
  const bar = progress()
  const models = Object.keys(PASSKEY_MODELS) as PasskeyModel[]
  console.log(`passkey recall: ${trials} trials, length ${L}, d=${D}; window attention sees the last ${WINDOW} tokens`)
  bar.stage('passkey', trials * models.length)
  const r = runPasskey({ length: L, trials, models, onRun: () => bar.tick() })
  bar.done()
  for (const s of r.rows) console.log(`  ${s.name.padEnd(44)} ${String(s.correct).padStart(2)}/${trials} correct  (${s.msPerSequence.toFixed(0)} ms per sequence)`)
  console.log('  chance is 1/10; the window cannot see the passkey, the memory keeps it in a fixed-size state')
  runHcamNeedle()
  const dir = outDir('memory-titans-passkey')
  const json = writeOutput(join(dir, 'passkey.json'), JSON.stringify(r, null, 2))
  console.log(`\nwrote ${writeOutput(join(dir, 'passkey.svg'), passkeySvg(r))} and ${json}`)
  console.log(`live tensors after the demo: ${memory().tensors - baseline}`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
