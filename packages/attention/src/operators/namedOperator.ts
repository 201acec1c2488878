import { ArgumentError, ValueError, type Tensor } from '@heed/tensor'
import { tensorArg } from './strict.js'
import type { AttentionFn, AttentionFnOptions, OperatorInitOptions, OperatorParams } from '../multiHeadAttention.js'

/** What a layer calls: q, k, v and the call's options to `{ out, lse? }`. */
export type OperatorCall = (q: Tensor, k: Tensor, v: Tensor, o: AttentionFnOptions) => { out: Tensor; lse?: Tensor }

/** What a layer reads from an operator besides the call: its incremental form, its streaming step, its parameters. */
export interface OperatorParts {
  readonly incremental?: 'merge' | 'prefix' | 'state'
  readonly step?: NonNullable<AttentionFn['step']>
  readonly init?: (o: OperatorInitOptions) => OperatorParams
}

/** Name a closure (the layer's error messages say which operator failed) and attach its parts. */
export function namedOperator(name: string, fn: OperatorCall, parts: OperatorParts = {}): AttentionFn {
  const op = `operators.${name}`
  // the layer always calls with live tensors and an options object; a direct call with anything else is named here
  const call: OperatorCall = (q, k, v, o) => {
    for (const [arg, t] of [['q', q], ['k', k], ['v', v]] as const) tensorArg(op, arg, t, 'a Tensor [B, H, T, D]')
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new ArgumentError({ op, arg: 'opts', expected: 'the call options of the layer ({ causal, headOffset, … })', actual: o === null ? 'null' : Array.isArray(o) ? 'an array' : typeof o })
    return fn(q, k, v, o)
  }
  Object.defineProperty(call, 'name', { value: name })
  return Object.assign(call, parts)
}

/** The call's options without the layer-only keys (`headOffset`, `input`, `params`): what sdpa and the operators take. */
export const sdpaOf = ({ headOffset: _h, input: _i, params: _p, ...o }: AttentionFnOptions) => o

/** An operator without softmax scores over the prefix cannot take a mask or a score mod. */
export function noMask(op: string, o: AttentionFnOptions): void {
  if (o.mask !== undefined || o.scoreMod !== undefined) throw new ValueError({ op, arg: 'mask', expected: 'no mask or score mod (the operator has no softmax scores to mask)', actual: o.mask ? 'a mask' : 'a score mod' })
}
