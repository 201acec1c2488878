/**
 * A transformer training step on heed's CPU backend beside PyTorch and @tensorflow/tfjs-backend-wasm (issue 15).
 *
 * Model (a small character-level GPT, heed's public API): token embedding (tied with the output projection),
 * `layers` pre-norm `transformerBlock`s from @heed/attention (RMSNorm, causal multi-head attention without RoPE,
 * exact-erf GELU MLP 4×), a final RMSNorm, logits = h·Eᵀ over a 65-symbol vocabulary, mean softmax cross-entropy
 * of the next character, `adamw` (lr 3e-3, β 0.9/0.999, ε 1e-8, weight decay 0.01). Models: `small` d_model 128,
 * 4 layers, 4 heads, batch 16 × 128 tokens; `large` d_model 256, 6 layers, 8 heads, batch 8 × 256.
 *
 * Same work everywhere: the bench draws the initial parameters once (heed's init), writes them and the token
 * batches (windows of the repository's Markdown, mapped onto the 65 symbols) to a temporary directory, and every
 * implementation starts from those values and sees the same batches, so the losses after N steps agree to float32
 * rounding — a loss that differs means different work. PyTorch (bench/train_torch.py, `/usr/bin/python3` with
 * torch, `torch.set_num_threads(os.cpu_count())`) runs as a child process; without torch the bench says so and
 * goes on. tfjs: the same ops (embedding as a one-hot matmul, since the wasm backend lacks the scatter that
 * gather's gradient needs), `tf.train.adam(…).minimize` plus the decoupled decay as one more multiply per
 * variable (tfjs has no AdamW).
 *
 * Per implementation: step wall times (the first `warmup` steps are excluded: median [min–max] of the rest),
 * ratios heed / peer (peer time ÷ heed time: > 1 means heed is faster), losses per step, peak memory (heed: live
 * tensor bytes at the end of the forward — parameters, Adam state, saved activations — and the process's peak RSS
 * after its steps; PyTorch: its peak RSS), greedy decode with a KV cache (512-token prompt prefilled in one call,
 * then 256 new tokens one call each; heed through `multiHeadAttention`'s cache, PyTorch an eager loop with
 * preallocated K/V) as tokens/s of the one-token calls, the per-kernel `profile()` of one heed step, and the
 * WebGPU step time and losses where an adapter exists (a few steps; the loss curve must match the CPU's).
 *
 * Flags: --quick (a tiny model, 3 steps, short decode: what test/bench-train.ts runs), --models=small,large,
 * --steps=N (default 12, of which 2 warm-up), --unfused (cross-entropy as logSoftmax + take), --no-torch, --no-tfjs, --no-webgpu, --no-decode, --out=dir
 * (default bench/out). Writes train.json and train.md.
 */
/// <reference types="@webgpu/types" />
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { adamw, argmax, crossEntropy, cpuWasmReady, dispose, gather, initBackend, logSoftmax, matmul, mean, memory, neg, profile, random, reshape, scope, slice, take, tensor, valueAndGrad, withBackend, type Tensor } from '@heed/tensor'
import { rmsNorm, transformerBlock, type TransformerBlock, type TransformerBlockParams } from '@heed/attention'
import { machineInfo, machineLine, type MachineInfo } from './machine.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..')

export interface ModelConfig {
  readonly name: string
  readonly dModel: number
  readonly layers: number
  readonly heads: number
  readonly vocab: number
  readonly batch: number
  readonly seq: number
}

const VOCAB = 65
const MODELS: Record<string, ModelConfig> = {
  small: { name: 'small', dModel: 128, layers: 4, heads: 4, vocab: VOCAB, batch: 16, seq: 128 },
  large: { name: 'large', dModel: 256, layers: 6, heads: 8, vocab: VOCAB, batch: 8, seq: 256 },
  tiny: { name: 'tiny', dModel: 32, layers: 2, heads: 2, vocab: VOCAB, batch: 2, seq: 16 },
}
const LR = 3e-3
const EPS = 1e-6

// ---- data --------------------------------------------------------------------------------------------------------

/** The 65 symbols of the usual character-level corpus; anything else reads as a space. */
const ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

