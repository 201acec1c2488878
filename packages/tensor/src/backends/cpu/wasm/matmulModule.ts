import { ModuleBuilder, type FunctionBuilder, type Local } from './encoder.js'
import { addGelu } from './geluModule.js'
import { addGemv } from './gemvModule.js'
import type { GemmShape, WasmModulePart } from './module.js'
import { addPacking } from './packModule.js'
import { addSoftmax } from './softmaxModule.js'

/**
 * The float32 GEMM module. Operands arrive packed by the host (see matmul.ts):
 * - A in row panels of MR rows, each panel k-major: panel[p][r] = A[panel·MR + r][p], zero-padded past m and k;
 * - B in column panels of NR columns: panel[p][c] = B[p][panel·NR + c], zero-padded past n and k;
 * - C is an mPad × nPad row-major block (row stride `ldc` bytes) that the host crops.
 * Padding makes every micro-kernel call a full MR × NR tile with a k that is a multiple of the unroll, so the
 * hot loop has no edge cases.
 */
// Measured on the reference 2-core EPYC (one thread, N = 1024): 4×8 with no k-unroll runs at ~53 GFLOP/s, about
// the 128-bit SIMD roof. Its 8 accumulators + 2 B vectors + 1 splat fit the 16 xmm registers V8 allocates on x64;
// 6×8, 5×8 and 4×12 spill (25–35), and unrolling k by 2 or 4 is slower too (28–35). kc and ncb barely matter
// (kc·ncb·nr·4 = 256 KiB of B stays in L2).
export const GEMM: GemmShape = { mr: 4, nr: 8, unroll: 1, kc: 256, ncb: 32 }

export interface GemmModuleOptions {
  /** Register-block and cache-block sizes of the GEMM (default `GEMM`, the shape measured fastest here). */
  readonly shape?: GemmShape
  /** Use f32x4.relaxed_madd (FMA) instead of mul + add. */
  readonly relaxed: boolean
  /** Import the memory as shared, so worker threads can run the same module over it. */
  readonly shared: boolean
  /** Maximum size of the imported memory in 64 KiB pages (it grows up to this as operands need). */
  readonly maximumPages: number
  /** Functions other packages add (module.ts); built after the kernels here, in the order given. */
  readonly parts?: readonly WasmModulePart[]
}

/** Exported job signature: mm_job(job, pBase, pEnd, nPanels, kp, aTable, bTable, c, cBatchStride, ldc, jobsPerBatch, panelsPerJob, z0). */
export const MM_JOB_ARGS = 12

/**
 * The register-blocked micro-kernel: one A panel against nPanels consecutive B panels, each tile an mr × nr block of
 * C at row stride ldc.
 * micro(a, b, c, kc, nPanels, bStride, ldc, accumulate): the tile's nv vectors of a row are adjacent (row-major C),
 *   and the next B panel's tile starts nr floats to the right.
 * With `panelOut`, a ninth parameter vStride puts vector v of every tile row at + v·vStride and the next tile at
 *   + nv·vStride, so C can be written as 4-column panels (what attention stores its transposed scores as: each
 *   panel is then a packed A operand for the next product).
 */
export function addMicroKernel(mod: ModuleBuilder, s: GemmShape, relaxed: boolean, panelOut: boolean): { index: number } {
  const { mr, nr, unroll } = s
  const nv = nr / 4
  const params = panelOut ? 9 : 8
  const micro = mod.function(new Array<'i32'>(params).fill('i32'), [], panelOut ? 'mm_micro_panels' : 'mm_micro')
  const f: FunctionBuilder = micro.fn
  const [a, b, c, kc, nPanels, bStride, ldc, accumulate] = [0, 1, 2, 3, 4, 5, 6, 7].map(i => f.param(i)) as [Local, Local, Local, Local, Local, Local, Local, Local]
  const vStride = panelOut ? f.param(8) : undefined
  const pa = f.local('i32')
  const pb = f.local('i32')
  const end = f.local('i32')
  const row = f.local('i32')
  const acc: Local[][] = []
  for (let r = 0; r < mr; r++) acc.push(Array.from({ length: nv }, () => f.local('v128')))
  const bv = Array.from({ length: nv }, () => f.local('v128'))
  const splat = f.local('v128')
  // address of vector v of the tile row in `row`, and the memarg offset to use with it
  const vecAt = (v: number): number => {
    if (!vStride) {
      f.get(row)
      return v * 16
    }
    if (v === 0) f.get(row)
    else f.get(row).get(vStride).i32Const(v).i32Mul().i32Add()
    return 0
  }
  f.block(done => {
    f.get(nPanels).i32Eqz().brIf(done)
    f.loop(nextPanel => {
      for (const r of acc) for (const x of r) f.v128Zero().set(x)
      f.get(a).set(pa)
      f.get(b).tee(pb).get(kc).i32Const(nr * 4).i32Mul().i32Add().set(end)
      f.loop(nextK => {
        for (let u = 0; u < unroll; u++) {
          for (let v = 0; v < nv; v++) f.get(pb).v128Load(u * nr * 4 + v * 16).set(bv[v]!)
          for (let r = 0; r < mr; r++) {
            f.get(pa).v128Load32Splat((u * mr + r) * 4).set(splat)
            for (let v = 0; v < nv; v++) {
              const x = acc[r]![v]!
              if (relaxed) f.get(splat).get(bv[v]!).get(x).f32x4RelaxedMadd().set(x)
              else f.get(x).get(splat).get(bv[v]!).f32x4Mul().f32x4Add().set(x)
            }
          }
        }
        f.get(pa).i32Const(unroll * mr * 4).i32Add().set(pa)
        f.get(pb).i32Const(unroll * nr * 4).i32Add().tee(pb).get(end).i32LtU().brIf(nextK)
      })
      // a later k-block adds its partial sums to the tile the earlier ones stored
      f.get(c).set(row)
      for (let r = 0; r < mr; r++) {
        for (let v = 0; v < nv; v++) {
          const x = acc[r]![v]!
          f.get(accumulate).if(() => {
            const off = vecAt(v)
            f.v128Load(off).get(x).f32x4Add().set(x)
          })
          const off = vecAt(v)
          f.get(x).v128Store(off)
        }
        if (r + 1 < mr) f.get(row).get(ldc).i32Add().set(row)
      }
      f.get(b).get(bStride).i32Add().set(b)
      if (vStride) f.get(c).get(vStride).i32Const(nv).i32Mul().i32Add().set(c)
      else f.get(c).i32Const(nr * 4).i32Add().set(c)
      f.get(nPanels).i32Const(1).i32Sub().tee(nPanels).brIf(nextPanel)
    })
  })
  return micro
}

