import type { DType } from '../../dtype.js'

export { broadcastStrides } from '../../shape.js'
import { computeType, type StorageType } from './dtypes.js'
import type { GpuTensor, WebGpuContext } from './types.js'

export const WG = 256
/** Most workgroups one dimension may launch (WebGPU's default limit). */
export const MAX_WG_DIM = 65535
export const MAX_RANK = 8

/** Workgroup grid for `n` invocations of `WG` threads, folded into 2-D past the per-dimension limit. */
export function grid(n: number, wg = WG): [number, number] {
  const groups = Math.ceil(n / wg)
  if (groups <= MAX_WG_DIM) return [groups, 1]
  const y = Math.ceil(groups / MAX_WG_DIM)
  return [Math.ceil(groups / y), y]
}

/** The flat invocation index for a `grid()` launch. */
export const flatIndex = (wg = WG): string => `gid.x + gid.y * (nwg.x * ${wg}u)`

export const enableF16 = (ctx: WebGpuContext): string => (ctx.f16 ? 'enable f16;\n' : '')

/** WGSL load of element `i` of binding `name`, widened to the compute type of `dtype`. */
export const load = (name: string, i: string, st: StorageType, dtype: DType): string => {
  const ct = computeType(dtype)
  return st === ct ? `${name}[${i}]` : `${ct}(${name}[${i}])`
}

/**
 * Storage binding declarations for inputs (read) and outputs (read_write), in binding order. With `checked`, the
 * index-check flags (`ctx.indexCheck`) follow the outputs as `E`; the dispatch then lists them as its last output.
 */
export function bindings(inputs: readonly GpuTensor[], outputs: readonly GpuTensor[], inNames: readonly string[], outNames: readonly string[], opts: { readonly checked?: boolean } = {}): string {
  const lines: string[] = []
  let b = 0
  inputs.forEach((t, i) => lines.push(`@group(0) @binding(${b++}) var<storage, read> ${inNames[i]}: array<${t.data.st}>;`))
  outputs.forEach((t, i) => lines.push(`@group(0) @binding(${b++}) var<storage, read_write> ${outNames[i]}: array<${t.data.st}>;`))
  if (opts.checked) lines.push(`@group(0) @binding(${b++}) var<storage, read_write> E: array<atomic<u32>>;`)
  return lines.join('\n') + `\n@group(0) @binding(${b}) var<uniform> p: Params;\n`
}

/**
 * WGSL that flags index position `pos` (a u32 expression) as out of range in this dispatch's slot. The flag keeps
 * the lowest position (stored as its complement under atomicMax, so 0 means none), which is the one the CPU's
 * check, scanning in order, reports.
 */
export const flagIndex = (pos: string): string => `atomicMax(&E[p.slot], 0xffffffffu - (${pos}));`

/** A uniform block of u32 words padded to 16 bytes; floats are stored by bit pattern via `f32At`. */
export class Uniforms {
  readonly words: number[] = []
  u32(...v: number[]): this {
    for (const x of v) this.words.push(x >>> 0)
    return this
  }
  i32(...v: number[]): this {
    for (const x of v) this.words.push(x | 0)
    return this
  }
  f32(...v: number[]): this {
    const f = new Float32Array(1)
    const u = new Uint32Array(f.buffer)
    for (const x of v) {
      f[0] = x
      this.words.push(u[0]!)
    }
    return this
  }
  /** Pad a list of dims to MAX_RANK words. */
  dims(v: readonly number[]): this {
    for (let i = 0; i < MAX_RANK; i++) this.words.push((v[i] ?? 0) >>> 0)
    return this
  }
  buffer(): ArrayBuffer {
    const n = Math.max(4, Math.ceil(this.words.length / 4) * 4)
    const out = new Uint32Array(n)
    this.words.forEach((w, i) => {
      out[i] = w >>> 0
    })
    return out.buffer
  }
  /** WGSL struct with a header of `header` named u32 fields followed by the rest as vec4 words. */
  static struct(header: readonly string[], vec4s: number): string {
    const pad = (4 - (header.length % 4)) % 4
    const fields = [...header.map(h => `${h}: u32`), ...Array.from({ length: pad }, (_, i) => `_pad${i}: u32`)]
    return `struct Params { ${fields.join(', ')}${vec4s > 0 ? `, d: array<vec4<u32>, ${vec4s}>` : ''} }\nfn word(k: u32) -> u32 { return p.d[k / 4u][k % 4u]; }\n`
  }
}


/** WGSL helpers shared by float kernels: NaN tests by bit pattern (compilers may fold `x != x`), erf, log1p. */
export const MATH = /* wgsl */ `
fn is_nan(x: f32) -> bool { let b = bitcast<u32>(x); return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u; }
fn is_inf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }
// through a var: a NaN or infinite constant expression is a WGSL compile error
fn nan_f32() -> f32 { var u = 0x7fc00000u; return bitcast<f32>(u); }
fn inf_f32() -> f32 { var u = 0x7f800000u; return bitcast<f32>(u); }
fn log1p_(x: f32) -> f32 { let u = 1.0 + x; if (u == 1.0) { return x; } return log(u) * x / (u - 1.0); }
fn expm1_(x: f32) -> f32 { if (abs(x) < 1e-5) { return x + 0.5 * x * x; } return exp(x) - 1.0; }
fn tanh_(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
fn sigmoid_(x: f32) -> f32 { if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); } let e = exp(x); return e / (1.0 + e); }
fn softplus_(x: f32) -> f32 { return max(x, 0.0) + log1p_(exp(-abs(x))); }
fn erf_(x: f32) -> f32 {
  // Abramowitz & Stegun 7.1.26 refined: |error| < 1.5e-7, below f32 resolution near 1
  let a = abs(x);
  if (a < 0.5) {
    let x2 = x * x;
    return 1.1283791671 * x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (0.1 + x2 * (-1.0 / 42.0 + x2 / 216.0))));
  }
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return sign(x) * y;
}
`
