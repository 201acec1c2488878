/** The types of the conformance harness: what an operator declares, what the harness reports. */
import type { Tensor } from '@heed/tensor'
import type { Mask } from '../../mask.js'
import type { ReferenceOptions } from '../reference.js'

/** CAB attention patterns: (non-)causal × self/cross. */
export type Pattern = 'NS' | 'CS' | 'NC' | 'CC'
export type Contract = 'C1' | 'C2' | 'C3' | 'C4' | 'C5' | 'C6' | 'C7' | 'C8'
export const CONTRACTS: readonly Contract[] = ['C1', 'C2', 'C3', 'C4', 'C5', 'C6', 'C7', 'C8']

/** What the harness passes to an operator: a subset of `SdpaOptions`, over absolute positions. */
export interface ConformanceRunOptions {
  /** Causal over absolute positions. */
  readonly causal?: boolean
  /** Mask over absolute positions. */
  readonly mask?: Mask
  /** Absolute position of query row 0. */
  readonly queryOffset?: number
  /** Absolute position of key row 0. */
  readonly keyOffset?: number
  /** Score scale (default 1/√D). */
  readonly scale?: number
}

export type ConformanceRun = (q: Tensor, k: Tensor, v: Tensor, opts: ConformanceRunOptions) => { readonly out: Tensor; readonly lse?: Tensor }

export interface Tolerance {
  readonly atol: number
  readonly rtol: number
}

export interface ConformanceOperator {
  readonly name: string
  /** q [B,H,Tq,D], k [B,Hkv,Tk,D], v [B,Hkv,Tk,Dv]. Returning `lse` (softmax operators) enables C3's merge, C5, C6. */
  readonly run: ConformanceRun
  readonly patterns: readonly Pattern[]
  /** Has a decode form: one query row at a time against the growing key prefix (C2 incremental). */
  readonly incremental: boolean
  /** What `run` honours (default all true). Contracts that need a missing feature are skipped and reported. */
  readonly supports?: {
    readonly mask?: boolean
    readonly offsets?: boolean
    readonly scale?: boolean
    readonly gqa?: boolean
    readonly grad?: boolean
  }
  /**
   * The golden path for C1 (float64, host arrays). Default: dense softmax attention (`referenceAttention`) with
   * `causal` folded into the mask. An operator that is not softmax attention brings its own.
   */
  readonly reference?: (q: HostArray, k: HostArray, v: HostArray, opts: ReferenceOptions) => { out: Float64Array; lse?: Float64Array }
  /** C4: the operator at its unbounded settings; each must equal the dense reference on its patterns. */
  readonly degenerate?: readonly { readonly name: string; readonly run: ConformanceRun; readonly patterns?: readonly Pattern[] }[]
  /** Run only these contracts (default all). */
  readonly contracts?: readonly Contract[]
  /** Backends for C1 parity (default ['cpu']); one that cannot start is reported as skipped. */
  readonly backends?: readonly string[]
  /** Per-dtype tolerances of "equal" results (defaults: float64 1e-10, float32 2e-6 abs + 2e-5 rel). */
  readonly tolerance?: { readonly float64?: Tolerance; readonly float32?: Tolerance }
  readonly seed?: number
}

/** The subset of a test object the harness uses (tap's `Test` satisfies it). */
export interface ConformanceTest {
  ok(value: unknown, ...messageAndExtra: [message: string] | [message: string, extra: Record<string, unknown>]): unknown
  test(name: string, fn: (t: ConformanceTest) => Promise<void>): unknown
}

export interface ConformanceReport {
  readonly ran: Contract[]
  /** Contracts or parts skipped, with why. */
  readonly skipped: string[]
}

export interface HostArray {
  readonly values: Float64Array
  readonly shape: readonly [number, number, number, number]
}

export type DT = 'float32' | 'float64'
