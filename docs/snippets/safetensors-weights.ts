// #region recipe
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { either as E } from 'fp-ts'
import { dispose, parseSafetensorsHeader, loadSafetensors, random, saveSafetensors } from '@heed/tensor'
import { multiHeadAttention, type MhaParams } from '@heed/attention'

const layer = multiHeadAttention({ dModel: 32, heads: 4 })
const trained = layer.init({ seed: 3 })

// A .safetensors file as other frameworks write it: a JSON header, then the raw little-endian tensors.
const file = join(await mkdtemp(join(tmpdir(), 'heed-')), 'layer0.safetensors')
await writeFile(file, await saveSafetensors({ ...trained }, { format: 'pt' }))

const bytes = new Uint8Array(await readFile(file))
// The header alone says what is inside, without reading any tensor data.
const header = parseSafetensorsHeader(bytes)
if (E.isLeft(header)) throw header.left
console.log(header.right.entries.map(e => `${e.name} ${e.dtype} [${e.shape.join(', ')}]`)) // => ["Wk F32 [32, 32]", "Wo F32 [32, 32]", "Wq F32 [32, 32]", "Wv F32 [32, 32]"]

// loadSafetensors throws a ParseError on a malformed file; parseSafetensors returns an Either instead.
const w = loadSafetensors(bytes)
const params: MhaParams = { Wq: w['Wq']!, Wk: w['Wk']!, Wv: w['Wv']!, Wo: w['Wo']! }

const x = random.normal([10, 32], { rng: random.rng(1) })
const a = layer.forward(trained, x).dataSync()
const b = layer.forward(params, x).dataSync()
console.log(a.every((v, i) => v === b[i])) // => true
dispose([trained, params, x])
// #endregion recipe
