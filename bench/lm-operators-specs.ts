/**
 * The runs of `npm run bench -- lm-operators` (issue 16): which operator goes into which layer and head of the
 * KJV transformerLM, how each decodes, and what it holds per token. Shared by the bench and by
 * test/lm-operators.ts (which trains and decodes every trained run on a tiny config).
 */
import { headPolicy, operators, type LayerAttention, type LMPolicies } from '@heed/attention'
import { memoryOperators } from '@heed/memory'

export interface LMShape {
  readonly layers: number
  readonly heads: number
  readonly kvHeads: number
  readonly dModel: number
  readonly context: number
}

export interface TrainedRun {
  readonly id: string
  readonly label: string
  /** The paper, for the table. */
  readonly paper: string
  readonly attention?: (s: LMShape) => (layer: number) => LayerAttention
  /** Cache policies for decode and the long-context evaluation (window: only the window is held). */
  readonly policies?: (s: LMShape) => LMPolicies
  /**
   * How heed decodes it: 'cache' through `lm.cache` (and `exact`: equal to the full recomputation), 'recompute' by
   * running the whole prefix again per token (the operator has no incremental form through a KV cache).
   */
  readonly decode: 'cache' | 'recompute'
  readonly exact: boolean
  /** Bytes per layer-sum at n tokens (float32, batch 1): what heed's decode path holds, and the operator's own state. */
  readonly bytes: (s: LMShape, n: number) => { readonly held: number; readonly state: number }
  readonly note: string
}

const F = 4
const hd = (s: LMShape) => s.dModel / s.heads
/** Full K and V of every layer. */
export const denseBytes = (s: LMShape, n: number): number => s.layers * 2 * s.kvHeads * hd(s) * n * F
const windowOf = (s: LMShape) => Math.max(2, s.context / 4)
const full = (s: LMShape, n: number) => ({ held: denseBytes(s, n), state: denseBytes(s, n) })
const linearState = (s: LMShape) => s.heads * hd(s) * hd(s) * F
/**
 * Combiner's decode state at n tokens: q, k, v of the open segment (n mod L rows) and a summary key and span value
 * per query head for each of the ⌊n/L⌋ closed segments.
 */
const combinerBytes = (s: LMShape, n: number): number => {
  const L = Math.round(Math.sqrt(s.context))
  return s.layers * ((n % L) * (s.heads + 2 * s.kvHeads) * hd(s) + Math.floor(n / L) * 2 * s.heads * hd(s)) * F
}
/**
 * A Titans layer's decode state (memoryOperators.titans defaults: depth-2 memory of hidden width 2d, chunk 16):
 * memory weights and momentum (2 · 4d²), the pending chunk's keys, values and gates (< 16 rows of 2d + 3), and the
 * attention keys and values the next token can see (MAC: the open segment's h and x rows; MAG/MAL: window − 1 rows).
 */
const titansBytes = (s: LMShape, n: number, variant: 'MAC' | 'MAG' | 'MAL'): number => {
  const d = s.dModel
  const pending = n % 16
  const rows = variant === 'MAC' ? 2 * (n % (s.context / 2)) : Math.min(n, s.context / 4 - 1)
  return s.layers * (2 * 4 * d * d + pending * (2 * d + 3) + rows * 2 * d) * F
}

