/**
 * A minimal WebAssembly binary encoder: just the instruction subset the CPU kernels use. Kernels are generated at
 * run time from TypeScript, so the package ships no .wasm artefact, needs no toolchain and no build step, and can
 * specialise a module per runtime (shared or private memory, relaxed-SIMD FMA or plain mul+add).
 */

export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128'

const valCode: Readonly<Record<ValType, number>> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b }

function uleb(out: number[], v: number): void {
  v >>>= 0
  do {
    let byte = v & 0x7f
    v >>>= 7
    if (v !== 0) byte |= 0x80
    out.push(byte)
  } while (v !== 0)
}

function sleb(out: number[], v: number): void {
  v |= 0
  for (;;) {
    const byte = v & 0x7f
    v >>= 7
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte)
      return
    }
    out.push(byte | 0x80)
  }
}

function name(out: number[], s: string): void {
  const bytes = new TextEncoder().encode(s)
  uleb(out, bytes.length)
  out.push(...bytes)
}

/** A local (or parameter) index, typed so that kernels read as data-flow rather than as numbers. */
export interface Local {
  readonly index: number
  readonly type: ValType
}

/**
 * Builds one function body. Emitters return `this` so straight-line code reads as a chain in stack order:
 * `f.get(x).get(y).i32Add().set(z)`.
 */
export class FunctionBuilder {
  readonly #code: number[] = []
  readonly #locals: ValType[] = []
  readonly #paramCount: number
  /** Open control blocks, innermost last, so branches can name their target by handle instead of by depth. */
  readonly #labels: symbol[] = []

  constructor(
    readonly params: readonly ValType[],
    readonly results: readonly ValType[],
  ) {
    this.#paramCount = params.length
  }

  param(i: number): Local {
    const type = this.params[i]
    if (type === undefined) throw new RangeError(`no parameter ${i}`)
    return { index: i, type }
  }

  local(type: ValType): Local {
    this.#locals.push(type)
    return { index: this.#paramCount + this.#locals.length - 1, type }
  }

  #op(...bytes: number[]): this {
    this.#code.push(...bytes)
    return this
  }

  #simd(sub: number): this {
    this.#code.push(0xfd)
    uleb(this.#code, sub)
    return this
  }

  #memarg(align: number, offset: number): this {
    uleb(this.#code, align)
    uleb(this.#code, offset)
    return this
  }

  // ---- control ------------------------------------------------------------------------------------------------

  #depth(label: symbol): number {
    const at = this.#labels.lastIndexOf(label)
    if (at < 0) throw new Error('branch to a label that is not open')
    return this.#labels.length - 1 - at
  }

  /** `block` whose body gets its own label: branching to it exits the block. */
  block(body: (exit: symbol) => void): this {
    const label = Symbol('block')
    this.#op(0x02, 0x40)
    this.#labels.push(label)
    body(label)
    this.#labels.pop()
    return this.#op(0x0b)
  }

  /** `loop` whose label restarts it; falling off the end leaves it. */
  loop(body: (again: symbol) => void): this {
    const label = Symbol('loop')
    this.#op(0x03, 0x40)
    this.#labels.push(label)
    body(label)
    this.#labels.pop()
    return this.#op(0x0b)
  }

  /** `if` on the i32 on the stack, without results. */
  if(then: () => void, otherwise?: () => void): this {
    const label = Symbol('if')
    this.#op(0x04, 0x40)
    this.#labels.push(label)
    then()
    if (otherwise) {
      this.#op(0x05)
      otherwise()
    }
    this.#labels.pop()
    return this.#op(0x0b)
  }

