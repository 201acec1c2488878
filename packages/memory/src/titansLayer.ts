/**
 * Titans wirings of the neural memory with the attention core, with learnable persistent memory tokens P (input
 * independent, prepended to what attention sees, visible from every position):
 *
 * - MAC (memory as context): per segment S, h = M_{i−1}(q(S)); attend from S over [P ‖ h ‖ S]; write the
 *   attention output y into the memory; o = y ⊙ σ(M(y)).
 * - MAG (memory as gate): sliding-window attention over [P ‖ x] beside the memory branch; o = y_attn ⊙ σ(M(x)).
 * - MAL (memory as layer): y = M([P ‖ x]) (P is read, never written), then sliding-window attention over y.
 *
 * Memory reads are the lagged, causal reads of `titansStep`, and every attention mask is causal, so row t of the
 * output never depends on rows after t. The memory state carries across calls; the attention window does not
 * (MAC chains exactly when calls are whole segments, since its attention never leaves a segment).
 */
import { scaledDotProductAttention, mask as masks, type Mask } from '@heed/attention'
import { ShapeError, ValueError, concat, matmul, mul, permute, random, reshape, scope, sigmoid, slice, type Tensor, positiveInt } from '@heed/tensor'
import {
  disposeTitansState,
  initNeuralMemory,
  neuralMemory,
  neuralMemoryInputs,
  neuralMemoryState,
  titansRead,
  type NeuralMemoryConfig,
  type NeuralMemoryOptions,
  type NeuralMemoryParams,
  type TitansState,
} from './titans.js'
import { config, oneOf, optionKeys, pick } from './internal.js'
import { checkLayerInputs, layerOptions, type TitansLayerOptions } from './titansOptions.js'

export interface TitansLayerParams {
  readonly memory: NeuralMemoryParams
  /** `[Np, d]` persistent memory tokens. */
  readonly persistent: Tensor
  /** `[d, d]` attention maps. */
  readonly wq: Tensor
  readonly wk: Tensor
  readonly wv: Tensor
  readonly wo: Tensor
}

export interface TitansLayerConfig extends Omit<NeuralMemoryConfig, 'keyDim' | 'valueDim'> {
  /** Np, default 4. */
  readonly persistentTokens?: number
}

const CONFIG = optionKeys<TitansLayerConfig>({ dim: true, depth: true, hidden: true, dtype: true, seed: true, gateInit: true, persistentTokens: true })

export function initTitansLayer(cfg: TitansLayerConfig): TitansLayerParams {
  config('initTitansLayer', cfg, CONFIG, 'cfg')
  positiveInt('initTitansLayer', 'dim', cfg.dim)
  oneOf('initTitansLayer', 'dtype', cfg.dtype, ['float32', 'float64'])
  const d = cfg.dim
  const np = cfg.persistentTokens ?? 4
  if (!Number.isInteger(np) || np < 0) throw new ValueError({ op: 'initTitansLayer', arg: 'persistentTokens', expected: 'a non-negative integer', actual: np })
  const dtype = cfg.dtype ?? 'float32'
  const g = random.rng((cfg.seed ?? 0) + 7919)
  const sq = () => random.normal([d, d], { dtype, std: 1 / Math.sqrt(d), rng: g })
  const { persistentTokens: _np, ...memoryCfg } = cfg
  return { memory: initNeuralMemory(memoryCfg), persistent: random.normal([np, d], { dtype, std: 1, rng: g }), wq: sq(), wk: sq(), wv: sq(), wo: sq() }
}

export type TitansVariant = 'MAC' | 'MAG' | 'MAL'

export type { TitansLayerOptions } from './titansOptions.js'

export interface TitansLayerResult {
  /** `[T, d]` */
  readonly out: Tensor
  readonly state: TitansState
}

