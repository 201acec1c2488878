import { close } from './compare.js'
import type { ContractCheck } from './context.js'
import { exec, mergeHost } from './exec.js'
import { catT, problem, randomCuts, sliceT } from './host.js'

/** C3: random splits carrying state give the one-shot result. */
export const c3Splits: ContractCheck = {
  id: 'C3',
  title: 'random-split state carry equals one-shot',
  requires: ({ sup }) => [[sup.offsets, 'queryOffset/keyOffset']],
  check: async ({ op, sup, tol, patterns, skipped, needsLse }, t, rand) => {
    const lse = await needsLse()
    if (!lse) skipped.push('C3 key splits: the operator returns no lse to merge')
    for (const pattern of patterns)
      for (const dtype of ['float64', 'float32'] as const) {
        const p = problem(rand, pattern, sup.gqa)
        const [Tq, Tk] = [p.q.shape[2], p.k.shape[2]]
        const one = await exec(op.run, p.q, p.k, p.v, p.opts, dtype)
        for (let trial = 0; trial < 2; trial++) {
          // Query chunks against the keys visible so far (the growing cache of chunked prefill).
          const qc = [0, ...randomCuts(rand, Tq, 2), Tq]
          const outs: Float64Array[] = []
          for (let c = 0; c + 1 < qc.length; c++) {
            const [s, e] = [qc[c]!, qc[c + 1]!]
            const kEnd = p.opts.causal ? Math.min(Tk, p.qOff + e) : Tk
            const r = await exec(op.run, sliceT(p.q, s, e), sliceT(p.k, 0, kEnd), sliceT(p.v, 0, kEnd), { ...p.opts, queryOffset: p.qOff + s, keyOffset: 0 }, dtype)
            outs.push(r.out)
          }
          const joined = catT(outs.map((o, c) => ({ values: o, shape: [p.q.shape[0], p.q.shape[1], qc[c + 1]! - qc[c]!, p.v.shape[3]] })))
          close(t, joined.values, one.out, tol[dtype], `${pattern} ${dtype} query splits ${qc.join('|')}`)
          if (!lse) continue
          // Key chunks at their true positions, merged: split-KV decode.
          const kc = [0, ...randomCuts(rand, Tk, 3), Tk]
          const states = []
          for (let c = 0; c + 1 < kc.length; c++) {
            const [s, e] = [kc[c]!, kc[c + 1]!]
            states.push(await exec(op.run, p.q, sliceT(p.k, s, e), sliceT(p.v, s, e), { ...p.opts, queryOffset: p.qOff, keyOffset: s }, dtype))
          }
          const merged = await mergeHost(states, one.shape, dtype)
          close(t, merged.o, one.out, tol[dtype], `${pattern} ${dtype} key splits ${kc.join('|')}: out`)
          close(t, merged.lse, one.lse!, tol[dtype], `${pattern} ${dtype} key splits: lse`)
        }
      }
  },
}
