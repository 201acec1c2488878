// The pipeline of the live demo page (docs/demo.md), bundled for the browser by VitePress. It is not a recipe run
// by test/recipes.ts (it needs a page and the model's URL); test/docs-demo.ts runs it in headless Chromium and checks
// its text against the same generation in Node.
// #region recipe
import { asyncScheduler, map, type Observable } from 'rxjs'
import { getBackend, setBackend } from '@heed/tensor'
import { charTokenizer, headPolicy, loadLM, type CharTokenizer, type HeadPolicy, type LoadedLM } from '@heed/attention'
import { generateText } from '@heed/attention/stream'

/** The cache policies the page offers, the same for every layer and kv head. */
export const POLICIES = {
  full: { label: 'full cache', policy: (): HeadPolicy => headPolicy.full() },
  sinks: { label: 'sinks + recent (4 + 60)', policy: (): HeadPolicy => headPolicy.streaming(4, 60) },
  window: { label: 'window (64, no sinks)', policy: (): HeadPolicy => headPolicy.streaming(0, 64) },
} as const
export type PolicyName = keyof typeof POLICIES

export interface DemoModel extends LoadedLM {
  readonly tokenizer: CharTokenizer
  readonly backend: string
  readonly fellBack: boolean
}

/** Pick the backend (WebGPU when the browser gives an adapter, else the CPU), fetch the checkpoint and load it. */
export async function loadDemoModel(url: string, want: 'webgpu' | 'cpu', log: (line: string) => void): Promise<DemoModel> {
  let fellBack = false
  try {
    await setBackend(want)
  } catch (err) {
    fellBack = true
    log(`${want} is unavailable (${err instanceof Error ? err.message : String(err)}); falling back to the CPU`)
    await setBackend('cpu')
  }
  const response = await fetch(url)
  if (!response.ok) throw new Error(`fetching the model: HTTP ${response.status}`)
  const bytes = new Uint8Array(await response.arrayBuffer())
  const loaded = loadLM(bytes)
  const { layers, dModel, context } = loaded.config
  log(`model: ${layers} layers, dModel ${dModel}, context ${context}, ${loaded.vocab.length} characters (${(bytes.length / 1e6).toFixed(1)} MB) on ${getBackend()}`)
  return { ...loaded, tokenizer: charTokenizer(loaded.vocab), backend: getBackend(), fellBack }
}

export interface DemoOptions {
  readonly policy: PolicyName
  readonly seed: number
  /** 0 is greedy. */
  readonly temperature: number
  readonly maxTokens: number
}

/** One step of the stream: the character drawn and where the run stands. */
export interface DemoStep {
  readonly char: string
  readonly tokens: number
  /** Keys and values the caches retain for this token (all layers, all kv heads). */
  readonly kvBytes: number
  /** Decode tokens per second since the first token (the prefill is not in it); 0 for the first. */
  readonly tokensPerSecond: number
}

/**
 * Generated text as a stream of characters, each with the KV bytes held and the running tokens/s. Decode steps wait
 * on asyncScheduler, so the page repaints between tokens; unsubscribing stops decoding and frees the caches.
 */
export function demoStream(model: DemoModel, prompt: string, opts: DemoOptions): Observable<DemoStep> {
  const policy = POLICIES[opts.policy].policy()
  const policies = Array.from({ length: model.lm.config.kvHeads }, () => policy)
  let kvBytes = 0
  let first = 0
  return generateText(model.lm, model.params, model.tokenizer, prompt, {
    maxTokens: opts.maxTokens,
    temperature: opts.temperature,
    topK: 20,
    seed: opts.seed,
    policies,
    scheduler: asyncScheduler,
    onKvBytes: bytes => void (kvBytes = bytes),
  }).pipe(
    map((char, i) => {
      const now = performance.now()
      if (i === 0) first = now
      return { char, tokens: i + 1, kvBytes, tokensPerSecond: i === 0 ? 0 : i / ((now - first) / 1000) }
    }),
  )
}
// #endregion recipe
