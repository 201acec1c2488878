/**
 * @heed/attention: softmax attention with a mask/score-mod algebra, the (o, lse) state merge, KV caches and
 * streaming decode, and the efficient attention operators of the seed papers.
 * Shapes follow [B, H, T, D]: batch, heads, sequence, head dim (Hkv key/value heads for grouped-query attention).
 */
export type { Tensor, DType, Shape } from '@heed/tensor'
export { Mask, mask, type MaskNode, type Tile, type TileClass } from './mask.js'
export { ScoreMod, scoreMod, alibiSlopes, type ScoreModNode } from './scoreMod.js'
export { scaledDotProductAttention, type SdpaOptions, type AttentionResult } from './sdpa.js'
export type { AttentionAttrs } from './kernels/attrs.js'
export { attnState, splitKvAttention, chunkedPrefill, type AttnState, type SplitKvOptions, type ChunkedPrefillOptions } from './attnState.js'
export { attentionProbs, rowArgmax, colSetMass, type ObserveOptions, type ChunkOptions, type Indices } from './observe.js'
export { KvCache, kvCache, headPolicy, cachedAttention, mergeAttention, CacheOverflowError, type HeadPolicy, type KvCacheOptions, type KvView, type KvPass, type KvRange, type CachedAttentionOptions } from './kvCache.js'
export { rope, type RopeOptions } from './rope.js'
export { multiHeadAttention, type MultiHeadAttention, type MultiHeadAttentionOptions, type MhaParams, type InitOptions, type ForwardOptions, type CacheOptions } from './multiHeadAttention.js'
export { transformerBlock, rmsNorm, type TransformerBlock, type TransformerBlockOptions, type TransformerBlockParams } from './transformerBlock.js'
export { attend, type CachedLayer, type CacheSource } from './attend.js'
export { lightningAttention, lightning, lightningDecay, combineLinearStates, type LinearState, type LightningDecay, type LightningPreset, type LightningOptions, type LightningAttentionOptions, type LightningStateInput, type LightningResult, type LightningOp } from './operators/lightningAttention.js'
export { flowAttention, flowStats, type FlowAttentionOptions, type FlowState, type FlowStats, type FlowResult } from './operators/flowAttention.js'
export { s2Attention, s2Mask, s2Shards, type S2Options, type S2AttentionOptions, type S2Layout, type S2Shards } from './operators/s2.js'
export { windowAttention, windowIds, channelAttention, channelAttentionWeights, type Grid, type WindowAttentionOptions, type ChannelAttentionOptions } from './operators/davit.js'
export { hiloAttention, hiloSplit, type HiloOptions, type HiloResult } from './operators/hilo.js'
export { duoAttention, duoGateLoss, duoDeploy, duoKvBytes, clampGates, DUO_DEFAULTS, type DuoAttentionOptions, type DuoAttentionResult, type DuoGateLossOptions, type DuoDeployOptions, type DuoDeployment, type DuoKvBytesOptions } from './operators/duo.js'
export { actAttention, ACT_DEFAULTS, type ActOptions, type ActResult } from './operators/act.js'
export { combinerAttention, combinerWeights, type CombinerOptions } from './operators/combiner.js'
export { landmarkAttention, isLandmark, type LandmarkOptions, type LandmarkResult } from './operators/landmark.js'
export { routingAttention, kmeansUpdate, kmeansObjective, unitRows, type RoutingOptions } from './operators/routing.js'
export { mohGates, mohBalanceLoss, mohAttention, activeHeads, type MohRouter, type MohGateOptions, type MohGates, type MohAttentionOptions } from './operators/moh.js'
export { hipAttention, hipSelect, hipMask, hipDecoder, type HipOptions, type HipAttentionOptions, type HipSelection } from './operators/hip.js'
