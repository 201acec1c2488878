/**
 * Benchmark entry point: `npm run bench -- <name> [...]` runs the named benches (all of them with no name).
 * Benches print their own tables; timings are never asserted anywhere, only reported.
 */
const benches: Record<string, () => Promise<{ run: (args: readonly string[]) => Promise<void> }>> = {
  matmul: () => import('./matmul.js'),
  fairness: () => import('./fairness.js'),
  attention: () => import('./attention.js'),
  operators: () => import('./operators.js'),
  'attention-peers': () => import('./attention-vs-peers.js'),
  train: () => import('./train.js'),
  lm: () => import('./lm.js'),
  'align-lm': () => import('./align-lm.js'),
  'lm-operators': () => import('./lm-operators.js'),
}

const args = process.argv.slice(2)
const names = args.filter(a => !a.startsWith('--'))
const flags = args.filter(a => a.startsWith('--'))
const unknown = names.filter(n => !(n in benches))
if (unknown.length > 0) {
  console.error(`unknown bench ${unknown.join(', ')}; available: ${Object.keys(benches).join(', ')}`)
  process.exit(1)
}
for (const name of names.length > 0 ? names : Object.keys(benches)) {
  const mod = await benches[name]!()
  await mod.run(flags)
}
