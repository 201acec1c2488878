import { close } from './compare.js'
import type { ContractCheck } from './context.js'
import { exec } from './exec.js'
import { problem } from './host.js'

/** C4: unbounded settings degenerate to dense attention. */
export const c4Degenerate: ContractCheck = {
  id: 'C4',
  title: 'degeneracy to dense attention',
  requires: ({ op }) => [[(op.degenerate ?? []).length > 0, 'degenerate variants']],
  check: async ({ op, sup, tol, patterns, golden }, t, rand) => {
    for (const d of op.degenerate ?? [])
      for (const pattern of d.patterns ?? patterns) {
        const p = problem(rand, pattern, sup.gqa)
        const g = golden(p.q, p.k, p.v, p.opts)
        const r = await exec(d.run, p.q, p.k, p.v, p.opts)
        close(t, r.out, g.out, tol.float64, `${d.name} ${pattern}: out`)
        if (r.lse && g.lse) close(t, r.lse, g.lse, tol.float64, `${d.name} ${pattern}: lse`)
      }
  },
}
