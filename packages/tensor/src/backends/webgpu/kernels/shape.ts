import type { Attrs } from '../../../backend.js'
import { f16Round, f32ToF16Bits, type DType } from '../../../dtype.js'
import { BackendError } from '../../../errors.js'
import { sizeOf, stridesOf, type Shape } from '../../../shape.js'
import type { StorageType } from '../dtypes.js'
import type { GpuTensor, WebGpuContext, WebGpuKernel, WebGpuKernelTable } from '../types.js'
import { bindings, enableF16, flatIndex, grid, MAX_RANK, Uniforms, WG } from '../wgsl.js'

const attr = <T>(attrs: Attrs, k: string): T => attrs[k] as T

/**
 * Uniform block and its WGSL struct together. `Uniforms.struct` always declares `word()` over `d`, so the block
 * gets at least one vec4 of words, and the buffer is padded to the struct's size (a smaller binding fails
 * validation).
 */
export function params(header: readonly string[], u: Uniforms, vec4s = 1): { struct: string; buffer: ArrayBuffer } {
  const v = Math.max(1, vec4s)
  const words = Math.ceil(header.length / 4) * 4 + 4 * v
  while (u.words.length < words) u.u32(0)
  return { struct: Uniforms.struct(header, v), buffer: u.buffer() }
}

export const main = (body: string): string => `
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${flatIndex()};
  if (i >= p.n) { return; }
${body}
}
`

/** The zero of a storage type, as a WGSL expression. */
export const zeroOf = (st: StorageType): string => `${st}(0)`

export function checkRank(op: string, shape: Shape): void {
  if (shape.length > MAX_RANK) throw new BackendError({ op, expected: `rank ≤ ${MAX_RANK} on webgpu`, actual: shape.length })
}

/**
 * `value` as the u32 word whose bits are its storage encoding, so the shader gets NaN and ±inf without a
 * constant expression (a WGSL compile error) and f16 exactly as the host rounds it.
 */
function storageWord(value: number, st: StorageType, dtype: DType): number {
  const f = new Float32Array(1)
  const u = new Uint32Array(f.buffer)
  switch (st) {
    case 'f16':
      return f32ToF16Bits(value)
    case 'f32':
      f[0] = dtype === 'float16' ? f16Round(value) : value
      return u[0]!
    case 'i32':
      return (value | 0) >>> 0
    case 'u32':
      return dtype === 'bool' ? (value !== 0 && !Number.isNaN(value) ? 1 : 0) : value >>> 0
  }
}

const fromWord = (w: string, st: StorageType): string =>
  st === 'f16' ? `bitcast<vec2<f16>>(${w}).x` : st === 'u32' ? w : `bitcast<${st}>(${w})`

/**
 * Y[i] = X[offset + Σ coord_d · strides_d] over the output coordinates: transpose and strided slice (negative
 * steps included) are both this gather. Elements are copied in storage form, so every dtype takes one path.
 */
function stridedRead(ctx: WebGpuContext, op: string, x: GpuTensor, counts: Shape, strides: readonly number[], offset: number, shape: Shape): GpuTensor {
  const out = ctx.output(x.dtype, shape)
  const n = sizeOf(counts)
  if (n === 0) return out
  checkRank(op, counts)
  const header = ['n', 'rank', 'offset']
  const u = new Uniforms().u32(n, counts.length, offset, 0).dims(counts).dims(strides)
  const { struct, buffer } = params(header, u, 4)
  const code = (): string => `${enableF16(ctx)}${struct}${bindings([x], [out], ['X'], ['Y'])}
${main(`  var rem = i;
  var off = i32(p.offset);
  for (var k = 0u; k < p.rank; k++) {
    let d = p.rank - 1u - k;
    let dim = word(d);
    off += i32(rem % dim) * bitcast<i32>(word(8u + d));
    rem = rem / dim;
  }
  Y[i] = X[u32(off)];`)}`
  ctx.dispatch({ key: `shape:strided:${x.data.st}:f16=${ctx.f16}`, code, inputs: [x], outputs: [out], uniforms: buffer, workgroups: grid(n) })
  return out
}