/** Multi-head attention from rows `q` over rows `kv` with the layer's maps (1 batch, heads split from d). */
function attend(p: TitansLayerParams, q: Tensor, kv: Tensor, heads: number, m: Mask, queryOffset: number): Tensor {
  const d = q.shape[1]!
  const Dh = d / heads
  const split = (x: Tensor) => permute(reshape(x, [1, x.shape[0]!, heads, Dh]), [0, 2, 1, 3])
  const { out } = scaledDotProductAttention(split(matmul(q, p.wq)), split(matmul(kv, p.wk)), split(matmul(kv, p.wv)), { mask: m, queryOffset, keyOffset: 0 })
  return matmul(reshape(permute(out, [0, 2, 1, 3]), [q.shape[0]!, d]), p.wo)
}

/** Run one Titans layer over `x: [T, d]`, continuing from `state` (a fresh memory M₀ when omitted). */
export function titansLayer(params: TitansLayerParams, x: Tensor, variant: TitansVariant, state?: TitansState, opts: TitansLayerOptions = {}): TitansLayerResult {
  const op = 'titansLayer'
  const d = checkLayerInputs(op, params, x)
  const mem = layerOptions(op, opts)
  const readOpts = pick(mem, ['activation'])
  if (params.memory.wv.shape[1] !== d) throw new ShapeError({ op, arg: 'params.memory.wv', expected: `[${d}, ${d}] (memory values live in the model width)`, actual: params.memory.wv.shape })
  const heads = opts.heads ?? 1
  if (!Number.isInteger(heads) || heads < 1 || d % heads !== 0) throw new ValueError({ op, arg: 'heads', expected: `a divisor of d=${d}`, actual: heads })
  const pos = (arg: 'segment' | 'window') => {
    const v = opts[arg] ?? 64
    positiveInt(op, arg, v)
    return v
  }
  if (variant !== 'MAC' && variant !== 'MAG' && variant !== 'MAL') throw new ValueError({ op, arg: 'variant', expected: "'MAC', 'MAG' or 'MAL'", actual: variant })
  const P = params.persistent
  const np = P.shape[0]!
  const T = x.shape[0]!
  return scope(() => {
    const own = state === undefined
    const s0 = state ?? neuralMemoryState(params.memory)
    let result: TitansLayerResult
    if (variant === 'MAC') {
      const seg = pos('segment')
      let s = s0
      const outs: Tensor[] = []
      for (let a = 0; a < T; a += seg) {
        const rows = slice(x, [[a, Math.min(a + seg, T)]])
        const n = rows.shape[0]!
        const h = titansRead(s, neuralMemoryInputs(params.memory, rows, mem).queries!, readOpts)
        // Keys: P (always visible), then h and the segment, each visible up to the query's own row.
        const m = masks.custom((_b, _h, pq, pk) => pk < np || (pk < np + n ? pk - np <= pq : pk - np - n <= pq))
        const y = attend(params, rows, concat([P, h, rows]), heads, m, 0)
        const r = neuralMemory(params.memory, y, s, mem)
        if (s !== s0) disposeTitansState(s)
        s = r.state
        outs.push(mul(y, sigmoid(r.out)))
      }
      result = { out: outs.length === 1 ? outs[0]! : concat(outs), state: s === s0 ? neuralMemory(params.memory, slice(x, [[0, 0]]), s0, mem).state : s }
    } else if (variant === 'MAG') {
      const y = attend(params, x, concat([P, x]), heads, masks.streaming(np, pos('window')), np)
      const r = neuralMemory(params.memory, x, s0, mem)
      result = { out: mul(y, sigmoid(r.out)), state: r.state }
    } else {
      const yP = titansRead(s0, neuralMemoryInputs(params.memory, P, mem).queries!, readOpts)
      const r = neuralMemory(params.memory, x, s0, mem)
      const y = concat([yP, r.out])
      result = { out: attend(params, slice(y, [[np, np + T]]), y, heads, masks.streaming(np, pos('window')), np), state: r.state }
    }
    if (own) disposeTitansState(s0)
    return result
  })
}
