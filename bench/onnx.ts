/**
 * Just enough of the ONNX protobuf wire format to write a graph of standard nodes with float32 inputs and symbolic
 * dims, so the benches can run onnxruntime without any ONNX tooling. Opset 13, IR version 8.
 */

export interface OrtTensor {
  readonly data: ArrayLike<number>
  dispose?(): void
}
export interface OrtModule {
  Tensor: new (type: string, data: Float32Array, dims: number[]) => OrtTensor
  InferenceSession: { create(model: Uint8Array, opts: object): Promise<{ run(feeds: object): Promise<Record<string, OrtTensor>>; release(): Promise<void> }> }
}

const varint = (out: number[], v: number): void => {
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80)
    v >>>= 7
  }
  out.push(v)
}
const field = (no: number, payload: number[] | string): number[] => {
  const body = typeof payload === 'string' ? [...new TextEncoder().encode(payload)] : payload
  const out: number[] = []
  varint(out, (no << 3) | 2)
  varint(out, body.length)
  return [...out, ...body]
}
const int = (no: number, v: number): number[] => {
  const out: number[] = []
  varint(out, no << 3)
  varint(out, v)
  return out
}
const valueInfo = (name: string, dims: readonly string[]): number[] => [
  ...field(1, name),
  ...field(2, field(1, [...int(1, 1 /* FLOAT */), ...field(2, dims.flatMap(d => field(1, field(2, d))))])),
]

export interface OnnxGraph {
  readonly name: string
  /** Nodes in order: inputs, one output, op type (no attributes: opset defaults). */
  readonly nodes: readonly { readonly inputs: readonly string[]; readonly output: string; readonly op: string }[]
  /** Graph inputs and outputs with symbolic dims, so one model serves every size. */
  readonly inputs: Readonly<Record<string, readonly string[]>>
  readonly outputs: Readonly<Record<string, readonly string[]>>
}

export function onnxModel(g: OnnxGraph): Uint8Array {
  const graph = [
    ...g.nodes.flatMap(n => field(1, [...n.inputs.flatMap(i => field(1, i)), ...field(2, n.output), ...field(4, n.op)])),
    ...field(2, g.name),
    ...Object.entries(g.inputs).flatMap(([n, d]) => field(11, valueInfo(n, d))),
    ...Object.entries(g.outputs).flatMap(([n, d]) => field(12, valueInfo(n, d))),
  ]
  return Uint8Array.from([...int(1, 8), ...field(7, graph), ...field(8, [...field(1, ''), ...int(2, 13)])])
}
