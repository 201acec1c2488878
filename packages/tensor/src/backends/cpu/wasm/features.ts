import { wasmApi } from './api.js'
import { ModuleBuilder } from './encoder.js'

/** What this runtime's WebAssembly supports, probed once by compiling (and, for relaxed SIMD, running) tiny modules. */
export interface WasmFeatures {
  readonly simd: boolean
  /** relaxed_madd validates and computes a·b + c. */
  readonly relaxedSimd: boolean
  /** Shared memories can be created (SharedArrayBuffer exists; in browsers only when cross-origin isolated). */
  readonly sharedMemory: boolean
}

function probeModule(relaxed: boolean): Uint8Array<ArrayBuffer> {
  const mod = new ModuleBuilder({ module: 'env', name: 'memory', initialPages: 1, maximumPages: 1, shared: false })
  const { fn: f } = mod.function(['f32', 'f32', 'f32'], ['f32'], 'probe')
  f.get(f.param(0)).f32x4Splat().get(f.param(1)).f32x4Splat().get(f.param(2)).f32x4Splat()
  if (relaxed) f.f32x4RelaxedMadd()
  else f.f32x4Add().f32x4Mul()
  f.f32x4ExtractLane(0)
  return mod.encode()
}

function runs(bytes: Uint8Array<ArrayBuffer>, expect: number): boolean {
  const wa = wasmApi()
  try {
    if (!wa?.validate(bytes)) return false
    const memory = new wa.Memory({ initial: 1, maximum: 1 })
    const inst = new wa.Instance(new wa.Module(bytes), { env: { memory } })
    return (inst.exports['probe'] as (a: number, b: number, c: number) => number)(2, 3, 1) === expect
  } catch {
    return false
  }
}

let cached: WasmFeatures | undefined

export function wasmFeatures(): WasmFeatures {
  if (cached) return cached
  // mul+add probe: splat(2) · (splat(3) + splat(1)) = 8; relaxed: 2·3 + 1 = 7
  const simd = runs(probeModule(false), 8)
  const relaxedSimd = simd && runs(probeModule(true), 7)
  let sharedMemory = false
  try {
    const wa = wasmApi()
    sharedMemory = !!wa && typeof SharedArrayBuffer === 'function' && new wa.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer
  } catch {
    sharedMemory = false
  }
  cached = { simd, relaxedSimd, sharedMemory }
  return cached
}
