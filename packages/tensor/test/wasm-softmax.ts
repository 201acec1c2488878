import t from 'tap'
import { logSoftmax, logSumExp, memory, softmax, tensor } from '@heed/tensor'
import { configureCpuWasm, cpuWasmReady, shutdownCpuWasm } from '../src/backends/cpu/wasm/runtime.js'
import { assertClose, prng, randomArray } from './helpers/numeric.js'

t.teardown(shutdownCpuWasm)

/** float64 references, rounded to float32 like the op results. */
function reference(v: Float32Array, rows: number, cols: number): { soft: number[]; logs: number[]; lse: number[] } {
  const soft: number[] = []
  const logs: number[] = []
  const lse: number[] = []
  for (let r = 0; r < rows; r++) {
    const row = Array.from(v.subarray(r * cols, (r + 1) * cols))
    const m = row.some(Number.isNaN) ? NaN : Math.max(...row)
    const s = row.reduce((a, x) => a + Math.exp(x - m), 0)
    lse.push(Math.fround(m === -Infinity ? -Infinity : Number.isFinite(m) ? m + Math.log(s) : m))
    for (const x of row) {
      soft.push(Math.fround(Math.exp(x - m) / s))
      logs.push(Math.fround(x - m - Math.log(s)))
    }
  }
  return { soft, logs, lse }
}

for (const threads of [1, 2])
  t.test(`softmax family through WebAssembly, ${threads} thread(s), against float64`, async t => {
    await configureCpuWasm({ mode: 'force', threads })
    t.equal((await cpuWasmReady())?.threads, threads)
    const base = memory().tensors
    const rand = prng(21 + threads)
    // odd and even row lengths, one element, vector-width multiples, and a size large enough for the pool
    for (const [rows, cols] of [[1, 1], [3, 2], [5, 7], [4, 8], [9, 33], [40, 1025], [300, 257]] as const) {
      const v = Float32Array.from(randomArray(rand, rows * cols, -1, 1).map((x, i) => x * 10 ** ((i % 7) - 3)))
      if (rows > 3) {
        // rows the host finishes: a NaN, a +Infinity, all −Infinity; and a −Infinity among finite values
        v[1 * cols] = NaN
        v[2 * cols + cols - 1] = Infinity
        v.fill(-Infinity, 3 * cols, 4 * cols)
        if (cols > 1) v[0] = -Infinity
      }
      const ref = reference(v, rows, cols)
      const x = tensor(v, [rows, cols])
      const msg = `${rows}×${cols}`
      const s = softmax(x)
      const l = logSoftmax(x)
      const e = logSumExp(x, { axis: -1 })
      // the op suite's float32 tolerance for these ops: under one float32 ulp
      assertClose(t, await s.data(), ref.soft, { atol: 1e-8, rtol: 1e-7, msg: `softmax ${msg}` })
      assertClose(t, await l.data(), ref.logs, { atol: 1e-8, rtol: 1e-7, msg: `logSoftmax ${msg}` })
      assertClose(t, await e.data(), ref.lse, { atol: 1e-8, rtol: 1e-7, msg: `logSumExp ${msg}` })
      for (const y of [x, s, l, e]) y.dispose()
    }
    // trailing axes together form one contiguous row; keepDims keeps them as size 1
    const v = Float32Array.from(randomArray(rand, 2 * 3 * 4 * 5, -3, 3))
    const x = tensor(v, [2, 3, 4, 5])
    const e = logSumExp(x, { axis: [2, 3], keepDims: true })
    t.same(e.shape, [2, 3, 1, 1])
    assertClose(t, await e.data(), reference(v, 6, 20).lse, { atol: 1e-8, rtol: 1e-7, msg: 'logSumExp over axes [2, 3]' })
    for (const y of [x, e]) y.dispose()
    t.equal(memory().tensors, base, 'memory back to baseline')
  })
