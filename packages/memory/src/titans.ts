/**
 * Titans neural long-term memory (Behrouz, Zhong, Mirrokni 2025): an MLP whose weights are the state, trained at
 * test time on the associative loss ‖M(k) − v‖² with momentum ("surprise") and a forgetting gate:
 *
 *   S_t = η_t S_{t−1} − θ_t ∇ℓ(M_{t−1}; k_t, v_t)        M_t = (1 − α_t) M_{t−1} + S_t
 *
 * Two forms are provided. `sequential` takes each gradient at the weights of the previous token. `chunked` (the
 * paper's parallel form) takes every gradient of a chunk of b tokens at the chunk-start weights, then runs both
 * linear recurrences in closed form; b = 1 is the sequential rule. Reads never see the writes of their own chunk:
 * token t reads the weights committed before its chunk began (for b = 1, M_{t−1}), so the output is causal for
 * any b and a stream can emit reads before its chunk is complete.
 */
import {
  positiveInt,
  ShapeError,
  ValueError,
  ArgumentError,
  DTypeError,
  add,
  concat,
  dispose,
  exp,
  full,
  gelu,
  isTensor,
  log,
  logSigmoid,
  matmul,
  maximum,
  mul,
  neg,
  random,
  relu,
  reshape,
  rsqrt,
  scope,
  sigmoid,
  silu,
  slice,
  square,
  sub,
  sum,
  tanh,
  tensor,
  valueAndGrad,
  zerosLike,
  type DType,
  type Tensor,
} from '@heed/tensor'
import { config, kindOf, oneOf, optionKeys, options, pick } from './internal.js'
import { ACTIVATIONS, checkNeuralMemoryOptions, checkTitansOptions, NEURAL_MEMORY_OPTIONS, TITANS_OPTIONS, type MemoryActivation, type NeuralMemoryOptions, type TitansOptions } from './titansOptions.js'

export type { MemoryActivation, NeuralMemoryOptions, TitansOptions } from './titansOptions.js'

/** The memory MLP's weights, first layer first: `[dk, h], …, [h, dv]`; one `[dk, dv]` matrix is linear memory. */
export type MemoryWeights = readonly Tensor[]

const act = (name: MemoryActivation, x: Tensor): Tensor =>
  name === 'silu' ? silu(x) : name === 'gelu' ? gelu(x) : name === 'tanh' ? tanh(x) : relu(x)

function checkWeights(op: string, weights: MemoryWeights): void {
  if (!Array.isArray(weights) || weights.length === 0 || !weights.every(isTensor))
    throw new ArgumentError({ op, arg: 'weights', expected: 'a non-empty array of weight tensors', actual: kindOf(weights) })
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!
    w.assertLive(op)
    if (w.rank !== 2) throw new ShapeError({ op, arg: `weights[${i}]`, expected: 'a matrix', actual: w.shape })
    if (w.dtype !== weights[0]!.dtype) throw new DTypeError({ op, arg: `weights[${i}]`, expected: weights[0]!.dtype, actual: w.dtype })
    if (i > 0 && weights[i - 1]!.shape[1] !== w.shape[0])
      throw new ShapeError({ op, arg: `weights[${i}]`, expected: `${weights[i - 1]!.shape[1]} rows to follow weights[${i - 1}]`, actual: w.shape })
  }
}

function checkRows(op: string, arg: string, x: Tensor, dim: number, dtype: DType): void {
  if (!isTensor(x)) throw new ArgumentError({ op, arg, expected: `a [T, ${dim}] tensor`, actual: kindOf(x) })
  x.assertLive(op)
  if (x.rank !== 2 || x.shape[1] !== dim) throw new ShapeError({ op, arg, expected: `[T, ${dim}]`, actual: x.shape })
  if (x.dtype !== dtype) throw new DTypeError({ op, arg, expected: dtype, actual: x.dtype })
}

const keyDim = (w: MemoryWeights): number => w[0]!.shape[0]!
const valueDim = (w: MemoryWeights): number => w[w.length - 1]!.shape[1]!

