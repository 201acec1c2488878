// #region recipe
import { tensor, matmul, add, mul, sum, valueAndGrad, type Tensor } from '@heed/tensor'

const x = tensor([[1, 2], [3, 4]]) // float32, shape [2, 2]
const w = tensor([[0.5], [-1]])

const y = add(matmul(x, w), 1) // the scalar broadcasts
console.log(y.shape, await y.array()) // => [[2, 1], [[-0.5], [-1.5]]]

// loss(w) = Σ (x·w)², so dloss/dw = 2·xᵀ(x·w)
const loss = (w: Tensor<'float32'>) => {
  const p = matmul(x, w)
  return sum(mul(p, p))
}
const [value, dw] = valueAndGrad(loss)(w)
console.log(await value.array(), await dw.array()) // => [8.5, [[-18], [-26]]]
// #endregion recipe
