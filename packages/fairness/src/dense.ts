import { add, cast, checkAllocation, matmul, mul, random, relu, scope, tensor, type Rng, type Tensor } from '@heed/tensor'

/** One fully connected layer: `x·w + b`. */
export interface DenseLayer {
  readonly w: Tensor
  readonly b: Tensor
}

/**
 * @internal Glorot-uniform weights and zero biases for layer sizes `[in, h1, …, out]` (PyTorch's Xavier init).
 * Every layer's size is checked before the first is made, in the name of `op` (the public function): a width no
 * tensor can hold fails there, not inside random.uniform, and leaves nothing allocated.
 */
export function initDense(sizes: readonly number[], rng: Rng, op = 'initDense'): DenseLayer[] {
  for (let i = 0; i + 1 < sizes.length; i++) checkAllocation(op, i === 0 ? 'input width × hidden[0]' : `hidden[${i - 1}] × hidden[${i}]`, sizes[i]! * sizes[i + 1]!, 'float32')
  const layers: DenseLayer[] = []
  for (let i = 0; i + 1 < sizes.length; i++) {
    const fin = sizes[i]!
    const fout = sizes[i + 1]!
    const a = Math.sqrt(6 / (fin + fout))
    layers.push({ w: random.uniform([fin, fout], { low: -a, high: a, rng }), b: tensor(new Float32Array(fout), [fout], 'float32') })
  }
  return layers
}

/** @internal inverted dropout: training-time rows keep each unit with probability 1 − rate, scaled up. */
export function dropout(x: Tensor, rate: number, rng: Rng | undefined): Tensor {
  if (rng === undefined || rate <= 0) return x
  const keep = cast(random.bernoulli(x.shape, { p: 1 - rate, rng }), x.dtype)
  return mul(x, mul(keep, tensor(1 / (1 - rate), [], x.dtype)))
}

/** @internal ReLU hidden layers (with dropout when `rng` is given); the last layer is linear when `linearLast`. */
export function denseForward(layers: readonly DenseLayer[], x: Tensor, opts: { readonly dropout?: number; readonly rng?: Rng | undefined; readonly linearLast?: boolean } = {}): Tensor {
  return scope(() => {
    let h = x
    layers.forEach((l, i) => {
      h = add(matmul(h, l.w), l.b)
      if (opts.linearLast && i === layers.length - 1) return
      h = dropout(relu(h), opts.dropout ?? 0, opts.rng)
    })
    return h === x ? mul(x, 1) : h
  })
}
