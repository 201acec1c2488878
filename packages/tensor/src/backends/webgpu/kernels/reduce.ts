import type { Attrs } from '../../../backend.js'
import type { DType } from '../../../dtype.js'
import { BackendError } from '../../../errors.js'
import { reducedShape, stridesOf } from '../../../shape.js'
import { computeType, type ComputeType } from '../dtypes.js'
import type { GpuTensor, WebGpuContext, WebGpuKernel, WebGpuKernelTable } from '../types.js'
import { bindings, enableF16, flatIndex, grid, load, MATH, MAX_RANK, Uniforms, WG } from '../wgsl.js'

/** Geometry of a reduction: kept dims (outer) and reduced dims, with the input strides of each. */
export interface ReduceGeometry {
  readonly outSize: number
  readonly redSize: number
  readonly keep: readonly number[]
  readonly keepStrides: readonly number[]
  readonly red: readonly number[]
  readonly redStrides: readonly number[]
}

export function reduceGeometry(shape: readonly number[], axes: readonly number[]): ReduceGeometry {
  const st = stridesOf(shape)
  const keepAxes = shape.map((_, i) => i).filter(i => !axes.includes(i))
  return {
    outSize: keepAxes.reduce((p, i) => p * shape[i]!, 1),
    redSize: axes.reduce((p, i) => p * shape[i]!, 1),
    keep: keepAxes.map(i => shape[i]!),
    keepStrides: keepAxes.map(i => st[i]!),
    red: axes.map(i => shape[i]!),
    redStrides: axes.map(i => st[i]!),
  }
}

/** WGSL: `base(o)` input offset of output `o`; `roff(k)` offset of the k-th reduced element. */
export const REDUCE_INDEX = /* wgsl */ `
fn base(o: u32) -> u32 {
  var rem = o; var off = 0u;
  for (var d = i32(p.keepRank) - 1; d >= 0; d--) { let dim = word(u32(d)); off += (rem % dim) * word(8u + u32(d)); rem = rem / dim; }
  return off;
}
fn roff(k: u32) -> u32 {
  var rem = k; var off = 0u;
  for (var d = i32(p.redRank) - 1; d >= 0; d--) { let dim = word(16u + u32(d)); off += (rem % dim) * word(24u + u32(d)); rem = rem / dim; }
  return off;
}
`

export const reduceUniforms = (g: ReduceGeometry): Uniforms =>
  new Uniforms().u32(g.outSize, g.redSize, g.keep.length, g.red.length).dims(g.keep).dims(g.keepStrides).dims(g.red).dims(g.redStrides)

// ---- tree-reduction policy ------------------------------------------------------------------------------------

/**
 * Reduced extents from this size up get a workgroup per output slice (strided loads, shared-memory tree);
 * below it one invocation walks a whole slice, which wins when there are many short slices.
 */
export const TREE_MIN_EXTENT = 128
/** Extents from this size up use the wide workgroup; shorter ones would leave most of its threads idle. */
export const TREE_WIDE_EXTENT = 2048
export const TREE_WG_NARROW = 64
export const TREE_WG_WIDE = 256

/** Workgroup width of the tree path for a reduced extent, or 0 for the one-invocation-per-slice path. */
export const treeWidth = (redSize: number): number => (redSize < TREE_MIN_EXTENT ? 0 : redSize < TREE_WIDE_EXTENT ? TREE_WG_NARROW : TREE_WG_WIDE)

// ---- WGSL building blocks --------------------------------------------------------------------------------------

/**
 * Compensated f32 sums: the state is (hi, lo) with hi + lo the running sum; combining two states is an
 * error-free TwoSum of the high parts, so the sequential walk and the tree order both stay within a couple of
 * ulps of the float64 CPU reference.
 */
const KAHAN = /* wgsl */ `
fn ks(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let s = a.x + b.x;
  let bp = s - a.x;
  let e = (a.x - (s - bp)) + (b.x - bp);
  return vec2<f32>(s, a.y + b.y + e);
}
fn kv(a: vec2<f32>) -> f32 { return a.x + a.y; }
`

/** One pass over every slice: a monoid (`init`, `combine(a, b)`) fed `lift` for each element. */
interface Phase {
  readonly type: string
  readonly init: string
  /** The state of one element; sees `v` (compute type), `k` (u32 index within the slice) and earlier `r<i>`. */
  readonly lift: string
  /** WGSL expression combining states `a` and `b`; must be associative and commutative up to rounding. */
  readonly combine: string
  /** Statements run once before the pass (after the earlier passes), e.g. a mean the lift subtracts. */
  readonly pre?: string
}

