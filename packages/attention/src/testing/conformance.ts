import { initBackend, mul, scope, sum, tensor, trackTensors, valueAndGrad, withBackend, type Tensor } from '@heed/tensor'
import { attnState } from '../attnState.js'
import { mask as masks, type Mask } from '../mask.js'
import { attentionProbs, rowArgmax } from '../observe.js'
import { referenceProbs } from './probs.js'
import { referenceAttention, type ReferenceOptions } from './reference.js'

/**
 * The conformance harness (§6.2 of the research note): an attention operator describes itself once and gets the
 * universal contracts C1–C8 checked on small seeded problems. It only needs an object with `ok` and `test` (tap's
 * `t` fits), so any runner can drive it.
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

/** CAB attention patterns: (non-)causal × self/cross. */
export type Pattern = 'NS' | 'CS' | 'NC' | 'CC'
export type Contract = 'C1' | 'C2' | 'C3' | 'C4' | 'C5' | 'C6' | 'C7' | 'C8'
export const CONTRACTS: readonly Contract[] = ['C1', 'C2', 'C3', 'C4', 'C5', 'C6', 'C7', 'C8']

/** What the harness passes to an operator: a subset of `SdpaOptions`, over absolute positions. */
export interface ConformanceRunOptions {
  readonly causal?: boolean
  readonly mask?: Mask
  readonly queryOffset?: number
  readonly keyOffset?: number
  readonly scale?: number
}

export type ConformanceRun = (q: Tensor, k: Tensor, v: Tensor, opts: ConformanceRunOptions) => { readonly out: Tensor; readonly lse?: Tensor }

export interface Tolerance {
  readonly atol: number
  readonly rtol: number
}

export interface ConformanceOperator {
  readonly name: string
  /** q [B,H,Tq,D], k [B,Hkv,Tk,D], v [B,Hkv,Tk,Dv]. Returning `lse` (softmax operators) enables C3's merge, C5, C6. */
  readonly run: ConformanceRun
  readonly patterns: readonly Pattern[]
  /** Has a decode form: one query row at a time against the growing key prefix (C2 incremental). */
  readonly incremental: boolean
  /** What `run` honours (default all true). Contracts that need a missing feature are skipped and reported. */
  readonly supports?: {
    readonly mask?: boolean
    readonly offsets?: boolean
    readonly scale?: boolean
    readonly gqa?: boolean
    readonly grad?: boolean
  }
  /**
   * The golden path for C1 (float64, host arrays). Default: dense softmax attention (`referenceAttention`) with
   * `causal` folded into the mask. An operator that is not softmax attention brings its own.
   */
  readonly reference?: (q: HostArray, k: HostArray, v: HostArray, opts: ReferenceOptions) => { out: Float64Array; lse?: Float64Array }
  /** C4: the operator at its unbounded settings; each must equal the dense reference on its patterns. */
  readonly degenerate?: readonly { readonly name: string; readonly run: ConformanceRun; readonly patterns?: readonly Pattern[] }[]
  /** Run only these contracts (default all). */
  readonly contracts?: readonly Contract[]
  /** Backends for C1 parity (default ['cpu']); one that cannot start is reported as skipped. */
  readonly backends?: readonly string[]
  /** Per-dtype tolerances of "equal" results (defaults: float64 1e-10, float32 2e-6 abs + 2e-5 rel). */
  readonly tolerance?: { readonly float64?: Tolerance; readonly float32?: Tolerance }
  readonly seed?: number
}

/** The subset of a test object the harness uses (tap's `Test` satisfies it). */
export interface ConformanceTest {
  ok(value: unknown, ...messageAndExtra: [message: string] | [message: string, extra: Record<string, unknown>]): unknown
  test(name: string, fn: (t: ConformanceTest) => Promise<void>): unknown
}

export interface ConformanceReport {
  readonly ran: Contract[]
  /** Contracts or parts skipped, with why. */
  readonly skipped: string[]
}

export interface HostArray {
  readonly values: Float64Array
  readonly shape: readonly [number, number, number, number]
}

type DT = 'float32' | 'float64'

// ---- seeded data -------------------------------------------------------------------------------------------------

/** xorshift32 scaled to [-1, 1): enough for reproducible test inputs. */
function random(seed: number): () => number {
  let x = (seed * 2654435761) >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return (x / 4294967296) * 2 - 1
  }
}

const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1)
const host = (rand: () => number, shape: readonly [number, number, number, number], amp = 1): HostArray => ({
  values: Float64Array.from({ length: size(shape) }, () => amp * rand()),
  shape,
})

