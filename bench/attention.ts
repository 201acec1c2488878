/**
 * Causal scaled dot-product attention forward, B1 H8 D64 float32, T ∈ {1k, 2k, 4k, 8k, 16k}, on heed's CPU and
 * WebGPU backends (Dawn from the `webgpu` package; lavapipe on a machine without a GPU). Each (backend, T) runs in
 * its own child process (packages/attention/test/helpers/forwardPeak.ts, the method test/memory.ts uses): a warm-up
 * forward at T = 64, then the timed forward(s), each including the call and the readback of out and lse, and the
 * peak extra resident memory of the timed forwards. GFLOP = 4·T²·D·H/2 (QKᵀ and PV, half the pairs under the
 * causal mask). A backend without the kernel, or one that fails, prints `n/a (reason)`. Writes
 * bench/out/attention.json.
 *
 * Flags: --max=4096 (largest T), --backends=cpu,webgpu, --limit=60 (seconds): a backend stops after a run longer
 * than the limit, or when its last run ×4 (T doubles, work quadruples) would pass 1.25× the limit, and prints
 * `skipped (too slow)` for the larger T; a child is killed after three times the limit. The defaults keep a run
 * near 2.5 minutes on a 2-core machine (CPU up to T = 16k, lavapipe up to 4k); `--limit=200` runs everything.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { measureForward, type ForwardResult } from '../packages/attention/test/helpers/forwardPeak.js'

const H = 8
const D = 64
const SIZES = [1024, 2048, 4096, 8192, 16384]

interface Row {
  readonly backend: string
  readonly T: number
  readonly result?: ForwardResult
  readonly skipped?: string
}

const gflop = (T: number): number => (4 * T * T * D * H) / 2 / 1e9
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`

export async function run(flags: readonly string[]): Promise<void> {
  const flag = (name: string): string | undefined => flags.find(f => f.startsWith(`--${name}=`))?.slice(name.length + 3)
  const max = Number(flag('max') ?? 16384)
  const backends = (flag('backends') ?? 'cpu,webgpu').split(',').filter(Boolean) as ('cpu' | 'webgpu')[]
  const limitS = Number(flag('limit') ?? 60)
  const sizes = SIZES.filter(T => T <= max)

  const started = performance.now()
  const rows: Row[] = []
  for (const backend of backends) {
    let stop: string | undefined
    for (const T of sizes) {
      if (stop) {
        rows.push({ backend, T, skipped: stop })
        continue
      }
      // one run where a run takes seconds
      const result = await measureForward({ backend, T, H, D, dtype: 'float32', runs: T <= 1024 ? 3 : 1 }, 3 * limitS * 1000)
      rows.push({ backend, T, result })
      const line = result.ok ? `${(result.ms / 1000).toFixed(2)} s, peak +${mib(result.extraBytes)}` : `n/a (${result.error})`
      console.log(`  ${backend} T=${T}: ${line}`)
      if (!result.ok) stop = result.error.startsWith('timed out') ? 'skipped (too slow)' : `n/a (${result.error})`
      else if (result.ms > limitS * 1000 || 4 * result.ms > 1.25 * limitS * 1000) stop = 'skipped (too slow)'
    }
  }
  const totalS = (performance.now() - started) / 1000

  const w = 8
  console.log(`\nattention forward, causal, B1 H${H} D${D} float32; time = call + readback (median of 3 at T = 1024, else 1 run)`)
  console.log(`GFLOP/s = 4·T²·D·H/2 / time; peak extra = resident memory added during the forward (child maxRSS); heap+AB Δ = heapUsed + arrayBuffers growth`)
  const adapter = rows.map(r => (r.result?.ok ? r.result.adapter : undefined)).find(a => a !== undefined)
  console.log(`${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; WebGPU adapter: ${adapter ?? 'n/a'}\n`)
  console.log(`${'backend'.padEnd(w)} | ${'T'.padStart(6)} | ${'time'.padStart(10)} | ${'GFLOP/s'.padStart(8)} | ${'peak extra'.padStart(12)} | ${'heap+AB Δ'.padStart(10)}`)
  console.log(`${'-'.repeat(w)}-+-${'-'.repeat(6)}-+-${'-'.repeat(10)}-+-${'-'.repeat(8)}-+-${'-'.repeat(12)}-+-${'-'.repeat(10)}`)
  for (const r of rows) {
    const head = `${r.backend.padEnd(w)} | ${String(r.T).padStart(6)} | `
    if (r.skipped) console.log(`${head}${r.skipped}`)
    else if (!r.result!.ok) console.log(`${head}n/a (${r.result!.error})`)
    else {
      const x = r.result!
      const peak = `${mib(x.extraBytes)}${x.exact ? '' : ' ≤'}`
      console.log(`${head}${`${(x.ms / 1000).toFixed(2)} s`.padStart(10)} | ${(gflop(r.T) / (x.ms / 1000)).toFixed(2).padStart(8)} | ${peak.padStart(12)} | ${mib(x.retainedBytes).padStart(10)}`)
    }
  }
  console.log(`\ntotal ${totalS.toFixed(1)} s`)

  const out = join(dirname(fileURLToPath(import.meta.url)), 'out', 'attention.json')
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cpu: cpus()[0]?.model,
        cores: cpus().length,
        shape: { B: 1, H, D, dtype: 'float32', causal: true },
        limitS,
        totalS,
        rows: rows.map(r => ({
          backend: r.backend,
          T: r.T,
          ...(r.skipped ? { skipped: r.skipped } : {}),
          ...(r.result ? { ...r.result, gflops: r.result.ok ? gflop(r.T) / (r.result.ms / 1000) : undefined } : {}),
        })),
      },
      null,
      2,
    ),
  )
  console.log(`wrote ${out}`)
}
