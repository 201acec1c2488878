import type { Attrs } from '../../../backend.js'
import { sizeOf, type Shape } from '../../../shape.js'
import type { GpuTensor, WebGpuContext, WebGpuKernel, WebGpuKernelTable } from '../types.js'
import { bindings, enableF16, flatIndex, grid, load, Uniforms, WG } from '../wgsl.js'

/**
 * Grouped convolution and average pooling over NCH(W), the same kernels and attrs as the CPU's (rank-3 tensors
 * are the H = 1 case). Direct loops, one invocation per element of the kernel's output, accumulating in f32: these
 * ops serve heed's short depthwise convs, where a gather per output is simpler than im2col and not slower. Each
 * backward kernel gathers instead of scattering, so no atomics are needed.
 */

const as4 = (s: Shape): [number, number, number, number] => (s.length === 3 ? [s[0]!, s[1]!, 1, s[2]!] : [s[0]!, s[1]!, s[2]!, s[3]!])
const pair = (attrs: Attrs, key: string): [number, number] => {
  const v = attrs[key] as readonly number[]
  return [v[0]!, v[1]!]
}

/** Words of a Uniforms.struct(header, 1) block: the padded header plus the one (unused) vec4 it declares. */
const sized = (u: Uniforms, header: readonly string[]): ArrayBuffer => {
  while (u.words.length < Math.ceil(header.length / 4) * 4 + 4) u.u32(0)
  return u.buffer()
}

const CONV_HEADER = ['n', 'B', 'C', 'H', 'W', 'O', 'Ig', 'Og', 'KH', 'KW', 'OH', 'OW', 'sh', 'sw', 'dh', 'dw', 'pt', 'pl']

function convUniforms(xShape: Shape, wShape: Shape, yShape: Shape, attrs: Attrs, n: number): ArrayBuffer {
  const [B, C, H, W] = as4(xShape)
  const [O, Ig, KH, KW] = as4(wShape)
  const [, , OH, OW] = as4(yShape)
  const groups = attrs['groups'] as number
  const u = new Uniforms()
    .u32(n, B, C, H, W, O, Ig, O / groups, KH, KW, OH, OW, ...pair(attrs, 'stride'), ...pair(attrs, 'dilation'), ...pair(attrs, 'pad'))
  return sized(u, CONV_HEADER)
}

/** Shared shader frame: decode nothing, just bounds-check the flat index; `body` sets `acc` from `i`. */
function direct(ctx: WebGpuContext, name: string, inputs: readonly GpuTensor[], names: readonly string[], out: GpuTensor, header: readonly string[], uniforms: ArrayBuffer, body: string): GpuTensor {
  const n = sizeOf(out.shape)
  if (n === 0) return out
  const key = `conv:${name}:${inputs.map(t => t.data.st).join(',')}->${out.data.st}`
  const code = (): string => `${enableF16(ctx)}${Uniforms.struct(header, 1)}${bindings(inputs, [out], names, ['Y'])}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${flatIndex()};
  if (i >= p.n) { return; }
  var acc = 0.0;
${body}
  Y[i] = ${out.data.st}(acc);
}
`
  ctx.dispatch({ key, code, inputs, outputs: [out], uniforms, workgroups: grid(n) })
  return out
}

const ld = (t: GpuTensor, name: string, idx: string): string => load(name, idx, t.data.st, t.dtype)

/** y[b, o, oh, ow] = Σ x[b, g·Ig + ci, oh·sh − pt + kh·dh, ow·sw − pl + kw·dw] · w[o, ci, kh, kw]. */
function conv(ctx: WebGpuContext, [x, w]: readonly GpuTensor[], attrs: Attrs): GpuTensor {
  const shape = attrs['shape'] as Shape
  const out = ctx.output(x!.dtype, shape)
  const body = `
  let ow = i % p.OW; var r = i / p.OW; let oh = r % p.OH; r = r / p.OH; let o = r % p.O; let b = r / p.O;
  let c0 = (o / p.Og) * p.Ig;
  for (var ci = 0u; ci < p.Ig; ci++) {
    let xb = (b * p.C + c0 + ci) * p.H;
    let wb = (o * p.Ig + ci) * p.KH;
    for (var kh = 0u; kh < p.KH; kh++) {
      let ih = i32(oh * p.sh + kh * p.dh) - i32(p.pt);
      if (ih < 0 || ih >= i32(p.H)) { continue; }
      for (var kw = 0u; kw < p.KW; kw++) {
        let iw = i32(ow * p.sw + kw * p.dw) - i32(p.pl);
        if (iw < 0 || iw >= i32(p.W)) { continue; }
        acc += ${ld(x!, 'X', '(xb + u32(ih)) * p.W + u32(iw)')} * ${ld(w!, 'K', '(wb + kh) * p.KW + kw')};
      }
    }
  }`
  return direct(ctx, 'Conv', [x!, w!], ['X', 'K'], out, CONV_HEADER, convUniforms(x!.shape, w!.shape, shape, attrs, sizeOf(shape)), body)
}

