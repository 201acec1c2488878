/**
 * Which attention operator to pick: every operator @heed/attention exports (found at run time), dense
 * `scaledDotProductAttention` as the baseline and StreamingLLM-style `mask.streaming` sdpa, on one planted-retrieval
 * ("needle in a haystack") task at T ∈ {1k, 4k, 16k, 64k} (and 8k for Lightning, Flow and Agent, whose
 * time(64k)/time(8k) is checked against the linear-growth target ≤ 10). Per (backend, operator, T): needle recall,
 * relative error against dense attention, time and peak extra memory. Prints a table; writes
 * bench/out/operators.{json,md,svg} (the SVG: time vs T, log-log).
 *
 * Task. B1, D32, H1 (operators defined by their heads get more: S2 4, DuoAttention 2, HiLo 2; every head sees the
 * same q, k, v). Keys, queries and values are iid N(0, 1). The last R = 8 query rows are probes: probe i is
 * a·u_i with u_1..u_R orthonormal, and one key at a random position p_i < T − 16 (never a landmark slot,
 * p mod 64 ≠ 63) is set to a·u_i too, with a² = 24·√D, so the needle's scaled score is 24 while a random key's is
 * N(0, a²/D) — softmax puts ≥ 99.99 % of the row's mass on the needle even at 64k, and different probes look for
 * different needles (u_i ⟂ u_j), so a cache chosen for one probe does not serve the next.
 *
 * Recall (precise): probe row i (per head; HiLo: the mean of its heads) retrieves its needle when the value with the
 * largest cosine similarity to its output, over all T values, is v_{p_i}. Cosine, so operators that do not normalise
 * (Lightning: no denominator) are judged by direction only. recall = hits / (R · heads). Dense attention scores 1.
 *
 * Relative error: ‖out − dense‖_F / ‖dense‖_F over the last 16 query rows (8 background rows with random queries,
 * then the 8 probes) and every head, against exact softmax attention on the same inputs — causal for causal
 * operators, bidirectional for the others — computed for those 16 rows only (Tq = 16 sdpa, O(16·T·D)), so it is
 * available at every T even where the dense operator itself is too slow to time. Lightning is a different model (no
 * softmax), so its error is large by construction: read its recall, not its error.
 *
 * Time and memory: each (backend, operator, T) runs in a fresh child process (the method of
 * packages/attention/test/helpers/forwardPeak.ts): a warm-up call at T = min(T, 1024), then the timed calls on the
 * real inputs — each the call plus the readback of `out` — median of 3 when one takes under 1 s, else 1 run. Peak
 * extra = maxRSS after − RSS before, with the high-water mark reset first (/proc/self/clear_refs). Decode-only
 * operators (Recycled: a decode schedule) run the 16 evaluated rows as decode steps over the T keys instead of a
 * T-query prefill; the table marks them.
 *
 * Flags: --max=65536 (largest T), --backends=cpu,webgpu (default: cpu, plus webgpu when a hardware adapter is
 * found; a software adapter such as lavapipe only when named explicitly), --ops=a,b (export names;
 * `scaledDotProductAttention` is dense, `mask.streaming` the streaming baseline), --limit=10 (seconds): an operator
 * stops when its next T is predicted (from its complexity) to take longer than the limit, printing
 * `skipped (too slow)`; a child is killed after 1.5×limit + 15 s (and its larger T are skipped). --out=dir (default bench/out).
 */
/// <reference types="@webgpu/types" />
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Tensor } from '@heed/tensor'

const D = 32
const PROBES = 8
/** evaluated rows: 8 background rows, then the probes */
const ROWS = 16
const SCORE = 24
const SIZES = [1024, 4096, 16384, 65536]
/** the linear operators the issue holds to time(64k)/time(8k) ≤ 10 */
const LINEAR_CHECK = ['lightningAttention', 'flowAttention', 'agentAttention']
const RATIO_FROM = 8192
const RATIO_TO = 65536
const RATIO_TARGET = 10

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..')

// ---- the task --------------------------------------------------------------------------------------------------

/** Seeded uniform [0, 1) stream (mulberry32), so every child rebuilds the same task for a given T. */
function uniforms(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** Seeded N(0, 1) stream (Box–Muller). */
function normals(seed: number): () => number {
  const u = uniforms(seed)
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u())
}

export interface Task {
  readonly T: number
  /** [T, D] each, one head */
  readonly q: Float32Array
  readonly k: Float32Array
  readonly v: Float32Array
  /** needle position of probe i (query row T − PROBES + i) */
  readonly needles: readonly number[]
}

