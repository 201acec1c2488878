/**
 * Issue #10's peer comparisons, on the CPU, in one process:
 *
 * 1. Causal attention forward, B1 H8 T4096 D64 float32: heed's fused kernel (`scaledDotProductAttention`, cpu
 *    backend) beside the same computation written as separate ops — @tensorflow/tfjs-backend-wasm (matmul → additive
 *    causal mask → softmax → matmul) and onnxruntime-node's CPU EP running the same four-node graph (MatMul, Add,
 *    Softmax, MatMul), encoded by hand as in bench/matmul.ts. The peers get Q pre-scaled by 1/√D and Kᵀ and the mask
 *    prepared outside the timed call: those are O(T·D) or constant work, and giving them to the peers only
 *    favours the peers. Each timed run includes the call and the readback of the output into a JS typed array.
 * 2. One training step of a 2-layer MLP (batch 256, 64 → 256 → 10, ReLU, softmax cross-entropy, plain SGD):
 *    heed's valueAndGrad + sgd.step beside tfjs-wasm's optimizer.minimize, same initial weights and data.
 *
 * Warm-up, then the median of 3 timed runs; ratios are peer time / heed time (> 1: heed is faster). Nothing is
 * asserted. Writes bench/out/attention-peers.json and bench/out/attention-peers.md. Flags: --quick (T = 1024), --runs=N.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build } from 'esbuild'
import * as tf from '@tensorflow/tfjs-core'
import '@tensorflow/tfjs-backend-wasm'
import { cpuWasmReady, dispose, logSoftmax, matmul, mean, memory, mul, neg, relu, add, setBackend, sgd, tensor, valueAndGrad, type Tensor } from '@heed/tensor'
import { scaledDotProductAttention } from '@heed/attention'
import { machineInfo, machineLine } from './machine.js'
import { onnxModel, type OrtModule } from './onnx.js'

const H = 8
const D = 64

interface Timing {
  readonly medianMs: number
  readonly bestMs: number
  readonly worstMs: number
  readonly runs: number
}

interface Row {
  readonly name: string
  readonly timing?: Timing
  /** max |x − heed| over the whole output */
  readonly maxAbsDiff?: number
  readonly error?: string
  readonly info?: string
}

const reason = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 120)

function lcgArray(n: number, seed: number): Float32Array {
  const out = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = s / 2 ** 31 - 1
  }
  return out
}

async function time<T>(fn: () => Promise<T>, warmup: number, runs: number): Promise<{ timing: Timing; out: T }> {
  let out = await fn()
  for (let i = 1; i < warmup; i++) out = await fn()
  const ms: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    out = await fn()
    ms.push(performance.now() - t0)
  }
  ms.sort((x, y) => x - y)
  return { timing: { medianMs: ms[Math.floor(runs / 2)]!, bestMs: ms[0]!, worstMs: ms[runs - 1]!, runs }, out }
}

