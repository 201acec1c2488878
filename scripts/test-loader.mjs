// The TypeScript loader of the test runner (package.json "tap"."node-arg"): `--import=./scripts/test-loader.mjs`.
//
// Why not tap's default (@tapjs/typescript, a ts-node fork): it transpiles every source file with the TypeScript
// compiler in each of the ~130 test processes, which was most of CI's time. Why not tsx, which the npm scripts
// use: it minifies whitespace, and V8 coverage remapped through such source maps reports every loaded file 100 %
// covered (privatenumber/tsx#433, #558), which would make the coverage thresholds a test that cannot fail.
// esbuild (already a dependency) strips the types here with line-preserving output and inline source maps.
import { register } from 'node:module'

register('./test-loader-hooks.mjs', import.meta.url)
