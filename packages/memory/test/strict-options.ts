/**
 * Strict options of the memories (issue 19): for each function, a generated unknown key, a misspelt key with its
 * suggestion, a wrong-typed option, null and array options and a bad argument are typed heed errors naming the op
 * and the argument; every key of its `…Options` interface is known; the valid call still works.
 */
import t from 'tap'
import { ArgumentError, ShapeError, ValueError, tensor } from '@heed/tensor'
import {
  SparseyHierarchy,
  SparseyMac,
  TensorBrain,
  disposeTitansState,
  expansivity,
  gridReceptiveFields,
  hcamAttention,
  hcamMemory,
  hcamRead,
  hcamWrite,
  initMemoryWeights,
  initNeuralMemory,
  initTitansLayer,
  memoryOperators,
  neuralMemory,
  neuralMemoryInputs,
  resolveSparseyConfig,
  sparseyMac,
  titansFlush,
  titansLayer,
  titansLayerStep,
  titansRead,
  titansState,
  titansStep,
} from '@heed/memory'
import { hcamStream, neuralMemoryStream, sparsey, tensorBrainMemory } from '@heed/memory/stream'
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
const mem = hcamWrite(hcamMemory({ chunkSize: 2 }), kv())
const q = tensor([1, 0], [1, 2], 'float64')
const layer = initTitansLayer({ dim: 2, dtype: 'float64', persistentTokens: 1 })
const x = tensor([1, 0, 0, 1], [2, 2], 'float64')
const state = titansState(w)
const mac = new SparseyMac({ inputSize: 4, Q: 2, K: 2 })
const sparseyBase = { inputSize: 4, Q: 2, K: 2 }
const hierarchyBase = { inputSize: 4, levels: [{ Q: 2, K: 2, receptiveFields: [[0, 1, 2, 3]] }] }
const tbBase = { entities: 2, predicates: 2, dim: 4, dtype: 'float64' }
const tb = new TensorBrain(tbBase as never)
tb.storeEpisode({ subject: 0, predicate: 0, object: 1 })
const scene = tensor([1, 0, 0, 1], [1, 4], 'float64')
const vec = tensor([1, 0, 0, 1], [4], 'float64')
const chunkKeys = tensor([1, 0], [1, 2], 'float64')
const contents = tensor([1, 0, 0, 1], [1, 2, 2], 'float64')