interface SliceSpec {
  /** Distinguishes shader texts that share the rest of the key. */
  readonly name: string
  readonly phases: readonly Phase[]
  /** WGSL declarations (structs, functions) the phases use. */
  readonly decls?: string
  readonly out: { readonly kind: 'reduce'; readonly dtype: DType; readonly keepDims: boolean; readonly value: string } | { readonly kind: 'map'; readonly value: string }
  /** Extra f32 uniforms, read in WGSL as `fu(0u)`, `fu(1u)`, ... */
  readonly floats?: readonly number[]
}

const HEADER = ['outSize', 'redSize', 'keepRank', 'redRank']
const DIM_VEC4S = 8

function checkRank(name: string, x: GpuTensor): void {
  if (x.shape.length > MAX_RANK) throw new BackendError({ op: name, expected: `rank ≤ ${MAX_RANK} on webgpu`, actual: x.shape.length })
}

const prelude = (ctx: WebGpuContext, x: GpuTensor, out: GpuTensor, nFloats: number, decls: string): string =>
  `${enableF16(ctx)}${Uniforms.struct(HEADER, DIM_VEC4S + Math.ceil(nFloats / 4))}${bindings([x], [out], ['X'], ['Y'])}
fn fu(i: u32) -> f32 { return bitcast<f32>(word(${4 * DIM_VEC4S}u + i)); }
${MATH}${KAHAN}${REDUCE_INDEX}${decls}`

/**
 * Every reduction, softmax and moment kernel: a few passes over each slice (kept index `o`), each folding its
 * monoid, then either one value per slice (`reduce`) or a same-shape output (`map`). Small extents run one
 * invocation per slice; large ones a workgroup per slice whose threads fold strided elements and then meet in
 * a shared-memory tree.
 */
function sliceKernel(ctx: WebGpuContext, x: GpuTensor, axes: readonly number[], spec: SliceSpec): GpuTensor {
  checkRank(spec.name, x)
  const out = spec.out.kind === 'reduce' ? ctx.output(spec.out.dtype, reducedShape(x.shape, axes, spec.out.keepDims)) : ctx.output(x.dtype, x.shape)
  const g = reduceGeometry(x.shape, axes)
  if (g.outSize === 0 || (spec.out.kind === 'map' && g.redSize === 0)) return out
  const tw = treeWidth(g.redSize)
  const floats = spec.floats ?? []
  const st = out.data.st
  const ld = (i: string): string => load('X', i, x.data.st, x.dtype)
  const key = `slice:${spec.name}:${x.data.st}${x.dtype}->${st}${out.dtype}:tw=${tw}:f16=${ctx.f16}`
  const code = (): string => {
    const phases = spec.phases.map((ph, i) => `fn c${i}(a: ${ph.type}, b: ${ph.type}) -> ${ph.type} { return ${ph.combine}; }`).join('\n')
    let body: string
    if (tw === 0) {
      const folds = spec.phases
        .map(
          (ph, i) => `${ph.pre ?? ''}
  var s${i}: ${ph.type} = ${ph.init};
  for (var k = 0u; k < p.redSize; k++) { let v = ${ld('b + roff(k)')}; s${i} = c${i}(s${i}, ${ph.lift}); }
  let r${i} = s${i};`,
        )
        .join('\n')
      const write =
        spec.out.kind === 'reduce'
          ? `  Y[o] = ${st}(${spec.out.value});`
          : `  for (var k = 0u; k < p.redSize; k++) { let i = b + roff(k); let v = ${ld('i')}; Y[i] = ${st}(${spec.out.value}); }`
      body = `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = ${flatIndex()};
  if (o >= p.outSize) { return; }
  let b = base(o);
${folds}
${write}
}`
    } else {
      const shared = spec.phases.map((ph, i) => `var<workgroup> sh${i}: array<${ph.type}, ${tw}>;`).join('\n')
      const folds = spec.phases
        .map(
          (ph, i) => `${ph.pre ?? ''}
  var s${i}: ${ph.type} = ${ph.init};
  for (var k = lid; k < p.redSize; k += ${tw}u) { let v = ${ld('b + roff(k)')}; s${i} = c${i}(s${i}, ${ph.lift}); }
  sh${i}[lid] = s${i};
  workgroupBarrier();
  for (var w = ${tw / 2}u; w > 0u; w = w >> 1u) {
    if (lid < w) { sh${i}[lid] = c${i}(sh${i}[lid], sh${i}[lid + w]); }
    workgroupBarrier();
  }
  let r${i} = sh${i}[0];`,
        )
        .join('\n')
      const write =
        spec.out.kind === 'reduce'
          ? `  if (lid == 0u) { Y[o] = ${st}(${spec.out.value}); }`
          : `  for (var k = lid; k < p.redSize; k += ${tw}u) { let i = b + roff(k); let v = ${ld('i')}; Y[i] = ${st}(${spec.out.value}); }`
      // o depends only on the workgroup id, so the early return keeps the barriers in uniform control flow
      body = `${shared}
@compute @workgroup_size(${tw})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = wid.x + wid.y * nwg.x;
  if (o >= p.outSize) { return; }
  let b = base(o);
${folds}
${write}
}`
    }
    return `${prelude(ctx, x, out, floats.length, spec.decls ?? '')}${phases}\n${body}\n`
  }
  const u = reduceUniforms(g).f32(...floats)
  ctx.dispatch({ key, code, inputs: [x], outputs: [out], uniforms: u.buffer(), workgroups: tw === 0 ? grid(g.outSize) : grid(g.outSize, 1) })
  return out
}

