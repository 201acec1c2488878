/**
 * Run one test body on every backend. CPU always runs. WebGPU runs where an adapter exists; without one the
 * case is skipped with a visible notice, unless HEED_REQUIRE_WEBGPU is set (CI sets it), where a missing adapter
 * is a failure: CI always exercises the GPU path.
 */
import type { Test } from 'tap'
import { initBackend, setBackend } from '@heed/tensor'

let probe: Promise<string | undefined> | undefined

/** undefined when WebGPU is usable, else the reason it is not. */
export function webgpuUnavailable(): Promise<string | undefined> {
  probe ??= initBackend('webgpu').then(
    () => undefined,
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  )
  return probe
}

export const requireWebgpu = (): boolean => !!process.env['HEED_REQUIRE_WEBGPU'] && process.env['HEED_REQUIRE_WEBGPU'] !== '0'

export type BackendBody = (t: Test, backend: string) => void | Promise<void>

/** Register `name [backend]` subtests for every backend. */
export async function eachBackend(t: Test, name: string, body: BackendBody, backends: readonly string[] = ['cpu', 'webgpu']): Promise<void> {
  for (const backend of backends) {
    if (backend === 'webgpu') {
      const reason = await webgpuUnavailable()
      if (reason !== undefined) {
        if (requireWebgpu()) t.fail(`${name} [webgpu]: HEED_REQUIRE_WEBGPU is set but WebGPU is unavailable: ${reason}`)
        else t.test(`${name} [webgpu]`, { skip: `no WebGPU adapter (${reason})` }, () => {})
        continue
      }
    }
    await t.test(`${name} [${backend}]`, async tt => {
      await setBackend(backend)
      try {
        await body(tt, backend)
      } finally {
        await setBackend('cpu')
      }
    })
  }
}
