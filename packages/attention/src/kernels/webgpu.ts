import { BackendError, type Backend } from '@heed/tensor'
import type { GpuData, GpuTensor, WebGpuContext, WebGpuKernel } from '@heed/tensor/webgpu'
import type { Mask } from '../mask.js'
import type { ScoreMod } from '../scoreMod.js'
import { AttentionKernel, attentionGeometry, type AttentionAttrs, type AttentionGeometry } from './attrs.js'

/**
 * WebGPU kernels of scaled dot-product attention, with the CPU kernels' names, inputs, outputs and semantics.
 *
 * Tiling. One tile size `T` (a power of two ≤ 32, chosen from the head dims so a staged tile stays under 24 KiB of
 * the 32 KiB of workgroup storage WebGPU guarantees) serves both directions, so one tile-classification table
 * serves every pass:
 * - forward and dQ: a workgroup per (query tile, head, batch), one invocation per query row holding its q row and
 *   f32 accumulators privately; key/value tiles are staged in workgroup memory and consumed with the online
 *   softmax (one rescale per tile, not per key). No Tq×Tk buffer exists at any point.
 * - dK/dV: a workgroup per (key tile, kv head, batch), one invocation per key row, walking the query tiles of
 *   every query head of its GQA group. Each output element has exactly one writer, so no atomics are needed
 *   (FlashAttention-2's split); probabilities are recomputed from the saved lse, and Δ_i = dO_i·O_i − dLse_i is
 *   precomputed once per row by a small kernel.
 *
 * Masks and score mods. The mask / score-mod trees compile to WGSL functions `mask_allowed(b, h, pq, pk)`,
 * `score_mod(s, b, h, pq, pk)` and `score_mod_grad(...)`. Only the tree's shape (node kinds, arity, head count)
 * is baked into the shader text; every number (window sizes, sink counts, chunk sizes, segment ids, ALiBi slopes,
 * soft-cap, bias tables, custom-mask bits) travels in one `u32` aux buffer whose header slots are assigned in tree
 * order, so the pipeline cache key is the tree's shape plus the head dims. A KV cache's per-step masks (the
 * `sinks(used)` of its written range changes every decode step) therefore reuse one pipeline. The aux
 * buffer also holds the host-computed per-(head, query tile, key tile) classification (2 bits each: none /
 * partial / full): none tiles are never loaded, full tiles skip the per-pair test. A custom (closure) mask is
 * evaluated on the host into a dense bit table, B·H·Tq·Tk/8 bytes. Custom score mods cannot run here.
 */

/** Workgroup storage budget of one staged tile (bytes), leaving headroom under WebGPU's guaranteed 32 KiB. */
const TILE_BUDGET = 24 * 1024

/** The tile size for head dims D and Dv: largest power of two ≤ 32 whose staged tile fits the budget. */
export function attentionTile(D: number, Dv: number): number {
  const per = (D + Dv + 2) * 4
  let t = 32
  while (t > 1 && t * per > TILE_BUDGET) t >>= 1
  if (t * per > 32 * 1024)
    throw new BackendError({ op: 'scaledDotProductAttention', arg: 'head dims', actual: `D=${D}, Dv=${Dv}` }, 'head dims too large for WebGPU workgroup storage (D + Dv must be below ~8000)')
  return t
}

// ---- compilation of masks and score mods ---------------------------------------------------------------------

type Slot = { readonly kind: 'word'; readonly value: number } | { readonly kind: 'offset'; readonly data: number }

/**
 * One walk over the mask and score-mod trees produces both the WGSL (structural, only used on a pipeline-cache
 * miss) and this call's aux data, so the two can never disagree about slot numbering.
 */
class Program {
  readonly code: string[] = []
  readonly slots: Slot[] = []
  /** Data words, positioned after the header and the tile table. */
  readonly data: number[] = []
  #fn = 0
  headDependent = false

  constructor(readonly geo: Geometry, readonly qOffset: number, readonly kOffset: number) {}