/** M(x) for rows `x: [N, dk]` → `[N, dv]`: the activation sits between layers, never after the last. */
export function memoryForward(weights: MemoryWeights, x: Tensor, activation: MemoryActivation = 'silu'): Tensor {
  // an unknown name used to fall through to relu
  oneOf('memoryForward', 'activation', activation, ACTIVATIONS)
  checkWeights('memoryForward', weights)
  checkRows('memoryForward', 'x', x, keyDim(weights), weights[0]!.dtype)
  return scope(() => {
    let h = x
    weights.forEach((w, i) => {
      h = matmul(h, w)
      if (i < weights.length - 1) h = act(activation, h)
    })
    return h
  })
}

/**
 * Σ_n c_n ‖M(k_n) − v_n‖² (c_n = 1 without `coeffs`). A plain sum, not a mean: with θ = ½ one step on a zero linear
 * memory writes kᵀv exactly, which the orthonormal-key recall property relies on.
 */
export function associativeLoss(weights: MemoryWeights, keys: Tensor, values: Tensor, activation: MemoryActivation = 'silu', coeffs?: Tensor): Tensor {
  const op = 'associativeLoss'
  oneOf(op, 'activation', activation, ACTIVATIONS)
  checkWeights(op, weights)
  const dt = weights[0]!.dtype
  checkRows(op, 'keys', keys, keyDim(weights), dt)
  checkRows(op, 'values', values, valueDim(weights), dt)
  if (values.shape[0] !== keys.shape[0]) throw new ShapeError({ op, arg: 'values', expected: `${keys.shape[0]} rows like keys`, actual: values.shape })
  if (coeffs !== undefined && (!isTensor(coeffs) || coeffs.rank !== 1 || coeffs.shape[0] !== keys.shape[0]))
    throw new ShapeError({ op, arg: 'coeffs', expected: `[${keys.shape[0]}]`, actual: isTensor(coeffs) ? coeffs.shape : kindOf(coeffs) })
  return scope(() => {
    const perToken = sum(square(sub(memoryForward(weights, keys, activation), values)), { axis: 1 })
    return sum(coeffs === undefined ? perToken : mul(perToken, coeffs))
  })
}

/** Closed form of ∇_W Σ c_n ‖k_n W − v_n‖² for linear memory: 2 Kᵀ diag(c) (K W − V). A check on the autodiff path. */
export function linearMemoryGradient(w: Tensor, keys: Tensor, values: Tensor, coeffs?: Tensor): Tensor {
  const op = 'linearMemoryGradient'
  checkWeights(op, [w])
  checkRows(op, 'keys', keys, w.shape[0]!, w.dtype)
  checkRows(op, 'values', values, w.shape[1]!, w.dtype)
  if (values.shape[0] !== keys.shape[0]) throw new ShapeError({ op, arg: 'values', expected: `${keys.shape[0]} rows like keys`, actual: values.shape })
  if (coeffs !== undefined && (!isTensor(coeffs) || coeffs.rank !== 1 || coeffs.shape[0] !== keys.shape[0]))
    throw new ShapeError({ op, arg: 'coeffs', expected: `[${keys.shape[0]}]`, actual: isTensor(coeffs) ? coeffs.shape : kindOf(coeffs) })
  return scope(() => {
    let r = sub(matmul(keys, w), values)
    if (coeffs !== undefined) r = mul(r, reshape(coeffs, [coeffs.shape[0]!, 1]))
    return mul(matmul(keys, r, { transposeA: true }), 2)
  })
}

export interface MemoryInitOptions {
  /** Key (input) width of the memory MLP. */
  readonly keyDim: number
  /** Value (output) width (default `keyDim`). */
  readonly valueDim?: number
  /** Layers of the MLP (1 = linear memory). Default 2. */
  readonly depth?: number
  /** Hidden width of a deep memory. Default 2·keyDim. */
  readonly hidden?: number
  /** `zeros` (a blank memory; linear only makes sense this way for exact-recall checks) or `normal` (default, std 1/√fan-in). */
  readonly init?: 'normal' | 'zeros'
  /** float32 (default) or float64. */
  readonly dtype?: 'float32' | 'float64'
  /** Seed of the initial weights (default 0). */
  readonly seed?: number
  /** Backend the weights live on (default: the current backend). */
  readonly backend?: string
}

const INIT_OPTIONS = optionKeys<MemoryInitOptions>({ keyDim: true, valueDim: true, depth: true, hidden: true, init: true, dtype: true, seed: true, backend: true })

