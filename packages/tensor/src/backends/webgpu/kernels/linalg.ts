import type { Attrs } from '../../../backend.js'
import { BackendError } from '../../../errors.js'
import { sizeOf, type Shape } from '../../../shape.js'
import { computeType } from '../dtypes.js'
import type { GpuTensor, WebGpuContext, WebGpuKernel, WebGpuKernelTable } from '../types.js'
import { broadcastStrides, enableF16, MAX_RANK, MAX_WG_DIM, Uniforms } from '../wgsl.js'

/**
 * Batched matmul in two shapes of kernel, because the fast one on a software rasterizer is the slow one on a GPU:
 *
 * - `register`: no workgroup memory. Each invocation owns a 4×4 block of C and walks k four at a time, loading
 *   the operands as vec4 along whichever dim their layout makes contiguous. On lavapipe, workgroup memory and
 *   barriers are emulated and cost more than they save; plain vector loads from a cached buffer do not.
 * - `tiled`: the classic 64×64 workgroup tile staged through workgroup memory in 16-deep k slices, each
 *   invocation accumulating a 4×4 block. On hardware with real shared memory this cuts global traffic 16-fold.
 *
 * `ctx.info.fallback` (software or fallback adapter) picks `register`, anything else `tiled`; the environment
 * variable HEED_WEBGPU_MATMUL=register|tiled or setMatMulVariant() overrides that (tests run both on lavapipe).
 * Transposed operands are read in place: the layout is part of the shader, so no transposed copy is made.
 */
export type MatMulVariant = 'register' | 'tiled'

let override: MatMulVariant | undefined

/** Force a matmul variant for every later MatMul on WebGPU (undefined: choose by adapter). For tests and benches. */
export function setMatMulVariant(v: MatMulVariant | undefined): void {
  override = v
}

export function matMulVariant(ctx: WebGpuContext): MatMulVariant {
  if (override) return override
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.['HEED_WEBGPU_MATMUL']
  if (env === 'register' || env === 'tiled') return env
  return ctx.info.fallback || ctx.info.architecture === 'software' ? 'register' : 'tiled'
}

/** The problem after numpy promotion of 1-D operands and batch broadcasting. */
interface Problem {
  readonly m: number
  readonly k: number
  readonly n: number
  readonly tA: boolean
  readonly tB: boolean
  readonly batch: number[]
  /** Element offset strides of each operand per batch dim (0 where broadcast). */
  readonly aStrides: number[]
  readonly bStrides: number[]
  readonly outShape: Shape
}

function problem(a: GpuTensor, b: GpuTensor, attrs: Attrs): Problem {
  const a1 = a.shape.length === 1
  const b1 = b.shape.length === 1
  const as: Shape = a1 ? [1, a.shape[0]!] : a.shape
  const bs: Shape = b1 ? [b.shape[0]!, 1] : b.shape
  const tA = attrs['transposeA'] === true && !a1
  const tB = attrs['transposeB'] === true && !b1
  const ra = as.length
  const rb = bs.length
  const m = tA ? as[ra - 1]! : as[ra - 2]!
  const k = tA ? as[ra - 2]! : as[ra - 1]!
  const n = tB ? bs[rb - 2]! : bs[rb - 1]!
  const aBatch = as.slice(0, -2)
  const bBatch = bs.slice(0, -2)
  const r = Math.max(aBatch.length, bBatch.length)
  const batch: number[] = []
  for (let i = 0; i < r; i++) {
    const da = aBatch[aBatch.length - r + i] ?? 1
    const db = bBatch[bBatch.length - r + i] ?? 1
    batch.push(da === 1 ? db : da)
  }
  const aStrides = broadcastStrides(aBatch, batch).map(s => s * m * k)
  const bStrides = broadcastStrides(bBatch, batch).map(s => s * k * n)
  const outShape: Shape = [...batch, ...(a1 ? [] : [m]), ...(b1 ? [] : [n])]
  return { m, k, n, tA, tB, batch, aStrides, bStrides, outShape }
}

/** Fold `total` workgroup rows into (y, z) under the per-dimension limit; the shader recombines them. */
function fold(total: number): [number, number] {
  if (total <= MAX_WG_DIM) return [total, 1]
  const z = Math.ceil(total / MAX_WG_DIM)
  return [Math.ceil(total / z), z]
}

const HEADER = ['m', 'k', 'n', 'nb', 'batchRank', 'mTiles', '_a', '_b']

