import t from 'tap'
import * as h from '@heed/tensor'
import { eachBackend } from './helpers/backends.js'
import { runParity, type ParityCase } from './helpers/parity.js'

const X = { shape: [3, 5] }
const pos = { shape: [3, 5], lo: 0.1, hi: 3 }
const unaryCases: ParityCase[] = (
  [
    ['neg', h.neg, X],
    ['abs', h.abs, X],
    ['square', h.square, X],
    ['reciprocal', h.reciprocal, pos],
    ['exp', h.exp, X],
    ['log', h.log, pos],
    ['log1p', h.log1p, pos],
    ['expm1', h.expm1, X],
    ['sqrt', h.sqrt, pos],
    ['rsqrt', h.rsqrt, pos],
    ['sin', h.sin, X],
    ['cos', h.cos, X],
    ['tanh', h.tanh, { shape: [3, 5], lo: -12, hi: 12 }],
    ['erf', h.erf, { shape: [3, 5], lo: -4, hi: 4 }],
    ['sigmoid', h.sigmoid, { shape: [3, 5], lo: -30, hi: 30 }],
    ['relu', h.relu, X],
    ['silu', h.silu, X],
    ['softplus', h.softplus, { shape: [3, 5], lo: -30, hi: 30 }],
    ['logSigmoid', h.logSigmoid, { shape: [3, 5], lo: -30, hi: 30 }],
    ['gelu', (x: h.Tensor) => h.gelu(x), X],
    ['gelu tanh', (x: h.Tensor) => h.gelu(x, { approximate: 'tanh' }), X],
  ] as [string, (x: h.Tensor) => h.Tensor, object][]
).flatMap(([name, f, spec]) => [
  { name, inputs: [spec as { shape: number[] }], f, grad: true },
  // a size divisible by 4 takes the vec4 path
  { name: `${name} (vec4)`, inputs: [{ ...(spec as { shape: number[] }), shape: [4, 6] }], f },
])

const A = { shape: [2, 3, 4] }
const B = { shape: [3, 1] }
const cases: ParityCase[] = [
  ...unaryCases,
  { name: 'floor/ceil/round/sign', inputs: [{ shape: [4, 4], lo: -5, hi: 5 }], f: x => [h.floor(x), h.ceil(x), h.round(x), h.sign(x)] },
  { name: 'add broadcast', inputs: [A, B], f: h.add, grad: true },
  { name: 'binary with a scalar operand (vec4)', inputs: [{ shape: [8, 4] }, { shape: [] }], f: (a, b) => [h.mul(a!, b!), h.sub(b!, a!), h.maximum(a!, b!)] },
  { name: 'sub broadcast', inputs: [A, B], f: h.sub, grad: true },
  { name: 'mul broadcast', inputs: [A, B], f: h.mul, grad: true },
  { name: 'div broadcast', inputs: [A, { shape: [3, 1], lo: 0.5, hi: 2 }], f: h.div, grad: true },
  { name: 'pow', inputs: [{ shape: [2, 3], lo: 0.2, hi: 2 }, { shape: [2, 3], lo: -2, hi: 2 }], f: h.pow, grad: true },
  { name: 'pow negative base, integral exponent', inputs: [{ shape: [4], values: [-2, -1.5, 0, 3] }, { shape: [4], values: [3, 2, 2, 0.5] }], f: h.pow },
  { name: 'maximum/minimum', inputs: [A, B], f: (a, b) => [h.maximum(a!, b!), h.minimum(a!, b!)] },
  { name: 'maximum grad', inputs: [A, B], f: h.maximum, grad: true },
  { name: 'atan2', inputs: [A, A], f: h.atan2, grad: true },
  { name: 'mod', inputs: [{ shape: [6], values: [5, -5, 5, -5, 7.5, 0] }, { shape: [6], values: [3, 3, -3, -3, 2, 4] }], f: h.mod },
  { name: 'comparisons', inputs: [A, B], f: (a, b) => [h.equal(a!, b!), h.less(a!, b!), h.lessEqual(a!, b!), h.greater(a!, b!), h.greaterEqual(a!, b!), h.notEqual(a!, b!)] },
  { name: 'logical', inputs: [{ shape: [8], kind: 'bool' }, { shape: [8], kind: 'bool' }], f: (a, b) => [h.logicalAnd(a!, b!), h.logicalOr(a!, b!), h.logicalXor(a!, b!), h.logicalNot(a!)] },
  { name: 'where', inputs: [{ shape: [3, 1], kind: 'bool' }, A, { shape: [4] }], f: (c, a, b) => h.where(c!, a!, b!), grad: true },
  { name: 'clamp', inputs: [A], f: x => h.clamp(x, -0.5, 0.7), grad: true },
  { name: 'int32 arithmetic', inputs: [{ shape: [10], kind: 'int32' }, { shape: [10], kind: 'int32', lo: 1, hi: 6 }], f: (a, b) => [h.add(a!, b!), h.sub(a!, b!), h.mul(a!, b!), h.div(a!, b!), h.mod(a!, b!), h.maximum(a!, b!), h.neg(a!), h.abs(a!)] },
  { name: 'casts', inputs: [{ shape: [8], lo: -3, hi: 3 }], f: x => [h.cast(x, 'int32'), h.cast(x, 'bool'), h.cast(h.cast(x, 'int32'), 'float32')] },
  { name: 'broadcastTo', inputs: [B], f: x => h.broadcastTo(x, [2, 3, 4]), grad: true },
  { name: 'reshape', inputs: [A], f: x => h.reshape(x, [4, -1]), grad: true },
  { name: 'sum', inputs: [A], f: x => [h.sum(x), h.sum(x, { axis: 1 }), h.sum(x, { axis: [0, 2], keepDims: true })] },
  { name: 'sum grad', inputs: [A], f: x => h.sum(x, { axis: -1 }), grad: true },
]

t.test('elementwise ops match the float64 oracle on every backend', async t => {
  await eachBackend(t, 'elementwise parity', async (t, backend) => {
    if (backend === 'cpu') {
      // the CPU is the oracle itself; its own semantics are tested op by op in elementwise.ts
      t.pass('cpu is the oracle')
      return
    }
    await runParity(t, backend, cases)
  })
})
