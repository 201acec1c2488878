import { ValueError, type Tensor } from '@heed/tensor'
import type { AttentionFn, AttentionFnOptions } from '../multiHeadAttention.js'
import { scaledDotProductAttention } from '../sdpa.js'
import { namedOperator as named, noMask, sdpaOf } from './namedOperator.js'
import { actAttention, type ActOptions } from './act.js'
import { flowAttention, type FlowAttentionOptions, type FlowState } from './flowAttention.js'
import { lightningAttention, type LightningOptions, type LinearState } from './lightningAttention.js'
import { lmOperators } from './lmOperators.js'
import { scaleHeadsAs } from './observers.js'
import { operatorOptions, SDPA_OPTIONS } from './strict.js'
import { pineAttention, type PineOptions } from './pine.js'
import { positional, type PositionalMaps } from './positional.js'
import { recycledAttention, type RecycledOptions } from './recycled.js'
import { taskKvAttention, type TaskKvOptions } from './taskKv.js'
import { varAttention, type VarOptions } from './var.js'

/**
 * A factory's own options, checked when the layer is built rather than at its first forward. Causal, the offsets,
 * the mask and the scale come from the layer's call, so a factory takes only what its operator adds to them.
 */
const bound = <T>(op: string, opts: T, allowed: readonly string[], expected?: string): T => operatorOptions(`operators.${op}`, opts, allowed, expected)

/** An operator that is causal by construction refuses a non-causal call rather than computing causally anyway. */
function causalOnly(op: string, o: AttentionFnOptions, why: string): void {
  if (o.causal === false) throw new ValueError({ op, arg: 'causal', expected: `true or absent (${why})`, actual: false })
}

/**
 * The library's operators as `AttentionFn`s for `multiHeadAttention({ attention })`, one factory per operator with
 * its own options bound. Each says whether (and how) it runs against a KV cache.
 */