function corpus(): Int32Array {
  const files: string[] = []
  const walk = (d: string, depth: number): void => {
    for (const e of readdirSync(d)) {
      if (e.startsWith('.') || e === 'node_modules' || e === 'out' || e === 'api') continue
      const p = join(d, e)
      const s = statSync(p)
      if (s.isDirectory() && depth < 3) walk(p, depth + 1)
      else if (s.isFile() && e.endsWith('.md')) files.push(p)
    }
  }
  walk(join(root, 'docs'), 0)
  for (const p of ['README.md', 'CONTRIBUTING.md', 'packages/tensor/README.md', 'packages/attention/README.md']) files.push(join(root, p))
  const text = files.sort().map(f => { try { return readFileSync(f, 'utf8') } catch { return '' } }).join('\n')
  const out = new Int32Array(text.length)
  for (let i = 0; i < text.length; i++) {
    const j = ALPHABET.indexOf(text[i]!)
    out[i] = j < 0 ? 1 : j
  }
  return out
}

/** Fixed LCG so every run sees the same batches. */
function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

/** steps × batch windows of seq + 1 tokens. */
function batches(text: Int32Array, m: ModelConfig, steps: number): Int32Array {
  const u = lcg(1234)
  const w = m.seq + 1
  const out = new Int32Array(steps * m.batch * w)
  for (let r = 0; r < steps * m.batch; r++) {
    const s = Math.floor(u() * (text.length - w))
    out.set(text.subarray(s, s + w), r * w)
  }
  return out
}

// ---- the heed model ----------------------------------------------------------------------------------------------

interface Params {
  readonly emb: Tensor
  readonly layers: readonly TransformerBlockParams[]
  readonly normF: Tensor
}

interface Named {
  readonly name: string
  readonly shape: readonly number[]
  readonly values: Float32Array
}

/** Initial parameters in a fixed order with the names train_torch.py reads. */
function initialParams(m: ModelConfig): Named[] {
  return scope(() => {
    const out: Named[] = []
    const add = (name: string, t: Tensor): void => void out.push({ name, shape: t.shape, values: Float32Array.from(t.dataSync() as Float32Array) })
    add('emb', random.normal([m.vocab, m.dModel], { seed: 7, std: 0.02 }))
    for (let l = 0; l < m.layers; l++) {
      const p = block(m).init({ seed: l + 1 })
      for (const [k, t] of [['norm1', p.norm1], ['Wq', p.attn.Wq], ['Wk', p.attn.Wk], ['Wv', p.attn.Wv], ['Wo', p.attn.Wo], ['norm2', p.norm2], ['W1', p.W1], ['b1', p.b1], ['W2', p.W2], ['b2', p.b2]] as const) add(`l${l}.${k}`, t)
    }
    add('normF', tensor(new Float32Array(m.dModel).fill(1), [m.dModel]))
    return out
  })
}

const block = (m: ModelConfig): TransformerBlock => transformerBlock({ dModel: m.dModel, heads: m.heads, eps: EPS })

/** The named values as heed tensors on `backend`. */
function heedParams(named: readonly Named[], m: ModelConfig, backend: string): Params {
  const t = (name: string): Tensor => {
    const e = named.find(x => x.name === name)!
    return tensor(e.values, e.shape, 'float32', { backend })
  }
  return {
    emb: t('emb'),
    layers: Array.from({ length: m.layers }, (_, l) => ({
      attn: { Wq: t(`l${l}.Wq`), Wk: t(`l${l}.Wk`), Wv: t(`l${l}.Wv`), Wo: t(`l${l}.Wo`) },
      norm1: t(`l${l}.norm1`), norm2: t(`l${l}.norm2`), W1: t(`l${l}.W1`), b1: t(`l${l}.b1`), W2: t(`l${l}.W2`), b2: t(`l${l}.b2`),
    })),
    normF: t('normF'),
  }
}