  name(prefix: string): string {
    return `${prefix}${this.#fn++}`
  }
  word(value: number): number {
    this.slots.push({ kind: 'word', value: value >>> 0 })
    return this.slots.length - 1
  }
  floatWord(value: number): number {
    return this.word(f32Bits(value))
  }
  /** Append `words` to the data area; returns the header slot holding their absolute offset. */
  block(words: ArrayLike<number>): number {
    this.slots.push({ kind: 'offset', data: this.data.length })
    for (let i = 0; i < words.length; i++) this.data.push(words[i]! >>> 0)
    return this.slots.length - 1
  }
}

const f32Buf = new Float32Array(1)
const u32View = new Uint32Array(f32Buf.buffer)
const f32Bits = (x: number): number => {
  f32Buf[0] = x
  return u32View[0]!
}

const MASK_SIG = 'b: u32, h: u32, pq: i32, pk: i32'

/** What of a mask the shader text depends on: node kinds and the tree's shape, never its sizes or counts. */
function shapeKey(m: Mask): string {
  const n = m.node
  switch (n.kind) {
    case 'and':
    case 'or':
      return `${n.kind}(${n.parts.map(shapeKey).join(',')})`
    case 'not':
      return `not(${shapeKey(n.part)})`
    case 'perHead':
      return `perHead(${n.heads.map(shapeKey).join(',')})`
    default:
      return n.kind
  }
}
const MOD_SIG = 's: f32, b: u32, h: u32, pq: i32, pk: i32'

function compileMask(m: Mask, pg: Program): string {
  const n = m.node
  const fn = pg.name('mask_')
  const call = (c: string): string => `${c}(b, h, pq, pk)`
  let body: string
  switch (n.kind) {
    case 'all':
      body = 'return true;'
      break
    case 'none':
      body = 'return false;'
      break
    case 'causal':
      body = 'return pk <= pq;'
      break
    // sizes and counts are data (aux words), not shader text: a new value must not compile a new pipeline
    case 'window':
      body = `return abs(pq - pk) < i32(aux[${pg.word(n.size)}u]);`
      break
    case 'sinks':
      body = `return pk < i32(aux[${pg.word(n.count)}u]);`
      break
    case 'chunk': {
      const w = pg.word(n.size)
      body = `return floor_div(pq, i32(aux[${w}u])) == floor_div(pk, i32(aux[${w}u]));`
      break
    }
    case 'segments': {
      const qs = pg.block(n.q)
      pg.word(n.q.length)
      const ks = pg.block(n.k)
      pg.word(n.k.length)
      body =
        `if (pq < 0i || pk < 0i || pq >= i32(aux[${qs + 1}u]) || pk >= i32(aux[${ks + 1}u])) { return false; }\n` +
        `  return aux[aux[${qs}u] + u32(pq)] == aux[aux[${ks}u] + u32(pk)];`
      break
    }
    case 'and':
    case 'or': {
      const parts = n.parts.map(x => call(compileMask(x, pg)))
      body = `return ${parts.join(n.kind === 'and' ? ' && ' : ' || ')};`
      break
    }
    case 'not':
      body = `return !${call(compileMask(n.part, pg))};`
      break
    case 'perHead': {
      pg.headDependent = true
      const fns = n.heads.map(x => compileMask(x, pg))
      body = fns.map((f, i) => (i < fns.length - 1 ? `if (h == ${i}u) { return ${call(f)}; }` : `return ${call(f)};`)).join('\n  ')
      break
    }
    case 'custom': {
      // the closure may depend on every coordinate, so it is sampled at every (b, h, query, key)
      const { B, H, Tq, Tk } = pg.geo
      const bits = new Uint32Array(Math.ceil((B * H * Tq * Tk) / 32))
      let e = 0
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++)
          for (let i = 0; i < Tq; i++)
            for (let j = 0; j < Tk; j++, e++) if (n.fn(b, h, pg.qOffset + i, pg.kOffset + j)) bits[e >>> 5]! |= 1 << (e & 31)
      const s = pg.block(bits)
      body =
        `let e = ((b * p.H + h) * p.Tq + u32(pq - p.qOff)) * p.Tk + u32(pk - p.kOff);\n` +
        `  return ((aux[aux[${s}u] + e / 32u] >> (e % 32u)) & 1u) != 0u;`
      break
    }
  }
  pg.code.push(`fn ${fn}(${MASK_SIG}) -> bool {\n  ${body}\n}`)
  return fn
}

