/**
 * Sparsey (Rinkus 2010, 2014): sparse distributed codes chosen by the Code Selection Algorithm (CSA).
 *
 * A macrocolumn ("mac") is Q winner-take-all competitive modules (CMs) of K binary cells; a code is exactly one
 * winner per CM, stored as an `Int32Array(Q)` of winner indices in [0, K). Everything here is integer and binary
 * bookkeeping on typed arrays: weights are bits, sums are counts, and the only floating point is the familiarity
 * arithmetic. Tensors appear only at the edges (`storeBatch`, `recallBatch`) where a caller streams rows.
 *
 * Randomness: every draw comes from @heed/tensor's seeded PCG32 (`rng(seed)`), one generator per mac, so a seed
 * fixes every code on every backend and machine. Recall (max-V) never draws: its ties go to the lowest cell index,
 * so recalling does not shift the codes that later learning picks.
 */
import { inRange, intAtLeast, nonNegativeInt, positiveInt, ArgumentError, ShapeError, ValueError, rng as makeRng, tensor, type Rng, type Tensor } from '@heed/tensor'
import { config as checkConfig, finite, flag, kindOf, oneOf, optionKeys, options } from './internal.js'

/**
 * Options of one mac. Only `inputSize` is required; each default is given on its field, within the ranges of Rinkus,
 * "Sparsey™: event recognition via deep hierarchical sparse distributed codes" (Front. Comput. Neurosci. 2014).
 */
export interface SparseyConfig {
  /** Number of bottom-up (U) input bits. */
  readonly inputSize: number
  /** Competitive modules per mac (default 12). */
  readonly Q?: number
  /** Binary cells per module (default 8). */
  readonly K?: number
  /** Exponent on the normalised U input in V (default 2; 1 lets crosstalk make novel inputs look familiar and codes collapse). */
  readonly lambdaU?: number
  /** Exponent on the horizontal input (default 1). */
  readonly lambdaH?: number
  /** Exponent on the top-down input (default 1). */
  readonly lambdaD?: number
  /** G⁻: familiarity at or below which code selection is uniformly random (default 0.2). */
  readonly gMin?: number
  /** γ: exponent of the expansivity curve (default 2). */
  readonly gamma?: number
  /** χ: expansivity factor, η(G=1) = 1 + χ·K (default 100). */
  readonly chi?: number
  /** Gain of the V → ψ sigmoid (default 28). */
  readonly sigmoidGain?: number
  /** Inflection of the V → ψ sigmoid (default 0.5). */
  readonly sigmoidInflection?: number
  /** Fraction of bottom-up weights set at which learning stops for good (default 0.5). */
  readonly freezeAt?: number
  /** [π⁻, π⁺]: the mac codes a frame only when its active U count lies in this band (default [1, inputSize]). */
  readonly activeBand?: readonly [number, number]
  /** Horizontal input from the mac's own previous code (sequences); default false. */
  readonly horizontal?: boolean
  /** Number of top-down (D) input bits (default 0: no top-down input). */
  readonly topDownSize?: number
  /** Seed of the mac's PCG32 generator (default 0). */
  readonly seed?: number
}

export type ResolvedSparseyConfig = Required<Omit<SparseyConfig, 'activeBand'>> & { readonly activeBand: readonly [number, number] }

/** A binary input: sparse (the indices of the active bits) or dense (a 0/1 byte per bit). */
export type SdrInput = readonly number[] | Int32Array | Uint32Array | Uint8Array

/** How the winner of each module is chosen. */
export type SelectionMode = 'csa' | 'maxV'

export interface SparseyStepOptions {
  /** Set weights for the chosen code (default false). Ignored once the mac is frozen. */
  readonly learn?: boolean
  /** 'csa' samples from the familiarity-scaled distribution; 'maxV' takes each module's maximum V. Default: 'csa' when learning, 'maxV' otherwise. */
  readonly mode?: SelectionMode
  /** The previous code for the horizontal input; overrides the mac's own (teacher forcing). `null` starts a new sequence. */
  readonly context?: Int32Array | null
  /** Active top-down bits (codes of the level above at t−1). */
  readonly topDown?: SdrInput
  /** Keep the mac's sequence context unchanged (default false: the emitted code becomes the next frame's context). */
  readonly keepContext?: boolean
}

export interface SparseyStep {
  /** One winner per module, or null when the input fell outside the active band. */
  readonly code: Int32Array | null
  /** Global familiarity G ∈ [0, 1]: mean over modules of the best cell's V. */
  readonly G: number
  /** Expansivity η ≥ 1 derived from G. */
  readonly eta: number
  /** Whether weights were written. */
  readonly learned: boolean
}