  br(label: symbol): this {
    this.#op(0x0c)
    uleb(this.#code, this.#depth(label))
    return this
  }

  brIf(label: symbol): this {
    this.#op(0x0d)
    uleb(this.#code, this.#depth(label))
    return this
  }

  return(): this {
    return this.#op(0x0f)
  }

  call(fn: number): this {
    this.#op(0x10)
    uleb(this.#code, fn)
    return this
  }

  drop(): this {
    return this.#op(0x1a)
  }

  /** `select`: the first operand when the i32 on top is non-zero, else the second. */
  select(): this {
    return this.#op(0x1b)
  }

  /**
   * for (i = start; i < end; i += step) body — the condition is tested first, so an empty range runs nothing.
   * `start`, `end` and `step` are emitters that push one i32.
   */
  forRange(i: Local, start: () => void, end: () => void, step: number, body: () => void): this {
    start()
    this.set(i)
    return this.block(exit => {
      this.loop(again => {
        this.get(i)
        end()
        this.i32GeS().brIf(exit)
        body()
        this.get(i).i32Const(step).i32Add().set(i).br(again)
      })
    })
  }

  // ---- variables ----------------------------------------------------------------------------------------------

  get(l: Local): this {
    this.#op(0x20)
    uleb(this.#code, l.index)
    return this
  }

  set(l: Local): this {
    this.#op(0x21)
    uleb(this.#code, l.index)
    return this
  }

  tee(l: Local): this {
    this.#op(0x22)
    uleb(this.#code, l.index)
    return this
  }

  // ---- i32 ----------------------------------------------------------------------------------------------------

  i32Const(v: number): this {
    this.#op(0x41)
    sleb(this.#code, v)
    return this
  }

  i32Load(offset = 0): this {
    return this.#op(0x28).#memarg(2, offset)
  }
  i32Store(offset = 0): this {
    return this.#op(0x36).#memarg(2, offset)
  }
  i32Eqz(): this {
    return this.#op(0x45)
  }
  i32Eq(): this {
    return this.#op(0x46)
  }
  i32Ne(): this {
    return this.#op(0x47)
  }
  i32LtS(): this {
    return this.#op(0x48)
  }
  i32LtU(): this {
    return this.#op(0x49)
  }
  i32GtS(): this {
    return this.#op(0x4a)
  }
  i32LeS(): this {
    return this.#op(0x4c)
  }
  i32GeS(): this {
    return this.#op(0x4e)
  }
  i32Add(): this {
    return this.#op(0x6a)
  }
  i32Sub(): this {
    return this.#op(0x6b)
  }
  i32Mul(): this {
    return this.#op(0x6c)
  }
  i32DivS(): this {
    return this.#op(0x6d)
  }
  i32And(): this {
    return this.#op(0x71)
  }
  i32ShrS(): this {
    return this.#op(0x75)
  }
  i32Shl(): this {
    return this.#op(0x74)
  }

  // ---- f32 ----------------------------------------------------------------------------------------------------

  f32Const(v: number): this {
    this.#op(0x43)
    const b = new Uint8Array(new Float32Array([v]).buffer)
    return this.#op(...b)
  }
  f32Load(offset = 0): this {
    return this.#op(0x2a).#memarg(2, offset)
  }
  f32Store(offset = 0): this {
    return this.#op(0x38).#memarg(2, offset)
  }
  f32Add(): this {
    return this.#op(0x92)
  }
  f32Sub(): this {
    return this.#op(0x93)
  }
  f32Mul(): this {
    return this.#op(0x94)
  }
  f32Div(): this {
    return this.#op(0x95)
  }
  f32Max(): this {
    return this.#op(0x97)
  }
  f32Abs(): this {
    return this.#op(0x8b)
  }

  // ---- f64 ----------------------------------------------------------------------------------------------------

  f64Load(offset = 0): this {
    return this.#op(0x2b).#memarg(3, offset)
  }
  f64Store(offset = 0): this {
    return this.#op(0x39).#memarg(3, offset)
  }
  f64Const(v: number): this {
    return this.#op(0x44, ...new Uint8Array(new Float64Array([v]).buffer))
  }
  f64Add(): this {
    return this.#op(0xa0)
  }
  f64Sub(): this {
    return this.#op(0xa1)
  }
  f64Mul(): this {
    return this.#op(0xa2)
  }
  f64Div(): this {
    return this.#op(0xa3)
  }
  f64Max(): this {
    return this.#op(0xa5)
  }
  f64Lt(): this {
    return this.#op(0x63)
  }
  f64PromoteF32(): this {
    return this.#op(0xbb)
  }
  f32DemoteF64(): this {
    return this.#op(0xb6)
  }
  f32Eq(): this {
    return this.#op(0x5b)
  }
  f32Gt(): this {
    return this.#op(0x5e)
  }

  // ---- v128 ---------------------------------------------------------------------------------------------------

  v128Load(offset = 0): this {
    return this.#simd(0x00).#memarg(4, offset)
  }
  /** One f32 from memory broadcast to all four lanes. */
  v128Load32Splat(offset = 0): this {
    return this.#simd(0x09).#memarg(2, offset)
  }
  v128Store(offset = 0): this {
    return this.#simd(0x0b).#memarg(4, offset)
  }
  /** i8x16.shuffle: bytes of the two operands (0–15 the first, 16–31 the second) picked by the 16 lane indices. */
  i8x16Shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16 || lanes.some(l => !Number.isInteger(l) || l < 0 || l > 31)) throw new RangeError('i8x16.shuffle takes 16 lane indices in [0, 32)')
    return this.#simd(0x0d).#op(...lanes)
  }
  v128Zero(): this {
    this.#simd(0x0c)
    return this.#op(...new Array<number>(16).fill(0))
  }
  f32x4Splat(): this {
    return this.#simd(0x13)
  }
  f32x4ExtractLane(lane: number): this {
    return this.#simd(0x1f).#op(lane)
  }
  f32x4Add(): this {
    return this.#simd(0xe4)
  }
  f32x4Sub(): this {
    return this.#simd(0xe5)
  }
  f32x4Mul(): this {
    return this.#simd(0xe6)
  }
  f32x4Div(): this {
    return this.#simd(0xe7)
  }
  f32x4Max(): this {
    return this.#simd(0xe9)
  }
  f32x4Abs(): this {
    return this.#simd(0xe0)
  }
  /** Two f32 from memory into the low lanes, high lanes zero. */
  v128Load64Zero(offset = 0): this {
    return this.#simd(0x5d).#memarg(3, offset)
  }
  /** Store the low 64 bits (two f32 lanes). */
  v128Store64Lane0(offset = 0): this {
    return this.#simd(0x5b).#memarg(3, offset).#op(0)
  }
  f64x2Splat(): this {
    return this.#simd(0x14)
  }
  f64x2ExtractLane(lane: number): this {
    return this.#simd(0x21).#op(lane)
  }
  f64x2Add(): this {
    return this.#simd(0xf0)
  }
  f64x2Sub(): this {
    return this.#simd(0xf1)
  }
  f64x2Mul(): this {
    return this.#simd(0xf2)
  }
  f64x2Div(): this {
    return this.#simd(0xf3)
  }
  /** IEEE maximum: NaN if either lane is NaN. */
  f64x2Max(): this {
    return this.#simd(0xf5)
  }
  f64x2Abs(): this {
    return this.#simd(0xec)
  }
  /** Round toward zero, as a C cast to int does (fdlibm's exp takes its exponent that way). */
  f64x2Trunc(): this {
    return this.#simd(0x7a)
  }
  /** Lane mask (all ones / zeros) of a < b; false where either is NaN. */
  f64x2Lt(): this {
    return this.#simd(0x49)
  }
  /** Lane mask of a ≥ b; false where either is NaN. */
  f64x2Ge(): this {
    return this.#simd(0x4c)
  }
  /** Bits of a where the mask c is set, else of b (operands a, b, c). */
  v128Bitselect(): this {
    return this.#simd(0x52)
  }
  /** The two low f32 lanes widened to f64 (exact). */
  f64x2PromoteLowF32x4(): this {
    return this.#simd(0x5f)
  }
  /** f64 lanes rounded to f32 into the low lanes, high lanes zero. */
  f32x4DemoteF64x2Zero(): this {
    return this.#simd(0x5e)
  }
  i64x2Shl(): this {
    return this.#simd(0xcb)
  }
  i64x2Add(): this {
    return this.#simd(0xce)
  }
  v128Const(bytes: Uint8Array): this {
    this.#simd(0x0c)
    return this.#op(...bytes)
  }
  f64x2Const(a: number, b = a): this {
    return this.v128Const(new Uint8Array(new Float64Array([a, b]).buffer))
  }
  i64x2Const(a: bigint, b = a): this {
    return this.v128Const(new Uint8Array(new BigInt64Array([a, b]).buffer))
  }

  /** Pseudo-maximum b < a ? a : b per lane (operands a, b): no NaN handling, so a plain maxps on x64. */
  f32x4Pmax(): this {
    return this.#simd(0xeb)
  }
  /** Round to nearest, ties to even. */
  f32x4Nearest(): this {
    return this.#simd(0x6a)
  }
  /** Lane mask (all ones / zeros) of a ≥ b. */
  f32x4Ge(): this {
    return this.#simd(0x46)
  }
  i32x4TruncSatF32x4S(): this {
    return this.#simd(0xf8)
  }
  i32x4Shl(): this {
    return this.#simd(0xab)
  }
  i32x4Add(): this {
    return this.#simd(0xae)
  }
  v128And(): this {
    return this.#simd(0x4e)
  }
  /** a & ~b (operands a, b). */
  v128Andnot(): this {
    return this.#simd(0x4f)
  }
  f32x4Const(a: number, b = a, c = a, d = a): this {
    return this.v128Const(new Uint8Array(new Float32Array([a, b, c, d]).buffer))
  }
  i32x4Const(a: number, b = a, c = a, d = a): this {
    return this.v128Const(new Uint8Array(new Int32Array([a, b, c, d]).buffer))
  }

  /** i32.atomic.rmw.add: adds to the i32 at the address and leaves its previous value (operands: address, value). */
  i32AtomicRmwAdd(offset = 0): this {
    this.#op(0xfe)
    uleb(this.#code, 0x1e)
    return this.#memarg(2, offset)
  }

  /** relaxed-SIMD a·b + c (fused where the hardware has FMA); operands pushed as a, b, c. */
  f32x4RelaxedMadd(): this {
    return this.#simd(0x105)
  }

  /** The encoded body: local declarations (runs of one type) followed by the code. */
  encode(): number[] {
    const out: number[] = []
    const runs: [number, ValType][] = []
    for (const t of this.#locals) {
      const last = runs[runs.length - 1]
      if (last && last[1] === t) last[0]++
      else runs.push([1, t])
    }
    uleb(out, runs.length)
    for (const [count, t] of runs) {
      uleb(out, count)
      out.push(valCode[t])
    }
    out.push(...this.#code, 0x0b)
    return out
  }
}

export interface MemoryImport {
  readonly module: string
  readonly name: string
  readonly initialPages: number
  readonly maximumPages: number
  readonly shared: boolean
}

/** A module of functions over one imported memory; functions are numbered in the order they are added. */
export class ModuleBuilder {
  readonly #functions: FunctionBuilder[] = []
  readonly #exports: [string, number][] = []

  constructor(readonly memory: MemoryImport) {}

  /** Declare a function (its index is fixed at once, so functions may call ones defined later). */
  function(params: readonly ValType[], results: readonly ValType[] = [], exportAs?: string): { index: number; fn: FunctionBuilder } {
    const fn = new FunctionBuilder(params, results)
    const index = this.#functions.length
    this.#functions.push(fn)
    if (exportAs !== undefined) this.#exports.push([exportAs, index])
    return { index, fn }
  }

  encode(): Uint8Array<ArrayBuffer> {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]
    const section = (id: number, body: number[]): void => {
      out.push(id)
      uleb(out, body.length)
      out.push(...body)
    }
    // one type per function keeps the encoder simple; engines dedupe identical signatures anyway
    const types: number[] = []
    uleb(types, this.#functions.length)
    for (const f of this.#functions) {
      types.push(0x60)
      uleb(types, f.params.length)
      for (const p of f.params) types.push(valCode[p])
      uleb(types, f.results.length)
      for (const r of f.results) types.push(valCode[r])
    }
    section(1, types)

    const imports: number[] = [1]
    name(imports, this.memory.module)
    name(imports, this.memory.name)
    imports.push(0x02, this.memory.shared ? 0x03 : 0x01)
    uleb(imports, this.memory.initialPages)
    uleb(imports, this.memory.maximumPages)
    section(2, imports)

    const funcs: number[] = []
    uleb(funcs, this.#functions.length)
    this.#functions.forEach((_, i) => uleb(funcs, i))
    section(3, funcs)

    const exps: number[] = []
    uleb(exps, this.#exports.length)
    for (const [n, i] of this.#exports) {
      name(exps, n)
      exps.push(0x00)
      uleb(exps, i)
    }
    section(7, exps)

    const code: number[] = []
    uleb(code, this.#functions.length)
    for (const f of this.#functions) {
      const body = f.encode()
      uleb(code, body.length)
      code.push(...body)
    }
    section(10, code)
    return Uint8Array.from(out)
  }
}