export interface HeedModel {
  readonly blocks: readonly TransformerBlock[]
  /** logits [B, T, V] of int32 tokens [B, T] (forward options per block: a KV cache when decoding) */
  logits(p: Params, x: Tensor, caches?: readonly ReturnType<TransformerBlock['cache']>[]): Tensor
  /** mean cross-entropy of targets [B·T] (int32); `flat` holds i·V + targets[i] (for logSoftmax + take) */
  loss(p: Params, x: Tensor, targets: Tensor, flat: Tensor): Tensor
}

/** heed's fused crossEntropy (logits and int32 targets, no one-hot), or `--unfused`: logSoftmax + take. */
const crossEntropyOp = (unfused: boolean): ((logits: Tensor, targets: Tensor) => Tensor) | undefined => (unfused ? undefined : (l, t) => crossEntropy(l, t))

function heedModel(m: ModelConfig, fused: ((logits: Tensor, targets: Tensor) => Tensor) | undefined): HeedModel {
  const blocks = Array.from({ length: m.layers }, () => block(m))
  const logits: HeedModel['logits'] = (p, x, caches) => {
    let h = gather(p.emb, x, 0)
    blocks.forEach((b, l) => { h = b.forward(p.layers[l]!, h, caches ? { cache: caches[l]! } : {}) })
    return matmul(rmsNorm(h, p.normF, EPS), p.emb, { transposeB: true })
  }
  const loss: HeedModel['loss'] = (p, x, targets, flat) => {
    const lg = reshape(logits(p, x), [-1, m.vocab])
    if (fused) return fused(lg, targets)
    // the log-probability of each target: rows of logSoftmax read flat at i·V + target
    return neg(mean(take(logSoftmax(lg), flat)))
  }
  return { blocks, logits, loss }
}

// ---- timing helpers ----------------------------------------------------------------------------------------------

interface Stats {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

function stats(xs: readonly number[]): Stats | undefined {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  return { median: n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2, min: s[0]!, max: s[n - 1]!, n }
}

const rssNow = (): number => process.memoryUsage().rss
const peakRss = (): number => process.resourceUsage().maxRSS * 1024
const reason = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 160)

interface RunResult {
  readonly stepMs: number[]
  readonly losses: number[]
  readonly note?: string
  readonly memory?: { readonly liveBytesForward: number; readonly paramBytes: number; readonly rssBefore: number; readonly peakRss: number }
  readonly decode?: { readonly prefillMs: number; readonly decodeMs: number; readonly tokens: number[] }
  readonly leak?: { readonly tensorsBefore: number; readonly tensorsAfter: number }
  readonly version?: string
  readonly threads?: number
}

// ---- heed --------------------------------------------------------------------------------------------------------

