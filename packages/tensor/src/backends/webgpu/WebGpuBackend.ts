/// <reference types="@webgpu/types" />
import type { Attrs, Backend, DataId, TensorInfo } from '../../backend.js'
import { f16BitsToF32, f16Round, f32ToF16Bits, type AnyTypedArray, type DType } from '../../dtype.js'
import { BackendError } from '../../errors.js'
import { sizeOf, type Shape } from '../../shape.js'
import type { GpuDeviceInfo } from './device.js'
import { storageBytes, storageType, type StorageType } from './dtypes.js'
import { webgpuKernels } from './kernels/index.js'

// GPUBufferUsage / GPUMapMode values, spelled out so nothing global has to be installed in Node.
const STORAGE = 0x80
const UNIFORM = 0x40
const COPY_SRC = 0x04
const COPY_DST = 0x08
const MAP_READ = 0x01
const MAP_MODE_READ = 0x1

/** Device storage of one tensor. */
export interface GpuData {
  readonly buffer: GPUBuffer
  readonly st: StorageType
  /** Bytes requested (the buffer may be larger: it comes from a size-class pool). */
  readonly bytes: number
}

/** What a WebGPU kernel sees of a tensor. */
export interface GpuTensor {
  readonly data: GpuData
  readonly shape: Shape
  readonly dtype: DType
}

export interface DispatchSpec {
  /** Cache key: everything that changes the shader text, never sizes (those go in `uniforms`). */
  readonly key: string
  readonly code: () => string
  readonly inputs: readonly GpuTensor[]
  readonly outputs: readonly GpuTensor[]
  /** Uniform block (16-byte multiple); bound after inputs and outputs. Omit for none. */
  readonly uniforms?: ArrayBuffer
  readonly workgroups: readonly [number, number?, number?]
}

/** The services kernels get: allocation and dispatch. */
export interface WebGpuContext {
  readonly f16: boolean
  readonly info: GpuDeviceInfo
  output(dtype: DType, shape: Shape): GpuTensor
  dispatch(spec: DispatchSpec): void
}

export type WebGpuKernel = (ctx: WebGpuContext, inputs: readonly GpuTensor[], attrs: Attrs) => GpuTensor | readonly GpuTensor[]

const MAX_PENDING_DISPATCHES = 64
const sizeClass = (bytes: number): number => Math.max(16, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))))

/**
 * WebGPU backend (Dawn in Node through the `webgpu` package, `navigator.gpu` in browsers). Dispatches are
 * recorded into one open command encoder and submitted on readback or every few dozen dispatches; buffers come
 * from size-class pools, and a freed buffer rejoins its pool only once the submission that last used it has
 * been queued, so a recycled buffer never races a pending command.
 */
export class WebGpuBackend implements Backend, WebGpuContext {
  readonly name: string = 'webgpu'
  readonly info: GpuDeviceInfo
  readonly device: GPUDevice
  readonly f16: boolean
  readonly #kernels: ReadonlyMap<string, WebGpuKernel>
  readonly #pipelines = new Map<string, GPUComputePipeline>()
  readonly #pool = new Map<number, GPUBuffer[]>()
  readonly #uniformPool = new Map<number, GPUBuffer[]>()
  readonly #stagingPool = new Map<number, GPUBuffer[]>()
  #releaseAfterSubmit: { buffer: GPUBuffer; pool: Map<number, GPUBuffer[]> }[] = []
  #encoder: GPUCommandEncoder | undefined
  #pass: GPUComputePassEncoder | undefined
  #pending = 0
  #live = 0
  #liveBytes = 0
  #allocated = 0
  #lostReason: string | undefined
  /** Validation errors reported asynchronously by the device; surfaced by the next read. */
  #errors: string[] = []
  #scopesClosed: Promise<void> = Promise.resolve()

  constructor(info: GpuDeviceInfo, kernels: Readonly<Record<string, WebGpuKernel>> = webgpuKernels) {
    this.info = info
    this.device = info.device
    this.f16 = info.f16
    this.#kernels = new Map(Object.entries(kernels))
    void this.device.lost.then(l => {
      this.#lostReason = l.message || l.reason || 'device lost'
    })
  }

  get lost(): boolean {
    return this.#lostReason !== undefined
  }

  #assertAlive(op: string): void {
    if (this.#lostReason !== undefined) throw new BackendError({ op, actual: this.#lostReason }, 'the WebGPU device was lost')
  }

  // ---- buffers --------------------------------------------------------------------------------------------

