/**
 * Backend parity: every op (and its gradient) on a backend against the float64 CPU oracle, with the tolerance
 * policy of FlashAttention's own tests (Dao-AILab/flash-attention, tests/test_flash_attn.py): err(kernel, golden)
 * ≤ 2·err(f32 reference, golden) + a floor of `atol` scaled by the output's magnitude. Integer and bool outputs
 * must match exactly.
 */
import type { Test } from 'tap'
import { isTensor, mul, scope, setBackend, sum, tensor, trackTensors, valueAndGrad, type DType, type Tensor } from '@heed/tensor'
import { describeTensors } from './leaks.js'
import { prng } from './numeric.js'

export interface InputSpec {
  readonly shape: readonly number[]
  /** 'float' inputs run as float64 on the oracle and float32 on the backend under test. */
  readonly kind?: 'float' | 'int32' | 'bool'
  readonly lo?: number
  readonly hi?: number
  /** Fixed values instead of random ones. */
  readonly values?: readonly number[]
}

export interface ParityCase {
  readonly name: string
  readonly inputs: readonly InputSpec[]
  /** The op under test; may return a tensor, an array of tensors, or an object of tensors. */
  readonly f: (...xs: Tensor[]) => unknown
  /** Also compare the gradient of Σ w·f(x) (first float output) with respect to every float input. */
  readonly grad?: boolean
  readonly atol?: number
}

const outputsOf = (r: unknown): Tensor[] =>
  isTensor(r) ? [r] : Array.isArray(r) ? r.flatMap(outputsOf) : r !== null && typeof r === 'object' ? Object.values(r).flatMap(outputsOf) : []

function makeInputs(c: ParityCase, seed: number): number[][] {
  const rand = prng(seed)
  return c.inputs.map(s => {
    if (s.values) return [...s.values]
    const n = s.shape.reduce((a, b) => a * b, 1)
    const lo = s.lo ?? (s.kind === 'int32' ? -5 : -2)
    const hi = s.hi ?? (s.kind === 'int32' ? 5 : 2)
    return Array.from({ length: n }, () => {
      const u = lo + (hi - lo) * rand()
      return s.kind === 'int32' ? Math.floor(u) : s.kind === 'bool' ? (rand() < 0.5 ? 1 : 0) : u
    })
  })
}

const dtypeFor = (s: InputSpec, float: DType): DType => (s.kind === 'int32' ? 'int32' : s.kind === 'bool' ? 'bool' : float)

async function evaluate(c: ParityCase, vals: number[][], float: DType, backend: string, weights?: number[]): Promise<{ outs: number[][]; dtypes: DType[]; grads?: number[][] }> {
  await setBackend(backend)
  try {
    const xs = c.inputs.map((s, i) => tensor(vals[i]!, s.shape, dtypeFor(s, float)))
    // intermediates a case makes on the way (cast of a cast) are the case's business, not a leak
    const outs = outputsOf(scope(() => c.f(...xs)))
    const res = { outs: await Promise.all(outs.map(async o => Array.from(await o.data()))), dtypes: outs.map(o => o.dtype) }
    let grads: number[][] | undefined
    if (weights) {
      const floatIdx = c.inputs.map((s, i) => (s.kind === undefined || s.kind === 'float' ? i : -1)).filter(i => i >= 0)
      const first = outs[0]!
      const w = tensor(weights, first.shape, float)
      const loss = (...fl: Tensor[]): Tensor => {
        const all = xs.map((x, i) => (floatIdx.includes(i) ? fl[floatIdx.indexOf(i)]! : x))
        return sum(mul(outputsOf(c.f(...all))[0]!, w))
      }
      const [v, g] = valueAndGrad(loss, { argnums: floatIdx.map((_, k) => k) })(...floatIdx.map(i => xs[i]!))
      grads = await Promise.all((g as Tensor[]).map(async t => Array.from(await t.data())))
      v.dispose()
      for (const t of g as Tensor[]) t.dispose()
      w.dispose()
    }
    for (const o of outs) o.dispose()
    for (const x of xs) x.dispose()
    return grads ? { ...res, grads } : res
  } finally {
    await setBackend('cpu')
  }
}

const maxAbs = (a: readonly number[]): number => a.reduce((m, v) => (Number.isFinite(v) ? Math.max(m, Math.abs(v)) : m), 0)
const maxErr = (a: readonly number[], b: readonly number[]): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!
    const y = b[i]!
    if (Number.isNaN(x) && Number.isNaN(y)) continue
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      if (x !== y) return Infinity
      continue
    }
    m = Math.max(m, Math.abs(x - y))
  }
  return m
}

function compare(t: Test, what: string, kernel: readonly number[], golden: readonly number[], ref: readonly number[], exact: boolean, atol: number): void {
  if (kernel.length !== golden.length) {
    t.fail(`${what}: ${kernel.length} values, expected ${golden.length}`)
    return
  }
  if (exact) {
    t.same(kernel, golden, `${what}: exact`)
    return
  }
  const errK = maxErr(kernel, golden)
  const errR = maxErr(ref, golden)
  const bound = 2 * errR + atol * Math.max(1, maxAbs(golden))
  t.ok(errK <= bound, `${what}: max err ${errK.toExponential(2)} ≤ ${bound.toExponential(2)}`, errK <= bound ? {} : { kernel: kernel.slice(0, 8), golden: golden.slice(0, 8) })
}

/** Run every case on `backend` against the CPU float64 oracle. */
export async function runParity(t: Test, backend: string, cases: readonly ParityCase[], seed = 1): Promise<void> {
  // Leak checks count only the tensors the suite and each case make (trackTensors), not a difference of global counts.
  const suite = trackTensors()
  try {
    for (const c of cases) {
      await t.test(c.name, async t => {
        const made = trackTensors()
        try {
          const vals = makeInputs(c, seed)
          const golden0 = await evaluate(c, vals, 'float64', 'cpu')
          // fixed, non-uniform cotangent weights so every output element matters differently
          const weights = c.grad ? Array.from({ length: golden0.outs[0]!.length }, (_, i) => Math.sin(i + 1)) : undefined
          const golden = c.grad ? await evaluate(c, vals, 'float64', 'cpu', weights) : golden0
          const ref = await evaluate(c, vals, 'float32', 'cpu', weights)
          const kern = await evaluate(c, vals, 'float32', backend, weights)
          const atol = c.atol ?? 1e-5
          golden.outs.forEach((g, i) => {
            const exact = golden.dtypes[i] !== 'float64'
            compare(t, `output ${i}`, kern.outs[i] ?? [], g, ref.outs[i] ?? [], exact, atol)
          })
          golden.grads?.forEach((g, i) => compare(t, `grad ${i}`, kern.grads?.[i] ?? [], g, ref.grads?.[i] ?? [], false, atol * 10))
        } finally {
          t.same(describeTensors(made.stop()), [], `no ${backend} tensors left behind`)
        }
      })
    }
  } finally {
    t.same(describeTensors(suite.stop()), [], `${backend}: no tensors leaked by the parity suite`)
  }
}
