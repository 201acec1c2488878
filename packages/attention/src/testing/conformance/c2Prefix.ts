import { sumAbs } from './compare.js'
import type { ContractCheck } from './context.js'
import { exec, rowsOf } from './exec.js'
import { sliceT, problem } from './host.js'

/** C2: CAB prefix and incremental consistency for causal patterns. */
export const c2Prefix: ContractCheck = {
  id: 'C2',
  title: 'prefix and incremental consistency (CAB)',
  requires: ({ causal }) => [[causal.length > 0, 'a causal pattern (CS or CC)']],
  check: async ({ op, sup, causal }, t, rand) => {
    for (const pattern of causal)
      for (const dtype of ['float64', 'float32'] as const) {
        const p = problem(rand, pattern, sup.gqa)
        const Tq = p.q.shape[2]
        const full = await exec(op.run, p.q, p.k, p.v, p.opts, dtype)
        const bound = dtype === 'float32' ? 1e-4 : 1e-10
        for (let i = 0; i < Tq; i++) {
          const want = rowsOf(full.out, full.shape, [i])
          // Prefix: queries [0, i] with keys up to position qOff + i; bottom-right alignment keeps positions.
          const kEnd = p.qOff + i + 1
          const pre = await exec(op.run, sliceT(p.q, 0, i + 1), sliceT(p.k, 0, kEnd), sliceT(p.v, 0, kEnd), p.opts, dtype)
          sumAbs(t, rowsOf(pre.out, pre.shape, [i]), want, bound, `${pattern} ${dtype} prefix row ${i}`)
          if (op.incremental) {
            const step = await exec(op.run, sliceT(p.q, i, i + 1), sliceT(p.k, 0, kEnd), sliceT(p.v, 0, kEnd), p.opts, dtype)
            sumAbs(t, step.out, want, bound, `${pattern} ${dtype} decode step ${i}`)
          }
        }
      }
  },
}
