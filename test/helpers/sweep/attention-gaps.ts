import type { SweepConfig } from './types.js'

/** Bad calls of @heed/attention that do not yet give a typed error naming their function (the outcome seen); shrink-only. */
export const attentionGaps: SweepConfig['gaps'] = {
  charTokenizer: {
    string: 'silent returned object{vocab,size,encode,decode}',
  },
  counterUniform: {
    noArgs: 'silent returned number',
    null: 'silent returned number',
    undefined: 'silent returned number',
    disposed: 'silent returned number',
    nestedArray: 'silent returned number',
    string: 'silent returned number',
    huge: 'silent returned number',
    unknownOption: 'silent returned number',
  },
  flattenParams: {
    noArgs: 'silent returned object{}',
    null: 'silent returned object{}',
    undefined: 'silent returned object{}',
    disposed: 'silent returned object{}',
    nestedArray: 'silent returned object{}',
    string: 'silent returned object{}',
    huge: 'silent returned object{}',
    unknownOption: 'silent returned object{}',
  },
  'mask.and': {
    noArgs: 'silent returned object{node}',
  },
  'mask.or': {
    noArgs: 'silent returned object{node}',
  },
  pineMask: {
    noArgs: 'misnamed pineAttention: documents: expected an array of [start, end) row ranges, got undefined (op pineAttention)',
    null: 'misnamed pineAttention: documents: expected an array of [start, end) row ranges, got object (op pineAttention)',
    undefined: 'misnamed pineAttention: documents: expected an array of [start, end) row ranges, got undefined (op pineAttention)',
    disposed: 'misnamed pineAttention: documents: expected an array of [start, end) row ranges, got object (op pineAttention)',
    nestedArray: 'misnamed pineAttention: documents[1]: expected a non-empty [start, end) inside [0, undefined] starting where the previous one ends, got [3] ',
    string: 'misnamed pineAttention: documents: expected an array of [start, end) row ranges, got string (op pineAttention)',
    huge: 'misnamed pineAttention: documents: expected an array of [start, end) row ranges, got number (op pineAttention)',
    unknownOption: 'misnamed pineAttention: documents: expected an array of [start, end) row ranges, got object (op pineAttention)',
  },
  pinePlan: {
    noArgs: 'misnamed pineAttention: q: expected a Tensor [B, H, T, D], got undefined (op pineAttention)',
    null: 'misnamed pineAttention: q: expected a Tensor [B, H, T, D], got null (op pineAttention)',
    undefined: 'misnamed pineAttention: q: expected a Tensor [B, H, T, D], got undefined (op pineAttention)',
    disposed: 'misnamed pineAttention: q: expected rank 4 [B, H, T, D], got [2,2] (op pineAttention)',
    nestedArray: 'misnamed pineAttention: q: expected a Tensor [B, H, T, D], got an array (op pineAttention)',
    string: 'misnamed pineAttention: q: expected a Tensor [B, H, T, D], got string (op pineAttention)',
    huge: 'misnamed pineAttention: q: expected a Tensor [B, H, T, D], got number (op pineAttention)',
    unknownOption: 'misnamed pineAttention: zzcQR: unknown option, expected one of documents, rope, scale, mask, plan, got zzcQR (op pineAttention)',
  },
  recycledPlan: {
    noArgs: 'misnamed recycledAttention: q: expected a Tensor [B, H, T, D], got undefined (op recycledAttention)',
    null: 'misnamed recycledAttention: q: expected a Tensor [B, H, T, D], got null (op recycledAttention)',
    undefined: 'misnamed recycledAttention: q: expected a Tensor [B, H, T, D], got undefined (op recycledAttention)',
    disposed: 'misnamed recycledAttention: q: expected rank 4 [B, H, T, D], got [2,2] (op recycledAttention)',
    nestedArray: 'misnamed recycledAttention: q: expected a Tensor [B, H, T, D], got an array (op recycledAttention)',
    string: 'misnamed recycledAttention: q: expected a Tensor [B, H, T, D], got string (op recycledAttention)',
    huge: 'misnamed recycledAttention: q: expected a Tensor [B, H, T, D], got number (op recycledAttention)',
    unknownOption:
      'misnamed recycledAttention: zzkey: unknown option, expected one of scale, causal, queryOffset, keyOffset, mask, scoreMod, blockSize, stride,',
  },
  s2Mask: {
    noArgs: 'misnamed s2Attention: heads: expected an integer \u2265 1 (op s2Attention)',
    null: 'misnamed s2Attention: heads: expected an integer \u2265 1, got null (op s2Attention)',
    undefined: 'misnamed s2Attention: heads: expected an integer \u2265 1 (op s2Attention)',
    disposed: 'misnamed s2Attention: heads: expected an integer \u2265 1, got Tensor<float32>[2,2] (op s2Attention)',
    nestedArray: 'misnamed s2Attention: heads: expected an integer \u2265 1, got [[1,2],[3]] (op s2Attention)',
    string: 'misnamed s2Attention: heads: expected an integer \u2265 1, got x (op s2Attention)',
    huge: 'misnamed s2Attention: kvHeads: expected an integer \u2265 1, got [1048576,1048576,1048576] (op s2Attention)',
    unknownOption: 'misnamed s2Attention: heads: expected an integer \u2265 1, got Tensor<float32>[1,1,4,4] (op s2Attention)',
  },
  s2Shards: {
    noArgs: 'misnamed s2Attention: heads: expected an integer \u2265 1 (op s2Attention)',
    null: 'misnamed s2Attention: heads: expected an integer \u2265 1, got null (op s2Attention)',
    undefined: 'misnamed s2Attention: heads: expected an integer \u2265 1 (op s2Attention)',
    disposed: 'misnamed s2Attention: heads: expected an integer \u2265 1, got Tensor<float32>[2,2] (op s2Attention)',
    nestedArray: 'misnamed s2Attention: heads: expected an integer \u2265 1, got [[1,2],[3]] (op s2Attention)',
    string: 'misnamed s2Attention: heads: expected an integer \u2265 1, got x (op s2Attention)',
    huge: 'misnamed s2Attention: kvHeads: expected an integer \u2265 1, got [1048576,1048576,1048576] (op s2Attention)',
    unknownOption: 'misnamed s2Attention: heads: expected an integer \u2265 1, got Tensor<float32>[1,1,4,4] (op s2Attention)',
  },
  sampler: {
    string: 'misnamed x: topK: expected a positive integer, got undefined (op x)',
  },
  'scoreMod.compose': {
    noArgs: 'silent returned object{node}',
  },
  'scoreMod.softcap': {
    huge: 'silent returned object{node}',
  },
}
