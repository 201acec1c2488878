import type { Attrs } from '../../../backend.js'
import type { DType } from '../../../dtype.js'
import { reducedShape, sizeOf, stridesOf } from '../../../shape.js'
import { computeType } from '../dtypes.js'
import type { GpuTensor, WebGpuContext, WebGpuKernel } from '../WebGpuBackend.js'
import { bindings, enableF16, flatIndex, grid, load, MATH, Uniforms, WG } from '../wgsl.js'

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

/**
 * One invocation per output element walks its reduced elements in order. `body` sees `v` (the loaded value in
 * the compute type) and `k`, updates `acc`; `finish` maps `acc` to the stored value.
 */
export function reduceKernel(
  ctx: WebGpuContext,
  name: string,
  x: GpuTensor,
  axes: readonly number[],
  keepDims: boolean,
  outDtype: DType,
  spec: { readonly init: string; readonly accType: string; readonly body: string; readonly finish: string; readonly extra?: string },
): GpuTensor {
  const out = ctx.output(outDtype, reducedShape(x.shape, axes, keepDims))
  const g = reduceGeometry(x.shape, axes)
  if (g.outSize === 0) return out
  const key = `red:${name}:${x.data.st}${x.dtype}->${out.data.st}${outDtype}`
  const code = (): string => `${enableF16(ctx)}${Uniforms.struct(['outSize', 'redSize', 'keepRank', 'redRank'], 8)}${bindings([x], [out], ['X'], ['Y'])}
${MATH}${REDUCE_INDEX}${spec.extra ?? ''}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = ${flatIndex()};
  if (o >= p.outSize) { return; }
  let b = base(o);
  var acc: ${spec.accType} = ${spec.init};
  for (var k = 0u; k < p.redSize; k++) {
    let v = ${load('X', 'b + roff(k)', x.data.st, x.dtype)};
    ${spec.body}
  }
  Y[o] = ${out.data.st}(${spec.finish});
}
`
  ctx.dispatch({ key, code, inputs: [x], outputs: [out], uniforms: reduceUniforms(g).buffer(), workgroups: grid(g.outSize) })
  return out
}

const axesOf = (attrs: Attrs): { axes: number[]; keepDims: boolean } => ({ axes: attrs['axes'] as number[], keepDims: attrs['keepDims'] as boolean })

export const reduceKernels: Readonly<Record<string, WebGpuKernel>> = {
  // Kahan-compensated so a long f32 sum stays within a couple of ulps of the float64 CPU reference.
  Sum: (ctx, [x], attrs) => {
    const { axes, keepDims } = axesOf(attrs)
    const dtype = (attrs['dtype'] as DType | undefined) ?? x!.dtype
    const ct = computeType(x!.dtype)
    if (ct !== 'f32')
      return reduceKernel(ctx, 'Sum', x!, axes, keepDims, dtype, { init: `${ct}(0)`, accType: ct, body: 'acc += v;', finish: 'acc' })
    return reduceKernel(ctx, 'Sum', x!, axes, keepDims, dtype, {
      init: 'vec2<f32>(0.0, 0.0)',
      accType: 'vec2<f32>',
      body: 'let yk = v - acc.y; let tk = acc.x + yk; acc = vec2<f32>(tk, (tk - acc.x) - yk);',
      finish: 'acc.x',
    })
  },
}
