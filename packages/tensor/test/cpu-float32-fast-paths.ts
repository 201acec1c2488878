import t, { type Test } from 'tap'
import { add, broadcastTo, div, logSoftmax, logSumExp, matmul, maximum, memory, minimum, mul, profile, relu, scope, softmax, sub, sum, tensor, valueAndGrad, type Tensor } from '@heed/tensor'
import { broadcastPattern } from '../src/backends/cpu/broadcastPattern.js'
import { float32Binary } from '../src/backends/cpu/float32Binary.js'
import { float32RowSoftmax } from '../src/backends/cpu/float32RowSoftmax.js'
import { float32Sum } from '../src/backends/cpu/float32Sum.js'
import { float32Unary } from '../src/backends/cpu/float32Unary.js'
import { binaryFns, unaryFns } from '../src/backends/cpu/kernels/elementwise.js'
import type { CpuTensor } from '../src/backends/cpu/types.js'
import { mapBinary, mapUnary, reduceAxes } from '../src/backends/cpu/util.js'
import { checkGrad, prng, randomArray } from './helpers/numeric.js'

/**
 * The float32 fast paths of the CPU backend (specialised elementwise loops, contiguous sums) promise results
 * bit-identical to the general kernels, which compute each element in float64 and round once. Every check here
 * compares bit patterns (so −0, NaN and the last ulp count) against both a float64 reference written out with JS
 * numbers and the general path.
 */

const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1)
const bits = (x: number): number => new Uint32Array(Float32Array.of(x).buffer)[0]!

/** float32 values with adversarial magnitudes: signed zeros, subnormals, near-overflow, infinities, NaNs. */
function adversarial(rand: () => number, n: number): Float32Array {
  const special = [0, -0, 1.4e-45, -1.4e-45, 1e-38, -3.4e38, 3.4e38, Infinity, -Infinity, NaN, 1, -1, 0.5]
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    const r = rand()
    out[i] = r < 0.25 ? special[Math.floor(rand() * special.length)]! : (rand() - 0.5) * 10 ** Math.floor(rand() * 12 - 6)
  }
  return out
}

/** `actual` and `expected` hold the same float32 bit patterns (any NaN matches any NaN). */
function sameBits(t: Test, actual: ArrayLike<number>, expected: ArrayLike<number>, msg: string): void {
  if (actual.length !== expected.length) return void t.fail(`${msg}: length ${actual.length} vs ${expected.length}`)
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!
    const e = expected[i]!
    if (Number.isNaN(a) && Number.isNaN(e)) continue
    if (bits(a) !== bits(e)) return void t.fail(`${msg}: element ${i} is ${Object.is(a, -0) ? '-0' : a}, expected ${Object.is(e, -0) ? '-0' : e}`)
  }
  t.pass(msg)
}

const cpu = (values: Float32Array, shape: readonly number[]): CpuTensor => ({ values, shape, dtype: 'float32' })

/** Index into an operand of `shape` read over `out` with numpy broadcasting. */
function broadcastIndex(shape: readonly number[], out: readonly number[], flat: number): number {
  let idx = 0
  let stride = 1
  let rest = flat
  const coords: number[] = []
  for (let d = out.length - 1; d >= 0; d--) {
    coords[d] = rest % out[d]!
    rest = Math.floor(rest / out[d]!)
  }
  for (let d = shape.length - 1; d >= 0; d--) {
    const c = shape[d] === 1 ? 0 : coords[d + out.length - shape.length]!
    idx += c * stride
    stride *= shape[d]!
  }
  return idx
}

function broadcast(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length)
  return Array.from({ length: r }, (_, i) => {
    const da = a[a.length - r + i] ?? 1
    const db = b[b.length - r + i] ?? 1
    return da === 1 ? db : da
  })
}

const reference: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  maximum: (a, b) => (a !== a || b !== b ? NaN : Math.max(a, b)),
  minimum: (a, b) => (a !== a || b !== b ? NaN : Math.min(a, b)),
}

