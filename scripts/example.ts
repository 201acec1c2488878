/**
 * `npm run example -- NAME [args…]`: run examples/NAME.ts from source with its arguments. Each example is its own
 * process, as when run by hand, because the examples start their work from a main-module check.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const examples = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples')
const available = readdirSync(examples).filter(f => f.endsWith('.ts')).map(f => f.slice(0, -3))
const [name, ...args] = process.argv.slice(2)
if (name === undefined || !existsSync(join(examples, `${name}.ts`))) {
  console.error(`usage: npm run example -- NAME [args]; NAME is one of ${available.join(', ')}`)
  process.exit(name === undefined ? 0 : 1)
}
const r = spawnSync(process.execPath, ['--conditions=@heed/source', '--import', 'tsx', join(examples, `${name}.ts`), ...args], { stdio: 'inherit' })
process.exit(r.status ?? 1)
