import type { Attrs } from '../../../backend.js'
import type { DType } from '../../../dtype.js'
import { BackendError } from '../../../errors.js'
import { sizeOf, shapesEqual, type Shape } from '../../../shape.js'
import { computeType, type ComputeType } from '../dtypes.js'
import type { GpuTensor, WebGpuContext, WebGpuKernel, WebGpuKernelTable } from '../types.js'
import { bindings, broadcastStrides, enableF16, flatIndex, grid, load, MATH, MAX_RANK, Uniforms, WG } from '../wgsl.js'

/** Float expressions of the `Unary` kernel over `x: f32`, mirroring the CPU's unaryFns. */
const unaryF32: Readonly<Record<string, string>> = {
  neg: '-x',
  abs: 'abs(x)',
  sign: 'sign(x)',
  square: 'x * x',
  reciprocal: '1.0 / x',
  exp: 'exp(x)',
  log: 'log(x)',
  log1p: 'log1p_(x)',
  expm1: 'expm1_(x)',
  sqrt: 'sqrt(x)',
  rsqrt: 'inverseSqrt(x)',
  sin: 'sin(x)',
  cos: 'cos(x)',
  tanh: 'tanh_(x)',
  erf: 'erf_(x)',
  floor: 'floor(x)',
  ceil: 'ceil(x)',
  round: 'round(x)',
  sigmoid: 'sigmoid_(x)',
  relu: 'select(0.0, x, x > 0.0 || is_nan(x))',
  step: 'select(0.0, 1.0, x > 0.0)',
  gelu: '0.5 * x * (1.0 + erf_(x * 0.70710678118654752))',
  geluGrad: '0.5 * (1.0 + erf_(x * 0.70710678118654752)) + x * 0.3989422804014327 * exp(-0.5 * x * x)',
  geluTanh: '0.5 * x * (1.0 + tanh_(0.7978845608028654 * (x + 0.044715 * x * x * x)))',
  geluTanhGrad:
    '0.5 * (1.0 + tanh_(0.7978845608028654 * (x + 0.044715 * x * x * x))) + 0.5 * x * (1.0 - pow(tanh_(0.7978845608028654 * (x + 0.044715 * x * x * x)), 2.0)) * 0.7978845608028654 * (1.0 + 0.134145 * x * x)',
  silu: 'x * sigmoid_(x)',
  siluGrad: 'sigmoid_(x) * (1.0 + x * (1.0 - sigmoid_(x)))',
  softplus: 'softplus_(x)',
  logSigmoid: '-softplus_(-x)',
  isNaN: 'select(0.0, 1.0, is_nan(x))',
  isFinite: 'select(1.0, 0.0, is_nan(x) || is_inf(x))',
  logicalNot: 'select(0.0, 1.0, x == 0.0)',
}

const unaryInt: Readonly<Record<string, (t: ComputeType) => string>> = {
  neg: t => (t === 'u32' ? '0u - x' : '-x'),
  abs: t => (t === 'u32' ? 'x' : 'abs(x)'),
  sign: t => (t === 'u32' ? 'select(0u, 1u, x > 0u)' : 'sign(x)'),
  square: () => 'x * x',
  relu: t => (t === 'u32' ? 'x' : 'max(x, 0)'),
  step: t => `select(${t}(0), ${t}(1), x > ${t}(0))`,
  logicalNot: t => `select(${t}(0), ${t}(1), x == ${t}(0))`,
  isNaN: t => `${t}(0)`,
  isFinite: t => `${t}(1)`,
}

/** Float expressions of the `Binary` kernel over `a, b: f32`. */
const binaryF32: Readonly<Record<string, string>> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  pow: 'pow_(a, b)',
  maximum: 'select(max(a, b), nan_f32(), is_nan(a) || is_nan(b))',
  minimum: 'select(min(a, b), nan_f32(), is_nan(a) || is_nan(b))',
  mod: 'a - floor(a / b) * b',
  atan2: 'atan2(a, b)',
  reluGrad: 'select(0.0, a, b > 0.0)',
  // dy · gelu′(x) in one pass (the CPU's float32 loops fuse it the same way)
  geluBackward: 'a * (0.5 * (1.0 + erf_(b * 0.70710678118654752)) + b * 0.3989422804014327 * exp(-0.5 * b * b))',
  geluTanhBackward:
    'a * (0.5 * (1.0 + tanh_(0.7978845608028654 * (b + 0.044715 * b * b * b))) + 0.5 * b * (1.0 - pow(tanh_(0.7978845608028654 * (b + 0.044715 * b * b * b)), 2.0)) * 0.7978845608028654 * (1.0 + 0.134145 * b * b))',
}
const binaryInt: Readonly<Record<string, (t: ComputeType) => string>> = {
  add: () => 'a + b',
  sub: () => 'a - b',
  mul: () => 'a * b',
  // matches the CPU: integer division by zero gives 0 (JS `(a / 0) | 0`)
  div: t => `select(a / b, ${t}(0), b == ${t}(0))`,
  maximum: () => 'max(a, b)',
  minimum: () => 'min(a, b)',
  reluGrad: t => `select(${t}(0), a, b > ${t}(0))`,
  mod: t =>
    t === 'u32'
      ? 'select(a % b, 0u, b == 0u)'
      : 'select(select(a % b, a % b + b, (a % b) != 0 && ((a % b) < 0) != (b < 0)), 0, b == 0)',
}
const compare: Readonly<Record<string, string>> = {
  equal: 'a == b',
  notEqual: 'a != b',
  less: 'a < b',
  lessEqual: 'a <= b',
  greater: 'a > b',
  greaterEqual: 'a >= b',
  logicalAnd: 'a != 0u && b != 0u',
  logicalOr: 'a != 0u || b != 0u',
  logicalXor: '(a != 0u) != (b != 0u)',
}