t.test('broadcast patterns', async t => {
  t.same(broadcastPattern([2, 3], [2, 3]), { kind: 'full' })
  t.same(broadcastPattern([], [2, 3]), { kind: 'scalar' })
  t.same(broadcastPattern([1, 1], [2, 3]), { kind: 'scalar' })
  t.same(broadcastPattern([3], [2, 3]), { kind: 'inner', period: 3 })
  t.same(broadcastPattern([1, 3, 4], [5, 3, 4]), { kind: 'inner', period: 12 })
  t.same(broadcastPattern([3, 1], [3, 4]), { kind: 'outer', period: 4 })
  t.same(broadcastPattern([5, 1, 1], [5, 3, 4]), { kind: 'outer', period: 12 })
  t.equal(broadcastPattern([5, 1, 4], [5, 3, 4]), null, 'a middle broadcast dim is neither')
  t.equal(broadcastPattern([3, 1], [2, 3, 4]), null)
})

t.test('float32 binary fast path: bit-identical to float64-then-round and to the general loop', async t => {
  const rand = prng(101)
  const cases: [readonly number[], readonly number[]][] = [
    [[7, 5], [7, 5]],
    [[7, 5], []],
    [[], [7, 5]],
    [[6, 9], [9]],
    [[9], [6, 9]],
    [[6, 1], [6, 9]],
    [[6, 9], [6, 1]],
    [[2, 3, 4], [3, 4]],
    [[2, 3, 4], [2, 1, 1]],
    [[1, 3, 1], [2, 3, 4]],
    [[0, 3], [3]],
  ]
  for (const name of Object.keys(reference)) {
    for (const [sa, sb] of cases) {
      const out = broadcast(sa, sb)
      const a = adversarial(rand, size(sa))
      const b = adversarial(rand, size(sb))
      const fast = float32Binary(name, cpu(a, sa), cpu(b, sb), out)
      const general = mapBinary(cpu(a, sa), cpu(b, sb), out, 'float32', binaryFns[name]!)
      const msg = `${name} [${sa.join(',')}] ⊕ [${sb.join(',')}]`
      if (sa.join() === '1,3,1') {
        t.equal(fast, undefined, `${msg}: both operands broadcast, left to the general loop`)
        continue
      }
      if (!fast) {
        t.fail(`${msg}: no fast path`)
        continue
      }
      t.same(fast.shape, out, `${msg}: shape`)
      const expected = Array.from({ length: size(out) }, (_, i) => Math.fround(reference[name]!(a[broadcastIndex(sa, out, i)]!, b[broadcastIndex(sb, out, i)]!)))
      sameBits(t, fast.values, expected, `${msg} vs float64 reference`)
      sameBits(t, fast.values, general.values, `${msg} vs general loop`)
    }
  }
  t.equal(float32Binary('pow', cpu(new Float32Array(2), [2]), cpu(new Float32Array(2), [2]), [2]), undefined, 'other ops keep the general loop')
  t.equal(float32Binary('add', { values: new Float64Array(2), shape: [2], dtype: 'float64' }, { values: new Float64Array(2), shape: [2], dtype: 'float64' }, [2]), undefined, 'float64 keeps the general loop')
})

t.test('float32 binary ops through the public API use the fast path and agree with the reference', async t => {
  const base = memory().tensors
  const rand = prng(7)
  const x = adversarial(rand, 4 * 6)
  const bias = adversarial(rand, 6)
  const xt = tensor(x, [4, 6])
  const bt = tensor(bias, [6])
  for (const [name, f] of [['add', add], ['sub', sub], ['mul', mul], ['div', div], ['maximum', maximum], ['minimum', minimum]] as const) {
    const y = f(xt, bt)
    sameBits(t, await y.data(), Array.from(x, (v, i) => Math.fround(reference[name]!(v, bias[i % 6]!))), `${name}(x, bias)`)
    const z = f(xt, 2.5)
    sameBits(t, await z.data(), Array.from(x, v => Math.fround(reference[name]!(v, 2.5))), `${name}(x, 2.5)`)
    y.dispose()
    z.dispose()
  }
  xt.dispose()
  bt.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')
})