/** Work counters: the per-step cost depends on input activity and Q·K only, never on how much is stored. */
export interface SparseyCounters {
  steps: number
  weightReads: number
  weightWrites: number
}

export interface SparseySnapshot {
  readonly wu: Uint8Array
  readonly wh: Uint8Array
  readonly wd: Uint8Array
  readonly setBits: number
  readonly frozen: boolean
  readonly prev: Int32Array | null
  readonly stored: number
  readonly rng: Rng
}

/** The methods of a mac name themselves `SparseyMac.step` and so on (the class is the public name). */
const OP = 'SparseyMac'

/** An integer ≥ `min` (1 unless given). */
const posInt = (op: string, arg: string, v: unknown, min = 1): number => intAtLeast(op, arg, v, min)

const CONFIG = optionKeys<SparseyConfig>({
  inputSize: true, Q: true, K: true, lambdaU: true, lambdaH: true, lambdaD: true, gMin: true, gamma: true, chi: true,
  sigmoidGain: true, sigmoidInflection: true, freezeAt: true, activeBand: true, horizontal: true, topDownSize: true, seed: true,
})
const STEP_OPTIONS = optionKeys<SparseyStepOptions>({ learn: true, mode: true, context: true, topDown: true, keepContext: true })
const MODES: readonly SelectionMode[] = ['csa', 'maxV']

/** A mac's config with every default filled in and every value checked. */
export function resolveSparseyConfig(cfg: SparseyConfig): ResolvedSparseyConfig {
  return resolveConfig(cfg, 'resolveSparseyConfig')
}

/** @internal `resolveSparseyConfig` in the name of the function the user called (`SparseyMac`, `sparsey`, …). */
export function resolveConfig(cfg: SparseyConfig, op: string): ResolvedSparseyConfig {
  checkConfig(op, cfg, CONFIG)
  flag(op, 'horizontal', cfg.horizontal)
  if (cfg.seed !== undefined && !Number.isInteger(cfg.seed)) throw new ValueError({ op, arg: 'seed', expected: 'an integer seed', actual: typeof cfg.seed === 'number' ? cfg.seed : typeof cfg.seed })
  const inputSize = posInt(op, 'inputSize', cfg.inputSize)
  const band = cfg.activeBand ?? [1, inputSize]
  if (!Array.isArray(band) || band.length !== 2) throw new ArgumentError({ op, arg: 'activeBand', expected: '[min, max]', actual: String(band) })
  const lo = posInt(op, 'activeBand[0]', band[0], 0)
  const hi = posInt(op, 'activeBand[1]', band[1], lo)
  return {
    inputSize,
    Q: posInt(op, 'Q', cfg.Q ?? 12),
    K: posInt(op, 'K', cfg.K ?? 8, 2),
    lambdaU: inRange(op, 'lambdaU', cfg.lambdaU ?? 2, 0, 64),
    lambdaH: inRange(op, 'lambdaH', cfg.lambdaH ?? 1, 0, 64),
    lambdaD: inRange(op, 'lambdaD', cfg.lambdaD ?? 1, 0, 64),
    gMin: inRange(op, 'gMin', cfg.gMin ?? 0.2, 0, 0.999),
    gamma: inRange(op, 'gamma', cfg.gamma ?? 2, 0, 64),
    chi: inRange(op, 'chi', cfg.chi ?? 100, 0, 1e9),
    sigmoidGain: inRange(op, 'sigmoidGain', cfg.sigmoidGain ?? 28, 0, 1e6),
    sigmoidInflection: inRange(op, 'sigmoidInflection', cfg.sigmoidInflection ?? 0.5, 0, 1),
    freezeAt: inRange(op, 'freezeAt', cfg.freezeAt ?? 0.5, 0, 1),
    activeBand: [lo, hi],
    horizontal: cfg.horizontal ?? false,
    topDownSize: posInt(op, 'topDownSize', cfg.topDownSize ?? 0, 0),
    seed: cfg.seed ?? 0,
  }
}

/**
 * η = 1 + max(0, (G − G⁻)/(1 − G⁻))^γ · χ · K: 1 for unfamiliar input (every cell equally likely), 1 + χK at
 * G = 1 (the best-matching cell all but certain).
 */
export function expansivity(G: number, K: number, opts: { gMin?: number; gamma?: number; chi?: number } = {}): number {
  const op = 'expansivity'
  options(op, opts, ['gMin', 'gamma', 'chi'])
  for (const [arg, v] of [['G', G], ['K', K], ['gMin', opts.gMin], ['gamma', opts.gamma], ['chi', opts.chi]] as const) finite(op, arg, arg === 'G' || arg === 'K' ? (v ?? NaN) : v)
  const gMin = opts.gMin ?? 0.2
  const x = Math.max(0, (G - gMin) / (1 - gMin))
  return 1 + Math.pow(x, opts.gamma ?? 2) * (opts.chi ?? 100) * K
}