export function makeTask(T: number): Task {
  const rnd = normals(0x5eed + T)
  const pick = uniforms(0xbeef + T)
  const fill = (): Float32Array => Float32Array.from({ length: T * D }, rnd)
  const [q, k, v] = [fill(), fill(), fill()]
  // orthonormal directions (Gram–Schmidt), so probe i scores 0 against every other probe's needle
  const dirs: Float64Array[] = []
  while (dirs.length < PROBES) {
    const x = Float64Array.from({ length: D }, rnd)
    for (const u of dirs) {
      let dot = 0
      for (let d = 0; d < D; d++) dot += x[d]! * u[d]!
      for (let d = 0; d < D; d++) x[d]! -= dot * u[d]!
    }
    const n = Math.hypot(...x)
    if (n > 1e-3) dirs.push(x.map(e => e / n))
  }
  const a = Math.sqrt(SCORE * Math.sqrt(D))
  const used = new Set<number>()
  const needles: number[] = []
  for (const u of dirs) {
    let p: number
    do p = Math.floor(pick() * (T - ROWS))
    while (used.has(p) || p % 64 === 63)
    used.add(p)
    const row = T - PROBES + needles.length
    for (let d = 0; d < D; d++) {
      k[p * D + d] = a * u[d]!
      q[row * D + d] = a * u[d]!
    }
    needles.push(p)
  }
  return { T, q, k, v, needles }
}

/** A token grid [rows, cols] for T a power of two, as square as possible (for the image operators). */
const gridOf = (T: number): [number, number] => {
  const rows = 2 ** Math.floor(Math.log2(T) / 2)
  return [rows, T / rows]
}

// ---- adapters: how each operator is called on the task ----------------------------------------------------------

type Api = Record<string, unknown>
type Fn = (...args: unknown[]) => { out: Tensor }

interface Adapter {
  /** what the table shows next to the name */
  readonly config: string
  /** time exponent in T, for predicting when the next size passes the limit */
  readonly growth: number
  readonly heads?: number
  /** reference: causal or bidirectional softmax */
  readonly causal: boolean
  /** decode-only: the query rows are the evaluated rows, not the whole sequence */
  readonly decode?: boolean
  /** HiLo: the output is the mean of its heads (Hi-Fi and Lo-Fi), what an output projection [I/2, I/2] gives */
  readonly meanHeads?: boolean
  /** adjust the inputs this operator needs (landmark keys) */
  readonly prepare?: (task: Task) => void
  readonly call: (api: Api, q: Tensor, k: Tensor, v: Tensor, T: number) => Tensor
}

const fn = (api: Api, name: string): Fn => api[name] as Fn
const LANDMARK_BLOCK = 63

/**
 * Exports that are layers, cache plumbing or head gates around sdpa rather than attention patterns of their own;
 * `scaledDotProductAttention` is the dense baseline.
 */
const NOT_OPERATORS: Record<string, string> = {
  multiHeadAttention: 'a layer (projections around an attention function)',
  cachedAttention: 'KV-cache plumbing around sdpa',
  splitKvAttention: 'exact split-KV sdpa (equals dense)',
  mergeAttention: 'merges attention states',
  mohAttention: 'per-head output gates around sdpa (equals dense with every head on)',
  positionalAttention: 'position-only maps applied to a layer input (no q, k, v)',
}