// ---- phases -----------------------------------------------------------------------------------------------------

const isF = (ct: ComputeType): boolean => ct === 'f32'

/** Compensated sum of `term` for floats; plain wrap-around sum for integers. */
const sumPhase = (ct: ComputeType, term = 'v'): Phase =>
  isF(ct) ? { type: 'vec2<f32>', init: 'vec2<f32>(0.0, 0.0)', lift: `vec2<f32>(${term}, 0.0)`, combine: 'ks(a, b)' } : { type: ct, init: `${ct}(0)`, lift: term, combine: 'a + b' }
const sumValue = (ct: ComputeType, r: string): string => (isF(ct) ? `kv(${r})` : r)

const lowest = (ct: ComputeType): string => (ct === 'f32' ? '-inf_f32()' : ct === 'i32' ? 'bitcast<i32>(0x80000000u)' : '0u')
const highest = (ct: ComputeType): string => (ct === 'f32' ? 'inf_f32()' : ct === 'i32' ? 'bitcast<i32>(0x7fffffffu)' : '0xffffffffu')

/** max / min; a NaN anywhere wins, as on the CPU (numpy semantics). */
const extremePhase = (ct: ComputeType, which: 'max' | 'min'): Phase => ({
  type: ct,
  init: which === 'max' ? lowest(ct) : highest(ct),
  lift: 'v',
  combine: isF(ct) ? `select(${which}(a, b), select(b, a, is_nan(a)), is_nan(a) || is_nan(b))` : `${which}(a, b)`,
})

/**
 * (value, index) for argmax / argmin. Ties and NaNs resolve to the smaller index, so any combining order
 * reproduces the CPU's first-wins scan; the init index (all ones) loses every tie against a real element.
 */
const argDecls = (ct: ComputeType, which: 'max' | 'min'): string => {
  const beats = which === 'max' ? 'b.v > a.v' : 'b.v < a.v'
  const nan = isF(ct)
    ? `  let an = is_nan(a.v); let bn = is_nan(b.v);
  if (an && bn) { if (a.i < b.i) { return a; } return b; }
  if (an) { return a; }
  if (bn) { return b; }\n`
    : ''
  return `struct AV { v: ${ct}, i: u32 }
fn arg_comb(a: AV, b: AV) -> AV {
${nan}  if (${beats} || (b.v == a.v && b.i < a.i)) { return b; }
  return a;
}
`
}

// ---- kernels ----------------------------------------------------------------------------------------------------

const axesOf = (attrs: Attrs): { axes: number[]; keepDims: boolean } => ({ axes: attrs['axes'] as number[], keepDims: attrs['keepDims'] === true })

const reduceOut = (dtype: DType, keepDims: boolean, value: string): SliceSpec['out'] => ({ kind: 'reduce', dtype, keepDims, value })

