import { isTensor } from '@heed/tensor'

/** Plain numbers from a record of scalar metric tensors (any backend); the tensors are left to the caller. */
export async function readMetrics(metrics: object): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(metrics)) if (isTensor(v)) out[k] = (await v.data())[0]!
  return out
}

/** `readMetrics` for host-resident backends (cpu), synchronously: what a training loop logs every step. */
export function readMetricsSync(metrics: object): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(metrics)) if (isTensor(v)) out[k] = v.dataSync()[0]!
  return out
}