/**
 * dx[b, c, ih, iw] = Σ over the outputs whose window touches (ih, iw): dy · w. An output row oh touches ih through
 * tap kh when oh·sh = ih + pt − kh·dh, so each tap contributes at most one oh (and likewise one ow).
 */
function convBackpropInput(ctx: WebGpuContext, [dy, w]: readonly GpuTensor[], attrs: Attrs): GpuTensor {
  const shape = attrs['shape'] as Shape
  const out = ctx.output(dy!.dtype, shape)
  const body = `
  let iw = i % p.W; var r = i / p.W; let ih = r % p.H; r = r / p.H; let c = r % p.C; let b = r / p.C;
  let o0 = (c / p.Ig) * p.Og;
  let ci = c % p.Ig;
  for (var oo = 0u; oo < p.Og; oo++) {
    let o = o0 + oo;
    let yb = (b * p.O + o) * p.OH;
    let wb = (o * p.Ig + ci) * p.KH;
    for (var kh = 0u; kh < p.KH; kh++) {
      let th = i32(ih + p.pt) - i32(kh * p.dh);
      if (th < 0 || u32(th) % p.sh != 0u) { continue; }
      let oh = u32(th) / p.sh;
      if (oh >= p.OH) { continue; }
      for (var kw = 0u; kw < p.KW; kw++) {
        let tw = i32(iw + p.pl) - i32(kw * p.dw);
        if (tw < 0 || u32(tw) % p.sw != 0u) { continue; }
        let ow = u32(tw) / p.sw;
        if (ow >= p.OW) { continue; }
        acc += ${ld(dy!, 'DY', '(yb + oh) * p.OW + ow')} * ${ld(w!, 'K', '(wb + kh) * p.KW + kw')};
      }
    }
  }`
  return direct(ctx, 'ConvBackpropInput', [dy!, w!], ['DY', 'K'], out, CONV_HEADER, convUniforms(shape, w!.shape, dy!.shape, attrs, sizeOf(shape)), body)
}

/** dw[o, ci, kh, kw] = Σ over b, oh, ow of x at the tap's input position · dy[b, o, oh, ow]. */
function convBackpropFilter(ctx: WebGpuContext, [x, dy]: readonly GpuTensor[], attrs: Attrs): GpuTensor {
  const shape = attrs['shape'] as Shape
  const out = ctx.output(x!.dtype, shape)
  const body = `
  let kw = i % p.KW; var r = i / p.KW; let kh = r % p.KH; r = r / p.KH; let ci = r % p.Ig; let o = r / p.Ig;
  let c = (o / p.Og) * p.Ig + ci;
  // the output columns whose input column is in bounds, so the inner loop carries no test
  let sw_ = i32(kw * p.dw) - i32(p.pl);
  let owLo = u32(max(0, (-sw_ + i32(p.sw) - 1) / i32(p.sw)));
  let last = i32(p.W) - 1 - sw_;
  let owHi = select(u32(min(last / i32(p.sw) + 1, i32(p.OW))), 0u, last < 0);
  for (var b = 0u; b < p.B; b++) {
    let xb = (b * p.C + c) * p.H;
    let yb = (b * p.O + o) * p.OH;
    for (var oh = 0u; oh < p.OH; oh++) {
      let ih = i32(oh * p.sh + kh * p.dh) - i32(p.pt);
      if (ih < 0 || ih >= i32(p.H)) { continue; }
      let xr = (xb + u32(ih)) * p.W;
      let yr = (yb + oh) * p.OW;
      for (var ow = owLo; ow < owHi; ow++) {
        acc += ${ld(x!, 'X', 'xr + u32(i32(ow * p.sw) + sw_)')} * ${ld(dy!, 'DY', 'yr + ow')};
      }
    }
  }`
  return direct(ctx, 'ConvBackpropFilter', [x!, dy!], ['X', 'DY'], out, CONV_HEADER, convUniforms(x!.shape, shape, dy!.shape, attrs, sizeOf(shape)), body)
}

