import { ValueError } from '@heed/tensor'
import { loadLM, LOAD_LM_OPTIONS, type LoadedLM, type LoadLMOptions } from './lmCheckpoint.js'
import { operatorOptions } from '../operators/strict.js'

/** What ships beside the model: DuoAttention gates found on it by `lmDuoGates` (examples/lm-duo-gates.ts). */
export interface KjvModelExtras {
  readonly duo?: { readonly gates: readonly (readonly number[])[]; readonly sink: number; readonly recent: number }
  /** The recipe and measured figures of the shipped model (from its training log). */
  readonly card?: Readonly<Record<string, unknown>>
}

/**
 * The model shipped with @heed/attention (models/kjv-char.safetensors): a character-level transformer trained on
 * the KJV's training books, float16 on disk, loaded as float32. Node only (it reads the file with node:fs); in a
 * browser, fetch the file and pass its bytes to `loadLM`. See models/README.md for the recipe that made it.
 */
export async function loadKjvModel(opts: LoadLMOptions = {}): Promise<LoadedLM & KjvModelExtras> {
  // checked before the file is read: a misspelt key or a non-object is this function's error, not loadLM's
  operatorOptions('loadKjvModel', opts, Object.keys(LOAD_LM_OPTIONS), '{ expect?, attention?, dtype?, backend? }')
  const fs = await import('node:fs/promises')
  const dir = new URL('../../models/', import.meta.url)
  let bytes: Uint8Array
  try {
    bytes = new Uint8Array(await fs.readFile(new URL('kjv-char.safetensors', dir)))
  } catch (err) {
    throw new ValueError({ op: 'loadKjvModel', arg: 'models/kjv-char.safetensors', expected: 'the shipped model file', actual: (err as Error).message })
  }
  const loaded = loadLM(bytes, opts)
  const extra = async (name: string): Promise<unknown> => {
    try {
      return JSON.parse(await fs.readFile(new URL(name, dir), 'utf8'))
    } catch {
      return undefined
    }
  }
  const duo = (await extra('kjv-char.duo.json')) as KjvModelExtras['duo']
  const card = (await extra('kjv-char.json')) as KjvModelExtras['card']
  return { ...loaded, ...(duo ? { duo } : {}), ...(card ? { card } : {}) }
}
