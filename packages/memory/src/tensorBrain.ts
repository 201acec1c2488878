/**
 * The Tensor Brain (Tresp et al., arXiv 2001.11027, 2109.13392): an index layer of concepts, each with one
 * embedding used both bottom-up and top-down, a representation layer q, and a dynamic context h that carries a
 * scene between concept windows.
 *
 * - Bottom-up: P(k | q) = softmax(β·(a0_k + a_kᵀσ(q))) over a group (entities, predicates or time indices), with
 *   a0_k = −Σ_l softplus(a_lk), the normaliser of a factorised Bernoulli: the score is the log-likelihood of the
 *   soft bits σ(q) under concept k, so it does not favour columns that merely have a large sum.
 * - Top-down: the chosen concept writes its own column back, q ← α·q + φ·a_k.
 * - Perception decodes a scene into a subject / predicate / object triple, one concept window per role. The
 *   training-free context transport is a fixed random orthogonal map W_r per role: window r reads q̃ = W_r·h, and
 *   after the write-back the context evolves as h ← h − W_rᵀ(q − α·q̃), i.e. the decoded concept is explained
 *   away before the next role is read (so skipping the feedback costs accuracy on later roles).
 * - Episodic memory: each episode gets a time index whose embedding is imprinted one-shot from the decoded
 *   triple, a_t = Σ_r W_rᵀ a_{k_r}. Recall sets h = a_t and decodes; older columns are never touched.
 * - Semantic memory: the exact marginal over episodes, P(s) = (1/T) Σ_t P(s | a_t) (conditionals likewise).
 *
 * Every number is computed with @heed/tensor ops on the current backend (CPU or WebGPU); the only host work is
 * reading posteriors and drawing samples from a seeded PCG32, so both backends decode the same triples.
 */
import {
  ArgumentError,
  checkAllocation,
  knownOptions,
  ShapeError,
  ValueError,
  add,
  concat,
  dispose,
  div,
  gather,
  keep,
  matmul,
  mean,
  mul,
  neg,
  reshape,
  rng as makeRng,
  scope,
  sigmoid,
  slice,
  softmax,
  softplus,
  sqrt,
  sub,
  sum,
  tensor,
  type Rng,
  type Tensor,
} from '@heed/tensor'
import { kindOf, liveTensor, oneOf, optionKeys, options } from './internal.js'

export type TbGroup = 'entity' | 'predicate' | 'time'
export type TbRole = 'subject' | 'predicate' | 'object'
export const TB_ROLES: readonly TbRole[] = ['subject', 'predicate', 'object']

/** One value per role of a triple. */
export interface PerRole<T> {
  /** The subject entity's value. */
  readonly subject: T
  /** The predicate's value. */
  readonly predicate: T
  /** The object entity's value. */
  readonly object: T
}

/** A triple of global indices: subject and object are entities, predicate is a predicate. */
export interface Triple {
  readonly subject: number
  readonly predicate: number
  readonly object: number
}

export type MeasureMode = 'argmax' | 'sample' | 'teacher' | 'expect'

export interface TensorBrainConfig {
  /** The entity concepts: a count or their names. */
  readonly entities: number | readonly string[]
  /** The predicate concepts: a count or their names. */
  readonly predicates: number | readonly string[]
  /** Width n of the representation layer (default 128). */
  readonly dim?: number
  /** Standard deviation of the random embedding entries (default 0.5: larger saturates σ and blurs decoding). */
  readonly scale?: number
  /** Inverse temperature β of the bottom-up scores (default 1). */
  readonly beta?: number
  /** Retention α of q in the write-back q ← α·q + φ·a_k (default 1). */
  readonly alpha?: number
  /** Feedback strength φ of the write-back (default 1; 0 switches feedback off). */
  readonly feedback?: number
  /** Seed of the embeddings, role maps and sampling (PCG32 from @heed/tensor; default 0). */
  readonly seed?: number
  readonly dtype?: 'float32' | 'float64'
  /** Backend for the model's tensors (default: the current backend). */
  readonly backend?: string
}