/** Fresh memory weights. */
export function initMemoryWeights(opts: MemoryInitOptions): Tensor[] {
  const op = 'initMemoryWeights'
  config(op, opts, INIT_OPTIONS, 'opts')
  oneOf(op, 'init', opts.init, ['normal', 'zeros'])
  oneOf(op, 'dtype', opts.dtype, ['float32', 'float64'])
  const dk = positiveInt(op, 'keyDim', opts.keyDim)
  const dv = positiveInt(op, 'valueDim', opts.valueDim ?? dk)
  const depth = positiveInt(op, 'depth', opts.depth ?? 2)
  const hidden = positiveInt(op, 'hidden', opts.hidden ?? 2 * dk)
  const dims = [dk, ...Array.from({ length: depth - 1 }, () => hidden), dv]
  const dtype = opts.dtype ?? 'float32'
  const g = random.rng(opts.seed ?? 0)
  return dims.slice(0, -1).map((fanIn, i) => {
    const shape = [fanIn, dims[i + 1]!]
    const extra = opts.backend !== undefined ? { backend: opts.backend } : {}
    return opts.init === 'zeros' ? full(shape, 0, { dtype, ...extra }) : random.normal(shape, { dtype, std: 1 / Math.sqrt(fanIn), rng: g, ...extra })
  })
}

// ---- gates -------------------------------------------------------------------------------------------------

/** Learning rate θ ≥ 0, momentum η ∈ [0, 1], forgetting α ∈ [0, 1]: numbers (constant) or `[T]` tensors (per token). */
export interface Gates {
  readonly theta: number | Tensor
  readonly eta: number | Tensor
  readonly alpha: number | Tensor
}

/**
 * Gates in log form, as a learned module produces them: log η and log(1 − α) come straight from `logSigmoid`, so
 * their products over a chunk are sums of finite numbers that never underflow to log 0.
 */
export interface LogGates {
  readonly theta: Tensor
  readonly logEta: Tensor
  readonly logKeep: Tensor
}

export type TitansGates = Gates | LogGates

// log 0 would turn the segment sums below into ∞ − ∞; a floor whose exp is 0 (or denormal) in the dtype keeps
// every product exact to the precision that matters.
const logFloor = (dt: DType): number => (dt === 'float64' ? -700 : dt === 'float16' ? -17 : -88)

function gateVector(op: string, name: string, g: number | Tensor, T: number, dt: DType, kind: 'theta' | 'log' | 'log1m', backend: string): Tensor {
  if (typeof g === 'number') {
    const ok = kind === 'theta' ? Number.isFinite(g) && g >= 0 : g >= 0 && g <= 1
    if (!ok) throw new ValueError({ op, arg: `gates.${name}`, expected: kind === 'theta' ? 'a finite number ≥ 0' : 'a number in [0, 1]', actual: g })
    const v = kind === 'theta' ? g : Math.max(Math.log(kind === 'log' ? g : 1 - g), logFloor(dt))
    return full([T], v, { dtype: dt, backend })
  }
  if (!isTensor(g)) throw new ArgumentError({ op, arg: `gates.${name}`, expected: 'a number or a [T] tensor', actual: typeof g })
  if (g.dtype !== dt) throw new DTypeError({ op, arg: `gates.${name}`, expected: dt, actual: g.dtype })
  if (!(g.rank === 1 && g.shape[0] === T) && g.rank !== 0) throw new ShapeError({ op, arg: `gates.${name}`, expected: `[${T}] or a scalar`, actual: g.shape })
  // the probabilities η and α must be in [0, 1] (θ ≥ 0), as for number gates; checked where the values are
  // host-resident (CPU), since reading a device tensor back would stall its queue
  if (g.backend === 'cpu' && (kind === 'log' || kind === 'log1m' || name === 'theta')) {
    const v = g.dataSync()
    for (let i = 0; i < v.length; i++) {
      const x = v[i]!
      const ok = kind === 'theta' ? Number.isFinite(x) && x >= 0 : x >= 0 && x <= 1
      if (!ok) throw new ValueError({ op, arg: `gates.${name}[${i}]`, expected: kind === 'theta' ? 'a finite number ≥ 0' : 'a number in [0, 1]', actual: x })
    }
  }
  return scope(() => {
    const v = g.rank === 0 ? mul(full([T], 1, { dtype: dt, backend }), g) : reshape(g, [T])
    if (kind === 'theta') return v
    const floor = Math.exp(logFloor(dt))
    return log(maximum(kind === 'log' ? v : sub(1, v), floor))
  })
}