/**
 * Copy between a [outer, chunk] block of a small tensor and columns [col, col + chunk) of a [outer, row] view
 * of a big one: Concat runs it once per input, Split once per output, so neither is bounded by how many storage
 * buffers one shader may bind.
 */
function blockCopy(ctx: WebGpuContext, src: GpuTensor, dst: GpuTensor, n: number, chunk: number, row: number, col: number, into: boolean): void {
  const { struct, buffer } = params(['n', 'chunk', 'row', 'col'], new Uniforms().u32(n, chunk, row, col))
  const big = 'o * p.row + p.col + r'
  const code = (): string => `${enableF16(ctx)}${struct}${bindings([src], [dst], ['X'], ['Y'])}
${main(`  let o = i / p.chunk;
  let r = i % p.chunk;
  ${into ? `Y[${big}] = X[i];` : `Y[i] = X[${big}];`}`)}`
  ctx.dispatch({ key: `shape:block:${into ? 'in' : 'out'}:${src.data.st}:f16=${ctx.f16}`, code, inputs: [src], outputs: [dst], uniforms: buffer, workgroups: grid(n) })
}

const outerOf = (shape: Shape, axis: number): number => sizeOf(shape.slice(0, axis))

/** In-place copy of src into dst along an axis (see the CPU kernel); dst is bound read-write and returned. */
function writeSlice(ctx: WebGpuContext, dst: GpuTensor, src: GpuTensor, axis: number, offset: number): GpuTensor {
  const n = sizeOf(src.shape)
  if (n === 0) return dst
  const a = src.shape[axis]!
  const inner = src.shape.slice(axis + 1).reduce((x, y) => x * y, 1)
  const st = src.data.st
  const key = `WriteSlice:${st}:f16=${ctx.f16}`
  const code = (): string => `${enableF16(ctx)}struct Params { n: u32, a: u32, inner: u32, dstA: u32, offset: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> S: array<${st}>;
@group(0) @binding(1) var<storage, read_write> D: array<${st}>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${flatIndex()};
  if (i >= p.n) { return; }
  let ii = i % p.inner;
  let ai = (i / p.inner) % p.a;
  let o = i / (p.inner * p.a);
  D[(o * p.dstA + p.offset + ai) * p.inner + ii] = S[i];
}
`
  const u = new Uniforms().u32(n, a, inner, dst.shape[axis]!, offset, 0, 0, 0)
  ctx.dispatch({ key, code, inputs: [src], outputs: [dst], uniforms: u.buffer(), workgroups: grid(n) })
  return dst
}