/** Returns the names of the mod function and of its derivative with respect to s. */
function compileMod(m: ScoreMod, pg: Program): [string, string] {
  const n = m.node
  const fn = pg.name('mod_')
  const dfn = `d${fn}`
  let body: string
  let dbody = 'return 1.0;'
  switch (n.kind) {
    case 'alibi': {
      const s = pg.block(Array.from(n.slopes, f32Bits))
      pg.word(n.slopes.length)
      body = `return s - bitcast<f32>(aux[aux[${s}u] + h % aux[${s + 1}u]]) * f32(pq - pk);`
      break
    }
    case 'softcap': {
      const c = pg.floatWord(n.cap)
      body = `let c = bitcast<f32>(aux[${c}u]);\n  return c * tanh_(s / c);`
      dbody = `let t = tanh_(s / bitcast<f32>(aux[${c}u]));\n  return 1.0 - t * t;`
      break
    }
    case 'relativeBias': {
      const t = pg.block(Array.from(n.table, f32Bits))
      pg.word(n.heads)
      pg.word(n.maxDistance)
      body =
        `let md = i32(aux[${t + 2}u]);\n` +
        `  let d = clamp(pk - pq, -md, md);\n` +
        `  return s + bitcast<f32>(aux[aux[${t}u] + (h % aux[${t + 1}u]) * u32(2i * md + 1i) + u32(d + md)]);`
      break
    }
    case 'compose': {
      const fs = n.mods.map(x => compileMod(x, pg))
      body = `var x = s;\n${fs.map(([f]) => `  x = ${f}(x, b, h, pq, pk);`).join('\n')}\n  return x;`
      dbody = `var x = s;\n  var d = 1.0;\n${fs.map(([f, df]) => `  d *= ${df}(x, b, h, pq, pk);\n  x = ${f}(x, b, h, pq, pk);`).join('\n')}\n  return d;`
      break
    }
    case 'custom':
      throw customModError()
  }
  pg.code.push(`fn ${fn}(${MOD_SIG}) -> f32 {\n  ${body}\n}`, `fn ${dfn}(${MOD_SIG}) -> f32 {\n  ${dbody}\n}`)
  return [fn, dfn]
}

const customModError = (): BackendError =>
  new BackendError(
    { op: 'scaledDotProductAttention', arg: 'scoreMod', actual: 'scoreMod.custom on webgpu' },
    'custom score mods are TypeScript closures and run on the CPU only; use the library mods (alibi, softcap, relativeBias, compose) ' +
      "or move the tensors with toBackend(x, 'cpu')",
  )

// ---- host side -------------------------------------------------------------------------------------------------

interface Geometry extends AttentionGeometry {
  /** Tile size shared by every pass, and the number of query and key tiles. */
  T: number
  nQT: number
  nKT: number
}

const geometry = (q: GpuTensor, k: GpuTensor, v: GpuTensor): Geometry => {
  const base = attentionGeometry(q, k, v)
  const T = attentionTile(base.D, base.Dv)
  return { ...base, T, nQT: Math.ceil(base.Tq / T), nKT: Math.ceil(base.Tk / T) }
}

/** What a kernel needs beyond WebGpuContext: host uploads and releases of its scratch buffers. */
type Host = WebGpuContext & Pick<Backend, 'allocate' | 'free'>

function asHost(ctx: WebGpuContext): Host {
  const h = ctx as Partial<Host>
  if (typeof h.allocate !== 'function' || typeof h.free !== 'function')
    throw new BackendError({ op: 'scaledDotProductAttention', actual: 'a WebGPU context without allocate/free' }, 'the attention kernels upload mask data and need the WebGPU backend itself as context')
  return ctx as Host
}

interface Compiled {
  /** Structural: equal keys mean equal WGSL (with the same head dims and storage type). */
  readonly key: string
  readonly wgsl: string
  readonly aux: Uint32Array
}

