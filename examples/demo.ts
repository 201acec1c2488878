// `npm start`: a short tour of @heed/tensor on the CPU backend, run from source (no build needed).
import { dispose, getBackend, matmul, memory, scope, softmax, sum, tensor, valueAndGrad, mul, type Tensor } from '@heed/tensor'

const fmt = (a: unknown): string => JSON.stringify(a, (_k, v: unknown) => (typeof v === 'number' ? Number(v.toFixed(4)) : v))

const baseline = memory().tensors
console.log(`heed demo on the ${getBackend()} backend`)

// Scores of one query against three keys, turned into attention weights.
const q = tensor([[1, 0, 1]])
const k = tensor([[1, 0, 1], [0, 1, 0], [1, 1, 1]])
const weights = scope(() => softmax(matmul(q, k, { transposeB: true })))
console.log(`attention weights   ${fmt(await weights.array())}`)

// Reverse-mode autodiff: d/dx Σ x² = 2x.
const x = tensor([1, -2, 3])
const [value, dx] = valueAndGrad((x: Tensor) => sum(mul(x, x)))(x)
console.log(`Σ x² = ${fmt(await value.array())}, d/dx = ${fmt(await dx.array())}`)

const live = memory()
console.log(`live tensors        ${live.tensors - baseline} (${live.bytes} bytes)`)
dispose([q, k, weights, x, value, dx])
console.log(`after dispose       ${memory().tensors - baseline} live tensors`)
