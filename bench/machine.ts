import { cpus, loadavg } from 'node:os'

/** What a benchmark report states about the machine it ran on; the load average says how shared it was. */
export interface MachineInfo {
  readonly cpu: string
  readonly cores: number
  readonly node: string
  readonly v8: string
  readonly loadavg: { readonly before: readonly number[]; readonly after: readonly number[] }
}

/** `before` is loadavg() taken when the bench started; the "after" reading is taken now. */
export function machineInfo(before: readonly number[]): MachineInfo {
  return {
    cpu: cpus()[0]?.model ?? 'cpu',
    cores: cpus().length,
    node: process.version,
    v8: process.versions.v8,
    loadavg: { before: before.map(x => +x.toFixed(2)), after: loadavg().map(x => +x.toFixed(2)) },
  }
}

/** One line for a Markdown report: cores, CPU model, Node and V8, load average before / after. */
export const machineLine = (m: MachineInfo): string =>
  `${m.cores}× ${m.cpu}, Node ${m.node} (V8 ${m.v8}), load average ${m.loadavg.before.map(x => x.toFixed(1)).join(' ')} before / ${m.loadavg.after.map(x => x.toFixed(1)).join(' ')} after`