/** Active indices of an input, validated against `size`. Dense inputs are Uint8Array of exactly `size` bytes. */
export function activeIndices(x: SdrInput, size: number): Int32Array {
  nonNegativeInt('activeIndices', 'size', size)
  return indicesOf(x, size, 'activeIndices', 'input')
}

/** @internal `activeIndices` in the name of the caller, for the argument it checks. */
export function indicesOf(x: SdrInput, size: number, op: string, arg: string): Int32Array {
  if (x instanceof Uint8Array) {
    if (x.length !== size) throw new ShapeError({ op, arg, expected: `a dense 0/1 Uint8Array of length ${size}`, actual: `length ${x.length}` })
    let n = 0
    for (let i = 0; i < size; i++) {
      // a dense code is binary: a 2 or a 255 is data of another kind (grey levels, counts), not an active bit
      if (x[i]! > 1) throw new ValueError({ op, arg: `${arg}[${i}]`, expected: 'a dense 0/1 Uint8Array (binary bytes)', actual: x[i] })
      if (x[i] !== 0) n++
    }
    const out = new Int32Array(n)
    for (let i = 0, j = 0; i < size; i++) if (x[i] !== 0) out[j++] = i
    return out
  }
  if (!(Array.isArray(x) || x instanceof Int32Array || x instanceof Uint32Array))
    throw new ArgumentError({ op, arg, expected: 'active indices (number[], Int32Array) or a dense Uint8Array', actual: typeof x })
  const out = Int32Array.from(x as ArrayLike<number>)
  out.sort()
  for (let i = 0; i < out.length; i++) {
    const v = out[i]!
    if (!(v >= 0 && v < size) || !Number.isInteger((x as ArrayLike<number>)[i]))
      throw new ValueError({ op, arg, expected: `integer indices in [0, ${size})`, actual: (x as ArrayLike<number>)[i] })
    if (i > 0 && out[i - 1] === v) throw new ValueError({ op, arg, expected: 'distinct indices', actual: `${v} twice` })
  }
  return out
}

/** A code as a step returns it: an Int32Array of winners ≥ 0 (a tensor, a plain array or null is named here). */
function codeOf(op: string, arg: string, c: unknown): asserts c is Int32Array {
  if (!(c instanceof Int32Array)) throw new ArgumentError({ op, arg, expected: 'a code (an Int32Array of winners, as a step returns)', actual: c === null ? 'null' : Array.isArray(c) ? 'an array' : typeof c })
  for (let q = 0; q < c.length; q++) if (c[q]! < 0) throw new ValueError({ op, arg: `${arg}[${q}]`, expected: 'a winner index ≥ 0', actual: c[q] })
}

/** Number of modules where two codes have the same winner (code similarity; chance is Q/K). */
export function codeOverlap(a: Int32Array, b: Int32Array): number {
  codeOf('codeOverlap', 'a', a)
  codeOf('codeOverlap', 'b', b)
  if (a.length !== b.length) throw new ShapeError({ op: 'codeOverlap', arg: 'b', expected: `a code of length ${a.length}`, actual: b.length })
  let n = 0
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) n++
  return n
}

/** Flat cell ids (q·K + winner) of a code: the active cells, as a higher level or a classifier sees them. */
export function codeCells(code: Int32Array, K: number): Int32Array {
  codeOf('codeCells', 'code', code)
  positiveInt('codeCells', 'K', K)
  for (let q = 0; q < code.length; q++)
    if (code[q]! >= K) throw new ValueError({ op: 'codeCells', arg: `code[${q}]`, expected: `a winner in [0, ${K}) (K = ${K})`, actual: code[q] })
  const out = new Int32Array(code.length)
  for (let q = 0; q < code.length; q++) out[q] = q * K + code[q]!
  return out
}

/** One Sparsey macrocolumn: binary U/H/D weights, the CSA for learning and max-V for recall. */
export class SparseyMac {
  readonly config: ResolvedSparseyConfig
  readonly counters: SparseyCounters = { steps: 0, weightReads: 0, weightWrites: 0 }
  #wu: Uint8Array
  #wh: Uint8Array
  #wd: Uint8Array
  #setBits = 0
  #frozen = false
  #prev: Int32Array | null = null
  #stored = 0
  #rng: Rng
  // Scratch reused every step: a step allocates only its output code.
  readonly #u: Float64Array
  readonly #h: Float64Array
  readonly #d: Float64Array
  readonly #v: Float64Array
  readonly #psi: Float64Array