/** The CPU kernel module: the GEMM below, the row-wise softmax family (softmaxModule.ts), GELU (geluModule.ts), packing, and the parts other packages add. */
export function kernelModule(opts: GemmModuleOptions): Uint8Array<ArrayBuffer> {
  const s = opts.shape ?? GEMM
  const { mr, nr } = s
  const mod = new ModuleBuilder({ module: 'env', name: 'memory', initialPages: 1, maximumPages: opts.maximumPages, shared: opts.shared })

  const micro = addMicroKernel(mod, s, opts.relaxed, false)
  const microPanels = addMicroKernel(mod, s, opts.relaxed, true)

  // ---- job: a range of row panels of one batch, blocked over k and n ---------------------------------------
  // mm_job(job, pBase, pEnd, nPanels, kp, aTable, bTable, c, cBatchStride, ldc, jobsPerBatch, panelsPerJob, z0)
  // A dispatch covers row panels [pBase, pEnd) of batches z0…; c holds just those rows (so the host can bound the
  // C scratch by computing a large result in slices). aTable/bTable hold, per batch index z, the byte address of
  // that batch's packed A/B (broadcast batches share one).
  {
    const f = mod.function(new Array(MM_JOB_ARGS + 1).fill('i32'), [], 'mm_job').fn
    const [job, pBase, pEnd, nPanels, kp, aTable, bTable, c, cStride, ldc, jpb, ppj, z0] = Array.from({ length: MM_JOB_ARGS + 1 }, (_, i) => f.param(i)) as Local[] as [
      Local, Local, Local, Local, Local, Local, Local, Local, Local, Local, Local, Local, Local,
    ]
    const z = f.local('i32')
    const p0 = f.local('i32')
    const p1 = f.local('i32')
    const aZ = f.local('i32')
    const bZ = f.local('i32')
    const cZ = f.local('i32')
    const k0 = f.local('i32')
    const kcur = f.local('i32')
    const j0 = f.local('i32')
    const nj = f.local('i32')
    const i = f.local('i32')
    f.get(job).get(jpb).i32DivS().set(z)
    // first row panel of this job, and one past its last
    f.get(job).get(z).get(jpb).i32Mul().i32Sub().get(ppj).i32Mul().get(pBase).i32Add().tee(p0)
    f.get(ppj).i32Add().tee(p1).get(pEnd).get(p1).get(pEnd).i32LtS().select().set(p1)
    // c holds only this dispatch's batches: index it before offsetting z to the absolute batch
    f.get(c).get(z).get(cStride).i32Mul().i32Add().set(cZ)
    f.get(z).get(z0).i32Add().set(z)
    f.get(aTable).get(z).i32Const(2).i32Shl().i32Add().i32Load().set(aZ)
    f.get(bTable).get(z).i32Const(2).i32Shl().i32Add().i32Load().set(bZ)
    f.forRange(k0, () => f.i32Const(0), () => f.get(kp), s.kc, () => {
      // kcur = min(kc, kp − k0)
      f.get(kp).get(k0).i32Sub().tee(kcur).i32Const(s.kc).get(kcur).i32Const(s.kc).i32LtS().select().set(kcur)
      f.forRange(j0, () => f.i32Const(0), () => f.get(nPanels), s.ncb, () => {
        f.get(nPanels).get(j0).i32Sub().tee(nj).i32Const(s.ncb).get(nj).i32Const(s.ncb).i32LtS().select().set(nj)
        f.forRange(i, () => f.get(p0), () => f.get(p1), 1, () => {
          // A panel i at k0: aZ + (i·kp + k0)·mr·4
          f.get(aZ).get(i).get(kp).i32Mul().get(k0).i32Add().i32Const(mr * 4).i32Mul().i32Add()
          // B panel j0 at k0: bZ + (j0·kp + k0)·nr·4
          f.get(bZ).get(j0).get(kp).i32Mul().get(k0).i32Add().i32Const(nr * 4).i32Mul().i32Add()
          // C tile: cZ + (i − pBase)·mr·ldc + j0·nr·4
          f.get(cZ).get(i).get(pBase).i32Sub().i32Const(mr).i32Mul().get(ldc).i32Mul().i32Add().get(j0).i32Const(nr * 4).i32Mul().i32Add()
          f.get(kcur).get(nj).get(kp).i32Const(nr * 4).i32Mul().get(ldc).get(k0).i32Const(0).i32Ne()
          f.call(micro.index)
        })
      })
    })
  }
  addSoftmax(mod)
  addGelu(mod)
  addPacking(mod)
  addGemv(mod)
  const ctx = { micro: micro.index, microPanels: microPanels.index, shape: s, shared: opts.shared, relaxed: opts.relaxed }
  for (const part of opts.parts ?? []) part.build(mod, ctx)
  return mod.encode()
}