function toLogGates(op: string, gates: TitansGates, T: number, dt: DType, backend: string): LogGates {
  if (gates === null || typeof gates !== 'object') throw new ArgumentError({ op, arg: 'gates', expected: '{ theta, eta, alpha } or { theta, logEta, logKeep }', actual: String(gates) })
  if ('logEta' in gates)
    return {
      theta: gateVector(op, 'theta', gates.theta, T, dt, 'theta', backend),
      logEta: gateVector(op, 'logEta', gates.logEta, T, dt, 'theta', backend),
      logKeep: gateVector(op, 'logKeep', gates.logKeep, T, dt, 'theta', backend),
    }
  return {
    theta: gateVector(op, 'theta', gates.theta, T, dt, 'theta', backend),
    logEta: gateVector(op, 'eta', gates.eta, T, dt, 'log', backend),
    logKeep: gateVector(op, 'alpha', gates.alpha, T, dt, 'log1m', backend),
  }
}

// ---- state -------------------------------------------------------------------------------------------------

/** Tokens of an incomplete chunk: already read, not yet written. */
export interface PendingChunk {
  readonly keys: Tensor
  readonly values: Tensor
  readonly gates: LogGates
}

export interface TitansState {
  /** Committed memory weights (what reads use). */
  readonly weights: readonly Tensor[]
  /** Momentum S, shaped like the weights. */
  readonly momentum: readonly Tensor[]
  /** The incomplete chunk in chunked mode, else null. */
  readonly pending: PendingChunk | null
  /** Tokens seen so far, committed or pending. */
  readonly position: number
}

/** A state holding copies of `weights` (gradients flow back to them) and zero momentum. */
export function titansState(weights: MemoryWeights): TitansState {
  checkWeights('titansState', weights)
  return {
    weights: weights.map(w => reshape(w, w.shape)),
    momentum: weights.map(w => zerosLike(w)),
    pending: null,
    position: 0,
  }
}

/** A TitansState argument: an object holding weights and momentum (a tensor, an array or null is named here). */
function checkState(op: string, state: TitansState, arg = 'state'): void {
  if (state === null || typeof state !== 'object' || Array.isArray(state) || isTensor(state) || !Array.isArray(state.weights) || !Array.isArray(state.momentum))
    throw new ArgumentError({ op, arg, expected: 'a TitansState (titansState)', actual: isTensor(state) ? 'a Tensor' : kindOf(state) })
}

/** Dispose every tensor a state holds. */
export function disposeTitansState(state: TitansState): void {
  checkState('disposeTitansState', state)
  dispose([state.weights, state.momentum])
  if (state.pending) dispose([state.pending.keys, state.pending.values, state.pending.gates.theta, state.pending.gates.logEta, state.pending.gates.logKeep])
}

export interface TitansInput {
  /** `[T, dk]` */
  readonly keys: Tensor
  /** `[T, dv]` */
  readonly values: Tensor
  /** `[T, dk]` rows to read (default: the keys). */
  readonly queries?: Tensor
  readonly gates: TitansGates
}

export interface TitansResult {
  readonly state: TitansState
  /** `[T, dv]`: token t's query read from the weights committed before its chunk. */
  readonly out: Tensor
}

/**
 * Write `keys → values` into the memory and read `queries`, returning the new state (the caller owns both the old
 * and the new one). Chunk boundaries are absolute, so any partition of a sequence into calls gives the same
 * state and outputs as one call: a chunk left incomplete stays pending until later calls (or `titansFlush`) fill it.
 */