async function runHeed(m: ModelConfig, named: readonly Named[], data: Int32Array, steps: number, backend: string, decode: { prompt: Int32Array; tokens: number } | undefined, fused: ((l: Tensor, t: Tensor) => Tensor) | undefined, profileStep: number | undefined): Promise<RunResult & { profile?: Awaited<ReturnType<typeof profile>> }> {
  const model = heedModel(m, fused)
  const tensorsBefore = memory().tensors
  const rssBefore = rssNow()
  let params = withBackend(backend, () => heedParams(named, m, backend))
  const opt = adamw({ lr: LR, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 })
  let state = withBackend(backend, () => opt.init(params))
  const paramBytes = memory().bytes
  let liveBytesForward = 0
  const vg = valueAndGrad((p: Params, x: Tensor, y: Tensor, flat: Tensor) => {
    const l = model.loss(p, x, y, flat)
    liveBytesForward = Math.max(liveBytesForward, memory().bytes)
    return l
  })
  const w = m.seq + 1
  const stepMs: number[] = []
  const losses: number[] = []
  let prof: Awaited<ReturnType<typeof profile>> | undefined
  for (let s = 0; s < steps; s++) {
    const xs = new Int32Array(m.batch * m.seq)
    const ys = new Int32Array(m.batch * m.seq)
    for (let r = 0; r < m.batch; r++) {
      xs.set(data.subarray((s * m.batch + r) * w, (s * m.batch + r) * w + m.seq), r * m.seq)
      ys.set(data.subarray((s * m.batch + r) * w + 1, (s * m.batch + r + 1) * w), r * m.seq)
    }
    const x = tensor(xs, [m.batch, m.seq], 'int32', { backend })
    const y = tensor(ys, [m.batch * m.seq], 'int32', { backend })
    const flat = tensor(ys.map((t, i) => i * m.vocab + t), [m.batch * m.seq], 'int32', { backend })
    const step = async (): Promise<number> => {
      const [loss, grads] = withBackend(backend, () => vg(params, x, y, flat))
      ;[params, state] = withBackend(backend, () => opt.step(grads, state, params))
      dispose(grads)
      const v = (await loss.data())[0]!
      loss.dispose()
      return v
    }
    const t0 = performance.now()
    let v: number
    if (s === profileStep) {
      prof = await profile(step)
      v = prof.result as number
    } else v = await step()
    stepMs.push(performance.now() - t0)
    losses.push(v)
    dispose([x, y, flat])
    // Dawn frees device resources between event-loop turns
    await new Promise(r => setTimeout(r, 0))
  }
  const peak = peakRss()
  let dec: RunResult['decode']
  if (decode) {
    const caches = model.blocks.map(b => b.cache({ batch: 1, capacity: decode.prompt.length + decode.tokens, backend }))
    const next = (lg: Tensor): number => scope(() => {
      const last = slice(lg, [null, [lg.shape[1]! - 1, lg.shape[1]!]])
      return (argmax(reshape(last, [m.vocab])).dataSync() as Int32Array)[0]!
    })
    const tokens: number[] = []
    const t0 = performance.now()
    let tok = withBackend(backend, () => scope(() => next(model.logits(params, tensor(decode.prompt, [1, decode.prompt.length], 'int32', { backend }), caches))))
    const t1 = performance.now()
    for (let i = 0; i < decode.tokens; i++) {
      tokens.push(tok)
      if (i === decode.tokens - 1) break
      tok = withBackend(backend, () => scope(() => next(model.logits(params, tensor(new Int32Array([tok]), [1, 1], 'int32', { backend }), caches))))
    }
    const t2 = performance.now()
    for (const c of caches) c.dispose()
    dec = { prefillMs: t1 - t0, decodeMs: t2 - t1, tokens }
  }
  dispose([params, state])
  return {
    stepMs,
    losses,
    memory: { liveBytesForward, paramBytes, rssBefore, peakRss: peak },
    ...(dec ? { decode: dec } : {}),
    leak: { tensorsBefore, tensorsAfter: memory().tensors },
    ...(prof ? { profile: prof } : {}),
  }
}

// ---- tfjs (wasm) -------------------------------------------------------------------------------------------------

