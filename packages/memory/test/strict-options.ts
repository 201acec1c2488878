/**
 * Strict options of the memories (issue 19): for each function, a generated unknown key, a misspelt key with its
 * suggestion, a wrong-typed option, null and array options and a bad argument are typed heed errors naming the op
 * and the argument; every key of its `…Options` interface is known; the valid call still works.
 */
import t from 'tap'
import { ArgumentError, ValueError, tensor } from '@heed/tensor'
import { expansivity, gridReceptiveFields, hcamMemory, initMemoryWeights, initNeuralMemory, memoryOperators, titansState, titansStep, disposeTitansState } from '@heed/memory'
import { neuralMemoryStream } from '@heed/memory/stream'
import { strictCases, type StrictCase } from '../../../test/helpers/strictOptions.js'

const w = initMemoryWeights({ keyDim: 2, valueDim: 2, depth: 1, dtype: 'float64' })
const kv = () => tensor([1, 0, 0, 1], [2, 2], 'float64')
const step = (o: unknown) => {
  const s = titansState(w)
  try {
    const r = titansStep(s, { keys: kv(), values: kv(), gates: { theta: 0.1, eta: 0.5, alpha: 0 } }, o as never)
    disposeTitansState(r.state)
    return r.out
  } finally {
    disposeTitansState(s)
  }
}
const params = initNeuralMemory({ dim: 2, dtype: 'float64' })

const cases: StrictCase[] = [
  { op: 'hcamMemory', base: { chunkSize: 2 }, keys: { iface: 'HcamMemoryOptions' }, call: o => void hcamMemory(o as never), misspelt: ['chunksize', 'chunkSize'], wrong: [{ chunkSize: '2' }, ValueError, 'chunkSize'], badArg: [() => hcamMemory([] as never), ArgumentError, 'opts'] },
  { op: 'titansStep', keys: { iface: 'TitansOptions' }, call: step, misspelt: ['chunksize', 'chunkSize'], wrong: [{ mode: 'parallel' }, ValueError, 'mode'], badArg: [() => titansStep(null as never, { keys: kv(), values: kv(), gates: { theta: 0.1, eta: 0.5, alpha: 0 } }), ArgumentError, 'state'] },
  { op: 'initMemoryWeights', base: { keyDim: 2 }, keys: { iface: 'MemoryInitOptions' }, call: o => initMemoryWeights(o as never), misspelt: ['keydim', 'keyDim'], wrong: [{ init: 'ones' }, ValueError, 'init'], badArg: [() => initMemoryWeights({ keyDim: [2] } as never), ValueError, 'keyDim'] },
  { op: 'neuralMemoryStream', keys: { iface: 'NeuralMemoryStreamOptions' }, call: o => void neuralMemoryStream(params, o as never), misspelt: ['emitRead', 'emitReads'], wrong: [{ emitReads: 'yes' }, ArgumentError, 'emitReads'], badArg: [() => neuralMemoryStream(null as never), ArgumentError, 'params'] },
  { op: 'memoryOperators.hcam', keys: { iface: 'HcamOperatorOptions' }, call: o => void memoryOperators.hcam(o as never), misspelt: ['topk', 'topK'], wrong: [{ chunk: 0 }, ValueError, 'chunk'], badArg: [() => memoryOperators.hcam({ topK: [2] } as never), ValueError, 'topK'] },
  { op: 'gridReceptiveFields', base: { width: 4, height: 4, patch: 2 }, keys: ['width', 'height', 'patch', 'stride'], call: o => void gridReceptiveFields(o as never), misspelt: ['strid', 'stride'], wrong: [{ stride: 'x' }, ValueError, 'stride'], badArg: [() => gridReceptiveFields({ width: null, height: 4, patch: 2 } as never), ValueError, 'width'] },
  { op: 'expansivity', keys: ['gMin', 'gamma', 'chi'], call: o => void expansivity(0.5, 2, o as never), misspelt: ['gmin', 'gMin'], wrong: [{ chi: 'x' }, ValueError, 'chi'], badArg: [() => expansivity(null as never, 2), ValueError, 'G'] },
]

void strictCases(t, ['memory'], cases)
