import { ValueError } from '@heed/tensor'
import type { TabularData } from './tabularData.js'
import { tabularLabels } from './validate.js'

/**
 * Kamiran & Calders' reweighing (AIF360 `Reweighing`): each row of group g and label y gets
 * `w = P(g)·P(y) / P(g, y)`, so that label and group are independent under the weighted distribution.
 * Train any classifier with these as sample weights (see trainMlp's `sampleWeight`).
 */
export function reweighing(data: Pick<TabularData, 'n' | 'y' | 'groups' | 'numGroups'>): Float64Array {
  tabularLabels('reweighing', data)
  const G = data.numGroups
  const joint = new Float64Array(G * 2)
  for (let i = 0; i < data.n; i++) joint[data.groups[i]! * 2 + data.y[i]!]!++
  const pg = Array.from({ length: G }, (_, g) => (joint[2 * g]! + joint[2 * g + 1]!) / data.n)
  const py = [0, 1].map(y => Array.from({ length: G }, (_, g) => joint[2 * g + y]!).reduce((a, b) => a + b, 0) / data.n)
  const w = new Float64Array(data.n)
  for (let i = 0; i < data.n; i++) {
    const g = data.groups[i]!
    const y = data.y[i]!
    const pj = joint[g * 2 + y]! / data.n
    if (pj === 0) throw new ValueError({ op: 'reweighing', arg: 'data', expected: 'every present row in a (group, label) cell', actual: 'an empty cell' })
    w[i] = (pg[g]! * py[y]!) / pj
  }
  return w
}