const POW = /* wgsl */ `
fn pow_(a: f32, b: f32) -> f32 {
  // WGSL pow is undefined for a < 0; follow JS: integral exponents keep the sign, others give NaN
  if (b == 0.0) { return 1.0; }
  if (a > 0.0 || is_nan(a) || is_nan(b)) { return pow(a, b); }
  if (a == 0.0) { return select(inf_f32(), 0.0, b > 0.0); }
  if (floor(b) != b) { return nan_f32(); }
  let m = pow(-a, b);
  return select(m, -m, (abs(b) % 2.0) == 1.0);
}
`

interface Operand {
  readonly t: GpuTensor
  readonly broadcast: boolean
}

/**
 * One shader template for every elementwise kernel: each operand is loaded (with broadcast index arithmetic
 * only when its shape differs from the output's), widened to its compute type, combined by `expr`, and stored.
 */
function elementwise(ctx: WebGpuContext, name: string, inputs: readonly GpuTensor[], outShape: Shape, outDtype: DType, expr: string, exprKey: string, decls: string): GpuTensor {
  const out = ctx.output(outDtype, outShape)
  const n = sizeOf(outShape)
  if (n === 0) return out
  if (outShape.length > MAX_RANK) throw new BackendError({ op: name, expected: `rank ≤ ${MAX_RANK} on webgpu`, actual: outShape.length })
  const ops: Operand[] = inputs.map(t => ({ t, broadcast: !shapesEqual(t.shape, outShape) }))
  const names = ops.map((_, i) => `X${i}`)
  const wide = (st: string): boolean => st !== 'f16'
  if (n % 4 === 0 && wide(out.data.st) && ops.every(o => wide(o.t.data.st) && (!o.broadcast || sizeOf(o.t.shape) === 1)))
    return vectorised(ctx, name, ops, out, n, expr, exprKey, decls)
  const key = `ew:${name}:${exprKey}:${ops.map(o => `${o.t.data.st}${o.t.dtype}${o.broadcast ? 'b' : ''}`).join(',')}->${out.data.st}${outDtype}:f16=${ctx.f16}`
  const u = new Uniforms().u32(n, outShape.length, 0, 0).dims(outShape)
  for (const o of ops) u.dims(o.broadcast ? broadcastStrides(o.t.shape, outShape) : [])
  const code = (): string => {
    const loads = ops
      .map((o, k) => {
        const idx = o.broadcast ? `bidx(i, ${8 + 8 * k}u)` : 'i'
        return `  let ${inputs.length === 1 ? 'x' : ['a', 'b', 'c'][k]} = ${load(names[k]!, idx, o.t.data.st, o.t.dtype)};`
      })
      .join('\n')
    return `${enableF16(ctx)}${Uniforms.struct(['n', 'rank'], 2 + 2 * ops.length)}${bindings(inputs, [out], names, ['Y'])}
${MATH}${decls}
fn bidx(i: u32, base: u32) -> u32 {
  var rem = i;
  var off = 0u;
  for (var k = 0u; k < p.rank; k++) {
    let d = p.rank - 1u - k;
    let dim = max(word(d), 1u);
    off += (rem % dim) * word(base + d);
    rem = rem / dim;
  }
  return off;
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${flatIndex()};
  if (i >= p.n) { return; }
${loads}
  Y[i] = ${out.data.st}(${expr});
}
`
  }
  ctx.dispatch({ key, code, inputs, outputs: [out], uniforms: u.buffer(), workgroups: grid(n) })
  return out
}

const attr = <T>(attrs: Attrs, k: string): T => attrs[k] as T

/**
 * The common case, all operands full-size or scalar and 32-bit storage: each invocation loads and stores whole
 * vec4s (16-byte accesses, a quarter of the invocations) and evaluates the scalar expression per lane, so every
 * expression of the tables above works unchanged.
 */
