import type { SweepConfig } from './types.js'
import { attentionGaps } from './attention-gaps.js'

export const attentionSweep: SweepConfig = {
  namespaces: ['attnState', 'headPolicy', 'mask', 'operators', 'scoreMod'],
  allowed: {
    isLandmark: {
      '*': 'a predicate on token ids: false for anything that is not the landmark id',
    },
    loadKjv: { '*': 'takes no arguments: reads the bundled corpus' },
    loadKjvModel: {
      noArgs: 'loads the bundled model with its defaults',
      undefined: 'same as noArgs',
    },
    flattenParams: {
      '*': 'flattens any parameter tree into name → tensor; a non-tree is an empty tree',
    },
    counterUniform: {
      '*': 'a counter-based hash to [0,1) on the hot path: total on numbers by design',
    },
    hipDecoder: { noArgs: 'all options optional', undefined: 'same as noArgs' },
    'headPolicy.full': { '*': 'takes no arguments: a constant policy' },
    'headPolicy.recurrent': { '*': 'takes no arguments: a constant policy' },
    sampler: {
      string:
        "sampler's first argument is the caller's op name (generate passes its own): sampler('x') fails with a typed error naming x, as the validate helpers do",
    },
    charTokenizer: { string: "'x' is a valid one-character alphabet" },
    'mask.and': { noArgs: 'the empty conjunction: mask.all (sdpa itself builds mask.and(...parts) from no parts)' },
    'mask.or': { noArgs: 'the empty disjunction: mask.none' },
    'scoreMod.compose': { noArgs: 'the empty composition: the identity score mod' },
    'scoreMod.softcap': { huge: 'a cap of 2^40 is a valid finite positive cap (cap·tanh(s/cap) ≈ s): no size is allocated' },
  },
  aliases: {
    // `new KvCache(opts)` is the documented factory `kvCache(opts)` under its class name: one constructor, whose errors say kvCache
    KvCache: ['kvCache'],
  },
  gaps: attentionGaps,
}
