/** Running an operator for the harness: host arrays in, tensors made and disposed, host arrays out. */
import { mul, scope, sum, tensor, valueAndGrad, withBackend, type Tensor } from '@heed/tensor'
import { attnState } from '../../attnState.js'
import { attentionProbs, rowArgmax } from '../../observe.js'
import type { Problem } from './host.js'
import type { ConformanceRun, ConformanceRunOptions, DT, HostArray } from './types.js'

export interface Ran {
  readonly out: Float64Array
  readonly lse: Float64Array | undefined
  readonly shape: readonly number[]
}

export async function exec(run: ConformanceRun, q: HostArray, k: HostArray, v: HostArray, opts: ConformanceRunOptions, dtype: DT = 'float64', backend = 'cpu'): Promise<Ran> {
  const made = withBackend(backend, () =>
    scope(() => {
      const [tq, tk, tv] = [q, k, v].map(x => tensor(x.values, x.shape, dtype))
      const r = run(tq!, tk!, tv!, opts)
      return { out: r.out, lse: r.lse }
    }),
  )
  try {
    return { out: Float64Array.from(await made.out.data()), lse: made.lse ? Float64Array.from(await made.lse.data()) : undefined, shape: made.out.shape }
  } finally {
    made.out.dispose()
    made.lse?.dispose()
  }
}

/** Output rows `rows` of a [B, H, T, Dv] result. */
export function rowsOf(values: Float64Array, shape: readonly number[], rows: readonly number[]): Float64Array {
  const [B, H, T, Dv] = shape as [number, number, number, number]
  const out = new Float64Array(B * H * rows.length * Dv)
  for (let bh = 0, o = 0; bh < B * H; bh++)
    for (const r of rows) {
      out.set(values.subarray((bh * T + r) * Dv, (bh * T + r + 1) * Dv), o)
      o += Dv
    }
  return out
}



export type StateT = { o: Tensor; lse: Tensor }

export async function mergeHost(states: readonly Ran[], shape: readonly number[], dtype: DT): Promise<{ o: Float64Array; lse: Float64Array }> {
  const res = scope(() => {
    const m = attnState.mergeAll(states.map(s => ({ o: tensor(s.out, shape, dtype), lse: tensor(s.lse!, shape.slice(0, 3), dtype) })))
    return { o: m.o, lse: m.lse }
  })
  try {
    return { o: Float64Array.from(await res.o.data()), lse: Float64Array.from(await res.lse.data()) }
  } finally {
    res.o.dispose()
    res.lse.dispose()
  }
}

export async function withStates<K extends string>(parts: readonly Ran[], shape: readonly number[], f: (s: StateT[]) => Record<K, StateT>): Promise<Record<K, { o: Float64Array; lse: Float64Array }>> {
  const made = scope(() => f(parts.map(p => ({ o: tensor(p.out, shape, 'float64'), lse: tensor(p.lse!, shape.slice(0, 3), 'float64') }))))
  const out = {} as Record<K, { o: Float64Array; lse: Float64Array }>
  for (const key of Object.keys(made) as K[]) {
    const s = made[key]
    out[key] = { o: Float64Array.from(await s.o.data()), lse: Float64Array.from(await s.lse.data()) }
    s.o.dispose()
    s.lse.dispose()
  }
  return out
}

export async function observeHost(p: Problem, lse: Float64Array, rows: number[], cols: number[]): Promise<[Float64Array, Float64Array, Int32Array]> {
  const o = { ...(p.opts.causal ? { causal: true } : {}) }
  const made = scope(() => {
    const [q, k] = [p.q, p.k].map(x => tensor(x.values, x.shape, 'float64'))
    const l = tensor(lse, p.q.shape.slice(0, 3), 'float64')
    return [attentionProbs(q!, k!, l, { ...o, rows }), attentionProbs(q!, k!, l, { ...o, cols }), rowArgmax(q!, k!, { ...o, chunkSize: 3 })] as const
  })
  try {
    return [Float64Array.from(await made[0].data()), Float64Array.from(await made[1].data()), Int32Array.from(await made[2].data())]
  } finally {
    for (const x of made) x.dispose()
  }
}

export interface Graded {
  readonly out: HostArray
  readonly grads: HostArray[]
}

/** Output and (optionally) gradients of Σ cot·out with respect to q, k, v, in float64. */
export async function withGrads(run: ConformanceRun, inputs: readonly [HostArray, HostArray, HostArray], opts: ConformanceRunOptions, cot: Float64Array, grads: boolean): Promise<Graded> {
  const xs = inputs.map(x => tensor(x.values, x.shape, 'float64', { backend: 'cpu' }))
  try {
    if (!grads) {
      const r = await exec(run, inputs[0], inputs[1], inputs[2], opts)
      return { out: { values: r.out, shape: r.shape as HostArray['shape'] }, grads: [] }
    }
    let outShape: readonly number[] = []
    let outValues = new Float64Array(0)
    const f = (q: Tensor, k: Tensor, v: Tensor): Tensor =>
      scope(() => {
        const { out } = run(q, k, v, opts)
        outShape = out.shape
        outValues = Float64Array.from(out.dataSync())
        return sum(mul(out, tensor(cot, out.shape, 'float64')))
      })
    // The gradient path reads the output host-side inside the traced function, so it runs on the CPU backend.
    const [value, gs] = withBackend('cpu', () => valueAndGrad(f, { argnums: [0, 1, 2] })(xs[0]!, xs[1]!, xs[2]!))
    value.dispose()
    const hostGrads = await Promise.all(
      (gs as Tensor[]).map(async (g, i) => {
        const values = Float64Array.from(await g.data())
        g.dispose()
        return { values, shape: inputs[i]!.shape }
      }),
    )
    return { out: { values: outValues, shape: outShape as HostArray['shape'] }, grads: hostGrads }
  } finally {
    for (const x of xs) x.dispose()
  }
}
