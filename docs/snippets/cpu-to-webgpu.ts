// #region recipe
import { dispose, getBackend, matmul, memory, random, scope, setBackend, softmax, toBackend, type Tensor } from '@heed/tensor'
import { scaledDotProductAttention } from '@heed/attention'

/** The pipeline: plain functions of tensors, with nothing in them that names a backend. */
const pipeline = (q: Tensor, k: Tensor, v: Tensor, w: Tensor): Tensor =>
  scope(() => softmax(matmul(scaledDotProductAttention(q, k, v, { causal: true }).out, w), { axis: -1 }))

const rng = random.rng(5)
const inputs: Tensor[] = [random.normal([1, 4, 32, 16], { rng }), random.normal([1, 4, 32, 16], { rng }), random.normal([1, 4, 32, 16], { rng }), random.normal([16, 8], { rng })]
const onCpu = pipeline(inputs[0]!, inputs[1]!, inputs[2]!, inputs[3]!).dataSync()

// In a browser this uses navigator.gpu; in Node, Dawn through the optional `webgpu` package. Where neither has an
// adapter, stay on the CPU: the rest of the code does not change either way.
try {
  await setBackend('webgpu')
} catch (err) {
  console.log(`no WebGPU here (${(err as Error).message.split('\n')[0]}), staying on the CPU`)
}
// Ops never move data implicitly (mixing backends in one op is an error): move the inputs once, explicitly.
const [q, k, v, w] = await Promise.all(inputs.map(x => toBackend(x, getBackend())))
const result = pipeline(q!, k!, v!, w!)
console.log(`ran on ${result.backend}`)
const there = await result.data() // the readback: on WebGPU, the batched dispatches are submitted here
console.log(there.every((x, i) => Math.abs(x - onCpu[i]!) < 1e-4)) // => true

// Each backend keeps its own account of live tensors.
console.log(memory().backends[result.backend]!.tensors > 0) // => true
dispose([...inputs, q, k, v, w, result])
await setBackend('cpu')
// #endregion recipe