const maxDiff = (a: Float32Array, b: Float32Array): number => {
  if (a.length !== b.length) return NaN
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

// ---- ONNX: O = MatMul(Softmax(Add(MatMul(Q, KT), M)), V), encoded by hand (protobuf wire format) -----------------

function onnxAttentionModel(): Uint8Array {
  return onnxModel({
    name: 'attn',
    // opset 13: Softmax's axis defaults to −1, so the node needs no attribute
    nodes: [
      { inputs: ['Q', 'KT'], output: 'S', op: 'MatMul' },
      { inputs: ['S', 'M'], output: 'SM', op: 'Add' },
      { inputs: ['SM'], output: 'P', op: 'Softmax' },
      { inputs: ['P', 'V'], output: 'O', op: 'MatMul' },
    ],
    inputs: { Q: ['B', 'H', 'T', 'D'], KT: ['B', 'H', 'D', 'T'], V: ['B', 'H', 'T', 'D'], M: ['T', 'T'] },
    outputs: { O: ['B', 'H', 'T', 'D'] },
  })
}

// ---- attention -----------------------------------------------------------------------------------------------

async function attention(T: number, runs: number): Promise<Row[]> {
  const n = H * T * D
  const qv = lcgArray(n, 1)
  const kv = lcgArray(n, 2)
  const vv = lcgArray(n, 3)
  const scale = 1 / Math.sqrt(D)
  const qs = qv.map(x => x * scale)
  const kt = new Float32Array(n)
  for (let h = 0; h < H; h++)
    for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) kt[h * T * D + d * T + t] = kv[h * T * D + t * D + d]!
  // a large finite negative rather than −∞: exp underflows to exactly 0 either way, and no path can form ∞ − ∞
  const maskArr = new Float32Array(T * T)
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskArr[i * T + j] = -1e9
  const rows: Row[] = []

  await setBackend('cpu')
  const ready = await cpuWasmReady()
  const q = tensor(qv, [1, H, T, D])
  const k = tensor(kv, [1, H, T, D])
  const v = tensor(vv, [1, H, T, D])
  const heed = await time(
    async () => {
      const { out, lse } = scaledDotProductAttention(q, k, v, { causal: true })
      const data = (await out.data()) as Float32Array
      dispose([out, lse])
      return data
    },
    1,
    runs,
  )
  dispose([q, k, v])
  const base = heed.out
  rows.push({ name: 'heed cpu (fused kernel)', timing: heed.timing, maxAbsDiff: 0, info: ready ? `WebAssembly SIMD available, ${ready.threads} thread(s)` : 'TypeScript kernels' })

  try {
    if (!(await tf.setBackend('wasm'))) throw new Error(`tf.setBackend('wasm') returned false`)
    await tf.ready()
    const tq = tf.tensor4d(qs, [1, H, T, D])
    const tk = tf.tensor4d(kv, [1, H, T, D])
    const tv = tf.tensor4d(vv, [1, H, T, D])
    const tm = tf.tensor2d(maskArr, [T, T])
    try {
      const r = await time(
        async () => {
          const o = tf.tidy(() => tf.matMul(tf.softmax(tf.add(tf.matMul(tq, tk, false, true), tm)), tv))
          const data = (await o.data()) as Float32Array
          o.dispose()
          return data
        },
        1,
        runs,
      )
      rows.push({ name: 'tfjs-backend-wasm ops', timing: r.timing, maxAbsDiff: maxDiff(r.out, base), info: `tfjs ${tf.version_core}: simd ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}` })
    } finally {
      tf.dispose([tq, tk, tv, tm])
    }
  } catch (err) {
    rows.push({ name: 'tfjs-backend-wasm ops', error: reason(err) })
  }

  try {
    const spec = 'onnxruntime-node'
    const ort = (await import(spec)) as OrtModule
    const session = await ort.InferenceSession.create(onnxAttentionModel(), { executionProviders: ['cpu'] })
    const feeds = { Q: new ort.Tensor('float32', qs, [1, H, T, D]), KT: new ort.Tensor('float32', kt, [1, H, D, T]), V: new ort.Tensor('float32', vv, [1, H, T, D]), M: new ort.Tensor('float32', maskArr, [T, T]) }
    try {
      const r = await time(
        async () => {
          const o = (await session.run(feeds))['O']!
          const data = Float32Array.from(o.data)
          o.dispose?.()
          return data
        },
        1,
        runs,
      )
      rows.push({ name: 'onnxruntime-node cpu graph', timing: r.timing, maxAbsDiff: maxDiff(r.out, base), info: 'CPU EP (MLAS), default intra-op threads; MatMul → Add → Softmax → MatMul' })
    } finally {
      await session.release()
    }
  } catch (err) {
    rows.push({ name: 'onnxruntime-node cpu graph', error: reason(err) })
  }
  return rows
}

// ---- MLP training step ---------------------------------------------------------------------------------------

const BATCH = 256
const IN = 64
const HID = 256
const OUT = 10
/** steps per timed run: one step is a few milliseconds, too short to time alone */
const STEPS = 20

/**
 * tfjs-core registers no gradients itself (the umbrella @tensorflow/tfjs package imports them), and its ESM files use
 * extensionless imports Node cannot load. esbuild bundles tfjs-core's own register_all_gradients into one file; the
 * bundled copy registers into the gradient registry and engine tfjs keeps on globalThis, which the loaded
 * tfjs-core shares.
 */
async function tfjsGradients(): Promise<void> {
  const entry = join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-core')), 'register_all_gradients.js')
  const file = join(dirname(fileURLToPath(import.meta.url)), 'out', 'tfjs-gradients.mjs')
  mkdirSync(dirname(file), { recursive: true })
  await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', outfile: file, logLevel: 'error' })
  await import(pathToFileURL(file).href)
}