/** Compile the attrs' mask and mod for this geometry: WGSL, and the aux buffer (header, tile table, data). */
function compile(a: AttentionAttrs, geo: Geometry): Compiled {
  if (a.scoreMod && !a.scoreMod.compilable) throw customModError()
  const pg = new Program(geo, a.qOffset, a.kOffset)
  const maskFn = compileMask(a.mask, pg)
  const [modFn, dmodFn] = a.scoreMod ? compileMod(a.scoreMod, pg) : ['', '']
  const header = Math.max(1, pg.slots.length)
  // tile classes: 0 none, 1 partial, 2 full; 16 per word
  const { T, nQT, nKT, H, Tq, Tk } = geo
  const heads = pg.headDependent ? H : 1
  const entries = heads * nQT * nKT
  const tableWords = Math.ceil(entries / 16)
  const aux = new Uint32Array(Math.max(4, header + tableWords + pg.data.length))
  pg.slots.forEach((s, i) => (aux[i] = s.kind === 'word' ? s.value : header + tableWords + s.data))
  let e = 0
  for (let h = 0; h < heads; h++)
    for (let qt = 0; qt < nQT; qt++) {
      const q0 = a.qOffset + qt * T
      const q1 = a.qOffset + Math.min(Tq, (qt + 1) * T) - 1
      for (let kt = 0; kt < nKT; kt++, e++) {
        const k0 = a.kOffset + kt * T
        const k1 = a.kOffset + Math.min(Tk, (kt + 1) * T) - 1
        const c = a.mask.classify(h, { q0, q1, k0, k1 })
        const code = c === 'none' ? 0 : c === 'full' ? 2 : 1
        aux[header + (e >>> 4)]! |= code << ((e & 15) * 2)
      }
    }
  aux.set(pg.data, header + tableWords)
  const key = `mask=${shapeKey(a.mask)};mod=${a.scoreMod?.key ?? ''};hd=${pg.headDependent}`
  const wgsl = [
    ...pg.code,
    `fn mask_allowed(${MASK_SIG}) -> bool { return ${maskFn}(b, h, pq, pk); }`,
    `fn score_mod(${MOD_SIG}) -> f32 { return ${modFn ? `${modFn}(s, b, h, pq, pk)` : 's'}; }`,
    `fn score_mod_grad(${MOD_SIG}) -> f32 { return ${dmodFn ? `${dmodFn}(s, b, h, pq, pk)` : '1.0'}; }`,
    `const TABLE = ${header}u;`,
    `const HEADS_IN_TABLE = ${pg.headDependent ? 1 : 0}u;`,
  ].join('\n')
  return { key, wgsl, aux }
}

/** Uniform block shared by every pass (48 bytes). */
function params(a: AttentionAttrs, geo: Geometry): ArrayBuffer {
  const w = new Uint32Array(12)
  const { B, H, Hkv, Tq, Tk, nQT, nKT, g } = geo
  w.set([B, H, Hkv, Tq, Tk, nQT, nKT, g, B * H * Tq])
  w[9] = a.qOffset | 0
  w[10] = a.kOffset | 0
  w[11] = f32Bits(a.scale)
  return w.buffer
}

const PARAMS = /* wgsl */ `
struct Params { B: u32, H: u32, Hkv: u32, Tq: u32, Tk: u32, nQT: u32, nKT: u32, g: u32, rows: u32, qOff: i32, kOff: i32, scale: f32 }
`

const COMMON = /* wgsl */ `
// through a var: an infinite constant expression is a WGSL compile error
fn neg_inf() -> f32 { var u = 0xff800000u; return bitcast<f32>(u); }
fn nan_() -> f32 { var u = 0x7fc00000u; return bitcast<f32>(u); }
// NaN by its bits: WGSL lets a compiler assume that float comparisons never see a NaN
fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
// tanh through exp(−2|x|): never overflows, whatever the platform's builtin does at large |x|
fn tanh_(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
fn floor_div(a: i32, b: i32) -> i32 { let q = a / b; return select(q, q - 1i, (a % b != 0i) && (a < 0i)); }
fn tile_class(h: u32, qt: u32, kt: u32) -> u32 {
  let e = ((h * HEADS_IN_TABLE) * p.nQT + qt) * p.nKT + kt;
  return (aux[TABLE + e / 16u] >> ((e % 16u) * 2u)) & 3u;
}
`

