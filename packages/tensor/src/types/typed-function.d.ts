// typed-function 4 ships no declarations; this is the part of its API heed uses.
declare module 'typed-function' {
  export interface TypeDef {
    name: string
    test: (u: unknown) => boolean
  }
  export interface Signature {
    signature: string
    fn: (...args: any[]) => unknown
  }
  export interface MismatchData {
    category: 'wrongType' | 'tooFewArgs' | 'tooManyArgs' | 'mismatch'
    fn: string
    index?: number
    actual?: string
    expected?: string[]
  }
  export interface Typed {
    (name: string, signatures: Record<string, (...args: any[]) => any>): (...args: any[]) => any
    create(): Typed
    clear(): void
    addTypes(types: TypeDef[], beforeSpec?: string | false): void
    onMismatch: (name: string, args: unknown[], signatures: Signature[]) => unknown
    createError(name: string, args: unknown[], signatures: Signature[]): TypeError & { data: MismatchData }
    referToSelf<F>(cb: (self: F) => F): F
  }
  const typed: Typed
  export default typed
}