t.test('float32 unary fast path: bit-identical to the general loop, ReLU and its step mask on every bit class', async t => {
  const rand = prng(5)
  const v = adversarial(rand, 997)
  // bit patterns the branch-free ReLU/step masks must classify: −0, negative NaN, the largest NaN payloads, +Inf
  const raw = new Uint32Array([0x80000000, 0xffc00000, 0x7fffffff, 0xffffffff, 0x7f800001, 0x7f800000, 0xff800000, 0x00000001, 0x80000001, 0x7f7fffff])
  const all = new Float32Array(v.length + raw.length)
  all.set(v)
  new Uint32Array(all.buffer).set(raw, v.length)
  for (const fn of ['relu', 'step', 'neg', 'abs', 'square', 'exp', 'log', 'sqrt', 'reciprocal', 'tanh', 'sigmoid']) {
    const fast = float32Unary(fn, cpu(all, [all.length]))
    if (!fast) {
      t.fail(`${fn}: no fast path`)
      continue
    }
    sameBits(t, fast.values, mapUnary(cpu(all, [all.length]), 'float32', unaryFns[fn]!).values, `${fn} vs general loop`)
  }
  const relu = float32Unary('relu', cpu(all, [all.length]))!.values
  const step = float32Unary('step', cpu(all, [all.length]))!.values
  sameBits(t, relu, Array.from(all, x => (x > 0 ? x : 0)), 'relu vs x > 0 ? x : 0')
  sameBits(t, step, Array.from(all, x => (x > 0 ? 1 : 0)), 'step vs x > 0 ? 1 : 0')
  t.equal(bits(relu[v.length]!), 0, 'relu(−0) is +0')
  t.equal(relu[v.length + 2], 0, 'relu(NaN) is 0 as on the general path')
  t.equal(relu[v.length + 5], Infinity, 'relu(+Inf) is +Inf')
  t.equal(float32Unary('erf', cpu(all, [all.length])), undefined, 'other functions keep the general loop')
})

t.test('float32 contiguous sums: bit-identical to float64 accumulation in order', async t => {
  const rand = prng(9)
  const shape = [3, 4, 5]
  // magnitudes 1e-20…1e20 with both signs: float64 sums of these depend on the order of accumulation
  const v = Float32Array.from(randomArray(rand, size(shape)).map((x, i) => x * 10 ** (((i * 7) % 41) - 20)))
  for (const axes of [[0], [1], [2], [0, 1], [1, 2], [0, 1, 2]]) {
    const fast = float32Sum(cpu(v, shape), axes)
    if (!fast) {
      t.fail(`axes ${axes}: no fast path`)
      continue
    }
    const general = reduceAxes(cpu(v, shape), axes, 'float32', () => 0, (acc, x) => acc + x, acc => acc)
    sameBits(t, fast, general, `sum over [${axes}] vs general loop`)
  }
  // against a reference written out for the bias-gradient case: sum over the batch axis
  const ref: number[] = []
  for (let j = 0; j < 20; j++) {
    let s = 0
    for (let i = 0; i < 3; i++) s += v[i * 20 + j]!
    ref.push(Math.fround(s))
  }
  sameBits(t, float32Sum(cpu(v, [3, 20]), [0])!, ref, 'sum over axis 0 vs float64 reference')
  // 1 + 1e20 − 1e20 is 0 in float64 left to right and 1 right to left: the order is part of the contract
  const c = Float32Array.of(1, 2, 1e20, 1e20, -1e20, -1e20)
  sameBits(t, float32Sum(cpu(c, [3, 2]), [0])!, [0, 0], 'cancelling column sums, in index order')
  sameBits(t, float32Sum(cpu(Float32Array.of(1, 1e20, -1e20), [1, 3]), [1])!, [0], 'cancelling row sum, in index order')
  // eight rows: the order must also hold across and within blocks of rows summed together (1e20 − 1e20 + 1 is 1)
  const col = [1e20, 0, 0, 0, -1e20, 1, 0, 0]
  sameBits(t, float32Sum(cpu(Float32Array.from(col.flatMap(x => [x, -x])), [8, 2]), [0])!, [1, -1], 'cancelling sums over 8 rows, in index order')
  t.equal(float32Sum(cpu(v, shape), [0, 2]), undefined, 'non-contiguous axes keep the general loop')
  const s = sum(tensor(v, shape), { axis: [1, 2] })
  sameBits(t, await s.data(), Array.from({ length: 3 }, (_, i) => Math.fround(Array.from(v.subarray(i * 20, i * 20 + 20)).reduce((a, x) => a + x, 0))), 'sum op over trailing axes')
  s.dispose()
})

