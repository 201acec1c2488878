/**
 * `npm start`: a tour of heed on the default (CPU) backend, run from source. Four sections:
 *
 * - lm: the shipped character-level transformer (trained on the King James Bible, no training here) streams
 *   generated text to the terminal through the RxJS pipeline, then reads the validation books under different KV
 *   cache policies — full, a window without sinks, StreamingLLM's sinks + recent, DuoAttention with the retrieval
 *   heads its gate optimisation found on this model, and a linear operator swapped in — scored in bits per
 *   character against the KV bytes held, also past the training context;
 * - memory: Sparsey stores MNIST digits in one pass and classifies by recalled codes, the Tensor Brain recalls
 *   WordNet episodes, Titans recalls a passkey from a fixed-size state;
 * - align: a few DPO steps on a tiny language model (the loss starts at ln 2);
 * - fairness: the Distraction module on a slice of UCI Adult (accuracy and demographic-parity gap).
 *
 * Progress goes to stderr, the summary table to stdout, and an HTML report with inline SVG plots to
 * out/tour/report.html. `--quick` shrinks every section (the test suite runs it that way).
 *
 *   npm start                 # ~1 minute on 2 cores
 *   npm start -- --quick      # ~20 s
 */
import { join } from 'node:path'
import { lastValueFrom, reduce, tap } from 'rxjs'
import { dispose, getBackend, memory } from '@heed/tensor'
import { charTokenizer, duoDeploy, headPolicy, kjvSplit, loadKjv, loadKjvModel, operators, perplexity, transformerLM, type LMPolicies } from '@heed/attention'
import { generateText } from '@heed/attention/stream'
import { accuracy, demographicParityDifference, loadAdult, PAPER_ADULT, trainDistraction, trainMlp, trainProtectedAttributeEncoder, type Classifier, type TabularData } from '@heed/fairness'
import { run as runDpo } from './align-dpo.js'
import { runMnistDemo } from './memory-sparsey-mnist.js'
import { noiseSvg, runTensorBrainDemo } from './memory-tensor-brain.js'
import { runPasskey } from './memory-titans-passkey.js'
import { outDir, writeOutput } from './lib/out.js'
import { chart } from './lib/plot.js'
import { progress } from './lib/progress.js'

const quick = process.argv.includes('--quick')
const bar = progress()
const started = performance.now()
const baseline = memory().tensors

