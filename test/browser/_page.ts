/**
 * Browser entry for test/browser.ts: bundled by esbuild from the package source, loaded in headless Chromium.
 * Runs every case of _cases.ts on the WebGPU backend (navigator.gpu) and leaves plain data in
 * `window.__heedResults`; all checking happens in Node, where the float64 references live.
 */
import { BackendError, getBackend, initBackend, scope, setBackend, tensor, trackTensors, type Tensor } from '@heed/tensor'
import type { WebGpuBackend } from '../../packages/tensor/src/backends/webgpu/index.js'
import { cases, type CaseResult, type PageResults } from './_cases.js'

const message = (err: unknown): string => (err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err))
async function runCase(c: (typeof cases)[number]): Promise<CaseResult> {
  // Counts only the tensors the case makes (not a difference of global counts, which a tensor freed meanwhile by
  // the GC safety net also moves); `leaked` is what of them is left undisposed.
  const made = trackTensors()
  const leaked = (): number => made.stop().length
  const t0 = performance.now()
  const xs = c.inputs.map(s => tensor([...s.values], s.shape, s.dtype))
  let outs: Tensor[] = []
  try {
    outs = scope(() => c.run(...xs))
    const outputs = await Promise.all(
      outs.map(async o => ({ shape: [...o.shape], dtype: o.dtype, backend: o.backend, values: Array.from(await o.data()) })),
    )
    const ms = performance.now() - t0
    for (const o of outs) o.dispose()
    for (const x of xs) x.dispose()
    return { name: c.name, outputs, ms, leaked: leaked() }
  } catch (err) {
    for (const o of outs) o.dispose()
    for (const x of xs) x.dispose()
    return { name: c.name, outputs: [], ms: performance.now() - t0, leaked: leaked(), error: message(err) }
  }
}

async function main(): Promise<PageResults> {
  const nav = (globalThis as { navigator?: { userAgent?: string; gpu?: unknown } }).navigator
  const base = { userAgent: nav?.userAgent ?? '', navigatorGpu: nav?.gpu !== undefined }
  const t0 = performance.now()
  let backend: WebGpuBackend
  try {
    backend = (await initBackend('webgpu')) as WebGpuBackend
  } catch (err) {
    // BackendError is the backend's "no implementation / no adapter": a property of the browser, not a bug here.
    if (err instanceof BackendError) return { ...base, unavailable: err.message }
    throw err
  }
  const initMs = performance.now() - t0
  const { vendor, architecture, description, fallback, f16, timestamps } = backend.info
  await setBackend('webgpu')
  const results: CaseResult[] = []
  for (const c of cases) results.push(await runCase(c))
  return {
    ...base,
    adapter: { vendor, architecture, description, fallback, f16, timestamps },
    backend: getBackend(),
    initMs,
    totalMs: performance.now() - t0,
    cases: results,
  }
}

const report = (r: PageResults): void => {
  ;(globalThis as { __heedResults?: PageResults }).__heedResults = r
}
main().then(report, (err: unknown) => report({ userAgent: '', navigatorGpu: false, error: message(err) }))