/** Batch index → element offsets of A and B (words: batch dims at 0, A strides at 8, B strides at 16). */
const BATCH_OFFSETS = /* wgsl */ `
fn batchOffsets(z: u32) -> vec2<u32> {
  var rem = z;
  var off = vec2<u32>(0u, 0u);
  for (var d = i32(p.batchRank) - 1; d >= 0; d--) {
    let dim = word(u32(d));
    let q = rem % dim;
    rem = rem / dim;
    off += q * vec2<u32>(word(8u + u32(d)), word(16u + u32(d)));
  }
  return off;
}
`

const XYZW = ['x', 'y', 'z', 'w'] as const

/** Register-blocked kernel: 64 invocations per workgroup along n, each a 4×4 block of C. */
function registerShader(ctx: WebGpuContext, a: GpuTensor, b: GpuTensor, out: GpuTensor, pr: Problem, vecA: boolean, vecB: boolean, vecC: boolean): string {
  const ct = computeType(a.dtype)
  const st = a.data.st
  const v4 = `vec4<${ct}>`
  const wide = (e: string): string => (st === ct ? e : `${v4}(${e})`)
  const one = (e: string): string => (st === ct ? e : `${ct}(${e})`)
  const { tA, tB } = pr
  // scalar element e of an operand, whichever way it is bound
  const elemA = (e: string): string => one(vecA ? `A[(${e}) / 4u][(${e}) % 4u]` : `A[${e}]`)
  const elemB = (e: string): string => one(vecB ? `B[(${e}) / 4u][(${e}) % 4u]` : `B[${e}]`)
  const R = [0, 1, 2, 3]

  // Setup: base offsets per row of A (rows clamped: rows past m are computed but never stored) and per column
  // of B (likewise).
  const setup: string[] = []
  if (!tA) R.forEach(i => setup.push(`let ar${i} = offs.x + min(row0 + ${i}u, p.m - 1u) * p.k;`))
  else R.forEach(i => setup.push(`let ac${i} = offs.x + min(row0 + ${i}u, p.m - 1u);`))
  if (!tB) R.forEach(j => setup.push(`let bc${j} = offs.y + min(col0 + ${j}u, p.n - 1u);`))
  else R.forEach(j => setup.push(`let br${j} = offs.y + min(col0 + ${j}u, p.n - 1u) * p.k;`))

  // Main step over k = kk..kk+3. `aq(i, q)` is A[row0+i, kk+q]; `bq(q)` is the vec4 B[kk+q, col0..col0+3].
  const step: string[] = []
  let aq: (i: number, q: number) => string
  if (!tA) {
    // rows of A are contiguous along k
    R.forEach(i => step.push(`let ra${i} = ${vecA ? wide(`A[(ar${i} + kk) / 4u]`) : `${v4}(${R.map(q => elemA(`ar${i} + kk + ${q}u`)).join(', ')})`};`))
    aq = (i, q) => `ra${i}.${XYZW[q]}`
  } else {
    // A is stored [k, m]: four consecutive rows of C sit side by side for each k
    R.forEach(q =>
      step.push(`let ca${q} = ${vecA ? wide(`A[(offs.x + (kk + ${q}u) * p.m + row0) / 4u]`) : `${v4}(${R.map(i => elemA(`ac${i} + (kk + ${q}u) * p.m`)).join(', ')})`};`),
    )
    aq = (i, q) => `ca${q}.${XYZW[i]}`
  }
  let bq: (q: number) => string
  if (!tB) {
    R.forEach(q =>
      step.push(`let b${q} = ${vecB ? wide(`B[(offs.y + (kk + ${q}u) * p.n + col0) / 4u]`) : `${v4}(${R.map(j => elemB(`bc${j} + (kk + ${q}u) * p.n`)).join(', ')})`};`),
    )
    bq = q => `b${q}`
  } else {
    // B is stored [n, k]: load four k-runs (one per column) and transpose in registers
    R.forEach(j => step.push(`let rb${j} = ${vecB ? wide(`B[(br${j} + kk) / 4u]`) : `${v4}(${R.map(q => elemB(`br${j} + kk + ${q}u`)).join(', ')})`};`))
    bq = q => `${v4}(${R.map(j => `rb${j}.${XYZW[q]}`).join(', ')})`
    R.forEach(q => step.push(`let b${q} = ${bq(q)};`))
    bq = q => `b${q}`
  }
  R.forEach(i => step.push(`acc${i} += ${R.map(q => `${aq(i, q)} * ${bq(q)}`).join(' + ')};`))

  // Tail over the last k % 4, one k at a time, element by element.
  const tail: string[] = []
  const aAt = (i: number): string => (tA ? elemA(`ac${i} + kk * p.m`) : elemA(`ar${i} + kk`))
  const bAt = (j: number): string => (tB ? elemB(`br${j} + kk`) : elemB(`bc${j} + kk * p.n`))
  tail.push(`let bt = ${v4}(${R.map(bAt).join(', ')});`)
  R.forEach(i => tail.push(`acc${i} += ${aAt(i)} * bt;`))

  const os = out.data.st
  const store = R.map(i => {
    const row = `row0 + ${i}u`
    const body = vecC
      ? `C[(offs.z + (${row}) * p.n + col0) / 4u] = vec4<${os}>(acc${i});`
      : R.map(j => `if (col0 + ${j}u < p.n) { C[offs.z + (${row}) * p.n + col0 + ${j}u] = ${os}(acc${i}.${XYZW[j]}); }`).join('\n    ')
    return `  if (${row} < p.m) {\n    ${body}\n  }`
  }).join('\n')

  const arr = (vec: boolean, t: string): string => (vec ? `array<vec4<${t}>>` : `array<${t}>`)
  return `${enableF16(ctx)}${Uniforms.struct(HEADER, 6)}
@group(0) @binding(0) var<storage, read> A: ${arr(vecA, st)};
@group(0) @binding(1) var<storage, read> B: ${arr(vecB, b.data.st)};
@group(0) @binding(2) var<storage, read_write> C: ${arr(vecC, os)};
@group(0) @binding(3) var<uniform> p: Params;
${BATCH_OFFSETS}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let col0 = gid.x * 4u;
  let lin = wid.y + wid.z * nwg.y;
  if (col0 >= p.n || lin >= p.mTiles * p.nb) { return; }
  let z = lin / p.mTiles;
  let row0 = (lin % p.mTiles) * 4u;
  let offs = vec3<u32>(batchOffsets(z), z * p.m * p.n);
  ${setup.join('\n  ')}
  var acc0 = ${v4}(); var acc1 = ${v4}(); var acc2 = ${v4}(); var acc3 = ${v4}();
  let k4 = p.k & ~3u;
  for (var kk = 0u; kk < k4; kk += 4u) {
    ${step.join('\n    ')}
  }
  for (var kk = k4; kk < p.k; kk++) {
    ${tail.join('\n    ')}
  }
${store}
}
`
}

