import type { Attrs } from '../../../backend.js'
import { sizeOf } from '../../../shape.js'
import type { GpuTensor, WebGpuKernelTable } from '../types.js'
import { bindings, enableF16, flagIndex, grid, load, MATH, Uniforms } from '../wgsl.js'
import { main, params } from './shape.js'

/**
 * The fused training-step kernels of the CPU's kernels/fused.ts, with the same names, inputs, outputs and attrs:
 * RMSNorm forward/backward, softmax cross-entropy and its gradient, the Adam/AdamW update. Row kernels give one
 * invocation a whole row (rows of a small model are 64–512 wide), so every sum has a fixed order; column sums
 * (dgain) walk the rows in order the same way.
 */

const attr = <T>(attrs: Attrs, k: string): T => attrs[k] as T
const f32Word = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0]!
const ld = (name: string, i: string, t: GpuTensor): string => load(name, i, t.data.st, t.dtype)
const ignoreWord = (ig: number | null): [number, number] => (ig === null ? [0, 0] : [1, ig | 0])

export const fusedKernels = {
  RmsNorm: (ctx, [x, gain], attrs) => {
    const d = x!.shape[x!.shape.length - 1]!
    const rows = sizeOf(x!.shape.slice(0, -1))
    const y = ctx.output(x!.dtype, x!.shape)
    const r = ctx.output(x!.dtype, x!.shape.slice(0, -1))
    if (rows === 0) return [y, r]
    const st = y.data.st
    const { struct, buffer } = params(['n', 'dim', 'eps'], new Uniforms().u32(rows, d, f32Word(attr<number>(attrs, 'eps'))))
    const code = (): string => `${enableF16(ctx)}${struct}${bindings([x!, gain!], [y, r], ['X', 'G'], ['Y', 'R'])}
${main(`  let o = i * p.dim;
  var ss = 0.0;
  for (var j = 0u; j < p.dim; j++) { let v = ${ld('X', 'o + j', x!)}; ss += v * v; }
  let rs = inverseSqrt(ss / f32(p.dim) + bitcast<f32>(p.eps));
  R[i] = ${st}(rs);
  for (var j = 0u; j < p.dim; j++) { Y[o + j] = ${st}(${ld('X', 'o + j', x!)} * rs * ${ld('G', 'j', gain!)}); }`)}`
    ctx.dispatch({ key: `fused:rmsnorm:${st}:f16=${ctx.f16}`, code, inputs: [x!, gain!], outputs: [y, r], uniforms: buffer, workgroups: grid(rows) })
    return [y, r]
  },

  RmsNormGrad: (ctx, [dy, x, gain, rstd]) => {
    const d = x!.shape[x!.shape.length - 1]!
    const rows = sizeOf(x!.shape.slice(0, -1))
    const dx = ctx.output(x!.dtype, x!.shape)
    const dg = ctx.output(gain!.dtype, gain!.shape)
    const st = dx.data.st
    const ins = [dy!, x!, gain!, rstd!]
    const names = ['DY', 'X', 'G', 'R']
    if (rows > 0) {
      const { struct, buffer } = params(['n', 'dim'], new Uniforms().u32(rows, d))
      const code = (): string => `${enableF16(ctx)}${struct}${bindings(ins, [dx], names, ['DX'])}
${main(`  let o = i * p.dim;
  let r = ${ld('R', 'i', rstd!)};
  var s = 0.0;
  for (var j = 0u; j < p.dim; j++) { s += ${ld('G', 'j', gain!)} * ${ld('DY', 'o + j', dy!)} * ${ld('X', 'o + j', x!)}; }
  let c = r * r * r * s / f32(p.dim);
  for (var j = 0u; j < p.dim; j++) { DX[o + j] = ${st}(r * ${ld('G', 'j', gain!)} * ${ld('DY', 'o + j', dy!)} - c * ${ld('X', 'o + j', x!)}); }`)}`
      ctx.dispatch({ key: `fused:rmsnormgrad:dx:${st}:f16=${ctx.f16}`, code, inputs: ins, outputs: [dx], uniforms: buffer, workgroups: grid(rows) })
    }
    if (d > 0) {
      const { struct, buffer } = params(['n', 'rows'], new Uniforms().u32(d, rows))
      // gain is not read here: the auto layout would drop its binding
      const used = [dy!, x!, rstd!]
      const code = (): string => `${enableF16(ctx)}${struct}${bindings(used, [dg], ['DY', 'X', 'R'], ['DG'])}
${main(`  var acc = 0.0;
  for (var row = 0u; row < p.rows; row++) { let k = row * p.n + i; acc += ${ld('DY', 'k', dy!)} * ${ld('X', 'k', x!)} * ${ld('R', 'row', rstd!)}; }
  DG[i] = ${dg.data.st}(acc);`)}`
      ctx.dispatch({ key: `fused:rmsnormgrad:dg:${st}:f16=${ctx.f16}`, code, inputs: used, outputs: [dg], uniforms: buffer, workgroups: grid(d) })
    }
    return [dx, dg]
  },

  CrossEntropy: (ctx, [logits, targets], attrs) => {
    const reduction = attr<'none' | 'sum' | 'mean'>(attrs, 'reduction')
    const [hasIgnore, ignore] = ignoreWord(attr<number | null>(attrs, 'ignoreIndex') ?? null)
    const v = logits!.shape[logits!.shape.length - 1]!
    const rows = sizeOf(targets!.shape)
    const lse = ctx.output(logits!.dtype, targets!.shape)
    const per = ctx.output(logits!.dtype, targets!.shape)
    const st = lse.data.st
    const tIdx = targets!.data.st === 'u32' ? 'T[i]' : 'bitcast<u32>(T[i])'
    if (rows > 0) {
      const { flags, slot } = ctx.indexCheck({ op: 'crossEntropy', arg: 'targets', n: v, what: 'classes' })
      const { struct, buffer } = params(['n', 'v', 'hasIgnore', 'ignore', 'slot'], new Uniforms().u32(rows, v, hasIgnore).i32(ignore).u32(slot))
      const code = (): string => `${enableF16(ctx)}${struct}${MATH}${bindings([logits!, targets!], [per, lse], ['X', 'T'], ['L', 'S'], { checked: true })}
${main(`  let o = i * p.v;
  var m = -inf_f32();
  var bad = false;
  for (var j = 0u; j < p.v; j++) { let e = ${ld('X', 'o + j', logits!)}; if (is_nan(e)) { bad = true; } m = max(m, e); }
  var s = 0.0;
  for (var j = 0u; j < p.v; j++) { s += exp(${ld('X', 'o + j', logits!)} - m); }
  var l = m + log(s);
  if (bad || is_inf(m)) { l = select(nan_f32(), -inf_f32(), !bad && m < 0.0); }
  S[i] = ${st}(l);
  let t = ${tIdx};
  if (p.hasIgnore != 0u && t == bitcast<u32>(p.ignore)) { L[i] = ${st}(0.0); }
  else if (t < p.v) { L[i] = ${st}(l - ${ld('X', 'o + t', logits!)}); }
  else { L[i] = ${st}(nan_f32()); ${flagIndex('i')} }`)}`
      ctx.dispatch({ key: `fused:ce:${st}:${targets!.data.st}:f16=${ctx.f16}`, code, inputs: [logits!, targets!], outputs: [per, lse, flags], uniforms: buffer, workgroups: grid(rows) })
    }
    if (reduction === 'none') return [per, lse]
    const out = ctx.output(logits!.dtype, [])
    // one invocation sums the rows in order (deterministic); the count of non-ignored rows for 'mean' alongside
    const { struct: s2, buffer: b2 } = params(['n', 'mean', 'hasIgnore', 'ignore', 'rows'], new Uniforms().u32(1, reduction === 'mean' ? 1 : 0, hasIgnore).i32(ignore).u32(rows))
    const tj = targets!.data.st === 'u32' ? 'T[j]' : 'bitcast<u32>(T[j])'
    const code2 = (): string => `${enableF16(ctx)}${s2}${bindings([per, targets!], [out], ['L', 'T'], ['O'])}
@compute @workgroup_size(1)
fn main() {
  var acc = 0.0;
  var count = 0.0;
  for (var j = 0u; j < p.rows; j++) {
    acc += ${ld('L', 'j', per)};
    if (!(p.hasIgnore != 0u && ${tj} == bitcast<u32>(p.ignore))) { count += 1.0; }
  }
  O[0] = ${st}(select(acc, acc / count, p.mean != 0u));
}`
    ctx.dispatch({ key: `fused:ce:reduce:${st}:${targets!.data.st}:f16=${ctx.f16}`, code: code2, inputs: [per, targets!], outputs: [out], uniforms: b2, workgroups: [1] })
    return [out, lse]
  },

  CrossEntropyGrad: (ctx, [g, logits, targets, lse], attrs) => {
    const reduction = attr<'none' | 'sum' | 'mean'>(attrs, 'reduction')
    const [hasIgnore, ignore] = ignoreWord(attr<number | null>(attrs, 'ignoreIndex') ?? null)
    const v = logits!.shape[logits!.shape.length - 1]!
    const rows = sizeOf(targets!.shape)
    const out = ctx.output(logits!.dtype, logits!.shape)
    const total = rows * v
    if (total === 0) return out
    const st = out.data.st
    const mode = reduction === 'none' ? 0 : reduction === 'sum' ? 1 : 2
    const tAt = (k: string): string => (targets!.data.st === 'u32' ? `T[${k}]` : `bitcast<u32>(T[${k}])`)
    const { struct, buffer } = params(['n', 'v', 'rows', 'mode', 'hasIgnore', 'ignore'], new Uniforms().u32(total, v, rows, mode, hasIgnore).i32(ignore))
    const ins = [g!, logits!, targets!, lse!]
    const code = (): string => `${enableF16(ctx)}${struct}${bindings(ins, [out], ['GR', 'X', 'T', 'S'], ['DX'])}
fn ignored(k: u32) -> bool { return p.hasIgnore != 0u && ${tAt('k')} == bitcast<u32>(p.ignore); }
${main(`  let row = i / p.v;
  let j = i % p.v;
  if (ignored(row)) { DX[i] = ${st}(0.0); return; }
  var gr = ${ld('GR', '0u', g!)};
  if (p.mode == 0u) { gr = ${ld('GR', 'row', g!)}; }
  if (p.mode == 2u) {
    var count = 0.0;
    for (var k = 0u; k < p.rows; k++) { if (!ignored(k)) { count += 1.0; } }
    gr = gr / count;
  }
  let hot = select(0.0, 1.0, ${tAt('row')} == j);
  DX[i] = ${st}((exp(${ld('X', 'i', logits!)} - ${ld('S', 'row', lse!)}) - hot) * gr);`)}`
    ctx.dispatch({ key: `fused:cegrad:${st}:${targets!.data.st}:f16=${ctx.f16}`, code, inputs: ins, outputs: [out], uniforms: buffer, workgroups: grid(total) })
    return out
  },

  AdamUpdate: (ctx, [p, g, m, v], attrs) => {
    const n = sizeOf(p!.shape)
    const po = ctx.output(p!.dtype, p!.shape)
    const mo = ctx.output(p!.dtype, p!.shape)
    const vo = ctx.output(p!.dtype, p!.shape)
    if (n === 0) return [po, mo, vo]
    const st = po.data.st
    const lr = attr<number>(attrs, 'lr')
    const wd = attr<number>(attrs, 'weightDecay')
    const decoupled = attr<boolean>(attrs, 'decoupled')
    const b1 = attr<number>(attrs, 'beta1')
    const b2 = attr<number>(attrs, 'beta2')
    const words = [1 - b1, 1 - b2, decoupled ? 1 - lr * wd : 1, decoupled ? 0 : wd, lr * attr<number>(attrs, 'c1'), attr<number>(attrs, 'c2'), attr<number>(attrs, 'eps')]
    const u = new Uniforms().u32(n, f32Word(b1), f32Word(b2), ...words.map(f32Word))
    const { struct, buffer } = params(['n', 'b1', 'b2', 'a1', 'a2', 'keep', 'l2', 'lrc1', 'c2', 'eps'], u)
    const ins = [p!, g!, m!, v!]
    const code = (): string => `${enableF16(ctx)}${struct}${bindings(ins, [po, mo, vo], ['P', 'G', 'M', 'V'], ['PO', 'MO', 'VO'])}
fn f(w: u32) -> f32 { return bitcast<f32>(w); }
${main(`  let pi = ${ld('P', 'i', p!)};
  let gi = ${ld('G', 'i', g!)} + f(p.l2) * pi;
  let mi = f(p.b1) * ${ld('M', 'i', m!)} + f(p.a1) * gi;
  let vi = f(p.b2) * ${ld('V', 'i', v!)} + f(p.a2) * gi * gi;
  MO[i] = ${st}(mi);
  VO[i] = ${st}(vi);
  PO[i] = ${st}(pi * f(p.keep) - f(p.lrc1) * mi / (sqrt(vi * f(p.c2)) + f(p.eps)));`)}`
    ctx.dispatch({ key: `fused:adam:${st}:f16=${ctx.f16}`, code, inputs: ins, outputs: [po, mo, vo], uniforms: buffer, workgroups: grid(n) })
    return [po, mo, vo]
  },
} satisfies Partial<WebGpuKernelTable>