const POOL_HEADER = ['n', 'C', 'H', 'W', 'OH', 'OW', 'kh', 'kw', 'sh', 'sw', 'pt', 'pl']

function poolUniforms(xShape: Shape, yShape: Shape, attrs: Attrs, n: number): ArrayBuffer {
  const [, C, H, W] = as4(xShape)
  const [, , OH, OW] = as4(yShape)
  const u = new Uniforms().u32(n, C, H, W, OH, OW, ...pair(attrs, 'kernel'), ...pair(attrs, 'stride'), ...pair(attrs, 'pad'))
  return sized(u, POOL_HEADER)
}

/** In-bounds window of output (oh, ow) as (h0, h1, w0, w1); padding is not counted (count_include_pad=false). */
const WINDOW = `
  let h0 = max(i32(oh * p.sh) - i32(p.pt), 0); let h1 = min(i32(oh * p.sh + p.kh) - i32(p.pt), i32(p.H));
  let w0 = max(i32(ow * p.sw) - i32(p.pl), 0); let w1 = min(i32(ow * p.sw + p.kw) - i32(p.pl), i32(p.W));
  let count = max(0, (h1 - h0) * (w1 - w0));`

function avgPool(ctx: WebGpuContext, [x]: readonly GpuTensor[], attrs: Attrs): GpuTensor {
  const shape = attrs['shape'] as Shape
  const out = ctx.output(x!.dtype, shape)
  const body = `
  let ow = i % p.OW; var r = i / p.OW; let oh = r % p.OH; let bc = r / p.OH;
  ${WINDOW}
  let xb = bc * p.H;
  for (var h = h0; h < h1; h++) {
    for (var w = w0; w < w1; w++) { acc += ${ld(x!, 'X', '(xb + u32(h)) * p.W + u32(w)')}; }
  }
  if (count > 0) { acc = acc / f32(count); } else { acc = 0.0; }`
  return direct(ctx, 'AvgPool', [x!], ['X'], out, POOL_HEADER, poolUniforms(x!.shape, shape, attrs, sizeOf(shape)), body)
}

/** dx[ih, iw] = Σ over the windows containing it of dy / (that window's count). */
function avgPoolBackprop(ctx: WebGpuContext, [dy]: readonly GpuTensor[], attrs: Attrs): GpuTensor {
  const shape = attrs['shape'] as Shape
  const out = ctx.output(dy!.dtype, shape)
  // window oh covers ih when oh·sh − pt ≤ ih < oh·sh − pt + kh
  const body = `
  let iw = i % p.W; var r = i / p.W; let ih = r % p.H; let bc = r / p.H;
  let th = i32(ih + p.pt); let tw = i32(iw + p.pl);
  let ohLo = u32(max(0, (th - i32(p.kh) + i32(p.sh)) / i32(p.sh))); let ohHi = u32(min(i32(p.OH) - 1, th / i32(p.sh)) + 1);
  let owLo = u32(max(0, (tw - i32(p.kw) + i32(p.sw)) / i32(p.sw))); let owHi = u32(min(i32(p.OW) - 1, tw / i32(p.sw)) + 1);
  for (var oh = ohLo; oh < ohHi; oh++) {
    for (var ow = owLo; ow < owHi; ow++) {
      ${WINDOW}
      if (count > 0) { acc += ${ld(dy!, 'DY', '(bc * p.OH + oh) * p.OW + ow')} / f32(count); }
    }
  }`
  return direct(ctx, 'AvgPoolBackprop', [dy!], ['DY'], out, POOL_HEADER, poolUniforms(shape, dy!.shape, attrs, sizeOf(shape)), body)
}

export const convKernels = {
  Conv: conv,
  ConvBackpropInput: convBackpropInput,
  ConvBackpropFilter: convBackpropFilter,
  AvgPool: avgPool,
  AvgPoolBackprop: avgPoolBackprop,
} satisfies Partial<WebGpuKernelTable>