/** @internal the keys of `TensorBrainConfig` (the stream factory checks them under its own name) */
export const TB_CONFIG = optionKeys<TensorBrainConfig>({ entities: true, predicates: true, dim: true, scale: true, beta: true, alpha: true, feedback: true, dtype: true, backend: true, seed: true })

export interface PerceiveOptions {
  /** How each window's concept is chosen (default 'argmax'). 'teacher' needs `teacher`. */
  readonly mode?: MeasureMode
  /** The target triples, one per window, for `mode: 'teacher'`. */
  readonly teacher?: readonly Triple[]
}

export interface Perception {
  /** The decoded triples (for 'expect', the most probable concept of each role). */
  readonly triples: Triple[]
  /** Per role, the posteriors row by row: `[B × N_group]`. */
  readonly posteriors: PerRole<Float64Array>
}

const OP = 'TensorBrain'

const roleGroup = (r: TbRole): 'entity' | 'predicate' => (r === 'predicate' ? 'predicate' : 'entity')

/** Gram–Schmidt on a Gaussian matrix: a uniformly random orthogonal n × n map, row-major. */
function randomOrthogonal(n: number, g: Rng): Float64Array {
  const m = new Float64Array(n * n)
  for (let i = 0; i < n * n; i++) m[i] = g.normal()
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      let d = 0
      for (let c = 0; c < n; c++) d += m[i * n + c]! * m[j * n + c]!
      for (let c = 0; c < n; c++) m[i * n + c]! -= d * m[j * n + c]!
    }
    let norm = 0
    for (let c = 0; c < n; c++) norm += m[i * n + c]! ** 2
    norm = Math.sqrt(norm)
    for (let c = 0; c < n; c++) m[i * n + c]! /= norm
  }
  return m
}

function sampleRow(p: Float64Array, off: number, N: number, g: Rng): number {
  let r = g.next()
  for (let k = 0; k < N; k++) {
    r -= p[off + k]!
    if (r < 0) return k
  }
  return N - 1
}

function argmaxRow(p: Float64Array, off: number, N: number): number {
  let best = 0
  for (let k = 1; k < N; k++) if (p[off + k]! > p[off + best]!) best = k
  return best
}

/** The op the constructor's config errors name: `TensorBrain`, or the factory building one (`tensorBrainMemory`). */
let constructing = OP

/** @internal `new TensorBrain(config)` with its config errors in the name of `op`. */
export function tensorBrainFor(config: TensorBrainConfig, op: string): TensorBrain {
  constructing = op
  try {
    return new TensorBrain(config)
  } finally {
    constructing = OP
  }
}

export class TensorBrain {
  readonly dim: number
  readonly entityNames: readonly string[]
  readonly predicateNames: readonly string[]
  readonly beta: number
  readonly alpha: number
  readonly feedback: number
  readonly dtype: 'float32' | 'float64'
  readonly backend: string | undefined
  /** Embedding rows (the index layer's columns a_k, stored one per row) and their offsets a0. */
  readonly #emb: { entity: Tensor; predicate: Tensor }
  readonly #a0: { entity: Tensor; predicate: Tensor }
  /** W_r per role, `[n, n]`. */
  readonly #roles: { readonly [R in TbRole]: Tensor }
  readonly #episodes: Tensor[] = []
  #timeCache: { emb: Tensor; a0: Tensor } | undefined
  readonly #rng: Rng
  #disposed = false