async function runTfjs(m: ModelConfig, named: readonly Named[], data: Int32Array, steps: number): Promise<RunResult> {
  const tf = await import('@tensorflow/tfjs-core')
  await import('@tensorflow/tfjs-backend-wasm')
  await tfjsGradients()
  await tf.setBackend('wasm')
  await tf.ready()
  const P = new Map(named.map(e => [e.name, tf.variable(tf.tensor(e.values, [...e.shape], 'float32'), true, e.name)]))
  const p = (k: string): import('@tensorflow/tfjs-core').Variable => P.get(k)!
  const { dModel: d, heads: H, batch: B, seq: T, vocab: V } = m
  const Dh = d / H
  const rms = (x: import('@tensorflow/tfjs-core').Tensor, g: import('@tensorflow/tfjs-core').Tensor) =>
    tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), EPS))), g)
  const maskVals = new Float32Array(T * T)
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskVals[i * T + j] = -1e9
  const mask = tf.tensor(maskVals, [T, T])
  const loss = (x: import('@tensorflow/tfjs-core').Tensor, y: import('@tensorflow/tfjs-core').Tensor): import('@tensorflow/tfjs-core').Scalar => {
    let h = tf.matMul(tf.cast(tf.oneHot(x, V), 'float32'), p('emb')) // [B·T, d]
    for (let l = 0; l < m.layers; l++) {
      const a = rms(h, p(`l${l}.norm1`))
      const heads = (w: string) => tf.reshape(tf.transpose(tf.reshape(tf.matMul(a, p(`l${l}.${w}`)), [B, T, H, Dh]), [0, 2, 1, 3]), [B * H, T, Dh])
      const s = tf.add(tf.mul(tf.matMul(heads('Wq'), heads('Wk'), false, true), 1 / Math.sqrt(Dh)), mask)
      const o = tf.matMul(tf.softmax(s), heads('Wv'))
      h = tf.add(h, tf.matMul(tf.reshape(tf.transpose(tf.reshape(o, [B, H, T, Dh]), [0, 2, 1, 3]), [B * T, d]), p(`l${l}.Wo`)))
      const u = tf.add(tf.matMul(rms(h, p(`l${l}.norm2`)), p(`l${l}.W1`)), p(`l${l}.b1`))
      const g = tf.mul(tf.mul(u, 0.5), tf.add(1, tf.erf(tf.mul(u, Math.SQRT1_2))))
      h = tf.add(h, tf.add(tf.matMul(g, p(`l${l}.W2`)), p(`l${l}.b2`)))
    }
    const lg = tf.matMul(rms(h, p('normF')), p('emb'), false, true)
    return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(lg), tf.cast(tf.oneHot(y, V), 'float32')), -1)))
  }
  const opt = tf.train.adam(LR, 0.9, 0.999, 1e-8)
  const w = T + 1
  const stepMs: number[] = []
  const losses: number[] = []
  for (let s = 0; s < steps; s++) {
    const xs = new Int32Array(B * T)
    const ys = new Int32Array(B * T)
    for (let r = 0; r < B; r++) {
      xs.set(data.subarray((s * B + r) * w, (s * B + r) * w + T), r * T)
      ys.set(data.subarray((s * B + r) * w + 1, (s * B + r + 1) * w), r * T)
    }
    const x = tf.tensor1d(xs, 'int32')
    const y = tf.tensor1d(ys, 'int32')
    const t0 = performance.now()
    // AdamW: decoupled decay p ← p·(1 − lr·wd) from the pre-step parameters, then the Adam step
    tf.tidy(() => { for (const v of P.values()) v.assign(tf.mul(v, 1 - LR * 0.01)) })
    const l = opt.minimize(() => loss(x, y), true)!
    const v = (await l.data())[0]!
    stepMs.push(performance.now() - t0)
    losses.push(v)
    tf.dispose([l, x, y])
  }
  tf.dispose([mask, ...P.values()])
  opt.dispose()
  return { stepMs, losses, version: tf.version_core, threads: 1 }
}

/**
 * tfjs-core's main entry (its CommonJS bundle in Node) registers no gradients, and its ESM register_all_gradients
 * uses extensionless imports Node cannot resolve: bundle that module with esbuild once. Its copy of the ops reaches
 * the same engine and gradient registry, which tfjs keeps on the global object.
 */