const header = (ctx: WebGpuContext, st: string, ins: readonly [string, string][], outs: readonly [string, string][]): string => {
  const lines = [ctx.f16 && st === 'f16' ? 'enable f16;' : '', PARAMS]
  let b = 0
  for (const [name, ty] of ins) lines.push(`@group(0) @binding(${b++}) var<storage, read> ${name}: array<${ty}>;`)
  for (const [name, ty] of outs) lines.push(`@group(0) @binding(${b++}) var<storage, read_write> ${name}: array<${ty}>;`)
  lines.push(`@group(0) @binding(${b}) var<uniform> p: Params;`)
  return lines.join('\n')
}

const upload = (host: Host, words: Uint32Array): GpuTensor => ({
  data: host.allocate('uint32', words.length, words) as GpuData,
  shape: [words.length],
  dtype: 'uint32',
})

/** Largest head dim whose per-dim loops are written out: constant indices let private arrays live in registers. */
const UNROLL = 128

/** `body(d)` for d in [0, n): unrolled with literal indices up to UNROLL, else a loop over `d`. */
const each = (n: number, body: (d: string) => string): string =>
  n <= UNROLL ? Array.from({ length: n }, (_, i) => body(`${i}u`)).join(' ') : `for (var d = 0u; d < ${n}u; d++) { ${body('d')} }`

// ---- forward -------------------------------------------------------------------------------------------------

function forwardShader(ctx: WebGpuContext, st: string, geo: Geometry, c: Compiled): string {
  const { T, D, Dv } = geo
  return `${header(ctx, st, [['Q', st], ['K', st], ['V', st], ['aux', 'u32']], [['O', st], ['L', st]])}
${c.wgsl}
${COMMON}
var<workgroup> ks: array<f32, ${T * D}>;
var<workgroup> vs: array<f32, ${T * Dv}>;
var<workgroup> wcls: u32;

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let qt = wid.x;
  let h = wid.y;
  let b = wid.z;
  let kvBase = (b * p.Hkv + h / p.g) * p.Tk;
  let i = qt * ${T}u + li;
  let live = i < p.Tq;
  let row = (b * p.H + h) * p.Tq + min(i, p.Tq - 1u);
  let pq = p.qOff + i32(i);
  let ninf = neg_inf();
  var qr: array<f32, ${D}>;
  ${each(D, d => `qr[${d}] = f32(Q[row * ${D}u + ${d}]);`)}
  var acc: array<f32, ${Dv}>;
  var s: array<f32, ${T}>;
  var m = ninf;
  var l = 0.0;
  // a visible NaN score (NaN in this q row or in a key it sees) makes the row NaN, as on the CPU
  var bad = false;
  for (var kt = 0u; kt < p.nKT; kt++) {
    // nobody may still be reading the previous tile (or wcls) when they are overwritten
    workgroupBarrier();
    if (li == 0u) { wcls = tile_class(h, qt, kt); }
    let cls = workgroupUniformLoad(&wcls);
    if (cls == 0u) { continue; }
    let k0 = kt * ${T}u;
    let nk = min(${T}u, p.Tk - k0);
    for (var e = li; e < nk * ${D}u; e += ${T}u) { ks[e] = f32(K[(kvBase + k0) * ${D}u + e]); }
    for (var e = li; e < nk * ${Dv}u; e += ${T}u) { vs[e] = f32(V[(kvBase + k0) * ${Dv}u + e]); }
    workgroupBarrier();
    if (live) {
      var mt = m;
      for (var j = 0u; j < nk; j++) {
        let pk = p.kOff + i32(k0 + j);
        var x = ninf;
        if (cls == 2u || mask_allowed(b, h, pq, pk)) {
          var dot = 0.0;
          ${each(D, d => `dot += qr[${d}] * ks[j * ${D}u + ${d}];`)}
          x = score_mod(dot * p.scale, b, h, pq, pk);
          if (is_nan(x)) { bad = true; x = ninf; }
        }
        s[j] = x;
        mt = max(mt, x);
      }
      if (mt > ninf) {
        // a +∞ score would make every exp(s − m) NaN; the largest finite shift keeps the row usable
        mt = min(mt, 0x1.fffffep+127f);
        let corr = select(0.0, exp(m - mt), m > ninf);
        l *= corr;
        ${each(Dv, d => `acc[${d}] *= corr;`)}
        for (var j = 0u; j < nk; j++) {
          if (s[j] > ninf) {
            let pj = exp(s[j] - mt);
            l += pj;
            ${each(Dv, d => `acc[${d}] += pj * vs[j * ${Dv}u + ${d}];`)}
          }
        }
        m = mt;
      }
    }
  }
  if (live) {
    // fully masked row: o = 0, lse = −∞, the identity of the state merge (never 0/0)
    let inv = select(0.0, 1.0 / l, l > 0.0);
    if (bad) {
      ${each(Dv, d => `O[row * ${Dv}u + ${d}] = ${st}(nan_());`)}
      L[row] = ${st}(nan_());
    } else {
      ${each(Dv, d => `O[row * ${Dv}u + ${d}] = ${st}(acc[${d}] * inv);`)}
      L[row] = ${st}(select(ninf, m + log(l), l > 0.0));
    }
  }
}
`
}

