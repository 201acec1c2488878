import { referenceProbs } from '../probs.js'
import { close } from './compare.js'
import type { ContractCheck } from './context.js'
import { exec, observeHost } from './exec.js'
import { span, problem, foldCausal } from './host.js'

/** C6: lazy observation equals the dense probabilities. */
export const c6Observation: ContractCheck = {
  id: 'C6',
  title: 'observation exactness',
  check: async ({ op, sup, tol, patterns, skipped, needsLse }, t, rand) => {
    if (!(await needsLse())) {
      skipped.push('C6: the operator returns no lse')
      return
    }
    for (const pattern of patterns) {
      const p = problem(rand, pattern, sup.gqa)
      const [Tq, Tk] = [p.q.shape[2], p.k.shape[2]]
      const r = await exec(op.run, p.q, p.k, p.v, p.opts)
      const dense = referenceProbs(p.q, p.k, foldCausal(p.opts))
      const rows = [Tq - 1, 0, 2]
      const cols = [Tk - 1, 1]
      const [lazyRows, lazyCols, argmax] = await observeHost(p, r.lse!, rows, cols)
      const [B, H] = p.q.shape
      const want = (rs: readonly number[], cs: readonly number[]) => {
        const out: number[] = []
        for (let bh = 0; bh < B * H; bh++) for (const i of rs) for (const j of cs) out.push(dense.p[(bh * Tq + i) * Tk + j]!)
        return out
      }
      close(t, lazyRows, want(rows, span(0, Tk)), { atol: 1e-12, rtol: 1e-12 }, `${pattern}: lazy rows = dense P`)
      close(t, lazyCols, want(span(0, Tq), cols), { atol: 1e-12, rtol: 1e-12 }, `${pattern}: lazy columns = dense P`)
      t.ok(argmax.every((x, i) => x === dense.argmax[i]), `${pattern}: row argmax = dense argmax`)
      let worst = 0
      for (let row = 0; row < B * H * Tq; row++) {
        let s = 0
        for (let j = 0; j < Tk; j++) s += dense.p[row * Tk + j]!
        if (s > 0) worst = Math.max(worst, Math.abs(s - 1))
      }
      t.ok(worst < 1e-12, `${pattern}: rows of P sum to 1`, { worst })
      // Constant values: every non-empty row outputs the constant.
      const c = { values: new Float64Array(p.v.values.length).fill(0.375), shape: p.v.shape }
      const rc = await exec(op.run, p.q, p.k, c, p.opts)
      close(t, rc.out, new Float64Array(rc.out.length).fill(0.375), tol.float64, `${pattern}: constant V ⇒ constant O`)
    }
  },
}
