import t from 'tap'
import { dispose, memory, tensor, withBackend, type Tensor } from '@heed/tensor'
import { disposeHcam, disposeTitansState, hcamMemory, hcamRead, hcamWrite, initNeuralMemory, neuralMemory, type NeuralMemoryParams } from '@heed/memory'
import { eachBackend } from '../../tensor/test/helpers/backends.js'
import { assertClose, prng, randomArray } from '../../tensor/test/helpers/numeric.js'

// Every backend runs the same float32 computation; the float64 CPU run is the oracle.
const rand = prng(31)
const d = 16, T = 24
const X = randomArray(rand, T * d)
const Qh = randomArray(rand, 3 * d)
const H = randomArray(rand, 40 * d)

const host = (x: Tensor): number[] => Array.from(x.dataSync())
const read = async (x: Tensor): Promise<number[]> => Array.from(await x.data())

async function titans(dtype: 'float32' | 'float64'): Promise<{ out: number[]; w: number[][] }> {
  const p64 = withBackend('cpu', () => initNeuralMemory({ dim: d, depth: 2, hidden: 32, dtype: 'float64', seed: 4 }))
  // The same parameter values in the requested dtype, on the current backend.
  const conv = (x: Tensor) => tensor(host(x), x.shape, dtype)
  const params: NeuralMemoryParams = { wk: conv(p64.wk), wv: conv(p64.wv), wq: conv(p64.wq), wGate: conv(p64.wGate), bGate: conv(p64.bGate), init: p64.init.map(conv) }
  const x = tensor(X, [T, d], dtype)
  const r = neuralMemory(params, x, undefined, { chunkSize: 4, maxLr: 0.5 })
  const res = { out: await read(r.out), w: await Promise.all(r.state.weights.map(read)) }
  dispose([p64 as unknown as object, params as unknown as object, x, r.out])
  disposeTitansState(r.state)
  return res
}

async function hcam(dtype: 'float32' | 'float64'): Promise<{ out: number[]; idx: number[] }> {
  const rows = tensor(H, [40, d], dtype)
  const mem = hcamWrite(hcamMemory({ chunkSize: 8 }), rows)
  const q = tensor(Qh, [3, d], dtype)
  const r = hcamRead(mem, q, { topK: 2, heads: 4, positionalEncoding: true, queryPositions: [16, 30, 40] })
  const res = { out: await read(r.out), idx: await read(r.indices) }
  dispose([rows, q, r])
  disposeHcam(mem)
  return res
}

t.test('Titans and HCAM agree with the float64 oracle on every backend', async t => {
  const before = memory().tensors
  const refT = await titans('float64')
  const refH = await hcam('float64')
  await eachBackend(t, 'memory parity', async (t, backend) => {
    const got = await titans('float32')
    assertClose(t, got.out, refT.out, { atol: 1e-4, rtol: 1e-4, msg: `${backend}: Titans reads` })
    got.w.forEach((w, i) => assertClose(t, w, refT.w[i]!, { atol: 1e-4, rtol: 1e-4, msg: `${backend}: Titans weights ${i}` }))
    const gh = await hcam('float32')
    t.same(gh.idx, refH.idx, `${backend}: HCAM selections`)
    assertClose(t, gh.out, refH.out, { atol: 1e-4, rtol: 1e-4, msg: `${backend}: HCAM output` })
  })
  t.equal(memory().tensors, before, 'no tensors leaked')
})
