/**
 * Titans and HCAM as attention operators of a language model (issue 16): `AttentionFn`s for
 * `transformerLM({ attention })`, their parameters made by `init` and trained with the model.
 */
import { mask as masks, scaledDotProductAttention, type AttentionFn, type AttentionFnOptions, type OperatorInitOptions, type OperatorParams } from '@heed/attention'
import { add, ArgumentError, concat, isTensor, mean, nonNegativeInt, permute, random, reshape, ShapeError, slice, stack, ValueError, type Tensor, positiveInt } from '@heed/tensor'
import { liveTensor, oneOf, optionKeys, options } from './internal.js'
import { checkNeuralMemoryOptions } from './titansOptions.js'
import { hcamAttention, type HcamParams } from './hcam.js'
import { disposeTitansState } from './titans.js'
import { initTitansLayer, titansLayer, type TitansLayerParams, type TitansVariant } from './titansLayer.js'
import { titansLayerStep, type TitansLayerStreamState } from './titansLayerStep.js'

type Fn = (q: Tensor, k: Tensor, v: Tensor, o: AttentionFnOptions) => { out: Tensor; lse?: Tensor }

function named(name: string, fn: Fn, extra: { incremental?: 'prefix' | 'state'; step?: NonNullable<AttentionFn['step']>; init?: (o: OperatorInitOptions) => OperatorParams }): AttentionFn {
  Object.defineProperty(fn, 'name', { value: name })
  return Object.assign(fn, extra)
}

/**
 * The arguments an AttentionFn is called with: q/k/v live `[B, H, T, D]` tensors and an options object (a model
 * passes them; a hand call with anything else is named here, not inside the layer).
 */
