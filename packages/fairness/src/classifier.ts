import { noGrad, scope, sigmoid, tensor, type Tensor } from '@heed/tensor'
import { takeRows, type TabularData } from './tabularData.js'

/** A trained binary classifier over TabularData: probabilities of the positive label, host-side. */
export interface Classifier {
  predictProba(data: TabularData): Float32Array
  /** Free the tensors it holds. */
  dispose(): void
}

/** @internal run a logit function over `data` in chunks (full-batch evaluation without a huge intermediate). */
export function probaInChunks(data: TabularData, logits: (x: Tensor, rows: Int32Array) => Tensor, chunk = 4096): Float32Array {
  const out = new Float32Array(data.n)
  for (let s = 0; s < data.n; s += chunk) {
    const rows = Int32Array.from({ length: Math.min(chunk, data.n - s) }, (_, i) => s + i)
    const p = noGrad(() =>
      scope(() => {
        const { values, d } = takeRows(data.x, data.d, rows)
        return sigmoid(logits(tensor(values, [rows.length, d], 'float32'), rows))
      }),
    )
    out.set(p.dataSync() as Float32Array, s)
    p.dispose()
  }
  return out
}