/** Rows `idx` (in order) along axis 2. */
function pick(x: HostArray, idx: readonly number[]): HostArray {
  const [B, H, T, D] = x.shape
  const out = new Float64Array(B * H * idx.length * D)
  for (let bh = 0, o = 0; bh < B * H; bh++)
    for (const i of idx) {
      out.set(x.values.subarray((bh * T + i) * D, (bh * T + i + 1) * D), o)
      o += D
    }
  return { values: out, shape: [B, H, idx.length, D] }
}
const span = (a: number, b: number): number[] => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i)
const sliceT = (x: HostArray, a: number, b: number): HostArray => pick(x, span(a, b))

/** Concatenate along axis 2. */
function catT(parts: readonly HostArray[]): HostArray {
  const [B, H, , D] = parts[0]!.shape
  const T = parts.reduce((n, p) => n + p.shape[2], 0)
  const out = new Float64Array(B * H * T * D)
  for (let bh = 0, o = 0; bh < B * H; bh++)
    for (const p of parts) {
      const n = p.shape[2] * D
      out.set(p.values.subarray(bh * n, (bh + 1) * n), o)
      o += n
    }
  return { values: out, shape: [B, H, T, D] }
}

/** Batch entry b of a [B, …] array as a [1, …] array. */
function batch(x: HostArray, b: number): HostArray {
  const n = size(x.shape.slice(1))
  return { values: x.values.slice(b * n, (b + 1) * n), shape: [1, x.shape[1], x.shape[2], x.shape[3]] }
}

function shuffle(rand: () => number, xs: number[]): number[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(((rand() + 1) / 2) * (i + 1))
    ;[xs[i], xs[j]] = [xs[j]!, xs[i]!]
  }
  return xs
}

function randomCuts(rand: () => number, n: number, count: number): number[] {
  const cuts = new Set<number>()
  for (let i = 0; i < count * 4 && cuts.size < count && n > 1; i++) cuts.add(1 + Math.floor(((rand() + 1) / 2) * (n - 1)))
  return [...cuts].sort((a, b) => a - b)
}

// ---- problems per pattern -----------------------------------------------------------------------------------------

interface Problem {
  readonly pattern: Pattern
  readonly q: HostArray
  readonly k: HostArray
  readonly v: HostArray
  readonly opts: ConformanceRunOptions
  /** Resolved absolute position of query row 0 (bottom-right alignment). */
  readonly qOff: number
}

function problem(rand: () => number, pattern: Pattern, gqa: boolean, amp = 1): Problem {
  const cross = pattern === 'NC' || pattern === 'CC'
  const [Tq, Tk] = cross ? [5, 8] : [7, 7]
  const [B, H, Hkv, D, Dv] = [2, 4, gqa ? 2 : 4, 5, 3]
  return {
    pattern,
    q: host(rand, [B, H, Tq, D], amp),
    k: host(rand, [B, Hkv, Tk, D], amp),
    v: host(rand, [B, Hkv, Tk, Dv]),
    opts: pattern === 'CS' || pattern === 'CC' ? { causal: true } : {},
    qOff: Math.max(0, Tk - Tq),
  }
}

const foldCausal = (o: ConformanceRunOptions): ReferenceOptions => {
  const m = masks.and(...(o.causal ? [masks.causal] : []), ...(o.mask ? [o.mask] : []))
  return {
    mask: m,
    ...(o.scale !== undefined ? { scale: o.scale } : {}),
    ...(o.queryOffset !== undefined ? { queryOffset: o.queryOffset } : {}),
    ...(o.keyOffset !== undefined ? { keyOffset: o.keyOffset } : {}),
  }
}

// ---- running an operator -------------------------------------------------------------------------------------------

interface Ran {
  readonly out: Float64Array
  readonly lse: Float64Array | undefined
  readonly shape: readonly number[]
}

async function exec(run: ConformanceRun, q: HostArray, k: HostArray, v: HostArray, opts: ConformanceRunOptions, dtype: DT = 'float64', backend = 'cpu'): Promise<Ran> {
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
function rowsOf(values: Float64Array, shape: readonly number[], rows: readonly number[]): Float64Array {
  const [B, H, T, Dv] = shape as [number, number, number, number]
  const out = new Float64Array(B * H * rows.length * Dv)
  for (let bh = 0, o = 0; bh < B * H; bh++)
    for (const r of rows) {
      out.set(values.subarray((bh * T + r) * Dv, (bh * T + r + 1) * Dv), o)
      o += Dv
    }
  return out
}

// ---- comparisons -------------------------------------------------------------------------------------------------

function close(t: ConformanceTest, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, msg: string): boolean {
  if (actual.length !== expected.length) return !!t.ok(false, `${msg}: length ${actual.length}, expected ${expected.length}`)
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!
    const e = expected[i]!
    const bad = Number.isFinite(e) ? !(Math.abs(a - e) <= tol.atol + tol.rtol * Math.abs(e)) : a !== e
    if (bad) return !!t.ok(false, msg, { index: i, actual: a, expected: e, ...tol })
  }
  return !!t.ok(true, msg)
}