const ADAPTERS: Record<string, Adapter> = {
  scaledDotProductAttention: {
    config: 'dense, causal',
    growth: 2,
    causal: true,
    call: (api, q, k, v) => fn(api, 'scaledDotProductAttention')(q, k, v, { causal: true }).out,
  },
  'mask.streaming': {
    config: 'sdpa, sink 128 + recent 256',
    growth: 1,
    causal: true,
    call: (api, q, k, v) => {
      const m = (api['mask'] as { streaming: (s: number, r: number) => unknown }).streaming(128, 256)
      return fn(api, 'scaledDotProductAttention')(q, k, v, { causal: true, mask: m }).out
    },
  },
  lightningAttention: {
    config: "causal, decay 'tnl'",
    growth: 1,
    causal: true,
    call: (api, q, k, v) => fn(api, 'lightningAttention')(q, k, v, { decay: 'tnl' }).out,
  },
  flowAttention: { config: 'bidirectional', growth: 1, causal: false, call: (api, q, k, v) => fn(api, 'flowAttention')(q, k, v).out },
  agentAttention: { config: '49 agents, no DWC', growth: 1, causal: false, call: (api, q, k, v) => fn(api, 'agentAttention')(q, k, v).out },
  duoAttention: {
    config: 'H2: α = [1, 0] (one retrieval, one streaming head)',
    growth: 2,
    heads: 2,
    causal: true,
    call: (api, q, k, v) => fn(api, 'duoAttention')(q, k, v, { alpha: [1, 0] }).out,
  },
  s2Attention: { config: 'H4: block 64, 4 local, stride 4', growth: 2, heads: 4, causal: true, call: (api, q, k, v) => fn(api, 's2Attention')(q, k, v).out },
  actAttention: { config: "causal, sinks 'auto', β 0.4", growth: 2, causal: true, call: (api, q, k, v) => fn(api, 'actAttention')(q, k, v).out },
  landmarkAttention: {
    config: `block ${LANDMARK_BLOCK}, all blocks; landmark key = Σ block keys/√ℓ`,
    growth: 2,
    causal: true,
    // Landmarks are trained tokens; with random inputs a block-sum key is the nearest untrained stand-in.
    prepare: task => {
      const period = LANDMARK_BLOCK + 1
      for (let lm = LANDMARK_BLOCK; lm < task.T; lm += period)
        for (let d = 0; d < D; d++) {
          let s = 0
          for (let j = lm - LANDMARK_BLOCK; j < lm; j++) s += task.k[j * D + d]!
          task.k[lm * D + d] = s / Math.sqrt(LANDMARK_BLOCK)
        }
    },
    call: (api, q, k, v) => fn(api, 'landmarkAttention')(q, k, v, { blockSize: LANDMARK_BLOCK }).out,
  },
  hiloAttention: {
    config: 'H2 (1 Hi-Fi, 1 Lo-Fi), window 2, head mean',
    growth: 2,
    heads: 2,
    meanHeads: true,
    causal: false,
    call: (api, q, k, v, T) => fn(api, 'hiloAttention')(q, k, v, { grid: gridOf(T) }).out,
  },
  windowAttention: { config: 'DaViT spatial, 7×7 windows', growth: 1, causal: false, call: (api, q, k, v, T) => fn(api, 'windowAttention')(q, k, v, { grid: gridOf(T) }).out },
  channelAttention: { config: 'DaViT channel (D×D per head)', growth: 1, causal: false, call: (api, q, k, v) => fn(api, 'channelAttention')(q, k, v).out },
  combinerAttention: { config: 'segments √T, max pool', growth: 1.5, causal: false, call: (api, q, k, v) => fn(api, 'combinerAttention')(q, k, v).out },
  routingAttention: {
    config: 'balanced, √T random unit centroids',
    growth: 1.5,
    causal: false,
    call: (api, q, k, v, T) => {
      const C = Math.round(Math.sqrt(T))
      const rnd = normals(7)
      const c = Array.from({ length: C * D }, rnd)
      for (let i = 0; i < C; i++) {
        const n = Math.hypot(...c.slice(i * D, (i + 1) * D))
        for (let d = 0; d < D; d++) c[i * D + d]! /= n
      }
      const tensor = api['tensorFactory'] as (x: number[], shape: number[]) => Tensor
      return fn(api, 'routingAttention')(q, k, v, { centroids: tensor(c, [C, D]) }).out
    },
  },
  hipAttention: { config: 'hip-v1, mask_k 512, b_q 32, b_k 2', growth: 1.2, causal: false, call: (api, q, k, v) => fn(api, 'hipAttention')(q, k, v).out },
  longHeadsAttention: {
    config: 'w 256, L 4096, no RoPE',
    growth: 1.2,
    causal: true,
    // RoPE would rotate the planted needle out of alignment, and the dense reference has no positions
    call: (api, q, k, v) => fn(api, 'longHeadsAttention')(q, k, v, { rope: false }).out,
  },
  recycledAttention: {
    config: 'decode 16 steps: stride 4, keep 256',
    growth: 1,
    causal: true,
    decode: true,
    call: (api, q, k, v) => fn(api, 'recycledAttention')(q, k, v, { stride: 4, keep: 256 }).out,
  },
  varAttention: {
    config: 'haystack as image tokens, 4 sinks, p 0.6',
    growth: 2,
    causal: true,
    // VAR moves mass between image tokens; treating the haystack as the image lets it act on the probe (text) rows
    call: (api, q, k, v, T) =>
      fn(api, 'varAttention')(q, k, v, { causal: true, visual: Array.from({ length: T - ROWS }, (_, i) => i), sinks: [0, 1, 2, 3], heads: [0] }).out,
  },
  taskKvAttention: {
    config: 'compact head: sink + recent + middle picked by the last rows',
    growth: 2,
    causal: true,
    call: (api, q, k, v) => fn(api, 'taskKvAttention')(q, k, v, { heterogeneous: [false], causal: true }).out,
  },
  pineAttention: {
    config: '8 documents + 16-row suffix, no RoPE',
    growth: 2,
    causal: true,
    // Without positions PINE's suffix rows are causal attention: the row shows PINE's cost, not its order invariance.
    call: (api, q, k, v, T) => {
      const n = 8
      const span = Math.floor((T - ROWS) / n)
      const documents = Array.from({ length: n }, (_, i) => [i * span, i === n - 1 ? T - ROWS : (i + 1) * span] as const)
      return fn(api, 'pineAttention')(q, k, v, { documents, rope: false }).out
    },
  },
}

