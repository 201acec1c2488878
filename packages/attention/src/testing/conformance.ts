import { trackTensors } from '@heed/tensor'
import { c1Parity } from './conformance/c1Parity.js'
import { c2Prefix } from './conformance/c2Prefix.js'
import { c3Splits } from './conformance/c3Splits.js'
import { c4Degenerate } from './conformance/c4Degenerate.js'
import { c5Merge } from './conformance/c5Merge.js'
import { c6Observation } from './conformance/c6Observation.js'
import { c7Masking } from './conformance/c7Masking.js'
import { c8Varlen } from './conformance/c8Varlen.js'
import { contractContext, type ContractCheck } from './conformance/context.js'
import { random } from './conformance/host.js'
import { CONTRACTS, type ConformanceOperator, type ConformanceReport, type ConformanceTest, type Contract } from './conformance/types.js'

export {
  CONTRACTS,
  type ConformanceOperator,
  type ConformanceReport,
  type ConformanceRun,
  type ConformanceRunOptions,
  type ConformanceTest,
  type Contract,
  type HostArray,
  type Pattern,
  type Tolerance,
} from './conformance/types.js'

/**
 * The conformance harness: an attention operator describes itself once and gets the universal contracts C1–C8
 * checked on small seeded problems. It only needs an object with `ok` and `test` (tap's `t` fits), so any runner
 * can drive it.
 *
 * - C1 parity with a float64 dense reference, float32 within tolerance (`conformance/c1Parity.ts`);
 * - C2 prefix and incremental consistency of causal patterns, the causality test of CAB (Zhang et al., "CAB: A
 *   Comprehensive Attention Benchmark for Long Sequence Modeling", ICML 2023, whose NS/CS/NC/CC patterns these are);
 * - C3 random query and key splits carrying state equal the one-shot result;
 * - C4 the operator's unbounded settings degenerate to dense attention;
 * - C5 the merge algebra of (o, lse) states (associative, commutative, identity (0, −∞)), the online-softmax merge
 *   of Milakov & Gimelshein, "Online normalizer calculation for softmax" (2018);
 * - C6 lazily observed probabilities equal the dense ones;
 * - C7 masking a key equals deleting it, and permuting keys with the mask changes nothing;
 * - C8 packed (segment ids) = left- and right-padded = per-sequence, for outputs and gradients.
 *
 * ```ts
 * await conformance(t, {
 *   name: 'sdpa',
 *   run: (q, k, v, opts) => scaledDotProductAttention(q, k, v, opts),
 *   patterns: ['NS', 'CS', 'NC', 'CC'],
 *   incremental: true,
 * })
 * ```
 */

/** The contracts, in the order they run; each is a function of its own in `conformance/`. */
const CHECKS: readonly ContractCheck[] = [c1Parity, c2Prefix, c3Splits, c4Degenerate, c5Merge, c6Observation, c7Masking, c8Varlen]

/**
 * Check an attention operator against contracts C1–C8: one subtest per contract. Returns which contracts ran and
 * what was skipped (and why).
 */
export async function conformance(t: ConformanceTest, op: ConformanceOperator): Promise<ConformanceReport> {
  const cx = contractContext(op)
  const wanted = new Set(op.contracts ?? CONTRACTS)
  const ran: Contract[] = []
  for (const c of CHECKS) {
    if (!wanted.has(c.id)) continue
    const missing = (c.requires?.(cx) ?? []).filter(([ok]) => !ok).map(([, why]) => why)
    if (missing.length > 0) {
      cx.skipped.push(`${c.id} ${c.title}: needs ${missing.join(', ')}`)
      continue
    }
    ran.push(c.id)
    await t.test(`${op.name} ${c.id} ${c.title}`, async t => {
      // Counts only the tensors the contract's checks make, and names the ones left behind.
      const made = trackTensors()
      try {
        await c.check(cx, t, random((op.seed ?? 1234) + CONTRACTS.indexOf(c.id) * 7919))
      } catch (err) {
        t.ok(false, `${c.id} threw: ${err instanceof Error ? err.message : String(err)}`, { stack: err instanceof Error ? err.stack : undefined })
      }
      const left = made.stop()
      t.ok(left.length === 0, `${c.id}: no leaked tensors`, { leaked: left.map(x => x.toString()) })
    })
  }
  return { ran, skipped: cx.skipped }
}
