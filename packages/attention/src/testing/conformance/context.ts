/** What every contract check receives: the operator with its defaults resolved, and the harness's shared state. */
import { referenceAttention } from '../reference.js'
import { exec } from './exec.js'
import { foldCausal, problem, random } from './host.js'
import type { ConformanceOperator, ConformanceRunOptions, ConformanceTest, Contract, HostArray, Pattern, Tolerance } from './types.js'

const supportsOf = (op: ConformanceOperator) => ({ mask: true, offsets: true, scale: true, gqa: true, grad: true, ...op.supports })

export interface ContractContext {
  readonly op: ConformanceOperator
  /** What `run` honours, defaults filled in. */
  readonly sup: ReturnType<typeof supportsOf>
  readonly tol: { readonly float64: Tolerance; readonly float32: Tolerance }
  readonly patterns: readonly Pattern[]
  /** The causal ones among `patterns` (CS, CC). */
  readonly causal: readonly Pattern[]
  /** Contracts or parts skipped, with why: the report's `skipped`, which checks append to. */
  readonly skipped: string[]
  /** The float64 golden path (the operator's `reference` or dense softmax attention), causal folded into the mask. */
  readonly golden: (q: HostArray, k: HostArray, v: HostArray, o: ConformanceRunOptions) => { out: Float64Array; lse?: Float64Array }
  /** Whether the operator returns `lse` (asked once, on the first use). */
  readonly needsLse: () => Promise<boolean>
}

/** One contract: what it needs of the operator, and its check (one subtest). */
export interface ContractCheck {
  readonly id: Contract
  readonly title: string
  /** `[present, what]` pairs; a contract with one absent is skipped and reported with what it needs. */
  readonly requires?: (cx: ContractContext) => readonly (readonly [boolean, string])[]
  readonly check: (cx: ContractContext, t: ConformanceTest, rand: () => number) => Promise<void>
}

export function contractContext(op: ConformanceOperator): ContractContext {
  const sup = supportsOf(op)
  const patterns = [...op.patterns]
  let hasLse: boolean | undefined
  return {
    op,
    sup,
    tol: { float64: op.tolerance?.float64 ?? { atol: 1e-10, rtol: 1e-10 }, float32: op.tolerance?.float32 ?? { atol: 2e-6, rtol: 2e-5 } },
    patterns,
    causal: patterns.filter(p => p === 'CS' || p === 'CC'),
    skipped: [],
    golden: (q, k, v, o) => (op.reference ?? referenceAttention)(q, k, v, foldCausal(o)),
    needsLse: async () => {
      if (hasLse === undefined) {
        const p = problem(random(1), patterns[0] ?? 'NS', sup.gqa)
        hasLse = (await exec(op.run, p.q, p.k, p.v, p.opts)).lse !== undefined
      }
      return hasLse
    },
  }
}