function vectorised(ctx: WebGpuContext, name: string, ops: readonly Operand[], out: GpuTensor, n: number, expr: string, exprKey: string, decls: string): GpuTensor {
  const scalar = ops.map(o => o.broadcast)
  const key = `ew4:${name}:${exprKey}:${ops.map(o => `${o.t.data.st}${o.t.dtype}${o.broadcast ? 's' : ''}`).join(',')}->${out.data.st}${out.dtype}`
  const lane = (k: number): string => (ops.length === 1 ? 'x' : ['a', 'b', 'c'][k]!)
  const code = (): string => {
    const decl = ops
      .map((o, k) => `@group(0) @binding(${k}) var<storage, read> X${k}: array<${scalar[k] ? o.t.data.st : `vec4<${o.t.data.st}>`}>;`)
      .join('\n')
    const loads = ops.map((o, k) => `  let v${k} = X${k}[${scalar[k] ? '0' : 'i'}];`).join('\n')
    const lanes = ops
      .map((o, k) => {
        const ct = computeType(o.t.dtype)
        const src = scalar[k] ? `v${k}` : `v${k}[ln]`
        return `    let ${lane(k)} = ${o.t.data.st === ct ? src : `${ct}(${src})`};`
      })
      .join('\n')
    return `struct Params { n4: u32, _p0: u32, _p1: u32, _p2: u32 }
${decl}
@group(0) @binding(${ops.length}) var<storage, read_write> Y: array<vec4<${out.data.st}>>;
@group(0) @binding(${ops.length + 1}) var<uniform> p: Params;
${MATH}${decls}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${flatIndex()};
  if (i >= p.n4) { return; }
${loads}
  var r: vec4<${out.data.st}>;
  for (var ln = 0u; ln < 4u; ln++) {
${lanes}
    r[ln] = ${out.data.st}(${expr});
  }
  Y[i] = r;
}
`
  }
  const u = new Uniforms().u32(n / 4, 0, 0, 0)
  ctx.dispatch({ key, code, inputs: ops.map(o => o.t), outputs: [out], uniforms: u.buffer(), workgroups: grid(n / 4) })
  return out
}

/** WGSL conversion of a compute-type value `v` of `from` to the compute type of `to`, following the CPU's Cast. */
function convert(v: string, from: DType, to: DType): string {
  const ct = computeType(to)
  if (to === 'bool') return computeType(from) === 'f32' ? `select(0u, 1u, ${v} != 0.0 && !is_nan(${v}))` : `select(0u, 1u, ${v} != ${computeType(from)}(0))`
  const cf = computeType(from)
  if (cf === ct) return v
  if (cf !== 'f32' && ct !== 'f32') return `bitcast<${ct}>(${v})`
  return `${ct}(${v})`
}

export const elementwiseKernels = {
  Unary: (ctx, [x], attrs) => {
    const fn = attr<string>(attrs, 'fn')
    const outDtype = attr<DType | undefined>(attrs, 'dtype') ?? x!.dtype
    const ct = computeType(x!.dtype)
    const expr = ct === 'f32' ? unaryF32[fn] : unaryInt[fn]?.(ct)
    if (expr === undefined) throw new BackendError({ op: fn, actual: x!.dtype }, 'no WebGPU expression for this dtype')
    return elementwise(ctx, 'Unary', [x!], x!.shape, outDtype, convert(`(${expr})`, x!.dtype, outDtype), fn, '')
  },
  Binary: (ctx, [a, b], attrs) => {
    const fn = attr<string>(attrs, 'fn')
    const shape = attr<Shape>(attrs, 'shape')
    const outDtype = attr<DType>(attrs, 'dtype')
    const ct = computeType(a!.dtype)
    let expr: string | undefined
    if (compare[fn] !== undefined) expr = `select(0u, 1u, ${compare[fn]})`
    else expr = ct === 'f32' ? binaryF32[fn] : binaryInt[fn]?.(ct)
    if (expr === undefined) throw new BackendError({ op: fn, actual: a!.dtype }, 'no WebGPU expression for this dtype')
    return elementwise(ctx, 'Binary', [a!, b!], shape, outDtype, `(${expr})`, fn, ct === 'f32' ? POW : '')
  },
  // operands load as a (the condition), b and c (the branches)
  Where: (ctx, [c, a, b], attrs) => elementwise(ctx, 'Where', [c!, a!, b!], attr<Shape>(attrs, 'shape'), a!.dtype, 'select(c, b, a != 0u)', 'where', ''),
  Clamp: (ctx, [x, lo, hi], attrs) => {
    const f = computeType(x!.dtype) === 'f32'
    const expr = f ? 'select(min(max(a, b), c), nan_f32(), is_nan(a) || is_nan(b) || is_nan(c))' : 'min(max(a, b), c)'
    return elementwise(ctx, 'Clamp', [x!, lo!, hi!], attr<Shape>(attrs, 'shape'), x!.dtype, expr, 'clamp', '')
  },
  Cast: (ctx, [x], attrs) => {
    const to = attr<DType>(attrs, 'dtype')
    return elementwise(ctx, 'Cast', [x!], x!.shape, to, convert('x', x!.dtype, to), `${x!.dtype}->${to}`, '')
  },
  BroadcastTo: (ctx, [x], attrs) => elementwise(ctx, 'BroadcastTo', [x!], attr<Shape>(attrs, 'shape'), x!.dtype, 'x', 'bcast', ''),
  Identity: (_ctx, [x]) => x!,
  Reshape: (_ctx, [x], attrs) => ({ data: x!.data, shape: attr<Shape>(attrs, 'shape'), dtype: x!.dtype }),
} satisfies Partial<WebGpuKernelTable>
