import { ArgumentError, isTensor, ShapeError, type Tensor } from '@heed/tensor'
import { requireTensor } from './internal.js'

/**
 * The scalar tensors of a metrics record, checked: a record (not a tensor, array or primitive) whose values are live
 * one-element tensors (`undefined` values are skipped). A plain number or a `[B]` tensor would otherwise be dropped
 * or read as its first element without a word.
 */
function scalars(op: string, metrics: unknown): [string, Tensor][] {
  if (metrics === null || typeof metrics !== 'object' || Array.isArray(metrics) || isTensor(metrics))
    throw new ArgumentError({
      op,
      arg: 'metrics',
      expected: 'a record of scalar metric tensors (the metrics of a loss output)',
      actual: metrics === null ? 'null' : Array.isArray(metrics) ? 'an array' : isTensor(metrics) ? 'a Tensor' : typeof metrics,
    })
  const out: [string, Tensor][] = []
  for (const [k, v] of Object.entries(metrics)) {
    if (v === undefined) continue
    const t = requireTensor(op, `metrics.${k}`, v)
    if (t.size !== 1) throw new ShapeError({ op, arg: `metrics.${k}`, expected: 'a one-element tensor', actual: t.shape })
    out.push([k, t])
  }
  return out
}

/** Plain numbers from a record of scalar metric tensors (any backend); the tensors are left to the caller. */
export async function readMetrics(metrics: object): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const [k, v] of scalars('readMetrics', metrics)) out[k] = (await v.data())[0]!
  return out
}

/** `readMetrics` for host-resident backends (cpu), synchronously: what a training loop logs every step. */
export function readMetricsSync(metrics: object): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of scalars('readMetricsSync', metrics)) out[k] = v.dataSync()[0]!
  return out
}
