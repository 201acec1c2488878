import { registerWasmModulePart, wasmRuntime, type WasmModulePart, type WasmRuntime } from '@heed/tensor/cpu'
import { addAttentionForward } from './attentionForwardModule.js'
import { addAttention } from './attentionModule.js'
import { addAttentionBackward } from './attentionBackwardModule.js'
import { addDecodeAttention } from './decodeModule.js'

/**
 * Attention's functions in the CPU backend's kernel module: the float64 inner products (attentionModule.ts) and the
 * float32 forward (attentionForwardModule.ts), the decode kernel's products on float32 (decodeModule.ts), which calls the module's GEMM micro-kernels and runs on its pool.
 */
export const attentionWasmPart: WasmModulePart = {
  name: 'attention',
  jobs: ['att_pack', 'att_fwd', 'att_bwd_pack', 'att_bwd', 'att_bwd_dq'],
  build(mod, ctx) {
    addAttention(mod)
    addAttentionForward(mod, ctx)
    addAttentionBackward(mod, ctx)
    addDecodeAttention(mod)
  },
}

/**
 * The CPU backend's WebAssembly runtime with attention's functions in its module, or null where WebAssembly is
 * unavailable or off. The kernel registration (register.ts) adds the part before the first call, so a pool
 * started by then is rebuilt once, not in the middle of an attention call.
 */
export function attentionWasmRuntime(): WasmRuntime | null {
  registerWasmModulePart(attentionWasmPart)
  return wasmRuntime()
}
