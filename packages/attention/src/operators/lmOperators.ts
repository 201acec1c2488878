import { add, cumsum, div, exp, expandDims, isTensor, keep, matmul, max, maximum, mul, permute, random, reshape, ShapeError, slice, softmax, stopGradient, sub, sum, ValueError, type FloatDType, type Tensor, positiveInt } from '@heed/tensor'
import type { AttentionFn, AttentionFnOptions } from '../multiHeadAttention.js'
import { mask as masks } from '../mask.js'
import { scaledDotProductAttention } from '../sdpa.js'
import { namedOperator as named, noMask, sdpaOf } from './namedOperator.js'
import { combinerAttention, type CombinerOptions } from './combiner.js'
import { combinerStep, type CombinerState } from './combinerStep.js'
import { landmarkAttention } from './landmark.js'
import { repeatKvHeads } from './lightningAttention.js'
import { mohGates, type MohRouter } from './moh.js'
import { routingAttention, unitRows } from './routing.js'
import { s2Attention, type S2Options } from './s2.js'
import { operatorOptions } from './strict.js'

/**
 * The seed operators in the form a causal language model needs (issue 16): each an `AttentionFn` for
 * `multiHeadAttention({ attention })` / `transformerLM({ attention })`, causal, trainable (their parameters, where
 * they have some, come from `init` and train with the model) and with the incremental form that makes cached
 * decode equal to the full recomputation wherever the operator allows one.
 */

/** The last query must sit at the last key: what a prefix form (the cache's run from position 0) hands over. */
function bottomRight(op: string, q: Tensor, k: Tensor, o: AttentionFnOptions): number {
  const [Tq, Tk] = [q.shape[2]!, k.shape[2]!]
  const kOff = o.keyOffset ?? 0
  const qOff = o.queryOffset ?? kOff + Math.max(0, Tk - Tq)
  if (kOff !== 0) throw new ValueError({ op, arg: 'keyOffset', expected: '0 (every key from the first position: the operator reads the whole prefix)', actual: kOff })
  if (qOff + Tq !== kOff + Tk) throw new ValueError({ op, arg: 'queryOffset', expected: `the last query at the last key (position ${kOff + Tk - 1})`, actual: qOff + Tq - 1 })
  return qOff
}

const int = (op: string, arg: string, v: number | undefined, dflt: number): number => {
  const x = v ?? dflt
  positiveInt(op, arg, x)
  return x
}