export function titansStep(state: TitansState, input: TitansInput, opts: TitansOptions = {}): TitansResult {
  const op = 'titansStep'
  opts = options(op, opts, TITANS_OPTIONS)
  checkTitansOptions(op, opts)
  if (state === null || typeof state !== 'object') throw new ArgumentError({ op, arg: 'state', expected: 'a TitansState (titansState)', actual: kindOf(state) })
  if (input === null || typeof input !== 'object') throw new ArgumentError({ op, arg: 'input', expected: '{ keys, values, queries?, gates }', actual: kindOf(input) })
  checkWeights(op, state.weights)
  const mode = opts.mode ?? 'chunked'
  const b = mode === 'sequential' ? 1 : positiveInt(op, 'chunkSize', opts.chunkSize ?? 16)
  const activation = opts.activation ?? 'silu'
  const W = state.weights
  const dt = W[0]!.dtype
  const { keys, values } = input
  checkRows(op, 'keys', keys, keyDim(W), dt)
  checkRows(op, 'values', values, valueDim(W), dt)
  const T = keys.shape[0]!
  if (values.shape[0] !== T) throw new ShapeError({ op, arg: 'values', expected: `${T} rows like keys`, actual: values.shape })
  const queries = input.queries ?? keys
  checkRows(op, 'queries', queries, keyDim(W), dt)
  if (queries.shape[0] !== T) throw new ShapeError({ op, arg: 'queries', expected: `${T} rows like keys`, actual: queries.shape })
  if (state.pending && state.pending.keys.shape[0]! >= b)
    throw new ValueError({ op, arg: 'opts.chunkSize', expected: `more than the ${state.pending.keys.shape[0]} pending tokens of the state`, actual: b })

  return scope(() => {
    const g = toLogGates(op, input.gates, T, dt, keys.backend)
    const p = state.pending
    const P = p ? p.keys.shape[0]! : 0
    const allK = p ? concat([p.keys, keys]) : keys
    const allV = p ? concat([p.values, values]) : values
    const allG: LogGates = p
      ? { theta: concat([p.gates.theta, g.theta]), logEta: concat([p.gates.logEta, g.logEta]), logKeep: concat([p.gates.logKeep, g.logKeep]) }
      : g
    const total = P + T
    let weights: readonly Tensor[] = W
    let momentum: readonly Tensor[] = state.momentum
    const reads: Tensor[] = []
    let start = 0
    while (start < total) {
      const end = Math.min(start + b, total)
      // Queries are indexed from the first new token; the pending ones were read by an earlier call.
      const q0 = Math.max(start, P)
      if (end > q0) reads.push(memoryForward(weights, slice(queries, [[q0 - P, end - P]]), activation))
      if (end - start < b) break
      const rows = (x: Tensor): Tensor => slice(x, [[start, end]])
      const chunkGates = { theta: rows(allG.theta), logEta: rows(allG.logEta), logKeep: rows(allG.logKeep) }
      const next = (mode === 'sequential' ? sequentialToken : commitChunk)(weights, momentum, rows(allK), rows(allV), chunkGates, activation)
      weights = next.weights
      momentum = next.momentum
      start = end
    }
    const pending: PendingChunk | null =
      start < total
        ? {
            keys: slice(allK, [[start, total]]),
            values: slice(allV, [[start, total]]),
            gates: { theta: slice(allG.theta, [[start, total]]), logEta: slice(allG.logEta, [[start, total]]), logKeep: slice(allG.logKeep, [[start, total]]) },
          }
        : null
    const copy = (ws: readonly Tensor[]) => ws.map(w => (W.includes(w) || state.momentum.includes(w) ? reshape(w, w.shape) : w))
    const out = reads.length === 1 ? reads[0]! : reads.length === 0 ? full([0, valueDim(W)], 0, { dtype: dt, backend: keys.backend }) : concat(reads)
    return { state: { weights: copy(weights), momentum: copy(momentum), pending, position: state.position + T }, out }
  })
}

/**
 * One chunk of b tokens with every gradient at the chunk-start weights M₀ (mini-batch GD). Unrolling the two
 * recurrences over the chunk gives
 *   S_b = E_{0→b} S₀ − Σ_l θ_l E_{l→b} g_l
 *   M_b = A M₀ + (Σ_i D_i E_{0→i}) S₀ − Σ_l θ_l (Σ_{i≥l} D_i E_{l→i}) g_l
 * with E_{l→i} = Π_{l<j≤i} η_j, D_i = Π_{i<j≤b} (1 − α_j), A = D_0. Both gradient sums are gradients of one
 * weighted loss, so a chunk costs two backward passes however long it is: no per-token gradients exist.
 */