  constructor(config: SparseyConfig) {
    this.config = resolveConfig(config, 'SparseyMac')
    const { inputSize, Q, K, horizontal, topDownSize, seed } = this.config
    const QK = Q * K
    this.#wu = new Uint8Array(inputSize * QK)
    this.#wh = new Uint8Array(horizontal ? QK * QK : 0)
    this.#wd = new Uint8Array(topDownSize * QK)
    this.#rng = makeRng(seed)
    this.#u = new Float64Array(QK)
    this.#h = new Float64Array(QK)
    this.#d = new Float64Array(QK)
    this.#v = new Float64Array(QK)
    this.#psi = new Float64Array(K)
  }

  /** Fraction of bottom-up weights set (the freeze criterion). */
  get saturation(): number {
    return this.#setBits / this.#wu.length
  }
  /** True once saturation reached `freezeAt`: no weight changes after that. */
  get frozen(): boolean {
    return this.#frozen
  }
  /** Number of frames learned (while not frozen). */
  get stored(): number {
    return this.#stored
  }
  /** The current sequence context (the last emitted code), or null at a sequence start. */
  get context(): Int32Array | null {
    return this.#prev === null ? null : this.#prev.slice()
  }
  /** A copy of the bottom-up weights, `[inputSize × Q·K]` bits. */
  weightsU(): Uint8Array {
    return this.#wu.slice()
  }

  /** Start a new sequence: the next frame has no horizontal input. */
  resetContext(): void {
    this.#prev = null
  }

  /** Learn one frame single-trial with the CSA (the code is sampled). */
  learn(x: SdrInput, opts: Omit<SparseyStepOptions, 'learn' | 'mode'> = {}): SparseyStep {
    // learn and mode are this method's to set: passed in, they would be overridden silently
    options(`${OP}.learn`, opts, STEP_OPTIONS.filter(k => k !== 'learn' && k !== 'mode'))
    return this.#step(`${OP}.learn`, x, { ...opts, learn: true, mode: 'csa' })
  }

  /** Recall: the max-V code, no learning. */
  recall(x: SdrInput, opts: Omit<SparseyStepOptions, 'learn' | 'mode'> = {}): SparseyStep {
    options(`${OP}.recall`, opts, STEP_OPTIONS.filter(k => k !== 'learn' && k !== 'mode'))
    return this.#step(`${OP}.recall`, x, { ...opts, learn: false, mode: 'maxV' })
  }

  /** G of an input without choosing a code or touching any state (counters excepted). */
  familiarity(x: SdrInput, opts: Pick<SparseyStepOptions, 'context' | 'topDown'> = {}): number {
    options(`${OP}.familiarity`, opts, ['context', 'topDown'])
    if (opts.context != null && (!(opts.context instanceof Int32Array) || opts.context.length !== this.config.Q))
      throw new ShapeError({ op: `${OP}.familiarity`, arg: 'context', expected: `a code of length ${this.config.Q}`, actual: opts.context instanceof Int32Array ? opts.context.length : kindOf(opts.context) })
    const active = indicesOf(x, this.config.inputSize, `${OP}.familiarity`, 'input')
    if (!this.#inBand(active.length)) return 0
    return this.#computeV(active, opts.context === undefined ? this.#prev : opts.context, opts.topDown)
  }

  step(x: SdrInput, opts: SparseyStepOptions = {}): SparseyStep {
    const op = `${OP}.step`
    options(op, opts, STEP_OPTIONS)
    return this.#step(op, x, opts)
  }

  /** A step whose errors name `op`, the method the user called (learn and recall set learn and mode themselves). */
  #step(op: string, x: SdrInput, opts: SparseyStepOptions): SparseyStep {
    flag(op, 'keepContext', opts.keepContext)
    const learn = flag(op, 'learn', opts.learn) ?? false
    const mode = opts.mode ?? (learn ? 'csa' : 'maxV')
    if (mode !== 'csa' && mode !== 'maxV') throw new ValueError({ op, arg: 'mode', expected: "'csa' or 'maxV'", actual: mode })
    if (opts.context != null && opts.context.length !== this.config.Q)
      throw new ShapeError({ op, arg: 'context', expected: `a code of length ${this.config.Q}`, actual: opts.context.length })
    const active = indicesOf(x, this.config.inputSize, op, 'input')
    const context = opts.context === undefined ? this.#prev : opts.context
    this.counters.steps++
    if (!this.#inBand(active.length)) {
      if (opts.keepContext !== true) this.#prev = null
      return { code: null, G: 0, eta: 1, learned: false }
    }
    const G = this.#computeV(active, context, opts.topDown)
    const { Q, K, gMin, gamma, chi } = this.config
    const eta = expansivity(G, K, { gMin, gamma, chi })
    const code = new Int32Array(Q)
    if (mode === 'maxV') this.#selectMax(code)
    else this.#selectCsa(code, eta)
    const learned = learn && !this.#frozen
    if (learned) this.#write(code, active, context, opts.topDown)
    if (opts.keepContext !== true) this.#prev = code.slice()
    return { code, G, eta, learned }
  }