const forward: WebGpuKernel<AttentionAttrs> = (ctx, [q, k, v], a) => {
  const geo = geometry(q!, k!, v!)
  const c = compile(a, geo)
  const host = asHost(ctx)
  const { B, H, Tq, Dv, T, D } = geo
  const out = ctx.output(q!.dtype, [B, H, Tq, Dv])
  const lse = ctx.output(q!.dtype, [B, H, Tq])
  if (B * H * Tq === 0) return [out, lse]
  const st = q!.data.st
  const aux = upload(host, c.aux)
  ctx.dispatch({
    key: `attention.fwd;${st};D=${D};Dv=${Dv};T=${T};${c.key}`,
    code: () => forwardShader(ctx, st, geo, c),
    inputs: [q!, k!, v!, aux],
    outputs: [out, lse],
    uniforms: params(a, geo),
    workgroups: [geo.nQT, H, B],
  })
  host.free(aux.data)
  return [out, lse]
}

// ---- backward ------------------------------------------------------------------------------------------------

/** Per row: stats[r] = lse, stats[rows + r] = dO·O − dLse (the Δ of FlashAttention-2 with the lse cotangent). */
function rowStatsShader(ctx: WebGpuContext, st: string, Dv: number): string {
  return `${header(ctx, st, [['O', st], ['L', st], ['dO', st], ['dL', st]], [['stats', 'f32']])}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let r = (wid.x + wid.y * nwg.x) * 64u + li;
  if (r >= p.rows) { return; }
  var delta = 0.0;
  ${each(Dv, d => `delta += f32(dO[r * ${Dv}u + ${d}]) * f32(O[r * ${Dv}u + ${d}]);`)}
  stats[r] = f32(L[r]);
  stats[p.rows + r] = delta - f32(dL[r]);
}
`
}