t.test('broadcastTo block copies match numpy indexing', async t => {
  const rand = prng(3)
  for (const [from, to] of [[[4], [3, 4]], [[3, 1], [3, 4]], [[], [2, 2]], [[2, 1, 3], [2, 4, 3]], [[1, 3], [2, 3]]] as const) {
    const v = Float32Array.from(randomArray(rand, size(from)))
    const y = broadcastTo(tensor(v, from), to)
    sameBits(t, await y.data(), Array.from({ length: size(to) }, (_, i) => v[broadcastIndex(from, to, i)]!), `[${from}] → [${to}]`)
    y.dispose()
  }
})

t.test('matmul gradient skips the product for an operand nothing differentiates', async t => {
  const rand = prng(17)
  const x = tensor(randomArray(rand, 6 * 4), [6, 4])
  const w = tensor(randomArray(rand, 4 * 3), [4, 3])
  const f = (ww: Tensor, xx: Tensor): Tensor => sum(mul(matmul(xx, ww), matmul(xx, ww)))
  const onlyW = valueAndGrad(f)
  const both = valueAndGrad(f, { argnums: [0, 1] })
  const p1 = await profile(() => onlyW(w, x))
  const p2 = await profile(() => both(w, x))
  const count = (p: { readonly kernels: readonly { readonly kernel: string }[] }): number => p.kernels.filter(k => k.kernel === 'MatMul').length
  // forward: 2 products; backward: one per recorded matmul for w, and one more each for x when x is differentiated
  t.equal(count(p1), 4, 'w only: 2 forward + 2 backward products')
  t.equal(count(p2), 6, 'w and x: 2 forward + 4 backward products')
  const gw1 = await p1.result[1].data()
  const [gw2, gx2] = p2.result[1] as Tensor[]
  sameBits(t, gw1, await gw2!.data(), 'the gradient of w is the same either way')
  t.ok(gx2!.shape.join() === '6,4', 'x gradient still computed when asked for')
  for (const r of [p1.result, p2.result]) {
    r[0].dispose()
    for (const g of [r[1]].flat() as Tensor[]) g.dispose()
  }
  x.dispose()
  w.dispose()
  // finite differences through the pruned backward pass (x a float64 constant closed over, not differentiated)
  const xv = randomArray(rand, 5 * 3)
  const xc: Tensor = tensor(xv, [5, 3], 'float64')
  await checkGrad(t, (ww, bb) => scope(() => sum(mul(add(matmul(xc, ww), bb), add(matmul(xc, ww, { transposeB: false }), bb)))), [
    { v: randomArray(rand, 3 * 2), shape: [3, 2] },
    { v: randomArray(rand, 2), shape: [2] },
  ])
  // transposed operands, the constant on either side
  const ct: Tensor = tensor(randomArray(rand, 3 * 5), [3, 5], 'float64')
  await checkGrad(t, ww => scope(() => sum(mul(matmul(ct, ww, { transposeA: true, transposeB: true }), matmul(ct, ww, { transposeA: true, transposeB: true })))), [
    { v: randomArray(rand, 4 * 3), shape: [4, 3] },
  ])
  await checkGrad(t, ww => scope(() => sum(mul(matmul(ww, ct, { transposeA: true }), matmul(ww, ct, { transposeA: true })))), [{ v: randomArray(rand, 3 * 2), shape: [3, 2] }])
  ct.dispose()
  xc.dispose()
})

