import t from 'tap'
import * as h from '@heed/tensor'
import { eachBackend } from './helpers/backends.js'
import { runParity, type ParityCase } from './helpers/parity.js'

// Shapes are picked for the WebGPU code paths: a reduced extent under 128 runs one invocation per slice
// ([3000, 7]: many short slices), 128–2047 a 64-thread tree ([6, 300]), 2048 up a 256-thread tree ([4, 5000]).
const A = { shape: [2, 3, 4] }
const MANY = { shape: [3000, 7] }
const MID = { shape: [6, 300] }
const TALL = { shape: [300, 3] }
const WIDE = { shape: [4, 5000] }
const INT = { shape: [3, 4, 5], kind: 'int32' as const }
const INT_WIDE = { shape: [4, 5000], kind: 'int32' as const }

// logits of ±1e4 with -Infinity entries; the last row is entirely -Infinity
const big = (n: number): number[] => Array.from({ length: n }, (_, i) => (i % 5 === 3 ? -Infinity : (i % 2 ? 1e4 : -1e4) - (i % 7)))
const LOGITS = { shape: [3, 6], values: [...big(12), ...Array<number>(6).fill(-Infinity)] }
const LOGITS_FINITE = { shape: [3, 6], values: Array.from({ length: 18 }, (_, i) => (i % 2 ? 1e4 : -1e4) + (i % 5) - 0.25 * i) }
const LOGITS_WIDE = { shape: [2, 3000], values: big(6000) }
// a large offset with a small spread: the case where a one-pass variance cancels
const OFFSET = { shape: [4, 5000], values: Array.from({ length: 20000 }, (_, i) => 1e4 + 0.5 * Math.sin(i * 0.37)) }
const NANS = { shape: [3, 4], values: [1, NaN, 3, 2, /**/ 5, 5, 4, NaN, /**/ -Infinity, -Infinity, -Infinity, -Infinity] }
const TIES = { shape: [2, 6], values: [1, 3, 3, 2, 3, 0, /**/ -1, -4, -1, -4, -4, -1] }
// a NaN deep inside a tree-path slice, and one in the strided tail of another
const NAN_WIDE = { shape: [3, 400], values: Array.from({ length: 1200 }, (_, i) => (i === 257 || i === 1199 ? NaN : Math.cos(i))) }

const red = (f: (x: h.Tensor, o?: h.ReduceOptions) => h.Tensor) => (x: h.Tensor) => [f(x), f(x, { axis: 1 }), f(x, { axis: [0, 2], keepDims: true }), f(x, { axis: -1, keepDims: true })]
const lastAxis = (f: (x: h.Tensor, o?: h.ReduceOptions) => h.Tensor) => (x: h.Tensor) => f(x, { axis: -1 })