  /** Copies of all state, for branching runs (parallel = sequential checks) or rollback. */
  snapshot(): SparseySnapshot {
    return {
      wu: this.#wu.slice(),
      wh: this.#wh.slice(),
      wd: this.#wd.slice(),
      setBits: this.#setBits,
      frozen: this.#frozen,
      prev: this.#prev === null ? null : this.#prev.slice(),
      stored: this.#stored,
      rng: this.#rng.clone(),
    }
  }

  restore(s: SparseySnapshot): void {
    if (s.wu.length !== this.#wu.length || s.wh.length !== this.#wh.length || s.wd.length !== this.#wd.length)
      throw new ShapeError({ op: `${OP}.restore`, arg: 'snapshot', expected: 'a snapshot of a mac with this configuration', actual: `weights of ${s.wu.length}/${s.wh.length}/${s.wd.length} bits` })
    this.#wu.set(s.wu)
    this.#wh.set(s.wh)
    this.#wd.set(s.wd)
    this.#setBits = s.setBits
    this.#frozen = s.frozen
    this.#prev = s.prev === null ? null : s.prev.slice()
    this.#stored = s.stored
    this.#rng = s.rng.clone()
  }

  /**
   * Learn (`store`) or recall each row of a `[T, inputSize]` binary tensor (nonzero = active). Returns codes
   * `[T, Q]` int32 (a row of −1 where the input fell outside the active band) and familiarity `[T]` float32.
   * Rows are processed in order, so one call on T rows equals T calls on one row each.
   */
  async storeBatch(rows: Tensor): Promise<{ codes: Tensor<'int32'>; familiarity: Tensor<'float32'> }> {
    return this.#batch(rows, true, `${OP}.storeBatch`)
  }
  async recallBatch(rows: Tensor): Promise<{ codes: Tensor<'int32'>; familiarity: Tensor<'float32'> }> {
    return this.#batch(rows, false, `${OP}.recallBatch`)
  }

  async #batch(rows: Tensor, learn: boolean, op: string): Promise<{ codes: Tensor<'int32'>; familiarity: Tensor<'float32'> }> {
    const n = this.config.inputSize
    if (rows.rank !== 2 || rows.shape[1] !== n) throw new ShapeError({ op, arg: 'rows', expected: `[T, ${n}]`, actual: rows.shape })
    const values = await rows.data()
    return this.#batchValues(values, rows.shape[0]!, learn, rows.backend)
  }

