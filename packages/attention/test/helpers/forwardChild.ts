/**
 * Child process of `forwardPeak.ts`: one causal attention forward on a fresh process, so its resident-set high-water
 * mark (`process.resourceUsage().maxRSS`) belongs to this forward and nothing else. Prints one `RESULT {json}` line.
 * Run with `--expose-gc` (and the @heed/source condition and tsx, as the parent does).
 */
/// <reference types="@webgpu/types" />
import { writeFileSync } from 'node:fs'
import { hasKernel, setBackend, tensor, type Tensor } from '@heed/tensor'
import { scaledDotProductAttention } from '@heed/attention'
import type { ForwardConfig, ForwardResult } from './forwardPeak.js'

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined)
const cfg = JSON.parse(process.argv[2]!) as ForwardConfig
const say = (r: ForwardResult): void => console.log(`RESULT ${JSON.stringify(r)}`)
const reason = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 120)

/** Node has no navigator.gpu: install Dawn's from the `webgpu` package, in this process only. */
async function nodeWebGpu(): Promise<void> {
  const spec = 'webgpu'
  const { create, globals } = (await import(spec)) as { create: (flags: string[]) => GPU; globals: Record<string, unknown> }
  Object.assign(globalThis, globals)
  const g = globalThis as { navigator?: { gpu?: GPU } }
  if (!g.navigator?.gpu) Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: create([]), userAgent: 'node' }, configurable: true })
}

/**
 * Fixed LCG inputs, with a collection after each: garbage from making them must neither sit in the RSS the peak is
 * measured from nor be collected during the forward (either would understate the forward's own peak).
 */
function input(T: number, seed: number): Tensor {
  const n = cfg.H * T * cfg.D
  const a = new Float32Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    a[i] = s / 2 ** 31 - 1
  }
  const t = tensor(a, [1, cfg.H, T, cfg.D], cfg.dtype)
  gc()
  return t
}

/**
 * Linux: writing 5 to /proc/self/clear_refs resets the high-water mark to the current RSS, so the maxRSS read after
 * the forward is this forward's own peak. Elsewhere (or when denied) maxRSS stays an upper bound.
 */
function resetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5')
    return process.resourceUsage().maxRSS * 1024 <= process.memoryUsage().rss + 4 * 2 ** 20
  } catch {
    return false
  }
}

async function forward(T: number): Promise<{ lseFinite: boolean }> {
  const [q, k, v] = [input(T, 1), input(T, 2), input(T, 3)]
  try {
    const { out, lse } = scaledDotProductAttention(q, k, v, { causal: true })
    // the readback is part of the timed call, as in the matmul bench (it is what forces completion on WebGPU)
    await out.data()
    const l = await lse.data()
    out.dispose()
    lse.dispose()
    return { lseFinite: Array.prototype.every.call(l, Number.isFinite) as boolean }
  } finally {
    for (const x of [q, k, v]) x.dispose()
  }
}

let adapter: string | undefined
try {
  if (cfg.backend === 'webgpu') {
    await nodeWebGpu()
    const info = (await (globalThis as unknown as { navigator: { gpu: GPU } }).navigator.gpu.requestAdapter())?.info
    adapter = info ? `${info.vendor} ${info.architecture} (${info.description || info.device})` : 'no adapter'
  }
  await setBackend(cfg.backend)
  // builds (and JIT-compiles, or compiles pipelines for) the kernel before anything is measured
  await forward(Math.min(cfg.T, 64))
  // a backend without the kernel already threw above; this guards against a silent fallback
  if (!hasKernel(cfg.backend, 'Attention')) throw new Error(`no ${cfg.backend} Attention kernel registered`)
  const [q, k, v] = [input(cfg.T, 1), input(cfg.T, 2), input(cfg.T, 3)]
  gc()
  const peakReset = resetPeak()
  const rssBefore = process.memoryUsage().rss
  const maxRssBefore = process.resourceUsage().maxRSS * 1024
  const mu0 = process.memoryUsage()
  const times: number[] = []
  let retainedBytes = 0
  let lseFinite = true
  for (let run = 0; run < (cfg.runs ?? 1); run++) {
    const t0 = performance.now()
    const { out, lse } = scaledDotProductAttention(q, k, v, { causal: true })
    await out.data()
    const l = await lse.data()
    times.push(performance.now() - t0)
    const mu1 = process.memoryUsage()
    retainedBytes = Math.max(retainedBytes, mu1.heapUsed + mu1.arrayBuffers - (mu0.heapUsed + mu0.arrayBuffers))
    lseFinite &&= Array.prototype.every.call(l, Number.isFinite) as boolean
    out.dispose()
    lse.dispose()
  }
  const maxRssAfter = process.resourceUsage().maxRSS * 1024
  times.sort((x, y) => x - y)
  say({
    ok: true,
    ms: times[times.length >> 1]!,
    runs: times.length,
    rssBefore,
    maxRssBefore,
    maxRssAfter,
    extraBytes: maxRssAfter - rssBefore,
    exact: peakReset || maxRssAfter > maxRssBefore,
    retainedBytes,
    lseFinite,
    adapter,
  })
  for (const x of [q, k, v]) x.dispose()
} catch (err) {
  say({ ok: false, error: reason(err) })
}
// a WebGPU device can keep the event loop alive
process.exit(0)