async function tfjsGradients(): Promise<void> {
  const esbuild = await import('esbuild')
  const dir = mkdtempSync(join(tmpdir(), 'heed-tfjs-grads-'))
  try {
    const outfile = join(dir, 'grads.mjs')
    await esbuild.build({ entryPoints: [join(root, 'node_modules/@tensorflow/tfjs-core/dist/register_all_gradients.js')], bundle: true, format: 'esm', platform: 'node', outfile, logLevel: 'silent' })
    await import(pathToFileURL(outfile).href)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---- PyTorch -----------------------------------------------------------------------------------------------------

function runTorch(dir: string): RunResult | { readonly error: string } {
  const res = spawnSync('/usr/bin/python3', [join(here, 'train_torch.py'), dir], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 30 * 60_000 })
  if (res.error) return { error: reason(res.error) }
  if (res.status !== 0) {
    const err = res.stderr.trim().split('\n')
    return { error: /No module named .?torch/.test(res.stderr) ? 'PyTorch not installed (python3 cannot import torch)' : err[err.length - 1]!.slice(0, 200) }
  }
  const j = JSON.parse(res.stdout.trim().split('\n').pop()!) as { version: string; threads: number; stepMs: number[]; losses: number[]; rssBefore: number; peakRss: number; decode: { prefillMs: number; decodeMs: number; tokens: number[] } }
  return { stepMs: j.stepMs, losses: j.losses, version: j.version, threads: j.threads, memory: { liveBytesForward: NaN, paramBytes: NaN, rssBefore: j.rssBefore, peakRss: j.peakRss }, decode: j.decode }
}

// ---- the run -----------------------------------------------------------------------------------------------------

interface ModelResult {
  readonly model: ModelConfig
  readonly steps: number
  readonly warmup: number
  readonly crossEntropy: 'fused crossEntropy' | 'logSoftmax + take'
  readonly heed: RunResult
  readonly torch?: RunResult | { readonly error: string }
  readonly tfjs?: RunResult | { readonly error: string }
  readonly webgpu?: RunResult | { readonly error: string }
  readonly profile?: { readonly wallMs: number; readonly calls: number; readonly byKernel: readonly { kernel: string; calls: number; ms: number }[] }
  readonly decode?: { readonly prompt: number; readonly tokens: number }
}

const ok = (r: RunResult | { error: string } | undefined): r is RunResult => r !== undefined && !('error' in r)
const timed = (r: RunResult, warmup: number): Stats | undefined => stats(r.stepMs.slice(Math.min(warmup, r.stepMs.length - 1)))
const fmtMs = (s: Stats | undefined): string => (s ? `${s.median.toFixed(0)} ms [${s.min.toFixed(0)}–${s.max.toFixed(0)}]` : 'n/a')
const mib = (b: number): string => (Number.isFinite(b) ? `${(b / 2 ** 20).toFixed(0)} MiB` : '–')
const tps = (d: RunResult['decode']): number | undefined => (d && d.tokens.length > 1 ? (d.tokens.length - 1) / (d.decodeMs / 1000) : undefined)

export async function run(args: readonly string[]): Promise<void> {
  const flag = (k: string): string | undefined => args.find(a => a.startsWith(`--${k}=`))?.slice(k.length + 3)
  const has = (k: string): boolean => args.includes(`--${k}`)
  const quick = has('quick')
  const names = (flag('models') ?? (quick ? 'tiny' : 'small,large')).split(',').filter(Boolean)
  for (const n of names) if (!(n in MODELS)) throw new Error(`unknown model ${n}; available: ${Object.keys(MODELS).join(', ')}`)
  const steps = Number(flag('steps') ?? (quick ? 3 : 12))
  const warmup = Math.min(quick ? 1 : 2, steps - 1)
  const decodeCfg = has('no-decode') ? undefined : quick ? { prompt: 16, tokens: 8 } : { prompt: 512, tokens: 256 }
  const outDir = resolve(flag('out') ?? join(here, 'out'))
  const before = loadavg()
  const wasm = await cpuWasmReady()
  const fused = crossEntropyOp(has('unfused'))
  let gpu: string | undefined
  if (!has('no-webgpu')) {
    try {
      const b = await initBackend('webgpu')
      gpu = (b as { adapterInfo?: string }).adapterInfo ?? 'webgpu'
    } catch (err) {
      gpu = undefined
      console.log(`WebGPU: n/a (${reason(err)})`)
    }
  }
  const text = corpus()
  const results: ModelResult[] = []
  for (const name of names) {
    const m = MODELS[name]!
    console.log(`\n## ${name}: d_model ${m.dModel}, ${m.layers} layers, ${m.heads} heads, batch ${m.batch} × ${m.seq}, vocab ${m.vocab}; ${steps} steps (${warmup} warm-up)`)
    const named = initialParams(m)
    const data = batches(text, m, steps)
    const prompt = decodeCfg ? text.slice(0, decodeCfg.prompt) : new Int32Array(0)
    const dir = mkdtempSync(join(tmpdir(), 'heed-train-'))
    let torch: ModelResult['torch']
    try {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ model: m, steps, warmup, lr: LR, params: named.map(e => ({ name: e.name, shape: e.shape })), decode: decodeCfg ?? { prompt: 1, tokens: 1 } }))
      writeFileSync(join(dir, 'params.bin'), Buffer.concat(named.map(e => Buffer.from(e.values.buffer, e.values.byteOffset, e.values.byteLength))))
      writeFileSync(join(dir, 'tokens.bin'), Buffer.from(data.buffer))
      writeFileSync(join(dir, 'prompt.bin'), Buffer.from((decodeCfg ? prompt : text.slice(0, 1)).buffer.slice(0)))
      if (!has('no-torch')) {
        torch = runTorch(dir)
        console.log(ok(torch) ? `PyTorch ${torch.version} (${torch.threads} threads): ${fmtMs(timed(torch, warmup))}` : `PyTorch: n/a — ${torch.error}; reporting heed and tfjs alone`)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    const heed = await runHeed(m, named, data, steps, 'cpu', decodeCfg ? { prompt, tokens: decodeCfg.tokens } : undefined, fused, steps - 1)
    console.log(`heed cpu (${wasm ? `WebAssembly, ${wasm.threads} threads` : 'TypeScript kernels'}): ${fmtMs(timed(heed, warmup))}`)
    let tfjs: ModelResult['tfjs']
    if (!has('no-tfjs')) {
      try {
        tfjs = await runTfjs(m, named, data, steps)
        console.log(`tfjs-wasm ${tfjs.version}: ${fmtMs(timed(tfjs, warmup))}`)
      } catch (err) {
        tfjs = { error: reason(err) }
        console.log(`tfjs-wasm: n/a (${tfjs.error})`)
      }
    }
    let webgpu: ModelResult['webgpu']
    if (gpu !== undefined) {
      try {
        const n = Math.min(steps, quick ? 2 : 3)
        const r = await runHeed(m, named, data, n, 'webgpu', undefined, fused, undefined)
        webgpu = { ...r, note: gpu }
        console.log(`heed webgpu (${gpu}): ${fmtMs(stats(r.stepMs.slice(1)))}; losses ${r.losses.map(x => x.toFixed(4)).join(' ')}`)
      } catch (err) {
        webgpu = { error: reason(err) }
        console.log(`heed webgpu: n/a (${webgpu.error})`)
      }
    }
    const pr = (heed as { profile?: Awaited<ReturnType<typeof profile>> }).profile
    const { profile: _p, ...heedPlain } = heed as RunResult & { profile?: unknown }
    results.push({
      model: m,
      steps,
      warmup,
      crossEntropy: fused ? 'fused crossEntropy' : 'logSoftmax + take',
      heed: heedPlain,
      ...(torch ? { torch } : {}),
      ...(tfjs ? { tfjs } : {}),
      ...(webgpu ? { webgpu } : {}),
      ...(pr ? { profile: { wallMs: pr.wallMs, calls: pr.kernels.length, byKernel: byOpKernel(pr.kernels) } } : {}),
      ...(decodeCfg ? { decode: decodeCfg } : {}),
    })
    console.log(report([results[results.length - 1]!]))
  }

  const machine = machineInfo(before)
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, 'train.json'), JSON.stringify({ machine, wasm, webgpu: gpu ?? null, lr: LR, results }, null, 2))
  writeFileSync(join(outDir, 'train.md'), markdown(machine, wasm, results))
  console.log(`\nwrote ${join(outDir, 'train.json')} and train.md`)
}

