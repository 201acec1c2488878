import { initBackend } from '@heed/tensor'
import { close, relRmse } from './compare.js'
import type { ContractCheck } from './context.js'
import { exec } from './exec.js'
import { problem, type Problem } from './host.js'

/** C1: parity with the float64 golden path, per pattern, dtype and backend; adversarial score magnitudes. */
export const c1Parity: ContractCheck = {
  id: 'C1',
  title: 'parity with the float64 reference',
  check: async ({ op, sup, tol, patterns, skipped, golden }, t, rand) => {
    const backends = [...(op.backends ?? ['cpu'])]
    for (const backend of backends) {
      try {
        await initBackend(backend)
      } catch (err) {
        skipped.push(`C1 on ${backend}: backend unavailable (${err instanceof Error ? err.message : String(err)})`)
        continue
      }
      for (const pattern of patterns) {
        const cases: [string, Problem][] = [['', problem(rand, pattern, sup.gqa)]]
        // Scores up to ±50 exercise the max-shift; needs the scale option (or big inputs for ops without it).
        if (sup.scale) {
          const p = problem(rand, pattern, sup.gqa)
          cases.push([' |s|≤50', { ...p, opts: { ...p.opts, scale: 10 } }])
        } else cases.push([' large inputs', problem(rand, pattern, sup.gqa, 3)])
        for (const [tag, p] of cases) {
          const g = golden(p.q, p.k, p.v, p.opts)
          for (const dtype of ['float64', 'float32'] as const) {
            const r = await exec(op.run, p.q, p.k, p.v, p.opts, dtype, backend)
            const msg = `${pattern}${tag} ${dtype} ${backend}`
            close(t, r.out, g.out, tol[dtype], `${msg}: out`)
            if (r.lse && g.lse) close(t, r.lse, g.lse, tol[dtype], `${msg}: lse`)
            if (dtype === 'float32') t.ok(relRmse(r.out, g.out) < 1e-3, `${msg}: relative RMSE < 1e-3`, { relRmse: relRmse(r.out, g.out) })
          }
        }
      }
    }
  },
}