/** An exported `*Attention` with no adapter is tried as `f(q, k, v, {})` (bidirectional reference assumed). */
const generic = (name: string): Adapter => ({ config: 'defaults (no bench adapter)', growth: 2, causal: false, call: (api, q, k, v) => fn(api, name)(q, k, v, {}).out })

/** The operators to run: every exported attention function, in a stable order (baselines first). */
async function discover(): Promise<{ ops: string[]; notOperators: Record<string, string> }> {
  const api = (await import('@heed/attention')) as unknown as Api
  const exported = Object.keys(api).filter(n => typeof api[n] === 'function' && /Attention$/.test(n))
  const known = Object.keys(ADAPTERS).filter(n => n === 'mask.streaming' || exported.includes(n))
  const extra = exported.filter(n => !(n in ADAPTERS) && !(n in NOT_OPERATORS)).sort()
  const notOperators = Object.fromEntries(Object.entries(NOT_OPERATORS).filter(([n]) => exported.includes(n)))
  return { ops: [...known, ...extra], notOperators }
}

const adapterOf = (op: string): Adapter => ADAPTERS[op] ?? generic(op)

// ---- child: one (backend, operator, T) --------------------------------------------------------------------------

interface ChildConfig {
  readonly backend: 'cpu' | 'webgpu'
  readonly op: string
  readonly T: number
}

export type ChildResult =
  | {
      readonly ok: true
      readonly ms: number
      readonly runs: number
      readonly extraBytes: number
      /** false when the high-water mark could not be reset: extraBytes is then an upper bound */
      readonly exact: boolean
      readonly recall: number
      readonly relError: number
      readonly adapter?: string
    }
  | { readonly ok: false; readonly error: string }

const reason = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 140)

async function nodeWebGpu(): Promise<string> {
  const spec = 'webgpu'
  const { create, globals } = (await import(spec)) as { create: (flags: string[]) => GPU; globals: Record<string, unknown> }
  Object.assign(globalThis, globals)
  const g = globalThis as { navigator?: { gpu?: GPU } }
  if (!g.navigator?.gpu) Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: create([]), userAgent: 'node' }, configurable: true })
  const info = (await (globalThis as unknown as { navigator: { gpu: GPU } }).navigator.gpu.requestAdapter())?.info
  return info ? `${info.vendor} ${info.architecture} (${info.description || info.device})` : 'no adapter'
}

function resetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5')
    return process.resourceUsage().maxRSS * 1024 <= process.memoryUsage().rss + 4 * 2 ** 20
  } catch {
    return false
  }
}