const cases: ParityCase[] = [
  // sum
  { name: 'sum axes', inputs: [A], f: red(h.sum), grad: true },
  { name: 'sum many slices', inputs: [MANY], f: lastAxis(h.sum), grad: true },
  { name: 'sum tree', inputs: [WIDE], f: x => [h.sum(x, { axis: 1 }), h.sum(x)], grad: true },
  { name: 'sum axis 0 tree (strided)', inputs: [TALL], f: x => h.sum(x, { axis: 0 }), grad: true },
  { name: 'sum int32', inputs: [INT], f: x => [h.sum(x), h.sum(x, { axis: [0, 2] }), h.sum(x, { axis: -2, keepDims: true })] },
  { name: 'sum int32 tree', inputs: [INT_WIDE], f: x => h.sum(x, { axis: 1 }) },
  { name: 'sum empty axis', inputs: [{ shape: [3, 0] }], f: x => [h.sum(x, { axis: 1 }), h.prod(x, { axis: 1 }), h.logSumExp(x, { axis: 1 }), h.sum(x, { axis: 0 })] },
  // mean
  { name: 'mean axes', inputs: [A], f: red(h.mean), grad: true },
  { name: 'mean many slices', inputs: [MANY], f: lastAxis(h.mean), grad: true },
  { name: 'mean tree', inputs: [WIDE], f: x => [h.mean(x, { axis: -1 }), h.mean(x)], grad: true },
  { name: 'mean large offset', inputs: [OFFSET], f: x => h.mean(x, { axis: 1 }) },
  // max / min
  { name: 'max axes', inputs: [A], f: red(h.max), grad: true },
  { name: 'min axes', inputs: [A], f: red(h.min), grad: true },
  { name: 'max/min many slices', inputs: [MANY], f: x => h.max(x, { axis: -1 }), grad: true },
  { name: 'min many slices', inputs: [MANY], f: x => h.min(x, { axis: 1 }), grad: true },
  { name: 'max tree', inputs: [WIDE], f: x => h.max(x, { axis: 1 }), grad: true },
  { name: 'min tree', inputs: [MID], f: x => h.min(x, { axis: 1, keepDims: true }), grad: true },
  { name: 'max/min strided tree', inputs: [TALL], f: x => [h.max(x, { axis: 0 }), h.min(x, { axis: -2 })] },
  { name: 'max/min NaN and -Infinity', inputs: [NANS], f: x => [h.max(x, { axis: 1 }), h.min(x, { axis: 1 }), h.max(x), h.min(x, { axis: 0 })] },
  { name: 'max/min NaN in tree', inputs: [NAN_WIDE], f: x => [h.max(x, { axis: 1 }), h.min(x, { axis: -1 })] },
  { name: 'max/min int32', inputs: [INT], f: x => [h.max(x), h.min(x, { axis: 1 }), h.max(x, { axis: [0, 2], keepDims: true })] },
  { name: 'max/min int32 tree', inputs: [INT_WIDE], f: x => [h.max(x, { axis: 1 }), h.min(x, { axis: 1 })] },
  {
    name: 'max/min/prod/cumsum uint32',
    inputs: [{ shape: [3, 300], kind: 'int32', lo: 0, hi: 9 }],
    f: x => {
      const u = h.cast(x, 'uint32')
      return [h.max(u, { axis: 1 }), h.min(u, { axis: 0 }), h.prod(u, { axis: 0 }), h.sum(u, { axis: 1 }), h.cumsum(u, { axis: 1 }), h.argmax(u, { axis: 1 })]
    },
  },
  { name: 'max of a scalar', inputs: [{ shape: [] }], f: x => [h.max(x), h.sum(x), h.argmax(x)] },
  // prod
  { name: 'prod axes', inputs: [{ shape: [2, 3, 4], lo: 0.5, hi: 1.5 }], f: red(h.prod), grad: true },
  { name: 'prod with zeros', inputs: [{ shape: [3, 4], values: [0, 2, 3, 4, 0, 0, 1, 2, 1, 2, 3, 4] }], f: x => h.prod(x, { axis: 1 }), grad: true },
  { name: 'prod tree', inputs: [{ shape: [3, 300], lo: 0.97, hi: 1.03 }], f: x => h.prod(x, { axis: 1 }), grad: true },
  { name: 'prod int32 (wraps)', inputs: [{ shape: [4, 20], kind: 'int32', lo: -9, hi: 9 }], f: x => [h.prod(x, { axis: 1 }), h.prod(x, { axis: 0 })] },
  { name: 'prod int32 tree (wraps)', inputs: [{ shape: [2, 300], kind: 'int32', lo: 1, hi: 9 }], f: x => h.prod(x, { axis: 1 }) },
  // argmax / argmin
  { name: 'argmax/argmin axes', inputs: [A], f: x => [h.argmax(x), h.argmax(x, { axis: 1 }), h.argmin(x, { axis: [0, 2], keepDims: true }), h.argmin(x, { axis: -1 })] },
  { name: 'argmax/argmin ties first', inputs: [TIES], f: x => [h.argmax(x, { axis: 1 }), h.argmin(x, { axis: 1 }), h.argmax(x), h.argmin(x, { axis: 0 })] },
  { name: 'argmax/argmin NaN first', inputs: [NANS], f: x => [h.argmax(x, { axis: 1 }), h.argmin(x, { axis: 1 }), h.argmax(x)] },
  { name: 'argmax/argmin NaN in tree', inputs: [NAN_WIDE], f: x => [h.argmax(x, { axis: 1 }), h.argmin(x, { axis: 1 })] },
  { name: 'argmax/argmin many slices', inputs: [MANY], f: x => [h.argmax(x, { axis: 1 }), h.argmin(x, { axis: -1 })] },
  { name: 'argmax/argmin int32 ties tree', inputs: [INT_WIDE], f: x => [h.argmax(x, { axis: 1 }), h.argmin(x, { axis: 1 }), h.argmax(x, { axis: 0 })] },
  { name: 'argmax/argmin bool', inputs: [{ shape: [4, 150], kind: 'bool' }], f: x => [h.argmax(x, { axis: 1 }), h.argmin(x, { axis: 1 }), h.argmax(x, { axis: 0 })] },
  // variance / std
  { name: 'variance axes', inputs: [A], f: red(h.variance), grad: true },
  { name: 'std axes', inputs: [A], f: red(h.std), grad: true },
  { name: 'variance/std correction', inputs: [A], f: x => [h.variance(x, { axis: -1, correction: 1 }), h.std(x, { axis: [0, 1], correction: 1.5 })], grad: true },
  { name: 'variance many slices', inputs: [MANY], f: x => h.variance(x, { axis: 1 }), grad: true },
  { name: 'std tree', inputs: [WIDE], f: x => h.std(x, { axis: 1, correction: 1 }), grad: true },
  { name: 'variance/std large offset (tree)', inputs: [OFFSET], f: x => [h.variance(x, { axis: 1 }), h.std(x, { axis: -1 })], grad: true },
  { name: 'variance large offset (one invocation)', inputs: [{ shape: [20, 50], values: OFFSET.values.slice(0, 1000) }], f: x => h.variance(x, { axis: 1 }), grad: true },
  // logSumExp
  { name: 'logSumExp axes', inputs: [A], f: red(h.logSumExp), grad: true },
  { name: 'logSumExp ±1e4 and -Infinity', inputs: [LOGITS], f: x => [h.logSumExp(x, { axis: 1 }), h.logSumExp(x, { axis: 0, keepDims: true })], grad: true },
  { name: 'logSumExp ±1e4 finite', inputs: [LOGITS_FINITE], f: x => [h.logSumExp(x, { axis: -1 }), h.logSumExp(x)], grad: true },
  { name: 'logSumExp NaN', inputs: [NANS], f: x => h.logSumExp(x, { axis: 1 }) },
  { name: 'logSumExp +Infinity', inputs: [{ shape: [2, 3], values: [1, Infinity, 2, 3, -Infinity, 4] }], f: x => h.logSumExp(x, { axis: 1 }) },
  { name: 'logSumExp many slices', inputs: [MANY], f: lastAxis(h.logSumExp), grad: true },
  { name: 'logSumExp tree', inputs: [LOGITS_WIDE], f: x => h.logSumExp(x, { axis: 1 }), grad: true },
  // softmax / logSoftmax
  { name: 'softmax axes', inputs: [A], f: x => [h.softmax(x), h.softmax(x, { axis: 0 }), h.softmax(x, { axis: [0, 2] })], grad: true },
  { name: 'logSoftmax axes', inputs: [A], f: x => [h.logSoftmax(x), h.logSoftmax(x, { axis: 1 }), h.logSoftmax(x, { axis: [-1, -3] })], grad: true },
  { name: 'softmax ±1e4 finite', inputs: [LOGITS_FINITE], f: x => [h.softmax(x), h.softmax(x, { axis: 0 })], grad: true },
  { name: 'logSoftmax ±1e4 finite', inputs: [LOGITS_FINITE], f: x => [h.logSoftmax(x), h.logSoftmax(x, { axis: 0 })], grad: true },
  { name: 'softmax/logSoftmax -Infinity (all -Infinity row is NaN)', inputs: [LOGITS], f: x => [h.softmax(x), h.logSoftmax(x)] },
  { name: 'softmax -Infinity grad', inputs: [{ shape: [2, 6], values: big(12) }], f: x => h.softmax(x), grad: true },
  { name: 'logSoftmax -Infinity grad', inputs: [{ shape: [2, 6], values: big(12) }], f: x => h.logSoftmax(x), grad: true },
  { name: 'softmax/logSoftmax NaN', inputs: [NANS], f: x => [h.softmax(x), h.logSoftmax(x)] },
  { name: 'softmax many slices', inputs: [MANY], f: x => h.softmax(x), grad: true },
  { name: 'logSoftmax many slices', inputs: [MANY], f: x => h.logSoftmax(x), grad: true },
  { name: 'softmax tree', inputs: [WIDE], f: x => h.softmax(x), grad: true },
  { name: 'logSoftmax tree', inputs: [MID], f: x => h.logSoftmax(x, { axis: 1 }), grad: true },
  { name: 'softmax/logSoftmax tree ±1e4, -Infinity', inputs: [LOGITS_WIDE], f: x => [h.softmax(x), h.logSoftmax(x)], grad: true },
  { name: 'softmax strided tree', inputs: [TALL], f: x => h.softmax(x, { axis: 0 }), grad: true },
  { name: 'softmax empty', inputs: [{ shape: [0, 4] }], f: x => [h.softmax(x), h.logSoftmax(x)] },
  // cumsum
  { name: 'cumsum', inputs: [A], f: x => [h.cumsum(x), h.cumsum(x, { axis: 1 }), h.cumsum(x, { axis: -1, reverse: true }), h.cumsum(x, { axis: 0, exclusive: true }), h.cumsum(x, { axis: 2, reverse: true, exclusive: true })], grad: true },
  { name: 'cumsum reverse exclusive grad', inputs: [A], f: x => h.cumsum(x, { axis: -1, reverse: true, exclusive: true }), grad: true },
  { name: 'cumsum many slices', inputs: [MANY], f: x => [h.cumsum(x, { axis: 1 }), h.cumsum(x, { axis: 1, exclusive: true })], grad: true },
  { name: 'cumsum tree', inputs: [WIDE], f: x => [h.cumsum(x, { axis: 1 }), h.cumsum(x, { axis: 1, reverse: true }), h.cumsum(x, { axis: -1, exclusive: true }), h.cumsum(x, { axis: 1, reverse: true, exclusive: true })], grad: true },
  { name: 'cumsum strided tree', inputs: [TALL], f: x => [h.cumsum(x, { axis: 0 }), h.cumsum(x, { axis: 0, reverse: true, exclusive: true })], grad: true },
  { name: 'cumsum int32', inputs: [INT], f: x => [h.cumsum(x), h.cumsum(x, { axis: 1, reverse: true }), h.cumsum(x, { axis: -1, exclusive: true })] },
  { name: 'cumsum int32 tree', inputs: [INT_WIDE], f: x => [h.cumsum(x, { axis: 1 }), h.cumsum(x, { axis: 1, reverse: true, exclusive: true })] },
  { name: 'cumsum -Infinity', inputs: [LOGITS], f: x => h.cumsum(x, { axis: 1 }) },
  { name: 'cumsum empty', inputs: [{ shape: [3, 0] }], f: x => [h.cumsum(x, { axis: 1 }), h.cumsum(x, { axis: 0 })] },
]