const TILE = 64
const TK = 16

/** Workgroup-memory tiled kernel: 16×16 invocations per 64×64 tile of C, k staged 16 at a time. */
function tiledShader(ctx: WebGpuContext, a: GpuTensor, b: GpuTensor, out: GpuTensor, pr: Problem): string {
  const ct = computeType(a.dtype)
  const one = (st: string, e: string): string => (st === ct ? e : `${ct}(${e})`)
  const { tA, tB } = pr
  const R = [0, 1, 2, 3]
  // Which tile element each of the 256 invocations loads is chosen so that neighbours read neighbouring addresses.
  const aIdx = tA ? `let kq = e / ${TILE}u; let rq = e % ${TILE}u;` : `let rq = e / ${TK}u; let kq = e % ${TK}u;`
  const aAddr = tA ? `offs.x + (k0 + kq) * p.m + row0 + rq` : `offs.x + (row0 + rq) * p.k + k0 + kq`
  const bIdx = tB ? `let cq = e / ${TK}u; let kq = e % ${TK}u;` : `let kq = e / ${TILE}u; let cq = e % ${TILE}u;`
  const bAddr = tB ? `offs.y + (col0 + cq) * p.k + k0 + kq` : `offs.y + (k0 + kq) * p.n + col0 + cq`
  const os = out.data.st
  const fma = R.map(i => R.map(j => `acc${i}${j} += a${i} * b${j};`).join(' ')).join('\n      ')
  const store = R.map(i =>
    R.map(
      j => `if (row0 + lid.y + ${16 * i}u < p.m && col0 + lid.x + ${16 * j}u < p.n) { C[offs.z + (row0 + lid.y + ${16 * i}u) * p.n + col0 + lid.x + ${16 * j}u] = ${os}(acc${i}${j}); }`,
    ).join('\n  '),
  ).join('\n  ')
  return `${enableF16(ctx)}${Uniforms.struct(HEADER, 6)}
@group(0) @binding(0) var<storage, read> A: array<${a.data.st}>;
@group(0) @binding(1) var<storage, read> B: array<${b.data.st}>;
@group(0) @binding(2) var<storage, read_write> C: array<${os}>;
@group(0) @binding(3) var<uniform> p: Params;
var<workgroup> As: array<${ct}, ${TK * TILE}>;
var<workgroup> Bs: array<${ct}, ${TK * TILE}>;
${BATCH_OFFSETS}
@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let lin = wid.y + wid.z * nwg.y;
  // workgroup-uniform, so every invocation of a workgroup leaves together and the barriers stay uniform
  if (lin >= p.mTiles * p.nb) { return; }
  let z = lin / p.mTiles;
  let row0 = (lin % p.mTiles) * ${TILE}u;
  let col0 = wid.x * ${TILE}u;
  let offs = vec3<u32>(batchOffsets(z), z * p.m * p.n);
  let t = lid.y * 16u + lid.x;
  ${R.map(i => R.map(j => `var acc${i}${j} = ${ct}(0);`).join(' ')).join('\n  ')}
  for (var k0 = 0u; k0 < p.k; k0 += ${TK}u) {
    for (var s = 0u; s < ${(TK * TILE) / 256}u; s++) {
      let e = t + s * 256u;
      {
        ${aIdx}
        var v = ${ct}(0);
        if (row0 + rq < p.m && k0 + kq < p.k) { v = ${one(a.data.st, `A[${aAddr}]`)}; }
        As[kq * ${TILE}u + rq] = v;
      }
      {
        ${bIdx}
        var v = ${ct}(0);
        if (col0 + cq < p.n && k0 + kq < p.k) { v = ${one(b.data.st, `B[${bAddr}]`)}; }
        Bs[kq * ${TILE}u + cq] = v;
      }
    }
    workgroupBarrier();
    for (var kq = 0u; kq < ${TK}u; kq++) {
      ${R.map(i => `let a${i} = As[kq * ${TILE}u + lid.y + ${16 * i}u];`).join(' ')}
      ${R.map(j => `let b${j} = Bs[kq * ${TILE}u + lid.x + ${16 * j}u];`).join(' ')}
      ${fma}
    }
    workgroupBarrier();
  }
  ${store}
}
`
}

