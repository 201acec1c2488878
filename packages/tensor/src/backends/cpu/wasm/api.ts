/**
 * The slice of the WebAssembly JS API the kernels use, typed here because the package compiles without the DOM
 * lib (which is where TypeScript declares `WebAssembly`); read off globalThis so a runtime without it is a
 * clean "unavailable" rather than a ReferenceError.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer
  grow(pages: number): number
}

/** A compiled module: opaque, but structured-cloneable to workers. */
export interface WasmModule {
  readonly __wasmModule?: never
}

export interface WasmInstance {
  readonly exports: Readonly<Record<string, unknown>>
}

export interface WasmApi {
  validate(bytes: Uint8Array<ArrayBuffer>): boolean
  readonly Module: new (bytes: Uint8Array<ArrayBuffer>) => WasmModule
  readonly Instance: new (module: WasmModule, imports: Readonly<Record<string, Readonly<Record<string, unknown>>>>) => WasmInstance
  readonly Memory: new (desc: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory
}

export const wasmApi = (): WasmApi | undefined => (globalThis as { WebAssembly?: WasmApi }).WebAssembly
