import type { Attrs, Backend, DataId, TensorInfo } from '../../backend.js'
import { allocArray, bytesPerElement, f16Round, type AnyTypedArray, type DType } from '../../dtype.js'
import { BackendError } from '../../errors.js'
import { adoptValues, releaseValues, takeFloat32 } from './float32Pool.js'
import { cpuKernels } from './kernels/index.js'
import type { CpuKernel, CpuTensor } from './types.js'

interface CpuData {
  values: AnyTypedArray
  /** Bytes as the dtype counts them (a float16 element is 2 bytes though it lives in a Float32Array here). */
  readonly bytes: number
}

/** What a freed storage holds: one shared empty array (a new one per free showed up in op-overhead profiles). */
const FREED = new Float32Array(0)

/** Round a Float32Array holding float16 values to f16 precision in place. */
function roundF16(values: AnyTypedArray): void {
  // a NaN is left as stored: writing it back through a JS number would quiet a signalling NaN's bits
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!
    if (x === x) values[i] = f16Round(x)
  }
}

/**
 * The embedded default backend: plain typed arrays, kernels in TypeScript. It is also the float64 reference that
 * every other backend is tested against, so its kernels favour clarity of numerics over tricks.
 */
export class CpuBackend implements Backend {
  readonly name: string
  // Dispatch by name erases each kernel's attrs type (CpuKernel<never> accepts any of them); the kernel contract
  // is what pairs a name with the attrs ops send it.
  readonly #kernels: Map<string, CpuKernel<never>>
  #buffers = 0
  #bytes = 0

  /** `name` lets a second host backend coexist (tests of cross-backend rules use one). */
  constructor(opts: { readonly name?: string; readonly kernels?: Readonly<Record<string, CpuKernel<never>>> } = {}) {
    this.name = opts.name ?? 'cpu'
    this.#kernels = new Map(Object.entries(opts.kernels ?? cpuKernels))
  }

  allocate(dtype: DType, size: number, values?: AnyTypedArray): DataId {
    const arr = values !== undefined && values.length === size && dtype === 'float32' ? takeFloat32(size) : allocArray(dtype, size)
    if (values !== undefined) {
      arr.set(values)
      if (dtype === 'float16') roundF16(arr)
    }
    return this.#own(arr, dtype)
  }

  #own(values: AnyTypedArray, dtype: DType): CpuData {
    const bytes = values.length * bytesPerElement(dtype)
    this.#buffers++
    this.#bytes += bytes
    adoptValues(values)
    return { values, bytes }
  }

  write(dataId: DataId, values: AnyTypedArray): void {
    const d = dataId as CpuData
    d.values.set(values)
  }

  async read(dataId: DataId, dtype: DType, size: number): Promise<AnyTypedArray> {
    return this.readSync(dataId, dtype, size)
  }

  readSync(dataId: DataId, _dtype: DType, _size: number): AnyTypedArray {
    return (dataId as CpuData).values.slice()
  }

  free(dataId: DataId): void {
    const d = dataId as CpuData
    this.#buffers--
    this.#bytes -= d.bytes
    releaseValues(d.values)
    d.values = FREED
  }

  registerKernel(name: string, impl: unknown): void {
    this.#kernels.set(name, impl as CpuKernel<never>)
  }

  hasKernel(kernel: string): boolean {
    return this.#kernels.has(kernel)
  }

  run(kernel: string, inputs: readonly TensorInfo[], attrs: Attrs): TensorInfo[] {
    const k = this.#kernels.get(kernel)
    if (!k) throw new BackendError({ op: kernel, actual: 'cpu' }, 'no such kernel')
    const ins: CpuTensor[] = inputs.map(i => ({ values: (i.dataId as CpuData).values, shape: i.shape, dtype: i.dtype }))
    const result = k(ins, attrs as never)
    const outs = Array.isArray(result) ? (result as readonly CpuTensor[]) : [result as CpuTensor]
    return outs.map(o => {
      const shared = inputs.find(i => (i.dataId as CpuData).values === o.values)
      if (shared) return { dataId: shared.dataId, shape: o.shape, dtype: o.dtype }
      if (o.dtype === 'float16') roundF16(o.values)
      return { dataId: this.#own(o.values, o.dtype), shape: o.shape, dtype: o.dtype }
    })
  }

  memory(): { buffers: number; bytes: number } {
    return { buffers: this.#buffers, bytes: this.#bytes }
  }
}
