/**
 * attend on WebGPU (#19): a long decode compiles no new pipeline per step (the KV cache's per-step `sinks(used)`
 * masks travel as data, not shader text; the pipeline cache is bounded) and holds no growing set of tensors; a
 * chunk whose `positions` is a tensor works on a device backend (read back asynchronously). Skips without an
 * adapter, fails instead under HEED_REQUIRE_WEBGPU=1.
 */
import t from 'tap'
import { Subject } from 'rxjs'
import { initBackend, tensor, type Tensor } from '@heed/tensor'
import type { TokenChunk } from '@heed/tensor/stream'
import { mask, multiHeadAttention, scaledDotProductAttention } from '@heed/attention'
import { attend } from '@heed/attention/stream'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { noLeaks } from '../../tensor/test/helpers/leaks.js'
import { prng, randomArray } from '../../tensor/test/helpers/numeric.js'

const rand = prng(7)
/** The WebGPU backend's cache statistics (poolStats is not on the public Backend type). */
type GpuStats = { poolStats(): { pipelinesCompiled: number; pipelinesCached: number } }
const gpuStats = async (): Promise<GpuStats> => (await initBackend('webgpu')) as unknown as GpuStats
const STEPS = Number(process.env['HEED_DECODE_STEPS'] ?? 2000)

t.test('a long WebGPU decode through attend compiles a bounded number of pipelines', async t => {
  await eachBackend(
    t,
    'decode',
    async t => {
      const gpu = await gpuStats()
      const dModel = 8
      const layer = multiHeadAttention({ dModel, heads: 2, kvHeads: 1, rope: true })
      const params = layer.init({ seed: 3 })
      const row = Float32Array.from(randomArray(rand, dModel))
      try {
        await noLeaks(t, 'every chunk, output and cache freed', async () => {
          const input = new Subject<TokenChunk>()
          let last: Float32Array | undefined
          let compiledAt: number[] = []
          let failed: unknown
          let rss0 = 0
          let t0 = 0
          // a full cache: its written range is the mask sinks(used), which changes every step
          const cache = () => layer.cache({ batch: 1, capacity: STEPS + 8 })
          const sub = input.pipe(attend(layer, cache, params)).subscribe({
            next: y => {
              if (compiledAt.length < 2) void y.data().then(v => (last = v as Float32Array))
              y.dispose()
            },
            error: e => (failed = e),
          })
          for (let p = 0; p < STEPS && failed === undefined; p++) {
            const x = tensor(row, [1, dModel], 'float32')
            input.next({ tokens: x, positions: p })
            x.dispose()
            if (p === 20) {
              compiledAt = [gpu.poolStats().pipelinesCompiled]
              rss0 = process.memoryUsage().rss
              t0 = performance.now()
            }
            // let Dawn free device resources between event-loop turns
            if (p % 50 === 49) await new Promise(r => setTimeout(r, 0))
          }
          compiledAt.push(gpu.poolStats().pipelinesCompiled)
          // reported, not asserted (timings and RSS depend on the machine)
          t.comment(`steps 20–${STEPS}: ${((performance.now() - t0) / (STEPS - 20)).toFixed(1)} ms/step, RSS ${(rss0 / 2 ** 20).toFixed(0)} → ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`)
          input.complete()
          sub.unsubscribe()
          t.equal(failed, undefined, 'no error')
          t.ok(last !== undefined, 'outputs were computed')
          t.equal(compiledAt[1], compiledAt[0], `no pipeline compiled after step 20 (${compiledAt[0]} → ${compiledAt[1]} over ${STEPS} steps)`)
          t.ok(gpu.poolStats().pipelinesCached <= 512, 'the pipeline cache is bounded')
        })
      } finally {
        for (const w of Object.values(params)) if (w && typeof (w as Tensor).dispose === 'function') (w as Tensor).dispose()
      }
    },
    ['webgpu'],
  )
})

t.test('masks that differ only in a size share one WebGPU pipeline', async t => {
  await eachBackend(
    t,
    'masks',
    async t => {
      const gpu = await gpuStats()
      const q = tensor(randomArray(rand, 16 * 8), [1, 1, 16, 8], 'float32')
      const run = async (m: ReturnType<typeof mask.sinks>) => {
        const r = scaledDotProductAttention(q, q, q, { mask: m })
        const v = Array.from(await r.out.data())
        r.out.dispose()
        r.lse.dispose()
        return v
      }
      await run(mask.and(mask.causal, mask.sinks(3)))
      await run(mask.window(2))
      const before = gpu.poolStats().pipelinesCompiled
      const a = await run(mask.and(mask.causal, mask.sinks(9)))
      await run(mask.window(5))
      t.equal(gpu.poolStats().pipelinesCompiled, before, 'a new count or size reuses the compiled pipeline')
      // and the value still counts: sinks(1) lets row 5 see key 0 only, sinks(9) keys 0..5
      const b = await run(mask.and(mask.causal, mask.sinks(1)))
      t.not(a.slice(5 * 8, 6 * 8).join(), b.slice(5 * 8, 6 * 8).join(), 'the count is read from the data')
      t.same(b.slice(5 * 8, 6 * 8).map(x => Math.round(x * 1e4)), b.slice(0, 8).map(x => Math.round(x * 1e4)), 'sinks(1): every row is key 0')
      q.dispose()
    },
    ['webgpu'],
  )
})

t.test('a positions tensor in a chunk works on every backend', async t => {
  await eachBackend(t, 'positions tensor', async t => {
    const dModel = 8
    const layer = multiHeadAttention({ dModel, heads: 2, rope: true })
    const params = layer.init({ seed: 1 })
    const xs = Float32Array.from(randomArray(rand, 6 * dModel))
    try {
      await noLeaks(t, 'no leaks', async () => {
        const outs: number[][] = []
        const run = (withTensor: boolean) =>
          new Promise<number[][]>((resolve, reject) => {
            const got: number[][] = []
            const made: Tensor[] = []
            const input = new Subject<TokenChunk>()
            const reads: Promise<void>[] = []
            input.pipe(attend(layer, () => layer.cache({ batch: 1, capacity: 8 }), params)).subscribe({
              next: y => {
                reads.push(y.data().then(v => void got.push(Array.from(v))).finally(() => y.dispose()))
              },
              error: reject,
              complete: () => void Promise.all(reads).then(() => resolve(got)),
            })
            for (const [p0, n] of [[0, 4], [4, 1], [5, 1]] as const) {
              const x = tensor(xs.subarray(p0 * dModel, (p0 + n) * dModel), [n, dModel], 'float32')
              const pos = withTensor ? tensor(Int32Array.from({ length: n }, (_, i) => p0 + i), [n], 'int32') : p0
              made.push(x)
              if (typeof pos !== 'number') made.push(pos)
              input.next({ tokens: x, positions: pos as Tensor<'int32'> })
            }
            input.complete()
            // attend borrowed the chunks; on a device it holds views of those waiting for their positions
            for (const m of made) m.dispose()
          })
        outs.push(...(await run(true)))
        const want = await run(false)
        t.same(outs.map(r => r.map(v => Math.round(v * 1e5))), want.map(r => r.map(v => Math.round(v * 1e5))), 'positions tensor = positions number')
      })
    } finally {
      for (const w of Object.values(params)) if (w && typeof (w as Tensor).dispose === 'function') (w as Tensor).dispose()
    }
  })
})