const attentionArgs = (op: string, q: Tensor, k: Tensor, v: Tensor, o: AttentionFnOptions): void => {
  for (const [arg, x] of [['q', q], ['k', k], ['v', v]] as const) {
    liveTensor(op, arg, x)
    if (x.rank !== 4) throw new ShapeError({ op, arg, expected: '[B, H, T, D]', actual: x.shape })
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new ArgumentError({ op, arg: 'opts', expected: 'the attention options object', actual: o === null ? 'null' : typeof o })
}

const noMask = (op: string, o: AttentionFnOptions): void => {
  if (o.mask !== undefined || o.scoreMod !== undefined) throw new ValueError({ op, arg: 'mask', expected: 'no mask or score mod', actual: o.mask ? 'a mask' : 'a score mod' })
}

export interface TitansOperatorOptions {
  /** MAC segment length (default 32). */
  readonly segment?: number
  /** MAG/MAL attention window (default 32). */
  readonly window?: number
  /** Persistent memory tokens (default 4). */
  readonly persistentTokens?: number
  /** The memory MLP's depth (default 2, the paper's smallest deep memory). */
  readonly depth?: number
  /**
   * The memory's largest inner learning rate θ (default 0.1). At titansLayer's default 1 the memory of an untrained
   * layer diverges within ~100 tokens of a character stream (non-finite rows past ~8 chunks of 16), which a
   * language model's long-context evaluation reaches at once.
   */
  readonly maxLr?: number
  /** Tokens per memory update, the paper's chunk b (default 16). */
  readonly chunkSize?: number
}

export interface HcamOperatorOptions {
  /** Tokens per memory chunk (default 16). */
  readonly chunk?: number
  /** Chunks each query reads (default 2). */
  readonly topK?: number
}

const TITANS_OPTIONS = optionKeys<TitansOperatorOptions>({ segment: true, window: true, persistentTokens: true, depth: true, maxLr: true, chunkSize: true })
const HCAM_OPTIONS = optionKeys<HcamOperatorOptions>({ chunk: true, topK: true })

export const memoryOperators = {
  /**
   * A Titans layer (Behrouz et al. 2024, "Titans: Learning to Memorize at Test Time") in place of the layer's
   * attention: `titansLayer` (its own q/k/v/o maps, neural memory and persistent tokens, `init`) runs on the
   * layer's input rows and its output, split into the layer's heads, goes through the layer's output map. The
   * layer's own Wq/Wk/Wv are unused (their gradient is 0). The full form builds the memory from the first position;
   * against a cache the layer streams instead (`incremental: 'state'`, `titansLayerStep`): the memory's weights,
   * momentum and pending chunk plus the window's (MAG, MAL) or the segment's (MAC) keys, the same rows as the full
   * form to rounding, at a cost per token that does not grow with the stream.
   */
  titans: (variant: TitansVariant, opts: TitansOperatorOptions = {}): AttentionFn => {
    const op = `memoryOperators.titans(${variant})`
    // checked here, where the model is built: the layer would otherwise see a typo only at the first forward pass
    // required: without it the layer would only fail at the first forward pass
    if (variant === undefined) throw new ArgumentError({ op: 'memoryOperators.titans', arg: 'variant', expected: "'MAC', 'MAG' or 'MAL'", actual: 'undefined' })
    oneOf('memoryOperators.titans', 'variant', variant, ['MAC', 'MAG', 'MAL'])
    opts = options(op, opts, TITANS_OPTIONS)
    for (const k of ['segment', 'window', 'depth'] as const) if (opts[k] !== undefined) positiveInt(op, k, opts[k])
    if (opts.persistentTokens !== undefined) nonNegativeInt(op, 'persistentTokens', opts.persistentTokens)
    checkNeuralMemoryOptions(op, { ...(opts.maxLr !== undefined ? { maxLr: opts.maxLr } : {}), ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}) })
    const layerOpts = (heads: number) => ({ heads, segment: opts.segment ?? 32, window: opts.window ?? 32, maxLr: opts.maxLr ?? 0.1, ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}) })
    const checked = (q: Tensor, k: Tensor, v: Tensor, o: AttentionFnOptions): { p: TitansLayerParams; input: Tensor } => {
      attentionArgs(op, q, k, v, o)
      noMask(op, o)
      const [B, H, T, D] = q.shape as [number, number, number, number]
      const p = o.params as TitansLayerParams | undefined
      if (!p || !isTensor(p.wq)) throw new ValueError({ op, arg: 'params', expected: 'the Titans layer parameters from init', actual: typeof o.params })
      if (!isTensor(o.input) || o.input.shape[1] !== T || o.input.shape[2] !== H * D || (o.headOffset ?? 0) !== 0)
        throw new ShapeError({ op, arg: 'input', expected: `every head of the layer in one call, input rows [${B}, ${T}, ${H * D}]`, actual: o.input?.shape })
      return { p, input: o.input }
    }
    /** Per batch row b, `[T, d]` rows → the layer's `[B, H, T, D]` out. */
    const perRow = (q: Tensor, row: (x: Tensor, b: number) => Tensor, input: Tensor): Tensor => {
      const [B, H, T, D] = q.shape as [number, number, number, number]
      const outs = Array.from({ length: B }, (_, b) => row(reshape(slice(input, [[b, b + 1]]), [T, H * D]), b))
      const y = B === 1 ? reshape(outs[0]!, [1, T, H * D]) : stack(outs, 0)
      return permute(reshape(y, [B, T, H, D]), [0, 2, 1, 3])
    }
    return named(
      `titans-${variant}`,
      (q, k, v, o) => {
        const { p, input } = checked(q, k, v, o)
        if ((o.queryOffset ?? 0) !== 0 || (o.keyOffset ?? 0) !== 0) throw new ValueError({ op, arg: 'queryOffset', expected: '0 (the memory starts at the first position)', actual: o.queryOffset })
        const out = perRow(q, x => {
          const r = titansLayer(p, x, variant, undefined, layerOpts(q.shape[1]!))
          disposeTitansState(r.state)
          return r.out
        }, input)
        return { out }
      },
      {
        // One stream state per batch row: each row's memory learns from its own tokens.
        incremental: 'state',
        step: (q, k, v, state, o) => {
          const { p, input } = checked(q, k, v, o)
          const prev = state as readonly TitansLayerStreamState[] | undefined
          const at = prev?.[0]?.position ?? 0
          if ((o.queryOffset ?? at) !== at) throw new ValueError({ op, arg: 'queryOffset', expected: `the stream's next position (${at})`, actual: o.queryOffset })
          const next: TitansLayerStreamState[] = []
          const out = perRow(q, (x, b) => {
            const r = titansLayerStep(p, x, variant, prev?.[b], layerOpts(q.shape[1]!))
            next.push(r.state)
            return r.out
          }, input)
          return { out, state: next }
        },
        init: io =>
          initTitansLayer({ dim: io.dModel, depth: opts.depth ?? 2, persistentTokens: opts.persistentTokens ?? 4, seed: io.seed, dtype: io.dtype === 'float64' ? 'float64' : 'float32' }),
      },
    )
  },

  /**
   * HCAM (Lampinen et al. 2021, "Towards mental time travel: a hierarchical memory for reinforcement learning
   * agents") as LM attention: causal softmax within the query's own chunk of `chunk` positions, plus HCAM's
   * two-level read of the completed earlier chunks (chunk summaries = the mean key; the top-k chunks by relevance
   * are attended inside and mixed by their relevance weights), the two outputs summed. The memory holds the
   * layer's (RoPE'd) keys as its rows, with HCAM's learned maps (`init`, one set per layer shared by the heads);
   * HCAM stops the gradient into the stored rows, as in the paper. Reads depend on q_i and the keys up to i only,
   * so the `prefix` form decodes exactly from the KV cache.
   */
  hcam: (opts: HcamOperatorOptions = {}): AttentionFn => {
    opts = options('memoryOperators.hcam', opts, HCAM_OPTIONS)
    const C = opts.chunk ?? 16
    const topK = opts.topK ?? 2
    positiveInt('memoryOperators.hcam', 'chunk', C)
    positiveInt('memoryOperators.hcam', 'topK', topK)
    return named(
      'hcam',
      (q, k, v, o) => {
        const op = 'memoryOperators.hcam'
        attentionArgs(op, q, k, v, o)
        noMask(op, o)
        const p = o.params as HcamParams | undefined
        if (!p || !isTensor(p.wq)) throw new ValueError({ op, arg: 'params', expected: 'the HCAM maps from init', actual: typeof o.params })
        const [B, H, Tq, D] = q.shape as [number, number, number, number]
        const [, Hkv, Tk] = k.shape as [number, number, number, number]
        const kOff = o.keyOffset ?? 0
        const qOff = o.queryOffset ?? kOff + Tk - Tq
        if (kOff !== 0 || qOff + Tq !== Tk) throw new ValueError({ op, arg: 'queryOffset', expected: `keys from position 0 and the last query at the last key (${Tk - 1})`, actual: `keys from ${kOff}, queries from ${qOff}` })
        // Own chunk: causal softmax inside it.
        const local = scaledDotProductAttention(q, k, v, { causal: true, queryOffset: qOff, keyOffset: 0, mask: masks.chunk(C), ...(o.scale !== undefined ? { scale: o.scale } : {}) }).out
        const M = Math.floor(Tk / C)
        // No completed chunk before any query: the memory has nothing to say.
        if (M === 0 || qOff + Tq <= C) return { out: local }
        const g = H / Hkv
        const ends = Array.from({ length: M }, (_, m) => (m + 1) * C)
        const rows: Tensor[] = []
        for (let b = 0; b < B; b++)
          for (let h = 0; h < H; h++) {
            const kh = reshape(slice(k, [[b, b + 1], [Math.floor(h / g), Math.floor(h / g) + 1], [0, M * C]]), [M, C, D])
            const qh = reshape(slice(q, [[b, b + 1], [h, h + 1]]), [Tq, D])
            rows.push(hcamAttention(qh, mean(kh, { axis: 1 }), kh, { topK, queryPositions: qOff, params: p }, ends).out)
          }
        const read = reshape(concat(rows, 0), [B, H, Tq, D])
        return { out: add(local, read) }
      },
      {
        incremental: 'prefix',
        init: io => {
          const w = (s: number) => random.normal([io.headDim, io.headDim], { std: 1 / Math.sqrt(io.headDim), seed: io.seed * 4 + s, dtype: io.dtype, ...(io.backend !== undefined ? { backend: io.backend } : {}) })
          return { wq: w(0), wk: w(1), wv: w(2), wo: w(3) } satisfies HcamParams
        },
      },
    )
  },
}