/** The max-shift phases shared by logSumExp, softmax and logSoftmax: r0 = max, r1 = Σ exp(x - max). */
const softPhases = [extremePhase('f32', 'max'), sumPhase('f32', 'exp(v - r0)')]

const moments = (name: 'Variance' | 'Std'): WebGpuKernel => (ctx, [x], attrs) => {
  const { axes, keepDims } = axesOf(attrs)
  // Two passes like the CPU: the mean, then deviations from it. Σd is carried along to cancel the rounding of
  // the f32 mean ("corrected two-pass"), which matters at |x| ~ 1e4 with a small spread.
  const dev: Phase = {
    type: 'vec4<f32>',
    init: 'vec4<f32>(0.0)',
    pre: '  let mu = kv(r0) / f32(p.redSize);',
    lift: 'vec4<f32>(v - mu, 0.0, (v - mu) * (v - mu), 0.0)',
    combine: 'vec4<f32>(ks(a.xy, b.xy), ks(a.zw, b.zw))',
  }
  const ss = 'max(kv(r1.zw) - kv(r1.xy) * kv(r1.xy) / f32(p.redSize), 0.0)'
  const variance = `${ss} / (f32(p.redSize) - fu(0u))`
  return sliceKernel(ctx, x!, axes, {
    name,
    phases: [sumPhase('f32'), dev],
    out: reduceOut(x!.dtype, keepDims, name === 'Std' ? `sqrt(${variance})` : variance),
    floats: [attrs['correction'] as number],
  })
}

const extreme = (name: 'Max' | 'Min'): WebGpuKernel => (ctx, [x], attrs) => {
  const { axes, keepDims } = axesOf(attrs)
  const ct = computeType(x!.dtype)
  return sliceKernel(ctx, x!, axes, { name, phases: [extremePhase(ct, name === 'Max' ? 'max' : 'min')], out: reduceOut(x!.dtype, keepDims, 'r0') })
}

const argExtreme = (name: 'ArgMax' | 'ArgMin'): WebGpuKernel => (ctx, [x], attrs) => {
  const { axes, keepDims } = axesOf(attrs)
  const ct = computeType(x!.dtype)
  const which = name === 'ArgMax' ? 'max' : 'min'
  return sliceKernel(ctx, x!, axes, {
    name,
    phases: [{ type: 'AV', init: `AV(${which === 'max' ? lowest(ct) : highest(ct)}, 0xffffffffu)`, lift: 'AV(v, k)', combine: 'arg_comb(a, b)' }],
    decls: argDecls(ct, which),
    out: reduceOut('int32', keepDims, 'select(r0.i, 0u, r0.i == 0xffffffffu)'),
  })
}

/**
 * Running sums along one axis. Small extents: one invocation per slice, sequentially. Large ones: a workgroup
 * per slice walks it in tiles of its width, each tile scanned in shared memory (Hillis–Steele) and offset by the
 * carry of the tiles before it, so loads stay coalesced along the slice.
 */