  #batchValues(values: ArrayLike<number | bigint | boolean>, T: number, learn: boolean, backend: string): { codes: Tensor<'int32'>; familiarity: Tensor<'float32'> } {
    const { inputSize: n, Q } = this.config
    const codes = new Int32Array(T * Q).fill(-1)
    const fam = new Float32Array(T)
    const dense = new Uint8Array(n)
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < n; i++) dense[i] = Number(values[t * n + i]) !== 0 ? 1 : 0
      const r = this.step(dense, { learn, mode: learn ? 'csa' : 'maxV' })
      if (r.code !== null) codes.set(r.code, t * Q)
      fam[t] = r.G
    }
    return {
      codes: tensor(codes, [T, Q], 'int32', { backend }),
      familiarity: tensor(fam, [T], 'float32', { backend }),
    }
  }

  #inBand(count: number): boolean {
    const [lo, hi] = this.config.activeBand
    return count >= Math.max(1, lo) && count <= hi
  }

  /** Fill #v with V(i) and return G. Cost: (π_U + |context| + |topDown|)·Q·K weight reads. */
  #computeV(active: Int32Array, context: Int32Array | null, topDown: SdrInput | undefined): number {
    const { Q, K, lambdaU, lambdaH, lambdaD, horizontal, topDownSize } = this.config
    const QK = Q * K
    const u = this.#u
    const v = this.#v
    u.fill(0)
    for (let a = 0; a < active.length; a++) {
      const base = active[a]! * QK
      for (let i = 0; i < QK; i++) u[i]! += this.#wu[base + i]!
    }
    this.counters.weightReads += active.length * QK
    const piU = active.length
    for (let i = 0; i < QK; i++) v[i] = Math.pow(Math.min(1, u[i]! / piU), lambdaU)

    // H: the own mac's previous code, each cell blind to its own module (its module's previous winner says
    // nothing about which cell of that module should win now).
    if (horizontal && context !== null && Q > 1) {
      const h = this.#h
      h.fill(0)
      for (let q = 0; q < Q; q++) {
        const src = (q * K + context[q]!) * QK
        for (let i = 0; i < QK; i++) if (((i / K) | 0) !== q) h[i]! += this.#wh[src + i]!
      }
      this.counters.weightReads += Q * QK
      for (let i = 0; i < QK; i++) v[i]! *= Math.pow(h[i]! / (Q - 1), lambdaH)
    }
    if (topDownSize > 0 && topDown !== undefined) {
      const td = indicesOf(topDown, topDownSize, OP, 'topDown')
      if (td.length > 0) {
        const d = this.#d
        d.fill(0)
        for (let a = 0; a < td.length; a++) {
          const base = td[a]! * QK
          for (let i = 0; i < QK; i++) d[i]! += this.#wd[base + i]!
        }
        this.counters.weightReads += td.length * QK
        for (let i = 0; i < QK; i++) v[i]! *= Math.pow(d[i]! / td.length, lambdaD)
      }
    }
    let G = 0
    for (let q = 0; q < Q; q++) {
      let m = 0
      for (let k = 0; k < K; k++) m = Math.max(m, v[q * K + k]!)
      G += m
    }
    return G / Q
  }

  #selectMax(code: Int32Array): void {
    const { Q, K } = this.config
    const v = this.#v
    for (let q = 0; q < Q; q++) {
      let best = 0
      for (let k = 1; k < K; k++) if (v[q * K + k]! > v[q * K + best]!) best = k
      code[q] = best
    }
  }

  /** ψ(i) = 1 + (η − 1)·σ(gain·(V(i) − inflection)); the winner of each module is drawn ∝ ψ. */
  #selectCsa(code: Int32Array, eta: number): void {
    const { Q, K, sigmoidGain, sigmoidInflection } = this.config
    const v = this.#v
    const psi = this.#psi
    for (let q = 0; q < Q; q++) {
      let total = 0
      for (let k = 0; k < K; k++) {
        const s = 1 / (1 + Math.exp(-sigmoidGain * (v[q * K + k]! - sigmoidInflection)))
        psi[k] = 1 + (eta - 1) * s
        total += psi[k]!
      }
      let r = this.#rng.next() * total
      let pick = K - 1
      for (let k = 0; k < K; k++) {
        r -= psi[k]!
        if (r < 0) {
          pick = k
          break
        }
      }
      code[q] = pick
    }
  }

  #write(code: Int32Array, active: Int32Array, context: Int32Array | null, topDown: SdrInput | undefined): void {
    const { Q, K, horizontal, topDownSize, freezeAt } = this.config
    const QK = Q * K
    for (let q = 0; q < Q; q++) {
      const cell = q * K + code[q]!
      for (let a = 0; a < active.length; a++) {
        const idx = active[a]! * QK + cell
        if (this.#wu[idx] === 0) {
          this.#wu[idx] = 1
          this.#setBits++
        }
      }
      this.counters.weightWrites += active.length
      if (horizontal && context !== null) {
        for (let p = 0; p < Q; p++) this.#wh[(p * K + context[p]!) * QK + cell] = 1
        this.counters.weightWrites += Q
      }
      if (topDownSize > 0 && topDown !== undefined) {
        const td = indicesOf(topDown, topDownSize, OP, 'topDown')
        for (let a = 0; a < td.length; a++) this.#wd[td[a]! * QK + cell] = 1
        this.counters.weightWrites += td.length
      }
    }
    this.#stored++
    if (this.saturation >= freezeAt) this.#frozen = true
  }
}

/** A mac with the given options (a plain-function spelling of `new SparseyMac`). */
export const sparseyMac = (config: SparseyConfig): SparseyMac => {
  resolveConfig(config, 'sparseyMac')
  return new SparseyMac(config)
}

/** One level of a hierarchy: mac options shared by its macs, and each mac's receptive field. */
export interface SparseyLevelConfig extends Omit<SparseyConfig, 'inputSize' | 'topDownSize' | 'seed'> {
  /** Per mac, the indices it reads in the level below: input bits at level 0, mac indices above it. */
  readonly receptiveFields: readonly (readonly number[])[]
  /** Frames a code is held before the mac codes again (default 1); higher levels hold theirs longer. */
  readonly persistence?: number
}

export interface SparseyHierarchyConfig {
  readonly inputSize: number
  readonly levels: readonly SparseyLevelConfig[]
  /** Feed each mac the codes of the macs above it at t−1 as top-down input (default false). */
  readonly topDown?: boolean
  /** Seed of the first mac; mac m of the hierarchy uses seed + m (default 0). */
  readonly seed?: number
}

export interface SparseyHierarchyStep {
  /** codes[level][mac]: the mac's code (held ones included), or null where it was inactive. */
  readonly codes: readonly (readonly (Int32Array | null)[])[]
  /** familiarity[level][mac]: G of the mac's last coding step. */
  readonly familiarity: readonly (readonly number[])[]
}