async function child(cfg: ChildConfig): Promise<ChildResult> {
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined)
  const adapterName = cfg.backend === 'webgpu' ? await nodeWebGpu() : undefined
  const tensorLib = await import('@heed/tensor')
  const api: Api = { ...((await import('@heed/attention')) as unknown as Api), tensorFactory: (x: number[], shape: number[]) => tensorLib.tensor(x, shape, 'float32') }
  await tensorLib.setBackend(cfg.backend)
  const ad = adapterOf(cfg.op)
  const H = ad.heads ?? 1
  const rowsOf = (task: Task): number => (ad.decode ? ROWS : task.T)
  const heads = (x: Float32Array, from: number, rows: number): Tensor => {
    const one = x.subarray(from * D, (from + rows) * D)
    const all = new Float32Array(H * one.length)
    for (let h = 0; h < H; h++) all.set(one, h * one.length)
    return tensorLib.tensor(all, [1, H, rows, D], 'float32')
  }
  const inputs = (task: Task): [Tensor, Tensor, Tensor] => [heads(task.q, task.T - rowsOf(task), rowsOf(task)), heads(task.k, 0, task.T), heads(task.v, 0, task.T)]
  const forward = async (task: Task, q: Tensor, k: Tensor, v: Tensor): Promise<Float32Array> => {
    const out = ad.call(api, q, k, v, task.T)
    const data = Float32Array.from(await out.data())
    out.dispose()
    return data
  }

  // warm-up: loads and JIT-compiles (or builds pipelines for) the operator's code before anything is measured
  const warm = makeTask(Math.min(cfg.T, 1024))
  ad.prepare?.(warm)
  const w = inputs(warm)
  await forward(warm, ...w)
  for (const x of w) x.dispose()

  const task = makeTask(cfg.T)
  ad.prepare?.(task)
  const [q, k, v] = inputs(task)
  gc()
  const exact = resetPeak()
  const rssBefore = process.memoryUsage().rss
  const times: number[] = []
  let out: Float32Array = new Float32Array(0)
  for (let run = 0; run < 3; run++) {
    const t0 = performance.now()
    out = await forward(task, q, k, v)
    times.push(performance.now() - t0)
    if (times[0]! >= 1000) break
  }
  const extraBytes = process.resourceUsage().maxRSS * 1024 - rssBefore
  times.sort((x, y) => x - y)

  // quality on the evaluated rows: exact softmax attention for those rows only (head 0; every head has the same inputs)
  const T = cfg.T
  const rows = rowsOf(task)
  const sdpa = api['scaledDotProductAttention'] as Fn
  const q1 = tensorLib.tensor(task.q.slice((T - ROWS) * D), [1, 1, ROWS, D], 'float32')
  const k1 = tensorLib.tensor(task.k, [1, 1, T, D], 'float32')
  const v1 = tensorLib.tensor(task.v, [1, 1, T, D], 'float32')
  const ref = await sdpa(q1, k1, v1, ad.causal ? { causal: true } : {}).out.data()
  const outH = ad.meanHeads ? 1 : H
  const outRow = (h: number, i: number): Float64Array => {
    // row i of the last ROWS rows, head h (or the head mean)
    const at = (hh: number): number => (hh * rows + rows - ROWS + i) * D
    const r = new Float64Array(D)
    if (ad.meanHeads) for (let hh = 0; hh < H; hh++) for (let d = 0; d < D; d++) r[d]! += out[at(hh) + d]! / H
    else for (let d = 0; d < D; d++) r[d] = out[at(h) + d]!
    return r
  }
  let num = 0
  let den = 0
  let hits = 0
  const vNorm = new Float64Array(T)
  for (let j = 0; j < T; j++) {
    let s = 0
    for (let d = 0; d < D; d++) s += task.v[j * D + d]! ** 2
    vNorm[j] = Math.sqrt(s)
  }
  for (let h = 0; h < outH; h++)
    for (let i = 0; i < ROWS; i++) {
      const o = outRow(h, i)
      for (let d = 0; d < D; d++) {
        num += (o[d]! - ref[i * D + d]!) ** 2
        den += ref[i * D + d]! ** 2
      }
      if (i < ROWS - PROBES) continue
      let best = -1
      let bestCos = -Infinity
      for (let j = 0; j < T; j++) {
        let s = 0
        for (let d = 0; d < D; d++) s += o[d]! * task.v[j * D + d]!
        const c = s / vNorm[j]!
        if (c > bestCos) [best, bestCos] = [j, c]
      }
      if (best === task.needles[i - (ROWS - PROBES)]) hits++
    }
  return {
    ok: true,
    ms: times[times.length >> 1]!,
    runs: times.length,
    extraBytes,
    exact,
    recall: hits / (PROBES * outH),
    relError: Math.sqrt(num / den),
    ...(adapterName !== undefined ? { adapter: adapterName } : {}),
  }
}