function commitChunk(W0: readonly Tensor[], S0: readonly Tensor[], k: Tensor, v: Tensor, g: LogGates, activation: MemoryActivation): { weights: Tensor[]; momentum: Tensor[] } {
  return scope(() => {
    const b = k.shape[0]!
    const n = b + 1
    const dt = k.dtype
    const be = k.backend
    // lower[i][j] = [j ≤ i], strict[j][l] = [l < j], both over the chunk positions 0..b (0 = before the chunk).
    const lowerV = new Array<number>(n * n).fill(0)
    const strictV = new Array<number>(n * n).fill(0)
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        if (j <= i) lowerV[i * n + j] = 1
        if (j < i) strictV[i * n + j] = 1
      }
    const lower = tensor(lowerV, [n, n], dt, { backend: be })
    const strict = tensor(strictV, [n, n], dt, { backend: be })
    const zero = full([1], 0, { dtype: dt, backend: be })
    const xe = reshape(concat([zero, g.logEta]), [1, n])
    const xk = reshape(concat([zero, g.logKeep]), [1, n])
    // Segment sums by a masked product, not by differences of a cumulative sum: those cancel catastrophically
    // once a log η near the floor has entered the running total.
    const E = mul(exp(matmul(mul(lower, xe), strict)), lower) // E[i, l] = E_{l→i}
    const D = exp(matmul(xk, strict)) // D[0, i] = Σ_{j>i} log(1 − α_j), exponentiated
    const Erows = slice(E, [[1, n]]) // [b, n]
    const Dtail = slice(D, [null, [1, n]]) // [1, b]
    const r = reshape(matmul(Dtail, Erows), [n]) // r[0] = Σ_i D_i E_{0→i}, r[l] = Σ_{i≥l} D_i E_{l→i}
    const eLast = reshape(slice(E, [[b, n]]), [n]) // E_{l→b}
    const pS = slice(eLast, [[0, 1]])
    const cS = slice(r, [[0, 1]])
    const A = slice(D, [null, [0, 1]])
    const aCoef = mul(g.theta, slice(eLast, [[1, n]]))
    const mCoef = mul(g.theta, slice(r, [[1, n]]))
    // Two copies of M₀ so one backward pass yields both weighted gradients.
    const Wa = W0.map(w => reshape(w, w.shape))
    const Wm = W0.map(w => reshape(w, w.shape))
    const vg = valueAndGrad(
      (wa: Tensor[], wm: Tensor[]) => add(associativeLoss(wa, k, v, activation, aCoef), associativeLoss(wm, k, v, activation, mCoef)),
      { argnums: [0, 1] },
    )
    const [, [Ga, Gm]] = vg(Wa, Wm)
    const momentum = S0.map((s, i) => sub(mul(s, reshape(pS, [1, 1])), Ga[i]!))
    const weights = W0.map((w, i) => sub(add(mul(w, reshape(A, [1, 1])), mul(S0[i]!, reshape(cS, [1, 1]))), Gm[i]!))
    return { weights, momentum }
  })
}

/** The recurrence itself for one token, gradient by autodiff at the current weights. */
function sequentialToken(W: readonly Tensor[], S: readonly Tensor[], k: Tensor, v: Tensor, g: LogGates, activation: MemoryActivation): { weights: Tensor[]; momentum: Tensor[] } {
  return scope(() => {
    const [, grads] = valueAndGrad((w: Tensor[]) => associativeLoss(w, k, v, activation))(W.map(w => reshape(w, w.shape)))
    const theta = reshape(g.theta, [1, 1])
    const eta = exp(reshape(g.logEta, [1, 1]))
    const keepRate = exp(reshape(g.logKeep, [1, 1]))
    const momentum = S.map((s, i) => sub(mul(s, eta), mul(grads[i]!, theta)))
    const weights = W.map((w, i) => add(mul(w, keepRate), momentum[i]!))
    return { weights, momentum }
  })
}