/** Totals per op and kernel (`mul/Binary`), largest first: the kernel name alone lumps every binary op together. */
function byOpKernel(ks: readonly { op: string; kernel: string; ms: number }[]): { kernel: string; calls: number; ms: number }[] {
  const m = new Map<string, { kernel: string; calls: number; ms: number }>()
  for (const k of ks) {
    const key = k.op === k.kernel ? k.kernel : `${k.op}/${k.kernel}`
    const e = m.get(key) ?? { kernel: key, calls: 0, ms: 0 }
    e.calls++
    e.ms += k.ms
    m.set(key, e)
  }
  return [...m.values()].sort((a, b) => b.ms - a.ms).map(e => ({ ...e, ms: +e.ms.toFixed(2) }))
}

function report(rs: readonly ModelResult[]): string {
  const lines: string[] = []
  for (const r of rs) {
    const h = timed(r.heed, r.warmup)
    const rows: [string, RunResult | { error: string } | undefined][] = [['heed cpu', r.heed], ['PyTorch', r.torch], ['tfjs-wasm', r.tfjs], ['heed webgpu', r.webgpu]]
    lines.push(`| ${r.model.name} | step | ratio heed/peer | loss after ${r.steps} | peak memory | decode tok/s |`, '|---|---|---|---|---|---|')
    for (const [name, x] of rows) {
      if (x === undefined) continue
      if (!ok(x)) {
        lines.push(`| ${name} | n/a (${x.error}) | | | | |`)
        continue
      }
      const s = name === 'heed webgpu' ? stats(x.stepMs.slice(1)) : timed(x, r.warmup)
      const ratio = name === 'heed cpu' || name === 'heed webgpu' || !h || !s ? '' : `${(s.median / h.median).toFixed(2)}×`
      const mem = x.memory ? (name === 'PyTorch' ? `RSS peak ${mib(x.memory.peakRss)} (from ${mib(x.memory.rssBefore)})` : `live ${mib(x.memory.liveBytesForward)} (params+state ${mib(x.memory.paramBytes)}), RSS peak ${mib(x.memory.peakRss)}`) : ''
      const t = tps(x.decode)
      lines.push(`| ${name} | ${fmtMs(s)} | ${ratio} | ${x.losses[x.losses.length - 1]?.toFixed(4) ?? ''} | ${mem} | ${t ? t.toFixed(0) : ''} |`)
    }
    const td = ok(r.torch) ? r.torch.decode : undefined
    if (ok(r.torch) && td && r.heed.decode) {
      const same = r.heed.decode.tokens.filter((t, i) => t === td.tokens[i]).length
      const th = tps(r.heed.decode)
      const tt = tps(r.torch.decode)
      lines.push('', `decode: heed ${th?.toFixed(0)} tok/s, PyTorch ${tt?.toFixed(0)} tok/s (ratio ${th && tt ? (th / tt).toFixed(2) : '?'}×); prefill ${r.heed.decode.prefillMs.toFixed(0)} vs ${td.prefillMs.toFixed(0)} ms; greedy tokens equal ${same}/${r.heed.decode.tokens.length}`)
    }
    lines.push('', `losses: heed ${r.heed.losses.map(x => x.toFixed(4)).join(' ')}`)
    if (ok(r.torch)) lines.push(`losses: torch ${r.torch.losses.map(x => x.toFixed(4)).join(' ')}`)
    if (ok(r.tfjs)) lines.push(`losses: tfjs ${r.tfjs.losses.map(x => x.toFixed(4)).join(' ')}`)
    if (ok(r.webgpu)) lines.push(`losses: webgpu ${r.webgpu.losses.map(x => x.toFixed(4)).join(' ')}`)
    if (r.heed.leak) lines.push(`live tensors before/after the run: ${r.heed.leak.tensorsBefore}/${r.heed.leak.tensorsAfter}`)
    if (r.profile) {
      lines.push('', `profile of one heed step: ${r.profile.calls} kernel calls, ${r.profile.wallMs.toFixed(0)} ms wall`, '', '| kernel | calls | ms |', '|---|---|---|')
      for (const k of r.profile.byKernel.slice(0, 20)) lines.push(`| ${k.kernel} | ${k.calls} | ${k.ms.toFixed(1)} |`)
    }
    lines.push('')
  }
  return lines.join('\n')
}

function markdown(m: MachineInfo, wasm: Awaited<ReturnType<typeof cpuWasmReady>>, rs: readonly ModelResult[]): string {
  return [
    '# Training step: heed vs PyTorch vs tfjs-wasm',
    '',
    `Machine: ${machineLine(m)}. heed CPU: ${wasm ? `WebAssembly SIMD, ${wasm.threads} threads${wasm.relaxed ? ', relaxed SIMD' : ''}` : 'TypeScript kernels'}.`,
    '',
    'Same initial parameters and batches for every implementation (losses agree ⇒ same work). Step: median [min–max] after the warm-up steps; ratio = peer time / heed time (> 1: heed faster). Peak memory: heed live tensor bytes at the end of the forward and process peak RSS; PyTorch peak RSS. Decode: greedy with a KV cache, tokens/s of the one-token calls. `npm run bench -- train`.',
    '',
    report(rs),
  ].join('\n')
}
