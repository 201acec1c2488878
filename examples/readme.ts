import { tensor, matmul, add, mul, sum, valueAndGrad, type Tensor } from '@heed/tensor'

const x = tensor([[1, 2], [3, 4]]) // float32, shape [2, 2]
const w = tensor([[0.5], [-1]]) // shape [2, 1]

const y = add(matmul(x, w), 1) // broadcasts the scalar
console.log(await y.array()) // [ [ -0.5 ], [ -1.5 ] ]

// loss(w) = Σ (x·w)², and its gradient 2·xᵀ(x·w)
const loss = (w: Tensor<'float32'>) => {
  const p = matmul(x, w)
  return sum(mul(p, p))
}
const [value, dw] = valueAndGrad(loss)(w)
console.log(await value.array(), await dw.array()) // 8.5 [ [ -18 ], [ -26 ] ]