/** Commit a pending partial chunk as a short chunk (end of a sequence). Returns a new state. */
export function titansFlush(state: TitansState, opts: Pick<TitansOptions, 'activation'> = {}): TitansState {
  opts = options('titansFlush', opts, ['activation'])
  oneOf('titansFlush', 'activation', opts.activation, ACTIVATIONS)
  checkState('titansFlush', state)
  checkWeights('titansFlush', state.weights)
  const p = state.pending
  if (!p) return { ...state, weights: state.weights.map(w => reshape(w, w.shape)), momentum: state.momentum.map(s => reshape(s, s.shape)) }
  const next = commitChunk(state.weights, state.momentum, p.keys, p.values, p.gates, opts.activation ?? 'silu')
  return { weights: next.weights, momentum: next.momentum, pending: null, position: state.position }
}

/** Read `queries: [Q, dk]` from the committed weights (no write). */
export function titansRead(state: TitansState, queries: Tensor, opts: Pick<TitansOptions, 'activation'> = {}): Tensor {
  opts = options('titansRead', opts, ['activation'])
  oneOf('titansRead', 'activation', opts.activation, ACTIVATIONS)
  checkState('titansRead', state)
  checkWeights('titansRead', state.weights)
  checkRows('titansRead', 'queries', queries, keyDim(state.weights), state.weights[0]!.dtype)
  return memoryForward(state.weights, queries, opts.activation ?? 'silu')
}

// ---- learned module ----------------------------------------------------------------------------------------

/** The trainable parts of a neural memory: projections, gate maps, the initial memory M₀. */
export interface NeuralMemoryParams {
  /** `[d, dk]`, `[d, dv]`, `[d, dk]` */
  readonly wk: Tensor
  readonly wv: Tensor
  readonly wq: Tensor
  /** `[d, 3]` and `[3]`: pre-activations of θ, η, α. */
  readonly wGate: Tensor
  readonly bGate: Tensor
  readonly init: readonly Tensor[]
}

export interface NeuralMemoryConfig {
  readonly dim: number
  readonly keyDim?: number
  readonly valueDim?: number
  readonly depth?: number
  readonly hidden?: number
  readonly dtype?: 'float32' | 'float64'
  readonly seed?: number
  /** Initial gate biases: θ/maxLr, η, α as probabilities. Default 0.5, 0.5, 0.01. */
  readonly gateInit?: { readonly theta?: number; readonly eta?: number; readonly alpha?: number }
}

const logit = (p: number): number => Math.log(p / (1 - p))

const NEURAL_MEMORY_CONFIG = optionKeys<NeuralMemoryConfig>({ dim: true, keyDim: true, valueDim: true, depth: true, hidden: true, dtype: true, seed: true, gateInit: true })

/** Parameters for a neural memory over `dim`-wide inputs. */
export function initNeuralMemory(cfg: NeuralMemoryConfig): NeuralMemoryParams {
  const op = 'initNeuralMemory'
  config(op, cfg, NEURAL_MEMORY_CONFIG, 'cfg')
  if (cfg.gateInit !== undefined) config(`${op}: gateInit`, cfg.gateInit, ['theta', 'eta', 'alpha'], 'gateInit')
  oneOf(op, 'dtype', cfg.dtype, ['float32', 'float64'])
  const d = positiveInt(op, 'dim', cfg.dim)
  const dk = positiveInt(op, 'keyDim', cfg.keyDim ?? d)
  const dv = positiveInt(op, 'valueDim', cfg.valueDim ?? d)
  const dtype = cfg.dtype ?? 'float32'
  const g = random.rng(cfg.seed ?? 0)
  const proj = (cols: number) => random.normal([d, cols], { dtype, std: 1 / Math.sqrt(d), rng: g })
  const gi = cfg.gateInit ?? {}
  for (const k of ['theta', 'eta', 'alpha'] as const) {
    const p = gi[k]
    // the biases are logits of these probabilities: 0, 1 or beyond give ±∞ or NaN
    if (p !== undefined && !(typeof p === 'number' && p > 0 && p < 1)) throw new ValueError({ op, arg: `gateInit.${k}`, expected: 'a probability in (0, 1)', actual: p })
  }
  return {
    wk: proj(dk),
    wv: proj(dv),
    wq: proj(dk),
    wGate: random.normal([d, 3], { dtype, std: 0.01, rng: g }),
    bGate: tensor([logit(gi.theta ?? 0.5), logit(gi.eta ?? 0.5), -logit(gi.alpha ?? 0.01)], [3], dtype),
    init: initMemoryWeights({ keyDim: dk, valueDim: dv, depth: cfg.depth ?? 2, ...(cfg.hidden !== undefined ? { hidden: cfg.hidden } : {}), dtype, seed: g.nextUint32() }),
  }
}