const cases: StrictCase[] = [
  { op: 'hcamMemory', base: { chunkSize: 2 }, keys: { iface: 'HcamMemoryOptions' }, call: o => void hcamMemory(o as never), misspelt: ['chunksize', 'chunkSize'], wrong: [{ chunkSize: '2' }, ValueError, 'chunkSize'], badArg: [() => hcamMemory([] as never), ArgumentError, 'opts'] },
  { op: 'titansStep', keys: { iface: 'TitansOptions' }, call: step, misspelt: ['chunksize', 'chunkSize'], wrong: [{ mode: 'parallel' }, ValueError, 'mode'], badArg: [() => titansStep(null as never, { keys: kv(), values: kv(), gates: { theta: 0.1, eta: 0.5, alpha: 0 } }), ArgumentError, 'state'] },
  { op: 'initMemoryWeights', base: { keyDim: 2 }, keys: { iface: 'MemoryInitOptions' }, call: o => initMemoryWeights(o as never), misspelt: ['keydim', 'keyDim'], wrong: [{ init: 'ones' }, ValueError, 'init'], badArg: [() => initMemoryWeights({ keyDim: [2] } as never), ValueError, 'keyDim'] },
  { op: 'neuralMemoryStream', keys: { iface: 'NeuralMemoryStreamOptions' }, call: o => void neuralMemoryStream(params, o as never), misspelt: ['emitRead', 'emitReads'], wrong: [{ emitReads: 'yes' }, ArgumentError, 'emitReads'], badArg: [() => neuralMemoryStream(null as never), ArgumentError, 'params'] },
  { op: 'memoryOperators.hcam', keys: { iface: 'HcamOperatorOptions' }, call: o => void memoryOperators.hcam(o as never), misspelt: ['topk', 'topK'], wrong: [{ chunk: 0 }, ValueError, 'chunk'], badArg: [() => memoryOperators.hcam({ topK: [2] } as never), ValueError, 'topK'] },
  { op: 'gridReceptiveFields', base: { width: 4, height: 4, patch: 2 }, keys: ['width', 'height', 'patch', 'stride'], call: o => void gridReceptiveFields(o as never), misspelt: ['strid', 'stride'], wrong: [{ stride: 'x' }, ValueError, 'stride'], badArg: [() => gridReceptiveFields({ width: null, height: 4, patch: 2 } as never), ValueError, 'width'] },
  { op: 'expansivity', keys: ['gMin', 'gamma', 'chi'], call: o => void expansivity(0.5, 2, o as never), misspelt: ['gmin', 'gMin'], wrong: [{ chi: 'x' }, ValueError, 'chi'], badArg: [() => expansivity(null as never, 2), ValueError, 'G'] },
  { op: 'hcamRead', base: { topK: 1 }, keys: { iface: 'HcamReadOptions' }, call: o => hcamRead(mem, q, o as never), misspelt: ['topk', 'topK'], wrong: [{ scale: 'x' }, ValueError, 'scale'], badArg: [() => hcamRead(null as never, q, { topK: 1 }), ArgumentError, 'mem'] },
  { op: 'hcamStream', base: { chunkSize: 2, topK: 1 }, keys: { iface: 'HcamStreamOptions' }, call: o => void hcamStream(o as never), misspelt: ['maxchunks', 'maxChunks'], wrong: [{ positionalEncoding: 'yes' }, ArgumentError, 'positionalEncoding'], badArg: [() => hcamStream({ chunkSize: 2, topK: [1] } as never), ValueError, 'topK'] },
  { op: 'initTitansLayer', base: { dim: 2, dtype: 'float64', persistentTokens: 1 }, keys: { iface: 'TitansLayerConfig' }, optsArg: 'cfg', call: o => initTitansLayer(o as never), misspelt: ['persistentToken', 'persistentTokens'], wrong: [{ dtype: 'int32' }, ValueError, 'dtype'], badArg: [() => initTitansLayer({ dim: null } as never), ValueError, 'dim'] },
  { op: 'titansLayer', base: { window: 2 }, keys: { iface: 'TitansLayerOptions' }, call: o => titansLayer(layer, x, 'MAG', undefined, o as never), misspelt: ['windw', 'window'], wrong: [{ activation: 'sigmoid' }, ValueError, 'activation'], badArg: [() => titansLayer(layer, [[1, 0]] as never, 'MAG'), ArgumentError, 'x'] },
  { op: 'titansLayerStep', base: { window: 2 }, keys: { iface: 'TitansLayerOptions' }, call: o => titansLayerStep(layer, x, 'MAG', undefined, o as never), misspelt: ['segmnet', 'segment'], wrong: [{ normalize: 'yes' }, ArgumentError, 'normalize'], badArg: [() => titansLayerStep(null as never, x, 'MAG', undefined), ArgumentError, 'params'] },
  { op: 'titansRead', keys: ['activation'], call: o => titansRead(state, q, o as never), misspelt: ['activaton', 'activation'], wrong: [{ activation: 'sigmoid' }, ValueError, 'activation'], badArg: [() => titansRead(state, [[1, 0]] as never), ArgumentError, 'queries'] },
  { op: 'titansFlush', keys: ['activation'], call: o => titansFlush(state, o as never), misspelt: ['activatoin', 'activation'], wrong: [{ activation: 1 }, ValueError, 'activation'], badArg: [() => titansFlush(null as never), ArgumentError, 'state'] },
  { op: 'SparseyMac', base: sparseyBase, keys: { iface: 'SparseyConfig' }, optsArg: 'config', call: o => void new SparseyMac(o as never), misspelt: ['inputsize', 'inputSize'], wrong: [{ Q: 'x' }, ValueError, 'Q'], badArg: [() => new SparseyMac({ inputSize: null } as never), ValueError, 'inputSize'] },
  { op: 'sparseyMac', base: sparseyBase, keys: { iface: 'SparseyConfig' }, optsArg: 'config', call: o => void sparseyMac(o as never), misspelt: ['lamdaU', 'lambdaU'], wrong: [{ horizontal: 'yes' }, ArgumentError, 'horizontal'], badArg: [() => sparseyMac({ inputSize: 4, activeBand: 3 } as never), ArgumentError, 'activeBand'] },
  { op: 'resolveSparseyConfig', base: sparseyBase, keys: { iface: 'SparseyConfig' }, optsArg: 'config', call: o => resolveSparseyConfig(o as never), misspelt: ['freezAt', 'freezeAt'], wrong: [{ seed: 0.5 }, ValueError, 'seed'], badArg: [() => resolveSparseyConfig({ inputSize: [4] } as never), ValueError, 'inputSize'] },
  { op: 'SparseyMac.familiarity', keys: ['context', 'topDown'], call: o => mac.familiarity([0, 1], o as never), misspelt: ['topdown', 'topDown'], wrong: [{ context: 'x' }, ShapeError, 'context'], badArg: [() => mac.familiarity(null as never), ArgumentError, 'input'] },
  { op: 'SparseyMac.recall', keys: ['context', 'topDown', 'keepContext'], call: o => mac.recall([0, 1], o as never), misspelt: ['keepcontext', 'keepContext'], wrong: [{ keepContext: 'yes' }, ArgumentError, 'keepContext'], badArg: [() => mac.recall(null as never), ArgumentError, 'input'] },
  { op: 'SparseyHierarchy', base: hierarchyBase, keys: { iface: 'SparseyHierarchyConfig' }, optsArg: 'config', call: o => void new SparseyHierarchy(o as never), misspelt: ['topdown', 'topDown'], wrong: [{ topDown: 'yes' }, ArgumentError, 'topDown'], badArg: [() => new SparseyHierarchy({ inputSize: 4, levels: [{ receptiveFields: null }] } as never), ArgumentError, 'levels[0].receptiveFields'] },
  { op: 'sparsey', base: sparseyBase, keys: { iface: 'SparseyConfig' }, optsArg: 'config', call: o => void sparsey(o as never), misspelt: ['sigmoidGian', 'sigmoidGain'], wrong: [{ K: 0 }, ValueError, 'K'], badArg: [() => sparsey({ inputSize: 'x' } as never), ValueError, 'inputSize'] },
  { op: 'TensorBrain', base: tbBase, keys: { iface: 'TensorBrainConfig' }, optsArg: 'config', call: o => new TensorBrain(o as never), misspelt: ['entites', 'entities'], wrong: [{ beta: 'x' }, ValueError, 'beta'], badArg: [() => new TensorBrain({ entities: null, predicates: 2 } as never), ArgumentError, 'entities'] },
  { op: 'TensorBrain.perceive', keys: { iface: 'PerceiveOptions' }, call: o => tb.perceive(scene, o as never), misspelt: ['mod', 'mode'], wrong: [{ mode: 'max' }, ValueError, 'mode'], badArg: [() => tb.perceive(null as never), ArgumentError, 'scenes'] },
  { op: 'TensorBrain.recall', keys: ['mode'], call: o => tb.recall(0, o as never), misspelt: ['mdoe', 'mode'], wrong: [{ mode: 'max' }, ValueError, 'mode'], badArg: [() => tb.recall(null as never), ArgumentError, 'times'] },
  { op: 'tensorBrainMemory', base: tbBase, keys: { iface: 'TensorBrainConfig' }, optsArg: 'config', call: o => void tensorBrainMemory(o as never), misspelt: ['predicate', 'predicates'], wrong: [{ alpha: 'x' }, ValueError, 'alpha'], badArg: [() => tensorBrainMemory({ entities: 2, predicates: [] } as never), ArgumentError, 'predicates'] },
  { op: 'hcamAttention', base: { topK: 1 }, keys: { iface: 'HcamReadOptions' }, call: o => hcamAttention(q, chunkKeys, contents, o as never), misspelt: ['head', 'heads'], wrong: [{ heads: 3 }, ValueError, 'heads'], badArg: [() => hcamAttention([[1, 0]] as never, chunkKeys, contents, { topK: 1 }), ShapeError, 'queries'] },
  { op: 'initNeuralMemory', base: { dim: 2, dtype: 'float64' }, keys: { iface: 'NeuralMemoryConfig' }, optsArg: 'cfg', call: o => initNeuralMemory(o as never), misspelt: ['keydim', 'keyDim'], wrong: [{ dtype: 'int32' }, ValueError, 'dtype'], badArg: [() => initNeuralMemory({ dim: '2' } as never), ValueError, 'dim'] },
  { op: 'neuralMemory', keys: { iface: 'NeuralMemoryOptions' }, call: o => neuralMemory(params, x, undefined, o as never), misspelt: ['maxlr', 'maxLr'], wrong: [{ maxLr: -1 }, ValueError, 'maxLr'], badArg: [() => neuralMemory(params, [[1, 0]] as never), ArgumentError, 'x'] },
  { op: 'neuralMemoryInputs', keys: { iface: 'NeuralMemoryOptions' }, call: o => neuralMemoryInputs(params, x, o as never), misspelt: ['normalise', 'normalize'], wrong: [{ normalize: 1 }, ArgumentError, 'normalize'], badArg: [() => neuralMemoryInputs(null as never, x), ArgumentError, 'params'] },
  { op: 'SparseyMac.learn', keys: ['context', 'topDown', 'keepContext'], call: o => new SparseyMac(sparseyBase).learn([0, 1], o as never), misspelt: ['contxt', 'context'], wrong: [{ keepContext: 1 }, ArgumentError, 'keepContext'], badArg: [() => mac.learn([9]), ValueError, 'input'] },
  { op: 'SparseyMac.step', keys: { iface: 'SparseyStepOptions' }, call: o => new SparseyMac(sparseyBase).step([0, 1], o as never), misspelt: ['lern', 'learn'], wrong: [{ mode: 'max' }, ValueError, 'mode'], badArg: [() => mac.step(null as never), ArgumentError, 'input'] },
  { op: 'TensorBrain.measure', keys: ['mode', 'index', 'rng'], call: o => tb.measure(vec, 'entity', o as never), misspelt: ['indx', 'index'], wrong: [{ mode: 'max' }, ValueError, 'mode'], badArg: [() => tb.measure(null as never, 'entity'), ArgumentError, 'q'] },
  { op: 'TensorBrain.storeScenes', keys: { iface: 'PerceiveOptions' }, call: o => tb.storeScenes(scene, o as never), misspelt: ['teachr', 'teacher'], wrong: [{ mode: 'max' }, ValueError, 'mode'], badArg: [() => tb.storeScenes(null as never), ArgumentError, 'scenes'] },
  { op: 'memoryOperators.titans(MAG)', base: { window: 2 }, keys: { iface: 'TitansOperatorOptions' }, call: o => void memoryOperators.titans('MAG', o as never), misspelt: ['persistentToken', 'persistentTokens'], wrong: [{ depth: 0 }, ValueError, 'depth'], badArg: [() => memoryOperators.titans('MAG', { segment: '2' } as never), ValueError, 'segment'] },
  { op: 'SparseyHierarchy.step', keys: ['learn', 'mode'], call: o => new SparseyHierarchy(hierarchyBase).step([0, 1], o as never), misspelt: ['lern', 'learn'], wrong: [{ mode: 'max' }, ValueError, 'mode'], badArg: [() => new SparseyHierarchy(hierarchyBase).step(null as never), ArgumentError, 'input'] },
]

void strictCases(t, ['memory'], cases)