function matMul(ctx: WebGpuContext, [a, b]: readonly GpuTensor[], attrs: Attrs): GpuTensor {
  const pr = problem(a!, b!, attrs)
  const out = ctx.output(a!.dtype, pr.outShape)
  const { m, k, n, tA, tB, batch } = pr
  const nb = sizeOf(batch)
  if (m * n * nb === 0) return out
  const variant = matMulVariant(ctx)
  const reg = variant === 'register'
  const rows = reg ? 4 : TILE
  const mTiles = Math.ceil(m / rows)
  if (batch.length > MAX_RANK) throw new BackendError({ op: 'matmul', expected: `at most ${MAX_RANK} batch dims on webgpu`, actual: batch.length })
  const u = new Uniforms().u32(m, k, n, nb, batch.length, mTiles, 0, 0)
  u.dims(batch).dims(pr.aStrides).dims(pr.bStrides)
  // vec4 bindings need the vector dim divisible by 4 (so every batch offset and row start is 4-aligned too)
  const vecA = reg && k > 0 && (tA ? m % 4 === 0 : k % 4 === 0)
  const vecB = reg && k > 0 && (tB ? k % 4 === 0 : n % 4 === 0)
  const vecC = reg && n % 4 === 0
  const key = `mm:${variant}:${a!.data.st}${a!.dtype}:${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}:${vecA ? 'v' : 's'}${vecB ? 'v' : 's'}${vecC ? 'v' : 's'}`
  const code = (): string => (reg ? registerShader(ctx, a!, b!, out, pr, vecA, vecB, vecC) : tiledShader(ctx, a!, b!, out, pr))
  const [y, z] = fold(mTiles * nb)
  const x = reg ? Math.ceil(Math.ceil(n / 4) / 64) : Math.ceil(n / TILE)
  ctx.dispatch({ key, code, inputs: [a!, b!], outputs: [out], uniforms: u.buffer(), workgroups: [x, y, z] })
  return out
}

export const linalgKernels = {
  /** attrs: transposeA?, transposeB?. float32, float16 (f16 storage, f32 accumulation) and int32 (wrapping). */
  MatMul: matMul,
} satisfies Partial<WebGpuKernelTable>
