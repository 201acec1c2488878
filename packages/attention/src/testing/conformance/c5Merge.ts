import { attnState } from '../../attnState.js'
import { mask as masks } from '../../mask.js'
import { close } from './compare.js'
import type { ContractCheck } from './context.js'
import { exec, rowsOf, withStates, type StateT } from './exec.js'
import { sliceT, problem } from './host.js'

/** C5: merge algebra on the operator's own states. */
export const c5Merge: ContractCheck = {
  id: 'C5',
  title: 'merge algebra on operator states',
  requires: ({ sup }) => [[sup.offsets, 'queryOffset/keyOffset']],
  check: async ({ op, sup, tol, patterns, skipped, needsLse }, t, rand) => {
    if (!(await needsLse())) {
      skipped.push('C5: the operator returns no lse')
      return
    }
    const pattern = patterns.find(x => x === 'NC') ?? patterns[0]!
    const p = problem(rand, pattern, sup.gqa)
    const Tk = p.k.shape[2]
    const cuts = [0, 2, 5, Tk]
    const parts = []
    for (let c = 0; c < 3; c++) parts.push(await exec(op.run, p.q, sliceT(p.k, cuts[c]!, cuts[c + 1]!), sliceT(p.v, cuts[c]!, cuts[c + 1]!), { ...p.opts, queryOffset: p.qOff, keyOffset: cuts[c]! }))
    const whole = await exec(op.run, p.q, p.k, p.v, p.opts)
    const res = await withStates(parts, whole.shape, states => {
      const [a, b, c] = states as [StateT, StateT, StateT]
      const id = attnState.identity(a)
      return {
        abC: attnState.merge(attnState.merge(a, b), c),
        aBC: attnState.merge(a, attnState.merge(b, c)),
        ab: attnState.merge(a, b),
        ba: attnState.merge(b, a),
        aId: attnState.merge(a, id),
        idId: attnState.merge(id, id),
      }
    })
    close(t, res.abC.o, res.aBC.o, tol.float64, `${pattern}: associativity (o)`)
    close(t, res.abC.lse, res.aBC.lse, tol.float64, `${pattern}: associativity (lse)`)
    close(t, res.ab.o, res.ba.o, tol.float64, `${pattern}: commutativity (o)`)
    close(t, res.aId.o, parts[0]!.out, { atol: 0, rtol: 0 }, `${pattern}: identity is exact (o)`)
    close(t, res.aId.lse, parts[0]!.lse!, { atol: 0, rtol: 0 }, `${pattern}: identity is exact (lse)`)
    t.ok(res.idId.o.every(x => x === 0) && res.idId.lse.every(x => x === -Infinity), 'identity ∘ identity = (0, −∞), no NaN')
    close(t, res.abC.o, whole.out, tol.float64, `${pattern}: split-KV merge = concatenation (o)`)
    close(t, res.abC.lse, whole.lse!, tol.float64, `${pattern}: split-KV merge = concatenation (lse)`)
    if (sup.mask) {
      // A fully masked row must come out as the identity, so it merges away.
      const qOff = p.qOff
      const empty = await exec(op.run, p.q, p.k, p.v, { ...p.opts, mask: masks.custom((_b, _h, pq) => pq !== qOff + 1) })
      const rowLse = (x: Float64Array) => Array.from({ length: x.length / p.q.shape[2] }, (_, bh) => x[bh * p.q.shape[2] + 1]!)
      t.ok(rowLse(empty.lse!).every(x => x === -Infinity), 'fully masked row: lse = −∞')
      t.ok(rowsOf(empty.out, empty.shape, [1]).every(x => x === 0), 'fully masked row: out = 0')
      t.ok(!empty.out.some(Number.isNaN), 'fully masked row: no NaN')
    } else skipped.push('C5 fully masked rows: needs mask')
  },
}