/** CAB's criterion: Σ|x − z| ≤ bound. */
function sumAbs(t: ConformanceTest, a: ArrayLike<number>, b: ArrayLike<number>, bound: number, msg: string): void {
  let s = 0
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!)
  t.ok(a.length === b.length && s <= bound, msg, { sumAbsDiff: s, bound })
}

/** ‖a − e‖ / ‖e‖ (FLA's sanity bound for low precision). */
function relRmse(a: ArrayLike<number>, e: ArrayLike<number>): number {
  let num = 0
  let den = 0
  for (let i = 0; i < e.length; i++) {
    if (!Number.isFinite(e[i]!)) continue
    num += (a[i]! - e[i]!) ** 2
    den += e[i]! ** 2
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den)
}

// ---- the harness --------------------------------------------------------------------------------------------------

/**
 * Check an attention operator against contracts C1–C8 (§6.2): one subtest per contract. Returns which contracts
 * ran and what was skipped (and why).
 */
export async function conformance(t: ConformanceTest, op: ConformanceOperator): Promise<ConformanceReport> {
  const sup = { mask: true, offsets: true, scale: true, gqa: true, grad: true, ...op.supports }
  const tol = { float64: op.tolerance?.float64 ?? { atol: 1e-10, rtol: 1e-10 }, float32: op.tolerance?.float32 ?? { atol: 2e-6, rtol: 2e-5 } }
  const wanted = new Set(op.contracts ?? CONTRACTS)
  const patterns = [...op.patterns]
  const causal = patterns.filter(p => p === 'CS' || p === 'CC')
  const skipped: string[] = []
  const ran: Contract[] = []
  const golden = (q: HostArray, k: HostArray, v: HostArray, o: ConformanceRunOptions) => (op.reference ?? referenceAttention)(q, k, v, foldCausal(o))
  let hasLse: boolean | undefined
  const needsLse = async (): Promise<boolean> => {
    if (hasLse === undefined) {
      const p = problem(random(1), patterns[0] ?? 'NS', sup.gqa)
      hasLse = (await exec(op.run, p.q, p.k, p.v, p.opts)).lse !== undefined
    }
    return hasLse
  }

  const contract = async (c: Contract, title: string, body: (t: ConformanceTest, rand: () => number) => Promise<void>, requires: [boolean, string][] = []): Promise<void> => {
    if (!wanted.has(c)) return
    const missing = requires.filter(([ok]) => !ok).map(([, why]) => why)
    if (missing.length > 0) {
      skipped.push(`${c} ${title}: needs ${missing.join(', ')}`)
      return
    }
    ran.push(c)
    await t.test(`${op.name} ${c} ${title}`, async t => {
      // Counts only the tensors the contract's checks make: not moved by tensors made before it (another test's
      // forgotten one, collected by the GC safety net meanwhile), and a forgotten one is held until the count.
      const made = trackTensors()
      try {
        await body(t, random((op.seed ?? 1234) + CONTRACTS.indexOf(c) * 7919))
      } catch (err) {
        t.ok(false, `${c} threw: ${err instanceof Error ? err.message : String(err)}`, { stack: err instanceof Error ? err.stack : undefined })
      }
      const left = made.stop()
      t.ok(left.length === 0, `${c}: no leaked tensors`, { leaked: left.map(x => x.toString()) })
    })
  }

  // C1: parity with the float64 golden path, per pattern, dtype and backend; adversarial score magnitudes.
  await contract('C1', 'parity with the float64 reference', async (t, rand) => {
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
  })

  // C2: CAB prefix and incremental consistency for causal patterns.
  await contract(
    'C2',
    'prefix and incremental consistency (CAB)',
    async (t, rand) => {
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
    [[causal.length > 0, 'a causal pattern (CS or CC)']],
  )

  // C3: random splits carrying state give the one-shot result.
  await contract(
    'C3',
    'random-split state carry equals one-shot',
    async (t, rand) => {
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
    [[sup.offsets, 'queryOffset/keyOffset']],
  )

  // C4: unbounded settings degenerate to dense attention.
  await contract(
    'C4',
    'degeneracy to dense attention',
    async (t, rand) => {
      for (const d of op.degenerate ?? [])
        for (const pattern of d.patterns ?? patterns) {
          const p = problem(rand, pattern, sup.gqa)
          const g = golden(p.q, p.k, p.v, p.opts)
          const r = await exec(d.run, p.q, p.k, p.v, p.opts)
          close(t, r.out, g.out, tol.float64, `${d.name} ${pattern}: out`)
          if (r.lse && g.lse) close(t, r.lse, g.lse, tol.float64, `${d.name} ${pattern}: lse`)
        }
    },
    [[(op.degenerate ?? []).length > 0, 'degenerate variants']],
  )

  // C5: merge algebra on the operator's own states.
  await contract(
    'C5',
    'merge algebra on operator states',
    async (t, rand) => {
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
    [[sup.offsets, 'queryOffset/keyOffset']],
  )

  // C6: lazy observation equals the dense probabilities.
  await contract('C6', 'observation exactness', async (t, rand) => {
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
  })

  // C7: masking a key equals deleting it; permuting keys with the mask changes nothing.
  await contract('C7', 'masking = deletion, key-permutation invariance', async (t, rand) => {
    for (const pattern of patterns) {
      const p = problem(rand, pattern, sup.gqa)
      const Tk = p.k.shape[2]
      const base = (pq: number, pk: number): boolean => !p.opts.causal || pk <= pq
      const one = await exec(op.run, p.q, p.k, p.v, p.opts)
      const perm = shuffle(rand, span(0, Tk))
      if (sup.mask && sup.offsets) {
        const j = Math.floor(((rand() + 1) / 2) * Tk)
        const keep = span(0, Tk).filter(x => x !== j)
        const fixed = { queryOffset: p.qOff, keyOffset: 0 }
        const masked = await exec(op.run, p.q, p.k, p.v, { ...fixed, mask: masks.custom((_b, _h, pq, pk) => pk !== j && base(pq, pk)) })
        const deleted = await exec(op.run, p.q, pick(p.k, keep), pick(p.v, keep), { ...fixed, mask: masks.custom((_b, _h, pq, pk) => base(pq, keep[pk]!)) })
        close(t, masked.out, deleted.out, tol.float64, `${pattern}: masking key ${j} = deleting it`)
        const permuted = await exec(op.run, p.q, pick(p.k, perm), pick(p.v, perm), { ...fixed, mask: masks.custom((_b, _h, pq, pk) => base(pq, perm[pk]!)) })
        close(t, permuted.out, one.out, tol.float64, `${pattern}: permuting keys with the mask`)
        if (permuted.lse && one.lse) close(t, permuted.lse, one.lse, tol.float64, `${pattern}: permuting keys with the mask (lse)`)
      } else if (!p.opts.causal) {
        const permuted = await exec(op.run, p.q, pick(p.k, perm), pick(p.v, perm), p.opts)
        close(t, permuted.out, one.out, tol.float64, `${pattern}: permuting keys (no mask)`)
      } else skipped.push(`C7 ${pattern}: needs mask and offsets`)
    }
  })

  // C8: packed (segments) ≡ padded (left and right) ≡ per-sequence, for outputs and gradients.
  await contract(
    'C8',
    'varlen: packed = padded = per-sequence',
    async (t, rand) => {
      for (const pattern of patterns.filter(x => x === 'NS' || x === 'CS')) {
        const lens = [3, 5, 2]
        const Lmax = Math.max(...lens)
        const [H, Hkv, D, Dv] = [4, sup.gqa ? 2 : 4, 5, 3]
        const seqs = lens.map(L => ({ q: host(rand, [1, H, L, D]), k: host(rand, [1, Hkv, L, D]), v: host(rand, [1, Hkv, L, Dv]) }))
        const cot = lens.map(L => host(rand, [1, H, L, Dv]).values)
        const opts = pattern === 'CS' ? { causal: true } : {}
        const differentiable = sup.grad
        // Per-sequence: the ground truth.
        const per = await Promise.all(seqs.map((s, i) => withGrads(op.run, [s.q, s.k, s.v], opts, cot[i]!, differentiable)))
        // Packed along T with segment ids.
        const ids = lens.flatMap((L, i) => Array<number>(L).fill(i))
        const packed = await withGrads(op.run, (['q', 'k', 'v'] as const).map(n => catT(seqs.map(s => s[n]))) as [HostArray, HostArray, HostArray], { ...opts, mask: masks.segments(ids) }, concatCot(cot, H, lens, Dv), differentiable)
        const perCat = (f: (r: Graded) => HostArray) => catT(per.map(f))
        close(t, packed.out.values, perCat(r => r.out).values, tol.float64, `${pattern} packed: out`)
        if (differentiable)
          for (const [i, n] of (['dq', 'dk', 'dv'] as const).entries())
            close(t, packed.grads[i]!.values, perCat(r => r.grads[i]!).values, tol.float64, `${pattern} packed: ${n}`)
        for (const side of ['right', 'left'] as const) {
          const padOf = (b: number) => (side === 'left' ? Lmax - lens[b]! : 0)
          const pad = (n: 'q' | 'k' | 'v') => padBatch(seqs.map(s => s[n]), Lmax, padOf)
          const valid = (b: number, pk: number) => pk >= padOf(b) && pk < padOf(b) + lens[b]!
          const padCot = padBatch(cot.map((c, i) => ({ values: c, shape: [1, H, lens[i]!, Dv] as const })), Lmax, padOf)
          const padded = await withGrads(op.run, [pad('q'), pad('k'), pad('v')], { ...opts, mask: masks.custom((b, _h, _pq, pk) => valid(b, pk)) }, padCot.values, differentiable)
          const unpad = (x: HostArray, b: number) => sliceT(batch(x, b), padOf(b), padOf(b) + lens[b]!)
          const gather = (x: HostArray) => catT(lens.map((_, b) => unpad(x, b)))
          close(t, gather(padded.out).values, perCat(r => r.out).values, tol.float64, `${pattern} ${side}-padded: out`)
          if (differentiable)
            for (const [i, n] of (['dq', 'dk', 'dv'] as const).entries()) {
              close(t, gather(padded.grads[i]!).values, perCat(r => r.grads[i]!).values, tol.float64, `${pattern} ${side}-padded: ${n}`)
              const g = padded.grads[i]!
              const [B, Hg, T, Dg] = g.shape
              let stray = 0
              for (let b = 0; b < B; b++) for (let h = 0; h < Hg; h++) for (let j = 0; j < T; j++) if (!valid(b, j)) for (let d = 0; d < Dg; d++) stray = Math.max(stray, Math.abs(g.values[((b * Hg + h) * T + j) * Dg + d]!))
              t.ok(stray === 0, `${pattern} ${side}-padded: ${n} is 0 on padding`, { stray })
            }
        }
      }
    },
    [
      [sup.mask, 'mask'],
      [patterns.includes('NS') || patterns.includes('CS'), 'a self pattern (NS or CS)'],
    ],
  )

  return { ran, skipped }
}

// ---- helpers that touch tensors -----------------------------------------------------------------------------------

type StateT = { o: Tensor; lse: Tensor }

async function mergeHost(states: readonly Ran[], shape: readonly number[], dtype: DT): Promise<{ o: Float64Array; lse: Float64Array }> {
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

async function withStates<K extends string>(parts: readonly Ran[], shape: readonly number[], f: (s: StateT[]) => Record<K, StateT>): Promise<Record<K, { o: Float64Array; lse: Float64Array }>> {
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

async function observeHost(p: Problem, lse: Float64Array, rows: number[], cols: number[]): Promise<[Float64Array, Float64Array, Int32Array]> {
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

interface Graded {
  readonly out: HostArray
  readonly grads: HostArray[]
}

/** Output and (optionally) gradients of Σ cot·out with respect to q, k, v, in float64. */
async function withGrads(run: ConformanceRun, inputs: readonly [HostArray, HostArray, HostArray], opts: ConformanceRunOptions, cot: Float64Array, grads: boolean): Promise<Graded> {
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

function concatCot(cot: readonly Float64Array[], H: number, lens: readonly number[], Dv: number): Float64Array {
  return catT(cot.map((c, i) => ({ values: c, shape: [1, H, lens[i]!, Dv] as const }))).values
}

/** Stack [1, H, L_b, D] arrays into [B, H, Lmax, D], sequence b starting at row padOf(b), zeros elsewhere. */
function padBatch(xs: readonly HostArray[], Lmax: number, padOf: (b: number) => number): HostArray {
  const [, H, , D] = xs[0]!.shape
  const out = new Float64Array(xs.length * H * Lmax * D)
  xs.forEach((x, b) => {
    const L = x.shape[2]
    for (let h = 0; h < H; h++) out.set(x.values.subarray(h * L * D, (h + 1) * L * D), ((b * H + h) * Lmax + padOf(b)) * D)
  })
  return { values: out, shape: [xs.length, H, Lmax, D] }
}