  constructor(config: TensorBrainConfig) {
    const OP = constructing
    if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new ArgumentError({ op: OP, arg: 'config', expected: '{ entities, predicates, … }', actual: kindOf(config) })
    knownOptions(OP, config, TB_CONFIG)
    // sizes come from the user: check what they would allocate before making names or embeddings (1e9 entities
    // used to exhaust the heap and abort the process)
    {
      const d = typeof config.dim === 'number' && Number.isInteger(config.dim) && config.dim >= 1 ? config.dim : 128
      checkAllocation(OP, 'dim', d * d, 'float64')
      for (const [arg, v] of [['entities', config.entities], ['predicates', config.predicates]] as const) {
        const c = typeof v === 'number' ? v : Array.isArray(v) ? v.length : 0
        if (Number.isInteger(c) && c >= 1) checkAllocation(OP, arg, c * d, 'float64')
      }
    }
    const names = (arg: string, v: number | readonly string[], prefix: string): string[] => {
      if (typeof v === 'number') {
        if (!Number.isInteger(v) || v < 1) throw new ValueError({ op: OP, arg, expected: 'a positive integer or an array of names', actual: v })
        return Array.from({ length: v }, (_, i) => `${prefix}${i}`)
      }
      if (!Array.isArray(v) || v.length === 0 || !v.every(s => typeof s === 'string'))
        throw new ArgumentError({ op: OP, arg, expected: 'a positive integer or a non-empty array of names', actual: String(v) })
      return [...v]
    }
    this.entityNames = names('entities', config.entities, 'e')
    this.predicateNames = names('predicates', config.predicates, 'p')
    const num = (arg: string, v: number | undefined, d: number, lo: number): number => {
      const x = v ?? d
      if (typeof x !== 'number' || !Number.isFinite(x) || x < lo) throw new ValueError({ op: OP, arg, expected: `a finite number ≥ ${lo}`, actual: x })
      return x
    }
    this.dim = num('dim', config.dim, 128, 1)
    if (!Number.isInteger(this.dim)) throw new ValueError({ op: OP, arg: 'dim', expected: 'an integer', actual: this.dim })
    const scale = num('scale', config.scale, 0.5, 0)
    this.beta = num('beta', config.beta, 1, 0)
    this.alpha = num('alpha', config.alpha, 1, 0)
    this.feedback = num('feedback', config.feedback, 1, 0)
    this.dtype = config.dtype ?? 'float32'
    if (this.dtype !== 'float32' && this.dtype !== 'float64') throw new ValueError({ op: OP, arg: 'dtype', expected: "'float32' or 'float64'", actual: this.dtype })
    this.backend = config.backend
    this.#rng = makeRng(config.seed ?? 0)
    const n = this.dim
    const gEmb = this.#rng.split()
    const make = (rows: number): Tensor => {
      const v = new Float64Array(rows * n)
      for (let i = 0; i < v.length; i++) v[i] = scale * gEmb.normal()
      return this.#tensor(v, [rows, n])
    }
    this.#emb = { entity: make(this.entityNames.length), predicate: make(this.predicateNames.length) }
    this.#a0 = { entity: this.#offsets(this.#emb.entity), predicate: this.#offsets(this.#emb.predicate) }
    const gRole = this.#rng.split()
    this.#roles = {
      subject: this.#tensor(randomOrthogonal(n, gRole), [n, n]),
      predicate: this.#tensor(randomOrthogonal(n, gRole), [n, n]),
      object: this.#tensor(randomOrthogonal(n, gRole), [n, n]),
    }
  }

  /** Number of stored episodes (time indices). */
  get episodes(): number {
    return this.#episodes.length
  }

  size(group: TbGroup): number {
    return group === 'entity' ? this.entityNames.length : group === 'predicate' ? this.predicateNames.length : this.#episodes.length
  }

  /** A copy of concept k's embedding a_k, `[n]`. */
  embedding(group: TbGroup, k: number): Tensor {
    this.#live('embedding')
    this.#checkIndex('embedding', 'k', group, k)
    if (group === 'time') return scope(() => mul(this.#episodes[k]!, 1))
    return scope(() => reshape(gather(this.#emb[group], this.#tensorI([k]), 0), [this.dim]))
  }

  /** β·(a0 + σ(q)·Aᵀ) for `q` `[n]` or `[B, n]`: `[N]` or `[B, N]` logits (caller owns). */
  scores(q: Tensor, group: TbGroup): Tensor {
    this.#live('scores')
    this.#checkQ('scores', q)
    const { emb, a0 } = this.#group(group)
    return scope(() => mul(add(matmul(sigmoid(q), emb, { transposeB: true }), a0), this.beta))
  }

  /** P(k | q) over a group: softmax of `scores`. */
  posterior(q: Tensor, group: TbGroup): Tensor {
    return scope(() => softmax(this.scores(q, group)))
  }

  /**
   * One concept window: decode `q` (`[n]`) bottom-up, choose a concept, write its embedding back top-down.
   * Returns the new q (caller owns), the chosen global index (for 'expect', the most probable one) and P(k | q).
   */
  async measure(q: Tensor, group: TbGroup, opts: { mode?: MeasureMode; index?: number; rng?: Rng } = {}): Promise<{ q: Tensor; k: number; p: Float64Array }> {
    this.#live('measure')
    options(`${OP}.measure`, opts, ['mode', 'index', 'rng'])
    liveTensor(`${OP}.measure`, 'q', q)
    if (q.rank !== 1) this.#checkQ('measure', q, true)
    const mode = oneOf(`${OP}.measure`, 'mode', opts.mode, ['argmax', 'sample', 'teacher', 'expect']) ?? 'argmax'
    if (mode === 'teacher') {
      if (opts.index === undefined) throw new ArgumentError({ op: `${OP}.measure`, arg: 'index', expected: "the teacher's index for mode 'teacher'", actual: 'undefined' })
      this.#checkIndex('measure', 'index', group, opts.index)
    }
    const pT = this.posterior(q, group)
    const p = Float64Array.from(await pT.data())
    const N = p.length
    let k: number
    if (mode === 'teacher') k = opts.index!
    else if (mode === 'sample') k = sampleRow(p, 0, N, opts.rng ?? this.#rng)
    else if (mode === 'argmax' || mode === 'expect') k = argmaxRow(p, 0, N)
    else {
      pT.dispose()
      throw new ValueError({ op: `${OP}.measure`, arg: 'mode', expected: "'argmax', 'sample', 'teacher' or 'expect'", actual: mode })
    }
    const { emb } = this.#group(group)
    const out = scope(() => {
      const fed = mode === 'expect' ? matmul(pT, emb) : reshape(gather(emb, this.#tensorI([k]), 0), [this.dim])
      return add(mul(q, this.alpha), mul(fed, this.feedback))
    })
    pT.dispose()
    return { q: out, k, p }
  }

  /** The role-bound representation of a triple, Σ_r W_rᵀ a_{k_r}, as `[B, n]` (or `[n]` for one triple). */
  compose(triples: Triple | readonly Triple[]): Tensor {
    this.#live('compose')
    const list = Array.isArray(triples) ? (triples as readonly Triple[]) : [triples as Triple]
    list.forEach((t, i) => this.#checkTriple('compose', `triples[${i}]`, t))
    const out = scope(() => {
      let acc: Tensor | undefined
      for (const r of TB_ROLES) {
        const rows = gather(this.#emb[roleGroup(r)], this.#tensorI(list.map(t => t[r])), 0)
        const bound = matmul(rows, this.#roles[r])
        acc = acc === undefined ? bound : add(acc, bound)
      }
      return acc!
    })
    if (Array.isArray(triples)) return out
    const one = reshape(out, [this.dim])
    out.dispose()
    return one
  }

  /**
   * A sensory scene for each triple: its composed representation plus Gaussian noise whose norm is
   * `noise` × the representation's norm (drawn from `rng`, default the model's generator).
   */
  scene(triples: readonly Triple[], opts: { noise?: number; rng?: Rng } = {}): Tensor {
    const noise = opts.noise ?? 0
    if (!(noise >= 0)) throw new ValueError({ op: `${OP}.scene`, arg: 'noise', expected: 'a number ≥ 0', actual: noise })
    const g = opts.rng ?? this.#rng
    const n = this.dim
    const clean = this.compose(triples)
    if (noise === 0) return clean
    return scope(() => {
      const eps = new Float64Array(triples.length * n)
      for (let i = 0; i < eps.length; i++) eps[i] = g.normal()
      const e = this.#tensor(eps, [triples.length, n])
      // Scale each noise row to noise·‖clean row‖.
      const ratio = mul(sqrt(div(sum(mul(clean, clean), { axis: -1, keepDims: true }), sum(mul(e, e), { axis: -1, keepDims: true }))), noise)
      const out = add(clean, mul(e, ratio))
      clean.dispose()
      return out
    })
  }

  /**
   * Perception: decode each scene row (`[B, n]` or `[n]`) into a triple, one window per role in the order
   * subject → predicate → object, with top-down write-back and context evolution between windows.
   */
  async perceive(scenes: Tensor, opts: PerceiveOptions = {}): Promise<Perception> {
    return this.#perceive('perceive', scenes, opts)
  }

  /** `perceive` in the name of the method the user called (`perceive`, `storeScenes`). */
  async #perceive(name: string, scenes: Tensor, opts: PerceiveOptions): Promise<Perception> {
    this.#live(name)
    options(`${OP}.${name}`, opts, ['mode', 'teacher'])
    this.#checkQ(name, scenes, false, 'scenes')
    const mode = opts.mode ?? 'argmax'
    if (!['argmax', 'sample', 'teacher', 'expect'].includes(mode))
      throw new ValueError({ op: `${OP}.${name}`, arg: 'mode', expected: "'argmax', 'sample', 'teacher' or 'expect'", actual: mode })
    const B = scenes.rank === 1 ? 1 : scenes.shape[0]!
    if (mode === 'teacher') {
      if (!Array.isArray(opts.teacher) || opts.teacher.length !== B)
        throw new ArgumentError({ op: `${OP}.${name}`, arg: 'teacher', expected: `${B} triples for mode 'teacher'`, actual: opts.teacher === undefined ? 'undefined' : `${opts.teacher.length} triples` })
      opts.teacher.forEach((t, i) => this.#checkTriple(name, `teacher[${i}]`, t))
    }
    let h: Tensor = scope(() => add(reshape(scenes, [B, this.dim]), 0))
    const picks: { [R in TbRole]: number[] } = { subject: [], predicate: [], object: [] }
    const posts = {} as { [R in TbRole]: Float64Array }
    try {
      for (const r of TB_ROLES) {
        const group = roleGroup(r)
        const W = this.#roles[r]
        const qTilde = scope(() => matmul(h, W, { transposeB: true }))
        const pT = this.posterior(qTilde, group)
        const p = Float64Array.from(await pT.data())
        const N = this.size(group)
        const ks = Array.from({ length: B }, (_, b) =>
          mode === 'teacher' ? opts.teacher![b]![r] : mode === 'sample' ? sampleRow(p, b * N, N, this.#rng) : argmaxRow(p, b * N, N),
        )
        posts[r] = p
        picks[r] = ks
        const next = scope(() => {
          const emb = this.#emb[group]
          const fed = mode === 'expect' ? matmul(pT, emb) : gather(emb, this.#tensorI(ks), 0)
          // q = α·q̃ + φ·fed; the context loses what the window explained: h − W_rᵀ(q − α·q̃) = h − φ·W_rᵀ fed.
          return sub(h, mul(matmul(fed, W), this.feedback))
        })
        dispose([qTilde, pT, h])
        h = next
      }
    } finally {
      h.dispose()
    }
    const triples = Array.from({ length: B }, (_, b) => ({ subject: picks.subject[b]!, predicate: picks.predicate[b]!, object: picks.object[b]! }))
    return { triples, posteriors: posts }
  }

  /** Imprint one episode per triple: a new time index with a_t = compose(triple). Returns the time indices. */
  storeEpisodes(triples: readonly Triple[]): number[] {
    this.#live('storeEpisodes')
    if (!Array.isArray(triples)) throw new ArgumentError({ op: `${OP}.storeEpisodes`, arg: 'triples', expected: 'an array of triples', actual: typeof triples })
    if (triples.length === 0) return []
    const rows = this.compose(triples)
    const ts: number[] = []
    const parts = scope(() => Array.from({ length: triples.length }, (_, i) => keep(reshape(slice(rows, [[i, i + 1]]), [this.dim]))))
    rows.dispose()
    for (const a of parts) {
      ts.push(this.#episodes.length)
      this.#episodes.push(a)
    }
    this.#invalidateTime()
    return ts
  }

  storeEpisode(triple: Triple): number {
    return this.storeEpisodes([triple])[0]!
  }

  /** Perceive scenes and imprint what was decoded as new episodes. */
  async storeScenes(scenes: Tensor, opts: PerceiveOptions = {}): Promise<{ times: number[]; triples: Triple[] }> {
    const { triples } = await this.#perceive('storeScenes', scenes, opts)
    return { times: this.storeEpisodes(triples), triples }
  }

  /** Mental time travel: decode the triple stored at each time index. */
  async recall(times: number | readonly number[], opts: Omit<PerceiveOptions, 'teacher'> = {}): Promise<Triple[]> {
    return (await this.recallWithPosteriors(times, opts)).triples
  }

  async recallWithPosteriors(times: number | readonly number[], opts: Omit<PerceiveOptions, 'teacher'> = {}): Promise<Perception> {
    this.#live('recall')
    options(`${OP}.recall`, opts, ['mode'])
    oneOf(`${OP}.recall`, 'mode', opts.mode, ['argmax', 'sample', 'expect'])
    if (typeof times !== 'number' && !Array.isArray(times)) throw new ArgumentError({ op: `${OP}.recall`, arg: 'times', expected: 'a time index or an array of them', actual: kindOf(times) })
    const list = typeof times === 'number' ? [times] : [...times]
    list.forEach((t, i) => this.#checkIndex('recall', `times[${i}]`, 'time', t))
    const { emb } = this.#group('time')
    const rows = scope(() => gather(emb, this.#tensorI(list), 0))
    try {
      return await this.perceive(rows, opts)
    } finally {
      rows.dispose()
    }
  }

  /** "When did I see this?": P(t | cue) for a partial triple, the cue's roles composed and scored over time indices. */
  async recallByCue(cue: Partial<Triple>): Promise<{ t: number; p: Float64Array }> {
    this.#live('recallByCue')
    if (this.#episodes.length === 0) throw new ValueError({ op: `${OP}.recallByCue`, arg: 'episodes', expected: 'at least one stored episode', actual: 0 })
    const given = TB_ROLES.filter(r => cue[r] !== undefined)
    if (given.length === 0) throw new ArgumentError({ op: `${OP}.recallByCue`, arg: 'cue', expected: 'at least one of subject, predicate, object', actual: '{}' })
    const q = scope(() => {
      let acc: Tensor | undefined
      for (const r of given) {
        this.#checkIndex('recallByCue', `cue.${r}`, roleGroup(r), cue[r]!)
        const bound = matmul(gather(this.#emb[roleGroup(r)], this.#tensorI([cue[r]!]), 0), this.#roles[r])
        acc = acc === undefined ? bound : add(acc, bound)
      }
      return acc!
    })
    const pT = this.posterior(q, 'time')
    const p = Float64Array.from(await pT.data())
    dispose([q, pT])
    return { t: argmaxRow(p, 0, p.length), p }
  }

  /**
   * Semantic memory as marginalisation over episodes: P(role = k | given) = Σ_t w_t P_t(role = k), with
   * w_t ∝ Π_{given roles} P_t(role = given value) (uniform without `given`). P_t comes from recalling episode t.
   */
  async semantic(given: Partial<Triple> = {}): Promise<PerRole<Float64Array>> {
    this.#live('semantic')
    const T = this.#episodes.length
    if (T === 0) throw new ValueError({ op: `${OP}.semantic`, arg: 'episodes', expected: 'at least one stored episode', actual: 0 })
    const { posteriors } = await this.recallWithPosteriors(Array.from({ length: T }, (_, t) => t))
    const w = new Float64Array(T).fill(1)
    for (const r of TB_ROLES) {
      const k = given[r]
      if (k === undefined) continue
      this.#checkIndex('semantic', `given.${r}`, roleGroup(r), k)
      const N = this.size(roleGroup(r))
      for (let t = 0; t < T; t++) w[t]! *= posteriors[r][t * N + k]!
    }
    const z = w.reduce((a, b) => a + b, 0)
    const out = {} as { [R in TbRole]: Float64Array }
    for (const r of TB_ROLES) {
      const N = this.size(roleGroup(r))
      const m = new Float64Array(N)
      if (z > 0) for (let t = 0; t < T; t++) for (let k = 0; k < N; k++) m[k]! += (w[t]! / z) * posteriors[r][t * N + k]!
      out[r] = m
    }
    return out
  }

  /** The cheap "pre-observation" prior: decode ā = mean_t a_t. Ranks concepts like `semantic` but is not calibrated. */
  async semanticPrior(): Promise<PerRole<Float64Array>> {
    this.#live('semanticPrior')
    if (this.#episodes.length === 0) throw new ValueError({ op: `${OP}.semanticPrior`, arg: 'episodes', expected: 'at least one stored episode', actual: 0 })
    const { emb } = this.#group('time')
    const aBar = scope(() => mean(emb, { axis: 0, keepDims: true }))
    try {
      return (await this.perceive(aBar, { mode: 'expect' })).posteriors
    } finally {
      aBar.dispose()
    }
  }

  /** Free every tensor the model holds. Idempotent. */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    this.#invalidateTime()
    dispose([this.#emb.entity, this.#emb.predicate, this.#a0.entity, this.#a0.predicate, this.#roles.subject, this.#roles.predicate, this.#roles.object])
    dispose(this.#episodes)
    this.#episodes.length = 0
  }

  get disposed(): boolean {
    return this.#disposed
  }

  #tensor(v: Float64Array, shape: readonly number[]): Tensor {
    return tensor(this.dtype === 'float32' ? Float32Array.from(v) : v, shape, this.dtype, this.backend !== undefined ? { backend: this.backend } : {})
  }
  #tensorI(v: readonly number[]): Tensor<'int32'> {
    return tensor(Int32Array.from(v), [v.length], 'int32', this.backend !== undefined ? { backend: this.backend } : {})
  }
  #offsets(emb: Tensor): Tensor {
    return scope(() => neg(sum(softplus(emb), { axis: -1 })))
  }
  #group(group: TbGroup): { emb: Tensor; a0: Tensor } {
    if (group === 'entity' || group === 'predicate') return { emb: this.#emb[group], a0: this.#a0[group] }
    if (group !== 'time') throw new ValueError({ op: OP, arg: 'group', expected: "'entity', 'predicate' or 'time'", actual: group })
    if (this.#episodes.length === 0) throw new ValueError({ op: OP, arg: 'group', expected: 'at least one stored episode for the time group', actual: 0 })
    // Rebuilt lazily after new episodes; stored columns themselves are never rewritten.
    this.#timeCache ??= scope(() => {
      const emb = concat(this.#episodes.map(a => reshape(a, [1, this.dim])), 0)
      return { emb: keep(emb), a0: keep(this.#offsets(emb)) }
    })
    return this.#timeCache
  }
  #invalidateTime(): void {
    if (this.#timeCache !== undefined) dispose([this.#timeCache.emb, this.#timeCache.a0])
    this.#timeCache = undefined
  }
  #live(op: string): void {
    if (this.#disposed) throw new ValueError({ op: `${OP}.${op}`, arg: 'this', expected: 'a live model', actual: 'disposed' })
  }
  #checkQ(op: string, q: Tensor, vectorOnly = false, arg = 'q'): void {
    liveTensor(`${OP}.${op}`, arg, q)
    const ok = (q.rank === 1 || (!vectorOnly && q.rank === 2)) && q.shape[q.rank - 1] === this.dim
    if (!ok) throw new ShapeError({ op: `${OP}.${op}`, arg, expected: vectorOnly ? `[${this.dim}]` : `[${this.dim}] or [B, ${this.dim}]`, actual: q.shape })
  }
  #checkIndex(op: string, arg: string, group: TbGroup, k: number): void {
    const N = this.size(group)
    if (!Number.isInteger(k) || k < 0 || k >= N) throw new ValueError({ op: `${OP}.${op}`, arg, expected: `an index of group '${group}' in [0, ${N})`, actual: k })
  }
  #checkTriple(op: string, arg: string, t: Triple): void {
    if (t === null || typeof t !== 'object') throw new ArgumentError({ op: `${OP}.${op}`, arg, expected: '{ subject, predicate, object }', actual: String(t) })
    for (const r of TB_ROLES) this.#checkIndex(op, `${arg}.${r}`, roleGroup(r), t[r])
  }
}