export const lmOperators = {
  /**
   * Sliding-window softmax attention (Longformer/Mistral-style local attention; StreamingLLM's "window attention"
   * baseline when trained): each query sees its last `window` positions. A `merge` form, so a full cache decodes
   * it exactly and a `headPolicy.streaming(0, window)` cache holds only the window.
   */
  window: (window: number): AttentionFn => {
    // required: a window of 1 (each token alone) is no default to fall back on silently
    const w = positiveInt('operators.window', 'window', window)
    // positions are 32-bit in the kernels: a wider window would wrap (and be blamed on mask.window)
    if (w > 2 ** 31 - 1) throw new ValueError({ op: 'operators.window', arg: 'window', expected: `at most ${2 ** 31 - 1} (positions are 32-bit integers)`, actual: w })
    const m = masks.window(w)
    return named('window', (q, k, v, o) => scaledDotProductAttention(q, k, v, { ...sdpaOf(o), causal: true, mask: o.mask ? masks.and(m, o.mask) : m }), { incremental: 'merge' })
  },

  /**
   * S2-Attention (Lin et al. 2024): local blocks plus a per-head strided shard of distant blocks, sdpa under
   * `s2Mask`, so it merges like softmax (exact cached decode). The mask numbers heads within the layer: the run
   * must cover the layer's heads (`heads`, `kvHeads` of the layer).
   */
  s2: (opts: S2Options & { readonly heads: number; readonly kvHeads: number }): AttentionFn => {
    operatorOptions('operators.s2', opts, ['heads', 'kvHeads', 'blockSize', 'localBlocks', 'stride', 'offset', 'denseHeads', 'layout', 'homoHead', 'allowGaps'], '{ heads, kvHeads, … }')
    const { heads, kvHeads, ...s2 } = opts
    return named(
      's2',
      (q, k, v, o) => {
        if (q.shape[1] !== heads || (o.headOffset ?? 0) !== 0 || k.shape[1] !== kvHeads)
          throw new ValueError({ op: 'operators.s2', arg: 'attention', expected: `every head of the layer (${heads} query, ${kvHeads} kv heads) in one call`, actual: `${q.shape[1]} heads from ${o.headOffset ?? 0}` })
        return s2Attention(q, k, v, { ...sdpaOf(o), ...s2, causal: true })
      },
      { incremental: 'merge' },
    )
  },

  /**
   * Mixture-of-Head attention (Jin et al. 2024, "MoH: Multi-Head Attention as Mixture-of-Head Attention"): the first
   * `shared` heads always on, each token routes to `topK` of the other heads with the router on the layer's input
   * row (the paper's `x·Wr`, §3.2), each head's output scaled by its gate. Gates depend on the token only, so the
   * operator is `softmax · gate` row by row: its lse is the ungated one and cache passes merge exactly
   * (merge(g·o₁, g·o₂) = g·merge(o₁, o₂)). The router trains with the model; MoH's load-balancing loss is not added
   * (the LM trainer's loss is next-token cross-entropy only).
   */
  moh: (opts: { readonly shared: number; readonly topK: number }): AttentionFn => {
    operatorOptions('operators.moh', opts, ['shared', 'topK'], '{ shared, topK }')
    return named(
      'moh',
      (q, k, v, o) => {
        const op = 'operators.moh'
        const H = q.shape[1]!
        const router = o.params as MohRouter | undefined
        if (!router || !isTensor(router.Wr)) throw new ValueError({ op, arg: 'params', expected: 'the router from init ({ Wr })', actual: typeof o.params })
        if (!isTensor(o.input) || o.input.shape[1] !== q.shape[2]) throw new ShapeError({ op, arg: 'input', expected: `the layer's input rows [B, ${q.shape[2]}, dModel]`, actual: o.input?.shape })
        const routed = H - opts.shared
        if (routed !== router.Wr.shape[1]) throw new ValueError({ op, arg: 'attention', expected: `${opts.shared + router.Wr.shape[1]!} heads in one call (the router's)`, actual: H })
        const g = mohGates(o.input, router, { shared: opts.shared, routed, topK: opts.topK })
        const r = scaledDotProductAttention(q, k, v, sdpaOf(o))
        return { out: mul(r.out, expandDims(g.gates, -1)), lse: r.lse }
      },
      {
        incremental: 'merge',
        init: io => ({ Wr: random.normal([io.dModel, io.heads - opts.shared], { std: 0.02, seed: io.seed, dtype: io.dtype, ...(io.backend !== undefined ? { backend: io.backend } : {}) }) }),
      },
    )
  },

  /**
   * Agent Attention (Han et al. 2024, "Agent Attention: On the Integration of Softmax and Linear Attention") in a
   * causal form. The paper pools its n agents from all queries and lets each agent read every key, which looks at
   * the future; here the agents A are learned per head and each query reads the agents' causal summaries:
   * `V_A(a, i) = Σ_{j≤i} e^{s·a·k_j} v_j / Σ_{j≤i} e^{s·a·k_j}` (prefix sums), `out_i = softmax_a(s·q_i·a) V_A(·, i)`.
   * That is the paper's generalised linear attention (agent softmax twice) with O(n·Dv) state per head; the
   * agent bias and the DWC term are left out. A `prefix` form: decode recomputes the sums from the cached keys,
   * exactly.
   */
  agent: (opts: { readonly agents: number }): AttentionFn => {
    const op = 'operators.agent'
    operatorOptions(op, opts, ['agents'], '{ agents }')
    const n = int(op, 'agents', opts.agents, 8)
    const agentsOf = (q: Tensor, o: AttentionFnOptions): Tensor => {
      const A = o.params as { agents: Tensor } | undefined
      const [, H, , D] = q.shape as [number, number, number, number]
      if (!A || !isTensor(A.agents) || A.agents.shape[1] !== H) throw new ValueError({ op, arg: 'params', expected: `learned agents [1, ${H}, ${n}, ${D}] from init`, actual: isTensor(A?.agents) ? A.agents.shape : typeof o.params })
      return A.agents
    }
    return named(
      'agent',
      (q, k, v, o) => {
        noMask(op, o)
        bottomRight(op, q, k, o)
        return { out: agentCausal(q, k, v, agentsOf(q, o), o.scale).out }
      },
      {
        // The agents' running sums are the state: n·(Dv + 2) numbers per head, whatever the stream length.
        incremental: 'state',
        step: (q, k, v, state, o) => {
          noMask(op, o)
          return agentCausal(q, k, v, agentsOf(q, o), o.scale, state as AgentState | undefined)
        },
        init: io => ({ agents: random.normal([1, io.heads, n, io.headDim], { std: 1, seed: io.seed, dtype: io.dtype, ...(io.backend !== undefined ? { backend: io.backend } : {}) }) }),
      },
    )
  },

  /**
   * Combiner-Fixed (Ren et al. 2021), causal: its own segment causally plus one max-pooled summary of every earlier
   * segment. A summary's span value pools the queries of its segment, which a KV cache does not keep, so decode
   * carries its own state instead (`combinerStep`): the current segment's queries, keys and values, and the
   * summaries of the completed ones, made when each completes exactly as the full form makes them; decode then
   * equals the full recomputation. Needs a fixed `segmentLength` for that: the default ⌈√T⌉ moves the segment
   * boundaries as the stream grows.
   */
  combiner: (opts: Omit<CombinerOptions, 'causal' | 'scale'> = {}): AttentionFn => {
    // checked here, where the model is built: otherwise a misspelt key would surface at the first forward pass,
    // blamed on combinerAttention inside the model
    const op = 'operators.combiner'
    operatorOptions(op, opts, ['segmentLength', 'pool'], '{ segmentLength?, pool? }')
    if (opts.segmentLength !== undefined) positiveInt(op, 'segmentLength', opts.segmentLength)
    if (opts.pool !== undefined && opts.pool !== 'max' && opts.pool !== 'mean') throw new ValueError({ op, arg: 'pool', expected: "'max' or 'mean'", actual: String(opts.pool) })
    return named(
      'combiner',
      (q, k, v, o) => {
        noMask('operators.combiner', o)
        if (q.shape[2] !== k.shape[2]) throw new ValueError({ op: 'operators.combiner', arg: 'k', expected: `${q.shape[2]} keys (self-attention)`, actual: k.shape[2] })
        return combinerAttention(q, k, v, { ...opts, causal: true, ...(o.scale !== undefined ? { scale: o.scale } : {}) })
      },
      {
        // O(L) rows of the open segment plus 2 vectors per head per closed one: the cache keeps no keys for it.
        incremental: 'state',
        step: (q, k, v, state, o) => {
          const op = 'operators.combiner'
          noMask(op, o)
          if (opts.segmentLength === undefined)
            throw new ValueError({ op, arg: 'segmentLength', expected: 'a fixed segment length for cached decode (the default ⌈√T⌉ changes with the stream length)', actual: undefined })
          const r = combinerStep(q, k, v, state as CombinerState | undefined, {
            segmentLength: opts.segmentLength,
            ...(opts.pool !== undefined ? { pool: opts.pool } : {}),
            ...(o.scale !== undefined ? { scale: o.scale } : {}),
            ...(o.queryOffset !== undefined ? { queryOffset: o.queryOffset } : {}),
          })
          return { out: r.out, state: r.state }
        },
      },
    )
  },

  /**
   * Routing attention (Roy et al. 2021), causal, with nearest-centroid ('argmax') routing: query i attends to the
   * earlier keys of its cluster (a row with none outputs 0; the paper pairs routing heads with local heads, which
   * `transformerLM`'s per-head factory does). Centroids are fixed random unit vectors
   * per head (the paper's online k-means is left out: the LM trainer updates parameters by gradient only, and the
   * routing gets none). Routing depends only on q_i and each k_j, so the `prefix` form decodes exactly.
   */
  routing: (opts: { readonly clusters: number; readonly seed?: number }): AttentionFn => {
    operatorOptions('operators.routing', opts, ['clusters', 'seed'], '{ clusters, seed? }')
    const C = int('operators.routing', 'clusters', opts.clusters, 4)
    const cent = new Map<string, Tensor>()
    return named(
      'routing',
      (q, k, v, o) => {
        const op = 'operators.routing'
        noMask(op, o)
        bottomRight(op, q, k, o)
        const [, H, , D] = q.shape as [number, number, number, number]
        const key = `${H}:${D}:${q.dtype}:${q.backend}`
        let mu = cent.get(key)
        if (mu === undefined) {
          // Kept for the operator's lifetime (outside any scope): the same centroids in training and decode.
          mu = keep(unitRows(random.normal([H, C, D], { seed: opts.seed ?? 0, dtype: q.dtype as FloatDType, backend: q.backend })))
          cent.set(key, mu)
        }
        return { out: routingAttention(q, repeatKvHeads(k, H), repeatKvHeads(v, H), { centroids: mu, assignment: 'argmax', causal: true, ...(o.scale !== undefined ? { scale: o.scale } : {}) }).out }
      },
      { incremental: 'prefix' },
    )
  },

  /**
   * Landmark Attention (Mohtashami & Jaggi 2023) on an LM whose stream carries no landmark tokens: every
   * (blockSize + 1)-th position plays the landmark (an ordinary character there, not a dedicated token — the paper
   * inserts one). Its grouped softmax reads the prefix at absolute positions, so the `prefix` form decodes exactly.
   */
  landmark: (opts: { readonly blockSize: number; readonly topK?: number }): AttentionFn => {
    operatorOptions('operators.landmark', opts, ['blockSize', 'topK'], '{ blockSize, topK? }')
    return named(
      'landmark',
      (q, k, v, o) => {
        noMask('operators.landmark', o)
        const qOff = bottomRight('operators.landmark', q, k, o)
        return { out: landmarkAttention(q, k, v, { blockSize: opts.blockSize, ...(opts.topK !== undefined ? { topK: opts.topK } : {}), queryOffset: qOff, keyOffset: 0, ...(o.scale !== undefined ? { scale: o.scale } : {}) }).out }
      },
      { incremental: 'prefix' },
    )
  },
}

