// @ts-check
/**
 * A TypeDoc plugin that groups each package's API reference by topic (Ops, Autodiff, KV caches and decode, …)
 * instead of one alphabetical list of hundreds of names. The topic comes from the file a declaration is defined
 * in, so a new export lands in the right section without anyone remembering a `@category` tag; a declaration
 * that carries its own `@category` keeps it.
 *
 * Categories are attached at declaration time as a `@category` block tag, which TypeDoc's CategoryPlugin reads
 * when it resolves the project.
 */
import { Comment, CommentTag, Converter, ReflectionKind } from 'typedoc'

/** [package, path under src/ (a regular expression), topic]: the first match wins. */
const TOPICS = [
  ['tensor', /^(Tensor|dtype|shape|typed|storage|mapTree)\.ts$|^creation\/|^types\//, 'Tensors and creation'],
  ['tensor', /^ops\/(unary|binary|compare|where|clip)/, 'Elementwise ops'],
  ['tensor', /^ops\/(sum|mean|max|min|reduce|logSumExp|softmax|logSoftmax|argmax|topk|cumsum)/, 'Reductions and softmax'],
  ['tensor', /^ops\/(matmul|einsum|conv|linear)/, 'Linear algebra and convolution'],
  ['tensor', /^ops\//, 'Shape, indexing and other ops'],
  ['tensor', /^math\//, 'Shape, indexing and other ops'],
  ['tensor', /^(autodiff|gradients)\//, 'Autodiff'],
  ['tensor', /^optim\//, 'Optimizers and training'],
  ['tensor', /^stream/, 'Streams'],
  ['tensor', /^io\//, 'Serialization (safetensors)'],
  ['tensor', /^random\//, 'Random'],
  ['tensor', /^(memory|profile|progressBar)\.ts$/, 'Memory, scopes and profiling'],
  ['tensor', /^(backend|backends\/|cpu|webgpu|engine|toBackend|kernelContract|kernelOp|op)/, 'Backends and kernels'],
  ['tensor', /^(errors|validate)\.ts$/, 'Errors and validation'],
  ['attention', /^(sdpa|mask|scoreMod|attnState|rope)\.ts$|^kernels\//, 'Softmax attention, masks and score mods'],
  ['attention', /^(kvCache|attend|stream|observe)\.ts$/, 'KV caches, streaming decode and observers'],
  ['attention', /^(multiHeadAttention|transformerBlock)\.ts$/, 'Layers'],
  ['attention', /^operators\/(duo|streaming|act|hip|longHeads|recycled|pine|var|taskKv|headPolicy|observers)/i, 'Inference-time methods and cache policies'],
  ['attention', /^operators\//, 'Efficient operators'],
  ['attention', /^lm\//, 'Language model'],
  ['attention', /^testing\//, 'Testing helpers'],
  ['memory', /^titans/, 'Titans'],
  ['memory', /^(hcam)/, 'HCAM'],
  ['memory', /^sparsey|^recall/, 'Sparsey'],
  ['memory', /^tensorBrain/, 'Tensor Brain'],
  ['memory', /^(lmOperators|memoryStream|neuralMemoryStream|stream)/, 'Streams and LM operators'],
  ['align', /Loss\.ts$/, 'Preference losses'],
  ['align', /^(collatePreferences|completionBatch|kjvPreferencePairs|lmKtoBatch|preferenceBatches|preferenceDataset|treeTensorsOf)\.ts$/, 'Preference data'],
  ['align', /Logps\.ts$|^logpsFromTokens|^tokenLogps|^noisePredictionErrors/, 'Log-probabilities and errors'],
  ['align', /^(attentionRatio|imageAttentionShares|maskImage|selectRejected)\.ts$/, 'Attention-aware selection (MIA-DPO)'],
  ['align', /^(trainStep|stream|collectMetrics|readMetrics|progressBar)\.ts$/, 'Training and metrics'],
  ['fairness', /^(distraction|trainDistraction|trainAdversarialDebiasing|trainMlp|protectedAttributeEncoder|reweighing|dpPenalty|softDemographicParity|classifier|dense|batching)/, 'Training fair models'],
  ['fairness', /^(adultBenchmark|loadAdult|tabularData|stream)/, 'Data and benchmarks'],
  ['fairness', /./, 'Metrics'],
]

/** @param {string} fileName */
export function topicOf(fileName) {
  const m = /packages\/([a-z]+)\/src\/(.+)$/.exec(fileName.replaceAll('\\', '/'))
  if (!m) return undefined
  const [, pkg, rel] = m
  return TOPICS.find(([p, re]) => p === pkg && /** @type {RegExp} */ (re).test(/** @type {string} */ (rel)))?.[2]
}

/** Kinds a module page lists; members of a class or interface stay where they are. */
const TOP_LEVEL = ReflectionKind.Class | ReflectionKind.Interface | ReflectionKind.Function | ReflectionKind.Variable | ReflectionKind.TypeAlias | ReflectionKind.Enum

/** @param {import('typedoc').Application} app */
export function load(app) {
  // Priority -100: after TypeDoc's own CommentPlugin has attached the declaration's comment.
  app.converter.on(
    Converter.EVENT_CREATE_DECLARATION,
    (context, reflection) => {
      if (!reflection.kindOf(TOP_LEVEL) || !reflection.parent?.kindOf(ReflectionKind.SomeModule | ReflectionKind.Project)) return
      const symbol = context.getSymbolFromReflection(reflection)
      const file = symbol?.declarations?.[0]?.getSourceFile().fileName
      const topic = file ? topicOf(file) : undefined
      if (!topic) return
      reflection.comment ??= new Comment()
      if (reflection.comment.blockTags.some(t => t.tag === '@category')) return
      reflection.comment.blockTags.push(new CommentTag('@category', [{ kind: 'text', text: topic }]))
    },
    -100,
  )
  // Re-exports (the tensor types that every package passes on) are reference reflections, made after the
  // declarations: give them their own section instead of an untitled "Other".
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, context => {
    for (const r of context.project.getReflectionsByKind(ReflectionKind.Reference)) {
      r.comment ??= new Comment()
      if (!r.comment.blockTags.some(t => t.tag === '@category')) r.comment.blockTags.push(new CommentTag('@category', [{ kind: 'text', text: 'Re-exports' }]))
    }
  })
}