export const operators = {
  /** Softmax attention (the default); runs against any cache. */
  sdpa: (opts: { readonly blockSize?: number } = {}): AttentionFn => {
    bound('sdpa', opts, ['blockSize'])
    return named('sdpa', (q, k, v, o) => scaledDotProductAttention(q, k, v, { ...sdpaOf(o), ...opts }), { incremental: 'merge' })
  },
  /**
   * Lightning attention (causal, decayed linear). Against a cache it streams with its constant-size state
   * (`[B, H, D, Dv]` per run of heads, `incremental: 'state'`): its kv heads keep no keys.
   */
  lightning: (opts: LightningOptions): AttentionFn => {
    bound('lightning', opts, ['decay', 'scale', 'blockSize'], '{ decay, … } (decay is required)')
    return named(
      'lightning',
      (q, k, v, o) => {
        noMask('operators.lightning', o)
        const causal = o.causal ?? true
        if (causal) {
          const [Tq, Tk] = [q.shape[2]!, k.shape[2]!]
          const qOff = o.queryOffset ?? Math.max(0, Tk - Tq)
          if (qOff + Tq !== (o.keyOffset ?? 0) + Tk)
            throw new ValueError({ op: 'operators.lightning', arg: 'queryOffset', expected: `the last query at the last key (position ${(o.keyOffset ?? 0) + Tk - 1})`, actual: qOff + Tq - 1 })
        }
        return { out: lightningAttention(q, k, v, { ...opts, causal }).out }
      },
      {
        incremental: 'state',
        step: (q, k, v, state, o) => {
          noMask('operators.lightning', o)
          const r = lightningAttention(q, k, v, { ...opts, causal: true, state: state as LinearState | undefined })
          return { out: r.out, state: r.state }
        },
      },
    )
  },
  /**
   * Flow-Attention. Causal against a cache, it streams with its running sums (`incremental: 'state'`: constant
   * size, its kv heads keep no keys).
   */
  flow: (opts: Omit<FlowAttentionOptions, 'causal' | 'state'> = {}): AttentionFn => {
    bound('flow', opts, ['eps', 'clamp', 'blockSize'])
    return named(
      'flow',
      (q, k, v, o) => {
        noMask('operators.flow', o)
        return { out: flowAttention(q, k, v, { ...opts, causal: o.causal ?? true }).out }
      },
      {
        incremental: 'state',
        step: (q, k, v, state, o) => {
          noMask('operators.flow', o)
          const r = flowAttention(q, k, v, { ...opts, causal: true, ...(state !== undefined ? { state: state as FlowState } : {}) })
          return { out: r.out, state: r.state }
        },
      },
    )
  },
  /** ACT calibration with a given sink set (an output mix, not a softmax state: no incremental form). */
  act: (opts: Omit<ActOptions, 'heads'> & { readonly sinks: readonly number[] }): AttentionFn => {
    bound('act', opts, [...SDPA_OPTIONS, 'beta', 'tau', 'sinks', 'exclude', 'epsilon'], '{ sinks, … }')
    return named('act', (q, k, v, o) => {
      const r = actAttention(q, k, v, { ...sdpaOf(o), ...opts })
      r.sinkMass.dispose()
      return { out: r.out }
    })
  },
  /** Recycled Attention over the call's rows (causal: a decode schedule). */
  recycled: (opts: Omit<RecycledOptions, 'plan' | 'causal'>): AttentionFn => {
    bound('recycled', opts, [...SDPA_OPTIONS.filter(k => k !== 'causal'), 'stride', 'keep', 'threshold', 'aggregate'], '{ stride, keep, … }')
    return named('recycled', (q, k, v, o) => {
      causalOnly('operators.recycled', o, 'a decode schedule is causal')
      const { causal: _c, ...rest } = sdpaOf(o)
      const r = recycledAttention(q, k, v, { ...rest, ...opts })
      return { out: r.out, lse: r.lse }
    })
  },
  /** PINE (the layer must not apply its own RoPE: PINE rotates the raw q and k). */
  pine: (opts: Omit<PineOptions, 'plan' | 'mask'>): AttentionFn => {
    bound('pine', opts, ['documents', 'rope', 'scale'], '{ documents, … }')
    return named('pine', (q, k, v, o) => {
      const op = 'operators.pine'
      causalOnly(op, o, "PINE's mask is causal")
      // PINE's rows are positions 0…T−1 of one sequence: a call at other positions would be read as if from 0
      if ((o.queryOffset ?? 0) !== 0 || (o.keyOffset ?? 0) !== 0) throw new ValueError({ op, arg: 'queryOffset', expected: '0 (PINE attends over one whole sequence from position 0)', actual: o.queryOffset ?? o.keyOffset })
      if (o.scoreMod !== undefined) throw new ValueError({ op, arg: 'scoreMod', expected: 'no score mod (PINE resolves positions itself)', actual: 'a score mod' })
      const r = pineAttention(q, k, v, { ...opts, ...(o.mask ? { mask: o.mask } : {}), ...(o.scale !== undefined && opts.scale === undefined ? { scale: o.scale } : {}) })
      return { out: r.out, lse: r.lse }
    })
  },
  /** VAR with explicit heads numbered in the layer (shifted by the call's head offset). */
  var: (opts: Omit<VarOptions, keyof import('../sdpa.js').SdpaOptions | 'heads'> & { readonly heads?: readonly number[] }): AttentionFn => {
    bound('var', opts, ['visual', 'sinks', 'p', 'heads', 'rho', 'imageFloor', 'rows'], '{ visual, sinks, … }')
    return named('var', (q, k, v, o) => {
      const h0 = o.headOffset ?? 0
      const heads = opts.heads?.map(h => h - h0).filter(h => h >= 0 && h < q.shape[1]!)
      const r = varAttention(q, k, v, { ...sdpaOf(o), ...opts, ...(heads ? { heads } : {}) })
      r.masses.dispose()
      return { out: r.out }
    })
  },
  /** Task-KV with one flag per kv head of the layer (shifted by the call's head offset). */
  taskKv: (opts: Omit<TaskKvOptions, keyof import('../sdpa.js').SdpaOptions | 'plan'>): AttentionFn => {
    bound('taskKv', opts, ['heterogeneous', 'sink', 'recent', 'middle', 'window'], '{ heterogeneous, … }')
    return named('taskKv', (q, k, v, o) => {
      const g = Math.max(1, q.shape[1]! / k.shape[1]!)
      const kh0 = Math.floor((o.headOffset ?? 0) / g)
      const r = taskKvAttention(q, k, v, { ...sdpaOf(o), ...opts, heterogeneous: opts.heterogeneous.slice(kh0, kh0 + k.shape[1]!) })
      return { out: r.out, lse: r.lse }
    })
  },
  /** Positional attention from precomputed maps (see `positional`). */
  positional: (maps: PositionalMaps): AttentionFn => positional(maps),
  /** Scale each head's output (VHR, ablation); keeps the wrapped operator's incremental form. */
  scaled: (fn: AttentionFn, scales: readonly number[]): AttentionFn => scaleHeadsAs('operators.scaled', fn, scales),
  /** The causal LM forms of window, S2, MoH, Agent, Combiner, Routing and Landmark (`lmOperators.ts`). */
  ...lmOperators,
}