const cumsum: WebGpuKernel = (ctx, [x], attrs) => {
  const xin = x!
  checkRank('Cumsum', xin)
  const axes = attrs['axes'] as number[]
  const reverse = attrs['reverse'] === true
  const exclusive = attrs['exclusive'] === true
  const out = ctx.output(xin.dtype, xin.shape)
  const g = reduceGeometry(xin.shape, axes)
  if (g.outSize === 0 || g.redSize === 0) return out
  const ct = computeType(xin.dtype)
  const st = out.data.st
  const tw = treeWidth(g.redSize)
  const carry = sumPhase(ct)
  const add = isF(ct) ? (s: string, v: string): string => `ks(${s}, vec2<f32>(${v}, 0.0))` : (s: string, v: string): string => `${s} + ${v}`
  const val = (s: string): string => sumValue(ct, s)
  const at = (i: string): string => `b + roff(${reverse ? `p.redSize - 1u - ${i}` : i})`
  const key = `cumsum:${xin.data.st}${xin.dtype}:rev=${reverse}:excl=${exclusive}:tw=${tw}:f16=${ctx.f16}`
  const code = (): string => {
    const head = prelude(ctx, xin, out, 0, '')
    if (tw === 0) {
      const step = exclusive ? `Y[j] = ${st}(${val('s')}); s = ${add('s', 'v')};` : `s = ${add('s', 'v')}; Y[j] = ${st}(${val('s')});`
      return `${head}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = ${flatIndex()};
  if (o >= p.outSize) { return; }
  let b = base(o);
  var s: ${carry.type} = ${carry.init};
  for (var i = 0u; i < p.redSize; i++) { let j = ${at('i')}; let v = ${load('X', 'j', xin.data.st, xin.dtype)}; ${step} }
}
`
    }
    return `${head}
var<workgroup> sh: array<${ct}, ${tw}>;
@compute @workgroup_size(${tw})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = wid.x + wid.y * nwg.x;
  if (o >= p.outSize) { return; }
  let b = base(o);
  var s: ${carry.type} = ${carry.init};
  for (var t = 0u; t < p.redSize; t += ${tw}u) {
    let i = t + lid;
    var v = ${ct}(0);
    if (i < p.redSize) { v = ${load('X', at('i'), xin.data.st, xin.dtype)}; }
    sh[lid] = v;
    workgroupBarrier();
    for (var w = 1u; w < ${tw}u; w = w << 1u) {
      var left = ${ct}(0);
      if (lid >= w) { left = sh[lid - w]; }
      workgroupBarrier();
      sh[lid] = sh[lid] + left;
      workgroupBarrier();
    }
    let prefix = ${exclusive ? `select(${ct}(0), sh[max(lid, 1u) - 1u], lid > 0u)` : 'sh[lid]'};
    if (i < p.redSize) { Y[${at('i')}] = ${st}(${val('s')} + prefix); }
    s = ${add('s', `sh[${tw - 1}u]`)};
    // the next tile overwrites sh
    workgroupBarrier();
  }
}
`
  }
  ctx.dispatch({ key, code, inputs: [xin], outputs: [out], uniforms: reduceUniforms(g).buffer(), workgroups: tw === 0 ? grid(g.outSize) : grid(g.outSize, 1) })
  return out
}

export const reduceKernels = {
  Sum: (ctx, [x], attrs) => {
    const { axes, keepDims } = axesOf(attrs)
    const dtype = (attrs['dtype'] as DType | undefined) ?? x!.dtype
    const ct = computeType(x!.dtype)
    return sliceKernel(ctx, x!, axes, { name: 'Sum', phases: [sumPhase(ct)], out: reduceOut(dtype, keepDims, sumValue(ct, 'r0')) })
  },
  Mean: (ctx, [x], attrs) => {
    const { axes, keepDims } = axesOf(attrs)
    return sliceKernel(ctx, x!, axes, { name: 'Mean', phases: [sumPhase('f32')], out: reduceOut(x!.dtype, keepDims, 'kv(r0) / f32(p.redSize)') })
  },
  Max: extreme('Max'),
  Min: extreme('Min'),
  // Integer products wrap modulo 2^32 in WGSL, as Math.imul does on the CPU.
  Prod: (ctx, [x], attrs) => {
    const { axes, keepDims } = axesOf(attrs)
    const ct = computeType(x!.dtype)
    return sliceKernel(ctx, x!, axes, { name: 'Prod', phases: [{ type: ct, init: `${ct}(1)`, lift: 'v', combine: 'a * b' }], out: reduceOut(x!.dtype, keepDims, 'r0') })
  },
  ArgMax: argExtreme('ArgMax'),
  ArgMin: argExtreme('ArgMin'),
  Variance: moments('Variance'),
  Std: moments('Std'),
  // A NaN or ±Infinity maximum is the answer itself (an all -Infinity or empty slice gives -Infinity).
  LogSumExp: (ctx, [x], attrs) => {
    const { axes, keepDims } = axesOf(attrs)
    return sliceKernel(ctx, x!, axes, { name: 'LogSumExp', phases: softPhases, out: reduceOut(x!.dtype, keepDims, 'select(r0 + log(kv(r1)), r0, is_nan(r0) || is_inf(r0))') })
  },
  Softmax: (ctx, [x], attrs) => sliceKernel(ctx, x!, attrs['axes'] as number[], { name: 'Softmax', phases: softPhases, out: { kind: 'map', value: 'exp(v - r0) / kv(r1)' } }),
  LogSoftmax: (ctx, [x], attrs) => sliceKernel(ctx, x!, attrs['axes'] as number[], { name: 'LogSoftmax', phases: softPhases, out: { kind: 'map', value: '(v - r0) - log(kv(r1))' } }),
  Cumsum: cumsum,
} satisfies Partial<WebGpuKernelTable>