export const TRAINED: readonly TrainedRun[] = [
  { id: 'dense', label: 'dense softmax', paper: 'Vaswani et al. 2017', decode: 'cache', exact: true, bytes: full, note: 'the baseline' },
  {
    id: 'window',
    label: 'sliding window',
    paper: 'Beltagy et al. 2020 (local attention)',
    attention: s => () => operators.window(windowOf(s)),
    policies: s => Array.from({ length: s.kvHeads }, () => headPolicy.streaming(0, windowOf(s))),
    decode: 'cache',
    exact: true,
    bytes: (s, n) => ({ held: denseBytes(s, Math.min(n, windowOf(s))), state: denseBytes(s, Math.min(n, windowOf(s))) }),
    note: 'window = context/4, cache holds the window only',
  },
  {
    id: 'lightning',
    label: 'Lightning (TNL decay)',
    paper: 'Qin et al. 2024 (Lightning Attention-2 / TransNormerLLM)',
    attention: s => l => operators.lightning({ decay: { preset: 'tnl', layer: l, layers: s.layers } }),
    decode: 'cache',
    exact: true,
    bytes: s => ({ held: s.layers * linearState(s), state: s.layers * linearState(s) }),
    note: "decode streams the H·D² linear state through the cache ('state' form): no keys kept",
  },
  {
    id: 'lightning-hybrid',
    label: 'Lightning + 1 softmax layer',
    paper: 'Qin et al. 2024 (TransNormerLLM hybrid)',
    attention: s => l => (l === s.layers - 1 ? undefined : operators.lightning({ decay: { preset: 'tnl', layer: l, layers: s.layers } })),
    decode: 'cache',
    exact: true,
    bytes: (s, n) => ({ held: (s.layers - 1) * linearState(s) + denseBytes({ ...s, layers: 1 }, n), state: (s.layers - 1) * linearState(s) + denseBytes({ ...s, layers: 1 }, n) }),
    note: 'last layer softmax, the others Lightning',
  },
  {
    id: 'flow',
    label: 'Flow-Attention',
    paper: 'Wu et al. 2022 (Flowformer)',
    attention: () => () => operators.flow(),
    decode: 'cache',
    exact: true,
    bytes: s => ({ held: s.layers * s.heads * (hd(s) * hd(s) + 4 * hd(s) + 1) * F, state: s.layers * s.heads * (hd(s) * hd(s) + 4 * hd(s) + 1) * F }),
    note: "causal Flowformer; decode streams its running sums (FlowState) through the cache ('state' form)",
  },
  {
    id: 'agent',
    label: 'Agent (causal, 8 learned agents)',
    paper: 'Han et al. 2024 (Agent Attention)',
    attention: () => () => operators.agent({ agents: 8 }),
    decode: 'cache',
    exact: true,
    bytes: s => ({ held: s.layers * s.heads * 8 * (hd(s) + 2) * F, state: s.layers * s.heads * 8 * (hd(s) + 2) * F }),
    note: "the paper pools agents from all queries (non-causal); here learned agents over causal prefix sums (streamed as a 'state'), no DWC",
  },
  {
    id: 'combiner',
    label: 'Combiner (causal, fixed)',
    paper: 'Ren et al. 2021 (Combiner)',
    attention: s => () => operators.combiner({ segmentLength: Math.round(Math.sqrt(s.context)) }),
    decode: 'cache',
    exact: true,
    bytes: (s, n) => ({ held: combinerBytes(s, n), state: combinerBytes(s, n) }),
    note: "segment √context; decode streams the open segment's q/k/v and one pooled summary per closed segment through the cache ('state' form, combinerStep)",
  },
  {
    id: 'routing',
    label: 'Routing (half local, half routed heads)',
    paper: 'Roy et al. 2021 (Routing Transformer)',
    attention: s => () => (h: number) => (h < s.heads / 2 ? operators.window(windowOf(s)) : operators.routing({ clusters: 4 })),
    decode: 'cache',
    exact: true,
    bytes: full,
    note: 'argmax routing to 4 fixed random centroids (no online k-means)',
  },
  {
    id: 'landmark',
    label: 'Landmark',
    paper: 'Mohtashami & Jaggi 2023 (Landmark Attention)',
    attention: s => () => operators.landmark({ blockSize: Math.max(1, s.context / 8 - 1) }),
    decode: 'cache',
    exact: true,
    bytes: full,
    note: 'every (ℓ+1)-th position acts as the landmark (an ordinary character, no landmark token in the alphabet)',
  },
  {
    id: 's2',
    label: 'S2-Attention',
    paper: 'Lin et al. 2024 (S2-Attention)',
    attention: s => () => operators.s2({ heads: s.heads, kvHeads: s.kvHeads, blockSize: Math.max(1, s.context / 8), localBlocks: 2, stride: s.heads }),
    decode: 'cache',
    exact: true,
    bytes: full,
    note: 'block context/8, 2 local blocks, stride = heads (the shards cover the context together)',
  },
  {
    id: 'moh',
    label: 'MoH (1 shared + top-2 of 3 routed)',
    paper: 'Jin et al. 2024 (MoH)',
    attention: s => () => operators.moh({ shared: 1, topK: Math.max(1, Math.floor((s.heads - 1) * 2 / 3)) }),
    decode: 'cache',
    exact: true,
    bytes: full,
    note: '75 % of heads active per token; no load-balancing loss (the LM loss is cross-entropy only); all heads keep KV',
  },
  {
    id: 'titans-mac',
    label: 'Titans MAC',
    paper: 'Behrouz et al. 2024 (Titans)',
    attention: s => () => memoryOperators.titans('MAC', { segment: s.context / 2 }),
    decode: 'cache',
    exact: true,
    bytes: (s, n) => ({ held: titansBytes(s, n, 'MAC'), state: titansBytes(s, n, 'MAC') }),
    note: "Titans layer in place of attention (its own maps); decode streams the memory (weights, momentum, pending chunk) and the segment's keys through the cache ('state' form, titansLayerStep)",
  },
  {
    id: 'titans-mag',
    label: 'Titans MAG',
    paper: 'Behrouz et al. 2024 (Titans)',
    attention: s => () => memoryOperators.titans('MAG', { window: s.context / 4 }),
    decode: 'cache',
    exact: true,
    bytes: (s, n) => ({ held: titansBytes(s, n, 'MAG'), state: titansBytes(s, n, 'MAG') }),
    note: "window context/4 beside the memory branch; decode streams the memory and the window's keys ('state' form)",
  },
  {
    id: 'titans-mal',
    label: 'Titans MAL',
    paper: 'Behrouz et al. 2024 (Titans)',
    attention: s => () => memoryOperators.titans('MAL', { window: s.context / 4 }),
    decode: 'cache',
    exact: true,
    bytes: (s, n) => ({ held: titansBytes(s, n, 'MAL'), state: titansBytes(s, n, 'MAL') }),
    note: "memory layer, then window attention (context/4); decode streams the memory and the window's keys ('state' form)",
  },
  {
    id: 'hcam',
    label: 'HCAM (own chunk + top-2 chunks)',
    paper: 'Lampinen et al. 2021 (HCAM)',
    attention: s => () => memoryOperators.hcam({ chunk: Math.max(2, s.context / 8), topK: 2 }),
    decode: 'cache',
    exact: true,
    bytes: full,
    note: 'memory rows = the layer keys; chunk context/8',
  },
]

/** Not run, and why. */
export const NOT_APPLICABLE: readonly { readonly id: string; readonly label: string; readonly why: string }[] = [
  {
    id: 'hilo',
    label: 'HiLo (LITv2)',
    why: "a 2-D image operator (hi-fi heads in s×s windows, lo-fi heads over s×s-average-pooled keys). Its 1-D causal form is local attention plus pooled summaries of earlier segments, which is Combiner's causal form (measured above); pooling a segment that is still being read would look at the future.",
  },
  {
    id: 'davit',
    label: 'DaViT (window + channel attention)',
    why: 'channel attention mixes the D×D channel Gram matrix of every token (non-causal); its causal form is an unnormalised linear attention, which Lightning measures. Window attention in 1-D is the sliding window above.',
  },
]