t.test('float32 row softmax family below the WebAssembly threshold: bit-identical to float64 then one rounding', async t => {
  const rand = prng(23)
  for (const [rows, cols] of [[1, 1], [6, 10], [5, 33], [3, 2]] as const) {
    const v = Float32Array.from(randomArray(rand, rows * cols, -1, 1).map((x, i) => x * 10 ** ((i % 7) - 3)))
    if (rows >= 5) {
      // a NaN mid-row, a +Infinity row, an all −Infinity row, a −Infinity among finite values, ±1e4 logits
      v[1 * cols + 3] = NaN
      v[2 * cols + cols - 1] = Infinity
      v.fill(-Infinity, 3 * cols, 4 * cols)
      v[0] = -Infinity
      v[4 * cols] = 1e4
      v[4 * cols + 1] = -1e4
    }
    const x64 = tensor(Float64Array.from(v), [rows, cols], 'float64')
    for (const op of ['softmax', 'logSoftmax', 'logSumExp'] as const) {
      const f = op === 'softmax' ? softmax : op === 'logSoftmax' ? logSoftmax : (u: Tensor) => logSumExp(u, { axis: -1 })
      const ref = f(x64)
      const expected = Array.from(await ref.data(), Math.fround)
      ref.dispose()
      sameBits(t, float32RowSoftmax(v, rows, cols, op), expected, `${op} ${rows}×${cols}`)
    }
    x64.dispose()
  }
})

t.test('ReLU gradient in one kernel: dy where x > 0, else +0, bit for bit; finite differences', async t => {
  const rand = prng(31)
  const x = adversarial(rand, 1500)
  const dy = adversarial(rand, 1500)
  const fast = float32Binary('reluGrad', cpu(dy, [30, 50]), cpu(x, [30, 50]), [30, 50])
  if (!fast) return void t.fail('no fast path')
  sameBits(t, fast.values, Array.from(x, (v, i) => (v > 0 ? dy[i]! : 0)), 'vs x > 0 ? dy : 0')
  sameBits(t, fast.values, mapBinary(cpu(dy, [30, 50]), cpu(x, [30, 50]), [30, 50], 'float32', binaryFns['reluGrad']!).values, 'vs general loop')
  t.equal(float32Binary('reluGrad', cpu(dy.subarray(0, 50), [50]), cpu(x, [30, 50]), [30, 50]), undefined, 'broadcast operands keep the general loop')

  // through valueAndGrad: a NaN or infinite cotangent where x ≤ 0 gives 0 (threshold_backward), not NaN
  const base = memory().tensors
  const xs = tensor([-2, -0, 0, 3, -1, 2], [6])
  const c = tensor([NaN, Infinity, 1, 5, -Infinity, -0], [6])
  const [v, gx] = valueAndGrad((u: Tensor) => sum(mul(relu(u), c)))(xs)
  sameBits(t, await gx.data(), [0, 0, 0, 5, 0, -0], 'masked cotangents')
  for (const u of [xs, c, v, gx]) u.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors')

  // away from the kink, in float64, first and second order (the mask's own gradient passes ddy through)
  const pts = randomArray(rand, 12).map(u => (u >= 0 ? u + 0.1 : u - 0.1))
  await checkGrad(t, u => scope(() => sum(mul(relu(u), relu(u)))), [{ v: pts, shape: [3, 4] }])
  const xg = tensor(pts, [3, 4], 'float64')
  const w = tensor(randomArray(rand, 12), [3, 4], 'float64')
  // d/dw of Σ (dReLU(x)/dx · w) is step(x): the gradient of the gradient through the fused mask
  const inner = (ww: Tensor): Tensor => scope(() => sum(mul(valueAndGrad((u: Tensor) => sum(mul(relu(u), ww)))(xg)[1], ww)))
  const [iv, gw] = valueAndGrad(inner)(w)
  const ws = await w.data()
  t.same(Array.from(await gw.data()), pts.map((p, i) => (p > 0 ? 2 * ws[i]! : 0)), 'second order: 2·w where x > 0, else 0')
  for (const u of [xg, w, iv, gw]) u.dispose()
  t.equal(memory().tensors, base, 'no leaked tensors after the second-order check')
})
