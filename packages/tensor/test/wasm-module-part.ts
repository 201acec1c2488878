import t from 'tap'
import { configureCpuWasm, cpuWasmReady, shutdownCpuWasm } from '@heed/tensor'
import { registerWasmModulePart, wasmFeatures, wasmRuntime, type WasmModulePart } from '@heed/tensor/cpu'

t.teardown(shutdownCpuWasm)

// tp_square(job, at): i32[at + 4·job] = job·job — a job another package could add, run on the pool like mm_job
const part: WasmModulePart = {
  name: 'test-square',
  jobs: ['tp_square'],
  build(mod) {
    const f = mod.function(['i32', 'i32'], [], 'tp_square').fn
    const job = f.param(0)
    f.get(f.param(1)).get(job).i32Const(2).i32Shl().i32Add().get(job).get(job).i32Mul().i32Store()
  },
}

t.test('a part registered after the runtime exists is in the next runtime and runs on its pool', { skip: !wasmFeatures().simd && 'no WebAssembly SIMD' }, async t => {
  await configureCpuWasm({ mode: 'force', threads: 2 })
  const before = wasmRuntime()!
  t.notOk('tp_square' in before.exports, 'not there before registration')
  registerWasmModulePart(part)
  registerWasmModulePart(part)
  t.throws(() => registerWasmModulePart({ ...part }), /another part is named test-square/)
  const ready = await cpuWasmReady()
  const rt = wasmRuntime()!
  t.not(rt, before, 'the runtime was rebuilt')
  t.ok('tp_square' in rt.exports)
  if (rt.shared) t.equal(ready?.threads, 2, 'with its pool')
  const at = 1024
  t.ok(rt.reserve(at + 4 * 100))
  rt.run('tp_square', 100, [at], true)
  t.same(Array.from(rt.i32().subarray(at >> 2, (at >> 2) + 100)), Array.from({ length: 100 }, (_, j) => j * j))
  await configureCpuWasm({ mode: 'auto', threads: 0 })
  t.ok('tp_square' in (wasmRuntime()?.exports ?? { tp_square: 0 }), 'parts outlive a reconfiguration')
})