/** One line of the summary table. */
interface Row {
  readonly section: string
  readonly run: string
  readonly result: string
  readonly seconds: number
}
const rows: Row[] = []
/** HTML fragments of the report, one per section. */
const report: string[] = []
/** Machine-readable results, written beside the report for scripts/results.ts. */
const summary: Record<string, unknown> = {}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const kib = (b: number): string => (b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`)
const pct = (x: number): string => `${(100 * x).toFixed(1)} %`
const htmlTable = (head: readonly string[], body: readonly (readonly string[])[]): string =>
  `<table><tr>${head.map(h => `<th>${esc(h)}</th>`).join('')}</tr>${body.map(r => `<tr>${r.map(c => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</table>`
const timed = async <T,>(f: () => T | Promise<T>): Promise<[T, number]> => {
  const t0 = performance.now()
  const r = await f()
  return [r, (performance.now() - t0) / 1000]
}

// ---- the language model -----------------------------------------------------------------------------------

interface PolicyRun {
  readonly name: string
  readonly bitsPerChar: number
  /** KV bytes retained after the text (or the fixed state of a linear operator). */
  readonly kvBytes: number
  readonly buckets: readonly { readonly from: number; readonly to: number; readonly bitsPerChar: number }[]
  readonly seconds: number
  readonly note: string
}

async function lmSection(): Promise<void> {
  bar.stage('lm: loading the shipped model')
  const tLoad = performance.now()
  const model = await loadKjvModel()
  const loadSeconds = (performance.now() - tLoad) / 1000
  const { lm, params } = model
  const tok = charTokenizer(model.vocab)
  const { context: T, layers, kvHeads, heads } = lm.config
  const card = (model.card ?? {}) as { validationBitsPerChar?: number; command?: string }
  rows.push({ section: 'lm', run: `shipped KJV model: ${(lm.parameterCount / 1e6).toFixed(2)} M params, ${layers} layers, context ${T}`, result: `validation ${card.validationBitsPerChar?.toFixed(3) ?? '?'} bits/char (Romans–Revelation)`, seconds: loadSeconds })

  // Generation through the RxJS pipeline: tokens stream to the terminal as they are sampled.
  const prompt = 'And God said unto'
  const maxTokens = quick ? 80 : 240
  bar.stage(`lm: generating ${maxTokens} characters`)
  process.stdout.write(`\n${prompt}`)
  const t0 = performance.now()
  const text = await lastValueFrom(
    generateText(lm, params, tok, prompt, { maxTokens, temperature: 0.8, topK: 20, seed: 1 }).pipe(
      tap(c => process.stdout.write(c)),
      reduce((acc, c) => acc + c, ''),
    ),
  )
  const genS = (performance.now() - t0) / 1000
  process.stdout.write('\n\n')
  rows.push({ section: 'lm', run: `generate ${maxTokens} chars (T 0.8, top-k 20, seed 1)`, result: `${(maxTokens / genS).toFixed(0)} chars/s with a KV cache`, seconds: genS })
  summary['generation'] = { prompt, text, seconds: genS }

  // Cache policies on the validation books, past the training context.
  const split = kjvSplit(await loadKjv())
  const n = quick ? 3 * T : 8 * T
  const valTokens = tok.encode(split.validationText).subarray(0, n + 1)
  const sink = 4
  const recent = 124
  const stream = (s: number, w: number) => Array.from({ length: kvHeads }, () => headPolicy.streaming(s, w))
  const runs: PolicyRun[] = []
  const measure = async (name: string, policies: LMPolicies | undefined, note: string): Promise<void> => {
    bar.stage(`lm: ${name} over ${n} validation characters`, n)
    let seen = 0
    const t1 = performance.now()
    const r = await perplexity(lm, params, valTokens, { ...(policies ? { policies } : {}), chunk: 64, onProgress: read => (bar.tick(read - seen), (seen = read)) })
    runs.push({ name, bitsPerChar: r.bitsPerChar, kvBytes: r.kvBytes.final, buckets: r.buckets, seconds: (performance.now() - t1) / 1000, note })
  }
  await measure('full KV cache', undefined, 'every token kept')
  await measure(`window of ${sink + recent}, no sinks`, stream(0, sink + recent), 'the first tokens leave the window')
  await measure(`StreamingLLM: ${sink} sinks + ${recent} recent`, stream(sink, recent), 'constant cache')
  if (model.duo) {
    const perLayer = model.duo.gates.map(g => duoDeploy(g, { sparsity: 0.5, sink: model.duo!.sink, recent: model.duo!.recent }))
    const retrieval = perLayer.reduce((k, d) => k + d.retrieval.filter(Boolean).length, 0)
    await measure(`DuoAttention: ${retrieval}/${layers * kvHeads} retrieval heads`, (l: number) => perLayer[l]!.policies, `gates trained on this model (lmDuoGates); streaming heads ${model.duo.sink} + ${model.duo.recent}`)
  }
  // A linear operator swapped in without retraining: one fixed-size state per head instead of a cache.
  bar.stage('lm: Lightning attention in every layer (no retraining)')
  const t2 = performance.now()
  const linear = transformerLM({ ...lm.config, attention: () => operators.lightning({ decay: 'tnl', blockSize: 64 }) })
  const lin = await perplexity(linear, params, valTokens, { chunk: n })
  const headDim = lm.blocks[0]!.attention.headDim
  runs.push({ name: 'Lightning (linear, TNL decay), not retrained', bitsPerChar: lin.bitsPerChar, kvBytes: layers * heads * headDim * headDim * 4, buckets: lin.buckets, seconds: (performance.now() - t2) / 1000, note: 'state bytes; the weights were trained for softmax' })
  dispose(params)

  summary['lm'] = { config: lm.config, parameters: lm.parameterCount, card, tokens: n, runs }
  for (const r of runs) rows.push({ section: 'lm', run: r.name, result: `${r.bitsPerChar.toFixed(3)} bits/char, KV ${kib(r.kvBytes)}`, seconds: r.seconds })
  const pareto = chart({
    title: `Validation bits per character vs KV bytes (${n} characters)`,
    xLabel: 'KV bytes held at the end (log)',
    yLabel: 'bits per character',
    logX: true,
    series: runs.map(r => ({ name: r.name, points: [[r.kvBytes, r.bitsPerChar] as const], line: false })),
  })
  const byPos = chart({
    title: 'Bits per character by position (training context ' + T + ')',
    xLabel: 'position in the text (bucket start)',
    yLabel: 'bits per character',
    series: runs.map(r => ({ name: r.name, points: r.buckets.filter(b => Number.isFinite(b.bitsPerChar)).map(b => [b.from, b.bitsPerChar] as const), markers: true })),
  })
  report.push(`<h2>Language model</h2>
<p>The shipped character-level model (${lm.parameterCount.toLocaleString('en')} parameters, ${layers} layers, ${heads} heads, context ${T}), trained on Genesis–Acts of the King James Bible; ${card.command ? `made by <code>${esc(card.command)}</code>; ` : ''}validation text is Romans–Revelation, never trained on.</p>
<h3>Generated from “${esc(prompt)}”</h3><pre>${esc(prompt + text)}</pre>
<h3>Cache policies on ${n} validation characters</h3>
<p>Each run reads the validation text as one stream, 64 characters at a time, with one KV cache per layer under the policy; bits per character of every next-character prediction, overall and by position (positions past ${T} are beyond anything the model saw in training).</p>
${htmlTable(['run', 'bits/char', 'KV bytes', 'time', 'note'], runs.map(r => [r.name, r.bitsPerChar.toFixed(4), kib(r.kvBytes), `${r.seconds.toFixed(1)} s`, r.note]))}
<div class="plots">${pareto}${byPos}</div>`)
}

// ---- memory ---------------------------------------------------------------------------------------------------

async function memorySection(): Promise<void> {
  const perClass = quick ? 20 : 60
  bar.stage(`memory: Sparsey, MNIST ${perClass}/class single-trial`)
  const [mn, mnS] = await timed(() => runMnistDemo({ trainPerClass: perClass, testPerClass: quick ? 10 : 20 }))
  rows.push({ section: 'memory', run: `Sparsey MNIST, ${mn.trained} digits stored once`, result: `accuracy ${pct(mn.accuracy)} (paper ~91 % at 200/class)`, seconds: mnS })

  bar.stage('memory: Tensor Brain, WordNet episodes')
  const noises = quick ? [0, 1.5] : [0, 1, 1.5, 2]
  const [tb, tbS] = await timed(() => runTensorBrainDemo({ noises, limit: quick ? 100 : 295 }))
  rows.push({ section: 'memory', run: `Tensor Brain, ${tb.triples} WordNet episodes`, result: `episodic recall ${pct(tb.recallExact)}, old kept ${pct(tb.oldRecallAfterNew)}`, seconds: tbS })

  const length = quick ? 1024 : 2048
  const trials = quick ? 2 : 3
  const models = ['window', 'full', 'titans-linear'] as const
  bar.stage(`memory: Titans passkey at ${length} tokens`, trials * models.length)
  const [pk, pkS] = await timed(() => runPasskey({ length, trials, models, onRun: () => bar.tick() }))
  const titans = pk.rows.find(r => r.model === 'titans-linear')!
  const win = pk.rows.find(r => r.model === 'window')!
  rows.push({ section: 'memory', run: `Titans passkey, ${length} tokens`, result: `recall ${titans.correct}/${trials} (window-512 ${win.correct}/${trials})`, seconds: pkS })

  report.push(`<h2>Memory</h2>
${htmlTable(['model', 'task', 'result', 'reference', 'time'], [
  ['Sparsey (2-level hierarchy)', `MNIST, ${perClass}/class stored in one pass, 5-NN on recalled codes`, `${pct(mn.accuracy)} (5-NN on its input pixels ${pct(mn.pixelAccuracy)})`, '~91 % at 200/class (sparsey.com)', `${mnS.toFixed(1)} s`],
  ['Tensor Brain', `${tb.triples} WordNet triples as episodes, recall by time index`, `${pct(tb.recallExact)} exact; old episodes unchanged ${pct(tb.oldRecallAfterNew)}`, 'exact recall when episodes ≪ n', `${tbS.toFixed(1)} s`],
  ...pk.rows.map(r => [r.name, `passkey at ${length} tokens`, `${r.correct}/${r.trials}`, r.model === 'window' ? 'cannot see the passkey' : 'chance 1/10', `${r.msPerSequence.toFixed(0)} ms/seq`]),
])}
<div class="plots">${noiseSvg(tb)}</div>`)
}

// ---- align ----------------------------------------------------------------------------------------------------

async function alignSection(): Promise<void> {
  const steps = quick ? 20 : 60
  bar.stage(`align: DPO and Flex-DPO, ${steps} steps`)
  const [r, s] = await timed(() => runDpo({ steps, quiet: true, referenceSteps: quick ? 30 : 60 }))
  const loss = r.dpo.series['loss']!
  const flexLoss = r.flex.series['loss']!
  const acc = r.dpo.series['rewards/accuracies']!
  rows.push({ section: 'align', run: `DPO (β 0.1), ${steps} steps`, result: `loss ${loss[0]!.toFixed(3)} → ${loss.at(-1)!.toFixed(3)} (ln 2 = 0.693), acc ${acc.at(-1)!.toFixed(2)}`, seconds: s })
  const steps1 = (ys: readonly number[]) => ys.map((y, i) => [i + 1, y] as const)
  const lossSvg = chart({ title: 'Preference loss (starts at ln 2)', xLabel: 'step', yLabel: 'loss', yMin: 0, series: [{ name: 'DPO', points: steps1(loss) }, { name: 'Flex-DPO', points: steps1(flexLoss) }] })
  const logpSvg = chart({
    title: 'Sequence log-probs of chosen and rejected',
    xLabel: 'step',
    yLabel: 'log p',
    series: [
      { name: 'DPO chosen', points: steps1(r.dpo.series['logps/chosen']!) },
      { name: 'DPO rejected', points: steps1(r.dpo.series['logps/rejected']!), dashed: true },
      { name: 'Flex chosen', points: steps1(r.flex.series['logps/chosen']!) },
      { name: 'Flex rejected', points: steps1(r.flex.series['logps/rejected']!), dashed: true },
    ],
  })
  report.push(`<h2>Align</h2>
<p>DPO against a frozen SFT reference on a tiny token model (examples/align-dpo.ts): the policy starts as the reference, so the loss
starts at ln 2 = 0.693. Loss ${loss[0]!.toFixed(4)} → ${loss.at(-1)!.toFixed(4)} (DPO), ${flexLoss[0]!.toFixed(4)} → ${flexLoss.at(-1)!.toFixed(4)} (Flex-DPO).</p>
<div class="plots">${lossSvg}${logpSvg}</div>`)
}

// ---- fairness -------------------------------------------------------------------------------------------------

async function fairnessSection(): Promise<void> {
  const nTrain = quick ? 3000 : 6000
  const nTest = quick ? 2000 : 5000
  bar.stage(`fairness: UCI Adult slice (${nTrain} train / ${nTest} test)`)
  const t0 = performance.now()
  const loaded = await loadAdult()
  if (loaded._tag === 'Left') throw loaded.left
  const head = (d: TabularData, n: number): TabularData => ({ ...d, n, x: d.x.subarray(0, n * d.d), y: d.y.subarray(0, n), groups: d.groups.subarray(0, n) })
  const train = head(loaded.right.train, nTrain)
  const test = head(loaded.right.test, nTest)
  const batchSize = 64
  const score = (m: Classifier) => {
    const yp = Array.from(m.predictProba(test), p => (p > 0.5 ? 1 : 0))
    return { acc: accuracy(test.y, yp), dp: demographicParityDifference(test.y, yp, { sensitiveFeatures: test.groups }) }
  }
  const epochs = 2
  const steps = Math.ceil(nTrain / batchSize)
  const tick = { tick: (n = 1) => bar.tick(n), done: () => {} }

  bar.stage('fairness: unconstrained MLP', epochs * steps)
  const tMlp = performance.now()
  const mlp = trainMlp(train, { epochs, batchSize, seed: 0, progress: tick })
  const base = score(mlp)
  const mlpSeconds = (performance.now() - tMlp) / 1000
  mlp.dispose()
  bar.stage('fairness: protected-attribute encoder', epochs * steps)
  const encoder = trainProtectedAttributeEncoder(train, { epochs, batchSize, seed: 0, progress: tick })
  const etas = [10]
  const points: { eta: number; acc: number; dp: number }[] = []
  for (const eta of etas) {
    bar.stage(`fairness: Distraction η = ${eta}`, 6 * steps)
    // The bench's settings on a slice: 2 warm-up + 4 alternating epochs, the paper's module lr, the classifier on
    // BCE + η·DP as the authors' code trains it (classifierPenalty, the default).
    const m = trainDistraction(train, { encoder, eta, epochs: 4, warmupEpochs: 2, batchSize, seed: 0, lrModule: 1e-5, moduleBiases: 'accuracy', decayEvery: 1, decayGamma: 0.9, progress: tick })
    points.push({ eta, ...score(m) })
    m.dispose()
  }
  encoder.dispose()
  // The encoder and Distraction, without the MLP's row.
  const seconds = (performance.now() - t0) / 1000 - mlpSeconds
  const last = points.at(-1)!
  rows.push({ section: 'fairness', run: `MLP on Adult slice (${nTrain}/${nTest})`, result: `acc ${base.acc.toFixed(4)}, DP gap ${base.dp.toFixed(3)} (paper 0.8485 / 0.188)`, seconds: mlpSeconds })
  rows.push({ section: 'fairness', run: `Distraction η = ${last.eta}`, result: `acc ${last.acc.toFixed(4)}, DP gap ${last.dp.toFixed(3)} (paper 0.8309 / 0.000)`, seconds })
  const svg = chart({
    title: 'Adult (sex): accuracy vs demographic-parity gap',
    xLabel: 'DP gap',
    yLabel: 'test accuracy',
    xMin: 0,
    series: [
      { name: 'MLP (this run)', points: [[base.dp, base.acc]], line: false },
      { name: 'Distraction (this run)', points: points.map(p => [p.dp, p.acc] as const), line: false },
      { name: 'paper (soft ΔDP)', points: PAPER_ADULT.map(p => [p.softDp, p.accuracy] as const), line: false, color: '#7f7f7f' },
    ],
  })
  report.push(`<h2>Fairness</h2>
<p>The Distraction module on the first ${nTrain} training and ${nTest} test rows of UCI Adult (sensitive attribute: sex),
two warm-up and four alternating epochs (module lr 1e-5; the classifier steps on cross-entropy plus η·DP, as the authors' code
trains it). On a slice this small the gap comes down but not to the paper's; <code>npm run bench -- fairness</code> trains on the
whole split, picks (η, epoch) on a validation split and reaches 0.834 accuracy at a DP gap of 0.015 (packages/fairness/README.md).</p>
${htmlTable(['model', 'η', 'accuracy', 'DP gap'], [
  ['MLP (unconstrained)', '', base.acc.toFixed(4), base.dp.toFixed(4)],
  ...points.map(p => ['Distraction', String(p.eta), p.acc.toFixed(4), p.dp.toFixed(4)]),
  ...PAPER_ADULT.map(p => [p.method, '', p.accuracy.toFixed(4), `${p.softDp.toFixed(3)} (soft)`]),
])}
<div class="plots">${svg}</div>`)
}

// ---- run ------------------------------------------------------------------------------------------------------

console.log(`heed tour on the ${getBackend()} backend${quick ? ' (--quick)' : ''}`)
await lmSection()
await memorySection()
await alignSection()
await fairnessSection()
const total = (performance.now() - started) / 1000
bar.done(`${total.toFixed(0)} s`)

const w = [9, Math.max(...rows.map(r => r.run.length)), Math.max(...rows.map(r => r.result.length)), 7] as const
const line = (c: readonly string[]) => `${c[0]!.padEnd(w[0])} | ${c[1]!.padEnd(w[1])} | ${c[2]!.padEnd(w[2])} | ${c[3]!.padStart(w[3])}`
console.log('')
console.log(line(['section', 'run', 'result', 'time']))
console.log(line(w.map(n => '-'.repeat(n))))
for (const r of rows) console.log(line([r.section, r.run, r.result, r.seconds > 0 ? `${r.seconds.toFixed(2)} s` : '']))

const live = memory().tensors - baseline
const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>heed tour</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1180px; margin: 2em auto; padding: 0 1em; color: #222 }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px } th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left }
th { background: #f4f4f4 } .plots { display: flex; flex-wrap: wrap; gap: 12px } code { background: #f4f4f4; padding: 0 3px }
</style></head><body>
<h1>heed tour</h1>
<p>${new Date().toISOString()} · ${getBackend()} backend · Node ${process.version} · ${total.toFixed(1)} s${quick ? ' · --quick' : ''} · live tensors after the run: ${live}</p>
${htmlTable(['section', 'run', 'result', 'time'], rows.map(r => [r.section, r.run, r.result, r.seconds > 0 ? `${r.seconds.toFixed(2)} s` : '']))}
${report.join('\n')}
</body></html>
`
const path = writeOutput(join(outDir('tour'), 'report.html'), html)
writeOutput(join(outDir('tour'), 'summary.json'), JSON.stringify({ date: new Date().toISOString(), quick, seconds: total, rows, ...summary }, null, 1))
console.log(`\ntotal ${total.toFixed(1)} s; live tensors ${live}`)
console.log(`report: ${path}`)
