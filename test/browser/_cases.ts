/**
 * The op cases the browser page runs on WebGPU. Shared by the page (bundled for Chromium) and by test/browser.ts,
 * which runs the same functions on the CPU backend in float32 for the tolerance bound and checks both against its
 * own float64 references. Named with a leading underscore so tap does not run it as a test file.
 */
import { add, cast, exp, gather, gelu, logSumExp, matmul, mean, mul, softmax, sum, tanh, valueAndGrad, type Tensor } from '@heed/tensor'
import { prng } from '../../packages/tensor/test/helpers/numeric.js'

export interface InputSpec {
  readonly shape: readonly number[]
  readonly dtype: 'float32' | 'int32'
  readonly values: readonly number[]
}

export interface BrowserCase {
  readonly name: string
  readonly inputs: readonly InputSpec[]
  /** Every output as a flat list, so the page and the test see the same thing whatever the op returns. */
  readonly run: (...xs: Tensor[]) => Tensor[]
  /** The parity floor (see packages/tensor/test/helpers/parity.ts), relative to the output's magnitude. */
  readonly atol?: number
}

/** What the page leaves in `window.__heedResults`. */
export interface CaseResult {
  readonly name: string
  readonly outputs: readonly { readonly shape: number[]; readonly dtype: string; readonly backend: string; readonly values: number[] }[]
  readonly ms: number
  /** Live WebGPU tensors after the case minus before: anything but 0 is a leak. */
  readonly leaked: number
  readonly error?: string
}

export interface PageResults {
  readonly userAgent: string
  readonly navigatorGpu: boolean
  /** Set when the backend could not start: no navigator.gpu, or no adapter. */
  readonly unavailable?: string
  /** Anything else that went wrong outside a case. */
  readonly error?: string
  readonly adapter?: { readonly vendor: string; readonly architecture: string; readonly description: string; readonly fallback: boolean; readonly f16: boolean; readonly timestamps: boolean }
  readonly backend?: string
  readonly initMs?: number
  readonly totalMs?: number
  readonly cases?: readonly CaseResult[]
}

const rand = prng(20240611)
// Inputs are float32 values already, so the float64 reference sees exactly what the GPU sees.
const floats = (n: number, lo = -2, hi = 2): number[] => Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * rand()))
const f32 = (shape: readonly number[], lo?: number, hi?: number, values?: readonly number[]): InputSpec => ({
  shape,
  dtype: 'float32',
  values: values ? values.map(Math.fround) : floats(shape.reduce((a, b) => a * b, 1), lo, hi),
})
const i32 = (shape: readonly number[], values: readonly number[]): InputSpec => ({ shape, dtype: 'int32', values })

// Saturation and tiny arguments at the end, where a naive exp-based tanh overflows or loses precision.
const unaryX = [...floats(250, -6, 6), -20, 20, -9.5, 9.5, 1e-4, -1e-6, 0]

const big = 1e4
const softmaxRows = [
  [big, -big, 0, big - 1, big - 20, -big],
  [-big, -big, -big, -big + 3, -big, -big + 0.5],
  floats(6, -3, 3),
  [big, big, big, big, big, big],
].flat()

export const cases: readonly BrowserCase[] = [
  {
    name: 'add with broadcasting [4,1,5] + [3,1]',
    inputs: [f32([4, 1, 5]), f32([3, 1])],
    run: (a, b) => [add(a!, b!)],
  },
  {
    name: 'exp, tanh, gelu (exact) and gelu (tanh)',
    inputs: [f32([unaryX.length], undefined, undefined, unaryX)],
    run: x => [exp(x!), tanh(x!), gelu(x!), gelu(x!, { approximate: 'tanh' })],
  },
  {
    name: 'sum and mean over axes, and a long row',
    // 4099 elements per row: past one workgroup, so the tree reduction runs.
    inputs: [f32([3, 5, 7]), f32([2, 4099], -1, 1)],
    run: (x, y) => [sum(x!, { axis: [0, 2] }), mean(x!, { axis: 1, keepDims: true }), sum(x!), mean(y!, { axis: -1 }), sum(y!, { axis: 0 })],
  },
  {
    name: 'softmax and logSumExp at ±1e4 logits',
    inputs: [f32([4, 6], undefined, undefined, softmaxRows)],
    run: x => [softmax(x!), logSumExp(x!, { axis: -1 })],
  },
  {
    name: 'matmul: odd sizes, transposeB, batched',
    inputs: [f32([17, 33]), f32([29, 33]), f32([3, 5, 7]), f32([7, 9]), f32([65, 130], -1, 1), f32([130, 67], -1, 1)],
    run: (a, b, c, d, e, f) => [matmul(a!, b!, { transposeB: true }), matmul(c!, d!), matmul(e!, f!)],
  },
  {
    name: 'gather along axis 0 and axis 1',
    inputs: [f32([6, 4]), i32([5], [3, 1, 5, 0, 5]), i32([3], [3, 0, 3])],
    run: (x, i, j) => [gather(x!, i!, 0), gather(x!, j!, 1)],
  },
  {
    name: 'valueAndGrad of sum(c * tanh(x @ w + b))',
    inputs: [f32([5, 7]), f32([7, 3], -1, 1), f32([3], -0.5, 0.5), f32([5, 3])],
    run: (x, w, b, c) => {
      const loss = (x: Tensor, w: Tensor, b: Tensor): Tensor => sum(mul(c!, tanh(add(matmul(x, w), b))))
      const [v, g] = valueAndGrad(loss, { argnums: [0, 1, 2] })(x!, w!, b!)
      return [v, ...g]
    },
    // gradients go through more ops than a single kernel: parity.ts also widens the floor tenfold for them
    atol: 1e-4,
  },
  {
    name: 'float16: x * y + exp(x), its sum, and a matmul',
    inputs: [f32([37], -2, 2), f32([37], -2, 2), f32([9, 11], -1, 1), f32([11, 5], -1, 1)],
    run: (x, y, a, b) => {
      const xh = cast(x!, 'float16')
      const z = add(mul(xh, cast(y!, 'float16')), exp(xh))
      return [z, sum(z), matmul(cast(a!, 'float16'), cast(b!, 'float16'))]
    },
    // one float16 rounding of the result is allowed beyond the CPU's own float16 error
    atol: 1e-3,
  },
]