  #take(pool: Map<number, GPUBuffer[]>, bytes: number, usage: number): GPUBuffer {
    const cls = sizeClass(bytes)
    const free = pool.get(cls)
    const b = free?.pop()
    if (b) return b
    this.#allocated++
    return this.device.createBuffer({ size: cls, usage })
  }

  #releaseLater(buffer: GPUBuffer, pool: Map<number, GPUBuffer[]>): void {
    this.#releaseAfterSubmit.push({ buffer, pool })
  }

  #newData(dtype: DType, size: number): GpuData {
    this.#assertAlive('allocate')
    const st = storageType(dtype, this.f16)
    const bytes = Math.ceil((size * storageBytes(st)) / 4) * 4
    this.#live++
    this.#liveBytes += bytes
    return { buffer: this.#take(this.#pool, bytes, STORAGE | COPY_SRC | COPY_DST), st, bytes }
  }

  #encode(dtype: DType, st: StorageType, values: AnyTypedArray): ArrayBufferView {
    const n = values.length
    if (st === 'f16') {
      const out = new Uint16Array(n + (n & 1))
      for (let i = 0; i < n; i++) out[i] = f32ToF16Bits(values[i]!)
      return out
    }
    if (st === 'f32') {
      const out = new Float32Array(values)
      if (dtype === 'float16') for (let i = 0; i < n; i++) out[i] = f16Round(out[i]!)
      return out
    }
    if (st === 'i32') return values instanceof Int32Array ? values : new Int32Array(values)
    if (dtype === 'bool') return Uint32Array.from(values, v => (v ? 1 : 0))
    return values instanceof Uint32Array ? values : new Uint32Array(values)
  }

  allocate(dtype: DType, size: number, values?: AnyTypedArray): DataId {
    const d = this.#newData(dtype, size)
    if (values !== undefined && size > 0) {
      const enc = this.#encode(dtype, d.st, values)
      this.device.queue.writeBuffer(d.buffer, 0, enc.buffer, enc.byteOffset, Math.ceil(enc.byteLength / 4) * 4)
    }
    return d
  }

  write(dataId: DataId, values: AnyTypedArray): void {
    const d = dataId as GpuData
    // pending commands may still read the old contents; queue them first
    this.flush()
    const dtype: DType = d.st === 'f16' ? 'float16' : d.st === 'f32' ? 'float32' : d.st === 'i32' ? 'int32' : 'uint32'
    const enc = this.#encode(dtype, d.st, values)
    this.device.queue.writeBuffer(d.buffer, 0, enc.buffer, enc.byteOffset, Math.ceil(enc.byteLength / 4) * 4)
  }

  free(dataId: DataId): void {
    const d = dataId as GpuData
    this.#live--
    this.#liveBytes -= d.bytes
    if (this.lost) return
    this.#releaseLater(d.buffer, this.#pool)
  }

  async read(dataId: DataId, dtype: DType, size: number): Promise<AnyTypedArray> {
    this.#assertAlive('data')
    const d = dataId as GpuData
    const bytes = Math.max(4, d.bytes)
    const staging = this.#take(this.#stagingPool, bytes, MAP_READ | COPY_DST)
    this.#endPass()
    this.#encoderOpen().copyBufferToBuffer(d.buffer, 0, staging, 0, bytes)
    this.flush()
    try {
      // await the error scopes together with the map: Dawn for Node only processes events while one is pending
      await Promise.all([staging.mapAsync(MAP_MODE_READ, 0, bytes), this.#scopesClosed])
    } catch (err) {
      throw new BackendError({ op: 'data', actual: this.#lostReason ?? String(err) }, 'reading a WebGPU buffer failed')
    }
    const raw = staging.getMappedRange(0, bytes).slice(0)
    staging.unmap()
    if (this.#errors.length > 0) {
      const errs = this.#errors.splice(0)
      throw new BackendError({ op: 'data', actual: errs.join('\n') }, 'a WebGPU kernel failed validation')
    }
    ;(this.#stagingPool.get(sizeClass(bytes)) ?? this.#stagingPool.set(sizeClass(bytes), []).get(sizeClass(bytes))!).push(staging)
    return decode(dtype, d.st, raw, size)
  }

  readSync(): undefined {
    return undefined
  }

  // ---- dispatch -------------------------------------------------------------------------------------------

  #encoderOpen(): GPUCommandEncoder {
    if (!this.#encoder) {
      // Validation errors surface through an error scope per batch (Dawn for Node crashes on
      // onuncapturederror); read() awaits the scope and rejects with what it caught.
      this.device.pushErrorScope('validation')
      this.#encoder = this.device.createCommandEncoder()
    }
    return this.#encoder
  }

  #endPass(): void {
    this.#pass?.end()
    this.#pass = undefined
  }

  /** Submit everything recorded so far; buffers freed before this point return to their pools. */
  flush(): void {
    this.#endPass()
    if (this.#encoder) {
      this.device.queue.submit([this.#encoder.finish()])
      this.#encoder = undefined
      const closed = this.device.popErrorScope().then(
        e => {
          if (e) this.#errors.push(e.message)
        },
        () => undefined,
      )
      this.#scopesClosed = Promise.all([this.#scopesClosed, closed]).then(() => undefined)
    }
    this.#pending = 0
    for (const { buffer, pool } of this.#releaseAfterSubmit) {
      const cls = buffer.size
      let free = pool.get(cls)
      if (!free) pool.set(cls, (free = []))
      free.push(buffer)
    }
    this.#releaseAfterSubmit = []
  }

  output(dtype: DType, shape: Shape): GpuTensor {
    return { data: this.#newData(dtype, sizeOf(shape)), shape, dtype }
  }

  #pipeline(key: string, code: () => string): GPUComputePipeline {
    let p = this.#pipelines.get(key)
    if (!p) {
      const module = this.device.createShaderModule({ code: code(), label: key })
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key })
      this.#pipelines.set(key, p)
    }
    return p
  }

  dispatch(spec: DispatchSpec): void {
    this.#assertAlive(spec.key)
    const pipeline = this.#pipeline(spec.key, spec.code)
    const entries: GPUBindGroupEntry[] = []
    let binding = 0
    for (const t of [...spec.inputs, ...spec.outputs]) entries.push({ binding: binding++, resource: { buffer: t.data.buffer, size: Math.max(4, t.data.bytes) } })
    if (spec.uniforms) {
      const u = this.#take(this.#uniformPool, spec.uniforms.byteLength, UNIFORM | COPY_DST)
      this.device.queue.writeBuffer(u, 0, spec.uniforms)
      this.#releaseLater(u, this.#uniformPool)
      entries.push({ binding: binding++, resource: { buffer: u, size: spec.uniforms.byteLength } })
    }
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries })
    this.#pass ??= this.#encoderOpen().beginComputePass()
    this.#pass.setPipeline(pipeline)
    this.#pass.setBindGroup(0, bindGroup)
    const [x, y = 1, z = 1] = spec.workgroups
    if (x > 0 && y > 0 && z > 0) this.#pass.dispatchWorkgroups(x, y, z)
    if (++this.#pending >= MAX_PENDING_DISPATCHES) this.flush()
  }

  hasKernel(kernel: string): boolean {
    return this.#kernels.has(kernel)
  }

  run(kernel: string, inputs: readonly TensorInfo[], attrs: Attrs): TensorInfo[] {
    this.#assertAlive(kernel)
    const k = this.#kernels.get(kernel)
    if (!k) throw new BackendError({ op: kernel, actual: 'webgpu' }, 'no such kernel')
    for (const i of inputs) if (i.dtype === 'float64') storageType(i.dtype, this.f16, kernel)
    const ins: GpuTensor[] = inputs.map(i => ({ data: i.dataId as GpuData, shape: i.shape, dtype: i.dtype }))
    const result = k(this, ins, attrs)
    const outs = Array.isArray(result) ? (result as readonly GpuTensor[]) : [result as GpuTensor]
    return outs.map(o => ({ dataId: o.data, shape: o.shape, dtype: o.dtype }))
  }

  memory(): { buffers: number; bytes: number } {
    return { buffers: this.#live, bytes: this.#liveBytes }
  }

  /** Pool statistics: buffers ever created and buffers waiting in pools (for leak tests). */
  poolStats(): { created: number; pooled: number; pendingRelease: number } {
    let pooled = 0
    for (const l of this.#pool.values()) pooled += l.length
    return { created: this.#allocated, pooled, pendingRelease: this.#releaseAfterSubmit.length }
  }

  destroy(): void {
    this.flush()
    this.device.destroy()
  }
}

function decode(dtype: DType, st: StorageType, raw: ArrayBuffer, size: number): AnyTypedArray {
  if (st === 'f16') {
    const bits = new Uint16Array(raw, 0, size)
    const out = new Float32Array(size)
    for (let i = 0; i < size; i++) out[i] = f16BitsToF32(bits[i]!)
    return out
  }
  if (st === 'f32') return new Float32Array(raw, 0, size).slice()
  if (st === 'i32') return new Int32Array(raw, 0, size).slice()
  const u = new Uint32Array(raw, 0, size)
  return dtype === 'bool' ? Uint8Array.from(u, v => (v ? 1 : 0)) : u.slice()
}