async function mlp(runs: number): Promise<Row[]> {
  const w1v = lcgArray(IN * HID, 11).map(x => x / Math.sqrt(IN))
  const w2v = lcgArray(HID * OUT, 12).map(x => x / Math.sqrt(HID))
  const xv = lcgArray(BATCH * IN, 13)
  const yv = new Float32Array(BATCH * OUT)
  for (let i = 0; i < BATCH; i++) yv[i * OUT + (i % OUT)] = 1
  const lr = 0.05
  const rows: Row[] = []

  await setBackend('cpu')
  const x = tensor(xv, [BATCH, IN])
  const y = tensor(yv, [BATCH, OUT])
  type P = { w1: Tensor<'float32'>; b1: Tensor<'float32'>; w2: Tensor<'float32'>; b2: Tensor<'float32'> }
  const fresh = (): P => ({ w1: tensor(w1v, [IN, HID]), b1: tensor(new Float32Array(HID), [HID]), w2: tensor(w2v, [HID, OUT]), b2: tensor(new Float32Array(OUT), [OUT]) })
  const loss = (p: P): Tensor => neg(mean(mul(y, logSoftmax(add(matmul(relu(add(matmul(x, p.w1), p.b1)), p.w2), p.b2)))))
  const vg = valueAndGrad(loss)
  const opt = sgd({ lr })
  let params = fresh()
  let state = opt.init(params)
  let lastLoss = 0
  const heed = await time(
    async () => {
      for (let s = 0; s < STEPS; s++) {
        const [l, g] = vg(params)
        if (s === STEPS - 1) lastLoss = (await l.data())[0]!
        ;[params, state] = opt.step(g, state, params)
        dispose([l, g])
      }
      // readback of one weight forces completion and gives something to compare
      return (await params.w2.data()) as Float32Array
    },
    1,
    runs,
  )
  dispose([params, state.slots, x, y])
  const per = (t: Timing): Timing => ({ medianMs: t.medianMs / STEPS, bestMs: t.bestMs / STEPS, worstMs: t.worstMs / STEPS, runs: t.runs })
  rows.push({ name: 'heed cpu (valueAndGrad + sgd)', timing: per(heed.timing), info: `loss after the last step ${lastLoss.toFixed(4)}` })

  try {
    if (!(await tf.setBackend('wasm'))) throw new Error(`tf.setBackend('wasm') returned false`)
    await tf.ready()
    await tfjsGradients()
    const tx = tf.tensor2d(xv, [BATCH, IN])
    const ty = tf.tensor2d(yv, [BATCH, OUT])
    const w1 = tf.variable(tf.tensor2d(w1v, [IN, HID]))
    const b1 = tf.variable(tf.zeros([HID]))
    const w2 = tf.variable(tf.tensor2d(w2v, [HID, OUT]))
    const b2 = tf.variable(tf.zeros([OUT]))
    const topt = tf.train.sgd(lr)
    let tfLoss = 0
    try {
      const r = await time(
        async () => {
          for (let s = 0; s < STEPS; s++) {
            const l = topt.minimize(() => tf.neg(tf.mean(tf.mul(ty, tf.logSoftmax(tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(tx, w1), b1)), w2), b2))))) as tf.Scalar, s === STEPS - 1)
            if (l) {
              tfLoss = (await l.data())[0]!
              l.dispose()
            }
          }
          return (await w2.data()) as Float32Array
        },
        1,
        runs,
      )
      // both started from the same weights and took the same number of steps, so the weights should agree
      const w2heed = heed.out
      rows.push({ name: 'tfjs-backend-wasm (optimizer.minimize)', timing: per(r.timing), maxAbsDiff: maxDiff(r.out, w2heed), info: `loss after the last step ${tfLoss.toFixed(4)}` })
    } finally {
      tf.dispose([tx, ty, w1, b1, w2, b2])
      topt.dispose()
    }
  } catch (err) {
    rows.push({ name: 'tfjs-backend-wasm (optimizer.minimize)', error: reason(err) })
  }
  return rows
}

// ---- driver --------------------------------------------------------------------------------------------------