/**
 * Receptive fields of a grid of patches over a `width × height` row-major layout (pixels, or macs of the level
 * below): `patch × patch` windows every `stride` cells, the last one flush with the edge.
 */
export function gridReceptiveFields(opts: { width: number; height: number; patch: number; stride?: number }): number[][] {
  const op = 'gridReceptiveFields'
  checkConfig(op, opts, ['width', 'height', 'patch', 'stride'], 'opts')
  const width = posInt(op, 'width', opts.width)
  const height = posInt(op, 'height', opts.height)
  const patch = posInt(op, 'patch', opts.patch)
  const stride = posInt(op, 'stride', opts.stride ?? patch)
  if (patch > width || patch > height) throw new ValueError({ op, arg: 'patch', expected: `≤ min(width, height) = ${Math.min(width, height)}`, actual: patch })
  const starts = (n: number): number[] => {
    const s: number[] = []
    for (let x = 0; x + patch <= n; x += stride) s.push(x)
    if (s[s.length - 1]! + patch < n) s.push(n - patch)
    return s
  }
  const fields: number[][] = []
  for (const y0 of starts(height))
    for (const x0 of starts(width)) {
      const f: number[] = []
      for (let y = y0; y < y0 + patch; y++) for (let x = x0; x < x0 + patch; x++) f.push(y * width + x)
      fields.push(f)
    }
  return fields
}

const HIERARCHY_CONFIG = optionKeys<SparseyHierarchyConfig>({ inputSize: true, levels: true, topDown: true, seed: true })
const LEVEL_CONFIG = optionKeys<SparseyLevelConfig>({
  Q: true, K: true, lambdaU: true, lambdaH: true, lambdaD: true, gMin: true, gamma: true, chi: true, sigmoidGain: true,
  sigmoidInflection: true, freezeAt: true, activeBand: true, horizontal: true, receptiveFields: true, persistence: true,
})

/**
 * A hierarchy of macs: level 0 reads the input, level l reads the codes of level l−1 macs in its receptive field
 * (their active cells as U bits). Levels run bottom-up every frame; horizontal and top-down inputs are the codes
 * of the previous frame, so a level's code for a held (persistent) span is a spatiotemporal chunk of the codes
 * below it.
 */
export class SparseyHierarchy {
  readonly inputSize: number
  readonly levels: readonly (readonly SparseyMac[])[]
  readonly #rfs: readonly (readonly Int32Array[])[]
  readonly #persistence: readonly number[]
  readonly #topDown: boolean
  /** parents[level][mac]: [index, Q·K] of each mac one level up that reads this one. */
  readonly #parents: readonly (readonly (readonly [number, number])[][])[]
  #codes: (Int32Array | null)[][]
  #fam: number[][]
  #frame = 0

  constructor(config: SparseyHierarchyConfig) {
    const op = 'SparseyHierarchy'
    if (config === null || typeof config !== 'object' || !Array.isArray(config.levels) || config.levels.length === 0)
      throw new ArgumentError({ op, arg: 'config', expected: '{ inputSize, levels: [at least one level] }', actual: String(config) })
    checkConfig(op, config, HIERARCHY_CONFIG)
    const inputSize = posInt(op, 'inputSize', config.inputSize)
    this.inputSize = inputSize
    this.#topDown = flag(op, 'topDown', config.topDown) ?? false
    let seed = config.seed ?? 0
    let belowSize = inputSize
    let belowCells = 1
    const levels: SparseyMac[][] = []
    const rfs: Int32Array[][] = []
    const persistence: number[] = []
    config.levels.forEach((lv, l) => {
      // inputSize, topDownSize and seed are the hierarchy's to set per mac: in a level they would be overridden silently
      checkConfig(`${op}: levels[${l}]`, lv, LEVEL_CONFIG, `levels[${l}]`)
      const fields = lv.receptiveFields
      if (!Array.isArray(fields) || fields.length === 0)
        throw new ArgumentError({ op, arg: `levels[${l}].receptiveFields`, expected: 'a non-empty array of index arrays', actual: String(fields) })
      persistence.push(posInt(op, `levels[${l}].persistence`, lv.persistence ?? 1))
      const rf = fields.map((f, m) => indicesOf(f, belowSize, op, `levels[${l}].receptiveFields[${m}]`))
      rfs.push(rf)
      const { receptiveFields: _rf, persistence: _p, ...macOpts } = lv
      // the level's values checked in the hierarchy's name, before its macs are made
      resolveConfig({ ...macOpts, inputSize: rf[0]!.length * belowCells }, `${op}: levels[${l}]`)
      levels.push(rf.map(f => new SparseyMac({ ...macOpts, inputSize: f.length * belowCells, seed: seed++ })))
      const Q = levels[l]![0]!.config.Q
      const K = levels[l]![0]!.config.K
      belowSize = fields.length
      belowCells = Q * K
    })
    // Top-down inputs need to know, for each mac, which macs above read it; built once the sizes are known.
    const parentsOf: [number, number][][][] = levels.map(ms => ms.map(() => []))
    for (let l = 1; l < levels.length; l++)
      rfs[l]!.forEach((f, m) => {
        const above = levels[l]![m]!.config
        f.forEach(child => parentsOf[l - 1]![child]!.push([m, above.Q * above.K]))
      })
    if (this.#topDown) {
      for (let l = 0; l + 1 < levels.length; l++)
        levels[l] = levels[l]!.map((mac, m) => {
          const size = parentsOf[l]![m]!.reduce((s, [, cells]) => s + cells, 0)
          const { inputSize: i, Q, K, lambdaU, lambdaH, lambdaD, gMin, gamma, chi, sigmoidGain, sigmoidInflection, freezeAt, activeBand, horizontal, seed: s } = mac.config
          return new SparseyMac({ inputSize: i, Q, K, lambdaU, lambdaH, lambdaD, gMin, gamma, chi, sigmoidGain, sigmoidInflection, freezeAt, activeBand, horizontal, seed: s, topDownSize: size })
        })
    }
    this.levels = levels
    this.#rfs = rfs
    this.#persistence = persistence
    this.#parents = parentsOf
    this.#codes = levels.map(ms => ms.map(() => null))
    this.#fam = levels.map(ms => ms.map(() => 0))
  }