function dqShader(ctx: WebGpuContext, st: string, geo: Geometry, c: Compiled): string {
  const { T, D, Dv } = geo
  return `${header(ctx, st, [['Q', st], ['K', st], ['V', st], ['dO', st], ['stats', 'f32'], ['aux', 'u32']], [['dQ', st]])}
${c.wgsl}
${COMMON}
var<workgroup> ks: array<f32, ${T * D}>;
var<workgroup> vs: array<f32, ${T * Dv}>;
var<workgroup> wcls: u32;

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let qt = wid.x;
  let h = wid.y;
  let b = wid.z;
  let kvBase = (b * p.Hkv + h / p.g) * p.Tk;
  let i = qt * ${T}u + li;
  let row = (b * p.H + h) * p.Tq + min(i, p.Tq - 1u);
  let pq = p.qOff + i32(i);
  let ninf = neg_inf();
  let L = stats[row];
  let delta = stats[p.rows + row];
  // a NaN row (it saw a NaN) passes NaN on to the gradients of what it saw, as on the CPU
  let live = i < p.Tq && (L > ninf || is_nan(L));
  var qr: array<f32, ${D}>;
  ${each(D, d => `qr[${d}] = f32(Q[row * ${D}u + ${d}]);`)}
  var dor: array<f32, ${Dv}>;
  ${each(Dv, d => `dor[${d}] = f32(dO[row * ${Dv}u + ${d}]);`)}
  var dq: array<f32, ${D}>;
  for (var kt = 0u; kt < p.nKT; kt++) {
    workgroupBarrier();
    if (li == 0u) { wcls = tile_class(h, qt, kt); }
    let cls = workgroupUniformLoad(&wcls);
    if (cls == 0u) { continue; }
    let k0 = kt * ${T}u;
    let nk = min(${T}u, p.Tk - k0);
    for (var e = li; e < nk * ${D}u; e += ${T}u) { ks[e] = f32(K[(kvBase + k0) * ${D}u + e]); }
    for (var e = li; e < nk * ${Dv}u; e += ${T}u) { vs[e] = f32(V[(kvBase + k0) * ${Dv}u + e]); }
    workgroupBarrier();
    if (live) {
      for (var j = 0u; j < nk; j++) {
        let pk = p.kOff + i32(k0 + j);
        if (cls == 2u || mask_allowed(b, h, pq, pk)) {
          var dot = 0.0;
          ${each(D, d => `dot += qr[${d}] * ks[j * ${D}u + ${d}];`)}
          let raw = dot * p.scale;
          let x = score_mod(raw, b, h, pq, pk);
          if (x > ninf || is_nan(x)) {
            let pr = exp(x - L);
            var dp = 0.0;
            ${each(Dv, d => `dp += dor[${d}] * vs[j * ${Dv}u + ${d}];`)}
            let ds = pr * (dp - delta) * score_mod_grad(raw, b, h, pq, pk) * p.scale;
            ${each(D, d => `dq[${d}] += ds * ks[j * ${D}u + ${d}];`)}
          }
        }
      }
    }
  }
  if (i < p.Tq) {
    ${each(D, d => `dQ[row * ${D}u + ${d}] = ${st}(dq[${d}]);`)}
  }
}
`
}

function dkvShader(ctx: WebGpuContext, st: string, geo: Geometry, c: Compiled): string {
  const { T, D, Dv } = geo
  return `${header(ctx, st, [['Q', st], ['K', st], ['V', st], ['dO', st], ['stats', 'f32'], ['aux', 'u32']], [['dK', st], ['dV', st]])}
${c.wgsl}
${COMMON}
var<workgroup> qs: array<f32, ${T * D}>;
var<workgroup> dos: array<f32, ${T * Dv}>;
var<workgroup> ls: array<f32, ${T}>;
var<workgroup> dls: array<f32, ${T}>;
var<workgroup> wcls: u32;

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let kt = wid.x;
  let hk = wid.y;
  let b = wid.z;
  let j = kt * ${T}u + li;
  let live = j < p.Tk;
  let krow = (b * p.Hkv + hk) * p.Tk + min(j, p.Tk - 1u);
  let pk = p.kOff + i32(j);
  let ninf = neg_inf();
  var kr: array<f32, ${D}>;
  ${each(D, d => `kr[${d}] = f32(K[krow * ${D}u + ${d}]);`)}
  var vr: array<f32, ${Dv}>;
  ${each(Dv, d => `vr[${d}] = f32(V[krow * ${Dv}u + ${d}]);`)}
  var dk: array<f32, ${D}>;
  var dv: array<f32, ${Dv}>;
  // dK/dV of a kv head sum over the query heads of its group; this invocation is their only writer
  for (var hq = 0u; hq < p.g; hq++) {
    let h = hk * p.g + hq;
    let qBase = (b * p.H + h) * p.Tq;
    for (var qt = 0u; qt < p.nQT; qt++) {
      workgroupBarrier();
      if (li == 0u) { wcls = tile_class(h, qt, kt); }
      let cls = workgroupUniformLoad(&wcls);
      if (cls == 0u) { continue; }
      let q0 = qt * ${T}u;
      let nq = min(${T}u, p.Tq - q0);
      for (var e = li; e < nq * ${D}u; e += ${T}u) { qs[e] = f32(Q[(qBase + q0) * ${D}u + e]); }
      for (var e = li; e < nq * ${Dv}u; e += ${T}u) { dos[e] = f32(dO[(qBase + q0) * ${Dv}u + e]); }
      if (li < nq) {
        ls[li] = stats[qBase + q0 + li];
        dls[li] = stats[p.rows + qBase + q0 + li];
      }
      workgroupBarrier();
      if (live) {
        for (var i = 0u; i < nq; i++) {
          let pq = p.qOff + i32(q0 + i);
          let L = ls[i];
          if ((L > ninf || is_nan(L)) && (cls == 2u || mask_allowed(b, h, pq, pk))) {
            var dot = 0.0;
            ${each(D, d => `dot += qs[i * ${D}u + ${d}] * kr[${d}];`)}
            let raw = dot * p.scale;
            let x = score_mod(raw, b, h, pq, pk);
            if (x > ninf || is_nan(x)) {
              let pr = exp(x - L);
              var dp = 0.0;
              ${each(Dv, d => `dv[${d}] += pr * dos[i * ${Dv}u + ${d}]; dp += dos[i * ${Dv}u + ${d}] * vr[${d}];`)}
              let ds = pr * (dp - dls[i]) * score_mod_grad(raw, b, h, pq, pk) * p.scale;
              ${each(D, d => `dk[${d}] += ds * qs[i * ${D}u + ${d}];`)}
            }
          }
        }
      }
    }
  }
  if (live) {
    ${each(D, d => `dK[krow * ${D}u + ${d}] = ${st}(dk[${d}]);`)}
    ${each(Dv, d => `dV[krow * ${Dv}u + ${d}] = ${st}(dv[${d}]);`)}
  }
}
`
}

