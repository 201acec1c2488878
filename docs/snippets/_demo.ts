// The pipeline of the live demo page (docs/demo.md), bundled for the browser by VitePress. It is not a recipe run
// by test/recipes.ts (it needs a page); test/docs-demo.ts runs it in headless Chromium instead.
// #region recipe
import { Subject } from 'rxjs'
import { concat, dispose, getBackend, random, setBackend, tensor, type Tensor } from '@heed/tensor'
import type { TokenChunk } from '@heed/tensor/stream'
import { multiHeadAttention } from '@heed/attention'
import { attend } from '@heed/attention/stream'

export interface DemoResult {
  readonly backend: string
  readonly fellBack: boolean
  readonly tokens: number
  readonly maxAbsDiff: number
  readonly streamMs: number
  readonly oneShotMs: number
}

/**
 * Prefill 32 tokens, decode 8 more one at a time through a KV cache, then check the stream against one-shot
 * causal attention over all 40 tokens. Small on purpose: software WebGPU adapters compile a pipeline for each new
 * cache length, which dominates the run.
 */
export async function runDemo(want: 'webgpu' | 'cpu', log: (line: string) => void): Promise<DemoResult> {
  let fellBack = false
  try {
    await setBackend(want)
  } catch (err) {
    fellBack = true
    log(`${want} is unavailable (${err instanceof Error ? err.message : String(err)}); falling back to the CPU`)
    await setBackend('cpu')
  }
  const backend = getBackend()
  log(`backend: ${backend}`)

  const dModel = 32, T = 40, prefill = 32
  const layer = multiHeadAttention({ dModel, heads: 4, kvHeads: 2, rope: true })
  const params = layer.init({ seed: 1 })
  // Host values, so that each chunk is a fresh tensor the stream can own and free.
  const noise = random.normal([T, dModel], { rng: random.rng(7), backend: 'cpu' })
  const host = await noise.data()
  noise.dispose()
  const rows = (a: number, b: number): Tensor => tensor(host.subarray(a * dModel, b * dModel), [b - a, dModel])

  const t0 = performance.now()
  const outputs: Tensor[] = []
  const input = new Subject<TokenChunk>()
  const done = new Promise<void>((resolve, reject) =>
    input.pipe(attend(layer, () => layer.cache({ batch: 1, capacity: T }), params)).subscribe({ next: y => void outputs.push(y), error: reject, complete: resolve }),
  )
  input.next({ tokens: rows(0, prefill), positions: 0 })
  log(`prefill: ${prefill} tokens`)
  for (let p = prefill; p < T; p++) {
    input.next({ tokens: rows(p, p + 1), positions: p })
    // Reading back now and then submits the queued GPU work and yields to the event loop.
    if ((p + 1) % 4 === 0) await outputs[outputs.length - 1]!.data()
  }
  input.complete()
  await done
  const streamed = concat(outputs, 0)
  const got = await streamed.data()
  const streamMs = performance.now() - t0
  log(`decode: ${T - prefill} tokens, one at a time, in ${streamMs.toFixed(0)} ms (prefill included)`)

  const t1 = performance.now()
  const all = rows(0, T)
  const oneShot = layer.forward(params, all)
  const reference = await oneShot.data()
  const oneShotMs = performance.now() - t1
  let maxAbsDiff = 0
  for (let i = 0; i < got.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[i]! - reference[i]!))
  log(`one-shot causal attention over ${T} tokens: ${oneShotMs.toFixed(0)} ms; max |stream − one-shot| = ${maxAbsDiff.toExponential(2)}`)
  dispose([outputs, streamed, all, oneShot, params])
  return { backend, fellBack, tokens: T, maxAbsDiff, streamMs, oneShotMs }
}
// #endregion recipe