/** Causal agent attention's running sums after a prefix: per agent Σ e^{s·a·k_j − m} v_j, Σ e^{s·a·k_j − m}, and m. */
interface AgentState {
  /** [B, H, n, Dv] */
  readonly num: Tensor
  /** [B, H, n, 1] */
  readonly den: Tensor
  /** [B, H, n, 1] the running max of the agent scores (a shift that cancels in num / den) */
  readonly m: Tensor
}

/**
 * Causal agent attention over one chunk (queries bottom-right aligned with its keys), continuing from `state`:
 * `V_A(a, i) = Σ_{j≤i} e^{s·a·k_j} v_j / Σ_{j≤i} e^{s·a·k_j}`, `out_i = softmax_a(s·q_i·a) V_A(·, i)`. The
 * exponentials are shifted by the running per-agent max (the old sums rescaled by e^{m − m'} when it grows, as in
 * FlashAttention's online softmax), so the chunked stream equals the one-shot pass to rounding; stopGradient keeps
 * the shift off the tape (it cancels in the ratio).
 */
function agentCausal(q: Tensor, k: Tensor, v: Tensor, A: Tensor, scale: number | undefined, state?: AgentState): { out: Tensor; state: AgentState } {
  const [B, H, Tq, D] = q.shape as [number, number, number, number]
  const Tk = k.shape[2]!
  const s = scale ?? 1 / Math.sqrt(D)
  const kk = repeatKvHeads(k, H)
  const vv = repeatKvHeads(v, H)
  const Dv = vv.shape[3]!
  const S = mul(matmul(A, kk, { transposeB: true }), s) // [B, H, n, Tk]
  const mc = stopGradient(max(S, { axis: -1, keepDims: true }))
  const m = state ? maximum(state.m, mc) : mc
  const E = exp(sub(S, m))
  let num = cumsum(mul(expandDims(E, -1), expandDims(vv, 2)), { axis: 3 }) // [B, H, n, Tk, Dv]
  let den = cumsum(E, { axis: 3 }) // [B, H, n, Tk]
  if (state) {
    const r = exp(sub(state.m, m)) // [B, H, n, 1]
    num = add(num, expandDims(mul(state.num, r), 3))
    den = add(den, mul(state.den, r))
  }
  const VA = div(num, expandDims(den, -1))
  const VAq = Tq === Tk ? VA : slice(VA, [null, null, null, [Tk - Tq, Tk]])
  const W = softmax(mul(matmul(q, A, { transposeB: true }), s)) // [B, H, Tq, n]
  const out = reshape(sum(mul(expandDims(permute(W, [0, 1, 3, 2]), -1), VAq), { axis: 2 }), [B, H, Tq, Dv])
  const n = A.shape[2]!
  const last = (x: Tensor, shape: readonly number[]): Tensor => reshape(slice(x, [null, null, null, [Tk - 1, Tk]]), shape)
  return { out, state: { num: last(num, [B, H, n, Dv]), den: last(den, [B, H, n, 1]), m } }
}