/** Fold a 1-D workgroup count under the per-dimension limit (the shader recombines x and y). */
const fold = (n: number): [number, number] => {
  if (n <= 65535) return [n, 1]
  const y = Math.ceil(n / 65535)
  return [Math.ceil(n / y), y]
}

const backward: WebGpuKernel<AttentionAttrs> = (ctx, [q, k, v, o, lse, dO, dLse], a) => {
  const geo = geometry(q!, k!, v!)
  const c = compile(a, geo)
  const host = asHost(ctx)
  const { B, H, Hkv, Tq, Tk, D, Dv, T } = geo
  const dq = ctx.output(q!.dtype, q!.shape)
  const dk = ctx.output(k!.dtype, k!.shape)
  const dv = ctx.output(v!.dtype, v!.shape)
  const rows = B * H * Tq
  if (rows === 0 && B * Hkv * Tk === 0) return [dq, dk, dv]
  const st = q!.data.st
  const uniforms = params(a, geo)
  const base = `D=${D};Dv=${Dv};T=${T};${c.key}`
  const stats = ctx.output('float32', [Math.max(2 * rows, 4)])
  const aux = upload(host, c.aux)
  if (rows > 0) {
    ctx.dispatch({
      key: `attention.rowstats;${st};Dv=${Dv}`,
      code: () => rowStatsShader(ctx, st, Dv),
      inputs: [o!, lse!, dO!, dLse!],
      outputs: [stats],
      uniforms,
      workgroups: fold(Math.ceil(rows / 64)),
    })
    ctx.dispatch({
      key: `attention.dq;${st};${base}`,
      code: () => dqShader(ctx, st, geo, c),
      inputs: [q!, k!, v!, dO!, stats, aux],
      outputs: [dq],
      uniforms,
      workgroups: [geo.nQT, H, B],
    })
  }
  if (B * Hkv * Tk > 0) {
    // with no query rows dK and dV are zero, which this pass also writes (its query loop is empty)
    ctx.dispatch({
      key: `attention.dkv;${st};${base}`,
      code: () => dkvShader(ctx, st, geo, c),
      inputs: [q!, k!, v!, dO!, stats, aux],
      outputs: [dk, dv],
      uniforms,
      workgroups: [geo.nKT, Hkv, B],
    })
  }
  host.free(aux.data)
  host.free(stats.data)
  return [dq, dk, dv]
}

export const webgpuAttentionKernels: Readonly<Record<string, WebGpuKernel<AttentionAttrs>>> = {
  [AttentionKernel.Forward]: forward,
  [AttentionKernel.Backward]: backward,
}