t.test('reductions and softmax match the float64 oracle on every backend', async t => {
  await eachBackend(t, 'reduce parity', async (t, backend) => {
    if (backend === 'cpu') {
      // the CPU is the oracle itself; its own semantics are tested op by op in reduce.ts and softmax.ts
      t.pass('cpu is the oracle')
      return
    }
    await runParity(t, backend, cases)
  })
})

// float16 storage on WebGPU (f16 in memory, f32 arithmetic) against the CPU's float16 path
t.test('float16 reductions and softmax on webgpu agree with the cpu', async t => {
  await eachBackend(
    t,
    'float16 smoke',
    async t => {
      const rows = [
        { shape: [3, 7], vals: Array.from({ length: 21 }, (_, i) => Math.sin(i * 1.3) * 4) },
        { shape: [4, 300], vals: Array.from({ length: 1200 }, (_, i) => Math.cos(i * 0.7) * 6) },
      ]
      const ops: [string, (x: h.Tensor) => h.Tensor][] = [
        ['softmax', x => h.softmax(x)],
        ['logSoftmax', x => h.logSoftmax(x)],
        ['logSumExp', x => h.logSumExp(x, { axis: -1 })],
        ['max', x => h.max(x, { axis: -1 })],
        ['mean', x => h.mean(x, { axis: -1 })],
        ['std', x => h.std(x, { axis: -1 })],
        ['argmax', x => h.argmax(x, { axis: -1 })],
      ]
      const base = h.memory().backends['webgpu']?.tensors ?? 0
      for (const { shape, vals } of rows) {
        for (const [name, f] of ops) {
          const run = async (backend: string): Promise<{ dtype: string; v: number[] }> => {
            const [x, y] = h.withBackend(backend, () => {
              const x = h.tensor(vals, shape, 'float16')
              return [x, f(x)] as const
            })
            const r = { dtype: y.dtype, v: Array.from(await y.data()) }
            x.dispose()
            y.dispose()
            return r
          }
          const gpu = await run('webgpu')
          const cpu = await run('cpu')
          t.equal(gpu.dtype, cpu.dtype, `${name} [${shape}] dtype`)
          // an f16 result is within half an f16 ulp of the same f32 value; 5e-3 relative covers a double rounding
          const err = Math.max(...gpu.v.map((g, i) => Math.abs(g - cpu.v[i]!) / Math.max(1, Math.abs(cpu.v[i]!))))
          t.ok(err <= 5e-3, `${name} [${shape}]: max err ${err.toExponential(2)} ≤ 5e-3`)
        }
      }
      t.equal(h.memory().backends['webgpu']?.tensors ?? 0, base, 'no webgpu tensors left behind')
    },
    ['webgpu'],
  )
})
