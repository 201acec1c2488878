import type { FunctionBuilder, Local, ModuleBuilder } from './encoder.js'

/**
 * GEMM operand packing in WebAssembly: the host copies an operand into the module's memory as it is (one memcpy)
 * and these functions rearrange its full panels into the layouts matmulModule.ts reads (A: 4-row panels, k-major;
 * B: 8-column panels, k-major). In TypeScript the rearrangement costs ~1–1.5 ns per element, as much as the whole
 * product when one dimension is small (a [256, 256] activation times a [256, 10] weight); here a 4 × 4 block moves
 * with four loads, eight shuffles and four stores. Only full panels come here; the host packs a ragged last panel.
 *
 * All addresses are in bytes, leading dimensions in elements:
 * - pack_a_rows(src, dst, panels, k, lda, panelBytes): A stored row-major [m, k]; panel i reads rows 4i…4i+3.
 * - pack_a_cols(src, dst, panels, k, lda, panelBytes): A stored transposed [k, m]; each k step is 4 adjacent values.
 * - pack_b_cols(src, dst, panels, k, ldb, panelBytes): B stored row-major [k, n]; each k step is 8 adjacent values.
 */
export const PACK_ARGS = 6

/** Byte lanes of an i8x16.shuffle that picks the given i32 lanes (0–3 the first operand, 4–7 the second). */
const lanes32 = (l: readonly number[]): number[] => l.flatMap(i => [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3])

function params(f: FunctionBuilder): [Local, Local, Local, Local, Local, Local] {
  return Array.from({ length: PACK_ARGS }, (_, i) => f.param(i)) as [Local, Local, Local, Local, Local, Local]
}

export function addPacking(mod: ModuleBuilder): void {
  const sig = new Array<'i32'>(PACK_ARGS).fill('i32')

  // ---- A row-major: 4 × 4 blocks transposed in registers -----------------------------------------------------
  {
    const f = mod.function(sig, [], 'pack_a_rows').fn
    const [src, dst, panels, k, lda, panelBytes] = params(f)
    const pi = f.local('i32')
    const s0 = f.local('i32')
    const d = f.local('i32')
    const dq = f.local('i32')
    const rowBytes = f.local('i32')
    const q = f.local('i32')
    const k4 = f.local('i32')
    const kb = f.local('i32')
    const r = [f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128')] as const
    const t = [f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128')] as const
    f.get(lda).i32Const(2).i32Shl().set(rowBytes)
    // bytes along a row: those covered by whole 4-element blocks, and all of them
    f.get(k).i32Const(-4).i32And().i32Const(2).i32Shl().set(k4)
    f.get(k).i32Const(2).i32Shl().set(kb)
    f.forRange(pi, () => f.i32Const(0), () => f.get(panels), 1, () => {
      f.get(src).get(pi).get(rowBytes).i32Mul().i32Const(2).i32Shl().i32Add().set(s0)
      f.get(dst).get(pi).get(panelBytes).i32Mul().i32Add().set(d)
      // q: byte offset along the rows; its 4 k steps land at d + 4q, 16 bytes per step
      f.forRange(q, () => f.i32Const(0), () => f.get(k4), 16, () => {
        for (let i = 0; i < 4; i++) f.get(s0).get(q).i32Add().get(rowBytes).i32Const(i).i32Mul().i32Add().v128Load().set(r[i]!)
        f.get(r[0]).get(r[1]).i8x16Shuffle(lanes32([0, 4, 1, 5])).set(t[0])
        f.get(r[0]).get(r[1]).i8x16Shuffle(lanes32([2, 6, 3, 7])).set(t[1])
        f.get(r[2]).get(r[3]).i8x16Shuffle(lanes32([0, 4, 1, 5])).set(t[2])
        f.get(r[2]).get(r[3]).i8x16Shuffle(lanes32([2, 6, 3, 7])).set(t[3])
        f.get(d).get(q).i32Const(2).i32Shl().i32Add().set(dq)
        f.get(dq).get(t[0]).get(t[2]).i8x16Shuffle(lanes32([0, 1, 4, 5])).v128Store(0)
        f.get(dq).get(t[0]).get(t[2]).i8x16Shuffle(lanes32([2, 3, 6, 7])).v128Store(16)
        f.get(dq).get(t[1]).get(t[3]).i8x16Shuffle(lanes32([0, 1, 4, 5])).v128Store(32)
        f.get(dq).get(t[1]).get(t[3]).i8x16Shuffle(lanes32([2, 3, 6, 7])).v128Store(48)
      })
      // the k % 4 steps left, one value at a time
      f.forRange(q, () => f.get(k4), () => f.get(kb), 4, () => {
        for (let i = 0; i < 4; i++) {
          f.get(d).get(q).i32Const(2).i32Shl().i32Add()
          f.get(s0).get(q).i32Add().get(rowBytes).i32Const(i).i32Mul().i32Add().f32Load()
          f.f32Store(i * 4)
        }
      })
    })
  }

  // ---- A transposed, B row-major: each k step is a run of adjacent values ------------------------------------
  for (const [name, vectors] of [
    ['pack_a_cols', 1],
    ['pack_b_cols', 2],
  ] as const) {
    const f = mod.function(sig, [], name).fn
    const [src, dst, panels, k, ld, panelBytes] = params(f)
    const pi = f.local('i32')
    const s = f.local('i32')
    const d = f.local('i32')
    const p = f.local('i32')
    const ldBytes = f.local('i32')
    f.get(ld).i32Const(2).i32Shl().set(ldBytes)
    f.forRange(pi, () => f.i32Const(0), () => f.get(panels), 1, () => {
      f.get(src).get(pi).i32Const(vectors * 16).i32Mul().i32Add().set(s)
      f.get(dst).get(pi).get(panelBytes).i32Mul().i32Add().set(d)
      f.forRange(p, () => f.i32Const(0), () => f.get(k), 1, () => {
        for (let v = 0; v < vectors; v++) f.get(d).get(s).v128Load(v * 16).v128Store(v * 16)
        f.get(s).get(ldBytes).i32Add().set(s)
        f.get(d).i32Const(vectors * 16).i32Add().set(d)
      })
    })
  }
}
