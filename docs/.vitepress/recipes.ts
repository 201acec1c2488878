/** The recipe pages, in sidebar order: each is docs/recipes/<slug>.md around docs/snippets/<slug>.ts. */
export const RECIPES = [
  { slug: 'train-lm', title: 'Train your own language model' },
  { slug: 'swap-trained-attention', title: 'Swap the attention of a trained model' },
  { slug: 'streaming-decode', title: 'Streaming decode with a KV cache' },
  { slug: 'swap-operators', title: 'Swapping attention operators' },
  { slug: 'chunked-prefill', title: 'Chunked prefill with attnState.merge' },
  { slug: 'sparsey-mnist', title: 'Sparsey on MNIST digits' },
  { slug: 'tensor-brain-recall', title: 'Tensor Brain episodic recall' },
  { slug: 'titans-long-recall', title: 'Titans long-range recall' },
  { slug: 'training-loop', title: 'A plain training loop' },
  { slug: 'dpo-training', title: 'A DPO training loop' },
  { slug: 'dpo-kjv', title: 'Fine-tune the shipped model with DPO' },
  { slug: 'distraction-adult', title: 'Distraction on UCI Adult' },
  { slug: 'cpu-to-webgpu', title: 'From CPU to WebGPU' },
  { slug: 'safetensors-weights', title: 'Loading weights from safetensors' },
] as const