export const shapeKernels = {
  WriteSlice: (ctx, [dst, src], attrs) => writeSlice(ctx, dst!, src!, attr<number>(attrs, 'axis'), attr<number>(attrs, 'offset')),

  Transpose: (ctx, [x], attrs) => {
    const perm = attr<readonly number[]>(attrs, 'perm')
    const st = stridesOf(x!.shape)
    const shape = perm.map(p => x!.shape[p]!)
    return stridedRead(ctx, 'Transpose', x!, shape, perm.map(p => st[p]!), 0, shape)
  },

  Slice: (ctx, [x], attrs) => {
    const begin = attr<readonly number[]>(attrs, 'begin')
    const step = attr<readonly number[]>(attrs, 'step')
    const size = attr<readonly number[]>(attrs, 'size')
    const shape = attr<Shape>(attrs, 'shape')
    const st = stridesOf(x!.shape)
    // begin is only guaranteed in range when the slice is non-empty; stridedRead dispatches nothing otherwise
    const offset = sizeOf(size) === 0 ? 0 : begin.reduce((acc, b, d) => acc + b * st[d]!, 0)
    return stridedRead(
      ctx,
      'Slice',
      x!,
      size,
      step.map((s, d) => s * st[d]!),
      offset,
      shape,
    )
  },

  Concat: (ctx, xs, attrs) => {
    const axis = attr<number>(attrs, 'axis')
    const shape = attr<Shape>(attrs, 'shape')
    const out = ctx.output(xs[0]!.dtype, shape)
    const outer = outerOf(shape, axis)
    const total = sizeOf(shape)
    if (outer === 0 || total === 0) return out
    const row = total / outer
    let col = 0
    for (const x of xs) {
      const n = sizeOf(x.shape)
      const chunk = n / outer
      if (n > 0) blockCopy(ctx, x, out, n, chunk, row, col, true)
      col += chunk
    }
    return out
  },

  Split: (ctx, [x], attrs) => {
    const axis = attr<number>(attrs, 'axis')
    const shapes = attr<readonly Shape[]>(attrs, 'shapes')
    const outer = outerOf(x!.shape, axis)
    const total = sizeOf(x!.shape)
    const row = outer === 0 ? 0 : total / outer
    let col = 0
    return shapes.map(shape => {
      const out = ctx.output(x!.dtype, shape)
      const n = sizeOf(shape)
      const chunk = outer === 0 ? 0 : n / outer
      if (n > 0) blockCopy(ctx, x!, out, n, chunk, row, col, false)
      col += chunk
      return out
    })
  },

  Pad: (ctx, [x], attrs) => {
    const before = attr<readonly number[]>(attrs, 'before')
    const after = attr<readonly number[]>(attrs, 'after')
    const value = attr<number>(attrs, 'value')
    const shape = x!.shape.map((d, i) => d + before[i]! + after[i]!)
    const out = ctx.output(x!.dtype, shape)
    const n = sizeOf(shape)
    if (n === 0) return out
    checkRank('Pad', shape)
    const st = out.data.st
    const u = new Uniforms().u32(n, shape.length, storageWord(value, st, x!.dtype), 0).dims(shape).dims(before).dims(x!.shape)
    const { struct, buffer } = params(['n', 'rank', 'value'], u, 6)
    // walks the output coordinates innermost first, building the input offset with input-shape strides
    const code = (): string => `${enableF16(ctx)}${struct}${bindings([x!], [out], ['X'], ['Y'])}
${main(`  var rem = i;
  var off = 0u;
  var mul = 1u;
  var inside = true;
  for (var k = 0u; k < p.rank; k++) {
    let d = p.rank - 1u - k;
    let dim = word(d);
    let c = rem % dim;
    rem = rem / dim;
    let b = word(8u + d);
    let m = word(16u + d);
    if (c < b || c >= b + m) { inside = false; } else { off += (c - b) * mul; }
    mul *= m;
  }
  if (inside) { Y[i] = X[off]; } else { Y[i] = ${fromWord('p.value', st)}; }`)}`
    ctx.dispatch({ key: `shape:pad:${st}:f16=${ctx.f16}`, code, inputs: [x!], outputs: [out], uniforms: buffer, workgroups: grid(n) })
    return out
  },

  Triangle: (ctx, [x], attrs) => {
    const k = attr<number>(attrs, 'k')
    const upper = attr<boolean>(attrs, 'upper')
    const shape = x!.shape
    const out = ctx.output(x!.dtype, shape)
    const n = sizeOf(shape)
    if (n === 0) return out
    const rows = shape[shape.length - 2]!
    const cols = shape[shape.length - 1]!
    // k beyond ±(rows + cols) keeps all or nothing; clamping keeps j - i - k inside i32
    const kc = Math.max(-(rows + cols), Math.min(rows + cols, k))
    const { struct, buffer } = params(['n', 'rows', 'cols', 'k', 'upper'], new Uniforms().u32(n, rows, cols).i32(kc).u32(upper ? 1 : 0))
    const st = out.data.st
    const code = (): string => `${enableF16(ctx)}${struct}${bindings([x!], [out], ['X'], ['Y'])}
${main(`  let j = i % p.cols;
  let r = (i / p.cols) % p.rows;
  let d = i32(j) - i32(r);
  let kk = bitcast<i32>(p.k);
  let keep = select(d <= kk, d >= kk, p.upper != 0u);
  if (keep) { Y[i] = X[i]; } else { Y[i] = ${zeroOf(st)}; }`)}`
    ctx.dispatch({ key: `shape:triangle:${st}:f16=${ctx.f16}`, code, inputs: [x!], outputs: [out], uniforms: buffer, workgroups: grid(n) })
    return out
  },
} satisfies Partial<WebGpuKernelTable>