const l2rows = (x: Tensor): Tensor => mul(x, rsqrt(add(sum(square(x), { axis: 1, keepDims: true }), 1e-12)))

/** Params from `initNeuralMemory`: every projection a live tensor, `init` valid memory weights. */
function checkParams(op: string, params: NeuralMemoryParams): void {
  if (params === null || typeof params !== 'object' || isTensor(params) || Array.isArray(params) || !(['wk', 'wv', 'wq', 'wGate', 'bGate'] as const).every(k => isTensor(params[k])))
    throw new ArgumentError({ op, arg: 'params', expected: 'NeuralMemoryParams (initNeuralMemory)', actual: isTensor(params) ? 'a Tensor' : kindOf(params) })
  for (const k of ['wk', 'wv', 'wq', 'wGate', 'bGate'] as const) params[k].assertLive(op)
  checkWeights(op, params.init)
}

/** Keys, values, queries and gates of inputs `x: [T, d]`. */
export function neuralMemoryInputs(params: NeuralMemoryParams, x: Tensor, opts: NeuralMemoryOptions = {}): TitansInput & { readonly gates: LogGates } {
  opts = options('neuralMemoryInputs', opts, NEURAL_MEMORY_OPTIONS)
  checkNeuralMemoryOptions('neuralMemoryInputs', opts)
  checkParams('neuralMemoryInputs', params)
  return inputsOf('neuralMemoryInputs', params, x, opts)
}

/** `neuralMemoryInputs` after the option and params checks, in the name of the function the user called. */
function inputsOf(op: string, params: NeuralMemoryParams, x: Tensor, opts: NeuralMemoryOptions): TitansInput & { readonly gates: LogGates } {
  if (!isTensor(x)) throw new ArgumentError({ op, arg: 'x', expected: `a [T, ${params.wk.shape[0]}] tensor`, actual: kindOf(x) })
  x.assertLive(op)
  if (x.rank !== 2 || x.shape[1] !== params.wk.shape[0]) throw new ShapeError({ op, arg: 'x', expected: `[T, ${params.wk.shape[0]}]`, actual: x.shape })
  const maxLr = opts.maxLr ?? 1
  if (!(maxLr >= 0 && Number.isFinite(maxLr))) throw new ValueError({ op, arg: 'maxLr', expected: 'a finite number ≥ 0', actual: maxLr })
  return scope(() => {
    const norm = opts.normalize ?? true
    const keys = norm ? l2rows(matmul(x, params.wk)) : matmul(x, params.wk)
    const queries = norm ? l2rows(matmul(x, params.wq)) : matmul(x, params.wq)
    const z = add(matmul(x, params.wGate), params.bGate)
    const T = x.shape[0]!
    const col = (j: number): Tensor => reshape(slice(z, [null, [j, j + 1]]), [T])
    return {
      keys,
      values: matmul(x, params.wv),
      queries,
      gates: { theta: mul(sigmoid(col(0)), maxLr), logEta: logSigmoid(col(1)), logKeep: logSigmoid(neg(col(2))) },
    }
  })
}

/** A state for `params` (M₀ = params.init, zero momentum). */
export function neuralMemoryState(params: NeuralMemoryParams): TitansState {
  checkParams('neuralMemoryState', params)
  return titansState(params.init)
}

/** Project `x: [T, d]`, write it into the memory and read it back: `{ out: [T, dv], state }`. */
export function neuralMemory(params: NeuralMemoryParams, x: Tensor, state?: TitansState, opts: NeuralMemoryOptions = {}): TitansResult {
  opts = options('neuralMemory', opts, NEURAL_MEMORY_OPTIONS)
  checkNeuralMemoryOptions('neuralMemory', opts)
  checkParams('neuralMemory', params)
  if (state !== undefined) {
    checkState('neuralMemory', state)
    checkWeights('neuralMemory', state.weights)
  }
  return scope(() => {
    const own = state === undefined
    const s = state ?? titansState(params.init)
    const res = titansStep(s, inputsOf('neuralMemory', params, x, opts), pick(opts, TITANS_OPTIONS))
    if (own) disposeTitansState(s)
    return res
  })
}