export async function run(flags: readonly string[]): Promise<void> {
  const quick = flags.includes('--quick')
  const T = quick ? 1024 : 4096
  const runsFlag = Number(flags.find(f => f.startsWith('--runs='))?.slice('--runs='.length))
  const runs = runsFlag > 0 ? runsFlag : 3
  const loadBefore = loadavg()
  const started = performance.now()
  const attn = await attention(T, runs)
  const train = await mlp(runs)
  const totalS = (performance.now() - started) / 1000
  const loadAfter = loadavg()

  const ms = (t: Timing): string => `${t.medianMs.toFixed(t.medianMs < 100 ? 2 : 0)} ms [${t.bestMs.toFixed(t.bestMs < 100 ? 2 : 0)}–${t.worstMs.toFixed(t.worstMs < 100 ? 2 : 0)}]`
  const table = (title: string, rows: readonly Row[]): { peer: string; ratio: number }[] => {
    console.log(`\n${title}`)
    const w = 40
    for (const r of rows) {
      if (r.error) console.log(`  ${r.name.padEnd(w)} n/a (${r.error})`)
      else console.log(`  ${r.name.padEnd(w)} ${ms(r.timing!).padEnd(28)} max|Δ| vs heed ${r.maxAbsDiff === undefined ? 'n/a' : r.maxAbsDiff.toExponential(1)}${r.info ? `  (${r.info})` : ''}`)
    }
    const heed = rows[0]!.timing!
    const ratios = rows.slice(1).filter(r => r.timing).map(r => ({ peer: r.name, ratio: r.timing!.medianMs / heed.medianMs }))
    for (const r of ratios) console.log(`  ratio ${r.peer} / heed (time): ${r.ratio.toFixed(2)}× ${r.ratio >= 1 ? '(heed faster)' : '(heed slower)'}`)
    return ratios
  }
  console.log(`\n${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; load average ${loadBefore.map(x => x.toFixed(1)).join(' ')} before, ${loadAfter.map(x => x.toFixed(1)).join(' ')} after; median of ${runs} after a warm-up`)
  const attnRatios = table(`causal attention forward, B1 H${H} T${T} D${D} float32 (call + readback)`, attn)
  const mlpRatios = table(`2-layer MLP training step, batch ${BATCH}, ${IN}→${HID}→${OUT}, ReLU, softmax CE, SGD (per step, ${STEPS} steps per run)`, train)
  console.log(`\ntotal ${totalS.toFixed(1)} s; heed tensors live after: ${memory().tensors}`)

  const machine = machineInfo(loadBefore)
  const outDir = join(dirname(fileURLToPath(import.meta.url)), 'out')
  const json = join(outDir, 'attention-peers.json')
  mkdirSync(outDir, { recursive: true })
  writeFileSync(
    json,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        quick,
        runs,
        attention: { shape: { B: 1, H, T, D, dtype: 'float32', causal: true }, rows: attn, ratios: attnRatios },
        mlp: { shape: { batch: BATCH, in: IN, hidden: HID, out: OUT, stepsPerRun: STEPS }, rows: train, ratios: mlpRatios },
        totalS,
      },
      null,
      2,
    ),
  )
  const md: string[] = [
    `# heed beside tfjs-wasm and onnxruntime-node (issue #10)`,
    '',
    `${new Date().toISOString()} — ${machineLine(machine)}.`,
    '',
    `Time per call: median of ${runs} timed runs after a warm-up, with their min–max in brackets. Ratio = peer time / heed time (> 1: heed is faster). The machine is shared: wall-clock times move with other load, ratios within one run much less. Total ${totalS.toFixed(1)} s.`,
    '',
    ...mdTable(`Causal attention forward, B1 H${H} T${T} D${D} float32 (call + readback)`, attn, attnRatios),
    '',
    ...mdTable(`2-layer MLP training step, batch ${BATCH}, ${IN}→${HID}→${OUT}, ReLU, softmax CE, SGD (per step, ${STEPS} steps per run)`, train, mlpRatios),
  ]
  const mdPath = join(outDir, 'attention-peers.md')
  writeFileSync(mdPath, md.join('\n') + '\n')
  console.log(`wrote ${json} and ${mdPath}`)
}

/** One section of the Markdown report: a row per implementation, heed first. */
function mdTable(title: string, rows: readonly Row[], ratios: readonly { peer: string; ratio: number }[]): string[] {
  const ms = (x: number): string => x.toFixed(x < 100 ? 2 : 0)
  const cell = (s: string): string => s.replaceAll('|', '/')
  const out = [`## ${title}`, '', '| implementation | median ms [min–max] | ratio (peer / heed) | max abs diff vs heed | notes |', '|---|---|---|---|---|']
  for (const r of rows) {
    if (r.error || !r.timing) {
      out.push(`| ${r.name} | n/a | | | ${cell(r.error ?? '')} |`)
      continue
    }
    const t = r.timing
    const ratio = ratios.find(x => x.peer === r.name)
    out.push(
      `| ${r.name} | ${ms(t.medianMs)} [${ms(t.bestMs)}–${ms(t.worstMs)}] | ${ratio ? `${ratio.ratio.toFixed(2)}×` : '—'} | ${r.maxAbsDiff === undefined ? 'n/a' : r.maxAbsDiff.toExponential(1)} | ${cell(r.info ?? '')} |`,
    )
  }
  return out
}