function spawnChild(args: string[], timeoutMs: number): Promise<{ line?: string; error?: string }> {
  // a clean Node: no coverage or loader hooks of a parent test runner
  const env = { ...process.env }
  delete env['NODE_OPTIONS']
  const proc = spawn(process.execPath, ['--expose-gc', '--conditions=@heed/source', '--import', 'tsx', fileURLToPath(import.meta.url), ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise(res => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
    proc.on('close', (code, signal) => {
      clearTimeout(timer)
      const line = stdout.split('\n').find(l => l.startsWith('RESULT '))
      if (line) res({ line: line.slice('RESULT '.length) })
      else if (signal === 'SIGKILL') res({ error: `timed out after ${Math.round(timeoutMs / 1000)} s` })
      else res({ error: `child exited ${code ?? signal}: ${(stderr.trim().split('\n').pop() ?? '').slice(0, 120)}` })
    })
  })
}

async function measure(cfg: ChildConfig, timeoutMs: number): Promise<ChildResult> {
  const r = await spawnChild(['--child', JSON.stringify(cfg)], timeoutMs)
  return r.line ? (JSON.parse(r.line) as ChildResult) : { ok: false, error: r.error! }
}

// ---- parent ----------------------------------------------------------------------------------------------------

interface Row {
  readonly backend: string
  readonly op: string
  readonly T: number
  readonly result?: ChildResult
  readonly skipped?: string
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`
const secs = (ms: number): string => (ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`)
const kT = (T: number): string => `${T / 1024}k`

function sizesFor(op: string, max: number): number[] {
  const s = LINEAR_CHECK.includes(op) ? [...SIZES, RATIO_FROM].sort((a, b) => a - b) : SIZES
  return s.filter(T => T <= max)
}

/** Log-log time vs T, one line per operator, with slope-1 and slope-2 guides. */
function svgPlot(rows: readonly Row[], title: string): string {
  const pts = new Map<string, [number, number][]>()
  for (const r of rows) if (r.result?.ok) pts.set(r.op, [...(pts.get(r.op) ?? []), [r.T, r.result.ms]])
  const all = [...pts.values()].flat()
  const W = 900
  const Hh = 560
  const m = { l: 70, r: 260, t: 40, b: 50 }
  const ys = all.map(p => Math.log10(p[1]))
  const x0 = Math.log10(1024) - 0.1
  const x1 = Math.log10(Math.max(65536, ...all.map(p => p[0]))) + 0.1
  const y0 = Math.floor(Math.min(0, ...ys))
  const y1 = Math.ceil(Math.max(1, ...ys))
  const X = (lx: number): number => m.l + ((lx - x0) / (x1 - x0)) * (W - m.l - m.r)
  const Y = (ly: number): number => Hh - m.b - ((ly - y0) / (y1 - y0)) * (Hh - m.t - m.b)
  const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#000000', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2']
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${Hh}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="14">${esc(title)}</text>`,
  ]
  for (let e = y0; e <= y1; e++) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(e)}" y2="${Y(e)}" stroke="#ddd"/>`)
    out.push(`<text x="${m.l - 6}" y="${Y(e) + 4}" text-anchor="end">${e >= 3 ? `${10 ** (e - 3)} s` : `${10 ** e} ms`}</text>`)
  }
  for (const T of [1024, 4096, 8192, 16384, 65536]) {
    out.push(`<line x1="${X(Math.log10(T))}" x2="${X(Math.log10(T))}" y1="${m.t}" y2="${Hh - m.b}" stroke="#eee"/>`)
    out.push(`<text x="${X(Math.log10(T))}" y="${Hh - m.b + 16}" text-anchor="middle">${kT(T)}</text>`)
  }
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${Hh - 12}" text-anchor="middle">sequence length T (log)</text>`)
  out.push(`<text x="16" y="${(m.t + Hh - m.b) / 2}" transform="rotate(-90 16 ${(m.t + Hh - m.b) / 2})" text-anchor="middle">time (log)</text>`)
  out.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${Hh - m.t - m.b}" fill="none" stroke="#444"/>`)
  // guides through the plot's lower-left: how linear and quadratic growth look
  const first = all.filter(p => p[0] === 1024).map(p => Math.log10(p[1]))
  const anchor = first.length > 0 ? Math.min(...first) - 0.3 : y0 + 0.2
  for (const [slope, label] of [[1, 'slope 1 (linear)'], [2, 'slope 2 (quadratic)']] as const) {
    const ly0 = Math.max(y0, anchor)
    const lx1 = Math.min(x1, x0 + (y1 - ly0) / slope)
    out.push(`<line x1="${X(x0)}" y1="${Y(ly0)}" x2="${X(lx1)}" y2="${Y(ly0 + slope * (lx1 - x0))}" stroke="#999" stroke-dasharray="5,4"/>`)
    out.push(`<text x="${X(lx1) - 4}" y="${Y(ly0 + slope * (lx1 - x0)) + 14}" fill="#777" text-anchor="end">${label}</text>`)
  }
  ;[...pts.entries()].forEach(([op, p], i) => {
    const c = palette[i % palette.length]!
    const sorted = [...p].sort((a, b) => a[0] - b[0])
    const path = sorted.map(([T, ms]) => `${X(Math.log10(T)).toFixed(1)},${Y(Math.log10(ms)).toFixed(1)}`).join(' ')
    const dash = i >= 10 ? ' stroke-dasharray="6,3"' : ''
    out.push(`<polyline points="${path}" fill="none" stroke="${c}" stroke-width="2"${dash}/>`)
    for (const [T, ms] of sorted) out.push(`<circle cx="${X(Math.log10(T)).toFixed(1)}" cy="${Y(Math.log10(ms)).toFixed(1)}" r="3" fill="${c}"/>`)
    const ly = m.t + 8 + i * 18
    out.push(`<line x1="${W - m.r + 14}" x2="${W - m.r + 40}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${dash}/>`)
    out.push(`<text x="${W - m.r + 46}" y="${ly + 4}">${esc(op)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n')
}

async function probeWebGpu(): Promise<string> {
  const r = await spawnChild(['--probe'], 60_000)
  return r.line ? (JSON.parse(r.line) as string) : `n/a (${r.error})`
}

export async function run(flags: readonly string[]): Promise<void> {
  const flag = (name: string): string | undefined => flags.find(f => f.startsWith(`--${name}=`))?.slice(name.length + 3)
  const max = Number(flag('max') ?? 65536)
  const limitS = Number(flag('limit') ?? 10)
  const outDir = resolve(flag('out') ?? join(here, 'out'))
  const explicitBackends = flag('backends')
  const { ops: found, notOperators } = await discover()
  const wanted = flag('ops')?.split(',').filter(Boolean)
  const unknown = (wanted ?? []).filter(o => !found.includes(o))
  if (unknown.length > 0) throw new Error(`--ops: ${unknown.join(', ')} not exported by @heed/attention; have ${found.join(', ')}`)
  const ops = wanted ? found.filter(o => wanted.includes(o)) : found

  const backends: string[] = []
  const notes: string[] = []
  let adapter: string | undefined
  for (const b of (explicitBackends ?? 'cpu,webgpu').split(',').filter(Boolean)) {
    if (b === 'cpu') backends.push(b)
    else if (b === 'webgpu') {
      adapter = await probeWebGpu()
      const usable = !/^n\/a|no adapter/.test(adapter)
      const software = /software|llvmpipe|lavapipe|swiftshader/i.test(adapter)
      if (usable && (explicitBackends !== undefined || !software)) backends.push(b)
      else notes.push(`webgpu not run: ${software ? `software adapter ${adapter} (pass --backends=webgpu to run it anyway)` : adapter}`)
    } else throw new Error(`--backends: unknown backend ${b}`)
  }

  const started = performance.now()
  const rows: Row[] = []
  for (const backend of backends)
    for (const op of ops) {
      const ad = adapterOf(op)
      let stop: string | undefined
      let last: { T: number; ms: number } | undefined
      let growth = ad.growth
      for (const T of sizesFor(op, max)) {
        if (!stop && last && last.ms * (T / last.T) ** growth > limitS * 1000) stop = 'skipped (too slow)'
        if (stop) {
          rows.push({ backend, op, T, skipped: stop })
          continue
        }
        const result = await measure({ backend: backend as 'cpu' | 'webgpu', op, T }, (1.5 * limitS + 15) * 1000)
        rows.push({ backend, op, T, result })
        const line = result.ok ? `${secs(result.ms)}, recall ${result.recall.toFixed(2)}, rel err ${result.relError.toExponential(1)}, peak +${mib(result.extraBytes)}` : `n/a (${result.error})`
        console.log(`  ${backend} ${op} T=${T}: ${line}`)
        if (!result.ok) stop = result.error.startsWith('timed out') ? 'skipped (too slow)' : 'n/a (failed at a smaller T)'
        else {
          // an implementation can grow faster than its operator's complexity (a host-evaluated mask is O(T²)):
          // predict from what was seen when that is steeper; below ~0.1 s fixed costs hide the growth
          if (last && last.ms > 100) growth = Math.max(growth, Math.min(2.5, Math.log(result.ms / last.ms) / Math.log(T / last.T)))
          last = { T, ms: result.ms }
        }
      }
    }
  const totalS = (performance.now() - started) / 1000

  const ratios = backends.flatMap(backend =>
    LINEAR_CHECK.filter(op => ops.includes(op)).map(op => {
      const at = (T: number): number | undefined => {
        const r = rows.find(x => x.backend === backend && x.op === op && x.T === T)?.result
        return r?.ok ? r.ms : undefined
      }
      const a = at(RATIO_FROM)
      const b = at(RATIO_TO)
      const ratio = a !== undefined && b !== undefined ? b / a : undefined
      return { backend, op, ms8k: a, ms64k: b, ratio, pass: ratio === undefined ? undefined : ratio <= RATIO_TARGET }
    }),
  )

  // ---- report ----
  const shape = `B1 D${D} float32, H1 unless noted; ${PROBES} probes + ${ROWS - PROBES} background rows evaluated`
  const head = ['backend', 'operator', 'config', 'T', 'recall', 'rel. error', 'time', 'runs', 'peak extra']
  const table: string[][] = rows.map(r => {
    const ad = adapterOf(r.op)
    const base = [r.backend, r.op, ad.config, kT(r.T)]
    if (r.skipped) return [...base, r.skipped, '', '', '', '']
    const x = r.result!
    if (!x.ok) return [...base, `n/a (${x.error.length > 48 ? `${x.error.slice(0, 47)}…` : x.error})`, '', '', '', '']
    return [...base, x.recall.toFixed(2), x.relError.toExponential(1), secs(x.ms), String(x.runs), `${mib(x.extraBytes)}${x.exact ? '' : ' ≤'}`]
  })
  // a skip or failure note sits in the recall column and runs across the empty ones after it
  const widths = head.map((h, i) => Math.min(i === 2 ? 44 : i === 4 ? 10 : 60, Math.max(h.length, ...table.map(r => (r[i] ?? '').length))))
  const fmt = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (c.length > widths[i]! && i === 2 ? `${c.slice(0, widths[i]! - 1)}…` : c))
      .map((c, i) => (i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join(' | ')
      .replace(/[ |]+$/, '')
  console.log(`\nattention operators on a planted-retrieval task, ${shape}`)
  console.log(`recall: probe output's nearest value (cosine, over all T) is its needle's; rel. error vs exact softmax on the evaluated rows`)
  console.log(`time: call + readback, warm (median of 3 when under 1 s); peak extra: child maxRSS during the calls − RSS before`)
  console.log(`${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}${adapter ? `; WebGPU adapter: ${adapter}` : ''}\n`)
  console.log(fmt(head))
  console.log(widths.map(w => '-'.repeat(w)).join('-+-'))
  let prev = ''
  for (const [i, r] of table.entries()) {
    const key = `${rows[i]!.backend}/${rows[i]!.op}`
    if (prev && key !== prev) console.log('')
    prev = key
    console.log(fmt(r))
  }
  console.log(`\nlinear growth, time(${kT(RATIO_TO)}) / time(${kT(RATIO_FROM)}) (target ≤ ${RATIO_TARGET}; 8× the tokens):`)
  for (const r of ratios)
    console.log(`  ${r.backend} ${r.op}: ${r.ratio === undefined ? 'n/a (not measured at both sizes)' : `${secs(r.ms64k!)} / ${secs(r.ms8k!)} = ${r.ratio.toFixed(2)} ${r.pass ? 'PASS' : 'FAIL'}`}`)
  for (const r of rows) if (r.result && !r.result.ok) notes.push(`${r.backend} ${r.op} T=${r.T} failed: ${r.result.error}`)
  for (const [n, why] of Object.entries(notOperators)) notes.push(`${n} not benchmarked: ${why}`)
  for (const n of notes) console.log(`note: ${n}`)
  console.log(`total ${totalS.toFixed(1)} s`)

  mkdirSync(outDir, { recursive: true })
  const json = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    adapter,
    task: { B: 1, D, dtype: 'float32', probes: PROBES, evaluatedRows: ROWS, needleScore: SCORE, sizes: SIZES, ratioSizes: [RATIO_FROM, RATIO_TO] },
    limitS,
    totalS,
    backends,
    operators: ops.map(op => {
      const ad = adapterOf(op)
      return { name: op, config: ad.config, heads: ad.heads ?? 1, causal: ad.causal, decode: ad.decode ?? false, growth: ad.growth }
    }),
    notBenchmarked: notOperators,
    notes,
    rows: rows.map(r => ({ backend: r.backend, op: r.op, T: r.T, ...(r.skipped ? { skipped: r.skipped } : {}), ...(r.result ?? {}) })),
    linearGrowth: { target: RATIO_TARGET, from: RATIO_FROM, to: RATIO_TO, results: ratios },
  }
  writeFileSync(join(outDir, 'operators.json'), JSON.stringify(json, null, 2))
  const md = [
    `# Attention operators: planted retrieval (${json.date.slice(0, 10)})`,
    '',
    `${shape}. ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}. Method: bench/operators.ts.`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i >= 3 ? '---:' : '---')).join('|')}|`,
    ...table.map(r => `| ${r.join(' | ')} |`),
    '',
    `time(${kT(RATIO_TO)}) / time(${kT(RATIO_FROM)}), target ≤ ${RATIO_TARGET}:`,
    '',
    ...ratios.map(r => `- ${r.backend} \`${r.op}\`: ${r.ratio === undefined ? 'n/a' : `${r.ratio.toFixed(2)} (${r.pass ? 'pass' : 'FAIL'})`}`),
    ...notes.map(n => `- note: ${n}`),
    '',
  ].join('\n')
  writeFileSync(join(outDir, 'operators.md'), md)
  writeFileSync(join(outDir, 'operators.svg'), svgPlot(rows.filter(r => r.backend === (backends[0] ?? 'cpu')), `attention operators, time vs T (${backends[0] ?? 'cpu'}, B1 D${D}), log-log`))
  console.log(`wrote ${join(outDir, 'operators.json')}, operators.md, operators.svg`)
}

// ---- entry when spawned as a child ------------------------------------------------------------------------------

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const say = (x: unknown): void => console.log(`RESULT ${JSON.stringify(x)}`)
  if (process.argv[2] === '--probe') {
    try {
      say(await nodeWebGpu())
    } catch (err) {
      say(`n/a (${reason(err)})`)
    }
  } else if (process.argv[2] === '--child') {
    try {
      say(await child(JSON.parse(process.argv[3]!) as ChildConfig))
    } catch (err) {
      say({ ok: false, error: reason(err) } satisfies ChildResult)
    }
  }
  // a WebGPU device can keep the event loop alive
  process.exit(0)
}