  /** Start a new sequence everywhere. */
  reset(): void {
    for (const ms of this.levels) for (const m of ms) m.resetContext()
    this.#codes = this.levels.map(ms => ms.map(() => null))
    this.#fam = this.levels.map(ms => ms.map(() => 0))
    this.#frame = 0
  }

  /**
   * Code one frame bottom-up; `learn` stores it single-trial. `mode` defaults to 'csa' when learning and 'maxV'
   * otherwise; 'csa' without learning gives familiar input its stored code and novel input a fresh random one.
   */
  step(input: SdrInput, opts: { learn?: boolean; mode?: SelectionMode } = {}): SparseyHierarchyStep {
    const op = 'SparseyHierarchy.step'
    options(op, opts, ['learn', 'mode'])
    const learn = flag(op, 'learn', opts.learn) ?? false
    const mode = oneOf(op, 'mode', opts.mode, MODES) ?? (learn ? 'csa' : 'maxV')
    const prevCodes = this.#codes.map(cs => cs.slice())
    const below = new Uint8Array(this.inputSize)
    for (const i of indicesOf(input, this.inputSize, 'SparseyHierarchy.step', 'input')) below[i] = 1
    let belowCodes: (Int32Array | null)[] | null = null
    for (let l = 0; l < this.levels.length; l++) {
      const hold = this.#frame % this.#persistence[l]! !== 0
      const macs = this.levels[l]!
      for (let m = 0; m < macs.length; m++) {
        if (hold) continue
        const mac = macs[m]!
        const rf = this.#rfs[l]![m]!
        const u = new Uint8Array(mac.config.inputSize)
        if (belowCodes === null) rf.forEach((src, j) => (u[j] = below[src]!))
        else {
          let off = 0
          for (const src of rf) {
            const c = belowCodes[src]
            const K = this.levels[l - 1]![src]!.config.K
            const Q = this.levels[l - 1]![src]!.config.Q
            if (c != null) for (let q = 0; q < c.length; q++) u[off + q * K + c[q]!] = 1
            off += Q * K
          }
        }
        const td = this.#topDown && l + 1 < this.levels.length ? this.#topDownBits(l, m, prevCodes) : undefined
        const r = mac.step(u, { learn, mode, ...(td !== undefined ? { topDown: td } : {}) })
        this.#codes[l]![m] = r.code
        this.#fam[l]![m] = r.G
      }
      belowCodes = this.#codes[l]!
    }
    this.#frame++
    return { codes: this.#codes.map(cs => cs.map(c => (c === null ? null : c.slice()))), familiarity: this.#fam.map(f => f.slice()) }
  }

  #topDownBits(l: number, m: number, prev: (Int32Array | null)[][]): number[] {
    const bits: number[] = []
    let off = 0
    for (const [p, cells] of this.#parents[l]![m]!) {
      const c = prev[l + 1]![p]
      const K = this.levels[l + 1]![p]!.config.K
      if (c != null) for (let q = 0; q < c.length; q++) bits.push(off + q * K + c[q]!)
      off += cells
    }
    return bits
  }
}
