/**
 * WebGPU device life cycle: profiling, device loss and recovery, cross-backend rules, and buffer reuse over a long
 * training loop. Skips with a visible notice where no adapter exists, fails instead under HEED_REQUIRE_WEBGPU.
 */
import t from 'tap'
import {
  add,
  BackendError,
  DeviceLostError,
  exp,
  initBackend,
  memory,
  mul,
  profile,
  ready,
  scope,
  setBackend,
  sub,
  sum,
  tensor,
  toBackend,
  valueAndGrad,
  type Tensor,
} from '@heed/tensor'
import type { WebGpuBackend } from '../src/backends/webgpu/index.js'
import { requireWebgpu, webgpuUnavailable } from './helpers/backends.js'

const reason = await webgpuUnavailable()
if (reason !== undefined) {
  if (requireWebgpu()) t.fail(`HEED_REQUIRE_WEBGPU is set but WebGPU is unavailable: ${reason}`)
  else t.test('WebGPU device tests', { skip: `no WebGPU adapter (${reason})` }, () => {})
} else {
  t.test('profile reports every kernel, with device times on WebGPU', async t => {
    await setBackend('webgpu')
    const x = tensor([1, 2, 3, 4])
    const p = await profile(async () => {
      const y = scope(() => sum(exp(mul(x, 2))))
      const v = await y.data()
      y.dispose()
      return v[0]
    })
    t.ok(Math.abs(p.result! - (Math.exp(2) + Math.exp(4) + Math.exp(6) + Math.exp(8))) < 1e-2)
    t.same(
      p.kernels.map(k => k.kernel),
      ['Binary', 'Unary', 'Sum'],
      'the kernels in launch order',
    )
    const gpu = (await initBackend('webgpu')) as WebGpuBackend
    const expected = gpu.info.timestamps ? 'gpu-timestamp' : 'wall'
    t.ok(p.kernels.every(k => k.source === expected && k.ms >= 0 && Number.isFinite(k.ms)), `times come from ${expected}`)
    t.ok(p.wallMs > 0)
    t.equal(p.byKernel.reduce((a, k) => a + k.calls, 0), 3)
    x.dispose()
    await setBackend('cpu')
    const c = await profile(() => scope(() => add(tensor([1]), 1).dataSync()[0]))
    t.equal(c.result, 2)
    t.ok(c.kernels.length >= 1 && c.kernels.every(k => k.source === 'wall' && k.backend === 'cpu'))
  })

  t.test('cpu and webgpu tensors never mix silently', async t => {
    await setBackend('webgpu')
    const g = tensor([1, 2])
    await setBackend('cpu')
    const c = tensor([3, 4])
    t.throws(() => add(g, c), BackendError)
    const moved = await toBackend(c, 'webgpu')
    const s = add(g, moved)
    t.same(Array.from(await s.data()), [4, 6])
    const back = await toBackend(s, 'cpu')
    t.same(Array.from(back.dataSync()), [4, 6])
    for (const x of [g, c, moved, s, back]) x.dispose()
  })

  t.test('10,000 training steps on WebGPU leave live tensors and pooled buffers at their baseline', async t => {
    await setBackend('webgpu')
    const gpu = (await initBackend('webgpu')) as WebGpuBackend
    // fit w in y = w·x by gradient descent; no readback inside the loop
    const xs: Tensor = tensor([0.5, -1, 2, 0.25])
    const ys = mul(xs, 3)
    let w: Tensor = tensor([0])
    const loss = (w: Tensor) => sum(mul(sub(mul(xs, w), ys), sub(mul(xs, w), ys)))
    const vg = valueAndGrad(loss)
    const step = () => {
      const [l, g] = vg(w)
      const next = scope(() => sub(w, mul(g, 0.01)))
      for (const x of [l, g, w]) x.dispose()
      w = next
    }
    for (let i = 0; i < 100; i++) step()
    await w.data()
    const base = { live: memory().backends['webgpu']!.tensors, pool: gpu.poolStats(), device: gpu.memory() }
    for (let i = 0; i < 10_000; i++) step()
    const final = await w.data()
    t.ok(Math.abs(final[0]! - 3) < 1e-3, `converged to w = ${final[0]}`)
    t.equal(memory().backends['webgpu']!.tensors, base.live, 'live tensors at baseline')
    t.same(gpu.memory(), base.device, 'live device buffers at baseline')
    const pool = gpu.poolStats()
    t.ok(pool.created <= base.pool.created + 8, `buffers are reused, not created (${base.pool.created} → ${pool.created})`)
    t.ok(pool.bindGroups <= base.pool.bindGroups + 64, `bind groups are reused, not created (${base.pool.bindGroups} → ${pool.bindGroups})`)
    for (const x of [xs, ys, w]) x.dispose()
    await setBackend('cpu')
  })
  t.test('a lost device rejects pending reads with DeviceLostError, then is re-acquired', async t => {
    await setBackend('webgpu')
    const gpu = (await initBackend('webgpu')) as WebGpuBackend
    const a = tensor([1, 2, 3])
    const b = exp(a)
    const pending = b.data()
    gpu.device.destroy()
    await t.rejects(pending, DeviceLostError, 'a read in flight rejects')
    t.throws(() => add(a, b), DeviceLostError, 'ops on tensors of the lost device fail')
    await t.rejects(a.data(), DeviceLostError)
    a.dispose()
    b.dispose()
    await ready('webgpu')
    const fresh = (await initBackend('webgpu')) as WebGpuBackend
    t.not(fresh, gpu, 'a new device was acquired')
    const c = add(tensor([1, 2]), 1)
    t.equal(c.backend, 'webgpu')
    t.same(Array.from(await c.data()), [2, 3], 'and it computes')
    scope(() => c.dispose())
    await setBackend('cpu')
  })

}
