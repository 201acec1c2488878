// Module hooks for scripts/test-loader.mjs: `.ts` files are transpiled by esbuild (types stripped, no
// minification, inline source map), and a relative `./x.js` that does not exist resolves to `./x.ts`, as
// TypeScript's NodeNext resolution does for the sources.
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { transform } from 'esbuild'

const TS = /\.(?:ts|mts|cts)$/

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context)
  } catch (e) {
    const relative = specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('file:')
    if (e?.code === 'ERR_MODULE_NOT_FOUND' && relative && /\.[mc]?js$/.test(specifier))
      return next(specifier.replace(/\.([mc]?)js$/, '.$1ts'), context)
    throw e
  }
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !TS.test(new URL(url).pathname)) return next(url, context)
  const file = fileURLToPath(url)
  const { code } = await transform(await readFile(file, 'utf8'), {
    loader: 'ts',
    format: file.endsWith('.cts') ? 'cjs' : 'esm',
    target: `node${process.versions.node}`,
    sourcemap: 'inline',
    sourcefile: file,
    // The options of tsconfig.base.json that change emitted JavaScript.
    tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true, useDefineForClassFields: true } },
  })
  return { format: file.endsWith('.cts') ? 'commonjs' : 'module', source: code, shortCircuit: true }
}
